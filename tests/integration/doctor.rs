//! `llmwatch doctor` against a running `up`: a simulated vLLM whose KV cache is far too small
//! under load is diagnosed KV-bound with vLLM's flags, a llama.cpp without `--metrics` is a
//! target down with the flag to turn on, a healthy engine gives no finding, and an `up` that
//! is not there exits 2.

use serde_json::Value;

use std::collections::HashMap;

use crate::up::{eventually, start_up};
use crate::util::{Canned, fixture, llmwatch, serve, start_with};

/// Runs `llmwatch doctor --format json args…`: the exit code and the findings.
fn doctor(args: &[&str]) -> (i32, Vec<Value>) {
    let out = llmwatch()
        .args(["doctor", "--format", "json"])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let doc: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
    (
        out.status.code().unwrap_or(-1),
        doc["findings"].as_array().unwrap().clone(),
    )
}

fn find<'a>(findings: &'a [Value], check: &str) -> Option<&'a Value> {
    findings.iter().find(|f| f["check"] == check)
}

/// A scenario whose KV cache is far too small for 12 requests a second, written under `dir`.
fn small_kv(dir: &std::path::Path) -> std::path::PathBuf {
    let scenario = dir.join("small-kv.toml");
    std::fs::write(
        &scenario,
        "name = \"small-kv\"\n[[step]]\nat = \"0s\"\nkv_blocks = 120\n",
    )
    .unwrap();
    scenario
}

#[test]
fn a_kv_starved_vllm_and_a_llamacpp_without_metrics_are_diagnosed_with_their_flags() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = small_kv(dir.path());
    let sims = start_with(
        &["vllm", "llamacpp"],
        &[
            "--scenario",
            scenario.to_str().unwrap(),
            "--load",
            "12",
            "--llamacpp-no-metrics",
        ],
    );
    let up = start_up(
        "[scrape]\ninterval = \"500ms\"\n",
        &[
            &format!("--target={},name=vllm", sims.urls[0].1),
            &format!("--target={},name=llama", sims.urls[1].1),
        ],
    );
    let findings = eventually(90, || {
        let (code, findings) = doctor(&["--url", &up.base, "--window", "10s"]);
        (code == 1 && find(&findings, "kv-bound").is_some()).then_some(findings)
    });
    let kv = find(&findings, "kv-bound").unwrap();
    assert_eq!(kv["severity"], "critical");
    assert_eq!(kv["subject"], "vllm (vllm 0.33.0)");
    assert_eq!(kv["place"], "model sim-vllm");
    assert!(
        kv["fix"]
            .as_str()
            .unwrap()
            .contains("--gpu-memory-utilization"),
        "{kv}"
    );
    assert!(
        kv["evidence"][0]
            .as_str()
            .unwrap()
            .starts_with("KV cache usage = "),
        "{kv}"
    );
    assert_eq!(kv["runbook"], "docs/runbook.md#llmkvcachenearlyfull");
    let down = find(&findings, "target-down").unwrap();
    assert_eq!(down["subject"], "llama");
    assert!(
        down["message"]
            .as_str()
            .unwrap()
            .contains("metrics are turned off"),
        "{down}"
    );
    assert!(
        down["fix"].as_str().unwrap().contains("--metrics"),
        "{down}"
    );
}

