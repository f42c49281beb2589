//! The simulated engine: continuous batching over a paged KV cache, as a pure state machine
//! on simulated time.
//!
//! Each call to [`Engine::step`] is one engine iteration: admit waiting requests while slots
//! and KV blocks allow (their prompts are prefilled in this step), then every running sequence
//! decodes one token. The step lasts the prefill cost of the admitted prompt tokens plus a
//! decode time that grows with the batch. When a sequence needs a new KV block and none is
//! free, the most recently admitted sequence is preempted (recompute: its blocks are freed
//! and it goes back to the front of the queue, as vLLM V1 does).
//!
//! Nothing here reads a clock or does I/O: the server drives it in real time, tests drive it
//! step by step, and both see the same events for the same inputs.

use std::collections::VecDeque;

/// Capacity and speed of one simulated engine. All times in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Most sequences in the running batch (vLLM `max_num_seqs`, llama.cpp slots).
    pub max_running: usize,
    /// KV-cache blocks.
    pub kv_blocks: u32,
    /// Tokens per KV block.
    pub block_tokens: u32,
    /// Prefill time per uncached prompt token.
    pub prefill_per_token: f64,
    /// Decode step time with one sequence.
    pub decode_base: f64,
    /// Extra decode step time per additional running sequence.
    pub decode_per_seq: f64,
    /// Whether the scheduler moves waiting requests into the batch; `false` is a stalled
    /// scheduler (requests pile up while the GPU idles).
    pub admitting: bool,
}

impl Profile {
    /// A 7B model on one H100-class GPU (fp16): ~110k tokens of KV, ~10k prompt tokens/s,
    /// ~12 ms decode steps growing slowly with the batch.
    pub fn gpu_7b() -> Profile {
        Profile {
            max_running: 256,
            kv_blocks: 6_900,
            block_tokens: 16,
            prefill_per_token: 0.000_1,
            decode_base: 0.012,
            decode_per_seq: 0.000_05,
            admitting: true,
        }
    }

    /// llama.cpp serving Gemma 3 270M on one CPU thread, as measured through the server on
    /// this project's machine kind: 4 slots of 2,048 tokens, ~400 prompt tokens/s, 23 tokens/s
    /// for one stream (43 ms steps) and ~52 tokens/s over four (77 ms steps).
    pub fn cpu_270m() -> Profile {
        Profile {
            max_running: 4,
            kv_blocks: 512,
            block_tokens: 16,
            prefill_per_token: 0.002_5,
            decode_base: 0.043,
            decode_per_seq: 0.011_3,
            admitting: true,
        }
    }

    /// A load-test upstream that is never the bottleneck: 10,000 slots, a practically
    /// unbounded cache, and 40 ms decode steps whatever the batch (25 tokens/s per stream).
    pub fn bench() -> Profile {
        Profile {
            max_running: 10_000,
            kv_blocks: 100_000_000,
            block_tokens: 16,
            prefill_per_token: 0.000_001,
            decode_base: 0.040,
            decode_per_seq: 0.0,
            admitting: true,
        }
    }

    /// As close to no latency as the runtime schedules precisely: 10,000 slots, an unbounded
    /// cache, no prefill cost and 1 ms steps. For measuring clients and proxies, not engines.
    pub fn instant() -> Profile {
        Profile {
            max_running: 10_000,
            kv_blocks: 100_000_000,
            block_tokens: 16,
            prefill_per_token: 0.0,
            decode_base: 0.001,
            decode_per_seq: 0.0,
            admitting: true,
        }
    }

    /// Decode time of one step with `batch` running sequences.
    pub fn decode_time(&self, batch: usize) -> f64 {
        if batch == 0 {
            return 0.0;
        }
        self.decode_base + self.decode_per_seq * (batch - 1) as f64
    }

    fn blocks_for(&self, tokens: u32) -> u32 {
        tokens.div_ceil(self.block_tokens.max(1))
    }
}

/// A request as the engine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestSpec {
    /// Caller's identifier, echoed in events.
    pub id: u64,
    /// Prompt length in tokens.
    pub prompt_tokens: u32,
    /// Prompt tokens found in the prefix cache (not recomputed, but they hold KV blocks).
    pub cached_tokens: u32,
    /// Tokens the model would generate before a natural stop.
    pub natural_length: u32,
    /// The request's `max_tokens`.
    pub max_tokens: u32,
}

/// Why a request finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// The model stopped by itself.
    Stop,
    /// `max_tokens` reached.
    Length,
    /// The prompt alone needs more KV blocks than the engine has.
    TooLong,
    /// The client went away; the engine dropped the request and freed its blocks.
    Aborted,
}

