//! `llmwatch export`: renders the Prometheus configuration and rules, the Alertmanager
//! configuration, Grafana provisioning and dashboards, a Compose stack and Kubernetes
//! manifests for the user's targets. Everything is generated from the signal table, so rules,
//! dashboards and the normaliser cannot drift apart; `deploy/` holds the output for the
//! example stack (`deploy/example-stack.args`).

pub mod alerts;
mod compose;
pub mod gpu_schema;
pub mod grafana;
mod kubernetes;
mod otel;
pub mod panels;
mod prometheus;
pub mod rules;
pub mod schema;
mod yaml;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::collect::targets::{check_label, metrics_url};
use crate::engines::Engine;

/// Why an export could not be rendered or written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A `--target` value that cannot be used.
    #[error("--target {target:?}: {reason}")]
    Target {
        /// As given.
        target: String,
        /// What is wrong.
        reason: String,
    },
    /// Another option that cannot be used.
    #[error("{option}: {reason}")]
    Option {
        /// The option.
        option: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Serialising a document failed.
    #[error("rendering {file}: {reason}")]
    Render {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
    /// Writing a file failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Who scrapes a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScrapedBy {
    /// llmwatch scrapes it and Prometheus scrapes llmwatch.
    Llmwatch,
    /// Prometheus scrapes it directly; recording rules build the schema (rules-only mode).
    Prometheus,
}

/// One engine to monitor.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportTarget {
    /// Its base URL as given.
    pub url: String,
    /// `host:port`.
    pub address: String,
    /// The path of its metrics.
    pub metrics_path: String,
    /// The engine; required when Prometheus scrapes it directly.
    pub engine: Option<Engine>,
    /// Instance name for llmwatch (default `host:port`).
    pub name: Option<String>,
    /// Who scrapes it.
    pub scraped_by: ScrapedBy,
    /// The model served, for engines whose series carry no model label (direct scrapes only).
    pub model: Option<String>,
    /// Static labels (`service=…` among them).
    pub labels: BTreeMap<String, String>,
}

impl ExportTarget {
    /// Parses `URL[,engine=E][,name=N][,scrape=llmwatch|prometheus][,model=M][,label=value…]`.
    pub fn parse(arg: &str) -> Result<ExportTarget, ExportError> {
        let fail = |reason: String| ExportError::Target {
            target: arg.to_string(),
            reason,
        };
        let mut parts = arg.split(',');
        let url = parts.next().unwrap_or_default().trim().to_string();
        let full = metrics_url(&url).map_err(|e| fail(e.to_string()))?;
        let parsed = reqwest::Url::parse(&full).map_err(|e| fail(e.to_string()))?;
        let (Some(host), Some(port)) = (parsed.host_str(), parsed.port_or_known_default()) else {
            return Err(fail("the URL needs a host".into()));
        };
        let mut target = ExportTarget {
            address: format!("{host}:{port}"),
            metrics_path: parsed.path().to_string(),
            url,
            engine: None,
            name: None,
            scraped_by: ScrapedBy::Llmwatch,
            model: None,
            labels: BTreeMap::new(),
        };
        for option in parts {
            let Some((key, value)) = option.split_once('=') else {
                return Err(fail(format!("{option:?} is not key=value")));
            };
            match key {
                "engine" => {
                    target.engine = Some(Engine::from_name(value).ok_or_else(|| {
                        fail(format!(
                            "unknown engine {value:?}: vllm, tgi, llamacpp or sglang"
                        ))
                    })?);
                }
                "name" => target.name = Some(value.to_string()),
                "model" => target.model = Some(value.to_string()),
                "scrape" => {
                    target.scraped_by = match value {
                        "llmwatch" => ScrapedBy::Llmwatch,
                        "prometheus" => ScrapedBy::Prometheus,
                        _ => return Err(fail(format!("scrape={value}: llmwatch or prometheus"))),
                    }
                }
                label => {
                    check_label(label).map_err(|e| fail(e.to_string()))?;
                    target.labels.insert(label.to_string(), value.to_string());
                }
            }
        }
        if target.scraped_by == ScrapedBy::Prometheus && target.engine.is_none() {
            return Err(fail(
                "scrape=prometheus needs engine=: the job and recording rules are per engine"
                    .into(),
            ));
        }
        if target.scraped_by == ScrapedBy::Llmwatch && target.model.is_some() {
            return Err(fail(
                "model= is for scrape=prometheus; llmwatch asks the engine for its model".into(),
            ));
        }
        Ok(target)
    }
}

