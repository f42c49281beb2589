//! The HTTP face of one simulated engine: OpenAI chat completions (streaming and not),
//! `/v1/models`, `/health`, the engine's info endpoint and `/metrics` in its dialect.
//! Generated text is a deterministic function of the prompt; no prompt text is logged.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::dialect::{Renderer, Snapshot, VllmVersion};
use super::faults::FaultDice;
use super::front::{Exposure, Front};
use super::gpu::SimGpu;
use super::runtime::{EngineHandle, State as EngineState};

/// Largest request body accepted.
const MAX_BODY: usize = 1 << 20;
/// Largest `max_tokens` honoured.
const MAX_TOKENS: u32 = 4096;

mod openai;
mod tgi;

pub use super::dialect::Dialect;

/// How one simulated engine serves.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Which engine to imitate.
    pub dialect: Dialect,
    /// Served model name.
    pub model: String,
    /// Process start (Unix seconds), for vLLM's `_created` samples.
    pub started_unix: f64,
    /// Fault rates and their seeded generator, shared with the scenario driver.
    pub dice: Arc<Mutex<FaultDice>>,
    /// Refusal counters, shared with the background load.
    pub front: Arc<Front>,
    /// How `/metrics` behaves, shared with the scenario driver.
    pub exposure: Arc<Mutex<Exposure>>,
    /// API key guarding `/v1` (and, as llama.cpp does, `/metrics` on llama.cpp engines).
    pub api_key: Option<String>,
    /// llama.cpp without `--metrics`: `/metrics` answers HTTP 501.
    pub metrics_enabled: bool,
    /// Slots (llama.cpp `/slots`): the profile's most running sequences.
    pub slots: usize,
    /// Context per slot in tokens (llama.cpp `/slots`).
    pub slot_ctx: u32,
    /// Seed for answer lengths: the same seed and prompt give the same answer.
    pub seed: u64,
    /// Counts prompts as this model's tokenizer does, instead of one token per four
    /// characters.
    pub tokenizer: Option<Arc<crate::tokenize::Tokenizer>>,
    /// The GPU under the engine, served as dcgm-exporter on `/dcgm/metrics`.
    pub gpu: Option<SimGpu>,
}

struct App {
    engine: EngineHandle,
    dialect: Dialect,
    model: String,
    started_unix: f64,
    dice: Arc<Mutex<FaultDice>>,
    dead: AtomicBool,
    api_key: Option<String>,
    metrics_enabled: bool,
    slots: usize,
    slot_ctx: u32,
    seed: u64,
    tokenizer: Option<Arc<crate::tokenize::Tokenizer>>,
    renderer: Mutex<Renderer>,
    front: Arc<Front>,
    exposure: Arc<Mutex<Exposure>>,
    gpu: Option<Mutex<SimGpu>>,
}

