//! OpenTelemetry export over OTLP (HTTP/protobuf, or gRPC). Every llmwatch process that serves
//! Prometheus metrics can also push them to an OTLP endpoint (an OpenTelemetry Collector,
//! or any backend that takes OTLP): the same numbers, taken from the same registry at the
//! same moment, under OpenTelemetry names (`metrics`). Off unless an endpoint is
//! configured; `/metrics` is unchanged either way.
//!
//! Configuration comes from flags and the TOML config, else the standard environment:
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_METRICS_ENDPOINT`), `…_HEADERS`, `…_TIMEOUT`,
//! `…_PROTOCOL` (`http/protobuf` or `grpc`), `…_METRICS_TEMPORALITY_PREFERENCE`,
//! `OTEL_METRIC_EXPORT_INTERVAL`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` and
//! `OTEL_SDK_DISABLED`.

pub mod grpc;
pub mod metrics;
pub mod proto;
pub mod push;
pub mod trace;

use std::time::Duration;

use proto::Message;

/// Why an OTLP configuration is refused.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    /// A setting that cannot be used.
    #[error("{setting}: {problem}")]
    Setting {
        /// The flag or environment variable.
        setting: String,
        /// What is wrong with it.
        problem: String,
    },
}

fn setting_error(setting: &str, problem: impl Into<String>) -> OtlpError {
    OtlpError::Setting {
        setting: setting.to_string(),
        problem: problem.into(),
    }
}

/// How sums and histograms relate to time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Temporality {
    /// Totals since the process started (what Prometheus stores).
    Cumulative,
    /// Changes since the previous export (what some backends ask for).
    Delta,
}

/// How exports travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// A protobuf body POSTed to `…/v1/metrics` and `…/v1/traces` (port 4318 by custom).
    HttpProtobuf,
    /// A unary gRPC call of the collector services (port 4317 by custom): HTTP/2, in clear
    /// text to `http://` endpoints and over TLS to `https://` ones.
    Grpc,
}

impl Protocol {
    /// `http/protobuf` or `grpc`, as `OTEL_EXPORTER_OTLP_PROTOCOL` and `--otlp-protocol`
    /// write them; `setting` names where it came from, for the error.
    fn parse(setting: &str, text: &str) -> Result<Protocol, OtlpError> {
        match text.trim() {
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            "grpc" => Ok(Protocol::Grpc),
            other => Err(setting_error(
                setting,
                format!("{other:?} is not supported; use http/protobuf or grpc"),
            )),
        }
    }

    /// The URL a signal's exports go to: `…/v1/metrics` under an OTLP/HTTP base URL, the
    /// service's method under a gRPC endpoint. `full` is a signal's own endpoint setting,
    /// which OTLP/HTTP takes as it is and gRPC, like the SDKs, as the server to call.
    fn signal_url(self, base: &str, signal: &str, full: bool) -> String {
        let base = base.trim();
        match self {
            Protocol::HttpProtobuf if full => base.to_string(),
            Protocol::HttpProtobuf => format!("{}/v1/{signal}", base.trim_end_matches('/')),
            Protocol::Grpc => grpc::method_url(base, signal),
        }
    }
}

/// The resource every export describes: this process.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// Attributes, `service.name` first.
    pub attributes: Vec<(String, String)>,
}

impl Resource {
    /// `opentelemetry.proto.resource.v1.Resource`.
    pub fn message(&self) -> Message {
        let mut m = Message::new();
        for (k, v) in &self.attributes {
            m.string_kv(1, k, v);
        }
        m
    }
}

/// Where and how to push metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpConfig {
    /// The full URL metrics are posted to (`…/v1/metrics`, or the gRPC method).
    pub metrics_url: String,
    /// OTLP/HTTP or gRPC.
    pub protocol: Protocol,
    /// A PEM file of CA certificates trusted for an `https://` endpoint besides the
    /// system's roots.
    pub ca: Option<std::path::PathBuf>,
    /// Headers sent with every export (for example an API key).
    pub headers: Vec<(String, String)>,
    /// How long one export may take.
    pub timeout: Duration,
    /// How often metrics are exported.
    pub interval: Duration,
    /// Cumulative or delta sums and histograms.
    pub temporality: Temporality,
    /// This process.
    pub resource: Resource,
    /// Spans (the proxy's), when the endpoint takes them.
    pub traces: Option<trace::TraceConfig>,
    /// Attributes the GenAI conventions ask for that the Prometheus labels do not carry
    /// (`gen_ai.provider.name`, `server.address`, `server.port`), added to every point of the
    /// `gen_ai.*` metrics.
    pub gen_ai: Vec<(&'static str, trace::Value)>,
}

