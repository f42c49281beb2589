//! One benchmark request: sends it, reads the answer (streamed as server-sent events or
//! whole), and times what the client sees: first byte, first chunk, first chunk with content
//! (text, reasoning or a tool call — not the role-only chunk some engines send first), every
//! content chunk, and the end; tokens from `usage`.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use std::sync::Arc;

use crate::http1::{Failure, Pool};
use crate::sse::{Choice, Chunk, event_end};

/// What went wrong with a request, by class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Connection refused, reset before an answer, DNS.
    Connect,
    /// The request timeout passed.
    Timeout,
    /// HTTP 429.
    RateLimited,
    /// Another 4xx.
    Http4xx,
    /// A 5xx.
    Http5xx,
    /// An error event inside a stream after HTTP 200.
    MidStream,
    /// The stream or body ended early (no `[DONE]`, no finish reason, cut connection).
    Incomplete,
    /// A body that is not the expected JSON.
    Invalid,
}

impl ErrorClass {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Connect => "connect",
            ErrorClass::Timeout => "timeout",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::Http4xx => "http_4xx",
            ErrorClass::Http5xx => "http_5xx",
            ErrorClass::MidStream => "mid_stream",
            ErrorClass::Incomplete => "incomplete",
            ErrorClass::Invalid => "invalid",
        }
    }
}

/// The client's view of one request.
#[derive(Debug, Clone, Default)]
pub struct Timing {
    /// When the request was sent.
    pub sent: Option<Instant>,
    /// Response headers.
    pub first_byte: Option<Instant>,
    /// First SSE event.
    pub first_chunk: Option<Instant>,
    /// Arrival of each chunk carrying content.
    pub content: Vec<Instant>,
    /// End of the answer.
    pub end: Option<Instant>,
    /// `usage.prompt_tokens`.
    pub input_tokens: Option<u64>,
    /// `usage.completion_tokens`.
    pub output_tokens: Option<u64>,
    /// The model the answer named (its first chunk that names one).
    pub response_model: Option<String>,
    /// Why it failed, if it did.
    pub error: Option<ErrorClass>,
    /// What the server or the connection said about the failure: the status and the error
    /// message of the body or error event, trimmed (never the prompt or the answer).
    pub error_detail: Option<String>,
}

impl Timing {
    fn fail(&mut self, class: ErrorClass, detail: impl Into<String>) {
        self.error = Some(class);
        self.error_detail = Some(detail.into());
    }
}

/// Bytes of a failed answer's body read for its error message.
const ERROR_BODY_LIMIT: usize = 4096;
/// Characters of an error message kept.
const ERROR_MESSAGE_LIMIT: usize = 200;

/// The message of an error body or event: OpenAI's `error.message` (or `error` as a string,
/// `message`, `detail`), else the text itself; whitespace folded and cut to a readable length.
pub fn error_message(body: &[u8]) -> String {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let from_json = json.as_ref().and_then(|v| {
        let e = &v["error"];
        e["message"]
            .as_str()
            .or_else(|| e.as_str())
            .or_else(|| v["message"].as_str())
            .or_else(|| v["detail"].as_str())
            .map(str::to_string)
    });
    let text = from_json.unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let folded = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match folded.char_indices().nth(ERROR_MESSAGE_LIMIT) {
        Some((cut, _)) => format!("{}…", &folded[..cut]),
        None if folded.is_empty() => "(empty body)".to_string(),
        None => folded,
    }
}

fn status_detail(status: u16, body: &[u8]) -> String {
    format!("HTTP {status}: {}", error_message(body))
}

impl Timing {
    /// Tokens per content chunk: usage over chunks when both are known (and usage is not
    /// fewer), else one.
    pub fn tokens_per_chunk(&self) -> f64 {
        match self.output_tokens {
            Some(n) if !self.content.is_empty() && n as usize >= self.content.len() => {
                n as f64 / self.content.len() as f64
            }
            _ => 1.0,
        }
    }
}

#[derive(Clone)]
pub enum Client {
    /// Plain HTTP/1.1 over pooled TCP connections, and the start of every request (its line,
    /// `Host` and `Content-Type`).
    Lean(Arc<Pool>, Arc<[u8]>),
    /// reqwest.
    Full(reqwest::Client),
}

