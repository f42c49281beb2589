//! `llmwatch demo`: the whole system on one machine with no GPU. Simulated vLLM, TGI,
//! llama.cpp and SGLang; `up` scraping them with the measuring proxy in front; a steady,
//! modest client load sent through the proxy by the built-in load generator (so client-side
//! series and the client-versus-engine gap show); and every few minutes an incident on vLLM —
//! its KV cache shrinks, requests are preempted, the queue grows, TTFT climbs, admission
//! control answers 429, then capacity comes back — so the dashboard has something to explain.
//! Ctrl-C stops every part: they all live in this one process.

use std::fmt::Write as _;
use std::time::Duration;

use crate::bench::workload::{LengthDist, Workload};
use crate::bench::{Api, BenchOptions, LoadMode};
use crate::commands::sim::{self, SimOptions};
use crate::commands::up::print_banner;
use crate::sim::engine::Profile;
use crate::sim::faults::FaultRates;
use crate::sim::runtime::Scheduling;
use crate::sim::scenario::Scenario;
use crate::up::{self, Sources};

/// Incidents scripted: at the default spacing (4 min), an hour's worth.
const INCIDENTS: u64 = 15;
/// Client requests per second through the proxy, per model.
const LOAD_PER_MODEL: f64 = 2.0;

/// The incident on vLLM as a scenario: the KV cache drops to 40 blocks (640 tokens: a few
/// requests' worth), 40 s later admission control turns away requests beyond 4 waiting, and
/// 90 s after the start both come back.
pub fn incident_scenario(start: Duration, every: Duration, count: u64) -> String {
    let mut text = String::from(
        "name = \"demo-incident\"\ndescription = \"KV pressure, preemptions, queueing, 429s, recovery; repeated\"\n",
    );
    for k in 0..count {
        let t = start.as_secs() + k * every.as_secs();
        let _ = write!(
            text,
            "[[step]]\nat = \"{t}s\"\nkv_blocks = 40\n[[step]]\nat = \"{}s\"\nmax_waiting = 4\n[[step]]\nat = \"{}s\"\nkv_blocks = 6900\nmax_waiting = 100000\n",
            t + 40,
            t + 90
        );
    }
    text
}

