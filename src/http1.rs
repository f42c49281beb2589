//! A lean HTTP/1.1 client for plain-HTTP hot paths: the load generator's requests and the
//! proxy's upstream answers. At thousands of requests a second a general-purpose client's
//! per-request work (URL handling, header maps, a connection task and a body channel per
//! connection) cost as much CPU as the system calls; this one writes a pre-formatted request
//! in one call, parses the response head in place and decodes a chunked or length-delimited
//! body in the task that reads it. Connections are kept alive in a pool; a pooled connection
//! the server has closed is replaced once, before anything was read, as browsers and hyper do.

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bytes read per system call; also the largest response head accepted.
const READ_SIZE: usize = 16 * 1024;
/// Headers parsed in a response head.
const MAX_HEADERS: usize = 64;

/// A kept-alive connection and its read buffer (kept together, so a request on a pooled
/// connection allocates no buffer).
struct Idle {
    connection: TcpStream,
    buffer: Vec<u8>,
    /// Since when it has been idle.
    since: Instant,
    /// Whether its last answer was a chunked (streamed) body.
    after_stream: bool,
}

/// Idle connections older than this are not reused. Servers close idle keep-alive
/// connections after a few seconds (uvicorn, which serves vLLM, and cpp-httplib, which serves
/// llama.cpp, after 5 s); a request sent as one closes would fail, and it is never resent.
const MAX_IDLE: std::time::Duration = std::time::Duration::from_secs(2);

/// A connection that ended a stream is not reused sooner than this, until the server has
/// shown it keeps such connections open. A server that closes after streams (llama.cpp's)
/// closes a moment after the body's end, before the pool can have learnt it; a request sent
/// on the connection in that moment would be lost. By this time its close has arrived, and
/// the check before reuse sees it.
const STREAM_SETTLE: std::time::Duration = std::time::Duration::from_millis(50);

/// A read buffer that grew past this is not kept with its connection.
const KEEP_BUFFER: usize = 4 * READ_SIZE;

/// Keep-alive connections to one server.
pub struct Pool {
    server: Server,
    authority: String,
    idle: Mutex<Vec<Idle>>,
    connect_timeout: Option<std::time::Duration>,
    /// Idle connections older than this are not reused.
    max_idle: std::time::Duration,
    /// A read buffer larger than this is not kept with an idle connection.
    keep_buffer: usize,
    /// Learnt: the server closes a connection once it has streamed an answer on it, whatever
    /// its `Keep-Alive` header says (llama.cpp's server does). Such a connection is then not
    /// kept: its close arrives a moment after the body's end, and a request sent on it in
    /// that moment would be lost.
    closes_after_streams: AtomicBool,
    /// Learnt: the server keeps a connection open after streaming an answer on it (one
    /// such connection was still open once it had settled). Until then such a connection
    /// waits `stream_settle` before it is reused.
    keeps_after_streams: AtomicBool,
    /// [`STREAM_SETTLE`], longer in tests on a machine that may be slow.
    stream_settle: std::time::Duration,
}

/// Where new connections go.
#[derive(Debug, Clone)]
enum Server {
    /// An address resolved once, when the pool was made.
    Resolved(SocketAddr),
    /// `host:port`, resolved at each new connection (a name whose address may change, as
    /// a container's does when it is replaced).
    Named(String),
}

/// How a response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// `Content-Length`: this many bytes left.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Neither: the connection's end.
    Close,
}

/// Why a request got no usable answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No connection, or it closed before any answer.
    Connect,
    /// The server refused the connection: nothing listens there.
    Refused,
    /// The answer was cut short.
    Incomplete,
    /// The answer is not HTTP/1.1 as expected.
    Invalid,
}

/// A response whose head has arrived; its body is read with [`Response::chunk`].
pub struct Response {
    /// Status code.
    pub status: u16,
    /// The head's bytes as they came; its headers are read from them.
    head: Vec<u8>,
    /// Where each header's name and value lie in `head`, in order: one copy of the head
    /// instead of a name and a value allocated for each header.
    fields: Vec<Field>,
    /// When the first byte of the answer arrived.
    pub first_byte: Instant,
    connection: Option<TcpStream>,
    buffer: Vec<u8>,
    decoder: Decoder,
    keep_alive: bool,
    pool: Arc<Pool>,
    done: bool,
}

