//! The gap between what clients wait for their first token (measured by the proxy running
//! inside `up`) and what the engines report for the same model, over the last five minutes:
//! queueing, network and gateways in front of the engine, as one series per model.

use std::fmt::Write;
use std::time::Duration;

use crate::collect::history::{Part, SeriesKey, increase};
use crate::collect::state::Store;
use crate::proxy::Proxy;

/// The window both means are taken over.
const WINDOW: Duration = Duration::from_secs(300);

/// Writes `llm_client_ttft_gap_seconds{model}` for every model with requests through the
/// proxy and engine TTFT observations in the window.
pub fn write(out: &mut String, proxy: &Proxy, store: &Store, now_unix: f64) {
    let client = proxy.ttft_over(WINDOW);
    let mut lines = String::new();
    let mut models: Vec<_> = client.into_iter().filter(|(_, (_, n))| *n > 0).collect();
    models.sort_by(|a, b| a.0.cmp(&b.0));
    for (model, (sum, count)) in models {
        let Some(engine) = engine_mean(store, &model, now_unix) else {
            continue;
        };
        let gap = sum / count as f64 - engine;
        lines.push_str("llm_client_ttft_gap_seconds{model=\"");
        crate::exposition::write::escape_label_value_into(&mut lines, &model);
        let _ = writeln!(lines, "\"}} {gap}");
    }
    if lines.is_empty() {
        return;
    }
    out.push_str(
        "# HELP llm_client_ttft_gap_seconds Mean time to first token seen by clients through the proxy minus the engines' mean, same model, last 5 minutes.\n\
         # TYPE llm_client_ttft_gap_seconds gauge\n",
    );
    out.push_str(&lines);
}

/// The engines' mean TTFT for `model` over the window, across every target serving it.
fn engine_mean(store: &Store, model: &str, now_unix: f64) -> Option<f64> {
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
    (count > 0.0).then(|| sum / count)
}
