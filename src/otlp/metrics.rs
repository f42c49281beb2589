//! A process's Prometheus text as an OTLP `ExportMetricsServiceRequest`: the same numbers
//! `/metrics` shows at that moment, under OpenTelemetry names. Counters become monotonic
//! sums, histograms explicit-bucket histograms with their own bounds, gauges gauges;
//! cumulative by default, delta when the endpoint asks for it (computed against the last
//! export that was delivered, so a failed export loses nothing).

use std::collections::HashMap;

use super::proto::Message;
use super::trace::{Value, write_attributes};
use super::{Resource, Temporality};
use crate::exposition::{Exposition, Family, Label, MetricType, Mode, parse};

/// `AggregationTemporality` values.
const DELTA: u64 = 1;
const CUMULATIVE: u64 = 2;

/// The OpenTelemetry name and unit of a Prometheus family. The GenAI client metrics take
/// the semantic conventions' names; every other family keeps its words, its namespace
/// written with dots (`llm_proxy_requests` → `llm.proxy.requests`), a counter's `_total`
/// dropped and its unit suffix moved into the unit (`_seconds` → `s`, `_bytes` → `By`).
/// So each name goes back to the Prometheus one under Prometheus' own OTLP translation
/// (which adds the unit's suffix, and `_total` to a monotonic sum).
pub fn otel_name(family: &str, kind: MetricType) -> (String, &'static str) {
    let family = match kind {
        MetricType::Counter => family.strip_suffix("_total").unwrap_or(family),
        _ => family,
    };
    const GEN_AI: [(&str, &str, &str); 4] = [
        (
            "gen_ai_client_operation_duration_seconds",
            "gen_ai.client.operation.duration",
            "s",
        ),
        (
            "gen_ai_client_operation_time_to_first_chunk_seconds",
            "gen_ai.client.operation.time_to_first_chunk",
            "s",
        ),
        (
            "gen_ai_client_operation_time_per_output_chunk_seconds",
            "gen_ai.client.operation.time_per_output_chunk",
            "s",
        ),
        (
            "gen_ai_client_token_usage",
            "gen_ai.client.token.usage",
            "{token}",
        ),
    ];
    if let Some((_, name, unit)) = GEN_AI.iter().find(|(prom, _, _)| *prom == family) {
        return ((*name).to_string(), unit);
    }
    let (stem, unit) = [("_seconds", "s"), ("_bytes", "By")]
        .iter()
        .find_map(|(suffix, unit)| family.strip_suffix(suffix).map(|stem| (stem, *unit)))
        .unwrap_or((family, ""));
    const NAMESPACES: [(&str, &str); 5] = [
        ("llm_proxy_", "llm.proxy."),
        ("llm_gpu_", "llm.gpu."),
        ("llm_process_", "llm.process."),
        ("llmwatch_", "llmwatch."),
        ("llm_", "llm."),
    ];
    let name = NAMESPACES
        .iter()
        .find_map(|(prom, otel)| stem.strip_prefix(prom).map(|rest| format!("{otel}{rest}")))
        .unwrap_or_else(|| stem.to_string());
    (name, unit)
}

/// How a family of Prometheus type `kind` (`counter`, `gauge`, `histogram`) is exported, in
/// words for the metric reference: its name, unit and OTLP data kind.
pub fn describe_otel(family: &str, kind: &str) -> String {
    let kind = match kind {
        "counter" => MetricType::Counter,
        "histogram" => MetricType::Histogram,
        _ => MetricType::Gauge,
    };
    let (name, unit) = otel_name(family, kind);
    let data = match kind {
        MetricType::Counter => "monotonic sum",
        MetricType::Histogram => "explicit-bucket histogram",
        _ => "gauge",
    };
    if unit.is_empty() {
        format!("`{name}`, {data}")
    } else {
        format!("`{name}` in `{unit}`, {data}")
    }
}

/// The labels [`otel_attribute`] renames, for the metric reference.
pub const RENAMED_ATTRIBUTES: [&str; 7] = [
    "gen_ai_operation_name",
    "gen_ai_provider_name",
    "gen_ai_request_model",
    "gen_ai_response_model",
    "gen_ai_token_type",
    "error_type",
    "server_address",
];

