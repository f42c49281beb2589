use super::*;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Decodes `wire` fed in pieces cut at `cuts`, returning the body and the final state.
fn decode_in_pieces(framing: Framing, wire: &[u8], cuts: &[usize]) -> (Vec<u8>, Decoded) {
    let mut decoder = Decoder::new(framing);
    let mut buffer = Vec::new();
    let mut body = Vec::new();
    let mut last = Decoded::More;
    let mut from = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    points.sort_unstable();
    points.push(wire.len());
    for to in points {
        buffer.extend_from_slice(&wire[from..to.max(from)]);
        from = to.max(from);
        last = decoder.decode(&mut buffer, |d| {
            body.extend_from_slice(d);
            ControlFlow::Continue(())
        });
        if last != Decoded::More {
            break;
        }
    }
    (body, last)
}

fn chunked(pieces: &[&[u8]]) -> Vec<u8> {
    let mut wire = Vec::new();
    for piece in pieces {
        wire.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        wire.extend_from_slice(piece);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    wire
}

#[test]
fn a_chunked_body_decodes_whole_and_ends() {
    let wire = chunked(&[b"data: {\"a\":1}\n\n", b"data: [DONE]\n\n"]);
    let (body, state) = decode_in_pieces(Framing::Chunked, &wire, &[]);
    assert_eq!(body, b"data: {\"a\":1}\n\ndata: [DONE]\n\n");
    assert_eq!(state, Decoded::Done);
}

#[test]
fn chunk_extensions_are_ignored_and_bad_sizes_refused() {
    let (body, state) = decode_in_pieces(Framing::Chunked, b"3;x=y\r\nabc\r\n0\r\n\r\n", &[]);
    assert_eq!((body.as_slice(), state), (&b"abc"[..], Decoded::Done));
    let (_, state) = decode_in_pieces(Framing::Chunked, b"zz\r\nabc\r\n", &[]);
    assert_eq!(state, Decoded::Invalid);
    let (_, state) = decode_in_pieces(Framing::Chunked, b"3\r\nabcXY0\r\n\r\n", &[]);
    assert_eq!(state, Decoded::Invalid);
}

#[test]
fn a_length_body_ends_at_its_length() {
    let (body, state) = decode_in_pieces(Framing::Length(5), b"hello", &[2]);
    assert_eq!((body.as_slice(), state), (&b"hello"[..], Decoded::Done));
}

#[test]
fn response_heads_give_status_framing_and_keep_alive() {
    let head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n5\r\n";
    let (status, headers, framing, keep_alive, len) = parse_head(head).unwrap().unwrap();
    assert_eq!(
        (status, framing, keep_alive, len),
        (200, Framing::Chunked, true, head.len() - 3)
    );
    let (name, value) = headers[0].clone();
    assert_eq!(
        (&head[name], &head[value]),
        (&b"content-type"[..], &b"text/event-stream"[..])
    );
    // An empty value lies nowhere in particular: an empty range.
    let empty = b"HTTP/1.1 204 No Content\r\nX-Empty:\r\nServer: s\r\n\r\n";
    let (_, headers, ..) = parse_head(empty).unwrap().unwrap();
    let read: Vec<(&[u8], &[u8])> = headers
        .iter()
        .map(|(n, v)| (&empty[n.clone()], &empty[v.clone()]))
        .collect();
    assert_eq!(
        read,
        [(&b"X-Empty"[..], &b""[..]), (&b"Server"[..], &b"s"[..])]
    );
    let closing =
        b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 2\r\nConnection: close\r\n\r\n";
    let parsed = parse_head(closing).unwrap().unwrap();
    assert_eq!(
        (parsed.0, parsed.2, parsed.3),
        (429, Framing::Length(2), false)
    );
    let unframed = b"HTTP/1.1 200 OK\r\n\r\n";
    assert_eq!(parse_head(unframed).unwrap().unwrap().2, Framing::Close);
    assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nx: y").unwrap(), None);
    let empty = parse_head(b"HTTP/1.1 204 No Content\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(
        (empty.2, empty.3),
        (Framing::Length(0), true),
        "no body, reusable"
    );
    assert!(parse_head(b"NOT HTTP\r\n\r\n").is_err());
}

proptest! {
    /// The fuzz target's invariant on arbitrary bodies after a chunked or a length head.
    #[test]
    fn bodies_decode_the_same_however_they_are_cut(
        body in proptest::collection::vec(any::<u8>(), 0..300),
        cut in any::<usize>(),
        chunked in any::<bool>(),
    ) {
        let head = if chunked {
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_string()
        } else {
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len() / 2)
        };
        let wire = [head.as_bytes(), &body].concat();
        prop_assert_eq!(check_split(&wire, cut), Ok(()));
    }

    /// However the bytes arrive, the body is the same and the end is found.
    #[test]
    fn chunked_decoding_does_not_depend_on_how_bytes_arrive(
        pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..200), 0..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let refs: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
        let wire = chunked(&refs);
        let (body, state) = decode_in_pieces(Framing::Chunked, &wire, &cuts);
        prop_assert_eq!(body, pieces.concat());
        prop_assert_eq!(state, Decoded::Done);
    }

    /// A size line is found and read as a substring search and the standard library's
    /// reading of the digits find and read it, on lines of hex digits, blanks, signs and
    /// extensions, and on any bytes.
    #[test]
    fn size_lines_read_as_the_standard_reading_does(
        line in prop_oneof![
            "[ +\\-]?[0-9a-fA-F]{0,18}[ \t]?(;[a-z=]{0,4})?(\r\n|\n|\r)?[0-9a-f\r\n]{0,4}",
            proptest::collection::vec(any::<u8>(), 0..40)
                .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        ],
    ) {
        let bytes = line.as_bytes();
        prop_assert_eq!(line_end(bytes), memchr::memmem::find(bytes, b"\r\n"));
        let text = &bytes[..line_end(bytes).unwrap_or(bytes.len())];
        let digits = text.split(|b| *b == b';').next().unwrap_or_default();
        let standard = std::str::from_utf8(digits)
            .ok()
            .and_then(|d| u64::from_str_radix(d.trim(), 16).ok());
        prop_assert_eq!(chunk_size(text), standard);
    }
}

