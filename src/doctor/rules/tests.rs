use super::*;
use crate::doctor::Reading;

/// `(panel, line, value)` readings.
type Readings<'a> = &'a [(&'a str, &'a str, f64)];

fn evidence(target: &str, readings: &[(&str, &str, f64)]) -> Evidence {
    Evidence {
        target: target.into(),
        engine: Some("vllm".into()),
        version: Some("0.33.0".into()),
        health: "up".into(),
        model: Some("m".into()),
        history_seconds: 300.0,
        window_seconds: 300.0,
        readings: readings
            .iter()
            .map(|(p, l, v)| ((p.to_string(), l.to_string()), Reading::Value(*v)))
            .collect(),
        ..Evidence::default()
    }
}

fn checks(evidence: &[Evidence]) -> Vec<&'static str> {
    diagnose(evidence, &Thresholds::default())
        .iter()
        .map(|f| f.check)
        .collect()
}

const HEALTHY: &[(&str, &str, f64)] = &[
    ("cache", "KV used", 0.4),
    ("pressure", "preemptions/s", 0.0),
    ("load", "waiting", 0.0),
    ("load", "running", 8.0),
    ("queue", "p95", 0.01),
    ("ttft", "p95", 0.2),
    ("prefill", "p95", 0.1),
    ("itl", "p95", 0.03),
    ("errors", "error ratio", 0.0),
    ("outcomes", "ok_stop", 5.0),
];

fn with(changes: &[(&str, &str, f64)]) -> Evidence {
    let mut e = evidence("a", HEALTHY);
    for (p, l, v) in changes {
        e.readings
            .insert((p.to_string(), l.to_string()), Reading::Value(*v));
    }
    e
}

#[test]
fn each_diagnosis_fires_on_its_pattern_and_not_on_a_healthy_engine() {
    assert_eq!(checks(&[with(&[])]), Vec::<&str>::new());
    let cases: [(Readings<'_>, &str); 6] = [
        (
            &[
                ("cache", "KV used", 0.97),
                ("pressure", "preemptions/s", 0.5),
            ],
            "kv-bound",
        ),
        (
            &[
                ("load", "waiting", 12.0),
                ("queue", "p95", 2.5),
                ("ttft", "p95", 3.0),
            ],
            "queue-bound",
        ),
        (
            &[("ttft", "p95", 2.0), ("prefill", "p95", 1.6)],
            "prefill-bound",
        ),
        (&[("itl", "p95", 0.25)], "decode-bound"),
        (
            &[
                ("errors", "error ratio", 0.08),
                ("outcomes", "error_server", 0.4),
            ],
            "error-burst",
        ),
        (&[("outcomes", "rejected_overload", 1.5)], "overload-429"),
    ];
    for (changes, check) in cases {
        assert_eq!(checks(&[with(changes)]), vec![check], "{changes:?}");
    }
    let found = diagnose(&[with(cases[0].0)], &Thresholds::default());
    assert!(
        found[0].fix.contains("--gpu-memory-utilization"),
        "{found:?}"
    );
    assert_eq!(found[0].runbook, "docs/runbook.md#llmkvcachenearlyfull");
    assert!(
        found[0].evidence[0].starts_with("KV cache usage = 0.97"),
        "{found:?}"
    );
}

#[test]
fn a_down_target_says_why_and_what_to_turn_on() {
    let mut down = Evidence {
        target: "llama".into(),
        health: "down".into(),
        error_reason: Some("metrics_disabled".into()),
        error_message: Some("HTTP 501".into()),
        ..Evidence::default()
    };
    let found = diagnose(std::slice::from_ref(&down), &Thresholds::default());
    assert_eq!(
        (found[0].check, found[0].severity),
        ("target-down", Severity::Critical)
    );
    assert!(found[0].fix.contains("--metrics"), "{found:?}");
    down.error_reason = Some("refused".into());
    let found = diagnose(&[down], &Thresholds::default());
    assert!(found[0].message.contains("(refused)"), "{found:?}");
}

#[test]
fn replicas_of_a_model_with_uneven_queues_are_an_imbalance() {
    let busy = {
        let mut e = with(&[("load", "waiting", 6.0)]);
        e.target = "b".into();
        e
    };
    assert_eq!(
        checks(&[with(&[]), busy.clone()]),
        vec!["replica-imbalance"]
    );
    let mut other_model = with(&[]);
    other_model.model = Some("n".into());
    assert_eq!(checks(&[other_model, busy]), Vec::<&str>::new());
}

#[test]
fn a_short_history_is_not_enough_data_not_a_clean_bill() {
    let mut young = with(&[
        ("cache", "KV used", 0.99),
        ("pressure", "preemptions/s", 1.0),
    ]);
    young.history_seconds = 20.0;
    assert_eq!(checks(&[young]), vec!["not-enough-data"]);
}

#[test]
fn how_a_target_is_scraped_is_judged_once_per_target() {
    let mut slow = with(&[]);
    slow.scrape.interval_seconds = Some(120.0);
    let mut second_model = slow.clone();
    second_model.model = Some("n".into());
    assert_eq!(
        checks(&[slow.clone(), second_model]),
        vec!["scrape-interval-too-long"]
    );
    slow.scrape.interval_seconds = Some(15.0);
    assert_eq!(checks(&[slow.clone()]), Vec::<&str>::new());

    let mut growing = slow.clone();
    growing.scrape.samples_at_window_start = Some(400.0);
    growing.scrape.samples = Some(900.0);
    assert_eq!(
        checks(&[growing.clone()]),
        vec!["label-cardinality-growing"]
    );
    growing.scrape.samples = Some(430.0);
    assert_eq!(checks(&[growing]), Vec::<&str>::new(), "a few new series");

    let problem = |kind: &str| crate::doctor::IntegrityProblem {
        kind: kind.into(),
        series: "llm_x".into(),
        detail: "d".into(),
        count: 3,
    };
    let mut broken = slow;
    broken.scrape.integrity = vec![
        problem("counter_backwards"),
        problem("non_cumulative_histogram"),
        problem("scrape_window_reset"),
    ];
    let found = diagnose(&[broken], &Thresholds::default());
    let names: Vec<&str> = found.iter().map(|f| f.check).collect();
    assert_eq!(
        names,
        vec![
            "counter-backwards",
            "non-cumulative-histogram",
            "another-scraper"
        ]
    );
    assert_eq!(found[0].evidence, vec!["llm_x: d (3 scrapes)"]);
    assert!(
        found.iter().all(|f| f.place.is_empty()),
        "about the target, not a model: {found:?}"
    );
    assert!(found[2].fix.contains("scrape llama.cpp once"), "{found:?}");
}