/// The OpenTelemetry name of a label: the semantic conventions' attributes written with
/// dots, every other label as it is.
pub fn otel_attribute(label: &str) -> &str {
    match label {
        "gen_ai_operation_name" => "gen_ai.operation.name",
        "gen_ai_provider_name" => "gen_ai.provider.name",
        "gen_ai_request_model" => "gen_ai.request.model",
        "gen_ai_response_model" => "gen_ai.response.model",
        "gen_ai_token_type" => "gen_ai.token.type",
        "error_type" => "error.type",
        "server_address" => "server.address",
        other => other,
    }
}

/// A series: its OpenTelemetry metric name and its attributes, sorted.
type SeriesKey = (String, Vec<(String, String)>);

/// What the last delivered export held of a cumulative series, for delta temporality.
#[derive(Debug, Clone, PartialEq)]
enum Delivered {
    Sum(f64),
    Histogram {
        count: f64,
        sum: f64,
        buckets: Vec<u64>,
    },
}

/// Turns Prometheus text into export requests, remembering what delta temporality needs.
#[derive(Debug)]
pub struct MetricsEncoder {
    temporality: Temporality,
    /// When the process started (the start of every cumulative series), Unix nanoseconds.
    start_ns: u64,
    /// The last delivered values and when they were taken.
    delivered: HashMap<SeriesKey, Delivered>,
    delivered_at_ns: u64,
    /// What the request being sent holds, kept until it is known to be delivered.
    pending: Vec<(SeriesKey, Delivered)>,
    pending_at_ns: u64,
    /// Attributes added to every point of the `gen_ai.*` metrics.
    gen_ai: Vec<(&'static str, Value)>,
}

/// One encoded request and how many data points it carries.
#[derive(Debug)]
pub struct Encoded {
    /// The protobuf body.
    pub body: Vec<u8>,
    /// Data points in it (what is lost if it is dropped).
    pub points: usize,
}

impl MetricsEncoder {
    /// An encoder for a process started at `start_ns`.
    pub fn new(temporality: Temporality, start_ns: u64) -> MetricsEncoder {
        MetricsEncoder {
            temporality,
            start_ns,
            delivered: HashMap::new(),
            delivered_at_ns: start_ns,
            pending: Vec::new(),
            pending_at_ns: start_ns,
            gen_ai: Vec::new(),
        }
    }

