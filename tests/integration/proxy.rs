//! `llmwatch proxy` in front of the simulator (and a real llama.cpp server where installed):
//! what it measures agrees with the simulator's ground truth, every fault lands in its
//! outcome, a client that hangs up leaves no upstream request running, bad input is refused
//! in OpenAI's error format and counted.

use std::process::Command;

use serde_json::{Value, json};

use crate::up::{eventually, get, sample};
use crate::util::{
    KillOnDrop, http, run_ok, sim_truth, spawn_serving, start_up_with_proxy, start_with,
    truth_itls, truth_ttfts,
};

/// A running proxy and its base URL.
pub struct Proxy {
    _child: KillOnDrop,
    pub base: String,
}

impl Proxy {
    /// The proxy's process id.
    pub fn pid(&self) -> u32 {
        self._child.0.id()
    }
}

pub fn start_proxy(upstreams: &[&str], extra: &[&str]) -> Proxy {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_llmwatch"));
    cmd.args(["proxy", "--listen", "127.0.0.1:0"]).args(extra);
    for upstream in upstreams {
        cmd.args(["--upstream", upstream]);
    }
    let (child, mut bases) = spawn_serving(cmd, &["serving http://"]);
    Proxy {
        _child: KillOnDrop(child),
        base: bases.remove(0),
    }
}

/// Posts a chat request (with optional extra headers) and returns (status, body text).
pub fn chat(base: &str, body: Value, headers: &[(&str, &str)]) -> (u16, String) {
    let (rt, client) = http();
    rt.block_on(async {
        let mut request = client
            .post(format!("{base}/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(body.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.text().await.unwrap_or_default())
            }
            Err(e) => (0, e.to_string()),
        }
    })
}

fn stream_request(max_tokens: u32) -> Value {
    json!({
        "model": "sim-vllm",
        "messages": [{"role": "user", "content": "hello there"}],
        "stream": true,
        "max_tokens": max_tokens,
    })
}

