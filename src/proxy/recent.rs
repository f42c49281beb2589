//! What the proxy saw recently, for `up`'s windowed views: its running totals (client time to
//! first content per model, requests per model and outcome) copied every few seconds into a
//! ring that reaches back an hour. A window's value is then the difference of two copies.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::client_metrics::KeyBuild;

/// Sum and count of time to first content per model label.
pub type Totals = HashMap<String, (f64, u64), KeyBuild>;

/// Requests per model label, by outcome (a short list: the outcomes are a fixed
/// vocabulary). Keyed by the model alone, so that counting a request looks its model up
/// without a key to allocate.
pub type OutcomeTotals = HashMap<String, Vec<(&'static str, u64)>, KeyBuild>;

/// The running totals at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Client time to first content.
    pub ttft: Totals,
    /// Requests by outcome.
    pub outcomes: OutcomeTotals,
}

/// How far back copies are kept: the dashboard's longest window.
const SPAN: Duration = Duration::from_secs(3600);

/// The ring of copies, oldest first.
#[derive(Debug, Default)]
pub struct Recent {
    ring: Mutex<VecDeque<(Instant, Snapshot)>>,
}

/// One outcome's requests per second for a model: over the window, and at each step.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OutcomeRate {
    /// The outcome label.
    pub outcome: &'static str,
    /// Per second over the whole window.
    pub now: Option<f64>,
    /// Per second over the step before each time asked for.
    pub values: Vec<Option<f64>>,
}

impl Recent {
    fn ring(&self) -> std::sync::MutexGuard<'_, VecDeque<(Instant, Snapshot)>> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `snapshot`, taken at `now`, and forgets copies older than an hour.
    pub fn push(&self, now: Instant, snapshot: Snapshot) {
        let mut ring = self.ring();
        ring.push_back((now, snapshot));
        while ring
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > SPAN)
        {
            ring.pop_front();
        }
    }

    /// Time to first content per model over about the last `window`: `current` less the
    /// oldest copy inside the window.
    pub fn ttft_over(&self, current: Totals, window: Duration) -> Totals {
        let ring = self.ring();
        let now = Instant::now();
        let base = ring
            .iter()
            .find(|(at, _)| now.duration_since(*at) <= window)
            .map(|(_, s)| &s.ttft);
        current
            .into_iter()
            .map(|(model, (sum, count))| {
                let (sum0, count0) = base
                    .and_then(|b| b.get(&model))
                    .copied()
                    .unwrap_or_default();
                (model, (sum - sum0, count.saturating_sub(count0)))
            })
            .collect()
    }

    /// `model`'s requests per second by outcome: over `window` seconds, and over the `step`
    /// seconds before each of `times` (Unix seconds; `now_unix` is now), from the copies and
    /// `current`. Only outcomes seen in the window.
    pub fn outcome_rates(
        &self,
        current: &OutcomeTotals,
        model: &str,
        (times, step, window): (&[f64], f64, f64),
        now_unix: f64,
    ) -> Vec<OutcomeRate> {
        let now = Instant::now();
        let ring = self.ring();
        // (Unix time, totals) oldest first, ending with the current totals.
        let copies: Vec<(f64, &OutcomeTotals)> = ring
            .iter()
            .map(|(at, s)| {
                (
                    now_unix - now.duration_since(*at).as_secs_f64(),
                    &s.outcomes,
                )
            })
            .chain(std::iter::once((now_unix, current)))
            .collect();
        let mut outcomes: Vec<&'static str> = (current.get(model).into_iter().flatten())
            .map(|(outcome, _)| *outcome)
            .collect();
        outcomes.sort_unstable();
        let count = |copy: &OutcomeTotals, outcome| {
            let mut by_outcome = copy.get(model).into_iter().flatten();
            by_outcome
                .find(|(o, _)| *o == outcome)
                .map_or(0.0, |(_, n)| *n as f64)
        };
        // The per-second rate between the newest copies at or before `from` and `to`.
        let rate = |outcome, from: f64, to: f64| {
            let at = |t: f64| copies.iter().rev().find(|(c, _)| *c <= t + 1e-9);
            let ((t0, a), (t1, b)) = (at(from.max(copies[0].0))?, at(to)?);
            (t1 > t0).then(|| (count(b, outcome) - count(a, outcome)).max(0.0) / (t1 - t0))
        };
        outcomes
            .into_iter()
            .map(|outcome| OutcomeRate {
                outcome,
                now: rate(outcome, now_unix - window, now_unix),
                values: times.iter().map(|t| rate(outcome, t - step, *t)).collect(),
            })
            .filter(|r| r.now.is_some_and(|v| v > 0.0))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcomes(ok: u64, limited: u64) -> OutcomeTotals {
        [
            (
                "m".to_string(),
                vec![("completed", ok), ("rate_limited", limited)],
            ),
            ("other".to_string(), vec![("timeout", 9)]),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn outcome_rates_come_from_the_difference_of_two_copies() {
        let recent = Recent::default();
        let now = Instant::now();
        // Copies 20 s and 10 s ago; the current totals now.
        for (ago, ok, limited) in [(20, 0, 0), (10, 10, 0)] {
            let at = now.checked_sub(Duration::from_secs(ago)).unwrap();
            recent.push(
                at,
                Snapshot {
                    ttft: Totals::default(),
                    outcomes: outcomes(ok, limited),
                },
            );
        }
        let current = outcomes(30, 5);
        let unix = 1000.0;
        let rates = recent.outcome_rates(&current, "m", (&[990.0, 1000.0], 10.0, 20.0), unix);
        let by: HashMap<&str, &OutcomeRate> = rates.iter().map(|r| (r.outcome, r)).collect();
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 0.01);
        assert!(close(by["completed"].now, 1.5), "{rates:?}");
        assert!(close(by["completed"].values[0], 1.0), "{rates:?}");
        assert!(close(by["completed"].values[1], 2.0), "{rates:?}");
        assert!(close(by["rate_limited"].values[1], 0.5), "{rates:?}");
        assert!(
            !by.contains_key("timeout"),
            "another model's outcome: {rates:?}"
        );
        // Nothing through the proxy for this model: no lines.
        assert!(
            recent
                .outcome_rates(&current, "nobody", (&[1000.0], 10.0, 20.0), unix)
                .is_empty()
        );
    }
}
