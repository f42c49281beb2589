//! The series one kind of request records into, found once per kind rather than once per
//! family per request. Recording a request touched eleven families, each a hash of its
//! label strings under a lock and most a label set of freshly cloned strings; now a request
//! hashes its labels once to find its kind's handles, which share their state with the
//! families (a handle is the series itself), so `/metrics` and the OTLP export read the
//! same numbers. A series still appears only when first recorded into: a request with no
//! first chunk creates no first-chunk series.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use prometheus_client::metrics::counter::Counter;

use super::metrics::{ModelLabels, ProxyMetrics, SourceLabels};
use crate::client_metrics::{Completion, Histogram, OutcomeLabels, TokenLabels};

/// What a request's series depend on beyond its [`Completion`] labels: how it ended and
/// the class of the status the client got.
pub type Ending = (&'static str, &'static str);

/// The handles of one kind of request: each filled from its family on first use.
#[derive(Default)]
pub struct RequestSeries {
    duration: OnceLock<Histogram>,
    first_chunk: OnceLock<Histogram>,
    per_chunk: OnceLock<Histogram>,
    first_content: OnceLock<Histogram>,
    per_token: OnceLock<Histogram>,
    /// Input and output tokens.
    tokens: [OnceLock<Histogram>; 2],
    /// Output-token counts from usage, and from counted chunks.
    token_source: [OnceLock<Counter>; 2],
    response_bytes: OnceLock<Counter>,
    outcome: OnceLock<Counter>,
}

/// The token types, in the order of [`RequestSeries::tokens`].
pub const TOKEN_TYPES: [&str; 2] = ["input", "output"];
/// Where output-token counts came from, in the order of [`RequestSeries::token_source`].
pub const TOKEN_SOURCES: [&str; 2] = ["usage", "chunks"];

/// The kinds of request with one set of [`Completion`] labels, by how they ended.
type Endings = Vec<(Ending, Arc<RequestSeries>)>;

/// Every kind of request seen so far. Bounded as the label sets are: models beyond the
/// cap fold into `other`, and the rest are fixed vocabularies.
#[derive(Default)]
pub struct SeriesCache {
    kinds: RwLock<HashMap<Completion, Endings, super::KeyBuild>>,
}

impl SeriesCache {
    /// The series of requests labelled `labels` that ended as `ending`.
    pub fn of(&self, labels: &Completion, ending: Ending) -> Arc<RequestSeries> {
        let found = |kinds: &HashMap<Completion, Endings, super::KeyBuild>| {
            let endings = kinds.get(labels)?;
            let (_, series) = endings.iter().find(|(e, _)| *e == ending)?;
            Some(series.clone())
        };
        let read = self.kinds.read().unwrap_or_else(|e| e.into_inner());
        if let Some(series) = found(&read) {
            return series;
        }
        drop(read);
        let mut write = self.kinds.write().unwrap_or_else(|e| e.into_inner());
        if let Some(series) = found(&write) {
            return series;
        }
        let series = Arc::new(RequestSeries::default());
        write
            .entry(labels.clone())
            .or_default()
            .push((ending, series.clone()));
        series
    }
}

impl RequestSeries {
    pub fn duration(&self, m: &ProxyMetrics, l: &Completion) -> &Histogram {
        self.duration
            .get_or_init(|| m.client.duration.get_or_create(l).clone())
    }

    pub fn first_chunk(&self, m: &ProxyMetrics, l: &Completion) -> &Histogram {
        self.first_chunk
            .get_or_init(|| m.client.first_chunk.get_or_create(l).clone())
    }

    pub fn per_chunk(&self, m: &ProxyMetrics, l: &Completion) -> &Histogram {
        self.per_chunk
            .get_or_init(|| m.client.per_chunk.get_or_create(l).clone())
    }

    pub fn first_content(&self, m: &ProxyMetrics, l: &Completion) -> &Histogram {
        self.first_content
            .get_or_init(|| m.client.first_content.get_or_create(&l.operation).clone())
    }

