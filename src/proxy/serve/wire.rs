//! The bytes of HTTP/1.1 on the proxy's client side: a request head parsed in place into the
//! request the handlers take, how its body is framed, and an answer's head written into the
//! buffer that carries its first bytes.

use std::ops::Range;

use axum::http::{Method, StatusCode, Uri};

use crate::http1::place_in;
use crate::proxy::incoming::{Incoming, stays_with_the_hop};

/// Headers parsed in a request head.
const MAX_HEADERS: usize = 100;

/// How a request's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyFraming {
    /// `Content-Length` (0 when there is neither header).
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A request head, parsed: the request without its body, how the body is framed, whether
/// the client asked for `100 Continue`, whether the connection may serve another request,
/// and the head's length in bytes.
pub(super) struct Head {
    pub request: Incoming,
    pub framing: BodyFraming,
    pub expects_continue: bool,
    pub keep_alive: bool,
    pub length: usize,
}

/// Why a head is refused, as the status to answer with.
pub(super) type Refusal = StatusCode;

/// The request head at the start of `buffer`: `Ok(None)` while it is incomplete.
pub(super) fn parse_head(buffer: &[u8]) -> Result<Option<Head>, Refusal> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let length = match parsed.parse(buffer) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        }
        Err(_) => return Err(StatusCode::BAD_REQUEST),
    };
    let bad = StatusCode::BAD_REQUEST;
    let method =
        Method::from_bytes(parsed.method.unwrap_or_default().as_bytes()).map_err(|_| bad)?;
    let http10 = parsed.version != Some(1);
    // The head as parsed (the parts' places are read in it) and the copy the request keeps.
    let parsed_head = &buffer[..length];
    let mut head = parsed_head.to_vec();
    let target = target(parsed_head, &mut head, parsed.path.unwrap_or_default()).ok_or(bad)?;
    let mut fields = Vec::with_capacity(parsed.headers.len());
    let place = |part: &[u8]| place_in(parsed_head, part).ok_or(bad);
    let (mut length_header, mut chunked, mut other_coding) = (None, false, false);
    let (mut close, mut keep, mut expects_continue) = (false, false, false);
    for h in parsed.headers.iter() {
        let (name, value) = (h.name.as_bytes(), h.value);
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = content_length(value).ok_or(bad)?;
            // Repeated lengths must agree (RFC 9112 §6.3).
            if length_header.is_some_and(|m| m != n) {
                return Err(bad);
            }
            length_header = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // Only `chunked`, and last: anything else is a coding this server cannot read.
            let codings = std::str::from_utf8(value).map_err(|_| bad)?;
            for coding in codings.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                other_coding |= chunked || !coding.eq_ignore_ascii_case("chunked");
                chunked = true;
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            let options = std::str::from_utf8(value).unwrap_or_default();
            close |= has_token(options, "close");
            keep |= has_token(options, "keep-alive");
        } else if name.eq_ignore_ascii_case(b"expect") {
            expects_continue = value.eq_ignore_ascii_case(b"100-continue");
        }
        fields.push((place(name)?, place(value)?));
    }
    if other_coding {
        return Err(StatusCode::NOT_IMPLEMENTED);
    }
    // Both framings at once is how requests are smuggled past a proxy: refused.
    let framing = match (chunked, length_header) {
        (true, Some(_)) => return Err(bad),
        (true, None) => BodyFraming::Chunked,
        (false, n) => BodyFraming::Length(n.unwrap_or(0)),
    };
    let keep_alive = match http10 {
        false => !close,
        true => keep && !close && framing != BodyFraming::Chunked,
    };
    Ok(Some(Head {
        request: Incoming::new(method, http10, head, target, fields),
        framing,
        expects_continue: expects_continue && !http10,
        keep_alive,
        length,
    }))
}

