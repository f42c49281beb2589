//! The metrics exporter: every interval it takes the process's Prometheus text, encodes it
//! and posts it, one export at a time on its own task, so the process it measures never
//! waits on it. A failed export is logged and counted and its data points are dropped
//! (cumulative sums carry on in the next export; delta sums are computed against the last
//! delivered one, so a later delta covers the gap). An endpoint answering 429 or 503 is
//! left alone for its `Retry-After` (at most five minutes).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::metrics::MetricsEncoder;
use super::{OtlpConfig, Protocol, unix_nanos};

/// Labels of the export counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExportLabels {
    /// `metrics` (and `traces` for the proxy's spans).
    pub signal: String,
    /// `ok`, `throttled` (429 or 503), `rejected` (another 4xx), `server_error` (5xx) or
    /// `unreachable` (no answer in time).
    pub result: String,
}

/// The exporter's self-metrics, on the process's `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct ExportStats {
    /// Exports by signal and result.
    pub exports: Family<ExportLabels, Counter>,
    /// Data points (metrics) or spans (traces) dropped: in failed exports, or a full queue.
    pub dropped: Family<ExportLabels, Counter>,
}

impl ExportStats {
    /// The counters, registered in `registry` as `llmwatch_otlp_…`; `prefixed` says the
    /// registry adds `llmwatch_` itself (`up`'s self-metrics do).
    pub fn registered(registry: &mut Registry, prefixed: bool) -> ExportStats {
        let stats = ExportStats::default();
        let name = |n: &str| {
            if prefixed {
                n.to_string()
            } else {
                format!("llmwatch_{n}")
            }
        };
        registry.register(
            name("otlp_exports"),
            "OTLP exports by signal and result",
            stats.exports.clone(),
        );
        registry.register(
            name("otlp_dropped"),
            "Data points or spans dropped: in failed OTLP exports, or a full queue",
            stats.dropped.clone(),
        );
        stats
    }
}

/// One export's result: logged once and counted once.
pub struct Exported<'a> {
    /// `metrics` or `traces`.
    pub signal: &'static str,
    /// See [`ExportLabels::result`].
    pub result: &'static str,
    /// Data points or spans it carried.
    pub items: usize,
    /// The endpoint's status or the transport error, for the log.
    pub detail: &'a str,
}

impl Exported<'_> {
    /// Logs the export (a warning when it failed) and counts it.
    pub fn emit(&self, stats: &ExportStats) {
        let labels = ExportLabels {
            signal: self.signal.to_string(),
            result: self.result.to_string(),
        };
        stats.exports.get_or_create(&labels).inc();
        if self.result == "ok" {
            tracing::debug!(
                signal = self.signal,
                items = self.items,
                "OTLP export delivered"
            );
        } else {
            tracing::warn!(
                signal = self.signal,
                result = self.result,
                dropped = self.items,
                "OTLP export failed: {}",
                self.detail
            );
            stats
                .dropped
                .get_or_create(&labels)
                .inc_by(self.items as u64);
        }
    }
}

/// How an export went, and how long to leave the endpoint alone after it.
pub struct Posted {
    /// See [`ExportLabels::result`].
    pub result: &'static str,
    /// Status or error.
    pub detail: String,
    /// The endpoint's `Retry-After`, when it asked to be left alone.
    pub retry_after: Option<Duration>,
}

impl Posted {
    /// No answer came (refused, reset, timed out).
    pub fn unreachable(detail: String) -> Posted {
        Posted {
            result: "unreachable",
            detail,
            retry_after: None,
        }
    }

    /// What an HTTP status says of the export; `retry_after` counts only when it throttles.
    pub fn from_http(status: u16, retry_after: Option<Duration>) -> Posted {
        let result = match status {
            200..=299 => "ok",
            429 | 503 => "throttled",
            400..=499 => "rejected",
            _ => "server_error",
        };
        Posted {
            result,
            detail: format!("HTTP {status}"),
            retry_after: (result == "throttled").then_some(retry_after).flatten(),
        }
    }
}