/// Something that happened during a step, stamped with simulated time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Event {
    /// Left the queue and joined the batch.
    Scheduled {
        /// Request.
        id: u64,
        /// When.
        at: f64,
    },
    /// Produced a token (`index` 0 is the first token).
    Token {
        /// Request.
        id: u64,
        /// Which token.
        index: u32,
        /// When.
        at: f64,
        /// Why the request ends with this token, when it does (a `Finished` follows).
        ends: Option<Finish>,
    },
    /// Evicted to free KV blocks; it will be recomputed.
    Preempted {
        /// Request.
        id: u64,
        /// When.
        at: f64,
    },
    /// Done.
    Finished {
        /// Request.
        id: u64,
        /// Why.
        reason: Finish,
        /// Tokens generated.
        generated: u32,
        /// When.
        at: f64,
    },
}

/// Running totals, the raw material of every metrics dialect.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    /// Prompt tokens of admitted requests (cached included), counted once per request.
    pub prompt_tokens: u64,
    /// Prompt tokens served from the prefix cache.
    pub cached_tokens: u64,
    /// Generated tokens.
    pub generated_tokens: u64,
    /// Preemptions.
    pub preemptions: u64,
    /// Finished with `Stop`.
    pub finished_stop: u64,
    /// Finished with `Length`.
    pub finished_length: u64,
    /// Rejected as too long for the KV cache.
    pub rejected_too_long: u64,
    /// Aborted because the client went away.
    pub aborted: u64,
    /// Engine steps run.
    pub steps: u64,
    /// Simulated seconds spent in prefill.
    pub prefill_seconds: f64,
    /// Simulated seconds spent in decode.
    pub decode_seconds: f64,
    /// Tokens computed per step (prefill plus decode), in power-of-two buckets.
    pub step_tokens: StepTokens,
    /// Steps that prefilled something (a prefill forward call, to TGI).
    pub prefill_steps: u64,
    /// Steps that admitted requests into a batch already running (TGI's `concat`).
    pub joined_running_batch: u64,
    /// How many requests each admitting step took in (index = requests; TGI's
    /// `batch_next_size`). Bounded by `max_running`.
    pub admitted_per_step: Vec<u64>,
    /// Simulated seconds of each step's prefill and decode, in geometric buckets.
    pub step_seconds: StepSeconds,
}

/// Step durations per phase in buckets with bounds `0.0001 · 1.5^k` for k = 1..=35 (TGI's
/// duration buckets, the only dialect that exports per-step timings as histograms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepSeconds {
    /// Prefill parts of steps that prefilled something; the last slot is `+Inf`.
    pub prefill: [u64; StepSeconds::SLOTS],
    /// Decode parts of every step; the last slot is `+Inf`.
    pub decode: [u64; StepSeconds::SLOTS],
}

impl Default for StepSeconds {
    fn default() -> StepSeconds {
        StepSeconds {
            prefill: [0; StepSeconds::SLOTS],
            decode: [0; StepSeconds::SLOTS],
        }
    }
}

impl StepSeconds {
    /// 35 bounds and `+Inf`.
    pub const SLOTS: usize = 36;

    /// The upper bounds, without `+Inf`.
    pub fn bounds() -> Vec<f64> {
        (0..Self::SLOTS - 1).map(Self::bound).collect()
    }

    /// The `k`-th upper bound (from 0): `0.0001 · 1.5^(k+1)`.
    fn bound(k: usize) -> f64 {
        0.0001 * 1.5f64.powi(k as i32 + 1)
    }

    fn slot(seconds: f64) -> usize {
        (0..Self::SLOTS - 1)
            .position(|k| seconds <= Self::bound(k))
            .unwrap_or(Self::SLOTS - 1)
    }

    fn observe(&mut self, prefill: Option<f64>, decode: f64) {
        if let Some(p) = prefill {
            self.prefill[Self::slot(p)] += 1;
        }
        self.decode[Self::slot(decode)] += 1;
    }
}

/// A distribution of tokens per engine step over power-of-two buckets: bucket `k` counts
/// steps with more than 2^(k-1) and at most 2^k tokens (bucket 0: at most one). vLLM's
/// `iteration_tokens_total` bounds are all powers of two, so it renders exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepTokens {
    /// Steps per bucket; the last bucket takes everything above 2^(len-2).
    pub counts: [u64; StepTokens::BUCKETS],
    /// Sum of tokens over all steps.
    pub sum: u64,
}

impl StepTokens {
    /// Buckets kept: up to 2^30 tokens, then overflow.
    pub const BUCKETS: usize = 32;

    /// Counts one step of `tokens` tokens.
    pub fn observe(&mut self, tokens: u64) {
        self.counts[Self::bucket(tokens)] += 1;
        self.sum = self.sum.saturating_add(tokens);
    }

