//! Client-side metrics, shared by the load generator (and the proxy): the OpenTelemetry GenAI
//! client metrics rendered for Prometheus, with the semantic conventions' bucket boundaries,
//! and `llm_proxy_` metrics for what the conventions lack (time to first content token,
//! per-token inter-token latency, in-flight requests, outcomes).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

mod histogram;

pub use histogram::Histogram;

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

/// Labels of the GenAI operation histograms (duration, first chunk, time per chunk): the
/// operation and what came of it, as the semantic conventions ask. A label that is `None`
/// is left out of the series (Prometheus reads a missing label and an empty one alike).
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct Completion {
    /// `chat` or `text_completion`, and the requested model.
    pub operation: Operation,
    /// The model the answer named (`gen_ai.response.model`), bounded like the requested one.
    pub gen_ai_response_model: Option<String>,
    /// How the operation failed (`error.type`): `None` when it did not.
    pub error_type: Option<&'static str>,
}

impl Completion {
    /// The labels of `operation`, answered by `response_model`, failed as `error_type`.
    pub fn new(
        operation: Operation,
        response_model: Option<String>,
        error_type: Option<&'static str>,
    ) -> Completion {
        Completion {
            operation,
            gen_ai_response_model: response_model,
            error_type,
        }
    }

    /// The values of its labels in the order they are written, a missing one empty (which
    /// is how a series without it reads).
    pub fn label_values(&self) -> [&str; 4] {
        [
            &self.operation.gen_ai_operation_name,
            &self.operation.gen_ai_request_model,
            self.gen_ai_response_model.as_deref().unwrap_or(""),
            self.error_type.unwrap_or(""),
        ]
    }
}

impl EncodeLabelSet for Completion {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        self.operation.encode(encoder)?;
        if let Some(model) = &self.gen_ai_response_model {
            ("gen_ai_response_model", model.as_str()).encode(encoder.encode_label())?;
        }
        if let Some(error) = self.error_type {
            ("error_type", error).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

/// Labels of the token-usage histogram.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct TokenLabels {
    /// `chat` or `text_completion`.
    pub gen_ai_operation_name: String,
    /// The requested model.
    pub gen_ai_request_model: String,
    /// The model the answer named, when it named one.
    pub gen_ai_response_model: Option<String>,
    /// `input` or `output`.
    pub gen_ai_token_type: String,
}

impl EncodeLabelSet for TokenLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        ("gen_ai_operation_name", self.gen_ai_operation_name.as_str())
            .encode(encoder.encode_label())?;
        ("gen_ai_request_model", self.gen_ai_request_model.as_str())
            .encode(encoder.encode_label())?;
        if let Some(model) = &self.gen_ai_response_model {
            ("gen_ai_response_model", model.as_str()).encode(encoder.encode_label())?;
        }
        ("gen_ai_token_type", self.gen_ai_token_type.as_str()).encode(encoder.encode_label())
    }
}

/// Hashes the keys of maps used per request (the proxy's exemplars and series, model
/// names, totals per model label) with a multiply per part rather than SipHash's rounds,
/// which cost a share of each request. Their keys are bounded label values: models past
/// the cap share one label, so a client cannot grow a map to make collisions expensive.
#[derive(Debug, Default)]
pub struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    /// Eight bytes at a time: label values are tens of bytes.
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in words.by_ref() {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            self.write_u64(u64::from_le_bytes(w));
        }
        for b in words.remainder() {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(23) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// Builds [`KeyHasher`]s.
pub type KeyBuild = std::hash::BuildHasherDefault<KeyHasher>;

/// Model names as label values, bounded: names beyond the cap fold into `other`. The
/// requested and the answering models share one cap, so neither a client nor an upstream
/// can grow the label set past it.
#[derive(Debug, Clone)]
pub struct ModelNames {
    seen: Arc<Mutex<HashSet<String, KeyBuild>>>,
    cap: usize,
}

impl ModelNames {
    /// At most `cap` distinct names.
    pub fn new(cap: usize) -> ModelNames {
        ModelNames {
            seen: Arc::default(),
            cap,
        }
    }

    /// The label for `model`: itself while fewer than the cap have been seen, else `other`.
    pub fn label(&self, model: &str) -> String {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(model) {
            return model.to_string();
        }
        if seen.len() < self.cap {
            seen.insert(model.to_string());
            return model.to_string();
        }
        "other".to_string()
    }
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
        Histogram::new(self.0)
    }
}

type Histograms<L> = Family<L, Histogram, Buckets>;

/// The client metrics and the registry that renders them.
#[derive(Debug, Clone)]
pub struct ClientMetrics {
    /// Operation duration.
    pub duration: Histograms<Completion>,
    /// Time to the first chunk of any kind.
    pub first_chunk: Histograms<Completion>,
    /// Time between chunks.
    pub per_chunk: Histograms<Completion>,
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
    /// The bound on model labels.
    pub models: ModelNames,
}

impl ClientMetrics {
    /// The metrics, registered under their Prometheus names, with at most `max_models`
    /// model label values.
    pub fn registered(max_models: usize) -> (ClientMetrics, Registry) {
        let m = ClientMetrics {
            duration: Family::new_with_constructor(Buckets(&DURATION)),
            first_chunk: Family::new_with_constructor(Buckets(&DURATION)),
            per_chunk: Family::new_with_constructor(Buckets(&DURATION)),
            tokens: Family::new_with_constructor(Buckets(&TOKENS)),
            first_content: Family::new_with_constructor(Buckets(&FIRST_CHUNK)),
            per_token: Family::new_with_constructor(Buckets(&PER_CHUNK)),
            in_flight: Gauge::default(),
            outcomes: Family::default(),
            models: ModelNames::new(max_models),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(registry: &Registry) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
        text
    }

    #[test]
    fn an_answered_operation_names_its_model_and_a_failed_one_its_error_only() {
        let (m, registry) = ClientMetrics::registered(4);
        let op = Operation {
            gen_ai_operation_name: "chat".into(),
            gen_ai_request_model: "m".into(),
        };
        let answered = Completion::new(op.clone(), Some("m-2025".into()), None);
        m.duration.get_or_create(&answered).observe(0.5);
        let failed = Completion::new(op, None, Some("timeout"));
        m.duration.get_or_create(&failed).observe(30.0);
        let text = rendered(&registry);
        let count = "gen_ai_client_operation_duration_seconds_count";
        assert!(text.contains(&format!(
            "{count}{{gen_ai_operation_name=\"chat\",gen_ai_request_model=\"m\",gen_ai_response_model=\"m-2025\"}} 1"
        )));
        assert!(text.contains(&format!(
            "{count}{{gen_ai_operation_name=\"chat\",gen_ai_request_model=\"m\",error_type=\"timeout\"}} 1"
        )));
        assert!(!text.contains("=\"\""), "no empty label: {text}");
    }

    #[test]
    fn model_names_beyond_the_cap_fold_into_other_whoever_names_them() {
        let names = ModelNames::new(2);
        assert_eq!(names.label("asked"), "asked");
        assert_eq!(names.label("answered"), "answered");
        assert_eq!(names.label("asked"), "asked");
        assert_eq!(names.label("a-third"), "other");
        // A clone shares the cap: the proxy and its client metrics hold one set.
        assert_eq!(names.clone().label("a-fourth"), "other");
    }
}