impl Pool {
    /// A pool for the `http://` server of `url` (its host must be an address or resolve now).
    pub fn new(url: &reqwest::Url) -> Result<Pool, String> {
        // An IPv6 address is written in brackets, which the resolver does not take.
        let host = url
            .host_str()
            .ok_or("no host in the URL")?
            .trim_matches(['[', ']']);
        let port = url.port_or_known_default().unwrap_or(80);
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host} resolves to no address"))?;
        Ok(Pool::to(Server::Resolved(addr), url, host))
    }

    /// A pool for the `http://` server of `url`, whose host is resolved at each new
    /// connection rather than once.
    pub fn resolving(url: &reqwest::Url) -> Result<Pool, String> {
        // An IPv6 address is written in brackets, which the resolver does not take.
        let host = url
            .host_str()
            .ok_or("no host in the URL")?
            .trim_matches(['[', ']']);
        let port = url.port_or_known_default().unwrap_or(80);
        Ok(Pool::to(Server::Named(format!("{host}:{port}")), url, host))
    }

    fn to(server: Server, url: &reqwest::Url, host: &str) -> Pool {
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        Pool {
            server,
            authority,
            idle: Mutex::new(Vec::new()),
            connect_timeout: None,
            max_idle: MAX_IDLE,
            keep_buffer: KEEP_BUFFER,
            closes_after_streams: AtomicBool::new(false),
            keeps_after_streams: AtomicBool::new(false),
            stream_settle: STREAM_SETTLE,
        }
    }

    /// Keeps no read buffer with an idle connection: for connections used every few
    /// seconds, by the thousand, where buffers kept would hold more memory than reading
    /// into a new one costs.
    pub fn without_kept_buffers(mut self) -> Pool {
        self.keep_buffer = 0;
        self
    }

    /// Reuses connections idle up to `limit` (for requests made less often than every
    /// [`MAX_IDLE`], to servers that keep connections longer).
    pub fn with_max_idle(mut self, limit: std::time::Duration) -> Pool {
        self.max_idle = limit;
        self
    }

    /// Gives up connecting after `timeout` (a [`Failure::Connect`]).
    pub fn with_connect_timeout(mut self, timeout: std::time::Duration) -> Pool {
        self.connect_timeout = Some(timeout);
        self
    }

    /// The start of a request: its line and `Host`; the caller adds headers, `Content-Length`,
    /// the blank line and the body (`more` bytes, reserved with it).
    pub fn request_head(&self, method: &str, path_and_query: &str, more: usize) -> Vec<u8> {
        let mut head = Vec::with_capacity(
            method.len() + path_and_query.len() + self.authority.len() + 24 + more,
        );
        for part in [
            method,
            " ",
            path_and_query,
            " HTTP/1.1\r\nHost: ",
            &self.authority,
            "\r\n",
        ] {
            head.extend_from_slice(part.as_bytes());
        }
        head
    }

    /// An idle connection the server has not closed. One it closed (or wrote to) while idle
    /// is dropped here, before a request goes out on it: a request that went out is never
    /// sent again, since the server may have acted on it (a POST cut by a reset is a
    /// failure to report, not to hide behind a retry).
    ///
    /// The newest is taken first, but for one that ended a stream and has not settled yet
    /// (see [`STREAM_SETTLE`]), which stays for later.
    fn take(&self) -> Option<Idle> {
        loop {
            // One clock reading for every age this round compares.
            let now = Instant::now();
            let idle = {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                let keeps = self.keeps_after_streams.load(Ordering::Relaxed);
                let settled = |i: &Idle| {
                    keeps || !i.after_stream || now.duration_since(i.since) >= self.stream_settle
                };
                let at = idle.iter().rposition(settled)?;
                idle.remove(at)
            };
            if now.duration_since(idle.since) > self.max_idle {
                continue;
            }
            let mut probe = [0u8; 1];
            match idle.connection.try_read(&mut probe) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if idle.after_stream {
                        self.keeps_after_streams.store(true, Ordering::Relaxed);
                    }
                    return Some(idle);
                }
                // Closed (0 bytes), bytes nobody asked for, or an error: not reusable.
                _ => self.closed_early(idle.after_stream),
            }
        }
    }

    /// Notes that the server closed a pooled connection before its keep-alive time was up
    /// (seen while idle, or when a request on it got no answer).
    fn closed_early(&self, after_stream: bool) {
        if after_stream {
            self.closes_after_streams.store(true, Ordering::Relaxed);
        }
    }

    fn put(&self, connection: TcpStream, mut buffer: Vec<u8>, after_stream: bool) {
        if after_stream && self.closes_after_streams.load(Ordering::Relaxed) {
            return;
        }
        buffer.clear();
        if buffer.capacity() > self.keep_buffer {
            buffer = Vec::new();
        }
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Idle {
                connection,
                buffer,
                since: Instant::now(),
                after_stream,
            });
    }

    /// Sends a whole request (head and body, as bytes) and waits for the response head.
    pub async fn send(self: &Arc<Self>, request: &[u8]) -> Result<Response, Failure> {
        self.send_once(request, false).await
    }

    /// Sends an idempotent request (a `GET`): one that a pooled connection closed by the
    /// server as it went out, with no answer, is sent again on a fresh connection, as
    /// HTTP allows for such requests.
    pub async fn send_idempotent(self: &Arc<Self>, request: &[u8]) -> Result<Response, Failure> {
        self.send_once(request, true).await
    }

    async fn send_once(
        self: &Arc<Self>,
        request: &[u8],
        idempotent: bool,
    ) -> Result<Response, Failure> {
        if let Some(pooled) = self.take() {
            let after_stream = pooled.after_stream;
            match self.on(pooled.connection, pooled.buffer, request).await {
                Err(None) => {}
                Err(Some(Failure::Connect)) if idempotent => self.closed_early(after_stream),
                Err(Some(failure)) => {
                    if failure == Failure::Connect {
                        self.closed_early(after_stream);
                    }
                    return Err(failure);
                }
                Ok(response) => return Ok(response),
            }
        }
        let fresh = self.connect().await?;
        let _ = fresh.set_nodelay(true);
        self.on(fresh, Vec::with_capacity(READ_SIZE), request)
            .await
            .map_err(|failure| failure.unwrap_or(Failure::Connect))
    }

    /// A new connection, within the connect timeout if there is one.
    async fn connect(&self) -> Result<TcpStream, Failure> {
        let connect = async {
            match &self.server {
                Server::Resolved(addr) => TcpStream::connect(addr).await,
                Server::Named(host_port) => TcpStream::connect(host_port.as_str()).await,
            }
        };
        let connected = match self.connect_timeout {
            Some(limit) => tokio::time::timeout(limit, connect)
                .await
                .map_err(|_| Failure::Connect)?,
            None => connect.await,
        };
        connected.map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionRefused => Failure::Refused,
            _ => Failure::Connect,
        })
    }

    /// One request on one connection; `Err(None)` when the request could not be written
    /// (the server cannot have acted on it: worth a retry on a fresh connection). A
    /// connection closed after the request went out is a failure, never retried.
    async fn on(
        self: &Arc<Self>,
        mut connection: TcpStream,
        mut buffer: Vec<u8>,
        request: &[u8],
    ) -> Result<Response, Option<Failure>> {
        if connection.write_all(request).await.is_err() {
            return Err(None);
        }
        let mut first_byte = None;
        let (status, fields, framing, keep_alive, head_len) = loop {
            let read = read_some(&mut connection, &mut buffer).await;
            if read == 0 {
                return Err(Some(if buffer.is_empty() {
                    Failure::Connect
                } else {
                    Failure::Incomplete
                }));
            }
            first_byte.get_or_insert_with(Instant::now);
            match parse_head(&buffer) {
                // An interim answer (100 Continue, 103 Early Hints): the real one follows.
                Ok(Some((100..=199, _, _, _, len))) => {
                    buffer.drain(..len);
                    if let Ok(Some(head)) = parse_head(&buffer) {
                        break head;
                    }
                }
                Ok(Some(head)) => break head,
                Ok(None) if buffer.len() < READ_SIZE => {}
                _ => return Err(Some(Failure::Invalid)),
            }
        };
        let head = buffer[..head_len].to_vec();
        buffer.drain(..head_len);
        Ok(Response {
            status,
            head,
            fields,
            first_byte: first_byte.unwrap_or_else(Instant::now),
            connection: Some(connection),
            buffer,
            decoder: Decoder::new(framing),
            keep_alive,
            pool: self.clone(),
            done: false,
        })
    }
}