    /// Steps with at most `bound` tokens; exact when `bound` is a power of two.
    pub fn at_most(&self, bound: u64) -> u64 {
        self.counts[..=Self::bucket(bound)].iter().sum()
    }

    /// The bucket of a step of `tokens` tokens: ceil(log2(tokens)), capped.
    fn bucket(tokens: u64) -> usize {
        let log2_ceil = if tokens <= 1 {
            0
        } else {
            (u64::BITS - (tokens - 1).leading_zeros()) as usize
        };
        log2_ceil.min(Self::BUCKETS - 1)
    }

    /// Steps counted.
    pub fn steps(&self) -> u64 {
        self.counts.iter().sum()
    }
}

#[derive(Debug, Clone)]
struct Sequence {
    spec: RequestSpec,
    generated: u32,
    blocks: u32,
    /// Whether the prompt has been counted in the totals (a recomputed request is not
    /// counted again).
    counted: bool,
}

impl Sequence {
    fn target(&self) -> (u32, Finish) {
        if self.spec.natural_length < self.spec.max_tokens {
            (self.spec.natural_length.max(1), Finish::Stop)
        } else {
            (self.spec.max_tokens.max(1), Finish::Length)
        }
    }
}

/// One simulated engine.
#[derive(Debug, Clone)]
pub struct Engine {
    profile: Profile,
    now: f64,
    waiting: VecDeque<Sequence>,
    running: Vec<Sequence>,
    free_blocks: u32,
    totals: Totals,
}

impl Engine {
    /// An idle engine at simulated time 0.
    pub fn new(profile: Profile) -> Engine {
        let free_blocks = profile.kv_blocks;
        Engine {
            profile,
            now: 0.0,
            waiting: VecDeque::new(),
            running: Vec::new(),
            free_blocks,
            totals: Totals::default(),
        }
    }

    /// Simulated time now.
    pub fn now(&self) -> f64 {
        self.now
    }

    /// Lets simulated time pass while idle (an engine with work should be stepped instead).
    pub fn advance_to(&mut self, at: f64) {
        self.now = self.now.max(at);
    }

    /// Queues a request.
    pub fn submit(&mut self, spec: RequestSpec) {
        self.waiting.push_back(Sequence {
            spec,
            generated: 0,
            blocks: 0,
            counted: false,
        });
    }

    /// Requests waiting.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Requests in the batch.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Fraction of KV blocks in use.
    pub fn kv_usage(&self) -> f64 {
        let total = self.profile.kv_blocks.max(1);
        f64::from(total - self.free_blocks.min(total)) / f64::from(total)
    }

    /// Running totals.
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// The profile in force.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Replaces the profile (a scenario changing capacity or speed). A smaller KV cache
    /// takes effect as blocks are freed.
    pub fn set_profile(&mut self, profile: Profile) {
        let used = self.profile.kv_blocks.saturating_sub(self.free_blocks);
        self.free_blocks = profile.kv_blocks.saturating_sub(used);
        self.profile = profile;
    }

    /// Drops a request whose client went away, waiting or running, and frees its blocks, as
    /// engines abort a request on disconnect. Returns its `Finished` event; `None` when the
    /// engine no longer holds it.
    pub fn abort(&mut self, id: u64) -> Option<Event> {
        let seq = if let Some(i) = self.running.iter().position(|s| s.spec.id == id) {
            self.running.remove(i)
        } else {
            let i = self.waiting.iter().position(|s| s.spec.id == id)?;
            self.waiting.remove(i)?
        };
        self.free_blocks += seq.blocks;
        self.totals.aborted += 1;
        Some(Event::Finished {
            id,
            reason: Finish::Aborted,
            generated: seq.generated,
            at: self.now,
        })
    }

    /// Whether a step would do anything: nothing running, and nothing waiting that the
    /// scheduler would admit (a stalled one admits nothing; its waiting requests stay).
    pub fn is_idle(&self) -> bool {
        self.running.is_empty() && (self.waiting.is_empty() || !self.profile.admitting)
    }

    /// Runs one engine iteration and returns what happened. Simulated time advances by the
    /// step's duration; an idle engine returns no events and does not advance.
    pub fn step(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        if self.is_idle() {
            return events;
        }
        let start = self.now;
        let was_running = !self.running.is_empty();
        let before = self.running.len();
        let prefill_tokens = self.admit(start, &mut events);
        self.count_admission(self.running.len().saturating_sub(before), was_running);
        self.reserve_decode_blocks(start, &mut events);
        let prefill = f64::from(prefill_tokens) * self.profile.prefill_per_token;
        let decode = self.profile.decode_time(self.running.len());
        self.now = start + prefill + decode;
        self.totals.steps += 1;
        self.totals
            .step_tokens
            .observe(u64::from(prefill_tokens) + self.running.len() as u64);
        self.totals.prefill_seconds += prefill;
        self.totals.decode_seconds += decode;
        self.totals.prefill_steps += u64::from(prefill_tokens > 0);
        self.totals
            .step_seconds
            .observe((prefill_tokens > 0).then_some(prefill), decode);
        self.decode(&mut events);
        events
    }