impl OtlpConfig {
    /// Adds `server.address` and `server.port` of `url` (the server the client metrics
    /// measure: the bench's target, the proxy's one upstream) to the `gen_ai.*` metrics.
    pub fn with_server(mut self, url: &str) -> OtlpConfig {
        let (host, port) = trace::host_and_port(url);
        self.gen_ai
            .push(("server.address", trace::Value::Str(host)));
        if let Some(port) = port {
            self.gen_ai
                .push(("server.port", trace::Value::Int(i64::from(port))));
        }
        self
    }
}

/// What flags or the TOML config say; anything unset falls back to the environment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OtlpSettings {
    /// Base URL of the OTLP endpoint (`/v1/metrics` is added), e.g. `http://127.0.0.1:4318`.
    pub endpoint: Option<String>,
    /// Export interval.
    pub interval: Option<Duration>,
    /// `cumulative` or `delta`.
    pub temporality: Option<String>,
    /// `service.name` when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES` names one.
    pub default_service: String,
    /// Share of new traces sampled (default `OTEL_TRACES_SAMPLER`/`…_ARG`, else all).
    pub trace_ratio: Option<f64>,
    /// Spans of requests at least this long are kept whatever the ratio (default 10s).
    pub keep_slower_than: Option<Duration>,
    /// `gen_ai.provider.name` on the client metrics and spans.
    pub provider: Option<String>,
    /// `http/protobuf` or `grpc` (default `OTEL_EXPORTER_OTLP_PROTOCOL`, else `http/protobuf`).
    pub protocol: Option<String>,
    /// CA certificates (PEM) for an `https://` endpoint (default
    /// `OTEL_EXPORTER_OTLP_CERTIFICATE`).
    pub certificate: Option<std::path::PathBuf>,
}