/// The client exports over `protocol` go through, trusting the CA file `ca` too. A CA
/// file that cannot be read now (it was when the settings were resolved) is logged and left
/// out: exports to a private-CA endpoint then fail and are counted.
pub fn client(protocol: Protocol, ca: Option<&std::path::Path>) -> reqwest::Client {
    let builder = match protocol {
        Protocol::HttpProtobuf => reqwest::Client::builder(),
        Protocol::Grpc => reqwest::Client::builder().http2_prior_knowledge(),
    };
    let builder = match ca {
        None => builder,
        Some(path) => match crate::collect::fetch::trusting(builder, path) {
            Ok(trusting) => trusting,
            Err(reason) => {
                tracing::warn!(path = %path.display(), %reason, "OTLP: CA file left out");
                return client(protocol, None);
            }
        },
    };
    // Building fails only where the TLS backend cannot start, which `Client::new` (the
    // default) would not survive either; an export through it then fails and is counted.
    builder.build().unwrap_or_default()
}

/// Sends one OTLP body to `url` over `protocol`.
pub async fn post(
    (client, protocol): (&reqwest::Client, Protocol),
    url: &str,
    headers: &[(String, String)],
    timeout: Duration,
    body: Vec<u8>,
) -> Posted {
    match protocol {
        Protocol::HttpProtobuf => post_http(client, url, headers, timeout, body).await,
        Protocol::Grpc => super::grpc::post(client, url, headers, timeout, &body).await,
    }
}

/// Posts one OTLP/HTTP body to `url`.
async fn post_http(
    client: &reqwest::Client,
    url: &str,
    headers: &[(String, String)],
    timeout: Duration,
    body: Vec<u8>,
) -> Posted {
    let mut request = client
        .post(url)
        .timeout(timeout)
        .header("content-type", "application/x-protobuf")
        .body(body);
    for (k, v) in headers {
        request = request.header(k.as_str(), v.as_str());
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => return Posted::unreachable(crate::collect::fetch::flatten_error(&e)),
    };
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(300)));
    // Read the answer so the connection can be reused; its content is not needed.
    let _ = response.bytes().await;
    Posted::from_http(status.as_u16(), retry_after)
}

/// Exports `source()` (the process's Prometheus text) to the configured endpoint every
/// interval, until the task is dropped.
pub async fn run_metrics(
    config: OtlpConfig,
    source: Arc<dyn Fn() -> String + Send + Sync>,
    stats: ExportStats,
) {
    run_metrics_until(config, source, stats, std::future::pending()).await;
}

/// [`run_metrics`] until `stop` resolves, then one last export (a short-lived process, a
/// benchmark, would otherwise end before its first interval).
pub async fn run_metrics_until(
    config: OtlpConfig,
    source: Arc<dyn Fn() -> String + Send + Sync>,
    stats: ExportStats,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut exporter = MetricsExporter {
        client: client(config.protocol, config.ca.as_deref()),
        encoder: MetricsEncoder::new(config.temporality, unix_nanos(SystemTime::now()))
            .with_gen_ai_attributes(config.gen_ai.clone()),
        quiet_until: None,
        config,
        stats,
    };
    let mut ticks = tokio::time::interval(exporter.config.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is immediate: export one interval after start
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                if exporter.quiet_until.is_some_and(|t| Instant::now() < t) {
                    continue;
                }
                exporter.export(&source()).await;
            }
            () = &mut stop => {
                exporter.export(&source()).await;
                return;
            }
        }
    }
}

/// The state one export needs.
struct MetricsExporter {
    config: OtlpConfig,
    client: reqwest::Client,
    encoder: MetricsEncoder,
    /// Until when the endpoint asked to be left alone.
    quiet_until: Option<Instant>,
    stats: ExportStats,
}

impl MetricsExporter {
    async fn export(&mut self, text: &str) {
        let encoded =
            self.encoder
                .encode(text, unix_nanos(SystemTime::now()), &self.config.resource);
        let posted = post(
            (&self.client, self.config.protocol),
            &self.config.metrics_url,
            &self.config.headers,
            self.config.timeout,
            encoded.body,
        )
        .await;
        if posted.result == "ok" {
            self.encoder.delivered();
        }
        self.quiet_until = posted.retry_after.map(|d| Instant::now() + d);
        Exported {
            signal: "metrics",
            result: posted.result,
            items: encoded.points,
            detail: &posted.detail,
        }
        .emit(&self.stats);
    }
}
