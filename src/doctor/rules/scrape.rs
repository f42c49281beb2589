//! Diagnoses of how a target is scraped rather than of the engine: an interval too long for
//! the rate windows, a sample count that keeps growing, numbers the integrity checks caught
//! (counters falling, histograms not cumulative) and llama.cpp gauges another scraper resets.
//! Each is said once per target, not once per model.

use super::{Evidence, Thresholds, finding, runbook};
use crate::findings::{Finding, Severity};

/// The shortest `rate()` window of the exported alerts and dashboards, in seconds.
const RATE_WINDOW: f64 = 300.0;
/// Scrapes a rate window needs (Prometheus' rule of thumb, and `lint`'s).
const SCRAPES_PER_WINDOW: f64 = 4.0;
/// Growth of the sample count over the window that counts as a label's cardinality growing.
const GROWTH: f64 = 1.5;
/// ...and at least this many new samples, so a small exporter adding a model is not flagged.
const MIN_NEW_SAMPLES: f64 = 50.0;

/// Every finding about `e`'s scrapes.
pub fn scrape_findings(e: &Evidence, t: &Thresholds) -> Vec<Finding> {
    let mut out: Vec<Finding> = [interval(e), cardinality(e, t)]
        .into_iter()
        .flatten()
        .collect();
    out.extend(integrity(e));
    // About the target, not the model whose evidence carried them.
    for f in &mut out {
        f.place.clear();
    }
    out
}

fn interval(e: &Evidence) -> Option<Finding> {
    let interval = e.scrape.interval_seconds?;
    let longest = RATE_WINDOW / SCRAPES_PER_WINDOW;
    (interval > longest).then(|| {
        finding(
            e,
            Severity::Warning,
            "scrape-interval-too-long",
            format!(
                "scraped every {interval:.0} s: a 5-minute rate() window then holds fewer than {SCRAPES_PER_WINDOW:.0} scrapes, so rates and quantiles jump or go empty"
            ),
            vec![format!("scrape interval = {interval:.0} s; the alerts' rate windows are 5 m")],
            format!("scrape every {longest:.0} s or less (the target's interval, or [scrape] interval)"),
            "",
        )
    })
}

fn cardinality(e: &Evidence, t: &Thresholds) -> Option<Finding> {
    let (now, then) = (e.scrape.samples?, e.scrape.samples_at_window_start?);
    (now > GROWTH * then && now - then >= MIN_NEW_SAMPLES).then(|| {
        finding(
            e,
            Severity::Warning,
            "label-cardinality-growing",
            format!(
                "the target's sample count grew from {then:.0} to {now:.0} within the window: a label takes ever more values (request ids, LoRA adapters, user names), and every series costs memory here and in Prometheus"
            ),
            vec![format!("samples per scrape = {then:.0} then {now:.0} (last {:.0} s)", e.window_seconds)],
            "find the label with `llmwatch scrape URL` and drop it with metric_relabel_configs, or cap what the engine exports (vLLM --max-loras)".into(),
            &runbook(t, "LLMScrapeSamplesExploding"),
        )
    })
}

fn integrity(e: &Evidence) -> Vec<Finding> {
    let mut out = Vec::new();
    for p in &e.scrape.integrity {
        let evidence = vec![format!("{}: {} ({} scrapes)", p.series, p.detail, p.count)];
        let (check, message, fix) = match p.kind.as_str() {
            "counter_backwards" => (
                "counter-backwards",
                format!("{} went backwards while the engine's other counters did not: not a restart; llmwatch leaves out the scrape where it fell and continues from the last good value, but Prometheus and any other tool read the fall as a reset, so their rates over it spike", p.series),
                "check for several processes behind one address (a load balancer over replicas, a multiprocess exporter without a shared directory); scrape each replica on its own".to_string(),
            ),
            "non_cumulative_histogram" => (
                "non-cumulative-histogram",
                format!("{}'s buckets are not cumulative (or +Inf is missing or not the count): llmwatch leaves the series out, and any other tool's quantiles over it are nonsense", p.series),
                "the exporter writes per-bucket counts or mixes series; fix the exporter, or drop the family with metric_relabel_configs".to_string(),
            ),
            "invalid_counter" => (
                "invalid-counter",
                format!("{} is negative, NaN or infinite, which no counter can be: llmwatch leaves the series out, and any rate over it is nonsense", p.series),
                "the exporter writes something else under a counter's name (a gauge, an unset value); fix the exporter, or drop the series with metric_relabel_configs".to_string(),
            ),
            "scrape_window_reset" => (
                "another-scraper",
                "something else also scrapes this llama.cpp server's /metrics: each scrape resets the window of its throughput gauges, so llamacpp:prompt_tokens_seconds and predicted_tokens_seconds read 0 or nonsense for both".to_string(),
                "scrape llama.cpp once: let Prometheus scrape llmwatch (its llm_ series compute throughput from the counters) instead of the server too; never chart llamacpp:*_tokens_seconds".to_string(),
            ),
            _ => continue,
        };
        out.push(finding(
            e,
            Severity::Warning,
            check,
            message,
            evidence,
            fix,
            "",
        ));
    }
    out
}