/// Serves `answers` in turn, one per connection, each after reading a request.
async fn canned(answers: Vec<&'static [u8]>) -> reqwest::Url {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        for answer in answers {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = vec![0u8; 4096];
            let _ = socket.read(&mut request).await;
            socket.write_all(answer).await.unwrap();
        }
    });
    reqwest::Url::parse(&url).unwrap()
}

#[tokio::test]
async fn an_interim_answer_is_skipped_and_a_closed_pooled_connection_retried() {
    let url = canned(vec![
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    ])
    .await;
    let pool = Arc::new(Pool::new(&url).unwrap());
    let request = [pool.request_head("GET", "/", 2), b"\r\n".to_vec()].concat();
    let mut first = pool.send(&request).await.unwrap();
    assert_eq!(first.status, 200);
    assert_eq!(first.chunk().await.unwrap(), Some(b"hi".to_vec()));
    assert_eq!(first.chunk().await.unwrap(), None);
    // The canned server closed that connection after answering; the pool's copy is stale,
    // so the second request goes out again on a fresh connection.
    let mut second = pool.send(&request).await.unwrap();
    assert_eq!(second.chunk().await.unwrap(), Some(b"abc".to_vec()));
    assert_eq!(second.chunk().await.unwrap(), None);
}

/// A server on a free loopback port that gives each connection to `serve`, in a task.
async fn each_connection<F, Fut>(serve: F) -> reqwest::Url
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            tokio::spawn(serve(socket));
        }
    });
    reqwest::Url::parse(&url).unwrap()
}

const STREAMED: &[u8] =
    b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5, max=100\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";

