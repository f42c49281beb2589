//! Engine and version detection from one scrape: the metric prefix says which engine; the
//! presence of series that appeared, were renamed or were removed in known releases bounds
//! the version. A version endpoint, when reachable, replaces the range with the exact version.

use super::{Engine, Index};

/// What one scrape says about its producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    /// The engine, or `None` for an unknown exposition.
    pub engine: Option<Engine>,
    /// A version range such as `>= 0.13.0` or `>= 0.10.2, < 0.12`, or `unknown`.
    pub version: String,
    /// The series that decided it, for humans.
    pub evidence: Vec<String>,
}

/// Detects the engine by family prefix (the most common prefix wins) and bounds its version.
pub fn detect(index: &Index<'_, '_>) -> Detection {
    let exp = index.exposition();
    let engine = Engine::ALL
        .into_iter()
        .map(|e| {
            let n = exp
                .families
                .iter()
                .filter(|f| f.name.starts_with(e.prefix()))
                .count();
            (n, e)
        })
        .filter(|(n, _)| *n > 0)
        .max_by_key(|(n, _)| *n)
        .map(|(_, e)| e);
    let Some(engine) = engine else {
        return Detection {
            engine: None,
            version: "unknown".into(),
            evidence: vec!["no vllm:, tgi_, llamacpp: or sglang: metrics".into()],
        };
    };
    let (lower, upper) = match engine {
        Engine::Vllm => vllm_bounds(index),
        Engine::Tgi => tgi_bounds(index),
        Engine::LlamaCpp => llamacpp_bounds(index),
        Engine::Sglang => sglang_bounds(index),
    };
    let version = match (&lower, &upper) {
        (Some((lo, _)), Some((hi, _))) => format!("{lo}, {hi}"),
        (Some((lo, _)), None) => lo.to_string(),
        (None, Some((hi, _))) => hi.to_string(),
        (None, None) => "unknown".to_string(),
    };
    let evidence = [lower, upper]
        .into_iter()
        .flatten()
        .map(|(_, why)| why.to_string())
        .collect();
    Detection {
        engine: Some(engine),
        version,
        evidence,
    }
}

type Bound = Option<(&'static str, &'static str)>;

/// Whether some sample of `series` carries `label` (with `value`, when given).
fn has_label(index: &Index<'_, '_>, series: &str, label: &str, value: Option<&str>) -> bool {
    index.samples(series).any(|s| {
        let found = index.exposition().label(s, label);
        found.is_some() && (value.is_none() || found == value)
    })
}

