//! The HTTP face of one simulated engine: OpenAI chat completions (streaming and not),
//! `/v1/models`, `/health`, the engine's info endpoint and `/metrics` in its dialect.
//! Generated text is a deterministic function of the prompt; no prompt text is logged.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::dialect::{self, ScrapeWindow, Snapshot, VllmVersion};
use super::engine::{Event, Finish, RequestSpec, Totals};
use super::runtime::EngineHandle;

/// Largest request body accepted.
const MAX_BODY: usize = 1 << 20;
/// Largest `max_tokens` honoured.
const MAX_TOKENS: u32 = 4096;

/// Which engine the simulated server imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// vLLM of the given release.
    Vllm(VllmVersion),
    /// TGI 3.x.
    Tgi,
    /// llama.cpp server.
    LlamaCpp,
    /// SGLang 0.5.
    Sglang,
}

struct App {
    engine: EngineHandle,
    dialect: Dialect,
    model: String,
    started_unix: f64,
    /// llama.cpp's throughput gauges cover the time since the previous scrape.
    last_scrape: Mutex<Totals>,
    scrapes: Mutex<u64>,
}

/// The router for one simulated engine.
pub fn router(engine: EngineHandle, dialect: Dialect, model: &str, started_unix: f64) -> Router {
    let app = Arc::new(App {
        engine,
        dialect,
        model: model.to_string(),
        started_unix,
        last_scrape: Mutex::new(Totals::default()),
        scrapes: Mutex::new(0),
    });
    let info_path = match dialect {
        Dialect::Vllm(_) => "/version",
        Dialect::Tgi => "/info",
        Dialect::LlamaCpp => "/props",
        Dialect::Sglang => "/server_info",
    };
    Router::new()
        .route("/health", get(|| async { "" }))
        .route("/metrics", get(metrics))
        .route("/v1/models", get(models))
        .route(info_path, get(info))
        .route("/v1/chat/completions", post(chat))
        .route("/sim/requests", get(ground_truth))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
}

fn lock<T: Clone>(m: &Mutex<T>) -> T {
    match m.lock() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    }
}

fn store<T>(m: &Mutex<T>, value: T) {
    match m.lock() {
        Ok(mut g) => *g = value,
        Err(p) => *p.into_inner() = value,
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let state = app.engine.state();
    let snap = Snapshot {
        model: &app.model,
        running: state.running,
        waiting: state.waiting,
        kv_usage: state.kv_usage,
        totals: &state.totals,
        latencies: &state.latencies,
        started_unix: app.started_unix,
    };
    let scrape = lock(&app.scrapes) + 1;
    store(&app.scrapes, scrape);
    let (body, content_type) = match app.dialect {
        Dialect::Vllm(version) => (
            dialect::render_vllm(&snap, version),
            "text/plain; version=1.0.0; charset=utf-8",
        ),
        Dialect::Tgi => (
            dialect::render_tgi(&snap, scrape),
            "text/plain; charset=utf-8",
        ),
        Dialect::Sglang => (
            dialect::render_sglang(&snap, std::process::id()),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        Dialect::LlamaCpp => {
            let previous = lock(&app.last_scrape);
            store(&app.last_scrape, state.totals.clone());
            let t = &state.totals;
            let window = ScrapeWindow {
                prompt_tokens: (t.prompt_tokens - t.cached_tokens)
                    .saturating_sub(previous.prompt_tokens - previous.cached_tokens),
                prompt_seconds: t.prefill_seconds - previous.prefill_seconds,
                generated_tokens: t.generated_tokens - previous.generated_tokens,
                generated_seconds: t.decode_seconds - previous.decode_seconds,
            };
            let busy = if t.steps > 0 {
                t.generated_tokens as f64 / t.steps as f64
            } else {
                0.0
            };
            (
                dialect::render_llamacpp(&snap, &window, busy),
                "text/plain; version=0.0.4",
            )
        }
    };
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
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
            "outcome": r.outcome.map(finish_reason),
            "preemptions": r.preemptions,
        });
        body.push_str(&line.to_string());
        body.push('\n');
    }
    ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
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

/// An OpenAI-style error answer.
struct ApiError {
    status: StatusCode,
    message: String,
    kind: &'static str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": {"message": self.message, "type": self.kind, "code": self.status.as_u16()}
        });
        (self.status, axum::Json(body)).into_response()
    }
}

fn api_error(status: StatusCode, message: &str, kind: &'static str) -> ApiError {
    ApiError {
        status,
        message: message.to_string(),
        kind,
    }
}

fn error(status: StatusCode, message: &str, kind: &'static str) -> Response {
    api_error(status, message, kind).into_response()
}

/// What the handler needs from a chat request.
struct Chat {
    spec: RequestSpec,
    stream: bool,
    include_usage: bool,
}

