//! The diagnoses: each reads [`Evidence`] and, when its pattern holds, says what is wrong,
//! shows the numbers, names the likely cause and the engine's flags to change.

use std::collections::BTreeMap;

use super::Evidence;
use crate::findings::{Finding, Severity};

/// Where the diagnoses draw their lines.
#[derive(Debug, Clone)]
pub struct Thresholds {
    /// TTFT p95 above this is slow (seconds); the SLO's TTFT objective by default.
    pub ttft_seconds: f64,
    /// Inter-token latency p95 above this is slow (seconds).
    pub itl_seconds: f64,
    /// KV-cache usage at or above this is full (0–1).
    pub kv_high: f64,
    /// An error ratio above this is a burst.
    pub error_ratio: f64,
    /// A client-minus-engine TTFT gap above this is time lost outside the engine (seconds).
    pub gap_seconds: f64,
    /// Less history than this (seconds) is too little to judge rates and quantiles.
    pub min_history_seconds: f64,
    /// Where runbook links point; `#alertname` is appended.
    pub runbook_base: String,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            ttft_seconds: 1.0,
            itl_seconds: 0.1,
            kv_high: 0.9,
            error_ratio: 0.01,
            gap_seconds: 0.1,
            min_history_seconds: 60.0,
            runbook_base: "docs/runbook.md".into(),
        }
    }
}

/// Every finding for `evidence`.
pub fn diagnose(evidence: &[Evidence], t: &Thresholds) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut targets_seen = std::collections::BTreeSet::new();
    for e in evidence {
        if targets_seen.insert(e.target.as_str()) {
            out.extend(scrape::scrape_findings(e, t));
        }
        if e.health == "down" {
            out.push(target_down(e, t));
            continue;
        }
        if e.history_seconds < t.min_history_seconds {
            out.push(finding(
                e,
                Severity::Info,
                "not-enough-data",
                format!(
                    "only {:.0} s of history: rates and quantiles need {:.0} s",
                    e.history_seconds, t.min_history_seconds
                ),
                vec![],
                "run doctor again later, or with a shorter --window".into(),
                "",
            ));
            continue;
        }
        let checks = [
            kv_bound,
            queue_bound,
            prefill_bound,
            decode_bound,
            errors,
            overload,
            client_gap,
        ];
        out.extend(checks.iter().filter_map(|check| check(e, t)));
    }
    out.extend(imbalance(evidence));
    out
}

fn finding(
    e: &Evidence,
    severity: Severity,
    check: &'static str,
    message: String,
    evidence: Vec<String>,
    fix: String,
    runbook: &str,
) -> Finding {
    let engine = match (&e.engine, &e.version) {
        (Some(engine), Some(version)) => format!(" ({engine} {version})"),
        (Some(engine), None) => format!(" ({engine})"),
        _ => String::new(),
    };
    Finding {
        severity,
        check,
        subject: format!("{}{engine}", e.target),
        place: e
            .model
            .as_ref()
            .map(|m| format!("model {m}"))
            .unwrap_or_default(),
        message,
        evidence,
        fix,
        runbook: runbook.to_string(),
    }
}

fn runbook(t: &Thresholds, alert: &str) -> String {
    format!("{}#{}", t.runbook_base, alert.to_lowercase())
}

/// `name = value over the window` for evidence lines.
fn shown(e: &Evidence, panel: &str, line: &str, what: &str) -> Option<String> {
    let reading = e.get(panel, line)?;
    Some(format!(
        "{what} = {} (last {:.0} s)",
        reading.show(),
        e.window_seconds
    ))
}

fn lines(e: &Evidence, wanted: &[(&str, &str, &str)]) -> Vec<String> {
    wanted
        .iter()
        .filter_map(|(p, l, w)| shown(e, p, l, w))
        .collect()
}

