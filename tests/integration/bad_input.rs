//! Bad input never panics: each case gets a clear error naming what and where, and exit 1.

use std::collections::HashMap;

use crate::util::{Canned, fixture, run_err, run_ok, serve};

fn write_tmp(contents: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut file, contents).unwrap();
    file
}

fn scrape_file_err(contents: &[u8]) -> String {
    let file = write_tmp(contents);
    run_err(&["scrape", file.path().to_str().unwrap()])
}

#[test]
fn empty_body() {
    let err = scrape_file_err(b"  \n\n");
    assert!(err.contains("the body is empty: no metrics"), "{err}");
}

#[test]
fn html_error_page() {
    let server = serve(HashMap::from([(
        "/metrics",
        Canned {
            status: 200,
            content_type: "text/html",
            body: b"<html><head><title>502 Bad Gateway</title></head></html>".to_vec(),
        },
    )]));
    let err = run_err(&["scrape", &server.base, "--no-version-probe"]);
    assert!(err.contains("/metrics: the body is an HTML page"), "{err}");
    assert!(err.contains("502 Bad Gateway"), "{err}");
}

#[test]
fn truncated_body_names_the_line() {
    let full = std::fs::read_to_string(fixture("llamacpp/metrics-during.txt")).unwrap();
    let cut = &full[..full.find("llamacpp:n_decode_total 1007").unwrap() + 18];
    let err = scrape_file_err(cut.as_bytes());
    assert!(err.contains("line 18, column 19"), "{err}");
    assert!(
        err.contains("missing sample value") || err.contains("truncated"),
        "{err}"
    );
    // Cut at a line end without the final newline: still reported, as a truncation.
    let cut = &full[..full.find("\n# HELP llamacpp:n_tokens_max").unwrap()];
    let err = scrape_file_err(cut.as_bytes());
    assert!(
        err.contains("does not end with a newline (truncated body?)"),
        "{err}"
    );
    // --lenient keeps what is there.
    let file = write_tmp(cut.as_bytes());
    let out = run_ok(&["scrape", "--lenient", file.path().to_str().unwrap()]);
    assert!(out.contains("engine   llamacpp"), "{out}");
    assert!(out.contains("warning"), "{out}");
}

#[test]
fn body_over_the_limit() {
    let server = serve(HashMap::from([("/metrics", Canned::ok(vec![b'#'; 4096]))]));
    let err = run_err(&["scrape", &server.base, "--max-body-bytes", "1000"]);
    assert!(err.contains("exceeds the limit of 1000 bytes"), "{err}");
    let err = scrape_file_err(&[b'\n'; 2000]);
    assert!(err.contains("the body is empty"), "{err}");
    let file = write_tmp(&[b'a'; 2000]);
    let err = run_err(&[
        "scrape",
        "--max-body-bytes",
        "1000",
        file.path().to_str().unwrap(),
    ]);
    assert!(err.contains("larger than the limit of 1000 bytes"), "{err}");
}

#[test]
fn json_escaped_body_from_llamacpp_17384_is_decoded_with_a_warning() {
    let real = std::fs::read_to_string(fixture("llamacpp/metrics-during.txt")).unwrap();
    let escaped = serde_json::to_string(&real).unwrap();
    assert!(escaped.starts_with("\"# HELP"));
    let server = serve(HashMap::from([("/metrics", Canned::ok(escaped))]));
    let out = crate::util::llmwatch()
        .args([
            "scrape",
            &server.base,
            "--format",
            "json",
            "--no-version-probe",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("JSON-escaped string") && stderr.contains("#17384"),
        "{stderr}"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["engine"], "llamacpp");
    assert_eq!(
        json["signals"]["llm_generation_tokens_total"]["values"][0]["value"],
        1728.0
    );
}

#[test]
fn http_501_says_start_with_metrics() {
    let body = std::fs::read_to_string(fixture("llamacpp/endpoints-disabled.txt")).unwrap();
    let json_body = body
        .lines()
        .find(|l| l.starts_with("{\"error\""))
        .unwrap()
        .to_string();
    let server = serve(HashMap::from([(
        "/metrics",
        Canned {
            status: 501,
            content_type: "application/json; charset=utf-8",
            body: json_body.into_bytes(),
        },
    )]));
    let err = run_err(&["scrape", &server.base]);
    assert!(
        err.contains("HTTP 501") && err.contains("restart it with --metrics"),
        "{err}"
    );
}

#[test]
fn http_401_asks_for_a_token_and_the_token_is_sent() {
    let server = serve(HashMap::from([(
        "/metrics",
        Canned {
            status: 401,
            content_type: "application/json",
            body: br#"{"error":{"code":401,"message":"Invalid API Key"}}"#.to_vec(),
        },
    )]));
    let err = run_err(&["scrape", &server.base]);
    assert!(
        err.contains("HTTP 401") && err.contains("--bearer-token"),
        "{err}"
    );
    let err = crate::util::llmwatch()
        .args(["scrape", &server.base])
        .env("LLMWATCH_BEARER_TOKEN", "sekret")
        .output()
        .unwrap();
    assert_eq!(err.status.code(), Some(1));
    // The token went out on the wire and was not echoed in the error.
    assert!(!String::from_utf8_lossy(&err.stderr).contains("sekret"));
    let seen = server.auth_headers.lock().unwrap().clone();
    assert_eq!(seen, [None, Some("Bearer sekret".to_string())]);
}

#[test]
fn other_http_status_shows_the_body() {
    let server = serve(HashMap::new());
    let err = run_err(&["scrape", &format!("{}/nope", server.base)]);
    assert!(err.contains("/nope: HTTP 404: not found"), "{err}");
}

#[test]
fn connection_refused_names_the_url() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = run_err(&["scrape", &format!("http://127.0.0.1:{port}/metrics")]);
    assert!(
        err.contains(&format!("http://127.0.0.1:{port}/metrics: request failed")),
        "{err}"
    );
}