fn parse_chat(body: &[u8], model: &str) -> Result<Chat, ApiError> {
    let json: Value = serde_json::from_slice(body).map_err(|e| {
        api_error(
            StatusCode::BAD_REQUEST,
            &format!("invalid JSON: {e}"),
            "invalid_request_error",
        )
    })?;
    if let Some(asked) = json.get("model").and_then(Value::as_str)
        && asked != model
    {
        let message = format!("The model `{asked}` does not exist.");
        return Err(api_error(StatusCode::NOT_FOUND, &message, "NotFoundError"));
    }
    let Some(messages) = json.get("messages").and_then(Value::as_array) else {
        let message = "`messages` must be a list";
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            message,
            "invalid_request_error",
        ));
    };
    let text: String = messages
        .iter()
        .filter_map(|m| m.get("content").and_then(Value::as_str))
        .collect();
    let max_tokens = json
        .get("max_tokens")
        .or_else(|| json.get("max_completion_tokens"))
        .and_then(Value::as_u64)
        .map_or(16, |n| n.clamp(1, u64::from(MAX_TOKENS)) as u32);
    // About four characters per token, and a natural length that depends only on the
    // prompt, so the same request always gets the same answer.
    let prompt_tokens = (text.len() as u32).div_ceil(4).max(1) + 4 * messages.len() as u32;
    let natural_length = 1 + (fnv(text.as_bytes()) % u64::from(2 * max_tokens)) as u32;
    Ok(Chat {
        spec: RequestSpec {
            id: 0,
            prompt_tokens,
            cached_tokens: 0,
            natural_length,
            max_tokens,
        },
        stream: json.get("stream").and_then(Value::as_bool).unwrap_or(false),
        include_usage: json
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The deterministic text of token `index`.
fn word(index: u32) -> &'static str {
    const WORDS: [&str; 8] = [
        " the", " sea", " is", " calm", " and", " blue", " today", ".",
    ];
    WORDS[index as usize % WORDS.len()]
}

fn finish_reason(reason: Finish) -> &'static str {
    match reason {
        Finish::Stop => "stop",
        Finish::Length | Finish::TooLong => "length",
    }
}

async fn chat(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let chat = match parse_chat(&body, &app.model) {
        Ok(chat) => chat,
        Err(e) => return e.into_response(),
    };
    let prompt_tokens = chat.spec.prompt_tokens;
    let events = match app.engine.submit(chat.spec) {
        Ok(events) => events,
        Err(e) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                &e.to_string(),
                "server_error",
            );
        }
    };
    if chat.stream {
        return stream(app, events, prompt_tokens, chat.include_usage);
    }
    complete(app, events, prompt_tokens).await
}

async fn complete(
    app: Arc<App>,
    mut events: mpsc::UnboundedReceiver<Event>,
    prompt_tokens: u32,
) -> Response {
    let mut content = String::new();
    while let Some(event) = events.recv().await {
        match event {
            Event::Token { index, .. } => content.push_str(word(index)),
            Event::Finished {
                reason: Finish::TooLong,
                ..
            } => {
                let message = "the prompt is longer than the KV cache";
                return error(StatusCode::BAD_REQUEST, message, "invalid_request_error");
            }
            Event::Finished {
                reason, generated, ..
            } => {
                let body = json!({
                    "id": "chatcmpl-sim",
                    "object": "chat.completion",
                    "model": app.model,
                    "choices": [{
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": finish_reason(reason),
                    }],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": generated,
                        "total_tokens": prompt_tokens + generated,
                    },
                });
                return axum::Json(body).into_response();
            }
            Event::Scheduled { .. } | Event::Preempted { .. } => {}
        }
    }
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the engine stopped",
        "server_error",
    )
}

fn chunk(model: &str, delta: Value, finish: Option<&str>) -> Bytes {
    let body = json!({
        "id": "chatcmpl-sim",
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    });
    Bytes::from(format!("data: {body}\n\n"))
}

/// Streams like vLLM and llama.cpp: a role-only first chunk at once, one chunk per token,
/// a final chunk with the finish reason, an optional usage chunk, then `[DONE]`.
fn stream(
    app: Arc<App>,
    events: mpsc::UnboundedReceiver<Event>,
    prompt_tokens: u32,
    include_usage: bool,
) -> Response {
    let first = chunk(
        &app.model,
        json!({"role": "assistant", "content": ""}),
        None,
    );
    let state = (app, events, Some(first), false);
    let body =
        futures_util::stream::unfold(state, move |(app, mut events, pending, done)| async move {
            if let Some(bytes) = pending {
                return Some((
                    Ok::<Bytes, std::io::Error>(bytes),
                    (app, events, None, done),
                ));
            }
            if done {
                return None;
            }
            loop {
                let event = events.recv().await?;
                match event {
                    Event::Token { index, .. } => {
                        let bytes = chunk(&app.model, json!({"content": word(index)}), None);
                        return Some((Ok(bytes), (app, events, None, false)));
                    }
                    Event::Finished {
                        reason, generated, ..
                    } => {
                        let mut bytes =
                            chunk(&app.model, json!({}), Some(finish_reason(reason))).to_vec();
                        if include_usage {
                            let usage = json!({
                                "id": "chatcmpl-sim",
                                "object": "chat.completion.chunk",
                                "model": app.model,
                                "choices": [],
                                "usage": {
                                    "prompt_tokens": prompt_tokens,
                                    "completion_tokens": generated,
                                    "total_tokens": prompt_tokens + generated,
                                },
                            });
                            bytes.extend_from_slice(format!("data: {usage}\n\n").as_bytes());
                        }
                        bytes.extend_from_slice(b"data: [DONE]\n\n");
                        return Some((Ok(Bytes::from(bytes)), (app, events, None, true)));
                    }
                    Event::Scheduled { .. } | Event::Preempted { .. } => {}
                }
            }
        });
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(body),
    )
        .into_response()
}