/// The first marker present, newest first.
fn first(index: &Index<'_, '_>, markers: &[(&'static str, &'static str, &'static str)]) -> Bound {
    markers
        .iter()
        .find(|(series, _, _)| index.has_family(series))
        .map(|(_, bound, why)| (*bound, *why))
}

fn vllm_bounds(index: &Index<'_, '_>) -> (Bound, Bound) {
    let v0 = index.has_family("vllm:num_requests_swapped")
        || index.has_family("vllm:cpu_cache_usage_perc")
        || (index.has("vllm:num_requests_running")
            && index
                .samples("vllm:num_requests_running")
                .all(|s| index.exposition().label(s, "engine").is_none()));
    if v0 {
        return (
            Some(("V0 engine, <= 0.10", "V0-only series or no engine label")),
            None,
        );
    }
    let lower = first(
        index,
        &[
            (
                "vllm:num_requests_waiting_by_reason",
                "> 0.13",
                "num_requests_waiting_by_reason",
            ),
            (
                "vllm:request_num_preemptions",
                "> 0.13",
                "request_num_preemptions",
            ),
            (
                "vllm:request_prefill_kv_computed_tokens",
                ">= 0.13.0",
                "request_prefill_kv_computed_tokens",
            ),
            ("vllm:engine_sleep_state", ">= 0.12.0", "engine_sleep_state"),
            (
                "vllm:request_time_per_output_token_seconds",
                ">= 0.11.0",
                "request_time_per_output_token_seconds",
            ),
            (
                "vllm:inter_token_latency_seconds",
                ">= 0.10.2",
                "inter_token_latency_seconds",
            ),
            (
                "vllm:kv_cache_usage_perc",
                ">= 0.9.2",
                "kv_cache_usage_perc",
            ),
            (
                "vllm:gpu_prefix_cache_queries_total",
                ">= 0.8",
                "gpu_prefix_cache_queries (V1)",
            ),
        ],
    );
    let upper = first(
        index,
        &[
            (
                "vllm:gpu_prefix_cache_queries_total",
                "< 0.12",
                "gpu_prefix_cache_* (removed in 0.12)",
            ),
            (
                "vllm:gpu_cache_usage_perc",
                "< 0.12",
                "gpu_cache_usage_perc (removed in 0.12)",
            ),
            (
                "vllm:time_per_output_token_seconds",
                "<= 0.13",
                "time_per_output_token_seconds (gone after 0.13)",
            ),
        ],
    );
    (lower, upper)
}

fn tgi_bounds(index: &Index<'_, '_>) -> (Bound, Bound) {
    if has_label(index, "tgi_batch_concat", "reason", Some("chunking")) {
        return (
            Some((">= 2.4.0", "tgi_batch_concat{reason=\"chunking\"}")),
            None,
        );
    }
    let lower = first(
        index,
        &[
            (
                "tgi_batch_forward_duration",
                ">= 1.3.3",
                "tgi_batch_forward_duration (TGI series appear lazily)",
            ),
            (
                "tgi_request_skipped_tokens",
                ">= 1.3.0",
                "tgi_request_skipped_tokens (TGI series appear lazily)",
            ),
        ],
    );
    (lower, None)
}

fn llamacpp_bounds(index: &Index<'_, '_>) -> (Bound, Bound) {
    let lower = first(
        index,
        &[
            (
                "llamacpp:spec_decode_num_drafts_total",
                "build from 2026-08 or later",
                "spec_decode_* counters (#26389)",
            ),
            (
                "llamacpp:prompt_tokens_cached_total",
                "2026 build",
                "prompt_tokens_cached_total",
            ),
            (
                "llamacpp:n_decode_total",
                "build from 2024-09 or later",
                "n_decode_total (#9283)",
            ),
            (
                "llamacpp:prompt_seconds_total",
                "build from 2024-03 or later",
                "prompt_seconds_total (#5937)",
            ),
        ],
    );
    let upper = first(
        index,
        &[(
            "llamacpp:kv_cache_usage_ratio",
            "before 2025-05",
            "kv_cache_usage_ratio (removed in #13660)",
        )],
    );
    (lower, upper)
}

fn sglang_bounds(index: &Index<'_, '_>) -> (Bound, Bound) {
    if has_label(index, "sglang:prompt_tokens_total", "is_streaming", None) {
        return (
            Some((">= 0.5.23", "is_streaming label on prompt_tokens_total")),
            None,
        );
    }
    let lower = first(
        index,
        &[
            (
                "sglang:realtime_tokens_total",
                ">= 0.5.12",
                "realtime_tokens_total",
            ),
            ("sglang:kv_used_tokens", ">= 0.5.12", "kv_used_tokens"),
            (
                "sglang:queue_time_seconds",
                ">= 0.5.5",
                "queue_time_seconds",
            ),
            (
                "sglang:inter_token_latency_seconds",
                ">= 0.4.4",
                "inter_token_latency_seconds",
            ),
            (
                "sglang:num_requests_total",
                ">= 0.4.3",
                "num_requests_total",
            ),
        ],
    );
    let upper = first(
        index,
        &[
            (
                "sglang:time_per_output_token_seconds",
                "< 0.4.5",
                "time_per_output_token_seconds (removed in 0.4.5)",
            ),
            (
                "sglang:avg_request_queue_latency",
                "< 0.5.12",
                "avg_request_queue_latency",
            ),
        ],
    );
    (lower, upper)
}