impl Response {
    /// The next piece of the body as it arrives; `None` at its end (the connection then goes
    /// back to the pool if the server keeps it open).
    pub async fn chunk(&mut self) -> Result<Option<Vec<u8>>, Failure> {
        let mut out = Vec::new();
        let more = self.read_with(|data| out.extend_from_slice(data)).await?;
        Ok(more.then_some(out))
    }

    /// Appends the next piece of the body to `into` as it arrives; `false` at its end.
    pub async fn append_to(&mut self, into: &mut Vec<u8>) -> Result<bool, Failure> {
        self.read_with(|data| into.extend_from_slice(data)).await
    }

    /// The value of header `name` (any case), if it came and is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        let (_, value) = self.fields.iter().find(|(n, _)| {
            (self.head.get(n.clone())).is_some_and(|n| n.eq_ignore_ascii_case(name.as_bytes()))
        })?;
        std::str::from_utf8(self.head.get(value.clone())?).ok()
    }

    /// The headers in order: each name (lower case as sent or not) and its value.
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let head = &self.head;
        self.fields.iter().filter_map(move |(name, value)| {
            Some((head.get(name.clone())?, head.get(value.clone())?))
        })
    }

    /// Hands the next piece of the body to `sink` (in one or more runs); `false` at its end.
    async fn read_with(&mut self, mut sink: impl FnMut(&[u8])) -> Result<bool, Failure> {
        loop {
            if self.done {
                return Ok(false);
            }
            let mut got = false;
            let state = self.decoder.decode(&mut self.buffer, |data| {
                got |= !data.is_empty();
                sink(data);
                ControlFlow::Continue(())
            });
            match state {
                Decoded::Invalid | Decoded::Failed => return Err(Failure::Invalid),
                Decoded::Done => {
                    self.done = true;
                    if let Some(connection) = self.connection.take()
                        && self.keep_alive
                    {
                        let after_stream = self.decoder.framing == Framing::Chunked;
                        let buffer = std::mem::take(&mut self.buffer);
                        self.pool.put(connection, buffer, after_stream);
                    }
                    return Ok(got);
                }
                Decoded::More if got => return Ok(true),
                Decoded::More => {}
            }
            let Some(connection) = self.connection.as_mut() else {
                return Err(Failure::Incomplete);
            };
            if read_some(connection, &mut self.buffer).await == 0 {
                self.done = true;
                if self.decoder.framing == Framing::Close {
                    return Ok(false);
                }
                return Err(Failure::Incomplete);
            }
        }
    }
}

