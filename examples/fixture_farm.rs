//! Serves real-looking engine `/metrics` bodies from many loopback ports, for measuring a
//! collector against a fleet: N listeners on consecutive ports, each answering every request
//! (keep-alive) with one of the fixture payloads in turn (vLLM 0.33, TGI 3.3, SGLang 0.5,
//! llama.cpp), and a Prometheus `file_sd` file listing them all.
//!
//! `cargo run --release --example fixture_farm -- N FIRST_PORT FILE_SD_JSON`
//! (raise `ulimit -n` above N first).

use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FIXTURES: [&str; 4] = [
    "tests/fixtures/reconstructed/vllm-0.33.txt",
    "tests/fixtures/reconstructed/tgi-3.3.txt",
    "tests/fixtures/reconstructed/sglang-0.5.23.txt",
    "tests/fixtures/llamacpp/metrics-during.txt",
];

/// Answers HTTP/1.1 requests on one connection with `response` until the peer closes.
async fn serve(mut stream: tokio::net::TcpStream, response: Arc<Vec<u8>>) {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; 8192];
    let mut filled = 0;
    loop {
        let Ok(n) = stream.read(&mut buf[filled..]).await else {
            return;
        };
        if n == 0 {
            return;
        }
        filled += n;
        // One response per complete request head; requests have no body.
        while let Some(end) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
            if stream.write_all(&response).await.is_err() {
                return;
            }
            buf.copy_within(end + 4..filled, 0);
            filled -= end + 4;
        }
        if filled == buf.len() {
            return;
        }
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: fixture_farm N FIRST_PORT FILE_SD_JSON";
    let n: u16 = args.next().context(usage)?.parse()?;
    let first: u16 = args.next().context(usage)?.parse()?;
    let file_sd = args.next().context(usage)?;
    let responses: Vec<Arc<Vec<u8>>> = FIXTURES
        .iter()
        .map(|path| {
            let body = std::fs::read(path).with_context(|| format!("{path}: run from the repository root"))?;
            let mut response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            response.extend_from_slice(&body);
            Ok(Arc::new(response))
        })
        .collect::<anyhow::Result<_>>()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut addresses = Vec::new();
        for i in 0..n {
            let port = first.checked_add(i).context("ports past 65535")?;
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
            let response = responses[usize::from(i) % responses.len()].clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve(stream, response.clone()));
                }
            });
            addresses.push(format!("\"127.0.0.1:{port}\""));
        }
        std::fs::write(
            &file_sd,
            format!("[{{\"targets\": [{}]}}]\n", addresses.join(", ")),
        )?;
        writeln!(
            std::io::stdout(),
            "fixture_farm: {n} targets from port {first}, listed in {file_sd}"
        )?;
        std::future::pending::<()>().await;
        anyhow::Ok(())
    })
}
