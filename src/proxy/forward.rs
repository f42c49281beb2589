//! One proxied request: read and check the body, patch it (usage on streams), choose the
//! upstream, send, and relay the answer through an [`Observation`]. The OpenAI endpoints are
//! measured; any other path passes through to a default upstream untouched.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::time::Sleep;

use super::body::{patch, read_fields};
use super::incoming::{Incoming, stays_with_the_hop};
use super::metrics::ModelLabels;
use super::observe::{Observation, Relay, Source, Waits};
use super::{Outcome, Proxy};
use crate::client_metrics::{Operation, OutcomeLabels};
use crate::otlp::trace::TraceParent;

/// The W3C trace context header.
const TRACEPARENT: &str = "traceparent";

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
/// by itself, or a relayed upstream answer, whose head the client's connection writes from
/// the upstream's and whose body it polls directly (a body stream around the relay cost a
/// boxed stream and three layers of polling per relayed piece, and a header map for the
/// head an allocation per header).
pub enum Answer {
    /// A whole response.
    Response(Response),
    /// A relayed answer.
    Relayed(Relayed),
}

impl From<Response> for Answer {
    fn from(response: Response) -> Answer {
        Answer::Response(response)
    }
}

/// A relayed answer: its status, and the relay that gives its headers and body, holding
/// its upstream's lease until it is dropped.
pub struct Relayed {
    status: StatusCode,
    relay: Box<Relay>,
    _lease: Lease,
}

impl Relayed {
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The upstream's headers, names as they came (the connection leaves out those of one
    /// hop).
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.relay.headers()
    }

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
pub async fn handle(proxy: Arc<Proxy>, request: Incoming) -> Answer {
    let received = Instant::now();
    let operation = match (request.method == Method::POST, request.path()) {
        (true, "/v1/chat/completions") => Some("chat"),
        (true, "/v1/completions") => Some("text_completion"),
        (true, "/v1/embeddings") => Some("embeddings"),
        _ => None,
    };
    if request.body_over_limit {
        let limit = proxy.options.max_body_bytes;
        let message = format!("request body over the proxy's limit of {limit} bytes");
        return refuse(&proxy, "unknown", StatusCode::PAYLOAD_TOO_LARGE, &message).into();
    }
    match operation {
        Some(operation) => measured(proxy, &request, operation, received).await,
        None => pass_through(proxy, request).await.into(),
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
    incoming: &Incoming,
    operation: &'static str,
    received: Instant,
) -> Answer {
    let bytes = &incoming.body[..];
    let Some(request) = read_fields(bytes) else {
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
    let patched = patch(bytes, &request, proxy.options.inject_usage);
    let strip_usage = patched.is_some();
    let body = patched.as_deref().unwrap_or(bytes);
    let operation_name = operation;
    let operation = Operation {
        gen_ai_operation_name: operation.to_string(),
        gen_ai_request_model: label,
    };
    let upstream = &proxy.upstreams[index];
    let mut observation = Observation::new(proxy.metrics.clone(), operation, received);
    let mut traceparent = None;
    if let Some(tracer) = &proxy.tracer {
        let parent = incoming
            .header(TRACEPARENT)
            .and_then(|v| std::str::from_utf8(v).ok());
        let (span, ours) = super::span::SpanStart::begin(
            tracer,
            parent,
            received,
            operation_name,
            model.unwrap_or("unknown"),
            &upstream.server,
        );
        traceparent = Some(ours);
        observation.trace(span);
    }
    let deadline = received + proxy.options.total_timeout;
    let outgoing = Outgoing {
        incoming,
        traceparent: traceparent.as_ref().map(TraceParent::as_bytes),
        body,
    };
    let sent = exchange(&proxy, upstream, &outgoing);
    proxy
        .metrics
        .request_overhead
        .observe(received.elapsed().as_secs_f64());
    // One timer for the whole request, first due at the sooner of the first byte's limit
    // and the relay's first idle limit, and moved only when it fires before its limit is
    // up: a timer for the first byte and another for the relay cost two timers set and
    // cleared per request.
    let first_byte_due = (received + proxy.options.first_byte_timeout).min(deadline);
    let first_idle_due = received + proxy.options.idle_timeout;
    let due = first_byte_due.min(first_idle_due);
    let mut timer = Box::pin(tokio::time::sleep_until(due.into()));
    let exchanged = within(sent, timer.as_mut(), first_byte_due).await;
    let (status, source) = match exchanged {
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
        && source
            .header("content-type")
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
        (streamed, strip_usage),
        waits,
        timer,
    ));
    Answer::Relayed(Relayed {
        status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
        relay,
        _lease: lease,
    })
}

/// Awaits the upstream's answer until `due`, on `timer`, which may be set sooner (for the
/// relay's first idle limit): if it fires before `due`, it is moved to `due`.
async fn within(
    sent: impl Future<Output = Exchanged>,
    mut timer: Pin<&mut Sleep>,
    due: Instant,
) -> Exchanged {
    let mut sent = std::pin::pin!(sent);
    loop {
        tokio::select! {
            biased;
            exchanged = &mut sent => return exchanged,
            () = timer.as_mut() => {
                if Instant::now() >= due {
                    return Err(timed_out());
                }
                timer.as_mut().reset(due.into());
            }
        }
    }
}

/// Why there is no answer when the upstream took too long.
fn timed_out() -> (StatusCode, Outcome, String) {
    let message = "upstream timed out".to_string();
    (StatusCode::GATEWAY_TIMEOUT, Outcome::Timeout, message)
}

/// An upstream's answer (status, and headers and body), or why there is none: the status to
/// answer with, the outcome, and a message.
type Exchanged = Result<(u16, Source), (StatusCode, Outcome, String)>;

/// The request as it goes upstream: the client's, less the headers that stay with its
/// hop, with the proxy's trace context in place of the client's when it traces, and the
/// body (perhaps patched).
struct Outgoing<'a> {
    incoming: &'a Incoming,
    traceparent: Option<&'a [u8]>,
    body: &'a [u8],
}