#[test]
fn a_healthy_engine_has_no_finding_and_a_missing_up_exits_2() {
    let sim = start_with(&["vllm"], &["--load", "2"]);
    let up = start_up(
        "[scrape]\ninterval = \"500ms\"\n",
        &[&format!("--target={},name=calm", sim.urls[0].1)],
    );
    // Not enough data first, then a clean bill.
    let (code, early) = doctor(&["--url", &up.base, "--window", "8s", "--fail-on", "info"]);
    assert_eq!(code, 1);
    assert_eq!(early[0]["check"], "not-enough-data", "{early:?}");
    let findings = eventually(60, || {
        let (code, findings) = doctor(&["--url", &up.base, "--window", "8s", "--fail-on", "info"]);
        (code == 0).then_some(findings)
    });
    assert_eq!(findings, Vec::<Value>::new());
    let out = llmwatch()
        .args(["doctor", "--url", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with(
            "llmwatch doctor: http://127.0.0.1:9/api/v1/targets: cannot reach llmwatch up"
        ),
        "{stderr}"
    );
}

#[test]
fn doctor_scraping_a_llamacpp_itself_sees_another_scraper_resetting_its_gauges() {
    let sim = start_with(&["llamacpp"], &["--load", "4"]);
    let base = sim.urls[0].1.clone();
    // The other scraper: polls /metrics three times a second while doctor runs.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let (stop, url) = (stop.clone(), format!("{base}/metrics"));
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = crate::util::try_get(&url);
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
        })
    };
    let (code, findings) = doctor(&[&base, "--for", "8s", "--interval", "1s"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    poller.join().unwrap();
    assert_eq!(code, 1, "{findings:?}");
    let other = find(&findings, "another-scraper").unwrap_or_else(|| panic!("{findings:?}"));
    assert!(
        other["evidence"][0]
            .as_str()
            .unwrap()
            .contains("reads 0 although llamacpp:"),
        "{other}"
    );
    // Alone, the same server is healthy.
    let (code, findings) = doctor(&[&base, "--for", "8s", "--interval", "1s"]);
    assert_eq!((code, findings), (0, vec![]));
}

#[test]
fn a_counter_falling_without_a_restart_is_left_out_by_up_counted_and_diagnosed() {
    let good = std::fs::read_to_string(fixture("reconstructed/vllm-0.33.txt")).unwrap();
    let line = "vllm:generation_tokens_total{engine=\"0\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\"} 41877.0";
    assert!(good.contains(line));
    let fallen = good.replace(line, &line.replace("41877.0", "40000.0"));
    let server = serve(HashMap::from([("/metrics", Canned::ok(good))]));
    let up = start_up(
        "[scrape]\ninterval = \"200ms\"\n",
        &[&format!("--target={},name=odd", server.base)],
    );
    eventually(10, || {
        let (_, metrics) = crate::up::get(&format!("{}/metrics", up.base));
        metrics
            .contains("llmwatch_target_up{instance=\"odd\"} 1")
            .then_some(())
    });
    server.set("/metrics", Canned::ok(fallen));
    let line = eventually(10, || {
        let (_, metrics) = crate::up::get(&format!("{}/metrics", up.base));
        metrics
            .lines()
            .find(|l| {
                l.starts_with("llmwatch_integrity_problems_total{")
                    && l.contains("counter_backwards")
            })
            .map(str::to_string)
    });
    assert!(
        line.contains("instance=\"odd\"") && line.ends_with(" 1"),
        "{line}"
    );
    // Left out of the scrape where it fell; later scrapes of the same body continue from
    // the last good value, so no rate reads the fall as a restart. The rest is served.
    let metrics = eventually(10, || {
        let (_, metrics) = crate::up::get(&format!("{}/metrics", up.base));
        metrics
            .lines()
            .any(|l| {
                l.starts_with("llm_generation_tokens_total{")
                    && l.contains("instance=\"odd\"")
                    && l.ends_with(" 41877")
            })
            .then_some(metrics)
    });
    assert!(metrics.contains("llm_requests_running{"), "{metrics}");
    assert!(
        metrics.contains(
            "llmwatch_integrity_problems_total{instance=\"odd\",kind=\"counter_backwards\"} 1"
        ),
        "the same body again is not a new fall: {metrics}"
    );
    let (_, findings) = doctor(&["--url", &up.base, "--window", "1s", "--fail-on", "info"]);
    let fallen = find(&findings, "counter-backwards").unwrap_or_else(|| panic!("{findings:?}"));
    assert_eq!(fallen["subject"], "odd (vllm > 0.13)");
    assert!(
        fallen["evidence"][0].as_str().unwrap().starts_with(
            "llm_generation_tokens_total: model meta-llama/Llama-3.1-8B-Instruct: 41877 then 40000"
        ),
        "{fallen}"
    );
}

/// `up` scraping the vLLM fixture with `line` changed to `broken_line`, once it has counted
/// an integrity problem of `kind`: what `/metrics` serves, and doctor's finding `finding`'s
/// first evidence line.
fn up_with_one_broken_line(
    line: &str,
    broken_line: &str,
    kind: &str,
    finding: &str,
) -> (String, String) {
    let good = std::fs::read_to_string(fixture("reconstructed/vllm-0.33.txt")).unwrap();
    assert!(good.contains(line));
    let broken = good.replace(line, broken_line);
    let server = serve(HashMap::from([("/metrics", Canned::ok(broken))]));
    let up = start_up(
        "[scrape]\ninterval = \"200ms\"\n",
        &[&format!("--target={},name=odd", server.base)],
    );
    let problem = format!("llmwatch_integrity_problems_total{{instance=\"odd\",kind=\"{kind}\"}}");
    let metrics = eventually(10, || {
        let (_, metrics) = crate::up::get(&format!("{}/metrics", up.base));
        metrics.contains(&problem).then_some(metrics)
    });
    let (_, findings) = doctor(&["--url", &up.base, "--window", "1s", "--fail-on", "info"]);
    let found = find(&findings, finding).unwrap_or_else(|| panic!("{findings:?}"));
    (metrics, found["evidence"][0].as_str().unwrap().to_string())
}

#[test]
fn an_invalid_counter_is_left_out_by_up_which_serves_the_rest_and_doctor_names_it() {
    let line = "vllm:generation_tokens_total{engine=\"0\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\"} 41877.0";
    let (metrics, evidence) = up_with_one_broken_line(
        line,
        &line.replace("41877.0", "-5"),
        "invalid_counter",
        "invalid-counter",
    );
    // The series is left out; the target's other series are served.
    assert!(
        !metrics.contains("llm_generation_tokens_total{"),
        "{metrics}"
    );
    assert!(metrics.contains("llm_requests_running{"), "{metrics}");
    assert!(
        evidence.starts_with(
            "llm_generation_tokens_total: model meta-llama/Llama-3.1-8B-Instruct: -5 is not a count"
        ),
        "{evidence}"
    );
}

#[test]
fn a_rule_still_querying_a_name_the_running_vllm_dropped_is_found_and_a_bad_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n- name: old\n  rules:\n  - alert: KVFull\n    expr: vllm:gpu_cache_usage_perc > 0.9\n  - alert: Busy\n    expr: vllm:num_requests_running > 100\n",
    )
    .unwrap();
    let sim = start_with(&["vllm"], &[]);
    let rules_arg = rules.to_str().unwrap();
    let (code, findings) = doctor(&[
        &sim.urls[0].1,
        "--for",
        "2s",
        "--interval",
        "500ms",
        "--rules",
        rules_arg,
    ]);
    assert_eq!(code, 1, "{findings:?}");
    let renamed: Vec<&Value> = findings
        .iter()
        .filter(|f| f["check"] == "renamed-series")
        .collect();
    assert_eq!(renamed.len(), 1, "only the dropped name: {findings:?}");
    assert_eq!(renamed[0]["subject"], rules_arg);
    assert_eq!(renamed[0]["place"], "group old, alert KVFull");
    assert!(
        renamed[0]["fix"]
            .as_str()
            .unwrap()
            .contains("vllm:kv_cache_usage_perc"),
        "{renamed:?}"
    );
    let broken = dir.path().join("broken.yml");
    std::fs::write(&broken, "groups: [ {").unwrap();
    let out = llmwatch()
        .args(["doctor", "--rules"])
        .arg(&broken)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("broken.yml"), "{stderr}");
}

