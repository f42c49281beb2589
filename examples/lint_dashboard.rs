//! `lint` on a big dashboard: writes a Grafana dashboard of about SIZE bytes (the project's
//! exported dashboards' panels repeated, each query kept, ids renumbered) to PATH, then lints
//! it in-process REPEAT times and prints the median and worst.
//!
//!   cargo run --release --example lint_dashboard -- PATH [SIZE REPEAT]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use llmwatch::lint::{Input, LintOptions, lint};
use serde_json::{Value, json};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .expect("usage: lint_dashboard PATH [SIZE REPEAT]");
    let size: usize = args.get(2).map_or(1 << 20, |s| s.parse().unwrap());
    let repeat: usize = args.get(3).map_or(20, |s| s.parse().unwrap());
    let mut panels = Vec::new();
    for dashboard in llmwatch::export::grafana::dashboards() {
        let text = llmwatch::export::grafana::dashboard_json(&dashboard).unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        panels.extend(doc["panels"].as_array().unwrap().iter().cloned());
    }
    let mut out = Vec::new();
    let mut bytes = 0;
    for panel in panels.iter().cycle() {
        if bytes >= size {
            break;
        }
        let mut panel = panel.clone();
        panel["id"] = json!(out.len() + 1);
        bytes += serde_json::to_string_pretty(&panel).unwrap().len();
        out.push(panel);
    }
    let text = serde_json::to_string_pretty(&json!({"title": "big", "panels": out})).unwrap();
    std::fs::write(path, &text).unwrap();
    let queries: usize = out
        .iter()
        .map(|p| p["targets"].as_array().map_or(0, Vec::len))
        .sum();
    println!(
        "{path}: {} bytes, {} panels, {queries} queries",
        text.len(),
        out.len()
    );
    let input = [Input {
        path: path.clone(),
        text,
    }];
    let mut times: Vec<Duration> = (0..repeat)
        .map(|_| {
            let start = Instant::now();
            let found = lint(&input, &LintOptions::default()).unwrap();
            assert!(found.is_empty(), "{found:?}");
            start.elapsed()
        })
        .collect();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "lint in-process: median {:.1} ms, worst {:.1} ms",
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );
}
