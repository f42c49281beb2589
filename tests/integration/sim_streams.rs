//! Streams of the simulated engines have the shape of the real engines' streams: the real
//! llama.cpp capture, and vLLM and TGI as their chat servers write chunks.

use serde_json::{Value, json};

use crate::sim_server::post;
use crate::util::{http, start};

/// Kinds of SSE events in order (runs of content chunks collapsed), and each kind's
/// top-level JSON keys.
fn sse_shape(text: &str) -> Vec<(String, Vec<String>)> {
    let mut shape: Vec<(String, Vec<String>)> = Vec::new();
    for data in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        let (kind, keys) = if data == "[DONE]" {
            ("done".to_string(), Vec::new())
        } else {
            let chunk: Value = serde_json::from_str(data).unwrap();
            let choice = &chunk["choices"][0];
            let kind = if chunk["choices"].as_array().is_some_and(Vec::is_empty) {
                "usage"
            } else if !choice["delta"]["role"].is_null() {
                "role"
            } else if !choice["finish_reason"].is_null() {
                "finish"
            } else {
                "content"
            };
            let mut keys: Vec<String> = chunk
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| *k != "timings") // llama.cpp's timing block is not simulated
                .cloned()
                .collect();
            keys.sort();
            (kind.to_string(), keys)
        };
        if shape
            .last()
            .is_none_or(|(last, _)| *last != kind || kind != "content")
        {
            shape.push((kind, keys));
        }
    }
    shape
}

#[test]
fn llamacpp_stream_has_the_shape_of_the_real_capture() {
    let captured = std::fs::read_to_string(crate::util::fixture("llamacpp/sse.txt")).unwrap();
    let (simulated, chunks) = one_stream("llamacpp");
    assert_eq!(sse_shape(&simulated), sse_shape(&captured));
    // llama.cpp's role-only chunk carries `content: null`.
    assert!(chunks[0]["choices"][0]["delta"]["content"].is_null());
    assert_eq!(
        sse_shape(&captured)
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>(),
        ["role", "content", "finish", "usage", "done"]
    );
}

/// One streamed chat answer (with usage) from a simulated engine of `dialect`: the raw text
/// and its JSON chunks (without `[DONE]`).
fn one_stream(dialect: &str) -> (String, Vec<Value>) {
    let sim = start(&[dialect]);
    let (rt, client) = http();
    let body = json!({
        "messages": [{"role": "user", "content": "Write one sentence about the sea."}],
        "max_tokens": 24,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let (status, bytes) = rt.block_on(post(&client, &sim.urls[0].1, &body.to_string()));
    assert_eq!(status, 200);
    let text = String::from_utf8(bytes).unwrap();
    let chunks = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    (text, chunks)
}

/// vLLM's stream as its chat server writes it: a role chunk with `content: ""`, the finish
/// reason (and `stop_reason`) on the last token's chunk rather than a chunk of its own,
/// `logprobs: null` on every choice, the usage chunk, `[DONE]`.
#[test]
fn vllm_stream_carries_the_finish_reason_on_the_last_token() {
    let (text, chunks) = one_stream("vllm");
    let kinds: Vec<String> = sse_shape(&text).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        kinds,
        ["role", "content", "finish", "usage", "done"],
        "{text}"
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["content"], "");
    let last = &chunks[chunks.len() - 2]["choices"][0];
    assert!(
        last["delta"]["content"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );
    assert!(last["stop_reason"].is_null() && last.get("stop_reason").is_some());
    let generated = chunks.last().unwrap()["usage"]["completion_tokens"].as_u64();
    let content_chunks = chunks.len() - 2;
    assert_eq!(
        generated,
        Some(content_chunks as u64),
        "one chunk per token"
    );
    for chunk in &chunks[..chunks.len() - 1] {
        let choice = &chunk["choices"][0];
        assert!(
            choice.get("logprobs").is_some_and(Value::is_null),
            "{chunk}"
        );
    }
}

/// TGI's OpenAI route: no role-only chunk (the first chunk already has text), the role in
/// every delta, `usage: null` until the usage chunk, the finish reason on the last token.
#[test]
fn tgi_stream_repeats_the_role_and_has_no_role_only_chunk() {
    let (text, chunks) = one_stream("tgi");
    let (usage, tokens) = chunks.split_last().unwrap();
    assert!(usage["choices"].as_array().unwrap().is_empty());
    assert_eq!(
        usage["usage"]["completion_tokens"].as_u64(),
        Some(tokens.len() as u64),
        "one chunk per token, none role-only: {text}"
    );
    for (i, chunk) in tokens.iter().enumerate() {
        let choice = &chunk["choices"][0];
        assert_eq!(choice["delta"]["role"], "assistant", "{chunk}");
        assert!(
            choice["delta"]["content"]
                .as_str()
                .is_some_and(|c| !c.is_empty())
        );
        assert!(chunk.get("usage").is_some_and(Value::is_null), "{chunk}");
        assert!(chunk["system_fingerprint"].is_string());
        let last = i == tokens.len() - 1;
        assert_eq!(choice["finish_reason"].is_null(), !last, "{chunk}");
    }
    assert!(text.ends_with("data: [DONE]\n\n"));
}

/// A client that hangs up mid-stream: the engine aborts the request at its next token (as
/// vLLM does on disconnect), frees its slot, records the outcome `abort`, and counts it in
/// `request_success_total{finished_reason="abort"}`.
#[test]
fn a_client_that_hangs_up_aborts_its_request() {
    let sim = crate::util::start_with(&["vllm"], &["--profile", "cpu-270m"]);
    let url = &sim.urls[0].1;
    let (rt, client) = http();
    rt.block_on(async {
        let body = json!({
            "messages": [{"role": "user", "content": "Tell me a long story about the sea."}],
            "max_tokens": 400,
            "stream": true,
        });
        let mut resp = client
            .post(format!("{url}/v1/chat/completions"))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let mut seen = String::new();
        while !seen.contains("\"content\":\"") || seen.matches("data: ").count() < 3 {
            let chunk = resp.chunk().await.unwrap().expect("stream ended early");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        assert!(!seen.contains("[DONE]"), "the answer must outlast the test: {seen}");
        drop(resp);
        let get = |path: &'static str| {
            let client = client.clone();
            async move {
                let resp = client.get(format!("{url}{path}")).send().await.unwrap();
                resp.text().await.unwrap()
            }
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let record = loop {
            let truth = get("/sim/requests").await;
            if let Some(line) = truth.lines().last() {
                break serde_json::from_str::<Value>(line).unwrap();
            }
            assert!(std::time::Instant::now() < deadline, "the request never ended");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        assert_eq!(record["outcome"], "abort", "{record}");
        let tokens = record["completion_tokens"].as_u64().unwrap();
        assert!((2..400).contains(&tokens), "{record}");
        let stats: Value = serde_json::from_str(&get("/sim/stats").await).unwrap();
        assert_eq!(stats["running"], 0);
        let metrics = get("/metrics").await;
        assert!(
            metrics.contains(
                "vllm:request_success_total{engine=\"0\",finished_reason=\"abort\",model_name=\"sim-vllm\"} 1.0\n"
            ),
            "{metrics}"
        );
    });
}