impl OtlpSettings {
    /// The configuration, or `None` when OTLP is off (no endpoint anywhere, or
    /// `OTEL_SDK_DISABLED=true`). `env` reads one environment variable.
    pub fn resolve(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<OtlpConfig>, OtlpError> {
        let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let base = self
            .endpoint
            .clone()
            .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"));
        let protocol = self.protocol("METRICS", &env)?;
        let metrics_url = match (&self.endpoint, env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")) {
            (None, Some(full)) => protocol.signal_url(&full, "metrics", true),
            _ => match &base {
                Some(base) => protocol.signal_url(base, "metrics", false),
                None => return Ok(None),
            },
        };
        if !(metrics_url.starts_with("http://") || metrics_url.starts_with("https://")) {
            return Err(setting_error(
                "OTLP endpoint",
                format!("{metrics_url:?} is not an http:// or https:// URL"),
            ));
        }
        let mut headers = parse_pairs(
            "OTEL_EXPORTER_OTLP_HEADERS",
            &env("OTEL_EXPORTER_OTLP_HEADERS").unwrap_or_default(),
        )?;
        headers.extend(parse_pairs(
            "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
            &env("OTEL_EXPORTER_OTLP_METRICS_HEADERS").unwrap_or_default(),
        )?);
        let millis = |name: &str| -> Result<Option<Duration>, OtlpError> {
            env(name)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map(Duration::from_millis)
                        .map_err(|_| setting_error(name, format!("{v:?} is not milliseconds")))
                })
                .transpose()
        };
        let timeout = millis("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT")?
            .or(millis("OTEL_EXPORTER_OTLP_TIMEOUT")?)
            .unwrap_or(Duration::from_secs(10));
        let interval = match self.interval {
            Some(i) => i,
            None => millis("OTEL_METRIC_EXPORT_INTERVAL")?.unwrap_or(Duration::from_secs(60)),
        };
        if interval.is_zero() || timeout.is_zero() {
            return Err(setting_error(
                "OTLP interval and timeout",
                "must be above zero",
            ));
        }
        let temporality = self
            .temporality
            .clone()
            .or_else(|| env("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"));
        let temporality = match temporality.as_deref().map(str::trim) {
            None => Temporality::Cumulative,
            Some(t) if t.eq_ignore_ascii_case("cumulative") => Temporality::Cumulative,
            // `lowmemory` asks for delta sums of counters and histograms, as `delta` does
            // for the instruments llmwatch has.
            Some(t) if t.eq_ignore_ascii_case("delta") || t.eq_ignore_ascii_case("lowmemory") => {
                Temporality::Delta
            }
            Some(t) => {
                return Err(setting_error(
                    "temporality",
                    format!("{t:?} is not cumulative, delta or lowmemory"),
                ));
            }
        };
        let ca = self.certificate(&env)?;
        let resource = self.resource(&env)?;
        let transport = (headers.as_slice(), timeout, ca.as_deref());
        let traces = self.traces(&env, base.as_deref(), transport, &resource)?;
        let gen_ai = self
            .provider
            .iter()
            .map(|p| ("gen_ai.provider.name", trace::Value::Str(p.clone())))
            .collect();
        Ok(Some(OtlpConfig {
            metrics_url,
            protocol,
            ca,
            headers,
            timeout,
            interval,
            temporality,
            resource,
            traces,
            gen_ai,
        }))
    }

    /// Spans go to `…/v1/traces` of the same endpoint (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
    /// unless `OTEL_TRACES_EXPORTER=none`, sampled as `OTEL_TRACES_SAMPLER` says (the
    /// parent-based ratio sampler is the only kind: `always_on` is ratio 1, `always_off` 0).
    fn traces(
        &self,
        env: &impl Fn(&str) -> Option<String>,
        base: Option<&str>,
        (headers, timeout, ca): (&[(String, String)], Duration, Option<&std::path::Path>),
        resource: &Resource,
    ) -> Result<Option<trace::TraceConfig>, OtlpError> {
        if env("OTEL_TRACES_EXPORTER").is_some_and(|e| e.trim() == "none") {
            return Ok(None);
        }
        let protocol = self.protocol("TRACES", env)?;
        let url = match (env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), base) {
            (Some(full), None) => protocol.signal_url(&full, "traces", true),
            (_, Some(base)) => protocol.signal_url(base, "traces", false),
            (None, None) => return Ok(None),
        };
        let ratio = match self.trace_ratio {
            Some(r) => r,
            None => match env("OTEL_TRACES_SAMPLER").as_deref().map(str::trim) {
                None | Some("always_on" | "parentbased_always_on") => 1.0,
                Some("always_off" | "parentbased_always_off") => 0.0,
                Some("traceidratio" | "parentbased_traceidratio") => {
                    match env("OTEL_TRACES_SAMPLER_ARG") {
                        None => 1.0,
                        Some(arg) => arg.trim().parse::<f64>().map_err(|_| {
                            setting_error(
                                "OTEL_TRACES_SAMPLER_ARG",
                                format!("{arg:?} is not a number"),
                            )
                        })?,
                    }
                }
                Some(other) => {
                    return Err(setting_error(
                        "OTEL_TRACES_SAMPLER",
                        format!("{other:?} is not supported; use parentbased_traceidratio"),
                    ));
                }
            },
        };
        if !(0.0..=1.0).contains(&ratio) {
            return Err(setting_error(
                "trace ratio",
                format!("{ratio} is not from 0 to 1"),
            ));
        }
        Ok(Some(trace::TraceConfig {
            url,
            protocol,
            ca: ca.map(std::path::Path::to_path_buf),
            headers: headers.to_vec(),
            timeout,
            sampler: trace::Sampler {
                ratio,
                keep_slower_than: self.keep_slower_than.unwrap_or(Duration::from_secs(10)),
            },
            resource: resource.clone(),
            provider: self.provider.clone(),
        }))
    }

    /// The CA file to trust: the flag, else `OTEL_EXPORTER_OTLP_CERTIFICATE`; refused now,
    /// with its name, when it cannot be read or holds no certificate.
    fn certificate(
        &self,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<Option<std::path::PathBuf>, OtlpError> {
        let (setting, path) = match (&self.certificate, env("OTEL_EXPORTER_OTLP_CERTIFICATE")) {
            (Some(path), _) => ("--otlp-certificate", path.clone()),
            (None, Some(path)) => ("OTEL_EXPORTER_OTLP_CERTIFICATE", path.trim().into()),
            (None, None) => return Ok(None),
        };
        let _trusting = crate::collect::fetch::trusting(reqwest::Client::builder(), &path)
            .map_err(|reason| setting_error(setting, format!("{}: {reason}", path.display())))?;
        Ok(Some(path))
    }

    /// The protocol of `signal` (`METRICS`, `TRACES`): the flag or config, else the signal's
    /// own variable, else `OTEL_EXPORTER_OTLP_PROTOCOL`, else OTLP/HTTP.
    fn protocol(
        &self,
        signal: &str,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<Protocol, OtlpError> {
        if let Some(p) = &self.protocol {
            return Protocol::parse("OTLP protocol", p);
        }
        let own = format!("OTEL_EXPORTER_OTLP_{signal}_PROTOCOL");
        match (env(&own), env("OTEL_EXPORTER_OTLP_PROTOCOL")) {
            (Some(p), _) => Protocol::parse(&own, &p),
            (None, Some(p)) => Protocol::parse("OTEL_EXPORTER_OTLP_PROTOCOL", &p),
            (None, None) => Ok(Protocol::HttpProtobuf),
        }
    }

    fn resource(&self, env: &impl Fn(&str) -> Option<String>) -> Result<Resource, OtlpError> {
        let mut attributes = parse_pairs(
            "OTEL_RESOURCE_ATTRIBUTES",
            &env("OTEL_RESOURCE_ATTRIBUTES").unwrap_or_default(),
        )?;
        let service = env("OTEL_SERVICE_NAME")
            .map(|s| s.trim().to_string())
            .or_else(|| {
                attributes
                    .iter()
                    .find(|(k, _)| k == "service.name")
                    .map(|(_, v)| v.clone())
            })
            .unwrap_or_else(|| self.default_service.clone());
        attributes.retain(|(k, _)| k != "service.name");
        attributes.insert(0, ("service.name".to_string(), service));
        for (k, v) in [
            ("telemetry.sdk.name", "llmwatch"),
            ("telemetry.sdk.language", "rust"),
            ("telemetry.sdk.version", env!("CARGO_PKG_VERSION")),
        ] {
            if !attributes.iter().any(|(key, _)| key == k) {
                attributes.push((k.to_string(), v.to_string()));
            }
        }
        Ok(Resource { attributes })
    }
}

/// `k1=v1,k2=v2` with percent-encoded values, as the OTLP exporter specification writes
/// headers and resource attributes.
fn parse_pairs(setting: &str, text: &str) -> Result<Vec<(String, String)>, OtlpError> {
    text.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                setting_error(setting, format!("{:?} is not key=value", pair.trim()))
            })?;
            let k = k.trim();
            if k.is_empty() {
                return Err(setting_error(setting, "a key is empty"));
            }
            Ok((k.to_string(), percent_decode(v.trim())))
        })
        .collect()
}

