//! A client's request as it came: the head's bytes with where each part lies in them, and
//! the body. The usual forwarded request is read from these bytes and written upstream from
//! them; a header map is built only where a library needs one (reqwest's upstreams, the
//! proxy's own `/metrics`). Building one for every request cost an allocation per header
//! value, a name lookup per header, and the map itself, about a tenth of the proxy's work.

use std::ops::Range;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};

/// A request's head and body.
pub struct Incoming {
    pub method: Method,
    /// HTTP/1.0 (else 1.1).
    pub http10: bool,
    /// The head's bytes, and the target's path and query after them when the target was
    /// not in origin form.
    head: Vec<u8>,
    /// The target's path and query in `head`.
    target: Range<usize>,
    /// Each header's name and value in `head`, in order.
    fields: Vec<(Range<usize>, Range<usize>)>,
    pub body: Vec<u8>,
    /// The body is over the proxy's limit: declared so (then it was not read) or found so
    /// as its chunks came (then read to one byte past the limit). Refused by the handler.
    pub body_over_limit: bool,
}

impl Incoming {
    /// A request from its head's bytes, the target's path and query (a range of `head`),
    /// and its headers.
    pub fn new(
        method: Method,
        http10: bool,
        head: Vec<u8>,
        target: Range<usize>,
        fields: Vec<(Range<usize>, Range<usize>)>,
    ) -> Incoming {
        Incoming {
            method,
            http10,
            head,
            target,
            fields,
            body: Vec::new(),
            body_over_limit: false,
        }
    }

    /// The path and query, as they go upstream.
    pub fn path_and_query(&self) -> &str {
        let target = self.head.get(self.target.clone()).unwrap_or_default();
        std::str::from_utf8(target).unwrap_or("/")
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        let target = self.path_and_query();
        target.split_once('?').map_or(target, |(path, _)| path)
    }

    /// The headers in order, names as sent.
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields.iter().filter_map(|(name, value)| {
            Some((self.head.get(name.clone())?, self.head.get(value.clone())?))
        })
    }

    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, value)| value)
    }

    /// The headers as a map, for a library that takes one.
    pub fn header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.fields.len());
        for (name, value) in self.headers() {
            // The head parser took only names and values a map takes.
            if let (Ok(name), Ok(value)) =
                (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
            {
                map.append(name, value);
            }
        }
        map
    }
}

/// Whether a header stays with this hop, in either direction (a request's to the upstream,
/// an answer's to the client): the hop-by-hop headers, and the framing ones the proxy writes
/// itself (the length; a request body already whole needs no `Expect`). By length first: a
/// comparison with each of eleven names per header was a cost of its own.
pub fn stays_with_the_hop(name: &[u8]) -> bool {
    let is = |known: &[u8]| name.eq_ignore_ascii_case(known);
    match name.len() {
        2 => is(b"te"),
        4 => is(b"host"),
        6 => is(b"expect"),
        7 => is(b"trailer") || is(b"upgrade"),
        10 => is(b"connection") || is(b"keep-alive"),
        14 => is(b"content-length"),
        17 => is(b"transfer-encoding"),
        18 => is(b"proxy-authenticate"),
        19 => is(b"proxy-authorization"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incoming(text: &str, target: &str) -> Incoming {
        let head = text.as_bytes().to_vec();
        let at = |part: &str| {
            let start = text.find(part).unwrap();
            start..start + part.len()
        };
        let fields = vec![(at("Host"), at("a.example")), (at("X-Key"), at("v 1"))];
        Incoming::new(Method::POST, false, head, at(target), fields)
    }

    #[test]
    fn an_incoming_request_reads_its_parts_from_the_head() {
        let text = "POST /v1/chat?x=1 HTTP/1.1\r\nHost: a.example\r\nX-Key: v 1\r\n\r\n";
        let request = incoming(text, "/v1/chat?x=1");
        assert_eq!(request.path_and_query(), "/v1/chat?x=1");
        assert_eq!(request.path(), "/v1/chat");
        assert_eq!(request.header("x-key"), Some(&b"v 1"[..]));
        assert_eq!(request.header("accept"), None);
        let map = request.header_map();
        assert_eq!(map["host"], "a.example");
        assert_eq!(map["x-key"], "v 1");
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn hop_by_hop_and_framing_headers_stay_in_any_case_and_others_go_on() {
        for name in [
            "TE",
            "Host",
            "expect",
            "Trailer",
            "upgrade",
            "Connection",
            "keep-alive",
            "Content-Length",
            "transfer-encoding",
            "Proxy-Authenticate",
            "proxy-authorization",
        ] {
            assert!(stays_with_the_hop(name.as_bytes()), "{name}");
        }
        for name in [
            "authorization",
            "content-type",
            "traceparent",
            "x-hosts",
            "tee",
            "",
        ] {
            assert!(!stays_with_the_hop(name.as_bytes()), "{name}");
        }
    }
}
