//! What the strict OpenMetrics check adds per histogram bucket, apart from everything else a
//! body holds: one histogram of 10,000 buckets whose bounds are short integers (`100`, `101`,
//! …) or 19-byte decimals (`0.00010000000000007`, …), parsed leniently or strictly. Meant for
//! an instruction counter: the difference between the two sides' counts, less a run of no
//! rounds, divided by rounds × 10,000, is the cost per bucket. Figures go to
//! docs/benchmarks.md.
//!
//! `cargo run --release --example openmetrics_bucket_cost ROUNDS lenient|strict short|long`

use std::io::Write;

use anyhow::Context;
use llmwatch::exposition::{Mode, parse, parse_openmetrics};

const BUCKETS: u64 = 10_000;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: openmetrics_bucket_cost ROUNDS lenient|strict short|long";
    let rounds: usize = args.next().context(usage)?.parse().context(usage)?;
    let strict = match args.next().as_deref() {
        Some("strict") => true,
        Some("lenient") => false,
        _ => anyhow::bail!(usage),
    };
    let body = histogram(args.next().as_deref() == Some("short"));
    let mut samples = 0;
    for _ in 0..rounds {
        samples += if strict {
            parse_openmetrics(&body, Mode::Strict)?.sample_count()
        } else {
            parse(&body, Mode::Lenient)?.sample_count()
        };
    }
    writeln!(std::io::stdout(), "{samples} samples")?;
    Ok(())
}

/// A conforming OpenMetrics histogram of [`BUCKETS`] finite buckets.
fn histogram(short: bool) -> String {
    let mut body = String::from("# TYPE x histogram\n");
    let count = |i: u64| 5 + i / 3;
    for i in 0..BUCKETS {
        let le = if short {
            (100 + i).to_string()
        } else {
            format!("0.{:017}", 10_000_000_000_000 + i * 7)
        };
        body.push_str(&format!("x_bucket{{le=\"{le}\"}} {}\n", count(i)));
    }
    let total = count(BUCKETS - 1);
    body.push_str(&format!(
        "x_bucket{{le=\"+Inf\"}} {total}\nx_count {total}\nx_sum 1\n# EOF\n"
    ));
    body
}
