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

/// An overview document in the server's default order (by target).
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
            {"target": "llama", "model": null, "labels": {}, "health": "down", "stale": false,
             "engine": null, "version": null,
             "error": {"reason": "refused", "message": "connection refused"}, "cells": []},
            {"target": "sglang-b", "model": "qwen-7b", "labels": {"service": "batch"}, "health": "up",
             "stale": false, "engine": "sglang", "version": "0.5.23", "error": null,
             "cells": cells(9.5, json!({"at_most": 0.1}), 30.0, 0.91)},
            {"target": "vllm-a", "model": "llama-3-8b", "labels": {"service": "chat"}, "health": "up",
             "stale": false, "engine": "vllm", "version": "0.33.0", "error": null,
             "cells": cells(4.2, json!(0.4), 12.0, 0.42)}
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
    assert_eq!(v.key("j"), Action::None);
    assert_eq!(v.key("Enter"), Action::None);
    assert_eq!(v.selected_row().unwrap()["target"], "sglang-b");
    insta::assert_snapshot!(snapshot(&v, "http://127.0.0.1:9464", 100));
}

#[test]
fn sort_filter_window_and_scrolling_are_asked_of_the_server() {
    let mut v = view();
    assert!(v.query().contains("sort=target&offset=0"), "{}", v.query());
    assert_eq!(v.key("s"), Action::Refresh, "sort by req/s");
    assert!(v.query().contains("sort=requests"), "{}", v.query());
    v.key("/");
    for c in "a b&".chars() {
        assert_eq!(v.key(&c.to_string()), Action::Refresh);
    }
    assert_eq!(v.key("Enter"), Action::Refresh);
    assert!(v.query().ends_with("&filter=a%20b%26"), "{}", v.query());
    assert_eq!(v.key("3"), Action::Refresh);
    assert_eq!(v.window(), "1h");
    assert!(
        v.query().starts_with("window=1h&points=30"),
        "{}",
        v.query()
    );
    assert_eq!(v.key("Esc"), Action::Refresh, "Esc clears the filter");
    assert!(!v.query().contains("filter"), "{}", v.query());

    // Three rows on screen of five that match: moving past the last asks for the next.
    let mut doc = overview();
    doc["matching"] = json!(5);
    let mut v = View {
        overview: Some(doc),
        page: 3,
        ..View::default()
    };
    v.key("j");
    v.key("j");
    assert_eq!((v.selected, v.offset), (2, 0));
    assert_eq!(v.key("j"), Action::Refresh);
    assert_eq!(v.offset, 1);
    assert!(v.query().contains("offset=1&limit=3"), "{}", v.query());
    assert_eq!(v.key("j"), Action::Refresh);
    assert_eq!(v.key("j"), Action::None, "no row past the fifth");
    assert_eq!(v.offset, 2);
    for _ in 0..2 {
        v.key("k");
    }
    assert_eq!(v.key("k"), Action::Refresh);
    assert_eq!((v.selected, v.offset), (0, 1));
    let text = snapshot(&v, "http://127.0.0.1:9464", 100);
    assert!(text.contains("rows 2-4 of 5"), "{text}");
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

#[test]
fn alerts_are_counted_in_the_header_and_listed_in_the_targets_detail() {
    let mut v = view();
    v.alerts = Some(json!({"status": "success", "data": {"alerts": [
        {"labels": {"alertname": "LLMKVCacheNearlyFull", "instance": "sglang-b"},
         "annotations": {"summary": "KV cache above 90% for 15 minutes"}, "state": "firing"},
        {"labels": {"alertname": "LLMTargetDown", "instance": "llama"},
         "annotations": {"summary": "An inference server's metrics cannot be scraped"}, "state": "pending"}
    ]}}));
    v.key("j");
    v.key("Enter");
    let text = snapshot(&v, "http://127.0.0.1:9464", 120);
    assert!(
        text.lines()
            .next()
            .unwrap()
            .contains("1 firing · 1 pending"),
        "{text}"
    );
    assert!(
        text.contains("firing LLMKVCacheNearlyFull: KV cache above 90% for 15 minutes"),
        "{text}"
    );
    assert!(
        !text.contains("LLMTargetDown:"),
        "another target's alert: {text}"
    );
}

#[test]
fn the_gpu_column_shows_each_server_s_first_gpu_beside_kv_when_any_has_one() {
    let gib = 1_073_741_824.0;
    let mut doc = overview();
    doc["gpus"] = json!(true);
    doc["rows"][2]["gpus"] = json!([
        {"utilization": 0.97, "memory_used_bytes": 72.0 * gib, "memory_total_bytes": 80.0 * gib, "last_xid": null},
        {"utilization": 0.5, "memory_used_bytes": 10.0 * gib, "memory_total_bytes": 80.0 * gib}
    ]);
    doc["rows"][1]["gpus"] = json!([
        {"utilization": 0.0, "memory_used_bytes": 16.0 * gib, "memory_total_bytes": 80.0 * gib, "last_xid": 79.0}
    ]);
    let v = View {
        overview: Some(doc),
        ..View::default()
    };
    let text = snapshot(&v, "http://127.0.0.1:9464", 140);
    assert!(text.contains("GPU util mem"), "{text}");
    let line = |target: &str| {
        text.lines()
            .find(|l| l.contains(target))
            .unwrap()
            .to_string()
    };
    assert!(line("vllm-a").contains("97% 72/80G +1"), "{text}");
    assert!(line("sglang-b").contains("XID 79 16/80G"), "{text}");
    assert!(line("llama").contains(" - "), "{text}");
    // Without GPUs anywhere the column is not drawn.
    assert!(!snapshot(&view(), "http://127.0.0.1:9464", 140).contains("GPU util"));
}
