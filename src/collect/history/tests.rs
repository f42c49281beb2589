//! History: rates across counter resets, quantiles the way PromQL computes them, bounded rings.

use super::*;
use crate::engines::{Histogram, SIGNALS, SeriesValue, Source};

pub(crate) fn reading(name: &str, series: Vec<SeriesValue>) -> Reading {
    Reading {
        signal: SIGNALS.iter().find(|s| s.name == name).unwrap(),
        source: Source::Native(Vec::new()),
        note: "",
        series,
    }
}

/// `llm_requests_finished_total` of model `m`, a series per `(outcome, count)`.
pub(crate) fn finished(outcomes: &[(&'static str, f64)]) -> Reading {
    reading(
        "llm_requests_finished_total",
        outcomes
            .iter()
            .map(|(o, v)| SeriesValue {
                model: "m".into(),
                outcome: Some(o),
                value: Value::Scalar(*v),
            })
            .collect(),
    )
}

pub(crate) fn scalar(name: &str, v: f64) -> Reading {
    reading(
        name,
        vec![SeriesValue {
            model: "m".into(),
            outcome: None,
            value: Value::Scalar(v),
        }],
    )
}

pub(crate) fn ttft(buckets: &[(f64, f64)], sum: f64) -> Reading {
    let count = buckets.last().map_or(0.0, |b| b.1);
    reading(
        "llm_time_to_first_token_seconds",
        vec![SeriesValue {
            model: "m".into(),
            outcome: None,
            value: Value::Histogram(Histogram {
                buckets: buckets.to_vec(),
                sum,
                count,
            }),
        }],
    )
}

fn key(signal: &'static str, part: Part) -> SeriesKey {
    SeriesKey {
        signal,
        model: "m".into(),
        outcome: None,
        part,
    }
}

const TOKENS: &str = "llm_generation_tokens_total";

#[test]
fn a_counter_reset_never_makes_the_rate_negative() {
    let mut h = History::default();
    for (at, v) in [(0.0, 100.0), (5.0, 150.0), (10.0, 20.0), (15.0, 70.0)] {
        h.push(at, &[scalar(TOKENS, v)], 100);
    }
    let window = h.window(0.0);
    let points: Vec<&Point> = window.iter().collect();
    let k = key(TOKENS, Part::Scalar);
    // 50, then a restart counting 20 from zero, then 50.
    assert_eq!(increase(points.iter().copied(), &k), Some(120.0));
    assert_eq!(rate(&points, &k), Some(120.0 / 15.0));
    assert_eq!(rate(&points[..1], &k), None, "one point has no rate");
}

#[test]
fn the_window_selects_points_and_the_ring_keeps_its_capacity() {
    let mut h = History::default();
    for i in 0..10 {
        h.push(f64::from(i), &[scalar(TOKENS, f64::from(i))], 4);
    }
    assert_eq!(h.len(), 4);
    let ats: Vec<f64> = h.window(7.0).iter().map(|p| p.at).collect();
    assert_eq!(ats, [7.0, 8.0, 9.0]);
}

#[test]
fn points_with_the_same_series_share_one_layout() {
    let mut h = History::default();
    h.push(0.0, &[scalar(TOKENS, 1.0)], 10);
    h.push(1.0, &[scalar(TOKENS, 2.0)], 10);
    h.push(
        2.0,
        &[scalar(TOKENS, 3.0), scalar("llm_requests_running", 1.0)],
        10,
    );
    let window = h.window(0.0);
    let points: Vec<&Point> = window.iter().collect();
    assert!(std::ptr::eq(points[0].layout(), points[1].layout()));
    assert!(!std::ptr::eq(points[1].layout(), points[2].layout()));
    // A series that appears later is simply absent from earlier points.
    assert_eq!(
        points[0].get(&key("llm_requests_running", Part::Scalar)),
        None
    );
    assert_eq!(
        increase(points.iter().copied(), &key(TOKENS, Part::Scalar)),
        Some(2.0)
    );
}

#[test]
fn quantiles_interpolate_within_the_window_increase() {
    let inf = f64::INFINITY;
    let mut h = History::default();
    // Before the window: 100 fast observations that must not count.
    h.push(
        0.0,
        &[ttft(
            &[(0.1, 100.0), (0.5, 100.0), (1.0, 100.0), (inf, 100.0)],
            5.0,
        )],
        10,
    );
    // In the window: 10 more in (0.1, 0.5], 10 in (0.5, 1].
    h.push(
        10.0,
        &[ttft(
            &[(0.1, 100.0), (0.5, 110.0), (1.0, 120.0), (inf, 120.0)],
            20.0,
        )],
        10,
    );
    let window = h.window(0.0);
    let points: Vec<&Point> = window.iter().collect();
    let k = key("llm_time_to_first_token_seconds", Part::Count);
    // Rank 10 of 20 is the top of (0.1, 0.5].
    assert_eq!(quantile(&points, &k, 0.5), Some(Quantile::Value(0.5)));
    // Rank 18: 8 of 10 into (0.5, 1].
    let Some(Quantile::Value(p90)) = quantile(&points, &k, 0.9) else {
        panic!("p90 is inside a bucket with a lower bound")
    };
    assert!((p90 - 0.9).abs() < 1e-12, "{p90}");
    assert_eq!(rate(&points, &k), Some(2.0));
}

#[test]
fn a_quantile_in_the_first_or_last_bucket_is_a_bound_not_a_value() {
    let inf = f64::INFINITY;
    // vLLM's e2e buckets start at 0.3 s: a fast median is only known to be at most that.
    let buckets = [(0.3, 10.0), (0.5, 12.0), (inf, 13.0)];
    assert_eq!(
        bucket_quantile(0.5, &buckets),
        Some(Quantile::AtMost { at_most: 0.3 })
    );
    assert_eq!(
        serde_json::to_value(bucket_quantile(0.5, &buckets)).unwrap(),
        serde_json::json!({"at_most": 0.3})
    );
    // PromQL still gets its number: interpolated from zero.
    let promql = histogram_quantile(0.5, &buckets).unwrap();
    assert!((promql - 0.195).abs() < 1e-12, "{promql}");
    // Past the last finite bound.
    assert_eq!(
        bucket_quantile(0.99, &buckets),
        Some(Quantile::Above { above: 0.5 })
    );
    assert_eq!(
        serde_json::to_value(bucket_quantile(0.99, &buckets)).unwrap(),
        serde_json::json!({"above": 0.5})
    );
    // Inside a bucket with a lower bound: a number.
    let Some(Quantile::Value(p90)) = bucket_quantile(0.9, &buckets) else {
        panic!("rank 11.7 lies in (0.3, 0.5]")
    };
    assert!((p90 - 0.47).abs() < 1e-12, "{p90}");
    assert_eq!(
        serde_json::to_value(Quantile::Value(0.47)).unwrap(),
        serde_json::json!(0.47)
    );
    assert_eq!(Quantile::AtMost { at_most: 0.3 }.display(1e3, 1), "≤300.0");
    assert_eq!(Quantile::Above { above: 0.5 }.display(1e3, 0), ">500");
}

#[test]
fn histogram_quantile_matches_promql_at_the_edges() {
    let inf = f64::INFINITY;
    assert_eq!(
        histogram_quantile(0.5, &[(1.0, 0.0), (inf, 0.0)]),
        None,
        "nothing observed"
    );
    assert_eq!(
        histogram_quantile(0.5, &[(1.0, 4.0)]),
        None,
        "no +Inf bucket"
    );
    // All in +Inf: the highest finite bound.
    assert_eq!(
        histogram_quantile(0.99, &[(1.0, 0.0), (2.0, 0.0), (inf, 5.0)]),
        Some(2.0)
    );
    // First bucket interpolates from zero.
    assert_eq!(
        histogram_quantile(0.5, &[(2.0, 10.0), (inf, 10.0)]),
        Some(1.0)
    );
    assert_eq!(histogram_quantile(1.5, &[(2.0, 10.0), (inf, 10.0)]), None);
}

#[test]
fn points_are_stored_as_differences_and_decode_exactly() {
    let mut h = History::default();
    let values = [
        0.0,
        1.5,
        1e300,
        -3.25,
        f64::INFINITY,
        f64::NAN,
        123_456_789.0,
    ];
    for (i, v) in values.iter().enumerate() {
        let readings = [scalar(TOKENS, *v), scalar("llm_requests_running", 7.0)];
        h.push(i as f64, &readings, 4);
    }
    // Evictions folded the oldest points into the anchor, and every value survived.
    let window = h.window(0.0);
    let got: Vec<f64> = window
        .iter()
        .map(|p| p.get(&key(TOKENS, Part::Scalar)).unwrap())
        .collect();
    let want = &values[values.len() - 4..];
    assert_eq!(got.len(), 4);
    for (g, w) in got.iter().zip(want) {
        assert!(g.to_bits() == w.to_bits(), "{g} != {w}");
    }
    // An unchanged number takes one byte: a 2-series difference point is tiny.
    let full = std::mem::size_of::<f64>() * 2;
    let mut steady = History::default();
    for i in 0..3 {
        steady.push(
            f64::from(i),
            &[scalar(TOKENS, 5.0), scalar("llm_requests_running", 7.0)],
            10,
        );
    }
    let diff_bytes = steady.last_point_bytes().unwrap() - STORED_OVERHEAD;
    assert_eq!(diff_bytes, 2);
    assert!(diff_bytes < full);
}

proptest::proptest! {
    #[test]
    fn xor_round_trips_any_numbers(pairs in proptest::collection::vec((proptest::num::f64::ANY, proptest::num::f64::ANY), 0..64)) {
        let (values, previous): (Vec<f64>, Vec<f64>) = pairs.into_iter().unzip();
        let decoded = xor_decode(&xor_encode(&values, &previous), &previous);
        proptest::prop_assert_eq!(decoded.len(), values.len());
        for (d, v) in decoded.iter().zip(&values) {
            proptest::prop_assert_eq!(d.to_bits(), v.to_bits());
        }
    }
}

#[test]
fn layout_changes_survive_eviction_across_them() {
    let mut h = History::default();
    let running = "llm_requests_running";
    let plan: [&[(&str, f64)]; 6] = [
        &[(TOKENS, 1.0)],
        &[(TOKENS, 2.0)],
        &[(TOKENS, 3.0), (running, 9.0)],
        &[(TOKENS, 4.0), (running, 8.0)],
        &[(TOKENS, 5.0)],
        &[(TOKENS, 6.0)],
    ];
    for (i, readings) in plan.iter().enumerate() {
        let readings: Vec<Reading> = readings.iter().map(|(n, v)| scalar(n, *v)).collect();
        h.push(i as f64, &readings, 3);
        let window = h.window(0.0);
        let tokens: Vec<f64> = window
            .iter()
            .map(|p| p.get(&key(TOKENS, Part::Scalar)).unwrap())
            .collect();
        let first = (i + 1).saturating_sub(3);
        let want: Vec<f64> = (first..=i).map(|j| (j + 1) as f64).collect();
        assert_eq!(tokens, want, "after point {i}");
    }
}

#[test]
fn histograms_with_new_bucket_bounds_get_a_new_layout_and_keep_their_values() {
    let ttft_key = |part| SeriesKey {
        signal: "llm_time_to_first_token_seconds",
        model: "m".into(),
        outcome: None,
        part,
    };
    let mut h = History::default();
    h.push(0.0, &[ttft(&[(0.5, 1.0), (f64::INFINITY, 2.0)], 1.0)], 10);
    h.push(1.0, &[ttft(&[(0.5, 2.0), (f64::INFINITY, 3.0)], 1.5)], 10);
    // Same number of buckets, another bound: the old layout must not be reused.
    h.push(2.0, &[ttft(&[(0.25, 4.0), (f64::INFINITY, 5.0)], 2.0)], 10);
    let window = h.window(0.0);
    let points: Vec<&Point> = window.iter().collect();
    assert!(std::ptr::eq(points[0].layout(), points[1].layout()));
    assert!(!std::ptr::eq(points[1].layout(), points[2].layout()));
    assert_eq!(
        points[2]
            .layout()
            .bounds("llm_time_to_first_token_seconds", "m"),
        Some(&[0.25, f64::INFINITY][..])
    );
    assert_eq!(points[1].get(&ttft_key(Part::Bucket(0))), Some(2.0));
    assert_eq!(points[2].get(&ttft_key(Part::Bucket(0))), Some(4.0));
    assert_eq!(points[2].get(&ttft_key(Part::Sum)), Some(2.0));
}

#[test]
fn a_histogram_of_another_model_or_with_one_bucket_more_is_never_read_into_the_old_layout() {
    let with_model = |model: &str, buckets: &[(f64, f64)]| {
        let mut r = ttft(buckets, 1.0);
        r.series[0].model = model.into();
        r
    };
    let two = [(0.1, 1.0), (f64::INFINITY, 2.0)];
    let three = [(0.1, 1.0), (0.5, 1.0), (f64::INFINITY, 2.0)];
    let mut h = History::default();
    h.push(0.0, &[with_model("a", &two), with_model("b", &two)], 10);
    h.push(1.0, &[with_model("a", &two), with_model("b", &two)], 10);
    // The same shape, the models swapped in name: the numbers must not follow the places.
    h.push(2.0, &[with_model("b", &two), with_model("c", &two)], 10);
    h.push(3.0, &[with_model("b", &three), with_model("c", &two)], 10);
    let window = h.window(0.0);
    let layouts: Vec<&Layout> = window.iter().map(Point::layout).collect();
    assert!(std::ptr::eq(layouts[0], layouts[1]));
    assert!(!std::ptr::eq(layouts[1], layouts[2]));
    assert!(!std::ptr::eq(layouts[2], layouts[3]));
    let signal = "llm_time_to_first_token_seconds";
    let model_key = |model: &str, part| SeriesKey {
        model: model.into(),
        ..key(signal, part)
    };
    assert_eq!(window[2].get(&model_key("a", Part::Count)), None);
    assert_eq!(window[2].get(&model_key("c", Part::Count)), Some(2.0));
    assert_eq!(
        window[3].layout().bounds(signal, "b"),
        Some(&[0.1, 0.5, f64::INFINITY][..])
    );
    assert_eq!(window[3].get(&model_key("b", Part::Bucket(2))), Some(2.0));
}
