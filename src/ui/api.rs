//! The dashboard's data: `/api/v1/overview` (a row per target and model, each column's
//! current value and a sparkline) and `/api/v1/detail` (one target and model: every chart of
//! the detail page, and which signals the engine gives natively, derives or lacks). Computed
//! on the server from `up`'s history, outside its locks, from the panel catalogue.

use std::sync::Arc;

use serde_json::{Value as Json, json};

use super::query::{self, Reading};
use crate::catalog::panels::{DETAIL, Measure, OVERVIEW, Panel};
use crate::collect::history::Point;
use crate::collect::state::{Store, TargetStatus};
use crate::engines::{Engine, Source};

/// Points per sparkline unless asked otherwise, and the most a client may ask for.
const DEFAULT_POINTS: usize = 30;
const MAX_POINTS: usize = 240;

/// Query parameters of both routes.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Query {
    /// How far back, e.g. `15m` (default `5m`).
    pub window: Option<String>,
    /// Points per series (default 30, at most 240).
    pub points: Option<usize>,
    /// The target (detail).
    pub target: Option<String>,
    /// The model (detail; the target's first by default).
    pub model: Option<String>,
}

/// The window and grid a query asks for.
struct Span {
    now: f64,
    window: f64,
    times: Vec<f64>,
    step: f64,
}

impl Span {
    fn of(q: &Query, now: f64) -> Result<Span, String> {
        let window = crate::cli::parse_duration(q.window.as_deref().unwrap_or("5m"))?;
        let points = q.points.unwrap_or(DEFAULT_POINTS).clamp(2, MAX_POINTS);
        let (times, step) = query::grid(now, window.as_secs_f64(), points);
        Ok(Span {
            now,
            window: window.as_secs_f64(),
            times,
            step,
        })
    }
}

/// A number with four significant digits: sparklines need no more, and 1,000 rows of them
/// must stay small.
fn compact(v: f64) -> Json {
    if !v.is_finite() {
        return Json::Null;
    }
    if v == 0.0 {
        return json!(0);
    }
    let scale = 10f64.powi(3 - v.abs().log10().floor() as i32);
    serde_json::Number::from_f64((v * scale).round() / scale).map_or(Json::Null, Json::Number)
}

fn plotted(values: &[Option<f64>]) -> Json {
    Json::Array(
        values
            .iter()
            .map(|v| v.map_or(Json::Null, compact))
            .collect(),
    )
}

fn reading(value: Option<Reading>) -> Json {
    match value {
        Some(Reading::Number(v)) => compact(v),
        Some(r @ Reading::Quantile(_)) => json!(r),
        None => Json::Null,
    }
}

/// The points of `status`'s target in the window, copied out of its lock.
fn window_points(store: &Store, status: &TargetStatus, span: &Span) -> Vec<Point> {
    store
        .with_history(&status.target.name, |h| h.window(span.now - span.window))
        .unwrap_or_default()
}

/// What every row and the detail say about a target, whatever its data.
fn target_fields(status: &TargetStatus, now: f64) -> Json {
    let good = status.last_good.as_ref();
    let interval = status.target.interval.as_secs_f64();
    // Up, but the last good scrape is older than three intervals: the numbers are stale.
    let stale = good.is_some_and(|g| now - g.at > 3.0 * interval.max(1.0));
    json!({
        "target": status.target.name,
        "labels": status.target.labels,
        "health": status.health,
        "stale": stale,
        "engine": good.and_then(|g| g.engine).map(Engine::as_str),
        "version": good.map(|g| g.version.as_str()),
        "last_good_unix": good.map(|g| g.at),
        "error": status.last_error.as_ref().map(|f| json!({"reason": f.reason, "message": f.message})),
    })
}

/// Lookback of each step: the step, or two scrape intervals when longer.
fn lookback(status: &TargetStatus, span: &Span) -> f64 {
    span.step.max(2.0 * status.target.interval.as_secs_f64())
}

fn panel_header(panel: &Panel) -> Json {
    json!({
        "id": panel.id,
        "title": panel.title,
        "unit": panel.unit,
        "help": panel.help,
        "lines": panel.lines.iter().map(|l| l.label).collect::<Vec<_>>(),
    })
}

