//! What a benchmark shows while it runs: a progress line on a terminal and, when asked, the
//! client metrics on a `/metrics` endpoint (the same names the proxy serves).

use std::sync::Arc;
use std::time::Instant;

use super::BenchError;
use super::report::Aggregate;
use super::request::{self, Timing};

/// Model label values a run's live metrics keep (the answering models: a run asks for
/// one), the rest folded into `other`.
const MAX_MODELS: usize = 16;

/// One progress line on a terminal: elapsed time, requests done per second, in flight,
/// errors, and TTFT p50/p99 so far.
pub fn progress(aggregate: &Aggregate, in_flight: usize, start: Instant) {
    let elapsed = start.elapsed().as_secs_f64().max(0.001);
    let ms = |q| {
        aggregate
            .quantile("ttft", q)
            .map_or_else(|| "-".into(), |v| format!("{:.0}", v * 1e3))
    };
    let line = format!(
        "\r{elapsed:>6.0} s  {:>8.1} req/s done  {in_flight:>5} in flight  {:>5} errors  TTFT p50 {} ms p99 {} ms   ",
        aggregate.sent as f64 / elapsed,
        aggregate.errors(),
        ms(0.5),
        ms(0.99),
    );
    eprintln_progress(&line);
}

pub fn eprintln_progress(text: &str) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

/// The live client metrics, when the run serves them (`metrics_listen`) or pushes them
/// over OTLP, and the exporter to finish once the run ends.
pub async fn start(
    options: &super::BenchOptions,
) -> Result<
    (
        Option<crate::client_metrics::ClientMetrics>,
        Option<Exporter>,
    ),
    BenchError,
> {
    if options.metrics_listen.is_none() && options.otlp.is_none() {
        return Ok((None, None));
    }
    let (metrics, mut registry) = crate::client_metrics::ClientMetrics::registered(MAX_MODELS);
    let stats = options
        .otlp
        .as_ref()
        .map(|_| crate::otlp::push::ExportStats::registered(&mut registry, false));
    let registry = Arc::new(registry);
    if let Some(addr) = &options.metrics_listen {
        serve_metrics(addr, registry.clone()).await?;
    }
    let exporter = options.otlp.clone().zip(stats).map(|(config, stats)| {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let source = registry.clone();
        let task = tokio::spawn(crate::otlp::push::run_metrics_until(
            config,
            Arc::new(move || render(&source)),
            stats,
            async move {
                let _ = stopped.await;
            },
        ));
        Exporter { stop, task }
    });
    Ok((Some(metrics), exporter))
}

/// The OTLP exporter of a run.
pub struct Exporter {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Exporter {
    /// Makes the last export (what the whole run measured) and waits for it.
    pub async fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

fn render(registry: &prometheus_client::registry::Registry) -> String {
    let mut body = String::new();
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut body, registry);
    body
}

/// Serves `registry` (the client metrics) on `addr` for the rest of the process.
async fn serve_metrics(
    addr: &str,
    registry: Arc<prometheus_client::registry::Registry>,
) -> Result<(), BenchError> {
    let listener =
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|error| BenchError::Metrics {
                addr: addr.to_string(),
                error,
            })?;
    let bound = listener.local_addr().map_err(|error| BenchError::Metrics {
        addr: addr.to_string(),
        error,
    })?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = registry.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                    )],
                    render(&registry),
                )
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    eprintln_progress(&format!("bench: live metrics on http://{bound}/metrics\n"));
    Ok(())
}

/// The status class a request's outcome implies (the bench keeps no status codes).
fn status_class(error: Option<request::ErrorClass>) -> &'static str {
    use request::ErrorClass::*;
    match error {
        None | Some(MidStream | Incomplete | Invalid) => "2xx",
        Some(RateLimited | Http4xx) => "4xx",
        Some(Http5xx) => "5xx",
        Some(Connect | Timeout) => "none",
    }
}

/// Records one finished request in the live client metrics.
pub fn observe(
    m: &crate::client_metrics::ClientMetrics,
    op: &crate::client_metrics::Operation,
    t: &Timing,
) {
    let outcome = t.error.map_or("ok", request::ErrorClass::as_str);
    m.outcomes
        .get_or_create(&crate::client_metrics::OutcomeLabels {
            gen_ai_request_model: op.gen_ai_request_model.clone(),
            outcome: outcome.to_string(),
            http_status_class: status_class(t.error).to_string(),
        })
        .inc();
    let Some(sent) = t.sent else { return };
    let secs = |a: Instant, b: Instant| b.saturating_duration_since(a).as_secs_f64();
    let response_label = t.response_model.as_deref().map(|name| m.models.label(name));
    let error_type = t.error.map(request::ErrorClass::as_str);
    let completion =
        crate::client_metrics::Completion::new(op.clone(), response_label.clone(), error_type);
    if let Some(end) = t.end {
        m.duration
            .get_or_create(&completion)
            .observe(secs(sent, end));
    }
    if let Some(first) = t.first_chunk {
        m.first_chunk
            .get_or_create(&completion)
            .observe(secs(sent, first));
    }
    if let Some(first) = t.content.first() {
        m.first_content
            .get_or_create(op)
            .observe(secs(sent, *first));
    }
    if t.content.len() > 1 {
        let per_chunk = t.tokens_per_chunk();
        let (chunk_gaps, token_gaps) = (
            m.per_chunk.get_or_create(&completion),
            m.per_token.get_or_create(op),
        );
        for pair in t.content.windows(2) {
            let gap = secs(pair[0], pair[1]);
            chunk_gaps.observe(gap);
            token_gaps.observe(gap / per_chunk);
        }
    }
    for (kind, n) in [("input", t.input_tokens), ("output", t.output_tokens)] {
        if let Some(n) = n {
            let labels = crate::client_metrics::TokenLabels {
                gen_ai_operation_name: op.gen_ai_operation_name.clone(),
                gen_ai_request_model: op.gen_ai_request_model.clone(),
                gen_ai_response_model: response_label.clone(),
                gen_ai_token_type: kind.to_string(),
            };
            m.tokens.get_or_create(&labels).observe(n as f64);
        }
    }
}
