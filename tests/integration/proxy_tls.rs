//! `llmwatch proxy` in front of an HTTPS upstream that offers HTTP/2 by ALPN (a private CA,
//! trusted with `--upstream-ca`): the stream reaches the client event by event, the upstream
//! is spoken to in HTTP/2, usage is asked for and stripped, and the request is measured. An
//! upstream whose certificate nobody trusts is an upstream error, counted, never a panic.

use std::convert::Infallible;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use futures_util::StreamExt;
use hyper::{Request, Response};
use serde_json::json;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::up::{eventually, get};
use crate::util::{KillOnDrop, fixture, http, run_err, spawn_serving, start_up_with_proxy};

/// What the upstream saw of each request: its HTTP version and its body.
type Seen = Arc<Mutex<Vec<(hyper::Version, String)>>>;

/// A TLS server on a free loopback port offering `h2` and `http/1.1`, answering every
/// request with a three-token chat stream (and a usage chunk when asked), on its own thread.
fn start_tls_upstream() -> (u16, Seen) {
    let seen: Seen = Arc::default();
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let recorded = seen.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(serve_tls(port_tx, recorded));
    });
    (port_rx.recv().unwrap(), seen)
}

async fn serve_tls(port_tx: std::sync::mpsc::Sender<u16>, seen: Seen) {
    let certs = CertificateDer::pem_file_iter(fixture("tls/server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(fixture("tls/server.key")).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    port_tx.send(listener.local_addr().unwrap().port()).unwrap();
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let seen = seen.clone();
        tokio::spawn(async move {
            // A client that rejects the certificate ends the handshake here.
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper::service::service_fn(move |request| answer(request, seen.clone()));
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
        });
    }
}

async fn answer(
    request: Request<hyper::body::Incoming>,
    seen: Seen,
) -> Result<Response<Body>, Infallible> {
    let version = request.version();
    let body = axum::body::to_bytes(Body::new(request.into_body()), 1 << 20)
        .await
        .unwrap_or_default();
    let body = String::from_utf8_lossy(&body).into_owned();
    let usage = body.contains("\"include_usage\":true");
    seen.lock().unwrap().push((version, body));
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        json!({"id": "c", "object": "chat.completion.chunk", "model": "tls-model",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut events = vec![chunk(json!({"role": "assistant"}), None)];
    events.extend(["one", " two", " three"].map(|t| chunk(json!({"content": t}), None)));
    events.push(chunk(json!({}), Some("stop")));
    if usage {
        events.push(
            json!({"id": "c", "object": "chat.completion.chunk", "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}),
        );
    }
    let mut frames: Vec<String> = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    frames.push("data: [DONE]\n\n".into());
    let stream = futures_util::stream::iter(frames).then(|frame| async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        Ok::<_, Infallible>(frame)
    });
    Ok(Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap())
}

/// The sum of `name`'s samples carrying every `label="value"` pair.
fn sum(metrics: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn start_proxy(upstream: &str, extra: &[&str]) -> (KillOnDrop, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_llmwatch"));
    cmd.args(["proxy", "--listen", "127.0.0.1:0", "--upstream", upstream])
        .args(extra);
    let (child, mut bases) = spawn_serving(cmd, &["serving http://"]);
    (KillOnDrop(child), bases.remove(0))
}

/// Streams one chat request through the proxy; returns (status, body).
fn stream_chat(base: &str) -> (u16, String) {
    let (rt, client) = http();
    rt.block_on(async {
        let response = client
            .post(format!("{base}/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(json!({"model": "tls-model", "stream": true, "messages": []}).to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    })
}

#[test]
fn proxy_streams_from_an_https_upstream_over_http2() {
    let (port, seen) = start_tls_upstream();
    let ca = fixture("tls/ca.pem");
    let (_proxy, base) = start_proxy(
        &format!("https://localhost:{port}"),
        &["--upstream-ca", ca.to_str().unwrap()],
    );
    let (status, body) = stream_chat(&base);
    assert_eq!(status, 200, "{body}");
    let contents: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| d.contains("\"content\""))
        .collect();
    assert_eq!(contents.len(), 3, "three content events: {body}");
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    assert!(
        !body.contains("\"usage\""),
        "the usage chunk the client did not ask for is removed: {body}"
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, hyper::Version::HTTP_2, "ALPN chose HTTP/2");
    assert!(
        seen[0].1.contains("\"include_usage\":true"),
        "{}",
        seen[0].1
    );
    let metrics = eventually(10, || {
        let (_, text) = get(&format!("{base}/metrics"));
        (sum(
            &text,
            "llm_proxy_requests_total",
            &[("outcome", "completed")],
        ) == 1.0)
            .then_some(text)
    });
    let tokens = sum(
        &metrics,
        "gen_ai_client_token_usage_sum",
        &[("gen_ai_token_type", "output")],
    );
    assert_eq!(tokens, 3.0, "output tokens from the upstream's usage");
    let source = sum(
        &metrics,
        "llm_proxy_output_token_source_total",
        &[("source", "usage")],
    );
    assert_eq!(source, 1.0, "{metrics}");
}

#[test]
fn proxy_counts_an_untrusted_https_upstream_as_an_upstream_error() {
    let (port, seen) = start_tls_upstream();
    let (_proxy, base) = start_proxy(&format!("https://localhost:{port}"), &[]);
    let (status, body) = stream_chat(&base);
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("certificate") || body.contains("Certificate"),
        "{body}"
    );
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing reached the upstream"
    );
    eventually(10, || {
        let (_, text) = get(&format!("{base}/metrics"));
        let counted = sum(
            &text,
            "llm_proxy_requests_total",
            &[("outcome", "upstream_error"), ("http_status_class", "5xx")],
        );
        (counted == 1.0).then_some(())
    });
}

#[test]
fn proxy_refuses_an_unreadable_upstream_ca_naming_the_file() {
    let refused = |ca: &str| {
        run_err(&[
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "https://localhost:1",
            "--upstream-ca",
            ca,
        ])
    };
    let stderr = refused("/nonexistent/ca.pem");
    assert!(stderr.contains("/nonexistent/ca.pem"), "{stderr}");
    let stderr = refused(fixture("tls/README.md").to_str().unwrap());
    assert!(stderr.contains("no PEM certificate"), "{stderr}");
}

#[test]
fn up_runs_its_proxy_to_an_https_upstream_with_the_configured_ca() {
    let (port, seen) = start_tls_upstream();
    let sim = crate::util::start(&["vllm"]);
    let config = format!(
        "listen = \"127.0.0.1:0\"\n[proxy]\nlisten = \"127.0.0.1:0\"\nupstream = [\"https://localhost:{port}\"]\nupstream_ca = {:?}\n",
        fixture("tls/ca.pem").to_str().unwrap()
    );
    let (_guard, _up, proxy) = start_up_with_proxy(&config, &sim.urls[0].1);
    let (status, body) = stream_chat(&proxy);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.matches("\"content\"").count(), 3, "{body}");
    assert_eq!(seen.lock().unwrap()[0].0, hyper::Version::HTTP_2);
}
