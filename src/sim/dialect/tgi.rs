//! TGI 3.x as `metrics-exporter-prometheus` 0.15 writes it: bare counter names without
//! `_total`, Rust float formatting (`7`, `0.00015000000000000001`), a blank line after each
//! family, family order random per scrape, series that appear only once touched, duration
//! buckets `0.0001 · 1.5^k` for k = 1..35, and a summary.

use std::fmt::Write as _;

use super::{Snapshot, header, write_raw};
use crate::sim::record::{Buckets, Histogram};

/// TGI's bucket sets: every duration uses the same geometric bounds; token counts use 100
/// linear bounds up to `max_total_tokens` (4,096 here).
pub fn tgi_buckets() -> Buckets {
    let duration: Vec<f64> = (1..=35).map(|k| 0.0001 * 1.5f64.powi(k)).collect();
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

fn histogram(name: &str, help: &str, h: &Histogram) -> String {
    family(name, Some(help), "histogram", |out| {
        let bucket = format!("{name}_bucket");
        for (le, count) in h.cumulative() {
            let le = rust_float(le);
            write_raw(out, &bucket, [("le", le.as_str())], &count.to_string());
        }
        write_raw(out, &format!("{name}_sum"), [], &rust_float(h.sum));
        write_raw(out, &format!("{name}_count"), [], &h.count.to_string());
    })
}

/// Renders TGI's `/metrics` body. `order_seed` shuffles the families, as TGI's `HashMap`
/// does differently on every scrape.
pub fn render_tgi(s: &Snapshot<'_>, order_seed: u64) -> String {
    let t = s.totals;
    let l = s.latencies;
    let succeeded = t.finished_stop + t.finished_length;
    let received = succeeded + t.rejected_too_long + (s.running + s.waiting) as u64;
    let mut families = vec![
        // Chat requests are counted twice (handler and generate_internal).
        family(
            "tgi_request_count",
            Some("Total number of requests"),
            "counter",
            |out| {
                write_raw(out, "tgi_request_count", [], &(2 * received).to_string());
            },
        ),
        family(
            "tgi_request_success",
            Some("Number of successful requests"),
            "counter",
            |out| {
                write_raw(out, "tgi_request_success", [], &succeeded.to_string());
            },
        ),
        family(
            "tgi_queue_size",
            Some("Current queue size"),
            "gauge",
            |out| {
                write_raw(out, "tgi_queue_size", [], &s.waiting.to_string());
            },
        ),
        family(
            "tgi_batch_current_size",
            Some("Current batch size"),
            "gauge",
            |out| {
                write_raw(out, "tgi_batch_current_size", [], &s.running.to_string());
            },
        ),
    ];
    // Each `err` child appears with its first failure, as the exporter creates it on use.
    let failures: Vec<(&str, u64)> = [
        ("validation", t.rejected_too_long),
        ("generation", s.front.server_errors),
        ("overloaded", s.front.overloaded),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .collect();
    if !failures.is_empty() {
        families.push(family("tgi_request_failure", None, "counter", |out| {
            for (err, n) in &failures {
                write_raw(out, "tgi_request_failure", [("err", *err)], &n.to_string());
            }
        }));
    }
    if l.e2e.count > 0 {
        families.extend([
            histogram("tgi_request_duration", "Request duration", &l.e2e),
            histogram(
                "tgi_request_queue_duration",
                "Request queue duration",
                &l.queue,
            ),
            histogram(
                "tgi_request_mean_time_per_token_duration",
                "Mean time per token per request",
                &l.tpot,
            ),
            histogram(
                "tgi_request_input_length",
                "Input token length per request",
                &l.prompt_tokens,
            ),
            histogram(
                "tgi_request_generated_tokens",
                "Generated tokens per request",
                &l.output_tokens,
            ),
        ]);
    }
    if t.steps > 0 {
        families.push(family(
            "tgi_batch_forward_duration",
            Some("Batch forward duration per method (prefill or decode)"),
            "histogram",
            |out| {
                for (method, seconds) in
                    [("prefill", t.prefill_seconds), ("decode", t.decode_seconds)]
                {
                    let labels = [("method", method)];
                    let inf = [("method", method), ("le", "+Inf")];
                    write_raw(
                        out,
                        "tgi_batch_forward_duration_bucket",
                        inf,
                        &t.steps.to_string(),
                    );
                    write_raw(
                        out,
                        "tgi_batch_forward_duration_sum",
                        labels,
                        &rust_float(seconds),
                    );
                    write_raw(
                        out,
                        "tgi_batch_forward_duration_count",
                        labels,
                        &t.steps.to_string(),
                    );
                }
            },
        ));
    }
    shuffle(&mut families, order_seed);
    families.concat()
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
