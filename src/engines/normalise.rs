//! Evaluates the signal table against one scrape.
//!
//! Per signal the result is native (which series), derived (which formula) or missing (why).
//! Fan-out labels are folded per model: series are summed (or maxed) over every label other
//! than the engine's model label; tensor-parallel replicas (`tp_rank` other than `"0"`) are
//! dropped because they repeat rank 0; multiprocess `pid` duplicates keep their maximum.

use std::collections::BTreeMap;

use super::recipe::{Agg, Expr, How, OutcomePart, Sel};
use super::signals::{SIGNALS, Signal};
use super::{Engine, Index};
use crate::exposition::Sample;

/// A histogram with the engine's own bucket bounds (cumulative counts, `+Inf` last).
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// `(upper bound, cumulative count)`, ascending.
    pub buckets: Vec<(f64, f64)>,
    /// Sum of observations.
    pub sum: f64,
    /// Number of observations.
    pub count: f64,
}

/// A canonical value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Gauge or counter.
    Scalar(f64),
    /// Histogram.
    Histogram(Histogram),
}

/// One canonical series.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesValue {
    /// The served model (the engine's model label, or the caller's default).
    pub model: String,
    /// The canonical outcome, for `llm_requests_finished_total`.
    pub outcome: Option<&'static str>,
    /// The value.
    pub value: Value,
}

/// Where a signal's value came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// Exported by the engine; the series names actually read.
    Native(Vec<String>),
    /// Computed; the formula and the series actually read.
    Derived {
        /// The formula as text.
        formula: String,
        /// Series read.
        used: Vec<String>,
    },
    /// Not available; why.
    Missing(String),
}

impl Source {
    /// `native`, `derived` or `missing`.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Native(_) => "native",
            Source::Derived { .. } => "derived",
            Source::Missing(_) => "missing",
        }
    }
}

/// One canonical signal read from one scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The signal's table row.
    pub signal: &'static Signal,
    /// Native, derived or missing.
    pub source: Source,
    /// The table's caveat for this engine.
    pub note: &'static str,
    /// Values, one per model (and outcome).
    pub series: Vec<SeriesValue>,
}

/// Evaluates every signal in the table for `engine`. `default_model` labels series of
/// engines that carry no model label.
pub fn normalise(index: &Index<'_, '_>, engine: Engine, default_model: &str) -> Vec<Reading> {
    SIGNALS
        .iter()
        .map(|signal| {
            let mut eval = Eval {
                index,
                engine,
                default_model,
                used: Vec::new(),
            };
            let mapping = signal.mapping(engine);
            let (expr, derived) = match mapping.how {
                How::Native(expr) => (expr, false),
                How::Derived(expr) => (expr, true),
                How::Missing => {
                    return Reading {
                        signal,
                        source: Source::Missing(mapping.note.to_string()),
                        note: "",
                        series: Vec::new(),
                    };
                }
            };
            match eval.expr(&expr) {
                None => Reading {
                    signal,
                    source: Source::Missing(format!(
                        "not in this scrape (expected {})",
                        expr.describe()
                    )),
                    note: mapping.note,
                    series: Vec::new(),
                },
                Some(series) => Reading {
                    signal,
                    source: if derived {
                        Source::Derived {
                            formula: expr.describe(),
                            used: eval.used,
                        }
                    } else {
                        Source::Native(eval.used)
                    },
                    note: mapping.note,
                    series,
                },
            }
        })
        .collect()
}

/// Per-model scalar totals.
type Scalars = BTreeMap<String, f64>;

/// The model a sample belongs to: its model label, or `default`.
fn model_in<'x, 'a>(
    exp: &'x crate::exposition::Exposition<'a>,
    engine: Engine,
    default: &'x str,
    sample: &Sample<'a>,
) -> &'x str {
    engine
        .model_label()
        .and_then(|l| exp.label(sample, l))
        .unwrap_or(default)
}

/// Histograms by model, borrowing the model names. A histogram's buckets come one series at a
/// time, so the last model used is checked first: a lookup by name (and a new `String`) for
/// every bucket was most of normalising a 400-model scrape.
#[derive(Default)]
struct PerModel<'m> {
    models: Vec<(&'m str, Histogram)>,
    slot: std::collections::HashMap<&'m str, usize>,
    last: usize,
}

impl<'m> PerModel<'m> {
    fn get(&mut self, model: &'m str) -> &mut Histogram {
        let hit = self.models.get(self.last).is_some_and(|(m, _)| *m == model);
        if !hit {
            self.last = match self.slot.get(model) {
                Some(i) => *i,
                None => {
                    self.models.push((model, empty()));
                    self.slot.insert(model, self.models.len() - 1);
                    self.models.len() - 1
                }
            };
        }
        let last = self.last;
        &mut self.models[last].1
    }

    fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// By model name, as the series of a reading are ordered.
    fn into_sorted(mut self) -> impl Iterator<Item = (&'m str, Histogram)> {
        self.models.sort_by(|a, b| a.0.cmp(b.0));
        self.models.into_iter()
    }
}

struct Eval<'i, 'e, 'a> {
    index: &'i Index<'e, 'a>,
    engine: Engine,
    default_model: &'i str,
    used: Vec<String>,
}

impl<'e, 'a> Eval<'_, 'e, 'a> {
    fn expr(&mut self, expr: &Expr) -> Option<Vec<SeriesValue>> {
        match expr {
            Expr::Histogram(sel) => self.histogram(sel),
            Expr::Outcomes(parts) => self.outcomes(parts),
            scalar => {
                let values = self.scalar(scalar)?;
                Some(
                    values
                        .into_iter()
                        .map(|(model, v)| SeriesValue {
                            model,
                            outcome: None,
                            value: Value::Scalar(v),
                        })
                        .collect(),
                )
            }
        }
    }

    fn scalar(&mut self, expr: &Expr) -> Option<Scalars> {
        match expr {
            Expr::Series(sel) => self.select(sel),
            Expr::Sum(sels) => {
                let (head, tail) = sels.split_first()?;
                let mut total = self.select(head)?;
                for sel in tail {
                    for (model, v) in self.select(sel).unwrap_or_default() {
                        *total.entry(model).or_default() += v;
                    }
                }
                Some(total)
            }
            Expr::Diff(a, b) => {
                let mut total = self.select(a)?;
                let minus = self.select(b).unwrap_or_default();
                subtract(&mut total, &minus);
                Some(total)
            }
            Expr::Ratio(num, den) => {
                let num = self.scalar(num)?;
                let den = self.scalar(den)?;
                Some(
                    num.into_iter()
                        .filter_map(|(model, n)| {
                            let d = *den.get(&model)?;
                            (d > 0.0).then_some((model, n / d))
                        })
                        .collect(),
                )
            }
            Expr::Histogram(_) | Expr::Outcomes(_) => None,
        }
    }

    fn model_of<'s>(&'s self, sample: &'s Sample<'a>) -> &'s str {
        self.engine
            .model_label()
            .and_then(|l| self.index.exposition().label(sample, l))
            .unwrap_or(self.default_model)
    }

    /// Samples named `name` that pass the matchers and the tensor-parallel replica filter.
    fn matching<'s>(
        &'s self,
        name: &'s str,
        sel: &'s Sel,
    ) -> impl Iterator<Item = &'e Sample<'a>> + 's {
        let exp = self.index.exposition();
        self.index.samples(name).filter(move |s| {
            sel.matchers
                .iter()
                .all(|(k, v)| exp.label(s, k) == Some(*v))
                && exp.label(s, "tp_rank").is_none_or(|r| r == "0")
        })
    }

    /// The first of `sel.names` present, aggregated per model.
    fn select(&mut self, sel: &Sel) -> Option<Scalars> {
        self.select_keyed(sel, |_, _| Some(String::new()))
            .map(|m| m.into_iter().map(|((model, _), v)| (model, v)).collect())
    }

    /// Like [`Eval::select`] but also groups by a key taken from each sample (the outcome).
    fn select_keyed(
        &mut self,
        sel: &Sel,
        key: impl Fn(&Self, &Sample<'a>) -> Option<String>,
    ) -> Option<BTreeMap<(String, String), f64>> {
        for name in sel.names {
            let samples: Vec<&Sample<'a>> = self.matching(name, sel).collect();
            if samples.is_empty() {
                continue;
            }
            self.used.push(format!("{name}{}", sel.describe_matchers()));
            let deduped = self.dedupe_pid(samples);
            let mut out = BTreeMap::<(String, String), f64>::new();
            for (sample, value) in deduped {
                let Some(k) = key(self, sample) else { continue };
                let model = self.model_of(sample).to_string();
                let slot = out.entry((model, k)).or_insert(match sel.agg {
                    Agg::Sum => 0.0,
                    Agg::Max => f64::NEG_INFINITY,
                });
                *slot = match sel.agg {
                    Agg::Sum => *slot + value,
                    Agg::Max => slot.max(value),
                };
            }
            return Some(out);
        }
        None
    }

    /// Multiprocess exporters repeat a gauge once per process (`pid` label), stale ones
    /// included: keep the largest per label set without `pid`.
    fn dedupe_pid(&self, samples: Vec<&'e Sample<'a>>) -> Vec<(&'e Sample<'a>, f64)> {
        let exp = self.index.exposition();
        if samples.iter().all(|s| exp.label(s, "pid").is_none()) {
            return samples.into_iter().map(|s| (s, s.value)).collect();
        }
        let mut best = BTreeMap::<String, (&'e Sample<'a>, f64)>::new();
        for s in samples {
            let mut key: Vec<String> = exp
                .labels_of(s)
                .iter()
                .filter(|l| l.name != "pid")
                .map(|l| format!("{}={}", l.name, l.value))
                .collect();
            key.sort();
            let entry = best.entry(key.join(",")).or_insert((s, s.value));
            if s.value > entry.1 {
                *entry = (s, s.value);
            }
        }
        best.into_values().collect()
    }

    fn histogram(&mut self, sel: &Sel) -> Option<Vec<SeriesValue>> {
        for name in sel.names {
            let bucket_name = format!("{name}_bucket");
            let mut per_model = PerModel::default();
            let (exp, engine, default) = (self.index.exposition(), self.engine, self.default_model);
            for s in self.matching(&bucket_name, sel) {
                let Some(le) = exp.label(s, "le").and_then(|v| v.parse::<f64>().ok()) else {
                    continue;
                };
                let h = per_model.get(model_in(exp, engine, default, s));
                h.buckets.push((le, s.value));
            }
            if per_model.is_empty() {
                continue;
            }
            for (suffix, is_sum) in [("_sum", true), ("_count", false)] {
                let part = format!("{name}{suffix}");
                for s in self.matching(&part, sel) {
                    let h = per_model.get(model_in(exp, engine, default, s));
                    if is_sum {
                        h.sum += s.value;
                    } else {
                        h.count += s.value;
                    }
                }
            }
            let values = per_model
                .into_sorted()
                .map(|(model, mut h)| {
                    merge_buckets(&mut h.buckets);
                    SeriesValue {
                        model: model.to_string(),
                        outcome: None,
                        value: Value::Histogram(h),
                    }
                })
                .collect();
            self.used.push(format!("{name}{}", sel.describe_matchers()));
            return Some(values);
        }
        None
    }

    fn outcomes(&mut self, parts: &[OutcomePart]) -> Option<Vec<SeriesValue>> {
        let mut total = BTreeMap::<(String, &'static str), f64>::new();
        let mut found = false;
        for part in parts {
            let values: Vec<((String, &'static str), f64)> = match part {
                OutcomePart::Fixed { outcome, sel } => match self.select(sel) {
                    Some(v) => v.into_iter().map(|(m, v)| ((m, *outcome), v)).collect(),
                    None => continue,
                },
                OutcomePart::Remainder {
                    outcome,
                    total: all,
                    minus,
                } => {
                    let Some(mut all) = self.select(all) else {
                        continue;
                    };
                    subtract(&mut all, &self.select(minus).unwrap_or_default());
                    all.into_iter().map(|(m, v)| ((m, *outcome), v)).collect()
                }
                OutcomePart::ByLabel { sel, label, map } => {
                    let keyed = self.select_keyed(sel, |eval, s| {
                        let value = eval.index.exposition().label(s, label).unwrap_or("");
                        Some(value.to_string())
                    });
                    let Some(keyed) = keyed else { continue };
                    keyed
                        .into_iter()
                        .map(|((m, reason), v)| {
                            let outcome = map
                                .iter()
                                .find(|(wire, _)| *wire == reason)
                                .map_or("other", |(_, o)| *o);
                            ((m, outcome), v)
                        })
                        .collect()
                }
            };
            found = true;
            for (key, v) in values {
                *total.entry(key).or_default() += v;
            }
        }
        found.then(|| {
            total
                .into_iter()
                .map(|((model, outcome), v)| SeriesValue {
                    model,
                    outcome: Some(outcome),
                    value: Value::Scalar(v),
                })
                .collect()
        })
    }
}

fn empty() -> Histogram {
    Histogram {
        buckets: Vec::new(),
        sum: 0.0,
        count: 0.0,
    }
}

fn subtract(total: &mut Scalars, minus: &Scalars) {
    for (model, v) in total.iter_mut() {
        *v = (*v - minus.get(model).copied().unwrap_or(0.0)).max(0.0);
    }
}

/// Sorts buckets by bound and adds up equal bounds (series from several DP engines or
/// streaming modes share the engine's bucket set).
fn merge_buckets(buckets: &mut Vec<(f64, f64)>) {
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets.dedup_by(|next, kept| {
        if next.0 == kept.0 {
            kept.1 += next.1;
            true
        } else {
            false
        }
    });
}
