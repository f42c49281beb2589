//! One proxied request: read and check the body, patch it (usage on streams), choose the
//! upstream, send, and relay the answer through an [`Observation`]. The OpenAI endpoints are
//! measured; any other path passes through to a default upstream untouched.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::metrics::ModelLabels;
use super::observe::{Observation, Relay, Source, Waits};
use super::{Outcome, Proxy};
use crate::client_metrics::{Operation, OutcomeLabels};

/// Headers that belong to one hop, not to the request or answer.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// Holds a chosen upstream's outstanding count until the answer has been relayed.
struct Lease {
    proxy: Arc<Proxy>,
    index: usize,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.proxy.upstreams[self.index].release();
    }
}

/// Every request but `/metrics`.
pub async fn handle(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    let received = Instant::now();
    let (parts, body) = request.into_parts();
    let operation = match (parts.method == Method::POST, parts.uri.path()) {
        (true, "/v1/chat/completions") => Some("chat"),
        (true, "/v1/completions") => Some("text_completion"),
        (true, "/v1/embeddings") => Some("embeddings"),
        _ => None,
    };
    let limit = proxy.options.max_body_bytes;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    let bytes = match declared {
        Some(n) if n > limit => None,
        _ => axum::body::to_bytes(body, limit).await.ok(),
    };
    let Some(bytes) = bytes else {
        let message = format!("request body over the proxy's limit of {limit} bytes");
        return refuse(&proxy, "unknown", StatusCode::PAYLOAD_TOO_LARGE, &message);
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    match operation {
        Some(operation) => {
            measured(
                proxy,
                parts.method,
                path,
                parts.headers,
                bytes,
                operation,
                received,
            )
            .await
        }
        None => pass_through(proxy, parts.method, path, parts.headers, bytes).await,
    }
}

/// An OpenAI-format error answer, counted as a client error.
fn refuse(proxy: &Proxy, model: &str, status: StatusCode, message: &str) -> Response {
    proxy
        .metrics
        .client
        .outcomes
        .get_or_create(&OutcomeLabels {
            gen_ai_request_model: proxy.metrics.model_label(model),
            outcome: Outcome::ClientError.as_str().to_string(),
            http_status_class: "4xx".to_string(),
        })
        .inc();
    openai_error(status, message, "invalid_request_error")
}

fn openai_error(status: StatusCode, message: &str, kind: &str) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "code": status.as_u16()}});
    (status, axum::Json(body)).into_response()
}

/// The request body to send upstream and whether the usage chunk must be removed: a stream
/// whose client did not ask for usage gets `stream_options.include_usage` added.
fn patch(mut request: Value, inject: bool) -> (Option<Vec<u8>>, bool) {
    let streamed = request["stream"] == Value::Bool(true);
    let asked = request["stream_options"]["include_usage"] == Value::Bool(true);
    if !(streamed && inject && !asked) {
        return (None, false);
    }
    match request
        .get_mut("stream_options")
        .and_then(Value::as_object_mut)
    {
        Some(options) => {
            options.insert("include_usage".into(), Value::Bool(true));
        }
        None => request["stream_options"] = json!({"include_usage": true}),
    }
    (serde_json::to_vec(&request).ok(), true)
}

