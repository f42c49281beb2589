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

/// A real llama-server that answered its health check: stopped and reaped on drop. Its
/// standard error goes to a file, so a test that loses it can say why.
pub struct LlamaServer {
    pub base: String,
    child: KillOnDrop,
    log: tempfile::NamedTempFile,
}

impl LlamaServer {
    /// Why the server is gone (exit status and the end of its log), or `None` while it runs.
    pub fn gone(&mut self) -> Option<String> {
        let status = self.child.0.try_wait().ok().flatten()?;
        Some(format!(
            "llama-server exited ({status}): {}",
            log_tail(self.log.path())
        ))
    }
}

fn log_tail(path: &std::path::Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let start = bytes.len().saturating_sub(2000);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// Starts a real llama-server on a free port and waits until it is healthy. `None` (after
/// saying why) when it is not installed. The port is chosen before the server binds it, so
/// another test can take it in between: a server that exits while starting is tried again on
/// another port, and health only counts while our own process still runs.
pub fn start_llama_server() -> Option<LlamaServer> {
    let (server, model) = external()?;
    let mut failures = Vec::new();
    for _ in 0..3 {
        let log = tempfile::NamedTempFile::new().unwrap();
        let port = free_port();
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
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        let mut started = LlamaServer {
            base: format!("http://127.0.0.1:{port}"),
            child: KillOnDrop(child),
            log,
        };
        match wait_healthy(&mut started) {
            Ok(()) => return Some(started),
            Err(why) => failures.push(why),
        }
    }
    panic!("llama-server did not start: {failures:#?}");
}

/// Waits up to 120 s for `/health` to answer 200 while the server's process is alive.
fn wait_healthy(server: &mut LlamaServer) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let health = format!("{}/health", server.base);
    while Instant::now() < deadline {
        if let Some(why) = server.gone() {
            return Err(why);
        }
        let healthy = crate::util::try_get(&health).is_some_and(|(status, _)| status == 200);
        if healthy && server.gone().is_none() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Err(format!(
        "not healthy within 120 s: {}",
        log_tail(server.log.path())
    ))
}

#[test]
fn real_llamacpp_token_counters_match_usage() {
    let Some(server) = start_llama_server() else {
        return;
    };
    let base = server.base.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    llmwatch::collect::fetch::install_tls_provider();
    let client = reqwest::Client::new();
    let (prompt_sum, completion_sum) = rt.block_on(async {
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
