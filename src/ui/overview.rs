//! `/api/v1/overview`: a row per target and model, each column's value over the window and a
//! sparkline, filtered, grouped, sorted and paged on the server, so a page of 1,000 targets
//! carries only the rows it shows. The numbers come from each target's rollup (sums per time
//! step kept as scrapes arrive, `collect::rollup`), not from its raw history.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Value as Json, json};

use super::api::{Query, compact, panel_header, plotted, reading, target_fields};
use super::query::{Reading, from_sums};
use crate::catalog::panels::OVERVIEW;
use crate::collect::rollup::Grid;
use crate::collect::state::{Health, Store, TargetStatus};

/// Rows per page unless asked otherwise, and the most a client may ask for.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// What the rows are sorted on.
#[derive(Debug, Clone, Copy, PartialEq)]
enum SortBy {
    /// Target, then model.
    Target,
    /// A column's line (panel index, line index).
    Column(usize, usize),
}

impl SortBy {
    /// `target`, `PANEL` (its first line) or `PANEL.LINE`, e.g. `ttft.2`.
    fn parse(text: Option<&str>) -> Result<SortBy, String> {
        let text = match text {
            None | Some("") | Some("target") => return Ok(SortBy::Target),
            Some(t) => t,
        };
        let (id, line) = match text.split_once('.') {
            Some((id, line)) => (id, line.parse::<usize>().map_err(|_| bad_sort(text))?),
            None => (text, 0),
        };
        let panel = OVERVIEW
            .iter()
            .position(|p| p.id == id)
            .ok_or_else(|| bad_sort(text))?;
        if line >= OVERVIEW[panel].lines.len() {
            return Err(bad_sort(text));
        }
        Ok(SortBy::Column(panel, line))
    }

    fn name(self) -> String {
        match self {
            SortBy::Target => "target".into(),
            SortBy::Column(p, l) => format!("{}.{l}", OVERVIEW[p].id),
        }
    }
}

fn bad_sort(text: &str) -> String {
    let columns: Vec<String> = OVERVIEW
        .iter()
        .flat_map(|p| (0..p.lines.len()).map(move |l| format!("{}.{l}", p.id)))
        .collect();
    format!(
        "sort: `{text}` is not `target` or a column ({})",
        columns.join(", ")
    )
}

/// One row before paging: its target, model, group, and the value it is sorted on (only
/// the rows on the page get the rest, so a page of 1,000 targets computes one line for
/// most of them, and none when sorted by target).
struct Row {
    status: Arc<TargetStatus>,
    model: Option<String>,
    group: Option<String>,
    key: Option<f64>,
}

impl Row {
    fn health(&self, now: f64) -> &'static str {
        match self.status.health {
            Health::Up if stale(&self.status, now) => "stale",
            Health::Up => "up",
            Health::Down => "down",
            Health::Unknown => "unknown",
        }
    }

    fn matches(&self, needle: &str, now: f64) -> bool {
        if needle.is_empty() {
            return true;
        }
        let good = self.status.last_good.as_ref();
        let fields = [
            Some(self.status.target.name.as_str()),
            self.model.as_deref(),
            good.and_then(|g| g.engine).map(|e| e.as_str()),
            good.map(|g| g.version.as_str()),
            Some(self.health(now)),
        ];
        fields
            .iter()
            .flatten()
            .any(|f| f.to_lowercase().contains(needle))
            || self
                .status
                .target
                .labels
                .iter()
                .any(|(k, v)| format!("{k}={v}").to_lowercase().contains(needle))
    }
}

/// Up, but the last good scrape is older than three intervals: the numbers are stale.
pub fn stale(status: &TargetStatus, now: f64) -> bool {
    let interval = status.target.interval.as_secs_f64();
    status
        .last_good
        .as_ref()
        .is_some_and(|g| now - g.at > 3.0 * interval.max(1.0))
}

