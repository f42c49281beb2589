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

use crate::otlp::trace::{SpanHead, TraceContext, TraceParent, Tracer};

use super::Outcome;

/// A started span.
pub struct SpanStart {
    /// Shared, not cloned per request: a clone is an atomic count per channel and family.
    tracer: Arc<Tracer>,
    ctx: TraceContext,
    /// The request's arrival.
    received: Instant,
    operation: &'static str,
    /// The model asked for, as sent (spans are not metrics: no cardinality cap).
    model: Box<str>,
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
            model: Box::from(model),
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
        let mut events = [("", 0); 2];
        let mut n = 0;
        for (name, t) in [
            ("gen_ai.first_chunk", facts.first_chunk),
            ("llmwatch.first_content_token", facts.first_content),
        ] {
            if let Some(t) = t {
                events[n] = (name, at(t));
                n += 1;
            }
        }
        let end = at(now);
        let head = SpanHead {
            ctx: self.ctx,
            operation: self.operation,
            model: &self.model,
            kind: 3,
            start_unix_ns: at(self.received),
            end_unix_ns: end,
            events: &events[..n],
            error,
        };
        let provider = self.tracer.provider.as_deref();
        self.tracer.finish(&head, |a| {
            a.string("gen_ai.operation.name", self.operation);
            a.string("gen_ai.request.model", &self.model);
            a.bool("gen_ai.request.stream", facts.streamed);
            a.string("server.address", &self.server.0);
            a.string("llmwatch.outcome", outcome.as_str());
            if let Some(provider) = provider {
                a.string("gen_ai.provider.name", provider);
            }
            if let Some(port) = self.server.1 {
                a.int("server.port", i64::from(port));
            }
            for (key, n) in [
                ("gen_ai.usage.input_tokens", facts.input_tokens),
                ("gen_ai.usage.output_tokens", facts.output_tokens),
            ] {
                if let Some(n) = n {
                    a.int(key, i64::try_from(n).unwrap_or(i64::MAX));
                }
            }
            if let Some(model) = &facts.response_model {
                a.string("gen_ai.response.model", model);
            }
            if let Some(reason) = &facts.finish_reason {
                a.strings("gen_ai.response.finish_reasons", &[reason.as_str()]);
            }
            if let Some(first) = facts.first_chunk {
                let secs = first.saturating_duration_since(self.received).as_secs_f64();
                a.double("gen_ai.response.time_to_first_chunk", secs);
            }
            if let Some(error) = error {
                a.string("error.type", error);
            }
        });
        Some((self.ctx.trace_id, end as f64 / 1e9))
    }
}
