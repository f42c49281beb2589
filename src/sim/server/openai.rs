//! The OpenAI-compatible chat route of a simulated engine: request parsing, faults,
//! plain and streamed answers, and OpenAI-style errors.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{App, Dialect, MAX_TOKENS, authorised, lock};
use crate::sim::engine::{Event, Finish, RequestSpec};
use crate::sim::faults::{FAULT_HEADER, Fault};
use crate::sim::front::Refusal;

/// An OpenAI-style error answer.
pub(super) struct ApiError {
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

pub(super) fn api_error(status: StatusCode, message: &str, kind: &'static str) -> ApiError {
    ApiError {
        status,
        message: message.to_string(),
        kind,
    }
}

pub(super) fn error(status: StatusCode, message: &str, kind: &'static str) -> Response {
    api_error(status, message, kind).into_response()
}

/// Which OpenAI route a request came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    /// `/v1/chat/completions`.
    Chat,
    /// `/v1/completions`.
    Completion,
}

/// What the handler needs from a request.
struct Chat {
    spec: RequestSpec,
    stream: bool,
    include_usage: bool,
}

/// The prompt text and the per-message overhead in tokens.
fn prompt_text(json: &Value, route: Route) -> Result<(String, u32), ApiError> {
    let bad = |message: &str| api_error(StatusCode::BAD_REQUEST, message, "invalid_request_error");
    match route {
        Route::Chat => {
            let messages = json
                .get("messages")
                .and_then(Value::as_array)
                .ok_or_else(|| bad("`messages` must be a list"))?;
            let text = messages
                .iter()
                .filter_map(|m| m.get("content").and_then(Value::as_str))
                .collect();
            Ok((text, 4 * messages.len() as u32))
        }
        Route::Completion => match json.get("prompt") {
            Some(Value::String(text)) => Ok((text.clone(), 0)),
            Some(Value::Array(parts)) => Ok((parts.iter().filter_map(Value::as_str).collect(), 0)),
            _ => Err(bad("`prompt` must be a string or a list of strings")),
        },
    }
}

fn parse_chat(body: &[u8], app: &App, route: Route) -> Result<Chat, ApiError> {
    let model = app.model.as_str();
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
    let (text, overhead) = prompt_text(&json, route)?;
    let max_tokens = json
        .get("max_tokens")
        .or_else(|| json.get("max_completion_tokens"))
        .and_then(Value::as_u64)
        .map_or(16, |n| n.clamp(1, u64::from(MAX_TOKENS)) as u32);
    // The tokenizer's count when one is given, else about four characters per token; and a
    // natural length that depends only on the prompt, so the same request always gets the
    // same answer.
    let content_tokens = match &app.tokenizer {
        Some(tokenizer) => u32::try_from(tokenizer.count(&text)).unwrap_or(u32::MAX),
        None => (text.len() as u32).div_ceil(4),
    };
    let prompt_tokens = content_tokens.max(1).saturating_add(overhead);
    // vLLM's `ignore_eos` (also honoured by SGLang and llama.cpp): generate exactly
    // `max_tokens`, as load generators ask for fixed output lengths.
    let ignore_eos = json.get("ignore_eos").and_then(Value::as_bool) == Some(true);
    let natural_length = if ignore_eos {
        max_tokens
    } else {
        natural_length(app.seed, &text, max_tokens)
    };
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

/// How many tokens the simulated model "wants" to write for `prompt` (it stops there unless
/// `max_tokens` comes first): a function of the seed and the prompt only.
pub(super) fn natural_length(seed: u64, prompt: &str, max_tokens: u32) -> u32 {
    let hash = crate::rng::fnv1a(&[&seed.to_le_bytes()[..], prompt.as_bytes()].concat());
    1 + (hash % u64::from(2 * max_tokens)) as u32
}

/// The deterministic text of token `index`.
pub(super) fn word(index: u32) -> &'static str {
    const WORDS: [&str; 8] = [
        " the", " sea", " is", " calm", " and", " blue", " today", ".",
    ];
    WORDS[index as usize % WORDS.len()]
}

pub(super) fn finish_reason(reason: Finish) -> &'static str {
    match reason {
        Finish::Stop => "stop",
        Finish::Length | Finish::TooLong => "length",
        Finish::Aborted => "abort",
    }
}

