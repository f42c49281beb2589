//! Made-up time: one simulated engine run as fast as the CPU allows, with background load,
//! faults and a scenario, and scraped at chosen times. It is what `llmwatch sim --load N
//! --scenario FILE` serves over hours of real time, computed in seconds, for checking alerts
//! and recording rules that need hours of history.
//!
//! The same pieces as the live simulator: the [`Engine`] state machine, the [`Recorder`],
//! seeded [`Arrivals`], the front end's faults and queue limit ([`admit_detached`]), the
//! scenario's steps and the dialect's [`Renderer`]; only the clock differs.

use super::dialect::{Dialect, Renderer, Snapshot, buckets_for};
use super::engine::{Engine, Profile};
use super::faults::{FaultDice, FaultRates};
use super::front::{Exposure, FrontCounts, admit_detached};
use super::load::{Arrivals, Load};
use super::record::Recorder;
use super::scenario::{Scenario, Step, step_time};

/// Finished requests kept for ground truth: a replay reads the histograms, not the records.
const KEEP_FINISHED: usize = 64;

/// What to replay.
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    /// Which engine's `/metrics` to write.
    pub dialect: Dialect,
    /// Capacity and speed at the start.
    pub profile: Profile,
    /// Background traffic.
    pub load: Load,
    /// Fault rates at the start.
    pub faults: FaultRates,
    /// The incident, if any.
    pub scenario: Option<Scenario>,
    /// Seed for arrivals and faults.
    pub seed: u64,
    /// Served model name.
    pub model: String,
    /// Unix time of simulated time zero (the process start vLLM writes).
    pub started_unix: f64,
}

/// A simulated engine on a made-up clock.
#[derive(Debug)]
pub struct Replay {
    engine: Engine,
    recorder: Recorder,
    arrivals: Arrivals,
    /// The next arrival: its simulated time and request.
    next_arrival: (f64, super::engine::RequestSpec),
    next_id: u64,
    dice: FaultDice,
    front: FrontCounts,
    exposure: Exposure,
    renderer: Renderer,
    /// Scenario steps not applied yet, latest first.
    pending: Vec<(f64, Step)>,
    model: String,
    started_unix: f64,
    /// The engine's GPU, for a dialect that runs on one.
    gpu: Option<super::gpu::SimGpu>,
}

/// The port the replayed engine pretends to listen on (its GPU's pod is `DIALECT-PORT`).
pub const REPLAY_PORT: u16 = 8000;

