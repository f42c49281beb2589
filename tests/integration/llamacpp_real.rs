//! A real llama.cpp server (Gemma 3 270M): send chat requests, scrape with llmwatch, and check
//! the normalised token counters equal the sums of the responses' `usage` fields.
//!
//! Needs `LLMWATCH_LLAMA_SERVER` (the llama-server binary) and `LLMWATCH_LLAMA_MODEL` (a GGUF);
//! `.ci/run` installs both. Skips without them, unless `LLMWATCH_REQUIRE_EXTERNAL=1`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::util::{KillOnDrop, free_port, require_external, run_ok};

fn external() -> Option<(String, String)> {
    let server = std::env::var("LLMWATCH_LLAMA_SERVER").ok();
    let model = std::env::var("LLMWATCH_LLAMA_MODEL").ok();
    match (server, model) {
        (Some(s), Some(m))
            if std::path::Path::new(&s).exists() && std::path::Path::new(&m).exists() =>
        {
            Some((s, m))
        }
        _ => {
            assert!(
                !require_external(),
                "LLMWATCH_REQUIRE_EXTERNAL=1 but LLMWATCH_LLAMA_SERVER/LLMWATCH_LLAMA_MODEL do not point at llama-server and a GGUF"
            );
            eprintln!(
                "skipping: set LLMWATCH_LLAMA_SERVER and LLMWATCH_LLAMA_MODEL to run the real llama.cpp test"
            );
            None
        }
    }
}

pub async fn wait_healthy(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("{base}/health")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("llama-server at {base} not healthy within 120 s");
}

async fn chat(client: &reqwest::Client, base: &str, prompt: &str) -> Value {
    let body = json!({
        "model": "gemma3-270m",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 12,
    });
    let resp = client
        .post(format!("{base}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "chat failed: {}", resp.status());
    serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap()
}

/// Starts a real llama-server on a free port: the guard that stops it and its base URL.
/// `None` (after saying why) when it is not installed.
pub fn start_llama_server() -> Option<(KillOnDrop, String)> {
    let (server, model) = external()?;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let child = Command::new(&server)
        .args([
            "-m",
            &model,
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .args([
            "--metrics",
            "--no-repack",
            "-np",
            "2",
            "-c",
            "2048",
            "-t",
            "1",
        ])
        .args(["-a", "gemma3-270m", "--no-webui"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Some((KillOnDrop(child), base))
}

#[test]
fn real_llamacpp_token_counters_match_usage() {
    let Some((_guard, base)) = start_llama_server() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    llmwatch::collect::fetch::install_tls_provider();
    let client = reqwest::Client::new();
    let (prompt_sum, completion_sum) = rt.block_on(async {
        wait_healthy(&client, &base).await;
        let prompts = [
            "Write one sentence about the sea.",
            "Write one sentence about the sea and the sky.",
            "Name three colours.",
        ];
        let mut sums = (0.0, 0.0);
        for prompt in prompts {
            let reply = chat(&client, &base, prompt).await;
            sums.0 += reply["usage"]["prompt_tokens"].as_f64().unwrap();
            sums.1 += reply["usage"]["completion_tokens"].as_f64().unwrap();
        }
        sums
    });
    assert!(prompt_sum > 0.0 && completion_sum > 0.0);
    let out = run_ok(&["scrape", &base, "--format", "json"]);
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["engine"], "llamacpp");
    // The PyPI build reports `b0-unknown` in /props: no version, so the range read from the
    // metrics stands.
    assert_eq!(json["version_source"], "metrics", "{json}");
    assert!(
        json["version"].as_str().unwrap().contains("build from"),
        "{json}"
    );
    let signal = |name: &str| &json["signals"][name]["values"][0];
    assert_eq!(signal("llm_prompt_tokens_total")["model"], "gemma3-270m");
    assert_eq!(
        signal("llm_prompt_tokens_total")["value"].as_f64(),
        Some(prompt_sum),
        "{json}"
    );
    assert_eq!(
        signal("llm_generation_tokens_total")["value"].as_f64(),
        Some(completion_sum),
        "{json}"
    );
    assert_eq!(signal("llm_requests_running")["value"].as_f64(), Some(0.0));
    // The human table and the canonical exposition work against the live server too.
    let table = run_ok(&["scrape", &base]);
    assert!(table.contains("engine   llamacpp"), "{table}");
    let prom = run_ok(&["scrape", &base, "--format", "prom"]);
    assert!(prom.contains(&format!(
        "llm_generation_tokens_total{{engine=\"llamacpp\",model=\"gemma3-270m\"}} {completion_sum}"
    )), "{prom}");
}
