//! `llmwatch doctor`: diagnosis from live numbers. The numbers of each target and model (its
//! health, and the detail page's readings over a window) are gathered into [`Evidence`], and
//! [`rules::diagnose`] turns them into findings with the likely cause and the engine's own
//! flags to change.

mod gpu;
mod prometheus;
mod renamed;
pub mod rules;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value as Json;
use thiserror::Error;

use crate::findings::Finding;
use crate::ui::url_escape;

pub use gpu::gpu_findings;
pub use prometheus::Prometheus;
pub use renamed::{LiveTarget, live_targets, renamed_findings};
pub use rules::{Thresholds, diagnose};

/// Why doctor could not run (exit code 2).
#[derive(Debug, Error)]
pub enum DoctorError {
    #[error("{url}: cannot reach llmwatch up: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url}: cannot reach Prometheus: {reason}")]
    PrometheusUnreachable { url: String, reason: String },
    #[error("{url}: answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url}: not the answer of llmwatch up: {reason}")]
    Answer { url: String, reason: String },
    #[error("{0}")]
    Targets(String),
}

/// A reading from the detail page: a value, or a bound when a quantile fell in an open
/// histogram bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reading {
    Value(f64),
    AtMost(f64),
    AtLeast(f64),
}

impl Reading {
    /// The number, bound or not.
    pub fn number(self) -> f64 {
        match self {
            Reading::Value(v) | Reading::AtMost(v) | Reading::AtLeast(v) => v,
        }
    }

    fn from_json(value: &Json) -> Option<Reading> {
        if let Some(v) = value.as_f64() {
            return Some(Reading::Value(v));
        }
        if let Some(v) = value.get("at_most").and_then(Json::as_f64) {
            return Some(Reading::AtMost(v));
        }
        value
            .get("at_least")
            .and_then(Json::as_f64)
            .map(Reading::AtLeast)
    }

    /// For evidence lines: `0.42`, `≤ 0.3`, `≥ 20`.
    pub fn show(self) -> String {
        let short = |v: f64| format!("{}", (v * 1000.0).round() / 1000.0);
        match self {
            Reading::Value(v) => short(v),
            Reading::AtMost(v) => format!("≤ {}", short(v)),
            Reading::AtLeast(v) => format!("≥ {}", short(v)),
        }
    }
}

/// What is known of one target (and one model it serves, when it is up).
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    pub target: String,
    pub engine: Option<String>,
    pub version: Option<String>,
    pub health: String,
    /// The reason of the last failed scrape (`refused`, `metrics_disabled`, …).
    pub error_reason: Option<String>,
    pub error_message: Option<String>,
    pub model: Option<String>,
    /// Seconds of history the readings cover.
    pub history_seconds: f64,
    pub window_seconds: f64,
    /// `(panel, line)` → the reading over the window (`("queue", "p95")`).
    pub readings: BTreeMap<(String, String), Reading>,
    /// The proxy's client-side TTFT comparison for this model, when the proxy runs.
    pub client_gap: Option<ClientGap>,
    /// How the target's scrapes go.
    pub scrape: ScrapeHealth,
}

/// A target's scrapes: interval, sample counts, integrity problems.
#[derive(Debug, Clone, Default)]
pub struct ScrapeHealth {
    pub interval_seconds: Option<f64>,
    pub samples: Option<f64>,
    pub samples_at_window_start: Option<f64>,
    pub integrity: Vec<IntegrityProblem>,
}

/// One integrity problem seen in the target's scrapes.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct IntegrityProblem {
    pub kind: String,
    pub series: String,
    pub detail: String,
    pub count: u64,
}

/// Client-side against engine TTFT for a model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientGap {
    pub client_mean: f64,
    pub engine_mean: f64,
    pub gap: f64,
}

impl Evidence {
    /// The reading of `line` on `panel`.
    pub fn get(&self, panel: &str, line: &str) -> Option<Reading> {
        self.readings
            .get(&(panel.to_string(), line.to_string()))
            .copied()
    }

    /// Its number, or `None`.
    pub fn number(&self, panel: &str, line: &str) -> Option<f64> {
        self.get(panel, line).map(Reading::number)
    }

