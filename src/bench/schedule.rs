//! When requests are sent. Open loop: a pacer task waits for each request's intended send
//! time on a precise timer (the async runtime's own timer wakes on millisecond ticks) and
//! spawns it on the same runtime; the gaps are constant, Poisson or gamma (bursty).
//! Latency is measured from that intended time, so a server that stalls the client cannot
//! hide the wait (coordinated omission). Closed loop: a fixed number of workers, each sending
//! its next request when the previous ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::rng::Rng;

/// How gaps between open-loop arrivals are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arrival {
    /// Exactly 1/rate apart.
    Constant,
    /// Exponential gaps (a Poisson process).
    Poisson,
    /// Gamma gaps with this coefficient of variation: above 1 is burstier than Poisson.
    Gamma(f64),
}

impl Arrival {
    /// Parses `constant`, `poisson` or `gamma:CV`.
    pub fn parse(text: &str) -> Result<Arrival, String> {
        match text.split_once(':') {
            None if text == "constant" => Ok(Arrival::Constant),
            None if text == "poisson" => Ok(Arrival::Poisson),
            Some(("gamma", cv)) => match cv.parse::<f64>() {
                Ok(cv) if cv > 0.0 && cv.is_finite() => Ok(Arrival::Gamma(cv)),
                _ => Err(format!(
                    "invalid burstiness in {text:?}: gamma:CV with CV above 0"
                )),
            },
            _ => Err(format!(
                "invalid arrival process {text:?}: use constant, poisson or gamma:CV"
            )),
        }
    }

    /// The next gap in seconds for a mean rate of `rate` per second.
    pub fn gap(self, rate: f64, rng: &mut Rng) -> f64 {
        let mean = 1.0 / rate;
        match self {
            Arrival::Constant => mean,
            Arrival::Poisson => -(1.0 - rng.uniform()).ln() * mean,
            Arrival::Gamma(cv) => {
                let shape = 1.0 / (cv * cv);
                gamma(shape, rng) * mean / shape
            }
        }
    }
}

