//! What the proxy records, beside the client metrics it shares with the load generator
//! ([`crate::client_metrics`], outcomes included): bytes each way, its own overhead, and
//! where token counts came from. Every label set is bounded: models beyond a
//! cap fold into `other`, the rest are fixed vocabularies.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::client_metrics::{Buckets, ClientMetrics, Histogram};

/// Overhead boundaries (seconds): 10 µs to 50 ms.
const OVERHEAD: [f64; 12] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05,
];

/// Labels of per-model counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    /// The requested model (bounded).
    pub gen_ai_request_model: String,
}

/// Labels of the overhead histogram.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    /// `request` (received → sent upstream) or `chunk` (chunk received → handed on).
    pub phase: String,
}

/// Labels of the token-source counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    /// The requested model (bounded).
    pub gen_ai_request_model: String,
    /// `usage` (the engine's count) or `chunks` (no usage came; content chunks counted).
    pub source: String,
}

/// The proxy's metrics and the registry that renders them.
pub struct ProxyMetrics {
    /// Shared client metrics (GenAI semconv names and `llm_proxy_` extras).
    pub client: ClientMetrics,
    /// Request body bytes.
    pub request_bytes: Family<ModelLabels, Counter>,
    /// Response body bytes.
    pub response_bytes: Family<ModelLabels, Counter>,
    /// The proxy's own time per request and per chunk.
    pub overhead: Family<PhaseLabels, Histogram, Buckets>,
    /// `overhead{phase="request"}`, looked up once.
    pub request_overhead: Histogram,
    /// `overhead{phase="chunk"}`, looked up once: it is observed for every chunk.
    pub chunk_overhead: Histogram,
    /// Output-token counts by where they came from.
    pub token_source: Family<SourceLabels, Counter>,
    /// The latest exported request's trace per latency bucket.
    pub exemplars: super::exemplars::Exemplars,
    /// Each kind of request's series, found once per kind.
    pub series: super::series::SeriesCache,
    /// The forms of the upstream's chunks, learnt from its streams to read the next ones.
    pub templates: crate::sse::scan::Templates,
    /// Sum and count of time to first content per model label, for the gap to the engine.
    ttft_totals: Mutex<super::recent::Totals>,
    /// Requests per model label and outcome, for the dashboard's windowed view.
    outcome_totals: Mutex<super::recent::OutcomeTotals>,
}

impl ProxyMetrics {
    /// Metrics that keep at most `max_models` distinct model labels, and their registry.
    pub fn registered(max_models: usize) -> (ProxyMetrics, Registry) {
        let (client, mut registry) = ClientMetrics::registered(max_models);
        let overhead = Family::new_with_constructor(Buckets::new(&OVERHEAD));
        let phase = |name: &str| {
            overhead
                .get_or_create(&PhaseLabels {
                    phase: name.to_string(),
                })
                .clone()
        };
        let (request_overhead, chunk_overhead) = (phase("request"), phase("chunk"));
        let m = ProxyMetrics {
            client,
            request_bytes: Family::default(),
            response_bytes: Family::default(),
            request_overhead,
            chunk_overhead,
            overhead,
            token_source: Family::default(),
            exemplars: super::exemplars::Exemplars::default(),
            series: Default::default(),
            templates: Default::default(),
            ttft_totals: Mutex::default(),
            outcome_totals: Mutex::default(),
        };
        registry.register(
            "llm_proxy_request_bytes",
            "Request body bytes received from clients",
            m.request_bytes.clone(),
        );
        registry.register(
            "llm_proxy_response_bytes",
            "Response body bytes sent to clients",
            m.response_bytes.clone(),
        );
        registry.register(
            "llm_proxy_overhead_seconds",
            "Time the proxy itself adds: request received to sent upstream, chunk received to handed on",
            m.overhead.clone(),
        );
        registry.register(
            "llm_proxy_output_token_source",
            "Answers by where their output-token count came from (usage, or counted chunks)",
            m.token_source.clone(),
        );
        (m, registry)
    }

    /// Adds one time to first content for `model` to the running totals.
    pub fn add_ttft(&self, model: &str, seconds: f64) {
        let mut totals = self.ttft_totals.lock().unwrap_or_else(|e| e.into_inner());
        add_to(&mut totals, model, |(sum, count)| {
            *sum += seconds;
            *count += 1;
        });
    }

    /// Sum and count of time to first content per model, so far.
    pub fn ttft_totals(&self) -> super::recent::Totals {
        self.ttft_totals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Counts one request of `model` (its label) that ended with `outcome`.
    pub fn add_outcome(&self, model: &str, outcome: &'static str) {
        let mut totals = self
            .outcome_totals
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        add_to(&mut totals, model, |by_outcome| {
            match by_outcome.iter_mut().find(|(o, _)| *o == outcome) {
                Some((_, n)) => *n += 1,
                None => by_outcome.push((outcome, 1)),
            }
        });
    }

    /// Requests per model label and outcome, so far.
    pub fn outcome_totals(&self) -> super::recent::OutcomeTotals {
        self.outcome_totals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The label for `model`: itself while fewer than the cap have been seen, else `other`.
    pub fn model_label(&self, model: &str) -> String {
        self.client.models.label(model)
    }
}

/// Adds to the running total of `model` in `totals` with `add`, the total new and empty
/// when it has none yet. The model is almost always there already: its key is allocated
/// only when it is not.
fn add_to<V: Default>(
    totals: &mut std::collections::HashMap<String, V, crate::client_metrics::KeyBuild>,
    model: &str,
    add: impl FnOnce(&mut V),
) {
    match totals.get_mut(model) {
        Some(total) => add(total),
        None => add(totals.entry(model.to_string()).or_default()),
    }
}
