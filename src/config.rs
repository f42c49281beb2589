//! `llmwatch up`'s configuration file (TOML). Every field is optional and documented here;
//! `config.example.toml` at the repository root shows them all with their defaults, and a test
//! loads it. Unknown fields are errors, reported with the file, line and field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// TOML syntax, an unknown field or a value of the wrong type.
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong, naming the field.
        message: String,
    },
    /// A value that parses but makes no sense (a bad URL, label or duration).
    #[error("{path}: {field}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Which field, e.g. `target[2].labels.engine`.
        field: String,
        /// Why.
        message: String,
    },
}

/// The whole file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address of llmwatch's own HTTP server (`/metrics`, the JSON API, health). Loopback by
    /// default; listening on other interfaces is a deliberate choice (set `auth` too).
    pub listen: String,
    /// How targets are scraped.
    pub scrape: ScrapeConfig,
    /// How much history is kept in memory.
    pub history: HistoryConfig,
    /// Credentials required by llmwatch's own HTTP server (all routes but `/healthz` and
    /// `/readyz`). None by default.
    pub auth: Option<AuthConfig>,
    /// Engines to scrape, each a `[[target]]` table.
    #[serde(rename = "target")]
    pub targets: Vec<TargetConfig>,
    /// Prometheus `file_sd` JSON files (`[{"targets": ["host:port"], "labels": {…}}]`),
    /// re-read when they change.
    pub file_sd: Vec<PathBuf>,
    /// How often `file_sd` files are checked for changes.
    #[serde(deserialize_with = "duration")]
    pub file_sd_refresh: Duration,
    /// A measuring proxy run in the same process (`[proxy]`): its client-side series join
    /// `/metrics`, with the gap between client and engine TTFT per model. None by default.
    pub proxy: Option<ProxyConfig>,
    /// The alerts `up` evaluates over its own state (`[alerting]`): the same alerts
    /// `llmwatch export` writes as Prometheus rules.
    pub alerting: AlertingConfig,
    /// OTLP export of what `/metrics` shows (`[otlp]`). Unset fields fall back to the
    /// standard `OTEL_*` environment variables; with no endpoint anywhere, nothing is pushed.
    pub otlp: OtlpTomlConfig,
}

/// `[otlp]`: push the collector's metrics to an OpenTelemetry endpoint as well.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpTomlConfig {
    /// OTLP base URL, e.g. `http://127.0.0.1:4318` (`/v1/metrics` is added), or
    /// `http://127.0.0.1:4317` with `protocol = "grpc"`.
    pub endpoint: Option<String>,
    /// `http/protobuf` or `grpc` (default `OTEL_EXPORTER_OTLP_PROTOCOL`, else http/protobuf).
    pub protocol: Option<String>,
    /// A PEM file of CA certificates to trust for an `https://` endpoint, besides the
    /// system's roots (default `OTEL_EXPORTER_OTLP_CERTIFICATE`).
    pub certificate: Option<std::path::PathBuf>,
    /// Time between two exports (default `OTEL_METRIC_EXPORT_INTERVAL`, else 60s).
    #[serde(deserialize_with = "optional_duration")]
    pub interval: Option<Duration>,
    /// `cumulative` (default) or `delta` sums and histograms.
    pub temporality: Option<String>,
}

impl OtlpTomlConfig {
    /// The settings this section gives, for `service.name` `default_service`.
    pub fn settings(&self, default_service: &str) -> crate::otlp::OtlpSettings {
        crate::otlp::OtlpSettings {
            endpoint: self.endpoint.clone(),
            interval: self.interval,
            temporality: self.temporality.clone(),
            default_service: default_service.to_string(),
            trace_ratio: None,
            keep_slower_than: None,
            provider: None,
            protocol: self.protocol.clone(),
            certificate: self.certificate.clone(),
        }
    }
}

/// `[alerting]`: how often the alerts are evaluated and the objectives of the burn-rate
/// alerts (the same as `llmwatch export`'s `--slo-*` options).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingConfig {
    /// Evaluate the alerts at all.
    pub enabled: bool,
    /// Time between two evaluation rounds.
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
    /// Runbook page the alerts link to; `#alertname` is appended.
    pub runbook_base: String,
    /// Fraction of requests that must succeed (availability objective).
    pub availability: f64,
    /// Fraction of requests whose first token must come within `ttft_seconds`.
    pub ttft_objective: f64,
    /// The TTFT threshold: a bucket bound the engines export (vLLM and SGLang have 1.0).
    pub ttft_seconds: f64,
    /// An Alertmanager's base URL (e.g. `http://127.0.0.1:9093`): firing and resolved alerts
    /// go to its v2 API, resent every minute as Prometheus does. None by default.
    pub alertmanager_url: Option<String>,
    /// A URL that gets the same alerts as `POST {"alerts": [...]}`. None by default.
    pub webhook_url: Option<String>,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        AlertingConfig {
            enabled: true,
            interval: Duration::from_secs(15),
            runbook_base: "docs/runbook.md".into(),
            availability: 0.99,
            ttft_objective: 0.99,
            ttft_seconds: 1.0,
            alertmanager_url: None,
            webhook_url: None,
        }
    }
}

