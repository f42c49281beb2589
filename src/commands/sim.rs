//! `llmwatch sim`: serve simulated engines, one per `--engine DIALECT:PORT`, until stopped.

use std::io::Write;
use std::net::SocketAddr;

use axum::serve::ListenerExt;

use crate::sim::dialect::{VllmVersion, buckets_for};
use crate::sim::engine::{Engine, Profile};
use std::sync::{Arc, Mutex};

use crate::sim::faults::{FaultDice, FaultRates};
use crate::sim::front::{Exposure, Front};
use crate::sim::gpu::SimGpu;
use crate::sim::load::{Arrivals, Load, drive};
use crate::sim::record::Recorder;
use crate::sim::runtime::{EngineHandle, Scheduling, keep_finished};
use crate::sim::scenario::{Scenario, step_time};
use crate::sim::server::{Dialect, ServerConfig, router};

/// One `--engine` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineSpec {
    /// Which engine to imitate.
    pub dialect: Dialect,
    /// Port on the `--host` address (0 picks a free one).
    pub port: u16,
}

/// Parses `vllm:8001`, `vllm-0.10:8001`, `tgi:8002`, `llamacpp:8003`, `sglang:8004`.
pub fn parse_engine_spec(text: &str) -> Result<EngineSpec, String> {
    let (name, port) = text.rsplit_once(':').ok_or_else(|| {
        format!("invalid --engine {text:?}: expected DIALECT:PORT, e.g. vllm:8001")
    })?;
    let dialect = match name {
        "vllm" | "vllm-0.33" => Dialect::Vllm(VllmVersion::V0_33),
        "vllm-0.10" => Dialect::Vllm(VllmVersion::V0_10),
        "tgi" => Dialect::Tgi,
        "llamacpp" => Dialect::LlamaCpp,
        "sglang" => Dialect::Sglang,
        other => {
            return Err(format!(
                "unknown engine dialect {other:?}: use vllm, vllm-0.10, tgi, llamacpp or sglang"
            ));
        }
    };
    let port = port
        .parse()
        .map_err(|_| format!("invalid port in --engine {text:?}"))?;
    Ok(EngineSpec { dialect, port })
}

/// Parses `gpu-7b`, `cpu-270m` or `bench`.
pub fn parse_profile(text: &str) -> Result<Profile, String> {
    match text {
        "gpu-7b" => Ok(Profile::gpu_7b()),
        "cpu-270m" => Ok(Profile::cpu_270m()),
        "bench" => Ok(Profile::bench()),
        "instant" => Ok(Profile::instant()),
        other => Err(format!(
            "unknown profile {other:?}: use gpu-7b, cpu-270m, bench or instant"
        )),
    }
}

/// Everything `llmwatch sim` runs with.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// The engines to serve.
    pub engines: Vec<EngineSpec>,
    /// Address the engines listen on (loopback unless a container needs otherwise).
    pub host: std::net::IpAddr,
    /// Capacity and speed.
    pub profile: Profile,
    /// Fault rates.
    pub faults: FaultRates,
    /// Seed for faults and background traffic.
    pub seed: u64,
    /// An incident to replay.
    pub scenario: Option<Scenario>,
    /// Background traffic.
    pub load: Option<Load>,
    /// API key guarding `/v1` (and `/metrics` on llama.cpp engines).
    pub api_key: Option<String>,
    /// llama.cpp engines serve `/metrics` (else HTTP 501, as without `--metrics`).
    pub llamacpp_metrics: bool,
    /// How engine threads are scheduled.
    pub scheduling: Scheduling,
    /// Count prompt tokens with this tokenizer.
    pub tokenizer: Option<Arc<crate::tokenize::Tokenizer>>,
}

