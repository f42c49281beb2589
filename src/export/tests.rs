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

proptest::proptest! {
    // Each case renders every file: 64 keep the unit tests quick.
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Whatever a user writes after `--target`, parsing never panics, and a label value that is
    /// accepted comes back unchanged from every YAML file it is written into.
    #[test]
    fn any_target_parses_or_is_refused_and_label_values_survive_yaml(
        value in "[^,=\u{0}]{0,24}",
        junk in ".{0,40}",
    ) {
        let _ = ExportTarget::parse(&junk);
        let arg = format!("http://tgi:3000,engine=tgi,scrape=prometheus,service={value}");
        let via_llmwatch = format!("http://vllm:8000,service={value}");
        let opts = options(&[arg.as_str(), via_llmwatch.as_str()]);
        let files = render(&opts).unwrap();
        let config = files.iter().find(|f| f.path == "prometheus/prometheus.yml").unwrap();
        let doc: serde_norway::Value = serde_norway::from_str(&config.text).unwrap();
        let labels = &doc["scrape_configs"][1]["static_configs"][0]["labels"];
        proptest::prop_assert_eq!(labels["service"].as_str(), Some(value.as_str()));
        let toml = files.iter().find(|f| f.path == "compose/llmwatch.toml").unwrap();
        let config = crate::config::Config::parse(std::path::Path::new("llmwatch.toml"), &toml.text);
        proptest::prop_assert!(config.is_ok(), "{:?}\n{}", config.err(), toml.text);
        let config = config.unwrap();
        proptest::prop_assert_eq!(config.targets[0].labels.get("service"), Some(&value));
        for file in files.iter().filter(|f| f.path.ends_with(".yml") || f.path.ends_with(".yaml")) {
            for doc in serde_norway::Deserializer::from_str(&file.text) {
                proptest::prop_assert!(serde_norway::Value::deserialize(doc).is_ok(), "{}", file.path);
            }
        }
    }
}
