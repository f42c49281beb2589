//! The span of one proxied request, when the proxy exports traces: started with the trace
//! context the request came with (or a new one), its `traceparent` forwarded upstream with
//! this span as the parent so the engine's own spans are its children, and finished when
//! the request is recorded, with the GenAI attributes, token usage, outcome and the times of
//! the first chunk and the first content token (the same instants the histograms record).
//!
//! One span per request, of kind CLIENT: the GenAI conventions make an inference call a
//! client span, and the request the proxy makes upstream is that call as the user's
//! application sees it. A server span for the hop from the client would repeat the same
//! times less the proxy's microseconds; the client's own span, when it sends one, is the
//! parent instead. Never the prompt, the answer, a key or a user in any attribute.

use std::sync::Arc;
use std::time::Instant;

use crate::otlp::trace::{SpanRecord, TraceContext, TraceParent, Tracer, Value};

use super::Outcome;

/// A started span.
pub struct SpanStart {
    /// Shared, not cloned per request: a clone is an atomic count per channel and family.
    tracer: Arc<Tracer>,
    ctx: TraceContext,
    /// The request's arrival.
    received: Instant,
    operation: &'static str,
    /// The model asked for, as sent (spans are not metrics: no cardinality cap); shared
    /// by the span's name and its attribute.
    model: Arc<str>,
    /// The upstream's host and port.
    server: (Arc<str>, Option<u16>),
}

/// What the request's observation knows when it is recorded.
pub struct Facts {
    /// When it was recorded: the span's end (the instant its duration was taken at).
    pub ended: Instant,
    pub first_chunk: Option<Instant>,
    pub first_content: Option<Instant>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub finish_reason: Option<String>,
    /// The model the answer names.
    pub response_model: Option<String>,
    pub streamed: bool,
}

impl SpanStart {
    /// Starts the span of a request received at `received` with `traceparent` (if any), and
    /// returns it with the `traceparent` to send upstream; `server` is the upstream's host
    /// and port.
    pub fn begin(
        tracer: &Arc<Tracer>,
        traceparent: Option<&str>,
        received: Instant,
        operation: &'static str,
        model: &str,
        server: &(Arc<str>, Option<u16>),
    ) -> (SpanStart, TraceParent) {
        let ctx = TraceContext::start(traceparent, &tracer.ids, &tracer.sampler);
        let forwarded = ctx.traceparent();
        let start = SpanStart {
            tracer: Arc::clone(tracer),
            ctx,
            received,
            operation,
            model: Arc::from(model),
            server: server.clone(),
        };
        (start, forwarded)
    }

    /// Ends the span at `facts.ended` with `outcome`, and queues it if the sampler keeps it; then the
    /// trace id and the end's Unix time in seconds, for exemplars.
    pub fn end(self, facts: Facts, outcome: Outcome) -> Option<([u8; 16], f64)> {
        let now = facts.ended;
        let error = outcome.error_type();
        let failed = error.is_some();
        let took = now.saturating_duration_since(self.received);
        if !self.tracer.sampler.keeps(&self.ctx, failed, took) {
            return None;
        }
        let at = |t: Instant| self.tracer.clock.unix_nanos(t);
        let mut attributes = Vec::with_capacity(12);
        attributes.extend([
            ("gen_ai.operation.name", Value::Word(self.operation)),
            ("gen_ai.request.model", Value::Shared(self.model.clone())),
            ("gen_ai.request.stream", Value::Bool(facts.streamed)),
            ("server.address", Value::Shared(self.server.0)),
            ("llmwatch.outcome", Value::Word(outcome.as_str())),
        ]);
        if let Some(provider) = &self.tracer.provider {
            attributes.push(("gen_ai.provider.name", Value::Shared(provider.clone())));
        }
        if let Some(port) = self.server.1 {
            attributes.push(("server.port", Value::Int(i64::from(port))));
        }
        for (key, n) in [
            ("gen_ai.usage.input_tokens", facts.input_tokens),
            ("gen_ai.usage.output_tokens", facts.output_tokens),
        ] {
            if let Some(n) = n {
                attributes.push((key, Value::Int(i64::try_from(n).unwrap_or(i64::MAX))));
            }
        }
        if let Some(model) = facts.response_model {
            attributes.push(("gen_ai.response.model", Value::Str(model)));
        }
        if let Some(reason) = facts.finish_reason {
            let reasons = vec![reason];
            attributes.push(("gen_ai.response.finish_reasons", Value::Strings(reasons)));
        }
        if let Some(first) = facts.first_chunk {
            let secs = first.saturating_duration_since(self.received).as_secs_f64();
            attributes.push(("gen_ai.response.time_to_first_chunk", Value::Double(secs)));
        }
        if let Some(error) = error {
            attributes.push(("error.type", Value::Word(error)));
        }
        let mut events = Vec::with_capacity(2);
        if let Some(t) = facts.first_chunk {
            events.push(("gen_ai.first_chunk", at(t)));
        }
        if let Some(t) = facts.first_content {
            events.push(("llmwatch.first_content_token", at(t)));
        }
        let end = at(now);
        self.tracer.finish(SpanRecord {
            ctx: self.ctx,
            operation: self.operation,
            model: self.model,
            kind: 3,
            start_unix_ns: at(self.received),
            end_unix_ns: end,
            attributes,
            events,
            error,
        });
        Some((self.ctx.trace_id, end as f64 / 1e9))
    }
}