    pub fn per_token(&self, m: &ProxyMetrics, l: &Completion) -> &Histogram {
        self.per_token
            .get_or_init(|| m.client.per_token.get_or_create(&l.operation).clone())
    }

    /// Tokens of type [`TOKEN_TYPES`]`[kind]`.
    pub fn tokens(&self, m: &ProxyMetrics, l: &Completion, kind: usize) -> Option<&Histogram> {
        let (cell, name) = (self.tokens.get(kind)?, TOKEN_TYPES.get(kind)?);
        Some(cell.get_or_init(|| {
            let labels = TokenLabels {
                gen_ai_operation_name: l.operation.gen_ai_operation_name.clone(),
                gen_ai_request_model: l.operation.gen_ai_request_model.clone(),
                gen_ai_response_model: l.gen_ai_response_model.clone(),
                gen_ai_token_type: name.to_string(),
            };
            m.client.tokens.get_or_create(&labels).clone()
        }))
    }

    /// Output-token counts from source [`TOKEN_SOURCES`]`[source]`.
    pub fn token_source(
        &self,
        m: &ProxyMetrics,
        l: &Completion,
        source: usize,
    ) -> Option<&Counter> {
        let (cell, name) = (self.token_source.get(source)?, TOKEN_SOURCES.get(source)?);
        Some(cell.get_or_init(|| {
            let labels = SourceLabels {
                gen_ai_request_model: l.operation.gen_ai_request_model.clone(),
                source: name.to_string(),
            };
            m.token_source.get_or_create(&labels).clone()
        }))
    }

    pub fn response_bytes(&self, m: &ProxyMetrics, l: &Completion) -> &Counter {
        self.response_bytes.get_or_init(|| {
            let labels = ModelLabels {
                gen_ai_request_model: l.operation.gen_ai_request_model.clone(),
            };
            m.response_bytes.get_or_create(&labels).clone()
        })
    }

    pub fn outcome(&self, m: &ProxyMetrics, l: &Completion, ending: Ending) -> &Counter {
        self.outcome.get_or_init(|| {
            let labels = OutcomeLabels {
                gen_ai_request_model: l.operation.gen_ai_request_model.clone(),
                outcome: ending.0.to_string(),
                http_status_class: ending.1.to_string(),
            };
            m.client.outcomes.get_or_create(&labels).clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_metrics::Operation;

    fn labels(model: &str) -> Completion {
        let op = Operation {
            gen_ai_operation_name: "chat".to_string(),
            gen_ai_request_model: model.to_string(),
        };
        Completion::new(op, None, None)
    }

    #[test]
    fn a_kind_of_request_finds_the_same_series_and_records_into_its_families() {
        let (m, registry) = ProxyMetrics::registered(4);
        let cache = SeriesCache::default();
        let (a, ok) = (labels("a"), ("completed", "2xx"));
        let first = cache.of(&a, ok);
        assert!(Arc::ptr_eq(&first, &cache.of(&a, ok)));
        assert!(!Arc::ptr_eq(
            &first,
            &cache.of(&a, ("upstream_error", "5xx"))
        ));
        assert!(!Arc::ptr_eq(&first, &cache.of(&labels("b"), ok)));
        first.duration(&m, &a).observe(0.5);
        cache.of(&a, ok).duration(&m, &a).observe(1.5);
        first.outcome(&m, &a, ok).inc();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        let sum = "gen_ai_client_operation_duration_seconds_sum{gen_ai_operation_name=\"chat\",gen_ai_request_model=\"a\"} 2.0";
        assert!(text.contains(sum), "{text}");
        assert!(
            text.contains("outcome=\"completed\",http_status_class=\"2xx\"} 1"),
            "{text}"
        );
        // Nothing was recorded into the first-chunk family: it has no series.
        assert!(
            !text.contains("time_to_first_chunk_seconds_count{"),
            "{text}"
        );
    }
}
