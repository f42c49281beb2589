//! Streams of the simulated engines have the shape of the real engines' streams: the real
//! llama.cpp capture, and vLLM as its chat server writes chunks.

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
    let sim = start(&["llamacpp"]);
    let (rt, client) = http();
    let body = json!({
        "messages": [{"role": "user", "content": "Write one sentence about the sea."}],
        "max_tokens": 24,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let (status, bytes) = rt.block_on(post(&client, &sim.urls[0].1, &body.to_string()));
    assert_eq!(status, 200);
    let simulated = String::from_utf8(bytes).unwrap();
    assert_eq!(sse_shape(&simulated), sse_shape(&captured));
    // llama.cpp's role-only chunk carries `content: null`.
    let first: Value = serde_json::from_str(
        simulated
            .lines()
            .next()
            .unwrap()
            .trim_start_matches("data: "),
    )
    .unwrap();
    assert!(first["choices"][0]["delta"]["content"].is_null());
    assert_eq!(
        sse_shape(&captured)
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>(),
        ["role", "content", "finish", "usage", "done"]
    );
}

/// vLLM's stream as its chat server writes it: a role chunk with `content: ""`, the finish
/// reason (and `stop_reason`) on the last token's chunk rather than a chunk of its own,
/// `logprobs: null` on every choice, the usage chunk, `[DONE]`.
#[test]
fn vllm_stream_carries_the_finish_reason_on_the_last_token() {
    let sim = start(&["vllm"]);
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
    let kinds: Vec<String> = sse_shape(&text).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        kinds,
        ["role", "content", "finish", "usage", "done"],
        "{text}"
    );
    let chunks: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
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
