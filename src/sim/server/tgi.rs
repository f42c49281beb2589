//! TGI's native routes: `POST /generate` and `POST /generate_stream`, with TGI's request
//! shape (`inputs`, `parameters.max_new_tokens`) and its answers (`generated_text`,
//! `details`; token events as `data:{…}` lines, the last one carrying the full text).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::openai::{ApiError, api_error, error, natural_length, word};
use super::{App, MAX_TOKENS, authorised};
use crate::sim::engine::{Event, Finish, RequestSpec};
use crate::sim::front::Refusal;

fn parse(body: &[u8], seed: u64) -> Result<(RequestSpec, bool), ApiError> {
    let json: Value = serde_json::from_slice(body).map_err(|e| {
        let message = format!("Failed to deserialize the JSON body into the target type: {e}");
        api_error(StatusCode::UNPROCESSABLE_ENTITY, &message, "validation")
    })?;
    let Some(inputs) = json.get("inputs").and_then(Value::as_str) else {
        let message = "missing field `inputs`";
        return Err(api_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            message,
            "validation",
        ));
    };
    let max_new_tokens = json
        .pointer("/parameters/max_new_tokens")
        .and_then(Value::as_u64)
        .map_or(100, |n| n.clamp(1, u64::from(MAX_TOKENS)) as u32);
    let details = json
        .pointer("/parameters/details")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let spec = RequestSpec {
        id: 0,
        prompt_tokens: (inputs.len() as u32).div_ceil(4).max(1),
        cached_tokens: 0,
        natural_length: natural_length(seed, inputs, max_new_tokens),
        max_tokens: max_new_tokens,
    };
    Ok((spec, details))
}

fn tgi_finish(reason: Finish) -> &'static str {
    match reason {
        Finish::Stop => "eos_token",
        Finish::Length | Finish::TooLong => "length",
        // Never sent: the client that would read it has gone.
        Finish::Aborted => "length",
    }
}

async fn admit(
    app: &App,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(tokio::sync::mpsc::UnboundedReceiver<Event>, bool), ApiError> {
    if !authorised(app, headers) {
        return Err(api_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "authentication",
        ));
    }
    if app.dead.load(Ordering::SeqCst) {
        app.front.count(Refusal::ServerError);
        return Err(api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the engine is dead",
            "generation",
        ));
    }
    let (spec, details) = parse(body, app.seed)?;
    let events = app.engine.submit(spec).map_err(|e| {
        app.front.count(Refusal::Overloaded);
        api_error(StatusCode::TOO_MANY_REQUESTS, &e.to_string(), "overloaded")
    })?;
    Ok((events, details))
}

/// `POST /generate`.
pub(super) async fn generate(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (mut events, details) = match admit(&app, &headers, &body).await {
        Ok(admitted) => admitted,
        Err(e) => return e.into_response(),
    };
    let mut text = String::new();
    while let Some(event) = events.recv().await {
        match event {
            Event::Token { index, .. } => text.push_str(word(index)),
            Event::Finished {
                reason, generated, ..
            } => {
                let mut body = json!({"generated_text": text});
                if details {
                    body["details"] = json!({
                        "finish_reason": tgi_finish(reason),
                        "generated_tokens": generated,
                        "seed": null,
                    });
                }
                return axum::Json(body).into_response();
            }
            Event::Scheduled { .. } | Event::Preempted { .. } => {}
        }
    }
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the engine stopped",
        "generation",
    )
}

/// `POST /generate_stream`.
pub(super) async fn generate_stream(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (events, _) = match admit(&app, &headers, &body).await {
        Ok(admitted) => admitted,
        Err(e) => return e.into_response(),
    };
    let body = futures_util::stream::unfold(
        (events, String::new(), false),
        |(mut events, mut text, done)| async move {
            if done {
                return None;
            }
            loop {
                match events.recv().await? {
                    Event::Token { index, .. } => {
                        text.push_str(word(index));
                        let token = json!({
                            "index": index + 1,
                            "token": {"id": index, "text": word(index), "logprob": -0.1, "special": false},
                            "generated_text": null,
                            "details": null,
                        });
                        let bytes = Bytes::from(format!("data:{token}\n\n"));
                        return Some((Ok::<Bytes, std::io::Error>(bytes), (events, text, false)));
                    }
                    Event::Finished {
                        reason, generated, ..
                    } => {
                        let last = json!({
                            "index": generated + 1,
                            "token": {"id": 1, "text": "", "logprob": 0.0, "special": true},
                            "generated_text": text,
                            "details": {
                                "finish_reason": tgi_finish(reason),
                                "generated_tokens": generated,
                                "seed": null,
                            },
                        });
                        let bytes = Bytes::from(format!("data:{last}\n\n"));
                        return Some((Ok(bytes), (events, text, true)));
                    }
                    Event::Scheduled { .. } | Event::Preempted { .. } => {}
                }
            }
        },
    );
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(body),
    )
        .into_response()
}
