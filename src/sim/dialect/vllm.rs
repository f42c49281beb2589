//! vLLM V1 as `prometheus_client` writes it in single-process mode: `vllm:` names, labels
//! `{engine, model_name}`, Python float formatting, a `_created` gauge family after every
//! counter and histogram, and children pre-created at zero.

use super::{Snapshot, header, py_float, write_py_histogram, write_raw};
use crate::sim::engine::{Profile, StepTokens};
use crate::sim::record::Histogram;

mod more;

/// Which vLLM release to imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VllmVersion {
    /// 0.10.2: old and new KV and prefix-cache names side by side, both ITL names, no
    /// per-request TPOT, no cached-prompt counter.
    V0_10,
    /// 0.33: new names only, per-request TPOT, cached-prompt counter, five finish reasons.
    V0_33,
}

struct Writer<'a> {
    out: String,
    labels: [(&'static str, &'a str); 2],
    created: String,
}

impl Writer<'_> {
    fn gauge(&mut self, name: &str, help: &str, value: f64) {
        header(&mut self.out, name, help, "gauge");
        write_raw(&mut self.out, name, self.labels, &py_float(value));
    }

    fn labelled_gauge(&mut self, name: &str, help: &str, label: &str, values: &[(&str, f64)]) {
        header(&mut self.out, name, help, "gauge");
        for (value_label, value) in values {
            let labels = with_label(self.labels, label, value_label);
            write_raw(&mut self.out, name, labels, &py_float(*value));
        }
    }

    /// A counter with one extra label, children pre-created, each with its `_created`.
    fn labelled_counter(&mut self, base: &str, help: &str, label: &str, values: &[(&str, u64)]) {
        let total = format!("{base}_total");
        header(&mut self.out, &total, help, "counter");
        for (value_label, n) in values {
            let labels = with_label(self.labels, label, value_label);
            write_raw(&mut self.out, &total, labels, &py_float(*n as f64));
        }
        let created = format!("{base}_created");
        header(&mut self.out, &created, help, "gauge");
        for (value_label, _) in values {
            let labels = with_label(self.labels, label, value_label);
            write_raw(&mut self.out, &created, labels, &self.created);
        }
    }

    fn created(&mut self, base: &str, help: &str, series: usize) {
        let name = format!("{base}_created");
        header(&mut self.out, &name, help, "gauge");
        for _ in 0..series {
            write_raw(&mut self.out, &name, self.labels, &self.created);
        }
    }

    fn counter(&mut self, base: &str, help: &str, value: f64) {
        let name = format!("{base}_total");
        header(&mut self.out, &name, help, "counter");
        write_raw(&mut self.out, &name, self.labels, &py_float(value));
        self.created(base, help, 1);
    }

    fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        header(&mut self.out, name, help, "histogram");
        write_py_histogram(&mut self.out, name, &self.labels, h);
        self.created(name, help, 1);
    }

    /// `cache_config_info`: an info-style gauge whose labels are `CacheConfig` fields, as
    /// vLLM writes it once the engine is up.
    fn cache_config(&mut self, profile: &Profile) {
        let name = "vllm:cache_config_info";
        header(
            &mut self.out,
            name,
            "Information of the LLMEngine CacheConfig",
            "gauge",
        );
        let block_size = profile.block_tokens.to_string();
        let blocks = profile.kv_blocks.to_string();
        let labels = [
            ("block_size", block_size.as_str()),
            ("cache_dtype", "auto"),
            ("enable_prefix_caching", "True"),
            ("gpu_memory_utilization", "0.9"),
            ("num_gpu_blocks", blocks.as_str()),
            ("engine", self.labels[0].1),
        ];
        write_raw(&mut self.out, name, labels, "1.0");
    }

    /// Front-end queue-limit rejections (HTTP 429): labelled by model only, no `engine`.
    fn admission_rejections(&mut self, model: &str, n: u64) {
        let base = "vllm:admission_rejections";
        let help = "Number of requests rejected by admission control.";
        let labels = [("model_name", model), ("reason", "max_num_queued_reqs")];
        header(&mut self.out, &format!("{base}_total"), help, "counter");
        write_raw(
            &mut self.out,
            &format!("{base}_total"),
            labels,
            &py_float(n as f64),
        );
        header(&mut self.out, &format!("{base}_created"), help, "gauge");
        write_raw(
            &mut self.out,
            &format!("{base}_created"),
            labels,
            &self.created,
        );
    }

    /// `lora_requests_info`: one series per set of running adapters seen, its value a Unix
    /// time; the simulator has seen each adapter running alone.
    fn lora_requests(&mut self, adapters: u32, started_unix: f64) {
        if adapters == 0 {
            return;
        }
        let name = "vllm:lora_requests_info";
        header(
            &mut self.out,
            name,
            "Running stats on lora requests.",
            "gauge",
        );
        let max_lora = adapters.to_string();
        for i in 0..adapters {
            let running = format!("adapter-{i}");
            let labels = [
                ("max_lora", max_lora.as_str()),
                ("running_lora_adapters", running.as_str()),
                ("waiting_lora_adapters", ""),
            ];
            write_raw(
                &mut self.out,
                name,
                labels,
                &py_float(started_unix + f64::from(i)),
            );
        }
    }

    /// What the API server's instrumentation and `prometheus_client`'s default collectors
    /// add: HTTP requests by status class and the process. Present whatever the engine's
    /// own families do.
    fn http_and_process(&mut self, s: &Snapshot<'_>) {
        let t = s.totals;
        let name = "http_requests_total";
        header(
            &mut self.out,
            name,
            "Total number of requests by method, status and handler.",
            "counter",
        );
        let answered = [
            ("2xx", t.finished_stop + t.finished_length + t.aborted),
            ("4xx", t.rejected_too_long + s.front.overloaded),
            ("5xx", s.front.server_errors),
        ];
        for (status, n) in answered {
            let labels = [
                ("handler", "/v1/chat/completions"),
                ("method", "POST"),
                ("status", status),
            ];
            write_raw(&mut self.out, name, labels, &py_float(n as f64));
        }
        let busy = t.prefill_seconds + t.decode_seconds;
        for (name, help, kind, value) in [
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                "gauge",
                3.4e10,
            ),
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                "gauge",
                2.9e9,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                "gauge",
                s.started_unix,
            ),
            (
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
                "counter",
                0.15 * busy,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                "gauge",
                83.0,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                "gauge",
                1_048_576.0,
            ),
        ] {
            header(&mut self.out, name, help, kind);
            write_raw(&mut self.out, name, [], &py_float(value));
        }
    }
}

