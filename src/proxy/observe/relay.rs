//! The relay: an upstream answer read and handed to the client's connection piece by piece,
//! each piece observed on the way. A piece is lent, not handed over: the connection copies
//! it into its own output at once, so a piece split off as shared bytes cost a reference
//! count taken and given back (and the buffer's memory held) for nothing.

use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_util::future::poll_immediate;
use tokio::time::Sleep;

use super::Observation;
use crate::proxy::Outcome;
use crate::sse::event_end;
use crate::sse::scan::scan_chunk;

/// Events gathered into one write to the client, at most (bytes).
const COALESCE: usize = 64 * 1024;
/// Room made in the read buffer when less than [`READ_ROOM`] is left.
const READ_RESERVE: usize = 8192;
/// Room below which the read buffer is grown before a read.
const READ_ROOM: usize = 1024;
/// Bytes of a whole (non-streamed) answer kept to read its usage.
const MAX_WHOLE: usize = 4 << 20;
/// A read buffer that grew past this (a large answer's burst) is not kept once emptied.
const KEEP_RAW: usize = 4 * COALESCE;

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
    /// The answer's headers in order, names as they came.
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let (lean, full) = match self {
            Source::Lean(response) => (Some(response.headers()), None),
            Source::Full(response) => (None, Some(response.headers().iter())),
        };
        let full = full.into_iter().flatten();
        let full = full.map(|(name, value)| (name.as_str().as_bytes(), value.as_bytes()));
        lean.into_iter().flatten().chain(full)
    }

    /// The value of header `name` (lower case), if it came and is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        match self {
            Source::Lean(response) => response.header(name),
            Source::Full(response) => response.headers().get(name)?.to_str().ok(),
        }
    }

    /// Appends the next piece of the body to `into`; `false` at its end.
    async fn read_into(&mut self, into: &mut Vec<u8>) -> Result<bool, ()> {
        match self {
            Source::Lean(response) => response.append_to(into).await.map_err(|_| ()),
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
    /// Upstream bytes read: the piece last lent to the client (its first [`Relay::lent`]
    /// bytes), then a partial event at most. In the usual case (every event kept) a piece is
    /// lent from here as it was read.
    raw: Vec<u8>,
    /// How many bytes at the start of `raw` the last piece lent; dropped before the next read.
    lent: usize,
    /// A piece that is not `raw`'s start: the events kept when one was removed, an error
    /// event, and its memory kept for the next.
    other: Vec<u8>,
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
    timer: Pin<Box<Sleep>>,
    /// The timer has been polled with the task's waker since it was last set, so a silence
    /// wakes the task.
    timer_set: bool,
    /// The last piece ended where the upstream had nothing more: it was polled with the
    /// task's own waker, so the task is woken when it has, and polling it again before then
    /// finds nothing (see [`Relay::waiting`]).
    waiting: bool,
}

impl Relay {
    /// A relay for `upstream`, whose body is server-sent events when `streamed` (the usage
    /// chunk removed with `strip_usage`). `timer` is the request's, due at or before the
    /// relay's first idle limit: when it fires, the relay moves it to its limit.
    pub fn new(
        upstream: Source,
        observation: Observation,
        (streamed, strip_usage): (bool, bool),
        waits: Waits,
        mut timer: Pin<Box<Sleep>>,
    ) -> Relay {
        let heard = Instant::now();
        // Later than the limit only when the first byte came after the idle limit.
        let due = (heard + waits.idle).min(waits.deadline).into();
        if timer.deadline() > due {
            timer.as_mut().reset(due);
        }
        Relay {
            upstream,
            observation,
            streamed,
            strip_usage,
            waits,
            raw: Vec::new(),
            lent: 0,
            other: Vec::new(),
            whole: Vec::new(),
            ended: false,
            upstream_ended: None,
            heard,
            timer,
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

    /// The upstream answer's headers, names as they came.
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.upstream.headers()
    }

    /// The next bytes for the client, lent until the next call; `None` at the end.
    pub async fn next(&mut self) -> Option<Result<&[u8], std::io::Error>> {
        let lent = self.step().await?;
        Some(lent.map(|piece| self.piece(piece)))
    }

    /// Reads and observes until there is something for the client: which bytes it is.
    async fn step(&mut self) -> Option<Result<Piece, std::io::Error>> {
        loop {
            // What was lent (or taken and all removed) is done with.
            self.let_go();
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
            self.gather().await;
            let piece = self.take(at);
            let length = self.piece(piece).len();
            if length > 0 {
                self.observation.response_bytes += length as u64;
                let overhead = at.elapsed().as_secs_f64();
                self.observation.metrics.chunk_overhead.observe(overhead);
                return Some(Ok(piece));
            }
        }
    }

    /// Under load several events wait in the connection's buffer: they go in one write, as
    /// a plain proxy sends them, rather than one write each. The upstream is polled with the
    /// task's own waker, so the poll that finds nothing also sets the wake-up for what comes
    /// next.
    async fn gather(&mut self) {
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
                    // A timer never polled (the first read had bytes at once) or just
                    // re-armed would not wake the task: it is polled here once.
                    if !self.timer_set {
                        self.timer_set = poll_immediate(self.timer.as_mut()).await.is_none();
                    }
                    self.waiting = self.timer_set;
                    break;
                }
            }
        }
    }

    /// Drops the bytes the last piece lent from the read buffer, keeping what follows them.
    fn let_go(&mut self) {
        let lent = std::mem::take(&mut self.lent);
        if lent == self.raw.len() {
            self.raw.clear();
            if self.raw.capacity() > KEEP_RAW {
                self.raw = Vec::new();
            }
        } else {
            self.raw.drain(..lent);
        }
    }

    /// The bytes of `piece`.
    fn piece(&self, piece: Piece) -> &[u8] {
        match piece {
            Piece::Raw => &self.raw[..self.lent],
            Piece::Other => &self.other,
        }
    }

    /// What of the bytes read goes to the client now: whole events (observed, the injected
    /// usage chunk removed); a whole answer passes straight through.
    fn take(&mut self, at: Instant) -> Piece {
        if !self.streamed {
            if self.whole.len() + self.raw.len() <= MAX_WHOLE {
                self.whole.extend_from_slice(&self.raw);
            }
            self.lent = self.raw.len();
            return Piece::Raw;
        }
        let raw = std::mem::take(&mut self.raw);
        let (consumed, filtered) = self.events(&raw, at);
        self.raw = raw;
        self.lent = consumed;
        if filtered { Piece::Other } else { Piece::Raw }
    }

    /// Observes the whole events at the start of `bytes`; returns how many bytes they took,
    /// and whether one of them is not for the client: then those that are were copied into
    /// `other`.
    fn events(&mut self, bytes: &[u8], at: Instant) -> (usize, bool) {
        let mut consumed = 0;
        let mut filtered = false;
        while let Some(end) = event_end(&bytes[consumed..]) {
            let (len, with_separator) = (end.len, end.with_separator);
            let event = &bytes[consumed..consumed + len];
            let mut keep = true;
            for data in end.data(event) {
                keep &= self.observation.event(data, at, self.strip_usage);
            }
            match (filtered, keep) {
                (true, true) => {
                    let kept = &bytes[consumed..consumed + with_separator];
                    self.other.extend_from_slice(kept);
                }
                (false, false) => {
                    filtered = true;
                    self.other.clear();
                    self.other.extend_from_slice(&bytes[..consumed]);
                }
                _ => {}
            }
            consumed += with_separator;
        }
        (consumed, filtered)
    }

    fn end(&mut self) -> Option<Result<Piece, std::io::Error>> {
        self.ended = true;
        if self.streamed {
            self.lent = self.raw.len();
        } else {
            self.whole_answer();
        }
        let outcome = self.observation.ending(self.streamed);
        self.observation.response_bytes += self.lent as u64;
        self.observation.record(outcome);
        (self.lent > 0).then_some(Ok(Piece::Raw))
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
    fn fail(&mut self, outcome: Outcome, why: &str) -> Option<Result<Piece, std::io::Error>> {
        self.ended = true;
        self.observation.record(outcome);
        if self.streamed {
            let event = serde_json::json!({"error": {"message": why, "type": outcome.as_str()}});
            self.other = format!("data: {event}\n\n").into_bytes();
            return Some(Ok(Piece::Other));
        }
        Some(Err(std::io::Error::other(why.to_string())))
    }
}

/// Which bytes a piece lends.
#[derive(Debug, Clone, Copy)]
enum Piece {
    /// The start of the read buffer, [`Relay::lent`] bytes.
    Raw,
    /// [`Relay::other`].
    Other,
}
