//! Relaying an answer to the client while timing it. Server-sent events are forwarded event
//! by event as they complete (never buffered beyond one event), each observed on the way:
//! first chunk, first content, gaps between content chunks, usage, finish reason, an error
//! event after HTTP 200. The usage chunk the proxy asked for on the client's behalf is
//! removed. The request's metrics are recorded once, when the answer ends — or when the
//! client goes away and the relay is dropped, which also drops the upstream request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use bytes::{Buf, BytesMut};
use futures_util::future::poll_immediate;

use super::Outcome;
use crate::client_metrics::{Completion, Operation};
use crate::sse::event_end;
use crate::sse::scan::{ChunkFacts, ChunkShape, scan_chunk};

/// Gaps kept per request for per-token ITL (a longer answer keeps its first ones).
const MAX_GAPS: usize = 65_536;
/// Gaps room made at a request's first gap.
const GAPS_ROOM: usize = 64;
/// Events gathered into one write to the client, at most (bytes).
const COALESCE: usize = 64 * 1024;
/// Room made in the read buffer when less than [`READ_ROOM`] is left.
const READ_RESERVE: usize = 8192;
/// Room below which the read buffer is grown (or reclaimed) before a read.
const READ_ROOM: usize = 1024;
/// Bytes of a whole (non-streamed) answer kept to read its usage.
const MAX_WHOLE: usize = 4 << 20;

/// One request's observations, recorded once.
pub struct Observation {
    metrics: Arc<super::metrics::ProxyMetrics>,
    /// The operation's labels; what came of it is filled in when it is recorded.
    labels: Completion,
    received: Instant,
    status_class: &'static str,
    status_outcome: Option<Outcome>,
    first_chunk: Option<Instant>,
    first_content: Option<Instant>,
    last_content: Option<Instant>,
    gaps: Vec<f64>,
    content_chunks: u64,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    finish_reason: Option<String>,
    done_marker: bool,
    error_event: bool,
    response_bytes: u64,
    recorded: bool,
    /// The request's span, when traces are exported.
    span: Option<Box<super::span::SpanStart>>,
    /// The stream's last chunk read in full, to read the next ones by.
    shape: ChunkShape,
    /// The model the answer names.
    response_model: Option<String>,
    streamed: bool,
}

impl Observation {
    /// Starts observing a request received at `received`.
    pub fn new(
        metrics: Arc<super::metrics::ProxyMetrics>,
        operation: Operation,
        received: Instant,
    ) -> Observation {
        metrics.client.in_flight.inc();
        Observation {
            metrics,
            labels: Completion::new(operation, None, None),
            received,
            status_class: "none",
            status_outcome: None,
            first_chunk: None,
            first_content: None,
            last_content: None,
            gaps: Vec::new(),
            content_chunks: 0,
            input_tokens: None,
            output_tokens: None,
            finish_reason: None,
            done_marker: false,
            error_event: false,
            response_bytes: 0,
            recorded: false,
            span: None,
            shape: ChunkShape::default(),
            response_model: None,
            streamed: false,
        }
    }

    /// Ends `span` when the request is recorded.
    pub fn trace(&mut self, span: super::span::SpanStart) {
        self.span = Some(Box::new(span));
    }

    /// Whether the answer is streamed (for the span).
    pub fn streamed(&mut self, streamed: bool) {
        self.streamed = streamed;
    }

    /// The status the client got.
    pub fn status(&mut self, status: u16) {
        self.status_class = match status {
            200..=299 => "2xx",
            400..=499 => "4xx",
            500..=599 => "5xx",
            _ => "none",
        };
        self.status_outcome = match status {
            429 => Some(Outcome::RateLimited),
            400..=499 => Some(Outcome::ClientError),
            500..=599 => Some(Outcome::UpstreamError),
            _ => None,
        };
    }

