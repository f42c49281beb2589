use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::LeanTarget;
use crate::collect::fetch::{FetchError, FetchOptions};

/// A server answering each request with the next of `answers` (`None`: close the
/// connection without answering), on whichever connection it came; it records the requests
/// and counts the connections.
struct Scripted {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
}

async fn scripted(answers: Vec<Option<&'static [u8]>>) -> Scripted {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/metrics?x=1", listener.local_addr().unwrap());
    let answers = Arc::new(Mutex::new(VecDeque::from(answers)));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let (seen, count) = (requests.clone(), connections.clone());
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            let (answers, seen) = (answers.clone(), seen.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while socket.read(&mut byte).await.unwrap_or(0) == 1 {
                    head.push(byte[0]);
                    if !head.ends_with(b"\r\n\r\n") {
                        continue;
                    }
                    seen.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&head).into_owned());
                    head.clear();
                    let next = answers.lock().unwrap().pop_front().flatten();
                    let Some(answer) = next else {
                        return;
                    };
                    socket.write_all(answer).await.unwrap();
                }
            });
        }
    });
    Scripted {
        url,
        requests,
        connections,
    }
}

fn options(token: Option<&str>) -> FetchOptions {
    FetchOptions {
        timeout: Duration::from_millis(500),
        max_body_bytes: 64,
        bearer_token: token.map(str::to_string),
    }
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: 7\r\n\r\nup 1\nx ";

#[tokio::test]
async fn one_kept_alive_connection_serves_every_scrape_with_the_token_and_accept_header() {
    let server = scripted(vec![Some(OK), Some(OK), Some(OK)]).await;
    let target = LeanTarget::for_url(&server.url).unwrap();
    for _ in 0..3 {
        let fetched = target
            .fetch(&options(Some("s3cret")), "text/plain", true)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(fetched.body, b"up 1\nx ");
        assert_eq!(
            fetched.content_type.as_deref(),
            Some("text/plain; version=0.0.4")
        );
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
    let requests = server.requests.lock().unwrap();
    assert!(
        requests[0].starts_with("GET /metrics?x=1 HTTP/1.1\r\n"),
        "{}",
        requests[0]
    );
    assert!(requests[0].contains("\r\nAccept: text/plain\r\n"));
    assert!(requests[0].contains("\r\nAuthorization: Bearer s3cret\r\n"));
}

#[tokio::test]
async fn a_connection_closed_as_the_scrape_went_out_is_asked_again_on_a_fresh_one() {
    let server = scripted(vec![Some(OK), None, Some(OK)]).await;
    let target = LeanTarget::for_url(&server.url).unwrap();
    let opts = options(None);
    assert!(target.fetch(&opts, "*/*", true).await.unwrap().is_some());
    let again = target.fetch(&opts, "*/*", true).await.unwrap().unwrap();
    assert_eq!(again.body, b"up 1\nx ");
    assert_eq!(server.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn without_keep_alive_the_request_says_close() {
    let server = scripted(vec![Some(OK)]).await;
    let target = LeanTarget::for_url(&server.url).unwrap();
    target.fetch(&options(None), "*/*", false).await.unwrap();
    assert!(server.requests.lock().unwrap()[0].contains("\r\nConnection: close\r\n"));
}

#[tokio::test]
async fn a_redirect_is_left_to_the_general_client() {
    let server = scripted(vec![Some(
        b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /metrics/\r\nContent-Length: 0\r\n\r\n",
    )])
    .await;
    let target = LeanTarget::for_url(&server.url).unwrap();
    assert!(
        target
            .fetch(&options(None), "*/*", true)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn limits_statuses_and_dead_servers_give_the_general_clients_errors() {
    let declared = scripted(vec![Some(b"HTTP/1.1 200 OK\r\nContent-Length: 65\r\n\r\n")]).await;
    let chunked = scripted(vec![Some(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n0123456789012345678901234567890123456789012345678901234567890123\r\n1\r\n4\r\n0\r\n\r\n",
    )])
    .await;
    let disabled = scripted(vec![Some(
        b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\n\r\n",
    )])
    .await;
    // Never accepted: the kernel takes the connection and the request, nobody answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}/metrics", silent.local_addr().unwrap());
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/metrics", listener.local_addr().unwrap())
    };
    let fetch = |url: String| async move {
        let target = LeanTarget::for_url(&url).unwrap();
        target.fetch(&options(None), "*/*", true).await.unwrap_err()
    };
    assert!(matches!(
        fetch(declared.url).await,
        FetchError::TooLarge { limit: 64, .. }
    ));
    assert!(matches!(
        fetch(chunked.url).await,
        FetchError::TooLarge { .. }
    ));
    assert!(matches!(
        fetch(disabled.url).await,
        FetchError::MetricsDisabled { .. }
    ));
    assert!(matches!(
        fetch(silent_url).await,
        FetchError::Timeout { .. }
    ));
    let FetchError::Request { reason, .. } = fetch(refused).await else {
        panic!("refused");
    };
    assert!(reason.contains("Connection refused"), "{reason}");
}

#[test]
fn https_credentials_in_the_url_and_unparsable_urls_stay_with_the_general_client() {
    assert!(LeanTarget::for_url("http://127.0.0.1:9/metrics").is_some());
    assert!(LeanTarget::for_url("https://127.0.0.1:9/metrics").is_none());
    assert!(LeanTarget::for_url("http://user:pw@127.0.0.1:9/metrics").is_none());
    assert!(LeanTarget::for_url("not a url").is_none());
}
