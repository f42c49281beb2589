//! Exemplars on the proxy's latency histograms: for each bucket of each series, the trace
//! id of the latest request whose span was exported, its value and when. Served only when
//! the scraper asks for OpenMetrics (text 0.0.4 has no exemplars), so a dashboard can jump
//! from a slow bucket to that request's trace. Bounded like the series themselves: one per
//! bucket of the three request-latency histograms per (operation, model label).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;

use crate::exposition::{Exemplar, Label, Mode, parse, write_openmetrics};

use crate::client_metrics::REQUEST_LATENCIES as FAMILIES;

/// (family index, hash of the operation and model labels, bucket index): noting one, which
/// happens per request, allocates nothing.
type Key = (usize, u64, usize);

type KeyMap = HashMap<Key, Latest, super::KeyBuild>;

/// A bucket's latest exemplar: trace id, value, Unix time in seconds.
type Latest = ([u8; 16], f64, f64);

/// The latest exemplar per bucket.
#[derive(Debug, Default)]
pub struct Exemplars {
    recent: Mutex<KeyMap>,
}

/// The hash of a series' labels: operation, requested model, answering model, error type
/// (the last two empty where the series lacks them).
fn series(labels: [&str; 4]) -> u64 {
    labels.iter().fold(0, |hash: u64, label| {
        hash.rotate_left(17) ^ crate::rng::fnv1a(label.as_bytes())
    })
}

fn bucket(bounds: &[f64], value: f64) -> usize {
    bounds
        .iter()
        .position(|b| value <= *b)
        .unwrap_or(bounds.len())
}

impl Exemplars {
    /// Notes that a request of the series with `labels` (as
    /// [`crate::client_metrics::Completion::label_values`] gives them) and exported trace
    /// `trace`, ended at Unix time `at`, took `latencies` seconds in each of [`FAMILIES`]'
    /// measures (none where it has no such time). The last family's series carry the
    /// operation's labels only.
    pub fn note(&self, labels: [&str; 4], latencies: [Option<f64>; 3], trace: &[u8; 16], at: f64) {
        let full = series(labels);
        let operation_only = series([labels[0], labels[1], "", ""]);
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        for (index, ((_, bounds), value)) in FAMILIES.iter().zip(latencies).enumerate() {
            let Some(value) = value else {
                continue;
            };
            let hash = if index + 1 == FAMILIES.len() {
                operation_only
            } else {
                full
            };
            recent.insert((index, hash, bucket(bounds, value)), (*trace, value, at));
        }
    }

    /// `text` (the proxy's metrics as text 0.0.4) as OpenMetrics, each latency bucket with
    /// its latest exemplar. Text the parser cannot read (never: it is our own) gives an
    /// empty OpenMetrics body.
    pub fn openmetrics(&self, text: &str) -> String {
        let Ok(mut exp) = parse(text, Mode::Lenient) else {
            return String::from("# EOF\n");
        };
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let families: Vec<(usize, usize)> = exp
            .families
            .iter()
            .enumerate()
            .filter_map(|(i, f)| Some((i, FAMILIES.iter().position(|(n, _)| *n == f.name)?)))
            .collect();
        for (index, which) in families {
            let bounds = FAMILIES[which].1;
            let range = exp.families[index].samples.clone();
            for at in range.start as usize..range.end as usize {
                let sample = &exp.samples[at];
                if !sample.name.ends_with("_bucket") {
                    continue;
                }
                let label = |name: &str| exp.label(sample, name);
                let (Some(op), Some(model), Some(le)) = (
                    label("gen_ai_operation_name"),
                    label("gen_ai_request_model"),
                    label("le"),
                ) else {
                    continue;
                };
                // The bucket whose bound is `le`: the same index `note` found for a value
                // equal to that bound.
                let index = le
                    .parse::<f64>()
                    .map_or(bounds.len(), |le| bucket(bounds, le));
                let optional = |name: &str| label(name).unwrap_or("");
                let labels = [
                    op,
                    model,
                    optional("gen_ai_response_model"),
                    optional("error_type"),
                ];
                let key = (which, series(labels), index);
                if let Some((trace, value, ts)) = recent.get(&key) {
                    exp.samples[at].exemplar = Some(Box::new(Exemplar {
                        labels: vec![Label {
                            name: "trace_id",
                            value: Cow::Owned(crate::otlp::trace::hex(trace)),
                        }],
                        value: *value,
                        timestamp: Some(*ts),
                    }));
                }
            }
        }
        write_openmetrics(&exp)
    }
}