/// Every row (a target without a model yet is one row; a GPU exporter none), with the value
/// of `by` over the window when sorting on a column.
fn rows(
    store: &Store,
    statuses: &[Arc<TargetStatus>],
    grid: &Grid,
    group: Option<&str>,
    by: SortBy,
) -> Vec<Row> {
    let line = match by {
        SortBy::Column(p, l) => Some(OVERVIEW[p].lines[l].measure),
        SortBy::Target => None,
    };
    let mut rows = Vec::new();
    // GPU exporters describe hardware, not model servers: /api/v1/gpus lists them.
    for status in statuses.iter().filter(|s| !s.is_gpu_exporter()) {
        let found = store
            .with_history(&status.target.name, |h| {
                let rollup = h.rollup();
                let key = |m: &str| {
                    let sums = rollup.total(m, grid)?;
                    from_sums(line?, &sums).map(Reading::plotted)
                };
                rollup
                    .models()
                    .iter()
                    .map(|m| (m.clone(), key(m)))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let group = group.and_then(|g| status.target.labels.get(g).cloned());
        if found.is_empty() {
            rows.push(Row {
                status: status.clone(),
                model: None,
                group: group.clone(),
                key: None,
            });
        }
        for (model, key) in found {
            rows.push(Row {
                status: status.clone(),
                model: Some(model),
                group: group.clone(),
                key,
            });
        }
    }
    rows
}

/// Missing values last, whatever the order.
fn by_value(a: Option<f64>, b: Option<f64>, descending: bool) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) if descending => y.total_cmp(&x),
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

fn name(row: &Row) -> (&str, Option<&str>) {
    (row.status.target.name.as_str(), row.model.as_deref())
}

fn sort(rows: &mut [Row], by: SortBy, descending: bool) {
    rows.sort_by(|a, b| {
        // Grouped rows stay together, groups in order, rows without the label last.
        let group = match (&a.group, &b.group) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        let within = match by {
            SortBy::Target if descending => name(b).cmp(&name(a)),
            SortBy::Target => name(a).cmp(&name(b)),
            SortBy::Column(..) => by_value(a.key, b.key, descending).then(name(a).cmp(&name(b))),
        };
        group.then(within)
    });
}

/// Each line of each column of a row on the page: its value over the window and a point per
/// step.
fn cells(store: &Store, row: &Row, grid: &Grid) -> Json {
    let sums = row.model.as_ref().and_then(|model| {
        store
            .with_history(&row.status.target.name, |h| {
                let rollup = h.rollup();
                Some((rollup.total(model, grid)?, rollup.steps(model, grid)?))
            })
            .flatten()
    });
    let Some((total, steps)) = sums else {
        return json!([]);
    };
    let columns = OVERVIEW.iter().map(|panel| {
        let lines = panel.lines.iter().map(|line| {
            let series: Vec<Option<f64>> = steps
                .iter()
                .map(|s| from_sums(line.measure, s).map(Reading::plotted))
                .collect();
            json!({
                "now": reading(from_sums(line.measure, &total)),
                "series": plotted(&series),
            })
        });
        Json::Array(lines.collect())
    });
    Json::Array(columns.collect())
}

/// The latest numbers of the GPUs a row's server uses (none without a GPU exporter that
/// attaches one).
fn gpu_cells(attached: Option<&Vec<crate::collect::gpus::Attached<'_>>>) -> Json {
    let gpus = attached.into_iter().flatten().map(|a| {
        let device = a.view.scrape.devices.get(a.device);
        json!({
            "exporter": a.view.instance,
            "gpu": device.and_then(|d| d.index.as_deref()),
            "gpu_instance": device.and_then(|d| d.key.instance.as_deref()),
            "gpu_model": device.and_then(|d| d.model.as_deref()),
            "via": a.via.as_str(),
            "utilization": a.value("llm_gpu_utilization_ratio"),
            "memory_used_bytes": a.value("llm_gpu_memory_used_bytes"),
            "memory_total_bytes": a.value("llm_gpu_memory_total_bytes"),
            "temperature_celsius": a.value("llm_gpu_temperature_celsius"),
            "power_watts": a.value("llm_gpu_power_watts"),
            "sm_clock_hertz": a.value("llm_gpu_sm_clock_hertz"),
            "last_xid": a.value("llm_gpu_last_xid"),
        })
    });
    Json::Array(gpus.collect())
}

/// `/api/v1/overview`.
pub fn overview(store: &Store, q: &Query, now: f64) -> Result<Json, String> {
    let window = crate::cli::parse_duration(q.window.as_deref().unwrap_or("5m"))?;
    let grid = Grid::new(now, window.as_secs_f64(), q.points.unwrap_or(30))?;
    let by = SortBy::parse(q.sort.as_deref())?;
    let descending = match q.order.as_deref() {
        None | Some("") => by != SortBy::Target,
        Some("desc") => true,
        Some("asc") => false,
        Some(other) => return Err(format!("order: `{other}` is not `asc` or `desc`")),
    };
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
    let offset = q.offset.unwrap_or(0);
    let group = q.group.as_deref().filter(|g| !g.is_empty());
    let statuses = store.statuses();
    let all = rows(store, &statuses, &grid, group, by);
    let mut health = std::collections::BTreeMap::<&str, usize>::new();
    for row in &all {
        *health.entry(row.health(now)).or_default() += 1;
    }
    let labels: BTreeSet<&str> = all
        .iter()
        .flat_map(|r| r.status.target.labels.keys().map(String::as_str))
        .collect();
    let labels: Vec<String> = labels.into_iter().map(str::to_string).collect();
    let count = all.len();
    let needle = q.filter.as_deref().unwrap_or("").trim().to_lowercase();
    let mut kept: Vec<Row> = all
        .into_iter()
        .filter(|r| r.matches(&needle, now))
        .collect();
    sort(&mut kept, by, descending);
    let attached = crate::collect::gpus::by_server(&statuses);
    let page: Vec<Json> = kept
        .iter()
        .skip(offset)
        .take(limit)
        .map(|row| {
            let mut out = target_fields(&row.status, now);
            out["model"] = json!(row.model);
            out["group"] = json!(row.group);
            out["cells"] = cells(store, row, &grid);
            out["gpus"] = gpu_cells(attached.get(row.status.target.name.as_str()));
            out
        })
        .collect();
    Ok(json!({
        "now": now,
        "window_seconds": window.as_secs_f64(),
        "step_seconds": compact(grid.step_seconds()),
        "points": grid.count(),
        "columns": OVERVIEW.iter().map(panel_header).collect::<Vec<_>>(),
        "sort": by.name(),
        "order": if descending { "desc" } else { "asc" },
        "group": group,
        "labels": labels,
        "health": health,
        "rows_total": count,
        "gpus": !attached.is_empty(),
        "matching": kept.len(),
        "offset": offset,
        "limit": limit,
        "rows": page,
    }))
}
