//! A minimal streaming load client for measuring the simulator itself: N concurrent
//! connections, each sending streamed chat requests back to back for a fixed time; counts
//! completion tokens from each stream's usage chunk, then prints the simulator's own
//! schedule-lag statistics. It also reads the simulator's token counter at 3 s and 1 s before
//! the end: tokens per second over that window are the steady state, without the ramp-up
//! while thousands of connections open and the tail while the last answers finish.
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

async fn sim_stats(client: &reqwest::Client, url: &str) -> anyhow::Result<serde_json::Value> {
    let body = client
        .get(format!("{url}/sim/stats"))
        .send()
        .await?
        .bytes()
        .await?;
    Ok(serde_json::from_slice(&body)?)
}

/// Engine tokens per second between 3 s in and 1 s before the end, and the requests running
/// in the engine over that window (sampled every 100 ms).
async fn steady_state(
    client: reqwest::Client,
    url: String,
    seconds: u64,
) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(
        seconds > 5,
        "the steady-state window needs a run longer than 5 s"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (t0, first) = (Instant::now(), sim_stats(&client, &url).await?);
    let end = t0 + Duration::from_secs(seconds - 4);
    let running = |v: &serde_json::Value| v["running"].as_f64().unwrap_or(0.0);
    let mut samples = vec![running(&first)];
    let mut last = first.clone();
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
        last = sim_stats(&client, &url).await?;
        samples.push(running(&last));
    }
    let t1 = Instant::now();
    let tokens = |v: &serde_json::Value| v["generated_tokens"].as_f64().unwrap_or(0.0);
    let window = (t1 - t0).as_secs_f64();
    Ok(serde_json::json!({
        "window_seconds": window,
        "tokens_per_second": (tokens(&last) - tokens(&first)) / window,
        "running_mean": samples.iter().sum::<f64>() / samples.len() as f64,
        "running_min": samples.iter().copied().fold(f64::INFINITY, f64::min),
    }))
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
        let steady = tokio::spawn(steady_state(client.clone(), url.clone(), seconds));
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
        let stats = sim_stats(&client, &url).await.unwrap_or_default();
        let steady = steady.await??;
        let report = serde_json::json!({
            "concurrency": concurrency,
            "seconds": elapsed,
            "requests": requests,
            "errors": errors,
            "tokens": tokens,
            "tokens_per_second": tokens as f64 / elapsed,
            "steady_state": steady,
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
