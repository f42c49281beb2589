//! Checks on each good scrape that protect the numbers computed from it: a counter that went
//! backwards while the engine did not restart, a counter that is negative or not a number, a
//! histogram whose buckets are not cumulative or lack `+Inf`, and llama.cpp throughput gauges
//! reset by another scraper. Each problem is counted and logged by the scraper and shown to
//! `doctor` through the targets API. A series whose own numbers are invalid (a histogram that
//! is not cumulative, a counter that is not a count) is left out of the scrape's readings, so
//! no quantile or rate is computed from it; the target's other series are kept. A counter
//! that fell without a restart is left out of that scrape and then continues from its last
//! good value.

use std::collections::HashMap;

use crate::engines::{Index, Reading, SignalKind, Value};

/// What is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A counter fell while other counters did not: not a restart.
    CounterBackwards,
    /// A histogram's bucket counts fall as `le` rises, or `+Inf` differs from `_count`.
    NonCumulativeHistogram,
    /// llama.cpp's throughput gauges read 0 although time was spent since our previous scrape:
    /// someone else's scrape reset their window.
    ScrapeWindowReset,
    /// A counter's value is negative, NaN or infinite.
    InvalidCounter,
}

impl ProblemKind {
    /// Every kind.
    pub const ALL: [ProblemKind; 4] = [
        ProblemKind::CounterBackwards,
        ProblemKind::NonCumulativeHistogram,
        ProblemKind::ScrapeWindowReset,
        ProblemKind::InvalidCounter,
    ];

    /// The `kind` label of the self-metric.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::CounterBackwards => "counter_backwards",
            ProblemKind::NonCumulativeHistogram => "non_cumulative_histogram",
            ProblemKind::ScrapeWindowReset => "scrape_window_reset",
            ProblemKind::InvalidCounter => "invalid_counter",
        }
    }
}

/// One problem in one scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// What.
    pub kind: ProblemKind,
    /// The canonical signal or the engine's series it concerns.
    pub series: String,
    /// The numbers that show it.
    pub detail: String,
}

/// A problem as seen over a target's scrapes.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Seen {
    /// What.
    pub kind: ProblemKind,
    /// The series concerned.
    pub series: String,
    /// The numbers of the latest occurrence.
    pub detail: String,
    /// Scrapes that showed it.
    pub count: u64,
    /// Unix seconds of the first and the latest.
    pub first_unix: f64,
    pub last_unix: f64,
}

/// Distinct problems kept per target; later distinct ones are counted in the self-metric only.
const MAX_SEEN: usize = 32;

/// Adds a scrape's `problems` at `at` to `seen`.
pub fn merge(seen: &mut Vec<Seen>, problems: &[Problem], at: f64) {
    for p in problems {
        if let Some(s) = seen
            .iter_mut()
            .find(|s| s.kind == p.kind && s.series == p.series)
        {
            s.count += 1;
            s.last_unix = at;
            s.detail.clone_from(&p.detail);
        } else if seen.len() < MAX_SEEN {
            seen.push(Seen {
                kind: p.kind,
                series: p.series.clone(),
                detail: p.detail.clone(),
                count: 1,
                first_unix: at,
                last_unix: at,
            });
        }
    }
}

/// A counter's identity across scrapes.
type CounterKey = (&'static str, String, Option<&'static str>);

/// llama.cpp's windowed throughput gauges, each beside the counter of time its window spends.
const LLAMACPP_WINDOWS: [(&str, &str); 2] = [
    (
        "llamacpp:prompt_tokens_seconds",
        "llamacpp:prompt_seconds_total",
    ),
    (
        "llamacpp:predicted_tokens_seconds",
        "llamacpp:tokens_predicted_seconds_total",
    ),
];

/// What one target's previous scrape left to compare with.
#[derive(Debug, Default)]
pub struct Checker {
    counters: HashMap<CounterKey, f64>,
    /// What to add to a counter that fell without a restart, so it goes on from its last
    /// good value.
    shifts: HashMap<CounterKey, f64>,
    llamacpp_seconds: [Option<f64>; 2],
}

impl Checker {
    /// The problems of a scrape whose canonical readings are `readings` (from which series
    /// with invalid numbers are removed); `index` holds its raw series.
    pub fn check(&mut self, readings: &mut [Reading], index: &Index<'_, '_>) -> Vec<Problem> {
        let mut out = exclude_invalid(readings);
        out.extend(self.counters(readings));
        out.extend(self.llamacpp_windows(index));
        out
    }

