//! Checks on each good scrape that protect the numbers computed from it: a counter that went
//! backwards while the engine did not restart, a histogram whose buckets are not cumulative,
//! and llama.cpp throughput gauges reset by another scraper. Each problem is counted and
//! logged by the scraper and shown to `doctor` through the targets API.

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
}

impl ProblemKind {
    /// Every kind.
    pub const ALL: [ProblemKind; 3] = [
        ProblemKind::CounterBackwards,
        ProblemKind::NonCumulativeHistogram,
        ProblemKind::ScrapeWindowReset,
    ];

    /// The `kind` label of the self-metric.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::CounterBackwards => "counter_backwards",
            ProblemKind::NonCumulativeHistogram => "non_cumulative_histogram",
            ProblemKind::ScrapeWindowReset => "scrape_window_reset",
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
    llamacpp_seconds: [Option<f64>; 2],
}

impl Checker {
    /// The problems of a scrape whose canonical readings are `readings`; `index` holds its
    /// raw series.
    pub fn check(&mut self, readings: &[Reading], index: &Index<'_, '_>) -> Vec<Problem> {
        let mut out = self.counters(readings);
        out.extend(histograms(readings));
        out.extend(self.llamacpp_windows(index));
        out
    }

    fn counters(&mut self, readings: &[Reading]) -> Vec<Problem> {
        let mut now = HashMap::with_capacity(self.counters.len());
        for reading in readings
            .iter()
            .filter(|r| r.signal.kind == SignalKind::Counter)
        {
            for s in &reading.series {
                if let Value::Scalar(v) = s.value {
                    now.insert((reading.signal.name, s.model.clone(), s.outcome), v);
                }
            }
        }
        let previous = std::mem::replace(&mut self.counters, now);
        let mut fell = Vec::new();
        let mut held = 0;
        for (key, before) in previous.iter().filter(|(_, v)| **v > 0.0) {
            match self.counters.get(key) {
                Some(after) if after < before => fell.push((key, *before, *after)),
                Some(_) => held += 1,
                None => {}
            }
        }
        // A restart resets every counter; one falling while others hold is a broken exporter.
        if held == 0 {
            return Vec::new();
        }
        fell.sort_by(|a, b| a.0.cmp(b.0));
        fell.into_iter()
            .map(|((signal, model, outcome), before, after)| Problem {
                kind: ProblemKind::CounterBackwards,
                series: (*signal).to_string(),
                detail: format!(
                    "model {model}{}: {before} then {after}, while {held} other counters did not fall",
                    outcome.map(|o| format!(", outcome {o}")).unwrap_or_default()
                ),
            })
            .collect()
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

/// Histograms whose buckets fall as `le` rises or whose `+Inf` bucket is not the count.
fn histograms(readings: &[Reading]) -> Vec<Problem> {
    let mut out = Vec::new();
    for reading in readings {
        for s in &reading.series {
            let Value::Histogram(h) = &s.value else {
                continue;
            };
            let tolerance = |v: f64| 1e-9 * v.abs().max(1.0);
            let falls = h
                .buckets
                .windows(2)
                .find(|w| w[1].1 + tolerance(w[0].1) < w[0].1);
            let detail = if let Some(w) = falls {
                format!(
                    "model {}: bucket le={} holds {} but le={} holds {}",
                    s.model, w[0].0, w[0].1, w[1].0, w[1].1
                )
            } else {
                match h.buckets.last() {
                    Some((le, inf))
                        if le.is_infinite() && (inf - h.count).abs() > tolerance(*inf) =>
                    {
                        format!("model {}: +Inf bucket {inf} but count {}", s.model, h.count)
                    }
                    _ => continue,
                }
            };
            out.push(Problem {
                kind: ProblemKind::NonCumulativeHistogram,
                series: reading.signal.name.to_string(),
                detail,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests;
