//! Every alert, fired by a simulator scenario: each file under `scenarios/alerts/` is
//! replayed in made-up time (the simulated engine, its load, faults and steps, scraped every
//! 15 s) and its vLLM `/metrics` bodies go two ways:
//!
//! - through `up`'s own path (parse, detect, normalise, store) and its alert evaluator, which
//!   must fire exactly the scenario's alerts, each within its `for` plus one evaluation of the
//!   moment the expression can see the incident, and resolve after recovery;
//! - as raw engine series into Prometheus's rule engine (`promtool test rules`) with the
//!   exported rules-only rules (`llm-schema-engines.yml`, aggregates, alerts), which must
//!   agree with `up` at every minute where `up`'s state is steady for two minutes around it
//!   and `up` holds enough history to judge.
//!
//! A healthy engine under the same load over the same time fires nothing. Skips the
//! Prometheus half without promtool unless `LLMWATCH_REQUIRE_EXTERNAL=1`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use llmwatch::alerting::{Alerts, Settings, State};
use llmwatch::catalog::alerts::{ALERTS, Slo};
use llmwatch::collect::state::{Failure, Scraped, Store};
use llmwatch::collect::targets::Target;
use llmwatch::config::{HistoryConfig, ScrapeConfig};
use llmwatch::engines::{Index, detect, normalise};
use llmwatch::exposition::{Mode, parse};
use llmwatch::sim::dialect::{Dialect, VllmVersion};
use llmwatch::sim::engine::Profile;
use llmwatch::sim::faults::FaultRates;
use llmwatch::sim::load::Load;
use llmwatch::sim::replay::{Replay, ReplayConfig};
use llmwatch::sim::scenario::Scenario;

use crate::util::external_program;

/// Scrape and evaluation interval, seconds.
const STEP: f64 = 15.0;
/// `up`'s clock at simulated time zero (promtool's series start at 0).
const T0: f64 = 1_800_000_000.0;

/// One alert's state at one evaluation, as `up` judged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Quiet,
    Pending,
    Firing,
    /// Not enough history for the alert's window.
    Unjudged,
}

/// What a scenario must do.
struct Case {
    /// File under `scenarios/alerts/`.
    file: &'static str,
    /// Length of the replay.
    minutes: usize,
    /// Background traffic.
    load: fn() -> Load,
    /// Every alert that fires, with the minute by which it must be firing (the incident's
    /// start, plus the time its expression needs to see it, plus its `for`, plus one
    /// evaluation) and the minute by which it must have resolved.
    fires: &'static [(&'static str, f64, f64)],
}

