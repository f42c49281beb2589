//! Faults a simulated engine can inject: drawn at configured rates from a seeded generator,
//! or forced per request with the `x-llmwatch-sim-fault` header (for tests).
//!
//! | fault | behaviour |
//! |---|---|
//! | `error` | HTTP 500 with an OpenAI-style error body, no work done |
//! | `overloaded` | HTTP 429 with `Retry-After: 1` (also automatic when the queue is at `max_waiting`) |
//! | `delay:MS` | the response (or the stream's first byte) waits MS milliseconds |
//! | `stall:MS` | a stream pauses MS milliseconds halfway through its tokens |
//! | `midstream-error` | a stream sends an error event halfway through, after HTTP 200, and ends without `[DONE]` |
//! | `reset` | the connection is dropped without a complete response |
//! | `die` | the engine dies: this and every later request gets HTTP 500 until `POST /sim/revive` |

use std::time::Duration;

use crate::rng::Rng;

/// The request header that forces a fault.
pub const FAULT_HEADER: &str = "x-llmwatch-sim-fault";

/// One injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 500.
    Error,
    /// HTTP 429.
    Overloaded,
    /// Delay before the first byte.
    Delay(Duration),
    /// Pause mid-stream.
    Stall(Duration),
    /// Error event mid-stream after HTTP 200.
    MidStreamError,
    /// Connection dropped.
    Reset,
    /// Engine death until revived.
    Die,
}

impl Fault {
    /// Parses a header value such as `stall:500`.
    pub fn parse(text: &str) -> Result<Fault, String> {
        let millis = |v: &str| {
            v.parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| format!("invalid milliseconds in fault {text:?}"))
        };
        Ok(match text.split_once(':') {
            None => match text {
                "error" => Fault::Error,
                "overloaded" => Fault::Overloaded,
                "midstream-error" => Fault::MidStreamError,
                "reset" => Fault::Reset,
                "die" => Fault::Die,
                _ => return Err(format!("unknown fault {text:?}")),
            },
            Some(("delay", ms)) => Fault::Delay(millis(ms)?),
            Some(("stall", ms)) => Fault::Stall(millis(ms)?),
            Some(_) => return Err(format!("unknown fault {text:?}")),
        })
    }
}

/// Fault rates (each a probability per request, 0 to 1) and the overload threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRates {
    /// HTTP 500.
    pub error: f64,
    /// Mid-stream error event.
    pub midstream_error: f64,
    /// Mid-stream stall of `stall` length.
    pub stall: f64,
    /// First-byte delay of `delay` length.
    pub delay: f64,
    /// Connection reset.
    pub reset: f64,
    /// How long a stall lasts.
    pub stall_for: Duration,
    /// How long a delay lasts.
    pub delay_for: Duration,
    /// Requests waiting at which new ones get HTTP 429 (`None`: never).
    pub max_waiting: Option<usize>,
}

impl Default for FaultRates {
    fn default() -> Self {
        FaultRates {
            error: 0.0,
            midstream_error: 0.0,
            stall: 0.0,
            delay: 0.0,
            reset: 0.0,
            stall_for: Duration::from_secs(2),
            delay_for: Duration::from_secs(1),
            max_waiting: None,
        }
    }
}

/// Draws faults from a seeded generator, so a run with the same seed and the same request
/// order injects the same faults.
#[derive(Debug, Clone)]
pub struct FaultDice {
    rates: FaultRates,
    rng: Rng,
}

impl FaultDice {
    /// A generator with `rates`, seeded.
    pub fn new(rates: FaultRates, seed: u64) -> FaultDice {
        FaultDice {
            rates,
            rng: Rng::new(seed, 0),
        }
    }

    /// The rates in force.
    pub fn rates(&self) -> &FaultRates {
        &self.rates
    }

    /// Replaces the rates (a scenario step); the draw sequence continues.
    pub fn set_rates(&mut self, rates: FaultRates) {
        self.rates = rates;
    }

    /// The fault for the next request, if any. One draw per request, so the sequence of
    /// faults depends only on the seed and the request count.
    pub fn draw(&mut self) -> Option<Fault> {
        let u = self.rng.uniform();
        let r = &self.rates;
        let table = [
            (r.error, Fault::Error),
            (r.reset, Fault::Reset),
            (r.midstream_error, Fault::MidStreamError),
            (r.stall, Fault::Stall(r.stall_for)),
            (r.delay, Fault::Delay(r.delay_for)),
        ];
        let mut edge = 0.0;
        for (rate, fault) in table {
            edge += rate;
            if u < edge {
                return Some(fault);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_parse() {
        assert_eq!(Fault::parse("error"), Ok(Fault::Error));
        assert_eq!(
            Fault::parse("stall:250"),
            Ok(Fault::Stall(Duration::from_millis(250)))
        );
        assert_eq!(
            Fault::parse("delay:5"),
            Ok(Fault::Delay(Duration::from_millis(5)))
        );
        assert!(Fault::parse("stall:soon").is_err());
        assert!(Fault::parse("melt").is_err());
    }

    #[test]
    fn draws_follow_the_rates_and_the_seed() {
        let rates = FaultRates {
            error: 0.1,
            reset: 0.05,
            ..FaultRates::default()
        };
        let mut dice = FaultDice::new(rates.clone(), 42);
        let draws: Vec<Option<Fault>> = (0..20_000).map(|_| dice.draw()).collect();
        let errors = draws.iter().filter(|f| **f == Some(Fault::Error)).count();
        let resets = draws.iter().filter(|f| **f == Some(Fault::Reset)).count();
        assert!((1_800..2_200).contains(&errors), "{errors}");
        assert!((850..1_150).contains(&resets), "{resets}");
        let mut again = FaultDice::new(rates, 42);
        let replay: Vec<Option<Fault>> = (0..20_000).map(|_| again.draw()).collect();
        assert_eq!(draws, replay);
    }

    #[test]
    fn no_rates_no_faults() {
        let mut dice = FaultDice::new(FaultRates::default(), 1);
        assert!((0..1000).all(|_| dice.draw().is_none()));
    }
}
