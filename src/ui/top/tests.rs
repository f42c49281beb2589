//! `top`'s screens, rendered into ratatui's test backend from a fixed overview document.

use serde_json::{Value, json};

use super::snapshot;
use super::view::{Action, View};

fn cells(rate: f64, ttft_p99: Value, running: f64, kv: f64) -> Value {
    let series = |v: f64| json!([null, v * 0.5, v * 0.8, v, v * 1.2, v]);
    json!([
        [{"now": rate, "series": series(rate)}],
        [{"now": rate * 200.0, "series": series(rate * 200.0)}, {"now": rate * 100.0, "series": series(rate * 100.0)}],
        [{"now": 0.012, "series": series(0.012)}],
        [{"now": 0.05, "series": []}, {"now": 0.2, "series": []}, {"now": ttft_p99, "series": series(0.4)}],
        [{"now": 0.025, "series": series(0.025)}],
        [{"now": 4.7, "series": series(4.7)}],
        [{"now": running, "series": series(running)}, {"now": 2.0, "series": series(2.0)}],
        [{"now": kv, "series": series(kv)}],
        [{"now": 0.0, "series": series(0.0)}],
    ])
}

fn overview() -> Value {
    let columns: Vec<Value> = crate::catalog::panels::OVERVIEW
        .iter()
        .map(|p| {
            json!({"id": p.id, "title": p.title, "unit": p.unit, "help": p.help,
            "lines": p.lines.iter().map(|l| l.label).collect::<Vec<_>>()})
        })
        .collect();
    json!({
        "now": 1796059626.5, "window_seconds": 300.0, "step_seconds": 10.0,
        "columns": columns,
        "rows": [
            {"target": "vllm-a", "model": "llama-3-8b", "labels": {"service": "chat"}, "health": "up",
             "stale": false, "engine": "vllm", "version": "0.33.0", "error": null,
             "cells": cells(4.2, json!(0.4), 12.0, 0.42)},
            {"target": "sglang-b", "model": "qwen-7b", "labels": {"service": "batch"}, "health": "up",
             "stale": false, "engine": "sglang", "version": "0.5.23", "error": null,
             "cells": cells(9.5, json!({"at_most": 0.1}), 30.0, 0.91)},
            {"target": "llama", "model": null, "labels": {}, "health": "down", "stale": false,
             "engine": null, "version": null,
             "error": {"reason": "refused", "message": "connection refused"}, "cells": []},
        ]
    })
}

fn view() -> View {
    View {
        overview: Some(overview()),
        ..View::default()
    }
}

#[test]
fn the_overview_at_120_columns() {
    insta::assert_snapshot!(snapshot(&view(), "http://127.0.0.1:9464", 120));
}

#[test]
fn a_narrow_terminal_drops_columns_from_the_right() {
    let text = snapshot(&view(), "http://127.0.0.1:9464", 80);
    assert!(text.lines().all(|l| l.chars().count() <= 80));
    insta::assert_snapshot!(text);
}

#[test]
fn the_detail_of_the_selected_row() {
    let mut v = view();
    assert_eq!(v.key("s"), Action::None, "sort by req/s");
    assert_eq!(v.key("Enter"), Action::None);
    // Sorted by requests, highest first: the SGLang row is selected.
    assert_eq!(v.selected_row().unwrap()["target"], "sglang-b");
    insta::assert_snapshot!(snapshot(&v, "http://127.0.0.1:9464", 100));
}

#[test]
fn filtering_and_windows_and_quitting() {
    let mut v = view();
    v.key("/");
    for c in "chat".chars() {
        v.key(&c.to_string());
    }
    v.key("Enter");
    assert_eq!(v.rows().len(), 1);
    assert_eq!(v.key("3"), Action::Refresh);
    assert_eq!(v.window(), "1h");
    v.key("Esc");
    assert_eq!(v.rows().len(), 3, "Esc clears the filter");
    assert_eq!(v.key("q"), Action::Quit);
}

#[test]
fn no_overview_yet_and_a_fetch_error_are_said() {
    let v = View {
        error: Some("http://127.0.0.1:9: connection refused".into()),
        ..View::default()
    };
    let text = snapshot(&v, "http://127.0.0.1:9", 100);
    assert!(text.contains("connection refused"), "{text}");
    assert!(text.contains("waiting for the first overview"), "{text}");
}
