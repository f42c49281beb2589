//! The SGLang 0.5.23 families the canonical schema does not read: scheduler pools and
//! queues, token sources, speculative decoding, DP attention, startup constants, the
//! tokenizer's token histograms and the HTTP middleware. Values come from the engine model
//! where it has the quantity; subsystems it does not model (disaggregation, grammar, LoRA,
//! hierarchical cache) read as an engine without them would, and the rest are constants;
//! docs/sim.md lists which are which. Families whose label values come from traffic the
//! simulator never sees are written as `prometheus_client` writes a labelled family no one
//! has touched: `# HELP` and `# TYPE` alone.

use super::write_histogram;
use crate::sim::dialect::{Snapshot, header, performance_estimates, py_float, write_raw};
use crate::sim::record::Histogram;

/// Label pairs in `prometheus_client`'s multiprocess order (sorted by name).
type Labels<'a> = Vec<(&'a str, &'a str)>;

/// Writes families with the scheduler's and the tokenizer's label sets.
pub(super) struct Families<'a, 'o> {
    pub out: &'o mut String,
    pub sched: [(&'a str, &'a str); 5],
    pub tok: [(&'a str, &'a str); 2],
}

fn merged<'a>(base: &[(&'a str, &'a str)], extra: &[(&'a str, &'a str)]) -> Labels<'a> {
    let mut labels: Labels<'a> = base.iter().chain(extra).copied().collect();
    labels.sort_by_key(|(name, _)| *name);
    labels
}

impl<'a> Families<'a, '_> {
    fn gauge(&mut self, name: &str, help: &str, value: f64) {
        header(self.out, name, help, "gauge");
        write_raw(self.out, name, self.sched, &py_float(value));
    }

    /// A gauge or counter with one series per value of `label`.
    fn by(&mut self, name: &str, help: &str, kind: &str, label: &str, values: &[(&str, f64)]) {
        header(self.out, name, help, kind);
        for (value_label, value) in values {
            let labels = merged(&self.sched, &[(label, *value_label)]);
            write_raw(self.out, name, labels, &py_float(*value));
        }
    }

    fn counter(&mut self, name: &str, help: &str, value: f64) {
        header(self.out, name, help, "counter");
        write_raw(self.out, name, self.sched, &py_float(value));
    }

    fn histogram(&mut self, name: &str, help: &str, labels: &[(&str, &str)], h: &Histogram) {
        header(self.out, name, help, "histogram");
        write_histogram(self.out, name, labels, h);
    }

    fn untouched(&mut self, name: &str, help: &str, kind: &str) {
        header(self.out, name, help, kind);
    }
}

