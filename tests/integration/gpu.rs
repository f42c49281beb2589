//! GPU exporters as `up` targets: dcgm-exporter and nvidia_gpu_exporter bodies (the reconstructed
//! fixtures, served by a canned server) are read into the `llm_gpu_*` signals, each GPU attached
//! to the simulated model server it serves by pod labels or by configured UUID, or reported as
//! unattributed; a GPU that disappears from the body disappears from the output. The simulated
//! engine runs on this machine, so its CPU and memory are read from `/proc`.

use std::collections::HashMap;

use serde_json::Value;

use crate::prometheus_real::promql;
use crate::up::{eventually, get, sample, start_up};
use crate::util::{Canned, fixture, serve, start, start_with};

fn body(name: &str) -> Vec<u8> {
    std::fs::read(fixture(&format!("gpu/{name}"))).unwrap()
}

#[test]
fn up_reads_gpu_exporters_and_attaches_each_gpu_to_its_model_server() {
    let sim = start(&["vllm"]);
    let engine = &sim.urls[0].1;
    let dcgm = serve(HashMap::from([(
        "/metrics",
        Canned::ok(body("dcgm-exporter-h100-pods.txt")),
    )]));
    let smi = serve(HashMap::from([(
        "/metrics",
        Canned::ok(body("nvidia-gpu-exporter-h100.txt")),
    )]));
    let config = format!(
        r#"
[scrape]
interval = "1s"

[alerting]
interval = "1s"

[[target]]
url = "{engine}"
name = "vllm-a"
labels = {{ pod = "llama-0", namespace = "llm" }}

[[target]]
url = "{engine}"
name = "vllm-b"
gpus = ["GPU-1A2B3C4D-5E6F-4A8B-9C0D-1E2F3A4B5C6D"]

[[target]]
url = "{dcgm}/metrics"
name = "dcgm-node-7"

[[target]]
url = "{smi}/metrics"
name = "smi"
"#,
        dcgm = dcgm.base,
        smi = smi.base,
    );
    let up = start_up(&config, &[]);
    let metrics = eventually(20, || {
        let (_, text) = get(&format!("{}/metrics", up.base));
        let ready = ["smi", "dcgm-node-7"]
            .iter()
            .all(|t| text.contains(&format!("llm_gpu_info{{instance=\"{t}\"")));
        let engines = ["vllm-a", "vllm-b"].iter().all(|t| {
            text.contains(&format!(
                "llm_engine_info{{engine=\"vllm\",instance=\"{t}\""
            ))
        });
        (ready && engines).then_some(text)
    });
    llmwatch::exposition::parse(&metrics, llmwatch::exposition::Mode::Strict)
        .expect("/metrics parses strictly");
    let busy = "instance=\"dcgm-node-7\",gpu=\"0\"";
    let model = "gpu_model=\"NVIDIA H100 80GB HBM3\"";
    let value = |name: &str, labels: &str| sample(&metrics, &format!("{name}{{{labels}}}"));
    assert_eq!(
        value("llm_gpu_utilization_ratio", &format!("{busy},{model}")),
        Some(0.97)
    );
    assert_eq!(
        value("llm_gpu_memory_used_bytes", &format!("{busy},{model}")),
        Some(74211.0 * 1_048_576.0)
    );
    assert_eq!(
        value(
            "llm_gpu_throttled_seconds_total",
            &format!("{busy},{model},reason=\"power\"")
        ),
        Some(4.2)
    );
    assert_eq!(
        value(
            "llm_gpu_info",
            &format!("{busy},{model},uuid=\"8f0b0c1e-4a5d-4b7e-9c1d-2e3f4a5b6c7d\"")
        ),
        Some(1.0)
    );
    // The join: by pod, by configured UUID (any case, with GPU-), and unattributed.
    assert_eq!(
        value(
            "llm_gpu_server_info",
            &format!("{busy},server=\"vllm-a\",via=\"pod\"")
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            "llm_gpu_server_info",
            "instance=\"dcgm-node-7\",gpu=\"1\",server=\"vllm-b\",via=\"config\""
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            "llm_gpu_server_info",
            "instance=\"smi\",gpu=\"0\",via=\"none\""
        ),
        Some(1.0)
    );
    assert_eq!(
        value("llmwatch_gpu_unknown_families", "instance=\"dcgm-node-7\""),
        Some(1.0)
    );
    assert_eq!(
        value("llmwatch_gpu_unknown_families", "instance=\"smi\""),
        Some(1.0)
    );

    // The simulator runs on this machine: its process, found through its port.
    #[cfg(target_os = "linux")]
    {
        let engine_labels = "engine=\"vllm\",instance=\"vllm-a\",namespace=\"llm\",pod=\"llama-0\"";
        let resident = value("llm_process_resident_memory_bytes", engine_labels);
        assert!(resident.is_some_and(|r| r > 1e6), "{resident:?}");
        assert!(value("llm_process_cpu_seconds_total", engine_labels).is_some());
    }

    let (status, api) = get(&format!("{}/api/v1/gpus", up.base));
    assert_eq!(status, 200);
    let api: Value = serde_json::from_str(&api).unwrap();
    let gpus = api["data"]["gpus"].as_array().unwrap();
    assert_eq!(gpus.len(), 3);
    let held = gpus
        .iter()
        .find(|g| g["exporter"] == "dcgm-node-7" && g["gpu"] == "0")
        .unwrap();
    assert_eq!(held["source"], "dcgm-exporter");
    assert_eq!(held["servers"][0]["server"], "vllm-a");
    assert_eq!(held["pods"][0]["pod"], "llama-0");
    assert_eq!(held["values"]["llm_gpu_power_watts"], 612.304);
    assert_eq!(
        held["values"]["llm_gpu_throttled_seconds_total"]["thermal"],
        1.5
    );
    #[cfg(target_os = "linux")]
    {
        let processes = api["data"]["processes"].as_array().unwrap();
        // Both engine targets point at the one simulator; the GPU exporters are not engines.
        assert_eq!(processes.len(), 2, "{processes:?}");
        assert!(processes.iter().all(|p| p["pid"] == sim.pid()));
    }

    // The overview (the dashboard and top) shows each server's GPUs, and no row for the
    // exporters themselves.
    let (_, overview) = get(&format!("{}/api/v1/overview?limit=50", up.base));
    let overview: Value = serde_json::from_str(&overview).unwrap();
    assert_eq!(overview["gpus"], true);
    let rows = overview["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let row = |target: &str| rows.iter().find(|r| r["target"] == target).unwrap();
    assert_eq!(row("vllm-a")["gpus"][0]["utilization"], 0.97);
    assert_eq!(row("vllm-a")["gpus"][0]["via"], "pod");
    assert_eq!(row("vllm-b")["gpus"][0]["gpu"], "1");
    assert_eq!(row("vllm-b")["gpus"][0]["last_xid"], 79.0);

    // A GPU exporter is not an engine: no "expected metrics absent" alert for it; its GPU
    // with an XID fires the XID alert.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let (_, alerts) = get(&format!("{}/api/v1/alerts", up.base));
    let alerts: Value = serde_json::from_str(&alerts).unwrap();
    let active = alerts["data"]["alerts"].as_array().unwrap();
    assert!(
        active.iter().all(|a| {
            let instance = &a["labels"]["instance"];
            a["labels"]["alertname"] != "LLMExpectedMetricsAbsent"
                || (instance != "dcgm-node-7" && instance != "smi")
        }),
        "{active:?}"
    );
    let xid = active
        .iter()
        .find(|a| a["labels"]["alertname"] == "LLMGPUXIDError")
        .unwrap_or_else(|| panic!("no XID alert: {active:?}"));
    assert_eq!(xid["labels"]["instance"], "dcgm-node-7");
    assert_eq!(xid["labels"]["gpu"], "1");
    assert_eq!(xid["state"], "firing");

    // Doctor does not diagnose the exporters as model servers; of their GPUs it says which
    // one no server claims and which one reported an XID.
    let out = crate::util::llmwatch()
        .args([
            "doctor", "--url", &up.base, "--window", "1s", "--format", "json",
        ])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = report["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("{report}"));
    let about_exporters: Vec<(String, String, String)> = findings
        .iter()
        .filter(|f| f["subject"] == "smi" || f["subject"] == "dcgm-node-7")
        .map(|f| {
            let text = |k: &str| f[k].as_str().unwrap_or_default().to_string();
            (text("subject"), text("place"), text("check"))
        })
        .collect();
    let expect = |s: &str, p: &str, c: &str| (s.to_string(), p.to_string(), c.to_string());
    assert_eq!(
        about_exporters,
        [
            expect("dcgm-node-7", "gpu 1", "gpu-xid"),
            expect("smi", "gpu 0", "gpu-unattributed"),
        ],
        "{report}"
    );
    assert!(
        findings.iter().any(|f| f["subject"]
            .as_str()
            .is_some_and(|s| s.starts_with("vllm-a"))),
        "{report}"
    );

    // GPU 1 falls off the bus: its series leave the body, and the output.
    let text = String::from_utf8(body("dcgm-exporter-h100-pods.txt")).unwrap();
    let without: String = text
        .lines()
        .filter(|l| !l.contains("1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d"))
        .map(|l| format!("{l}\n"))
        .collect();
    dcgm.set("/metrics", Canned::ok(without));
    eventually(20, || {
        let (_, text) = get(&format!("{}/metrics", up.base));
        (!text.contains("instance=\"dcgm-node-7\",gpu=\"1\"")
            && text.contains("instance=\"dcgm-node-7\",gpu=\"0\""))
        .then_some(())
    });
}

#[test]
fn the_simulator_s_gpu_follows_its_engine_and_scenario_faults_reach_up() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("gpu.toml");
    std::fs::write(
        &scenario,
        "name = \"gpu\"\n[[step]]\nat = \"1s\"\ngpu_throttle = \"thermal\"\ngpu_xid = 79\ngpu_foreign_memory_gib = 40\n",
    )
    .unwrap();
    let sim = start_with(
        &["vllm", "llamacpp"],
        &["--scenario", scenario.to_str().unwrap(), "--load", "2"],
    );
    let vllm = &sim.urls[0].1;
    let port = vllm.rsplit(':').next().unwrap();
    // llama.cpp runs on the CPU: no GPU to show.
    let (status, _) = get(&format!("{}/dcgm/metrics", sim.urls[1].1));
    assert_eq!(status, 404);
    let config = format!(
        r#"
[scrape]
interval = "1s"

[[target]]
url = "{vllm}"
name = "vllm"
labels = {{ pod = "vllm-{port}", namespace = "sim" }}

[[target]]
url = "{vllm}/dcgm/metrics"
name = "gpu"
"#
    );
    let up = start_up(&config, &[]);
    let metrics = eventually(20, || {
        let (_, text) = get(&format!("{}/metrics", up.base));
        text.contains("llm_gpu_last_xid{").then_some(text)
    });
    let value = |prefix: &str| sample(&metrics, prefix);
    assert_eq!(
        value("llm_gpu_server_info{instance=\"gpu\",gpu=\"0\",server=\"vllm\",via=\"pod\"}"),
        Some(1.0)
    );
    assert_eq!(value("llm_gpu_last_xid{instance=\"gpu\""), Some(79.0));
    assert_eq!(
        value("llm_gpu_sm_clock_hertz{instance=\"gpu\""),
        Some(1410e6)
    );
    let used = value("llm_gpu_memory_used_bytes{instance=\"gpu\"").unwrap();
    assert!(used >= 40.0 * 1024.0 * 1_048_576.0, "{used}");
    let throttled = eventually(10, || {
        let (_, text) = get(&format!("{}/metrics", up.base));
        sample(
            &text,
            "llm_gpu_throttled_seconds_total{instance=\"gpu\",gpu=\"0\",gpu_model=\"NVIDIA H100 80GB HBM3\",reason=\"thermal\"}",
        )
        .filter(|v| *v > 0.0)
    });
    assert!(throttled > 0.0);
}

#[test]
fn scrape_reads_a_gpu_exporter_as_a_table_json_and_the_llm_gpu_exposition() {
    let path = fixture("gpu/dcgm-exporter-h100-pods.txt");
    let path = path.to_str().unwrap();
    let table = crate::util::run_ok(&["scrape", path]);
    assert!(
        table.contains("exporter dcgm-exporter (GPUs, not an engine)"),
        "{table}"
    );
    let first = table.lines().find(|l| l.starts_with("0 ")).unwrap();
    assert!(
        first.contains("97 %") && first.contains("72.5 GiB"),
        "{table}"
    );
    assert!(table.contains("held by pod llm/llama-0"), "{table}");
    assert!(table.contains("last XID error: 79"), "{table}");
    assert!(
        table.contains("not read: DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL"),
        "{table}"
    );
    let json: Value =
        serde_json::from_str(&crate::util::run_ok(&["scrape", "--format", "json", path])).unwrap();
    assert_eq!(json["gpu"]["source"], "dcgm-exporter");
    assert_eq!(json["gpu"]["gpus"].as_array().unwrap().len(), 2);
    let prom = crate::util::run_ok(&["scrape", "--format", "prom", path]);
    llmwatch::exposition::parse(&prom, llmwatch::exposition::Mode::Strict).unwrap();
    assert!(
        prom.lines()
            .any(|l| l.starts_with("llm_gpu_utilization_ratio{")
                && l.contains("gpu=\"0\"")
                && l.ends_with(" 0.97")),
        "{prom}"
    );
}

/// `up` with its log (info level) in a file, and the log read after a round of scrapes.
fn up_with_log(config: &str) -> (std::process::Child, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("llmwatch.toml");
    std::fs::write(&path, format!("listen = \"127.0.0.1:0\"\n{config}")).unwrap();
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_llmwatch"))
        .args(["up", "--config"])
        .arg(&path)
        .env("LLMWATCH_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = std::io::BufRead::lines(std::io::BufReader::new(stdout))
        .find_map(|l| l.ok().filter(|l| l.contains("serving http://")))
        .expect("up printed its address");
    let rest = line.split("http://").nth(1).unwrap();
    let base = format!("http://{}", rest.split('/').next().unwrap());
    (child, base, dir)
}

#[test]
fn without_an_nvidia_driver_up_says_so_once_and_serves_no_local_gpu() {
    let sim = start(&["vllm"]);
    let engine = &sim.urls[0].1;
    let config = format!(
        "[scrape]\ninterval = \"200ms\"\n\n[[target]]\nurl = \"{engine}\"\nname = \"vllm\"\n"
    );
    let (mut child, base, dir) = up_with_log(&config);
    // Several scrape rounds, so a per-round message would show more than once.
    let metrics = eventually(20, || {
        let (_, text) = get(&format!("{base}/metrics"));
        sample(&text, "llmwatch_scrapes_total{instance=\"vllm\"}")
            .filter(|n| *n >= 5.0)
            .map(|_| text)
    });
    let (_, targets) = get(&format!("{base}/api/v1/targets"));
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    let opened = log
        .lines()
        .any(|l| l.contains("reading this machine's GPUs through NVML"));
    if opened {
        // A machine with a driver and a GPU: the GPUs are a target of their own.
        assert_eq!(sample(&metrics, "llmwatch_nvml_up "), Some(1.0), "{log}");
        assert!(targets.contains("\"nvml\""), "{targets}");
        assert!(
            metrics.contains("llm_gpu_info{instance=\"nvml\""),
            "{metrics}"
        );
        return;
    }
    let said: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("no NVIDIA driver"))
        .collect();
    assert_eq!(said.len(), 1, "{log}");
    assert!(
        said[0].contains("this machine's GPUs are not read"),
        "{}",
        said[0]
    );
    assert_eq!(
        sample(&metrics, "llmwatch_nvml_up "),
        Some(0.0),
        "{metrics}"
    );
    assert!(!metrics.contains("llm_gpu_"), "{metrics}");
    assert!(!targets.contains("\"nvml\""), "{targets}");
    // The engine is read as ever.
    assert!(metrics.contains("llm_requests_running{"), "{metrics}");
}

#[test]
fn real_prometheus_with_the_exported_rules_raises_the_gpu_alerts_and_doctor_reads_them() {
    let Some(prometheus) = crate::util::external_program("prometheus") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("gpu.toml");
    std::fs::write(
        &scenario,
        "name = \"gpu\"\n[[step]]\nat = \"1s\"\ngpu_xid = 79\ngpu_foreign_memory_gib = 64\n",
    )
    .unwrap();
    let sim = start_with(&["vllm"], &["--scenario", scenario.to_str().unwrap()]);
    let vllm = &sim.urls[0].1;
    let port = vllm.rsplit(':').next().unwrap();
    let config = format!(
        "[scrape]\ninterval = \"1s\"\n\n[[target]]\nurl = \"{vllm}\"\nname = \"vllm\"\nlabels = {{ pod = \"vllm-{port}\", namespace = \"sim\" }}\n\n[[target]]\nurl = \"{vllm}/dcgm/metrics\"\nname = \"gpu\"\n"
    );
    let up = start_up(&config, &[]);
    let out = dir.path().join("export");
    crate::util::run_ok(&[
        "export",
        &format!("--out={}", out.display()),
        &format!("--llmwatch={}", up.base.trim_start_matches("http://")),
        "--alertmanager=127.0.0.1:9",
        "--scrape-interval=1s",
        &format!("--target={vllm},engine=vllm,service=sim"),
    ]);
    let (_prom, prom) = crate::util::start_prometheus(
        &prometheus,
        &out.join("prometheus/prometheus.yml"),
        &dir.path().join("data"),
    );
    // The XID alert has no wait; the memory alert waits 10 minutes, so pending is the proof
    // that its join of the GPU to the server's KV cache matched.
    let alerts = eventually(90, || {
        let alerts = promql(&prom, "ALERTS{alertname=~\"LLMGPU.*\"}");
        let state = |name: &str| {
            alerts
                .iter()
                .find(|(l, _)| l["alertname"] == name)
                .map(|(l, _)| l["alertstate"].as_str().unwrap_or("").to_string())
        };
        (state("LLMGPUXIDError").as_deref() == Some("firing")
            && state("LLMGPUMemoryFullOutsideKVCache").is_some())
        .then_some(alerts)
    });
    let memory = alerts
        .iter()
        .find(|(l, _)| l["alertname"] == "LLMGPUMemoryFullOutsideKVCache")
        .unwrap();
    assert_eq!(memory.0["server"], "vllm", "{alerts:?}");
    assert_eq!(memory.0["instance"], "gpu", "{alerts:?}");
    let out = crate::util::llmwatch()
        .args(["doctor", "--format", "json", "--prometheus", &prom])
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let xid = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "gpu-xid")
        .unwrap_or_else(|| panic!("no gpu-xid finding: {doc}"));
    assert!(xid["message"].as_str().unwrap().contains("XID 79"), "{xid}");
    assert_eq!(xid["subject"], "gpu");
}
