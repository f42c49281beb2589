//! Grafana provisioning and the three dashboards: Overview (golden signals per service, model
//! and engine), Engine detail (per instance) and Client view (what the proxy measured).
//! Panels read `llm:` series, so they work whether llmwatch or the rules-only mode built
//! them, and every rate uses `$__rate_interval`, never a lifetime average.

use serde_json::{Value, json};

use super::yaml::{b, file, map, n, s, seq};
use super::{ExportError, ExportOptions, File};

/// Every engine-side panel filters on the template variables.
const F: &str =
    "service=~\"$service\", engine=~\"$engine\", model=~\"$model\", instance=~\"$instance\"";
/// Client-side (proxy) series carry the requested model.
const C: &str = "gen_ai_request_model=~\"$model\"";
const RATE: &str = "[$__rate_interval]";

/// One panel: a title, a unit, what it shows, and its queries as `(expr, legend)`.
pub struct Panel {
    /// Title.
    pub title: &'static str,
    /// Grafana unit id.
    pub unit: &'static str,
    /// Shown as the panel's description.
    pub description: &'static str,
    /// `(PromQL, legend)`.
    pub queries: Vec<(String, String)>,
}

/// One dashboard.
pub struct Dashboard {
    /// File name under `grafana/dashboards/`.
    pub file: &'static str,
    /// Title.
    pub title: &'static str,
    /// Stable uid, so links survive re-provisioning.
    pub uid: &'static str,
    /// Panels, two per row.
    pub panels: Vec<Panel>,
}

fn rate(series: &str, filter: &str) -> String {
    format!("rate({series}{{{filter}}}{RATE})")
}

/// p50, p95 and p99 of a histogram, summed by `by`.
fn quantiles(histogram: &str, filter: &str, by: &str) -> Vec<(String, String)> {
    [(0.5, "p50"), (0.95, "p95"), (0.99, "p99")]
        .iter()
        .map(|(q, name)| {
            let expr = format!(
                "histogram_quantile({q}, sum by ({by}, le) ({}))",
                rate(&format!("{histogram}_bucket"), filter)
            );
            let legend = by
                .split(", ")
                .map(|l| format!("{{{{{l}}}}}"))
                .collect::<Vec<_>>()
                .join(" ");
            (expr, format!("{legend} {name}"))
        })
        .collect()
}

fn panel(
    title: &'static str,
    unit: &'static str,
    description: &'static str,
    queries: Vec<(String, String)>,
) -> Panel {
    Panel {
        title,
        unit,
        description,
        queries,
    }
}

fn q(expr: String, legend: &str) -> (String, String) {
    (expr, legend.to_string())
}

/// The dashboards.
pub fn dashboards() -> Vec<Dashboard> {
    vec![overview(), engine_detail(), client_view()]
}