fn engines(dialects: &[&str], scenario: Option<Scenario>) -> anyhow::Result<SimOptions> {
    Ok(SimOptions {
        engines: dialects
            .iter()
            .map(|d| sim::parse_engine_spec(&format!("{d}:0")).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<_>>()?,
        host: std::net::Ipv4Addr::LOCALHOST.into(),
        profile: Profile::gpu_7b(),
        faults: FaultRates::default(),
        seed: 1,
        scenario,
        load: None,
        api_key: None,
        llamacpp_metrics: true,
        scheduling: Scheduling::Normal,
        tokenizer: None,
    })
}

/// A day of open-loop chat traffic for `model` through the proxy at `proxy`, quietly.
fn client_load(proxy: std::net::SocketAddr, model: &str) -> BenchOptions {
    BenchOptions {
        url: format!("http://{proxy}"),
        api: Api::Chat,
        model: Some(model.to_string()),
        load: LoadMode::Open {
            rate: LOAD_PER_MODEL,
            arrival: crate::bench::schedule::Arrival::Poisson,
        },
        duration: Some(Duration::from_secs(24 * 3600)),
        requests: None,
        warmup: Duration::ZERO,
        workload: Workload {
            input: LengthDist::Uniform(50, 500),
            output: LengthDist::Uniform(20, 300),
            prefix_ratio: 0.0,
            sizing: crate::bench::sizing::Sizing::Words,
        },
        dataset: None,
        stream: true,
        ignore_eos: true,
        api_key: None,
        timeout: Duration::from_secs(60),
        seed: 1,
        slos: Vec::new(),
        max_in_flight: Some(256),
        metrics_listen: None,
        otlp: None,
        engine_metrics: None,
        trace: None,
        threads: Some(1),
        fail_fast: None,
        tokenizer: None,
        calibrate: false,
        progress: false,
    }
}

/// The `--target`s of one simulated engine: the engine, with the pod labels its simulated
/// dcgm-exporter names, and that exporter (every engine but llama.cpp, which runs on the CPU).
fn demo_targets(name: &str, addr: std::net::SocketAddr) -> Vec<String> {
    if name == "llamacpp" {
        return vec![format!("http://{addr},name=sim-{name},service=demo")];
    }
    let pod = format!("{name}-{}", addr.port());
    vec![
        format!("http://{addr},name=sim-{name},service=demo,pod={pod},namespace=sim"),
        format!("http://{addr}/dcgm/metrics,name=gpu-{name}"),
    ]
}

/// Runs the demo until Ctrl-C; vLLM's first incident at `incident_at`, then every
/// `incident_every`.
pub async fn run(
    listen: Option<String>,
    incident_at: Duration,
    incident_every: Duration,
) -> anyhow::Result<()> {
    // An incident lasts 90 s: the next cannot start before it ends.
    let incident_every = incident_every.max(Duration::from_secs(100));
    let scenario = Scenario::parse(
        "demo incident",
        &incident_scenario(incident_at, incident_every, INCIDENTS),
    )?;
    let mut troubled = sim::start(&engines(&["vllm"], Some(scenario))?).await?;
    let mut steady = sim::start(&engines(&["tgi", "llamacpp", "sglang"], None)?).await?;
    let all: Vec<_> = troubled
        .engines
        .iter()
        .chain(&steady.engines)
        .cloned()
        .collect();
    let sources = Sources {
        target_args: all
            .iter()
            .flat_map(|(name, addr)| demo_targets(name, *addr))
            .collect(),
        listen: Some(listen.unwrap_or_else(|| "127.0.0.1:9464".into())),
        proxy_upstreams: all
            .iter()
            .map(|(name, addr)| format!("http://{addr},models=sim-{name}"))
            .collect(),
        proxy_listen: Some("127.0.0.1:0".into()),
        ..Sources::default()
    };
    let mut config = sources.config()?;
    // The demo's GPUs are simulated; real ones would sit unattached beside them.
    config.scrape.nvml = false;
    let targets = sources.targets(&config)?;
    let running = up::start(sources, config, targets).await?;
    let proxy = running
        .proxy_addr
        .ok_or_else(|| anyhow::anyhow!("the demo's proxy did not start"))?;
    let mut load = tokio::task::JoinSet::new();
    for (name, _) in &all {
        let options = client_load(proxy, &format!("sim-{name}"));
        load.spawn(async move { crate::bench::run(options).await.map(|_| ()) });
    }
    print_banner(&banner(
        running.addr,
        proxy,
        &all,
        incident_at,
        incident_every,
    )?);
    tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(()),
        Some(result) = troubled.tasks.join_next() => Ok(result??),
        Some(result) = steady.tasks.join_next() => Ok(result??),
        Some(result) = load.join_next() => Ok(result??),
    }
}

fn banner(
    up: std::net::SocketAddr,
    proxy: std::net::SocketAddr,
    engines: &[(&'static str, std::net::SocketAddr)],
    incident_at: Duration,
    incident_every: Duration,
) -> anyhow::Result<String> {
    let mut out = String::new();
    writeln!(out, "llmwatch demo: open the dashboard at http://{up}/")?;
    writeln!(out)?;
    writeln!(
        out,
        "Simulated engines, each speaking its own API and /metrics dialect:"
    )?;
    for (name, addr) in engines {
        writeln!(out, "  {name:<9} http://{addr}")?;
    }
    writeln!(
        out,
        "Clients send {LOAD_PER_MODEL} requests/s per model through the measuring proxy at http://{proxy}/v1"
    )?;
    writeln!(
        out,
        "From {}:{:02} and every {} s after, vLLM's KV cache shrinks: preemptions, a queue, a TTFT spike, 429s, then recovery.",
        incident_at.as_secs() / 60,
        incident_at.as_secs() % 60,
        incident_every.as_secs()
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "  curl http://{up}/metrics                   # every engine in one llm_* schema, and the proxy's client view"
    )?;
    writeln!(
        out,
        "  curl http://{up}/api/v1/overview           # what the dashboard shows"
    )?;
    if let Some((_, vllm)) = engines.first() {
        writeln!(
            out,
            "  cargo run --release -- scrape http://{vllm}  # what llmwatch reads from one engine"
        )?;
    }
    writeln!(out, "Ctrl-C stops everything.")?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_incident_script_is_a_valid_scenario() {
        let text = incident_scenario(Duration::from_secs(90), Duration::from_secs(240), 2);
        let scenario = Scenario::parse("demo", &text).unwrap();
        assert_eq!(scenario.steps.len(), 6);
        assert_eq!(scenario.steps[3].at, "330s");
        assert_eq!(scenario.steps[3].kv_blocks, Some(40));
    }
}
