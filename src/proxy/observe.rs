//! Relaying an answer to the client while timing it. Server-sent events are forwarded event
//! by event as they complete (never buffered beyond one event), each observed on the way:
//! first chunk, first content, gaps between content chunks, usage, finish reason, an error
//! event after HTTP 200. The usage chunk the proxy asked for on the client's behalf is
//! removed. The request's metrics are recorded once, when the answer ends — or when the
//! client goes away and the relay is dropped, which also drops the upstream request.

use std::sync::Arc;
use std::time::Instant;

use super::Outcome;
use crate::client_metrics::{Completion, Operation};
use crate::sse::scan::{ChunkFacts, ChunkShape};

mod relay;

pub use relay::{Relay, Source, Waits};

/// Gaps kept per request for per-token ITL (a longer answer keeps its first ones).
const MAX_GAPS: usize = 65_536;
/// Gaps room made at a request's first gap.
const GAPS_ROOM: usize = 64;

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