    /// Records the request with `outcome`; later calls do nothing.
    pub fn record(&mut self, outcome: Outcome) {
        if std::mem::replace(&mut self.recorded, true) {
            return;
        }
        let m = &self.metrics.client;
        m.in_flight.dec();
        let since = |t: Instant| t.saturating_duration_since(self.received).as_secs_f64();
        let ended = Instant::now();
        let duration = ended.saturating_duration_since(self.received).as_secs_f64();
        self.labels.gen_ai_response_model =
            (self.response_model.as_deref()).map(|name| m.models.label(name));
        self.labels.error_type = outcome.error_type();
        let ending = (outcome.as_str(), self.status_class);
        let series = self.metrics.series.of(&self.labels, ending);
        let (pm, completion) = (&*self.metrics, &self.labels);
        let model = &completion.operation.gen_ai_request_model;
        series.duration(pm, completion).observe(duration);
        if let Some(first) = self.first_chunk {
            series.first_chunk(pm, completion).observe(since(first));
        }
        if let Some(first) = self.first_content {
            series.first_content(pm, completion).observe(since(first));
            pm.add_ttft(model, since(first));
        }
        let chunks = self.content_chunks.max(1) as f64;
        let per_chunk = match self.output_tokens {
            Some(n) if n >= self.content_chunks && self.content_chunks > 0 => n as f64 / chunks,
            _ => 1.0,
        };
        if !self.gaps.is_empty() {
            let gaps = self.gaps.iter().copied();
            series.per_chunk(pm, completion).observe_all(gaps.clone());
            series
                .per_token(pm, completion)
                .observe_all(gaps.map(|gap| gap / per_chunk));
        }
        let (output, source) = match self.output_tokens {
            Some(n) => (Some(n), Some(0)),
            None if self.content_chunks > 0 => (Some(self.content_chunks), Some(1)),
            None => (None, None),
        };
        for (kind, n) in [self.input_tokens, output].into_iter().enumerate() {
            // Only a count makes the series: a request without one adds no token series.
            if let Some(n) = n
                && let Some(tokens) = series.tokens(pm, completion, kind)
            {
                tokens.observe(n as f64);
            }
        }
        if let Some(counter) = source.and_then(|s| series.token_source(pm, completion, s)) {
            counter.inc();
        }
        series
            .response_bytes(pm, completion)
            .inc_by(self.response_bytes);
        series.outcome(pm, completion, ending).inc();
        self.metrics.add_outcome(model, outcome.as_str());
        if let Some(span) = self.span.take() {
            let facts = super::span::Facts {
                ended,
                first_chunk: self.first_chunk,
                first_content: self.first_content,
                input_tokens: self.input_tokens,
                output_tokens: output,
                finish_reason: self.finish_reason.take(),
                response_model: self.response_model.take(),
                streamed: self.streamed,
            };
            if let Some((trace, at)) = span.end(facts, outcome) {
                self.note_exemplars(&trace, at, duration);
            }
        }
    }

    /// Marks this request's latencies (`duration` as the histogram recorded it) as the
    /// latest exemplars of their buckets, each in its series (the `llm_proxy_` histogram's
    /// series carry the operation's labels only).
    fn note_exemplars(&self, trace: &[u8; 16], at: f64, duration: f64) {
        let since = |t: Instant| t.saturating_duration_since(self.received).as_secs_f64();
        let latencies = [
            Some(duration),
            self.first_chunk.map(since),
            self.first_content.map(since),
        ];
        let series = self.labels.label_values();
        self.metrics.exemplars.note(series, latencies, trace, at);
    }

