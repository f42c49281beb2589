use super::*;
use crate::sim::dialect::VllmVersion;

fn config(scenario: &str) -> ReplayConfig {
    ReplayConfig {
        dialect: Dialect::Vllm(VllmVersion::V0_33),
        profile: Profile::gpu_7b(),
        load: Load::chat(5.0),
        faults: FaultRates::default(),
        scenario: Some(Scenario::parse("test.toml", scenario).unwrap()),
        seed: 11,
        model: "m".into(),
        started_unix: 1_800_000_000.0,
    }
}

/// The value of the first sample of `series` (a name with its labels' opening) in `body`.
fn value(body: &str, series: &str) -> f64 {
    body.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {series}"))
}

#[test]
fn a_replay_serves_the_scenario_in_made_up_time_and_counts_refusals() {
    let scenario = "name = \"t\"\n[[step]]\nat = \"60s\"\nerror_rate = 0.5\n[[step]]\nat = \"120s\"\nmetrics_down = true\n[[step]]\nat = \"180s\"\nmetrics_down = false\nengine_metrics = false\n[[step]]\nat = \"240s\"\nengine_metrics = true\nlora_adapters = 7\n";
    let mut replay = Replay::new(config(scenario));
    let (body, content_type) = replay.scrape_at(60.0).unwrap();
    assert!(content_type.contains("version=1.0.0"));
    let finished = value(
        &body,
        "vllm:request_success_total{engine=\"0\",finished_reason=\"stop\"",
    ) + value(
        &body,
        "vllm:request_success_total{engine=\"0\",finished_reason=\"length\"",
    );
    // About 300 arrivals in a minute, nearly all finished: no faults yet.
    assert!((250.0..330.0).contains(&finished), "{finished}");
    assert_eq!(replay.front(), FrontCounts::default());
    let (body, _) = replay.scrape_at(119.0).unwrap();
    let errors = value(
        &body,
        "vllm:request_success_total{engine=\"0\",finished_reason=\"error\"",
    );
    assert!(
        (110.0..190.0).contains(&errors),
        "half of ~300 arrivals: {errors}"
    );
    assert_eq!(
        value(
            &body,
            "http_requests_total{handler=\"/v1/chat/completions\",method=\"POST\",status=\"5xx\"}"
        ),
        errors
    );
    assert!(replay.scrape_at(150.0).is_none(), "metrics are down");
    let (body, _) = replay.scrape_at(200.0).unwrap();
    assert!(!body.contains("vllm:"), "engine families are gone");
    assert!(body.contains("process_cpu_seconds_total"));
    let (body, _) = replay.scrape_at(250.0).unwrap();
    assert_eq!(body.matches("vllm:lora_requests_info{").count(), 7);
    assert!(replay.engine().totals().generated_tokens > 10_000);
}

#[test]
fn a_queue_limit_turns_arrivals_into_admission_rejections() {
    let scenario = "name = \"t\"\n[[step]]\nat = \"10s\"\nmax_running = 1\nmax_waiting = 5\n";
    let mut replay = Replay::new(config(scenario));
    let (body, _) = replay.scrape_at(120.0).unwrap();
    let rejected = value(&body, "vllm:admission_rejections_total{model_name=\"m\"");
    assert!(rejected > 200.0, "{rejected}");
    assert_eq!(rejected, replay.front().overloaded as f64);
    assert!(value(&body, "vllm:num_requests_waiting{") <= 5.0);
}

#[test]
fn the_same_seed_replays_the_same_bodies() {
    let scenario = "name = \"t\"\n[[step]]\nat = \"5s\"\nkv_blocks = 100\n";
    let mut a = Replay::new(config(scenario));
    let mut b = Replay::new(config(scenario));
    for at in [10.0, 20.0, 30.0] {
        assert_eq!(a.scrape_at(at), b.scrape_at(at));
    }
}