/// Scheduler gauges: pools, throughput, occupancy, speculation, queues, constants.
pub(super) fn scheduler_gauges(f: &mut Families<'_, '_>, s: &Snapshot<'_>, pid: &str) {
    let p = s.profile;
    let capacity = f64::from(p.kv_blocks) * f64::from(p.block_tokens);
    let used = (s.kv_usage * capacity).round();
    let t = s.totals;
    f.gauge(
        "sglang:num_grammar_queue_reqs",
        "The number of requests in the grammar waiting queue.",
        0.0,
    );
    let usage = (s.kv_usage * 100.0).round() / 100.0;
    f.gauge(
        "sglang:full_token_usage",
        "The token usage for full attention layers.",
        usage,
    );
    f.gauge(
        "sglang:swa_token_usage",
        "The token usage for SWA layers.",
        0.0,
    );
    f.gauge("sglang:mamba_usage", "The usage of mamba states.", 0.0);
    f.gauge("sglang:num_used_tokens", "The number of used tokens.", used);
    // Prefix-cached tokens of finished requests stay in the radix tree until evicted.
    let evictable = (t.cached_tokens as f64).min(capacity - used);
    for (pool, used, available, evictable) in [
        ("kv", used, capacity - used - evictable, evictable),
        ("swa", 0.0, 0.0, 0.0),
        ("mamba", 0.0, 0.0, 0.0),
    ] {
        for (what, value) in [
            ("used", used),
            ("available", available),
            ("evictable", evictable),
        ] {
            let name = format!("sglang:{pool}_{what}_tokens");
            let help = format!("The number of {what} tokens in the {pool} pool.");
            f.gauge(&name, &help, value);
        }
    }
    f.gauge(
        "sglang:max_total_num_tokens",
        "Maximum total number of tokens in the KV cache pool.",
        capacity,
    );
    for name in [
        "sglang:pending_prealloc_token_usage",
        "sglang:prealloc_full_token_usage",
        "sglang:prealloc_swa_token_usage",
    ] {
        f.gauge(
            name,
            "The token usage of requests waiting for preallocation.",
            0.0,
        );
    }
    let rate = if s.running > 0 {
        s.running as f64 / p.decode_time(s.running)
    } else {
        0.0
    };
    f.gauge(
        "sglang:gen_throughput",
        "The generation throughput (token/s).",
        rate,
    );
    let hit_rate = if t.prompt_tokens > 0 {
        t.cached_tokens as f64 / t.prompt_tokens as f64
    } else {
        0.0
    };
    f.gauge(
        "sglang:cache_hit_rate",
        "The prefix cache hit rate.",
        hit_rate,
    );
    f.gauge(
        "sglang:decode_sum_seq_lens",
        "The sum of all sequence lengths in decode.",
        s.context_tokens as f64,
    );
    let occupancy = s.running as f64 / p.max_running.max(1) as f64;
    f.gauge("sglang:utilization", "The utilization.", occupancy);
    f.gauge("sglang:fwd_occupancy", "The forward occupancy.", occupancy);
    f.gauge("sglang:new_token_ratio", "The new token ratio.", 0.7);
    f.gauge(
        "sglang:is_cuda_graph",
        "Whether the batch is using CUDA graph.",
        1.0,
    );
    speculation_gauges(f);
    let with_pid = merged(&f.sched, &[("pid", pid)]);
    header(
        f.out,
        "sglang:num_paused_reqs",
        "The number of paused requests by async weight sync.",
        "gauge",
    );
    write_raw(f.out, "sglang:num_paused_reqs", with_pid, "0.0");
    let slots = 8.0;
    let adapters = f64::from(s.exposure.lora_adapters).min(slots);
    f.gauge(
        "sglang:lora_pool_slots_used",
        "The number of LoRA pool slots in use.",
        adapters,
    );
    f.gauge(
        "sglang:lora_pool_slots_total",
        "The total number of LoRA pool slots.",
        slots,
    );
    f.gauge(
        "sglang:lora_pool_utilization",
        "The LoRA pool utilization.",
        adapters / slots,
    );
    f.gauge(
        "sglang:hicache_host_used_tokens",
        "The number of used tokens in the host KV cache.",
        0.0,
    );
    f.gauge(
        "sglang:hicache_host_total_tokens",
        "The total number of tokens in the host KV cache.",
        0.0,
    );
    for name in [
        "sglang:num_prefill_bootstrap_queue_reqs",
        "sglang:num_prefill_inflight_queue_reqs",
        "sglang:num_decode_prealloc_queue_reqs",
        "sglang:num_decode_transfer_queue_reqs",
        "sglang:num_decode_host_receive_queue_reqs",
        "sglang:num_decode_deferred_kv_release_reqs",
    ] {
        f.gauge(
            name,
            "The number of requests in a disaggregation queue.",
            0.0,
        );
    }
    constants(f, capacity, s);
}

/// A 3-token draft model accepting two tokens per step on average (as the vLLM dialect).
fn speculation_gauges(f: &mut Families<'_, '_>) {
    for (name, help, value) in [
        (
            "sglang:spec_accept_length",
            "The average acceptance length of speculative decoding.",
            2.0,
        ),
        (
            "sglang:spec_accept_rate",
            "The acceptance rate of speculative decoding.",
            1.0 / 3.0,
        ),
        (
            "sglang:spec_num_steps",
            "The number of speculative decoding steps.",
            3.0,
        ),
        (
            "sglang:spec_num_draft_tokens",
            "The number of draft tokens per step.",
            4.0,
        ),
        (
            "sglang:spec_cap_length",
            "The cap on the speculative acceptance length.",
            4.0,
        ),
        (
            "sglang:spec_block_accept_length",
            "The average block acceptance length.",
            2.0,
        ),
    ] {
        f.gauge(name, help, value);
    }
}