    /// Looks at one SSE event's data; false when it is the usage chunk to remove.
    fn event(&mut self, data: &[u8], at: Instant, strip_usage: bool) -> bool {
        self.first_chunk.get_or_insert(at);
        if data == b"[DONE]" {
            self.done_marker = true;
            return true;
        }
        // The answer's model is kept from its first chunk that names one.
        let templates = Some(&self.metrics.templates);
        let Some(chunk) = self
            .shape
            .scan_for(data, self.response_model.is_none(), templates)
        else {
            return true;
        };
        if chunk.content {
            self.content_chunks += 1;
            if let Some(last) = self.last_content
                && self.gaps.len() < MAX_GAPS
            {
                if self.gaps.capacity() == 0 {
                    // Room for a usual answer's gaps at once, not grown in four steps.
                    self.gaps.reserve(GAPS_ROOM);
                }
                self.gaps
                    .push(at.saturating_duration_since(last).as_secs_f64());
            }
            self.first_content.get_or_insert(at);
            self.last_content = Some(at);
        }
        self.note_ending(&chunk);
        let usage_only = chunk.choices == 0 && chunk.usage;
        !(strip_usage && usage_only)
    }

    /// Notes what a chunk, or a whole answer, says of how the answer ends: an error object,
    /// a finish reason, token usage.
    fn note_ending(&mut self, chunk: &ChunkFacts<'_>) {
        if chunk.error {
            self.error_event = true;
        }
        if self.response_model.is_none()
            && let Some(model) = &chunk.model
        {
            self.response_model = Some(model.to_string());
        }
        if let Some(reason) = &chunk.finish_reason {
            self.finish_reason = Some(reason.to_string());
        }
        if chunk.usage {
            self.input_tokens = chunk.prompt_tokens.or(self.input_tokens);
            self.output_tokens = chunk.completion_tokens.or(self.output_tokens);
        }
    }

    /// Whether a stream has said that its answer is over: the `[DONE]` marker, or a finish
    /// reason (the content is whole; only the usage chunk and the marker may follow).
    fn stream_said_done(&self) -> bool {
        self.done_marker || self.finish_reason.is_some()
    }

    /// How a stream or body that ended by itself went.
    fn ending(&self, streamed: bool) -> Outcome {
        if let Some(outcome) = self.status_outcome {
            outcome
        } else if self.error_event || (streamed && !self.stream_said_done()) {
            // An error event after HTTP 200, or a stream cut before it said it was done.
            Outcome::StreamError
        } else if self.finish_reason.as_deref() == Some("length") {
            Outcome::Length
        } else {
            Outcome::Completed
        }
    }
}

impl Drop for Observation {
    fn drop(&mut self) {
        // Dropped before the upstream's body ended: the client went away. A stream that had
        // already said it was done (`[DONE]` or a finish reason) reached its end, and what
        // the client does after that — clients often close on `[DONE]`, before the chunked
        // body's last bytes — does not make it a disconnect. The outcome then comes from
        // what the stream said, as if the body had ended.
        let outcome = if self.stream_said_done() {
            self.ending(true)
        } else {
            Outcome::ClientDisconnect
        };
        self.record(outcome);
    }
}

/// Limits on waiting for the upstream while relaying.
#[derive(Debug, Clone, Copy)]
pub struct Waits {
    /// Longest gap between chunks.
    pub idle: Duration,
    /// When the whole request must be done.
    pub deadline: Instant,
}

/// An upstream answer's body: read in the relaying task itself on the lean client (plain
/// HTTP), through reqwest's connection task otherwise (TLS, HTTP/2).
pub enum Source {
    /// The lean HTTP/1.1 client.
    Lean(crate::http1::Response),
    /// reqwest.
    Full(reqwest::Response),
}

impl Source {
    /// Appends the next piece of the body to `into`; `false` at its end.
    async fn read_into(&mut self, into: &mut BytesMut) -> Result<bool, ()> {
        match self {
            Source::Lean(response) => response.read_into(into).await.map_err(|_| ()),
            Source::Full(response) => match response.chunk().await {
                Ok(Some(chunk)) => {
                    into.extend_from_slice(&chunk);
                    Ok(true)
                }
                Ok(None) => Ok(false),
                Err(_) => Err(()),
            },
        }
    }
}