const CASES: [Case; 6] = [
    Case {
        file: "kv-cache-full.toml",
        minutes: 60,
        load: long_requests,
        // The cache shrinks at 10 and recovers at 40. A full cache queues requests: the
        // queue and first-token alerts fire with the cache's own, each once its 5-minute
        // window sees the change (the cache's average once the window is full of it), and
        // resolve once the window has passed the recovery and
        // the queue has drained.
        fires: &[
            ("LLMKVCacheNearlyFull", 10.0 + 5.0 + 10.0 + 0.25, 42.0),
            ("LLMPreemptionsRising", 10.0 + 1.0 + 10.0 + 0.25, 47.0),
            ("LLMQueueBacklogGrowing", 10.0 + 2.0 + 10.0 + 0.25, 42.0),
            ("LLMQueueTimeP99High", 10.0 + 1.0 + 10.0 + 0.25, 47.0),
            ("LLMTTFTP99High", 10.0 + 1.0 + 10.0 + 0.25, 47.0),
        ],
    },
    Case {
        file: "scrape-failures.toml",
        minutes: 60,
        load: chat,
        // Metrics down from 10 to 20; engine families gone from 30 to 50.
        fires: &[
            ("LLMTargetDown", 10.0 + 2.0 + 0.25, 20.5),
            ("LLMExpectedMetricsAbsent", 30.0 + 10.0 + 0.25, 50.5),
        ],
    },
    Case {
        file: "error-burst-long.toml",
        minutes: 100,
        load: chat,
        // Half of all requests fail from 65 to 90. The 5-minute ratio passes 5 % within a
        // minute; the hour's ratio passes 14.4 % after about 18 minutes.
        fires: &[
            ("LLMHighErrorRatio", 65.0 + 1.0 + 5.0 + 0.25, 95.5),
            ("LLMErrorBudgetBurnFast", 65.0 + 18.0 + 2.0 + 0.25, 95.5),
        ],
    },
    Case {
        file: "throughput-collapse.toml",
        minutes: 100,
        load: chat,
        // Decode slows at 65 and recovers at 85. The 5-minute token rate falls under a fifth
        // of the hour's within five minutes; the queue grows at once and its p99 passes 1 s
        // within four. The queued requests all get their first tokens late when the backlog
        // drains at 85: that burst is what burns the first-token budget.
        fires: &[
            ("LLMThroughputCollapse", 65.0 + 5.0 + 5.0 + 0.25, 86.0),
            ("LLMQueueBacklogGrowing", 65.0 + 2.0 + 10.0 + 0.25, 88.5),
            ("LLMQueueTimeP99High", 65.0 + 4.0 + 10.0 + 0.25, 95.0),
            ("LLMTTFTP99High", 65.0 + 4.0 + 10.0 + 0.25, 95.0),
            ("LLMTTFTBudgetBurnFast", 85.0 + 1.0 + 2.0 + 0.25, 95.0),
        ],
    },
    Case {
        file: "slow-burn.toml",
        minutes: 435,
        load: long_prompts,
        // Errors and slow prefill from 30 to 400; LoRA series from 370 to 400. `up` judges
        // a window once it holds nine tenths of it: 6 hours at 324 minutes, 1 hour at 54.
        // The 5-minute error ratio passes 5 % four minutes into the leak; the queue's p99
        // passes 1 s within three. The 30-minute short windows take up to 30 minutes after
        // recovery to fall under the slow burns' threshold.
        fires: &[
            ("LLMErrorBudgetBurnSlow", 324.0 + 15.0 + 0.25, 414.0),
            ("LLMTTFTBudgetBurnSlow", 324.0 + 15.0 + 0.25, 430.0),
            ("LLMHighErrorRatio", 30.0 + 4.0 + 5.0 + 0.25, 403.5),
            ("LLMTTFTBudgetBurnFast", 54.0 + 2.0 + 0.25, 404.0),
            ("LLMTTFTP99High", 30.0 + 1.0 + 10.0 + 0.25, 405.5),
            ("LLMQueueTimeP99High", 30.0 + 3.0 + 10.0 + 0.25, 405.0),
            (
                "LLMScrapeSamplesExploding",
                370.0 + 0.5 + 15.0 + 0.25,
                401.0,
            ),
        ],
    },
    Case {
        file: "gpu-trouble.toml",
        minutes: 65,
        load: chat,
        // Memory taken 10 to 30, heat throttling 20 to 40 (the 5-minute rate passes a
        // quarter within two minutes), the scheduler stalled 45 to 52 (the GPU idles at once
        // while requests wait), XID 79 at 55 and kept.
        fires: &[
            ("LLMGPUMemoryFullOutsideKVCache", 10.0 + 10.0 + 0.25, 30.5),
            ("LLMGPUThrottled", 20.0 + 2.0 + 10.0 + 0.25, 45.0),
            (
                "LLMGPUIdleWhileRequestsWait",
                45.0 + 0.25 + 5.0 + 0.25,
                52.5,
            ),
            ("LLMGPUXIDError", 55.0 + 0.25, 66.0),
            // The stalled requests' late first tokens, once `up` holds nine tenths of the
            // hour (minute 54) and while they are in the 5-minute window.
            ("LLMTTFTBudgetBurnFast", 54.0 + 2.0 + 0.25, 58.0),
        ],
    },
];

/// Retrieval-style traffic: a request a second with prompts up to 2,000 tokens,
/// so a slower prefill makes only the longest prompts miss the first-token objective.
fn long_prompts() -> Load {
    Load {
        rate: 1.0,
        prompt_tokens: 50..=2000,
        output_tokens: 20..=300,
        max_tokens: 256,
    }
}

/// Chat traffic at 4 requests/s.
fn chat() -> Load {
    Load::chat(4.0)
}

/// Fewer, longer requests: their sequences hold KV blocks for seconds, so a small cache
/// stays full rather than emptying between bursts.
fn long_requests() -> Load {
    Load {
        rate: 2.0,
        prompt_tokens: 500..=1500,
        output_tokens: 300..=600,
        max_tokens: 1024,
    }
}

/// One scrape: `None` while the endpoint is down.
type Body = Option<String>;

/// The engine's `/metrics` bodies and its GPU's `/dcgm/metrics` bodies, every 15 s.
fn replay(scenario: Option<Scenario>, minutes: usize, load: Load) -> (Vec<Body>, Vec<String>) {
    let mut replay = Replay::new(ReplayConfig {
        dialect: Dialect::Vllm(VllmVersion::V0_33),
        profile: Profile::gpu_7b(),
        load,
        faults: FaultRates::default(),
        scenario,
        seed: 7,
        model: "sim-vllm".into(),
        started_unix: T0,
    });
    (0..minutes * 4)
        .map(|i| {
            let at = i as f64 * STEP;
            let body = replay.scrape_at(at).map(|(body, _)| body);
            (body, replay.gpu_scrape_at(at).unwrap_or_default())
        })
        .unzip()
}