fn overview() -> Dashboard {
    let by = "service, engine, model";
    let errors = format!(
        "sum by ({by}) ({})",
        rate(
            "llm:requests_finished_total",
            &format!("{F}, outcome=~\"{}\"", super::rules::ERROR_OUTCOMES)
        )
    );
    let all = format!("sum by ({by}) ({})", rate("llm:requests_finished_total", F));
    Dashboard {
        file: "llmwatch-overview.json",
        title: "LLM serving: overview",
        uid: "llmwatch-overview",
        panels: vec![
            panel(
                "Requests/s by outcome",
                "reqps",
                "Finished requests per second by canonical outcome.",
                vec![q(
                    format!(
                        "sum by (service, engine, model, outcome) ({})",
                        rate("llm:requests_finished_total", F)
                    ),
                    "{{service}} {{engine}} {{model}} {{outcome}}",
                )],
            ),
            panel(
                "Tokens/s",
                "short",
                "Prompt and generated tokens per second.",
                vec![
                    q(
                        format!("sum by ({by}) ({})", rate("llm:prompt_tokens_total", F)),
                        "{{service}} {{engine}} {{model}} prompt",
                    ),
                    q(
                        format!("sum by ({by}) ({})", rate("llm:generation_tokens_total", F)),
                        "{{service}} {{engine}} {{model}} generated",
                    ),
                ],
            ),
            panel(
                "Error ratio",
                "percentunit",
                "Requests that failed on the server or were rejected for overload, over all finished.",
                vec![q(
                    format!("({errors} or {all} * 0) / ({all} > 0)"),
                    "{{service}} {{engine}} {{model}}",
                )],
            ),
            panel(
                "End-to-end latency",
                "s",
                "Engine-measured arrival to last token.",
                quantiles("llm:e2e_request_latency_seconds", F, by),
            ),
            panel(
                "Time to first token",
                "s",
                "Engine-measured arrival to first token.",
                quantiles("llm:time_to_first_token_seconds", F, by),
            ),
            panel(
                "Inter-token latency",
                "s",
                "Time between successive outputs of a request.",
                quantiles("llm:inter_token_latency_seconds", F, by),
            ),
            panel(
                "Queue time",
                "s",
                "Time requests waited before being scheduled.",
                quantiles("llm:request_queue_seconds", F, by),
            ),
            panel(
                "Running vs waiting",
                "short",
                "Requests in the batch and requests queued.",
                vec![
                    q(
                        format!("sum by (service, instance) (llm:requests_running{{{F}}})"),
                        "{{service}} {{instance}} running",
                    ),
                    q(
                        format!("sum by (service, instance) (llm:requests_waiting{{{F}}})"),
                        "{{service}} {{instance}} waiting",
                    ),
                ],
            ),
            panel(
                "KV-cache usage",
                "percentunit",
                "Fraction of the KV cache in use (0 to 1).",
                vec![q(
                    format!("max by (service, instance) (llm:kv_cache_usage_ratio{{{F}}})"),
                    "{{service}} {{instance}}",
                )],
            ),
            panel(
                "Preemptions/s",
                "short",
                "Requests evicted from the batch per second.",
                vec![q(
                    format!(
                        "sum by (service, instance) ({})",
                        rate("llm:preemptions_total", F)
                    ),
                    "{{service}} {{instance}}",
                )],
            ),
        ],
    }
}

fn engine_detail() -> Dashboard {
    let per = |series: &str| format!("sum by (instance) ({})", rate(series, F));
    Dashboard {
        file: "llmwatch-engine.json",
        title: "LLM serving: engine detail",
        uid: "llmwatch-engine",
        panels: vec![
            panel(
                "Prefill vs decode time",
                "s",
                "Seconds spent in prefill and in decode per second of wall time (summed over requests or slots).",
                vec![
                    q(per("llm:prefill_seconds_total"), "{{instance}} prefill"),
                    q(per("llm:decode_seconds_total"), "{{instance}} decode"),
                ],
            ),
            panel(
                "Per-request prefill and decode p95",
                "s",
                "Prefill (scheduled to first token) and decode (first to last token) per request.",
                vec![
                    q(
                        format!(
                            "histogram_quantile(0.95, sum by (instance, le) ({}))",
                            rate("llm:request_prefill_seconds_bucket", F)
                        ),
                        "{{instance}} prefill p95",
                    ),
                    q(
                        format!(
                            "histogram_quantile(0.95, sum by (instance, le) ({}))",
                            rate("llm:request_decode_seconds_bucket", F)
                        ),
                        "{{instance}} decode p95",
                    ),
                ],
            ),
            panel(
                "Batch size",
                "short",
                "Requests per engine step. For llama.cpp this is its lifetime average of busy slots per decode, not a current value: llama.cpp exports nothing better.",
                vec![q(
                    format!("sum by (instance) (llm:batch_size{{{F}}})"),
                    "{{instance}}",
                )],
            ),
            panel(
                "Prefix-cache hit ratio",
                "percentunit",
                "Prompt tokens found in the prefix cache over tokens looked up, in the window.",
                vec![q(
                    format!(
                        "{} / ({} > 0)",
                        per("llm:prefix_cache_hits_total"),
                        per("llm:prefix_cache_queries_total")
                    ),
                    "{{instance}}",
                )],
            ),
            panel(
                "Generated tokens/s",
                "short",
                "Output tokens per second per instance.",
                vec![q(per("llm:generation_tokens_total"), "{{instance}}")],
            ),
            panel(
                "Time per output token",
                "s",
                "Per-request mean time per output token.",
                quantiles("llm:time_per_output_token_seconds", F, "instance"),
            ),
            panel(
                "Running vs waiting",
                "short",
                "Requests in the batch and requests queued, per instance.",
                vec![
                    q(
                        format!("sum by (instance) (llm:requests_running{{{F}}})"),
                        "{{instance}} running",
                    ),
                    q(
                        format!("sum by (instance) (llm:requests_waiting{{{F}}})"),
                        "{{instance}} waiting",
                    ),
                ],
            ),
            panel(
                "KV-cache usage",
                "percentunit",
                "Fraction of the KV cache in use, per instance.",
                vec![q(
                    format!("max by (instance) (llm:kv_cache_usage_ratio{{{F}}})"),
                    "{{instance}}",
                )],
            ),
        ],
    }
}

