//! The JSON API's documents (see docs/api.md): targets and their health, the latest
//! canonical snapshot of each, and history of one signal over a window with rates and
//! quantiles.

use std::sync::Arc;

use serde_json::{Value as Json, json};

use crate::collect::history::{self, Part, Point, SeriesKey};
use crate::collect::state::{Store, TargetStatus};
use crate::engines::{Engine, SignalKind, Value, signal};

/// `/api/v1/history` parameters.
#[derive(Debug, serde::Deserialize)]
pub struct HistoryQuery {
    /// A canonical signal name.
    pub signal: String,
    /// How far back, e.g. `5m` (default `5m`).
    pub window: Option<String>,
    /// Only this target.
    pub target: Option<String>,
    /// Only this model.
    pub model: Option<String>,
}

/// `/api/v1/targets`.
pub fn targets(statuses: &[Arc<TargetStatus>]) -> Json {
    let list: Vec<Json> = statuses
        .iter()
        .map(|s| {
            let good = s.last_good.as_ref();
            json!({
                "name": s.target.name,
                "url": s.target.url,
                "labels": s.target.labels,
                "interval_seconds": s.target.interval.as_secs_f64(),
                "health": s.health,
                "engine": good.and_then(|g| g.engine).map(Engine::as_str),
                "gpu_exporter": good.and_then(|g| g.gpu.as_ref()).map(|g| g.source.as_str()),
                "version": good.map(|g| g.version.as_str()),
                "samples": good.map(|g| g.samples),
                "integrity": *s.integrity,
                "last_scrape_unix": s.last_attempt,
                "last_good_unix": good.map(|g| g.at),
                "last_duration_seconds": s.last_duration,
                "last_error": s.last_error.as_ref().map(|f| json!({
                    "reason": f.reason,
                    "message": f.message,
                })),
            })
        })
        .collect();
    json!({ "targets": list })
}

/// `/api/v1/snapshot`: every target's last good scrape, keyed by signal.
pub fn snapshot(statuses: &[Arc<TargetStatus>]) -> Json {
    let list: Vec<Json> = statuses
        .iter()
        .map(|s| {
            let mut signals = serde_json::Map::new();
            if let Some(good) = &s.last_good {
                for reading in good.readings.iter().filter(|r| !r.series.is_empty()) {
                    let series: Vec<Json> = reading
                        .series
                        .iter()
                        .map(|v| {
                            let mut entry = json!({ "model": v.model });
                            if let Some(outcome) = v.outcome {
                                entry["outcome"] = json!(outcome);
                            }
                            match &v.value {
                                Value::Scalar(x) => entry["value"] = number(*x),
                                Value::Histogram(h) => {
                                    entry["histogram"] = json!({
                                        "buckets": h.buckets.iter().map(|(le, c)| json!([bound(*le), c])).collect::<Vec<_>>(),
                                        "sum": number(h.sum),
                                        "count": number(h.count),
                                    });
                                }
                            }
                            entry
                        })
                        .collect();
                    signals.insert(reading.signal.name.to_string(), Json::Array(series));
                }
            }
            json!({
                "name": s.target.name,
                "health": s.health,
                "engine": s.last_good.as_ref().and_then(|g| g.engine).map(Engine::as_str),
                "version": s.last_good.as_ref().map(|g| g.version.as_str()),
                "at": s.last_good.as_ref().map(|g| g.at),
                "signals": signals,
            })
        })
        .collect();
    json!({ "targets": list })
}

/// JSON has no NaN or infinity: those become `null`.
fn number(v: f64) -> Json {
    serde_json::Number::from_f64(v).map_or(Json::Null, Json::Number)
}

/// A bucket bound, `"+Inf"` for the last.
fn bound(le: f64) -> Json {
    if le.is_infinite() {
        json!("+Inf")
    } else {
        number(le)
    }
}

/// `/api/v1/history`: per target and series of the signal, the points in the window and,
/// for counters, the per-second rate; for histograms, the rate of observations and the
/// p50/p90/p99 over the window.
pub fn history(store: &Store, q: &HistoryQuery) -> Result<Json, String> {
    let signal = signal(&q.signal).ok_or_else(|| format!("unknown signal {:?}", q.signal))?;
    let window = crate::cli::parse_duration(q.window.as_deref().unwrap_or("5m"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let since = now - window.as_secs_f64();
    let mut out = Vec::new();
    for status in store.statuses() {
        let name = &status.target.name;
        if q.target.as_ref().is_some_and(|t| t != name) {
            continue;
        }
        let series = store
            .with_history(name, |h| {
                let points = h.window(since);
                let points: Vec<&Point> = points.iter().collect();
                series_of(&points, signal.name, signal.kind, q.model.as_deref())
            })
            .unwrap_or_default();
        for mut entry in series {
            entry["target"] = json!(name);
            out.push(entry);
        }
    }
    Ok(json!({
        "signal": signal.name,
        "kind": signal.kind.as_str(),
        "window_seconds": window.as_secs_f64(),
        "series": out,
    }))
}

fn series_of(points: &[&Point], name: &str, kind: SignalKind, model: Option<&str>) -> Vec<Json> {
    let Some(last) = points.last() else {
        return Vec::new();
    };
    let main_part = if kind == SignalKind::Histogram {
        Part::Count
    } else {
        Part::Scalar
    };
    let keys: Vec<SeriesKey> = last
        .layout()
        .keys()
        .iter()
        .filter(|k| k.signal == name && k.part == main_part)
        .filter(|k| model.is_none_or(|m| k.model == m))
        .cloned()
        .collect();
    keys.iter()
        .map(|key| {
            let values: Vec<Json> = points
                .iter()
                .filter_map(|p| Some(json!([p.at, number(p.get(key)?)])))
                .collect();
            let mut entry = json!({ "model": key.model, "points": values });
            if let Some(outcome) = key.outcome {
                entry["outcome"] = json!(outcome);
            }
            if kind != SignalKind::Gauge {
                entry["rate_per_second"] = history::rate(points, key).map_or(Json::Null, number);
            }
            if kind == SignalKind::Histogram {
                let q = |q| history::quantile(points, key, q).map_or(Json::Null, |q| json!(q));
                entry["quantiles"] = json!({ "0.5": q(0.5), "0.9": q(0.9), "0.99": q(0.99) });
            }
            entry
        })
        .collect()
}
