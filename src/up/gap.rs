//! The gap between what clients wait for their first token (measured by the proxy running
//! inside `up`) and what the engines report for the same model, over the last five minutes:
//! queueing, network and gateways in front of the engine, as one series per model.
//!
//! The two means only describe the same requests when the proxy carried (nearly) all of the
//! engines' requests for that model: traffic that bypasses the proxy moves the engine's mean
//! and not the client's, and the difference then means nothing (a direct benchmark once
//! moved it from −0.08 s to −0.43 s without a single proxied request). So the counts are
//! compared first, and where they disagree no gap is published, only the reason.

use std::fmt::Write;
use std::time::Duration;

use crate::collect::history::{Part, SeriesKey, increase};
use crate::collect::state::Store;
use crate::proxy::Proxy;

/// The window both means are taken over.
pub const WINDOW: Duration = Duration::from_secs(300);

/// The least share of the engines' requests for a model (those with a first token, in the
/// window) that must have come through the proxy for the gap to be published.
pub const MIN_COVERAGE: f64 = 0.95;

/// One model's comparison.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Gap {
    /// The model, as the proxy labels it.
    pub model: String,
    /// Requests through the proxy with a first content token in the window.
    pub client_requests: u64,
    /// Their mean time to first content token, seconds.
    pub client_mean_seconds: f64,
    /// TTFT observations of every engine serving the model, in the window.
    pub engine_requests: f64,
    /// Their mean, seconds.
    pub engine_mean_seconds: Option<f64>,
    /// Client mean minus engine mean; absent when the two cannot be compared.
    pub gap_seconds: Option<f64>,
    /// Why there is no gap.
    pub reason: Option<String>,
}

/// Every model with requests through the proxy in the window, compared with the engines.
pub fn gaps(proxy: &Proxy, store: &Store, now_unix: f64) -> Vec<Gap> {
    let mut models: Vec<_> = proxy
        .ttft_over(WINDOW)
        .into_iter()
        .filter(|(_, (_, n))| *n > 0)
        .collect();
    models.sort_by(|a, b| a.0.cmp(&b.0));
    models
        .into_iter()
        .map(|(model, (sum, count))| {
            let (engine_sum, engine_count) = engine_totals(store, &model, now_unix);
            let client_mean = sum / count as f64;
            let engine_mean = (engine_count > 0.0).then(|| engine_sum / engine_count);
            let reason = match engine_mean {
                None => Some(
                    "no engine reported a time to first token for this model in the window \
                     (TGI and llama.cpp export none)"
                        .to_string(),
                ),
                Some(_) if (count as f64) < MIN_COVERAGE * engine_count => Some(format!(
                    "the proxy carried {count} of the engines' {engine_count} requests for this \
                     model in the window: the rest bypassed it, so the two means describe \
                     different requests"
                )),
                Some(_) => None,
            };
            Gap {
                gap_seconds: engine_mean
                    .filter(|_| reason.is_none())
                    .map(|engine| client_mean - engine),
                model,
                client_requests: count,
                client_mean_seconds: client_mean,
                engine_requests: engine_count,
                engine_mean_seconds: engine_mean,
                reason,
            }
        })
        .collect()
}

/// Writes `llm_client_ttft_gap_seconds{model}` for every model whose gap can be published.
pub fn write(out: &mut String, proxy: &Proxy, store: &Store, now_unix: f64) {
    let mut lines = String::new();
    for gap in gaps(proxy, store, now_unix) {
        let Some(value) = gap.gap_seconds else {
            continue;
        };
        lines.push_str("llm_client_ttft_gap_seconds{model=\"");
        crate::exposition::write::escape_label_value_into(&mut lines, &gap.model);
        let _ = writeln!(lines, "\"}} {value}");
    }
    if lines.is_empty() {
        return;
    }
    out.push_str(
        "# HELP llm_client_ttft_gap_seconds Mean time to first token seen by clients through the proxy minus the engines' mean, same model, last 5 minutes; only while the proxy carried at least 95 % of the engines' requests for the model.\n\
         # TYPE llm_client_ttft_gap_seconds gauge\n",
    );
    out.push_str(&lines);
}

/// The engines' TTFT sum and count for `model` over the window, across every target
/// serving it.
fn engine_totals(store: &Store, model: &str, now_unix: f64) -> (f64, f64) {
    let key = |part| SeriesKey {
        signal: "llm_time_to_first_token_seconds",
        model: model.to_string(),
        outcome: None,
        part,
    };
    let (sum_key, count_key) = (key(Part::Sum), key(Part::Count));
    let since = now_unix - WINDOW.as_secs_f64();
    let (mut sum, mut count) = (0.0, 0.0);
    for status in store.statuses() {
        let found = store.with_history(&status.target.name, |history| {
            let points = history.window(since);
            (
                increase(points.iter(), &sum_key),
                increase(points.iter(), &count_key),
            )
        });
        if let Some((Some(s), Some(c))) = found {
            sum += s;
            count += c;
        }
    }
    (sum, count)
}
