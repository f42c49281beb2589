//! The proxy's HTTP/1.1 server. Each client connection is one task that reads a request head
//! in place, reads the body, routes it by one comparison (`/metrics` or forwarded) and writes
//! the answer straight to the socket: the head with the first events in one write, and
//! events that are already waiting gathered into the next. A general-purpose server (hyper,
//! under a router before that) cost a connection dispatcher, a body channel and a write per
//! relayed piece on every request, which showed as most of the proxy's user-space CPU.
//!
//! What it takes: HTTP/1.1 and 1.0, keep-alive, pipelined requests (one at a time), bodies
//! by `Content-Length` or chunked, `Expect: 100-continue`. What it refuses: a head over
//! 64 KiB or with over 100 headers, both framings at once, codings other than chunked, a
//! broken chunked body. A client that goes away while its answer is prepared or streams is
//! noticed at once (its connection reads end), which drops the upstream request and
//! records the request as a client disconnect.

use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::IntoResponse;
use futures_util::future::poll_immediate;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::futures::OwnedNotified;
use tokio::sync::{Notify, mpsc};
use tokio::time::Sleep;

use super::Proxy;
use super::forward::{self, Answer, Relayed};
use super::incoming::Incoming;
use wire::{BodyFraming, Framing, LAST_CHUNK};

mod wire;

pub use wire::check_head;

/// The largest request head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Bytes asked of the socket per read.
const READ_SIZE: usize = 16 * 1024;
/// A request head that has started must be complete within this.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// A kept-alive connection with no request for this long is closed (nginx's default).
const IDLE_TIMEOUT: Duration = Duration::from_secs(75);
/// How much sooner than [`IDLE_TIMEOUT`] an idle connection may be closed.
const IDLE_SLACK: Duration = Duration::from_secs(1);
/// A request body must keep arriving: at most this long between reads.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Events gathered into one write to the client, at most (bytes).
const COALESCE: usize = 64 * 1024;
/// How long, and for how many bytes, a closing connection reads what the client still sends.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1 << 20;
/// A read buffer that grew past this (a large body) is not kept for the next request.
const KEEP_BUFFER: usize = 4 * READ_SIZE;
/// Room made in the output buffer for an answer: a usual streamed answer's writes fit.
const OUTPUT_ROOM: usize = 4 * 1024;
/// An output buffer that grew past this (a large answer) is not kept for the next request.
const KEEP_OUTPUT: usize = 16 * 1024;

/// Serves the proxy on `listener` until `shutdown` completes; then stops accepting, closes
/// idle connections and waits for the requests in flight to finish.
pub async fn serve(listener: TcpListener, proxy: Arc<Proxy>, shutdown: impl Future<Output = ()>) {
    let stopping = Arc::new(Stopping::default());
    // Each connection holds a sender; the receiver sees the channel close when all are gone.
    let (alive, mut all_closed) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(error) => {
                wait_after_accept_error(&error).await;
                continue;
            }
        };
        // Chunks go out as they come: no waiting to fill a segment.
        let _ = tcp.set_nodelay(true);
        let connection = Connection {
            tcp,
            proxy: proxy.clone(),
            input: Vec::new(),
            stop_waiter: Box::pin(stopping.notify.clone().notified_owned()),
            stopping: stopping.clone(),
            unread: false,
            _alive: alive.clone(),
            idle: None,
            output: Vec::new(),
        };
        tokio::spawn(connection.run());
    }
    drop(listener);
    stopping.stop();
    drop(alive);
    let _ = all_closed.recv().await;
}

