//! The GPU alerts `up` evaluates and the exported rules Prometheus evaluates agree through a
//! made-up hour of one vLLM server and the GPU it runs on (attached by configured UUID),
//! scraped every 15 s: memory taken by another process while the KV cache has room, heat
//! throttling, the scheduler stalling with the GPU idle, then an XID. Prometheus reads the
//! same numbers as `up`'s `llm_*` and `llm_gpu_*` series through the deployed rule files; at
//! every minute where `up`'s state of an alert is steady for two minutes around it,
//! Prometheus must say the same. Skips without promtool unless `LLMWATCH_REQUIRE_EXTERNAL=1`.

use std::collections::BTreeMap;
use std::sync::Arc;

use llmwatch::alerting::{Alerts, Settings, State};
use llmwatch::catalog::alerts::Slo;
use llmwatch::collect::state::{Scraped, Store};
use llmwatch::collect::targets::Target;
use llmwatch::config::{HistoryConfig, ScrapeConfig};
use llmwatch::engines::{Engine, Reading, SeriesValue, Source, Value, signal};
use llmwatch::gpu::nvml::{NvmlGpu, scrape_of};

use crate::util::external_program;

const STEP: f64 = 15.0;
const MINUTES: usize = 70;
const CHECKED: [&str; 4] = [
    "LLMGPUMemoryFullOutsideKVCache",
    "LLMGPUThrottled",
    "LLMGPUIdleWhileRequestsWait",
    "LLMGPUXIDError",
];
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// One scrape of the server and its GPU.
#[derive(Clone, Copy)]
struct Moment {
    kv: f64,
    waiting: f64,
    utilization: f64,
    used_gib: f64,
    /// Cumulative seconds throttled for heat.
    thermal: f64,
    xid: Option<u64>,
}

fn hour() -> Vec<Moment> {
    let mut thermal = 0.0;
    (0..MINUTES * 4)
        .map(|i| {
            let minute = i as f64 * STEP / 60.0;
            let during = |from: f64, to: f64| (from..to).contains(&minute);
            if during(20.0, 40.0) {
                thermal += 0.6 * STEP;
            }
            let stalled = during(30.0, 50.0);
            Moment {
                kv: 0.3,
                waiting: if stalled { 8.0 } else { 0.0 },
                utilization: if stalled { 0.02 } else { 0.6 },
                used_gib: if during(5.0, 25.0) { 79.0 } else { 40.0 },
                thermal,
                xid: (minute >= 55.0).then_some(79),
            }
        })
        .collect()
}

fn scalar(name: &str, v: f64) -> Reading {
    Reading {
        signal: signal(name).unwrap(),
        source: Source::Native(vec![]),
        note: "",
        series: vec![SeriesValue {
            model: "m".into(),
            outcome: None,
            value: Value::Scalar(v),
        }],
    }
}

fn gpu(m: &Moment) -> NvmlGpu {
    NvmlGpu {
        index: 0,
        uuid: "GPU-0a0b0c0d".into(),
        name: Some("H100".into()),
        utilization_percent: Some((m.utilization * 100.0).round() as u32),
        memory_used_bytes: Some((m.used_gib * GIB) as u64),
        memory_total_bytes: Some((80.0 * GIB) as u64),
        throttled_nanoseconds: vec![("power", 0), ("thermal", (m.thermal * 1e9) as u64)],
        last_xid: m.xid,
        ..NvmlGpu::default()
    }
}