/// Appends what the connection has (up to [`READ_SIZE`]); 0 at its end or on an error.
async fn read_some(connection: &mut TcpStream, buffer: &mut Vec<u8>) -> usize {
    buffer.reserve(READ_SIZE);
    connection.read_buf(buffer).await.unwrap_or(0)
}

/// The decoder's invariant, shared by the fuzz target and the tests: a response's body
/// decodes to the same bytes and the same end whether it arrives whole or cut in two at
/// `cut` (modulo its length). Inputs that are not a complete response head pass.
pub fn check_split(wire: &[u8], cut: usize) -> Result<(), String> {
    let Ok(Some((_, _, framing, _, len))) = parse_head(wire) else {
        return Ok(());
    };
    let body = &wire[len..];
    let cut = cut % (body.len() + 1);
    let whole = decode_pieces(framing, &[body]);
    let split = decode_pieces(framing, &[&body[..cut], &body[cut..]]);
    if whole == split {
        Ok(())
    } else {
        Err(format!(
            "cut at {cut} of {}: whole {whole:?}, split {split:?}",
            body.len()
        ))
    }
}

fn decode_pieces(framing: Framing, pieces: &[&[u8]]) -> (Vec<u8>, Decoded) {
    let mut decoder = Decoder::new(framing);
    let (mut buffer, mut out) = (Vec::new(), Vec::new());
    let mut state = Decoded::More;
    for piece in pieces {
        buffer.extend_from_slice(piece);
        state = decoder.decode(&mut buffer, |data| {
            out.extend_from_slice(data);
            ControlFlow::Continue(())
        });
        if state != Decoded::More {
            break;
        }
    }
    (out, state)
}

