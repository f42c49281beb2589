//! One proxied request: read and check the body, patch it (usage on streams), choose the
//! upstream, send, and relay the answer through an [`Observation`]. The OpenAI endpoints are
//! measured; any other path passes through to a default upstream untouched.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::body::{patch, read_fields};
use super::metrics::ModelLabels;
use super::observe::{Observation, Relay, Source, Waits};
use super::{Outcome, Proxy};
use crate::client_metrics::{Operation, OutcomeLabels};

/// The W3C trace context header, a constant: a name given as text is parsed on every use.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Headers that belong to one hop, not to the request or answer. Names, not text: a name
/// given as text is parsed at each use, and an answer's headers were looked up by all nine.
/// A `static`, not a `const`: a constant array is built and dropped at every use.
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::HOST,
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

/// What a forwarded request is answered with: a response whose body is ready or streams
/// by itself, or a relayed upstream answer's head with the relay that gives its body, which
/// the client's connection polls directly (a body stream around the relay cost a boxed
/// stream and three layers of polling per relayed piece).
pub enum Answer {
    /// A whole response.
    Response(Response),
    /// The head (its body empty) and the relay.
    Relayed(Response, Relayed),
}

impl From<Response> for Answer {
    fn from(response: Response) -> Answer {
        Answer::Response(response)
    }
}

/// A relayed answer's body, holding its upstream's lease until it is dropped.
pub struct Relayed {
    relay: Box<Relay>,
    _lease: Lease,
}

impl Relayed {
    /// The next bytes for the client, lent until the next call; `None` at the end.
    pub async fn next(&mut self) -> Option<Result<&[u8], std::io::Error>> {
        self.relay.next().await
    }

    /// Whether the relay waits for its upstream, its wake-up set ([`Relay::waiting`]).
    pub fn waiting(&self) -> bool {
        self.relay.waiting()
    }
}

