//! Parser and normaliser benchmarks on real-size payloads, with the two published Rust parsers
//! (`prometheus-parse`, `openmetrics-parser`) on the same inputs for comparison.
//!
//! `cargo bench --bench exposition` first prints what each parser makes of each fixture, then
//! runs criterion. Figures go to docs/benchmarks.md.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group};
use llmwatch::engines::{Index, detect, normalise};
use llmwatch::exposition::{Mode, parse, parse_openmetrics, write_openmetrics};

const INPUTS: [(&str, &str); 4] = [
    (
        "vllm-multi-model",
        "reconstructed/vllm-0.33-multi-model.txt",
    ),
    ("tgi-1024-buckets", "reconstructed/tgi-3.3.txt"),
    ("sglang", "reconstructed/sglang-0.5.23.txt"),
    ("llamacpp-capture", "llamacpp/metrics-during.txt"),
];

/// The running-requests gauge of each engine: a parser that loses it is wrong.
const PROBES: [&str; 4] = [
    "vllm:num_requests_running",
    "tgi_queue_size",
    "sglang:num_running_reqs",
    "llamacpp:requests_processing",
];

fn load(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    std::fs::read_to_string(path).unwrap()
}

fn ours_probe(text: &str) -> (usize, Option<f64>) {
    let exp = parse(text, Mode::Strict).unwrap();
    let probe = exp
        .samples
        .iter()
        .find(|s| PROBES.contains(&s.name))
        .map(|s| s.value);
    (exp.families.len(), probe)
}

fn prometheus_parse_probe(text: &str) -> Result<(usize, Option<f64>), String> {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .map_err(|e| e.to_string())?;
    let mut names: Vec<&str> = scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let probe = scrape
        .samples
        .iter()
        .find(|s| PROBES.contains(&s.metric.as_str()))
        .and_then(|s| match s.value {
            prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => Some(v),
            _ => None,
        });
    Ok((names.len(), probe))
}

fn openmetrics_parser_probe(text: &str) -> Result<(usize, Option<f64>), String> {
    let exp = openmetrics_parser::prometheus::parse_prometheus(text).map_err(|e| e.to_string())?;
    let probe = PROBES.iter().find_map(|name| {
        let family = exp.families.get(*name)?;
        let sample = family.iter_samples().next()?;
        match &sample.value {
            openmetrics_parser::PrometheusValue::Gauge(
                openmetrics_parser::MetricNumber::Float(v),
            ) => Some(*v),
            openmetrics_parser::PrometheusValue::Gauge(openmetrics_parser::MetricNumber::Int(
                v,
            )) => Some(*v as f64),
            _ => None,
        }
    });
    Ok((exp.families.len(), probe))
}

/// Prints, per input, families found and the running-gauge value per parser.
fn compare() {
    eprintln!("\nwhat each parser makes of the inputs (families found; running-requests gauge)");
    for (label, rel) in INPUTS {
        let text = load(rel);
        let show = |r: Result<(usize, Option<f64>), String>| match r {
            Ok((n, Some(v))) => format!("{n} families; gauge {v}"),
            Ok((n, None)) => format!("{n} families; gauge MISSING"),
            Err(e) => format!("error: {}", e.chars().take(80).collect::<String>()),
        };
        eprintln!("{label:>18} {:>7} bytes", text.len());
        eprintln!(
            "{:>18} llmwatch           {}",
            "",
            show(Ok(ours_probe(&text)))
        );
        eprintln!(
            "{:>18} prometheus-parse   {}",
            "",
            show(prometheus_parse_probe(&text))
        );
        eprintln!(
            "{:>18} openmetrics-parser {}",
            "",
            show(openmetrics_parser_probe(&text))
        );
    }
    eprintln!();
}

fn bench_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    for (label, rel) in INPUTS {
        let text = load(rel);
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(format!("llmwatch/{label}"), |b| {
            b.iter(|| parse(black_box(&text), Mode::Strict).unwrap())
        });
        group.bench_function(format!("prometheus-parse/{label}"), |b| {
            b.iter(|| prometheus_parse_probe(black_box(&text)))
        });
        group.bench_function(format!("openmetrics-parser/{label}"), |b| {
            b.iter(|| openmetrics_parser::prometheus::parse_prometheus(black_box(&text)))
        });
    }
    group.finish();
}

fn bench_normalise(c: &mut Criterion) {
    let mut group = c.benchmark_group("normalise");
    for (label, rel) in [
        ("vllm-single-model", "reconstructed/vllm-0.33.txt"),
        (
            "vllm-multi-model",
            "reconstructed/vllm-0.33-multi-model.txt",
        ),
        ("tgi-1024-buckets", "reconstructed/tgi-3.3.txt"),
    ] {
        let text = load(rel);
        let exp = parse(&text, Mode::Strict).unwrap();
        group.throughput(Throughput::Bytes(text.len() as u64));
        // Detection and normalisation of an already parsed scrape.
        group.bench_function(format!("detect+normalise/{label}"), |b| {
            b.iter(|| {
                let index = Index::new(black_box(&exp));
                let engine = detect(&index).engine.unwrap();
                normalise(&index, engine, "m")
            })
        });
        // The whole path from body text.
        group.bench_function(format!("parse+detect+normalise/{label}"), |b| {
            b.iter(|| {
                let exp = parse(black_box(&text), Mode::Strict).unwrap();
                let index = Index::new(&exp);
                let engine = detect(&index).engine.unwrap();
                normalise(&index, engine, "m").len()
            })
        });
    }
    group.finish();
}

/// The strict OpenMetrics check against the lenient parse, on each engine's body written as
/// conforming OpenMetrics (the check's cost is what strict adds to the same text).
fn bench_openmetrics(c: &mut Criterion) {
    let mut group = c.benchmark_group("openmetrics");
    for (label, rel) in INPUTS {
        let text = load(rel);
        let om = write_openmetrics(&parse(&text, Mode::Strict).unwrap());
        group.throughput(Throughput::Bytes(om.len() as u64));
        group.bench_function(format!("lenient/{label}"), |b| {
            b.iter(|| parse(black_box(&om), Mode::Lenient).unwrap())
        });
        group.bench_function(format!("strict-openmetrics/{label}"), |b| {
            b.iter(|| parse_openmetrics(black_box(&om), Mode::Strict).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench_parse, bench_normalise, bench_openmetrics);

fn main() {
    compare();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