/// Startup and configuration constants of a 7B model on an 80 GB GPU.
fn constants(f: &mut Families<'_, '_>, capacity: f64, s: &Snapshot<'_>) {
    let kv_gb = capacity * crate::sim::dialect::KV_BYTES_PER_TOKEN / 1e9;
    for (name, help, value) in [
        ("sglang:page_size", "The page size of the KV cache.", 1.0),
        (
            "sglang:num_pages",
            "The number of pages in the KV cache.",
            capacity,
        ),
        (
            "sglang:context_len",
            "The context length of the model.",
            8192.0,
        ),
        (
            "sglang:weight_memory_usage_gb",
            "The memory used by model weights (GB).",
            14.2,
        ),
        (
            "sglang:kv_cache_memory_usage_gb",
            "The memory used by the KV cache (GB).",
            kv_gb,
        ),
        (
            "sglang:startup_available_gpu_memory_gb",
            "The available GPU memory at startup (GB).",
            78.6,
        ),
        (
            "sglang:max_running_requests_under_SLO",
            "The maximum number of running requests under the SLO.",
            s.profile.max_running as f64,
        ),
        (
            "sglang:num_streaming_sessions",
            "The number of streaming sessions.",
            0.0,
        ),
        (
            "sglang:streaming_session_held_tokens",
            "The tokens held by streaming sessions.",
            0.0,
        ),
        (
            "sglang:num_unique_running_routing_keys",
            "The number of unique routing keys running.",
            0.0,
        ),
    ] {
        f.gauge(name, help, value);
    }
    f.by(
        "sglang:graph_memory_usage_gb",
        "The memory used by CUDA graphs (GB).",
        "gauge",
        "phase",
        &[("prefill", 0.13), ("decode", 0.31)],
    );
    f.untouched(
        "sglang:weight_load_duration_seconds",
        "The duration of the last weight update by source.",
        "gauge",
    );
    // Routing-key gauge histograms: one gauge per `gt < count <= le` range; no request here
    // carries a routing key, so every range holds 0 keys.
    let bounds = [
        "0", "1", "2", "3", "5", "7", "10", "20", "50", "100", "200", "+Inf",
    ];
    for name in [
        "sglang:routing_key_running_req_count",
        "sglang:routing_key_all_req_count",
    ] {
        header(f.out, name, "Requests per routing key.", "gauge");
        for pair in bounds.windows(2) {
            let labels = merged(&f.sched, &[("gt", pair[0]), ("le", pair[1])]);
            write_raw(f.out, name, labels, "0.0");
        }
    }
}