impl Client {
    /// The client for `url`: lean for `http://`, reqwest otherwise.
    pub fn for_url(url: &reqwest::Url) -> Result<Client, String> {
        if url.scheme() == "http" {
            let pool = Pool::new(url)?;
            let path = match url.query() {
                Some(query) => format!("{}?{query}", url.path()),
                None => url.path().to_string(),
            };
            let mut head = pool.request_head("POST", &path, 256);
            head.extend_from_slice(b"Content-Type: application/json\r\n");
            return Ok(Client::Lean(Arc::new(pool), head.into()));
        }
        reqwest::Client::builder()
            .pool_max_idle_per_host(usize::MAX)
            .tcp_nodelay(true)
            .build()
            .map(Client::Full)
            .map_err(|e| e.to_string())
    }
}

/// Sends `body` to `url` and times the answer. Never fails: problems land in `error`.
pub async fn run(
    client: &Client,
    url: &reqwest::Url,
    body: String,
    api_key: Option<&str>,
    stream: bool,
    timeout: Duration,
) -> Timing {
    let mut timing = Timing::default();
    let deadline = Instant::now() + timeout;
    let timed_out = match client {
        Client::Lean(pool, head) => {
            let work = lean_exchange(pool, head, body.as_bytes(), api_key, stream, &mut timing);
            tokio::time::timeout_at(deadline.into(), work)
                .await
                .is_err()
        }
        Client::Full(client) => {
            let work = exchange(client, url, body, api_key, stream, &mut timing);
            tokio::time::timeout_at(deadline.into(), work)
                .await
                .is_err()
        }
    };
    if timed_out {
        timing.fail(
            ErrorClass::Timeout,
            format!("no complete answer within {timeout:?}"),
        );
    }
    timing.end.get_or_insert_with(Instant::now);
    timing
}

/// One request on the lean client.
async fn lean_exchange(
    pool: &Arc<Pool>,
    head: &[u8],
    body: &[u8],
    key: Option<&str>,
    stream: bool,
    t: &mut Timing,
) {
    let mut request = Vec::with_capacity(head.len() + 96 + body.len());
    request.extend_from_slice(head);
    if let Some(key) = key {
        request.extend_from_slice(format!("Authorization: Bearer {key}\r\n").as_bytes());
    }
    request.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    request.extend_from_slice(body);
    t.sent = Some(Instant::now());
    let failed = |t: &mut Timing, f: Failure| match f {
        Failure::Connect => t.fail(
            ErrorClass::Connect,
            "cannot connect, or the connection closed before an answer",
        ),
        Failure::Refused => t.fail(ErrorClass::Connect, "connection refused"),
        Failure::Incomplete => t.fail(ErrorClass::Incomplete, "the connection was cut mid-answer"),
        Failure::Invalid => t.fail(ErrorClass::Invalid, "not an HTTP/1.1 answer"),
    };
    let mut response = match pool.send(&request).await {
        Ok(response) => response,
        Err(f) => return failed(t, f),
    };
    t.first_byte = Some(response.first_byte);
    if response.status != 200 {
        let mut body = Vec::new();
        while body.len() < ERROR_BODY_LIMIT {
            match response.chunk().await {
                Ok(Some(data)) => body.extend_from_slice(&data),
                Ok(None) | Err(_) => break,
            }
        }
        let status = response.status;
        return t.fail(status_error(status), status_detail(status, &body));
    }
    let mut reader = BodyReader::new(stream);
    loop {
        match response.chunk().await {
            Ok(Some(data)) => {
                if reader.feed(&data, Instant::now(), t).is_break() {
                    return;
                }
            }
            Ok(None) => break,
            Err(f) => return failed(t, f),
        }
    }
    reader.end(Instant::now(), t);
}

/// The class of a non-200 status.
pub fn status_error(status: u16) -> ErrorClass {
    match status {
        429 => ErrorClass::RateLimited,
        400..=499 => ErrorClass::Http4xx,
        _ => ErrorClass::Http5xx,
    }
}

