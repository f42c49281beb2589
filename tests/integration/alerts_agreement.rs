//! The alerts `up` evaluates and the exported rules Prometheus evaluates agree on one incident
//! replayed in made-up time: 90 minutes of one vLLM target, scraped every 15 s, through a
//! full KV cache with preemptions, a stretch of failed scrapes and a burst of failures. `up`'s
//! evaluator runs over its store; Prometheus's rule engine (`promtool test rules`, with the
//! deployed rule files) runs over the same numbers as `up`'s `llm_*` series; at every minute
//! where `up`'s state of an alert is steady for two minutes around it, Prometheus must say the
//! same. Skips without promtool unless `LLMWATCH_REQUIRE_EXTERNAL=1`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use llmwatch::alerting::{Alerts, Settings, State};
use llmwatch::catalog::alerts::Slo;
use llmwatch::collect::state::{Failure, Scraped, Store};
use llmwatch::collect::targets::Target;
use llmwatch::config::{HistoryConfig, ScrapeConfig};
use llmwatch::engines::{Engine, Reading, SeriesValue, Source, Value, signal};

use crate::util::external_program;

const STEP: f64 = 15.0;
const MINUTES: usize = 90;
/// The alerts the incident exercises; each must fire at some point.
const CHECKED: [&str; 5] = [
    "LLMHighErrorRatio",
    "LLMErrorBudgetBurnFast",
    "LLMKVCacheNearlyFull",
    "LLMPreemptionsRising",
    "LLMTargetDown",
];

/// One scrape's canonical numbers; `None` for a failed scrape.
#[derive(Clone, Copy)]
struct Numbers {
    ok: f64,
    failed: f64,
    kv: f64,
    preemptions: f64,
    tokens: f64,
}

/// The incident, scrape by scrape: the KV cache at 97 % with preemptions from minute 12 to
/// 35, failed scrapes from minute 40 to 44, and once `up` holds the hour the fast burn-rate
/// alert reads, 80 % of requests failing from minute 62 to 77.
fn incident() -> Vec<Option<Numbers>> {
    let mut n = Numbers {
        ok: 0.0,
        failed: 0.0,
        kv: 0.5,
        preemptions: 0.0,
        tokens: 0.0,
    };
    (0..(MINUTES * 4))
        .map(|i| {
            let minute = i as f64 * STEP / 60.0;
            let failing = (62.0..77.0).contains(&minute);
            n.ok += if failing { 2.0 } else { 10.0 };
            n.failed += if failing { 8.0 } else { 0.0 };
            let full = (12.0..35.0).contains(&minute);
            n.kv = if full { 0.97 } else { 0.5 };
            n.preemptions += if full { 3.0 } else { 0.0 };
            n.tokens += 500.0;
            (!(40.0..44.0).contains(&minute)).then_some(n)
        })
        .collect()
}

fn reading(name: &str, series: Vec<(Option<&'static str>, f64)>) -> Reading {
    Reading {
        signal: signal(name).unwrap(),
        source: Source::Native(vec![]),
        note: "",
        series: series
            .into_iter()
            .map(|(outcome, v)| SeriesValue {
                model: "m".into(),
                outcome,
                value: Value::Scalar(v),
            })
            .collect(),
    }
}

fn readings(n: &Numbers) -> Vec<Reading> {
    vec![
        reading(
            "llm_requests_finished_total",
            vec![(Some("ok_stop"), n.ok), (Some("error_server"), n.failed)],
        ),
        reading("llm_kv_cache_usage_ratio", vec![(None, n.kv)]),
        reading("llm_preemptions_total", vec![(None, n.preemptions)]),
        reading("llm_generation_tokens_total", vec![(None, n.tokens)]),
        reading("llm_requests_running", vec![(None, 4.0)]),
        reading("llm_requests_waiting", vec![(None, 0.0)]),
    ]
}

/// `up`'s verdicts: per alert, whether it fires at each evaluation.
fn up_states(scrapes: &[Option<Numbers>], t0: f64) -> BTreeMap<&'static str, Vec<bool>> {
    let store = Store::new(HistoryConfig::default());
    let target = Target::from_arg(
        "http://127.0.0.1:8000,name=t,service=s",
        &ScrapeConfig::default(),
    )
    .unwrap();
    store.set_targets(&[Arc::new(target)]);
    let mut alerts = Alerts::new(Settings {
        slo: Slo::default(),
        runbook_base: "docs/runbook.md".into(),
    });
    let mut out: BTreeMap<&'static str, Vec<bool>> = BTreeMap::new();
    for (i, scrape) in scrapes.iter().enumerate() {
        let at = t0 + i as f64 * STEP;
        match scrape {
            Some(n) => store.record_success(
                "t",
                Scraped {
                    at,
                    engine: Some(Engine::Vllm),
                    version: "0.33.0".into(),
                    samples: 252,
                    readings: readings(n),
                    raw: None,
                    problems: vec![],
                },
                0.01,
            ),
            None => store.record_failure(
                "t",
                at,
                0.01,
                Failure {
                    reason: "refused",
                    message: "refused".into(),
                },
            ),
        }
        alerts.evaluate(&store, at);
        for name in CHECKED {
            let firing = alerts
                .active()
                .any(|a| a.name == name && a.state == State::Firing);
            out.entry(name).or_default().push(firing);
        }
    }
    out
}

