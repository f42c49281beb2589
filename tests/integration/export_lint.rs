//! The exported files checked without running them (`lint` checks them too, in lint.rs):
//! every PromQL expression in the rules and dashboards parses (promql-parser) and names only
//! series that exist — in the rules' own records, the canonical schema, a real engine
//! capture or simulated engine, or llmwatch's own `/metrics`; every alert links a runbook
//! section; the Compose stack mounts only files that exist and its llmwatch configuration
//! loads.

use std::collections::BTreeSet;
use std::path::Path;

use llmwatch::exposition::{Mode, parse};
use promql_parser::parser::{self, Expr};
use serde_json::Value;

use crate::export::deploy;
use crate::up::{eventually, get};
use crate::util::{fixture, http, start, start_up_with_proxy};

/// Metric names an expression selects.
fn names(expr: &Expr, out: &mut BTreeSet<String>) {
    match expr {
        Expr::Aggregate(e) => {
            names(&e.expr, out);
            if let Some(p) = &e.param {
                names(p, out);
            }
        }
        Expr::Unary(e) => names(&e.expr, out),
        Expr::Binary(e) => {
            names(&e.lhs, out);
            names(&e.rhs, out);
        }
        Expr::Paren(e) => names(&e.expr, out),
        Expr::Subquery(e) => names(&e.expr, out),
        Expr::VectorSelector(vs) => out.extend(vs.name.clone()),
        Expr::MatrixSelector(ms) => out.extend(ms.vs.name.clone()),
        Expr::Call(call) => call.args.args.iter().for_each(|a| names(a, out)),
        _ => {}
    }
}

/// Every rule of every exported rule file, with its file.
fn rules() -> Vec<(std::path::PathBuf, serde_norway::Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(deploy().join("prometheus/rules")).unwrap() {
        let path = entry.unwrap().path();
        let doc: serde_norway::Value =
            serde_norway::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for group in doc["groups"].as_sequence().unwrap() {
            for rule in group["rules"].as_sequence().unwrap() {
                out.push((path.clone(), rule.clone()));
            }
        }
    }
    out
}

/// Every expression in the rule files and dashboards, with where it is.
fn expressions() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, rule) in rules() {
        let name = rule.get("record").or(rule.get("alert")).unwrap();
        let at = format!("{} {}", path.display(), name.as_str().unwrap());
        out.push((at, rule["expr"].as_str().unwrap().to_string()));
    }
    for entry in std::fs::read_dir(deploy().join("grafana/dashboards")).unwrap() {
        let path = entry.unwrap().path();
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let at = format!("{} {}", path.display(), panel["title"]);
                let expr = target["expr"].as_str().unwrap();
                out.push((at, expr.replace("$__rate_interval", "1m")));
            }
        }
        for variable in dashboard["templating"]["list"].as_array().unwrap() {
            if let Some(query) = variable["query"]["query"].as_str() {
                let inner = query
                    .trim_start_matches("label_values(")
                    .trim_end_matches(')');
                let (selector, _) = inner.rsplit_once(", ").unwrap();
                let at = format!("{} variable {}", path.display(), variable["name"]);
                out.push((at, selector.to_string()));
            }
        }
    }
    out
}

/// What llmwatch's `/metrics` holds for a GPU exporter's body.
fn llmwatch_gpu_series(body: &str) -> String {
    let exp = parse(body, Mode::Lenient).unwrap();
    let source = llmwatch::gpu::detect(&llmwatch::engines::Index::new(&exp)).unwrap();
    let scrape = llmwatch::gpu::normalise(&exp, source);
    let labels = std::collections::BTreeMap::new();
    let view = llmwatch::gpu::GpuView {
        instance: "gpu",
        labels: &labels,
        scrape: &scrape,
    };
    let mut out = String::new();
    llmwatch::gpu::write_gpus(&mut out, &[view], &Default::default());
    out
}

