//! The server on real sockets: a raw client writes bytes and reads what comes back.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::*;
use crate::proxy::ProxyOptions;

/// An upstream that answers each request on its connections with a small JSON completion
/// and hands the request it read (head and body) to the test.
async fn capturing_upstream() -> (String, mpsc::UnboundedReceiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (seen, requests) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                loop {
                    let mut piece = [0u8; 4096];
                    match socket.read(&mut piece).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buffer.extend_from_slice(&piece[..n]),
                    }
                    let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    if buffer.len() < end + 4 + length {
                        continue;
                    }
                    let request: Vec<u8> = buffer.drain(..end + 4 + length).collect();
                    seen.send(request).unwrap();
                    let body = r#"{"choices":[{"message":{"content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#;
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    socket.write_all(answer.as_bytes()).await.unwrap();
                }
            });
        }
    });
    (url, requests)
}

/// A proxy before `upstream` on a free port; its address and the sender that stops it.
async fn proxy_on(
    upstream: &str,
    options: ProxyOptions,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let proxy = Arc::new(Proxy::new(&[upstream.to_string()], options).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, proxy, async move {
        let _ = stopped.await;
    }));
    (addr, stop, server)
}

/// Reads until the connection closes or `until` says the bytes so far are enough.
async fn read_until(socket: &mut TcpStream, until: impl Fn(&str) -> bool) -> String {
    let mut text = Vec::new();
    let mut piece = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut piece)).await;
        match read.expect("the proxy answers within 5 s") {
            Ok(0) | Err(_) => break,
            Ok(n) => text.extend_from_slice(&piece[..n]),
        }
        if until(&String::from_utf8_lossy(&text)) {
            break;
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// How a relayed (chunked) answer ends.
const END: &str = "}\r\n0\r\n\r\n";

const CHAT: &str = r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#;

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let (upstream, mut seen) = capturing_upstream().await;
    let (addr, _stop, _server) = proxy_on(&upstream, ProxyOptions::default()).await;
    let mut socket = TcpStream::connect(&addr).await.unwrap();
    let post = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: p\r\nContent-Length: {}\r\n\r\n{CHAT}",
        CHAT.len()
    );
    let three = format!("{post}GET /metrics HTTP/1.1\r\nHost: p\r\n\r\n{post}");
    socket.write_all(three.as_bytes()).await.unwrap();
    let answers = read_until(&mut socket, |t| {
        t.matches("HTTP/1.1 200 OK").count() == 3 && t.ends_with(END)
    })
    .await;
    let statuses: Vec<&str> = answers.matches("HTTP/1.1 200 OK").collect();
    assert_eq!(statuses.len(), 3, "{answers}");
    let metrics_at = answers.find("llm_proxy_requests_total").unwrap();
    let first_completion = answers.find("\"content\":\"hi\"").unwrap();
    let last_completion = answers.rfind("\"content\":\"hi\"").unwrap();
    assert!(
        first_completion < metrics_at && metrics_at < last_completion,
        "{answers}"
    );
    for _ in 0..2 {
        let request = seen.recv().await.unwrap();
        assert!(
            request.ends_with(b"\"stream\":false}") || request.ends_with(CHAT.as_bytes()),
            "{}",
            String::from_utf8_lossy(&request)
        );
    }
}

#[tokio::test]
async fn a_chunked_request_body_reaches_the_upstream_whole_with_its_length() {
    let (upstream, mut seen) = capturing_upstream().await;
    let (addr, _stop, _server) = proxy_on(&upstream, ProxyOptions::default()).await;
    let mut socket = TcpStream::connect(&addr).await.unwrap();
    let (a, b) = CHAT.split_at(10);
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x};ext=1\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    );
    // In two writes, cut inside the second chunk's size line.
    let cut = request.find(";ext").unwrap();
    socket.write_all(&request.as_bytes()[..cut]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    socket.write_all(&request.as_bytes()[cut..]).await.unwrap();
    let answer = read_until(&mut socket, |t| t.ends_with(END)).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    let forwarded = String::from_utf8(seen.recv().await.unwrap()).unwrap();
    let (head, body) = forwarded.split_once("\r\n\r\n").unwrap();
    assert!(!head.to_lowercase().contains("transfer-encoding"), "{head}");
    assert!(
        head.contains(&format!("Content-Length: {}", body.len())),
        "{head}"
    );
    assert_eq!(body, CHAT);
}

