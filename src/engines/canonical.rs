//! Writes canonical `llm_*` series of one or more scraped engines as Prometheus text 0.0.4:
//! `llm_engine_info` first, then each signal in table order with every target's series under
//! one `# HELP`/`# TYPE` header. Labels: `engine`, `model`, `instance` (when scraping many),
//! `outcome` (finished requests), then the target's static labels.

use std::collections::BTreeMap;

use super::{Engine, Histogram, Reading, SIGNALS, SignalKind, Value};
use crate::exposition::write::{write_series, write_value};
use crate::exposition::{write_family_header, write_sample};

/// One scraped engine to write.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// The `instance` label; none for a single one-shot scrape.
    pub instance: Option<&'a str>,
    /// Static labels.
    pub labels: &'a BTreeMap<String, String>,
    /// The engine.
    pub engine: Engine,
    /// Its version.
    pub version: &'a str,
    /// Its canonical readings.
    pub readings: &'a [Reading],
}

impl<'a> View<'a> {
    fn base_labels(&self, model: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
        let mut labels = vec![("engine", self.engine.as_str())];
        if let Some(model) = model {
            labels.push(("model", model));
        }
        if let Some(instance) = self.instance {
            labels.push(("instance", instance));
        }
        labels
    }
}

/// Appends the canonical exposition of `views` to `out`.
pub fn write_canonical(out: &mut String, views: &[View<'_>]) {
    if views.is_empty() {
        return;
    }
    write_family_header(
        out,
        "llm_engine_info",
        Some("Engine and version of the scraped server (value is always 1)."),
        "gauge",
    );
    for view in views {
        let mut labels = view.base_labels(None);
        labels.push(("version", view.version));
        let statics = view.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        write_sample(
            out,
            "llm_engine_info",
            labels.into_iter().chain(statics),
            1.0,
            None,
        );
    }
    for signal in SIGNALS {
        let present = views.iter().any(|v| {
            v.readings
                .iter()
                .any(|r| r.signal.name == signal.name && !r.series.is_empty())
        });
        if !present {
            continue;
        }
        write_family_header(out, signal.name, Some(signal.help), signal.kind.as_str());
        let mut bounds = BoundTexts::default();
        for view in views {
            let Some(reading) = view.readings.iter().find(|r| r.signal.name == signal.name) else {
                continue;
            };
            for series in &reading.series {
                let mut labels = view.base_labels(Some(series.model.as_str()));
                if let Some(outcome) = series.outcome {
                    labels.push(("outcome", outcome));
                }
                labels.extend(view.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                match (&series.value, signal.kind) {
                    (Value::Scalar(v), _) => {
                        write_sample(out, signal.name, labels.iter().copied(), *v, None);
                    }
                    (Value::Histogram(h), SignalKind::Histogram) => {
                        write_histogram(out, signal.name, &labels, h, &mut bounds);
                    }
                    (Value::Histogram(_), _) => {}
                }
            }
        }
    }
}

/// The `le` texts of the bucket bounds last written: the series of one signal share their
/// engine's bounds, and formatting a float costs more than writing the rest of its line.
#[derive(Default)]
struct BoundTexts {
    bounds: Vec<f64>,
    texts: Vec<String>,
}

impl BoundTexts {
    /// The texts of `h`'s bounds, formatted again only if they differ from the last ones.
    fn of(&mut self, h: &Histogram) -> &[String] {
        let same = self.bounds.len() == h.buckets.len()
            && self
                .bounds
                .iter()
                .zip(&h.buckets)
                .all(|(a, (b, _))| a.to_bits() == b.to_bits());
        if !same {
            self.bounds = h.buckets.iter().map(|(bound, _)| *bound).collect();
            self.texts = self
                .bounds
                .iter()
                .map(|bound| {
                    let mut text = String::new();
                    write_value(&mut text, *bound);
                    text
                })
                .collect();
        }
        &self.texts
    }
}

fn write_histogram(
    out: &mut String,
    name: &str,
    labels: &[(&str, &str)],
    h: &Histogram,
    bounds: &mut BoundTexts,
) {
    // Every bucket line of a series is the same up to its `le` value: written once as the
    // series with an empty `le`, cut before that value's closing quote.
    let mut head = String::with_capacity(128);
    let with_le = labels.iter().copied().chain([("le", "")]);
    write_series(&mut head, &format!("{name}_bucket"), with_le);
    head.truncate(head.len().saturating_sub(r#""} "#.len()));
    for ((_, count), bound) in h.buckets.iter().zip(bounds.of(h)) {
        out.push_str(&head);
        // A number holds nothing a label value escapes.
        out.push_str(bound);
        out.push_str(r#""} "#);
        write_value(out, *count);
        out.push('\n');
    }
    let sum = format!("{name}_sum");
    write_sample(out, &sum, labels.iter().copied(), h.sum, None);
    let count = format!("{name}_count");
    write_sample(out, &count, labels.iter().copied(), h.count, None);
}