/// Streams one chunked answer per connection, claims keep-alive, and closes the connection
/// 20 ms later without reading another request: what llama.cpp's server does.
async fn closes_after_each_stream() -> reqwest::Url {
    each_connection(|mut socket| async move {
        let mut request = vec![0u8; 4096];
        let _ = socket.read(&mut request).await;
        let _ = socket.write_all(STREAMED).await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    })
    .await
}

/// Streams one chunked answer per request and keeps the connection open, as vLLM's and
/// the simulator's servers do.
async fn keeps_after_streams() -> reqwest::Url {
    each_connection(|mut socket| async move {
        let mut request = vec![0u8; 4096];
        while socket.read(&mut request).await.is_ok_and(|n| n > 0) {
            if socket.write_all(STREAMED).await.is_err() {
                return;
            }
        }
    })
    .await
}

async fn stream_whole(pool: &Arc<Pool>, request: &[u8]) -> Result<Vec<u8>, Failure> {
    let mut response = pool.send(request).await?;
    let mut body = Vec::new();
    while let Some(piece) = response.chunk().await? {
        body.extend_from_slice(&piece);
    }
    Ok(body)
}

#[tokio::test]
async fn a_server_seen_closing_after_a_stream_gets_no_request_on_such_a_connection_again() {
    let url = closes_after_each_stream().await;
    let pool = Arc::new(Pool::new(&url).unwrap());
    let request = [pool.request_head("POST", "/", 2), b"\r\n".to_vec()].concat();
    assert_eq!(stream_whole(&pool, &request).await.unwrap(), b"abc");
    // The close has arrived by now: the pool sees it, learns, and connects afresh.
    tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    assert_eq!(stream_whole(&pool, &request).await.unwrap(), b"abc");
    // Straight after a stream, before its close arrives: without what the pool learnt, this
    // request would go out on a connection about to close, and be lost.
    for _ in 0..5 {
        assert_eq!(stream_whole(&pool, &request).await.unwrap(), b"abc");
    }
}

#[tokio::test]
async fn a_request_straight_after_a_first_stream_waits_for_its_connection_to_settle() {
    // The first stream's connection closes 20 ms after its end, and nothing was learnt yet:
    // the request right after it must not go out on that connection.
    let url = closes_after_each_stream().await;
    let pool = Arc::new(Pool::new(&url).unwrap());
    let request = [pool.request_head("POST", "/", 2), b"\r\n".to_vec()].concat();
    for _ in 0..3 {
        assert_eq!(stream_whole(&pool, &request).await.unwrap(), b"abc");
    }
}

#[tokio::test]
async fn a_server_seen_keeping_connections_after_streams_gets_them_reused_at_once() {
    let url = keeps_after_streams().await;
    // Long enough that the second request surely comes before it, however slow the machine.
    let settle = std::time::Duration::from_millis(500);
    let pool = Arc::new(Pool {
        stream_settle: settle,
        ..Pool::new(&url).unwrap()
    });
    let request = [pool.request_head("POST", "/", 2), b"\r\n".to_vec()].concat();
    assert_eq!(stream_whole(&pool, &request).await.unwrap(), b"abc");
    // Not settled yet: a second connection, and the first stays idle.
    assert_eq!(stream_whole(&pool, &request).await.unwrap(), b"abc");
    assert_eq!(pool.idle.lock().unwrap().len(), 2);
    // Once one has settled and is still open, the pool knows this server keeps them.
    tokio::time::sleep(settle + std::time::Duration::from_millis(10)).await;
    assert_eq!(stream_whole(&pool, &request).await.unwrap(), b"abc");
    assert!(pool.keeps_after_streams.load(Ordering::Relaxed));
    // From then on the newest connection is reused straight after its stream.
    for _ in 0..5 {
        assert_eq!(stream_whole(&pool, &request).await.unwrap(), b"abc");
        assert_eq!(pool.idle.lock().unwrap().len(), 2);
    }
}