/// The fault for this request: forced by header, else drawn at the configured rates.
fn pick_fault(app: &App, headers: &HeaderMap) -> Result<Option<Fault>, ApiError> {
    if let Some(value) = headers.get(FAULT_HEADER) {
        let text = value.to_str().unwrap_or_default();
        return Fault::parse(text)
            .map(Some)
            .map_err(|e| api_error(StatusCode::BAD_REQUEST, &e, "invalid_request_error"));
    }
    Ok(lock(&app.dice).draw())
}

pub(super) fn overloaded() -> Response {
    let mut response = error(
        StatusCode::TOO_MANY_REQUESTS,
        "the server is overloaded; retry later",
        "rate_limit_error",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    response
}

/// A 200 whose body fails at once: the server drops the connection mid-response.
fn reset() -> Response {
    let failing = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other("simulated connection reset"))
    });
    Body::from_stream(failing).into_response()
}

pub(super) async fn chat(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    serve(app, &headers, &body, Route::Chat).await
}

pub(super) async fn completion(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(app, &headers, &body, Route::Completion).await
}

async fn serve(app: Arc<App>, headers: &HeaderMap, body: &[u8], route: Route) -> Response {
    if !authorised(&app, headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "Invalid API Key",
            "authentication_error",
        );
    }
    if app.dead.load(Ordering::SeqCst) {
        app.front.count(Refusal::ServerError);
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the engine is dead",
            "server_error",
        );
    }
    let fault = match pick_fault(&app, headers) {
        Ok(fault) => fault,
        Err(e) => return e.into_response(),
    };
    let chat = match parse_chat(body, &app, route) {
        Ok(chat) => chat,
        Err(e) => return e.into_response(),
    };
    let max_waiting = lock(&app.dice).rates().max_waiting;
    if max_waiting.is_some_and(|limit| app.engine.waiting() >= limit) {
        app.front.count(Refusal::Overloaded);
        return overloaded();
    }
    match fault {
        Some(Fault::Error) => {
            app.front.count(Refusal::ServerError);
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "simulated engine error",
                "server_error",
            );
        }
        Some(Fault::Overloaded) => {
            app.front.count(Refusal::Overloaded);
            return overloaded();
        }
        Some(Fault::Reset) => return reset(),
        Some(Fault::Die) => {
            app.dead.store(true, Ordering::SeqCst);
            app.front.count(Refusal::ServerError);
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the engine died",
                "server_error",
            );
        }
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::Stall(_) | Fault::MidStreamError) | None => {}
    }
    let prompt_tokens = chat.spec.prompt_tokens;
    let target = chat.spec.natural_length.min(chat.spec.max_tokens).max(1);
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
        let reply = Reply {
            route,
            prompt_tokens,
            include_usage: chat.include_usage,
            midway: target / 2,
            fault,
        };
        return stream(app, events, reply);
    }
    if fault == Some(Fault::MidStreamError) {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "simulated engine error",
            "server_error",
        );
    }
    if let Some(Fault::Stall(d)) = fault {
        tokio::time::sleep(d).await;
    }
    complete(app, events, prompt_tokens, route).await
}

/// How to answer a streamed request.
#[derive(Debug, Clone, Copy)]
struct Reply {
    route: Route,
    prompt_tokens: u32,
    include_usage: bool,
    /// The token index at which a stall or mid-stream error strikes.
    midway: u32,
    fault: Option<Fault>,
}

