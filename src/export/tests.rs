use super::*;

fn options(targets: &[&str]) -> ExportOptions {
    ExportOptions {
        targets: targets
            .iter()
            .map(|t| ExportTarget::parse(t).unwrap())
            .collect(),
        llmwatch_address: "llmwatch:9464".into(),
        alertmanager_address: "alertmanager:9093".into(),
        prometheus_url: "http://prometheus:9090".into(),
        scrape_interval: "5s".into(),
        runbook_base: "docs/runbook.md".into(),
        proxy_upstream: None,
        webhook_url: "http://hook/".into(),
        namespace: "monitoring".into(),
        image: "llmwatch:latest".into(),
        slo: rules::Slo::default(),
    }
}

#[test]
fn a_target_reads_its_options() {
    let t =
        ExportTarget::parse("http://tgi:3000,engine=tgi,scrape=prometheus,model=qwen,service=chat")
            .unwrap();
    assert_eq!(t.address, "tgi:3000");
    assert_eq!(t.metrics_path, "/metrics");
    assert_eq!(t.engine, Some(Engine::Tgi));
    assert_eq!(t.scraped_by, ScrapedBy::Prometheus);
    assert_eq!(t.model.as_deref(), Some("qwen"));
    assert_eq!(t.labels.get("service").map(String::as_str), Some("chat"));
}

#[test]
fn bad_targets_are_refused_with_the_reason() {
    for (arg, needle) in [
        ("ftp://x:1", "not an http"),
        ("http://x:1,engine=triton", "unknown engine"),
        ("http://x:1,scrape=prometheus", "needs engine="),
        ("http://x:1,model=m", "model= is for scrape=prometheus"),
        ("http://x:1,instance=a", "llmwatch sets this label"),
        ("http://x:1,oops", "not key=value"),
    ] {
        let err = ExportTarget::parse(arg).unwrap_err().to_string();
        assert!(err.contains(needle), "{arg}: {err}");
        assert!(
            err.contains(arg),
            "{arg}: the error names the target: {err}"
        );
    }
}

#[test]
fn only_engines_scraped_directly_get_a_prometheus_job() {
    let opts = options(&[
        "http://a:8000,engine=vllm",
        "http://b:3000,engine=tgi,scrape=prometheus",
    ]);
    assert_eq!(opts.direct_engines(), [Engine::Tgi]);
    let files = render(&opts).unwrap();
    let config = &files
        .iter()
        .find(|f| f.path == "prometheus/prometheus.yml")
        .unwrap()
        .text;
    assert!(config.contains("job_name: tgi"));
    assert!(!config.contains("job_name: vllm"));
    let toml = &files
        .iter()
        .find(|f| f.path == "compose/llmwatch.toml")
        .unwrap()
        .text;
    assert!(toml.contains("url = \"http://a:8000\""));
    assert!(!toml.contains("http://b:3000"));
}

#[test]
fn no_rule_group_records_one_series_twice() {
    let opts = options(&["http://a:8000"]);
    for (path, _, groups) in prometheus::rule_files(&opts) {
        for group in groups {
            let mut seen = std::collections::BTreeSet::new();
            for rule in &group.rules {
                let key = (rule.name().to_string(), rule.labels.clone());
                assert!(
                    seen.insert(key),
                    "{path} {}: {} twice",
                    group.name,
                    rule.name()
                );
            }
        }
    }
}

#[test]
fn every_file_is_valid_yaml_or_json() {
    let opts = options(&[
        "http://sim-vllm:8000,engine=vllm",
        "http://vllm:8000,engine=vllm,scrape=prometheus",
    ]);
    for file in render(&opts).unwrap() {
        if file.path.ends_with(".json") {
            serde_json::from_str::<serde_json::Value>(&file.text).unwrap();
        } else if file.path.ends_with(".yml") || file.path.ends_with(".yaml") {
            for doc in serde_norway::Deserializer::from_str(&file.text) {
                serde_norway::Value::deserialize(doc).unwrap();
            }
        }
    }
}

use serde::Deserialize;
