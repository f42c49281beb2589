//! Drawing `top`'s screen with ratatui: a header, the overview table (columns dropped from
//! the right on narrow terminals), a detail pane with a sparkline per line, and the help.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, Wrap};
use serde_json::Value as Json;

use super::view::View;

/// Block characters for sparklines, lowest to highest.
const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// The overview's columns `top` shows, by panel id and line, with their header and width.
const SHOWN: [(&str, usize, &str, u16); 9] = [
    ("requests", 0, "req/s", 6),
    ("tokens", 1, "gen tok/s", 9),
    ("errors", 0, "errors", 7),
    ("ttft", 2, "TTFT p99", 9),
    ("itl", 0, "ITL p95", 8),
    ("e2e", 0, "e2e p95", 8),
    ("load", 0, "run", 4),
    ("load", 1, "wait", 5),
    ("kv", 0, "KV", 5),
];

/// Width of the GPU column.
const GPU_WIDTH: u16 = 14;

/// The first GPU of a row's server: utilisation (or `XID N` when it reported one) and memory
/// used of the total in GiB, `+N` for more GPUs; `-` without one.
pub fn gpu_text(gpus: &Json) -> String {
    let Some(list) = gpus.as_array().filter(|l| !l.is_empty()) else {
        return "-".into();
    };
    let first = &list[0];
    let gib = |key: &str| {
        first[key]
            .as_f64()
            .map_or("-".into(), |b| format!("{:.0}", b / 1_073_741_824.0))
    };
    // A GPU that reported an XID error shows it where its utilisation would be: after an
    // XID the utilisation says little (79: the GPU fell off the bus).
    let mut text = match first["last_xid"].as_f64() {
        Some(code) if code > 0.0 => format!("XID {code:.0}"),
        _ => first["utilization"]
            .as_f64()
            .map_or("-".into(), |u| number(u, "ratio")),
    };
    text.push_str(&format!(
        " {}/{}G",
        gib("memory_used_bytes"),
        gib("memory_total_bytes")
    ));
    if list.len() > 1 {
        text.push_str(&format!(" +{}", list.len() - 1));
    }
    text
}

/// A number as the web page writes it.
pub fn number(v: f64, unit: &str) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    if v == 0.0 {
        return "0".into();
    }
    match unit {
        "ratio" => format!("{:.*}%", usize::from(v < 0.1), v * 100.0),
        "seconds" if v < 1.0 => format!("{:.*}ms", if v < 0.01 { 2 } else { 0 }, v * 1000.0),
        "seconds" => format!("{v:.2}s"),
        _ if v.fract() == 0.0 && v < 1000.0 => format!("{v}"),
        _ if v >= 1000.0 => format!("{:.1}k", v / 1000.0),
        _ if v >= 10.0 => format!("{v:.0}"),
        _ if v >= 1.0 => format!("{v:.1}"),
        _ => format!("{v:.2}"),
    }
}

/// A value from the API: a number, or `{"at_most": B}` / `{"above": B}` for a bound.
pub fn reading(v: &Json, unit: &str) -> String {
    if let Some(b) = v["at_most"].as_f64() {
        return format!("≤{}", number(b, unit));
    }
    if let Some(b) = v["above"].as_f64() {
        return format!(">{}", number(b, unit));
    }
    v.as_f64().map_or("-".into(), |x| number(x, unit))
}

/// A sparkline of `values` in `width` characters (the latest at the right; gaps as spaces).
pub fn sparkline(values: &[Json], width: usize) -> String {
    let values: Vec<Option<f64>> = values.iter().map(Json::as_f64).collect();
    let start = values.len().saturating_sub(width);
    let shown = &values[start..];
    let present: Vec<f64> = shown.iter().flatten().copied().collect();
    let (lo, hi) = present
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(*v), b.max(*v))
        });
    let lo = lo.min(0.0);
    shown
        .iter()
        .map(|v| match v {
            None => ' ',
            // A flat line: mid-height when above zero.
            Some(v) if hi <= lo => {
                if *v > 0.0 {
                    BARS[3]
                } else {
                    BARS[0]
                }
            }
            Some(v) => {
                let i = ((v - lo) / (hi - lo) * 7.0).round().clamp(0.0, 7.0) as usize;
                BARS[i]
            }
        })
        .collect()
}

fn column_index(columns: &[&Json], id: &str) -> Option<usize> {
    columns.iter().position(|c| c["id"] == id)
}