fn client_view() -> Dashboard {
    let client = |h: &str, quantile: f64, legend: &str| {
        q(
            format!(
                "histogram_quantile({quantile}, sum by (gen_ai_request_model, le) ({}))",
                rate(&format!("{h}_bucket"), C)
            ),
            legend,
        )
    };
    Dashboard {
        file: "llmwatch-client.json",
        title: "LLM serving: client view",
        uid: "llmwatch-client",
        panels: vec![
            panel(
                "Client vs engine TTFT",
                "s",
                "Time to first content token measured at the proxy, beside the engine's own TTFT.",
                vec![
                    client(
                        "llm_proxy_time_to_first_content_seconds",
                        0.5,
                        "{{gen_ai_request_model}} client p50",
                    ),
                    client(
                        "llm_proxy_time_to_first_content_seconds",
                        0.99,
                        "{{gen_ai_request_model}} client p99",
                    ),
                    q(
                        format!(
                            "histogram_quantile(0.5, sum by (model, le) ({}))",
                            rate("llm:time_to_first_token_seconds_bucket", F)
                        ),
                        "{{model}} engine p50",
                    ),
                    q(
                        format!(
                            "histogram_quantile(0.99, sum by (model, le) ({}))",
                            rate("llm:time_to_first_token_seconds_bucket", F)
                        ),
                        "{{model}} engine p99",
                    ),
                ],
            ),
            panel(
                "Client minus engine TTFT",
                "s",
                "Mean TTFT clients saw minus the engines' mean, same model, last 5 minutes: network, proxy and queueing outside the engine.",
                vec![q(
                    "llm_client_ttft_gap_seconds{model=~\"$model\"}".to_string(),
                    "{{model}}",
                )],
            ),
            panel(
                "Outcomes/s",
                "reqps",
                "Requests through the proxy by outcome and HTTP status class.",
                vec![q(
                    format!(
                        "sum by (outcome, http_status_class) ({})",
                        rate("llm_proxy_requests_total", C)
                    ),
                    "{{outcome}} {{http_status_class}}",
                )],
            ),
            panel(
                "Proxy overhead p99",
                "s",
                "Time the proxy itself adds per request and per chunk.",
                vec![q(
                    format!(
                        "histogram_quantile(0.99, sum by (phase, le) ({}))",
                        rate("llm_proxy_overhead_seconds_bucket", "")
                    ),
                    "{{phase}} p99",
                )],
            ),
            panel(
                "Client inter-token latency",
                "s",
                "Gap between content chunks divided by their tokens, at the proxy.",
                vec![
                    client(
                        "llm_proxy_time_per_output_token_seconds",
                        0.5,
                        "{{gen_ai_request_model}} p50",
                    ),
                    client(
                        "llm_proxy_time_per_output_token_seconds",
                        0.99,
                        "{{gen_ai_request_model}} p99",
                    ),
                ],
            ),
            panel(
                "Client request duration",
                "s",
                "Whole operation as the client saw it.",
                vec![
                    client(
                        "gen_ai_client_operation_duration_seconds",
                        0.5,
                        "{{gen_ai_request_model}} p50",
                    ),
                    client(
                        "gen_ai_client_operation_duration_seconds",
                        0.99,
                        "{{gen_ai_request_model}} p99",
                    ),
                ],
            ),
            panel(
                "In flight",
                "short",
                "Requests in flight through the proxy.",
                vec![q(
                    "sum(llm_proxy_requests_in_flight)".to_string(),
                    "in flight",
                )],
            ),
        ],
    }
}

