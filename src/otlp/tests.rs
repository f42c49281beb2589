//! Configuration from the environment, names, and the encoder's sums, histograms and
//! temporality. The wire format itself is checked against the reference OTLP schema by the
//! integration tests.

use std::collections::HashMap;
use std::time::Duration;

use super::metrics::{MetricsEncoder, otel_attribute, otel_name};
use super::*;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

fn settings() -> OtlpSettings {
    OtlpSettings {
        default_service: "llmwatch-proxy".to_string(),
        ..OtlpSettings::default()
    }
}

#[test]
fn off_without_an_endpoint_or_when_disabled() {
    assert_eq!(settings().resolve(env(&[])).ok(), Some(None));
    let disabled = env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
        ("OTEL_SDK_DISABLED", "true"),
    ]);
    assert_eq!(settings().resolve(disabled).ok(), Some(None));
}

#[test]
fn the_standard_environment_configures_everything() {
    let config = settings()
        .resolve(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a%20b,x-team=llm"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "15000"),
            ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "Delta"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=prod,service.name=gw",
            ),
        ]))
        .ok()
        .flatten();
    let Some(config) = config else {
        panic!("configured");
    };
    assert_eq!(config.metrics_url, "http://collector:4318/v1/metrics");
    assert_eq!(
        config.headers,
        vec![
            ("api-key".to_string(), "a b".to_string()),
            ("x-team".to_string(), "llm".to_string())
        ]
    );
    assert_eq!(config.timeout, Duration::from_millis(2500));
    assert_eq!(config.interval, Duration::from_secs(15));
    assert_eq!(config.temporality, Temporality::Delta);
    assert_eq!(
        config.resource.attributes[..2],
        [
            ("service.name".to_string(), "gw".to_string()),
            ("deployment.environment".to_string(), "prod".to_string())
        ]
    );
}

#[test]
fn flags_win_over_the_environment_and_the_service_name_wins_over_attributes() {
    let flags = OtlpSettings {
        endpoint: Some("http://127.0.0.1:9999".to_string()),
        interval: Some(Duration::from_secs(1)),
        ..settings()
    };
    let config = flags
        .resolve(env(&[
            (
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                "http://elsewhere/v1/metrics",
            ),
            ("OTEL_SERVICE_NAME", "edge"),
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=ignored"),
        ]))
        .ok()
        .flatten();
    let Some(config) = config else {
        panic!("configured");
    };
    assert_eq!(config.metrics_url, "http://127.0.0.1:9999/v1/metrics");
    assert_eq!(config.interval, Duration::from_secs(1));
    assert_eq!(config.resource.attributes[0].1, "edge");
    assert_eq!(
        config
            .resource
            .attributes
            .iter()
            .filter(|(k, _)| k == "service.name")
            .count(),
        1
    );
}

#[test]
fn grpc_calls_each_services_export_method_and_a_signals_own_protocol_wins() {
    let config = settings()
        .resolve(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
        ]))
        .ok()
        .flatten();
    let Some(config) = config else {
        panic!("configured");
    };
    assert_eq!(config.protocol, Protocol::Grpc);
    assert_eq!(
        config.metrics_url,
        "http://collector:4317/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
    );
    let Some(traces) = config.traces else {
        panic!("traces configured");
    };
    assert_eq!(traces.protocol, Protocol::HttpProtobuf);
    assert_eq!(traces.url, "http://collector:4317/v1/traces");
    // A signal's own gRPC endpoint names the server: the method is still added to it.
    let flag = OtlpSettings {
        protocol: Some("grpc".to_string()),
        ..settings()
    };
    let own = flag
        .resolve(env(&[(
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "https://collector:4317",
        )]))
        .ok()
        .flatten()
        .map(|c| c.metrics_url);
    assert_eq!(
        own.as_deref(),
        Some(
            "https://collector:4317/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
        )
    );
}