fn health(row: &Json) -> (&'static str, Color) {
    match (row["health"].as_str(), row["stale"].as_bool()) {
        (Some("up"), Some(true)) => ("stale", Color::Yellow),
        (Some("up"), _) => ("up", Color::Green),
        (Some("down"), _) => ("down", Color::Red),
        _ => ("unknown", Color::Yellow),
    }
}

/// Draws the whole screen; `colour` off gives plain text.
pub fn draw(frame: &mut Frame<'_>, view: &View, source: &str, colour: bool) {
    let area = frame.area();
    let [head, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(3)]).areas(area);
    frame.render_widget(Paragraph::new(header(view, source, colour)), head);
    if view.detail {
        let [table, detail] =
            Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(body);
        draw_table(frame, table, view, colour);
        draw_detail(frame, detail, view);
    } else {
        draw_table(frame, body, view, colour);
    }
    if view.help {
        draw_help(frame, area);
    }
}

fn header(view: &View, source: &str, colour: bool) -> Line<'static> {
    let mut spans = vec![
        Span::styled(
            "llmwatch top ",
            Style::default().add_modifier(Modifier::BOLD),
        ),
        Span::raw(format!(
            "{source}  window {}  {}",
            view.window(),
            match (view.rows().len(), view.matching()) {
                (0, _) => "no rows".to_string(),
                (n, m) if n == m => format!("{n} rows"),
                (n, m) => format!("rows {}-{} of {m}", view.offset + 1, view.offset + n),
            }
        )),
    ];
    if let Some(column) = view.sort.and_then(|c| view.columns().get(c).copied()) {
        spans.push(Span::raw(format!(
            "  sort {}",
            column["title"].as_str().unwrap_or("")
        )));
    }
    let alerts = view.alerts();
    if !alerts.is_empty() {
        let firing = alerts.iter().filter(|a| a["state"] == "firing").count();
        spans.push(Span::styled(
            format!("  {firing} firing · {} pending", alerts.len() - firing),
            if colour && firing > 0 {
                Style::default().fg(Color::Red)
            } else {
                Style::default()
            },
        ));
    }
    if view.typing || !view.filter.is_empty() {
        spans.push(Span::raw(format!(
            "  filter /{}{}",
            view.filter,
            if view.typing { "_" } else { "" }
        )));
    }
    match &view.error {
        Some(error) => spans.push(Span::styled(
            format!("  {error}"),
            if colour {
                Style::default().fg(Color::Red)
            } else {
                Style::default()
            },
        )),
        None => spans.push(Span::raw("  ? help")),
    }
    Line::from(spans)
}

fn draw_table(frame: &mut Frame<'_>, area: Rect, view: &View, colour: bool) {
    let columns = view.columns();
    let rows = view.rows();
    // Name and health first; value columns while they fit, then a sparkline of req/s.
    let name_width = 28u16.min(area.width.saturating_sub(8));
    let mut budget = area.width.saturating_sub(name_width + 8);
    let mut shown = Vec::new();
    for (id, line, title, width) in SHOWN {
        if budget < width + 1 {
            break;
        }
        if let Some(index) = column_index(&columns, id) {
            budget -= width + 1;
            shown.push((index, line, title, width));
        }
    }
    // The GPUs beside KV, when some server has one and the column fits.
    let any_gpu = view.overview.as_ref().is_some_and(|o| o["gpus"] == true);
    let show_gpu = any_gpu && budget > GPU_WIDTH;
    if show_gpu {
        budget -= GPU_WIDTH + 1;
    }
    let spark = budget.saturating_sub(1).min(20);
    let mut widths = vec![Constraint::Length(name_width), Constraint::Length(7)];
    widths.extend(shown.iter().map(|s| Constraint::Length(s.3)));
    if show_gpu {
        widths.push(Constraint::Length(GPU_WIDTH));
    }
    if spark >= 4 {
        widths.push(Constraint::Length(spark));
    }
    let mut head = vec![Cell::from("target · model"), Cell::from("health")];
    head.extend(shown.iter().map(|s| Cell::from(s.2)));
    if show_gpu {
        head.push(Cell::from("GPU util mem"));
    }
    if spark >= 4 {
        head.push(Cell::from("req/s"));
    }
    let requests = column_index(&columns, "requests");
    let body: Vec<Row<'_>> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let (word, color) = health(row);
            let name = format!(
                "{}{}",
                row["target"].as_str().unwrap_or(""),
                row["model"]
                    .as_str()
                    .map(|m| format!(" · {m}"))
                    .unwrap_or_default()
            );
            let mut cells = vec![
                Cell::from(name),
                Cell::from(word).style(if colour {
                    Style::default().fg(color)
                } else {
                    Style::default()
                }),
            ];
            for (index, line, _, _) in &shown {
                let unit = columns[*index]["unit"].as_str().unwrap_or("");
                cells.push(Cell::from(reading(
                    &row["cells"][*index][*line]["now"],
                    unit,
                )));
            }
            if show_gpu {
                cells.push(Cell::from(gpu_text(&row["gpus"])));
            }
            if spark >= 4 {
                let series = requests
                    .and_then(|c| row["cells"][c][0]["series"].as_array())
                    .map_or(String::new(), |s| sparkline(s, spark as usize));
                cells.push(Cell::from(series));
            }
            let style = if i == view.selected {
                Style::default().add_modifier(Modifier::REVERSED)
            } else {
                Style::default()
            };
            Row::new(cells).style(style)
        })
        .collect();
    let empty = rows.is_empty();
    let table = Table::new(body, widths)
        .header(Row::new(head).style(Style::default().add_modifier(Modifier::BOLD)))
        .block(Block::default().borders(Borders::TOP));
    frame.render_widget(table, area);
    if empty {
        let message = match (&view.overview, view.filter.is_empty()) {
            (None, _) => "waiting for the first overview…",
            (Some(_), false) => "no row matches the filter (Esc clears it)",
            (Some(_), true) => "no target yet: give up --target URL, or targets to top",
        };
        let inner = Rect {
            y: area.y + 2,
            height: 1,
            ..area
        };
        frame.render_widget(Paragraph::new(message), inner);
    }
}