/// What llmwatch's `/metrics` holds for this machine's GPUs read through NVML, one of them
/// holding memory of a local engine's process.
fn llmwatch_nvml_series() -> String {
    use llmwatch::collect::state::{Scraped, Store};
    use std::sync::Arc;
    let store = Store::new(llmwatch::config::HistoryConfig::default());
    let scrape = llmwatch::config::ScrapeConfig::default();
    let engine =
        llmwatch::collect::targets::Target::from_arg("http://127.0.0.1:8000,name=e", &scrape);
    let nvml = llmwatch::collect::local_gpus::nvml_target(std::time::Duration::from_secs(5));
    store.set_targets(&[Arc::new(engine.unwrap()), Arc::new(nvml)]);
    let scraped = |gpu, process| Scraped {
        at: 1.0,
        engine: None,
        version: String::new(),
        samples: 1,
        readings: vec![],
        raw: None,
        problems: vec![],
        gpu,
        process,
    };
    let usage = llmwatch::gpu::procfs::Usage {
        pid: 7,
        pids: vec![7, 8],
        processes: 2,
        cpu_seconds: 1.0,
        resident_bytes: 1e9,
    };
    store.record_success("e", scraped(None, Some(usage)), 0.01);
    let gpu = llmwatch::gpu::nvml::NvmlGpu {
        uuid: "GPU-0".into(),
        processes: vec![(8, 1 << 30)],
        ..Default::default()
    };
    let gpus = Arc::new(llmwatch::gpu::nvml::scrape_of(&[gpu]));
    store.record_success("nvml", scraped(Some(gpus), None), 0.01);
    let mut out = String::new();
    llmwatch::up::gpus::write(&mut out, &store.statuses());
    out
}

fn sample_names(text: &str, into: &mut BTreeSet<String>) {
    let exp = parse(text, Mode::Lenient).unwrap();
    into.extend(exp.samples.iter().map(|s| s.name.to_string()));
}

/// Series that exist: recorded by the rules, in the schema, in engine and GPU exporter captures
/// and simulated engines and GPUs, in llmwatch's own /metrics with its proxy carrying traffic,
/// and Prometheus' own.
fn known_series() -> BTreeSet<String> {
    let mut known: BTreeSet<String> = ["up", "scrape_samples_scraped"].map(String::from).into();
    let catalog = std::fs::read_to_string(fixture("engine-catalog.txt")).unwrap();
    known.extend(
        catalog
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_whitespace().next())
            .map(String::from),
    );
    for (_, rule) in rules() {
        known.extend(
            rule.get("record")
                .and_then(|r| r.as_str())
                .map(String::from),
        );
    }
    for dir in ["reconstructed", "llamacpp", "gpu"] {
        for entry in std::fs::read_dir(fixture(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "txt") {
                sample_names(&std::fs::read_to_string(&path).unwrap(), &mut known);
            }
        }
    }
    let sim = start(&["vllm", "tgi", "llamacpp", "sglang"]);
    for (_, base) in &sim.urls {
        sample_names(&get(&format!("{base}/metrics")).1, &mut known);
    }
    // The simulated GPU (llama.cpp has none), and what llmwatch writes for each GPU body.
    let gpu = get(&format!("{}/dcgm/metrics", sim.urls[0].1)).1;
    sample_names(&gpu, &mut known);
    let bodies = std::fs::read_dir(fixture("gpu"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap());
    for body in bodies.chain([gpu]) {
        sample_names(&llmwatch_gpu_series(&body), &mut known);
    }
    let nvml = llmwatch_nvml_series();
    assert!(nvml.contains("llm_process_gpu_memory_bytes{"), "{nvml}");
    sample_names(&nvml, &mut known);
    let vllm = &sim.urls[0].1;
    let config = "listen = \"127.0.0.1:0\"\n[scrape]\ninterval = \"200ms\"\n\
                  [proxy]\nlisten = \"127.0.0.1:0\"\nupstream = [\"UPSTREAM\"]\n"
        .replace("UPSTREAM", vllm);
    let (_up, up, proxy) = start_up_with_proxy(&config, vllm);
    let metrics = eventually(60, || {
        let (rt, client) = http();
        rt.block_on(async {
            let body = r#"{"model":"sim-vllm","stream":true,"max_tokens":4,"messages":[{"role":"user","content":"hi"}]}"#;
            let resp = client
                .post(format!("{proxy}/v1/chat/completions"))
                .body(body)
                .send()
                .await
                .ok()?;
            resp.bytes().await.ok()
        });
        let (_, text) = get(&format!("{up}/metrics"));
        text.contains("llm_client_ttft_gap_seconds{")
            .then_some(text)
    });
    sample_names(&metrics, &mut known);
    known
}

