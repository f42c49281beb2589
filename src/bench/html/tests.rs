use super::*;
use serde_json::json;

fn report(rps: f64, ttft_ms: f64) -> Value {
    let q =
        |base: f64| json!({"p50": base / 1e3, "p90": base * 1.5 / 1e3, "p99": base * 2.0 / 1e3});
    json!({
        "latency_seconds": {
            "ttft_intended": q(ttft_ms),
            "itl_token": q(ttft_ms / 10.0),
            "e2e_intended": q(ttft_ms * 20.0),
        },
        "throughput": {"requests_per_second": rps, "output_tokens_per_second": rps * 128.0},
        "requests": {"errors": {"timeout": 2, "http_5xx": 1}},
    })
}

#[test]
fn a_sweep_report_is_self_contained_and_stable() {
    let reports = [report(9.9, 40.0), report(19.8, 55.0), report(31.0, 210.0)];
    let steps: Vec<Step<'_>> = [10.0, 20.0, 40.0]
        .into_iter()
        .zip(&reports)
        .map(|(offered, report)| Step { offered, report })
        .collect();
    let html = render(
        "llmwatch bench <sweep>",
        "offered rate (req/s)",
        &steps,
        None,
    );
    assert!(!html.contains("<script"), "no scripts");
    assert!(!html.contains("<link"), "nothing fetched");
    assert!(
        html.contains("llmwatch bench &lt;sweep&gt;"),
        "titles escaped"
    );
    assert_eq!(html.matches("<svg").count(), 5);
    insta::assert_snapshot!(html);
}

#[test]
fn a_single_run_adds_its_timeline() {
    let one = report(50.0, 30.0);
    let records: Vec<RequestRecord> = (0..300)
        .map(|i| RequestRecord {
            index: i,
            intended: i as f64 / 100.0,
            send_lag: 0.0,
            ttft: Some(0.03),
            ttft_intended: Some(0.03 + (i / 100) as f64 * 0.01),
            e2e: 0.5,
            e2e_intended: 0.5,
            tpot: Some(0.02),
            itl_max: Some(0.03),
            asked_input_tokens: Some(100),
            input_tokens: Some(100),
            output_tokens: Some(20),
            content_chunks: 20,
            error: None,
        })
        .collect();
    let steps = [Step {
        offered: 50.0,
        report: &one,
    }];
    let html = render("run", "offered rate (req/s)", &steps, Some(&records));
    assert_eq!(html.matches("<svg").count(), 7);
    // Three seconds of 100 completions each, TTFT rising 30 → 50 ms.
    let (done, [(_, p50), _]) = per_second(&records);
    assert_eq!(done, [(0.0, 100.0), (1.0, 100.0), (2.0, 100.0)]);
    let p50: Vec<f64> = p50.iter().map(|p| (p.1 * 1e3).round() / 1e3).collect();
    assert_eq!(p50, [30.0, 40.0, 50.0]);
}

#[test]
fn ticks_are_round_numbers() {
    assert_eq!(tick_step(37.0, 5.0), 10.0);
    assert_eq!(tick_step(9.0, 6.0), 2.0);
    assert_eq!(tick_step(0.0031, 5.0), 0.001);
    assert_eq!(number(2.50), "2.5");
    assert_eq!(number(20000.0), "20000");
    assert_eq!(number(2e6), "2.0e6");
}
