//! Scrape targets: from `--target` arguments, the configuration file, Prometheus `file_sd`
//! files, or discovery of engines on their well-known local ports.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::config::{ScrapeConfig, TargetConfig};

/// Labels llmwatch sets itself; a static label may not take these names. `engine` would also
/// collide with vLLM's own label when Prometheus scrapes the engine directly.
pub const RESERVED_LABELS: [&str; 6] = ["engine", "model", "instance", "outcome", "le", "version"];

/// One engine to scrape, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The `instance` label: unique among targets.
    pub name: String,
    /// The metrics URL.
    pub url: String,
    /// Static labels on every series.
    pub labels: BTreeMap<String, String>,
    /// Time between scrapes.
    pub interval: Duration,
    /// Scrape timeout.
    pub timeout: Duration,
    /// Bearer token for the engine's `/metrics`. Never logged.
    pub bearer_token: Option<String>,
    /// Model name when neither the series nor the info endpoint name one.
    pub model: Option<String>,
    /// Serve the engine's own series too.
    pub raw: bool,
    /// The GPUs the engine uses, by normalised UUID (see `gpu::normalise_uuid`).
    pub gpus: Vec<String>,
}

/// Why a target was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    /// Not an http(s) URL.
    #[error("{url:?} is not an http:// or https:// URL")]
    Url {
        /// As given.
        url: String,
    },
    /// A URL with a user name or password in it, which would end up in logs and labels.
    #[error("{url:?}: no credentials in the URL; use the target's bearer_token")]
    Credentials {
        /// As given, without the password.
        url: String,
    },
    /// A label name Prometheus would reject, or one llmwatch sets itself.
    #[error("label {name:?}: {reason}")]
    Label {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A `--target` option that is not `key=value`.
    #[error(
        "{option:?}: expected name=…, raw=true|false, gpus=UUID+UUID…, a label as key=value, or nothing after the URL"
    )]
    Option {
        /// The option.
        option: String,
    },
    /// Two targets with one name.
    #[error("two targets are named {name:?}; give one a name=")]
    Duplicate {
        /// The name.
        name: String,
    },
    /// A `file_sd` file that is not readable or not the expected JSON.
    #[error("{path}: {reason}")]
    FileSd {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

impl Target {
    /// A target from one `[[target]]` table.
    pub fn from_config(c: &TargetConfig, scrape: &ScrapeConfig) -> Result<Target, TargetError> {
        let url = metrics_url(&c.url)?;
        for name in c.labels.keys() {
            check_label(name)?;
        }
        Ok(Target {
            name: c.name.clone().unwrap_or_else(|| host_port(&url)),
            url,
            labels: c.labels.clone(),
            interval: c.interval.unwrap_or(scrape.interval),
            timeout: c.timeout.unwrap_or(scrape.timeout),
            bearer_token: c.bearer_token.clone(),
            model: c.model.clone(),
            raw: c.raw,
            gpus: c
                .gpus
                .iter()
                .map(|g| crate::gpu::normalise_uuid(g))
                .collect(),
        })
    }

    /// Parses `URL[,name=NAME][,raw=true][,gpus=UUID+UUID…][,label=value…]`, the `--target`
    /// syntax.
    pub fn from_arg(arg: &str, scrape: &ScrapeConfig) -> Result<Target, TargetError> {
        let mut parts = arg.split(',');
        let url = parts.next().unwrap_or_default().trim().to_string();
        let mut config = TargetConfig::for_url(url);
        for option in parts {
            let Some((key, value)) = option.split_once('=') else {
                return Err(TargetError::Option {
                    option: option.to_string(),
                });
            };
            if key == "name" {
                config.name = Some(value.to_string());
            } else if key == "gpus" {
                config.gpus = value.split('+').map(str::to_owned).collect();
            } else if key == "raw" {
                config.raw = value.parse().map_err(|_| TargetError::Option {
                    option: option.to_string(),
                })?;
            } else {
                config.labels.insert(key.to_string(), value.to_string());
            }
        }
        Target::from_config(&config, scrape)
    }
}

/// `http://host:port` and `http://host:port/` mean the engine's `/metrics`.
pub fn metrics_url(url: &str) -> Result<String, TargetError> {
    let bad = || TargetError::Url {
        url: url.to_string(),
    };
    let mut parsed = reqwest::Url::parse(url).map_err(|_| bad())?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(bad());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        let _ = parsed.set_password(None);
        return Err(TargetError::Credentials {
            url: parsed.to_string(),
        });
    }
    super::fetch::default_metrics_path(&mut parsed);
    Ok(parsed.to_string())
}

fn host_port(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port_or_known_default()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            _ => url.to_string(),
        },
        Err(_) => url.to_string(),
    }
}

/// Refuses label names Prometheus or llmwatch reserve, and names that are not valid.
pub fn check_label(name: &str) -> Result<(), TargetError> {
    let valid = name
        .chars()
        .enumerate()
        .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
    let reason = if name.is_empty() || !valid {
        "not a valid Prometheus label name"
    } else if name.starts_with("__") {
        "names starting with __ are reserved by Prometheus"
    } else if RESERVED_LABELS.contains(&name) {
        "llmwatch sets this label itself"
    } else {
        return Ok(());
    };
    Err(TargetError::Label {
        name: name.to_string(),
        reason: reason.to_string(),
    })
}

/// Refuses two targets with one name: their series would collide.
pub fn check_unique(targets: &[Target]) -> Result<(), TargetError> {
    let mut seen = std::collections::BTreeSet::new();
    for t in targets {
        if !seen.insert(t.name.as_str()) {
            return Err(TargetError::Duplicate {
                name: t.name.clone(),
            });
        }
    }
    Ok(())
}

/// One group of a Prometheus `file_sd` file.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSdGroup {
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Reads a `file_sd` JSON file: `host:port` entries become `http://host:port/metrics`
/// targets; Prometheus' `__`-prefixed meta labels are dropped.
pub fn read_file_sd(path: &Path, scrape: &ScrapeConfig) -> Result<Vec<Target>, TargetError> {
    let fail = |reason: String| TargetError::FileSd {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let groups: Vec<FileSdGroup> =
        serde_json::from_str(&text).map_err(|e| fail(format!("not file_sd JSON: {e}")))?;
    let mut targets = Vec::new();
    for group in groups {
        let labels: BTreeMap<String, String> = group
            .labels
            .into_iter()
            .filter(|(k, _)| !k.starts_with("__"))
            .collect();
        for address in group.targets {
            let url = if address.contains("://") {
                address.clone()
            } else {
                format!("http://{address}")
            };
            let config = TargetConfig {
                labels: labels.clone(),
                ..TargetConfig::for_url(url)
            };
            targets.push(Target::from_config(&config, scrape).map_err(|e| fail(e.to_string()))?);
        }
    }
    Ok(targets)
}

/// The ports engines listen on by default: vLLM 8000, TGI 3000 (and 8080 in its container),
/// llama.cpp 8080, SGLang 30000.
pub const WELL_KNOWN_PORTS: [u16; 4] = [8000, 3000, 8080, 30000];

#[cfg(test)]
mod tests;
