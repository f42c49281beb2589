//! TGI 3.x as `metrics-exporter-prometheus` 0.15 writes it: bare counter names without
//! `_total`, Rust float formatting (`7`, `0.00015000000000000001`), a blank line after each
//! family, family order random per scrape, series that appear only once touched, duration
//! buckets `0.0001 · 1.5^k` for k = 1..35, and a summary.

use std::fmt::Write as _;

use super::{Snapshot, header, write_raw};
use crate::sim::engine::{StepSeconds, Totals};
use crate::sim::record::{Buckets, Histogram};

/// TGI's bucket sets: every duration uses the same geometric bounds; token counts use 100
/// linear bounds up to `max_total_tokens` (4,096 here).
pub fn tgi_buckets() -> Buckets {
    let duration = StepSeconds::bounds();
    Buckets {
        ttft: duration.clone(),
        itl: duration.clone(),
        e2e: duration.clone(),
        queue: duration.clone(),
        phase: duration,
        tokens: (1..=100).map(|k| 40.96 * f64::from(k)).collect(),
    }
}

/// Rust's `Display` for `f64`: shortest round trip, no `.0` on integers.
fn rust_float(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    format!("{v}")
}

fn family(head: &str, help: Option<&str>, kind: &str, body: impl FnOnce(&mut String)) -> String {
    let mut out = String::new();
    match help {
        Some(help) => header(&mut out, head, help, kind),
        None => {
            let _ = writeln!(out, "# TYPE {head} {kind}");
        }
    }
    body(&mut out);
    out.push('\n');
    out
}

fn histogram(name: &str, help: Option<&str>, h: &Histogram) -> String {
    labelled_histogram(name, help, &[(None, h.clone())])
}

/// A histogram family whose series differ by `method` (none for request histograms).
fn labelled_histogram(
    name: &str,
    help: Option<&str>,
    series: &[(Option<&str>, Histogram)],
) -> String {
    family(name, help, "histogram", |out| {
        let bucket = format!("{name}_bucket");
        for (method, h) in series {
            let method: Vec<(&str, &str)> = method.map(|m| ("method", m)).into_iter().collect();
            for (le, count) in h.cumulative() {
                let le = rust_float(le);
                let labels = method.iter().copied().chain([("le", le.as_str())]);
                write_raw(out, &bucket, labels, &count.to_string());
            }
            write_raw(
                out,
                &format!("{name}_sum"),
                method.iter().copied(),
                &rust_float(h.sum),
            );
            write_raw(
                out,
                &format!("{name}_count"),
                method.iter().copied(),
                &h.count.to_string(),
            );
        }
    })
}

/// A counter family whose series differ by one label; zero series are left out, as the
/// exporter creates a series on its first increment.
fn labelled_counter(
    name: &str,
    help: Option<&str>,
    label: &str,
    values: &[(&str, u64)],
) -> Option<String> {
    let touched: Vec<&(&str, u64)> = values.iter().filter(|(_, n)| *n > 0).collect();
    if touched.is_empty() {
        return None;
    }
    Some(family(name, help, "counter", |out| {
        for (value, n) in touched {
            write_raw(out, name, [(label, *value)], &n.to_string());
        }
    }))
}

fn scalar(name: &str, help: Option<&str>, kind: &str, value: u64) -> String {
    family(name, help, kind, |out| {
        write_raw(out, name, [], &value.to_string())
    })
}

/// Renders TGI's `/metrics` body. `order_seed` shuffles the families, as TGI's `HashMap`
/// does differently on every scrape.
pub fn render_tgi(s: &Snapshot<'_>, order_seed: u64) -> String {
    let t = s.totals;
    let succeeded = t.finished_stop + t.finished_length;
    let received = succeeded + t.rejected_too_long + (s.running + s.waiting) as u64;
    let mut families = vec![
        // Chat requests are counted twice (handler and generate_internal).
        scalar(
            "tgi_request_count",
            Some("Total number of requests"),
            "counter",
            2 * received,
        ),
        scalar(
            "tgi_request_success",
            Some("Number of successful requests"),
            "counter",
            succeeded,
        ),
        scalar(
            "tgi_queue_size",
            Some("Current queue size"),
            "gauge",
            s.waiting as u64,
        ),
        scalar(
            "tgi_batch_current_size",
            Some("Current batch size"),
            "gauge",
            s.running as u64,
        ),
        // The batch reserves each request's prompt and what it has generated so far.
        scalar(
            "tgi_batch_current_max_tokens",
            Some("Maximum tokens for the current batch"),
            "gauge",
            s.context_tokens,
        ),
    ];
    families.extend(
        [
            labelled_counter(
                "tgi_request_failure",
                None,
                "err",
                &[
                    ("validation", t.rejected_too_long),
                    ("generation", s.front.server_errors),
                    ("overloaded", s.front.overloaded),
                    ("dropped", t.aborted),
                ],
            ),
            labelled_counter(
                "tgi_batch_concat",
                None,
                "reason",
                &[("backpressure", t.joined_running_batch)],
            ),
            labelled_counter(
                "tgi_batch_inference_failure",
                None,
                "method",
                &[("decode", s.front.server_errors)],
            ),
        ]
        .into_iter()
        .flatten(),
    );
    // A finished request was received, so this covers every request histogram.
    if received > 0 {
        families.extend(request_histograms(s, received));
    }
    if t.steps > 0 {
        families.extend(batch_families(t));
    }
    shuffle(&mut families, order_seed);
    families.concat()
}