#[tokio::test]
async fn expect_continue_gets_its_interim_answer_before_the_body_is_sent() {
    let (upstream, _seen) = capturing_upstream().await;
    let (addr, _stop, _server) = proxy_on(&upstream, ProxyOptions::default()).await;
    let mut socket = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: p\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        CHAT.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let interim = read_until(&mut socket, |t| t.ends_with("\r\n\r\n")).await;
    assert_eq!(interim, "HTTP/1.1 100 Continue\r\n\r\n");
    socket.write_all(CHAT.as_bytes()).await.unwrap();
    let answer = read_until(&mut socket, |t| t.ends_with(END)).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_by_its_length_and_the_answer_arrives_before_the_close() {
    let (upstream, _seen) = capturing_upstream().await;
    let options = ProxyOptions {
        max_body_bytes: 1000,
        ..ProxyOptions::default()
    };
    let (addr, _stop, _server) = proxy_on(&upstream, options).await;
    // A small send buffer, so the body cannot all wait in the kernels: the write finishes
    // only if the server reads it.
    let client = tokio::net::TcpSocket::new_v4().unwrap();
    client.set_send_buffer_size(4096).unwrap();
    let mut socket = client.connect(addr.parse().unwrap()).await.unwrap();
    // The whole oversized body is sent, none of it read: the answer must still arrive.
    let body = format!("{{\"model\":\"m\",\"pad\":\"{}\"}}", "x".repeat(900_000));
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: p\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // Written whole before anything is read: the server must drain what it did not read,
    // or its close resets the connection and the answer waiting here is lost.
    let written =
        tokio::time::timeout(Duration::from_secs(5), socket.write_all(request.as_bytes())).await;
    assert!(
        matches!(written, Ok(Ok(()))),
        "the unread body is drained: {written:?}"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    let answer = read_until(&mut socket, |_| false).await;
    assert!(
        answer.starts_with("HTTP/1.1 413 Payload Too Large\r\n"),
        "{answer}"
    );
    assert!(answer.contains("connection: close\r\n"), "{answer}");
    assert!(
        answer.contains("over the proxy's limit of 1000 bytes"),
        "{answer}"
    );
}

#[tokio::test]
async fn heads_the_server_cannot_take_are_answered_and_closed() {
    let (upstream, mut seen) = capturing_upstream().await;
    let (addr, _stop, _server) = proxy_on(&upstream, ProxyOptions::default()).await;
    let cases = [
        (
            "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_string(),
            "HTTP/1.1 400 Bad Request\r\n",
        ),
        (
            "POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n".to_string(),
            "HTTP/1.1 501 Not Implemented\r\n",
        ),
        (
            format!("GET /metrics HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(70_000)),
            "HTTP/1.1 431 Request Header Fields Too Large\r\n",
        ),
        (
            "POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_string(),
            "HTTP/1.1 400 Bad Request\r\n",
        ),
    ];
    for (request, status) in cases {
        let mut socket = TcpStream::connect(&addr).await.unwrap();
        let _ = socket.write_all(request.as_bytes()).await;
        let answer = read_until(&mut socket, |_| false).await;
        assert!(answer.starts_with(status), "{request:.60}: {answer}");
        assert!(answer.contains("connection: close\r\n"), "{answer}");
    }
    assert!(seen.try_recv().is_err(), "nothing reached the upstream");
}

#[tokio::test]
async fn head_requests_get_the_length_without_the_body_and_http_1_0_is_closed_after() {
    let (upstream, _seen) = capturing_upstream().await;
    let (addr, _stop, _server) = proxy_on(&upstream, ProxyOptions::default()).await;
    let mut socket = TcpStream::connect(&addr).await.unwrap();
    socket
        .write_all(b"HEAD /metrics HTTP/1.1\r\nHost: p\r\n\r\nGET /metrics HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let answers = read_until(&mut socket, |_| false).await;
    let (head, rest) = answers.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.1 200 OK\r\n") && head.contains("content-length: "),
        "{head}"
    );
    assert!(
        rest.starts_with("HTTP/1.1 200 OK\r\n"),
        "the HEAD answer has no body: {rest:.200}"
    );
    assert!(
        rest.contains("connection: close\r\n") && rest.contains("llm_proxy_"),
        "{rest:.300}"
    );
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_lets_a_request_in_flight_finish() {
    let (upstream, _seen) = capturing_upstream().await;
    let (addr, stop, server) = proxy_on(&upstream, ProxyOptions::default()).await;
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    let mut busy = TcpStream::connect(&addr).await.unwrap();
    // Half a request in flight when the stop comes; the rest after it.
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: p\r\nContent-Length: {}\r\n\r\n{CHAT}",
        CHAT.len()
    );
    let (first, second) = request.split_at(40);
    busy.write_all(first.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        read_until(&mut idle, |_| false).await,
        "",
        "the idle connection is closed"
    );
    busy.write_all(second.as_bytes()).await.unwrap();
    let answer = read_until(&mut busy, |_| false).await;
    assert!(
        answer.starts_with("HTTP/1.1 200 OK\r\n") && answer.ends_with(END),
        "{answer}"
    );
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("serve returns once the last connection is done")
        .unwrap();
    assert!(
        TcpStream::connect(&addr).await.is_err(),
        "no longer listening"
    );
}

#[tokio::test]
async fn a_client_leaving_before_the_answer_starts_drops_the_upstream_request() {
    // An upstream that reads a request, never answers, and reports when its side closes.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}", listener.local_addr().unwrap());
    let (closed, mut upstream_closed) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut piece = [0u8; 4096];
        while !matches!(socket.read(&mut piece).await, Ok(0) | Err(_)) {}
        closed.send(()).unwrap();
    });
    let proxy = Arc::new(Proxy::new(&[upstream], ProxyOptions::default()).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, proxy.clone(), std::future::pending()));
    let mut socket = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: p\r\nContent-Length: {}\r\n\r\n{CHAT}",
        CHAT.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(socket);
    tokio::time::timeout(Duration::from_secs(5), upstream_closed.recv())
        .await
        .expect("the upstream request is dropped when the client leaves");
    assert!(
        crate::proxy::tests::counted(&proxy, "client_disconnect", "} 1"),
        "{}",
        proxy.render_metrics()
    );
}

#[tokio::test]
async fn the_idle_timer_is_kept_within_its_slack_and_moved_past_it() {
    let mut idle = None;
    let first = idle_timer(&mut idle).deadline();
    let due = tokio::time::Instant::now() + IDLE_TIMEOUT;
    assert!(first <= due && first + IDLE_SLACK >= due);
    assert_eq!(
        idle_timer(&mut idle).deadline(),
        first,
        "kept within the slack"
    );
    tokio::time::sleep(IDLE_SLACK + Duration::from_millis(100)).await;
    let moved = idle_timer(&mut idle).deadline();
    assert!(
        moved >= first + IDLE_SLACK,
        "moved once the slack has passed"
    );
    assert!(moved <= tokio::time::Instant::now() + IDLE_TIMEOUT);
}
