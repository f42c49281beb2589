//! Exemplars on the proxy's latency histograms: for each bucket of each series, the trace
//! id of the latest request whose span was exported, its value and when. Served only when
//! the scraper asks for OpenMetrics (text 0.0.4 has no exemplars), so a dashboard can jump
//! from a slow bucket to that request's trace. Bounded like the series themselves: one per
//! bucket of the three request-latency histograms per (operation, model label).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;

use crate::client_metrics::Operation;
use crate::exposition::{Exemplar, Label, Mode, parse, write_openmetrics};

/// The histograms that carry exemplars (one value per request), and their bounds.
const FAMILIES: [&str; 3] = [
    "gen_ai_client_operation_duration_seconds",
    "gen_ai_client_operation_time_to_first_chunk_seconds",
    "llm_proxy_time_to_first_content_seconds",
];

/// (family, operation, model label, bucket index).
type Key = (&'static str, String, String, usize);

/// The latest exemplar per bucket.
#[derive(Debug, Default)]
pub struct Exemplars {
    recent: Mutex<HashMap<Key, (String, f64, f64)>>,
}

impl Exemplars {
    /// Notes that the request `op` with exported trace `trace` took `value` seconds in
    /// `family`'s measure, at Unix time `at`.
    pub fn note(&self, family: &'static str, op: &Operation, value: f64, trace: &str, at: f64) {
        let Some(bounds) = crate::client_metrics::bounds_of(family) else {
            return;
        };
        let bucket = bounds
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(bounds.len());
        let key = (
            family,
            op.gen_ai_operation_name.clone(),
            op.gen_ai_request_model.clone(),
            bucket,
        );
        self.recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (trace.to_string(), value, at));
    }

    /// `text` (the proxy's metrics as text 0.0.4) as OpenMetrics, each latency bucket with
    /// its latest exemplar. Text the parser cannot read (never: it is our own) is returned
    /// as OpenMetrics without exemplars.
    pub fn openmetrics(&self, text: &str) -> String {
        let Ok(mut exp) = parse(text, Mode::Lenient) else {
            return String::from("# EOF\n");
        };
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let families: Vec<(usize, &'static str)> = exp
            .families
            .iter()
            .enumerate()
            .filter_map(|(i, f)| FAMILIES.iter().find(|n| **n == f.name).map(|n| (i, *n)))
            .collect();
        for (index, family) in families {
            let Some(bounds) = crate::client_metrics::bounds_of(family) else {
                continue;
            };
            let range = exp.families[index].samples.clone();
            for at in range.start as usize..range.end as usize {
                let sample = &exp.samples[at];
                if !sample.name.ends_with("_bucket") {
                    continue;
                }
                let label = |name: &str| exp.label(sample, name).map(str::to_string);
                let (Some(op), Some(model), Some(le)) = (
                    label("gen_ai_operation_name"),
                    label("gen_ai_request_model"),
                    label("le"),
                ) else {
                    continue;
                };
                let bucket = le
                    .parse::<f64>()
                    .ok()
                    .and_then(|le| {
                        bounds
                            .iter()
                            .position(|b| (*b - le).abs() <= 1e-12 * le.abs())
                    })
                    .unwrap_or(bounds.len());
                if let Some((trace, value, ts)) = recent.get(&(family, op, model, bucket)) {
                    exp.samples[at].exemplar = Some(Box::new(Exemplar {
                        labels: vec![Label {
                            name: "trace_id",
                            value: Cow::Owned(trace.clone()),
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
