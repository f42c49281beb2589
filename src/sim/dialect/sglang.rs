//! SGLang 0.5 as `prometheus_client` writes it in multiprocess mode: `sglang:` names, no
//! `_created`, `_sum`/`_count` before the buckets, scheduler series with rank labels,
//! tokenizer series with `is_streaming`, and a `pid` label on the old retraction gauge.

use super::{Snapshot, header, py_float, write_raw};
use crate::sim::record::{Buckets, Histogram};

mod more;

/// SGLang's default buckets (`sglang/srt/observability/metrics_collector.py`).
pub fn sglang_buckets() -> Buckets {
    Buckets {
        ttft: vec![
            0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0,
            200.0, 400.0,
        ],
        itl: vec![
            0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.020, 0.025, 0.030, 0.035, 0.040, 0.060,
            0.080, 0.100, 0.200, 0.400, 0.600, 0.800, 1.0, 2.0, 4.0, 6.0, 8.0,
        ],
        e2e: vec![
            0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0,
            200.0, 400.0, 600.0, 1200.0, 1800.0, 2400.0,
        ],
        queue: vec![
            0.0, 0.001, 0.005, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 15.0,
            20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0, 200.0, 300.0, 400.0, 500.0,
            600.0, 700.0, 800.0, 900.0, 1000.0, 1200.0, 1400.0, 1600.0, 1800.0, 2000.0, 2500.0,
            3000.0,
        ],
        phase: (0..30).map(|i| 0.001 * 1.62f64.powi(i)).collect(),
        // `default_bucket_prompt_tokens` of the 0.5 collector (prompt and generation).
        tokens: vec![
            100.0, 300.0, 500.0, 700.0, 1000.0, 1500.0, 2000.0, 3000.0, 4000.0, 5000.0, 6000.0,
            7000.0, 8000.0, 9000.0, 10000.0, 12000.0, 15000.0, 20000.0, 22000.0, 25000.0, 30000.0,
            35000.0, 40000.0, 66000.0, 99000.0, 132000.0, 300000.0, 600000.0, 900000.0, 1100000.0,
        ],
    }
}

fn write_histogram(out: &mut String, name: &str, labels: &[(&str, &str)], h: &Histogram) {
    write_raw(
        out,
        &format!("{name}_sum"),
        labels.iter().copied(),
        &py_float(h.sum),
    );
    write_raw(
        out,
        &format!("{name}_count"),
        labels.iter().copied(),
        &py_float(h.count as f64),
    );
    let bucket = format!("{name}_bucket");
    for (le, count) in h.cumulative() {
        let le = py_float(le);
        let with_le = labels.iter().copied().chain([("le", le.as_str())]);
        write_raw(out, &bucket, with_le, &py_float(count as f64));
    }
}