/// Scheduler counters and histograms: token sources, phase time, retraction detail, MFU,
/// DP attention, grammar and disaggregation.
pub(super) fn scheduler_counters(f: &mut Families<'_, '_>, s: &Snapshot<'_>) {
    let t = s.totals;
    let l = s.latencies;
    let computed = (t.prompt_tokens - t.cached_tokens.min(t.prompt_tokens)) as f64;
    let cached = t.cached_tokens as f64;
    let mean_prompt = if l.prompt_tokens.count > 0 {
        l.prompt_tokens.sum / l.prompt_tokens.count as f64
    } else {
        0.0
    };
    let retracted = t.preemptions as f64;
    f.counter(
        "sglang:num_retracted_input_tokens_total",
        "Total number of input tokens of retracted requests.",
        (retracted * mean_prompt).round(),
    );
    f.counter(
        "sglang:num_retracted_output_tokens_total",
        "Total number of output tokens of retracted requests.",
        0.0,
    );
    f.by(
        "sglang:realtime_tokens_total",
        "Total number of tokens processed, updated in real time.",
        "counter",
        "mode",
        &[
            ("prefill_compute", computed),
            ("prefill_cache", cached),
            ("decode", t.generated_tokens as f64),
        ],
    );
    f.by(
        "sglang:prefill_effective_tokens_total",
        "Prefill tokens by where they came from.",
        "counter",
        "mode",
        &[
            ("device_hit", cached),
            ("host_hit", 0.0),
            ("storage_hit", 0.0),
            ("input", computed),
        ],
    );
    f.by(
        "sglang:forward_execution_seconds_total",
        "Time spent in forward passes by forward mode.",
        "counter",
        "category",
        &[("extend", t.prefill_seconds), ("decode", t.decode_seconds)],
    );
    let busy = t.prefill_seconds + t.decode_seconds;
    f.counter(
        "sglang:scheduler_idle_seconds_total",
        "Time the scheduler spent idle.",
        0.1 * busy,
    );
    f.counter(
        "sglang:scheduler_process_cpu_seconds_total",
        "CPU time of the scheduler process.",
        1.05 * busy,
    );
    f.untouched(
        "sglang:scheduler_stage_seconds_total",
        "Time the scheduler spent per stage.",
        "counter",
    );
    f.untouched(
        "sglang:cuda_graph_passes_total",
        "Forward passes by CUDA graph use.",
        "counter",
    );
    for name in [
        "sglang:num_grammar_total",
        "sglang:num_grammar_cache_hit_total",
        "sglang:num_grammar_aborted_total",
        "sglang:num_grammar_timeout_total",
        "sglang:num_bootstrap_failed_reqs_total",
        "sglang:num_transfer_failed_reqs_total",
        "sglang:num_prefill_retries_total",
        "sglang:num_decode_host_receive_reqs_total",
        "sglang:prefetched_tokens_total",
        "sglang:backuped_tokens_total",
        "sglang:evicted_tokens_total",
    ] {
        f.counter(name, "A subsystem this engine does not use.", 0.0);
    }
    f.untouched(
        "sglang:decode_deferred_kv_release_total",
        "Deferred KV releases by outcome.",
        "counter",
    );
    let [flops, read, write] = performance_estimates(t);
    f.counter(
        "sglang:estimated_flops_per_gpu_total",
        "Estimated FLOPs per GPU.",
        flops,
    );
    f.counter(
        "sglang:estimated_read_bytes_per_gpu_total",
        "Estimated bytes read per GPU.",
        read,
    );
    f.counter(
        "sglang:estimated_write_bytes_per_gpu_total",
        "Estimated bytes written per GPU.",
        write,
    );
    dp_attention(f, s);
    let sched = f.sched;
    let short = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];
    for (name, help) in [
        (
            "sglang:grammar_compilation_time_seconds",
            "Grammar compilation time.",
        ),
        (
            "sglang:decode_deferred_kv_release_seconds",
            "Time a deferred KV release waited.",
        ),
    ] {
        f.histogram(name, help, &sched, &Histogram::new(&short));
    }
    // The radix cache's default eviction buckets (`SGLANG_BUCKET_EVICTION_DURATION`).
    let eviction = [
        0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008, 0.009, 0.01, 0.02, 0.03, 0.04,
        0.05, 0.1, 0.2, 0.5, 1.0,
    ];
    f.histogram(
        "sglang:eviction_duration_seconds",
        "Time spent evicting from the radix cache.",
        &sched,
        &Histogram::new(&eviction),
    );
    f.untouched(
        "sglang:eplb_balancedness",
        "Balancedness of expert load across GPUs.",
        "summary",
    );
}

/// DP attention with a single data-parallel rank: every step balanced, no waiting.
fn dp_attention(f: &mut Families<'_, '_>, s: &Snapshot<'_>) {
    let t = s.totals;
    let tokens = t.step_tokens.sum as f64;
    let sched = f.sched;
    let mut balance = Histogram::new(&[1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0]);
    balance.observe_n(1.0, t.steps);
    f.histogram(
        "sglang:dp_attention_token_imbalance_ratio",
        "Busiest DP rank's tokens over the mean, per sync step.",
        &sched,
        &balance,
    );
    let mut wait = Histogram::new(&[0.0001, 0.001, 0.01, 0.1, 1.0]);
    wait.observe_n(0.0, t.steps);
    f.histogram(
        "sglang:dp_attention_sync_wait_seconds",
        "Time this DP rank waited in the cross-rank sync, per step.",
        &sched,
        &wait,
    );
    let help = "Tokens this DP rank ran, and tokens the busiest rank ran beyond it.";
    f.by(
        "sglang:dp_attention_tokens_total",
        help,
        "counter",
        "kind",
        &[("scheduled", tokens), ("imbalance", 0.0)],
    );
    f.by(
        "sglang:dp_attention_steps_total",
        "DP sync steps by rank state.",
        "counter",
        "rank_state",
        &[("busy", t.steps as f64), ("idle", 0.0)],
    );
    // Each token attends to the context it extends: about the mean context per step.
    let pairs = tokens * (s.context_tokens.max(1) as f64);
    f.by(
        "sglang:dp_attention_pairs_total",
        "Attended (query, key) pairs.",
        "counter",
        "kind",
        &[("scheduled", pairs), ("imbalance", 0.0)],
    );
}