/// Every request but `/metrics`.
pub async fn handle(State(proxy): State<Arc<Proxy>>, request: Request) -> Answer {
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
        return refuse(&proxy, "unknown", StatusCode::PAYLOAD_TOO_LARGE, &message).into();
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
        None => pass_through(proxy, parts.method, path, parts.headers, bytes)
            .await
            .into(),
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

async fn measured(
    proxy: Arc<Proxy>,
    method: Method,
    path: &str,
    mut headers: HeaderMap,
    bytes: Bytes,
    operation: &'static str,
    received: Instant,
) -> Answer {
    let Some(request) = read_fields(&bytes) else {
        return refuse(
            &proxy,
            "unknown",
            StatusCode::BAD_REQUEST,
            "request body is not valid JSON",
        )
        .into();
    };
    let model = request.model.as_deref();
    let label = proxy.metrics.model_label(model.unwrap_or("unknown"));
    let Some(index) = super::upstream::choose(&proxy.upstreams, model) else {
        let message = format!(
            "no upstream serves model {:?} and none is a default",
            model.unwrap_or("")
        );
        return refuse(&proxy, &label, StatusCode::NOT_FOUND, &message).into();
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
    let patched = patch(&bytes, &request, proxy.options.inject_usage);
    let strip_usage = patched.is_some();
    let body = patched.as_deref().unwrap_or(&bytes);
    let operation_name = operation;
    let operation = Operation {
        gen_ai_operation_name: operation.to_string(),
        gen_ai_request_model: label,
    };
    let upstream = &proxy.upstreams[index];
    let mut observation = Observation::new(proxy.metrics.clone(), operation, received);
    if let Some(tracer) = &proxy.tracer {
        let incoming = headers.get(&TRACEPARENT).and_then(|v| v.to_str().ok());
        let (span, traceparent) = super::span::SpanStart::begin(
            tracer,
            incoming,
            received,
            operation_name,
            model.unwrap_or("unknown"),
            &upstream.server,
        );
        if let Ok(value) = header::HeaderValue::from_bytes(traceparent.as_bytes()) {
            headers.insert(TRACEPARENT, value);
        }
        observation.trace(span);
    }
    let deadline = received + proxy.options.total_timeout;
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
            return openai_error(status, &message, outcome.as_str()).into();
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
    observation.streamed(streamed);
    let waits = Waits {
        idle: proxy.options.idle_timeout,
        deadline,
    };
    // Boxed: a relay (with the request's observation) is about a kilobyte, moved from
    // this future to the connection's.
    let relay = Box::new(Relay::new(
        source,
        observation,
        streamed,
        strip_usage,
        waits,
    ));
    let relayed = Relayed {
        relay,
        _lease: lease,
    };
    Answer::Relayed(answer(status, answer_headers, Body::empty()), relayed)
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
    body: &[u8],
) -> Exchanged {
    let Some(pool) = &upstream.lean else {
        let body = Bytes::copy_from_slice(body);
        return match send(proxy, method, &upstream.base, path, headers, body).await {
            Ok(r) => {
                let headers = end_to_end(r.headers().clone());
                Ok((r.status().as_u16(), headers, Source::Full(r)))
            }
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
    let request = lean_request(pool, &method, path, headers, body);
    match pool.send(&request).await {
        Ok(response) => {
            let mut answer = HeaderMap::with_capacity(response.header_count());
            // Not copied: each value shares the bytes of the head as it came.
            for (name, value) in response.headers() {
                let Ok(name) = HeaderName::from_bytes(name) else {
                    continue;
                };
                if !is_end_to_end(&name) {
                    continue;
                }
                if let Ok(value) = header::HeaderValue::from_maybe_shared(value) {
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

/// The whole request for the lean client, in one buffer sized up front: the client's
/// headers less the hop-by-hop ones, then the length and the body.
fn lean_request(
    pool: &crate::http1::Pool,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Vec<u8> {
    // The body is already whole: no `Expect: 100-continue` handshake upstream.
    let kept = |name: &HeaderName| is_end_to_end(name) && name != header::EXPECT;
    let forwarded = || headers.iter().filter(|(name, _)| kept(name));
    let size: usize = forwarded()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    // "Content-Length: " (16), at most 20 digits, and two line ends (4).
    let mut request = pool.request_head(method.as_str(), path, size + 40 + body.len());
    for (name, value) in forwarded() {
        request.extend_from_slice(name.as_str().as_bytes());
        request.extend_from_slice(b": ");
        request.extend_from_slice(value.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"Content-Length: ");
    request.extend_from_slice(body.len().to_string().as_bytes());
    request.extend_from_slice(b"\r\n\r\n");
    request.extend_from_slice(body);
    request
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
        if is_end_to_end(name) {
            request = request.header(name, value);
        }
    }
    request.body(body).send()
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
}

/// Whether a header goes on to the other side (a request's upstream, an answer's client):
/// not a hop-by-hop one, and not the length, which the proxy writes itself (a request's
/// body may gain the usage option, an answer's lose the usage chunk).
fn is_end_to_end(name: &HeaderName) -> bool {
    !is_hop_by_hop(name) && name != header::CONTENT_LENGTH
}

/// An answer's headers less those that do not go on to the client.
fn end_to_end(mut headers: HeaderMap) -> HeaderMap {
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::CONTENT_LENGTH);
    headers
}

/// The client's answer: the upstream's status and its end-to-end headers, and `body`.
fn answer(status: u16, headers: HeaderMap, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    *response.headers_mut() = headers;
    response
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
    let status = response.status().as_u16();
    let headers = end_to_end(response.headers().clone());
    let stream =
        futures_util::stream::unfold((response, lease), |(mut response, lease)| async move {
            match response.chunk().await {
                Ok(Some(chunk)) => Some((Ok(chunk), (response, lease))),
                Ok(None) => None,
                Err(e) => Some((Err(std::io::Error::other(e)), (response, lease))),
            }
        });
    answer(status, headers, Body::from_stream(stream))
}
