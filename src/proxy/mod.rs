//! `llmwatch proxy`: an OpenAI-compatible streaming reverse proxy that measures what the
//! client experiences — time to the first content token, inter-token latency, tokens, and
//! how each request ended — and serves it on `/metrics` with the client-side metric names the
//! load generator uses. Streams are relayed event by event, never buffered; prompts and
//! completions are never logged or stored.

mod body;
pub mod exemplars;
mod forward;
mod incoming;
pub mod metrics;
mod observe;
pub mod recent;
mod series;
mod serve;
mod span;
pub mod upstream;

use std::sync::Arc;
use std::time::Duration;

use upstream::Upstream;

use crate::client_metrics::KeyBuild;

/// How a proxied request ended (the `outcome` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The answer ended normally.
    Completed,
    /// It stopped at `max_tokens`.
    Length,
    /// The upstream failed: refused, 5xx.
    UpstreamError,
    /// The stream failed after HTTP 200: an error event, or cut before its end.
    StreamError,
    /// The client went away first.
    ClientDisconnect,
    /// A connect, first-byte, between-chunk or total timeout.
    Timeout,
    /// HTTP 429 from the upstream.
    RateLimited,
    /// A 4xx other than 429, from the upstream or the proxy (bad JSON, too big, no route).
    ClientError,
}

impl Outcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Length => "length",
            Outcome::UpstreamError => "upstream_error",
            Outcome::StreamError => "stream_error",
            Outcome::ClientDisconnect => "client_disconnect",
            Outcome::Timeout => "timeout",
            Outcome::RateLimited => "rate_limited",
            Outcome::ClientError => "client_error",
        }
    }

    /// `error.type` for an outcome that is a failure: every one but an answer that ended
    /// by itself or at `max_tokens`.
    pub fn error_type(self) -> Option<&'static str> {
        match self {
            Outcome::Completed | Outcome::Length => None,
            failed => Some(failed.as_str()),
        }
    }
}

/// The proxy's settings.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// Largest request body accepted (413 beyond).
    pub max_body_bytes: usize,
    /// Connecting to an upstream.
    pub connect_timeout: Duration,
    /// From sending the request to the response head.
    pub first_byte_timeout: Duration,
    /// Longest gap between chunks of an answer.
    pub idle_timeout: Duration,
    /// The whole request.
    pub total_timeout: Duration,
    /// Ask for usage on streams whose client did not, and remove it from what they receive.
    pub inject_usage: bool,
    /// Distinct model labels kept; later ones fold into `other`.
    pub max_models: usize,
    /// PEM certificates trusted for HTTPS upstreams besides the system's roots.
    pub upstream_ca: Option<std::path::PathBuf>,
}

