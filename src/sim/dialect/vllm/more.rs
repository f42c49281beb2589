//! The vLLM families the canonical schema does not read, so that an engine vendor's
//! dashboard or a team's own rules find every series they expect. Each takes its value from
//! the engine model where the model has that quantity (request shapes, phases, steps, token
//! sources); the rest (speculative decoding, model FLOPs, Python's runtime) are derived from
//! the engine's token counts by fixed ratios or are constants, as docs/sim.md lists.

use super::{VllmVersion, Writer};
use crate::sim::dialect::{
    Snapshot, header, performance_estimates, py_float, write_py_histogram, write_raw,
};
use crate::sim::record::Histogram;

/// Draft tokens proposed per speculative step (`num_speculative_tokens`).
const DRAFT_POSITIONS: u64 = 3;
/// vLLM's `kv_cache_residency` bucket family (seconds).
const RESIDENCY_BOUNDS: [f64; 21] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0,
    120.0, 300.0, 600.0, 1200.0, 1800.0,
];

impl Writer<'_> {
    /// A labelled family that no request has touched yet: `prometheus_client` writes its
    /// `# HELP` and `# TYPE` and no sample.
    fn untouched(&mut self, name: &str, help: &str, kind: &str) {
        header(&mut self.out, name, help, kind);
    }
}

/// Families of 0.33 that 0.10 lacks: KV fetch stages, token sources, the rarer request
/// counters, tool-call parsing.
pub(super) fn newer_counters(w: &mut Writer<'_>, s: &Snapshot<'_>) {
    let t = s.totals;
    w.labelled_gauge(
        "vllm:num_requests_kv_fetch_by_stage",
        "Number of requests fetching KV from a remote producer, by stage.",
        "stage",
        &[
            ("waiting_to_start", 0.0),
            ("in_progress", 0.0),
            ("completed_waiting", 0.0),
        ],
    );
    let computed = t.prompt_tokens - t.cached_tokens.min(t.prompt_tokens);
    w.labelled_counter(
        "vllm:prompt_tokens_by_source",
        "Number of prompt tokens by source.",
        "source",
        &[
            ("local_compute", computed),
            ("local_cache_hit", t.cached_tokens),
            ("external_kv_transfer", 0),
        ],
    );
    w.labelled_counter(
        "vllm:prompt_tokens_cached_by_source",
        "Number of cached prompt tokens by source.",
        "source",
        &[
            ("device", t.cached_tokens),
            ("host", 0),
            ("p2p", 0),
            ("disk", 0),
            ("external_unspecified", 0),
        ],
    );
    for (base, help) in [
        (
            "vllm:external_prefix_cache_queries",
            "External prefix cache queries from KV connector cross-instance cache sharing, in terms of number of queried tokens.",
        ),
        (
            "vllm:external_prefix_cache_hits",
            "External prefix cache hits from KV connector cross-instance cache sharing, in terms of number of cached tokens.",
        ),
        (
            "vllm:mm_cache_queries",
            "Multi-modal cache queries, in terms of number of queried items.",
        ),
        (
            "vllm:mm_cache_hits",
            "Multi-modal cache hits, in terms of number of cached items.",
        ),
        (
            "vllm:corrupted_requests",
            "Corrupted requests, in terms of total number of requests with NaNs in logits.",
        ),
    ] {
        w.counter(base, help, 0.0);
    }
    let finished = t.finished_stop + t.finished_length;
    w.labelled_counter(
        "vllm:watermark_requests",
        "Number of requests by watermarking status.",
        "status",
        &[
            ("watermarked", 0),
            ("skipped", 0),
            ("not_watermarked", finished),
        ],
    );
    w.untouched(
        "vllm:tool_call_parser_invocations_total",
        "Number of tool call parser invocations.",
        "counter",
    );
}

