//! Real clients through the proxy: the official OpenAI Python SDK in every mode (streamed with
//! and without usage, whole answers, a stream the client abandons) and a raw-socket client
//! that closes its connection as soon as it reads `data: [DONE]`, against the simulator and a
//! real llama.cpp server. Every outcome and token count the proxy records must equal what the
//! client saw; an answer that reached its end is never a client disconnect.
//!
//! The SDK runs in the Python named by `LLMWATCH_OPENAI_PYTHON` (`.ci/run` installs `openai`
//! into one), or `python3` when it can import `openai`; the tests skip without one unless
//! `LLMWATCH_REQUIRE_EXTERNAL=1`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::proxy::{outcome, start_proxy};
use crate::up::{eventually, get};
use crate::util::start_with;

/// Sums the samples of `name` whose labels contain every one of `labels`.
fn total(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn proxy_metrics(base: &str) -> String {
    get(&format!("{base}/metrics")).1
}

/// Streams one chat answer over a plain socket and closes the connection the moment the
/// `[DONE]` event has arrived, before the chunked body's end. What arrived, when `[DONE]`
/// did not.
fn stream_and_close_on_done(base: &str, model: &str, max_tokens: u32) -> Result<(), String> {
    let addr = base.trim_start_matches("http://");
    let mut socket = TcpStream::connect(addr).unwrap();
    socket.set_nodelay(true).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let body = json!({
        "model": model,
        "messages": [{"role": "user", "content": "Count to twenty."}],
        "max_tokens": max_tokens,
        "stream": true,
    })
    .to_string();
    write!(
        socket,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match socket.read(&mut buffer) {
            Ok(0) => return Err(format!("closed: {}", String::from_utf8_lossy(&seen))),
            Err(e) => return Err(format!("{e}: {}", String::from_utf8_lossy(&seen))),
            Ok(n) => seen.extend_from_slice(&buffer[..n]),
        }
        if seen.windows(12).any(|w| w == b"data: [DONE]") {
            // Dropping the socket closes it now, whatever the server still has to send.
            return Ok(());
        }
    }
}

/// An upstream that streams a whole answer and `[DONE]`, then holds the chunked body open
/// for half a second before ending it: a client that closes on `[DONE]` is then always gone
/// before the upstream's body ends.
fn slow_ending_upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for socket in listener.incoming() {
            let Ok(socket) = socket else { continue };
            std::thread::spawn(move || answer_slowly(socket));
        }
    });
    base
}

