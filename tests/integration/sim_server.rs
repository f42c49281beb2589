//! The real binary serving simulated engines: clients' `usage` and `llmwatch scrape` of each
//! dialect must agree, and bad requests get the documented errors.

use serde_json::{Value, json};

use crate::util::{http, run_ok, start, start_with};

pub async fn post(client: &reqwest::Client, url: &str, body: &str) -> (u16, Vec<u8>) {
    let resp = client
        .post(format!("{url}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.bytes().await.unwrap().to_vec())
}

/// Sends `n` requests (alternating plain and streamed) and returns Σ prompt and completion
/// tokens from the responses' `usage`.
async fn traffic(client: &reqwest::Client, url: &str, model: &str, n: usize) -> (f64, f64) {
    let mut sums = (0.0, 0.0);
    for i in 0..n {
        let stream = i % 2 == 1;
        let body = json!({
            "model": model,
            "messages": [{"role": "user", "content": format!("question number {i} about the sea")}],
            "max_tokens": 6,
            "stream": stream,
            "stream_options": {"include_usage": true},
        });
        let (status, bytes) = post(client, url, &body.to_string()).await;
        assert_eq!(status, 200);
        let usage = if stream {
            let text = String::from_utf8(bytes).unwrap();
            assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
            let first: Value =
                serde_json::from_str(text.lines().next().unwrap().trim_start_matches("data: "))
                    .unwrap();
            assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
            let usage_line = text.lines().find(|l| l.contains("\"usage\":{")).unwrap();
            let chunk: Value =
                serde_json::from_str(usage_line.trim_start_matches("data: ")).unwrap();
            chunk["usage"].clone()
        } else {
            let reply: Value = serde_json::from_slice(&bytes).unwrap();
            reply["usage"].clone()
        };
        sums.0 += usage["prompt_tokens"].as_f64().unwrap();
        sums.1 += usage["completion_tokens"].as_f64().unwrap();
    }
    sums
}

#[test]
fn every_dialect_scrapes_as_what_clients_received() {
    let sim = start(&["vllm", "vllm-0.10", "tgi", "llamacpp", "sglang"]);
    let (rt, client) = http();
    for (dialect, url) in &sim.urls {
        let model = format!("sim-{dialect}");
        let (prompt, completion) = rt.block_on(traffic(&client, url, &model, 6));
        let out = run_ok(&["scrape", url, "--format", "json"]);
        let json: Value = serde_json::from_str(&out).unwrap();
        let engine = dialect.split('-').next().unwrap();
        assert_eq!(json["engine"], engine, "{dialect}");
        assert_eq!(json["version_source"], "endpoint", "{dialect}");
        let value = |signal: &str| json["signals"][signal]["values"][0]["value"].as_f64();
        assert_eq!(
            value("llm_generation_tokens_total"),
            Some(completion),
            "{dialect}: {json}"
        );
        assert_eq!(value("llm_prompt_tokens_total"), Some(prompt), "{dialect}");
        assert_eq!(value("llm_requests_running"), Some(0.0), "{dialect}");
        assert_eq!(
            json["signals"]["llm_prompt_tokens_total"]["values"][0]["model"],
            model
        );
    }
}

#[test]
fn bad_requests_get_openai_style_errors() {
    let sim = start(&["vllm"]);
    let url = &sim.urls[0].1;
    let (rt, client) = http();
    rt.block_on(async {
        let (status, body) = post(&client, url, "{not json").await;
        assert_eq!(status, 400);
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("invalid JSON")
        );
        let (status, _) = post(&client, url, r#"{"model":"nope","messages":[]}"#).await;
        assert_eq!(status, 404);
        let (status, _) = post(&client, url, r#"{"model":"sim-vllm"}"#).await;
        assert_eq!(status, 400);
        let huge = format!(
            r#"{{"messages":[{{"content":"{}"}}]}}"#,
            "a".repeat(2 << 20)
        );
        let (status, _) = post(&client, url, &huge).await;
        assert_eq!(status, 413);
    });
}

#[test]
fn ground_truth_lists_every_request_with_its_timeline() {
    let sim = start(&["vllm"]);
    let url = sim.urls[0].1.clone();
    let (rt, client) = http();
    let (_, completion) = rt.block_on(traffic(&client, &url, "sim-vllm", 5));
    let body = rt.block_on(async {
        let resp = client
            .get(format!("{url}/sim/requests"))
            .send()
            .await
            .unwrap();
        resp.text().await.unwrap()
    });
    let records: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 5);
    let tokens: f64 = records
        .iter()
        .map(|r| r["completion_tokens"].as_f64().unwrap())
        .sum();
    assert_eq!(tokens, completion);
    for r in &records {
        let arrival = r["arrival"].as_f64().unwrap();
        let first = r["first_token"].as_f64().unwrap();
        let finished = r["finished"].as_f64().unwrap();
        assert!(arrival <= first && first <= finished, "{r}");
        let times = r["token_times"].as_array().unwrap();
        assert_eq!(times.len() as f64, r["completion_tokens"].as_f64().unwrap());
        assert!(r["epoch_unix"].as_f64().unwrap() > 1.7e9);
    }
}

async fn post_with(
    client: &reqwest::Client,
    url: &str,
    fault: &str,
    stream: bool,
) -> Result<
    (
        u16,
        reqwest::header::HeaderMap,
        Vec<(std::time::Instant, Vec<u8>)>,
    ),
    reqwest::Error,
> {
    let body = json!({
        "messages": [{"role": "user", "content": "tell me about the sea, at length"}],
        "max_tokens": 12,
        "stream": stream,
    });
    let mut resp = client
        .post(format!("{url}/v1/chat/completions"))
        .header("x-llmwatch-sim-fault", fault)
        .body(body.to_string())
        .send()
        .await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut chunks = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        chunks.push((std::time::Instant::now(), chunk.to_vec()));
    }
    Ok((status, headers, chunks))
}

fn text(chunks: &[(std::time::Instant, Vec<u8>)]) -> String {
    chunks
        .iter()
        .map(|(_, c)| String::from_utf8_lossy(c).to_string())
        .collect()
}

#[test]
fn forced_faults_behave_as_documented() {
    let sim = start(&["vllm"]);
    let url = sim.urls[0].1.clone();
    let (rt, client) = http();
    rt.block_on(async {
        let (status, _, chunks) = post_with(&client, &url, "error", false).await.unwrap();
        assert_eq!(status, 500);
        assert!(text(&chunks).contains("simulated engine error"));

        let (status, headers, _) = post_with(&client, &url, "overloaded", true).await.unwrap();
        assert_eq!(status, 429);
        assert_eq!(headers["retry-after"], "1");

        let sent = std::time::Instant::now();
        let (status, _, _) = post_with(&client, &url, "delay:300", false).await.unwrap();
        assert_eq!(status, 200);
        assert!(sent.elapsed() >= std::time::Duration::from_millis(300));

        let (status, _, chunks) = post_with(&client, &url, "stall:300", true).await.unwrap();
        assert_eq!(status, 200);
        assert!(text(&chunks).ends_with("data: [DONE]\n\n"));
        let longest_gap = chunks.windows(2).map(|w| w[1].0 - w[0].0).max().unwrap();
        assert!(
            longest_gap >= std::time::Duration::from_millis(300),
            "{longest_gap:?}"
        );

        let (status, _, chunks) = post_with(&client, &url, "midstream-error", true)
            .await
            .unwrap();
        assert_eq!(status, 200, "the error comes after HTTP 200");
        let body = text(&chunks);
        assert!(body.contains("data: {\"error\""), "{body}");
        assert!(!body.contains("[DONE]"), "{body}");

        let reset = post_with(&client, &url, "reset", false).await;
        assert!(reset.is_err(), "the connection must drop: {reset:?}");

        let (status, _, _) = post_with(&client, &url, "no-such-fault", false)
            .await
            .unwrap();
        assert_eq!(status, 400);

        let (status, _, chunks) = post_with(&client, &url, "die", false).await.unwrap();
        assert_eq!(status, 500);
        assert!(text(&chunks).contains("died"));
        let (status, _) = post(&client, &url, r#"{"messages":[{"content":"hi"}]}"#).await;
        assert_eq!(status, 500, "dead until revived");
        let revived = client
            .post(format!("{url}/sim/revive"))
            .send()
            .await
            .unwrap();
        assert_eq!(revived.status().as_u16(), 200);
        let (status, _) = post(&client, &url, r#"{"messages":[{"content":"hi"}]}"#).await;
        assert_eq!(status, 200);
    });
}

#[test]
fn configured_rates_and_queue_limit_apply_to_every_request() {
    let failing = start_with(&["tgi"], &["--error-rate", "1"]);
    let full = start_with(&["sglang"], &["--max-waiting", "0"]);
    let (rt, client) = http();
    rt.block_on(async {
        for _ in 0..3 {
            let (status, _) = post(
                &client,
                &failing.urls[0].1,
                r#"{"messages":[{"content":"a"}]}"#,
            )
            .await;
            assert_eq!(status, 500);
            let (status, _) = post(
                &client,
                &full.urls[0].1,
                r#"{"messages":[{"content":"a"}]}"#,
            )
            .await;
            assert_eq!(status, 429);
        }
    });
    let err = crate::util::run_err(&[
        "sim",
        "--engine",
        "vllm:0",
        "--error-rate",
        "0.7",
        "--reset-rate",
        "0.7",
    ]);
    assert!(err.contains("add up to at most 1"), "{err}");
}

#[test]
fn a_scenario_step_takes_effect_at_its_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("incident.toml");
    std::fs::write(
        &path,
        "name = \"incident\"\ndescription = \"test\"\n\n[[step]]\nat = \"1500ms\"\nerror_rate = 1.0\nkv_blocks = 1\n",
    )
    .unwrap();
    let sim = start_with(&["vllm"], &["--scenario", path.to_str().unwrap()]);
    let url = sim.urls[0].1.clone();
    let (rt, client) = http();
    rt.block_on(async {
        let (status, _) = post(&client, &url, r#"{"messages":[{"content":"before"}]}"#).await;
        assert_eq!(status, 200, "before the step");
        tokio::time::sleep(std::time::Duration::from_millis(1800)).await;
        let (status, _) = post(&client, &url, r#"{"messages":[{"content":"after"}]}"#).await;
        assert_eq!(status, 500, "after the step every request fails");
    });
    let err = crate::util::run_err(&["sim", "--engine", "vllm:0", "--scenario", "/nope.toml"]);
    assert!(err.contains("/nope.toml: cannot read"), "{err}");
}

#[test]
fn background_load_shows_life_without_a_client() {
    let sim = start_with(&["llamacpp"], &["--load", "40", "--seed", "7"]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let out = run_ok(&["scrape", &sim.urls[0].1, "--format", "json"]);
    let json: Value = serde_json::from_str(&out).unwrap();
    let generated = json["signals"]["llm_generation_tokens_total"]["values"][0]["value"]
        .as_f64()
        .unwrap();
    assert!(generated > 0.0, "{json}");
    let prompt = json["signals"]["llm_prompt_tokens_total"]["values"][0]["value"]
        .as_f64()
        .unwrap();
    assert!(prompt >= 50.0, "at least one admitted prompt: {json}");
}

#[test]
fn llamacpp_api_key_and_disabled_metrics_look_like_the_real_server() {
    let guarded = start_with(&["llamacpp"], &["--api-key", "sekret"]);
    let url = &guarded.urls[0].1;
    let err = crate::util::run_err(&["scrape", url]);
    assert!(
        err.contains("HTTP 401") && err.contains("--bearer-token"),
        "{err}"
    );
    let out = run_ok(&[
        "scrape",
        url,
        "--bearer-token",
        "sekret",
        "--format",
        "json",
    ]);
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["engine"], "llamacpp");
    let (rt, client) = http();
    rt.block_on(async {
        let (status, _) = post(&client, url, r#"{"messages":[{"content":"a"}]}"#).await;
        assert_eq!(status, 401, "/v1 needs the key too");
    });
    let disabled = start_with(&["llamacpp"], &["--llamacpp-no-metrics"]);
    let err = crate::util::run_err(&["scrape", &disabled.urls[0].1]);
    assert!(
        err.contains("HTTP 501") && err.contains("restart it with --metrics"),
        "{err}"
    );
}

#[test]
fn text_completions_route_answers_plain_and_streamed() {
    let sim = start(&["vllm"]);
    let url = &sim.urls[0].1;
    let (rt, client) = http();
    rt.block_on(async {
        let send = |body: Value| {
            client
                .post(format!("{url}/v1/completions"))
                .body(body.to_string())
                .send()
        };
        let plain = send(json!({"prompt": "Once upon a time", "max_tokens": 5}))
            .await
            .unwrap();
        assert_eq!(plain.status().as_u16(), 200);
        let plain: Value = serde_json::from_slice(&plain.bytes().await.unwrap()).unwrap();
        assert_eq!(plain["object"], "text_completion");
        assert!(plain["choices"][0]["text"].is_string());
        assert!(plain["choices"][0].get("message").is_none());
        let completion = plain["usage"]["completion_tokens"].as_u64().unwrap();
        assert!((1..=5).contains(&completion));
        let streamed = send(json!({"prompt": ["Once", " upon"], "max_tokens": 5, "stream": true}))
            .await
            .unwrap();
        let text = String::from_utf8(streamed.bytes().await.unwrap().to_vec()).unwrap();
        let first: Value =
            serde_json::from_str(text.lines().next().unwrap().trim_start_matches("data: "))
                .unwrap();
        assert_eq!(first["object"], "text_completion");
        assert!(
            first["choices"][0]["text"].is_string(),
            "no role chunk: {first}"
        );
        assert!(text.ends_with("data: [DONE]\n\n"));
        let bad = send(json!({"max_tokens": 5})).await.unwrap();
        assert_eq!(bad.status().as_u16(), 400);
    });
}

#[test]
fn tgi_native_generate_routes() {
    let sim = start(&["tgi"]);
    let url = &sim.urls[0].1;
    let (rt, client) = http();
    rt.block_on(async {
        let body = json!({"inputs": "What is the sea?", "parameters": {"max_new_tokens": 6, "details": true}});
        let resp = client.post(format!("{url}/generate")).body(body.to_string()).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let reply: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        assert!(reply["generated_text"].is_string());
        let generated = reply["details"]["generated_tokens"].as_u64().unwrap();
        assert!((1..=6).contains(&generated));
        let resp = client
            .post(format!("{url}/generate_stream"))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let text = String::from_utf8(resp.bytes().await.unwrap().to_vec()).unwrap();
        let events: Vec<Value> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        let last = events.last().unwrap();
        assert_eq!(last["generated_text"], reply["generated_text"], "same prompt, same text");
        assert_eq!(events.len() as u64, generated + 1, "one event per token, then the summary");
        let bad = client.post(format!("{url}/generate")).body("{}").send().await.unwrap();
        assert_eq!(bad.status().as_u16(), 422);
    });
    // The routes exist on TGI engines only.
    let vllm = start(&["vllm"]);
    let status = rt.block_on(async {
        client
            .post(format!("{}/generate", vllm.urls[0].1))
            .body("{}")
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status.as_u16(), 404);
}

#[test]
fn llamacpp_slots_follow_the_profile() {
    let sim = start_with(&["llamacpp"], &["--profile", "cpu-270m"]);
    let (rt, _) = http();
    let slots: Value = rt.block_on(async {
        let resp = reqwest::get(format!("{}/slots", sim.urls[0].1))
            .await
            .unwrap();
        serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap()
    });
    let slots = slots.as_array().unwrap();
    // cpu-270m: 4 slots sharing 512 blocks of 16 tokens, as `-np 4 -c 8192`.
    assert_eq!(slots.len(), 4);
    assert!(
        slots
            .iter()
            .all(|s| s["n_ctx"] == 2048 && s["is_processing"] == false)
    );
}

#[test]
fn answers_depend_only_on_the_seed_and_the_prompt() {
    let lengths = |seed: &str| {
        let sim = start_with(&["vllm"], &["--seed", seed]);
        let (rt, client) = http();
        rt.block_on(async {
            let mut out = Vec::new();
            for i in 0..12 {
                let body =
                    json!({"messages": [{"content": format!("prompt {i}")}], "max_tokens": 20});
                let (_, bytes) = post(&client, &sim.urls[0].1, &body.to_string()).await;
                let reply: Value = serde_json::from_slice(&bytes).unwrap();
                out.push((
                    reply["usage"]["completion_tokens"].as_u64().unwrap(),
                    reply["choices"][0]["message"]["content"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                ));
            }
            out
        })
    };
    let first = lengths("11");
    assert_eq!(first, lengths("11"), "same seed, same answers");
    assert_ne!(first, lengths("12"), "another seed, other answers");
}

#[test]
fn a_streamed_answer_spells_the_same_text_as_the_plain_one() {
    let sim = start(&["sglang"]);
    let url = &sim.urls[0].1;
    let (rt, client) = http();
    rt.block_on(async {
        let ask = |stream: bool| {
            json!({"messages": [{"content": "the same question"}], "max_tokens": 30, "stream": stream})
                .to_string()
        };
        let (_, plain) = post(&client, url, &ask(false)).await;
        let plain: Value = serde_json::from_slice(&plain).unwrap();
        let (_, streamed) = post(&client, url, &ask(true)).await;
        let joined: String = String::from_utf8(streamed)
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str::<Value>(d).unwrap())
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(str::to_string))
            .collect();
        assert_eq!(joined, plain["choices"][0]["message"]["content"].as_str().unwrap());
        assert!(!joined.is_empty());
    });
}

/// The scheduling policy of the process's `sim-engine` thread (field 41 of its `stat`).
fn engine_thread_policy(pid: u32) -> Option<u32> {
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let dir = task.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
        if comm.trim() == "sim-engine" {
            let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
            // Fields after the parenthesised name start at field 3.
            let after = stat.rsplit_once(')')?.1;
            return after.split_whitespace().nth(41 - 3)?.parse().ok();
        }
    }
    None
}

#[test]
fn realtime_engine_threads_run_sched_fifo_or_refuse_clearly() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_llmwatch"))
        .args(["sim", "--realtime", "--engine", "vllm:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    if first.starts_with("sim: vllm on http://") {
        const SCHED_FIFO: u32 = 1;
        let policy = engine_thread_policy(child.id());
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(policy, Some(SCHED_FIFO));
    } else {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("SCHED_FIFO needs root or CAP_SYS_NICE"),
            "{stderr}"
        );
    }
}
