//! Renders an [`Analysis`]: a human table, one JSON object, or the canonical exposition.

use std::fmt::Write as _;

use serde_json::{Map, Value as Json, json};

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

/// Renders `analysis` in `format`.
pub fn render(analysis: &Analysis, format: Format) -> String {
    match format {
        Format::Table => table(analysis),
        Format::Json => {
            let mut out = serde_json::to_string_pretty(&to_json(analysis)).unwrap_or_default();
            out.push('\n');
            out
        }
        Format::Prom => prom(analysis),
    }
}

fn fmt_number(v: f64) -> String {
    let mut out = String::new();
    write_value(&mut out, v);
    out
}

fn describe_value(value: &Value) -> String {
    match value {
        Value::Scalar(v) => fmt_number(*v),
        Value::Histogram(h) if h.count > 0.0 => format!(
            "n={} mean={} ({} buckets)",
            fmt_number(h.count),
            fmt_number(h.sum / h.count),
            h.buckets.len()
        ),
        Value::Histogram(h) => format!("n=0 ({} buckets)", h.buckets.len()),
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
        for (i, s) in r.series.iter().enumerate() {
            let first = i == 0;
            let name = if first { r.signal.name } else { "" };
            let kind = if first { r.source.kind() } else { "" };
            let detail = if first { detail.as_str() } else { "" };
            let mut value = describe_value(&s.value);
            if let Some(outcome) = s.outcome {
                value = format!("{outcome}={value}");
            }
            let line = format!(
                "{name:<34} {kind:<8} {:<model_width$} {value:<26} {detail}",
                s.model
            );
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out
}

fn histogram_json(h: &Histogram) -> Json {
    let buckets: Vec<Json> = h
        .buckets
        .iter()
        .map(|(le, count)| json!({"le": fmt_number(*le), "count": count}))
        .collect();
    json!({"buckets": buckets, "sum": h.sum, "count": h.count})
}

fn reading_json(r: &Reading) -> Json {
    let values: Vec<Json> = r
        .series
        .iter()
        .map(|s| {
            let mut obj = Map::new();
            obj.insert("model".into(), json!(s.model));
            if let Some(outcome) = s.outcome {
                obj.insert("outcome".into(), json!(outcome));
            }
            match &s.value {
                Value::Scalar(v) => obj.insert("value".into(), json!(v)),
                Value::Histogram(h) => obj.insert("histogram".into(), histogram_json(h)),
            };
            Json::Object(obj)
        })
        .collect();
    let mut obj = json!({
        "type": r.signal.kind.as_str(),
        "unit": r.signal.unit,
        "source": r.source.kind(),
        "values": values,
    });
    let fields = match &r.source {
        Source::Native(used) => json!({"series": used}),
        Source::Derived { formula, used } => json!({"formula": formula, "series": used}),
        Source::Missing(reason) => json!({"reason": reason}),
    };
    if let (Some(obj), Json::Object(extra)) = (obj.as_object_mut(), fields) {
        obj.extend(extra);
        if !r.note.is_empty() {
            obj.insert("note".into(), json!(r.note));
        }
    }
    obj
}

/// The JSON object: `engine`, `version`, `signals` keyed by canonical name, and more.
pub fn to_json(a: &Analysis) -> Json {
    let signals: Map<String, Json> = a
        .readings
        .iter()
        .map(|r| (r.signal.name.to_string(), reading_json(r)))
        .collect();
    let families: Vec<Json> = a
        .families
        .iter()
        .map(|f| json!({"name": f.name, "type": f.kind.as_text_004(), "samples": f.samples}))
        .collect();
    let mut out = json!({
        "target": a.origin,
        "engine": a.engine().map(|e| e.as_str()),
        "version": a.version(),
        "version_source": if a.probed.as_ref().is_some_and(|p| p.version.is_some()) { "endpoint" } else { "metrics" },
        "version_range": a.detection.version,
        "evidence": a.detection.evidence,
        "version_endpoint_error": a.probe_error,
        "samples": a.samples,
        "warnings": a.warnings,
        "signals": signals,
        "families": families,
    });
    // Only a GPU exporter's answer has GPUs.
    if let Some(gpu) = &a.gpu {
        out["gpu"] = super::render_gpu::to_json(gpu);
    }
    out
}

/// The canonical exposition: `llm_engine_info` and every present signal with `engine` and
/// `model` labels; a GPU exporter's `llm_gpu_*` series (`instance` is the origin). An unknown
/// engine yields only a comment, since nothing maps.
pub fn prom(a: &Analysis) -> String {
    let mut out = String::new();
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