/// Tokenizer-side families beyond the schema's, and the HTTP middleware.
pub(super) fn tokenizer_and_http(f: &mut Families<'_, '_>, s: &Snapshot<'_>) {
    let t = s.totals;
    let l = s.latencies;
    let tok = f.tok;
    let streaming = merged(&tok, &[("is_streaming", "true")]);
    for (name, help, value) in [
        (
            "sglang:num_so_requests_total",
            "Number of structured output requests.",
            0.0,
        ),
        (
            "sglang:spec_verify_calls_total",
            "Number of speculative verify calls.",
            (t.generated_tokens / 2) as f64,
        ),
    ] {
        header(f.out, name, help, "counter");
        write_raw(f.out, name, tok, &py_float(value));
    }
    f.histogram(
        "sglang:request_time_per_output_token_seconds",
        "Histogram of time per output token per request in seconds.",
        &streaming,
        &l.tpot,
    );
    for (name, help, h) in [
        (
            "sglang:prompt_tokens_histogram",
            "Histogram of prompt token length.",
            &l.prompt_tokens,
        ),
        (
            "sglang:uncached_prompt_tokens_histogram",
            "Histogram of uncached prompt token length.",
            &l.computed_prompt_tokens,
        ),
        (
            "sglang:generation_tokens_histogram",
            "Histogram of generation token length.",
            &l.output_tokens,
        ),
    ] {
        f.histogram(name, help, &tok, h);
    }
    let loads = Histogram::new(&[0.0001, 0.001, 0.01, 0.1, 1.0]);
    f.histogram(
        "sglang:get_loads_duration_seconds",
        "Duration of get_loads calls.",
        &tok,
        &loads,
    );
    for (name, phases) in [
        (
            "sglang:startup_time_seconds",
            &[
                ("load_weight", 12.4),
                ("kv_cache_allocation", 2.1),
                ("e2e", 31.7),
            ][..],
        ),
        (
            "sglang:startup_cuda_graph_time_seconds",
            &[("prefill", 4.2), ("decode", 5.3)][..],
        ),
    ] {
        header(
            f.out,
            name,
            "Engine startup duration by phase in seconds.",
            "gauge",
        );
        for (phase, seconds) in phases {
            let labels = merged(&tok, &[("phase", phase)]);
            write_raw(f.out, name, labels, &py_float(*seconds));
        }
    }
    http(f, s);
}

/// The HTTP middleware: requests and responses by endpoint, status codes created on use.
fn http(f: &mut Families<'_, '_>, s: &Snapshot<'_>) {
    let t = s.totals;
    let endpoint = [("endpoint", "/v1/chat/completions"), ("method", "POST")];
    let finished = t.finished_stop + t.finished_length + t.aborted;
    let answered = [
        ("200", finished),
        ("400", t.rejected_too_long),
        ("429", s.front.overloaded),
        ("500", s.front.server_errors),
    ];
    let received: u64 =
        answered.iter().map(|(_, n)| n).sum::<u64>() + (s.running + s.waiting) as u64;
    let name = "sglang:http_requests_total";
    header(
        f.out,
        name,
        "Total number of HTTP requests by endpoint and method.",
        "counter",
    );
    write_raw(f.out, name, endpoint, &py_float(received as f64));
    let name = "sglang:http_responses_total";
    header(
        f.out,
        name,
        "Total number of HTTP responses by endpoint, status code and method.",
        "counter",
    );
    for (code, n) in answered.iter().filter(|(_, n)| *n > 0) {
        let labels = merged(&endpoint, &[("status_code", code)]);
        write_raw(f.out, name, labels, &py_float(*n as f64));
    }
    let name = "sglang:http_requests_active";
    header(f.out, name, "Number of HTTP requests in flight.", "gauge");
    write_raw(
        f.out,
        name,
        endpoint,
        &py_float((s.running + s.waiting) as f64),
    );
    let name = "sglang:routing_keys_active";
    header(
        f.out,
        name,
        "Number of routing keys with requests in flight.",
        "gauge",
    );
    write_raw(f.out, name, [], "0.0");
    f.untouched(
        "sglang:func_latency_seconds",
        "Function latency in seconds",
        "histogram",
    );
    let name = "sglang:process_cpu_seconds_total";
    header(
        f.out,
        name,
        "Total user and system CPU time of the SGLang processes.",
        "counter",
    );
    let cpu = 1.1 * (t.prefill_seconds + t.decode_seconds);
    write_raw(f.out, name, [], &py_float(cpu));
}
