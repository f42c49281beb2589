//! Grafana provisioning and the four dashboards: Overview (the catalogue's panels per service,
//! model and engine), Engine detail (the same per instance), Client view (what the proxy
//! measured: its own series, which the built-in dashboard shows as the client-side panel) and
//! GPUs (the GPU panels: per server through the join, per GPU).
//! Panels read `llm:` series, so they work whether llmwatch or the rules-only mode built
//! them, and every rate uses `$__rate_interval`, never a lifetime average.

use serde_json::{Value, json};

use super::yaml::{b, file, map, n, s, seq};
use super::{ExportError, ExportOptions, File};
use crate::catalog::gpu_panels::GPU_PANELS;
use crate::catalog::panels::{DETAIL, PROXY_OUTCOMES};

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
    vec![overview(), engine_detail(), client_view(), gpus()]
}

/// The GPU panels: per model server (the `instance` variable) and per GPU.
fn gpus() -> Dashboard {
    Dashboard {
        file: "llmwatch-gpu.json",
        title: "LLM serving: GPUs",
        uid: "llmwatch-gpu",
        panels: GPU_PANELS.iter().map(super::panels::compile_gpu).collect(),
    }
}

/// The catalogue's detail panels, per service, engine and model: what the built-in dashboard's
/// detail page draws for one target, across the fleet.
fn overview() -> Dashboard {
    Dashboard {
        file: "llmwatch-overview.json",
        title: "LLM serving: overview",
        uid: "llmwatch-overview",
        panels: DETAIL
            .iter()
            .map(|p| super::panels::compile(p, F, "service, engine, model"))
            .collect(),
    }
}

/// The same panels per instance.
fn engine_detail() -> Dashboard {
    Dashboard {
        file: "llmwatch-engine.json",
        title: "LLM serving: engine detail",
        uid: "llmwatch-engine",
        panels: DETAIL
            .iter()
            .map(|p| super::panels::compile(p, F, "instance"))
            .collect(),
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
                PROXY_OUTCOMES.title,
                PROXY_OUTCOMES.unit.grafana(),
                PROXY_OUTCOMES.help,
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
