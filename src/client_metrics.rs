//! Client-side metrics, shared by the load generator (and the proxy): the OpenTelemetry GenAI
//! client metrics rendered for Prometheus, with the semantic conventions' bucket boundaries,
//! and `llm_proxy_` metrics for what the conventions lack (time to first content token,
//! per-token inter-token latency, in-flight requests, outcomes).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// `gen_ai.client.operation.duration`, and also `…time_to_first_chunk` and
/// `…time_per_output_chunk`: the semantic conventions recommend these bounds for all three
/// (seconds).
const DURATION: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
/// The proxy's time to first content token: the conventions' server TTFT bounds
/// (`gen_ai.server.time_to_first_token`), finer than the client ones where TTFT lives.
const FIRST_CHUNK: [f64; 16] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// The proxy's time per output token: the conventions' server TPOT bounds
/// (`gen_ai.server.time_per_output_token`).
const PER_CHUNK: [f64; 13] = [
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
];
/// `gen_ai.client.token.usage` (tokens).
const TOKENS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];

/// The histograms with one value per request (the ones whose buckets carry exemplars on
/// the proxy's OpenMetrics `/metrics`), by Prometheus name, with their bounds.
pub const REQUEST_LATENCIES: [(&str, &[f64]); 3] = [
    ("gen_ai_client_operation_duration_seconds", &DURATION),
    (
        "gen_ai_client_operation_time_to_first_chunk_seconds",
        &DURATION,
    ),
    ("llm_proxy_time_to_first_content_seconds", &FIRST_CHUNK),
];

/// Labels of every client series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Operation {
    /// `chat` or `text_completion`.
    pub gen_ai_operation_name: String,
    /// The requested model.
    pub gen_ai_request_model: String,
}

/// Labels of the token-usage histogram.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    /// `chat` or `text_completion`.
    pub gen_ai_operation_name: String,
    /// The requested model.
    pub gen_ai_request_model: String,
    /// `input` or `output`.
    pub gen_ai_token_type: String,
}

/// Labels of the outcome counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// The requested model.
    pub gen_ai_request_model: String,
    /// How the request ended: `ok` or an error class (load generator), `completed`,
    /// `length`, `upstream_error`, … (proxy).
    pub outcome: String,
    /// `2xx`, `4xx`, `5xx`, or `none` when no status came.
    pub http_status_class: String,
}

/// Histograms with fixed boundaries, as a family constructor.
#[derive(Debug, Clone, Copy)]
pub struct Buckets(&'static [f64]);

impl Buckets {
    /// Histograms with these boundaries.
    pub fn new(bounds: &'static [f64]) -> Buckets {
        Buckets(bounds)
    }
}

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.0.iter().copied())
    }
}

type Histograms<L> = Family<L, Histogram, Buckets>;

/// The client metrics and the registry that renders them.
#[derive(Debug, Clone)]
pub struct ClientMetrics {
    /// Operation duration.
    pub duration: Histograms<Operation>,
    /// Time to the first chunk of any kind.
    pub first_chunk: Histograms<Operation>,
    /// Time between chunks.
    pub per_chunk: Histograms<Operation>,
    /// Tokens per request by type.
    pub tokens: Histograms<TokenLabels>,
    /// Time to the first chunk carrying content.
    pub first_content: Histograms<Operation>,
    /// Time per output token between content chunks.
    pub per_token: Histograms<Operation>,
    /// Requests in flight.
    pub in_flight: Gauge,
    /// Finished requests by outcome.
    pub outcomes: Family<OutcomeLabels, Counter>,
}

impl ClientMetrics {
    /// The metrics, registered under their Prometheus names.
    pub fn registered() -> (ClientMetrics, Registry) {
        let m = ClientMetrics {
            duration: Family::new_with_constructor(Buckets(&DURATION)),
            first_chunk: Family::new_with_constructor(Buckets(&DURATION)),
            per_chunk: Family::new_with_constructor(Buckets(&DURATION)),
            tokens: Family::new_with_constructor(Buckets(&TOKENS)),
            first_content: Family::new_with_constructor(Buckets(&FIRST_CHUNK)),
            per_token: Family::new_with_constructor(Buckets(&PER_CHUNK)),
            in_flight: Gauge::default(),
            outcomes: Family::default(),
        };
        let mut r = Registry::default();
        r.register(
            "gen_ai_client_operation_duration_seconds",
            "GenAI operation duration",
            m.duration.clone(),
        );
        r.register(
            "gen_ai_client_operation_time_to_first_chunk_seconds",
            "Time to receive the first chunk of a streamed response",
            m.first_chunk.clone(),
        );
        r.register(
            "gen_ai_client_operation_time_per_output_chunk_seconds",
            "Time between successive chunks of a streamed response",
            m.per_chunk.clone(),
        );
        r.register(
            "gen_ai_client_token_usage",
            "Tokens used per request, by type",
            m.tokens.clone(),
        );
        r.register(
            "llm_proxy_time_to_first_content_seconds",
            "Time to the first chunk carrying content (not the role-only chunk)",
            m.first_content.clone(),
        );
        r.register(
            "llm_proxy_time_per_output_token_seconds",
            "Inter-token latency: each gap between content chunks divided by its tokens",
            m.per_token.clone(),
        );
        r.register(
            "llm_proxy_requests_in_flight",
            "Requests in flight",
            m.in_flight.clone(),
        );
        r.register(
            "llm_proxy_requests",
            "Finished requests by outcome",
            m.outcomes.clone(),
        );
        (m, r)
    }
}
