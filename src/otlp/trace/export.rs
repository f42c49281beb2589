//! Finished spans on their way out: each is encoded where it ends, once, straight into the
//! batch that will carry it (a thread's scratch buffer, then one copy under a short lock),
//! so a span costs no allocation, no queued record and no work on the exporter's side but
//! the post. The exporter task posts a full batch at once and a partial one after
//! [`GATHER`], one export at a time; at most [`QUEUE`] spans wait, and later ones are
//! dropped and counted.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::super::Resource;
use super::super::proto::Message;
use super::super::push::{ExportStats, Exported, post};
use super::{Attributes, SpanHead, TraceConfig};

/// Spans waiting for the exporter, at most; later ones are dropped and counted.
pub const QUEUE: usize = 4096;
/// Spans in one export, at most.
pub(super) const BATCH: usize = 512;
/// How long a batch that is not full waits for more spans before it is exported: under
/// load, exports of hundreds of spans instead of a post per handful (OpenTelemetry's batch
/// span processor waits up to 5 s; spans here reach the backend within a tenth of that).
const GATHER: Duration = Duration::from_millis(100);

/// A batch: the `ScopeSpans` message of one export, its scope and its spans so far.
#[derive(Debug)]
struct Batch {
    scope_spans: Message,
    spans: usize,
}

/// The batches waiting, oldest first (only the newest is still filled), and emptied
/// buffers to start new ones in, so that batches reuse their capacity.
#[derive(Debug, Default)]
struct Pending {
    batches: VecDeque<Batch>,
    spans: usize,
    spare: Vec<Message>,
}

/// What a waiting batch is to the exporter.
enum Front {
    Empty,
    Partial,
    Full,
}

/// The encoded spans between the requests that end them and the exporter.
#[derive(Debug, Default)]
pub struct SpanQueue {
    pending: Mutex<Pending>,
    /// Told when a span arrives in an empty queue and when a batch fills.
    ready: tokio::sync::Notify,
}

thread_local! {
    /// A span's encoding and its events', reused by every span this thread ends.
    static SCRATCH: RefCell<(Message, Message)> = RefCell::new((Message::new(), Message::new()));
}

impl SpanQueue {
    /// Encodes the span and queues it; false (and nothing queued) when the queue is full.
    pub fn push(&self, head: &SpanHead<'_>, attributes: impl FnOnce(&mut Attributes<'_>)) -> bool {
        // Encoded before the queue is looked at: one lock per span, and a span is encoded in
        // vain only when the queue is full and spans are being dropped anyway.
        SCRATCH.with_borrow_mut(|(span, scratch)| {
            head.write(span, scratch, attributes);
            self.append(span.as_bytes())
        })
    }

    /// Appends an encoded span to the newest batch, or to a new one when that is full.
    fn append(&self, span: &[u8]) -> bool {
        let wake = {
            let mut pending = self.lock();
            if pending.spans >= QUEUE {
                return false;
            }
            let Pending { batches, spare, .. } = &mut *pending;
            let batch = match batches.back_mut() {
                Some(batch) if batch.spans < BATCH => batch,
                _ => {
                    batches.push_back(new_batch(spare.pop().unwrap_or_default()));
                    let Some(batch) = batches.back_mut() else {
                        return false;
                    };
                    batch
                }
            };
            batch.scope_spans.nested(2, span);
            batch.spans += 1;
            let full = batch.spans == BATCH;
            pending.spans += 1;
            pending.spans == 1 || full
        };
        if wake {
            self.ready.notify_one();
        }
        true
    }

    fn front(&self) -> Front {
        match self.lock().batches.front() {
            None => Front::Empty,
            Some(batch) if batch.spans < BATCH => Front::Partial,
            Some(_) => Front::Full,
        }
    }

    /// The oldest batch's `ScopeSpans` and its span count.
    pub(super) fn take(&self) -> Option<(Message, usize)> {
        let mut pending = self.lock();
        let batch = pending.batches.pop_front()?;
        pending.spans -= batch.spans;
        Some((batch.scope_spans, batch.spans))
    }

    /// Keeps an exported batch's buffer for a later batch.
    pub(super) fn give_back(&self, scope_spans: Message) {
        let mut pending = self.lock();
        if pending.spare.len() < QUEUE / BATCH {
            pending.spare.push(scope_spans);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves whole batches behind: still usable.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A batch started in `buffer`: the instrumentation scope first, the spans to follow.
fn new_batch(mut buffer: Message) -> Batch {
    buffer.clear();
    let mut scope = Message::new();
    scope.string(1, "llmwatch");
    scope.string(2, env!("CARGO_PKG_VERSION"));
    buffer.nested(1, scope.as_bytes());
    Batch {
        scope_spans: buffer,
        spans: 0,
    }
}

/// The `ExportTraceServiceRequest` around a batch's `ScopeSpans`, written into a body whose
/// length is known up front, so the batch is copied once.
pub fn request(scope_spans: &[u8], resource: &Resource) -> Vec<u8> {
    let resource = resource.message();
    // ResourceSpans { resource = 1, scope_spans = 2 } inside the request's field 1.
    let resource_spans =
        Message::field_len(1, resource.len()) + Message::field_len(2, scope_spans.len());
    let mut request = Message::with_capacity(Message::field_len(1, resource_spans));
    request.head(1, resource_spans);
    request.nested(1, resource.as_bytes());
    request.nested(2, scope_spans);
    request.into_bytes()
}

/// Exports queued batches, one at a time, until the task is dropped. A refused or failed
/// batch is dropped and counted.
pub(super) async fn run_traces(config: TraceConfig, queue: Arc<SpanQueue>, stats: ExportStats) {
    let client = super::super::push::client(config.protocol, config.ca.as_deref());
    let mut quiet_until: Option<std::time::Instant> = None;
    loop {
        match queue.front() {
            Front::Empty => {
                queue.ready.notified().await;
                continue;
            }
            Front::Partial => tokio::time::sleep(GATHER).await,
            Front::Full => {}
        }
        let Some((scope_spans, spans)) = queue.take() else {
            continue;
        };
        if let Some(until) = quiet_until.take() {
            tokio::time::sleep_until(until.into()).await;
        }
        let body = request(scope_spans.as_bytes(), &config.resource);
        queue.give_back(scope_spans);
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
            items: spans,
            detail: &posted.detail,
        }
        .emit(&stats);
    }
}