/// The proxy inside `up`: the same proxy as `llmwatch proxy`, with the same settings (each
/// one left out keeps that command's default).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Address the proxy serves its clients on. Loopback by default.
    #[serde(default = "default_proxy_listen")]
    pub listen: String,
    /// Upstreams, each `URL[,models=a|b]` as for `llmwatch proxy --upstream`.
    pub upstream: Vec<String>,
    /// PEM file of CA certificates trusted for `https://` upstreams besides the system's.
    #[serde(default)]
    pub upstream_ca: Option<std::path::PathBuf>,
    /// Connecting to an upstream (default 5s).
    #[serde(default, deserialize_with = "optional_duration")]
    pub connect_timeout: Option<Duration>,
    /// From sending a request to the upstream's response head (default 120s).
    #[serde(default, deserialize_with = "optional_duration")]
    pub first_byte_timeout: Option<Duration>,
    /// Longest gap between chunks of an answer (default 60s).
    #[serde(default, deserialize_with = "optional_duration")]
    pub idle_timeout: Option<Duration>,
    /// A whole request (default 600s).
    #[serde(default, deserialize_with = "optional_duration")]
    pub total_timeout: Option<Duration>,
    /// Largest request body accepted, in bytes; 413 beyond (default 8 MiB).
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
    /// Add `stream_options.include_usage` to streams whose client did not ask for usage
    /// (default true).
    #[serde(default)]
    pub inject_usage: Option<bool>,
    /// Distinct model labels kept; later models are labelled `other` (default 32).
    #[serde(default)]
    pub max_models: Option<usize>,
}

impl Default for ProxyConfig {
    fn default() -> ProxyConfig {
        ProxyConfig {
            listen: default_proxy_listen(),
            upstream: Vec::new(),
            upstream_ca: None,
            connect_timeout: None,
            first_byte_timeout: None,
            idle_timeout: None,
            total_timeout: None,
            max_body_bytes: None,
            inject_usage: None,
            max_models: None,
        }
    }
}

/// Time limits for the proxy given on the command line; each one given replaces the
/// configuration file's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyTimeouts {
    /// `--proxy-connect-timeout`.
    pub connect: Option<Duration>,
    /// `--proxy-first-byte-timeout`.
    pub first_byte: Option<Duration>,
    /// `--proxy-idle-timeout`.
    pub idle: Option<Duration>,
    /// `--proxy-total-timeout`.
    pub total: Option<Duration>,
}

impl ProxyConfig {
    /// Applies the time limits given on the command line.
    pub fn apply(&mut self, given: ProxyTimeouts) {
        self.connect_timeout = given.connect.or(self.connect_timeout);
        self.first_byte_timeout = given.first_byte.or(self.first_byte_timeout);
        self.idle_timeout = given.idle.or(self.idle_timeout);
        self.total_timeout = given.total.or(self.total_timeout);
    }
}

/// The proxy's default address.
pub fn default_proxy_listen() -> String {
    "127.0.0.1:4000".into()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:9464".into(),
            scrape: ScrapeConfig::default(),
            history: HistoryConfig::default(),
            auth: None,
            targets: Vec::new(),
            file_sd: Vec::new(),
            file_sd_refresh: Duration::from_secs(5),
            proxy: None,
            alerting: AlertingConfig::default(),
            otlp: OtlpTomlConfig::default(),
        }
    }
}

/// Scrape behaviour for every target (a target may override interval and timeout).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ScrapeConfig {
    /// Time between two scrapes of one target. Each target starts at a random offset within
    /// the first interval, so scrapes spread out.
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
    /// Longest a scrape may take, connection to last byte; a target that trickles bytes
    /// forever fails at this point.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// Largest body accepted, in bytes (Prometheus' `body_size_limit`).
    pub max_body_bytes: usize,
    /// Most samples one scrape may hold (Prometheus' `sample_limit`).
    pub max_samples: usize,
    /// Most labels one sample may carry (Prometheus' `label_limit`).
    pub max_labels: usize,
    /// Ask the engine's info endpoint (`/version`, `/info`, `/props`, `/server_info`) for its
    /// exact version and model when the engine is first seen or changes.
    pub probe_version: bool,
    /// Keep each target's connection open between scrapes. Open connections cost memory
    /// (about 40 MB more RSS at 1,000 targets, measured): with many targets, `false` saves it
    /// for a little CPU (docs/benchmarks.md).
    pub keep_alive: bool,
    /// Read the CPU time and resident memory of engines on this machine (targets on a
    /// loopback address) from `/proc`: the process listening on the port and its children.
    pub processes: bool,
    /// Read this machine's NVIDIA GPUs through NVML (the driver's library, opened when `up`
    /// starts; without it `up` says "no NVIDIA driver" once and goes on). They appear as the
    /// target `nvml`, attached to local engines whose processes hold their memory.
    pub nvml: bool,
}