/// The request target's path and query (parsed out of `parsed`, which `head` copies), as
/// a range of `head`: in place for the usual origin form (`/path?query`, visible ASCII; a
/// fragment left out) and the asterisk form (`*`), appended to `head` for the absolute form
/// (`http://host/path`), which is read as a URI; `None` for anything else.
fn target(parsed: &[u8], head: &mut Vec<u8>, target: &str) -> Option<Range<usize>> {
    if target == "*" {
        return place_in(parsed, target.as_bytes());
    }
    if target.starts_with('/') {
        let bytes = target.as_bytes();
        if !bytes.iter().all(|b| (0x21..0x7f).contains(b)) {
            return None;
        }
        let kept = target.split_once('#').map_or(target, |(kept, _)| kept);
        let start = place_in(parsed, bytes)?.start;
        return Some(start..start + kept.len());
    }
    let uri: Uri = target.parse().ok()?;
    // An absolute target without a path asks for `/`; one without a scheme (the authority
    // form, for `CONNECT`) is not a request this proxy forwards.
    uri.scheme()?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let start = head.len();
    head.extend_from_slice(path.as_bytes());
    Some(start..head.len())
}

/// A `Content-Length` value: digits only.
fn content_length(value: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(value).ok()?.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Whether a comma-separated header value holds `token` (any case).
fn has_token(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// How an answer's body goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body (HEAD, 1xx, 204, 304): the head alone, with the length the body would have
    /// when the answer is to a HEAD and it is known.
    None(Option<u64>),
    /// A body whose length is known before it is sent.
    Length(u64),
    /// A streamed body in chunks.
    Chunked,
    /// A streamed body to an HTTP/1.0 client: ended by closing the connection.
    Close,
}

/// Writes the answer's status line and headers into `out`, less those of one hop, with
/// the framing and connection headers this connection uses, and `date` when the answer has
/// none.
pub(super) fn write_head<'a>(
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    framing: Framing,
    keep_alive: bool,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut dated = false;
    for (name, value) in headers {
        if stays_with_the_hop(name) {
            continue;
        }
        dated |= name.eq_ignore_ascii_case(b"date");
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if !dated {
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Length(n) | Framing::None(Some(n)) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        _ => {}
    }
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends one chunk of a chunked body: its size in hex, the data, and the line ends.
pub(super) fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        // A zero-size chunk would end the body.
        return;
    }
    let mut size = [0u8; 16];
    let mut at = size.len();
    let mut n = data.len();
    while n > 0 {
        at -= 1;
        size[at] = b"0123456789abcdef"[n & 15];
        n >>= 4;
    }
    out.extend_from_slice(&size[at..]);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The end of a chunked body (no trailers).
pub(super) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// A complete answer of this server's own (a refused head), closing the connection.
pub(super) fn refusal(status: StatusCode) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    write_head(
        &mut out,
        status,
        std::iter::empty(),
        Framing::Length(0),
        false,
    );
    out
}

/// The head parser's invariant, shared by the fuzz target and the tests: no panic on any
/// bytes; a complete head is read the same with anything after it, and every shorter
/// prefix of it is incomplete (never refused, never a different head) — bytes that arrive
/// one read at a time are read as if they came at once.
pub fn check_head(wire: &[u8]) -> Result<(), String> {
    let whole = parse_head(wire);
    let Ok(Some(head)) = &whole else {
        return Ok(());
    };
    let length = head.length;
    let alone = parse_head(wire.get(..length).unwrap_or_default());
    if summary(&alone) != summary(&whole) {
        return Err(format!(
            "the head alone reads {:?}, with what follows {:?}",
            summary(&alone),
            summary(&whole)
        ));
    }
    for cut in 0..length {
        let prefix = parse_head(wire.get(..cut).unwrap_or_default());
        if !matches!(prefix, Ok(None)) {
            return Err(format!("cut at {cut} of {length}: {:?}", summary(&prefix)));
        }
    }
    Ok(())
}

/// What a parse found, comparably.
fn summary(parsed: &Result<Option<Head>, Refusal>) -> Result<Option<String>, Refusal> {
    match parsed {
        Ok(Some(head)) => Ok(Some(format!(
            "{} {} http/1.0 {} {:?} {:?} keep-alive {} continue {} length {}",
            head.request.method,
            head.request.path_and_query(),
            head.request.http10,
            head.request
                .headers()
                .map(|(name, value)| (
                    String::from_utf8_lossy(name),
                    String::from_utf8_lossy(value)
                ))
                .collect::<Vec<_>>(),
            head.framing,
            head.keep_alive,
            head.expects_continue,
            head.length
        ))),
        Ok(None) => Ok(None),
        Err(status) => Err(*status),
    }
}

#[cfg(test)]
mod tests;
