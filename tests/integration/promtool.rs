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

#[test]
fn promtool_lints_each_dialect_as_it_lints_the_real_engine() {
    let Some(promtool) = external_program("promtool") else {
        return;
    };
    let real_llamacpp = std::fs::read_to_string(fixture("llamacpp/metrics-during.txt")).unwrap();
    let real_llamacpp = lint(&promtool, &real_llamacpp);
    assert!(!real_llamacpp.is_empty());
    for (dialect, body) in scrape_all(&["vllm", "vllm-0.10", "tgi", "llamacpp", "sglang"]) {
        let complaints = lint(&promtool, &body);
        match dialect.as_str() {
            // The real capture is the reference: exactly its complaints.
            "llamacpp" => assert_eq!(complaints, real_llamacpp),
            // Real vLLM: every `vllm:` name has a colon, and `iteration_tokens_total` is a
            // histogram whose name ends in `_total`.
            "vllm" | "vllm-0.10" => {
                let odd: Vec<_> = complaints
                    .iter()
                    .filter(|(m, c)| {
                        !(c == COLON
                            || (m == "vllm:iteration_tokens_total" && c == NON_COUNTER_TOTAL))
                    })
                    .collect();
                assert!(odd.is_empty(), "{dialect}: {odd:?}");
                assert!(complaints.contains(&(
                    "vllm:iteration_tokens_total".to_string(),
                    NON_COUNTER_TOTAL.to_string()
                )));
                assert!(complaints.iter().filter(|(_, c)| c == COLON).count() > 30);
            }
            // TGI's exporter writes counters without `_total` (`tgi_request_count` also
            // trips the `_count` rule); it has no colons.
            "tgi" => {
                assert!(complaints.contains(&(
                    "tgi_request_count".to_string(),
                    NON_HISTOGRAM_COUNT.to_string()
                )));
                for (metric, complaint) in &complaints {
                    assert!(
                        complaint == COUNTER_TOTAL
                            || (metric == "tgi_request_count" && complaint == NON_HISTOGRAM_COUNT),
                        "tgi: {metric} {complaint}"
                    );
                }
            }
            // SGLang: colons only; its counters carry `_total`.
            "sglang" => {
                assert!(!complaints.is_empty());
                assert!(
                    complaints.iter().all(|(_, c)| c == COLON),
                    "sglang: {complaints:?}"
                );
            }
            other => panic!("unexpected dialect {other}"),
        }
    }
}