async fn complete(
    app: Arc<App>,
    mut events: mpsc::UnboundedReceiver<Event>,
    prompt_tokens: u32,
    route: Route,
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
                    "object": match route {
                        Route::Chat => "chat.completion",
                        Route::Completion => "text_completion",
                    },
                    "model": app.model,
                    "choices": [match route {
                        Route::Chat => json!({
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "finish_reason": finish_reason(reason),
                        }),
                        Route::Completion => json!({
                            "index": 0,
                            "text": content,
                            "finish_reason": finish_reason(reason),
                        }),
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

/// The fields every chunk of this dialect carries besides `choices` (and `usage`).
fn envelope(app: &App, route: Route) -> serde_json::Map<String, Value> {
    let mut fields = serde_json::Map::new();
    let (id, object) = match route {
        Route::Chat => ("chatcmpl-sim", "chat.completion.chunk"),
        Route::Completion => ("cmpl-sim", "text_completion"),
    };
    fields.insert("id".into(), json!(id));
    fields.insert("object".into(), json!(object));
    fields.insert("model".into(), json!(app.model));
    fields.insert("created".into(), json!(app.started_unix as u64));
    match app.dialect {
        Dialect::LlamaCpp => {
            fields.insert("system_fingerprint".into(), json!("b7100-sim"));
        }
        Dialect::Tgi => {
            fields.insert("system_fingerprint".into(), json!("3.3.7-native"));
        }
        Dialect::Vllm(_) | Dialect::Sglang => {}
    }
    fields
}

/// Whether the dialect puts the finish reason on the chunk of the last token (vLLM, TGI)
/// rather than on a chunk of its own with an empty delta (llama.cpp, SGLang).
fn finish_on_last_token(app: &App) -> bool {
    matches!(app.dialect, Dialect::Vllm(_) | Dialect::Tgi)
}

/// Whether a chat stream opens with a role-only chunk before any content (all but TGI,
/// whose every delta carries the role next to the text).
fn opens_with_role_chunk(app: &App) -> bool {
    app.dialect != Dialect::Tgi
}

/// One streamed chunk: `delta` for chat; for completions its `content` becomes `text`.
/// vLLM's and TGI's choices also carry `logprobs: null`; vLLM adds `stop_reason: null` when
/// finishing; TGI repeats the role in every delta and writes `usage: null` until the end.
fn chunk(app: &App, route: Route, mut delta: Value, finish: Option<&str>) -> Bytes {
    let mut body = envelope(app, route);
    let tgi = app.dialect == Dialect::Tgi;
    if tgi && delta.get("content").is_some() {
        delta["role"] = json!("assistant");
    }
    let mut choice = match route {
        Route::Chat => json!({"index": 0, "delta": delta}),
        Route::Completion => {
            let text = delta.get("content").cloned().unwrap_or(json!(""));
            json!({"index": 0, "text": text})
        }
    };
    let vllm = matches!(app.dialect, Dialect::Vllm(_));
    if vllm || tgi {
        choice["logprobs"] = Value::Null;
    }
    choice["finish_reason"] = json!(finish);
    if vllm && finish.is_some() {
        choice["stop_reason"] = Value::Null;
    }
    body.insert("choices".into(), json!([choice]));
    if tgi {
        body.insert("usage".into(), Value::Null);
    }
    Bytes::from(format!("data: {}\n\n", Value::Object(body)))
}

/// The final usage chunk (`stream_options.include_usage`): no choices, the usage, and for
/// llama.cpp the cached-token detail.
fn usage_chunk(app: &App, route: Route, prompt_tokens: u32, generated: u32) -> Value {
    let mut usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": generated,
        "total_tokens": prompt_tokens + generated,
    });
    if app.dialect == Dialect::LlamaCpp {
        usage["prompt_tokens_details"] = json!({"cached_tokens": 0});
    }
    let mut body = envelope(app, route);
    body.insert("choices".into(), json!([]));
    body.insert("usage".into(), usage);
    Value::Object(body)
}

/// The role-only first chunk: llama.cpp sends `content: null`, vLLM and SGLang `""`.
fn role_chunk(app: &App) -> Bytes {
    let content = if app.dialect == Dialect::LlamaCpp {
        Value::Null
    } else {
        json!("")
    };
    chunk(
        app,
        Route::Chat,
        json!({"role": "assistant", "content": content}),
        None,
    )
}

/// The error event some engines send after HTTP 200 when generation fails.
fn midstream_error() -> Bytes {
    let body = json!({"error": {
        "message": "simulated engine error mid-stream",
        "type": "server_error",
        "code": 500,
    }});
    Bytes::from(format!("data: {body}\n\n"))
}

/// Streams like the engines' OpenAI routes: a role-only first chunk at once (not TGI), one
/// chunk per token, the finish reason on the last token's chunk (vLLM, TGI) or on a chunk of
/// its own, an optional usage chunk, then `[DONE]`.
fn stream(app: Arc<App>, events: mpsc::UnboundedReceiver<Event>, reply: Reply) -> Response {
    // Chat streams open with a role-only chunk (except TGI's); completion streams do not.
    let first =
        (reply.route == Route::Chat && opens_with_role_chunk(&app)).then(|| role_chunk(&app));
    let template = token_template(&app, reply.route);
    let streamer = Streamer {
        app,
        events,
        reply,
        template,
        pending: first,
        held: None,
        done: false,
    };
    let body = futures_util::stream::unfold(streamer, Streamer::next);
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(body),
    )
        .into_response()
}

