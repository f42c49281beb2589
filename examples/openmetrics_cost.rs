//! What the strict OpenMetrics check adds to the lenient parse of the same text, on each
//! engine's body written as conforming OpenMetrics. The two parse the body in pairs, one
//! right after the other (which goes first alternates), and each pair gives a ratio of the
//! two times: on a shared machine whose speed drifts by tens of per cent from one second to
//! the next, the two halves of a pair see the same machine, where blocks of parses timed
//! apart did not. Prints the median time per parse of each side and the median ratio, with
//! its quartiles. Figures go to docs/benchmarks.md.
//!
//! `cargo run --release --example openmetrics_cost [ROUNDS [lenient|strict|both [FIXTURE]]]`
//! (ROUNDS of 200 pairs; naming one side runs only that side, and a part of a fixture's
//! path only that fixture, for a profiler)

use std::io::Write;
use std::time::Instant;

use anyhow::Context;
use llmwatch::exposition::{Mode, parse, parse_openmetrics, write_openmetrics};

const FIXTURES: [&str; 5] = [
    "reconstructed/vllm-0.33.txt",
    "reconstructed/vllm-0.33-multi-model.txt",
    "reconstructed/tgi-3.3.txt",
    "reconstructed/sglang-0.5.23.txt",
    "llamacpp/metrics-during.txt",
];

/// Pairs per round.
const ROUND: usize = 200;

fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::args().nth(1).map_or(Ok(20), |a| a.parse())?;
    let only = std::env::args().nth(2).filter(|side| side != "both");
    let fixture = std::env::args().nth(3).unwrap_or_default();
    let mut out = std::io::stdout();
    if only.is_none() {
        writeln!(
            out,
            "{:<42} {:>11} {:>10} {:>7} {:>14}",
            "fixture (as OpenMetrics)", "lenient µs", "strict µs", "added", "quartiles"
        )?;
    }
    for rel in FIXTURES.into_iter().filter(|f| f.contains(&fixture)) {
        let path = format!("{}/tests/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let om = write_openmetrics(&parse(&text, Mode::Strict)?);
        let lenient = || time(|| parse(&om, Mode::Lenient).map(|e| e.sample_count()));
        let strict = || time(|| parse_openmetrics(&om, Mode::Strict).map(|e| e.sample_count()));
        if let Some(side) = &only {
            for _ in 0..rounds * ROUND {
                match side.as_str() {
                    "strict" => strict()?,
                    _ => lenient()?,
                };
            }
            continue;
        }
        let mut pairs = Vec::with_capacity(rounds * ROUND);
        for i in 0..rounds * ROUND {
            let pair = if i % 2 == 0 {
                (lenient()?, strict()?)
            } else {
                let s = strict()?;
                (lenient()?, s)
            };
            pairs.push(pair);
        }
        let mut ratios: Vec<f64> = pairs.iter().map(|(l, s)| s / l).collect();
        let mut lenient_times: Vec<f64> = pairs.iter().map(|p| p.0).collect();
        let mut strict_times: Vec<f64> = pairs.iter().map(|p| p.1).collect();
        let (l, s) = (median(&mut lenient_times), median(&mut strict_times));
        let mut added = |q: f64| 100.0 * (quantile(&mut ratios, q) - 1.0);
        writeln!(
            out,
            "{rel:<42} {:>11.1} {:>10.1} {:>6.1}% {:>6.1} – {:.1}%",
            l * 1e6,
            s * 1e6,
            added(0.5),
            added(0.25),
            added(0.75)
        )?;
    }
    Ok(())
}

/// Seconds one parse took.
fn time<E: std::error::Error + Send + Sync + 'static>(
    f: impl FnOnce() -> Result<usize, E>,
) -> anyhow::Result<f64> {
    let start = Instant::now();
    let samples = std::hint::black_box(f()?);
    let elapsed = start.elapsed().as_secs_f64();
    anyhow::ensure!(samples > 0, "no samples");
    Ok(elapsed)
}

fn median(values: &mut [f64]) -> f64 {
    quantile(values, 0.5)
}

fn quantile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let at = ((values.len() as f64 - 1.0) * q).round() as usize;
    values.get(at).copied().unwrap_or(f64::NAN)
}