/// An accept that failed: a connection reset before it was taken is nothing; running out
/// of file descriptors or memory is waited out for a second, so the loop does not spin.
async fn wait_after_accept_error(error: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::warn!("the proxy cannot accept a connection: {error}; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// The server's shutdown, as its connections see it: a flag, and a notice that wakes those
/// waiting for a request. Each connection's waiter is registered once, when the connection
/// starts, and the flag read in each wait: a waiter registered and removed for each wait
/// (a watch channel's) cost two locks and a list update per request.
#[derive(Default)]
struct Stopping {
    flag: std::sync::atomic::AtomicBool,
    notify: Arc<Notify>,
}

impl Stopping {
    fn stop(&self) {
        self.flag.store(true, std::sync::atomic::Ordering::Release);
        self.notify.notify_waiters();
    }

    fn stopped(&self) -> bool {
        self.flag.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// `/metrics` (GET or HEAD) is the proxy's own; every other request is forwarded.
pub async fn route(proxy: Arc<Proxy>, request: Incoming) -> Answer {
    if request.path() != "/metrics" {
        return forward::handle(proxy, request).await;
    }
    let response = match request.method {
        Method::GET | Method::HEAD => proxy.metrics_response(&request.header_map()),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET,HEAD")],
        )
            .into_response(),
    };
    response.into()
}

/// One client connection.
struct Connection {
    tcp: TcpStream,
    proxy: Arc<Proxy>,
    /// What has been read and not yet used: the next request's head, perhaps more.
    input: Vec<u8>,
    stopping: Arc<Stopping>,
    /// This connection's waiter for the shutdown's notice, registered when it starts
    /// ([`Stopping`]).
    stop_waiter: Pin<Box<OwnedNotified>>,
    /// Whether the client may have sent bytes that were not read (a refused head, a body
    /// over the limit): then the connection lingers before it closes.
    unread: bool,
    /// Dropped when the connection ends, for the graceful shutdown's count.
    _alive: mpsc::Sender<()>,
    /// The idle timer, kept between requests ([`idle_timer`]).
    idle: Option<Pin<Box<Sleep>>>,
    /// Bytes on their way to the client, kept between requests ([`Connection::answer`]).
    output: Vec<u8>,
}

/// Why a connection ends early. Nothing is logged: a client that goes away mid-request is
/// the request's outcome, counted there.
struct Closed;

impl Connection {
    async fn run(mut self) {
        // Registers the task's waker for the notice: the notice then wakes the task in
        // whatever it waits for, and a wait for a request reads the flag.
        if poll_immediate(self.stop_waiter.as_mut()).await.is_some() {
            return;
        }
        while let Ok(true) = self.serve_one().await {
            if self.stopping.stopped() {
                break;
            }
        }
        let _ = self.tcp.shutdown().await;
        if self.unread {
            self.linger().await;
        }
    }

    /// Reads and drops what the client still sends (for a little while) after the answer to
    /// a request whose bytes were not all read: closing with them unread would reset the
    /// connection, and the reset can destroy the answer before the client reads it.
    async fn linger(&mut self) {
        let mut sink = [0u8; 4096];
        let drain = async {
            let mut left = LINGER_BYTES;
            while left > 0 {
                match self.tcp.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => left = left.saturating_sub(n),
                }
            }
        };
        let _ = tokio::time::timeout(LINGER, drain).await;
    }

    /// Serves the next request; whether the connection may serve another.
    async fn serve_one(&mut self) -> Result<bool, Closed> {
        let head = loop {
            match wire::parse_head(&self.input) {
                Ok(Some(head)) => break head,
                Ok(None) if self.input.len() >= MAX_HEAD => {
                    return self
                        .refuse(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
                        .await;
                }
                Ok(None) => self.read_head_part().await?,
                Err(status) => return self.refuse(status).await,
            }
        };
        self.input.drain(..head.length);
        let limit = self.proxy.options.max_body_bytes;
        let mut request = head.request;
        let head_only = request.method == Method::HEAD;
        let http10 = request.http10;
        // A body over the limit is not read: the handler refuses it by its length, and the
        // connection closes after the answer, since its bytes would follow.
        let (body, read_whole) = match head.framing {
            BodyFraming::Length(n) if n > limit => (Vec::new(), false),
            framing => {
                if head.expects_continue && self.input.len() < body_size_hint(framing) {
                    self.write(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
                }
                match self.read_body(framing, limit).await? {
                    Some(body) => (body, true),
                    None => return self.refuse(StatusCode::BAD_REQUEST).await,
                }
            }
        };
        let over_limit = !read_whole || body.len() > limit;
        request.body = body;
        request.body_over_limit = over_limit;
        let keep_alive = head.keep_alive && !over_limit;
        self.unread = over_limit;
        // If the client goes away before the answer starts, the request is dropped (and
        // with it the upstream request), as it is when it goes away mid-answer.
        // Pinned here, not moved into the watch: the routed request's future is kilobytes,
        // and each move of it was a copy.
        let routed = std::pin::pin!(route(self.proxy.clone(), request));
        let answer = self.watching_the_client(routed, false).await?;
        self.answer(answer, head_only, http10, keep_alive).await
    }

    /// Awaits `work` while watching the client: the end of its side means it went away,
    /// which drops `work`. Bytes it sends meanwhile (a pipelined request) are kept. The work
    /// is polled first: a fair draw between the two cost a random number per poll, and
    /// the client's side is seen anyway whenever the work waits. With `work_waiting` (the
    /// work's wake-up is already set and nothing has woken it since) its first poll is left
    /// out: it would find nothing.
    async fn watching_the_client<T>(
        &mut self,
        mut work: std::pin::Pin<&mut impl Future<Output = T>>,
        work_waiting: bool,
    ) -> Result<T, Closed> {
        let mut skip_work = work_waiting;
        let (tcp, input) = (&mut self.tcp, &mut self.input);
        std::future::poll_fn(|cx| {
            if !std::mem::take(&mut skip_work)
                && let Poll::Ready(done) = work.as_mut().poll(cx)
            {
                return Poll::Ready(Ok(done));
            }
            while input.len() < MAX_HEAD {
                match std::pin::pin!(tcp.read_buf(input)).poll(cx) {
                    Poll::Ready(read) => read_outcome(read)?,
                    Poll::Pending => break,
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Reads more of a request head: waits as long as a kept-alive connection may idle when
    /// nothing has come yet (and not past a shutdown), or for the rest of a started head.
    async fn read_head_part(&mut self) -> Result<(), Closed> {
        if !self.input.is_empty() {
            return self.read_within(HEAD_TIMEOUT).await;
        }
        let mut idle = idle_timer(&mut self.idle);
        reserve(&mut self.input);
        let (tcp, input, stopping) = (&mut self.tcp, &mut self.input, &self.stopping);
        std::future::poll_fn(|cx| {
            if stopping.stopped() {
                return Poll::Ready(Err(Closed));
            }
            if let Poll::Ready(read) = std::pin::pin!(tcp.read_buf(input)).poll(cx) {
                return Poll::Ready(read_outcome(read));
            }
            idle.as_mut().poll(cx).map(|()| Err(Closed))
        })
        .await
    }

    /// Appends what the socket has within `limit`; `Closed` at its end, on an error or when
    /// nothing came in time.
    async fn read_within(&mut self, limit: Duration) -> Result<(), Closed> {
        reserve(&mut self.input);
        match tokio::time::timeout(limit, self.tcp.read_buf(&mut self.input)).await {
            Ok(read) => read_outcome(read),
            Err(_) => Err(Closed),
        }
    }

    /// Reads the request body (at most one byte over `limit`, which the handler refuses);
    /// `None` when its framing is broken.
    async fn read_body(
        &mut self,
        framing: BodyFraming,
        limit: usize,
    ) -> Result<Option<Vec<u8>>, Closed> {
        match framing {
            BodyFraming::Length(n) => {
                while self.input.len() < n {
                    self.read_within(BODY_TIMEOUT).await?;
                }
                let body = self.input[..n].to_vec();
                self.input.drain(..n);
                self.reclaim();
                Ok(Some(body))
            }
            BodyFraming::Chunked => {
                let (mut decoder, mut body) = (crate::http1::ChunkedBody::new(), Vec::new());
                loop {
                    match decoder.decode(&mut self.input, &mut body) {
                        None => return Ok(None),
                        Some(true) => break,
                        Some(false) if body.len() > limit => break,
                        Some(false) => self.read_within(BODY_TIMEOUT).await?,
                    }
                }
                self.reclaim();
                Ok(Some(body))
            }
        }
    }

    /// Lets a buffer that grew for a large body go, keeping what it holds.
    fn reclaim(&mut self) {
        if self.input.capacity() > KEEP_BUFFER && self.input.len() < READ_SIZE {
            self.input.shrink_to(READ_SIZE);
        }
    }

    /// Answers a head this server cannot take, and closes.
    async fn refuse(&mut self, status: StatusCode) -> Result<bool, Closed> {
        self.unread = true;
        self.write(&wire::refusal(status)).await?;
        Ok(false)
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), Closed> {
        self.tcp.write_all(bytes).await.map_err(|_| Closed)
    }

    /// Writes the answer: its head, then its body as it comes, and says whether the
    /// connection may serve another request. The bytes go out through the connection's
    /// buffer, kept between requests: one that grew for each answer cost a reallocation
    /// and a copy per doubling, most of the time spent writing chunks.
    async fn answer(
        &mut self,
        answer: Answer,
        head_only: bool,
        http10: bool,
        keep_alive: bool,
    ) -> Result<bool, Closed> {
        let mut out = std::mem::take(&mut self.output);
        out.clear();
        out.reserve(OUTPUT_ROOM);
        let answered = self
            .answer_through(&mut out, answer, head_only, http10, keep_alive)
            .await;
        if out.capacity() <= KEEP_OUTPUT {
            self.output = out;
        }
        answered
    }

    async fn answer_through(
        &mut self,
        out: &mut Vec<u8>,
        answer: Answer,
        head_only: bool,
        http10: bool,
        keep_alive: bool,
    ) -> Result<bool, Closed> {
        let (status, mut body) = match answer {
            Answer::Response(response) => {
                let (parts, body) = response.into_parts();
                let status = parts.status;
                (status, Pieces::Body(body, Bytes::new(), parts.headers))
            }
            Answer::Relayed(relayed) => (relayed.status(), Pieces::Relayed(relayed)),
        };
        let exact = body.exact_length();
        let bodiless = status.is_informational() || matches!(status.as_u16(), 204 | 304);
        let framing = match exact {
            _ if bodiless => Framing::None(None),
            // A HEAD answer says the length its body would have.
            length if head_only => Framing::None(length),
            Some(n) => Framing::Length(n),
            None if http10 => Framing::Close,
            None => Framing::Chunked,
        };
        let keep_alive = keep_alive && framing != Framing::Close;
        match &body {
            Pieces::Body(_, _, headers) => {
                let headers = headers
                    .iter()
                    .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()));
                wire::write_head(out, status, headers, framing, keep_alive);
            }
            Pieces::Relayed(relayed) => {
                wire::write_head(out, status, relayed.headers(), framing, keep_alive);
            }
        }
        if let Framing::None(_) = framing {
            self.write(out).await?;
            return Ok(keep_alive);
        }
        loop {
            // Pieces ready at once join the bytes waiting; otherwise those go out first.
            let piece = if out.is_empty() {
                let waiting = body.waiting();
                let next = std::pin::pin!(body.next());
                self.watching_the_client(next, waiting).await?
            } else {
                match body.next_if_ready().await {
                    Some(piece) => piece,
                    None => {
                        self.write(out).await?;
                        out.clear();
                        continue;
                    }
                }
            };
            match piece {
                None => {
                    if framing == Framing::Chunked {
                        out.extend_from_slice(LAST_CHUNK);
                    }
                    self.write(out).await?;
                    return Ok(keep_alive);
                }
                Some(Err(_)) => {
                    // The upstream failed mid-answer: what came is sent and the connection
                    // closed without the last chunk, so the client sees the answer cut short.
                    let _ = self.write(out).await;
                    return Err(Closed);
                }
                Some(Ok(data)) if framing == Framing::Chunked => wire::write_chunk(out, data),
                Some(Ok(data)) => out.extend_from_slice(data),
            }
            if out.len() >= COALESCE {
                self.write(out).await?;
                out.clear();
            }
        }
    }
}

/// The connection's idle timer, due [`IDLE_TIMEOUT`] from now, or up to [`IDLE_SLACK`]
/// sooner: one timer kept for the connection and moved at most once per `IDLE_SLACK`,
/// where a timer of its own for each request's wait cost a timer set and cleared per
/// request. A timer that fires while the connection is busy only wakes it once.
fn idle_timer(idle: &mut Option<Pin<Box<Sleep>>>) -> Pin<&mut Sleep> {
    let due = tokio::time::Instant::now() + IDLE_TIMEOUT;
    let timer = match idle.take() {
        Some(timer) if timer.deadline() + IDLE_SLACK >= due => timer,
        Some(mut timer) => {
            timer.as_mut().reset(due);
            timer
        }
        None => Box::pin(tokio::time::sleep_until(due)),
    };
    idle.insert(timer).as_mut()
}

/// Room for one more read.
fn reserve(input: &mut Vec<u8>) {
    if input.capacity() - input.len() < READ_SIZE / 4 {
        input.reserve(READ_SIZE);
    }
}

/// A read's outcome: its end or an error closes the connection.
fn read_outcome(read: std::io::Result<usize>) -> Result<(), Closed> {
    match read {
        Ok(0) | Err(_) => Err(Closed),
        Ok(_) => Ok(()),
    }
}

/// A body's next piece of data, lent until the next is asked for: `None` at its end, an
/// error when it failed.
type Piece<'a> = Option<Result<&'a [u8], ()>>;

/// Where an answer's body comes from.
enum Pieces {
    /// A response's own body, the frame last taken from it, and the response's headers.
    Body(Body, Bytes, HeaderMap),
    /// A relayed upstream answer, polled directly.
    Relayed(Relayed),
}

impl Pieces {
    /// The body's length, when it is known before it is sent.
    fn exact_length(&self) -> Option<u64> {
        match self {
            Pieces::Body(body, ..) => HttpBody::size_hint(body).exact(),
            Pieces::Relayed(_) => None,
        }
    }

    /// Whether the body's last piece left it waiting for its upstream, its wake-up set.
    fn waiting(&self) -> bool {
        match self {
            Pieces::Body(..) => false,
            Pieces::Relayed(relayed) => relayed.waiting(),
        }
    }

    /// The next piece if it is there now; `None` when it is not (the task's wake-up for it
    /// set).
    async fn next_if_ready(&mut self) -> Option<Piece<'_>> {
        if self.waiting() {
            return None;
        }
        poll_immediate(self.next()).await
    }

    async fn next(&mut self) -> Piece<'_> {
        match self {
            // Trailers (which no handler sends) become empty data.
            Pieces::Body(body, frame, _) => match body.frame().await? {
                Ok(next) => {
                    *frame = next.into_data().unwrap_or_default();
                    Some(Ok(&frame[..]))
                }
                Err(_) => Some(Err(())),
            },
            Pieces::Relayed(relayed) => relayed.next().await.map(|piece| piece.map_err(drop)),
        }
    }
}

/// How many bytes of a body framed so are needed at least (for `100 Continue`).
fn body_size_hint(framing: BodyFraming) -> usize {
    match framing {
        BodyFraming::Length(n) => n,
        BodyFraming::Chunked => 1,
    }
}

#[cfg(test)]
mod tests;
