//! One round of `up`'s alert evaluation over N targets with a full hour of history: each
//! target is the vLLM 0.33 capture, scraped every 5 s for an hour (720 scrapes, its counters
//! growing), then every alert is evaluated REPEAT times; prints the median and worst round.
//!
//!   cargo run --release --example alert_round -- [N REPEAT]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use llmwatch::alerting::{Alerts, Settings};
use llmwatch::collect::state::{Scraped, Store};
use llmwatch::collect::targets::Target;
use llmwatch::config::{HistoryConfig, ScrapeConfig};
use llmwatch::engines::{Engine, Index, Value, normalise};
use llmwatch::exposition::{Mode, parse};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let (n, repeat) = (
        args.first().copied().unwrap_or(1000),
        args.get(1).copied().unwrap_or(10),
    );
    let text = std::fs::read_to_string("tests/fixtures/reconstructed/vllm-0.33.txt").unwrap();
    let exposition = parse(&text, Mode::Strict).unwrap();
    let base = normalise(&Index::new(&exposition), Engine::Vllm, "m");
    let store = Store::new(HistoryConfig::default());
    let targets: Vec<Arc<Target>> = (0..n)
        .map(|i| {
            let arg = format!(
                "http://127.0.0.1:{}/metrics,name=t{i},service=s{}",
                20000 + i,
                i % 10
            );
            Arc::new(Target::from_arg(&arg, &ScrapeConfig::default()).unwrap())
        })
        .collect();
    store.set_targets(&targets);
    let start = Instant::now();
    let t0 = 1_800_000_000.0;
    for step in 0..720 {
        // Counters grow by a step each scrape; gauges stay as captured.
        let mut readings = base.clone();
        for reading in &mut readings {
            if reading.signal.name.ends_with("_total") {
                for series in &mut reading.series {
                    if let Value::Scalar(v) = &mut series.value {
                        *v += f64::from(step) * 10.0;
                    }
                }
            }
        }
        let at = t0 + f64::from(step) * 5.0;
        for target in &targets {
            let scraped = Scraped {
                at,
                engine: Some(Engine::Vllm),
                version: "0.33.0".into(),
                samples: exposition.sample_count(),
                readings: readings.clone(),
                raw: None,
                problems: vec![],
                gpu: None,
                process: None,
            };
            store.record_success(&target.name, scraped, 0.001);
        }
    }
    let (points, bytes) = store.history_size();
    println!(
        "{n} targets, {points} points of history ({} MB) built in {:.1} s",
        bytes / 1_048_576,
        start.elapsed().as_secs_f64()
    );
    let mut alerts = Alerts::new(Settings {
        slo: llmwatch::catalog::alerts::Slo::default(),
        runbook_base: "docs/runbook.md".into(),
    });
    let now = t0 + 719.0 * 5.0 + 1.0;
    let mut times: Vec<Duration> = (0..repeat)
        .map(|_| {
            let start = Instant::now();
            alerts.evaluate(&store, now);
            start.elapsed()
        })
        .collect();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    // Rounds in blocks of 100, in order: whether the first rounds cost more than later ones.
    if times.len() >= 200 {
        let blocks: Vec<String> = times
            .chunks(100)
            .map(|block| {
                let mut block = block.to_vec();
                block.sort();
                format!("{:.1}", ms(block[block.len() / 2]))
            })
            .collect();
        println!("median of each 100 rounds, ms: {}", blocks.join(" "));
    }
    times.sort();
    let mut active = std::collections::BTreeMap::<&str, usize>::new();
    for a in alerts.active() {
        *active.entry(a.name).or_default() += 1;
    }
    let mut unjudged = std::collections::BTreeMap::<&str, usize>::new();
    for u in alerts.unjudged() {
        *unjudged.entry(u.name).or_default() += 1;
    }
    println!(
        "alert round: median {:.2} ms, worst {:.2} ms\n  active: {active:?}\n  not judged: {unjudged:?}",
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1]),
    );
}
