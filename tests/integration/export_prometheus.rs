//! The exported stack on real Prometheus (Debian's 2.42): simulated engines of every dialect,
//! scraped both by `llmwatch up` (with its proxy carrying traffic) and directly by Prometheus
//! (rules-only mode), with the exported `prometheus.yml` and rules. Every rule evaluates
//! without error, both modes build the same `llm:` series, every dashboard query returns data,
//! and stopping an engine puts LLMTargetDown in pending. Skips without `prometheus` on PATH,
//! unless `LLMWATCH_REQUIRE_EXTERNAL=1`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};

use crate::up::eventually;
use crate::util::{
    KillOnDrop, external_program, http, run_ok, spawn_serving, start_prometheus, start_with,
};

/// GET `path` with `query` from Prometheus at `base`; the `data` of a successful answer.
fn prom_get(base: &str, path: &str, query: &[(&str, &str)]) -> Value {
    let (rt, client) = http();
    let body: Value = rt.block_on(async {
        let url = reqwest::Url::parse_with_params(&format!("{base}{path}"), query).unwrap();
        let resp = client.get(url).send().await.unwrap();
        serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap()
    });
    assert_eq!(body["status"], "success", "{path} {query:?}: {body}");
    body["data"].clone()
}

fn instant(base: &str, query: &str) -> Vec<Value> {
    prom_get(base, "/api/v1/query", &[("query", query)])["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Sends streamed chat requests through the proxy until dropped.
struct Traffic(Arc<AtomicBool>, Option<std::thread::JoinHandle<()>>);

impl Traffic {
    fn start(proxy: String) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let (rt, client) = http();
            while !flag.load(Ordering::Relaxed) {
                let body = json!({"model": "sim-vllm", "stream": true, "max_tokens": 8,
                    "messages": [{"role": "user", "content": "hello"}]});
                rt.block_on(async {
                    if let Ok(resp) = client
                        .post(format!("{proxy}/v1/chat/completions"))
                        .body(body.to_string())
                        .send()
                        .await
                    {
                        let _ = resp.bytes().await;
                    }
                });
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        });
        Traffic(stop, Some(handle))
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        if let Some(h) = self.1.take() {
            let _ = h.join();
        }
    }
}

/// A dashboard query with its template variables set to "All".
fn concrete(expr: &str) -> String {
    let mut out = expr.replace("$__rate_interval", "30s");
    for var in ["$service", "$engine", "$model", "$instance"] {
        out = out.replace(var, ".*");
    }
    out
}

#[test]
fn exported_rules_and_dashboards_work_on_real_prometheus() {
    let Some(prometheus) = external_program("prometheus") else {
        return;
    };
    let loaded = start_with(&["tgi", "llamacpp", "sglang"], &["--load", "20"]);
    // vLLM serves only what comes through the proxy: the client-minus-engine TTFT gap is
    // published only while the proxy carries the engine's traffic.
    // Its GPU (the simulator's dcgm-exporter dialect) reports an XID, so the XID panel has data.
    let faults = tempfile::tempdir().unwrap();
    let scenario = faults.path().join("xid.toml");
    std::fs::write(
        &scenario,
        "name = \"xid\"\n[[step]]\nat = \"0s\"\ngpu_xid = 13\n",
    )
    .unwrap();
    let quiet = start_with(&["vllm"], &["--scenario", scenario.to_str().unwrap()]);
    // nvidia_gpu_exporter's XID counter, for the XIDs-per-hour line.
    let smi = crate::util::serve(std::collections::HashMap::from([(
        "/metrics",
        crate::util::Canned::ok(
            std::fs::read(crate::util::fixture("gpu/nvidia-gpu-exporter-h100.txt")).unwrap(),
        ),
    )]));
    let urls: Vec<(String, String)> = quiet.urls.iter().chain(&loaded.urls).cloned().collect();
    let url = |dialect: &str| urls.iter().find(|(d, _)| d == dialect).unwrap().1.clone();
    // llmwatch scrapes every engine and proxies to vLLM.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("llmwatch.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\n[scrape]\ninterval = \"1s\"\n[proxy]\nlisten = \"127.0.0.1:0\"\nupstream = [\"{}\"]\n",
            url("vllm")
        ),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_llmwatch"));
    cmd.arg("up").arg("--config").arg(&config);
    for (dialect, base) in &urls {
        // The simulated vLLM runs in pod vllm-PORT of namespace sim, as its GPU says.
        let pod = match dialect.as_str() {
            "vllm" => format!(
                ",pod=vllm-{},namespace=sim",
                base.rsplit(':').next().unwrap()
            ),
            _ => String::new(),
        };
        cmd.args([
            "--target",
            &format!("{base},name=sim-{dialect},service=sim{pod}"),
        ]);
    }
    cmd.args([
        "--target",
        &format!("{}/dcgm/metrics,name=sim-gpu", url("vllm")),
    ]);
    cmd.args(["--target", &format!("{}/metrics,name=smi", smi.base)]);
    let (up, mut bases) = spawn_serving(cmd, &["serving http://", "proxy serving http://"]);
    let _up = KillOnDrop(up);
    let proxy = bases.remove(1);
    let up_addr = bases.remove(0).trim_start_matches("http://").to_string();
    let _traffic = Traffic::start(proxy);
    // Prometheus also scrapes every engine directly.
    let out = dir.path().join("export");
    let mut args = vec![
        "export".to_string(),
        format!("--out={}", out.display()),
        format!("--llmwatch={up_addr}"),
        "--alertmanager=127.0.0.1:9".to_string(),
        "--scrape-interval=1s".to_string(),
    ];
    for (dialect, base) in &urls {
        args.push(format!(
            "--target={base},engine={dialect},scrape=prometheus,model=sim-{dialect},service=direct"
        ));
    }
    // One more engine, stopped later: its alert must go pending.
    let doomed = start_with(&["vllm"], &[]);
    let doomed_addr = doomed.urls[0].1.trim_start_matches("http://").to_string();
    args.push(format!(
        "--target=http://{doomed_addr},engine=vllm,scrape=prometheus,service=doomed"
    ));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_ok(&args);
    let config = out.join("prometheus/prometheus.yml");
    let (_prom, prom) = start_prometheus(&prometheus, &config, &dir.path().join("data"));
    // Both modes build llm:requests_running for all four engines (and the doomed one).
    eventually(90, || {
        (instant(&prom, "llm:requests_running").len() == 9).then_some(())
    });
    // Give rates a window of samples and the proxy's gap a few requests.
    std::thread::sleep(std::time::Duration::from_secs(12));

    check_rules_are_healthy(&prom);
    check_both_modes_build_the_same_series(&prom);
    check_every_panel_returns_data(&prom, &out);
    check_a_stopped_engine_raises_target_down(&prom, doomed, &doomed_addr);
}