async fn measured(
    proxy: Arc<Proxy>,
    method: Method,
    path: &str,
    headers: HeaderMap,
    bytes: Bytes,
    operation: &str,
    received: Instant,
) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&bytes) else {
        return refuse(
            &proxy,
            "unknown",
            StatusCode::BAD_REQUEST,
            "request body is not valid JSON",
        );
    };
    let model = request["model"].as_str().map(str::to_string);
    let label = proxy
        .metrics
        .model_label(model.as_deref().unwrap_or("unknown"));
    let Some(index) = super::upstream::choose(&proxy.upstreams, model.as_deref()) else {
        let message = format!(
            "no upstream serves model {:?} and none is a default",
            model.as_deref().unwrap_or("")
        );
        return refuse(&proxy, &label, StatusCode::NOT_FOUND, &message);
    };
    let lease = Lease {
        proxy: proxy.clone(),
        index,
    };
    let models = ModelLabels {
        gen_ai_request_model: label.clone(),
    };
    proxy
        .metrics
        .request_bytes
        .get_or_create(&models)
        .inc_by(bytes.len() as u64);
    let (patched, strip_usage) = patch(request, proxy.options.inject_usage);
    let body = patched.map_or(bytes, Bytes::from);
    let operation = Operation {
        gen_ai_operation_name: operation.to_string(),
        gen_ai_request_model: label,
    };
    let mut observation = Observation::new(proxy.metrics.clone(), operation, received);
    let deadline = received + proxy.options.total_timeout;
    let upstream = &proxy.upstreams[index];
    let sent = exchange(&proxy, upstream, method, path, &headers, body);
    proxy
        .metrics
        .request_overhead
        .observe(received.elapsed().as_secs_f64());
    let wait = proxy
        .options
        .first_byte_timeout
        .min(deadline.saturating_duration_since(Instant::now()));
    let exchanged = match tokio::time::timeout(wait, sent).await {
        Err(_) => Err((
            StatusCode::GATEWAY_TIMEOUT,
            Outcome::Timeout,
            "upstream timed out".to_string(),
        )),
        Ok(result) => result,
    };
    let (status, answer_headers, source) = match exchanged {
        Ok(answer) => answer,
        Err((status, outcome, message)) => {
            // Never the request's content: the upstream, the outcome and why.
            tracing::warn!(upstream = %upstream.base, outcome = outcome.as_str(), %message, "proxy: upstream request failed");
            upstream.failed();
            observation.status(status.as_u16());
            observation.record(outcome);
            return openai_error(status, &message, outcome.as_str());
        }
    };
    if status >= 500 {
        upstream.failed();
    } else {
        upstream.succeeded();
    }
    observation.status(status);
    let streamed = status == 200
        && answer_headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
    let head = answer_head(status, &answer_headers);
    let waits = Waits {
        idle: proxy.options.idle_timeout,
        deadline,
    };
    let relay = Relay::new(source, observation, streamed, strip_usage, waits);
    let stream = futures_util::stream::unfold((relay, lease), |(mut relay, lease)| async move {
        let next = relay.next().await?;
        Some((next, (relay, lease)))
    });
    head.body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

/// An upstream's answer (status, headers, body), or why there is none: the status to answer
/// with, the outcome, and a message.
type Exchanged = Result<(u16, HeaderMap, Source), (StatusCode, Outcome, String)>;

