//! OTLP export from the proxy, read by an independent decoder: a receiver built on the
//! reference OTLP schema (the `opentelemetry-proto` Python package) records every export,
//! and what it read must equal the proxy's `/metrics` at that moment, under the names,
//! units, attributes, temporality and bucket bounds the conventions give. A throttling or
//! absent endpoint costs exports, counted, and never a request.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::proxy::{chat, outcome, start_proxy};
use crate::up::{eventually, get};
use crate::util::{KillOnDrop, http, start_with};

/// The Python with the reference OTLP schema, or `None` (the test skips) when there is none.
fn otlp_python() -> Option<String> {
    crate::util::python_with(
        "LLMWATCH_OTLP_PYTHON",
        "opentelemetry.proto.collector.metrics.v1",
        "opentelemetry-proto",
    )
}

/// A running receiver: its base URL and the file it appends each decoded export to.
pub(crate) struct Receiver {
    _child: KillOnDrop,
    pub(crate) base: String,
    out: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Receiver {
    pub(crate) fn start(extra: &[&str]) -> Option<Receiver> {
        Receiver::start_with(otlp_python()?, extra)
    }

    /// A receiver of OTLP over gRPC (`grpcio`'s server), when a Python has it.
    pub(crate) fn start_grpc(extra: &[&str]) -> Option<Receiver> {
        let python = crate::util::python_with(
            "LLMWATCH_OTLP_PYTHON",
            "opentelemetry.proto.collector.metrics.v1, grpc",
            "opentelemetry-proto and grpcio",
        )?;
        let mut args = vec!["--grpc"];
        args.extend_from_slice(extra);
        Receiver::start_with(python, &args)
    }

    fn start_with(python: String, extra: &[&str]) -> Option<Receiver> {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("exports.jsonl");
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/otlp_receiver.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg(&out)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let line = BufReader::new(child.stdout.take().unwrap())
            .lines()
            .next()
            .unwrap()
            .unwrap();
        let base = line.trim_start_matches("listening ").to_string();
        Some(Receiver {
            _child: KillOnDrop(child),
            base,
            out,
            _dir: dir,
        })
    }

    /// Every metrics export received so far, decoded.
    pub(crate) fn exports(&self) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter(|e| e["path"] == "/v1/metrics")
            .collect()
    }

    /// Every export received so far, metrics and traces: the lines the receiver has
    /// finished writing (one it is writing now has no line end yet).
    pub(crate) fn received(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        let written = text.rsplit_once('\n').map_or("", |(whole, _)| whole);
        written
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// Sends `streams` streamed then `plain` whole chat requests for the simulator's model,
/// six tokens each, each answered 200.
pub(crate) fn send_requests(base: &str, streams: usize, plain: usize) {
    for i in 0..streams + plain {
        let body = chat_body("sim-vllm", i < streams, Some(6));
        assert_eq!(post(base, &body, None), 200);
    }
}

/// A proxy in front of `upstream` exporting to `receiver` every `interval`, with `extra` flags.
pub(crate) fn otlp_proxy(
    upstream: &str,
    receiver: &str,
    interval: &str,
    extra: &[&str],
) -> crate::proxy::Proxy {
    let mut args = vec!["--otlp-endpoint", receiver, "--otlp-interval", interval];
    args.extend_from_slice(extra);
    start_proxy(&[upstream], &args)
}

/// The metrics of one export by name.
pub(crate) fn metrics_of(export: &Value) -> BTreeMap<String, Value> {
    let scope = &export["body"]["resource_metrics"][0]["scope_metrics"][0]["metrics"];
    scope
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap().to_string(), m.clone()))
        .collect()
}

