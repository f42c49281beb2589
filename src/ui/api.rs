//! The dashboard's data: `/api/v1/detail` (one target and model: every chart of the detail
//! page, and which signals the engine gives natively, derives or lacks), computed from `up`'s
//! history outside its locks, from the panel catalogue; and what it shares with
//! `/api/v1/overview` (`super::overview`).

use std::sync::Arc;

use serde_json::{Value as Json, json};

use super::query::{self, Reading};
use crate::catalog::panels::{DETAIL, Measure, PROXY_OUTCOMES, Panel};
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
    /// Overview: `target` (default), a column `PANEL` or `PANEL.LINE` (e.g. `ttft.2`).
    pub sort: Option<String>,
    /// Overview: `asc` or `desc` (default: `asc` by target, `desc` by a column).
    pub order: Option<String>,
    /// Overview: keep rows whose target, model, engine, version, health or a `label=value`
    /// contains this text (any case).
    pub filter: Option<String>,
    /// Overview: a target label to group rows by.
    pub group: Option<String>,
    /// Overview: rows to skip (paging).
    pub offset: Option<usize>,
    /// Overview: rows to send (default 100, at most 1,000).
    pub limit: Option<usize>,
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
pub(super) fn compact(v: f64) -> Json {
    if !v.is_finite() {
        return Json::Null;
    }
    if v == 0.0 {
        return json!(0);
    }
    let scale = 10f64.powi(3 - v.abs().log10().floor() as i32);
    serde_json::Number::from_f64((v * scale).round() / scale).map_or(Json::Null, Json::Number)
}

pub(super) fn plotted(values: &[Option<f64>]) -> Json {
    Json::Array(
        values
            .iter()
            .map(|v| v.map_or(Json::Null, compact))
            .collect(),
    )
}

pub(super) fn reading(value: Option<Reading>) -> Json {
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
pub(super) fn target_fields(status: &TargetStatus, now: f64) -> Json {
    let good = status.last_good.as_ref();
    let stale = super::overview::stale(status, now);
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

pub(super) fn panel_header(panel: &Panel) -> Json {
    json!({
        "id": panel.id,
        "title": panel.title,
        "unit": panel.unit,
        "help": panel.help,
        "lines": panel.lines.iter().map(|l| l.label).collect::<Vec<_>>(),
    })
}

/// What the proxy running in `up` saw for one model: the TTFT gap to the engines, and its
/// requests by outcome.
#[derive(Debug, Default)]
pub struct ClientSide {
    /// `/api/v1/client_gap`'s entry for the model.
    pub gap: Option<Json>,
    /// Requests per second by outcome, over the detail's grid.
    pub outcomes: Vec<crate::proxy::recent::OutcomeRate>,
}

/// The detail's grid, for the client side: each step's end (Unix seconds), the step and the
/// window, in seconds.
pub type Grid<'a> = (&'a [f64], f64, f64);

/// `/api/v1/detail`: `Ok(None)` when the target is unknown. `client` gives the proxy's view
/// of the model shown, when the proxy runs.
pub fn detail(
    store: &Store,
    q: &Query,
    now: f64,
    client: impl FnOnce(&str, Grid<'_>) -> ClientSide,
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
    let client = model
        .as_deref()
        .map(|m| client(m, (&span.times, span.step, span.window)))
        .unwrap_or_default();
    out["panels"] = match &model {
        Some(model) => {
            let mut panels: Vec<Json> = DETAIL
                .iter()
                .map(|p| chart(p, &points, model, &span, back))
                .collect();
            if !client.outcomes.is_empty() {
                // Beside the engine's outcomes.
                let at = DETAIL
                    .iter()
                    .position(|p| p.id == "outcomes")
                    .map_or(0, |i| i + 1);
                panels.insert(at, proxy_chart(&client.outcomes));
            }
            Json::Array(panels)
        }
        None => json!([]),
    };
    out["coverage"] = coverage(&status);
    out["scrape"] = scrape_health(store, &status, now - span.window);
    out["client"] = client.gap.unwrap_or(Json::Null);
    Ok(Some(out))
}

/// How the target's scrapes go: its interval, its sample count now and at the window's
/// start (a label's cardinality growing), and the integrity problems seen.
fn scrape_health(store: &Store, status: &TargetStatus, since: f64) -> Json {
    let first = store
        .with_sample_counts(&status.target.name, |c| c.first_since(since))
        .flatten();
    json!({
        "interval_seconds": status.target.interval.as_secs_f64(),
        "samples": status.last_good.as_ref().map(|g| g.samples),
        "samples_at_window_start": first.map(|(_, n)| n),
        "integrity": *status.integrity,
    })
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

/// The proxy's outcomes as a chart of the catalogue's [`PROXY_OUTCOMES`] panel.
fn proxy_chart(outcomes: &[crate::proxy::recent::OutcomeRate]) -> Json {
    let mut header = panel_header(&PROXY_OUTCOMES);
    header["lines"] = outcomes
        .iter()
        .map(|o| {
            json!({
                "label": o.outcome,
                "now": o.now.map_or(Json::Null, compact),
                "values": plotted(&o.values),
            })
        })
        .collect();
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