/// Validation for every request received (a fixed 0.8 ms of tokenisation), the rest for
/// every request that finished.
fn request_histograms(s: &Snapshot<'_>, received: u64) -> Vec<String> {
    let l = s.latencies;
    let buckets = tgi_buckets();
    let mut validation = Histogram::new(&buckets.queue);
    validation.observe_n(0.0008, received);
    vec![
        histogram("tgi_request_duration", Some("Request duration"), &l.e2e),
        histogram(
            "tgi_request_validation_duration",
            Some("Request validation duration"),
            &validation,
        ),
        histogram(
            "tgi_request_queue_duration",
            Some("Request queue duration"),
            &l.queue,
        ),
        histogram(
            "tgi_request_inference_duration",
            Some("Request inference duration"),
            &l.inference,
        ),
        histogram(
            "tgi_request_mean_time_per_token_duration",
            Some("Mean time per token per request"),
            &l.tpot,
        ),
        histogram(
            "tgi_request_input_length",
            Some("Input token length per request"),
            &l.prompt_tokens,
        ),
        histogram(
            "tgi_request_generated_tokens",
            Some("Generated tokens per request"),
            &l.output_tokens,
        ),
        histogram(
            "tgi_request_max_new_tokens",
            Some("Maximum new tokens per request"),
            &l.max_tokens,
        ),
    ]
}

/// The per-step families: forward calls and their phases, batch sizes, and the
/// speculation summary (0 speculated tokens on every step, as without a draft model).
fn batch_families(t: &Totals) -> Vec<String> {
    let bounds = StepSeconds::bounds();
    let phase = |counts: &[u64; StepSeconds::SLOTS], sum: f64| Histogram {
        bounds: bounds.clone(),
        counts: counts.to_vec(),
        sum,
        count: counts.iter().sum(),
    };
    let forward = [
        (
            Some("prefill"),
            phase(&t.step_seconds.prefill, t.prefill_seconds),
        ),
        (
            Some("decode"),
            phase(&t.step_seconds.decode, t.decode_seconds),
        ),
    ];
    // Token processing, filtering and concatenation on the shard: fixed costs per step.
    let fixed = |seconds: f64, n: u64| {
        let mut h = Histogram::new(&bounds);
        h.observe_n(seconds, n);
        h
    };
    let per_method = |seconds: f64| {
        [
            (Some("prefill"), fixed(seconds, t.prefill_steps)),
            (Some("decode"), fixed(seconds, t.steps)),
        ]
    };
    let decode_phase = per_method(0.0003);
    let filter = per_method(0.0002);
    let concat = [(Some("decode"), fixed(0.0005, t.joined_running_batch))];
    let mut next_size = Histogram::new(&(1..=1024).map(f64::from).collect::<Vec<_>>());
    for (size, n) in t.admitted_per_step.iter().enumerate() {
        next_size.observe_n(size as f64, *n);
    }
    vec![
        labelled_counter(
            "tgi_batch_inference_count",
            Some("Inference calls per method (prefill or decode)"),
            "method",
            &[("prefill", t.prefill_steps), ("decode", t.steps)],
        )
        .unwrap_or_default(),
        labelled_counter(
            "tgi_batch_inference_success",
            Some("Number of successful inference calls per method (prefill or decode)"),
            "method",
            &[("prefill", t.prefill_steps), ("decode", t.steps)],
        )
        .unwrap_or_default(),
        labelled_histogram(
            "tgi_batch_forward_duration",
            Some("Batch forward duration per method (prefill or decode)"),
            &forward,
        ),
        labelled_histogram(
            "tgi_batch_inference_duration",
            Some("Batch inference duration"),
            &forward,
        ),
        labelled_histogram(
            "tgi_batch_decode_duration",
            Some("Time spent decoding a batch per method (prefill or decode)"),
            &decode_phase,
        ),
        labelled_histogram(
            "tgi_batch_filter_duration",
            Some(
                "Time spent filtering batches and sending generated tokens per method (prefill or decode)",
            ),
            &filter,
        ),
        labelled_histogram("tgi_batch_concat_duration", None, &concat),
        histogram("tgi_batch_next_size", Some("Batch size"), &next_size),
        skipped_tokens(t.steps),
    ]
}

/// `tgi_request_skipped_tokens`: a summary over a rolling window, every step observing 0.
fn skipped_tokens(steps: u64) -> String {
    let name = "tgi_request_skipped_tokens";
    family(
        name,
        Some("Speculated tokens per request"),
        "summary",
        |out| {
            for q in ["0", "0.5", "0.9", "0.95", "0.99", "0.999", "1"] {
                write_raw(out, name, [("quantile", q)], "0");
            }
            write_raw(out, &format!("{name}_sum"), [], "0");
            write_raw(out, &format!("{name}_count"), [], &steps.to_string());
        },
    )
}

/// A small deterministic shuffle (xorshift), enough to make family order vary per scrape.
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed | 1;
    for i in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        items.swap(i, (state % (i as u64 + 1)) as usize);
    }
}
