//! The evaluator over a store fed scrapes at made-up times: Prometheus's states in order,
//! values and rendered descriptions, "not enough data" while a window is not covered, and
//! nothing on a healthy target.

use std::sync::Arc;

use super::*;
use crate::collect::history::tests::{finished, scalar};
use crate::collect::state::{Failure, Scraped};
use crate::collect::targets::Target;
use crate::config::{HistoryConfig, ScrapeConfig};
use crate::engines::Engine;

fn alerts() -> Alerts {
    Alerts::new(Settings {
        slo: Slo::default(),
        runbook_base: "https://example.test/runbook".into(),
    })
}

fn store() -> Store {
    let store = Store::new(HistoryConfig::default());
    let target = Target::from_arg(
        "http://127.0.0.1:8000,name=vllm-0,service=chat",
        &ScrapeConfig::default(),
    )
    .unwrap();
    store.set_targets(&[Arc::new(target)]);
    store
}

/// A scrape at `at`: `finished` ok and `failed` server errors so far, `kv` KV use.
fn scrape(store: &Store, at: f64, counts: (f64, f64), kv: f64) {
    scrape_samples(store, at, counts, kv, 100);
}

/// A scrape as [`scrape`] whose body held `samples` samples.
fn scrape_samples(store: &Store, at: f64, (ok, failed): (f64, f64), kv: f64, samples: usize) {
    let readings = vec![
        finished(&[("ok_stop", ok), ("error_server", failed)]),
        scalar("llm_kv_cache_usage_ratio", kv),
        scalar("llm_requests_running", 1.0),
        scalar("llm_generation_tokens_total", at),
    ];
    let scraped = Scraped {
        at,
        engine: Some(Engine::Vllm),
        version: "0.33.0".into(),
        samples,
        readings,
        raw: None,
        problems: vec![],
        gpu: None,
        process: None,
    };
    store.record_success("vllm-0", scraped, 0.01);
}

fn states(alerts: &Alerts, name: &str) -> Vec<(State, f64)> {
    alerts
        .active()
        .filter(|a| a.name == name)
        .map(|a| (a.state, a.value))
        .collect()
}

