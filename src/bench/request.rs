//! One benchmark request: sends it, reads the answer (streamed as server-sent events or
//! whole), and times what the client sees: first byte, first chunk, first chunk with content
//! (text, reasoning or a tool call — not the role-only chunk some engines send first), every
//! content chunk, and the end; tokens from `usage`.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use serde::Deserialize;

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
    /// Why it failed, if it did.
    pub error: Option<ErrorClass>,
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

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    choices: Vec<Choice<'a>>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
}

impl Choice<'_> {
    fn has_content(&self) -> bool {
        let some = |s: &Option<Cow<'_, str>>| s.as_deref().is_some_and(|t| !t.is_empty());
        some(&self.text)
            || self.delta.as_ref().is_some_and(|d| {
                some(&d.content) || some(&d.reasoning_content) || d.tool_calls.is_some()
            })
    }
}

/// Sends `body` to `url` and times the answer. Never fails: problems land in `error`.
pub async fn run(
    client: &reqwest::Client,
    url: &reqwest::Url,
    body: String,
    api_key: Option<&str>,
    stream: bool,
    timeout: Duration,
) -> Timing {
    let mut timing = Timing::default();
    let deadline = Instant::now() + timeout;
    let work = exchange(client, url, body, api_key, stream, &mut timing);
    if tokio::time::timeout_at(deadline.into(), work)
        .await
        .is_err()
    {
        timing.error = Some(ErrorClass::Timeout);
    }
    timing.end.get_or_insert_with(Instant::now);
    timing
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
            t.error = Some(if e.is_timeout() {
                ErrorClass::Timeout
            } else {
                ErrorClass::Connect
            });
            return;
        }
    };
    t.first_byte = Some(Instant::now());
    let status = response.status().as_u16();
    if status != 200 {
        t.error = Some(match status {
            429 => ErrorClass::RateLimited,
            400..=499 => ErrorClass::Http4xx,
            _ => ErrorClass::Http5xx,
        });
        return;
    }
    if stream {
        read_stream(&mut response, t).await;
    } else {
        read_whole(response, t).await;
    }
}

async fn read_whole(response: reqwest::Response, t: &mut Timing) {
    let Ok(bytes) = response.bytes().await else {
        t.error = Some(ErrorClass::Incomplete);
        return;
    };
    let now = Instant::now();
    t.end = Some(now);
    match serde_json::from_slice::<Chunk<'_>>(&bytes) {
        Ok(reply) if reply.error.is_none() => {
            t.first_chunk = Some(now);
            t.content.push(now);
            if let Some(usage) = reply.usage {
                t.input_tokens = usage.prompt_tokens;
                t.output_tokens = usage.completion_tokens;
            }
        }
        _ => t.error = Some(ErrorClass::Invalid),
    }
}

async fn read_stream(response: &mut reqwest::Response, t: &mut Timing) {
    let mut buffer: Vec<u8> = Vec::new();
    let mut finished = false;
    let mut done = false;
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(_) => {
                t.error = Some(ErrorClass::Incomplete);
                return;
            }
        };
        let now = Instant::now();
        buffer.extend_from_slice(&chunk);
        while let Some(end) = event_end(&buffer) {
            let event: Vec<u8> = buffer.drain(..end.1).collect();
            for data in data_lines(&event[..end.0]) {
                t.first_chunk.get_or_insert(now);
                if data == b"[DONE]" {
                    done = true;
                    continue;
                }
                let Ok(parsed) = serde_json::from_slice::<Chunk<'_>>(data) else {
                    t.error = Some(ErrorClass::Invalid);
                    return;
                };
                if parsed.error.is_some() {
                    t.error = Some(ErrorClass::MidStream);
                    return;
                }
                if parsed.choices.iter().any(Choice::has_content) {
                    t.content.push(now);
                }
                finished |= parsed.choices.iter().any(|c| c.finish_reason.is_some());
                if let Some(usage) = parsed.usage {
                    t.input_tokens = usage.prompt_tokens.or(t.input_tokens);
                    t.output_tokens = usage.completion_tokens.or(t.output_tokens);
                }
            }
        }
    }
    t.end = Some(Instant::now());
    if !(done || finished) {
        t.error = Some(ErrorClass::Incomplete);
    }
}

/// The end of the first complete event in `buf`: (content length, length with separator).
fn event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = memchr::memmem::find(buf, b"\n\n").map(|i| (i, i + 2));
    let crlf = memchr::memmem::find(buf, b"\r\n\r\n").map(|i| (i, i + 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// The payloads of an event's `data:` lines.
fn data_lines(event: &[u8]) -> impl Iterator<Item = &[u8]> {
    event.split(|b| *b == b'\n').filter_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let data = line.strip_prefix(b"data:")?;
        Some(data.strip_prefix(b" ").unwrap_or(data))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_on_blank_lines_of_either_kind() {
        assert_eq!(event_end(b"data: a\n\ndata: b\n\n"), Some((7, 9)));
        assert_eq!(event_end(b"data: a\r\n\r\n"), Some((7, 11)));
        assert_eq!(event_end(b"data: a\n"), None);
        let lines: Vec<&[u8]> = data_lines(b"event: x\r\ndata: {\"a\":1}\r\ndata:[DONE]").collect();
        assert_eq!(lines, [&b"{\"a\":1}"[..], &b"[DONE]"[..]]);
    }

    #[test]
    fn the_role_only_chunk_is_not_content() {
        let parse = |s: &'static str| serde_json::from_str::<Chunk<'_>>(s).unwrap();
        let role = parse(r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#);
        assert!(!role.choices.iter().any(Choice::has_content));
        let null = parse(r#"{"choices":[{"delta":{"role":"assistant","content":null}}]}"#);
        assert!(!null.choices.iter().any(Choice::has_content));
        let text = parse(r#"{"choices":[{"delta":{"content":" the"}}]}"#);
        assert!(text.choices.iter().any(Choice::has_content));
        let think = parse(r#"{"choices":[{"delta":{"reasoning_content":"hm"}}]}"#);
        assert!(think.choices.iter().any(Choice::has_content));
        let tool = parse(r#"{"choices":[{"delta":{"tool_calls":[{"id":"x"}]}}]}"#);
        assert!(tool.choices.iter().any(Choice::has_content));
        let completion = parse(r#"{"choices":[{"text":"Once","finish_reason":null}]}"#);
        assert!(completion.choices.iter().any(Choice::has_content));
    }
}
