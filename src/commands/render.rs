//! Renders an [`Analysis`]: a human table, one JSON object, or the canonical exposition.

use std::fmt::Write as _;

use serde_json::Value as Json;

use super::scrape::Analysis;
use crate::engines::canonical::{View, write_canonical};
use crate::engines::{Histogram, Reading, Source, Value};
use crate::exposition::write::write_value;

/// Output format of `scrape`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned table for people.
    Table,
    /// One JSON object.
    Json,
    /// The canonical `llm_*` exposition, Prometheus text 0.0.4.
    Prom,
}

/// Writes `analysis` in `format` to `out`. The JSON answer (`engine`, `version`, `signals`
/// keyed by canonical name, and more) is streamed, never held whole: a 400-model scrape's
/// answer is 7 MB, and each fresh page of a buffer that size costs a page fault.
pub fn write_to(
    analysis: &Analysis,
    format: Format,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &analysis_json(analysis))?;
            out.write_all(b"\n")
        }
        Format::Table => out.write_all(table(analysis).as_bytes()),
        Format::Prom => out.write_all(prom(analysis).as_bytes()),
    }
}

/// About how many bytes [`prom`] writes for `readings` (a line of up to about 128 bytes per
/// value, bucket, sum and count), so a large body's output is not copied as it grows: a
/// 400-model vLLM body writes 8 MB in 73,000 lines. Capacity never written is never touched.
fn prom_size(readings: &[Reading]) -> usize {
    let lines: usize = readings
        .iter()
        .flat_map(|r| &r.series)
        .map(|s| match &s.value {
            Value::Histogram(h) => h.buckets.len() + 2,
            Value::Scalar(_) => 1,
        })
        .sum();
    (lines + 64) * 128
}

/// A value as the table shows it: a number as the exposition writes it, or a histogram's
/// count, mean and number of buckets.
fn write_described(out: &mut String, value: &Value) {
    match value {
        Value::Scalar(v) => write_value(out, *v),
        Value::Histogram(h) if h.count > 0.0 => {
            out.push_str("n=");
            write_value(out, h.count);
            out.push_str(" mean=");
            write_value(out, h.sum / h.count);
            let _ = write!(out, " ({} buckets)", h.buckets.len());
        }
        Value::Histogram(h) => {
            let _ = write!(out, "n=0 ({} buckets)", h.buckets.len());
        }
    }
}

fn source_detail(reading: &Reading) -> String {
    let mut detail = match &reading.source {
        Source::Native(used) => used.join(", "),
        Source::Derived { formula, .. } => formula.clone(),
        Source::Missing(reason) => reason.clone(),
    };
    if !reading.note.is_empty() {
        let _ = write!(detail, " [{}]", reading.note);
    }
    detail
}

/// The engine and version lines of the table.
fn engine_lines(out: &mut String, a: &Analysis) {
    let engine = a.engine().map_or("unknown engine", |e| e.as_str());
    let _ = writeln!(out, "engine   {engine}");
    match &a.probed {
        Some(p) => match &p.version {
            Some(version) => {
                let _ = writeln!(
                    out,
                    "version  {version} (from {}; metrics say {})",
                    p.path, a.detection.version
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "version  {} (from the metrics; {} names no build)",
                    a.detection.version, p.path
                );
            }
        },
        None => {
            let _ = writeln!(out, "version  {} (from the metrics)", a.detection.version);
        }
    }
    if let Some(err) = &a.probe_error {
        let _ = writeln!(out, "         version endpoint unavailable: {err}");
    }
}