/// The engine's flags for a problem.
fn flags(e: &Evidence, problem: Problem) -> String {
    let engine = e.engine.as_deref().unwrap_or("");
    let text = match (problem, engine) {
        (Problem::Kv, "vllm") => {
            "raise --gpu-memory-utilization if the GPU has room, or lower --max-num-seqs or --max-model-len so fewer sequences compete for KV blocks; or add replicas"
        }
        (Problem::Kv, "sglang") => "raise --mem-fraction-static, or lower --max-running-requests",
        (Problem::Kv, "tgi") => {
            "lower --max-concurrent-requests, or give the shard more memory so --max-batch-total-tokens can grow"
        }
        (Problem::Kv, "llamacpp") => "raise -c (the context the -np slots share) or lower -np",
        (Problem::Queue, "vllm") => {
            "if KV usage allows, raise --max-num-seqs and --max-num-batched-tokens; otherwise add replicas"
        }
        (Problem::Queue, "sglang") => {
            "raise --max-running-requests (and --mem-fraction-static for its KV); otherwise add replicas"
        }
        (Problem::Queue, "tgi") => {
            "raise --max-batch-total-tokens (memory permitting) and --max-concurrent-requests; otherwise add replicas"
        }
        (Problem::Queue, "llamacpp") => {
            "raise -np (more parallel slots; raise -c with it) or run more servers"
        }
        (Problem::Prefill, "vllm") => {
            "raise --max-num-batched-tokens for larger prefill chunks, turn on --enable-prefix-caching for shared prompt prefixes, or shorten prompts"
        }
        (Problem::Prefill, "sglang") => {
            "raise --chunked-prefill-size; the radix cache helps shared prefixes"
        }
        (Problem::Prefill, "tgi") => "raise --max-batch-prefill-tokens",
        (Problem::Prefill, "llamacpp") => {
            "raise -b and -ub (the batch sizes prompts are processed in) and -t"
        }
        (Problem::Decode, "vllm") => {
            "lower --max-num-seqs (smaller batches decode each token faster), or use speculative decoding"
        }
        (Problem::Decode, "sglang") => "lower --max-running-requests, or use speculative decoding",
        (Problem::Decode, "tgi") => "lower --max-batch-total-tokens so batches are smaller",
        (Problem::Decode, "llamacpp") => "lower -np, or raise -t on CPU",
        (Problem::Overload, "tgi") => {
            "raise --max-concurrent-requests if the engine has capacity; otherwise add replicas"
        }
        (Problem::Overload, "vllm") => {
            "raise the admission limits (queued requests and tokens) if latency allows; otherwise add replicas"
        }
        (Problem::Kv, _) => "give the engine more KV memory or fewer concurrent sequences",
        (Problem::Queue, _) => "allow more concurrent sequences if memory allows, or add replicas",
        (Problem::Prefill, _) => "process prompts in larger chunks, or shorten them",
        (Problem::Decode, _) => "use smaller batches",
        (Problem::Overload, _) => "add capacity, or let the engine queue more",
    };
    text.to_string()
}

#[derive(Clone, Copy)]
enum Problem {
    Kv,
    Queue,
    Prefill,
    Decode,
    Overload,
}

fn target_down(e: &Evidence, t: &Thresholds) -> Finding {
    let reason = e.error_reason.as_deref().unwrap_or("unknown");
    let (message, fix) = match (reason, e.engine.as_deref()) {
        ("metrics_disabled", _) => (
            "the server answers but its metrics are turned off".to_string(),
            "start llama-server with --metrics, or SGLang with --enable-metrics".to_string(),
        ),
        ("unauthorized", _) => (
            "the metrics endpoint wants credentials (llama.cpp with --api-key protects /metrics too)".to_string(),
            "give llmwatch the key: the target's bearer_token in the configuration".to_string(),
        ),
        _ => (
            format!("the target cannot be scraped ({reason})"),
            "check that the server runs, listens on this address and port, and serves /metrics".to_string(),
        ),
    };
    let evidence = e
        .error_message
        .iter()
        .map(|m| format!("last scrape: {reason}: {m}"))
        .collect();
    finding(
        e,
        Severity::Critical,
        "target-down",
        message,
        evidence,
        fix,
        &runbook(t, "LLMTargetDown"),
    )
}