/// `/api/v1/overview`.
pub fn overview(store: &Store, q: &Query, now: f64) -> Result<Json, String> {
    let span = Span::of(q, now)?;
    let mut rows = Vec::new();
    for status in store.statuses() {
        let owned = window_points(store, &status, &span);
        let points: Vec<&Point> = owned.iter().collect();
        let models = query::models(&points);
        if models.is_empty() {
            let mut row = target_fields(&status, now);
            row["model"] = Json::Null;
            row["cells"] = json!([]);
            rows.push(row);
        }
        let back = lookback(&status, &span);
        for model in models {
            let cells: Vec<Json> = OVERVIEW
                .iter()
                .map(|panel| {
                    let lines: Vec<Json> = panel
                        .lines
                        .iter()
                        .map(|line| {
                            json!({
                                "now": reading(query::evaluate(line.measure, &points, &model)),
                                "series": plotted(&query::series(line.measure, &points, &model, &span.times, back)),
                            })
                        })
                        .collect();
                    Json::Array(lines)
                })
                .collect();
            let mut row = target_fields(&status, now);
            row["model"] = json!(model);
            row["cells"] = Json::Array(cells);
            rows.push(row);
        }
    }
    Ok(json!({
        "now": now,
        "window_seconds": span.window,
        "step_seconds": span.step,
        "columns": OVERVIEW.iter().map(panel_header).collect::<Vec<_>>(),
        "rows": rows,
    }))
}

/// `/api/v1/detail`: `Ok(None)` when the target is unknown.
pub fn detail(
    store: &Store,
    q: &Query,
    now: f64,
    client: Option<Json>,
) -> Result<Option<Json>, String> {
    let span = Span::of(q, now)?;
    let wanted = q.target.as_deref().ok_or("`target` is required")?;
    let Some(status) = store
        .statuses()
        .into_iter()
        .find(|s| s.target.name == wanted)
    else {
        return Ok(None);
    };
    let owned = window_points(store, &status, &span);
    let points: Vec<&Point> = owned.iter().collect();
    let models = query::models(&points);
    let model = q.model.clone().or_else(|| models.first().cloned());
    let mut out = target_fields(&status, now);
    out["models"] = json!(models);
    out["model"] = json!(model);
    out["window_seconds"] = json!(span.window);
    out["history_seconds"] = json!(points.first().map_or(0.0, |p| now - p.at));
    out["times"] = Json::Array(span.times.iter().map(|t| json!(t.round())).collect());
    let back = lookback(&status, &span);
    out["panels"] = match &model {
        Some(model) => Json::Array(
            DETAIL
                .iter()
                .map(|p| chart(p, &points, model, &span, back))
                .collect(),
        ),
        None => json!([]),
    };
    out["coverage"] = coverage(&status);
    out["client"] = client.unwrap_or(Json::Null);
    Ok(Some(out))
}

/// One chart: its header and a line per catalogue line (per outcome for a by-outcome line).
fn chart(panel: &Panel, points: &[&Point], model: &str, span: &Span, back: f64) -> Json {
    let mut lines = Vec::new();
    for line in panel.lines {
        if let Measure::RateByOutcome(signal) = line.measure {
            for outcome in query::outcomes(points, signal, model) {
                let crate::catalog::panels::Outcomes::Only([name]) = outcome else {
                    continue;
                };
                let measure = Measure::Rate(signal, outcome);
                lines.push(json!({
                    "label": name,
                    "now": reading(query::evaluate(measure, points, model)),
                    "values": plotted(&query::series(measure, points, model, &span.times, back)),
                }));
            }
            continue;
        }
        lines.push(json!({
            "label": line.label,
            "now": reading(query::evaluate(line.measure, points, model)),
            "values": plotted(&query::series(line.measure, points, model, &span.times, back)),
        }));
    }
    let mut header = panel_header(panel);
    header["lines"] = Json::Array(lines);
    header
}

/// Per signal, for the target's engine and version: native (the series read), derived (the
/// formula) or missing (why), from the last good scrape's normalisation.
fn coverage(status: &Arc<TargetStatus>) -> Json {
    let Some(good) = &status.last_good else {
        return json!([]);
    };
    let rows: Vec<Json> = good
        .readings
        .iter()
        .map(|r| {
            let mut row = json!({
                "signal": r.signal.name,
                "help": r.signal.help,
                "source": r.source.kind(),
                "note": (!r.note.is_empty()).then_some(r.note),
            });
            match &r.source {
                Source::Native(series) => row["series"] = json!(series),
                Source::Derived { formula, used } => {
                    row["formula"] = json!(formula);
                    row["series"] = json!(used);
                }
                Source::Missing(why) => row["reason"] = json!(why),
            }
            row
        })
        .collect();
    Json::Array(rows)
}