/// promtool's `values` for one series: a value per step, `_` where the scrape failed.
fn values(scrapes: &[Option<Numbers>], f: impl Fn(&Numbers) -> f64) -> String {
    scrapes
        .iter()
        .map(|s| s.as_ref().map_or("_".to_string(), |n| format!("{}", f(n))))
        .collect::<Vec<_>>()
        .join(" ")
}

fn promtool_test(
    scrapes: &[Option<Numbers>],
    up: &BTreeMap<&'static str, Vec<bool>>,
) -> (String, usize) {
    let labels = "job=\"llmwatch\",instance=\"t\",service=\"s\",engine=\"vllm\",model=\"m\"";
    let mut series: Vec<(String, String)> = vec![
        (
            format!("llm_requests_finished_total{{{labels},outcome=\"ok_stop\"}}"),
            values(scrapes, |n| n.ok),
        ),
        (
            format!("llm_requests_finished_total{{{labels},outcome=\"error_server\"}}"),
            values(scrapes, |n| n.failed),
        ),
        (
            format!("llm_kv_cache_usage_ratio{{{labels}}}"),
            values(scrapes, |n| n.kv),
        ),
        (
            format!("llm_preemptions_total{{{labels}}}"),
            values(scrapes, |n| n.preemptions),
        ),
        (
            format!("llm_generation_tokens_total{{{labels}}}"),
            values(scrapes, |n| n.tokens),
        ),
        (
            format!("llm_requests_running{{{labels}}}"),
            values(scrapes, |_| 4.0),
        ),
        (
            format!("llm_requests_waiting{{{labels}}}"),
            values(scrapes, |_| 0.0),
        ),
    ];
    // `up` answers Prometheus's scrapes throughout; its target's health is the self-metric.
    let health: Vec<String> = scrapes
        .iter()
        .map(|s| if s.is_some() { "1" } else { "0" }.to_string())
        .collect();
    series.push((
        "llmwatch_target_up{job=\"llmwatch\",instance=\"t\"}".into(),
        health.join(" "),
    ));
    series.push((
        "up{job=\"llmwatch\",instance=\"llmwatch:9464\"}".into(),
        vec!["1"; scrapes.len()].join(" "),
    ));
    let mut text = String::from(
        "rule_files:\n  - rules/llm-schema-llmwatch.yml\n  - rules/llm-aggregates.yml\n  - rules/llm-alerts.yml\nevaluation_interval: 15s\ntests:\n  - interval: 15s\n    input_series:\n",
    );
    for (name, values) in &series {
        writeln!(text, "      - series: '{name}'\n        values: '{values}'").unwrap();
    }
    text.push_str("    promql_expr_test:\n");
    let mut checks = 0;
    let steady = 8; // two minutes either side
    for minute in 1..MINUTES {
        let i = minute * 4;
        for (name, states) in up {
            let Some(around) =
                states.get(i.saturating_sub(steady)..=(i + steady).min(states.len() - 1))
            else {
                continue;
            };
            if around.iter().any(|s| *s != states[i]) {
                continue;
            }
            checks += 1;
            writeln!(
                text,
                "      - expr: count(ALERTS{{alertname=\"{name}\",alertstate=\"firing\"}}) or vector(0)\n        eval_time: {}s\n        exp_samples:\n          - value: {}",
                i as f64 * STEP,
                u8::from(states[i])
            )
            .unwrap();
        }
    }
    (text, checks)
}

#[test]
fn up_and_prometheus_with_the_exported_rules_fire_the_same_alerts_through_an_incident() {
    let Some(promtool) = external_program("promtool") else {
        return;
    };
    let scrapes = incident();
    // promtool's series start at time 0; `up`'s store takes Unix seconds, so shift it.
    let up = up_states(&scrapes, 1_800_000_000.0);
    for name in CHECKED {
        assert!(
            up[name].iter().any(|f| *f),
            "{name} never fires in up: the incident is too weak"
        );
        assert!(!up[name][0], "{name} fires at once");
    }
    let (test, checks) = promtool_test(&scrapes, &up);
    assert!(checks > 100, "only {checks} steady points to compare");
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    let deployed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/rules");
    for file in [
        "llm-schema-llmwatch.yml",
        "llm-aggregates.yml",
        "llm-alerts.yml",
    ] {
        std::fs::copy(deployed.join(file), rules.join(file)).unwrap();
    }
    std::fs::write(dir.path().join("agreement_test.yml"), &test).unwrap();
    let out = std::process::Command::new(promtool)
        .args(["test", "rules", "agreement_test.yml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "Prometheus disagrees with up:\n{report}"
    );
}