    /// Adds `attributes` to every point of the `gen_ai.*` metrics.
    pub fn with_gen_ai_attributes(mut self, attributes: Vec<(&'static str, Value)>) -> Self {
        self.gen_ai = attributes;
        self
    }

    /// The attributes added to the points of metric `name`.
    fn extra(&self, name: &str) -> Vec<(&'static str, Value)> {
        if name.starts_with("gen_ai.") {
            self.gen_ai.clone()
        } else {
            Vec::new()
        }
    }

    /// The request for `text` (Prometheus text of the process's registry) taken at `now_ns`.
    /// Lines the parser cannot read are left out, never fatal: the text is our own.
    pub fn encode(&mut self, text: &str, now_ns: u64, resource: &Resource) -> Encoded {
        self.pending.clear();
        self.pending_at_ns = now_ns;
        let mut metrics = Vec::new();
        let mut points = 0;
        if let Ok(exp) = parse(text, Mode::Lenient) {
            for family in &exp.families {
                if let Some((metric, n)) = self.metric(&exp, family, now_ns) {
                    metrics.push(metric);
                    points += n;
                }
            }
        }
        let mut scope = Message::new();
        scope.string(1, "llmwatch");
        scope.string(2, env!("CARGO_PKG_VERSION"));
        let mut scope_metrics = Message::new();
        scope_metrics.message(1, scope);
        for metric in metrics {
            scope_metrics.message(2, metric);
        }
        let mut resource_metrics = Message::new();
        resource_metrics.message(1, resource.message());
        resource_metrics.message(2, scope_metrics);
        let mut request = Message::new();
        request.message(1, resource_metrics);
        Encoded {
            body: request.into_bytes(),
            points,
        }
    }

    /// The last request was delivered: its values are the new base for delta temporality.
    pub fn delivered(&mut self) {
        self.delivered.extend(self.pending.drain(..));
        self.delivered_at_ns = self.pending_at_ns;
    }

    /// One family as a `Metric` and its number of data points.
    fn metric(
        &mut self,
        exp: &Exposition<'_>,
        family: &Family<'_>,
        now_ns: u64,
    ) -> Option<(Message, usize)> {
        let (name, unit) = otel_name(family.name, family.kind);
        let (field, data, points) = match family.kind {
            MetricType::Counter => {
                let (data, n) = self.sum(exp, family, &name, now_ns);
                (7, data, n)
            }
            MetricType::Histogram => {
                let (data, n) = self.histogram(exp, family, &name, now_ns);
                (9, data, n)
            }
            MetricType::Gauge | MetricType::Untyped | MetricType::Info | MetricType::StateSet => {
                let (data, n) = gauge(exp, family, now_ns);
                (5, data, n)
            }
            // Summaries and gauge histograms: no process of ours writes them.
            MetricType::Summary | MetricType::GaugeHistogram => return None,
        };
        if points == 0 {
            return None;
        }
        let mut metric = Message::new();
        metric.string(1, &name);
        metric.string(2, family.help.as_deref().unwrap_or_default());
        metric.string(3, unit);
        metric.message(field, data);
        Some((metric, points))
    }

    /// The start of a data point's interval and its temporality.
    fn interval(&self) -> (u64, u64) {
        match self.temporality {
            Temporality::Cumulative => (self.start_ns, CUMULATIVE),
            Temporality::Delta => (self.delivered_at_ns, DELTA),
        }
    }

    fn sum(
        &mut self,
        exp: &Exposition<'_>,
        family: &Family<'_>,
        name: &str,
        now_ns: u64,
    ) -> (Message, usize) {
        let (start, temporality) = self.interval();
        let extra = self.extra(name);
        let mut sum = Message::new();
        let mut n = 0;
        for s in exp.samples_of(family) {
            if !s.name.ends_with("_total") && s.name != family.name {
                continue; // `_created`
            }
            let labels = exp.labels_of(s);
            let key = series_key(name, labels);
            let value = match (self.temporality, self.delivered.get(&key)) {
                (Temporality::Delta, Some(Delivered::Sum(before))) if s.value >= *before => {
                    s.value - before
                }
                _ => s.value,
            };
            self.pending.push((key, Delivered::Sum(s.value)));
            let mut point = number_point(labels, &extra, start, now_ns);
            point.double_always(4, value);
            sum.message(1, point);
            n += 1;
        }
        sum.uint(2, temporality);
        sum.uint(3, 1);
        (sum, n)
    }

    fn histogram(
        &mut self,
        exp: &Exposition<'_>,
        family: &Family<'_>,
        name: &str,
        now_ns: u64,
    ) -> (Message, usize) {
        let (start, temporality) = self.interval();
        let extra = self.extra(name);
        let mut histogram = Message::new();
        let mut n = 0;
        for series in histogram_series(exp, family) {
            let key = series_key(name, &series.labels);
            let buckets = series.bucket_counts();
            let now = Delivered::Histogram {
                count: series.count,
                sum: series.sum,
                buckets: buckets.clone(),
            };
            let (count, sum, buckets) = match (self.temporality, self.delivered.get(&key)) {
                (
                    Temporality::Delta,
                    Some(Delivered::Histogram {
                        count,
                        sum,
                        buckets: before,
                    }),
                ) if series.count >= *count && before.len() == buckets.len() => (
                    series.count - count,
                    series.sum - sum,
                    buckets
                        .iter()
                        .zip(before)
                        .map(|(a, b)| a.saturating_sub(*b))
                        .collect(),
                ),
                _ => (series.count, series.sum, buckets),
            };
            self.pending.push((key, now));
            let mut point = Message::new();
            write_labels(&mut point, 9, &series.labels);
            write_attributes(&mut point, 9, &extra);
            point.fixed64(2, start);
            point.fixed64(3, now_ns);
            point.fixed64(4, count as u64);
            point.double_always(5, sum);
            point.packed_fixed64(6, &buckets);
            point.packed_double(7, &series.bounds);
            histogram.message(1, point);
            n += 1;
        }
        histogram.uint(2, temporality);
        (histogram, n)
    }
}

/// A `NumberDataPoint` with its attributes (`extra` after the labels) and times; the caller
/// adds the value.
fn number_point(
    labels: &[Label<'_>],
    extra: &[(&'static str, Value)],
    start: u64,
    now_ns: u64,
) -> Message {
    let mut point = Message::new();
    write_labels(&mut point, 7, labels);
    write_attributes(&mut point, 7, extra);
    point.fixed64(2, start);
    point.fixed64(3, now_ns);
    point
}

/// Writes a point's labels as string attributes under their OpenTelemetry names.
fn write_labels(point: &mut Message, field: u32, labels: &[Label<'_>]) {
    for label in labels {
        point.string_kv(field, otel_attribute(label.name), &label.value);
    }
}

fn gauge(exp: &Exposition<'_>, family: &Family<'_>, now_ns: u64) -> (Message, usize) {
    let mut gauge = Message::new();
    let mut n = 0;
    for s in exp.samples_of(family) {
        let mut point = number_point(exp.labels_of(s), &[], 0, now_ns);
        point.double_always(4, s.value);
        gauge.message(1, point);
        n += 1;
    }
    (gauge, n)
}

fn series_key(name: &str, labels: &[Label<'_>]) -> SeriesKey {
    let mut attrs: Vec<(String, String)> = labels
        .iter()
        .map(|l| (l.name.to_string(), l.value.to_string()))
        .collect();
    attrs.sort();
    (name.to_string(), attrs)
}

/// One histogram series gathered from its `_bucket`, `_sum` and `_count` samples.
struct HistogramSeries<'a> {
    /// Its labels apart from `le`.
    labels: Vec<Label<'a>>,
    /// Finite bounds, rising, and the cumulative count at each bound and at `+Inf`.
    bounds: Vec<f64>,
    cumulative: Vec<f64>,
    count: f64,
    sum: f64,
}

impl HistogramSeries<'_> {
    /// Per-bucket counts (OTLP's, not cumulative): one per bound and one above the last.
    fn bucket_counts(&self) -> Vec<u64> {
        let mut below = 0.0;
        self.cumulative
            .iter()
            .map(|c| {
                let n = (c - below).max(0.0);
                below = *c;
                n as u64
            })
            .collect()
    }
}

/// The series of a histogram family, in order of first appearance.
fn histogram_series<'a>(exp: &Exposition<'a>, family: &Family<'a>) -> Vec<HistogramSeries<'a>> {
    let mut out: Vec<HistogramSeries<'a>> = Vec::new();
    for s in exp.samples_of(family) {
        let all = exp.labels_of(s);
        let labels: Vec<Label<'a>> = all.iter().filter(|l| l.name != "le").cloned().collect();
        let at = match out.iter().position(|h| h.labels == labels) {
            Some(at) => at,
            None => {
                out.push(HistogramSeries {
                    labels,
                    bounds: Vec::new(),
                    cumulative: Vec::new(),
                    count: 0.0,
                    sum: 0.0,
                });
                out.len() - 1
            }
        };
        let series = &mut out[at];
        match s.name.strip_prefix(family.name).unwrap_or_default() {
            "_bucket" => {
                let le = all
                    .iter()
                    .find(|l| l.name == "le")
                    .map(|l| l.value.as_ref());
                match le.and_then(|v| v.parse::<f64>().ok()) {
                    Some(bound) if bound.is_finite() => {
                        series.bounds.push(bound);
                        series.cumulative.push(s.value);
                    }
                    Some(_) => series.cumulative.push(s.value),
                    None => {}
                }
            }
            "_count" => series.count = s.value,
            "_sum" => series.sum = s.value,
            _ => {}
        }
    }
    // A histogram without its `+Inf` bucket is written with one from its count.
    for series in &mut out {
        if series.cumulative.len() == series.bounds.len() {
            series.cumulative.push(series.count);
        }
    }
    out
}