/// Sends the request upstream: on the lean client for plain HTTP, on reqwest otherwise.
async fn exchange(
    proxy: &Proxy,
    upstream: &super::upstream::Upstream,
    method: Method,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Exchanged {
    let Some(pool) = &upstream.lean else {
        return match send(proxy, method, &upstream.base, path, headers, body).await {
            Ok(r) => Ok((r.status().as_u16(), r.headers().clone(), Source::Full(r))),
            Err(e) if e.is_timeout() => Err((
                StatusCode::GATEWAY_TIMEOUT,
                Outcome::Timeout,
                "upstream timed out".to_string(),
            )),
            Err(e) => Err((
                StatusCode::BAD_GATEWAY,
                Outcome::UpstreamError,
                format!(
                    "upstream failed: {}",
                    crate::collect::fetch::flatten_error(&e)
                ),
            )),
        };
    };
    let mut request = pool.request_head(method.as_str(), path);
    for (name, value) in headers {
        // The body is already whole: no `Expect: 100-continue` handshake upstream.
        if !is_hop_by_hop(name) && name != header::CONTENT_LENGTH && name != header::EXPECT {
            request.extend_from_slice(name.as_str().as_bytes());
            request.extend_from_slice(b": ");
            request.extend_from_slice(value.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
    }
    request.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    request.extend_from_slice(&body);
    match pool.send(&request).await {
        Ok(response) => {
            let mut answer = HeaderMap::with_capacity(response.headers.len());
            for (name, value) in &response.headers {
                if let (Ok(name), Ok(value)) = (
                    HeaderName::from_bytes(name.as_bytes()),
                    header::HeaderValue::from_bytes(value),
                ) {
                    answer.append(name, value);
                }
            }
            Ok((response.status, answer, Source::Lean(response)))
        }
        Err(failure) => Err((
            StatusCode::BAD_GATEWAY,
            Outcome::UpstreamError,
            format!("upstream failed: {failure:?}"),
        )),
    }
}

/// Sends the request upstream with the client's headers, less the hop-by-hop ones.
fn send(
    proxy: &Proxy,
    method: Method,
    base: &str,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> impl Future<Output = reqwest::Result<reqwest::Response>> {
    let mut request = proxy.client.request(method, format!("{base}{path}"));
    for (name, value) in headers {
        if !is_hop_by_hop(name) && name != header::CONTENT_LENGTH {
            request = request.header(name, value);
        }
    }
    request.body(body).send()
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

/// The client's answer head: the upstream's status and headers, less the hop-by-hop ones
/// and the length (the body may lose the usage chunk).
fn answer_head(status: u16, headers: &HeaderMap) -> axum::http::response::Builder {
    let mut head = Response::builder().status(status);
    for (name, value) in headers {
        if !is_hop_by_hop(name) && name != header::CONTENT_LENGTH {
            head = head.header(name, value);
        }
    }
    head
}

/// Any other path: sent to a default upstream as it came, answered as it comes.
async fn pass_through(
    proxy: Arc<Proxy>,
    method: Method,
    path: &str,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let Some(index) = super::upstream::choose(&proxy.upstreams, None) else {
        return openai_error(
            StatusCode::NOT_FOUND,
            "no default upstream for this path",
            "invalid_request_error",
        );
    };
    let lease = Lease {
        proxy: proxy.clone(),
        index,
    };
    let base = &proxy.upstreams[index].base;
    let response = match send(&proxy, method, base, path, &headers, bytes).await {
        Ok(response) => response,
        Err(error) => {
            let message = format!(
                "upstream failed: {}",
                crate::collect::fetch::flatten_error(&error)
            );
            return openai_error(StatusCode::BAD_GATEWAY, &message, "upstream_error");
        }
    };
    let head = answer_head(response.status().as_u16(), response.headers());
    let stream =
        futures_util::stream::unfold((response, lease), |(mut response, lease)| async move {
            match response.chunk().await {
                Ok(Some(chunk)) => Some((Ok(chunk), (response, lease))),
                Ok(None) => None,
                Err(e) => Some((Err(std::io::Error::other(e)), (response, lease))),
            }
        });
    head.body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_asked_for_on_streams_that_did_not() {
        let (body, strip) = patch(json!({"model": "m", "stream": true}), true);
        let sent: Value = serde_json::from_slice(&body.unwrap()).unwrap();
        assert_eq!(sent["stream_options"]["include_usage"], true);
        assert!(strip);
        let (body, strip) = patch(
            json!({"stream": true, "stream_options": {"include_usage": true}}),
            true,
        );
        assert!(body.is_none() && !strip, "the client asked: left as sent");
        let (body, strip) = patch(json!({"stream": false}), true);
        assert!(body.is_none() && !strip, "not streamed");
        let (body, strip) = patch(json!({"stream": true}), false);
        assert!(body.is_none() && !strip, "switched off");
        let (body, _) = patch(json!({"stream": true, "stream_options": {"x": 1}}), true);
        let sent: Value = serde_json::from_slice(&body.unwrap()).unwrap();
        assert_eq!(
            sent["stream_options"],
            json!({"x": 1, "include_usage": true})
        );
    }
}
