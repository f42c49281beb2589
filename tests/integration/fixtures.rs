//! Every fixture, real or reconstructed, through the binary: the normalised JSON is
//! snapshotted, and the key facts per engine are asserted directly.

use serde_json::Value;

use crate::util::{fixture, run_ok};

const FIXTURES: [&str; 11] = [
    "llamacpp/metrics-before.txt",
    "llamacpp/metrics-during.txt",
    "llamacpp/metrics-after.txt",
    "reconstructed/vllm-0.33.txt",
    "reconstructed/vllm-0.33-multi-model.txt",
    "reconstructed/vllm-0.33-dp2.txt",
    "reconstructed/vllm-0.10.txt",
    "reconstructed/vllm-0.8-v1.txt",
    "reconstructed/vllm-v0.txt",
    "reconstructed/tgi-3.3.txt",
    "reconstructed/sglang-0.5.23.txt",
];

fn scrape_json(rel: &str) -> Value {
    let path = fixture(rel);
    let out = run_ok(&["scrape", "--format", "json", path.to_str().unwrap()]);
    serde_json::from_str(&out).unwrap()
}

fn source<'j>(json: &'j Value, signal: &str) -> &'j str {
    json["signals"][signal]["source"]
        .as_str()
        .unwrap_or("absent")
}

fn value(json: &Value, signal: &str) -> f64 {
    json["signals"][signal]["values"][0]["value"]
        .as_f64()
        .unwrap_or_else(|| panic!("{signal} has no value: {}", json["signals"][signal]))
}

#[test]
fn every_fixture_normalises_to_its_snapshot() {
    for rel in FIXTURES {
        let mut json = scrape_json(rel);
        json["target"] = Value::String(rel.to_string());
        let name = rel.replace(['/', '.'], "_");
        insta::assert_snapshot!(name, serde_json::to_string_pretty(&json).unwrap());
    }
}

#[test]
fn every_fixture_renders_its_table_snapshot() {
    for rel in FIXTURES {
        let path = fixture(rel);
        let path = path.to_str().unwrap();
        let table = run_ok(&["scrape", path]).replace(path, rel);
        let name = format!("table_{}", rel.replace(['/', '.'], "_"));
        insta::assert_snapshot!(name, table);
    }
}

#[test]
fn canonical_prom_output_parses_back() {
    for rel in FIXTURES {
        let path = fixture(rel);
        let text = run_ok(&["scrape", "--format", "prom", path.to_str().unwrap()]);
        let exp = llmwatch::exposition::parse(&text, llmwatch::exposition::Mode::Strict)
            .unwrap_or_else(|e| panic!("{rel}: canonical output does not parse: {e}"));
        assert!(exp.duplicate_series().is_empty(), "{rel}: duplicates");
        assert!(exp.families.iter().all(|f| f.name.starts_with("llm_")));
        assert!(
            text.contains("llm_engine_info{engine="),
            "{rel}: no engine info"
        );
    }
}

#[test]
fn llamacpp_capture_maps_prompt_as_processed_plus_cached() {
    let json = scrape_json("llamacpp/metrics-during.txt");
    assert_eq!(json["engine"], "llamacpp");
    assert_eq!(value(&json, "llm_prompt_tokens_total"), 246.0 + 642.0);
    assert_eq!(source(&json, "llm_prompt_tokens_total"), "derived");
    assert_eq!(value(&json, "llm_generation_tokens_total"), 1728.0);
    assert_eq!(value(&json, "llm_requests_running"), 4.0);
    assert_eq!(value(&json, "llm_requests_waiting"), 2.0);
    assert_eq!(source(&json, "llm_time_to_first_token_seconds"), "missing");
    assert_eq!(source(&json, "llm_requests_finished_total"), "missing");
    // The per-scrape throughput gauges are never used.
    let text = serde_json::to_string(&json["signals"]).unwrap();
    assert!(!text.contains("predicted_tokens_seconds\""));
}

#[test]
fn vllm_033_reads_new_names_and_outcomes() {
    let json = scrape_json("reconstructed/vllm-0.33.txt");
    assert_eq!(json["engine"], "vllm");
    assert_eq!(json["version"], "> 0.13");
    let kv = &json["signals"]["llm_kv_cache_usage_ratio"];
    assert_eq!(kv["series"][0], "vllm:kv_cache_usage_perc");
    let outcomes = json["signals"]["llm_requests_finished_total"]["values"]
        .as_array()
        .unwrap();
    let get = |o: &str| {
        outcomes
            .iter()
            .find(|v| v["outcome"] == o)
            .map(|v| v["value"].as_f64().unwrap())
    };
    // stop 311 + repetition 0 → ok_stop; abort → aborted.
    assert_eq!(get("ok_stop"), Some(311.0));
    assert_eq!(get("ok_length"), Some(27.0));
    assert_eq!(get("aborted"), Some(4.0));
    let ttft = &json["signals"]["llm_time_to_first_token_seconds"]["values"][0]["histogram"];
    // The engine's own 22 bounds plus +Inf.
    assert_eq!(ttft["buckets"].as_array().unwrap().len(), 23);
    assert_eq!(ttft["buckets"][22]["le"], "+Inf");
    assert_eq!(ttft["count"], 342.0);
}

