use super::*;

fn head(text: &str) -> Result<Option<Head>, Refusal> {
    parse_head(text.as_bytes())
}

#[test]
fn a_complete_head_becomes_the_request_with_its_framing() {
    let text = "POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\nX-Key: v\r\n\r\n{\"model\":1}";
    let head = head(text).unwrap().unwrap();
    assert_eq!(head.request.method, Method::POST);
    assert_eq!(head.request.path(), "/v1/chat/completions");
    assert_eq!(head.request.path_and_query(), "/v1/chat/completions?x=1");
    assert_eq!(head.request.header("x-key"), Some(&b"v"[..]));
    let names: Vec<&[u8]> = head.request.headers().map(|(name, _)| name).collect();
    assert_eq!(
        names,
        [&b"Host"[..], b"Content-Length", b"X-Key"],
        "as sent, in order"
    );
    assert_eq!(head.framing, BodyFraming::Length(12));
    assert!(head.keep_alive && !head.expects_continue);
    assert_eq!(&text[head.length..], "{\"model\":1}");
}

proptest::proptest! {
    /// Heads built from parts (some of them wrong) hold the parser's invariant.
    #[test]
    fn heads_read_alike_whole_or_in_pieces(
        method in "(GET|POST|HEAD|P\\(ST)",
        path in "(/|/v1/chat/completions|/metrics\\?a=1|\\*|/ x)",
        version in "(HTTP/1.1|HTTP/1.0|HTTP/2)",
        headers in proptest::collection::vec(
            "(Content-Length: [0-9+ ]{0,3}|Transfer-Encoding: (chunked|gzip)|Connection: (close|keep-alive)|Expect: 100-continue|X-A: [ -~]{0,5}|Bad Header: x)",
            0..5,
        ),
        after in "[ -~\r\n]{0,8}",
    ) {
        let wire = format!("{method} {path} {version}\r\n{}\r\n{after}", headers.iter().map(|h| format!("{h}\r\n")).collect::<String>());
        proptest::prop_assert_eq!(check_head(wire.as_bytes()), Ok(()));
    }
}

#[test]
fn targets_in_absolute_or_asterisk_form_are_read_and_others_refused() {
    let absolute = "GET http://engine:8000/v1/models?a=1 HTTP/1.1\r\nHost: x\r\n\r\n";
    let request = head(absolute).unwrap().unwrap().request;
    assert_eq!(request.path_and_query(), "/v1/models?a=1");
    assert_eq!(
        request.header("host"),
        Some(&b"x"[..]),
        "the headers unmoved"
    );
    let no_path = "GET http://engine:8000 HTTP/1.1\r\n\r\n";
    assert_eq!(
        head(no_path).unwrap().unwrap().request.path_and_query(),
        "/"
    );
    let fragment = "GET /metrics#top HTTP/1.1\r\n\r\n";
    assert_eq!(head(fragment).unwrap().unwrap().request.path(), "/metrics");
    let empty_value = "GET / HTTP/1.1\r\nX-Empty:\r\nX-After: 1\r\n\r\n";
    let request = head(empty_value).unwrap().unwrap().request;
    assert_eq!(request.header("x-empty"), Some(&b""[..]));
    assert_eq!(request.header("x-after"), Some(&b"1"[..]));
    let asterisk = "OPTIONS * HTTP/1.1\r\n\r\n";
    assert_eq!(
        head(asterisk).unwrap().unwrap().request.path_and_query(),
        "*"
    );
    for refused in [
        "GET /caf\u{e9} HTTP/1.1\r\n\r\n",
        "CONNECT engine:443 HTTP/1.1\r\n\r\n",
    ] {
        assert_eq!(
            head(refused).err(),
            Some(StatusCode::BAD_REQUEST),
            "{refused:?}"
        );
    }
}

#[test]
fn a_head_cut_anywhere_is_incomplete_not_refused() {
    let text = "GET /metrics HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n";
    for cut in 0..text.len() {
        assert!(
            matches!(head(&text[..cut]), Ok(None)),
            "cut at {cut}: {:?}",
            &text[..cut]
        );
    }
    assert!(head(text).unwrap().is_some());
}

#[test]
fn both_framings_at_once_are_refused_as_smuggling() {
    let text = "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(head(text).err(), Some(StatusCode::BAD_REQUEST));
}