impl Outgoing<'_> {
    /// The headers that go on, names as the client sent them.
    fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let replaced = self.traceparent.is_some();
        let kept = move |name: &[u8]| {
            let ours = replaced && name.eq_ignore_ascii_case(TRACEPARENT.as_bytes());
            !(ours || stays_with_the_hop(name))
        };
        let ours = self
            .traceparent
            .map(|value| (TRACEPARENT.as_bytes(), value));
        self.incoming
            .headers()
            .filter(move |(name, _)| kept(name))
            .chain(ours)
    }
}

/// Sends the request upstream: on the lean client for plain HTTP, on reqwest otherwise.
async fn exchange(
    proxy: &Proxy,
    upstream: &super::upstream::Upstream,
    outgoing: &Outgoing<'_>,
) -> Exchanged {
    let Some(pool) = &upstream.lean else {
        let body = Bytes::copy_from_slice(outgoing.body);
        let incoming = outgoing.incoming;
        let headers = outgoing.headers();
        let request = reqwest_request(proxy, &upstream.base, incoming, headers, body);
        return match request.send().await {
            Ok(r) => Ok((r.status().as_u16(), Source::Full(r))),
            Err(e) if e.is_timeout() => Err(timed_out()),
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
    let request = lean_request(pool, outgoing);
    match pool.send(&request).await {
        Ok(response) => Ok((response.status, Source::Lean(response))),
        Err(failure) => Err((
            StatusCode::BAD_GATEWAY,
            Outcome::UpstreamError,
            format!("upstream failed: {failure:?}"),
        )),
    }
}

/// The whole request for the lean client, in one buffer sized up front: the headers that
/// go on, written as they came, then the length and the body.
fn lean_request(pool: &crate::http1::Pool, outgoing: &Outgoing<'_>) -> Vec<u8> {
    let incoming = outgoing.incoming;
    let size: usize = outgoing
        .headers()
        .map(|(name, value)| name.len() + value.len() + 4)
        .sum();
    let body = outgoing.body;
    // "Content-Length: " (16), at most 20 digits, and two line ends (4).
    let method = incoming.method.as_str();
    let path = incoming.path_and_query();
    let mut request = pool.request_head(method, path, size + 40 + body.len());
    for (name, value) in outgoing.headers() {
        request.extend_from_slice(name);
        request.extend_from_slice(b": ");
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"Content-Length: ");
    request.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
    request.extend_from_slice(b"\r\n\r\n");
    request.extend_from_slice(body);
    request
}

/// The request upstream on reqwest with `headers`, ready to send.
fn reqwest_request<'a>(
    proxy: &Proxy,
    base: &str,
    incoming: &Incoming,
    headers: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    body: Bytes,
) -> reqwest::RequestBuilder {
    let url = format!("{base}{}", incoming.path_and_query());
    let mut request = proxy.client.request(incoming.method.clone(), url);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request.body(body)
}

/// The client's answer: the upstream's status and headers (the connection leaves out those
/// of one hop), and `body`.
fn answer(status: u16, headers: HeaderMap, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    *response.headers_mut() = headers;
    response
}

/// Any other path: sent to a default upstream as it came, answered as it comes.
async fn pass_through(proxy: Arc<Proxy>, mut incoming: Incoming) -> Response {
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
    let body = Bytes::from(std::mem::take(&mut incoming.body));
    let headers = incoming
        .headers()
        .filter(|(name, _)| !stays_with_the_hop(name));
    let request = reqwest_request(&proxy, base, &incoming, headers, body);
    let response = match request.send().await {
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
    let headers = response.headers().clone();
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