/// `text` with its `%XX` escapes decoded (OTLP's header and resource settings, gRPC's
/// `grpc-message`); a malformed escape is kept as it is.
fn percent_decode(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Nanoseconds since the Unix epoch.
pub fn unix_nanos(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests;

/// The OTLP part of the metric reference (docs/metrics.md): the naming rules, the renamed
/// attributes and every client metric the proxy and the benchmark export, read from the
/// proxy's own registry so the list cannot drift from what is served.
pub fn reference_markdown() -> String {
    use std::fmt::Write as _;
    let mut out = String::from(
        "\n# OpenTelemetry (OTLP) names\n\n\
         With an OTLP endpoint configured (`--otlp-endpoint`, `[otlp]` in the config, or the\n\
         standard `OTEL_EXPORTER_OTLP_*` variables), `up`, `proxy` and `bench` push what their\n\
         `/metrics` shows over OTLP (HTTP/protobuf, or gRPC with `--otlp-protocol grpc`), with these names. The GenAI client\n\
         metrics take the semantic conventions' names, units and bucket bounds; every other\n\
         family keeps its words with its namespace written with dots (`llm_` → `llm.`,\n\
         `llm_proxy_` → `llm.proxy.`, `llm_gpu_` → `llm.gpu.`, `llmwatch_` → `llmwatch.`), a\n\
         counter's `_total` dropped and its unit suffix moved into the unit (`_seconds` → `s`,\n\
         `_bytes` → `By`), so Prometheus' own OTLP translation gives the Prometheus name back.\n\
         Counters are monotonic sums, histograms explicit-bucket histograms with the same\n\
         bounds; both cumulative unless delta is asked for. `up` leaves the engines' own\n\
         series (`raw = true`) out: their names are not OpenTelemetry names.\n\n\
         On the `gen_ai.*` client metrics the proxy and the benchmark add what the conventions\n\
         ask for and the labels lack: `gen_ai.provider.name` (from `--gen-ai-provider`; engines\n\
         on your own machines have no well-known name) and `server.address`/`server.port` (the\n\
         benchmark's target, the proxy's upstream when it has one).\n\n\
         Labels become attributes of the same name, except these:\n\n\
         | label | attribute |\n|---|---|\n",
    );
    for label in metrics::RENAMED_ATTRIBUTES {
        let _ = writeln!(out, "| `{label}` | `{}` |", metrics::otel_attribute(label));
    }
    out.push_str(
        "\n## Client metrics (proxy and bench)\n\n\
         | Prometheus | OTLP | unit | data |\n|---|---|---|---|\n",
    );
    let (m, registry) = crate::proxy::metrics::ProxyMetrics::registered(1);
    // A family shows on /metrics once it has a series: give each one.
    let model = || "m".to_string();
    let op = crate::client_metrics::Operation {
        gen_ai_operation_name: "chat".to_string(),
        gen_ai_request_model: model(),
    };
    let c = &m.client;
    let completion = crate::client_metrics::Completion::new(op.clone(), Some(model()), None);
    for histogram in [&c.duration, &c.first_chunk, &c.per_chunk] {
        histogram.get_or_create(&completion).observe(0.1);
    }
    for histogram in [&c.first_content, &c.per_token] {
        histogram.get_or_create(&op).observe(0.1);
    }
    c.tokens
        .get_or_create(&crate::client_metrics::TokenLabels {
            gen_ai_operation_name: "chat".to_string(),
            gen_ai_request_model: model(),
            gen_ai_response_model: Some(model()),
            gen_ai_token_type: "input".to_string(),
        })
        .observe(1.0);
    c.outcomes
        .get_or_create(&crate::client_metrics::OutcomeLabels {
            gen_ai_request_model: model(),
            outcome: "completed".to_string(),
            http_status_class: "2xx".to_string(),
        })
        .inc();
    let by_model = crate::proxy::metrics::ModelLabels {
        gen_ai_request_model: model(),
    };
    m.request_bytes.get_or_create(&by_model).inc();
    m.response_bytes.get_or_create(&by_model).inc();
    m.token_source
        .get_or_create(&crate::proxy::metrics::SourceLabels {
            gen_ai_request_model: model(),
            source: "usage".to_string(),
        })
        .inc();
    let mut text = String::new();
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry);
    if let Ok(exp) = crate::exposition::parse(&text, crate::exposition::Mode::Lenient) {
        for family in &exp.families {
            let (name, unit) = metrics::otel_name(family.name, family.kind);
            let data = match family.kind {
                crate::exposition::MetricType::Counter => "monotonic sum",
                crate::exposition::MetricType::Histogram => "histogram",
                _ => "gauge",
            };
            let _ = writeln!(out, "| `{}` | `{name}` | {unit} | {data} |", family.name);
        }
    }
    out
}