#[test]
fn an_error_burst_goes_pending_then_firing_then_resolved() {
    let store = store();
    let mut alerts = alerts();
    // Five healthy minutes, then 20 % of requests fail for ten, then healthy again.
    let (mut ok, mut failed) = (0.0, 0.0);
    let mut t = 0.0;
    let mut seen = Vec::new();
    let mut firing_view = None;
    while t <= 1500.0 {
        let failing = (300.0..900.0).contains(&t);
        ok += if failing { 8.0 } else { 10.0 };
        failed += if failing { 2.0 } else { 0.0 };
        scrape(&store, t, (ok, failed), 0.5);
        if (t as u64).is_multiple_of(15) {
            alerts.evaluate(&store, t);
            seen.push((t, states(&alerts, "LLMHighErrorRatio")));
            if firing_view.is_none() && alerts.active().any(|a| a.state == State::Firing) {
                let mut metrics = String::new();
                alerts.write_metrics(&mut metrics);
                firing_view = Some((alerts.api(), metrics));
            }
        }
        t += 5.0;
    }
    let at = |time: f64| seen.iter().find(|(t, _)| *t == time).unwrap().1.clone();
    assert!(at(285.0).is_empty(), "healthy: {:?}", at(285.0));
    // The 5-minute ratio passes 5 % within a couple of minutes of the burst.
    let pending = seen
        .iter()
        .find(|(_, s)| s.first().is_some_and(|s| s.0 == State::Pending))
        .unwrap()
        .0;
    assert!((300.0..480.0).contains(&pending), "pending at {pending}");
    // Firing after its `for` of 5 minutes, and not before.
    let firing = seen
        .iter()
        .find(|(_, s)| s.first().is_some_and(|s| s.0 == State::Firing))
        .unwrap()
        .0;
    assert_eq!(firing, pending + 300.0);
    let value = at(firing)[0].1;
    assert!((value - 0.2).abs() < 0.03, "ratio {value}");
    // Resolved once the 5-minute window is healthy again.
    let resolved = seen
        .iter()
        .find(|(_, s)| s.first().is_some_and(|s| s.0 == State::Resolved))
        .unwrap()
        .0;
    assert!(
        (900.0..1250.0).contains(&resolved),
        "resolved at {resolved}"
    );
    // The API's shape is Prometheus's, the description is rendered.
    let (api, metrics) = firing_view.unwrap();
    let alert = &api["data"]["alerts"][0];
    assert_eq!(alert["state"], "firing");
    assert_eq!(alert["labels"]["alertname"], "LLMHighErrorRatio");
    assert_eq!(alert["labels"]["service"], "chat");
    assert_eq!(alert["labels"]["instance"], "vllm-0");
    assert_eq!(alert["labels"]["severity"], "warning");
    assert!(
        alert["annotations"]["runbook_url"]
            .as_str()
            .unwrap()
            .ends_with("#llmhigherrorratio")
    );
    let description = alert["annotations"]["description"].as_str().unwrap();
    assert!(description.starts_with("chat vllm m: 2"), "{description}");
    assert!(alert["activeAt"].as_str().unwrap().ends_with('Z'));
    assert!(
        metrics.contains("alertname=\"LLMHighErrorRatio\"")
            && metrics.contains("state=\"firing\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_window_not_yet_covered_is_not_enough_data_and_a_healthy_target_fires_nothing() {
    let store = store();
    let mut alerts = alerts();
    for i in 0..=12 {
        scrape(&store, f64::from(i) * 5.0, (f64::from(i) * 10.0, 0.0), 0.5);
    }
    alerts.evaluate(&store, 60.0);
    assert_eq!(alerts.active().count(), 0);
    let unjudged: Vec<&str> = alerts.unjudged().iter().map(|u| u.name).collect();
    assert!(unjudged.contains(&"LLMHighErrorRatio"), "{unjudged:?}");
    assert!(unjudged.contains(&"LLMErrorBudgetBurnSlow"), "{unjudged:?}");
    let reason = &alerts
        .unjudged()
        .iter()
        .find(|u| u.name == "LLMHighErrorRatio")
        .unwrap()
        .reason
        .to_string();
    assert!(reason.contains("the alert reads 5m"), "{reason}");
    // After an hour of health: judged, and nothing fires.
    for i in 13..=730 {
        scrape(&store, f64::from(i) * 5.0, (f64::from(i) * 10.0, 0.0), 0.5);
    }
    alerts.evaluate(&store, 3650.0);
    assert_eq!(alerts.active().count(), 0, "{:?}", alerts.api());
    let unjudged: Vec<&str> = alerts.unjudged().iter().map(|u| u.name).collect();
    assert!(!unjudged.contains(&"LLMHighErrorRatio"), "{unjudged:?}");
    assert!(
        !unjudged.contains(&"LLMErrorBudgetBurnFast"),
        "{unjudged:?}"
    );
}

#[test]
fn a_target_down_for_its_for_fires_and_a_full_kv_cache_fires_after_15_minutes() {
    let store = store();
    let mut alerts = alerts();
    scrape(&store, 0.0, (0.0, 0.0), 0.95);
    alerts.evaluate(&store, 0.0);
    assert!(
        states(&alerts, "LLMKVCacheNearlyFull").is_empty(),
        "a 5-minute average needs 5 minutes of history"
    );
    // One low scrape among high ones keeps the average, and the `for`, going. (The mean is
    // of each 10-second step's latest value, kept as f32.)
    for i in 1..=60 {
        let usage = if i == 30 { 0.5 } else { 0.95 };
        scrape(&store, f64::from(i) * 5.0, (0.0, 0.0), usage);
    }
    alerts.evaluate(&store, 300.0);
    let pending = states(&alerts, "LLMKVCacheNearlyFull");
    assert_eq!(pending[0].0, State::Pending, "{pending:?}");
    assert!(
        (pending[0].1 - (0.95 * 29.0 + 0.5) / 30.0).abs() < 1e-6,
        "{pending:?}"
    );
    for i in 61..=180 {
        scrape(&store, f64::from(i) * 5.0, (0.0, 0.0), 0.95);
    }
    alerts.evaluate(&store, 900.0);
    let firing = states(&alerts, "LLMKVCacheNearlyFull");
    assert_eq!(firing[0].0, State::Firing, "{firing:?}");
    assert!((firing[0].1 - 0.95).abs() < 1e-6, "{firing:?}");
    let failure = Failure {
        reason: "refused",
        message: "connection refused".into(),
    };
    store.record_failure("vllm-0", 905.0, 0.001, failure);
    alerts.evaluate(&store, 905.0);
    assert_eq!(states(&alerts, "LLMTargetDown"), [(State::Pending, 0.0)]);
    // Down: `up` judges no model of a target it cannot scrape, so the KV alert resolves
    // (Prometheus's `avg_over_time` holds it for the window; the agreement tests compare
    // settled minutes only).
    assert_eq!(
        states(&alerts, "LLMKVCacheNearlyFull")[0].0,
        State::Resolved
    );
    alerts.evaluate(&store, 1025.0);
    assert_eq!(states(&alerts, "LLMTargetDown"), [(State::Firing, 0.0)]);
    let description = alerts.api()["data"]["alerts"][0]["annotations"]["description"].clone();
    assert!(
        description.as_str().unwrap().contains("vllm-0"),
        "{description}"
    );
}

#[test]
fn firing_alerts_are_sent_then_resent_each_minute_and_a_resolution_at_once() {
    let store = store();
    let mut alerts = alerts();
    scrape(&store, 0.0, (0.0, 0.0), 0.95);
    alerts.evaluate(&store, 0.0);
    assert!(
        alerts.due(0.0, "http://up").1.is_empty(),
        "pending alerts are not sent"
    );
    for i in 1..=180 {
        scrape(&store, f64::from(i) * 5.0, (0.0, 0.0), 0.95);
        if i == 60 {
            // Pending once five minutes of usage are averaged; firing ten minutes later.
            alerts.evaluate(&store, 300.0);
        }
    }
    alerts.evaluate(&store, 900.0);
    let (keys, due) = alerts.due(900.0, "http://up");
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(due[0]["labels"]["alertname"], "LLMKVCacheNearlyFull");
    assert_eq!(due[0]["startsAt"], "1970-01-01T00:15:00.000Z");
    assert_eq!(
        due[0]["endsAt"], "1970-01-01T00:19:00.000Z",
        "four resends ahead"
    );
    assert_eq!(due[0]["generatorURL"], "http://up/api/v1/alerts");
    assert!(
        alerts.due(930.0, "http://up").1.is_empty(),
        "not again within a minute"
    );
    alerts.unsent(&keys);
    assert_eq!(
        alerts.due(931.0, "http://up").1.len(),
        1,
        "a failed send is tried again"
    );
    assert_eq!(
        alerts.due(991.0, "http://up").1.len(),
        1,
        "resent after a minute"
    );
    for i in 181..=200 {
        scrape(&store, f64::from(i) * 5.0, (0.0, 0.0), 0.5);
    }
    alerts.evaluate(&store, 1000.0);
    let (_, due) = alerts.due(1000.0, "http://up");
    assert_eq!(due.len(), 1, "the resolution goes out at once");
    assert_eq!(due[0]["endsAt"], "1970-01-01T00:16:40.000Z");
}

#[test]
fn a_sample_count_past_twice_its_six_hour_median_fires_after_15_minutes_and_resolves() {
    let store = store();
    let mut alerts = alerts();
    let name = "LLMScrapeSamplesExploding";
    let mut seen = Vec::new();
    let mut t = 0.0;
    // Six hours at 100 samples, then 250 for half an hour (a label exploding), then 100.
    while t <= 6.0 * 3600.0 + 3600.0 {
        let exploding = (6.0 * 3600.0..6.5 * 3600.0).contains(&t);
        let samples = if exploding { 250 } else { 100 };
        scrape_samples(&store, t, (t, 0.0), 0.5, samples);
        if (t as u64).is_multiple_of(60) {
            alerts.evaluate(&store, t);
            seen.push((t, states(&alerts, name)));
            if t == 3600.0 {
                let api = alerts.api();
                let unjudged = api["data"]["not_enough_data"].as_array().unwrap();
                assert!(
                    unjudged.iter().any(|u| u["alertname"] == name
                        && u["reason"].as_str().unwrap().contains("reads 6h")),
                    "an hour in, six hours are not covered: {api}"
                );
            }
        }
        t += 30.0;
    }
    let first = |state: State| {
        seen.iter()
            .find(|(_, s)| s.first().is_some_and(|s| s.0 == state))
            .map(|(t, s)| (*t, s[0].1))
    };
    assert!(
        seen.iter()
            .filter(|(t, _)| *t < 6.0 * 3600.0)
            .all(|(_, s)| s.is_empty())
    );
    let (pending, value) = first(State::Pending).unwrap();
    assert_eq!((pending, value), (6.0 * 3600.0, 250.0));
    assert_eq!(
        first(State::Firing).unwrap().0,
        pending + 900.0,
        "its `for` is 15m"
    );
    let (resolved, _) = first(State::Resolved).unwrap();
    assert_eq!(
        resolved,
        6.5 * 3600.0,
        "resolved at the first evaluation after the drop"
    );
}