/// Request-shape and phase histograms beyond the schema's: inference time and the request
/// parameters, plus (0.33) computed prompt tokens, preemptions and KV block residency.
pub(super) fn request_histograms(w: &mut Writer<'_>, s: &Snapshot<'_>, version: VllmVersion) {
    let l = s.latencies;
    w.histogram(
        "vllm:request_inference_time_seconds",
        "Histogram of time spent in RUNNING phase for request.",
        &l.inference,
    );
    w.histogram(
        "vllm:request_max_num_generation_tokens",
        "Histogram of maximum number of requested generation tokens.",
        &l.max_tokens,
    );
    w.histogram(
        "vllm:request_params_max_tokens",
        "Histogram of the max_tokens request parameter.",
        &l.max_tokens,
    );
    w.histogram(
        "vllm:request_params_n",
        "Histogram of the n request parameter.",
        &l.params_n,
    );
    if version == VllmVersion::V0_10 {
        return;
    }
    w.histogram(
        "vllm:request_prefill_kv_computed_tokens",
        "Histogram of new KV tokens computed during prefill (excluding cached tokens).",
        &l.computed_prompt_tokens,
    );
    w.histogram(
        "vllm:request_num_preemptions",
        "Histogram of the number of preemptions per finished request.",
        &l.preemptions,
    );
    // Every finished request's blocks lived about as long as the request; with the prefix
    // cache holding freed blocks, none is evicted in the model, so the other two stay empty.
    let mut lifetime = Histogram::new(&RESIDENCY_BOUNDS);
    if l.e2e.count > 0 {
        lifetime.observe_n(l.e2e.sum / l.e2e.count as f64, l.e2e.count);
    }
    w.histogram(
        "vllm:kv_block_lifetime_seconds",
        "Histogram of KV cache block lifetime from allocation to eviction. Sampled metrics (controlled by --kv-cache-metrics-sample).",
        &lifetime,
    );
    let empty = Histogram::new(&RESIDENCY_BOUNDS);
    w.histogram(
        "vllm:kv_block_idle_before_evict_seconds",
        "Histogram of idle time before KV cache block eviction. Sampled metrics (controlled by --kv-cache-metrics-sample).",
        &empty,
    );
    w.histogram(
        "vllm:kv_block_reuse_gap_seconds",
        "Histogram of time gaps between consecutive KV cache block accesses. Only the most recent accesses are recorded (ring buffer). Sampled metrics (controlled by --kv-cache-metrics-sample).",
        &empty,
    );
}

/// Speculative decoding as if a 3-token draft model ran beside the engine: every two
/// generated tokens are one draft step (a mean acceptance length of 2), and acceptance falls
/// with the draft position.
pub(super) fn spec_decode(w: &mut Writer<'_>, s: &Snapshot<'_>) {
    let generated = s.totals.generated_tokens;
    let drafts = generated / 2;
    let accepted = generated - drafts;
    w.counter(
        "vllm:spec_decode_num_drafts",
        "Number of spec decoding drafts.",
        drafts as f64,
    );
    w.counter(
        "vllm:spec_decode_num_draft_tokens",
        "Number of draft tokens.",
        (DRAFT_POSITIONS * drafts) as f64,
    );
    w.counter(
        "vllm:spec_decode_num_accepted_tokens",
        "Number of accepted tokens.",
        accepted as f64,
    );
    let first = accepted * 11 / 20;
    let second = accepted * 6 / 20;
    w.labelled_counter(
        "vllm:spec_decode_num_accepted_tokens_per_pos",
        "Accepted tokens per draft position.",
        "position",
        &[
            ("0", first),
            ("1", second),
            ("2", accepted - first - second),
        ],
    );
}

/// `--enable-mfu-metrics`: FLOPs and bytes of the imagined 7B model, from the tokens and
/// steps the engine ran.
pub(super) fn mfu(w: &mut Writer<'_>, s: &Snapshot<'_>) {
    let [flops, read, write] = performance_estimates(s.totals);
    for (base, help, value) in [
        (
            "vllm:estimated_flops_per_gpu",
            "Estimated number of floating point operations per GPU (for Model Flops Utilization calculations).",
            flops,
        ),
        (
            "vllm:estimated_read_bytes_per_gpu",
            "Estimated number of bytes read from memory per GPU (for Model Flops Utilization calculations).",
            read,
        ),
        (
            "vllm:estimated_write_bytes_per_gpu",
            "Estimated number of bytes written to memory per GPU (for Model Flops Utilization calculations).",
            write,
        ),
    ] {
        w.counter(base, help, value);
    }
}