    /// Counts a step's admissions: how many joined, and whether a batch was already running.
    fn count_admission(&mut self, admitted: usize, was_running: bool) {
        if admitted == 0 {
            return;
        }
        let sizes = &mut self.totals.admitted_per_step;
        if sizes.len() <= admitted {
            sizes.resize(admitted + 1, 0);
        }
        sizes[admitted] += 1;
        self.totals.joined_running_batch += u64::from(was_running);
    }

    /// Tokens held by the running sequences: prompts plus what each has generated so far.
    pub fn running_context_tokens(&self) -> u64 {
        self.running
            .iter()
            .map(|s| u64::from(s.spec.prompt_tokens + s.generated))
            .sum()
    }

    /// Moves waiting requests into the batch while slots and blocks allow; returns the
    /// prompt tokens to prefill.
    fn admit(&mut self, at: f64, events: &mut Vec<Event>) -> u32 {
        let mut prefill = 0;
        while self.profile.admitting && self.running.len() < self.profile.max_running {
            let Some(front) = self.waiting.front() else {
                break;
            };
            let context = front.spec.prompt_tokens + front.generated + 1;
            let need = self.profile.blocks_for(context);
            if need > self.profile.kv_blocks {
                if let Some(seq) = self.waiting.pop_front() {
                    self.totals.rejected_too_long += 1;
                    events.push(Event::Finished {
                        id: seq.spec.id,
                        reason: Finish::TooLong,
                        generated: seq.generated,
                        at,
                    });
                }
                continue;
            }
            if need > self.free_blocks {
                break;
            }
            let Some(mut seq) = self.waiting.pop_front() else {
                break;
            };
            self.free_blocks -= need;
            seq.blocks = need;
            // A recomputed sequence prefills its prompt and what it had generated.
            let uncached = if seq.counted {
                seq.spec.prompt_tokens + seq.generated
            } else {
                seq.spec.prompt_tokens - seq.spec.cached_tokens.min(seq.spec.prompt_tokens)
            };
            prefill += uncached;
            if !seq.counted {
                seq.counted = true;
                self.totals.prompt_tokens += u64::from(seq.spec.prompt_tokens);
                self.totals.cached_tokens += u64::from(seq.spec.cached_tokens);
            }
            events.push(Event::Scheduled {
                id: seq.spec.id,
                at,
            });
            self.running.push(seq);
        }
        prefill
    }

    /// Makes sure every running sequence has a block for its next token, preempting the
    /// newest sequences when the cache is full.
    fn reserve_decode_blocks(&mut self, at: f64, events: &mut Vec<Event>) {
        let mut i = 0;
        while i < self.running.len() {
            let seq = &self.running[i];
            let need = self
                .profile
                .blocks_for(seq.spec.prompt_tokens + seq.generated + 1);
            if need <= seq.blocks {
                i += 1;
                continue;
            }
            if self.free_blocks > 0 {
                self.free_blocks -= 1;
                self.running[i].blocks += 1;
                i += 1;
                continue;
            }
            // Evict the newest sequence (possibly this one) and retry.
            let Some(victim) = self.running.pop() else {
                break;
            };
            self.free_blocks += victim.blocks;
            self.totals.preemptions += 1;
            events.push(Event::Preempted {
                id: victim.spec.id,
                at,
            });
            self.waiting.push_front(Sequence {
                blocks: 0,
                ..victim
            });
        }
    }

    /// Every running sequence produces one token at the end of the step; finished ones leave.
    fn decode(&mut self, events: &mut Vec<Event>) {
        let at = self.now;
        let mut still = Vec::with_capacity(self.running.len());
        for mut seq in self.running.drain(..) {
            let (target, reason) = seq.target();
            let ends = (seq.generated + 1 >= target).then_some(reason);
            events.push(Event::Token {
                id: seq.spec.id,
                index: seq.generated,
                at,
                ends,
            });
            seq.generated += 1;
            self.totals.generated_tokens += 1;
            if ends.is_some() {
                self.free_blocks += seq.blocks;
                match reason {
                    Finish::Stop => self.totals.finished_stop += 1,
                    Finish::Length => self.totals.finished_length += 1,
                    Finish::TooLong | Finish::Aborted => {}
                }
                events.push(Event::Finished {
                    id: seq.spec.id,
                    reason,
                    generated: seq.generated,
                    at,
                });
            } else {
                still.push(seq);
            }
        }
        self.running = still;
    }
}

#[cfg(test)]
mod tests;