fn answer_slowly(mut socket: TcpStream) {
    // The request: headers, then Content-Length bytes of body.
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    let body_start = loop {
        let Ok(n) = socket.read(&mut buffer) else {
            return;
        };
        if n == 0 {
            return;
        }
        request.extend_from_slice(&buffer[..n]);
        if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&request[..body_start]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while request.len() < body_start + length {
        match socket.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    }
    let events = [
        r#"{"id":"x","object":"chat.completion.chunk","model":"slow","choices":[{"index":0,"delta":{"role":"assistant","content":"one"},"finish_reason":null}]}"#,
        r#"{"id":"x","object":"chat.completion.chunk","model":"slow","choices":[{"index":0,"delta":{"content":" two"},"finish_reason":"stop"}]}"#,
        r#"{"id":"x","object":"chat.completion.chunk","model":"slow","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#,
        "[DONE]",
    ];
    let mut out = String::from(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    for event in events {
        let data = format!("data: {event}\n\n");
        out.push_str(&format!("{:x}\r\n{data}\r\n", data.len()));
    }
    if socket.write_all(out.as_bytes()).is_err() {
        return;
    }
    std::thread::sleep(Duration::from_millis(500));
    let _ = socket.write_all(b"0\r\n\r\n");
}

#[test]
fn a_stream_closed_by_its_client_on_done_is_completed_not_a_disconnect() {
    let upstream = slow_ending_upstream();
    let proxy = start_proxy(&[&upstream], &[]);
    for _ in 0..5 {
        stream_and_close_on_done(&proxy.base, "slow", 2).unwrap();
    }
    eventually(10, || {
        let m = proxy_metrics(&proxy.base);
        (total(&m, "llm_proxy_requests_total", &[]) >= 5.0).then_some(())
    });
    // Past the upstream's end too, so a wrongly counted disconnect would have shown up.
    std::thread::sleep(Duration::from_millis(700));
    let metrics = proxy_metrics(&proxy.base);
    assert_eq!(outcome(&metrics, "completed", "2xx"), 5.0, "{metrics}");
    assert_eq!(
        outcome(&metrics, "client_disconnect", "2xx"),
        0.0,
        "{metrics}"
    );
    let output = total(
        &metrics,
        "gen_ai_client_token_usage_sum",
        &["gen_ai_token_type=\"output\""],
    );
    assert_eq!(output, 10.0, "usage read before the client left: {metrics}");
}

/// Sends `n` raw streams that close on `[DONE]` through a proxy in front of `upstream` and
/// checks every one is counted as a finished answer. `upstream_gone` says why the upstream
/// went away, if it did, for the message of a stream that failed.
fn raw_clients_count_no_disconnects(
    upstream: &str,
    model: &str,
    n: usize,
    max_tokens: u32,
    mut upstream_gone: impl FnMut() -> Option<String>,
) {
    let proxy = start_proxy(&[upstream], &[]);
    for i in 0..n {
        if let Err(e) = stream_and_close_on_done(&proxy.base, model, max_tokens) {
            panic!("stream {i}: {e}; upstream: {:?}", upstream_gone());
        }
    }
    let metrics = eventually(30, || {
        let m = proxy_metrics(&proxy.base);
        (total(&m, "llm_proxy_requests_total", &[]) >= n as f64).then_some(m)
    });
    let done = outcome(&metrics, "completed", "2xx") + outcome(&metrics, "length", "2xx");
    assert_eq!(done, n as f64, "{metrics}");
    assert_eq!(
        outcome(&metrics, "client_disconnect", "2xx"),
        0.0,
        "{metrics}"
    );
}

#[test]
fn raw_clients_closing_on_done_through_the_proxy_are_never_disconnects() {
    let sim = start_with(&["vllm"], &["--profile", "instant"]);
    raw_clients_count_no_disconnects(&sim.urls[0].1, "sim-vllm", 30, 8, || None);
}

#[test]
fn raw_clients_closing_on_done_before_a_real_llamacpp_server_are_never_disconnects() {
    let Some(mut server) = crate::llamacpp_real::start_llama_server() else {
        return;
    };
    let base = server.base.clone();
    raw_clients_count_no_disconnects(&base, "gemma3-270m", 20, 8, || server.gone());
}

/// The Python that has the OpenAI SDK, or `None` (then the test skips) when there is none.
fn openai_python() -> Option<String> {
    crate::util::python_with("LLMWATCH_OPENAI_PYTHON", "openai", "the openai package")
}

/// Runs the SDK client in `mode` `count` times against `base`; what it saw, per request.
fn sdk(python: &str, base: &str, model: &str, mode: &str, count: u32, max: u32) -> Vec<Value> {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/openai_client.py");
    let out = Command::new(python)
        .arg(&script)
        .args([base, model, mode, &count.to_string(), &max.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{mode}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    report["requests"].as_array().unwrap().clone()
}

/// What the proxy counted for one model, as totals that grow with each request.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Counted {
    finished: f64,
    disconnects: f64,
    input_tokens: f64,
    output_tokens: f64,
    chunk_gaps: f64,
}

fn counted(base: &str) -> Counted {
    let m = proxy_metrics(base);
    let tokens = |kind: &str| {
        total(
            &m,
            "gen_ai_client_token_usage_sum",
            &[&format!("gen_ai_token_type=\"{kind}\"")],
        )
    };
    Counted {
        finished: outcome(&m, "completed", "2xx") + outcome(&m, "length", "2xx"),
        disconnects: outcome(&m, "client_disconnect", "2xx"),
        input_tokens: tokens("input"),
        output_tokens: tokens("output"),
        chunk_gaps: total(
            &m,
            "gen_ai_client_operation_time_per_output_chunk_seconds_count",
            &[],
        ),
    }
}

/// The difference the mode made, once the proxy has recorded all `count` requests.
fn delta_after(base: &str, before: Counted, count: f64) -> Counted {
    eventually(30, || {
        let now = counted(base);
        let d = Counted {
            finished: now.finished - before.finished,
            disconnects: now.disconnects - before.disconnects,
            input_tokens: now.input_tokens - before.input_tokens,
            output_tokens: now.output_tokens - before.output_tokens,
            chunk_gaps: now.chunk_gaps - before.chunk_gaps,
        };
        (d.finished + d.disconnects >= count).then_some(d)
    })
}

fn sum(requests: &[Value], field: &str) -> f64 {
    requests.iter().filter_map(|r| r[field].as_f64()).sum()
}

/// Every SDK mode through a proxy in front of `upstream`. `tokens_per_chunk_is_one` holds
/// where each content chunk carries one token (the simulator), so a client that asked for no
/// usage can still check the proxy's output count.
fn sdk_modes_agree(python: &str, upstream: &str, model: &str, tokens_per_chunk_is_one: bool) {
    let proxy = start_proxy(&[upstream], &[]);
    let base = &proxy.base;
    let n = 4;
    for mode in ["stream_usage", "whole"] {
        let before = counted(base);
        let seen = sdk(python, base, model, mode, n, 12);
        let d = delta_after(base, before, f64::from(n));
        assert!(
            seen.iter().all(|r| r["finished"] == true),
            "{mode}: {seen:?}"
        );
        assert_eq!(d.finished, f64::from(n), "{mode}: {d:?}");
        assert_eq!(d.disconnects, 0.0, "{mode}: {d:?}");
        assert_eq!(d.input_tokens, sum(&seen, "prompt_tokens"), "{mode}: {d:?}");
        assert_eq!(
            d.output_tokens,
            sum(&seen, "completion_tokens"),
            "{mode}: {d:?}"
        );
        if mode == "stream_usage" {
            let gaps: f64 = seen
                .iter()
                .map(|r| (r["content_chunks"].as_f64().unwrap() - 1.0).max(0.0))
                .sum();
            assert_eq!(d.chunk_gaps, gaps, "{mode}: {d:?}");
        }
    }
    let before = counted(base);
    let seen = sdk(python, base, model, "stream_plain", n, 12);
    let d = delta_after(base, before, f64::from(n));
    assert_eq!((d.finished, d.disconnects), (f64::from(n), 0.0), "{d:?}");
    assert!(
        seen.iter().all(|r| r["completion_tokens"].is_null()),
        "the usage chunk the proxy asked for is not passed on: {seen:?}"
    );
    let chunks = sum(&seen, "content_chunks");
    assert_eq!(d.chunk_gaps, chunks - f64::from(n), "{d:?}");
    if tokens_per_chunk_is_one {
        assert_eq!(d.output_tokens, chunks, "{d:?}");
    }
    let before = counted(base);
    let seen = sdk(python, base, model, "abandoned", n, 200);
    assert!(seen.iter().all(|r| r["finished"] == false), "{seen:?}");
    let d = delta_after(base, before, f64::from(n));
    assert_eq!((d.finished, d.disconnects), (0.0, f64::from(n)), "{d:?}");
}

#[test]
fn the_openai_python_sdk_through_the_proxy_counts_what_the_client_saw() {
    let Some(python) = openai_python() else {
        return;
    };
    let sim = start_with(&["vllm"], &["--profile", "gpu-7b"]);
    sdk_modes_agree(&python, &sim.urls[0].1, "sim-vllm", true);
}

#[test]
fn the_openai_python_sdk_before_a_real_llamacpp_server_counts_what_the_client_saw() {
    let Some(python) = openai_python() else {
        return;
    };
    let Some(server) = crate::llamacpp_real::start_llama_server() else {
        return;
    };
    let base = server.base.clone();
    sdk_modes_agree(&python, &base, "gemma3-270m", false);
}