#[test]
fn every_expression_parses_and_names_only_series_that_exist() {
    let known = known_series();
    let mut unknown = Vec::new();
    let expressions = expressions();
    assert!(expressions.len() > 200, "{}", expressions.len());
    for (at, expr) in &expressions {
        let parsed = parser::parse(expr).unwrap_or_else(|e| panic!("{at}: {expr}: {e}"));
        let mut selected = BTreeSet::new();
        names(&parsed, &mut selected);
        assert!(!selected.is_empty(), "{at}: selects nothing: {expr}");
        for name in selected.difference(&known) {
            unknown.push(format!("{at}: {name}"));
        }
    }
    assert!(
        unknown.is_empty(),
        "series that do not exist:\n{}",
        unknown.join("\n")
    );
}

#[test]
fn every_alert_links_a_runbook_section_that_says_what_how_and_what_to_do() {
    let runbook =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/runbook.md"))
            .unwrap();
    let rules = std::fs::read_to_string(deploy().join("prometheus/rules/llm-alerts.yml")).unwrap();
    let doc: serde_norway::Value = serde_norway::from_str(&rules).unwrap();
    let alerts = doc["groups"][0]["rules"].as_sequence().unwrap();
    assert_eq!(alerts.len(), llmwatch::export::alerts::alert_names().len());
    for alert in alerts {
        let name = alert["alert"].as_str().unwrap();
        let annotations = &alert["annotations"];
        for key in ["summary", "description", "runbook_url"] {
            assert!(annotations[key].is_string(), "{name}: no {key}");
        }
        assert!(
            alert["labels"]["severity"].is_string(),
            "{name}: no severity"
        );
        let url = annotations["runbook_url"].as_str().unwrap();
        assert_eq!(url, format!("docs/runbook.md#{}", name.to_lowercase()));
        let heading = format!("\n## {name}\n");
        let start = runbook
            .find(&heading)
            .unwrap_or_else(|| panic!("no runbook for {name}"));
        let section = &runbook[start + heading.len()..];
        let section = &section[..section.find("\n## ").unwrap_or(section.len())];
        for part in [
            "**What it means.**",
            "**How to confirm.**",
            "**What to do.**",
        ] {
            assert!(section.contains(part), "{name}: runbook lacks {part}");
        }
    }
}