/// The engine's two labels and one more, in `prometheus_client`'s order (sorted by name).
fn with_label<'l>(
    engine: [(&'l str, &'l str); 2],
    label: &'l str,
    value: &'l str,
) -> [(&'l str, &'l str); 3] {
    let mut labels = [engine[0], engine[1], (label, value)];
    labels.sort_by_key(|(name, _)| *name);
    labels
}

/// Renders vLLM's `/metrics` body.
pub fn render_vllm(s: &Snapshot<'_>, version: VllmVersion) -> String {
    let mut w = Writer {
        out: String::with_capacity(32 * 1024),
        labels: [("engine", "0"), ("model_name", s.model)],
        created: py_float(s.started_unix),
    };
    if !s.exposure.engine_families {
        w.http_and_process(s);
        more::http_details(&mut w, s);
        return w.out;
    }
    let t = s.totals;
    let old = version == VllmVersion::V0_10;
    w.gauge(
        "vllm:num_requests_running",
        "Number of requests in model execution batches.",
        s.running as f64,
    );
    w.gauge(
        "vllm:num_requests_waiting",
        "Number of requests waiting to be processed.",
        s.waiting as f64,
    );
    if !old {
        w.labelled_gauge(
            "vllm:num_requests_waiting_by_reason",
            "Number of waiting requests by reason.",
            "reason",
            &[("capacity", s.waiting as f64), ("deferred", 0.0)],
        );
        w.labelled_gauge(
            "vllm:engine_sleep_state",
            "Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine is awake; weights_offloaded = 1 means sleep level 1; discard_all = 1 means sleep level 2.",
            "sleep_state",
            &[("awake", 1.0), ("weights_offloaded", 0.0), ("discard_all", 0.0)],
        );
    }
    if old {
        w.gauge(
            "vllm:gpu_cache_usage_perc",
            "GPU KV-cache usage. 1 means 100 percent usage.DEPRECATED: Use vllm:kv_cache_usage_perc instead.",
            s.kv_usage,
        );
        w.counter(
            "vllm:gpu_prefix_cache_queries",
            "GPU prefix cache queries, in terms of number of queried tokens.DEPRECATED: Use vllm:prefix_cache_queries instead.",
            t.prompt_tokens as f64,
        );
        w.counter(
            "vllm:gpu_prefix_cache_hits",
            "GPU prefix cache hits, in terms of number of cached tokens.DEPRECATED: Use vllm:prefix_cache_hits instead.",
            t.cached_tokens as f64,
        );
    }
    w.gauge(
        "vllm:kv_cache_usage_perc",
        "KV-cache usage. 1 means 100 percent usage.",
        s.kv_usage,
    );
    w.counter(
        "vllm:prefix_cache_queries",
        "Prefix cache queries, in terms of number of queried tokens.",
        t.prompt_tokens as f64,
    );
    w.counter(
        "vllm:prefix_cache_hits",
        "Prefix cache hits, in terms of number of cached tokens.",
        t.cached_tokens as f64,
    );
    w.counter(
        "vllm:num_preemptions",
        "Cumulative number of preemption from the engine.",
        t.preemptions as f64,
    );
    w.counter(
        "vllm:prompt_tokens",
        "Number of prefill tokens processed.",
        t.prompt_tokens as f64,
    );
    if !old {
        w.counter(
            "vllm:prompt_tokens_cached",
            "Number of cached prompt tokens (local + external).",
            t.cached_tokens as f64,
        );
    }
    w.counter(
        "vllm:generation_tokens",
        "Number of generation tokens processed.",
        t.generated_tokens as f64,
    );
    let reasons: &[(&str, u64)] = if old {
        &[
            ("stop", t.finished_stop),
            ("length", t.finished_length),
            ("abort", t.aborted),
        ]
    } else {
        &[
            ("stop", t.finished_stop),
            ("length", t.finished_length),
            ("abort", t.aborted),
            ("error", s.front.server_errors),
            ("repetition", 0),
        ]
    };
    w.labelled_counter(
        "vllm:request_success",
        "Count of successfully processed requests.",
        "finished_reason",
        reasons,
    );
    if !old {
        w.admission_rejections(s.model, s.front.overloaded);
        more::newer_counters(&mut w, s);
    }
    more::spec_decode(&mut w, s);
    if !old {
        more::mfu(&mut w, s);
    }
    let l = s.latencies;
    w.histogram(
        "vllm:request_prompt_tokens",
        "Number of prefill tokens processed.",
        &l.prompt_tokens,
    );
    w.histogram(
        "vllm:request_generation_tokens",
        "Number of generation tokens processed.",
        &l.output_tokens,
    );
    w.histogram(
        "vllm:iteration_tokens_total",
        "Histogram of number of tokens per engine_step.",
        &iteration_tokens(&t.step_tokens),
    );
    w.histogram(
        "vllm:time_to_first_token_seconds",
        "Histogram of time to first token in seconds.",
        &l.ttft,
    );
    if old {
        w.histogram(
            "vllm:time_per_output_token_seconds",
            "Histogram of time per output token in seconds.DEPRECATED: Use vllm:inter_token_latency_seconds instead.",
            &l.itl,
        );
    }
    w.histogram(
        "vllm:inter_token_latency_seconds",
        "Histogram of inter-token latency in seconds.",
        &l.itl,
    );
    if !old {
        w.histogram(
            "vllm:request_time_per_output_token_seconds",
            "Histogram of time_per_output_token_seconds per request.",
            &l.tpot,
        );
    }
    for (name, what, h) in [
        ("e2e_request_latency", "e2e request latency", &l.e2e),
        (
            "request_queue_time",
            "time spent in WAITING phase",
            &l.queue,
        ),
        (
            "request_prefill_time",
            "time spent in PREFILL phase",
            &l.prefill,
        ),
        (
            "request_decode_time",
            "time spent in DECODE phase",
            &l.decode,
        ),
    ] {
        let help = format!("Histogram of {what} for request.");
        w.histogram(&format!("vllm:{name}_seconds"), &help, h);
    }
    more::request_histograms(&mut w, s, version);
    w.cache_config(s.profile);
    w.lora_requests(s.exposure.lora_adapters, s.started_unix);
    w.http_and_process(s);
    more::http_details(&mut w, s);
    w.out
}

/// vLLM's `iteration_tokens_total` bounds (`[1] + powers of two from 8 to 16384`).
const ITERATION_TOKEN_BOUNDS: [u64; 13] = [
    1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384,
];

/// The engine's per-step token counts in vLLM's buckets (all powers of two, so exact).
fn iteration_tokens(steps: &StepTokens) -> Histogram {
    let bounds = ITERATION_TOKEN_BOUNDS.map(|b| b as f64);
    let mut h = Histogram::new(&bounds);
    let mut below = 0;
    for (slot, bound) in h.counts.iter_mut().zip(ITERATION_TOKEN_BOUNDS) {
        let upto = steps.at_most(bound);
        *slot = upto - below;
        below = upto;
    }
    if let Some(inf) = h.counts.last_mut() {
        *inf = steps.steps() - below;
    }
    h.count = steps.steps();
    h.sum = steps.sum as f64;
    h
}