#[test]
fn settings_that_cannot_work_are_refused_with_their_name() {
    let refused = |pairs: &[(&str, &str)]| match settings().resolve(env(pairs)) {
        Err(e) => e.to_string(),
        Ok(c) => panic!("accepted: {c:?}"),
    };
    let base = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
    let json = refused(&[base, ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]);
    assert!(json.contains("OTEL_EXPORTER_OTLP_PROTOCOL") && json.contains("grpc"));
    assert!(
        refused(&[base, ("OTEL_METRIC_EXPORT_INTERVAL", "soon")])
            .contains("OTEL_METRIC_EXPORT_INTERVAL")
    );
    assert!(refused(&[base, ("OTEL_EXPORTER_OTLP_HEADERS", "novalue")]).contains("key=value"));
    let ca = refused(&[base, ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/no/such/ca.pem")]);
    assert!(ca.contains("OTEL_EXPORTER_OTLP_CERTIFICATE") && ca.contains("/no/such/ca.pem"));
    assert!(refused(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")]).contains("http://"));
    assert!(
        refused(&[
            base,
            (
                "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
                "sometimes"
            )
        ])
        .contains("cumulative")
    );
}

#[test]
fn names_follow_the_conventions_and_keep_their_words() {
    use crate::exposition::MetricType::{Counter, Gauge, Histogram};
    let name = |prom, kind| otel_name(prom, kind);
    assert_eq!(
        name("gen_ai_client_operation_duration_seconds", Histogram),
        ("gen_ai.client.operation.duration".to_string(), "s")
    );
    assert_eq!(
        name("gen_ai_client_token_usage", Histogram),
        ("gen_ai.client.token.usage".to_string(), "{token}")
    );
    assert_eq!(
        name("llm_proxy_time_to_first_content_seconds", Histogram),
        ("llm.proxy.time_to_first_content".to_string(), "s")
    );
    assert_eq!(
        name("llm_proxy_requests_total", Counter),
        ("llm.proxy.requests".to_string(), "")
    );
    // A gauge keeps a `_total` that is part of its name.
    assert_eq!(
        name("llm_kv_blocks_total", Gauge),
        ("llm.kv_blocks_total".to_string(), "")
    );
    assert_eq!(
        name("llm_proxy_request_bytes_total", Counter),
        ("llm.proxy.request".to_string(), "By")
    );
    assert_eq!(
        otel_attribute("gen_ai_request_model"),
        "gen_ai.request.model"
    );
    assert_eq!(otel_attribute("outcome"), "outcome");
}

const TEXT: &str = "# HELP reqs Requests.\n# TYPE reqs counter\nreqs_total{model=\"m\"} 5\n\
# TYPE lat_seconds histogram\nlat_seconds_bucket{le=\"0.1\"} 1\nlat_seconds_bucket{le=\"1\"} 3\n\
lat_seconds_bucket{le=\"+Inf\"} 4\nlat_seconds_sum 2.5\nlat_seconds_count 4\n\
# TYPE inflight gauge\ninflight 2\n";

fn resource() -> Resource {
    Resource {
        attributes: vec![("service.name".to_string(), "t".to_string())],
    }
}

#[test]
fn every_family_becomes_one_metric_with_its_points() {
    let mut encoder = MetricsEncoder::new(Temporality::Cumulative, 1);
    let encoded = encoder.encode(TEXT, 2, &resource());
    assert_eq!(encoded.points, 3);
    let body = encoded.body;
    // The names and the histogram's finite bounds are in the body as written.
    for needle in [&b"reqs"[..], b"lat", b"inflight", b"service.name"] {
        assert!(
            body.windows(needle.len()).any(|w| w == needle),
            "{needle:?}"
        );
    }
    let bounds: Vec<u8> = [0.1f64, 1.0].iter().flat_map(|b| b.to_le_bytes()).collect();
    assert!(body.windows(bounds.len()).any(|w| w == bounds));
    let counts: Vec<u8> = [1u64, 2, 1].iter().flat_map(|c| c.to_le_bytes()).collect();
    assert!(
        body.windows(counts.len()).any(|w| w == counts),
        "bucket counts are per bucket, not cumulative"
    );
}

#[test]
fn delta_temporality_sends_changes_since_the_last_delivered_export() {
    let mut encoder = MetricsEncoder::new(Temporality::Delta, 1);
    let value = |body: &[u8], v: f64| body.windows(8).any(|w| w == v.to_le_bytes());
    let first = encoder.encode(TEXT, 2, &resource()).body;
    assert!(value(&first, 5.0));
    encoder.delivered();
    let later = TEXT.replace("reqs_total{model=\"m\"} 5", "reqs_total{model=\"m\"} 12");
    let undelivered = encoder.encode(&later, 3, &resource()).body;
    assert!(value(&undelivered, 7.0), "12 - 5");
    // Not delivered: the next delta still counts from 5.
    let again = encoder.encode(&later, 4, &resource()).body;
    assert!(value(&again, 7.0));
    encoder.delivered();
    let same = encoder.encode(&later, 5, &resource()).body;
    assert!(value(&same, 0.0));
}
