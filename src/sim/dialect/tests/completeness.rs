//! Every dialect exports every family its engine version exports: the catalogue in
//! `engines::families` (built from each engine's metric-registration code) decides what the
//! version has, and each family must be in the rendered body with samples, except the few
//! the simulator leaves out on purpose, each listed here with why (docs/sim.md says the
//! same). Histograms must be consistent: cumulative buckets whose `+Inf` equals `_count`.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::engines::families::{FAMILIES, Family, Kind};
use crate::exposition::{Exposition, MetricType};

/// Families or prefixes the simulator does not write, and why.
const NOT_SIMULATED: &[(&str, &str)] = &[
    (
        "vllm:nixl_",
        "NIXL KV-transfer connector (disaggregated serving)",
    ),
    ("vllm:mooncake_", "Mooncake connector"),
    ("vllm:hf3fs_", "HF3FS connector"),
    ("vllm:umbp_", "UMBP connector"),
    ("vllm:hisparse_", "HiSparse connector"),
    ("vllm:kv_offload_", "KV offloading to CPU or disk"),
    ("vllm:simple_kv_offload_", "KV offloading to CPU or disk"),
    ("vllm:diffusion_", "diffusion language models only"),
    (
        "vllm:sleep_mode_",
        "sleep-mode operations (RL and multi-model hosts)",
    ),
    (
        "vllm:rl_weight_update_",
        "reinforcement-learning weight updates",
    ),
    (
        "vllm:websocket_connection",
        "the realtime speech-to-text endpoint",
    ),
    (
        "tgi_batch_max_total_tokens",
        "never in a real scrape: TGI sets it before its recorder exists",
    ),
    (
        "llamacpp:spec_decode_num_accepted_tokens_per_pos_total",
        "absent until a speculative request completes; the simulated server has no draft model",
    ),
    (
        "sglang:storage_prefetch_",
        "hierarchical cache with a storage backend",
    ),
    (
        "sglang:load_back_",
        "hierarchical cache loading back from host memory",
    ),
    ("sglang:encoder_", "multimodal encoders"),
    (
        "sglang:eplb_gpu_physical_count",
        "expert-parallel load balancing (MoE)",
    ),
    ("sglang:prefill_delayer_", "the prefill delayer"),
    (
        "sglang:dp_cooperation_",
        "DP cooperation: the reference names no family of it",
    ),
];

/// Families written as a labelled family no request has touched: `# HELP` and `# TYPE`
/// without samples, because their label values come from traffic the simulator never sees.
const UNTOUCHED: &[&str] = &[
    "vllm:tool_call_parser_invocations_total",
    "sglang:weight_load_duration_seconds",
    "sglang:scheduler_stage_seconds_total",
    "sglang:cuda_graph_passes_total",
    "sglang:decode_deferred_kv_release_total",
    "sglang:eplb_balancedness",
    "sglang:func_latency_seconds",
];

/// vLLM families the reference lists for 0.33 without saying when they arrived; the 0.10
/// dialect leaves them out.
const ONLY_0_33: &[&str] = &[
    "vllm:estimated_flops_per_gpu_total",
    "vllm:estimated_read_bytes_per_gpu_total",
    "vllm:estimated_write_bytes_per_gpu_total",
    "vllm:tool_call_parser_invocations_total",
];

/// vLLM's API-server families without the `vllm:` prefix (prometheus-fastapi-instrumentator
/// and `prometheus_client`'s default collectors).
const VLLM_SERVER_FAMILIES: &[(&str, MetricType)] = &[
    ("http_requests_total", MetricType::Counter),
    ("http_request_size_bytes", MetricType::Summary),
    ("http_response_size_bytes", MetricType::Summary),
    ("http_request_duration_highr_seconds", MetricType::Histogram),
    ("http_request_duration_seconds", MetricType::Histogram),
    ("process_cpu_seconds_total", MetricType::Counter),
    ("process_resident_memory_bytes", MetricType::Gauge),
    ("process_start_time_seconds", MetricType::Gauge),
    ("python_gc_collections_total", MetricType::Counter),
    ("python_info", MetricType::Gauge),
];