/// The checks of `findings` about subjects starting with `subject`, sorted.
fn checks_of(findings: &[Value], subject: &str) -> Vec<String> {
    let mut checks: Vec<String> = findings
        .iter()
        .filter(|f| {
            f["subject"]
                .as_str()
                .unwrap_or_default()
                .starts_with(subject)
        })
        .map(|f| f["check"].as_str().unwrap_or_default().to_string())
        .collect();
    checks.sort();
    checks
}

#[test]
fn doctor_reading_prometheus_rules_only_schema_agrees_with_doctor_reading_up() {
    let Some(prometheus) = crate::util::external_program("prometheus") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let scenario = small_kv(dir.path());
    let sims = start_with(
        &["vllm"],
        &["--scenario", scenario.to_str().unwrap(), "--load", "12"],
    );
    let base = sims.urls[0].1.clone();
    let addr = base.trim_start_matches("http://").to_string();
    let up = start_up(
        "[scrape]\ninterval = \"1s\"\n",
        &[&format!("--target={base},name=vllm")],
    );
    let out = dir.path().join("export");
    crate::util::run_ok(&[
        "export",
        &format!("--out={}", out.display()),
        "--llmwatch=127.0.0.1:9",
        "--alertmanager=127.0.0.1:9",
        "--scrape-interval=1s",
        &format!("--target={base},engine=vllm,scrape=prometheus,service=direct"),
    ]);
    let (_prom, prom) = crate::util::start_prometheus(
        &prometheus,
        &out.join("prometheus/prometheus.yml"),
        &dir.path().join("data"),
    );
    let mut last = (Vec::new(), Vec::new());
    let agreed = (0..40).any(|_| {
        std::thread::sleep(std::time::Duration::from_secs(3));
        let (_, via_up) = doctor(&["--url", &up.base, "--window", "15s"]);
        let (_, via_prom) = doctor(&["--prometheus", &prom, "--window", "15s"]);
        last = (checks_of(&via_up, "vllm"), checks_of(&via_prom, &addr));
        last.0.contains(&"kv-bound".to_string()) && last.0 == last.1
    });
    assert!(agreed, "up then Prometheus: {last:?}");
    // A Prometheus that is not there, or a URL that is not a Prometheus: exit 2.
    let out = llmwatch()
        .args(["doctor", "--prometheus", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("llmwatch doctor: http://127.0.0.1:9: cannot reach Prometheus: "),
        "{stderr}"
    );
    let (code, _) = (
        llmwatch()
            .args(["doctor", "--prometheus", &up.base])
            .output()
            .unwrap()
            .status
            .code(),
        (),
    );
    assert_eq!(code, Some(2));
}

#[test]
fn a_histogram_that_is_not_cumulative_is_left_out_by_up_which_serves_the_rest() {
    let line = "vllm:time_to_first_token_seconds_bucket{engine=\"0\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\",le=\"0.25\"} 337.0";
    let (metrics, evidence) = up_with_one_broken_line(
        line,
        &line.replace("337.0", "100.0"),
        "non_cumulative_histogram",
        "non-cumulative-histogram",
    );
    // No quantile from the broken histogram; the target's other signals are served.
    assert!(
        !metrics.contains("llm_time_to_first_token_seconds_bucket{"),
        "{metrics}"
    );
    assert!(metrics.contains("llm_requests_running{"), "{metrics}");
    assert!(
        metrics.contains("llm_e2e_request_latency_seconds_bucket{"),
        "{metrics}"
    );
    assert!(
        evidence.contains("bucket le=0.1 holds 128 but le=0.25 holds 100"),
        "{evidence}"
    );
}
