//! The serving front end of a simulated engine: what it refuses before the engine sees a
//! request (injected HTTP 500s, HTTP 429 when the queue is at its limit), counted so the
//! dialects can export the counters real engines keep for them, and what a scenario changes
//! about the `/metrics` endpoint itself.

use std::sync::atomic::{AtomicU64, Ordering};

use super::faults::{Fault, FaultDice};

/// Requests answered without the engine, since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrontCounts {
    /// Answered HTTP 500 (an injected error, or a dead engine). vLLM counts these under
    /// `finished_reason="error"`, TGI under `err="generation"`.
    pub server_errors: u64,
    /// Answered HTTP 429 (queue at `max_waiting`, or an injected overload). vLLM counts
    /// these in `admission_rejections_total`, TGI under `err="overloaded"`.
    pub overloaded: u64,
}

/// Why the front end refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// HTTP 500.
    ServerError,
    /// HTTP 429.
    Overloaded,
    /// The connection was dropped: no status, nothing counted.
    Reset,
}

/// The counters, shared by the HTTP handlers and the background load.
#[derive(Debug, Default)]
pub struct Front {
    server_errors: AtomicU64,
    overloaded: AtomicU64,
}

impl Front {
    /// Counts one refusal.
    pub fn count(&self, refusal: Refusal) {
        let counter = match refusal {
            Refusal::ServerError => &self.server_errors,
            Refusal::Overloaded => &self.overloaded,
            Refusal::Reset => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn counts(&self) -> FrontCounts {
        FrontCounts {
            server_errors: self.server_errors.load(Ordering::Relaxed),
            overloaded: self.overloaded.load(Ordering::Relaxed),
        }
    }
}

impl FrontCounts {
    /// Counts one refusal (the single-threaded form of [`Front::count`]).
    pub fn count(&mut self, refusal: Refusal) {
        match refusal {
            Refusal::ServerError => self.server_errors += 1,
            Refusal::Overloaded => self.overloaded += 1,
            Refusal::Reset => {}
        }
    }
}

/// What happens to a request nobody listens to (background load, a replay): one fault
/// drawn, then the queue limit, in the order the HTTP handlers apply them. `Ok` carries the
/// fault the request takes into the engine (a stall or a mid-stream error changes nothing
/// the engine counts).
pub fn admit_detached(dice: &mut FaultDice, waiting: usize) -> Result<Option<Fault>, Refusal> {
    let fault = dice.draw();
    if dice
        .rates()
        .max_waiting
        .is_some_and(|limit| waiting >= limit)
    {
        return Err(Refusal::Overloaded);
    }
    match fault {
        Some(Fault::Error | Fault::Die) => Err(Refusal::ServerError),
        Some(Fault::Overloaded) => Err(Refusal::Overloaded),
        Some(Fault::Reset) => Err(Refusal::Reset),
        other => Ok(other),
    }
}

/// How the `/metrics` endpoint behaves, changed by scenario steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exposure {
    /// `/metrics` answers HTTP 503 (a hung process, a crashed sidecar): every scrape fails.
    pub metrics_down: bool,
    /// The engine's own families are written. Without them only the process and HTTP
    /// families remain, as with vLLM's `--disable-log-stats` or after an upgrade renamed
    /// everything a dashboard reads.
    pub engine_families: bool,
    /// LoRA adapters in use. vLLM writes one `vllm:lora_requests_info` series per set of
    /// running adapters it has seen and never forgets one: with many adapters the series
    /// count grows with every new combination.
    pub lora_adapters: u32,
    /// What happened to the engine's GPU (`/dcgm/metrics`).
    pub gpu: super::gpu::GpuFaults,
}

impl Default for Exposure {
    fn default() -> Self {
        Exposure {
            metrics_down: false,
            engine_families: true,
            lora_adapters: 0,
            gpu: super::gpu::GpuFaults::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::faults::FaultRates;

    #[test]
    fn detached_requests_meet_the_queue_limit_and_the_injected_faults() {
        let rates = FaultRates {
            error: 0.5,
            max_waiting: Some(10),
            ..FaultRates::default()
        };
        let mut dice = FaultDice::new(rates, 7);
        let mut counts = FrontCounts::default();
        for _ in 0..1000 {
            if let Err(refusal) = admit_detached(&mut dice, 3) {
                counts.count(refusal);
            }
        }
        assert!((400..600).contains(&counts.server_errors), "{counts:?}");
        assert_eq!(counts.overloaded, 0);
        assert_eq!(admit_detached(&mut dice, 10), Err(Refusal::Overloaded));
        let front = Front::default();
        front.count(Refusal::Overloaded);
        front.count(Refusal::Reset);
        assert_eq!(front.counts().overloaded, 1);
        assert_eq!(front.counts().server_errors, 0);
    }
}
