//! Evaluating a panel's lines over a target's history: the current value over the window, and
//! a fixed number of points for a sparkline or chart, each over its own step. Reads
//! `collect::history`'s primitives (rates across counter resets, quantiles with their bounds)
//! and nothing else.

use crate::catalog::panels::{Measure, Outcomes};
use crate::collect::history::{self, Part, Point, Quantile, SeriesKey};
use crate::collect::rollup::Sums;

/// A value of a line: a number, or a quantile that may only be a bound.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Reading {
    /// A quantile (a number, or a bound).
    Quantile(Quantile),
    /// A rate, ratio or gauge.
    Number(f64),
}

impl Reading {
    /// A number to plot: the value, or the bound where only a bound is known.
    pub fn plotted(self) -> f64 {
        match self {
            Reading::Number(v)
            | Reading::Quantile(Quantile::Value(v))
            | Reading::Quantile(Quantile::AtMost { at_most: v })
            | Reading::Quantile(Quantile::Above { above: v }) => v,
        }
    }
}

/// The keys of `signal` for `model` in `point`, restricted to `outcomes`.
fn keys(
    point: &Point,
    signal: &str,
    model: &str,
    part: Part,
    outcomes: Outcomes,
) -> Vec<SeriesKey> {
    point
        .layout()
        .keys()
        .iter()
        .filter(|k| {
            k.signal == signal && k.model == model && k.part == part && outcomes.admits(k.outcome)
        })
        .cloned()
        .collect()
}

/// The summed rate of `keys` over `points`; `None` when none has two points there.
fn rate(points: &[&Point], keys: &[SeriesKey]) -> Option<f64> {
    let rates: Vec<f64> = keys
        .iter()
        .filter_map(|k| history::rate(points, k))
        .collect();
    (!rates.is_empty()).then(|| rates.iter().sum())
}

/// A measure for one model with the series it reads looked up once, in a reference point (the
/// newest): evaluating it over each step of a chart is then lookups by key only.
pub struct Plan {
    measure: Measure,
    keys: Vec<SeriesKey>,
    part: Vec<SeriesKey>,
}

impl Plan {
    /// The plan of `measure` for `model`, its series as `reference` has them.
    pub fn new(measure: Measure, reference: &Point, model: &str) -> Plan {
        let scalar = |outcomes| keys(reference, measure.signal(), model, Part::Scalar, outcomes);
        let (keys, part) = match measure {
            Measure::Rate(_, outcomes) => (scalar(outcomes), Vec::new()),
            Measure::Ratio(_, part, whole) => (scalar(whole), scalar(part)),
            Measure::Gauge(_) | Measure::RateByOutcome(_) => (scalar(Outcomes::All), Vec::new()),
            Measure::Quantile(signal, _) => {
                let count = crate::engines::signal(signal).map(|s| SeriesKey {
                    signal: s.name,
                    model: model.to_string(),
                    outcome: None,
                    part: Part::Count,
                });
                (count.into_iter().collect(), Vec::new())
            }
        };
        Plan {
            measure,
            keys,
            part,
        }
    }

    /// The measure over `points` (oldest first).
    pub fn evaluate(&self, points: &[&Point]) -> Option<Reading> {
        match self.measure {
            Measure::Rate(..) | Measure::RateByOutcome(_) => {
                rate(points, &self.keys).map(Reading::Number)
            }
            Measure::Ratio(..) => {
                let whole = rate(points, &self.keys)?;
                // No failed series yet is no failure, once something finished.
                let part = rate(points, &self.part).unwrap_or(0.0);
                (whole > 0.0).then(|| Reading::Number(part / whole))
            }
            Measure::Gauge(_) => {
                let last = points.last()?;
                let values = self.keys.iter().filter_map(|k| last.get(k));
                self.measure
                    .aggregation()
                    .combine(values)
                    .map(Reading::Number)
            }
            Measure::Quantile(_, q) => {
                history::quantile(points, self.keys.first()?, q).map(Reading::Quantile)
            }
        }
    }
}

/// The measure over a rollup's sums (the overview's path).
pub fn from_sums(measure: Measure, sums: &Sums) -> Option<Reading> {
    let (main, part) = measure.sources();
    match measure {
        Measure::Rate(..) | Measure::RateByOutcome(_) => sums.rate(main).map(Reading::Number),
        Measure::Ratio(..) => {
            let whole = sums.increase(main)?;
            // No failed series yet is no failure, once something finished.
            let part = part.and_then(|p| sums.increase(p)).unwrap_or(0.0);
            (whole > 0.0).then(|| Reading::Number(part / whole))
        }
        Measure::Gauge(_) => sums.gauge(main).map(Reading::Number),
        Measure::Quantile(_, q) => sums.quantile(main, q).map(Reading::Quantile),
    }
}

/// The measure over `points` (a window's points, oldest first) for `model`.
pub fn evaluate(measure: Measure, points: &[&Point], model: &str) -> Option<Reading> {
    Plan::new(measure, points.last()?, model).evaluate(points)
}

/// Every canonical outcome, as one-element lists a rate can be restricted to.
static OUTCOME_LIST: [&str; 8] = crate::engines::OUTCOMES;

/// The outcomes `signal` has for `model` in the newest point, in the table's order, each as
/// a filter.
pub fn outcomes(points: &[&Point], signal: &str, model: &str) -> Vec<Outcomes> {
    let Some(last) = points.last() else {
        return Vec::new();
    };
    OUTCOME_LIST
        .iter()
        .filter(|o| {
            last.layout()
                .keys()
                .iter()
                .any(|k| k.signal == signal && k.model == model && k.outcome == Some(**o))
        })
        .map(|o| Outcomes::Only(std::slice::from_ref(o)))
        .collect()
}

/// The models in the newest point, sorted.
pub fn models(points: &[&Point]) -> Vec<String> {
    let Some(last) = points.last() else {
        return Vec::new();
    };
    let mut models: Vec<String> = last
        .layout()
        .keys()
        .iter()
        .map(|k| k.model.clone())
        .collect();
    models.sort_unstable();
    models.dedup();
    models
}

/// `steps` evaluation times ending at `now`, `span` apart, oldest first.
pub fn grid(now: f64, window: f64, steps: usize) -> (Vec<f64>, f64) {
    let steps = steps.max(1);
    let span = window / steps as f64;
    let times = (0..steps)
        .map(|i| now - window + span * (i + 1) as f64)
        .collect();
    (times, span)
}

/// The measure at each grid time, over the points in the `lookback` before it (a step, or
/// two scrape intervals when that is longer, so every step has a rate).
pub fn series(
    measure: Measure,
    points: &[&Point],
    model: &str,
    times: &[f64],
    lookback: f64,
) -> Vec<Option<f64>> {
    let Some(newest) = points.last() else {
        return vec![None; times.len()];
    };
    let plan = Plan::new(measure, newest, model);
    times
        .iter()
        .map(|&t| {
            // From one point before the step, so a rate spans all of it.
            let first = points.partition_point(|p| p.at <= t - lookback);
            let end = points.partition_point(|p| p.at <= t);
            let slice = points.get(first.saturating_sub(1)..end)?;
            plan.evaluate(slice).map(Reading::plotted)
        })
        .collect()
}
