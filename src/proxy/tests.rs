use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// A streamed chat answer's events: role, two content chunks (the second with the finish
/// reason), the usage chunk, `[DONE]`.
const STREAMED_EVENTS: &str = concat!(
    "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
    "data: {\"choices\":[{\"delta\":{\"content\":\"Hello\"}}]}\n\n",
    "data: {\"choices\":[{\"delta\":{\"content\":\" world\"},\"finish_reason\":\"stop\"}]}\n\n",
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\n",
    "data: [DONE]\n\n",
);

/// An upstream that answers one streamed chat request with its events cut at awkward places
/// (mid-line, mid-separator), written in pieces with pauses so they arrive apart.
async fn splitting_upstream() -> String {
    let events = STREAMED_EVENTS;
    upstream_writing_apart(vec![
        &events[..20],
        &events[20..95],
        &events[95..96],
        &events[96..200],
        &events[200..],
    ])
    .await
}

/// An upstream that answers one streamed chat request with `pieces` in chunks of their own,
/// with pauses between so they arrive apart.
async fn upstream_writing_apart(pieces: Vec<&'static str>) -> String {
    one_request_upstream(|mut socket| async move {
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
        socket.write_all(head.as_bytes()).await.unwrap();
        for piece in pieces {
            let chunk = format!("{:x}\r\n{piece}\r\n", piece.len());
            socket.write_all(chunk.as_bytes()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        socket.write_all(b"0\r\n\r\n").await.unwrap();
    })
    .await
}

/// An upstream that reads one request on its first connection and answers it with
/// `answer`: its URL.
async fn one_request_upstream<F, A>(answer: A) -> String
where
    A: FnOnce(tokio::net::TcpStream) -> F + Send + 'static,
    F: Future<Output = ()> + Send,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = vec![0u8; 8192];
        let _ = socket.read(&mut request).await;
        answer(socket).await;
    });
    url
}

/// Whether `proxy` counted a request with `outcome` (and whatever else `also` says of its
/// line).
pub(super) fn counted(proxy: &Proxy, outcome: &str, also: &str) -> bool {
    let outcome = format!("outcome=\"{outcome}\"");
    proxy.render_metrics().lines().any(|l| {
        l.starts_with("llm_proxy_requests_total{") && l.contains(&outcome) && l.contains(also)
    })
}

/// Serves `proxy` on a port of its own and sends it one streamed chat request: the answer's
/// text.
async fn streamed_chat(proxy: &Arc<Proxy>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, proxy.clone(), std::future::pending()));
    crate::collect::fetch::install_tls_provider();
    let body = serde_json::json!({"model": "m", "stream": true, "messages": []});
    reqwest::Client::new()
        .post(format!("http://{addr}/v1/chat/completions"))
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn events_cut_across_upstream_chunks_reach_the_client_whole_and_are_measured() {
    let upstream = splitting_upstream().await;
    let proxy = Arc::new(Proxy::new(&[upstream], ProxyOptions::default()).unwrap());
    let answer = streamed_chat(&proxy).await;
    let events: Vec<&str> = answer.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(
        events.len(),
        4,
        "every event whole, the injected usage removed: {answer}"
    );
    assert!(events[1].contains("Hello") && events[2].contains("stop"));
    assert_eq!(events[3], "data: [DONE]");
    let metrics = proxy.render_metrics();
    let line = |prefix: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("{prefix} in {metrics}"))
            .to_string()
    };
    assert!(line("llm_proxy_requests_total{").contains("outcome=\"completed\""));
    assert!(line("llm_proxy_time_to_first_content_seconds_count{").ends_with(" 1"));
    // Two content chunks: one gap; usage came (2 tokens) though the client did not ask.
    assert!(line("llm_proxy_time_per_output_token_seconds_count{").ends_with(" 1"));
    assert!(line("llm_proxy_output_token_source_total{").contains("source=\"usage\""));
}

/// A read that holds only the usage chunk the proxy asked for leaves nothing for the
/// client: the relay reads on, and the events after it reach the client once each.
#[tokio::test]
async fn a_usage_chunk_that_arrives_alone_is_removed_and_the_rest_still_relayed() {
    let events: Vec<&'static str> = STREAMED_EVENTS.split_inclusive("\n\n").collect();
    let upstream = upstream_writing_apart(events).await;
    let proxy = Arc::new(Proxy::new(&[upstream], ProxyOptions::default()).unwrap());
    let answer = streamed_chat(&proxy).await;
    let expected: String = STREAMED_EVENTS
        .split_inclusive("\n\n")
        .filter(|event| !event.contains("usage"))
        .collect();
    assert_eq!(answer, expected, "every event but the usage chunk, once");
    assert!(
        counted(&proxy, "completed", ""),
        "{}",
        proxy.render_metrics()
    );
}