pub fn outcome(metrics: &str, outcome: &str, class: &str) -> f64 {
    let wanted = format!("outcome=\"{outcome}\",http_status_class=\"{class}\"}}");
    metrics
        .lines()
        .filter(|l| l.starts_with("llm_proxy_requests_total{") && l.contains(&wanted))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn proxy_timings_and_tokens_agree_with_the_simulators_ground_truth() {
    let _exclusive = crate::util::exclusive();
    crate::util::timings_agree_within_two_runs(proxy_agreement_run);
}

/// One run of the proxy's agreement test: asserts the counts and tokens, and says how the
/// timings differ when the proxy's are later than the slack allows.
fn proxy_agreement_run() -> Result<(), String> {
    let sim = start_with(&["vllm"], &["--profile", "gpu-7b"]);
    let proxy = start_proxy(&[&sim.urls[0].1], &[]);
    run_ok(
        &["bench", &proxy.base, "--rate", "20", "--requests", "60"]
            .into_iter()
            .chain(["--arrival", "constant", "--output-tokens", "16"])
            // No probe requests: the simulator's ground truth holds the run's requests only.
            .chain(["--no-calibrate"])
            .collect::<Vec<_>>(),
    );
    let records = sim_truth(&sim.urls[0].1);
    assert_eq!(records.len(), 60);
    let (_, metrics) = get(&format!("{}/metrics", proxy.base));
    let count = |name: &str| sample(&metrics, &format!("{name}_count{{")).unwrap();
    let sum = |name: &str| sample(&metrics, &format!("{name}_sum{{")).unwrap();
    assert_eq!(count("llm_proxy_time_to_first_content_seconds"), 60.0);
    let gaps = truth_itls(&records);
    assert_eq!(
        count("llm_proxy_time_per_output_token_seconds"),
        gaps.len() as f64
    );
    let tokens: f64 = records
        .iter()
        .map(|r| r["completion_tokens"].as_f64().unwrap())
        .sum();
    let output = metrics
        .lines()
        .find(|l| {
            l.starts_with("gen_ai_client_token_usage_sum{") && l.contains("token_type=\"output\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
    assert_eq!(output, Some(tokens));
    assert_eq!(outcome(&metrics, "length", "2xx"), 60.0);
    // Mean TTFT: the proxy's (request received → first content) against the simulator's
    // (arrival at the engine → first token); loopback both ways in between.
    let proxy_ttft = sum("llm_proxy_time_to_first_content_seconds") / 60.0;
    let true_ttft: f64 = truth_ttfts(&records).iter().sum::<f64>() / 60.0;
    let gap = proxy_ttft - true_ttft;
    // Earlier than the engine's own first token is a clock error, never load.
    assert!(gap > -0.001, "TTFT gap {gap} s");
    let itl_gap = sum("llm_proxy_time_per_output_token_seconds") / gaps.len() as f64
        - gaps.iter().sum::<f64>() / gaps.len() as f64;
    if gap >= 0.005 || itl_gap.abs() >= 0.001 {
        return Err(format!("TTFT gap {gap} s, mean ITL gap {itl_gap} s"));
    }
    Ok(())
}

#[test]
fn every_fault_lands_in_its_outcome() {
    let sim = start_with(&["vllm"], &["--profile", "instant"]);
    let proxy = start_proxy(&[&sim.urls[0].1], &["--idle-timeout", "300ms"]);
    let fault = |value: &str| {
        chat(
            &proxy.base,
            stream_request(8),
            &[("x-llmwatch-sim-fault", value)],
        )
    };
    assert_eq!(fault("error").0, 500);
    let (status, _) = fault("overloaded");
    assert_eq!(status, 429);
    let (rt, client) = http();
    let retry_after = rt.block_on(async {
        let r = client
            .post(format!("{}/v1/chat/completions", proxy.base))
            .header("x-llmwatch-sim-fault", "overloaded")
            .body(stream_request(8).to_string())
            .send()
            .await
            .unwrap();
        r.headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string())
    });
    assert_eq!(
        retry_after.as_deref(),
        Some("1"),
        "Retry-After passes through"
    );
    let (status, body) = fault("midstream-error");
    assert_eq!(status, 200);
    assert!(
        body.contains("error"),
        "the error event reaches the client: {body}"
    );
    let (status, body) = fault("stall:2000");
    assert_eq!(status, 200);
    assert!(body.contains("timeout"), "an error event says why: {body}");
    fault("reset");
    let (status, body) = chat(&proxy.base, stream_request(8), &[]);
    assert_eq!(status, 200);
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    assert!(
        !body.contains("\"usage\""),
        "the injected usage chunk is removed: {body}"
    );
    let (_, metrics) = get(&format!("{}/metrics", proxy.base));
    assert_eq!(outcome(&metrics, "rate_limited", "4xx"), 2.0, "{metrics}");
    assert_eq!(outcome(&metrics, "timeout", "2xx"), 1.0);
    let clean = outcome(&metrics, "completed", "2xx") + outcome(&metrics, "length", "2xx");
    assert_eq!(clean, 1.0, "only the clean one succeeded");
    // The 500 and the connection dropped before an answer are upstream errors (the proxy
    // answers 502 to the latter); the error event after HTTP 200 is a stream error.
    assert_eq!(outcome(&metrics, "upstream_error", "5xx"), 2.0);
    assert_eq!(outcome(&metrics, "stream_error", "2xx"), 1.0);
}

#[test]
fn a_client_that_hangs_up_leaves_no_upstream_request_running() {
    // 12 ms decode steps: 2,000 tokens would take 24 s.
    let sim = start_with(&["vllm"], &["--profile", "gpu-7b"]);
    let proxy = start_proxy(&[&sim.urls[0].1], &[]);
    {
        // Its own runtime, dropped with the response, so the connection really closes.
        let (rt, client) = http();
        rt.block_on(async {
            let mut response = client
                .post(format!("{}/v1/chat/completions", proxy.base))
                .header("content-type", "application/json")
                .body(stream_request(2000).to_string())
                .send()
                .await
                .unwrap();
            assert!(response.chunk().await.unwrap().is_some());
            drop(response);
        });
    }
    let record = eventually(10, || {
        sim_truth(&sim.urls[0].1)
            .into_iter()
            .find(|r| r["outcome"] == "abort")
    });
    let tokens = record["completion_tokens"].as_u64().unwrap();
    assert!(tokens < 200, "aborted promptly, after {tokens} tokens");
    let (_, metrics) = get(&format!("{}/metrics", proxy.base));
    assert_eq!(
        outcome(&metrics, "client_disconnect", "2xx"),
        1.0,
        "{metrics}"
    );
    assert_eq!(sample(&metrics, "llm_proxy_requests_in_flight"), Some(0.0));
}

#[test]
fn bad_requests_are_refused_in_openai_format_and_counted() {
    let sim = start_with(&["vllm"], &["--profile", "instant"]);
    let routed = format!("{},models=sim-vllm", sim.urls[0].1);
    let proxy = start_proxy(&[&routed], &["--max-body-bytes", "1000"]);
    let (rt, client) = http();
    let post = |body: String| {
        rt.block_on(async {
            let r = client
                .post(format!("{}/v1/chat/completions", proxy.base))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
            (status, body)
        })
    };
    let (status, body) = post("{not json".into());
    assert_eq!(status, 400);
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let (status, body) = post(json!({"model": "x".repeat(2000)}).to_string());
    assert_eq!(status, 413);
    assert!(body["error"]["message"].as_str().unwrap().contains("1000"));
    let (status, body) = post(json!({"model": "gpt-unknown", "messages": []}).to_string());
    assert_eq!(status, 404);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("gpt-unknown")
    );
    let (_, metrics) = get(&format!("{}/metrics", proxy.base));
    let refused: f64 = outcome(&metrics, "client_error", "4xx");
    assert_eq!(refused, 3.0, "{metrics}");
    assert!(
        !metrics.contains("x".repeat(100).as_str()),
        "no request content in labels"
    );
}

#[test]
fn a_real_llamacpp_server_behind_the_proxy_is_measured() {
    let Some(server) = crate::llamacpp_real::start_llama_server() else {
        return;
    };
    let base = server.base.clone();
    let proxy = start_proxy(&[&base], &[]);
    let body = json!({
        "model": "gemma3-270m",
        "messages": [{"role": "user", "content": "Name three colours."}],
        "max_tokens": 12,
        "stream": true,
    });
    let (status, text) = chat(&proxy.base, body, &[]);
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("[DONE]") && !text.contains("\"usage\""),
        "{text}"
    );
    let (_, metrics) = eventually(5, || {
        let (s, m) = get(&format!("{}/metrics", proxy.base));
        m.contains("llm_proxy_requests_total{").then_some((s, m))
    });
    let done = outcome(&metrics, "completed", "2xx") + outcome(&metrics, "length", "2xx");
    assert_eq!(done, 1.0, "{metrics}");
    assert_eq!(
        sample(
            &metrics,
            "llm_proxy_output_token_source_total{gen_ai_request_model=\"gemma3-270m\",source=\"usage\"}"
        ),
        Some(1.0),
        "usage came from the engine: {metrics}"
    );
    assert!(sample(&metrics, "llm_proxy_time_to_first_content_seconds_count{").unwrap() >= 1.0);
}

/// `up` scraping `engine` every 300 ms with its proxy in front of it: the process, the
/// collector's and the proxy's base URLs.
fn up_proxying(engine: &str) -> (crate::util::KillOnDrop, String, String) {
    let config = format!(
        "listen = \"127.0.0.1:0\"\n[scrape]\ninterval = \"300ms\"\n[proxy]\nlisten = \"127.0.0.1:0\"\nupstream = [\"{engine}\"]\n"
    );
    start_up_with_proxy(&config, engine)
}

#[test]
fn up_serves_the_ttft_gap_only_while_the_proxy_carries_the_engines_traffic() {
    let sim = start_with(&["vllm"], &["--profile", "gpu-7b"]);
    let (_guard, up, proxy) = up_proxying(&sim.urls[0].1);
    let (up, proxy) = (&up, &proxy);
    eventually(10, || {
        let (_, m) = get(&format!("{up}/metrics"));
        m.contains("llm_time_to_first_token_seconds").then_some(())
    });
    for _ in 0..10 {
        let (status, _) = chat(proxy, stream_request(4), &[]);
        assert_eq!(status, 200);
    }
    let comparison = |engine_requests: f64| {
        eventually(10, || {
            let (_, body) = get(&format!("{up}/api/v1/client_gap"));
            let v: Value = serde_json::from_str(&body).ok()?;
            let model = v["models"].get(0)?.clone();
            (model["engine_requests"].as_f64() == Some(engine_requests)).then_some(model)
        })
    };
    let all_proxied = comparison(10.0);
    assert_eq!(all_proxied["client_requests"], 10, "{all_proxied}");
    let (_, m) = get(&format!("{up}/metrics"));
    assert!(
        m.contains("llm_proxy_requests_total{"),
        "one /metrics for both views"
    );
    // Exact: the two means over the same ten requests, as each side counted them.
    let mean = |name: &str, labels: &str| {
        sample(&m, &format!("{name}_sum{labels}")).unwrap()
            / sample(&m, &format!("{name}_count{labels}")).unwrap()
    };
    let client = mean("llm_proxy_time_to_first_content_seconds", "{");
    let engine = mean("llm_time_to_first_token_seconds", "{");
    let published = sample(&m, "llm_client_ttft_gap_seconds{model=\"sim-vllm\"}").unwrap();
    assert!(
        (published - (client - engine)).abs() < 1e-9,
        "{published} vs {client} - {engine}"
    );
    // The API's gap and the published one: the same number, up to its last bits.
    let api_gap = all_proxied["gap_seconds"].as_f64().unwrap();
    assert!(
        (api_gap - published).abs() < 1e-12,
        "{api_gap} vs {published}"
    );
    // Loopback and one proxy hop: the client waits a little longer than the engine says.
    assert!((-0.002..0.05).contains(&published), "gap {published} s");

    // Ten more straight to the engine: the means now describe different requests.
    for _ in 0..10 {
        let (status, _) = chat(&sim.urls[0].1, stream_request(4), &[]);
        assert_eq!(status, 200);
    }
    let mixed = comparison(20.0);
    assert!(mixed["gap_seconds"].is_null(), "{mixed}");
    let reason = mixed["reason"].as_str().unwrap();
    assert!(reason.contains("carried 10 of the engines' 20"), "{reason}");
    let (_, m) = get(&format!("{up}/metrics"));
    assert!(!m.contains("llm_client_ttft_gap_seconds"), "{m}");
}

#[test]
fn bench_engine_metrics_through_a_proxy_names_the_engine_or_says_why_not() {
    let sim = start_with(&["vllm"], &["--profile", "instant"]);
    let proxy = start_proxy(&[&sim.urls[0].1], &[]);
    let report = |extra: &[&str]| -> Value {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("r.json");
        let args: Vec<&str> = [
            "bench",
            &proxy.base,
            "--requests",
            "5",
            "--output-tokens",
            "4",
        ]
        .into_iter()
        .chain(extra.iter().copied())
        .chain(["--json", json.to_str().unwrap()])
        .collect();
        let table = run_ok(&args);
        let mut report: Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        report["table"] = json!(table);
        report
    };
    // The proxy's own /metrics is not an engine's: said so, never an empty section.
    let own = report(&["--engine-metrics"]);
    let error = own["engine_view"]["error"].as_str().unwrap();
    assert!(error.contains("llmwatch's own exposition"), "{error}");
    assert!(error.contains("--engine-metrics URL"), "{error}");
    let table = own["table"].as_str().unwrap();
    assert!(table.contains("engine     no engine view: "), "{table}");
    // Named, the engine's metrics give its view of the same requests.
    let named = format!("{}/metrics", sim.urls[0].1);
    let engine = report(&["--engine-metrics", &named]);
    let view = &engine["engine_view"];
    assert_eq!(view["engine"], "vllm", "{view}");
    assert_eq!(view["metrics_url"], named.as_str());
    assert_eq!(view["generation_tokens"].as_f64(), Some(20.0), "{view}");
    assert!(
        engine["table"]
            .as_str()
            .unwrap()
            .contains("engine     vllm")
    );
}

#[test]
fn the_detail_shows_the_429s_and_mid_stream_errors_the_proxy_saw() {
    let sim = start_with(&["vllm"], &["--profile", "instant"]);
    let (_guard, up, proxy) = up_proxying(&sim.urls[0].1);
    for fault in ["overloaded", "overloaded", "midstream-error", "", ""] {
        let headers: &[(&str, &str)] = if fault.is_empty() {
            &[]
        } else {
            &[("x-llmwatch-sim-fault", fault)]
        };
        chat(&proxy, stream_request(4), headers);
    }
    let target = sim.urls[0].1.trim_start_matches("http://").to_string();
    let panel = eventually(10, || {
        let (_, body) = get(&format!("{up}/api/v1/detail?target={target}&window=1m"));
        let v: Value = serde_json::from_str(&body).ok()?;
        let panels = v["panels"].as_array()?;
        let at = panels.iter().position(|p| p["id"] == "proxy_outcomes")?;
        assert_eq!(
            panels[at - 1]["id"],
            "outcomes",
            "beside the engine's outcomes"
        );
        Some(panels[at].clone())
    });
    let line = |name: &str| {
        panel["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["label"] == name)
            .unwrap_or_else(|| panic!("no {name} line: {panel}"))
            .clone()
    };
    // Twice as many 429s as stream errors, over the same window.
    let limited = line("rate_limited")["now"].as_f64().unwrap();
    let cut = line("stream_error")["now"].as_f64().unwrap();
    // Four significant digits each.
    assert!((limited / cut - 2.0).abs() < 0.002, "{panel}");
    assert!(
        line("length")["values"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v.as_f64().is_some_and(|v| v > 0.0))
    );
    assert_eq!(panel["unit"], "per_second");
}

#[test]
fn a_long_running_command_keeps_transparent_huge_pages_off() {
    let sim = crate::util::start_with(&["vllm"], &[]);
    let proxy = start_proxy(&[&sim.urls[0].1], &[]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", proxy.pid())).unwrap();
    // `THP_enabled` is in the status file from Linux 5.0 on.
    let Some(line) = status.lines().find(|l| l.starts_with("THP_enabled:")) else {
        eprintln!("skipping: this kernel's /proc/PID/status has no THP_enabled");
        return;
    };
    assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
}