impl Replay {
    /// A replay at simulated time zero.
    pub fn new(config: ReplayConfig) -> Replay {
        let mut arrivals = Arrivals::new(config.load, config.seed);
        let (gap, spec) = arrivals.next_arrival();
        let mut pending: Vec<(f64, Step)> = config
            .scenario
            .map(|s| s.steps)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|step| Some((step_time(&step)?.as_secs_f64(), step)))
            .collect();
        pending.sort_by(|a, b| b.0.total_cmp(&a.0));
        Replay {
            engine: Engine::new(config.profile),
            recorder: Recorder::new(&buckets_for(config.dialect), KEEP_FINISHED),
            arrivals,
            next_arrival: (gap.as_secs_f64(), spec),
            next_id: 1,
            dice: FaultDice::new(config.faults, config.seed),
            front: FrontCounts::default(),
            exposure: Exposure::default(),
            renderer: Renderer::new(config.dialect, 4242),
            pending,
            model: config.model,
            started_unix: config.started_unix,
            gpu: config
                .dialect
                .runs_on_gpu()
                .then(|| super::gpu::SimGpu::new(config.dialect.name(), REPLAY_PORT)),
        }
    }

    /// Runs to `at` seconds of simulated time and scrapes `/metrics`: the body and its
    /// content type, or `None` while a scenario has the endpoint down.
    pub fn scrape_at(&mut self, at: f64) -> Option<(String, &'static str)> {
        self.run_until(at);
        if self.exposure.metrics_down {
            return None;
        }
        let snapshot = snapshot(
            &self.engine,
            &self.recorder,
            &self.model,
            self.front_and_exposure(),
        );
        Some(self.renderer.render(&snapshot))
    }

    /// Runs to `at` seconds of simulated time and scrapes the GPU's `/dcgm/metrics` (which
    /// answers while the engine's `/metrics` is down); `None` for an engine on the CPU.
    pub fn gpu_scrape_at(&mut self, at: f64) -> Option<String> {
        self.run_until(at);
        let mut gpu = self.gpu.take()?;
        let faults = self.exposure.gpu;
        let snap = snapshot(
            &self.engine,
            &self.recorder,
            &self.model,
            self.front_and_exposure(),
        );
        let body = gpu.render(self.started_unix + at, &snap, faults);
        self.gpu = Some(gpu);
        Some(body)
    }

    fn front_and_exposure(&self) -> (f64, FrontCounts, Exposure) {
        (self.started_unix, self.front, self.exposure)
    }

    /// The engine, for checks against ground truth.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Requests the front end refused so far.
    pub fn front(&self) -> FrontCounts {
        self.front
    }

    /// Steps the engine, taking arrivals and scenario steps as simulated time reaches them,
    /// until it reaches `at` (a busy engine may end a step just past it).
    fn run_until(&mut self, at: f64) {
        loop {
            let next = self.next_event().min(at);
            if self.engine.is_idle() {
                self.engine.advance_to(next);
                if next >= at {
                    return;
                }
            } else if self.engine.now() >= at {
                return;
            }
            self.take_due_events();
            if !self.engine.is_idle() {
                let events = self.engine.step();
                self.recorder.observe(&events);
            }
        }
    }

    fn next_event(&self) -> f64 {
        let step = self.pending.last().map_or(f64::INFINITY, |(t, _)| *t);
        step.min(self.next_arrival.0)
    }

    /// Applies every scenario step and arrival due by the engine's time, in time order.
    fn take_due_events(&mut self) {
        let now = self.engine.now();
        loop {
            let step_due = self.pending.last().is_some_and(|(t, _)| *t <= now);
            let step_first = step_due
                && self
                    .pending
                    .last()
                    .is_some_and(|(t, _)| *t <= self.next_arrival.0);
            if step_first {
                if let Some((_, step)) = self.pending.pop() {
                    self.apply(&step);
                }
            } else if self.next_arrival.0 <= now {
                self.arrive();
            } else {
                return;
            }
        }
    }

    fn apply(&mut self, step: &Step) {
        if step.changes_profile() {
            let profile = step.apply_profile(self.engine.profile());
            self.engine.set_profile(profile);
        }
        let rates = step.apply_faults(self.dice.rates());
        self.dice.set_rates(rates);
        self.exposure = step.apply_exposure(&self.exposure);
    }

    fn arrive(&mut self) {
        let (at, mut spec) = self.next_arrival;
        let (gap, next) = self.arrivals.next_arrival();
        self.next_arrival = (at + gap.as_secs_f64(), next);
        match admit_detached(&mut self.dice, self.engine.waiting()) {
            Ok(_) => {
                spec.id = self.next_id;
                self.next_id += 1;
                self.recorder.arrive(&spec, at);
                self.engine.submit(spec);
            }
            Err(refusal) => self.front.count(refusal),
        }
    }
}

/// What the dialects render, from the replay's parts (borrowed apart from its renderer).
fn snapshot<'a>(
    engine: &'a Engine,
    recorder: &'a Recorder,
    model: &'a str,
    (started_unix, front, exposure): (f64, FrontCounts, Exposure),
) -> Snapshot<'a> {
    Snapshot {
        model,
        running: engine.running(),
        waiting: engine.waiting(),
        kv_usage: engine.kv_usage(),
        context_tokens: engine.running_context_tokens(),
        totals: engine.totals(),
        latencies: recorder.latencies(),
        started_unix,
        profile: engine.profile(),
        front,
        exposure,
    }
}

#[cfg(test)]
mod tests;