/// An upstream that sends its answer's head and first event in one write, then nothing,
/// holding the connection open.
async fn falling_silent_upstream() -> String {
    one_request_upstream(|mut socket| async move {
        let event = "data: {\"choices\":[{\"delta\":{\"content\":\"Hello\"}}]}\n\n";
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{event}\r\n",
            event.len()
        );
        socket.write_all(answer.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(socket);
    })
    .await
}

/// The relay's idle limit holds when the answer's first bytes came with its head: the
/// relay then reads them without ever waiting, and its timer must still be set before the
/// client's connection waits on the relay.
#[tokio::test]
async fn a_stream_that_falls_silent_after_bytes_that_came_with_its_head_times_out() {
    let upstream = falling_silent_upstream().await;
    let options = ProxyOptions {
        idle_timeout: Duration::from_millis(200),
        ..ProxyOptions::default()
    };
    let proxy = Arc::new(Proxy::new(&[upstream], options).unwrap());
    let answer = tokio::time::timeout(Duration::from_secs(10), streamed_chat(&proxy))
        .await
        .expect("the relay's idle limit ends the answer");
    assert!(answer.contains("Hello"), "{answer}");
    assert!(
        answer.contains("\"timeout\""),
        "an error event says why: {answer}"
    );
    assert!(counted(&proxy, "timeout", ""), "{}", proxy.render_metrics());
}

/// An upstream that waits `before` after the request, then sends its head and `event`, then
/// holds the connection open and silent.
async fn late_upstream(before: Duration, event: &'static str) -> String {
    one_request_upstream(move |mut socket| async move {
        tokio::time::sleep(before).await;
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{event}\r\n",
            event.len()
        );
        let _ = socket.write_all(answer.as_bytes()).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await
}

/// [`streamed_chat`], which must end within `seconds`.
async fn streamed_chat_within(proxy: &Arc<Proxy>, seconds: u64) -> String {
    tokio::time::timeout(Duration::from_secs(seconds), streamed_chat(proxy))
        .await
        .unwrap_or_else(|_| panic!("the answer ends within {seconds} s"))
}

fn timeouts(first_byte_ms: u64, idle_ms: u64) -> ProxyOptions {
    ProxyOptions {
        first_byte_timeout: Duration::from_millis(first_byte_ms),
        idle_timeout: Duration::from_millis(idle_ms),
        ..ProxyOptions::default()
    }
}

/// The request's one timer first fires at the idle limit, before the first byte's: it is
/// moved on, and the answer that comes after the idle limit is relayed. Once its first
/// bytes came, the relay's idle limit counts from them, not from the first byte's limit.
#[tokio::test]
async fn a_first_byte_after_the_idle_limit_is_relayed_and_the_idle_limit_then_holds() {
    let event = "data: {\"choices\":[{\"delta\":{\"content\":\"late\"}}]}\n\n";
    let upstream = late_upstream(Duration::from_millis(400), event).await;
    let proxy = Arc::new(Proxy::new(&[upstream], timeouts(10_000, 200)).unwrap());
    // Within 3 s: the idle limit ends the answer 200 ms after its first bytes.
    let answer = streamed_chat_within(&proxy, 3).await;
    assert!(answer.starts_with(event), "{answer}");
    assert!(answer.contains("\"timeout\""), "{answer}");
}

/// An upstream that sends nothing within the first byte's limit is answered 504 and the
/// request counted as a timeout.
#[tokio::test]
async fn no_first_byte_within_its_limit_is_a_gateway_timeout() {
    let event = "data: {}\n\n";
    let upstream = late_upstream(Duration::from_secs(5), event).await;
    let proxy = Arc::new(Proxy::new(&[upstream], timeouts(300, 100)).unwrap());
    let answer = streamed_chat_within(&proxy, 3).await;
    assert!(answer.contains("upstream timed out"), "{answer}");
    assert!(
        counted(&proxy, "timeout", "http_status_class=\"5xx\""),
        "{}",
        proxy.render_metrics()
    );
}