/// Simulated engines serving in the background.
pub struct Started {
    /// `(dialect name, bound address)` per engine, in the order asked.
    pub engines: Vec<(&'static str, SocketAddr)>,
    /// The servers and their helpers; a server that stops ends with its error.
    pub tasks: tokio::task::JoinSet<std::io::Result<()>>,
}

/// Starts every engine, prints one `sim: DIALECT on http://ADDR` line each, and serves until
/// Ctrl-C.
pub async fn run(options: &SimOptions) -> anyhow::Result<()> {
    let mut started = start(options).await?;
    for (name, addr) in &started.engines {
        writeln!(std::io::stdout(), "sim: {name} on http://{addr}")?;
    }
    std::io::stdout().flush()?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(()),
        Some(result) = started.tasks.join_next() => {
            result??;
            Ok(())
        }
    }
}

/// Starts every engine on its port and returns once all listen.
pub async fn start(options: &SimOptions) -> anyhow::Result<Started> {
    let SimOptions {
        engines,
        host,
        profile,
        faults,
        seed,
        scenario,
        load,
        api_key,
        llamacpp_metrics,
        scheduling,
        tokenizer,
    } = options;
    let seed = *seed;
    let start = tokio::time::Instant::now();
    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let mut servers = tokio::task::JoinSet::new();
    let mut started = Vec::new();
    for spec in engines {
        let buckets = buckets_for(spec.dialect);
        let handle = EngineHandle::start(
            Engine::new(profile.clone()),
            Recorder::new(&buckets, keep_finished()),
            *scheduling,
        )?;
        let name = spec.dialect.name();
        let model = format!("sim-{name}");
        let dice = Arc::new(Mutex::new(FaultDice::new(faults.clone(), seed)));
        let front = Arc::new(Front::default());
        let exposure = Arc::new(Mutex::new(Exposure::default()));
        if let Some(load) = load {
            let feeder = drive(
                handle.clone(),
                Arrivals::new(load.clone(), seed),
                dice.clone(),
                front.clone(),
            );
            servers.spawn(async move {
                feeder.await;
                Ok(())
            });
        }
        if let Some(scenario) = scenario {
            let driver = play(
                scenario.clone(),
                start,
                profile.clone(),
                handle.clone(),
                dice.clone(),
                exposure.clone(),
            );
            servers.spawn(async move {
                driver.await;
                std::future::pending::<std::io::Result<()>>().await
            });
        }
        let config = ServerConfig {
            dialect: spec.dialect,
            model,
            started_unix,
            dice,
            front,
            exposure,
            api_key: api_key.clone(),
            metrics_enabled: *llamacpp_metrics,
            slots: profile.max_running,
            // The cache split evenly between slots, as llama.cpp's -c / -np does.
            slot_ctx: profile.kv_blocks * profile.block_tokens / profile.max_running.max(1) as u32,
            seed,
            tokenizer: tokenizer.clone(),
            gpu: None,
        };
        let addr = SocketAddr::new(*host, spec.port);
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        // Every engine but llama.cpp (on the CPU) has a GPU, named after its port.
        let gpu = spec
            .dialect
            .runs_on_gpu()
            .then(|| SimGpu::new(name, local.port()));
        let app = router(handle, ServerConfig { gpu, ..config });
        // Streamed chunks must leave at once: without TCP_NODELAY they wait ~40 ms.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        started.push((name, local));
        servers.spawn(async move { axum::serve(listener, app).await });
    }
    Ok(Started {
        engines: started,
        tasks: servers,
    })
}

/// Applies a scenario's steps to one engine at their times.
async fn play(
    scenario: Scenario,
    start: tokio::time::Instant,
    mut profile: Profile,
    engine: EngineHandle,
    dice: Arc<Mutex<FaultDice>>,
    exposure: Arc<Mutex<Exposure>>,
) {
    for step in &scenario.steps {
        let Some(at) = step_time(step) else { continue };
        tokio::time::sleep_until(start + at).await;
        if step.changes_profile() {
            profile = step.apply_profile(&profile);
            if engine.set_profile(profile.clone()).await.is_err() {
                return;
            }
        }
        let mut d = dice
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let rates = step.apply_faults(d.rates());
        d.set_rates(rates);
        let mut e = exposure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *e = step.apply_exposure(&e);
    }
}

/// Reads and checks a scenario file.
pub fn load_scenario(path: &std::path::Path) -> anyhow::Result<Scenario> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
    Ok(Scenario::parse(&path.display().to_string(), &text)?)
}