/// A version as numbers; `>0.13` (a release after 0.13 whose number is not pinned) sorts
/// after every 0.13.x. Build-date versions (llama.cpp) are `None`.
fn version_of(text: &str) -> Option<Vec<u32>> {
    if text == ">0.13" {
        return Some(vec![0, 13, u32::MAX]);
    }
    text.split('.').map(|part| part.parse().ok()).collect()
}

/// Whether `family` is in `version` (`None`: the current build of an engine numbered by
/// date, which has everything not removed).
fn present_in(family: &Family, version: Option<&[u32]>) -> bool {
    let since_ok = match (family.since, version) {
        ("", _) | (_, None) => true,
        (since, Some(v)) => version_of(since).is_none_or(|s| s.as_slice() <= v),
    };
    let not_removed = match (family.removed, version) {
        ("", _) => true,
        (_, None) => false,
        (removed, Some(v)) => version_of(removed).is_some_and(|r| v < r.as_slice()),
    };
    since_ok && not_removed
}

fn skipped(name: &str) -> bool {
    NOT_SIMULATED
        .iter()
        .any(|(prefix, _)| name.starts_with(prefix))
}

/// What the body has: `# TYPE` name → (type, samples).
fn families_in(exp: &Exposition<'_>) -> BTreeMap<String, (MetricType, usize)> {
    exp.families
        .iter()
        .map(|f| (f.name.to_string(), (f.kind, exp.samples_of(f).len())))
        .collect()
}

/// The families `engine` at `version` exports that `text` lacks (or has without samples).
fn missing(text: &str, prefix: &str, version: Option<&[u32]>) -> Vec<String> {
    let exp = parse(text, Mode::Strict).unwrap();
    let have = families_in(&exp);
    let wanted = FAMILIES
        .iter()
        .filter(|f| f.name.starts_with(prefix) && present_in(f, version) && !skipped(f.name));
    let mut out = Vec::new();
    for family in wanted {
        let found = match family.kind {
            Kind::Prefix => have.keys().any(|name| name.starts_with(family.name)),
            kind => have.get(family.name).is_some_and(|(t, samples)| {
                type_matches(kind, *t) && (*samples > 0 || UNTOUCHED.contains(&family.name))
            }),
        };
        if !found {
            out.push(format!("{} ({:?})", family.name, family.kind));
        }
    }
    out
}

fn type_matches(kind: Kind, wire: MetricType) -> bool {
    matches!(
        (kind, wire),
        (Kind::Counter, MetricType::Counter)
            | (Kind::Gauge | Kind::Info, MetricType::Gauge)
            | (Kind::Histogram, MetricType::Histogram)
            | (Kind::Summary, MetricType::Summary)
    )
}

/// One histogram series: `(le, cumulative count)` pairs and its `_count`.
type SeriesBuckets = (Vec<(f64, f64)>, Option<f64>);

/// Every histogram series cumulative with `+Inf` equal to `_count`; every counter finite
/// and not negative.
fn assert_consistent(text: &str, dialect: &str) {
    let exp = parse(text, Mode::Strict).unwrap();
    for family in &exp.families {
        let samples = exp.samples_of(family);
        if family.kind == MetricType::Counter {
            for s in samples {
                assert!(
                    s.value.is_finite() && s.value >= 0.0,
                    "{dialect}: {}",
                    s.name
                );
            }
        }
        if family.kind != MetricType::Histogram {
            continue;
        }
        let mut series: BTreeMap<String, SeriesBuckets> = BTreeMap::new();
        for s in samples {
            let key: Vec<String> = exp
                .labels_of(s)
                .iter()
                .filter(|l| l.name != "le")
                .map(|l| format!("{}={}", l.name, l.value))
                .collect();
            let entry = series.entry(key.join(",")).or_default();
            if s.name.ends_with("_bucket") {
                let le = exp.label(s, "le").unwrap();
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                entry.0.push((le, s.value));
            } else if s.name.ends_with("_count") {
                entry.1 = Some(s.value);
            }
        }
        for (key, (buckets, count)) in series {
            let what = format!("{dialect}: {}{{{key}}}", family.name);
            assert!(
                buckets
                    .windows(2)
                    .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
                "{what}"
            );
            let inf = buckets
                .last()
                .filter(|(le, _)| le.is_infinite())
                .map(|b| b.1);
            assert_eq!(inf, count, "{what}: +Inf and _count");
        }
    }
}

