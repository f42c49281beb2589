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
use llmwatch::engines::{Engine, Histogram, Reading, SeriesValue, Source, Value, signal};

use crate::util::external_program;

const STEP: f64 = 15.0;
const MINUTES: usize = 150;
/// The alerts the incident exercises; each must fire at some point.
const CHECKED: [&str; 11] = [
    "LLMHighErrorRatio",
    "LLMErrorBudgetBurnFast",
    "LLMTTFTBudgetBurnFast",
    "LLMTTFTP99High",
    "LLMQueueTimeP99High",
    "LLMQueueBacklogGrowing",
    "LLMThroughputCollapse",
    "LLMExpectedMetricsAbsent",
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
    waiting: f64,
    /// Absent from the scrape when `None` (an upgrade renamed them).
    tokens: Option<f64>,
    running: Option<f64>,
    /// Observations so far: fast (0.05 s) and slow (TTFT 4 s, queue 2 s).
    ttft: (f64, f64),
    queue: (f64, f64),
}

/// Bounds of both histograms.
const BOUNDS: [f64; 5] = [0.1, 0.5, 1.0, 2.5, 5.0];

/// Cumulative buckets (the last `+Inf`), sum and count of `fast` observations of 0.05 s and
/// `slow` ones of `slow_value` seconds.
fn histogram((fast, slow): (f64, f64), slow_value: f64) -> Histogram {
    let mut buckets: Vec<(f64, f64)> = BOUNDS
        .iter()
        .map(|le| (*le, fast + if *le >= slow_value { slow } else { 0.0 }))
        .collect();
    buckets.push((f64::INFINITY, fast + slow));
    Histogram {
        buckets,
        sum: fast * 0.05 + slow * slow_value,
        count: fast + slow,
    }
}

/// The incident, minute by minute (each scrape at 15 s):
/// - 12–35: the KV cache at 97 % with preemptions;
/// - 40–48: every scrape fails;
/// - 62–77: 80 % of requests fail (once `up` holds the hour the fast burn-rate alerts read);
/// - 85–105: first tokens take 4 s and requests queue 2 s;
/// - 95–120: the queue grows by one request a scrape, and from 100 generation slows to a tenth;
/// - 125–150: the running and generated-token series are gone (an upgrade renamed them).
fn incident() -> Vec<Option<Numbers>> {
    let mut n = Numbers {
        ok: 0.0,
        failed: 0.0,
        kv: 0.5,
        preemptions: 0.0,
        waiting: 0.0,
        tokens: Some(0.0),
        running: Some(4.0),
        ttft: (0.0, 0.0),
        queue: (0.0, 0.0),
    };
    let mut tokens = 0.0;
    (0..(MINUTES * 4))
        .map(|i| {
            let minute = i as f64 * STEP / 60.0;
            let during = |from: f64, to: f64| (from..to).contains(&minute);
            n.ok += if during(62.0, 77.0) { 2.0 } else { 10.0 };
            n.failed += if during(62.0, 77.0) { 8.0 } else { 0.0 };
            n.kv = if during(12.0, 35.0) { 0.97 } else { 0.5 };
            n.preemptions += if during(12.0, 35.0) { 3.0 } else { 0.0 };
            let slow = during(85.0, 105.0);
            n.ttft.0 += if slow { 0.0 } else { 10.0 };
            n.ttft.1 += if slow { 10.0 } else { 0.0 };
            n.queue = n.ttft;
            n.waiting = if during(95.0, 120.0) {
                n.waiting + 1.0
            } else {
                0.0
            };
            tokens += if during(100.0, 120.0) { 50.0 } else { 500.0 };
            let renamed = during(125.0, 150.0);
            n.tokens = (!renamed).then_some(tokens);
            n.running = (!renamed).then_some(4.0);
            (!during(40.0, 48.0)).then_some(n)
        })
        .collect()
}