impl Default for ProxyOptions {
    fn default() -> ProxyOptions {
        ProxyOptions {
            max_body_bytes: 8 << 20,
            connect_timeout: Duration::from_secs(5),
            first_byte_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(60),
            total_timeout: Duration::from_secs(600),
            inject_usage: true,
            max_models: 32,
            upstream_ca: None,
        }
    }
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No upstream given.
    #[error("no upstream: give --upstream URL[,models=a|b]")]
    NoUpstream,
    /// A bad upstream argument.
    #[error("{0}")]
    BadUpstream(String),
    /// The HTTP client could not be built.
    #[error("cannot build the upstream client: {0}")]
    Client(String),
    /// The upstream CA file could not be read or holds no certificate.
    #[error("upstream CA {path}: {reason}")]
    Ca {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// What the handlers share.
pub struct Proxy {
    upstreams: Vec<Upstream>,
    client: reqwest::Client,
    options: ProxyOptions,
    metrics: Arc<metrics::ProxyMetrics>,
    registry: prometheus_client::registry::Registry,
    /// The running totals copied every few seconds, for windowed views.
    recent: recent::Recent,
    /// Where request spans go, when traces are exported.
    tracer: Option<Arc<crate::otlp::trace::Tracer>>,
}

pub use recent::Totals;

impl Proxy {
    /// A proxy to `upstreams` (each `URL[,models=a|b]`).
    pub fn new(upstreams: &[String], options: ProxyOptions) -> Result<Proxy, ProxyError> {
        if upstreams.is_empty() {
            return Err(ProxyError::NoUpstream);
        }
        let upstreams = upstreams
            .iter()
            .map(|u| Upstream::parse(u, options.connect_timeout))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ProxyError::BadUpstream)?;
        let client = upstream_client(&options)?;
        let (metrics, registry) = metrics::ProxyMetrics::registered(options.max_models);
        Ok(Proxy {
            upstreams,
            client,
            options,
            metrics: Arc::new(metrics),
            registry,
            recent: recent::Recent::default(),
            tracer: None,
        })
    }

    /// Registers the OTLP exporter's counters beside the proxy's metrics (before the proxy
    /// is shared), so `/metrics` shows how exports go.
    pub fn register_otlp_stats(&mut self) -> crate::otlp::push::ExportStats {
        crate::otlp::push::ExportStats::registered(&mut self.registry, false)
    }

    /// `/metrics`: OpenMetrics with exemplars when the scraper's `Accept` asks for it, text
    /// 0.0.4 otherwise.
    pub fn metrics_response(&self, headers: &axum::http::HeaderMap) -> axum::response::Response {
        use axum::response::IntoResponse;
        let openmetrics = headers
            .get_all(axum::http::header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("application/openmetrics-text"));
        let text = self.render_metrics();
        let (content_type, body) = if openmetrics {
            (
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                self.metrics.exemplars.openmetrics(&text),
            )
        } else {
            (
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                text,
            )
        };
        ([(axum::http::header::CONTENT_TYPE, content_type)], body).into_response()
    }

    /// The upstream's base URL when there is only one.
    pub fn single_upstream(&self) -> Option<&str> {
        match self.upstreams.as_slice() {
            [one] => Some(one.base.as_str()),
            _ => None,
        }
    }

    /// Exports a span per measured request through `tracer` (before the proxy is shared).
    pub fn set_tracer(&mut self, tracer: crate::otlp::trace::Tracer) {
        self.tracer = Some(Arc::new(tracer));
    }

    /// Copies the running totals for [`Proxy::ttft_over`] and [`Proxy::outcome_rates`].
    pub fn snapshot_totals(&self) {
        self.recent.push(
            std::time::Instant::now(),
            recent::Snapshot {
                ttft: self.metrics.ttft_totals(),
                outcomes: self.metrics.outcome_totals(),
            },
        );
    }

    /// Sum and count of client time to first content per model over about the last
    /// `window` (from the oldest copy inside it to now).
    pub fn ttft_over(&self, window: Duration) -> Totals {
        self.recent.ttft_over(self.metrics.ttft_totals(), window)
    }

    /// Requests through the proxy for `model` (its label) by outcome, per second: over
    /// `window` seconds and over the `step` before each of `times` (Unix seconds).
    pub fn outcome_rates(
        &self,
        model: &str,
        grid: (&[f64], f64, f64),
        now_unix: f64,
    ) -> Vec<recent::OutcomeRate> {
        let current = self.metrics.outcome_totals();
        self.recent.outcome_rates(&current, model, grid, now_unix)
    }

    /// The Prometheus text of the proxy's metrics.
    pub fn render_metrics(&self) -> String {
        let mut text = String::new();
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry);
        text
    }
}

/// The client for upstreams the lean client does not take: HTTPS (HTTP/2 when the server
/// offers it by ALPN, else HTTP/1.1) and host names.
fn upstream_client(options: &ProxyOptions) -> Result<reqwest::Client, ProxyError> {
    crate::collect::fetch::install_tls_provider();
    let builder = reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        .tcp_nodelay(true)
        .pool_max_idle_per_host(usize::MAX)
        .redirect(reqwest::redirect::Policy::none());
    let builder = match &options.upstream_ca {
        None => builder,
        Some(path) => with_ca(builder, path)?,
    };
    builder
        .build()
        .map_err(|e| ProxyError::Client(crate::collect::fetch::flatten_error(&e)))
}

fn with_ca(
    builder: reqwest::ClientBuilder,
    path: &std::path::Path,
) -> Result<reqwest::ClientBuilder, ProxyError> {
    crate::collect::fetch::trusting(builder, path).map_err(|reason| ProxyError::Ca {
        path: path.to_path_buf(),
        reason,
    })
}

pub use serve::{check_head, route, serve};

#[cfg(test)]
mod tests;
