//! `promtool check metrics` lints each simulated dialect the way it lints the real engine:
//! the same complaints and no others. Needs Debian's `prometheus` package (promtool);
//! skips without it unless `LLMWATCH_REQUIRE_EXTERNAL=1`.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::util::{external_program, fixture, http, start_with};

const COLON: &str = "metric names should not contain ':'";
const COUNTER_TOTAL: &str = "counter metrics should have \"_total\" suffix";
const NON_COUNTER_TOTAL: &str = "non-counter metrics should not have \"_total\" suffix";
const NON_HISTOGRAM_COUNT: &str =
    "non-histogram and non-summary metrics should not have \"_count\" suffix";

/// Runs `promtool check metrics` on `text`: `(metric, complaint)` pairs. Fails on a
/// parse error (exit 1): only lint complaints (exit 3) or none (exit 0) are acceptable.
fn lint(promtool: &Path, text: &str) -> BTreeSet<(String, String)> {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "promtool could not read the exposition: {report}"
    );
    report
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(metric, complaint)| (metric.to_string(), complaint.to_string()))
        .collect()
}

/// `/metrics` of every simulated engine after some background traffic.
fn scrape_all(dialects: &[&str]) -> Vec<(String, String)> {
    let sim = start_with(dialects, &["--load", "40"]);
    let (rt, client) = http();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    rt.block_on(async {
        let mut bodies = Vec::new();
        for (dialect, base) in &sim.urls {
            let body = client
                .get(format!("{base}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            bodies.push((dialect.clone(), body));
        }
        bodies
    })
}

/// Whether promtool's `complaint` about `metric` follows from the engine's own naming
/// (its names, types and labels as the engine registers them), so the real engine draws it
/// too: colons, TGI's counters without `_total`, the HELP lines TGI never writes, and
/// SGLang's `_histogram`, `_gb` and routing-key gauges with `le` labels.
fn follows_from_engine(metric: &str, complaint: &str) -> bool {
    match complaint {
        COLON => metric.contains(':'),
        NON_COUNTER_TOTAL => [
            "vllm:iteration_tokens_total",
            "sglang:lora_pool_slots_total",
        ]
        .contains(&metric),
        COUNTER_TOTAL => metric.starts_with("tgi_") || metric == "llamacpp:n_tokens_max",
        NON_HISTOGRAM_COUNT => {
            ["tgi_request_count", "tgi_batch_inference_count"].contains(&metric)
                || metric.starts_with("sglang:routing_key_")
        }
        NO_HELP => [
            "tgi_batch_concat",
            "tgi_batch_concat_duration",
            "tgi_batch_inference_failure",
            "tgi_request_failure",
        ]
        .contains(&metric),
        HISTOGRAM_IN_NAME => metric.ends_with("_histogram"),
        ABBREVIATED_UNIT => metric.ends_with("_gb"),
        LE_ON_GAUGE => metric.starts_with("sglang:routing_key_"),
        _ => false,
    }
}

const NO_HELP: &str = "no help text";
const HISTOGRAM_IN_NAME: &str = "metric name should not include type 'histogram'";
const ABBREVIATED_UNIT: &str = "metric names should not contain abbreviated units";
const LE_ON_GAUGE: &str = "non-histogram metrics should not have \"le\" label";

/// The metrics a lint report names.
fn metrics_of(report: &BTreeSet<(String, String)>) -> BTreeSet<&str> {
    report.iter().map(|(m, _)| m.as_str()).collect()
}

#[test]
fn promtool_lints_each_dialect_as_it_lints_the_real_engine() {
    let Some(promtool) = external_program("promtool") else {
        return;
    };
    let bodies = scrape_all(&["vllm", "vllm-0.10", "tgi", "llamacpp", "sglang"]);
    for (dialect, body) in bodies {
        let reference = match dialect.as_str() {
            "vllm" => "reconstructed/vllm-0.33.txt",
            "vllm-0.10" => "reconstructed/vllm-0.10.txt",
            "tgi" => "reconstructed/tgi-3.3.txt",
            "sglang" => "reconstructed/sglang-0.5.23.txt",
            "llamacpp" => "llamacpp/metrics-during.txt",
            other => panic!("unexpected dialect {other}"),
        };
        let real = lint(
            &promtool,
            &std::fs::read_to_string(fixture(reference)).unwrap(),
        );
        let simulated = lint(&promtool, &body);
        assert!(
            !simulated.is_empty(),
            "{dialect}: promtool has no complaint"
        );
        // The real capture of llama.cpp is whole: exactly its complaints.
        if dialect == "llamacpp" {
            assert_eq!(simulated, real);
        }
        // On the metrics both bodies have, the same complaints.
        let shared: BTreeSet<&str> = metrics_of(&real)
            .intersection(&metrics_of(&simulated))
            .copied()
            .collect();
        let on_shared = |report: &BTreeSet<(String, String)>| -> BTreeSet<(String, String)> {
            report
                .iter()
                .filter(|(m, _)| shared.contains(m.as_str()))
                .cloned()
                .collect()
        };
        assert_eq!(on_shared(&simulated), on_shared(&real), "{dialect}");
        // Everything else promtool says follows from the engine's own names, as it does
        // for the reference.
        for (metric, complaint) in real.iter().chain(&simulated) {
            assert!(
                follows_from_engine(metric, complaint),
                "{dialect}: {metric} {complaint}"
            );
        }
    }
}