fn reading(name: &str, series: Vec<(Option<&'static str>, Value)>) -> Reading {
    Reading {
        signal: signal(name).unwrap(),
        source: Source::Native(vec![]),
        note: "",
        series: series
            .into_iter()
            .map(|(outcome, value)| SeriesValue {
                model: "m".into(),
                outcome,
                value,
            })
            .collect(),
    }
}

fn scalar(name: &str, v: f64) -> Reading {
    reading(name, vec![(None, Value::Scalar(v))])
}

fn readings(n: &Numbers) -> Vec<Reading> {
    let mut out = vec![
        reading(
            "llm_requests_finished_total",
            vec![
                (Some("ok_stop"), Value::Scalar(n.ok)),
                (Some("error_server"), Value::Scalar(n.failed)),
            ],
        ),
        scalar("llm_kv_cache_usage_ratio", n.kv),
        scalar("llm_preemptions_total", n.preemptions),
        scalar("llm_requests_waiting", n.waiting),
        reading(
            "llm_time_to_first_token_seconds",
            vec![(None, Value::Histogram(histogram(n.ttft, 4.0)))],
        ),
        reading(
            "llm_request_queue_seconds",
            vec![(None, Value::Histogram(histogram(n.queue, 2.0)))],
        ),
    ];
    out.extend(n.tokens.map(|v| scalar("llm_generation_tokens_total", v)));
    out.extend(n.running.map(|v| scalar("llm_requests_running", v)));
    out
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
                    gpu: None,
                    process: None,
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

/// promtool's `values` for one series: a value per step, `stale` where the scrape failed or
/// the series is absent (Prometheus marks a vanished series stale at once).
fn values(scrapes: &[Option<Numbers>], f: impl Fn(&Numbers) -> Option<f64>) -> String {
    scrapes
        .iter()
        .map(|s| match s.as_ref().and_then(&f) {
            Some(v) => format!("{v}"),
            None => "stale".to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The promtool test file, and per alert how many steady minutes it fires and does not.
fn promtool_test(
    scrapes: &[Option<Numbers>],
    up: &BTreeMap<&'static str, Vec<bool>>,
) -> (String, BTreeMap<&'static str, (usize, usize)>) {
    let labels = "job=\"llmwatch\",instance=\"t\",service=\"s\",engine=\"vllm\",model=\"m\"";
    let mut series: Vec<(String, String)> = vec![
        (
            format!("llm_requests_finished_total{{{labels},outcome=\"ok_stop\"}}"),
            values(scrapes, |n| Some(n.ok)),
        ),
        (
            format!("llm_requests_finished_total{{{labels},outcome=\"error_server\"}}"),
            values(scrapes, |n| Some(n.failed)),
        ),
        (
            format!("llm_kv_cache_usage_ratio{{{labels}}}"),
            values(scrapes, |n| Some(n.kv)),
        ),
        (
            format!("llm_preemptions_total{{{labels}}}"),
            values(scrapes, |n| Some(n.preemptions)),
        ),
        (
            format!("llm_requests_waiting{{{labels}}}"),
            values(scrapes, |n| Some(n.waiting)),
        ),
        (
            format!("llm_generation_tokens_total{{{labels}}}"),
            values(scrapes, |n| n.tokens),
        ),
        (
            format!("llm_requests_running{{{labels}}}"),
            values(scrapes, |n| n.running),
        ),
    ];
    for (signal, slow) in [
        ("llm_time_to_first_token_seconds", 4.0),
        ("llm_request_queue_seconds", 2.0),
    ] {
        let pick = |n: &Numbers| {
            if signal.contains("queue") {
                n.queue
            } else {
                n.ttft
            }
        };
        for (i, le) in BOUNDS.iter().chain([f64::INFINITY].iter()).enumerate() {
            let le_text = if le.is_infinite() {
                "+Inf".to_string()
            } else {
                format!("{le}")
            };
            series.push((
                format!("{signal}_bucket{{{labels},le=\"{le_text}\"}}"),
                values(scrapes, |n| Some(histogram(pick(n), slow).buckets[i].1)),
            ));
        }
        series.push((
            format!("{signal}_sum{{{labels}}}"),
            values(scrapes, |n| Some(histogram(pick(n), slow).sum)),
        ));
        series.push((
            format!("{signal}_count{{{labels}}}"),
            values(scrapes, |n| Some(histogram(pick(n), slow).count)),
        ));
    }
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
    let rules = [
        "llm-schema-llmwatch.yml",
        "llm-aggregates.yml",
        "llm-alerts.yml",
    ];
    steady_test(&rules, &series, up, MINUTES)
}

/// A promtool test over `series` (promtool input: name with labels, values at 15 s steps)
/// with `rules`: at every minute of `minutes` where `up`'s state of an alert is steady for two
/// minutes either side, Prometheus must agree whether it fires. Also per alert how many
/// firing and quiet minutes were compared.
pub fn steady_test(
    rules: &[&str],
    series: &[(String, String)],
    up: &BTreeMap<&'static str, Vec<bool>>,
    minutes: usize,
) -> (String, BTreeMap<&'static str, (usize, usize)>) {
    let mut text = String::from("rule_files:\n");
    for file in rules {
        writeln!(text, "  - rules/{file}").unwrap();
    }
    text.push_str("evaluation_interval: 15s\ntests:\n  - interval: 15s\n    input_series:\n");
    for (name, values) in series {
        writeln!(text, "      - series: '{name}'\n        values: '{values}'").unwrap();
    }
    text.push_str("    promql_expr_test:\n");
    let mut checks: BTreeMap<&'static str, (usize, usize)> = BTreeMap::new();
    let steady = 8; // two minutes either side
    for minute in 1..minutes {
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
            let count = checks.entry(*name).or_default();
            if states[i] {
                count.0 += 1;
            } else {
                count.1 += 1;
            }
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
    for name in CHECKED {
        let (firing, quiet) = checks.get(name).copied().unwrap_or_default();
        assert!(
            firing >= 1 && quiet >= 10,
            "{name}: {firing} firing and {quiet} quiet minutes compared"
        );
    }
    crate::alert_scenarios::promtool_agrees(
        &promtool,
        &[
            "llm-schema-llmwatch.yml",
            "llm-aggregates.yml",
            "llm-alerts.yml",
        ],
        &test,
    );
}