async fn exchange(
    client: &reqwest::Client,
    url: &reqwest::Url,
    body: String,
    api_key: Option<&str>,
    stream: bool,
    t: &mut Timing,
) {
    let mut request = client
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    if let Some(key) = api_key {
        request = request.bearer_auth(key);
    }
    t.sent = Some(Instant::now());
    let mut response = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            let class = if e.is_timeout() {
                ErrorClass::Timeout
            } else {
                ErrorClass::Connect
            };
            return t.fail(class, crate::collect::fetch::flatten_error(&e));
        }
    };
    t.first_byte = Some(Instant::now());
    let status = response.status().as_u16();
    if status != 200 {
        let mut body = Vec::new();
        while body.len() < ERROR_BODY_LIMIT {
            match response.chunk().await {
                Ok(Some(data)) => body.extend_from_slice(&data),
                Ok(None) | Err(_) => break,
            }
        }
        return t.fail(status_error(status), status_detail(status, &body));
    }
    let mut reader = BodyReader::new(stream);
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if reader.feed(&chunk, Instant::now(), t).is_break() {
                    return;
                }
            }
            Ok(None) => break,
            Err(e) => {
                return t.fail(
                    ErrorClass::Incomplete,
                    format!(
                        "the answer was cut: {}",
                        crate::collect::fetch::flatten_error(&e)
                    ),
                );
            }
        }
    }
    reader.end(Instant::now(), t);
}

/// Reads an answer's body as it arrives: server-sent events when streaming (each event
/// timed at the arrival of the bytes that completed it), one JSON document otherwise.
pub struct BodyReader {
    stream: bool,
    buffer: Vec<u8>,
    finished: bool,
    done: bool,
}

impl BodyReader {
    /// A reader for a streamed or a whole answer.
    pub fn new(stream: bool) -> BodyReader {
        BodyReader {
            stream,
            buffer: Vec::new(),
            finished: false,
            done: false,
        }
    }

    /// Takes the next bytes of the body, received at `now`. `Break` once the answer is known
    /// to have failed (the class is in `t.error`).
    pub fn feed(&mut self, bytes: &[u8], now: Instant, t: &mut Timing) -> ControlFlow<()> {
        self.buffer.extend_from_slice(bytes);
        if !self.stream {
            return ControlFlow::Continue(());
        }
        let mut consumed = 0;
        while let Some(end) = event_end(&self.buffer[consumed..]) {
            let event = &self.buffer[consumed..consumed + end.len];
            consumed += end.with_separator;
            for data in end.data(event) {
                t.first_chunk.get_or_insert(now);
                if data == b"[DONE]" {
                    self.done = true;
                    continue;
                }
                let parsed = match serde_json::from_slice::<Chunk<'_>>(data) {
                    Ok(parsed) => parsed,
                    Err(e) => {
                        // The error's position only: the event may hold generated text.
                        t.fail(ErrorClass::Invalid, format!("an event is not a chunk: {e}"));
                        return ControlFlow::Break(());
                    }
                };
                if parsed.error.is_some() {
                    t.fail(
                        ErrorClass::MidStream,
                        format!("error event after HTTP 200: {}", error_message(data)),
                    );
                    return ControlFlow::Break(());
                }
                if parsed.choices.iter().any(Choice::has_content) {
                    t.content.push(now);
                }
                if t.response_model.is_none() {
                    t.response_model = parsed.model.map(Into::into);
                }
                self.finished |= parsed.choices.iter().any(|c| c.finish_reason.is_some());
                if let Some(usage) = parsed.usage {
                    t.input_tokens = usage.prompt_tokens.or(t.input_tokens);
                    t.output_tokens = usage.completion_tokens.or(t.output_tokens);
                }
            }
        }
        self.buffer.drain(..consumed);
        ControlFlow::Continue(())
    }

    /// The body ended at `now`: a stream must have said it was done, a whole answer must
    /// parse.
    pub fn end(self, now: Instant, t: &mut Timing) {
        t.end = Some(now);
        if self.stream {
            if !(self.done || self.finished) {
                t.fail(
                    ErrorClass::Incomplete,
                    "the stream ended without [DONE] or a finish reason",
                );
            }
            return;
        }
        match serde_json::from_slice::<Chunk<'_>>(&self.buffer) {
            Ok(reply) if reply.error.is_none() => {
                t.first_chunk = Some(now);
                t.content.push(now);
                t.response_model = reply.model.map(Into::into);
                if let Some(usage) = reply.usage {
                    t.input_tokens = usage.prompt_tokens;
                    t.output_tokens = usage.completion_tokens;
                }
            }
            Ok(_) => t.fail(
                ErrorClass::Invalid,
                format!(
                    "error object in an HTTP 200 answer: {}",
                    error_message(&self.buffer)
                ),
            ),
            Err(e) => t.fail(ErrorClass::Invalid, format!("the answer is not JSON: {e}")),
        }
    }
}