/// The human table.
pub fn table(a: &Analysis) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "target   {}", a.origin);
    match &a.gpu {
        // A GPU exporter: no engine or version to speak of.
        Some(gpu) => {
            let _ = writeln!(
                out,
                "exporter {} (GPUs, not an engine)",
                gpu.source.as_str()
            );
        }
        None => engine_lines(&mut out, a),
    }
    let _ = writeln!(
        out,
        "body     {} families, {} samples",
        a.families.len(),
        a.samples
    );
    for w in &a.warnings {
        let _ = writeln!(out, "warning  {w}");
    }
    out.push('\n');
    if let Some(gpu) = &a.gpu {
        out.push_str(&super::render_gpu::table(gpu));
        return out;
    }
    if a.engine().is_none() {
        let _ = writeln!(out, "unknown engine: raw families follow");
        let _ = writeln!(out, "{:<60} {:<10} SAMPLES", "FAMILY", "TYPE");
        for f in &a.families {
            let _ = writeln!(
                out,
                "{:<60} {:<10} {}",
                f.name,
                f.kind.as_text_004(),
                f.samples
            );
        }
        return out;
    }
    let model_width = a
        .readings
        .iter()
        .flat_map(|r| r.series.iter().map(|s| s.model.len()))
        .max()
        .unwrap_or(0)
        .max("MODEL".len());
    let _ = writeln!(
        out,
        "{:<34} {:<8} {:<model_width$} {:<26} FROM",
        "SIGNAL", "SOURCE", "MODEL", "VALUE"
    );
    for r in &a.readings {
        let detail = source_detail(r);
        if r.series.is_empty() {
            let value = if matches!(r.source, Source::Missing(_)) {
                "-"
            } else if r.note == crate::collect::integrity::LEFT_OUT {
                "left out (invalid)"
            } else {
                "no data yet"
            };
            let _ = writeln!(
                out,
                "{:<34} {:<8} {:<model_width$} {value:<26} {detail}",
                r.signal.name,
                r.source.kind(),
                ""
            );
            continue;
        }
        let mut value = String::new();
        for (i, s) in r.series.iter().enumerate() {
            let first = i == 0;
            let name = if first { r.signal.name } else { "" };
            let kind = if first { r.source.kind() } else { "" };
            let detail = if first { detail.as_str() } else { "" };
            value.clear();
            if let Some(outcome) = s.outcome {
                let _ = write!(value, "{outcome}=");
            }
            write_described(&mut value, &s.value);
            let start = out.len();
            for (cell, width) in [(name, 34), (kind, 8), (&s.model, model_width), (&value, 26)] {
                padded(&mut out, cell, width);
                out.push(' ');
            }
            out.push_str(detail);
            let kept = out.get(start..).map_or(0, |line| line.trim_end().len());
            out.truncate(start + kept);
            out.push('\n');
        }
    }
    out
}

/// `text` left-aligned in `width` characters, as `{:<width$}` writes it; a table of 400
/// models has ten thousand lines, where formatting each into its own `String` cost more
/// than the parse.
fn padded(out: &mut String, text: &str, width: usize) {
    const BLANKS: &str = "                                                                ";
    out.push_str(text);
    let mut missing = width.saturating_sub(text.chars().count());
    while missing > 0 {
        let n = missing.min(BLANKS.len());
        out.push_str(&BLANKS[..n]);
        missing -= n;
    }
}

/// A number written as the exposition writes it (`+Inf`, `0.005`), as a JSON string.
struct ExpositionNumber(f64);

impl serde::Serialize for ExpositionNumber {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut text = String::with_capacity(24);
        write_value(&mut text, self.0);
        serializer.serialize_str(&text)
    }
}

// The JSON answer is serialised straight from the analysis: building a `serde_json::Value`
// tree first (and dropping it) was a third of `scrape --format json` on a 400-model body.
// Fields are declared in alphabetical order, the order the tree's sorted maps gave.

#[derive(serde::Serialize)]
struct BucketJson {
    count: f64,
    le: ExpositionNumber,
}

#[derive(serde::Serialize)]
struct HistogramJson {
    buckets: Vec<BucketJson>,
    count: f64,
    sum: f64,
}

#[derive(serde::Serialize)]
struct SeriesJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    histogram: Option<HistogramJson>,
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<f64>,
}

#[derive(serde::Serialize)]
struct ReadingJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    formula: Option<&'a str>,
    #[serde(skip_serializing_if = "str::is_empty")]
    note: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    series: Option<&'a [String]>,
    source: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    unit: &'static str,
    values: Vec<SeriesJson<'a>>,
}