/// A parsed response head: status, headers, framing, whether the connection stays open, and
/// the head's length.
type Head = (u16, Vec<Field>, Framing, bool, usize);

/// Where a header's name and value lie in the head's bytes.
type Field = (std::ops::Range<usize>, std::ops::Range<usize>);

/// The response head, once complete.
fn parse_head(buffer: &[u8]) -> Result<Option<Head>, ()> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buffer) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(()),
    };
    let status = response.code.ok_or(())?;
    let mut framing = Framing::Close;
    let mut keep_alive = response.version == Some(1);
    let mut kept = Vec::with_capacity(response.headers.len());
    let head = &buffer[..head_len];
    let at = |part: &[u8]| place_in(head, part).ok_or(());
    for header in response.headers.iter() {
        kept.push((at(header.name.as_bytes())?, at(header.value)?));
        let value = std::str::from_utf8(header.value).map_err(|_| ())?.trim();
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            if value.eq_ignore_ascii_case("chunked") {
                framing = Framing::Chunked;
            }
        } else if header.name.eq_ignore_ascii_case("content-length") {
            if framing != Framing::Chunked {
                framing = Framing::Length(value.parse().map_err(|_| ())?);
            }
        } else if header.name.eq_ignore_ascii_case("connection") {
            keep_alive = !value.eq_ignore_ascii_case("close");
        }
    }
    if matches!(status, 100..=199 | 204 | 304) {
        // No body, whatever the headers say.
        framing = Framing::Length(0);
    }
    let keep_alive = keep_alive && framing != Framing::Close;
    Ok(Some((status, kept, framing, keep_alive, head_len)))
}

/// Where `part`, a slice parsed out of `head`, lies in it: an empty part anywhere; `None`
/// when it is not within `head`. Heads are parsed in place and kept as bytes with these
/// ranges: one copy of the head instead of a name and a value allocated for each header.
pub(crate) fn place_in(head: &[u8], part: &[u8]) -> Option<std::ops::Range<usize>> {
    if part.is_empty() {
        return Some(0..0);
    }
    let start = (part.as_ptr() as usize).checked_sub(head.as_ptr() as usize)?;
    let range = start..start.checked_add(part.len())?;
    (range.end <= head.len()).then_some(range)
}

/// A chunked request body decoded as it arrives, for the proxy's server side: the same
/// decoder as answers', moving the body's bytes out of the read buffer.
pub(crate) struct ChunkedBody(Decoder);

impl ChunkedBody {
    pub(crate) fn new() -> ChunkedBody {
        ChunkedBody(Decoder::new(Framing::Chunked))
    }

    /// Moves what `buffer` holds of the body into `out`: `Some(true)` at the body's end,
    /// `Some(false)` when more is to come, `None` when the framing is broken.
    pub(crate) fn decode(&mut self, buffer: &mut Vec<u8>, out: &mut Vec<u8>) -> Option<bool> {
        match self.0.decode(buffer, |data| {
            out.extend_from_slice(data);
            ControlFlow::Continue(())
        }) {
            Decoded::Done => Some(true),
            Decoded::More => Some(false),
            Decoded::Failed | Decoded::Invalid => None,
        }
    }
}

/// Where the first CRLF in `bytes` starts. Found by its line feed: a library's substring
/// search set itself up for each of a stream's size lines, a twentieth of the proxy's
/// user-space work per request.
fn line_end(bytes: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', bytes)
        .find(|&i| i > 0 && bytes[i - 1] == b'\r')
        .map(|i| i - 1)
}