/// The instrumentator's size summaries and duration histograms, and the Python runtime
/// collectors. Each answered request is observed once at the mean end-to-end latency, so
/// counts and sums agree with the engine's.
pub(super) fn http_details(w: &mut Writer<'_>, s: &Snapshot<'_>) {
    let l = s.latencies;
    let handler = [("handler", "/v1/chat/completions")];
    let count = l.e2e.count;
    let mean = if count > 0 {
        l.e2e.sum / count as f64
    } else {
        0.0
    };
    header(
        &mut w.out,
        "http_requests_created",
        "Total number of requests by method, status and handler.",
        "gauge",
    );
    for status in ["2xx", "4xx", "5xx"] {
        let labels = [handler[0], ("method", "POST"), ("status", status)];
        write_raw(&mut w.out, "http_requests_created", labels, &w.created);
    }
    for (name, help, bytes) in [
        (
            "http_request_size_bytes",
            "Content length of incoming requests by handler. Only value of header is respected. Otherwise ignored. No percentile calculated. ",
            1_800.0,
        ),
        (
            "http_response_size_bytes",
            "Content length of outgoing responses by handler. Only value of header is respected. Otherwise ignored. No percentile calculated. ",
            2_400.0,
        ),
    ] {
        header(&mut w.out, name, help, "summary");
        let n = py_float(count as f64);
        write_raw(&mut w.out, &format!("{name}_count"), handler, &n);
        let sum = py_float(bytes * count as f64);
        write_raw(&mut w.out, &format!("{name}_sum"), handler, &sum);
        let created = format!("{name}_created");
        header(&mut w.out, &created, help, "gauge");
        write_raw(&mut w.out, &created, handler, &w.created);
    }
    let highr_bounds = [
        0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5,
        5.0, 7.5, 10.0, 30.0, 60.0,
    ];
    let mut highr = Histogram::new(&highr_bounds);
    let mut coarse = Histogram::new(&[0.1, 0.5, 1.0]);
    highr.observe_n(mean, count);
    coarse.observe_n(mean, count);
    let name = "http_request_duration_highr_seconds";
    let help = "Latency with many buckets but no API specific labels. Made for more accurate percentile calculations. ";
    header(&mut w.out, name, help, "histogram");
    write_py_histogram(&mut w.out, name, &[], &highr);
    let name = "http_request_duration_seconds";
    let help = "Latency with only few buckets by handler. Made to be only used if aggregation by handler is important. ";
    header(&mut w.out, name, help, "histogram");
    write_py_histogram(&mut w.out, name, &[handler[0], ("method", "POST")], &coarse);
    python_runtime(w);
}

/// `prometheus_client`'s garbage-collector and platform collectors (constants).
fn python_runtime(w: &mut Writer<'_>) {
    for (name, help, values) in [
        (
            "python_gc_objects_collected_total",
            "Objects collected during gc",
            [12_873.0, 1_523.0, 961.0],
        ),
        (
            "python_gc_objects_uncollectable_total",
            "Uncollectable objects found during GC",
            [0.0; 3],
        ),
        (
            "python_gc_collections_total",
            "Number of times this generation was collected",
            [54.0, 4.0, 1.0],
        ),
    ] {
        header(&mut w.out, name, help, "counter");
        for (generation, value) in ["0", "1", "2"].into_iter().zip(values) {
            write_raw(
                &mut w.out,
                name,
                [("generation", generation)],
                &py_float(value),
            );
        }
    }
    header(
        &mut w.out,
        "python_info",
        "Python platform information",
        "gauge",
    );
    let labels = [
        ("implementation", "CPython"),
        ("major", "3"),
        ("minor", "12"),
        ("patchlevel", "11"),
        ("version", "3.12.11"),
    ];
    write_raw(&mut w.out, "python_info", labels, "1.0");
}
