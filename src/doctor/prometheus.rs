//! `doctor --prometheus URL`: the same evidence read from a Prometheus through its query API.
//! The `llm:` schema is there whichever way it was built (llmwatch's series or the rules-only
//! recording rules over raw engine series), and each detail-page line compiles to the PromQL
//! the exported Grafana panels run, so the diagnoses read the same numbers as against `up`.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde_json::Value as Json;

use super::{DoctorError, Evidence, Reading, ScrapeHealth, fetch_json};
use crate::catalog::panels::{DETAIL, Measure};
use crate::engines::Engine;
use crate::engines::families::engine_of;
use crate::export::panels::promql;
use crate::ui::url_escape;

use super::LiveTarget;

/// An instant query's result: each series' labels and value.
type Vector = Vec<(BTreeMap<String, String>, f64)>;

/// The Prometheus at `base`, read over `window`.
pub struct Prometheus<'a> {
    client: reqwest::Client,
    base: &'a str,
    bearer_token: Option<&'a str>,
    window: String,
}

impl<'a> Prometheus<'a> {
    pub fn new(
        base: &'a str,
        window: Duration,
        bearer_token: Option<&'a str>,
    ) -> Result<Prometheus<'a>, DoctorError> {
        Ok(Prometheus {
            client: super::client(base, Duration::from_secs(30))?,
            base: base.trim_end_matches('/'),
            bearer_token,
            window: format!("{}s", window.as_secs().max(1)),
        })
    }

    async fn get(&self, path: &str) -> Result<Json, DoctorError> {
        let url = format!("{}{path}", self.base);
        let doc = fetch_json(&self.client, &url, self.bearer_token)
            .await
            .map_err(|e| match e {
                DoctorError::Unreachable { reason, .. } => DoctorError::PrometheusUnreachable {
                    url: self.base.to_string(),
                    reason,
                },
                other => other,
            })?;
        if doc.get("status").and_then(Json::as_str) != Some("success") {
            return Err(DoctorError::Answer {
                url,
                reason: "not a Prometheus API answer (no \"status\": \"success\")".into(),
            });
        }
        Ok(doc.get("data").cloned().unwrap_or(Json::Null))
    }

    /// Runs an instant query.
    async fn query(&self, promql: &str) -> Result<Vector, DoctorError> {
        let data = self
            .get(&format!("/api/v1/query?query={}", url_escape(promql)))
            .await?;
        let result = data.get("result").and_then(Json::as_array);
        Ok(result
            .into_iter()
            .flatten()
            .filter_map(|r| {
                let labels = serde_json::from_value(r.get("metric")?.clone()).ok()?;
                let value = r.get("value")?.get(1)?.as_str()?.parse::<f64>().ok()?;
                value.is_finite().then_some((labels, value))
            })
            .collect())
    }

    /// The GPU findings from the `llm:` GPU schema (llmwatch's series or the rules-only
    /// rules): the join `llm:gpu_server_info` and the last XID, read into the shape of `up`'s
    /// `/api/v1/gpus` so both say the same. None when Prometheus has no GPU series.
    pub async fn gpu_findings(&self) -> Result<Vec<crate::findings::Finding>, DoctorError> {
        let gpu_key =
            |labels: &BTreeMap<String, String>| (label(labels, "instance"), label(labels, "gpu"));
        let mut gpus: BTreeMap<(String, String), serde_json::Map<String, Json>> = BTreeMap::new();
        for (labels, _) in self.query("llm:gpu_server_info").await? {
            let gpu = gpus.entry(gpu_key(&labels)).or_insert_with(|| {
                let mut gpu = serde_json::Map::new();
                gpu.insert("exporter".into(), label(&labels, "instance").into());
                gpu.insert("gpu".into(), label(&labels, "gpu").into());
                gpu.insert("servers".into(), Json::Array(Vec::new()));
                gpu
            });
            if let (Some(server), Some(Json::Array(servers))) =
                (labels.get("server"), gpu.get_mut("servers"))
            {
                servers.push(serde_json::json!({"server": server, "via": labels.get("via")}));
            }
        }
        for (labels, uuid) in self
            .query("llm:gpu_info")
            .await?
            .into_iter()
            .filter_map(|(l, _)| Some((l.clone(), l.get("uuid")?.clone())))
        {
            if let Some(gpu) = gpus.get_mut(&gpu_key(&labels)) {
                gpu.insert("uuid".into(), uuid.into());
            }
        }
        for (labels, code) in self.query("llm:gpu_last_xid > 0").await? {
            if let Some(gpu) = gpus.get_mut(&gpu_key(&labels)) {
                gpu.insert(
                    "values".into(),
                    serde_json::json!({"llm_gpu_last_xid": code}),
                );
            }
        }
        let gpus: Vec<Json> = gpus.into_values().map(Json::Object).collect();
        Ok(super::gpu_findings(
            &serde_json::json!({"data": {"gpus": gpus}}),
        ))
    }

    /// Every engine and model Prometheus knows, with its readings over the window.
    pub async fn evidence(&self) -> Result<Vec<Evidence>, DoctorError> {
        let window_seconds = self.window.trim_end_matches('s').parse().unwrap_or(0.0);
        let mut out: BTreeMap<(String, String), Evidence> = BTreeMap::new();
        let by = "instance, model";
        for (labels, _) in self
            .query("count by (instance, model, engine) (llm:requests_running)")
            .await?
        {
            let (instance, model) = (label(&labels, "instance"), label(&labels, "model"));
            out.insert(
                (instance.clone(), model.clone()),
                Evidence {
                    target: instance,
                    engine: labels.get("engine").cloned(),
                    health: "up".into(),
                    model: Some(model),
                    window_seconds,
                    ..Evidence::default()
                },
            );
        }
        let history = format!(
            "time() - min by ({by}) (min_over_time(timestamp(llm:requests_running)[{}:1s]))",
            self.window
        );
        for (labels, v) in self.query(&history).await? {
            if let Some(e) = out.get_mut(&key(&labels)) {
                e.history_seconds = v.min(window_seconds);
            }
        }
        for panel in DETAIL {
            for line in panel.lines {
                let outcome = matches!(line.measure, Measure::RateByOutcome(_));
                let expr = promql(line.measure, "instance!=\"\"", by)
                    .replace("$__rate_interval", &self.window);
                for (labels, v) in self.query(&expr).await? {
                    let Some(e) = out.get_mut(&key(&labels)) else {
                        continue;
                    };
                    let name = if outcome {
                        label(&labels, "outcome")
                    } else {
                        line.label.to_string()
                    };
                    e.readings
                        .insert((panel.id.to_string(), name), Reading::Value(v));
                }
            }
        }
        let (down, scrapes) = self.targets().await?;
        let mut list: Vec<Evidence> = out.into_values().collect();
        for e in &mut list {
            if let Some(scrape) = scrapes.get(&e.target) {
                e.scrape = scrape.clone();
            }
        }
        list.extend(down);
        Ok(list)
    }

    /// Prometheus' own targets: engines it cannot scrape (which have no `llm:` series), and
    /// the scrape interval and sample counts of those it can. Collector jobs (`llmwatch`)
    /// are not engines.
    async fn targets(
        &self,
    ) -> Result<(Vec<Evidence>, BTreeMap<String, ScrapeHealth>), DoctorError> {
        let collectors: HashSet<String> = self
            .query("count by (job) (llmwatch_target_up)")
            .await?
            .into_iter()
            .map(|(l, _)| label(&l, "job"))
            .chain(std::iter::once("llmwatch".to_string()))
            .collect();
        let samples = self.samples().await?;
        let data = self.get("/api/v1/targets?state=active").await?;
        let mut down = Vec::new();
        let mut scrapes = BTreeMap::new();
        for t in data
            .get("activeTargets")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            let text = |path: &str| t.pointer(path).and_then(Json::as_str).unwrap_or_default();
            let (instance, job) = (text("/labels/instance"), text("/labels/job"));
            if collectors.contains(job) {
                continue;
            }
            let scrape = ScrapeHealth {
                interval_seconds: crate::cli::parse_duration(text("/scrapeInterval"))
                    .ok()
                    .map(|d| d.as_secs_f64()),
                samples: samples.get(instance).map(|s| s.0),
                samples_at_window_start: samples.get(instance).and_then(|s| s.1),
                integrity: Vec::new(),
            };
            if text("/health") == "down" {
                let error = text("/lastError");
                down.push(Evidence {
                    target: instance.to_string(),
                    engine: Some(job.to_string()).filter(|j| Engine::from_name(j).is_some()),
                    health: "down".into(),
                    error_reason: Some(reason(error).into()),
                    error_message: Some(error.to_string()),
                    scrape,
                    ..Evidence::default()
                });
            } else {
                scrapes.insert(instance.to_string(), scrape);
            }
        }
        Ok((down, scrapes))
    }

    /// `scrape_samples_scraped` now and a window ago, by instance.
    async fn samples(&self) -> Result<BTreeMap<String, (f64, Option<f64>)>, DoctorError> {
        let mut out: BTreeMap<String, (f64, Option<f64>)> = BTreeMap::new();
        for (labels, v) in self.query("scrape_samples_scraped").await? {
            out.insert(label(&labels, "instance"), (v, None));
        }
        let then = format!("scrape_samples_scraped offset {}", self.window);
        for (labels, v) in self.query(&then).await? {
            if let Some(entry) = out.get_mut(&label(&labels, "instance")) {
                entry.1 = Some(v);
            }
        }
        Ok(out)
    }

    /// The raw engine series each instance has, for `--rules`.
    pub async fn live_targets(&self) -> Result<Vec<LiveTarget>, DoctorError> {
        let names =
            "count by (__name__, instance) ({__name__=~\"vllm:.+|tgi_.+|llamacpp:.+|sglang:.+\"})";
        let mut by_instance: BTreeMap<String, LiveTarget> = BTreeMap::new();
        for (labels, _) in self.query(names).await? {
            let name = label(&labels, "__name__");
            let Some(engine) = engine_of(&name) else {
                continue;
            };
            by_instance
                .entry(label(&labels, "instance"))
                .or_insert_with(|| LiveTarget {
                    name: label(&labels, "instance"),
                    engine,
                    version: "(version unknown)".into(),
                    series: HashSet::new(),
                })
                .series
                .insert(name);
        }
        Ok(by_instance.into_values().collect())
    }
}

