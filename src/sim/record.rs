//! Ground truth: what happened to every request, from the engine's events, and the latency
//! histograms the metrics dialects export.
//!
//! The recorder keeps one record per request in flight and a bounded ring of finished ones
//! (for `/sim/requests` and tests). Histograms take bucket bounds from the caller, because
//! each engine dialect has its own.

use std::collections::{HashMap, VecDeque};

use super::engine::{Event, Finish, RequestSpec};

/// What happened to one request. Times are simulated seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    /// Request id.
    pub id: u64,
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Of which served from the prefix cache.
    pub cached_tokens: u32,
    /// Arrival at the engine.
    pub arrival: f64,
    /// Left the queue (the last time, if it was preempted).
    pub scheduled: Option<f64>,
    /// Every token's time; the first is the time to first token.
    pub token_times: Vec<f64>,
    /// Finish time.
    pub finished: Option<f64>,
    /// How it finished.
    pub outcome: Option<Finish>,
    /// Times it was preempted.
    pub preemptions: u32,
    /// The `max_tokens` it asked for.
    pub max_tokens: u32,
}

impl RequestRecord {
    /// Time to first token, from arrival.
    pub fn ttft(&self) -> Option<f64> {
        self.token_times.first().map(|t| t - self.arrival)
    }

    /// Time from arrival to finish.
    pub fn e2e(&self) -> Option<f64> {
        self.finished.map(|t| t - self.arrival)
    }
}

/// A cumulative histogram with fixed upper bounds (`+Inf` implied).
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Upper bounds, ascending, without `+Inf`.
    pub bounds: Vec<f64>,
    /// Observations per bucket (not cumulative); one more than `bounds` for `+Inf`.
    pub counts: Vec<u64>,
    /// Sum of observations.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

impl Histogram {
    /// An empty histogram over `bounds`.
    pub fn new(bounds: &[f64]) -> Histogram {
        Histogram {
            bounds: bounds.to_vec(),
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    /// Adds `n` observations of `value`.
    pub fn observe_n(&mut self, value: f64, n: u64) {
        let bucket = self.bounds.partition_point(|b| *b < value);
        if let Some(slot) = self.counts.get_mut(bucket) {
            *slot += n;
        }
        self.sum += value * n as f64;
        self.count += n;
    }

    /// Adds one observation.
    pub fn observe(&mut self, value: f64) {
        self.observe_n(value, 1);
    }

    /// The upper bound of the bucket holding quantile `q` (0..1): an upper estimate, exact
    /// to the bucket. `None` when empty.
    pub fn quantile_bound(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = (q * self.count as f64).ceil().max(1.0) as u64;
        self.cumulative()
            .into_iter()
            .find(|(_, n)| *n >= rank)
            .map(|(le, _)| le)
    }

    /// `(upper bound, cumulative count)` pairs, `+Inf` last.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        self.bounds
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(&self.counts)
            .map(|(le, n)| {
                total += n;
                (le, total)
            })
            .collect()
    }
}

/// Bucket bounds for each histogram family, chosen by the dialect.
#[derive(Debug, Clone, PartialEq)]
pub struct Buckets {
    /// Time to first token.
    pub ttft: Vec<f64>,
    /// Inter-token latency and time per output token.
    pub itl: Vec<f64>,
    /// End-to-end latency.
    pub e2e: Vec<f64>,
    /// Queue time.
    pub queue: Vec<f64>,
    /// Prefill and decode time.
    pub phase: Vec<f64>,
    /// Prompt and output lengths in tokens.
    pub tokens: Vec<f64>,
}

/// The latency histograms of one engine.
#[derive(Debug, Clone, PartialEq)]
pub struct Latencies {
    /// Arrival → first token.
    pub ttft: Histogram,
    /// Gap between successive tokens of a request.
    pub itl: Histogram,
    /// Per request: decode time / (tokens − 1).
    pub tpot: Histogram,
    /// Arrival → finish.
    pub e2e: Histogram,
    /// Arrival → scheduled.
    pub queue: Histogram,
    /// Scheduled → first token.
    pub prefill: Histogram,
    /// First token → finish.
    pub decode: Histogram,
    /// Prompt length per finished request.
    pub prompt_tokens: Histogram,
    /// Generated tokens per finished request.
    pub output_tokens: Histogram,
    /// Scheduled → finish (prefill plus decode).
    pub inference: Histogram,
    /// Prompt tokens not served from the prefix cache, per finished request.
    pub computed_prompt_tokens: Histogram,
    /// The `max_tokens` each finished request asked for.
    pub max_tokens: Histogram,
    /// Preemptions per finished request, over vLLM's `request_num_preemptions` bounds.
    pub preemptions: Histogram,
    /// The `n` parameter per finished request (always 1 here), over vLLM's bounds.
    pub params_n: Histogram,
}

/// vLLM's `request_num_preemptions` bounds (the only engine with that histogram).
const PREEMPTION_BOUNDS: [f64; 7] = [1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0];
/// vLLM's `request_params_n` bounds.
const PARAMS_N_BOUNDS: [f64; 5] = [1.0, 2.0, 5.0, 10.0, 20.0];

impl Latencies {
    fn new(buckets: &Buckets) -> Latencies {
        Latencies {
            ttft: Histogram::new(&buckets.ttft),
            itl: Histogram::new(&buckets.itl),
            tpot: Histogram::new(&buckets.itl),
            e2e: Histogram::new(&buckets.e2e),
            queue: Histogram::new(&buckets.queue),
            prefill: Histogram::new(&buckets.phase),
            decode: Histogram::new(&buckets.phase),
            prompt_tokens: Histogram::new(&buckets.tokens),
            output_tokens: Histogram::new(&buckets.tokens),
            inference: Histogram::new(&buckets.phase),
            computed_prompt_tokens: Histogram::new(&buckets.tokens),
            max_tokens: Histogram::new(&buckets.tokens),
            preemptions: Histogram::new(&PREEMPTION_BOUNDS),
            params_n: Histogram::new(&PARAMS_N_BOUNDS),
        }
    }