    /// Compares each counter with the previous scrape. One that fell while others held (not
    /// a restart) is left out of this scrape, and from then on its values are shifted up by
    /// the fall, so the series goes on from its last good value and no rate reads the fall
    /// as a reset. A restart (nothing held) clears every shift.
    fn counters(&mut self, readings: &mut [Reading]) -> Vec<Problem> {
        let mut now = HashMap::with_capacity(self.counters.len());
        for (key, v) in counter_values(readings) {
            let shifted = v + self.shifts.get(&key).copied().unwrap_or(0.0);
            now.insert(key, shifted);
        }
        let previous = std::mem::replace(&mut self.counters, now);
        let mut fell = Vec::new();
        let mut held = 0;
        for (key, before) in previous.iter().filter(|(_, v)| **v > 0.0) {
            match self.counters.get(key) {
                Some(after) if after < before => fell.push((key.clone(), *before, *after)),
                Some(_) => held += 1,
                None => {}
            }
        }
        // A restart resets every counter; one falling while others hold is a broken exporter.
        if held == 0 {
            if !fell.is_empty() && !self.shifts.is_empty() {
                self.shifts.clear();
                self.counters = counter_values(readings).collect();
            }
            return Vec::new();
        }
        fell.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, before, after) in &fell {
            *self.shifts.entry(key.clone()).or_default() += before - after;
            self.counters.insert(key.clone(), *before);
        }
        self.shift_and_leave_out(readings, &fell);
        fell.into_iter()
            .map(|((signal, model, outcome), before, after)| Problem {
                kind: ProblemKind::CounterBackwards,
                series: signal.to_string(),
                detail: format!(
                    "model {model}{}: {before} then {after}, while {held} other counters did not fall; left out, later values continue from {before}",
                    outcome.map(|o| format!(", outcome {o}")).unwrap_or_default()
                ),
            })
            .collect()
    }

    /// Removes the series that fell from `readings` and shifts the others with a shift.
    fn shift_and_leave_out(&self, readings: &mut [Reading], fell: &[(CounterKey, f64, f64)]) {
        for reading in readings
            .iter_mut()
            .filter(|r| r.signal.kind == SignalKind::Counter)
        {
            let name = reading.signal.name;
            let before = reading.series.len();
            reading.series.retain_mut(|s| {
                let key = (name, s.model.clone(), s.outcome);
                if fell.iter().any(|(k, _, _)| *k == key) {
                    return false;
                }
                if let (Value::Scalar(v), Some(shift)) = (&mut s.value, self.shifts.get(&key)) {
                    *v += shift;
                }
                true
            });
            if reading.series.len() < before {
                reading.note = LEFT_OUT;
            }
        }
    }

    fn llamacpp_windows(&mut self, index: &Index<'_, '_>) -> Vec<Problem> {
        let value = |name: &str| index.samples(name).next().map(|s| s.value);
        let mut out = Vec::new();
        for (i, (gauge, seconds)) in LLAMACPP_WINDOWS.iter().enumerate() {
            let (Some(reading), Some(spent)) = (value(gauge), value(seconds)) else {
                self.llamacpp_seconds[i] = None;
                continue;
            };
            let before = self.llamacpp_seconds[i].replace(spent);
            // Six significant digits: ignore movements the formatting can produce alone.
            if let Some(before) = before
                && spent - before > 1e-5 * spent.abs().max(1.0)
                && reading == 0.0
            {
                out.push(Problem {
                    kind: ProblemKind::ScrapeWindowReset,
                    series: (*gauge).to_string(),
                    detail: format!(
                        "reads 0 although {seconds} rose by {:.3} s since the previous scrape",
                        spent - before
                    ),
                });
            }
        }
        out
    }
}

/// Every counter series of `readings` with its value.
fn counter_values(readings: &[Reading]) -> impl Iterator<Item = (CounterKey, f64)> + '_ {
    readings
        .iter()
        .filter(|r| r.signal.kind == SignalKind::Counter)
        .flat_map(|r| {
            r.series.iter().filter_map(move |s| match s.value {
                Value::Scalar(v) => Some(((r.signal.name, s.model.clone(), s.outcome), v)),
                Value::Histogram(_) => None,
            })
        })
}

/// Removes from `readings` every series whose own numbers are invalid, and says why: a
/// histogram whose buckets fall as `le` rises, whose `+Inf` bucket is missing or differs from
/// its count; a counter that is negative, NaN or infinite. Needs no earlier scrape, so
/// `scrape` runs it on a single body.
pub fn exclude_invalid(readings: &mut [Reading]) -> Vec<Problem> {
    let mut out = Vec::new();
    for reading in readings.iter_mut() {
        let found = out.len();
        let name = reading.signal.name;
        let counter = reading.signal.kind == SignalKind::Counter;
        reading.series.retain(|s| {
            let found = match &s.value {
                Value::Histogram(h) => histogram_problem(h).map(|detail| {
                    (
                        ProblemKind::NonCumulativeHistogram,
                        format!("model {}: {detail}", s.model),
                    )
                }),
                Value::Scalar(v) if counter && !(v.is_finite() && *v >= 0.0) => Some((
                    ProblemKind::InvalidCounter,
                    format!(
                        "model {}{}: {v} is not a count",
                        s.model,
                        s.outcome
                            .map(|o| format!(", outcome {o}"))
                            .unwrap_or_default()
                    ),
                )),
                Value::Scalar(_) => None,
            };
            let Some((kind, detail)) = found else {
                return true;
            };
            out.push(Problem {
                kind,
                series: name.to_string(),
                detail: format!("{detail}; left out"),
            });
            false
        });
        if out.len() > found {
            reading.note = LEFT_OUT;
        }
    }
    out
}

/// The note of a reading some of whose series were left out.
pub const LEFT_OUT: &str = "series with invalid numbers left out: see the warnings";

/// What is wrong with a histogram's buckets, if anything.
fn histogram_problem(h: &crate::engines::Histogram) -> Option<String> {
    let tolerance = |v: f64| 1e-9 * v.abs().max(1.0);
    if let Some(w) = h
        .buckets
        .windows(2)
        .find(|w| w[1].1 + tolerance(w[0].1) < w[0].1)
    {
        return Some(format!(
            "bucket le={} holds {} but le={} holds {}",
            w[0].0, w[0].1, w[1].0, w[1].1
        ));
    }
    match h.buckets.last() {
        Some((le, inf)) if le.is_infinite() && (inf - h.count).abs() > tolerance(*inf) => {
            Some(format!("+Inf bucket {inf} but count {}", h.count))
        }
        Some((le, _)) if !le.is_infinite() => Some(format!("no +Inf bucket (last le={le})")),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