#[test]
fn vllm_multi_model_keeps_models_apart() {
    let json = scrape_json("reconstructed/vllm-0.33-multi-model.txt");
    let running = json["signals"]["llm_requests_running"]["values"]
        .as_array()
        .unwrap();
    assert_eq!(running.len(), 2);
    assert_eq!(running[0]["model"], "Qwen/Qwen3-8B");
}

#[test]
fn vllm_renames_fall_back_to_old_names() {
    let v0 = scrape_json("reconstructed/vllm-v0.txt");
    assert_eq!(v0["version"], "V0 engine, <= 0.10");
    assert_eq!(
        v0["signals"]["llm_kv_cache_usage_ratio"]["series"][0],
        "vllm:gpu_cache_usage_perc"
    );
    assert_eq!(
        v0["signals"]["llm_inter_token_latency_seconds"]["series"][0],
        "vllm:time_per_output_token_seconds"
    );
    let v010 = scrape_json("reconstructed/vllm-0.10.txt");
    assert_eq!(v010["version"], ">= 0.10.2, < 0.12");
    // Both names present: the new one wins.
    assert_eq!(
        v010["signals"]["llm_kv_cache_usage_ratio"]["series"][0],
        "vllm:kv_cache_usage_perc"
    );
}

#[test]
fn tgi_bare_counters_random_order_and_outcomes() {
    let json = scrape_json("reconstructed/tgi-3.3.txt");
    assert_eq!(json["engine"], "tgi");
    let outcomes = json["signals"]["llm_requests_finished_total"]["values"]
        .as_array()
        .unwrap();
    let total: f64 = outcomes.iter().map(|v| v["value"].as_f64().unwrap()).sum();
    // success 338 + failures 3 + 5 + 1; never tgi_request_count (684, double-counted).
    assert_eq!(total, 347.0);
    assert_eq!(source(&json, "llm_kv_cache_usage_ratio"), "missing");
    assert_eq!(source(&json, "llm_time_to_first_token_seconds"), "missing");
    let e2e = &json["signals"]["llm_e2e_request_latency_seconds"]["values"][0]["histogram"];
    assert_eq!(e2e["buckets"][0]["le"], "0.00015000000000000001");
}

#[test]
fn sglang_drops_tp_replicas_and_pid_duplicates() {
    let json = scrape_json("reconstructed/sglang-0.5.23.txt");
    assert_eq!(json["engine"], "sglang");
    // tp_rank 0 and 1 both report 12 running: rank 1 repeats rank 0.
    assert_eq!(value(&json, "llm_requests_running"), 12.0);
    assert_eq!(value(&json, "llm_preemptions_total"), 1.0);
    // is_streaming true + false are summed.
    assert_eq!(value(&json, "llm_prompt_tokens_total"), 91410.0);
    let ttft = &json["signals"]["llm_time_to_first_token_seconds"]["values"][0]["histogram"];
    assert_eq!(ttft["count"], 166.0);
}

#[test]
fn vllm_data_parallel_engines_are_summed_and_kv_takes_the_fullest() {
    let json = scrape_json("reconstructed/vllm-0.33-dp2.txt");
    // engine "0" runs 7, engine "1" runs 8.
    assert_eq!(value(&json, "llm_requests_running"), 15.0);
    assert_eq!(value(&json, "llm_generation_tokens_total"), 2.0 * 41877.0);
    // 0.4231 and 0.5231: the fuller engine.
    assert_eq!(value(&json, "llm_kv_cache_usage_ratio"), 0.5231);
    let ttft = &json["signals"]["llm_time_to_first_token_seconds"]["values"][0]["histogram"];
    assert_eq!(ttft["count"], 684.0);
    assert_eq!(
        ttft["buckets"].as_array().unwrap().len(),
        23,
        "same bounds merged, not appended"
    );
}

#[test]
fn vllm_08_v1_reads_the_gpu_prefix_cache_names() {
    let json = scrape_json("reconstructed/vllm-0.8-v1.txt");
    assert_eq!(json["version"], ">= 0.8, < 0.12");
    assert_eq!(
        json["signals"]["llm_prefix_cache_hits_total"]["series"][0],
        "vllm:gpu_prefix_cache_hits_total"
    );
    assert_eq!(value(&json, "llm_prefix_cache_hit_ratio"), 0.25);
    assert_eq!(
        json["signals"]["llm_inter_token_latency_seconds"]["series"][0],
        "vllm:time_per_output_token_seconds"
    );
}