#[test]
fn unknown_engine_shows_raw_families() {
    let file = write_tmp(b"# TYPE node_load1 gauge\nnode_load1 0.5\n# TYPE up gauge\nup 1\n");
    let out = run_ok(&["scrape", file.path().to_str().unwrap()]);
    assert!(out.contains("unknown engine"), "{out}");
    assert!(out.contains("node_load1") && out.contains("up"), "{out}");
    let out = run_ok(&["scrape", "--format", "json", file.path().to_str().unwrap()]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["engine"], serde_json::Value::Null);
    assert_eq!(json["families"][0]["name"], "node_load1");
}

#[test]
fn duplicate_series_are_an_error() {
    let err = scrape_file_err(
        b"# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name=\"m\",engine=\"0\"} 1\nvllm:num_requests_running{engine=\"0\",model_name=\"m\"} 2\n",
    );
    assert!(err.contains("duplicate series"), "{err}");
    assert!(
        err.contains("vllm:num_requests_running{engine=\"0\",model_name=\"m\"} (2 times)"),
        "{err}"
    );
}

/// A body large enough that the duplicate check runs beside the normalising, on its own
/// thread: the duplicate is still the error (strict), or a warning beside the readings
/// (lenient).
#[test]
fn duplicate_series_in_a_large_body_are_found_beside_the_normalising() {
    let mut body = String::from("# TYPE vllm:num_requests_running gauge\n");
    for model in 0..25_000 {
        body.push_str(&format!(
            "vllm:num_requests_running{{engine=\"0\",model_name=\"m{model}\"}} 1\n"
        ));
    }
    body.push_str("vllm:num_requests_running{model_name=\"m7\",engine=\"0\"} 2\n");
    let err = scrape_file_err(body.as_bytes());
    assert!(
        err.contains("vllm:num_requests_running{engine=\"0\",model_name=\"m7\"} (2 times)"),
        "{err}"
    );
    let file = write_tmp(body.as_bytes());
    let out = run_ok(&[
        "scrape",
        "--lenient",
        "--format",
        "json",
        file.path().to_str().unwrap(),
    ]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let warnings = json["warnings"].to_string();
    assert!(
        warnings.contains("duplicate series, values added up"),
        "{warnings}"
    );
    assert_eq!(json["engine"], "vllm", "{}", json["engine"]);
}

#[test]
fn malformed_line_strict_and_lenient() {
    let body = b"# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name=\"m\" 1\nvllm:num_requests_waiting{model_name=\"m\"} 3\n";
    let err = scrape_file_err(body);
    assert!(
        err.contains("line 2, column 42: expected ',' or '}' after a label value"),
        "{err}"
    );
    assert!(err.contains("--lenient"), "{err}");
    let file = write_tmp(body);
    let out = run_ok(&["scrape", "--lenient", file.path().to_str().unwrap()]);
    assert!(out.contains("skipped line 2"), "{out}");
    assert!(out.contains("llm_requests_waiting"), "{out}");
}

#[test]
fn not_utf8_and_json_and_missing_file() {
    let err = scrape_file_err(b"a 1\n\xff\xfe\n");
    assert!(
        err.contains("not UTF-8 (first bad byte at offset 4)"),
        "{err}"
    );
    let err = scrape_file_err(br#"{"error":"nope"}"#);
    assert!(err.contains("the body is JSON"), "{err}");
    let err = run_err(&["scrape", "/definitely/not/here.txt"]);
    assert!(
        err.contains("/definitely/not/here.txt: cannot read"),
        "{err}"
    );
}

#[test]
fn a_histogram_that_is_not_cumulative_is_reported_and_left_out_of_the_answer() {
    let fixture = std::fs::read_to_string(fixture("reconstructed/vllm-0.33.txt")).unwrap();
    let bucket = |le: &str, v: &str| {
        format!(
            "vllm:time_to_first_token_seconds_bucket{{engine=\"0\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\",le=\"{le}\"}} {v}"
        )
    };
    assert!(fixture.contains(&bucket("0.25", "337.0")));
    let broken = fixture.replace(&bucket("0.25", "337.0"), &bucket("0.25", "100.0"));
    let file = write_tmp(broken.as_bytes());
    let out = crate::util::llmwatch()
        .args(["scrape", "--format", "json", file.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("llm_time_to_first_token_seconds: model meta-llama/Llama-3.1-8B-Instruct: bucket le=0.1 holds 128 but le=0.25 holds 100; left out (non_cumulative_histogram)"),
        "{stderr}"
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let signals = &doc["signals"];
    assert_eq!(
        signals["llm_time_to_first_token_seconds"]["values"],
        serde_json::json!([])
    );
    // The engine's other signals are read as ever.
    assert!(signals["llm_generation_tokens_total"]["values"][0]["value"].as_f64() > Some(0.0));
    // The table says the signal was left out, not that it has no data yet.
    let table = run_ok(&["scrape", file.path().to_str().unwrap()]);
    let line = table
        .lines()
        .find(|l| l.starts_with("llm_time_to_first_token_seconds "))
        .unwrap_or_default();
    assert!(line.contains("left out (invalid)"), "{table}");
}