/// A gamma(shape, 1) draw (Marsaglia and Tsang; shapes below 1 boosted).
fn gamma(shape: f64, rng: &mut Rng) -> f64 {
    if shape < 1.0 {
        let u = rng.uniform().max(f64::MIN_POSITIVE);
        return gamma(shape + 1.0, rng) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = rng.normal();
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u = rng.uniform();
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// One request the pacer releases: its number and intended send time.
#[derive(Debug, Clone, Copy)]
pub struct Release {
    /// 0, 1, 2, …
    pub index: u64,
    /// When it should be sent.
    pub intended: Instant,
}

/// Bounds of an open-loop run.
#[derive(Debug, Clone)]
pub struct OpenLoop {
    /// Mean requests per second.
    pub rate: f64,
    /// Gap distribution.
    pub arrival: Arrival,
    /// Stop releasing after this long.
    pub duration: Option<Duration>,
    /// Stop after this many requests.
    pub requests: Option<u64>,
    /// Seed for the gaps.
    pub seed: u64,
    /// Explicit send times (seconds from the start, ascending) replacing the gaps: a trace.
    pub times: Option<Arc<Vec<f64>>>,
}

/// The releases of an open-loop plan, in order, with their intended times.
pub struct Schedule {
    plan: OpenLoop,
    start: Instant,
    rng: Rng,
    offset: f64,
    index: u64,
}

impl Schedule {
    /// The plan's releases counted from `start`.
    pub fn new(plan: OpenLoop, start: Instant) -> Schedule {
        let rng = Rng::new(plan.seed, 7);
        Schedule {
            plan,
            start,
            rng,
            offset: 0.0,
            index: 0,
        }
    }
}

impl Iterator for Schedule {
    type Item = Release;

    fn next(&mut self) -> Option<Release> {
        let index = self.index;
        if self.plan.requests.is_some_and(|n| index >= n) {
            return None;
        }
        if let Some(times) = &self.plan.times {
            self.offset = *times.get(index as usize)?;
        }
        let at = Duration::from_secs_f64(self.offset);
        if self.plan.duration.is_some_and(|d| at >= d) {
            return None;
        }
        self.index += 1;
        self.offset += self.plan.arrival.gap(self.plan.rate, &mut self.rng);
        Some(Release {
            index,
            intended: self.start + at,
        })
    }
}

/// Calls `release` with each of `releases` at its intended time, on this task, until they run
/// out or `stop` is set. Releases already due go out at once, so a late wake-up catches up
/// instead of drifting.
pub async fn pace(
    releases: impl Iterator<Item = Release>,
    stop: &AtomicBool,
    mut release: impl FnMut(Release),
) -> std::io::Result<()> {
    let timer = crate::clock::PreciseTimer::new()?;
    for next in releases {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        timer.sleep_until(next.intended).await?;
        release(next);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_and_cv(arrival: Arrival) -> (f64, f64) {
        let mut rng = Rng::new(3, 1);
        let gaps: Vec<f64> = (0..50_000).map(|_| arrival.gap(10.0, &mut rng)).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        (mean, var.sqrt() / mean)
    }

    #[test]
    fn gaps_have_the_rate_and_burstiness_asked_for() {
        let (mean, cv) = mean_and_cv(Arrival::Constant);
        assert!((mean - 0.1).abs() < 1e-12 && cv < 1e-9);
        let (mean, cv) = mean_and_cv(Arrival::Poisson);
        assert!(
            (mean - 0.1).abs() < 0.003 && (cv - 1.0).abs() < 0.03,
            "{mean} {cv}"
        );
        for want in [0.5, 2.0, 4.0] {
            let (mean, cv) = mean_and_cv(Arrival::Gamma(want));
            assert!((mean - 0.1).abs() < 0.006, "{want}: mean {mean}");
            assert!((cv - want).abs() < want * 0.08, "{want}: cv {cv}");
        }
    }

    #[test]
    fn arrival_names_parse() {
        assert_eq!(Arrival::parse("poisson"), Ok(Arrival::Poisson));
        assert_eq!(Arrival::parse("gamma:2.5"), Ok(Arrival::Gamma(2.5)));
        assert!(Arrival::parse("gamma:0").is_err());
        assert!(Arrival::parse("bursty").is_err());
    }

    fn plan(requests: u64) -> OpenLoop {
        OpenLoop {
            rate: 200.0,
            arrival: Arrival::Constant,
            duration: None,
            requests: Some(requests),
            seed: 1,
            times: None,
        }
    }

    #[tokio::test]
    async fn the_pacer_releases_on_time_and_stops_at_its_bound() {
        let start = Instant::now();
        let mut seen = Vec::new();
        pace(
            Schedule::new(plan(40), start),
            &AtomicBool::new(false),
            |r| {
                assert!(Instant::now() >= r.intended);
                seen.push(r);
            },
        )
        .await
        .unwrap();
        assert_eq!(seen.len(), 40);
        for (k, release) in seen.iter().enumerate() {
            assert_eq!(release.index, k as u64);
            let want = start + Duration::from_secs_f64(k as f64 / 200.0);
            assert_eq!(release.intended, want);
        }
    }

    #[test]
    fn a_schedule_ends_at_its_duration_or_its_trace() {
        let start = Instant::now();
        let timed = OpenLoop {
            requests: None,
            duration: Some(Duration::from_millis(100)),
            ..plan(0)
        };
        assert_eq!(Schedule::new(timed, start).count(), 20);
        let traced = OpenLoop {
            requests: None,
            times: Some(Arc::new(vec![0.0, 0.25, 0.5])),
            ..plan(0)
        };
        let at: Vec<Duration> = Schedule::new(traced, start)
            .map(|r| r.intended - start)
            .collect();
        assert_eq!(at, [0.0, 0.25, 0.5].map(Duration::from_secs_f64));
    }
}