/// Renders SGLang's `/metrics` body. All traffic counts as streaming.
pub fn render_sglang(s: &Snapshot<'_>, pid: u32) -> String {
    let t = s.totals;
    let l = s.latencies;
    let mut out = String::with_capacity(16 * 1024);
    let sched = [
        ("engine_type", "unified"),
        ("model_name", s.model),
        ("moe_ep_rank", "0"),
        ("pp_rank", "0"),
        ("tp_rank", "0"),
    ];
    let tok = [("engine_type", "unified"), ("model_name", s.model)];
    let streaming = [tok[0], ("is_streaming", "true"), tok[1]];
    let gauge = |out: &mut String, name: &str, help: &str, value: f64| {
        header(out, name, help, "gauge");
        write_raw(out, name, sched, &py_float(value));
    };
    gauge(
        &mut out,
        "sglang:num_running_reqs",
        "The number of running requests.",
        s.running as f64,
    );
    gauge(
        &mut out,
        "sglang:num_queue_reqs",
        "The number of requests in the waiting queue.",
        s.waiting as f64,
    );
    // SGLang rounds token usage to two decimals.
    gauge(
        &mut out,
        "sglang:token_usage",
        "The token usage.",
        (s.kv_usage * 100.0).round() / 100.0,
    );
    let pid = pid.to_string();
    header(
        &mut out,
        "sglang:num_retracted_reqs",
        "The number of retracted requests.",
        "gauge",
    );
    let with_pid = [
        sched[0],
        sched[1],
        sched[2],
        ("pid", pid.as_str()),
        sched[3],
        sched[4],
    ];
    write_raw(&mut out, "sglang:num_retracted_reqs", with_pid, "0.0");
    let mut families = more::Families {
        out: &mut out,
        sched,
        tok,
    };
    more::scheduler_gauges(&mut families, s, &pid);
    more::scheduler_counters(&mut families, s);
    header(
        &mut out,
        "sglang:num_retracted_requests_total",
        "Total number of retracted requests.",
        "counter",
    );
    write_raw(
        &mut out,
        "sglang:num_retracted_requests_total",
        sched,
        &py_float(t.preemptions as f64),
    );
    // SGLang counts aborted requests among the processed ones.
    let finished = t.finished_stop + t.finished_length + t.aborted;
    for (name, help, value) in [
        (
            "sglang:prompt_tokens_total",
            "Number of prefill tokens processed.",
            l.prompt_tokens.sum,
        ),
        (
            "sglang:generation_tokens_total",
            "Number of generation tokens processed.",
            l.output_tokens.sum,
        ),
        (
            "sglang:num_requests_total",
            "Number of requests processed.",
            finished as f64,
        ),
    ] {
        header(&mut out, name, help, "counter");
        write_raw(&mut out, name, streaming, &py_float(value));
    }
    header(
        &mut out,
        "sglang:cached_tokens_total",
        "Number of cached prompt tokens by source (device/host/storage).",
        "counter",
    );
    let device = [tok[0], ("cache_source", "device"), tok[1]];
    write_raw(
        &mut out,
        "sglang:cached_tokens_total",
        device,
        &py_float(t.cached_tokens as f64),
    );
    header(
        &mut out,
        "sglang:num_aborted_requests_total",
        "Number of requests aborted.",
        "counter",
    );
    let aborted = py_float(t.aborted as f64);
    write_raw(&mut out, "sglang:num_aborted_requests_total", tok, &aborted);
    for (name, help, labels, h) in [
        (
            "sglang:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            &streaming[..],
            &l.ttft,
        ),
        (
            "sglang:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            &tok[..],
            &l.itl,
        ),
        (
            "sglang:e2e_request_latency_seconds",
            "Histogram of End-to-end request latency in seconds",
            &streaming[..],
            &l.e2e,
        ),
        (
            "sglang:queue_time_seconds",
            "Histogram of queueing time in seconds.",
            &sched[..],
            &l.queue,
        ),
    ] {
        header(&mut out, name, help, "histogram");
        write_histogram(&mut out, name, labels, h);
    }
    let name = "sglang:per_stage_req_latency_seconds";
    header(
        &mut out,
        name,
        "The latency of each stage of requests.",
        "histogram",
    );
    // Tokenisation is a fixed 0.8 ms per finished request; the engine model times the
    // rest (its queue time is in `queue_time_seconds`, whose buckets differ).
    let mut tokenize = Histogram::new(&l.prefill.bounds);
    tokenize.observe_n(0.0008, l.e2e.count);
    for (stage, h) in [
        ("tokenize", &tokenize),
        ("prefill_forward", &l.prefill),
        ("decode_loop", &l.decode),
    ] {
        let labels = [
            sched[0],
            sched[1],
            sched[2],
            sched[3],
            ("stage", stage),
            sched[4],
        ];
        write_histogram(&mut out, name, &labels, h);
    }
    let mut families = more::Families {
        out: &mut out,
        sched,
        tok,
    };
    more::tokenizer_and_http(&mut families, s);
    out
}