impl Default for ScrapeConfig {
    fn default() -> Self {
        ScrapeConfig {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(3),
            max_body_bytes: 16 << 20,
            max_samples: 50_000,
            max_labels: 64,
            probe_version: true,
            keep_alive: true,
            processes: true,
            nvml: true,
        }
    }
}

/// The in-memory history behind `/api/v1/history`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// How far back history reaches, at the scrape interval.
    #[serde(deserialize_with = "duration")]
    pub retention: Duration,
    /// Upper bound on the memory all history may use, in bytes. With many targets, each
    /// keeps fewer points rather than exceed it.
    pub max_bytes: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            retention: Duration::from_secs(3600),
            max_bytes: 128 << 20,
        }
    }
}

/// Credentials for llmwatch's own HTTP server: a bearer token, HTTP basic, or both.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// `Authorization: Bearer TOKEN`.
    pub bearer_token: Option<String>,
    /// `Authorization: Basic …` user name.
    pub username: Option<String>,
    /// `Authorization: Basic …` password.
    pub password: Option<String>,
}

/// One engine to scrape.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// The engine's base URL (`/metrics` is added) or its metrics URL.
    pub url: String,
    /// The `instance` label of its series; `host:port` of the URL by default.
    pub name: Option<String>,
    /// Static labels added to every series of this target, e.g. `{ service = "chat" }`.
    /// Not `engine`, `model`, `instance`, `outcome` or `le`, which llmwatch sets.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Overrides `scrape.interval`.
    #[serde(default, deserialize_with = "optional_duration")]
    pub interval: Option<Duration>,
    /// Overrides `scrape.timeout`.
    #[serde(default, deserialize_with = "optional_duration")]
    pub timeout: Option<Duration>,
    /// Sent as `Authorization: Bearer …` (llama.cpp with `--api-key` guards `/metrics`).
    pub bearer_token: Option<String>,
    /// Model name for engines whose series carry none (TGI, llama.cpp) when the info
    /// endpoint does not say.
    pub model: Option<String>,
    /// Also serve this engine's own series on `/metrics` (with `instance` and the static
    /// labels added), for scraping everything through llmwatch.
    #[serde(default)]
    pub raw: bool,
    /// GPUs this engine uses, by UUID (`GPU-…` or without the prefix, any case): a GPU
    /// exporter's numbers for them are attributed to this engine when the exporter's own
    /// pod labels do not say.
    #[serde(default)]
    pub gpus: Vec<String>,
}

impl TargetConfig {
    /// A target with only its URL set; everything else takes the defaults.
    pub fn for_url(url: String) -> TargetConfig {
        TargetConfig {
            url,
            name: None,
            labels: BTreeMap::new(),
            interval: None,
            timeout: None,
            bearer_token: None,
            model: None,
            raw: false,
            gpus: Vec::new(),
        }
    }
}

fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    crate::cli::parse_duration(&text).map_err(serde::de::Error::custom)
}

fn optional_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Config::parse(path, &text)
    }

    /// Parses and checks configuration text; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map_or((1, 1), |span| line_column(text, span.start));
            ConfigError::Syntax {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().to_string(),
            }
        })?;
        config.check(path)?;
        Ok(config)
    }

    fn check(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |field: String, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            field,
            message,
        };
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "listen".into(),
                format!("{:?} is not an address such as 127.0.0.1:9464", self.listen),
            ));
        }
        if self.scrape.interval.is_zero() || self.scrape.timeout.is_zero() {
            return Err(invalid(
                "scrape".into(),
                "interval and timeout must be above zero".into(),
            ));
        }
        for (i, target) in self.targets.iter().enumerate() {
            crate::collect::targets::Target::from_config(target, &self.scrape)
                .map_err(|e| invalid(format!("target[{i}]"), e.to_string()))?;
        }
        let a = &self.alerting;
        for (field, value) in [
            ("availability", a.availability),
            ("ttft_objective", a.ttft_objective),
        ] {
            if !(value > 0.0 && value < 1.0) {
                return Err(invalid(
                    format!("alerting.{field}"),
                    format!("{value} is not a fraction between 0 and 1, e.g. 0.99"),
                ));
            }
        }
        if a.interval.is_zero() || a.ttft_seconds.is_nan() || a.ttft_seconds <= 0.0 {
            return Err(invalid(
                "alerting".into(),
                "interval and ttft_seconds must be above zero".into(),
            ));
        }
        Ok(())
    }
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests;