fn label(labels: &BTreeMap<String, String>, name: &str) -> String {
    labels.get(name).cloned().unwrap_or_default()
}

fn key(labels: &BTreeMap<String, String>) -> (String, String) {
    (label(labels, "instance"), label(labels, "model"))
}

/// The reason `up` would give for Prometheus' `lastError`.
fn reason(error: &str) -> &'static str {
    if error.contains("501") {
        "metrics_disabled"
    } else if error.contains("401") || error.contains("403") {
        "unauthorized"
    } else if error.contains("connection refused") {
        "refused"
    } else if error.contains("deadline") || error.contains("timeout") {
        "timeout"
    } else {
        "http_status"
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn prometheus_last_errors_map_to_the_reasons_up_gives() {
        let cases = [
            (
                "server returned HTTP status 501 Not Implemented",
                "metrics_disabled",
            ),
            (
                "server returned HTTP status 401 Unauthorized",
                "unauthorized",
            ),
            (
                "Get \"http://x/metrics\": dial tcp 127.0.0.1:9: connect: connection refused",
                "refused",
            ),
            (
                "Get \"http://x/metrics\": context deadline exceeded",
                "timeout",
            ),
            (
                "server returned HTTP status 500 Internal Server Error",
                "http_status",
            ),
        ];
        for (error, reason) in cases {
            assert_eq!(super::reason(error), reason, "{error}");
        }
    }
}