fn draw_detail(frame: &mut Frame<'_>, area: Rect, view: &View) {
    let Some(row) = view.selected_row() else {
        return;
    };
    let columns = view.columns();
    let title = format!(
        " {} · {} ",
        row["target"].as_str().unwrap_or(""),
        row["model"].as_str().unwrap_or("-")
    );
    let mut lines = vec![Line::from(format!(
        "{} {}  {}{}",
        row["engine"].as_str().unwrap_or("unknown engine"),
        row["version"].as_str().unwrap_or(""),
        health(row).0,
        row["error"]["message"]
            .as_str()
            .map(|m| format!(": {m}"))
            .unwrap_or_default(),
    ))];
    for alert in view
        .alerts()
        .into_iter()
        .filter(|a| a["labels"]["instance"] == row["target"])
    {
        lines.push(Line::from(format!(
            "{} {}: {}",
            alert["state"].as_str().unwrap_or(""),
            alert["labels"]["alertname"].as_str().unwrap_or(""),
            alert["annotations"]["summary"].as_str().unwrap_or("")
        )));
    }
    let spark = usize::from(area.width.saturating_sub(40)).clamp(8, 60);
    for (i, column) in columns.iter().enumerate() {
        let unit = column["unit"].as_str().unwrap_or("");
        let names = column["lines"].as_array().cloned().unwrap_or_default();
        for (j, name) in names.iter().enumerate() {
            let cell = &row["cells"][i][j];
            let label = line_label(
                column["title"].as_str().unwrap_or(""),
                name.as_str().unwrap_or(""),
                names.len(),
            );
            lines.push(Line::from(format!(
                "{label:<22} {:>9}  {}",
                reading(&cell["now"], unit),
                cell["series"]
                    .as_array()
                    .map_or(String::new(), |s| sparkline(s, spark))
            )));
        }
    }
    let widget = Paragraph::new(lines)
        .block(Block::default().borders(Borders::ALL).title(title))
        .wrap(Wrap { trim: false });
    frame.render_widget(widget, area);
}

/// A detail line's label: the column's title for a single line, with the quantile for a
/// quantile (`TTFT p99`), else the line's own name (`running`, `prompt`).
fn line_label(title: &str, line: &str, lines: usize) -> String {
    let quantile = line.len() > 1 && line.starts_with('p') && line[1..].parse::<u32>().is_ok();
    match (lines, quantile) {
        (1, false) => title.to_string(),
        (_, true) => format!("{title} {line}"),
        _ => line.to_string(),
    }
}

fn draw_help(frame: &mut Frame<'_>, area: Rect) {
    let text = [
        "j/k or ↓/↑  move",
        "Enter       detail of the row",
        "Esc         close detail, clear filter",
        "/           filter (target, model, engine, label)",
        "s           sort by the next column",
        "1 2 3       window 5m, 15m, 1h",
        "?           this help",
        "q           quit",
    ];
    let width = 52.min(area.width);
    let height = (text.len() as u16 + 2).min(area.height);
    let rect = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(text.join("\n"))
            .block(Block::default().borders(Borders::ALL).title(" keys ")),
        rect,
    );
}
