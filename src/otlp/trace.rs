//! Spans over OTLP: the W3C trace context a request arrives with (continued) or a new one,
//! what to forward upstream so the engine's own spans become children, the sampling
//! decision, and a bounded queue to an exporter task that batches spans to `/v1/traces`.
//! A full queue drops the span and counts it; nothing waits on the exporter.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use super::proto::Message;
use super::push::{ExportStats, Exported};
use super::{Resource, unix_nanos};

mod export;

pub use export::QUEUE;
use export::SpanQueue;

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

    /// The `traceparent` to send upstream: this trace, this span as the parent. Written
    /// into a fixed array: this runs per request.
    pub fn traceparent(&self) -> TraceParent {
        let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
        hex_into(&self.trace_id, &mut out[3..35]);
        hex_into(&self.span_id, &mut out[36..52]);
        if self.sampled {
            out[54] = b'1';
        }
        TraceParent(out)
    }

    /// The trace id as 32 lower-case hex digits (for exemplars and logs).
    pub fn trace_hex(&self) -> String {
        hex(&self.trace_id)
    }
}

/// A `traceparent` header's value: `00-{trace id}-{parent id}-{flags}`, 55 ASCII bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent([u8; 55]);

impl TraceParent {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        // Hex digits and dashes only.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Writes `bytes` as lower-case hex into `out` (twice as long).
fn hex_into(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (b, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 15)];
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    hex_into(bytes, &mut out);
    String::from_utf8(out).unwrap_or_default()
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

/// A metric point's attribute value (a span writes its attributes in place, through
/// [`Attributes`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
}

/// Writes `attributes` as `KeyValue`s in field `field` of `message` (a metric point's).
pub fn write_attributes(message: &mut Message, field: u32, attributes: &[(&'static str, Value)]) {
    for (key, value) in attributes {
        match value {
            Value::Str(s) => message.string_kv(field, key, s),
            Value::Int(i) => message.int_kv(field, key, *i),
        }
    }
}

/// A finished span apart from its attributes, which the caller writes straight into the
/// span's encoding (see [`Tracer::finish`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpanHead<'a> {
    pub ctx: TraceContext,
    /// The name is `{operation} {model}`, written when the span is encoded.
    pub operation: &'static str,
    pub model: &'a str,
    /// `SpanKind` (3 = client).
    pub kind: u64,
    pub start_unix_ns: u64,
    pub end_unix_ns: u64,
    /// Events: name and Unix nanoseconds.
    pub events: &'a [(&'static str, u64)],
    /// The error's description when the span failed (status ERROR), else OK is left unset.
    pub error: Option<&'static str>,
}

impl SpanHead<'_> {
    /// Writes the span into `span` (cleared first; a buffer reused across spans, so no
    /// allocation per span or per attribute), its attributes by `attributes`.
    fn write(
        &self,
        span: &mut Message,
        scratch: &mut Message,
        attributes: impl FnOnce(&mut Attributes<'_>),
    ) {
        span.clear();
        span.bytes(1, &self.ctx.trace_id);
        span.bytes(2, &self.ctx.span_id);
        if let Some(parent) = &self.ctx.parent {
            span.bytes(4, parent);
        }
        span.fixed32(16, u32::from(self.ctx.sampled));
        let name_len = self.operation.len() + 1 + self.model.len();
        span.string_parts(5, name_len, &[self.operation, " ", self.model]);
        span.uint(6, self.kind);
        span.fixed64(7, self.start_unix_ns);
        span.fixed64(8, self.end_unix_ns);
        attributes(&mut Attributes(span));
        for (name, at) in self.events {
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

/// A span's attributes, written in place as its `KeyValue`s (field 9 of `Span`).
pub struct Attributes<'m>(&'m mut Message);

impl Attributes<'_> {
    pub fn string(&mut self, key: &str, value: &str) {
        self.0.string_kv(SPAN_ATTRIBUTES, key, value);
    }

    pub fn int(&mut self, key: &str, value: i64) {
        self.0.int_kv(SPAN_ATTRIBUTES, key, value);
    }

    pub fn double(&mut self, key: &str, value: f64) {
        self.0.double_kv(SPAN_ATTRIBUTES, key, value);
    }

    pub fn bool(&mut self, key: &str, value: bool) {
        self.0.bool_kv(SPAN_ATTRIBUTES, key, value);
    }

    /// A string array (`gen_ai.response.finish_reasons`).
    pub fn strings(&mut self, key: &str, items: &[&str]) {
        self.0.strings_kv(SPAN_ATTRIBUTES, key, items);
    }
}

/// `Span.attributes`.
const SPAN_ATTRIBUTES: u32 = 9;

/// Where finished spans go: encoded into a bounded queue that the exporter task drains.
#[derive(Debug, Clone)]
pub struct Tracer {
    pub ids: Arc<Ids>,
    pub sampler: Sampler,
    /// Spans' Unix times, from their instants.
    pub clock: Arc<WallClock>,
    /// `gen_ai.provider.name`, when configured.
    pub provider: Option<Arc<str>>,
    queue: Arc<SpanQueue>,
    stats: ExportStats,
}

impl Tracer {
    /// Encodes a finished span, its attributes written by `attributes`, and queues it for
    /// export; a full queue drops it and counts it.
    pub fn finish(&self, head: &SpanHead<'_>, attributes: impl FnOnce(&mut Attributes<'_>)) {
        if !self.queue.push(head, attributes) {
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
    let queue = Arc::new(SpanQueue::default());
    let tracer = Tracer {
        ids: Arc::new(Ids::default()),
        clock: Arc::new(WallClock::new()),
        sampler: config.sampler,
        provider: config.provider.as_deref().map(Arc::from),
        queue: Arc::clone(&queue),
        stats: stats.clone(),
    };
    (tracer, export::run_traces(config, queue, stats))
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

/// The Unix time of an instant without a read of the wall clock per span: the wall-clock
/// time of a fixed origin instant, measured again when the last measurement is more than a
/// second older than the instant asked about (so a stepped or slewed clock is followed
/// within a second). A clock read is a system call on machines whose clock source the vDSO
/// cannot read, virtual machines among them: three per span were a visible share of the
/// proxy's CPU there.
#[derive(Debug)]
pub struct WallClock {
    origin: Instant,
    /// Unix nanoseconds at `origin`, by the last measurement.
    wall_at_origin: AtomicU64,
    /// When that measurement was taken, in nanoseconds after `origin`.
    measured: AtomicU64,
}

impl WallClock {
    pub fn new() -> WallClock {
        let clock = WallClock {
            origin: Instant::now(),
            wall_at_origin: AtomicU64::new(0),
            measured: AtomicU64::new(0),
        };
        clock.measure();
        clock
    }

    fn since_origin(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }

    fn measure(&self) {
        let wall = unix_nanos(SystemTime::now());
        let since = self.since_origin(Instant::now());
        self.wall_at_origin
            .store(wall.saturating_sub(since), Ordering::Relaxed);
        self.measured.store(since, Ordering::Relaxed);
    }

    /// Unix nanoseconds at `t` (an instant after this clock was made).
    pub fn unix_nanos(&self, t: Instant) -> u64 {
        let since = self.since_origin(t);
        if since.saturating_sub(self.measured.load(Ordering::Relaxed)) > 1_000_000_000 {
            self.measure();
        }
        self.wall_at_origin
            .load(Ordering::Relaxed)
            .saturating_add(since)
    }
}

impl Default for WallClock {
    fn default() -> WallClock {
        WallClock::new()
    }
}

#[cfg(test)]
mod tests;