fn histogram_json(h: &Histogram) -> HistogramJson {
    let buckets = h
        .buckets
        .iter()
        .map(|(le, count)| BucketJson {
            count: *count,
            le: ExpositionNumber(*le),
        })
        .collect();
    HistogramJson {
        buckets,
        count: h.count,
        sum: h.sum,
    }
}

fn reading_json(r: &Reading) -> ReadingJson<'_> {
    let values = r
        .series
        .iter()
        .map(|s| {
            let (value, histogram) = match &s.value {
                Value::Scalar(v) => (Some(*v), None),
                Value::Histogram(h) => (None, Some(histogram_json(h))),
            };
            SeriesJson {
                histogram,
                model: &s.model,
                outcome: s.outcome,
                value,
            }
        })
        .collect();
    let (formula, series, reason) = match &r.source {
        Source::Native(used) => (None, Some(used.as_slice()), None),
        Source::Derived { formula, used } => (Some(formula.as_str()), Some(used.as_slice()), None),
        Source::Missing(reason) => (None, None, Some(reason.as_str())),
    };
    ReadingJson {
        formula,
        note: r.note,
        reason,
        series,
        source: r.source.kind(),
        kind: r.signal.kind.as_str(),
        unit: r.signal.unit,
        values,
    }
}

/// The readings as one JSON object keyed by canonical name, in name order.
struct SignalsJson<'a>(&'a [Reading]);

impl serde::Serialize for SignalsJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut sorted: Vec<&Reading> = self.0.iter().collect();
        sorted.sort_by_key(|r| r.signal.name);
        let mut map = serializer.serialize_map(Some(sorted.len()))?;
        for r in sorted {
            map.serialize_entry(r.signal.name, &reading_json(r))?;
        }
        map.end()
    }
}

#[derive(serde::Serialize)]
struct FamilyJson<'a> {
    name: &'a str,
    samples: usize,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(serde::Serialize)]
struct AnalysisJson<'a> {
    engine: Option<&'static str>,
    evidence: &'a [String],
    families: Vec<FamilyJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gpu: Option<Json>,
    samples: usize,
    signals: SignalsJson<'a>,
    target: &'a str,
    version: &'a str,
    version_endpoint_error: Option<&'a str>,
    version_range: &'a str,
    version_source: &'static str,
    warnings: &'a [String],
}

fn analysis_json(a: &Analysis) -> AnalysisJson<'_> {
    let families = a
        .families
        .iter()
        .map(|f| FamilyJson {
            name: &f.name,
            samples: f.samples,
            kind: f.kind.as_text_004(),
        })
        .collect();
    let probed = a.probed.as_ref().is_some_and(|p| p.version.is_some());
    AnalysisJson {
        engine: a.engine().map(|e| e.as_str()),
        evidence: &a.detection.evidence,
        families,
        // Only a GPU exporter's answer has GPUs.
        gpu: a.gpu.as_ref().map(super::render_gpu::to_json),
        samples: a.samples,
        signals: SignalsJson(&a.readings),
        target: &a.origin,
        version: a.version(),
        version_endpoint_error: a.probe_error.as_deref(),
        version_range: &a.detection.version,
        version_source: if probed { "endpoint" } else { "metrics" },
        warnings: &a.warnings,
    }
}

/// The canonical exposition: `llm_engine_info` and every present signal with `engine` and
/// `model` labels; a GPU exporter's `llm_gpu_*` series (`instance` is the origin). An unknown
/// engine yields only a comment, since nothing maps.
pub fn prom(a: &Analysis) -> String {
    let mut out = String::with_capacity(prom_size(&a.readings));
    if let Some(gpu) = &a.gpu {
        let labels = std::collections::BTreeMap::new();
        let view = crate::gpu::GpuView {
            instance: &a.origin,
            labels: &labels,
            scrape: gpu,
        };
        crate::gpu::write_gpus(&mut out, &[view], &Default::default());
        return out;
    }
    let Some(engine) = a.engine() else {
        out.push_str("# unknown engine: no canonical series\n");
        return out;
    };
    let labels = std::collections::BTreeMap::new();
    let view = View {
        instance: None,
        labels: &labels,
        engine,
        version: a.version(),
        readings: &a.readings,
    };
    write_canonical(&mut out, &[view]);
    out
}
