//! Parses one file many times: a steady workload for `perf` and `valgrind --tool=callgrind`
//! when profiling the parser (criterion's harness gets in the way of both).
//!
//! `cargo run --release --example parse_loop -- FILE [ITERATIONS]`

use std::io::Write;

use anyhow::Context;
use llmwatch::exposition::{Mode, parse};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().context("usage: parse_loop FILE [ITERATIONS]")?;
    let iterations: usize = args.next().map_or(Ok(3000), |a| a.parse())?;
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let mut samples = 0;
    for _ in 0..iterations {
        samples += parse(&text, Mode::Strict)?.sample_count();
    }
    writeln!(
        std::io::stdout(),
        "{samples} samples in {iterations} parses of {path}"
    )?;
    Ok(())
}
