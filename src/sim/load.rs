//! Background traffic, so a simulated engine shows life with no client: Poisson arrivals at
//! a fixed rate with prompt and output lengths drawn uniformly from ranges, seeded. The
//! requests go straight to the engine (no HTTP), and nobody reads their tokens.

use std::ops::RangeInclusive;
use std::time::Duration;

use std::sync::{Arc, Mutex, PoisonError};

use super::engine::RequestSpec;
use super::faults::FaultDice;
use super::front::{Front, admit_detached};
use super::runtime::EngineHandle;
use crate::rng::Rng;

/// The shape of background traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    /// Mean arrivals per second.
    pub rate: f64,
    /// Prompt lengths.
    pub prompt_tokens: RangeInclusive<u32>,
    /// Natural output lengths.
    pub output_tokens: RangeInclusive<u32>,
    /// `max_tokens` of every request.
    pub max_tokens: u32,
}

impl Load {
    /// Chat-like traffic at `rate` requests per second.
    pub fn chat(rate: f64) -> Load {
        Load {
            rate,
            prompt_tokens: 50..=500,
            output_tokens: 20..=300,
            max_tokens: 256,
        }
    }
}

/// A seeded generator of arrivals and lengths.
#[derive(Debug, Clone)]
pub struct Arrivals {
    load: Load,
    rng: Rng,
}

impl Arrivals {
    /// Arrivals for `load`, seeded.
    pub fn new(load: Load, seed: u64) -> Arrivals {
        Arrivals {
            load,
            rng: Rng::new(seed, 0xD1B5_4A32_D192_ED03),
        }
    }

    fn pick(&mut self, range: &RangeInclusive<u32>) -> u32 {
        let span = f64::from(range.end().saturating_sub(*range.start()) + 1);
        range.start() + (self.rng.uniform() * span) as u32
    }

    /// The gap to the next arrival and its request.
    pub fn next_arrival(&mut self) -> (Duration, RequestSpec) {
        // Exponential gaps: a Poisson process.
        let gap = -(1.0 - self.rng.uniform()).ln() / self.load.rate.max(1e-9);
        let prompt_tokens = self.pick(&self.load.prompt_tokens.clone());
        let natural_length = self.pick(&self.load.output_tokens.clone());
        let spec = RequestSpec {
            id: 0,
            prompt_tokens,
            cached_tokens: 0,
            natural_length,
            max_tokens: self.load.max_tokens,
        };
        (Duration::from_secs_f64(gap.min(3600.0)), spec)
    }
}

/// Feeds `engine` until the task is dropped. Each arrival meets the front end first, as an
/// HTTP request would: injected faults and the queue limit refuse some, and are counted. A
/// full submission queue drops the arrival (as a client that got 503 would go away).
pub async fn drive(
    engine: EngineHandle,
    mut arrivals: Arrivals,
    dice: Arc<Mutex<FaultDice>>,
    front: Arc<Front>,
) {
    let mut next_at = tokio::time::Instant::now();
    loop {
        let (gap, spec) = arrivals.next_arrival();
        next_at += gap;
        tokio::time::sleep_until(next_at).await;
        let admitted = {
            let mut dice = dice.lock().unwrap_or_else(PoisonError::into_inner);
            admit_detached(&mut dice, engine.waiting())
        };
        match admitted {
            Ok(_) => {
                let _ = engine.submit_detached(spec);
            }
            Err(refusal) => front.count(refusal),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_follow_the_rate_and_ranges_and_the_seed() {
        let mut arrivals = Arrivals::new(Load::chat(10.0), 3);
        let draws: Vec<(Duration, RequestSpec)> =
            (0..5_000).map(|_| arrivals.next_arrival()).collect();
        let total: f64 = draws.iter().map(|(gap, _)| gap.as_secs_f64()).sum();
        let rate = draws.len() as f64 / total;
        assert!((9.5..10.5).contains(&rate), "{rate}");
        assert!(
            draws
                .iter()
                .all(|(_, s)| (50..=500).contains(&s.prompt_tokens))
        );
        assert!(
            draws
                .iter()
                .all(|(_, s)| (20..=300).contains(&s.natural_length))
        );
        let mut again = Arrivals::new(Load::chat(10.0), 3);
        assert!(draws.iter().all(|d| *d == again.next_arrival()));
    }
}