/// Relays an upstream answer to the client.
pub struct Relay {
    upstream: Source,
    observation: Observation,
    streamed: bool,
    strip_usage: bool,
    waits: Waits,
    /// Upstream bytes not yet handed on: a partial event at most, between reads. What is
    /// handed on is split off this buffer, so in the usual case (every event kept) nothing
    /// is copied, and its memory is reused once the client's write let go of it.
    raw: BytesMut,
    /// A whole (non-streamed) answer, kept up to [`MAX_WHOLE`] to read its usage.
    whole: Vec<u8>,
    ended: bool,
    /// The upstream body ended (or failed) while events were being gathered.
    upstream_ended: Option<Result<(), ()>>,
    /// When the upstream last sent something.
    heard: Instant,
    /// One timer for the whole answer. It is not moved per chunk (each move takes the timer
    /// driver's lock): when it fires, it is re-armed for the idle limit counted from the
    /// last bytes heard, and only a real silence or the deadline ends the answer.
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    /// The timer has been polled with the task's waker since it was last set, so a silence
    /// wakes the task.
    timer_set: bool,
    /// The last piece ended where the upstream had nothing more: it was polled with the
    /// task's own waker, so the task is woken when it has, and polling it again before then
    /// finds nothing (see [`Relay::waiting`]).
    waiting: bool,
}

impl Relay {
    /// A relay for `upstream`, whose body is server-sent events when `streamed`.
    pub fn new(
        upstream: Source,
        observation: Observation,
        streamed: bool,
        strip_usage: bool,
        waits: Waits,
    ) -> Relay {
        Relay {
            upstream,
            observation,
            streamed,
            strip_usage,
            waits,
            raw: BytesMut::new(),
            whole: Vec::new(),
            ended: false,
            upstream_ended: None,
            heard: Instant::now(),
            timer: Box::pin(tokio::time::sleep_until(
                (Instant::now() + waits.idle).min(waits.deadline).into(),
            )),
            timer_set: false,
            waiting: false,
        }
    }

    /// Whether the upstream had nothing more when the last piece was taken, its wake-up
    /// set: the client's connection then writes that piece and waits, without asking for
    /// another first. Each such ask polled the upstream's socket and the relay's timer
    /// once more for each piece relayed, and found nothing.
    pub fn waiting(&self) -> bool {
        self.waiting
    }

    /// The next bytes for the client; `None` at the end.
    pub async fn next(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        loop {
            // Only a piece taken where the upstream had nothing more leaves it waiting.
            self.waiting = false;
            if self.ended {
                return None;
            }
            match self.upstream_ended.take() {
                Some(Ok(())) => return self.end(),
                Some(Err(())) => {
                    return self.fail(Outcome::StreamError, "upstream connection failed");
                }
                None => {}
            }
            // Read into the tail left after the last split while there is room: reserving
            // before every read would allocate each time, as the client's connection still
            // holds the last piece handed on.
            if self.raw.capacity() - self.raw.len() < READ_ROOM {
                self.raw.reserve(READ_RESERVE);
            }
            let read = loop {
                tokio::select! {
                    biased;
                    read = self.upstream.read_into(&mut self.raw) => break read,
                    () = self.timer.as_mut() => {
                        let due = (self.heard + self.waits.idle).min(self.waits.deadline);
                        if Instant::now() >= due {
                            return self.fail(Outcome::Timeout, "upstream timed out");
                        }
                        self.timer.as_mut().reset(due.into());
                        self.timer_set = false;
                    }
                }
            };
            match read {
                Err(()) => return self.fail(Outcome::StreamError, "upstream connection failed"),
                Ok(false) => return self.end(),
                Ok(true) => {}
            }
            let at = Instant::now();
            self.heard = at;
            // Under load several events wait in the connection's buffer: send them in one
            // write, as a plain proxy does, rather than one write each. The upstream is
            // polled with the task's own waker, so the poll that finds nothing also sets
            // the wake-up for what comes next.
            while self.raw.len() < COALESCE {
                match poll_immediate(self.upstream.read_into(&mut self.raw)).await {
                    Some(Ok(true)) => {}
                    Some(Ok(false)) => {
                        self.upstream_ended = Some(Ok(()));
                        break;
                    }
                    Some(Err(())) => {
                        self.upstream_ended = Some(Err(()));
                        break;
                    }
                    None => {
                        // A timer never polled (the first read had bytes at once) or
                        // just re-armed would not wake the task: it is polled here once.
                        if !self.timer_set {
                            self.timer_set = poll_immediate(self.timer.as_mut()).await.is_none();
                        }
                        self.waiting = self.timer_set;
                        break;
                    }
                }
            }
            let out = self.take(at);
            if !out.is_empty() {
                self.observation.response_bytes += out.len() as u64;
                let overhead = at.elapsed().as_secs_f64();
                self.observation.metrics.chunk_overhead.observe(overhead);
                return Some(Ok(out));
            }
        }
    }

