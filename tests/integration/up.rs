//! `llmwatch up` as a process: it scrapes simulated engines of every dialect and serves the
//! same numbers on `/metrics` and the JSON API; misbehaving targets are counted by reason
//! without delaying the others; bad configuration exits 2; targets reload.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::util::{http, start, start_with};

/// A running `llmwatch up`, killed on drop.
pub struct Up {
    child: Child,
    /// `http://ADDR`.
    pub base: String,
    /// Holds the configuration file.
    pub dir: tempfile::TempDir,
}

impl Up {
    /// The process id, for signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `llmwatch up` with `config` (TOML, `listen` set to a free port) and `args`.
pub fn start_up(config: &str, args: &[&str]) -> Up {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("llmwatch.toml");
    std::fs::write(&path, format!("listen = \"127.0.0.1:0\"\n{config}")).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_llmwatch"));
    cmd.arg("up").arg("--config").arg(&path).args(args);
    let (child, mut bases) = crate::util::spawn_serving(cmd, &["serving http://"]);
    Up {
        child,
        base: bases.remove(0),
        dir,
    }
}

/// GETs `url` and returns the status and body. A transport error is retried a few times
/// (the test machine runs many servers at once) before failing with the error.
pub fn get(url: &str) -> (u16, String) {
    let (rt, client) = http();
    rt.block_on(async {
        let mut last = String::new();
        for _ in 0..5 {
            match client.get(url).send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    match resp.text().await {
                        Ok(body) => return (status, body),
                        Err(e) => last = format!("{e:?}"),
                    }
                }
                Err(e) => last = format!("{e:?}"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("GET {url}: {last}");
    })
}

/// Polls `f` every 50 ms until it returns `Some`, for at most `secs` seconds.
pub fn eventually<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met within {secs} s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of the first `/metrics` sample whose line starts with `prefix`.
pub fn sample(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn chat(client: &reqwest::Client, base: &str, i: usize) -> f64 {
    let body = json!({
        "messages": [{"role": "user", "content": format!("question {i}")}],
        "max_tokens": 5,
    });
    let resp = client
        .post(format!("{base}/v1/chat/completions"))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let reply: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    reply["usage"]["completion_tokens"].as_f64().unwrap()
}

#[test]
fn up_serves_every_dialect_in_one_schema_and_the_api_agrees() {
    let sim = start(&["vllm", "tgi", "llamacpp", "sglang"]);
    let (rt, client) = http();
    let mut generated = Vec::new();
    for (_, base) in &sim.urls {
        let tokens = rt.block_on(async {
            let mut sum = 0.0;
            for i in 0..4 {
                sum += chat(&client, base, i).await;
            }
            sum
        });
        generated.push(tokens);
    }
    let targets: Vec<String> = sim
        .urls
        .iter()
        .map(|(dialect, base)| format!("--target={base},name=sim-{dialect},service=demo,raw=true"))
        .collect();
    let args: Vec<&str> = targets.iter().map(String::as_str).collect();
    let up = start_up("[scrape]\ninterval = \"200ms\"\n", &args);
    let snapshot: Value = eventually(10, || {
        let (_, body) = get(&format!("{}/api/v1/snapshot", up.base));
        let v: Value = serde_json::from_str(&body).ok()?;
        v["targets"]
            .as_array()?
            .iter()
            .all(|t| t["health"] == "up")
            .then_some(v)
    });
    let (status, metrics) = get(&format!("{}/metrics", up.base));
    assert_eq!(status, 200);
    for ((dialect, _), tokens) in sim.urls.iter().zip(&generated) {
        let target = snapshot["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == format!("sim-{dialect}"))
            .unwrap();
        let engine = target["engine"].as_str().unwrap();
        assert_eq!(engine, dialect.as_str());
        let api = target["signals"]["llm_generation_tokens_total"][0]["value"]
            .as_f64()
            .unwrap();
        assert_eq!(
            api, *tokens,
            "{dialect}: the API says what clients received"
        );
        let model = target["signals"]["llm_generation_tokens_total"][0]["model"]
            .as_str()
            .unwrap();
        let line = format!(
            "llm_generation_tokens_total{{engine=\"{engine}\",model=\"{model}\",instance=\"sim-{dialect}\",service=\"demo\"}} "
        );
        assert_eq!(
            sample(&metrics, &line),
            Some(*tokens),
            "{dialect}: {metrics}"
        );
        let up_line = format!("llmwatch_target_up{{instance=\"sim-{dialect}\"}} ");
        assert_eq!(sample(&metrics, &up_line), Some(1.0));
    }
    // raw=true: the engines' own series too, with the target's labels added.
    let vllm_tokens = generated[0];
    assert_eq!(
        sample(
            &metrics,
            "vllm:generation_tokens_total{engine=\"0\",model_name=\"sim-vllm\",instance=\"sim-vllm\",service=\"demo\"} "
        ),
        Some(vllm_tokens),
        "{metrics}"
    );
    assert!(metrics.contains("\ntgi_request_success{instance=\"sim-tgi\",service=\"demo\"} "));
    assert_eq!(get(&format!("{}/readyz", up.base)).0, 200);
    // Every family once, whatever the number of targets.
    let parsed = llmwatch::exposition::parse(&metrics, llmwatch::exposition::Mode::Strict).unwrap();
    assert!(parsed.duplicate_series().is_empty());
    let mut names: Vec<&str> = parsed.families.iter().map(|f| f.name).collect();
    let before = names.len();
    names.dedup();
    assert_eq!(names.len(), before, "a family split in two");
}

/// `up` scraping a simulated vLLM (started with `sim_args`) every 200 ms, after six chat
/// requests: the `/api/v1/history` series of `signal` for it once its p50 is there, and
/// `up` itself.
fn history_after_six_requests(sim_args: &[&str], signal: &str) -> (Value, Up) {
    let sim = start_with(&["vllm"], sim_args);
    let base = sim.urls[0].1.clone();
    let up = start_up(
        "[scrape]\ninterval = \"200ms\"\n",
        &[&format!("--target={base},name=v")],
    );
    let (rt, client) = http();
    rt.block_on(async {
        for i in 0..6 {
            chat(&client, &base, i).await;
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    });
    let url = format!(
        "{}/api/v1/history?signal={signal}&window=1m&target=v",
        up.base
    );
    let series = eventually(10, || {
        let (_, body) = get(&url);
        let v: Value = serde_json::from_str(&body).ok()?;
        let s = v["series"].get(0)?.clone();
        (!s["quantiles"]["0.99"].is_null()).then_some(s)
    });
    (series, up)
}

#[test]
fn history_gives_rates_and_quantiles_over_a_window() {
    let (series, up) = history_after_six_requests(&[], "llm_time_to_first_token_seconds");
    let p50 = series["quantiles"]["0.5"].as_f64().unwrap();
    let p99 = series["quantiles"]["0.99"].as_f64().unwrap();
    assert!(0.0 < p50 && p50 <= p99 && p99 < 1.0, "{series}");
    assert!(series["rate_per_second"].as_f64().unwrap() > 0.0);
    assert!(series["points"].as_array().unwrap().len() >= 2);
    let (status, body) = get(&format!("{}/api/v1/history?signal=nope", up.base));
    assert_eq!(status, 400);
    assert!(body.contains("unknown signal"), "{body}");
}

#[test]
fn a_history_quantile_in_the_first_bucket_is_a_bound_not_a_value() {
    // Instant steps: every request ends in a few milliseconds, inside vLLM's first e2e
    // bucket (0.3 s), where interpolating from zero would say 0.15 s.
    let (series, _up) =
        history_after_six_requests(&["--profile", "instant"], "llm_e2e_request_latency_seconds");
    for q in ["0.5", "0.9", "0.99"] {
        assert_eq!(series["quantiles"][q], json!({"at_most": 0.3}), "{series}");
    }
}

/// A target that misbehaves in one way, on its own port.
fn misbehaving(kind: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    if kind == "refused" {
        drop(listener);
        return format!("http://{addr}");
    }
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let head = |ct: &str, extra: &str| {
                    format!("HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\n{extra}\r\n")
                };
                let _ = match kind {
                    "silent" => {
                        std::thread::sleep(Duration::from_secs(30));
                        Ok(())
                    }
                    "trickle" => {
                        let _ = stream.write_all(head("text/plain", "").as_bytes());
                        for _ in 0..300 {
                            if stream.write_all(b"#").is_err() {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        Ok(())
                    }
                    "error" => stream.write_all(
                        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops",
                    ),
                    "html" => {
                        let body = "<html><body>502 Bad Gateway</body></html>";
                        let h = head("text/html", &format!("Content-Length: {}\r\n", body.len()));
                        stream.write_all(format!("{h}{body}").as_bytes())
                    }
                    "gzip" => {
                        let body = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3];
                        let h = head("text/plain", &format!("Content-Length: {}\r\n", body.len()));
                        let _ = stream.write_all(h.as_bytes());
                        stream.write_all(&body)
                    }
                    _ => {
                        // "huge": 100 MB of valid-looking samples, streamed until refused.
                        let _ = stream.write_all(head("text/plain", "").as_bytes());
                        let line = b"vllm:num_requests_running{model_name=\"m\"} 1\n".repeat(1000);
                        let mut sent = 0;
                        while sent < 100_000_000 && stream.write_all(&line).is_ok() {
                            sent += line.len();
                        }
                        Ok(())
                    }
                };
            });
        }
    });
    format!("http://{addr}")
}

#[test]
fn misbehaving_targets_are_counted_by_reason_and_never_delay_the_others() {
    let sim = start(&["vllm"]);
    let kinds = [
        "refused", "silent", "trickle", "error", "html", "gzip", "huge",
    ];
    let mut args: Vec<String> = kinds
        .iter()
        .map(|k| format!("--target={},name={k}", misbehaving(k)))
        .collect();
    args.push(format!("--target={},name=good", sim.urls[0].1));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let up = start_up(
        "[scrape]\ninterval = \"300ms\"\ntimeout = \"700ms\"\nmax_body_bytes = 1000000\n",
        &args,
    );
    let expected = [
        ("refused", "refused"),
        ("silent", "timeout"),
        ("trickle", "timeout"),
        ("error", "http_status"),
        ("html", "html"),
        ("gzip", "gzip"),
        ("huge", "body_too_large"),
    ];
    let metrics = eventually(15, || {
        let (_, m) = get(&format!("{}/metrics", up.base));
        expected
            .iter()
            .all(|(name, reason)| {
                let line = format!(
                    "llmwatch_scrape_failures_total{{instance=\"{name}\",reason=\"{reason}\"}} "
                );
                sample(&m, &line).is_some_and(|n| n >= 1.0)
            })
            .then_some(m)
    });
    for (name, _) in expected {
        assert_eq!(
            sample(
                &metrics,
                &format!("llmwatch_target_up{{instance=\"{name}\"}} ")
            ),
            Some(0.0)
        );
    }
    // Meanwhile the good target kept its 300 ms schedule.
    let started = Instant::now();
    let first = sample(&metrics, "llmwatch_scrapes_total{instance=\"good\"} ").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let (_, later) = get(&format!("{}/metrics", up.base));
    let scrapes = sample(&later, "llmwatch_scrapes_total{instance=\"good\"} ").unwrap() - first;
    let expected_scrapes = started.elapsed().as_secs_f64() / 0.3;
    assert!(
        scrapes >= expected_scrapes * 0.7,
        "{scrapes} scrapes, expected ~{expected_scrapes}"
    );
    assert_eq!(
        sample(&later, "llmwatch_target_up{instance=\"good\"} "),
        Some(1.0)
    );
    let (_, targets) = get(&format!("{}/api/v1/targets", up.base));
    let targets: Value = serde_json::from_str(&targets).unwrap();
    let html = targets["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "html")
        .unwrap();
    assert!(
        html["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("HTML page")
    );
}

#[test]
fn a_target_that_fails_after_working_keeps_its_last_good_state() {
    let sim = start(&["tgi"]);
    let base = sim.urls[0].1.clone();
    let up = start_up(
        "[scrape]\ninterval = \"200ms\"\ntimeout = \"500ms\"\n",
        &[&format!("--target={base},name=t")],
    );
    let url = format!("{}/api/v1/snapshot", up.base);
    let good = eventually(10, || {
        let v: Value = serde_json::from_str(&get(&url).1).ok()?;
        (v["targets"][0]["health"] == "up").then_some(v)
    });
    drop(sim);
    let after = eventually(10, || {
        let v: Value = serde_json::from_str(&get(&url).1).ok()?;
        (v["targets"][0]["health"] == "down").then_some(v)
    });
    assert_eq!(after["targets"][0]["engine"], "tgi");
    let (good_at, kept_at) = (
        good["targets"][0]["at"].as_f64(),
        after["targets"][0]["at"].as_f64(),
    );
    assert!(kept_at >= good_at && kept_at.is_some());
    assert!(after["targets"][0]["signals"]["llm_requests_running"].is_array());
    // /metrics drops a down target's engine series, as Prometheus marks them stale.
    let (_, metrics) = get(&format!("{}/metrics", up.base));
    assert!(!metrics.contains("instance=\"t\",version"), "{metrics}");
    assert_eq!(
        sample(&metrics, "llmwatch_target_up{instance=\"t\"} "),
        Some(0.0)
    );
}