    fn observe(&mut self, record: &RequestRecord) {
        let (Some(&first), Some(&last), Some(end)) = (
            record.token_times.first(),
            record.token_times.last(),
            record.finished,
        ) else {
            return;
        };
        let scheduled = record.scheduled.unwrap_or(record.arrival);
        self.ttft.observe(first - record.arrival);
        for pair in record.token_times.windows(2) {
            self.itl.observe(pair[1] - pair[0]);
        }
        let tokens = record.token_times.len();
        if tokens > 1 {
            self.tpot.observe((last - first) / (tokens - 1) as f64);
        }
        self.e2e.observe(end - record.arrival);
        self.queue.observe(scheduled - record.arrival);
        self.prefill.observe(first - scheduled);
        self.decode.observe(end - first);
        self.prompt_tokens.observe(f64::from(record.prompt_tokens));
        self.output_tokens.observe(tokens as f64);
        self.inference.observe(end - scheduled);
        let computed = record.prompt_tokens.saturating_sub(record.cached_tokens);
        self.computed_prompt_tokens.observe(f64::from(computed));
        self.max_tokens.observe(f64::from(record.max_tokens));
        self.preemptions.observe(f64::from(record.preemptions));
        self.params_n.observe(1.0);
    }
}

/// Collects records and histograms from engine events.
#[derive(Debug, Clone)]
pub struct Recorder {
    open: HashMap<u64, RequestRecord>,
    finished: VecDeque<RequestRecord>,
    keep: usize,
    latencies: Latencies,
}

impl Recorder {
    /// A recorder keeping the last `keep` finished records, with the dialect's buckets.
    pub fn new(buckets: &Buckets, keep: usize) -> Recorder {
        Recorder {
            open: HashMap::new(),
            finished: VecDeque::new(),
            keep,
            latencies: Latencies::new(buckets),
        }
    }

    /// A request arrived at simulated time `at`.
    pub fn arrive(&mut self, spec: &RequestSpec, at: f64) {
        self.open.insert(
            spec.id,
            RequestRecord {
                id: spec.id,
                prompt_tokens: spec.prompt_tokens,
                cached_tokens: spec.cached_tokens,
                arrival: at,
                scheduled: None,
                token_times: Vec::new(),
                finished: None,
                outcome: None,
                preemptions: 0,
                max_tokens: spec.max_tokens,
            },
        );
    }

    /// Applies the events of one engine step.
    pub fn observe(&mut self, events: &[Event]) {
        for event in events {
            match *event {
                Event::Scheduled { id, at } => {
                    // A preempted request is scheduled again, perhaps after its first token;
                    // vLLM keeps the first scheduling ("ignore preemptions"), so queue and
                    // prefill times never go negative.
                    if let Some(r) = self.open.get_mut(&id) {
                        r.scheduled.get_or_insert(at);
                    }
                }
                Event::Token { id, at, .. } => {
                    if let Some(r) = self.open.get_mut(&id) {
                        r.token_times.push(at);
                    }
                }
                Event::Preempted { id, .. } => {
                    if let Some(r) = self.open.get_mut(&id) {
                        r.preemptions += 1;
                    }
                }
                Event::Finished { id, reason, at, .. } => self.finish(id, reason, at),
            }
        }
    }

    fn finish(&mut self, id: u64, reason: Finish, at: f64) {
        let Some(mut record) = self.open.remove(&id) else {
            return;
        };
        record.finished = Some(at);
        record.outcome = Some(reason);
        // An aborted request has no complete latency to report: the client never saw its end.
        if reason != Finish::Aborted {
            self.latencies.observe(&record);
        }
        if self.keep == 0 {
            return;
        }
        if self.finished.len() == self.keep {
            self.finished.pop_front();
        }
        self.finished.push_back(record);
    }

    /// A request still in flight.
    pub fn open(&self, id: u64) -> Option<&RequestRecord> {
        self.open.get(&id)
    }

    /// The most recent finished requests, oldest first.
    pub fn finished(&self) -> impl Iterator<Item = &RequestRecord> {
        self.finished.iter()
    }

    /// The latency histograms.
    pub fn latencies(&self) -> &Latencies {
        &self.latencies
    }
}

#[cfg(test)]
mod tests;
