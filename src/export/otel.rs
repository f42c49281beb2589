//! An OpenTelemetry Collector beside the stack, for teams whose telemetry goes through one:
//! it receives OTLP from llmwatch (`[otlp] endpoint`), writes the metrics to Prometheus by
//! remote write and hands the proxy's spans to a trace backend (Jaeger, which takes OTLP).
//! In Compose it is the `otel` profile; in Kubernetes one file of the base.

use serde_norway::Value;

use super::yaml::{map, n, s, seq, string_map, strings};

/// The collector image, pinned.
pub const COLLECTOR_IMAGE: &str = "otel/opentelemetry-collector-contrib:0.116.1";
/// The trace backend's image, pinned.
pub const JAEGER_IMAGE: &str = "jaegertracing/all-in-one:1.64.0";

/// The collector's configuration: OTLP/HTTP in on 4318, metrics to `prometheus_write`
/// (a Prometheus remote-write URL), spans to `traces_otlp` (an OTLP/HTTP base URL).
pub fn collector_config(prometheus_write: &str, traces_otlp: &str) -> Value {
    map([
        (
            "receivers",
            map([(
                "otlp",
                map([(
                    "protocols",
                    map([("http", map([("endpoint", s("0.0.0.0:4318"))]))]),
                )]),
            )]),
        ),
        ("processors", map([("batch", map([]))])),
        (
            "exporters",
            map([
                (
                    "prometheusremotewrite",
                    map([
                        ("endpoint", s(prometheus_write)),
                        // `service.name` and the other resource attributes as labels.
                        (
                            "resource_to_telemetry_conversion",
                            map([("enabled", Value::Bool(true))]),
                        ),
                    ]),
                ),
                ("otlphttp/traces", map([("endpoint", s(traces_otlp))])),
            ]),
        ),
        (
            "service",
            map([(
                "pipelines",
                map([
                    (
                        "metrics",
                        map([
                            ("receivers", strings(["otlp"])),
                            ("processors", strings(["batch"])),
                            ("exporters", strings(["prometheusremotewrite"])),
                        ]),
                    ),
                    (
                        "traces",
                        map([
                            ("receivers", strings(["otlp"])),
                            ("processors", strings(["batch"])),
                            ("exporters", strings(["otlphttp/traces"])),
                        ]),
                    ),
                ]),
            )]),
        ),
    ])
}

/// The Compose services of the `otel` profile: the collector and Jaeger.
pub fn compose_services() -> [(&'static str, Value); 2] {
    let profile = || strings(["otel"]);
    [
        (
            "otel-collector",
            map([
                ("image", s(COLLECTOR_IMAGE)),
                ("profiles", profile()),
                (
                    "volumes",
                    strings(["./otel-collector.yaml:/etc/otelcol-contrib/config.yaml:ro"]),
                ),
                ("ports", strings(["127.0.0.1:4318:4318"])),
                ("restart", s("unless-stopped")),
            ]),
        ),
        (
            "jaeger",
            map([
                ("image", s(JAEGER_IMAGE)),
                ("profiles", profile()),
                (
                    "environment",
                    string_map([("COLLECTOR_OTLP_ENABLED", "true")]),
                ),
                ("ports", strings(["127.0.0.1:16686:16686"])),
                ("restart", s("unless-stopped")),
            ]),
        ),
    ]
}

/// The Kubernetes objects: the collector's ConfigMap, Deployment and Service, named
/// `otel-collector` in `namespace`, sending to `prometheus_write` and `traces_otlp`.
pub fn kubernetes_objects(
    namespace: &str,
    prometheus_write: &str,
    traces_otlp: &str,
) -> Result<Vec<Value>, serde_norway::Error> {
    let labels = || {
        string_map([
            ("app.kubernetes.io/name", "otel-collector"),
            ("app.kubernetes.io/part-of", "llmwatch"),
        ])
    };
    let metadata = |name: &str| {
        map([
            ("name", s(name)),
            ("namespace", s(namespace)),
            ("labels", labels()),
        ])
    };
    let config_text = serde_norway::to_string(&collector_config(prometheus_write, traces_otlp))?;
    let config_map = map([
        ("apiVersion", s("v1")),
        ("kind", s("ConfigMap")),
        ("metadata", metadata("otel-collector-config")),
        ("data", string_map([("config.yaml", config_text.as_str())])),
    ]);
    let container = map([
        ("name", s("otel-collector")),
        ("image", s(COLLECTOR_IMAGE)),
        (
            "args",
            strings(["--config=/etc/otelcol-contrib/config.yaml"]),
        ),
        (
            "ports",
            seq([map([("name", s("otlp-http")), ("containerPort", n(4318))])]),
        ),
        (
            "volumeMounts",
            seq([map([
                ("name", s("config")),
                ("mountPath", s("/etc/otelcol-contrib")),
                ("readOnly", Value::Bool(true)),
            ])]),
        ),
        (
            "securityContext",
            map([
                ("runAsNonRoot", Value::Bool(true)),
                ("allowPrivilegeEscalation", Value::Bool(false)),
                ("readOnlyRootFilesystem", Value::Bool(true)),
            ]),
        ),
    ]);
    let deployment = map([
        ("apiVersion", s("apps/v1")),
        ("kind", s("Deployment")),
        ("metadata", metadata("otel-collector")),
        (
            "spec",
            map([
                ("replicas", n(1)),
                ("selector", map([("matchLabels", labels())])),
                (
                    "template",
                    map([
                        ("metadata", map([("labels", labels())])),
                        (
                            "spec",
                            map([
                                ("containers", seq([container])),
                                (
                                    "volumes",
                                    seq([map([
                                        ("name", s("config")),
                                        ("configMap", map([("name", s("otel-collector-config"))])),
                                    ])]),
                                ),
                            ]),
                        ),
                    ]),
                ),
            ]),
        ),
    ]);
    let service = map([
        ("apiVersion", s("v1")),
        ("kind", s("Service")),
        ("metadata", metadata("otel-collector")),
        (
            "spec",
            map([
                ("selector", labels()),
                (
                    "ports",
                    seq([map([
                        ("name", s("otlp-http")),
                        ("port", n(4318)),
                        ("targetPort", s("otlp-http")),
                    ])]),
                ),
            ]),
        ),
    ]);
    Ok(vec![config_map, deployment, service])
}
