//! The HTML report: one self-contained file (inline SVG and CSS, no scripts, nothing fetched)
//! with latency against load (TTFT and end-to-end from the intended send time, so a stalled
//! client cannot flatter the server), throughput against load, a table of every step and, for a
//! single run, throughput and TTFT second by second. Built from the same JSON reports the
//! `--json` option writes, so the two never disagree.

use std::fmt::Write;

use serde_json::Value;

use super::report::RequestRecord;

/// One load level of a run or sweep: its offered load (requests per second, or concurrency)
/// and its JSON report.
pub struct Step<'a> {
    /// Offered load on the x axis.
    pub offered: f64,
    /// The step's report.
    pub report: &'a Value,
}

/// A line on a chart.
struct Series {
    name: &'static str,
    colour: &'static str,
    points: Vec<(f64, f64)>,
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 44.0;
const COLOURS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

/// Renders the report. `load_axis` names the x axis (e.g. "offered rate (req/s)");
/// `timeline` is the per-request record of a single run.
pub fn render(
    title: &str,
    load_axis: &str,
    steps: &[Step<'_>],
    timeline: Option<&[RequestRecord]>,
) -> String {
    let mut body = String::new();
    let ms = |r: &Value, family: &str, q: &str| {
        r["latency_seconds"][family][q].as_f64().map(|v| v * 1e3)
    };
    let curve = |family: &'static str, q: &'static str| -> Vec<(f64, f64)> {
        steps
            .iter()
            .filter_map(|s| Some((s.offered, ms(s.report, family, q)?)))
            .collect()
    };
    for (family, name) in [
        ("ttft_intended", "Time to first token"),
        ("itl_token", "Inter-token latency (per token)"),
        ("e2e_intended", "End-to-end latency"),
    ] {
        body.push_str(&chart(
            &format!("{name} against load"),
            load_axis,
            "milliseconds",
            series([
                ("p50", curve(family, "p50")),
                ("p90", curve(family, "p90")),
                ("p99", curve(family, "p99")),
            ]),
        ));
    }
    let throughput = |key: &str| -> Vec<(f64, f64)> {
        steps
            .iter()
            .filter_map(|s| Some((s.offered, s.report["throughput"][key].as_f64()?)))
            .collect()
    };
    body.push_str(&chart(
        "Request throughput against load",
        load_axis,
        "completed requests / s",
        series([("requests/s", throughput("requests_per_second"))]),
    ));
    body.push_str(&chart(
        "Token throughput against load",
        load_axis,
        "output tokens / s",
        series([("output tokens/s", throughput("output_tokens_per_second"))]),
    ));
    if let Some(records) = timeline.filter(|r| !r.is_empty()) {
        let (done, ttft) = per_second(records);
        body.push_str(&chart(
            "Over the run: requests sent each second that completed",
            "seconds from the start",
            "requests",
            series([("completed", done)]),
        ));
        body.push_str(&chart(
            "Over the run: TTFT of the requests sent each second",
            "seconds from the start",
            "milliseconds",
            series(ttft),
        ));
    }
    body.push_str(&table(steps, load_axis));
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{title}</title><style>{STYLE}</style></head>\n<body><h1>{title}</h1>\n{body}</body></html>\n",
        title = escape(title),
    )
}

const STYLE: &str = "body{font-family:sans-serif;margin:24px;color:#222}\
svg{display:block;margin:12px 0 24px}table{border-collapse:collapse}\
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f4f4f4}";

fn series<const N: usize>(lines: [(&'static str, Vec<(f64, f64)>); N]) -> Vec<Series> {
    lines
        .into_iter()
        .zip(COLOURS.iter().cycle())
        .map(|((name, points), colour)| Series {
            name,
            colour,
            points,
        })
        .collect()
}

/// Per second of intended send time: requests that completed, and TTFT p50 and p99.
type Timeline = (Vec<(f64, f64)>, [(&'static str, Vec<(f64, f64)>); 2]);

fn per_second(records: &[RequestRecord]) -> Timeline {
    let mut seconds: std::collections::BTreeMap<u64, Vec<f64>> = Default::default();
    let mut done: std::collections::BTreeMap<u64, f64> = Default::default();
    for r in records {
        let second = r.intended.max(0.0) as u64;
        if r.error.is_none() {
            *done.entry(second).or_default() += 1.0;
        }
        if let Some(ttft) = r.ttft_intended {
            seconds.entry(second).or_default().push(ttft * 1e3);
        }
    }
    let q = |values: &mut Vec<f64>, q: f64| {
        values.sort_by(f64::total_cmp);
        values[((values.len() - 1) as f64 * q).round() as usize]
    };
    let (mut p50, mut p99) = (Vec::new(), Vec::new());
    for (second, values) in &mut seconds {
        p50.push((*second as f64, q(values, 0.5)));
        p99.push((*second as f64, q(values, 0.99)));
    }
    let done = done.into_iter().map(|(s, n)| (s as f64, n)).collect();
    (done, [("TTFT p50", p50), ("TTFT p99", p99)])
}

/// 1, 2 or 5 times a power of ten: a tick step giving about `count` ticks up to `max`.
fn tick_step(max: f64, count: f64) -> f64 {
    let raw = (max / count).max(f64::MIN_POSITIVE);
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * power)
}

fn number(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e6 || v.abs() < 0.01) {
        format!("{v:.1e}")
    } else {
        let text = format!("{v:.2}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn chart(title: &str, x_label: &str, y_label: &str, lines: Vec<Series>) -> String {
    let all = || lines.iter().flat_map(|s| s.points.iter());
    let x_max = all().map(|p| p.0).fold(0.0, f64::max);
    let y_max = all().map(|p| p.1).fold(0.0, f64::max);
    let (x_step, y_step) = (tick_step(x_max, 6.0), tick_step(y_max, 5.0));
    let (x_top, y_top) = (
        (x_max / x_step).ceil().max(1.0) * x_step,
        (y_max / y_step).ceil().max(1.0) * y_step,
    );
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |v: f64| LEFT + v / x_top * plot_w;
    let y = |v: f64| TOP + plot_h - v / y_top * plot_h;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<h2>{}</h2>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-size=\"11\">",
        escape(title)
    );
    let mut tick = 0.0;
    while tick <= y_top + y_step / 2.0 {
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            y(tick) + 4.0,
            number(tick),
            y = y(tick),
        );
        tick += y_step;
    }
    let mut tick = 0.0;
    while tick <= x_top + x_step / 2.0 {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            x(tick),
            TOP + plot_h + 16.0,
            number(tick)
        );
        tick += x_step;
    }
    let _ = write!(
        svg,
        "<line x1=\"{LEFT}\" x2=\"{LEFT}\" y1=\"{TOP}\" y2=\"{:.1}\" stroke=\"#333\"/>\
         <line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#333\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
         <text x=\"14\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {:.1})\">{}</text>",
        TOP + plot_h,
        WIDTH - RIGHT,
        TOP + plot_h,
        TOP + plot_h,
        LEFT + plot_w / 2.0,
        HEIGHT - 8.0,
        escape(x_label),
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0,
        escape(y_label),
    );
    for (k, line) in lines.iter().enumerate() {
        let path: Vec<String> = line
            .points
            .iter()
            .map(|(a, b)| format!("{:.1},{:.1}", x(*a), y(*b)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{}\"/>",
            path.join(" "),
            c = line.colour
        );
        for (a, b) in &line.points {
            let _ = write!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{}\"/>",
                x(*a),
                y(*b),
                line.colour
            );
        }
        let ly = TOP - 12.0;
        let lx = LEFT + 8.0 + k as f64 * 150.0;
        let _ = write!(
            svg,
            "<rect x=\"{lx:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{ly:.1}\">{}</text>",
            ly - 9.0,
            line.colour,
            lx + 14.0,
            escape(line.name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn table(steps: &[Step<'_>], load_axis: &str) -> String {
    let mut html = format!(
        "<h2>Steps</h2>\n<table><tr><th>{}</th><th>completed req/s</th><th>output tok/s</th>\
         <th>TTFT p50 ms</th><th>TTFT p99 ms</th><th>ITL p50 ms</th><th>ITL p99 ms</th>\
         <th>e2e p99 ms</th><th>errors</th></tr>\n",
        escape(load_axis)
    );
    for step in steps {
        let r = step.report;
        let cell = |v: Option<f64>| v.map_or_else(|| "–".to_string(), |v| format!("{v:.2}"));
        let ms =
            |family: &str, q: &str| cell(r["latency_seconds"][family][q].as_f64().map(|v| v * 1e3));
        let errors: u64 = r["requests"]["errors"]
            .as_object()
            .map_or(0, |e| e.values().filter_map(Value::as_u64).sum());
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{errors}</td></tr>",
            number(step.offered),
            cell(r["throughput"]["requests_per_second"].as_f64()),
            cell(r["throughput"]["output_tokens_per_second"].as_f64()),
            ms("ttft_intended", "p50"),
            ms("ttft_intended", "p99"),
            ms("itl_token", "p50"),
            ms("itl_token", "p99"),
            ms("e2e_intended", "p99"),
        );
    }
    html.push_str("</table>\n");
    html
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests;