#[test]
fn compose_mounts_only_files_that_exist_and_its_config_loads() {
    let compose_dir = deploy().join("compose");
    let text = std::fs::read_to_string(compose_dir.join("docker-compose.yml")).unwrap();
    let doc: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let services = doc["services"].as_mapping().unwrap();
    for name in ["llmwatch", "prometheus", "alertmanager", "grafana"] {
        assert!(services.contains_key(name), "no {name} service");
    }
    let mut mounts = 0;
    for (name, service) in services {
        for volume in service["volumes"].as_sequence().into_iter().flatten() {
            let host = volume.as_str().unwrap().split(':').next().unwrap();
            if host.starts_with('.') {
                mounts += 1;
                let path = compose_dir.join(host);
                assert!(
                    path.exists(),
                    "{name:?} mounts {host}, which does not exist"
                );
            } else {
                let volumes = doc["volumes"].as_mapping().unwrap();
                assert!(
                    volumes.contains_key(host),
                    "{name:?}: undeclared volume {host}"
                );
            }
        }
        if let Some(build) = service.get("build") {
            let context = compose_dir.join(build["context"].as_str().unwrap());
            assert!(
                context
                    .join(build["dockerfile"].as_str().unwrap())
                    .is_file()
            );
            assert!(
                context.join(".dockerignore").is_file(),
                "no .dockerignore: the context would carry target/"
            );
        }
    }
    assert!(mounts >= 6, "{mounts}");
    let profiles: BTreeSet<&str> = services
        .values()
        .filter_map(|s| s["profiles"].as_sequence())
        .flatten()
        .filter_map(|p| p.as_str())
        .collect();
    for profile in ["sim", "vllm", "tgi", "llamacpp", "otel"] {
        assert!(
            profiles.contains(profile),
            "no {profile} profile: {profiles:?}"
        );
    }
    let dockerfile = std::fs::read_to_string(compose_dir.join("Dockerfile")).unwrap();
    assert_eq!(dockerfile.matches("\nFROM ").count(), 2, "multi-stage");
    assert!(dockerfile.contains("\nUSER nonroot"), "runs as non-root");
    let config = compose_dir.join("llmwatch.toml");
    let loaded = llmwatch::config::Config::load(&config).unwrap();
    assert!(!loaded.targets.is_empty());
    assert!(loaded.proxy.is_some());
}

/// A validator's command, or `None` with a message saying the test is skipped (fails under
/// `LLMWATCH_REQUIRE_EXTERNAL=1`).
fn validator(what: &str, found: Option<std::process::Command>) -> Option<std::process::Command> {
    if found.is_none() {
        assert!(
            !crate::util::require_external(),
            "LLMWATCH_REQUIRE_EXTERNAL=1 but {what} is not installed"
        );
        eprintln!("skipping: {what} is not installed");
    }
    found
}

#[test]
fn kubernetes_manifests_validate_against_the_kubernetes_and_operator_schemas() {
    let base = deploy().join("kubernetes/base");
    let kustomization: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(base.join("kustomization.yaml")).unwrap())
            .unwrap();
    let mut files = Vec::new();
    for resource in kustomization["resources"].as_sequence().unwrap() {
        let path = base.join(resource.as_str().unwrap());
        assert!(
            path.is_file(),
            "kustomization lists {}, which does not exist",
            path.display()
        );
        files.push(path);
    }
    let listed: BTreeSet<_> = files.iter().cloned().collect();
    for entry in std::fs::read_dir(&base).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name == "kustomization.yaml" || listed.contains(&path),
            "{name} is not in the kustomization"
        );
    }
    let text = std::fs::read_to_string(base.join("monitors.yaml")).unwrap();
    assert!(text.contains("kind: ServiceMonitor") && text.contains("kind: PodMonitor"));
    let dashboards = std::fs::read_to_string(base.join("dashboards.yaml")).unwrap();
    assert_eq!(
        dashboards.matches("grafana_dashboard: '1'").count(),
        4,
        "{dashboards:.300}"
    );

    // Types, required fields and enums, Prometheus Operator kinds included.
    let k8s = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/k8s");
    let node = crate::util::external_program("node");
    let models = node
        .filter(|_| k8s.join("node_modules/kubernetes-models").is_dir())
        .map(|node| {
            let mut cmd = std::process::Command::new(node);
            cmd.arg(k8s.join("validate.mjs")).current_dir(&k8s);
            cmd
        });
    if let Some(mut cmd) = validator("tests/k8s/node_modules (npm ci --prefix tests/k8s)", models) {
        let out = cmd.args(&files).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let documents: usize = files
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(f).unwrap();
                serde_norway::Deserializer::from_str(&text).count()
            })
            .sum();
        assert!(
            stdout.contains(&format!("{documents} valid, 0 invalid")),
            "{stdout}"
        );
    }
    // Unknown fields in core kinds.
    let strict = std::env::var_os("LLMWATCH_KUBERNETES_VALIDATE")
        .map(std::path::PathBuf::from)
        .or_else(|| crate::util::external_program("kubernetes-validate"))
        .map(std::process::Command::new);
    if let Some(mut cmd) = validator("kubernetes-validate (PyPI)", strict) {
        let core: Vec<_> = files
            .iter()
            .filter(|f| !f.ends_with("monitors.yaml") && !f.ends_with("prometheusrule.yaml"))
            .collect();
        let out = cmd
            .args(["--strict", "--no-warn"])
            .args(&core)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            stdout.matches("passed for resource").count(),
            11,
            "{stdout}"
        );
    }
}