/// A chunk's size from its size line (without the CRLF): hex digits, then extensions after
/// a `;`, which are ignored.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.split(|b| *b == b';').next().unwrap_or_default();
    // The usual line, plain hex digits, read directly; anything else (blanks around the
    // digits, a sign) as the standard library reads it.
    if (1..=15).contains(&digits.len()) && digits.iter().all(u8::is_ascii_hexdigit) {
        return Some(digits.iter().fold(0, |size, &d| size << 4 | hex_value(d)));
    }
    let digits = std::str::from_utf8(digits).ok()?;
    u64::from_str_radix(digits.trim(), 16).ok()
}

/// The value of an ASCII hex digit.
fn hex_value(digit: u8) -> u64 {
    u64::from(match digit {
        b'0'..=b'9' => digit - b'0',
        _ => (digit | 0x20) - b'a' + 10,
    })
}

/// What a round of decoding found.
#[derive(Debug, PartialEq, Eq)]
enum Decoded {
    /// The body needs more bytes.
    More,
    /// The body is complete.
    Done,
    /// The answer reader stopped: the answer failed.
    Failed,
    /// The framing is broken.
    Invalid,
}

/// Decodes a body's framing incrementally, handing its data on as it arrives.
struct Decoder {
    framing: Framing,
    /// Data bytes left in the current chunk (chunked) or in the body (length).
    left: u64,
    /// Chunked: the CRLF after a chunk's data is still to come.
    after_data: bool,
}

impl Decoder {
    fn new(framing: Framing) -> Decoder {
        let left = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        Decoder {
            framing,
            left,
            after_data: false,
        }
    }

    /// Consumes what it can of `buffer`, calling `data` with each run of body bytes.
    fn decode(
        &mut self,
        buffer: &mut Vec<u8>,
        mut data: impl FnMut(&[u8]) -> ControlFlow<()>,
    ) -> Decoded {
        match self.framing {
            Framing::Close => {
                let flow = data(buffer);
                buffer.clear();
                if flow.is_break() {
                    return Decoded::Failed;
                }
                Decoded::More
            }
            Framing::Length(_) => {
                let take = (self.left as usize).min(buffer.len());
                let flow = data(&buffer[..take]);
                buffer.drain(..take);
                self.left -= take as u64;
                if flow.is_break() {
                    Decoded::Failed
                } else if self.left == 0 {
                    Decoded::Done
                } else {
                    Decoded::More
                }
            }
            Framing::Chunked => self.decode_chunked(buffer, data),
        }
    }

    fn decode_chunked(
        &mut self,
        buffer: &mut Vec<u8>,
        mut data: impl FnMut(&[u8]) -> ControlFlow<()>,
    ) -> Decoded {
        let mut at = 0;
        let outcome = loop {
            if self.left > 0 {
                let take = (self.left as usize).min(buffer.len() - at);
                if take == 0 {
                    break Decoded::More;
                }
                let flow = data(&buffer[at..at + take]);
                at += take;
                self.left -= take as u64;
                if flow.is_break() {
                    break Decoded::Failed;
                }
                continue;
            }
            if self.after_data {
                match buffer.get(at..at + 2) {
                    None => break Decoded::More,
                    Some(b"\r\n") => {
                        at += 2;
                        self.after_data = false;
                    }
                    Some(_) => break Decoded::Invalid,
                }
            }
            // A size line: hex digits, optional extensions, CRLF.
            let Some(line_end) = line_end(&buffer[at..]) else {
                break if buffer.len() - at > 1024 {
                    Decoded::Invalid
                } else {
                    Decoded::More
                };
            };
            let Some(size) = chunk_size(&buffer[at..at + line_end]) else {
                break Decoded::Invalid;
            };
            if size == 0 {
                // The last chunk; trailers are not used by these servers, so the end is the
                // blank line that follows (when it has arrived the connection is reusable).
                match buffer.get(at + line_end + 2..at + line_end + 4) {
                    Some(b"\r\n") => {
                        at += line_end + 4;
                        break Decoded::Done;
                    }
                    Some(_) => break Decoded::Invalid,
                    None => break Decoded::More,
                }
            }
            at += line_end + 2;
            self.left = size;
            self.after_data = true;
        };
        buffer.drain(..at);
        outcome
    }
}

#[cfg(test)]
mod tests;
