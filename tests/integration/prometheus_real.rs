//! Real Prometheus (Debian's 2.42) scrapes `llmwatch up`, which scrapes simulated engines of
//! every dialect: PromQL over the `llm_*` series returns the numbers the JSON API returns.
//! Skips without `prometheus` on PATH, unless `LLMWATCH_REQUIRE_EXTERNAL=1`.

use serde_json::{Value, json};

use crate::up::{eventually, get, start_up};
use crate::util::{external_program, http, start, start_prometheus};

/// `query` against Prometheus at `base`: `(labels, value)` per series of an instant vector.
pub fn promql(base: &str, query: &str) -> Vec<(Value, f64)> {
    let (rt, client) = http();
    let body: Value = rt.block_on(async {
        let url =
            reqwest::Url::parse_with_params(&format!("{base}/api/v1/query"), [("query", query)])
                .unwrap();
        let resp = client.get(url).send().await.unwrap();
        serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap()
    });
    assert_eq!(body["status"], "success", "{query}: {body}");
    body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let v = r["value"][1].as_str().unwrap().parse().unwrap();
            (r["metric"].clone(), v)
        })
        .collect()
}

/// The target named `name` in an API document.
fn by_name<'v>(doc: &'v Value, name: &str) -> &'v Value {
    doc["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap()
}

#[test]
fn promql_over_llm_series_equals_the_json_api() {
    let Some(prometheus) = external_program("prometheus") else {
        return;
    };
    let sim = start(&["vllm", "tgi", "llamacpp", "sglang"]);
    let (rt, client) = http();
    rt.block_on(async {
        for (_, base) in &sim.urls {
            for i in 0..5 {
                let body = json!({"messages": [{"role": "user", "content": format!("q{i}")}], "max_tokens": 8});
                client
                    .post(format!("{base}/v1/chat/completions"))
                    .body(body.to_string())
                    .send()
                    .await
                    .unwrap();
            }
        }
    });
    let targets: Vec<String> = sim
        .urls
        .iter()
        .map(|(d, base)| format!("--target={base},name={d},service=demo"))
        .collect();
    let args: Vec<&str> = targets.iter().map(String::as_str).collect();
    let up = start_up("[scrape]\ninterval = \"200ms\"\n", &args);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    let up_addr = up.base.trim_start_matches("http://");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: llmwatch\n    honor_labels: true\n    static_configs:\n      - targets: ['{up_addr}']\n"
        ),
    )
    .unwrap();
    let (_prom, prom) = start_prometheus(&prometheus, &config, &dir.path().join("data"));
    let tokens = eventually(60, || {
        let series = promql(&prom, "llm_generation_tokens_total");
        (series.len() == 4).then_some(series)
    });
    let (_, snapshot) = get(&format!("{}/api/v1/snapshot", up.base));
    let snapshot: Value = serde_json::from_str(&snapshot).unwrap();
    for (labels, value) in tokens {
        let instance = labels["instance"].as_str().unwrap();
        assert_eq!(labels["job"], "llmwatch");
        assert_eq!(labels["service"], "demo");
        assert_eq!(
            labels["engine"], instance,
            "the engine label survives honor_labels"
        );
        let target = by_name(&snapshot, instance);
        let api = target["signals"]["llm_generation_tokens_total"][0]["value"].as_f64();
        assert_eq!(Some(value), api, "{instance}");
        assert!(value > 0.0);
    }
    // Quantiles: PromQL's histogram_quantile over the buckets equals llmwatch's.
    let ttft = promql(
        &prom,
        "histogram_quantile(0.9, llm_time_to_first_token_seconds_bucket)",
    );
    assert!(!ttft.is_empty(), "no TTFT histogram reached Prometheus");
    for (labels, value) in ttft {
        let instance = labels["instance"].as_str().unwrap();
        let target = by_name(&snapshot, instance);
        let buckets: Vec<(f64, f64)> =
            target["signals"]["llm_time_to_first_token_seconds"][0]["histogram"]["buckets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| {
                    let le = b[0].as_f64().unwrap_or(f64::INFINITY);
                    (le, b[1].as_f64().unwrap())
                })
                .collect();
        let ours = llmwatch::collect::history::histogram_quantile(0.9, &buckets).unwrap();
        assert!(
            (ours - value).abs() < 1e-9,
            "{instance}: llmwatch {ours}, PromQL {value}"
        );
    }
    let up_series = promql(&prom, "llmwatch_target_up");
    assert_eq!(up_series.len(), 4);
    assert!(up_series.iter().all(|(_, v)| *v == 1.0));
}