/// The engine target: in pod `vllm-8000` of namespace `sim`, where the GPU's exporter says
/// its GPU is held.
const SERVER: &str = "http://127.0.0.1:8000,name=t,pod=vllm-8000,namespace=sim";

fn scenario(file: &str) -> Scenario {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios/alerts")
        .join(file);
    Scenario::parse(file, &std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `up`'s verdict on every alert at every scrape, through `up`'s own scrape path.
fn up_verdicts(
    (bodies, gpus): (&[Body], &[String]),
    retention: Duration,
) -> BTreeMap<&'static str, Vec<Seen>> {
    let store = Store::new(HistoryConfig {
        retention,
        ..HistoryConfig::default()
    });
    let scrape = ScrapeConfig::default();
    let target = Target::from_arg(SERVER, &scrape).unwrap();
    let exporter = Target::from_arg("http://127.0.0.1:8000/dcgm/metrics,name=gpu", &scrape);
    store.set_targets(&[Arc::new(target), Arc::new(exporter.unwrap())]);
    let mut alerts = Alerts::new(Settings {
        slo: Slo::default(),
        runbook_base: "docs/runbook.md".into(),
    });
    let mut out: BTreeMap<&'static str, Vec<Seen>> = BTreeMap::new();
    for (i, body) in bodies.iter().enumerate() {
        let at = T0 + i as f64 * STEP;
        match body {
            Some(text) => {
                let exp = parse(text, Mode::Strict).unwrap();
                let index = Index::new(&exp);
                let detection = detect(&index);
                let readings = detection
                    .engine
                    .map(|engine| normalise(&index, engine, "unknown"))
                    .unwrap_or_default();
                let scraped = Scraped {
                    at,
                    engine: detection.engine,
                    version: detection.version.clone(),
                    samples: exp.sample_count(),
                    readings,
                    raw: None,
                    problems: vec![],
                    gpu: None,
                    process: None,
                };
                store.record_success("t", scraped, 0.01);
            }
            None => store.record_failure(
                "t",
                at,
                0.01,
                Failure {
                    reason: "status",
                    message: "HTTP 503".into(),
                },
            ),
        }
        record_gpu(&store, at, &gpus[i]);
        alerts.evaluate(&store, at);
        for alert in &ALERTS {
            let states: Vec<State> = alerts
                .active()
                .filter(|a| a.name == alert.name)
                .map(|a| a.state)
                .collect();
            let seen = if states.contains(&State::Firing) {
                Seen::Firing
            } else if states.contains(&State::Pending) {
                Seen::Pending
            } else if alerts.unjudged().iter().any(|u| u.name == alert.name) {
                Seen::Unjudged
            } else {
                Seen::Quiet
            };
            out.entry(alert.name).or_default().push(seen);
        }
    }
    out
}

/// Records the GPU exporter's scrape at `at`, as `up`'s scraper reads it.
fn record_gpu(store: &Store, at: f64, body: &str) {
    let exp = parse(body, Mode::Strict).unwrap();
    let source = llmwatch::gpu::detect(&Index::new(&exp)).unwrap();
    let scraped = Scraped {
        at,
        engine: None,
        version: String::new(),
        samples: exp.sample_count(),
        readings: vec![],
        raw: None,
        problems: vec![],
        gpu: Some(Arc::new(llmwatch::gpu::normalise(&exp, source))),
        process: None,
    };
    store.record_success("gpu", scraped, 0.01);
}

/// Every alert's states, one character per evaluation: `.` quiet, `p` pending, `F` firing,
/// `?` not enough data. For failure messages.
fn timelines(verdicts: &BTreeMap<&'static str, Vec<Seen>>) -> String {
    let mut out = String::new();
    for (name, seen) in verdicts {
        let line: String = seen
            .iter()
            .map(|s| match s {
                Seen::Quiet => '.',
                Seen::Pending => 'p',
                Seen::Firing => 'F',
                Seen::Unjudged => '?',
            })
            .collect();
        writeln!(out, "{name:>26} {line}").unwrap();
    }
    out
}

/// The alerts that fire at some point.
fn fired(verdicts: &BTreeMap<&'static str, Vec<Seen>>) -> BTreeSet<&'static str> {
    verdicts
        .iter()
        .filter(|(_, seen)| seen.contains(&Seen::Firing))
        .map(|(name, _)| *name)
        .collect()
}

/// Checks one alert's timeline: firing by `by`, at most `for` plus one evaluation after it
/// went pending, and quiet again by `resolved_by` for the rest of the run.
fn check_timeline(name: &str, seen: &[Seen], by: f64, resolved_by: f64) {
    let minute = |i: usize| i as f64 * STEP / 60.0;
    let first_firing = seen.iter().position(|s| *s == Seen::Firing).unwrap();
    assert!(
        minute(first_firing) <= by,
        "{name} fires at minute {}, later than {by}",
        minute(first_firing)
    );
    let alert = ALERTS.iter().find(|a| a.name == name).unwrap();
    let for_minutes = llmwatch::cli::parse_duration(alert.for_)
        .unwrap()
        .as_secs_f64()
        / 60.0;
    let pending_from = seen[..first_firing]
        .iter()
        .rposition(|s| *s != Seen::Pending)
        .map_or(0, |i| i + 1);
    let waited = minute(first_firing) - minute(pending_from);
    assert!(
        waited <= for_minutes + STEP / 60.0 + 1e-9 && waited >= for_minutes - 1e-9,
        "{name} went pending at minute {} and fired {waited} minutes later; its `for` is {for_minutes}",
        minute(pending_from)
    );
    let last_firing = seen.iter().rposition(|s| *s == Seen::Firing).unwrap();
    assert!(
        minute(last_firing + 1) <= resolved_by,
        "{name} still fires at minute {}, after {resolved_by}",
        minute(last_firing)
    );
}

/// promtool's `values` for one series: runs of one value compressed as `v+0xN`, `stale`
/// where the scrape failed or the series was absent (Prometheus marks it stale at once).
fn values(points: &[Option<f64>]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < points.len() {
        let run = points[i..].iter().take_while(|p| **p == points[i]).count();
        match points[i] {
            None => out.extend(std::iter::repeat_n("stale".to_string(), run)),
            Some(v) if run > 1 => out.push(format!("{v}+0x{}", run - 1)),
            Some(v) => out.push(format!("{v}")),
        }
        i += run;
    }
    out.join(" ")
}

/// Every raw series the scrapes carried, as Prometheus would store it with `job` and
/// `instance`, plus `up` and `scrape_samples_scraped`.
fn input_series((bodies, gpus): (&[Body], &[String])) -> BTreeMap<String, Vec<Option<f64>>> {
    let mut series: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
    let n = bodies.len();
    for (i, (body, gpu)) in bodies.iter().zip(gpus).enumerate() {
        let mut put = |key: String, v: f64| {
            series.entry(key).or_insert_with(|| vec![None; n])[i] = Some(v);
        };
        // Kubernetes service discovery gives the engine's target its pod and namespace.
        put(
            "up{job=\"vllm\",instance=\"t\",pod=\"vllm-8000\",namespace=\"sim\"}".into(),
            if body.is_some() { 1.0 } else { 0.0 },
        );
        put_samples(&mut put, gpu, "job=\"dcgm\",instance=\"gpu\"");
        let Some(text) = body else { continue };
        let samples = put_samples(&mut put, text, "job=\"vllm\",instance=\"t\"");
        put(
            "scrape_samples_scraped{job=\"vllm\",instance=\"t\"}".into(),
            samples as f64,
        );
    }
    series
}

/// Puts every sample of `text` as Prometheus stores it with the target labels `target`;
/// returns how many the body held.
fn put_samples(put: &mut impl FnMut(String, f64), text: &str, target: &str) -> usize {
    let exp = parse(text, Mode::Strict).unwrap();
    for sample in &exp.samples {
        // `_created` series matter to no rule; leaving them out halves the input.
        if sample.name.ends_with("_created") {
            continue;
        }
        let mut key = format!("{}{{{target}", sample.name);
        for label in exp.labels_of(sample) {
            write!(key, ",{}=\"{}\"", label.name, label.value).unwrap();
        }
        key.push('}');
        put(key, sample.value);
    }
    exp.sample_count()
}

/// Runs promtool over the raw series with the rules-only rules, checking `up`'s state of
/// every alert at every steady, judged minute. Returns how many minutes were compared.
fn agree_with_prometheus(
    promtool: &std::path::Path,
    (bodies, gpus): (&[Body], &[String]),
    up: &BTreeMap<&'static str, Vec<Seen>>,
) -> usize {
    let rules = [
        "llm-schema-engines.yml",
        "llm-schema-gpu.yml",
        "llm-aggregates.yml",
        "llm-alerts.yml",
    ];
    let mut text = String::from("rule_files:\n");
    for file in rules {
        writeln!(text, "  - rules/{file}").unwrap();
    }
    text.push_str("evaluation_interval: 15s\ntests:\n  - interval: 15s\n    input_series:\n");
    for (name, points) in input_series((bodies, gpus)) {
        writeln!(
            text,
            "      - series: '{name}'\n        values: '{}'",
            values(&points)
        )
        .unwrap();
    }
    text.push_str("    promql_expr_test:\n");
    let steady = 8; // two minutes either side
    let mut compared = 0;
    for i in (4..bodies.len()).step_by(4) {
        for (name, seen) in up {
            let around = &seen[i.saturating_sub(steady)..=(i + steady).min(seen.len() - 1)];
            // Pending is Prometheus's too, but its start depends on the exact sample the
            // window first sees; compare only settled firing or quiet minutes.
            if around.iter().any(|s| *s != seen[i])
                || !matches!(seen[i], Seen::Firing | Seen::Quiet)
            {
                continue;
            }
            compared += 1;
            writeln!(
                text,
                "      - expr: count(ALERTS{{alertname=\"{name}\",alertstate=\"firing\"}}) or vector(0)\n        eval_time: {}s\n        exp_samples:\n          - value: {}",
                i as f64 * STEP,
                u8::from(seen[i] == Seen::Firing)
            )
            .unwrap();
        }
    }
    promtool_agrees(promtool, &rules, &text);
    compared
}

/// Runs `promtool test rules` on `test`, whose `rule_files` are the deployed `files` under
/// `rules/`, and fails with promtool's report unless every expectation holds.
pub fn promtool_agrees(promtool: &std::path::Path, files: &[&str], test: &str) {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    let deployed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/rules");
    for file in files {
        std::fs::copy(deployed.join(file), rules.join(file)).unwrap();
    }
    std::fs::write(dir.path().join("agreement_test.yml"), test).unwrap();
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

fn run_case(case: &Case, promtool: Option<&std::path::Path>) {
    let (bodies, gpus) = replay(Some(scenario(case.file)), case.minutes, (case.load)());
    // Enough history for the longest window an alert reads.
    let up = up_verdicts((&bodies, &gpus), Duration::from_secs(7 * 3600));
    let expected: BTreeSet<&str> = case.fires.iter().map(|(name, ..)| *name).collect();
    assert_eq!(
        fired(&up),
        expected,
        "{}: the alerts that fired\n{}",
        case.file,
        timelines(&up)
    );
    for (name, by, resolved_by) in case.fires {
        check_timeline(name, &up[name], *by, *resolved_by);
    }
    if let Some(promtool) = promtool {
        let compared = agree_with_prometheus(promtool, (&bodies, &gpus), &up);
        assert!(
            compared > case.minutes,
            "{}: {compared} comparisons",
            case.file
        );
    }
}

#[test]
fn throughput_collapsing_fires_its_alerts_in_up_and_in_prometheus() {
    run_case(&CASES[3], external_program("promtool").as_deref());
}

#[test]
fn a_slow_leak_fires_the_six_hour_budget_alerts_in_up_and_in_prometheus() {
    run_case(&CASES[4], external_program("promtool").as_deref());
}

#[test]
fn a_full_kv_cache_fires_its_alerts_in_up_and_in_prometheus() {
    run_case(&CASES[0], external_program("promtool").as_deref());
}

#[test]
fn failed_scrapes_and_missing_engine_families_fire_their_alerts_in_up_and_in_prometheus() {
    run_case(&CASES[1], external_program("promtool").as_deref());
}

#[test]
fn a_long_error_burst_fires_the_error_alerts_in_up_and_in_prometheus() {
    run_case(&CASES[2], external_program("promtool").as_deref());
}

#[test]
fn a_healthy_engine_fires_nothing_in_up_or_in_prometheus() {
    let minutes = CASES.iter().map(|c| c.minutes).max().unwrap();
    let (bodies, gpus) = replay(None, minutes, chat());
    let up = up_verdicts((&bodies, &gpus), Duration::from_secs(7 * 3600));
    assert_eq!(fired(&up), BTreeSet::new(), "\n{}", timelines(&up));
    assert!(
        up.values().all(|seen| !seen.contains(&Seen::Pending)),
        "nothing even goes pending"
    );
    if let Some(promtool) = external_program("promtool") {
        agree_with_prometheus(&promtool, (&bodies, &gpus), &up);
    }
}

#[test]
fn gpu_trouble_fires_the_gpu_alerts_in_up_and_in_prometheus() {
    run_case(&CASES[5], external_program("promtool").as_deref());
}