    /// What of the bytes read goes to the client now: whole events (observed, the injected
    /// usage chunk removed); a whole answer passes straight through.
    fn take(&mut self, at: Instant) -> Bytes {
        if !self.streamed {
            if self.whole.len() + self.raw.len() <= MAX_WHOLE {
                self.whole.extend_from_slice(&self.raw);
            }
            return self.raw.split().freeze();
        }
        let raw = std::mem::take(&mut self.raw);
        let (consumed, filtered) = self.events(&raw, at);
        self.raw = raw;
        match filtered {
            None => self.raw.split_to(consumed).freeze(),
            Some(kept) => {
                self.raw.advance(consumed);
                Bytes::from(kept)
            }
        }
    }

    /// Observes the whole events at the start of `bytes`; returns how many bytes they took,
    /// and, when one of them is not for the client, a copy of those that are.
    fn events(&mut self, bytes: &[u8], at: Instant) -> (usize, Option<Vec<u8>>) {
        let mut consumed = 0;
        let mut kept: Option<Vec<u8>> = None;
        while let Some(end) = event_end(&bytes[consumed..]) {
            let (len, with_separator) = (end.len, end.with_separator);
            let event = &bytes[consumed..consumed + len];
            let mut keep = true;
            for data in end.data(event) {
                keep &= self.observation.event(data, at, self.strip_usage);
            }
            match (&mut kept, keep) {
                (Some(kept), true) => {
                    kept.extend_from_slice(&bytes[consumed..consumed + with_separator]);
                }
                (None, false) => kept = Some(bytes[..consumed].to_vec()),
                _ => {}
            }
            consumed += with_separator;
        }
        (consumed, kept)
    }

    fn end(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        self.ended = true;
        let rest = if self.streamed {
            self.raw.split().freeze()
        } else {
            self.whole_answer();
            Bytes::new()
        };
        let outcome = self.observation.ending(self.streamed);
        self.observation.response_bytes += rest.len() as u64;
        self.observation.record(outcome);
        (!rest.is_empty()).then_some(Ok(rest))
    }

    /// Reads usage and finish reason from a whole answer.
    fn whole_answer(&mut self) {
        let at = Instant::now();
        if let Some(answer) = scan_chunk(&self.whole) {
            self.observation.note_ending(&answer);
        }
        self.observation.first_chunk.get_or_insert(at);
        self.whole = Vec::new();
    }

    /// Ends the relay after an upstream failure: a streamed answer gets an error event (so
    /// an SSE client sees why), a whole one is cut.
    fn fail(&mut self, outcome: Outcome, why: &str) -> Option<Result<Bytes, std::io::Error>> {
        self.ended = true;
        self.observation.record(outcome);
        if self.streamed {
            let event = serde_json::json!({"error": {"message": why, "type": outcome.as_str()}});
            return Some(Ok(Bytes::from(format!("data: {event}\n\n"))));
        }
        Some(Err(std::io::Error::other(why.to_string())))
    }
}