/// A busy engine whose front end also refused and failed requests, with LoRA adapters in
/// use, so the families that appear on first use are there.
fn render_busy(dialect: Dialect) -> String {
    let (engine, recorder) = busy_engine(&buckets_for(dialect));
    let mut snap = snapshot(&engine, &recorder);
    snap.front = FrontCounts {
        overloaded: 2,
        server_errors: 1,
    };
    snap.exposure.lora_adapters = 2;
    let mut renderer = Renderer::new(dialect, 20723);
    renderer.render(&snap).0
}

#[test]
fn every_dialect_exports_every_family_of_its_engine_version() {
    for (dialect, prefix, version) in [
        (Dialect::Vllm(VllmVersion::V0_33), "vllm:", Some("0.33.0")),
        (Dialect::Vllm(VllmVersion::V0_10), "vllm:", Some("0.10.2")),
        (Dialect::Tgi, "tgi_", Some("3.3.7")),
        (Dialect::LlamaCpp, "llamacpp:", None),
        (Dialect::Sglang, "sglang:", Some("0.5.23")),
    ] {
        let text = render_busy(dialect);
        let version = version.and_then(version_of);
        let mut lacking = missing(&text, prefix, version.as_deref());
        if dialect == Dialect::Vllm(VllmVersion::V0_10) {
            lacking.retain(|f| !ONLY_0_33.iter().any(|only| f.starts_with(only)));
            let exp = parse(&text, Mode::Strict).unwrap();
            let extra: BTreeSet<&str> = ONLY_0_33
                .iter()
                .copied()
                .filter(|name| exp.families.iter().any(|f| f.name == *name))
                .collect();
            assert!(extra.is_empty(), "0.10 has 0.33-only families {extra:?}");
        }
        assert!(lacking.is_empty(), "{} lacks {lacking:#?}", dialect.name());
        assert_consistent(&text, dialect.name());
    }
}

#[test]
fn vllm_writes_its_api_server_families_beside_the_engines() {
    for version in [VllmVersion::V0_33, VllmVersion::V0_10] {
        let text = render_busy(Dialect::Vllm(version));
        let exp = parse(&text, Mode::Strict).unwrap();
        let have = families_in(&exp);
        for (name, kind) in VLLM_SERVER_FAMILIES {
            let found = have.get(*name).map(|(k, n)| (*k, *n > 0));
            assert_eq!(found, Some((*kind, true)), "{version:?}: {name}");
        }
    }
}

#[test]
fn removed_families_stay_out_of_the_versions_that_lack_them() {
    for (dialect, prefix, version) in [
        (Dialect::Vllm(VllmVersion::V0_33), "vllm:", "0.33.0"),
        (Dialect::Vllm(VllmVersion::V0_10), "vllm:", "0.10.2"),
        (Dialect::Sglang, "sglang:", "0.5.23"),
    ] {
        let text = render_busy(dialect);
        let exp = parse(&text, Mode::Strict).unwrap();
        let version = version_of(version);
        for family in FAMILIES.iter().filter(|f| f.name.starts_with(prefix)) {
            if family.kind == Kind::Prefix || present_in(family, version.as_deref()) {
                continue;
            }
            let written = exp
                .families
                .iter()
                .any(|f| family.has_series(f.name) || f.name == family.name);
            assert!(
                !written,
                "{}: {} is not in that version",
                dialect.name(),
                family.name
            );
        }
    }
}

#[test]
fn versions_compare_as_releases() {
    let catalogue = |name: &str| FAMILIES.iter().find(|f| f.name == name).unwrap();
    let v = |s: &str| version_of(s).unwrap();
    let itl = catalogue("vllm:inter_token_latency_seconds");
    assert!(present_in(itl, Some(&v("0.10.2"))));
    assert!(!present_in(itl, Some(&v("0.10.1"))));
    let tpot = catalogue("vllm:time_per_output_token_seconds");
    assert!(present_in(tpot, Some(&v("0.13.0"))));
    assert!(!present_in(tpot, Some(&v("0.33.0"))));
    let kv_ratio = catalogue("llamacpp:kv_cache_usage_ratio");
    assert!(!present_in(kv_ratio, None));
}