/// `up`'s verdicts: per alert, whether it fires at each evaluation.
fn up_states(moments: &[Moment], t0: f64) -> BTreeMap<&'static str, Vec<bool>> {
    let store = Store::new(HistoryConfig::default());
    let scrape = ScrapeConfig::default();
    let server = Target::from_arg("http://127.0.0.1:8000,name=t,gpus=GPU-0a0b0c0d", &scrape);
    let exporter = Target::from_arg("http://127.0.0.1:9400,name=g", &scrape);
    store.set_targets(&[Arc::new(server.unwrap()), Arc::new(exporter.unwrap())]);
    let mut alerts = Alerts::new(Settings {
        slo: Slo::default(),
        runbook_base: "docs/runbook.md".into(),
    });
    let mut out: BTreeMap<&'static str, Vec<bool>> = BTreeMap::new();
    for (i, m) in moments.iter().enumerate() {
        let at = t0 + i as f64 * STEP;
        let scraped = |readings, gpu: Option<Arc<llmwatch::gpu::GpuScrape>>| Scraped {
            at,
            engine: gpu.is_none().then_some(Engine::Vllm),
            version: String::new(),
            samples: 100,
            readings,
            raw: None,
            problems: vec![],
            gpu,
            process: None,
        };
        let readings = vec![
            scalar("llm_kv_cache_usage_ratio", m.kv),
            scalar("llm_requests_waiting", m.waiting),
            scalar("llm_requests_running", 2.0),
            scalar("llm_generation_tokens_total", at),
        ];
        store.record_success("t", scraped(readings, None), 0.01);
        let gpus = Some(Arc::new(scrape_of(&[gpu(m)])));
        store.record_success("g", scraped(vec![], gpus), 0.01);
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

/// The series `up`'s `/metrics` shows, as promtool input: name with labels, values.
fn series(moments: &[Moment]) -> Vec<(String, String)> {
    let values = |f: &dyn Fn(&Moment) -> Option<f64>| {
        moments
            .iter()
            .map(|m| f(m).map_or("_".to_string(), |v| format!("{v}")))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let server = "job=\"llmwatch\",instance=\"t\",engine=\"vllm\",model=\"m\"";
    let device = "job=\"llmwatch\",instance=\"g\",gpu=\"0\",gpu_model=\"H100\"";
    vec![
        (
            format!("llm_kv_cache_usage_ratio{{{server}}}"),
            values(&|m| Some(m.kv)),
        ),
        (
            format!("llm_requests_waiting{{{server}}}"),
            values(&|m| Some(m.waiting)),
        ),
        (
            "llm_gpu_server_info{job=\"llmwatch\",instance=\"g\",gpu=\"0\",server=\"t\",via=\"config\"}"
                .into(),
            values(&|_| Some(1.0)),
        ),
        (
            format!("llm_gpu_utilization_ratio{{{device}}}"),
            values(&|m| Some((m.utilization * 100.0).round() / 100.0)),
        ),
        (
            format!("llm_gpu_memory_used_bytes{{{device}}}"),
            values(&|m| Some((m.used_gib * GIB).floor())),
        ),
        (
            format!("llm_gpu_memory_total_bytes{{{device}}}"),
            values(&|_| Some(80.0 * GIB)),
        ),
        (
            format!("llm_gpu_throttled_seconds_total{{{device},reason=\"thermal\"}}"),
            values(&|m| Some(m.thermal)),
        ),
        (
            format!("llm_gpu_throttled_seconds_total{{{device},reason=\"power\"}}"),
            values(&|_| Some(0.0)),
        ),
        (
            format!("llm_gpu_last_xid{{{device}}}"),
            values(&|m| m.xid.map(|x| x as f64)),
        ),
    ]
}

#[test]
fn up_and_prometheus_fire_the_same_gpu_alerts_through_an_hour_of_gpu_trouble() {
    let moments = hour();
    let up = up_states(&moments, 1_800_000_000.0);
    for name in CHECKED {
        assert!(up[name].iter().any(|f| *f), "{name} never fires in up");
        assert!(!up[name][0], "{name} fires at once");
    }
    let Some(promtool) = external_program("promtool") else {
        return;
    };
    let rules = [
        "llm-schema-llmwatch.yml",
        "llm-schema-gpu.yml",
        "llm-aggregates.yml",
        "llm-alerts.yml",
    ];
    let (text, compared) =
        crate::alerts_agreement::steady_test(&rules, &series(&moments), &up, MINUTES);
    for name in CHECKED {
        let (firing, quiet) = compared.get(name).copied().unwrap_or_default();
        assert!(
            firing >= 3 && quiet >= 10,
            "{name}: {firing} firing and {quiet} quiet minutes compared"
        );
    }
    crate::alert_scenarios::promtool_agrees(&promtool, &rules, &text);
}
