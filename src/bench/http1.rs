//! A lean HTTP/1.1 client for the load generator's plain-HTTP hot path. At 10,000 requests
//! a second the general-purpose client's per-request work (URL handling, header maps, body
//! channels, a connection task per connection) cost as much CPU as the system calls; this
//! one writes a pre-formatted request in one call, parses the response head in place and
//! decodes a chunked or length-delimited body straight into the answer reader. Connections
//! are kept alive in a pool per sender thread; a pooled connection the server has closed is
//! replaced once, before anything was read, as browsers and hyper do.

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Mutex;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::request::{BodyReader, ErrorClass, Timing, status_error};

/// Bytes read per system call; also the largest response head accepted.
const READ_SIZE: usize = 16 * 1024;
/// Headers parsed in a response head.
const MAX_HEADERS: usize = 32;

/// Keep-alive connections to one server, and what every request to it starts with.
pub struct Pool {
    addr: SocketAddr,
    /// `POST <path> HTTP/1.1`, `Host` and `Content-Type` lines.
    head: String,
    idle: Mutex<Vec<TcpStream>>,
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

/// Why an exchange on a connection failed; `Stale` is a pooled connection the server had
/// already closed, worth one retry on a fresh one.
enum Failure {
    Stale,
    Class(ErrorClass),
}

impl Pool {
    /// A pool for the `http://` URL `url` (its host must be an address or resolve now).
    pub fn new(url: &reqwest::Url) -> Result<Pool, String> {
        let host = url.host_str().ok_or("no host in the URL")?;
        let port = url.port_or_known_default().unwrap_or(80);
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host} resolves to no address"))?;
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        let path = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        };
        Ok(Pool {
            addr,
            head: format!(
                "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n"
            ),
            idle: Mutex::new(Vec::new()),
        })
    }

    fn take(&self) -> Option<TcpStream> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    fn put(&self, connection: TcpStream) {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(connection);
    }

    /// Sends one request and reads its answer into `t`.
    pub async fn exchange(&self, body: &[u8], key: Option<&str>, stream: bool, t: &mut Timing) {
        let mut request = Vec::with_capacity(self.head.len() + 96 + body.len());
        request.extend_from_slice(self.head.as_bytes());
        if let Some(key) = key {
            request.extend_from_slice(format!("Authorization: Bearer {key}\r\n").as_bytes());
        }
        request.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        request.extend_from_slice(body);
        if let Some(pooled) = self.take() {
            match self.on(pooled, &request, stream, t).await {
                Err(Failure::Stale) => {}
                Err(Failure::Class(class)) => return t.error = Some(class),
                Ok(()) => return,
            }
        }
        let fresh = match TcpStream::connect(self.addr).await {
            Ok(connection) => connection,
            Err(_) => return t.error = Some(ErrorClass::Connect),
        };
        let _ = fresh.set_nodelay(true);
        if let Err(failure) = self.on(fresh, &request, stream, t).await {
            t.error = Some(match failure {
                Failure::Stale => ErrorClass::Connect,
                Failure::Class(class) => class,
            });
        }
    }

    /// One exchange on one connection; the connection goes back to the pool only when the
    /// answer was read to its end and the server keeps it open.
    async fn on(
        &self,
        mut connection: TcpStream,
        request: &[u8],
        stream: bool,
        t: &mut Timing,
    ) -> Result<(), Failure> {
        *t = Timing {
            sent: Some(Instant::now()),
            ..Timing::default()
        };
        if connection.write_all(request).await.is_err() {
            return Err(Failure::Stale);
        }
        let mut buffer = Vec::with_capacity(READ_SIZE);
        let (status, framing, keep_alive, head_len) = loop {
            let read = read_some(&mut connection, &mut buffer).await;
            if read == 0 {
                return Err(if buffer.is_empty() {
                    Failure::Stale
                } else {
                    Failure::Class(ErrorClass::Incomplete)
                });
            }
            t.first_byte.get_or_insert_with(Instant::now);
            match parse_head(&buffer) {
                Ok(Some(head)) => break head,
                Ok(None) if buffer.len() < READ_SIZE => {}
                _ => return Err(Failure::Class(ErrorClass::Invalid)),
            }
        };
        if status != 200 {
            return Err(Failure::Class(status_error(status)));
        }
        buffer.drain(..head_len);
        let mut reader = BodyReader::new(stream);
        let mut decoder = Decoder::new(framing);
        let mut now = Instant::now();
        loop {
            let step = decoder.decode(&mut buffer, |data| reader.feed(data, now, t));
            match step {
                Decoded::Failed => return Ok(()),
                Decoded::Invalid => return Err(Failure::Class(ErrorClass::Invalid)),
                Decoded::Done => {
                    reader.end(now, t);
                    if keep_alive && t.error.is_none() {
                        self.put(connection);
                    }
                    return Ok(());
                }
                Decoded::More => {}
            }
            if read_some(&mut connection, &mut buffer).await == 0 {
                if framing == Framing::Close {
                    reader.end(Instant::now(), t);
                    return Ok(());
                }
                return Err(Failure::Class(ErrorClass::Incomplete));
            }
            now = Instant::now();
        }
    }
}

/// Appends what the connection has (up to [`READ_SIZE`]); 0 at its end or on an error.
async fn read_some(connection: &mut TcpStream, buffer: &mut Vec<u8>) -> usize {
    buffer.reserve(READ_SIZE);
    connection.read_buf(buffer).await.unwrap_or(0)
}

/// The status, body framing, whether the connection stays open, and the head's length, once
/// the head is complete.
fn parse_head(buffer: &[u8]) -> Result<Option<(u16, Framing, bool, usize)>, ()> {
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
    for header in response.headers.iter() {
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
    Ok(Some((
        status,
        framing,
        keep_alive && framing != Framing::Close,
        head_len,
    )))
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
            let Some(line_end) = memchr::memmem::find(&buffer[at..], b"\r\n") else {
                break if buffer.len() - at > 1024 {
                    Decoded::Invalid
                } else {
                    Decoded::More
                };
            };
            let line = &buffer[at..at + line_end];
            let digits = line.split(|b| *b == b';').next().unwrap_or_default();
            let size = std::str::from_utf8(digits)
                .ok()
                .and_then(|d| u64::from_str_radix(d.trim(), 16).ok());
            let Some(size) = size else {
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