fn variable(name: &str, label: &str, query: &str) -> Value {
    json!({
        "name": name,
        "label": label,
        "type": "query",
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "definition": query,
        "refresh": 2,
        "includeAll": true,
        "multi": true,
        "allValue": ".*",
        "current": {"text": "All", "value": "$__all"},
        "sort": 1
    })
}

fn templating() -> Value {
    let base = "llm:requests_running";
    json!({"list": [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus", "current": {}},
        variable("service", "Service", &format!("label_values({base}, service)")),
        variable("engine", "Engine", &format!("label_values({base}{{service=~\"$service\"}}, engine)")),
        variable("model", "Model", &format!("label_values({base}{{service=~\"$service\", engine=~\"$engine\"}}, model)")),
        variable("instance", "Instance", &format!("label_values({base}{{service=~\"$service\", engine=~\"$engine\", model=~\"$model\"}}, instance)")),
    ]})
}

fn render(dashboard: &Dashboard) -> Value {
    let datasource = json!({"type": "prometheus", "uid": "${datasource}"});
    let panels: Vec<Value> = dashboard
        .panels
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let targets: Vec<Value> = p
                .queries
                .iter()
                .enumerate()
                .map(|(j, (expr, legend))| {
                    let ref_id = char::from(b'A' + (j % 26) as u8).to_string();
                    json!({"refId": ref_id, "datasource": datasource, "expr": expr, "legendFormat": legend, "range": true})
                })
                .collect();
            json!({
                "id": i + 1,
                "type": "timeseries",
                "title": p.title,
                "description": p.description,
                "datasource": datasource,
                "gridPos": {"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i / 2) * 8},
                "fieldConfig": {"defaults": {"unit": p.unit}, "overrides": []},
                "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": true}, "tooltip": {"mode": "multi", "sort": "desc"}},
                "targets": targets
            })
        })
        .collect();
    json!({
        "uid": dashboard.uid,
        "title": dashboard.title,
        "tags": ["llmwatch", "llm"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": true,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "annotations": {"list": []},
        "templating": templating(),
        "panels": panels
    })
}

/// A dashboard's JSON text.
pub fn dashboard_json(dashboard: &Dashboard) -> Result<String, ExportError> {
    let mut text =
        serde_json::to_string_pretty(&render(dashboard)).map_err(|e| ExportError::Render {
            file: dashboard.file.to_string(),
            reason: e.to_string(),
        })?;
    text.push('\n');
    Ok(text)
}

/// Provisioning files and dashboards.
pub fn files(options: &ExportOptions) -> Result<Vec<File>, ExportError> {
    let header = "Generated by `llmwatch export`.";
    let datasources = map([
        ("apiVersion", n(1)),
        (
            "datasources",
            seq([map([
                ("name", s("Prometheus")),
                ("uid", s("prometheus")),
                ("type", s("prometheus")),
                ("access", s("proxy")),
                ("url", s(options.prometheus_url.as_str())),
                ("isDefault", b(true)),
                (
                    "jsonData",
                    map([("timeInterval", s(options.scrape_interval.as_str()))]),
                ),
            ])]),
        ),
    ]);
    let providers = map([
        ("apiVersion", n(1)),
        (
            "providers",
            seq([map([
                ("name", s("llmwatch")),
                ("folder", s("LLM serving")),
                ("type", s("file")),
                ("allowUiUpdates", b(false)),
                ("options", map([("path", s("/var/lib/grafana/dashboards"))])),
            ])]),
        ),
    ]);
    let mut files = vec![
        file(
            "grafana/provisioning/datasources/prometheus.yml",
            header,
            &datasources,
        )?,
        file(
            "grafana/provisioning/dashboards/llmwatch.yml",
            header,
            &providers,
        )?,
    ];
    for dashboard in dashboards() {
        files.push(File {
            path: format!("grafana/dashboards/{}", dashboard.file),
            text: dashboard_json(&dashboard)?,
        });
    }
    Ok(files)
}
