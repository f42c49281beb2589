//! What the strict OpenMetrics check adds to the lenient parse of the same text, on each
//! engine's body written as conforming OpenMetrics. Runs the two in alternating blocks so a
//! noisy machine slows both alike, and prints the median time per parse of each and the
//! ratio. Figures go to docs/benchmarks.md.
//!
//! `cargo run --release --example openmetrics_cost [ROUNDS [lenient|strict [FIXTURE]]]` (naming
//! one side runs only that side, and a part of a fixture's path only that fixture, for a
//! profiler)

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

/// Parses per timed block.
const BLOCK: usize = 200;

fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::args().nth(1).map_or(Ok(40), |a| a.parse())?;
    let only = std::env::args().nth(2);
    let fixture = std::env::args().nth(3).unwrap_or_default();
    let runs = |side: &str| only.as_deref().is_none_or(|o| o == side);
    let mut out = std::io::stdout();
    writeln!(
        out,
        "{:<42} {:>12} {:>12} {:>8}",
        "fixture (as OpenMetrics)", "lenient µs", "strict µs", "added"
    )?;
    for rel in FIXTURES.into_iter().filter(|f| f.contains(&fixture)) {
        let path = format!("{}/tests/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let om = write_openmetrics(&parse(&text, Mode::Strict)?);
        let (mut lenient, mut strict) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            if runs("lenient") {
                lenient.push(per_parse(|| {
                    parse(&om, Mode::Lenient).map(|e| e.sample_count())
                })?);
            }
            if runs("strict") {
                strict.push(per_parse(|| {
                    parse_openmetrics(&om, Mode::Strict).map(|e| e.sample_count())
                })?);
            }
        }
        if only.is_some() {
            continue;
        }
        let (l, s) = (median(&mut lenient), median(&mut strict));
        writeln!(
            out,
            "{rel:<42} {l:>12.1} {s:>12.1} {:>7.1}%",
            100.0 * (s / l - 1.0)
        )?;
    }
    Ok(())
}

/// Microseconds per call over one block.
fn per_parse<E: std::error::Error + Send + Sync + 'static>(
    mut f: impl FnMut() -> Result<usize, E>,
) -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut samples = 0;
    for _ in 0..BLOCK {
        samples += std::hint::black_box(f()?);
    }
    anyhow::ensure!(samples > 0, "no samples");
    Ok(start.elapsed().as_secs_f64() * 1e6 / BLOCK as f64)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