fn kv_bound(e: &Evidence, t: &Thresholds) -> Option<Finding> {
    // Engines preempt only when a running sequence needs a KV block and none is free, so
    // preemptions are the sign; the usage reading is the latest, often below the peak.
    let preemptions = e.number("pressure", "preemptions/s")?;
    let kv = e.number("cache", "KV used");
    (preemptions > 0.0).then(|| {
        let severity = if kv.is_some_and(|kv| kv >= t.kv_high) || preemptions >= 0.1 {
            Severity::Critical
        } else {
            Severity::Warning
        };
        finding(e, severity, "kv-bound",
            "KV-bound: the KV cache runs out and the engine preempts running requests to make room (they are recomputed later)".into(),
            lines(e, &[("cache", "KV used", "KV cache usage"), ("pressure", "preemptions/s", "preemptions/s"), ("load", "waiting", "waiting")]),
            flags(e, Problem::Kv), &runbook(t, "LLMKVCacheNearlyFull"))
    })
}

fn queue_bound(e: &Evidence, t: &Thresholds) -> Option<Finding> {
    let waiting = e.number("load", "waiting")?;
    let queue = e.number("queue", "p95")?;
    let ttft = e.number("ttft", "p95")?;
    (waiting > 0.0 && ttft > 0.0 && queue >= 0.5 * ttft && ttft > t.ttft_seconds).then(|| {
        finding(e, Severity::Warning, "queue-bound",
            format!("queue-bound: requests wait {} of their time to first token in the queue, not in the GPU", percent(queue / ttft)),
            lines(e, &[("load", "waiting", "waiting"), ("load", "running", "running"), ("queue", "p95", "queue time p95 (s)"), ("ttft", "p95", "TTFT p95 (s)")]),
            flags(e, Problem::Queue), &runbook(t, "LLMQueueTimeP99High"))
    })
}

fn prefill_bound(e: &Evidence, t: &Thresholds) -> Option<Finding> {
    let ttft = e.number("ttft", "p95")?;
    let prefill = e.number("prefill", "p95")?;
    let queue = e.number("queue", "p95").unwrap_or(0.0);
    (ttft > t.ttft_seconds && prefill >= 0.5 * ttft && prefill > queue).then(|| {
        finding(
            e,
            Severity::Warning,
            "prefill-bound",
            format!(
                "prefill-bound: computing prompts takes {} of the time to first token",
                percent(prefill / ttft)
            ),
            lines(
                e,
                &[
                    ("ttft", "p95", "TTFT p95 (s)"),
                    ("prefill", "p95", "prefill time p95 (s)"),
                    ("queue", "p95", "queue time p95 (s)"),
                    ("busy", "prefill", "prefill busy (s/s)"),
                ],
            ),
            flags(e, Problem::Prefill),
            "",
        )
    })
}

fn decode_bound(e: &Evidence, t: &Thresholds) -> Option<Finding> {
    let itl = e.number("itl", "p95").or_else(|| e.number("tpot", "p95"))?;
    (itl > t.itl_seconds).then(|| {
        finding(
            e,
            Severity::Warning,
            "decode-bound",
            format!(
                "decode-bound: tokens come {} apart at p95, slower than {} s",
                number(itl),
                t.itl_seconds
            ),
            lines(
                e,
                &[
                    ("itl", "p95", "inter-token latency p95 (s)"),
                    ("tpot", "p95", "time per output token p95 (s)"),
                    ("pressure", "batch size", "batch size"),
                    ("busy", "decode", "decode busy (s/s)"),
                ],
            ),
            flags(e, Problem::Decode),
            "",
        )
    })
}

fn errors(e: &Evidence, t: &Thresholds) -> Option<Finding> {
    let ratio = e.number("errors", "error ratio")?;
    (ratio > t.error_ratio).then(|| {
        let severity = if ratio >= 5.0 * t.error_ratio { Severity::Critical } else { Severity::Warning };
        let mut evidence = lines(e, &[("errors", "error ratio", "error ratio")]);
        evidence.extend(outcome_lines(e, "outcomes"));
        finding(e, severity, "error-burst",
            format!("{} of finished requests failed or were turned away", percent(ratio)),
            evidence,
            "see which outcome dominates: error_server is the engine failing (its log), rejected_overload is capacity, timeouts are slow requests".into(),
            &runbook(t, "LLMHighErrorRatio"))
    })
}