/// Everything `export` renders from.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportOptions {
    /// The engines.
    pub targets: Vec<ExportTarget>,
    /// Where Prometheus reaches llmwatch (`host:port`).
    pub llmwatch_address: String,
    /// Where Prometheus reaches Alertmanager (`host:port`).
    pub alertmanager_address: String,
    /// Where Grafana reaches Prometheus (a URL).
    pub prometheus_url: String,
    /// Prometheus' scrape and rule-evaluation interval, e.g. `5s`.
    pub scrape_interval: String,
    /// Where runbook links point: alert anchors are added after `#`.
    pub runbook_base: String,
    /// Upstream of llmwatch's measuring proxy, if it runs one.
    pub proxy_upstream: Option<String>,
    /// Alertmanager's webhook receiver URL.
    pub webhook_url: String,
    /// Kubernetes namespace.
    pub namespace: String,
    /// Container image of llmwatch.
    pub image: String,
    /// Objectives of the SLO alerts.
    pub slo: rules::Slo,
}

impl ExportOptions {
    /// Checks the options that are not checked when parsed.
    pub fn validate(&self) -> Result<(), ExportError> {
        if self.targets.is_empty() {
            return Err(ExportError::Option {
                option: "--target",
                reason: "give at least one engine to monitor".into(),
            });
        }
        crate::cli::parse_duration(&self.scrape_interval).map_err(|reason| {
            ExportError::Option {
                option: "--scrape-interval",
                reason,
            }
        })?;
        if let Some(upstream) = &self.proxy_upstream {
            metrics_url(upstream).map_err(|e| ExportError::Option {
                option: "--proxy-upstream",
                reason: e.to_string(),
            })?;
        }
        for (option, value) in [
            ("--availability-objective", self.slo.availability),
            ("--ttft-objective", self.slo.ttft_objective),
        ] {
            if !(value > 0.0 && value < 1.0) {
                return Err(ExportError::Option {
                    option,
                    reason: format!("{value} is not between 0 and 1, e.g. 0.99"),
                });
            }
        }
        let threshold = self.slo.ttft_seconds;
        if !(threshold.is_finite() && threshold > 0.0) {
            return Err(ExportError::Option {
                option: "--ttft-threshold",
                reason: format!("{threshold} is not a positive number of seconds"),
            });
        }
        Ok(())
    }

    /// The targets scraped by `by`.
    pub fn scraped_by(&self, by: ScrapedBy) -> impl Iterator<Item = &ExportTarget> {
        self.targets.iter().filter(move |t| t.scraped_by == by)
    }

    /// Engines Prometheus scrapes directly, each once, in table order.
    pub fn direct_engines(&self) -> Vec<Engine> {
        Engine::ALL
            .into_iter()
            .filter(|e| {
                self.scraped_by(ScrapedBy::Prometheus)
                    .any(|t| t.engine == Some(*e))
            })
            .collect()
    }
}

/// One rendered file: its path under the output folder and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Relative path, `/`-separated.
    pub path: String,
    /// Contents.
    pub text: String,
}

/// Renders every file.
pub fn render(options: &ExportOptions) -> Result<Vec<File>, ExportError> {
    options.validate()?;
    let mut files = prometheus::files(options)?;
    files.extend(grafana::files(options)?);
    files.extend(compose::files(options)?);
    files.extend(kubernetes::files(options)?);
    Ok(files)
}

/// Every series llmwatch's recording rules write (the `llm:` schema and its aggregates).
pub fn record_names() -> Vec<String> {
    let mut groups: Vec<rules::Group> = Engine::ALL.into_iter().map(schema::engine_group).collect();
    groups.push(schema::llmwatch_group());
    groups.extend(prometheus::gpu_groups());
    groups.push(rules::aggregate_group(&rules::Slo::default()));
    groups
        .iter()
        .flat_map(|g| g.rules.iter())
        .filter_map(|r| r.record.clone())
        .collect()
}

/// Renders every file and writes it under `out`; returns the paths written.
pub fn write(options: &ExportOptions, out: &Path) -> Result<Vec<PathBuf>, ExportError> {
    let files = render(options)?;
    let mut written = Vec::with_capacity(files.len());
    for file in files {
        let path = out.join(&file.path);
        let fail = |source| ExportError::Write {
            path: path.display().to_string(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(fail)?;
        }
        std::fs::write(&path, file.text).map_err(fail)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests;
