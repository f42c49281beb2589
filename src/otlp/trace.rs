//! Spans over OTLP: the W3C trace context a request arrives with (continued) or a new one,
//! what to forward upstream so the engine's own spans become children, the sampling
//! decision, and a bounded queue to an exporter task that batches spans to `/v1/traces`.
//! A full queue drops the span and counts it; nothing waits on the exporter.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use super::proto::Message;
use super::push::{ExportStats, Exported, post};
use super::{Resource, unix_nanos};

/// Spans waiting for the exporter, at most; later ones are dropped and counted.
pub const QUEUE: usize = 4096;
/// Spans in one export, at most.
const BATCH: usize = 512;

/// A request's place in a trace: the trace, this span, its parent (the caller's span, when
/// the request came with a `traceparent`) and whether it is sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent: Option<[u8; 8]>,
    /// Sampled by the caller's flag (a continued trace) or by the ratio (a new one).
    pub sampled: bool,
}

/// How spans are chosen: the caller's decision when there is one, else a share of new
/// traces by trace id; errors and slow requests always kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampler {
    /// Share of new traces sampled, 0 to 1.
    pub ratio: f64,
    /// Requests at least this long are kept whatever the ratio said.
    pub keep_slower_than: Duration,
}

impl Sampler {
    /// Whether a new trace with this id is sampled: its last eight bytes below the ratio's
    /// share of the range, as OpenTelemetry's trace-id-ratio sampler decides (the same id
    /// gets the same answer everywhere).
    fn samples(&self, trace_id: &[u8; 16]) -> bool {
        let mut low = [0u8; 8];
        low.copy_from_slice(&trace_id[8..]);
        let x = u64::from_be_bytes(low) >> 1;
        (x as f64) < self.ratio * (1u64 << 63) as f64
    }

    /// Whether a finished span is kept.
    pub fn keeps(&self, ctx: &TraceContext, failed: bool, took: Duration) -> bool {
        ctx.sampled || failed || took >= self.keep_slower_than
    }
}

/// Random ids: a per-process random seed and a counter through splitmix64.
#[derive(Debug)]
pub struct Ids {
    seed: u64,
    counter: AtomicU64,
}

impl Default for Ids {
    fn default() -> Ids {
        use std::hash::{BuildHasher, Hasher};
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        Ids {
            seed,
            counter: AtomicU64::new(0),
        }
    }
}

impl Ids {
    fn next(&self) -> u64 {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut z = self
            .seed
            .wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A span id (never all zeros).
    pub fn span_id(&self) -> [u8; 8] {
        (self.next() | 1).to_be_bytes()
    }

    /// A trace id (never all zeros).
    pub fn trace_id(&self) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.next().to_be_bytes());
        id[8..].copy_from_slice(&(self.next() | 1).to_be_bytes());
        id
    }
}

impl TraceContext {
    /// The context for a request that came with `traceparent` (if any, and valid: version
    /// 00 or a later one read as 00, non-zero ids): continued, with a new span. Otherwise a
    /// new trace, sampled by `sampler`.
    pub fn start(traceparent: Option<&str>, ids: &Ids, sampler: &Sampler) -> TraceContext {
        match traceparent.and_then(parse_traceparent) {
            Some((trace_id, parent, flags)) => TraceContext {
                trace_id,
                span_id: ids.span_id(),
                parent: Some(parent),
                sampled: flags & 1 == 1,
            },
            None => {
                let trace_id = ids.trace_id();
                TraceContext {
                    trace_id,
                    span_id: ids.span_id(),
                    parent: None,
                    sampled: sampler.samples(&trace_id),
                }
            }
        }
    }

    /// The `traceparent` to send upstream: this trace, this span as the parent.
    pub fn traceparent(&self) -> String {
        let mut out = String::with_capacity(55);
        out.push_str("00-");
        out.push_str(&hex(&self.trace_id));
        out.push('-');
        out.push_str(&hex(&self.span_id));
        out.push_str(if self.sampled { "-01" } else { "-00" });
        out
    }