#[test]
fn the_otel_collector_example_connects_llmwatch_prometheus_and_jaeger() {
    let compose_dir = deploy().join("compose");
    let read = |name: &str| -> serde_norway::Value {
        serde_norway::from_str(&std::fs::read_to_string(compose_dir.join(name)).unwrap()).unwrap()
    };
    let compose = read("docker-compose.yml");
    let collector = read("otel-collector.yaml");
    let services = compose["services"].as_mapping().unwrap();
    // Every pipeline names only receivers, processors and exporters the file defines.
    let pipelines = collector["service"]["pipelines"].as_mapping().unwrap();
    assert_eq!(pipelines.len(), 2, "metrics and traces");
    for (signal, pipeline) in pipelines {
        for part in ["receivers", "processors", "exporters"] {
            for name in pipeline[part].as_sequence().unwrap() {
                assert!(
                    collector[part].get(name.as_str().unwrap()).is_some(),
                    "{signal:?} uses {part} {name:?}, which is not defined"
                );
            }
        }
    }
    // Each exporter's endpoint is a service of the stack that takes what it is sent.
    let host_of = |url: &str| {
        url.split("://")
            .nth(1)
            .unwrap()
            .split(':')
            .next()
            .unwrap()
            .to_string()
    };
    let write = collector["exporters"]["prometheusremotewrite"]["endpoint"]
        .as_str()
        .unwrap();
    assert!(services.contains_key(host_of(write).as_str()));
    assert!(write.ends_with("/api/v1/write"));
    let flags = compose["services"]["prometheus"]["command"]
        .as_sequence()
        .unwrap();
    assert!(
        flags
            .iter()
            .any(|f| f == "--web.enable-remote-write-receiver")
    );
    let traces = collector["exporters"]["otlphttp/traces"]["endpoint"]
        .as_str()
        .unwrap();
    let jaeger = &compose["services"][host_of(traces).as_str()];
    assert_eq!(jaeger["environment"]["COLLECTOR_OTLP_ENABLED"], "true");
    // llmwatch's commented [otlp] section, uncommented, points at the collector's receiver.
    let toml = std::fs::read_to_string(compose_dir.join("llmwatch.toml")).unwrap();
    let uncommented = toml
        .replace("# [otlp]", "[otlp]")
        .replace("# endpoint", "endpoint");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("llmwatch.toml");
    std::fs::write(&path, uncommented).unwrap();
    let config = llmwatch::config::Config::load(&path).unwrap();
    let endpoint = config.otlp.endpoint.expect("an [otlp] endpoint");
    assert!(
        services.contains_key(host_of(&endpoint).as_str()),
        "{endpoint}"
    );
    let receiver = collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
        .as_str()
        .unwrap();
    assert_eq!(endpoint.rsplit(':').next(), receiver.rsplit(':').next());
    for service in ["otel-collector", "jaeger"] {
        assert_eq!(
            compose["services"][service]["profiles"][0], "otel",
            "{service}"
        );
    }
}