/// The router for one simulated engine.
pub fn router(engine: EngineHandle, config: ServerConfig) -> Router {
    let dialect = config.dialect;
    let app = Arc::new(App {
        engine,
        dialect,
        model: config.model,
        started_unix: config.started_unix,
        dice: config.dice,
        api_key: config.api_key,
        metrics_enabled: config.metrics_enabled,
        slots: config.slots,
        slot_ctx: config.slot_ctx,
        seed: config.seed,
        tokenizer: config.tokenizer,
        dead: AtomicBool::new(false),
        renderer: Mutex::new(Renderer::new(dialect, std::process::id())),
        front: config.front,
        exposure: config.exposure,
        gpu: config.gpu.map(Mutex::new),
    });
    let info_path = match dialect {
        Dialect::Vllm(_) => "/version",
        Dialect::Tgi => "/info",
        Dialect::LlamaCpp => "/props",
        Dialect::Sglang => "/server_info",
    };
    let mut routes = Router::new();
    if dialect == Dialect::LlamaCpp {
        routes = routes.route("/slots", get(slots));
    }
    if dialect == Dialect::Tgi {
        routes = routes
            .route("/generate", post(tgi::generate))
            .route("/generate_stream", post(tgi::generate_stream));
    }
    routes
        .route("/health", get(|| async { "" }))
        .route("/metrics", get(metrics))
        .route("/dcgm/metrics", get(dcgm_metrics))
        .route("/v1/models", get(models))
        .route(info_path, get(info))
        .route("/v1/chat/completions", post(openai::chat))
        .route("/v1/completions", post(openai::completion))
        .route("/sim/requests", get(ground_truth))
        .route("/sim/stats", get(stats))
        .route(
            "/sim/revive",
            post(|State(app): State<Arc<App>>| async move {
                app.dead.store(false, Ordering::SeqCst);
                ""
            }),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
}

/// Locks `m`; every update under these locks is a plain assignment, so a poisoned lock
/// still holds consistent data and is used rather than propagated.
pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether the request carries the API key (`Authorization: Bearer KEY` or `X-Api-Key`),
/// or no key is configured.
fn authorised(app: &App, headers: &HeaderMap) -> bool {
    let Some(key) = &app.api_key else {
        return true;
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let x_api_key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    bearer == Some(key.as_str()) || x_api_key == Some(key.as_str())
}

/// llama.cpp's answers for a missing key and a disabled endpoint, byte for byte.
fn llamacpp_refusal(status: StatusCode) -> Response {
    let body = if status == StatusCode::UNAUTHORIZED {
        r#"{"error":{"code":401,"message":"Invalid API Key","type":"authentication_error"}}"#
    } else {
        r#"{"error":{"code":501,"message":"This server does not support metrics endpoint. Start it with `--metrics`","type":"not_supported_error"}}"#
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if app.dialect == Dialect::LlamaCpp {
        if !authorised(&app, &headers) {
            return llamacpp_refusal(StatusCode::UNAUTHORIZED);
        }
        if !app.metrics_enabled {
            return llamacpp_refusal(StatusCode::NOT_IMPLEMENTED);
        }
    }
    let exposure = *lock(&app.exposure);
    if exposure.metrics_down {
        return (StatusCode::SERVICE_UNAVAILABLE, "metrics unavailable\n").into_response();
    }
    let state = app.engine.state();
    let snap = snapshot(&app, &state, exposure);
    // One lock for the whole render, so two scrapes never share llama.cpp's window.
    let (body, content_type) = lock(&app.renderer).render(&snap);
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// What the dialects and the GPU render, read from the engine now.
fn snapshot<'a>(app: &'a App, state: &'a EngineState, exposure: Exposure) -> Snapshot<'a> {
    Snapshot {
        model: &app.model,
        running: state.running,
        waiting: state.waiting,
        kv_usage: state.kv_usage,
        context_tokens: state.context_tokens,
        totals: &state.totals,
        latencies: &state.latencies,
        started_unix: app.started_unix,
        profile: &state.profile,
        front: app.front.counts(),
        exposure,
    }
}

/// The engine's GPU as dcgm-exporter shows it; 404 for an engine on the CPU.
async fn dcgm_metrics(State(app): State<Arc<App>>) -> Response {
    let Some(gpu) = &app.gpu else {
        return (
            StatusCode::NOT_FOUND,
            "this engine runs on the CPU: no GPU\n",
        )
            .into_response();
    };
    let state = app.engine.state();
    let snap = snapshot(&app, &state, *lock(&app.exposure));
    let faults = snap.exposure.gpu;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let body = lock(gpu).render(now, &snap, faults);
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// Ground truth as JSON lines, one finished request each, oldest first. Times are seconds of
/// simulated time; `epoch_unix` turns them into Unix times.
async fn ground_truth(State(app): State<Arc<App>>) -> Response {
    let epoch = app.engine.epoch_unix();
    let mut body = String::new();
    for r in app.engine.finished() {
        let line = json!({
            "id": r.id,
            "epoch_unix": epoch,
            "arrival": r.arrival,
            "scheduled": r.scheduled,
            "first_token": r.token_times.first(),
            "finished": r.finished,
            "token_times": r.token_times,
            "prompt_tokens": r.prompt_tokens,
            "cached_tokens": r.cached_tokens,
            "completion_tokens": r.token_times.len(),
            "outcome": r.outcome.map(openai::finish_reason),
            "preemptions": r.preemptions,
        });
        body.push_str(&line.to_string());
        body.push('\n');
    }
    ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
}

/// llama.cpp's `/slots`: one object per slot, busy ones first. Unlike the real server it
/// never includes prompt or generated text.
async fn slots(State(app): State<Arc<App>>) -> Response {
    let state = app.engine.state();
    let profile_slots = app.slots;
    let body: Vec<_> = (0..profile_slots)
        .map(|id| {
            json!({
                "id": id,
                "id_task": if id < state.running { json!(id) } else { json!(-1) },
                "n_ctx": app.slot_ctx,
                "speculative": false,
                "is_processing": id < state.running,
            })
        })
        .collect();
    axum::Json(body).into_response()
}

/// The simulator's own health: steps run and how far behind schedule they delivered.
async fn stats(State(app): State<Arc<App>>) -> Response {
    let lag = app.engine.schedule_lag();
    let state = app.engine.state();
    axum::Json(json!({
        "steps": state.totals.steps,
        "generated_tokens": state.totals.generated_tokens,
        "running": state.running,
        "waiting": state.waiting,
        "schedule_lag_seconds": {
            "count": lag.count,
            "mean": if lag.count > 0 { lag.sum / lag.count as f64 } else { 0.0 },
            "p50_at_most": lag.quantile_bound(0.5),
            "p99_at_most": lag.quantile_bound(0.99),
            "buckets": lag.cumulative().iter().map(|(le, n)| json!([le.to_string(), n])).collect::<Vec<_>>(),
        },
    }))
    .into_response()
}

async fn models(State(app): State<Arc<App>>) -> Response {
    let body = json!({"object": "list", "data": [{"id": app.model, "object": "model"}]});
    axum::Json(body).into_response()
}

async fn info(State(app): State<Arc<App>>) -> Response {
    let body = match app.dialect {
        Dialect::Vllm(VllmVersion::V0_33) => json!({"version": "0.33.0"}),
        Dialect::Vllm(VllmVersion::V0_10) => json!({"version": "0.10.2"}),
        Dialect::Tgi => json!({"version": "3.3.7", "model_id": app.model}),
        Dialect::LlamaCpp => json!({"build_info": "b7100-sim", "model_alias": app.model}),
        Dialect::Sglang => json!({"version": "0.5.23"}),
    };
    axum::Json(body).into_response()
}
