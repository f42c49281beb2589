//! Times each phase of `llmwatch scrape FILE` in one process (read, check, parse, duplicate
//! check, detect, normalise, and each output format), the median of N runs, for finding where
//! a large scrape's time goes.
//!
//! `cargo run --release --example scrape_phases -- FILE [RUNS]`

use std::io::Write;
use std::time::Instant;

use anyhow::Context;
use llmwatch::commands::render::{Format, write_to};
use llmwatch::commands::scrape::{Body, analyse};
use llmwatch::engines::{Index, detect, normalise};
use llmwatch::exposition::{Mode, parse};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().context("usage: scrape_phases FILE [RUNS]")?;
    let runs: usize = args.next().map_or(Ok(15), |a| a.parse())?;
    let mut phases: Vec<(&str, Vec<f64>)> = Vec::new();
    let mut note = |name: &'static str, started: Instant| {
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        match phases.iter_mut().find(|(n, _)| *n == name) {
            Some((_, times)) => times.push(ms),
            None => phases.push((name, vec![ms])),
        }
    };
    for _ in 0..runs {
        let t = Instant::now();
        let bytes = std::fs::read(&path).with_context(|| format!("reading {path}"))?;
        note("read", t);
        let t = Instant::now();
        let text = std::str::from_utf8(&bytes).context("not UTF-8")?;
        note("utf-8", t);
        let t = Instant::now();
        let exp = parse(text, Mode::Strict)?;
        note("parse", t);
        let t = Instant::now();
        let dups = exp.duplicate_series();
        note("duplicates", t);
        let t = Instant::now();
        let index = Index::new(&exp);
        let detection = detect(&index);
        note("index + detect", t);
        let t = Instant::now();
        let engine = detection.engine.context("no engine")?;
        let readings = normalise(&index, engine, "unknown");
        note("normalise", t);
        let t = Instant::now();
        drop(readings);
        drop(index);
        drop(exp);
        note("drop", t);
        anyhow::ensure!(dups.is_empty(), "duplicates: {dups:?}");
        // The command's own analysis (all of the above, the integrity checks and the
        // summary) and each output format, written to a sink.
        let t = Instant::now();
        let text = std::str::from_utf8(&bytes).context("not UTF-8")?;
        let body = Body {
            origin: &path,
            text,
            openmetrics: false,
        };
        let analysis = analyse(&body, Mode::Strict, None)?;
        note("analyse (command)", t);
        for (name, format) in [
            ("write json", Format::Json),
            ("write prom", Format::Prom),
            ("write table", Format::Table),
        ] {
            let t = Instant::now();
            write_to(&analysis, format, &mut std::io::sink())?;
            note(name, t);
        }
    }
    let mut out = std::io::stdout().lock();
    for (name, mut times) in phases {
        times.sort_by(f64::total_cmp);
        writeln!(out, "{name:>16}: {:7.2} ms", times[times.len() / 2])?;
    }
    Ok(())
}
