//! A minimal streaming load client for measuring the simulator itself: N concurrent
//! connections, each sending streamed chat requests back to back for a fixed time; counts
//! completion tokens from each stream's usage chunk, then prints the simulator's own
//! schedule-lag statistics.
//!
//! `cargo run --release --example stream_load -- URL CONCURRENCY SECONDS MAX_TOKENS`
//! (raise `ulimit -n` first for thousands of connections).

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;

async fn one_stream(client: &reqwest::Client, url: &str, body: &str) -> anyhow::Result<u64> {
    let mut resp = client
        .post(format!("{url}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await?;
    let mut tail: Vec<u8> = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        tail.extend_from_slice(&chunk);
        if tail.len() > 4096 {
            tail.drain(..tail.len() - 1024);
        }
    }
    let text = String::from_utf8_lossy(&tail);
    let at = text
        .rfind("\"completion_tokens\":")
        .context("no usage chunk in the stream")?;
    let digits: String = text[at + 20..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Ok(digits.parse()?)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .context("usage: stream_load URL CONCURRENCY SECONDS MAX_TOKENS")?;
    let concurrency: usize = args.next().context("CONCURRENCY")?.parse()?;
    let seconds: u64 = args.next().context("SECONDS")?.parse()?;
    let max_tokens: u32 = args.next().context("MAX_TOKENS")?.parse()?;
    llmwatch::collect::fetch::install_tls_provider();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency)
            .build()?;
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..concurrency {
            let client = client.clone();
            let url = url.clone();
            tasks.spawn(async move {
                let body = serde_json::json!({
                    "messages": [{"role": "user", "content": format!("load {i}")}],
                    "max_tokens": max_tokens,
                    "stream": true,
                    "stream_options": {"include_usage": true},
                })
                .to_string();
                let (mut tokens, mut requests, mut errors) = (0u64, 0u64, 0u64);
                while Instant::now() < deadline {
                    match one_stream(&client, &url, &body).await {
                        Ok(n) => {
                            tokens += n;
                            requests += 1;
                        }
                        Err(_) => errors += 1,
                    }
                }
                (tokens, requests, errors)
            });
        }
        let (mut tokens, mut requests, mut errors) = (0u64, 0u64, 0u64);
        while let Some(result) = tasks.join_next().await {
            let (t, r, e) = result?;
            tokens += t;
            requests += r;
            errors += e;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let stats_body = client
            .get(format!("{url}/sim/stats"))
            .send()
            .await?
            .bytes()
            .await?;
        let stats: serde_json::Value = serde_json::from_slice(&stats_body).unwrap_or_default();
        let report = serde_json::json!({
            "concurrency": concurrency,
            "seconds": elapsed,
            "requests": requests,
            "errors": errors,
            "tokens": tokens,
            "tokens_per_second": tokens as f64 / elapsed,
            "sim_stats": stats,
        });
        writeln!(
            std::io::stdout(),
            "{}",
            serde_json::to_string_pretty(&report)?
        )?;
        anyhow::Ok(())
    })
}