#[test]
fn lengths_that_disagree_or_are_not_digits_are_refused() {
    for lengths in [
        "Content-Length: 5\r\nContent-Length: 6",
        "Content-Length: +5",
        "Content-Length: 5 5",
        "Content-Length: ",
        "Content-Length: 99999999999999999999999",
    ] {
        let text = format!("POST / HTTP/1.1\r\n{lengths}\r\n\r\n");
        assert_eq!(
            head(&text).err(),
            Some(StatusCode::BAD_REQUEST),
            "{lengths}"
        );
    }
    let same = "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n";
    assert_eq!(head(same).unwrap().unwrap().framing, BodyFraming::Length(5));
}

#[test]
fn codings_other_than_a_last_chunked_are_not_implemented() {
    for coding in ["gzip", "gzip, chunked", "chunked, gzip", "chunked, chunked"] {
        let text = format!("POST / HTTP/1.1\r\nTransfer-Encoding: {coding}\r\n\r\n");
        assert_eq!(
            head(&text).err(),
            Some(StatusCode::NOT_IMPLEMENTED),
            "{coding}"
        );
    }
    let text = "POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n";
    assert_eq!(head(text).unwrap().unwrap().framing, BodyFraming::Chunked);
}

#[test]
fn keep_alive_follows_the_version_and_the_connection_header() {
    let cases = [
        ("HTTP/1.1", "", true),
        ("HTTP/1.1", "Connection: close\r\n", false),
        ("HTTP/1.1", "Connection: keep-alive, Close\r\n", false),
        ("HTTP/1.0", "", false),
        ("HTTP/1.0", "Connection: keep-alive\r\n", true),
    ];
    for (version, connection, keep) in cases {
        let text = format!("GET / {version}\r\n{connection}\r\n");
        assert_eq!(
            head(&text).unwrap().unwrap().keep_alive,
            keep,
            "{version} {connection}"
        );
    }
}

#[test]
fn expect_continue_is_noticed_on_http_1_1_only() {
    let text = "POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n";
    assert!(head(text).unwrap().unwrap().expects_continue);
    let old = "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
    assert!(!head(old).unwrap().unwrap().expects_continue);
}

#[test]
fn too_many_headers_and_garbage_are_refused() {
    let many: String = (0..MAX_HEADERS + 1)
        .map(|i| format!("X-{i}: v\r\n"))
        .collect();
    let text = format!("GET / HTTP/1.1\r\n{many}\r\n");
    assert_eq!(
        head(&text).err(),
        Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
    );
    for garbage in [
        "GET\r\n\r\n",
        "\u{1}\u{2} / HTTP/1.1\r\n\r\n",
        "GET / HTTP/2.0\r\n\r\n",
    ] {
        assert_eq!(
            head(garbage).err(),
            Some(StatusCode::BAD_REQUEST),
            "{garbage:?}"
        );
    }
}

#[test]
fn answer_heads_replace_the_framing_and_hop_headers() {
    let headers: [(&[u8], &[u8]); 6] = [
        (b"Content-Type", b"text/event-stream"),
        (b"Content-Length", b"999"),
        (b"connection", b"keep-alive"),
        (b"Keep-Alive", b"timeout=5"),
        (b"Date", b"Tue, 01 Dec 2026 00:00:00 GMT"),
        (b"x-request-id", b"7"),
    ];
    let mut out = Vec::new();
    write_head(
        &mut out,
        StatusCode::OK,
        headers.into_iter(),
        Framing::Chunked,
        true,
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nDate: Tue, 01 Dec 2026 00:00:00 GMT\r\nx-request-id: 7\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    let mut out = Vec::new();
    write_head(
        &mut out,
        StatusCode::NOT_FOUND,
        std::iter::empty(),
        Framing::Length(7),
        false,
    );
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with("HTTP/1.1 404 Not Found\r\ndate: "),
        "{text}"
    );
    assert!(
        text.ends_with(" GMT\r\ncontent-length: 7\r\nconnection: close\r\n\r\n"),
        "{text}"
    );
}

proptest::proptest! {
    /// Chunks written by `write_chunk` decode, by the client's decoder, to the data.
    #[test]
    fn written_chunks_decode_to_their_data(
        pieces in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..300), 0..8),
    ) {
        let mut wire = Vec::new();
        for piece in &pieces {
            write_chunk(&mut wire, piece);
        }
        wire.extend_from_slice(LAST_CHUNK);
        let mut decoder = crate::http1::ChunkedBody::new();
        let mut out = Vec::new();
        proptest::prop_assert_eq!(decoder.decode(&mut wire, &mut out), Some(true));
        proptest::prop_assert_eq!(out, pieces.concat());
        proptest::prop_assert!(wire.is_empty());
    }
}