pub(crate) fn attributes(point: &Value) -> BTreeMap<String, String> {
    point["attributes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|kv| {
                    // A string, or an integer (which OTLP's JSON writes as a string too).
                    let value = &kv["value"];
                    let v = value["string_value"]
                        .as_str()
                        .or(value["int_value"].as_str());
                    let key = kv["key"].as_str().unwrap().to_string();
                    (key, v.unwrap_or("").to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// OTLP encodes 64-bit integers as JSON strings.
pub(crate) fn int(v: &Value) -> f64 {
    v.as_str()
        .map_or_else(|| v.as_f64().unwrap_or(0.0), |s| s.parse().unwrap())
}

/// A Prometheus sample's value from `/metrics` text: `name{labels}` exactly.
pub(crate) fn prom(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

/// The labels of a request to the simulator that it answered (it names the model it is).
const ANSWERED: &str = "gen_ai_operation_name=\"chat\",gen_ai_request_model=\"sim-vllm\",gen_ai_response_model=\"sim-vllm\"";

/// (Prometheus family, OpenTelemetry name, unit, data kind) of every proxy family.
const NAMES: [(&str, &str, &str, &str); 11] = [
    (
        "gen_ai_client_operation_duration_seconds",
        "gen_ai.client.operation.duration",
        "s",
        "histogram",
    ),
    (
        "gen_ai_client_operation_time_to_first_chunk_seconds",
        "gen_ai.client.operation.time_to_first_chunk",
        "s",
        "histogram",
    ),
    (
        "gen_ai_client_operation_time_per_output_chunk_seconds",
        "gen_ai.client.operation.time_per_output_chunk",
        "s",
        "histogram",
    ),
    (
        "gen_ai_client_token_usage",
        "gen_ai.client.token.usage",
        "{token}",
        "histogram",
    ),
    (
        "llm_proxy_time_to_first_content_seconds",
        "llm.proxy.time_to_first_content",
        "s",
        "histogram",
    ),
    (
        "llm_proxy_time_per_output_token_seconds",
        "llm.proxy.time_per_output_token",
        "s",
        "histogram",
    ),
    (
        "llm_proxy_requests_in_flight",
        "llm.proxy.requests_in_flight",
        "",
        "gauge",
    ),
    ("llm_proxy_requests_total", "llm.proxy.requests", "", "sum"),
    (
        "llm_proxy_request_bytes_total",
        "llm.proxy.request",
        "By",
        "sum",
    ),
    (
        "llm_proxy_overhead_seconds",
        "llm.proxy.overhead",
        "s",
        "histogram",
    ),
    (
        "llmwatch_otlp_exports_total",
        "llmwatch.otlp_exports",
        "",
        "sum",
    ),
];

#[test]
fn proxy_metrics_over_otlp_equal_its_prometheus_metrics() {
    let Some(receiver) = Receiver::start(&[]) else {
        return;
    };
    let sim = start_with(&["vllm"], &["--profile", "gpu-7b"]);
    let proxy = otlp_proxy(
        &sim.urls[0].1,
        &receiver.base,
        "300ms",
        &["--gen-ai-provider", "vllm"],
    );
    send_requests(&proxy.base, 4, 2);
    let metrics_url = format!("{}/metrics", proxy.base);
    eventually(10, || {
        (outcome(&get(&metrics_url).1, "length", "2xx") == 6.0).then_some(())
    });
    // Nothing moves now but the export counter: an export after this read holds these values.
    let seen = receiver.exports().len();
    let text = get(&metrics_url).1;
    let export = eventually(10, || receiver.exports().into_iter().nth(seen + 1));
    for e in receiver.received() {
        assert_eq!(e["content_type"], "application/x-protobuf");
        assert_eq!(
            e["length"], e["known_length"],
            "a field the schema does not know"
        );
    }
    let resource = attributes(&export["body"]["resource_metrics"][0]["resource"]);
    assert_eq!(resource["service.name"], "llmwatch-proxy");
    let metrics = metrics_of(&export);
    for (prom_name, otel, unit, kind) in NAMES {
        let m = metrics
            .get(otel)
            .unwrap_or_else(|| panic!("no {otel} for {prom_name}"));
        assert_eq!(m["unit"].as_str().unwrap_or(""), unit, "{otel}");
        assert!(m.get(kind).is_some(), "{otel} is not a {kind}: {m}");
        if kind != "gauge" {
            assert_eq!(
                m[kind]["aggregation_temporality"], "AGGREGATION_TEMPORALITY_CUMULATIVE",
                "{otel}"
            );
        }
    }
    assert_eq!(metrics["llm.proxy.requests"]["sum"]["is_monotonic"], true);

    // The duration histogram, point by point against /metrics.
    let duration = &metrics["gen_ai.client.operation.duration"]["histogram"]["data_points"][0];
    // The labels, and what the conventions ask for that the labels lack: the provider
    // named by the flag, and the one upstream as the server.
    let upstream_port = sim.urls[0].1.rsplit(':').next().unwrap().to_string();
    assert_eq!(
        attributes(duration),
        BTreeMap::from([
            ("gen_ai.operation.name".to_string(), "chat".to_string()),
            ("gen_ai.request.model".to_string(), "sim-vllm".to_string()),
            ("gen_ai.response.model".to_string(), "sim-vllm".to_string()),
            ("gen_ai.provider.name".to_string(), "vllm".to_string()),
            ("server.address".to_string(), "127.0.0.1".to_string()),
            ("server.port".to_string(), upstream_port),
        ])
    );
    // Metrics outside the conventions keep their labels only.
    let requests_attrs = attributes(&metrics["llm.proxy.requests"]["sum"]["data_points"][0]);
    assert!(!requests_attrs.contains_key("gen_ai.provider.name"));
    let bounds: Vec<f64> = duration["explicit_bounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_f64().unwrap())
        .collect();
    assert_eq!(
        bounds,
        [
            0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92
        ]
    );
    // The conventions recommend the same bounds for the two chunk metrics.
    for chunk in [
        "gen_ai.client.operation.time_to_first_chunk",
        "gen_ai.client.operation.time_per_output_chunk",
    ] {
        let point = &metrics[chunk]["histogram"]["data_points"][0];
        let chunk_bounds: Vec<f64> = point["explicit_bounds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_f64().unwrap())
            .collect();
        assert_eq!(chunk_bounds, bounds, "{chunk}");
    }
    let family = "gen_ai_client_operation_duration_seconds";
    assert_eq!(
        int(&duration["count"]),
        prom(&text, &format!("{family}_count{{{ANSWERED}}}"))
    );
    let sum = prom(&text, &format!("{family}_sum{{{ANSWERED}}}"));
    assert!((duration["sum"].as_f64().unwrap() - sum).abs() < 1e-9);
    let mut cumulative = 0.0;
    let counts = duration["bucket_counts"].as_array().unwrap();
    assert_eq!(counts.len(), bounds.len() + 1);
    for (i, count) in counts.iter().enumerate() {
        cumulative += int(count);
        let le = bounds.get(i).map_or("+Inf".to_string(), |b| format!("{b}"));
        let expected = prom(&text, &format!("{family}_bucket{{{ANSWERED},le=\"{le}\"}}"));
        assert_eq!(cumulative, expected, "le={le}");
    }

    // Token usage carries the token type; the outcome counter equals /metrics.
    let types: Vec<String> = metrics["gen_ai.client.token.usage"]["histogram"]["data_points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| attributes(p)["gen_ai.token.type"].clone())
        .collect();
    assert!(types.contains(&"input".to_string()) && types.contains(&"output".to_string()));
    let requests = &metrics["llm.proxy.requests"]["sum"]["data_points"][0];
    assert_eq!(attributes(requests)["outcome"], "length");
    assert_eq!(
        requests["as_double"].as_f64().unwrap(),
        outcome(&text, "length", "2xx")
    );

    // No prompt text anywhere in what was exported.
    let everything = std::fs::read_to_string(&receiver.out).unwrap();
    assert!(!everything.contains("must never be exported"));
}

#[test]
fn delta_exports_add_up_to_the_totals() {
    let Some(receiver) = Receiver::start(&[]) else {
        return;
    };
    let sim = start_with(&["vllm"], &["--profile", "gpu-7b"]);
    let proxy = otlp_proxy(
        &sim.urls[0].1,
        &receiver.base,
        "250ms",
        &["--otlp-temporality", "delta"],
    );
    send_requests(&proxy.base, 2, 1);
    std::thread::sleep(Duration::from_millis(600));
    send_requests(&proxy.base, 1, 1);
    let metrics_url = format!("{}/metrics", proxy.base);
    eventually(10, || {
        (outcome(&get(&metrics_url).1, "length", "2xx") == 5.0).then_some(())
    });
    let seen = receiver.exports().len();
    eventually(10, || (receiver.exports().len() > seen + 1).then_some(()));
    let exports = receiver.exports();
    let mut total = 0.0;
    let mut previous_end: Option<f64> = None;
    for export in &exports {
        let metrics = metrics_of(export);
        let Some(requests) = metrics.get("llm.proxy.requests") else {
            continue;
        };
        assert_eq!(
            requests["sum"]["aggregation_temporality"],
            "AGGREGATION_TEMPORALITY_DELTA"
        );
        let point = &requests["sum"]["data_points"][0];
        total += point["as_double"].as_f64().unwrap();
        // Each delta starts where the previous delivered one ended.
        let (start, end) = (
            int(&point["start_time_unix_nano"]),
            int(&point["time_unix_nano"]),
        );
        if let Some(previous) = previous_end {
            assert_eq!(start, previous);
        }
        assert!(end > start);
        previous_end = Some(end);
    }
    assert_eq!(total, 5.0, "the deltas add up to the total");
}

/// `text` (a proxy's `/metrics`) counts two metrics exports throttled, their points
/// dropped, and at least one delivered.
pub(crate) fn assert_throttled_twice_then_delivered(text: &str) {
    let exports = |result: &str| {
        prom(
            text,
            &format!("llmwatch_otlp_exports_total{{signal=\"metrics\",result=\"{result}\"}}"),
        )
    };
    assert_eq!(exports("throttled"), 2.0);
    assert!(exports("ok") >= 1.0);
    let dropped = "llmwatch_otlp_dropped_total{signal=\"metrics\",result=\"throttled\"}";
    assert!(prom(text, dropped) > 0.0);
}

#[test]
fn a_throttling_or_absent_endpoint_costs_exports_counted_never_requests() {
    let Some(receiver) = Receiver::start(&["--throttle", "2"]) else {
        return;
    };
    let sim = start_with(&["vllm"], &["--profile", "gpu-7b"]);
    let proxy = otlp_proxy(&sim.urls[0].1, &receiver.base, "200ms", &[]);
    send_requests(&proxy.base, 2, 0);
    // Two exports answered 503 with Retry-After: 1; later ones are delivered.
    eventually(15, || (!receiver.exports().is_empty()).then_some(()));
    assert_throttled_twice_then_delivered(&get(&format!("{}/metrics", proxy.base)).1);
    // Retry-After was kept: each 503 left the endpoint alone for a second, so the first
    // delivery came two seconds after the start (every 200 ms, it would have come at 600 ms).
    let first = &metrics_of(&receiver.exports()[0])["llm.proxy.requests"]["sum"]["data_points"][0];
    let waited = (int(&first["time_unix_nano"]) - int(&first["start_time_unix_nano"])) / 1e9;
    assert!(waited >= 1.9, "first delivery {waited} s after the start");

    // An endpoint that is not there: requests go through, exports fail and are counted.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let proxy = otlp_proxy(&sim.urls[0].1, &nowhere, "100ms", &[]);
    send_requests(&proxy.base, 3, 0);
    let metrics_url = format!("{}/metrics", proxy.base);
    eventually(10, || {
        let text = get(&metrics_url).1;
        (text.contains("llmwatch_otlp_exports_total{signal=\"metrics\",result=\"unreachable\"}")
            && outcome(&text, "length", "2xx") == 3.0)
            .then_some(())
    });
    // The endpoint comes back on that port: exports resume, the totals intact.
    let port = nowhere.rsplit(':').next().unwrap().to_string();
    let Some(back) = Receiver::start(&["--port", &port]) else {
        return;
    };
    let export = eventually(10, || back.exports().into_iter().next());
    let requests = &metrics_of(&export)["llm.proxy.requests"]["sum"]["data_points"][0];
    assert_eq!(requests["as_double"].as_f64().unwrap(), 3.0);
}

#[test]
fn an_endpoint_that_hangs_or_resets_costs_exports_never_requests() {
    use std::io::Read;
    let sim = start_with(&["vllm"], &["--profile", "gpu-7b"]);
    // One endpoint accepts and never answers; the other accepts and closes at once.
    let hang = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let reset = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let urls = [
        format!("http://{}", hang.local_addr().unwrap()),
        format!("http://{}", reset.local_addr().unwrap()),
    ];
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in hang.incoming().flatten() {
            held.push(stream);
        }
    });
    std::thread::spawn(move || {
        for mut stream in reset.incoming().flatten() {
            let mut buf = [0u8; 64];
            let _ = stream.read(&mut buf);
            drop(stream);
        }
    });
    for url in &urls {
        let proxy = otlp_proxy(&sim.urls[0].1, url, "100ms", &[]);
        // Requests go through while exports wait on the endpoint (the default 10 s timeout)
        // or fail at once.
        send_requests(&proxy.base, 4, 1);
        let metrics_url = format!("{}/metrics", proxy.base);
        assert_eq!(outcome(&get(&metrics_url).1, "length", "2xx"), 5.0, "{url}");
    }
    // The resetting one is counted as it fails.
    let proxy = otlp_proxy(&sim.urls[0].1, &urls[1], "100ms", &[]);
    let metrics_url = format!("{}/metrics", proxy.base);
    eventually(10, || {
        get(&metrics_url)
            .1
            .contains("llmwatch_otlp_exports_total{signal=\"metrics\",result=\"unreachable\"}")
            .then_some(())
    });
}

#[test]
fn up_exports_the_canonical_signals_and_not_the_engines_own_names() {
    let Some(receiver) = Receiver::start(&[]) else {
        return;
    };
    let sim = start_with(&["vllm"], &["--profile", "gpu-7b"]);
    send_requests(&sim.urls[0].1, 2, 1);
    let config = format!(
        "[scrape]\ninterval = \"300ms\"\n[otlp]\nendpoint = \"{}\"\ninterval = \"300ms\"\n\
         [[target]]\nurl = \"{}\"\nname = \"engine-a\"\nraw = true\n",
        receiver.base, sim.urls[0].1
    );
    let up = crate::up::start_up(&config, &[]);
    let metrics_url = format!("{}/metrics", up.base);
    let series =
        "llm_generation_tokens_total{engine=\"vllm\",model=\"sim-vllm\",instance=\"engine-a\"}";
    eventually(15, || {
        let text = get(&metrics_url).1;
        text.lines()
            .any(|l| l.starts_with(series) && !l.ends_with(" 0"))
            .then_some(())
    });
    let seen = receiver.exports().len();
    let text = get(&metrics_url).1;
    let export = eventually(10, || receiver.exports().into_iter().nth(seen + 1));
    assert_eq!(export["length"], export["known_length"]);
    let resource = attributes(&export["body"]["resource_metrics"][0]["resource"]);
    assert_eq!(resource["service.name"], "llmwatch-up");
    let metrics = metrics_of(&export);
    for (otel, unit, kind) in [
        ("llm.requests_running", "", "gauge"),
        ("llm.generation_tokens", "", "sum"),
        ("llm.time_to_first_token", "s", "histogram"),
        ("llm.kv_cache_usage_ratio", "", "gauge"),
        ("llmwatch.scrapes", "", "sum"),
    ] {
        let m = metrics.get(otel).unwrap_or_else(|| panic!("no {otel}"));
        assert_eq!(m["unit"].as_str().unwrap_or(""), unit, "{otel}");
        assert!(m.get(kind).is_some(), "{otel} is not a {kind}");
    }
    // `raw = true` puts vLLM's own `vllm:` series on /metrics; they keep out of OTLP, whose
    // names cannot hold a colon.
    assert!(text.contains("vllm:"));
    assert!(
        metrics.keys().all(|name| !name.contains(':')),
        "{:?}",
        metrics.keys()
    );
    let tokens = &metrics["llm.generation_tokens"]["sum"]["data_points"][0];
    assert_eq!(
        attributes(tokens),
        BTreeMap::from([
            ("engine".to_string(), "vllm".to_string()),
            ("instance".to_string(), "engine-a".to_string()),
            ("model".to_string(), "sim-vllm".to_string()),
        ])
    );
    assert_eq!(tokens["as_double"].as_f64().unwrap(), prom(&text, series));
    let ttft = &metrics["llm.time_to_first_token"]["histogram"]["data_points"][0];
    let count = "llm_time_to_first_token_seconds_count{engine=\"vllm\",model=\"sim-vllm\",instance=\"engine-a\"}";
    assert_eq!(int(&ttft["count"]), prom(&text, count));
}

#[test]
fn a_benchmark_exports_what_it_measured_when_it_ends() {
    let Some(receiver) = Receiver::start(&[]) else {
        return;
    };
    let sim = start_with(&["vllm"], &["--profile", "gpu-7b"]);
    // An interval longer than the run: only the export at its end can carry the numbers.
    crate::util::run_ok(&[
        "bench",
        &sim.urls[0].1,
        "--concurrency",
        "2",
        "--requests",
        "7",
        "--output-tokens",
        "8",
        "--otlp-endpoint",
        &receiver.base,
        "--otlp-interval",
        "60s",
    ]);
    let exports = receiver.exports();
    assert_eq!(exports.len(), 1, "one export, at the end");
    let metrics = metrics_of(&exports[0]);
    let resource = attributes(&exports[0]["body"]["resource_metrics"][0]["resource"]);
    assert_eq!(resource["service.name"], "llmwatch-bench");
    let duration = &metrics["gen_ai.client.operation.duration"]["histogram"]["data_points"][0];
    assert_eq!(int(&duration["count"]), 7.0);
    assert_eq!(attributes(duration)["gen_ai.operation.name"], "chat");
    let ok: f64 = metrics["llm.proxy.requests"]["sum"]["data_points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| attributes(p)["outcome"] == "ok")
        .map(|p| p["as_double"].as_f64().unwrap())
        .sum();
    assert_eq!(ok, 7.0);
}

/// An upstream that records the headers of every request and answers by model: `fail`
/// with HTTP 500, `slow` after 300 ms, anything else at once (a stream of two content
/// chunks and usage when asked to stream, a whole answer otherwise).
pub(crate) struct Capture {
    base: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<BTreeMap<String, String>>>>,
}

pub(crate) fn capture_upstream() -> Capture {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let record = record.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let Ok(n) = stream.read(&mut chunk) else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let headers: BTreeMap<String, String> = head
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
                    .collect();
                let length: usize = headers
                    .get("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                while buf.len() < head_end + length {
                    let Ok(n) = stream.read(&mut chunk) else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body: Value = serde_json::from_slice(&buf[head_end..]).unwrap_or(Value::Null);
                record.lock().unwrap().push(headers);
                let model = body["model"].as_str().unwrap_or("");
                let (status, kind, payload) = match model {
                    "fail" => (
                        "500 Internal Server Error",
                        "application/json",
                        json!({"error": {"message": "boom"}}).to_string(),
                    ),
                    _ if body["stream"] == true => {
                        let events = [
                            json!({"model": "served-model", "choices": [{"index": 0, "delta": {"role": "assistant"}}]}),
                            json!({"choices": [{"index": 0, "delta": {"content": "Hel"}}]}),
                            json!({"choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]}),
                            json!({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}),
                        ];
                        let mut sse: String =
                            events.iter().map(|e| format!("data: {e}\n\n")).collect();
                        sse.push_str("data: [DONE]\n\n");
                        ("200 OK", "text/event-stream", sse)
                    }
                    _ => {
                        if model == "slow" {
                            std::thread::sleep(Duration::from_millis(300));
                        }
                        let answer = json!({
                            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}],
                            "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
                        });
                        ("200 OK", "application/json", answer.to_string())
                    }
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
                    payload.len()
                );
            });
        }
    });
    Capture { base, seen }
}

/// Every span received so far.
pub(crate) fn spans(receiver: &Receiver) -> Vec<Value> {
    receiver
        .received()
        .into_iter()
        .filter(|e| e["path"] == "/v1/traces")
        .flat_map(|e| {
            e["body"]["resource_spans"][0]["scope_spans"][0]["spans"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}

/// A span id as the receiver wrote it (hex, as W3C writes ids).
fn hex_id(id: &Value) -> String {
    id.as_str().unwrap_or("").to_string()
}

/// A chat request's body, with a prompt that must never show in what is exported.
fn chat_body(model: &str, stream: bool, max_tokens: Option<u32>) -> Value {
    let mut body = json!({
        "model": model,
        "messages": [{"role": "user", "content": "a prompt that must never be exported"}],
        "stream": stream,
    });
    if let Some(max) = max_tokens {
        body["max_tokens"] = json!(max);
    }
    body
}

/// Posts `body` to the chat endpoint (with `traceparent`, if given); the status.
fn post(base: &str, body: &Value, traceparent: Option<&str>) -> u16 {
    let headers: Vec<(&str, &str)> = traceparent
        .map(|tp| ("traceparent", tp))
        .into_iter()
        .collect();
    chat(base, body.clone(), &headers).0
}

pub(crate) fn post_chat(base: &str, model: &str, stream: bool, traceparent: Option<&str>) -> u16 {
    post(base, &chat_body(model, stream, None), traceparent)
}

#[test]
fn operation_metrics_carry_the_answering_model_and_the_error_type_of_a_failure() {
    let Some(receiver) = Receiver::start(&[]) else {
        return;
    };
    let upstream = capture_upstream();
    let proxy = otlp_proxy(&upstream.base, &receiver.base, "200ms", &[]);
    assert_eq!(post_chat(&proxy.base, "m-1", true, None), 200);
    assert_eq!(post_chat(&proxy.base, "fail", true, None), 500);
    let text = get(&format!("{}/metrics", proxy.base)).1;
    let family = "gen_ai_client_operation_duration_seconds";
    let answered = "gen_ai_operation_name=\"chat\",gen_ai_request_model=\"m-1\",gen_ai_response_model=\"served-model\"";
    let failed = "gen_ai_operation_name=\"chat\",gen_ai_request_model=\"fail\",error_type=\"upstream_error\"";
    assert_eq!(prom(&text, &format!("{family}_count{{{answered}}}")), 1.0);
    assert_eq!(prom(&text, &format!("{family}_count{{{failed}}}")), 1.0);
    // The same two series over OTLP, under the conventions' attribute names.
    let points = |metrics: &BTreeMap<String, Value>, name: &str| -> Vec<BTreeMap<String, String>> {
        metrics.get(name).map_or_else(Vec::new, |m| {
            m["histogram"]["data_points"]
                .as_array()
                .unwrap()
                .iter()
                .map(attributes)
                .collect()
        })
    };
    let metrics = eventually(10, || {
        let last = metrics_of(receiver.exports().last()?);
        (points(&last, "gen_ai.client.operation.duration").len() == 2).then_some(last)
    });
    let duration = points(&metrics, "gen_ai.client.operation.duration");
    let by_model = |model: &str| {
        duration
            .iter()
            .find(|a| a["gen_ai.request.model"] == model)
            .unwrap_or_else(|| panic!("no point for {model}: {duration:?}"))
            .clone()
    };
    let ok = by_model("m-1");
    assert_eq!(ok["gen_ai.response.model"], "served-model");
    assert!(!ok.contains_key("error.type"), "{ok:?}");
    let failure = by_model("fail");
    assert_eq!(failure["error.type"], "upstream_error");
    assert!(
        !failure.contains_key("gen_ai.response.model"),
        "{failure:?}"
    );
    // Token usage names the answering model too; it never carries an error type.
    for usage in points(&metrics, "gen_ai.client.token.usage") {
        assert_eq!(usage["gen_ai.response.model"], "served-model");
        assert!(!usage.contains_key("error.type"));
    }
}

#[test]
fn a_request_is_one_span_continuing_the_callers_trace_and_parenting_the_engines() {
    let Some(receiver) = Receiver::start(&[]) else {
        return;
    };
    let upstream = capture_upstream();
    let proxy = otlp_proxy(
        &upstream.base,
        &receiver.base,
        "60s",
        &["--gen-ai-provider", "vllm"],
    );
    let (trace, caller) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let incoming = format!("00-{trace}-{caller}-01");
    assert_eq!(post_chat(&proxy.base, "m-1", true, Some(&incoming)), 200);
    let span = eventually(10, || spans(&receiver).into_iter().next());
    assert_eq!(hex_id(&span["trace_id"]), trace);
    assert_eq!(hex_id(&span["parent_span_id"]), caller);
    assert_eq!(span["name"], "chat m-1");
    assert_eq!(span["kind"], "SPAN_KIND_CLIENT");
    let attrs: BTreeMap<String, Value> = span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| {
            let v = kv["value"]
                .as_object()
                .unwrap()
                .values()
                .next()
                .unwrap()
                .clone();
            (kv["key"].as_str().unwrap().to_string(), v)
        })
        .collect();
    assert_eq!(attrs["gen_ai.operation.name"], "chat");
    assert_eq!(attrs["gen_ai.provider.name"], "vllm");
    assert_eq!(attrs["gen_ai.response.model"], "served-model");
    assert_eq!(attrs["gen_ai.request.model"], "m-1");
    assert_eq!(attrs["gen_ai.usage.input_tokens"], "5");
    assert_eq!(attrs["gen_ai.usage.output_tokens"], "2");
    assert_eq!(attrs["gen_ai.request.stream"], true);
    assert_eq!(attrs["llmwatch.outcome"], "completed");
    assert!(!attrs.contains_key("error.type"));
    // The engine got this trace with the proxy's span as its parent.
    let our_span = hex_id(&span["span_id"]);
    let sent = upstream.seen.lock().unwrap()[0]["traceparent"].clone();
    assert_eq!(sent, format!("00-{trace}-{our_span}-01"));
    // The first content token's event is at the time the TTFT histogram recorded.
    let event = |name: &str| {
        span["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| int(&e["time_unix_nano"]))
            .unwrap_or_else(|| panic!("no {name} event"))
    };
    let start = int(&span["start_time_unix_nano"]);
    let ttft_event = (event("llmwatch.first_content_token") - start) / 1e9;
    assert!(event("gen_ai.first_chunk") <= event("llmwatch.first_content_token"));
    let text = get(&format!("{}/metrics", proxy.base)).1;
    let ttft = prom(
        &text,
        "llm_proxy_time_to_first_content_seconds_sum{gen_ai_operation_name=\"chat\",gen_ai_request_model=\"m-1\"}",
    );
    assert!(
        (ttft_event - ttft).abs() < 2e-6,
        "event {ttft_event} s, histogram {ttft} s"
    );

    // Without a traceparent: a new trace, forwarded as well.
    assert_eq!(post_chat(&proxy.base, "m-1", false, None), 200);
    let second = eventually(10, || spans(&receiver).into_iter().nth(1));
    assert!(second.get("parent_span_id").is_none());
    assert_ne!(hex_id(&second["trace_id"]), trace);
    let forwarded = upstream.seen.lock().unwrap()[1]["traceparent"].clone();
    assert!(forwarded.contains(&hex_id(&second["trace_id"])));
    // No prompt in anything exported.
    assert!(
        !std::fs::read_to_string(&receiver.out)
            .unwrap()
            .contains("must never be exported")
    );
}

#[test]
fn sampling_keeps_its_share_and_every_error_and_slow_request() {
    let Some(receiver) = Receiver::start(&[]) else {
        return;
    };
    let upstream = capture_upstream();
    let proxy = otlp_proxy(
        &upstream.base,
        &receiver.base,
        "60s",
        &[
            "--otlp-trace-ratio",
            "0.2",
            "--otlp-keep-slower-than",
            "250ms",
        ],
    );
    let (normal, failing, slow) = (1500, 40, 6);
    for _ in 0..normal {
        assert_eq!(post_chat(&proxy.base, "m", false, None), 200);
    }
    for _ in 0..failing {
        assert_eq!(post_chat(&proxy.base, "fail", false, None), 500);
    }
    for _ in 0..slow {
        assert_eq!(post_chat(&proxy.base, "slow", false, None), 200);
    }
    // A caller that sampled its trace out is not sampled here either.
    let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    assert_eq!(post_chat(&proxy.base, "m", false, Some(unsampled)), 200);
    let kept_of = |model: &str, spans: &[Value]| {
        spans
            .iter()
            .filter(|s| s["name"].as_str() == Some(&format!("chat {model}")))
            .count()
    };
    eventually(10, || {
        (kept_of("slow", &spans(&receiver)) == slow).then_some(())
    });
    let all = spans(&receiver);
    assert_eq!(kept_of("fail", &all), failing, "every error kept");
    let share = kept_of("m", &all) as f64 / normal as f64;
    assert!(
        (share - 0.2).abs() < 0.06,
        "kept {share} of the plain requests"
    );
    assert!(
        all.iter()
            .all(|s| hex_id(&s["trace_id"]) != "4bf92f3577b34da6a3ce929d0e0e4736")
    );
    let failed = all.iter().find(|s| s["name"] == "chat fail").unwrap();
    assert_eq!(failed["status"]["code"], "STATUS_CODE_ERROR");
}

#[test]
fn an_openmetrics_scrape_carries_exemplars_of_exported_traces_and_text_has_none() {
    let Some(receiver) = Receiver::start(&[]) else {
        return;
    };
    let upstream = capture_upstream();
    let proxy = otlp_proxy(&upstream.base, &receiver.base, "60s", &[]);
    for _ in 0..3 {
        assert_eq!(post_chat(&proxy.base, "m-1", true, None), 200);
    }
    eventually(10, || (spans(&receiver).len() == 3).then_some(()));
    let traces: Vec<String> = spans(&receiver)
        .iter()
        .map(|s| hex_id(&s["trace_id"]))
        .collect();
    let (rt, client) = http();
    let scrape = |accept: &str| {
        rt.block_on(async {
            let response = client
                .get(format!("{}/metrics", proxy.base))
                .header("accept", accept)
                .send()
                .await
                .unwrap();
            let kind = response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_string();
            (kind, response.text().await.unwrap())
        })
    };
    let (kind, om) = scrape("application/openmetrics-text;version=1.0.0,text/plain;q=0.5");
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    // The body passes the strict OpenMetrics check, exemplars included.
    let exp = llmwatch::exposition::parse_openmetrics(&om, llmwatch::exposition::Mode::Strict)
        .unwrap_or_else(|e| panic!("{e}\n{om}"));
    let mut found = 0;
    for sample in &exp.samples {
        let Some(exemplar) = &sample.exemplar else {
            continue;
        };
        assert!(sample.name.ends_with("_bucket"), "{}", sample.name);
        let trace = &exemplar.labels[0].value;
        assert!(
            traces.contains(&trace.to_string()),
            "{trace} is not an exported trace"
        );
        // The exemplar's value lies in its bucket.
        let le: f64 = exp.label(sample, "le").unwrap().parse().unwrap();
        assert!(exemplar.value <= le, "{} in le={le}", exemplar.value);
        found += 1;
    }
    assert!(
        found >= 3,
        "exemplars on the duration, first-chunk and first-content buckets"
    );
    let (kind, text) = scrape("text/plain");
    assert!(kind.starts_with("text/plain"));
    assert!(!text.contains(" # {"), "text 0.0.4 carries no exemplars");
}

#[test]
fn ups_in_process_proxy_exports_a_span_per_request_too() {
    let Some(receiver) = Receiver::start(&[]) else {
        return;
    };
    let upstream = capture_upstream();
    let sim = start_with(&["vllm"], &["--profile", "gpu-7b"]);
    let config = format!(
        "listen = \"127.0.0.1:0\"\n[proxy]\nlisten = \"127.0.0.1:0\"\nupstream = [\"{}\"]\n\
         [otlp]\nendpoint = \"{}\"\ninterval = \"60s\"\n",
        upstream.base, receiver.base
    );
    let (_up, _base, proxy) = crate::util::start_up_with_proxy(&config, &sim.urls[0].1);
    assert_eq!(post_chat(&proxy, "m-2", true, None), 200);
    let span = eventually(10, || spans(&receiver).into_iter().next());
    assert_eq!(span["name"], "chat m-2");
    let traces = receiver
        .received()
        .into_iter()
        .find(|e| e["path"] == "/v1/traces")
        .unwrap();
    let resource = attributes(&traces["body"]["resource_spans"][0]["resource"]);
    assert_eq!(resource["service.name"], "llmwatch-up");
    assert!(upstream.seen.lock().unwrap()[0].contains_key("traceparent"));
}