    /// Reads `/api/v1/detail`'s answer.
    fn from_detail(detail: &Json) -> Evidence {
        let text = |key: &str| detail.get(key).and_then(Json::as_str).map(str::to_string);
        let mut readings = BTreeMap::new();
        for panel in detail
            .get("panels")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            let id = panel.get("id").and_then(Json::as_str).unwrap_or_default();
            for line in panel
                .get("lines")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                let label = line.get("label").and_then(Json::as_str).unwrap_or_default();
                if let Some(reading) = line.get("now").and_then(Reading::from_json) {
                    readings.insert((id.to_string(), label.to_string()), reading);
                }
            }
        }
        let client = detail.get("client").filter(|c| c.is_object());
        let client_gap = client.and_then(|c| {
            Some(ClientGap {
                client_mean: c.get("client_mean_seconds")?.as_f64()?,
                engine_mean: c.get("engine_mean_seconds")?.as_f64()?,
                gap: c.get("gap_seconds")?.as_f64()?,
            })
        });
        Evidence {
            target: text("target").unwrap_or_default(),
            engine: text("engine"),
            version: text("version"),
            health: text("health").unwrap_or_default(),
            error_reason: detail
                .pointer("/error/reason")
                .and_then(Json::as_str)
                .map(str::to_string),
            error_message: detail
                .pointer("/error/message")
                .and_then(Json::as_str)
                .map(str::to_string),
            model: text("model"),
            history_seconds: detail
                .get("history_seconds")
                .and_then(Json::as_f64)
                .unwrap_or(0.0),
            window_seconds: detail
                .get("window_seconds")
                .and_then(Json::as_f64)
                .unwrap_or(0.0),
            readings,
            client_gap,
            scrape: ScrapeHealth::from_detail(detail.get("scrape")),
        }
    }
}

impl ScrapeHealth {
    fn from_detail(scrape: Option<&Json>) -> ScrapeHealth {
        let Some(scrape) = scrape else {
            return ScrapeHealth::default();
        };
        let number = |key: &str| scrape.get(key).and_then(Json::as_f64);
        ScrapeHealth {
            interval_seconds: number("interval_seconds"),
            samples: number("samples"),
            samples_at_window_start: number("samples_at_window_start"),
            integrity: scrape
                .get("integrity")
                .and_then(|i| serde_json::from_value(i.clone()).ok())
                .unwrap_or_default(),
        }
    }
}

/// An HTTP client for reading `base` (an `up` or a Prometheus) with `timeout` per request.
pub(crate) fn client(base: &str, timeout: Duration) -> Result<reqwest::Client, DoctorError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| DoctorError::Unreachable {
            url: base.to_string(),
            reason: e.to_string(),
        })
}

/// The GPU findings of the `up` at `base`; none when it has no GPU route (an older `up`) or
/// no GPU exporter.
pub async fn gpus_of_up(base: &str, bearer_token: Option<&str>) -> Vec<Finding> {
    let Ok(client) = client(base, Duration::from_secs(10)) else {
        return Vec::new();
    };
    let url = format!("{}/api/v1/gpus", base.trim_end_matches('/'));
    match fetch_json(&client, &url, bearer_token).await {
        Ok(answer) => gpu_findings(&answer),
        Err(_) => Vec::new(),
    }
}

/// Reads every target and model of the `up` at `base` over `window`.
pub async fn from_up(
    base: &str,
    window: Duration,
    bearer_token: Option<&str>,
) -> Result<Vec<Evidence>, DoctorError> {
    let client = client(base, Duration::from_secs(10))?;
    let base = base.trim_end_matches('/');
    let get = |path: String| {
        let client = client.clone();
        let url = format!("{base}{path}");
        async move { fetch_json(&client, &url, bearer_token).await }
    };
    let targets = get("/api/v1/targets".to_string()).await?;
    let names: Vec<String> = targets
        .get("targets")
        .and_then(Json::as_array)
        .ok_or_else(|| DoctorError::Answer {
            url: format!("{base}/api/v1/targets"),
            reason: "no `targets` list".into(),
        })?
        .iter()
        // GPU exporters serve no requests: nothing of theirs is diagnosed as a server.
        .filter(|t| t.get("gpu_exporter").is_none_or(Json::is_null))
        .filter_map(|t| t.get("name").and_then(Json::as_str).map(str::to_string))
        .collect();
    let window = format!("{}s", window.as_secs().max(1));
    let mut out = Vec::new();
    for name in names {
        let query = |model: Option<&str>| {
            let mut q = format!(
                "/api/v1/detail?target={}&window={window}&points=1",
                url_escape(&name)
            );
            if let Some(model) = model {
                q.push_str(&format!("&model={}", url_escape(model)));
            }
            q
        };
        let first = get(query(None)).await?;
        let models: Vec<String> = first
            .get("models")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(|m| m.as_str().map(str::to_string))
            .collect();
        out.push(Evidence::from_detail(&first));
        for model in models.iter().skip(1) {
            out.push(Evidence::from_detail(&get(query(Some(model))).await?));
        }
    }
    Ok(out)
}

pub(crate) async fn fetch_json(
    client: &reqwest::Client,
    url: &str,
    bearer_token: Option<&str>,
) -> Result<Json, DoctorError> {
    let mut request = client.get(url);
    if let Some(token) = bearer_token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|e| DoctorError::Unreachable {
        url: url.to_string(),
        reason: crate::collect::fetch::flatten_error(&e),
    })?;
    let status = response.status().as_u16();
    let body = response
        .text()
        .await
        .map_err(|e| DoctorError::Unreachable {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    if status != 200 {
        return Err(DoctorError::Status {
            url: url.to_string(),
            status,
            body: body.chars().take(200).collect(),
        });
    }
    serde_json::from_str(&body).map_err(|e| DoctorError::Answer {
        url: url.to_string(),
        reason: e.to_string(),
    })
}