/// A token chunk serialised once per stream, split around the token text: each token is then
/// two copies and the word, not a JSON tree.
fn token_template(app: &App, route: Route) -> (Vec<u8>, Vec<u8>) {
    const MARK: &str = "\u{1}";
    let whole = chunk(app, route, json!({"content": MARK}), None);
    let text = String::from_utf8_lossy(&whole).into_owned();
    let marker = "\"\\u0001\"";
    match text.split_once(marker) {
        Some((prefix, suffix)) => (prefix.as_bytes().to_vec(), suffix.as_bytes().to_vec()),
        None => (text.into_bytes(), Vec::new()),
    }
}

/// The state of one streamed answer.
struct Streamer {
    app: Arc<App>,
    events: mpsc::UnboundedReceiver<Event>,
    reply: Reply,
    template: (Vec<u8>, Vec<u8>),
    pending: Option<Bytes>,
    /// An event to handle before reading the channel (a fault point reached with output
    /// still unsent).
    held: Option<Event>,
    done: bool,
}

enum Step {
    /// Keep going.
    More,
    /// The stream is over after what was written.
    End,
    /// Flush what is written, then handle this event.
    Hold(Event),
}

impl Streamer {
    /// The next piece of the body: every event already waiting is written into one piece,
    /// so a client that fell behind gets its tokens in one write instead of many.
    async fn next(mut self) -> Option<(Result<Bytes, std::io::Error>, Self)> {
        if let Some(bytes) = self.pending.take() {
            return Some((Ok(bytes), self));
        }
        let mut out = Vec::new();
        while !self.done && out.is_empty() {
            let mut event = match self.held.take() {
                Some(event) => event,
                None => self.events.recv().await?,
            };
            loop {
                match self.write(event, &mut out).await {
                    Step::End => {
                        self.done = true;
                        break;
                    }
                    Step::Hold(event) => {
                        self.held = Some(event);
                        break;
                    }
                    Step::More => {}
                }
                match self.events.try_recv() {
                    Ok(next) => event = next,
                    Err(_) => break,
                }
            }
        }
        if out.is_empty() {
            return None;
        }
        Some((Ok(Bytes::from(out)), self))
    }

    async fn write(&mut self, event: Event, out: &mut Vec<u8>) -> Step {
        match event {
            Event::Token { index, ends, .. } => {
                if index == self.reply.midway && self.reply.fault.is_some() {
                    if !out.is_empty() {
                        return Step::Hold(event);
                    }
                    match self.reply.fault {
                        Some(Fault::Stall(d)) => tokio::time::sleep(d).await,
                        Some(Fault::MidStreamError) => {
                            out.extend_from_slice(&midstream_error());
                            return Step::End;
                        }
                        _ => {}
                    }
                }
                match ends {
                    Some(reason) if finish_on_last_token(&self.app) => {
                        let delta = json!({"content": word(index)});
                        let finish = Some(finish_reason(reason));
                        out.extend_from_slice(&chunk(&self.app, self.reply.route, delta, finish));
                    }
                    _ => {
                        out.extend_from_slice(&self.template.0);
                        out.extend_from_slice(json!(word(index)).to_string().as_bytes());
                        out.extend_from_slice(&self.template.1);
                    }
                }
                Step::More
            }
            Event::Finished {
                reason, generated, ..
            } => {
                // With no token (a prompt too long for the cache) there is no last token
                // to carry the reason.
                if !finish_on_last_token(&self.app) || generated == 0 {
                    let finish = Some(finish_reason(reason));
                    let route = self.reply.route;
                    out.extend_from_slice(&chunk(&self.app, route, json!({}), finish));
                }
                if self.reply.include_usage {
                    let (route, prompt) = (self.reply.route, self.reply.prompt_tokens);
                    let usage = usage_chunk(&self.app, route, prompt, generated);
                    out.extend_from_slice(format!("data: {usage}\n\n").as_bytes());
                }
                out.extend_from_slice(b"data: [DONE]\n\n");
                Step::End
            }
            Event::Scheduled { .. } | Event::Preempted { .. } => Step::More,
        }
    }
}