fn outcome_lines(e: &Evidence, panel: &str) -> Vec<String> {
    e.readings
        .iter()
        .filter(|((p, _), r)| p == panel && r.number() > 0.0)
        .map(|((_, line), r)| format!("{line} = {}/s", r.show()))
        .collect()
}

fn overload(e: &Evidence, _t: &Thresholds) -> Option<Finding> {
    let engine_429 = e.number("outcomes", "rejected_overload").unwrap_or(0.0);
    let client_429 = e
        .number("proxy_outcomes", "rejected_overload")
        .unwrap_or(0.0);
    (engine_429 + client_429 > 0.0).then(|| {
        let mut evidence = outcome_lines(e, "outcomes");
        evidence.extend(
            outcome_lines(e, "proxy_outcomes")
                .into_iter()
                .map(|l| format!("through the proxy: {l}")),
        );
        finding(
            e,
            Severity::Warning,
            "overload-429",
            "the engine turns requests away (HTTP 429): it is at its concurrency or queue limit"
                .into(),
            evidence,
            flags(e, Problem::Overload),
            "",
        )
    })
}

fn client_gap(e: &Evidence, t: &Thresholds) -> Option<Finding> {
    let gap = e.client_gap?;
    (gap.gap > t.gap_seconds && gap.gap > 0.2 * gap.engine_mean).then(|| {
        finding(e, Severity::Warning, "client-gap",
            format!("clients wait {} s longer for the first token than the engine measures: time lost in a gateway, the network or the proxy", number(gap.gap)),
            vec![format!("client TTFT mean = {} s, engine TTFT mean = {} s (last 5 min)", number(gap.client_mean), number(gap.engine_mean))],
            "look at what sits between clients and the engine: gateway queues and retries, TLS and DNS, a proxy's own overhead (llm_proxy_overhead_seconds)".into(), "")
    })
}

/// Replicas of one model where requests wait on one while another has none waiting.
fn imbalance(evidence: &[Evidence]) -> Vec<Finding> {
    let mut by_model: BTreeMap<&str, Vec<&Evidence>> = BTreeMap::new();
    for e in evidence.iter().filter(|e| e.health != "down") {
        if let Some(model) = e.model.as_deref() {
            by_model.entry(model).or_default().push(e);
        }
    }
    let mut out = Vec::new();
    for replicas in by_model.values().filter(|r| r.len() > 1) {
        let waiting = |e: &Evidence| e.number("load", "waiting").unwrap_or(0.0);
        let busy: Vec<&&Evidence> = replicas.iter().filter(|e| waiting(e) > 0.0).collect();
        let idle: Vec<&&Evidence> = replicas.iter().filter(|e| waiting(e) == 0.0).collect();
        for e in &busy {
            if idle.is_empty() {
                break;
            }
            let others: Vec<String> = idle
                .iter()
                .map(|o| {
                    format!(
                        "{}: waiting 0, running {}",
                        o.target,
                        o.get("load", "running").map_or("?".into(), |r| r.show())
                    )
                })
                .collect();
            let mut lines = lines(
                e,
                &[
                    ("load", "waiting", "waiting here"),
                    ("load", "running", "running here"),
                ],
            );
            lines.extend(others);
            out.push(finding(e, Severity::Warning, "replica-imbalance",
                "requests wait here while another replica of the same model has none waiting: the load balancer does not see load".into(),
                lines,
                "balance on queue depth (llm_requests_waiting) or least outstanding requests instead of round-robin".into(), ""));
        }
    }
    out
}

fn percent(ratio: f64) -> String {
    format!("{:.0} %", ratio * 100.0)
}

/// A number as evidence lines show it.
fn number(v: f64) -> String {
    super::Reading::Value(v).show()
}

mod scrape;
#[cfg(test)]
mod tests;