    /// The trace id as 32 lower-case hex digits (for exemplars and logs).
    pub fn trace_hex(&self) -> String {
        hex(&self.trace_id)
    }
}

/// Lower-case hex, written into one string (this runs per request).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N
        || !text
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// `00-<trace id>-<parent id>-<flags>` as W3C Trace Context writes it; a later version
/// may append fields, version `ff` is invalid.
fn parse_traceparent(text: &str) -> Option<([u8; 16], [u8; 8], u8)> {
    let mut parts = text.trim().split('-');
    let version = parts.next()?;
    let (trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?);
    let later_version = version != "00";
    if unhex::<1>(version).is_none()
        || version == "ff"
        || (!later_version && parts.next().is_some())
    {
        return None;
    }
    let trace_id = unhex::<16>(trace).filter(|id| id.iter().any(|b| *b != 0))?;
    let parent = unhex::<8>(parent).filter(|id| id.iter().any(|b| *b != 0))?;
    let flags = unhex::<1>(flags)?[0];
    Some((trace_id, parent, flags))
}

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A fixed word (an operation, an outcome): no allocation per span.
    Word(&'static str),
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    /// A string array (`gen_ai.response.finish_reasons`).
    Strings(Vec<String>),
}

/// Writes `attributes` as `KeyValue`s in field `field` of `message` (a span's, or a metric
/// point's).
pub fn write_attributes(message: &mut Message, field: u32, attributes: &[(&'static str, Value)]) {
    for (key, value) in attributes {
        match value {
            Value::Word(s) => message.string_kv(field, key, s),
            Value::Str(s) => message.string_kv(field, key, s),
            Value::Int(i) => message.int_kv(field, key, *i),
            Value::Double(d) => message.double_kv(field, key, *d),
            Value::Bool(b) => message.bool_kv(field, key, *b),
            Value::Strings(items) => {
                message.message(field, super::proto::strings_attribute(key, items));
            }
        }
    }
}

/// A finished span, ready to export.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRecord {
    pub ctx: TraceContext,
    /// The name is `{operation} {model}`, written when the span is encoded.
    pub operation: &'static str,
    pub model: String,
    /// `SpanKind` (3 = client).
    pub kind: u64,
    pub start_unix_ns: u64,
    pub end_unix_ns: u64,
    pub attributes: Vec<(&'static str, Value)>,
    /// Events: name and Unix nanoseconds.
    pub events: Vec<(&'static str, u64)>,
    /// The error's description when the span failed (status ERROR), else OK is left unset.
    pub error: Option<&'static str>,
}

impl SpanRecord {
    /// Writes the span into `span` (cleared first; a buffer reused across spans, so a
    /// batch is encoded without an allocation per span or per attribute).
    fn write(&self, span: &mut Message, scratch: &mut Message) {
        span.clear();
        span.bytes(1, &self.ctx.trace_id);
        span.bytes(2, &self.ctx.span_id);
        if let Some(parent) = &self.ctx.parent {
            span.bytes(4, parent);
        }
        span.fixed32(16, u32::from(self.ctx.sampled));
        let name_len = self.operation.len() + 1 + self.model.len();
        span.string_parts(5, name_len, &[self.operation, " ", &self.model]);
        span.uint(6, self.kind);
        span.fixed64(7, self.start_unix_ns);
        span.fixed64(8, self.end_unix_ns);
        write_attributes(span, 9, &self.attributes);
        for (name, at) in &self.events {
            scratch.clear();
            scratch.fixed64(1, *at);
            scratch.string(2, name);
            span.nested(11, scratch.as_bytes());
        }
        scratch.clear();
        if let Some(error) = self.error {
            scratch.string(2, error);
            scratch.uint(3, 2);
        }
        span.nested(15, scratch.as_bytes());
    }
}

/// `ExportTraceServiceRequest` for `spans`.
pub fn encode(spans: &[SpanRecord], resource: &Resource) -> Vec<u8> {
    let mut scope = Message::new();
    scope.string(1, "llmwatch");
    scope.string(2, env!("CARGO_PKG_VERSION"));
    let mut scope_spans = Message::new();
    scope_spans.message(1, scope);
    let (mut span, mut scratch) = (Message::new(), Message::new());
    for record in spans {
        record.write(&mut span, &mut scratch);
        scope_spans.nested(2, span.as_bytes());
    }
    let mut resource_spans = Message::new();
    resource_spans.message(1, resource.message());
    resource_spans.message(2, scope_spans);
    let mut request = Message::new();
    request.message(1, resource_spans);
    request.into_bytes()
}

/// Where finished spans go: a bounded queue to the exporter task.
#[derive(Debug, Clone)]
pub struct Tracer {
    pub ids: Arc<Ids>,
    pub sampler: Sampler,
    /// `gen_ai.provider.name`, when configured.
    pub provider: Option<Arc<str>>,
    queue: tokio::sync::mpsc::Sender<SpanRecord>,
    stats: ExportStats,
}

impl Tracer {
    /// Queues a finished span; a full queue drops it and counts it.
    pub fn finish(&self, span: SpanRecord) {
        if self.queue.try_send(span).is_err() {
            Exported {
                signal: "traces",
                result: "queue_full",
                items: 1,
                detail: "the span queue is full",
            }
            .emit(&self.stats);
        }
    }
}

/// Where and how spans are exported.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceConfig {
    /// The full URL spans are posted to (`…/v1/traces`, or the gRPC method).
    pub url: String,
    /// OTLP/HTTP or gRPC.
    pub protocol: super::Protocol,
    /// CA certificates trusted besides the system's roots.
    pub ca: Option<std::path::PathBuf>,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    pub sampler: Sampler,
    pub resource: Resource,
    /// `gen_ai.provider.name` on every span.
    pub provider: Option<String>,
}

/// A tracer and the exporter task to run beside it.
pub fn tracer(
    config: TraceConfig,
    stats: ExportStats,
) -> (Tracer, impl std::future::Future<Output = ()>) {
    let (queue, spans) = tokio::sync::mpsc::channel(QUEUE);
    let tracer = Tracer {
        ids: Arc::new(Ids::default()),
        sampler: config.sampler,
        provider: config.provider.as_deref().map(Arc::from),
        queue,
        stats: stats.clone(),
    };
    (tracer, run_traces(config, spans, stats))
}

/// Exports queued spans in batches: as soon as some are waiting, up to [`BATCH`] at a time,
/// one export at a time. A refused or failed batch is dropped and counted.
async fn run_traces(
    config: TraceConfig,
    mut spans: tokio::sync::mpsc::Receiver<SpanRecord>,
    stats: ExportStats,
) {
    let client = super::push::client(config.protocol, config.ca.as_deref());
    let mut batch = Vec::with_capacity(BATCH);
    let mut quiet_until: Option<std::time::Instant> = None;
    while spans.recv_many(&mut batch, BATCH).await > 0 {
        if let Some(until) = quiet_until.take() {
            tokio::time::sleep_until(until.into()).await;
        }
        let body = encode(&batch, &config.resource);
        let posted = post(
            (&client, config.protocol),
            &config.url,
            &config.headers,
            config.timeout,
            body,
        )
        .await;
        quiet_until = posted.retry_after.map(|d| std::time::Instant::now() + d);
        Exported {
            signal: "traces",
            result: posted.result,
            items: batch.len(),
            detail: &posted.detail,
        }
        .emit(&stats);
        batch.clear();
    }
}

/// The host and port of a base URL (`http://host:port/...`), read without a URL parser:
/// the proxy does this per request. The scheme's port when none is written.
pub fn host_and_port(base: &str) -> (String, Option<u16>) {
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let default = if scheme == "https" { 443 } else { 80 };
    let (host, port) = match authority.rsplit_once(':') {
        // A colon inside brackets belongs to an IPv6 address, not a port.
        Some((host, port)) if !port.contains(']') => (host, port.parse::<u16>().ok()),
        _ => (authority, None),
    };
    (
        host.trim_matches(['[', ']']).to_string(),
        Some(port.unwrap_or(default)),
    )
}

/// Unix nanoseconds of `at`, given one instant whose wall-clock time is known.
pub fn unix_at(at: std::time::Instant, base: (std::time::Instant, SystemTime)) -> u64 {
    let (base_instant, base_wall) = base;
    let wall = if at >= base_instant {
        base_wall + (at - base_instant)
    } else {
        base_wall - (base_instant - at)
    };
    unix_nanos(wall)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLER: Sampler = Sampler {
        ratio: 1.0,
        keep_slower_than: Duration::from_secs(5),
    };

    #[test]
    fn a_valid_traceparent_is_continued_with_a_new_span() {
        let ids = Ids::default();
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = TraceContext::start(Some(incoming), &ids, &SAMPLER);
        assert_eq!(ctx.trace_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            ctx.parent,
            Some([0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7])
        );
        assert!(ctx.sampled);
        let forwarded = ctx.traceparent();
        assert!(forwarded.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(
            !forwarded.contains("00f067aa0ba902b7"),
            "our span is the parent upstream"
        );
        // Not sampled by the caller: not sampled here, whatever the ratio.
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert!(!TraceContext::start(Some(unsampled), &ids, &SAMPLER).sampled);
    }

    #[test]
    fn an_invalid_traceparent_starts_a_new_trace() {
        let ids = Ids::default();
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            let ctx = TraceContext::start(Some(bad), &ids, &SAMPLER);
            assert_eq!(ctx.parent, None, "{bad:?}");
            assert_ne!(
                ctx.trace_hex(),
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "{bad:?}"
            );
        }
        // A later version may add fields.
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more";
        assert!(
            TraceContext::start(Some(later), &ids, &SAMPLER)
                .parent
                .is_some()
        );
    }

    #[test]
    fn the_ratio_samples_its_share_of_new_traces_and_errors_and_slow_ones_are_kept() {
        let ids = Ids::default();
        let sampler = Sampler {
            ratio: 0.25,
            keep_slower_than: Duration::from_secs(2),
        };
        let n = 20_000;
        let sampled = (0..n)
            .filter(|_| TraceContext::start(None, &ids, &sampler).sampled)
            .count();
        let share = sampled as f64 / n as f64;
        assert!((share - 0.25).abs() < 0.02, "{share}");
        let ctx = TraceContext::start(
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
            &ids,
            &sampler,
        );
        assert!(!sampler.keeps(&ctx, false, Duration::from_millis(10)));
        assert!(sampler.keeps(&ctx, true, Duration::from_millis(10)));
        assert!(sampler.keeps(&ctx, false, Duration::from_secs(3)));
    }

    #[test]
    fn a_full_queue_drops_spans_and_counts_them_without_waiting() {
        let stats = ExportStats::default();
        let config = TraceConfig {
            url: "http://127.0.0.1:9/v1/traces".to_string(),
            protocol: crate::otlp::Protocol::HttpProtobuf,
            ca: None,
            headers: Vec::new(),
            timeout: Duration::from_secs(1),
            sampler: SAMPLER,
            resource: Resource {
                attributes: Vec::new(),
            },
            provider: None,
        };
        // The exporter is never run: nothing drains the queue.
        let (tracer, _exporter) = tracer(config, stats.clone());
        let ctx = TraceContext::start(None, &tracer.ids, &SAMPLER);
        let span = SpanRecord {
            ctx,
            operation: "chat",
            model: "m".to_string(),
            kind: 3,
            start_unix_ns: 1,
            end_unix_ns: 2,
            attributes: Vec::new(),
            events: Vec::new(),
            error: None,
        };
        for _ in 0..QUEUE + 5 {
            tracer.finish(span.clone());
        }
        let dropped = stats
            .dropped
            .get_or_create(&super::super::push::ExportLabels {
                signal: "traces".to_string(),
                result: "queue_full".to_string(),
            })
            .get();
        assert_eq!(dropped, 5);
    }

    #[test]
    fn ids_are_distinct() {
        let ids = Ids::default();
        let mut seen = std::collections::HashSet::new();
        assert!((0..10_000).all(|_| seen.insert(ids.span_id())));
    }
}
