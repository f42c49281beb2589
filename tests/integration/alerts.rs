//! Alerts evaluated inside `up`: an engine without its core series and a target that is down
//! go pending within one evaluation, in Prometheus's `/api/v1/alerts` shape and as
//! `llmwatch_alerts` on `/metrics`; windowed alerts that the new data does not cover yet say
//! so instead of "ok".

use std::collections::HashMap;

use serde_json::Value;

use crate::up::{eventually, get, start_up};
use crate::util::{Canned, fixture, serve};

#[test]
fn missing_core_series_and_a_down_target_go_pending_and_short_windows_say_not_enough_data() {
    // vLLM without its running-requests gauge (renamed by an upgrade, say).
    let body: String = std::fs::read_to_string(fixture("reconstructed/vllm-0.33.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.contains("vllm:num_requests_running"))
        .map(|l| format!("{l}\n"))
        .collect();
    let renamed = serve(HashMap::from([("/metrics", Canned::ok(body))]));
    let up = start_up(
        "[scrape]\ninterval = \"200ms\"\n[alerting]\ninterval = \"200ms\"\nrunbook_base = \"https://runbook.test/\"\n",
        &[
            &format!("--target={},name=renamed,service=chat", renamed.base),
            "--target=http://127.0.0.1:9,name=gone",
        ],
    );
    let alerts = eventually(10, || {
        let (_, body) = get(&format!("{}/api/v1/alerts", up.base));
        let v: Value = serde_json::from_str(&body).ok()?;
        let alerts = v["data"]["alerts"].as_array()?.clone();
        (alerts.len() >= 2).then_some(v)
    });
    assert_eq!(alerts["status"], "success");
    let find = |name: &str| {
        alerts["data"]["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["labels"]["alertname"] == name)
            .unwrap_or_else(|| panic!("no {name}: {alerts}"))
            .clone()
    };
    let absent = find("LLMExpectedMetricsAbsent");
    assert_eq!(absent["state"], "pending", "its `for` is 10 minutes");
    assert_eq!(absent["labels"]["instance"], "renamed");
    assert_eq!(absent["labels"]["service"], "chat");
    assert_eq!(absent["labels"]["severity"], "warning");
    assert_eq!(absent["value"], "1e+00", "as Prometheus writes it");
    assert!(
        absent["annotations"]["description"]
            .as_str()
            .unwrap()
            .starts_with("renamed answers scrapes but llm:requests_running"),
        "{absent}"
    );
    assert_eq!(
        absent["annotations"]["runbook_url"],
        "https://runbook.test/#llmexpectedmetricsabsent"
    );
    let down = find("LLMTargetDown");
    assert_eq!(down["labels"]["instance"], "gone");
    assert_eq!(down["state"], "pending");
    // A 5-minute window is not covered a second after start: not enough data, not "ok".
    let unjudged = alerts["data"]["not_enough_data"].as_array().unwrap();
    for (name, says) in [
        ("LLMHighErrorRatio", "the alert reads 5m"),
        ("LLMKVCacheNearlyFull", "the alert reads 5m"),
    ] {
        let verdict = unjudged
            .iter()
            .find(|u| u["alertname"] == name && u["labels"]["instance"] == "renamed")
            .unwrap_or_else(|| panic!("{name}: {alerts}"));
        assert!(
            verdict["reason"].as_str().unwrap().contains(says),
            "{verdict}"
        );
    }
    let (_, metrics) = get(&format!("{}/metrics", up.base));
    let line = metrics
        .lines()
        .find(|l| l.starts_with("llmwatch_alerts{") && l.contains("LLMExpectedMetricsAbsent"))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(
        line.contains("state=\"pending\"") && line.ends_with(" 1"),
        "{line}"
    );
}

#[test]
fn alerting_can_be_turned_off_and_bad_objectives_are_refused() {
    let up = start_up(
        "[alerting]\nenabled = false\n",
        &["--target=http://127.0.0.1:9,name=gone"],
    );
    let (status, body) = get(&format!("{}/api/v1/alerts", up.base));
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"]["alerts"], serde_json::json!([]));
    assert!(v["data"]["disabled"].is_string(), "{v}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("llmwatch.toml");
    std::fs::write(&path, "[alerting]\navailability = 99\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_llmwatch"))
        .args(["up", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("alerting.availability") && stderr.contains("between 0 and 1"),
        "{stderr}"
    );
}

/// A real Alertmanager on a free loopback port, its data under `dir`: the process and its
/// base URL once ready.
fn start_alertmanager(
    binary: &std::path::Path,
    dir: &std::path::Path,
) -> (crate::util::KillOnDrop, String) {
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: \"null\"\nreceivers:\n  - name: \"null\"\n",
    )
    .unwrap();
    let port = crate::util::free_port();
    let child = std::process::Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let guard = crate::util::KillOnDrop(child);
    eventually(30, || {
        (get(&format!("{base}/-/ready")).0 == 200).then_some(())
    });
    (guard, base)
}

/// The alerts a real Alertmanager holds named `name`.
fn held(alertmanager: &str, name: &str) -> Vec<Value> {
    let (_, body) = get(&format!("{alertmanager}/api/v2/alerts"));
    let all: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    all.as_array()
        .map(|a| {
            a.iter()
                .filter(|x| x["labels"]["alertname"] == name)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_fired_alert_reaches_a_real_alertmanager_and_resolves_there() {
    let Some(binary) = crate::util::external_program("prometheus-alertmanager") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_am, alertmanager) = start_alertmanager(&binary, dir.path());
    let capture = std::fs::read_to_string(fixture("reconstructed/vllm-0.33.txt")).unwrap();
    let target = crate::web::Changing::start(capture.clone());
    target.set(None);
    let up = start_up(
        &format!(
            "[scrape]\ninterval = \"200ms\"\n[alerting]\ninterval = \"1s\"\nrunbook_base = \"https://runbook.test/\"\nalertmanager_url = \"{alertmanager}\"\n"
        ),
        &[&format!("--target={},name=flaky,service=chat", target.base)],
    );
    // LLMTargetDown fires after its `for` of 2 minutes and is delivered.
    let alert = eventually(200, || {
        held(&alertmanager, "LLMTargetDown").into_iter().next()
    });
    assert_eq!(alert["labels"]["instance"], "flaky");
    assert_eq!(alert["labels"]["service"], "chat");
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(
        alert["annotations"]["runbook_url"],
        "https://runbook.test/#llmtargetdown"
    );
    assert!(
        alert["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains("flaky")
    );
    assert_eq!(alert["status"]["state"], "active");
    let (_, mine) = get(&format!("{}/api/v1/alerts", up.base));
    assert!(mine.contains("\"firing\""), "{mine}");
    // It comes back: resolved in up, and the Alertmanager lets it go.
    target.set(Some(capture));
    eventually(30, || {
        held(&alertmanager, "LLMTargetDown")
            .is_empty()
            .then_some(())
    });
    let (_, metrics) = get(&format!("{}/metrics", up.base));
    assert!(
        metrics.contains("llmwatch_alert_deliveries_total{result=\"ok\"}"),
        "{metrics}"
    );
}
