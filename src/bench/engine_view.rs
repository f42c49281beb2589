//! The engine's own view of a benchmark: its `/metrics` scraped before and after the run and
//! normalised, so the report can put the server's token counts and TTFT beside the client's.
//! A body that is not an engine's (llmwatch's own proxy or collector, an unrelated exporter)
//! is refused with a reason, never reported as an empty engine view.

use serde_json::{Value as Json, json};

use crate::collect::fetch::FetchOptions;
use crate::commands::scrape::{Analysis, ScrapeArgs, scrape};
use crate::engines::{Histogram, Value};

/// The metrics URL of the engine behind `server`: `explicit` when given (a base URL gets
/// `/metrics`), else the benchmarked server's own `/metrics`.
pub fn metrics_url(server: &str, explicit: Option<&str>) -> String {
    match explicit {
        Some(url) if url.trim_end_matches('/').ends_with("/metrics") => url.to_string(),
        Some(url) => format!("{}/metrics", super::base_url(url)),
        None => format!("{}/metrics", super::base_url(server)),
    }
}

/// Scrapes the engine's metrics at `url` once; an error names the URL and why no engine
/// view can come from it.
pub async fn snapshot(url: &str, api_key: Option<&str>) -> Result<Analysis, String> {
    let args = ScrapeArgs {
        target: url.to_string(),
        fetch: FetchOptions {
            timeout: std::time::Duration::from_secs(5),
            max_body_bytes: 16 << 20,
            bearer_token: api_key.map(str::to_string),
        },
        lenient: true,
        model: None,
        probe_version: true,
    };
    let analysis = scrape(&args).await.map_err(|e| e.to_string())?;
    match analysis.engine() {
        Some(_) => Ok(analysis),
        None => Err(not_an_engine(url, &analysis)),
    }
}

/// The engine's view of the run: a second scrape of `url`, compared with `before`; or why
/// there is none. Names the URL either way.
pub async fn after(before: Result<Analysis, String>, url: &str, api_key: Option<&str>) -> Json {
    let mut view = match before {
        Ok(before) => match snapshot(url, api_key).await {
            Ok(after) => compare(&before, &after),
            Err(e) => json!({ "error": e }),
        },
        Err(e) => json!({ "error": e }),
    };
    view["metrics_url"] = json!(url);
    view
}

/// Why a body with no engine in it gives no engine view.
fn not_an_engine(url: &str, analysis: &Analysis) -> String {
    let named = |prefix: &str| analysis.families.iter().any(|f| f.name.starts_with(prefix));
    if named("llm_proxy_") || named("llmwatch_") || named("gen_ai_client_") {
        format!(
            "{url} is llmwatch's own exposition (a proxy or collector), not an engine's: \
             name the engine's metrics with --engine-metrics URL"
        )
    } else {
        format!(
            "{url} holds no engine's metrics ({} families, none from vLLM, TGI, llama.cpp or \
             SGLang): name the engine's metrics with --engine-metrics URL",
            analysis.families.len()
        )
    }
}

fn scalar(a: &Analysis, signal: &str) -> Option<f64> {
    let reading = a.readings.iter().find(|r| r.signal.name == signal)?;
    let values: Vec<f64> = reading
        .series
        .iter()
        .filter_map(|s| match s.value {
            Value::Scalar(v) => Some(v),
            Value::Histogram(_) => None,
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

fn histogram<'a>(a: &'a Analysis, signal: &str) -> Option<&'a Histogram> {
    let reading = a.readings.iter().find(|r| r.signal.name == signal)?;
    reading.series.iter().find_map(|s| match &s.value {
        Value::Histogram(h) => Some(h),
        Value::Scalar(_) => None,
    })
}

/// Quantiles of what a histogram observed between two scrapes (same buckets), in seconds.
fn delta_quantiles(before: &Histogram, after: &Histogram) -> Option<Json> {
    if before.buckets.len() != after.buckets.len() {
        return None;
    }
    let delta: Vec<(f64, f64)> = after
        .buckets
        .iter()
        .zip(&before.buckets)
        .map(|((le, a), (_, b))| (*le, (a - b).max(0.0)))
        .collect();
    let q = |q| crate::collect::history::bucket_quantile(q, &delta);
    Some(json!({
        "count": after.count - before.count,
        "mean": (after.count > before.count).then(|| (after.sum - before.sum) / (after.count - before.count)),
        "p50": q(0.5),
        "p99": q(0.99),
    }))
}

/// What the engine counted between the two scrapes.
pub fn compare(before: &Analysis, after: &Analysis) -> Json {
    let diff = |signal: &str| Some(scalar(after, signal)? - scalar(before, signal).unwrap_or(0.0));
    let latency =
        |signal: &str| delta_quantiles(histogram(before, signal)?, histogram(after, signal)?);
    json!({
        "engine": after.engine().map(crate::engines::Engine::as_str),
        "version": after.version(),
        "generation_tokens": diff("llm_generation_tokens_total"),
        "prompt_tokens": diff("llm_prompt_tokens_total"),
        "requests_finished": diff("llm_requests_finished_total"),
        "preemptions": diff("llm_preemptions_total"),
        "ttft_seconds": latency("llm_time_to_first_token_seconds"),
        "itl_seconds": latency("llm_inter_token_latency_seconds"),
        "e2e_seconds": latency("llm_e2e_request_latency_seconds"),
    })
}
