//! OpenMetrics bodies are held to the specification: by content type from a server, by a
//! final `# EOF` from a file. A violation names the line and the rule and exits 1 (strict),
//! or is listed and skipped (`--lenient`); `up` counts it as a failed scrape and keeps the
//! target's last good state.

use std::collections::HashMap;

use llmwatch::exposition::{Mode, parse, write_openmetrics};

use crate::up::{eventually, get, start_up};
use crate::util::{Canned, fixture, run_err, run_ok, serve};

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The reconstructed vLLM scrape written as conforming OpenMetrics.
fn vllm_openmetrics() -> String {
    let text = std::fs::read_to_string(fixture("reconstructed/vllm-0.33.txt")).unwrap();
    write_openmetrics(&parse(&text, Mode::Strict).unwrap())
}

fn served(body: String) -> Canned {
    Canned {
        status: 200,
        content_type: OPENMETRICS,
        body: body.into_bytes(),
    }
}

#[test]
fn a_file_ending_in_eof_is_openmetrics_and_llamacpp_breaks_its_counter_naming() {
    // llama.cpp's body with `# EOF` added: `# TYPE llamacpp:prompt_tokens_total counter`
    // names a family whose samples OpenMetrics calls `..._total_total`.
    let capture = std::fs::read_to_string(fixture("llamacpp/metrics-during.txt")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("llamacpp.om");
    std::fs::write(&file, format!("{capture}# EOF\n")).unwrap();
    let err = run_err(&["scrape", file.to_str().unwrap()]);
    assert!(
        err.contains("line 3, column 1: OpenMetrics: a sample is named after its family with a suffix its type allows (llamacpp:prompt_tokens_total in a counter family takes the names llamacpp:prompt_tokens_total_total, llamacpp:prompt_tokens_total_created)"),
        "{err}"
    );
    // Lenient: every such line is listed and skipped; the gauges are still read.
    let out = run_ok(&["scrape", "--lenient", file.to_str().unwrap()]);
    assert!(
        out.contains("skipped line 3, column 1: OpenMetrics"),
        "{out}"
    );
    assert!(out.contains("llm_requests_running"), "{out}");
    // Without `# EOF` it is text 0.0.4, read as before.
    let plain = dir.path().join("llamacpp.txt");
    std::fs::write(&plain, &capture).unwrap();
    let out = run_ok(&["scrape", plain.to_str().unwrap()]);
    assert!(out.contains("engine   llamacpp"), "{out}");
}

#[test]
fn a_server_answering_openmetrics_is_held_to_it() {
    let good = vllm_openmetrics();
    let blank = good.replacen("\n# TYPE", "\n\n# TYPE", 1);
    let line = good
        .split('\n')
        .position(|l| l.starts_with("# TYPE"))
        .unwrap();
    // The first `# TYPE` after the first line moves down by the blank line.
    let blank_line = good
        .split('\n')
        .skip(1)
        .position(|l| l.starts_with("# TYPE"))
        .unwrap()
        + 2;
    let server = serve(HashMap::from([
        ("/good/metrics", served(good)),
        ("/blank/metrics", served(blank)),
    ]));
    let url = |path: &str| format!("{}/{path}/metrics", server.base);
    let out = run_ok(&["scrape", &url("good"), "--no-version-probe"]);
    assert!(out.contains("engine   vllm"), "{out}");
    let err = run_err(&["scrape", &url("blank"), "--no-version-probe"]);
    assert!(line == 0, "the body starts with its first family");
    assert!(
        err.contains(&format!(
            "line {blank_line}, column 1: OpenMetrics: blank lines are not allowed"
        )),
        "{err}"
    );
}

#[test]
fn up_counts_a_broken_openmetrics_body_as_a_failed_scrape_and_keeps_the_last_good_state() {
    let good = vllm_openmetrics();
    let broken = good.replace("# EOF\n", "");
    let server = serve(HashMap::from([("/metrics", served(good))]));
    let up = start_up(
        "[scrape]\ninterval = \"200ms\"\n",
        &[&format!("--target={},name=om", server.base)],
    );
    eventually(10, || {
        let (_, metrics) = get(&format!("{}/metrics", up.base));
        metrics.contains("llm_requests_running{").then_some(())
    });
    server.set("/metrics", served(broken));
    let metrics = eventually(10, || {
        let (_, metrics) = get(&format!("{}/metrics", up.base));
        metrics
            .lines()
            .any(|l| {
                l.starts_with("llmwatch_scrape_failures_total{")
                    && l.contains("instance=\"om\"")
                    && l.contains("reason=\"parse\"")
            })
            .then_some(metrics)
    });
    assert!(
        metrics.contains("llmwatch_target_up{instance=\"om\"} 0"),
        "{metrics}"
    );
    // The error names the rule; the last good scrape is kept (engine, version, samples).
    let (_, targets) = get(&format!("{}/api/v1/targets", up.base));
    let targets: serde_json::Value = serde_json::from_str(&targets).unwrap();
    let target = &targets["targets"][0];
    let message = target["last_error"]["message"].as_str().unwrap();
    assert!(
        message.contains("OpenMetrics: the body must end with `# EOF`"),
        "{target}"
    );
    assert_eq!(target["engine"], "vllm", "{target}");
    assert!(target["last_good_unix"].as_f64().is_some(), "{target}");
}