fn check_a_stopped_engine_raises_target_down(prom: &str, doomed: crate::util::Sim, addr: &str) {
    drop(doomed);
    let alert = eventually(30, || {
        let alerts = prom_get(prom, "/api/v1/alerts", &[]);
        alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["labels"]["alertname"] == "LLMTargetDown")
            .cloned()
    });
    assert_eq!(alert["labels"]["instance"], addr, "{alert}");
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(
        alert["state"], "pending",
        "2 minutes must pass before it fires: {alert}"
    );
    assert_eq!(
        alert["annotations"]["runbook_url"],
        "docs/runbook.md#llmtargetdown"
    );
}

fn check_rules_are_healthy(prom: &str) {
    let groups = prom_get(prom, "/api/v1/rules", &[]);
    let mut count = 0;
    for group in groups["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            count += 1;
            assert_eq!(rule["health"], "ok", "{}: {rule}", group["name"]);
        }
    }
    assert!(count > 150, "only {count} rules loaded");
}

fn check_both_modes_build_the_same_series(prom: &str) {
    let mut names: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for series in instant(prom, "{__name__=~\"llm:[a-z_]+\"}") {
        let m = &series["metric"];
        let mode = if m["job"] == "llmwatch" {
            "llmwatch"
        } else {
            "rules-only"
        };
        // Engines' processes are read from /proc by llmwatch; engine series have no such
        // number (vLLM's own process_* families describe its API server alone).
        // GPUs are no engine's: export_gpu compares both modes' GPU series.
        if m["__name__"]
            .as_str()
            .is_some_and(|n| n.starts_with("llm:process_") || n.starts_with("llm:gpu_"))
        {
            continue;
        }
        let key = (m["engine"].as_str().unwrap().to_string(), mode.to_string());
        names
            .entry(key)
            .or_default()
            .insert(m["__name__"].as_str().unwrap().to_string());
    }
    for engine in ["vllm", "tgi", "llamacpp", "sglang"] {
        let via = &names[&(engine.to_string(), "llmwatch".to_string())];
        let direct = &names[&(engine.to_string(), "rules-only".to_string())];
        assert_eq!(
            via, direct,
            "{engine}: llmwatch and rules-only modes differ"
        );
        assert!(via.len() >= 5, "{engine}: {via:?}");
    }
}

fn check_every_panel_returns_data(prom: &str, out: &std::path::Path) {
    let mut empty = Vec::new();
    let mut queries = 0;
    for entry in std::fs::read_dir(out.join("grafana/dashboards")).unwrap() {
        let path = entry.unwrap().path();
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                queries += 1;
                let expr = concrete(target["expr"].as_str().unwrap());
                // Device memory per engine process comes from NVML alone: a machine with an
                // NVIDIA driver (docs/gpu.md).
                if expr.contains("llm:process_gpu_memory_bytes") {
                    continue;
                }
                if instant(prom, &expr).is_empty() {
                    empty.push(format!(
                        "{} / {}: {expr}",
                        dashboard["title"], panel["title"]
                    ));
                }
            }
        }
        for variable in dashboard["templating"]["list"].as_array().unwrap() {
            let Some(query) = variable["query"]["query"].as_str() else {
                continue;
            };
            // label_values(SELECTOR, LABEL): the selector must match series carrying LABEL.
            let inner = query
                .trim_start_matches("label_values(")
                .trim_end_matches(')');
            let (selector, label) = inner.rsplit_once(", ").unwrap();
            let found = instant(prom, &concrete(selector));
            assert!(
                found.iter().any(|s| s["metric"][label].is_string()),
                "variable {}: no series of {selector} has {label}",
                variable["name"]
            );
        }
    }
    assert!(queries >= 40, "only {queries} queries");
    assert!(
        empty.is_empty(),
        "panel queries with no data:\n{}",
        empty.join("\n")
    );
}
