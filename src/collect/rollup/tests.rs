//! The overview's rollup: rates and quantiles per step agree with the full history's, holes
//! and outages are told apart, and a changed engine starts afresh.

use super::*;
use crate::catalog::panels::Outcomes;
use crate::collect::history::tests::{finished, reading, scalar, ttft};
use crate::collect::history::{self, History, Point, Quantile};
use crate::engines::{SeriesValue, Value};

const TOKENS: &str = "llm_generation_tokens_total";
const FINISHED: &str = "llm_requests_finished_total";
const TTFT: &str = "llm_time_to_first_token_seconds";
const RUNNING: &str = "llm_requests_running";

fn tokens() -> Source {
    Source::Counter(TOKENS, Outcomes::All)
}

/// Pushes `tokens` at each `(time, value)`.
fn history_of(points: &[(f64, f64)]) -> History {
    let mut h = History::default();
    for (at, v) in points {
        h.push(*at, &[scalar(TOKENS, *v)], 10_000);
    }
    h
}

fn rates(h: &History, grid: &Grid) -> Vec<Option<f64>> {
    h.rollup()
        .steps("m", grid)
        .unwrap()
        .iter()
        .map(|s| s.rate(tokens()))
        .collect()
}

#[test]
fn the_grid_picks_the_tier_of_each_dashboard_window() {
    let grid = |w, p| Grid::new(1000.0, w, p).unwrap();
    assert_eq!(
        (grid(300.0, 30).step_seconds(), grid(300.0, 30).count()),
        (10.0, 30)
    );
    assert_eq!(
        (grid(900.0, 30).step_seconds(), grid(900.0, 30).count()),
        (30.0, 30)
    );
    assert_eq!(
        (grid(3600.0, 30).step_seconds(), grid(3600.0, 30).count()),
        (120.0, 30)
    );
    // Finer than the finest tier: its steps. Fewer points: several steps each.
    assert_eq!(grid(300.0, 120).step_seconds(), 10.0);
    assert_eq!(
        (grid(900.0, 10).step_seconds(), grid(900.0, 10).count()),
        (90.0, 10)
    );
    // The 15 min tier does not reach back an hour, whatever the points.
    assert_eq!(grid(3600.0, 120).step_seconds(), 120.0);
    // Six hours, for the slow burn-rate alerts, in 12-minute steps; no further.
    assert_eq!(grid(21_600.0, 30).step_seconds(), 720.0);
    let too_long = Grid::new(1000.0, 25_200.0, 30).unwrap_err();
    assert!(too_long.contains("at most 360 min"), "{too_long}");
    assert!(Grid::new(1000.0, 0.0, 30).is_err());
}

#[test]
fn a_steady_counter_gives_its_rate_in_every_step_and_in_all() {
    // 10 tokens every 5 s: 2 per second.
    let h = history_of(
        &(0..=120)
            .map(|i| (f64::from(i) * 5.0, f64::from(i) * 10.0))
            .collect::<Vec<_>>(),
    );
    let grid = Grid::new(600.0, 300.0, 30).unwrap();
    for (i, r) in rates(&h, &grid).iter().enumerate() {
        assert_eq!(*r, Some(2.0), "step {i}");
    }
    assert_eq!(
        h.rollup().total("m", &grid).unwrap().rate(tokens()),
        Some(2.0)
    );
    assert_eq!(h.rollup().models(), ["m"]);
}

#[test]
fn a_counter_reset_counts_the_new_value_as_the_history_does() {
    let points = [(0.0, 100.0), (5.0, 150.0), (10.0, 20.0), (15.0, 70.0)];
    let h = history_of(&points);
    let grid = Grid::new(15.0, 300.0, 30).unwrap();
    let total = h.rollup().total("m", &grid).unwrap();
    assert_eq!(total.increase(tokens()), Some(120.0));
    let window = h.window(0.0);
    let all: Vec<&Point> = window.iter().collect();
    let key = history::SeriesKey {
        signal: TOKENS,
        model: "m".into(),
        outcome: None,
        part: Part::Scalar,
    };
    assert_eq!(total.rate(tokens()), history::rate(&all, &key));
}

#[test]
fn a_scrape_interval_longer_than_a_step_leaves_no_holes() {
    // Every 25 s on 10 s steps: each scrape's increase is shared by the steps it covers.
    let h = history_of(
        &(0..=12)
            .map(|i| (f64::from(i) * 25.0, f64::from(i) * 50.0))
            .collect::<Vec<_>>(),
    );
    let grid = Grid::new(300.0, 300.0, 30).unwrap();
    let r = rates(&h, &grid);
    assert!(
        r.iter().all(|v| v.is_some_and(|v| (v - 2.0).abs() < 1e-6)),
        "{r:?}"
    );
}

#[test]
fn an_outage_is_a_hole_and_its_increase_lands_where_it_ends() {
    // Every 5 s up to 100 s, nothing until 200 s, then every 5 s again; 1 token/s throughout.
    let mut points: Vec<(f64, f64)> = (0..=20)
        .map(|i| (f64::from(i) * 5.0, f64::from(i) * 5.0))
        .collect();
    points.extend((40..=60).map(|i| (f64::from(i) * 5.0, f64::from(i) * 5.0)));
    let h = history_of(&points);
    let grid = Grid::new(300.0, 300.0, 30).unwrap();
    let r = rates(&h, &grid);
    // Steps 10..=18 ((100, 190]) saw no scrape; step 19 ((190, 200]) holds the whole gap's
    // increase over the whole gap.
    assert!(r[10..19].iter().all(Option::is_none), "{r:?}");
    assert_eq!(r[19], Some(1.0));
    assert_eq!(r[9], Some(1.0));
    assert_eq!(r[25], Some(1.0));
    let total = h.rollup().total("m", &grid).unwrap();
    assert_eq!(total.rate(tokens()), Some(1.0));
}

#[test]
fn quantiles_over_the_steps_equal_the_historys() {
    let mut h = History::default();
    let mut fast = 0.0;
    let mut slow = 0.0;
    for i in 0..=60 {
        let at = f64::from(i) * 5.0;
        fast += 3.0;
        if i % 4 == 0 {
            slow += 1.0;
        }
        let buckets = [
            (0.1, fast),
            (0.5, fast + slow),
            (1.0, fast + slow),
            (f64::INFINITY, fast + slow),
        ];
        h.push(at, &[ttft(&buckets, 0.0)], 10_000);
    }
    let grid = Grid::new(300.0, 300.0, 30).unwrap();
    let total = h.rollup().total("m", &grid).unwrap();
    let window = h.window(0.0);
    let all: Vec<&Point> = window.iter().collect();
    let key = history::SeriesKey {
        signal: TTFT,
        model: "m".into(),
        outcome: None,
        part: Part::Count,
    };
    for q in [0.5, 0.95, 0.99] {
        assert_eq!(
            total.quantile(Source::Histogram(TTFT), q),
            history::quantile(&all, &key, q),
            "q {q}"
        );
    }
    assert!(matches!(
        total.quantile(Source::Histogram(TTFT), 0.99),
        Some(Quantile::Value(v)) if v > 0.1 && v <= 0.5
    ));
}

#[test]
fn an_error_counter_that_never_appeared_is_absent_not_zero() {
    let mut h = History::default();
    for i in 0..=10 {
        let at = f64::from(i) * 5.0;
        h.push(
            at,
            &[finished(&[("ok_stop", f64::from(i))]), scalar(RUNNING, 3.0)],
            100,
        );
    }
    let grid = Grid::new(50.0, 300.0, 30).unwrap();
    let total = h.rollup().total("m", &grid).unwrap();
    let errors = Source::Counter(FINISHED, Outcomes::Only(&crate::catalog::ERROR_OUTCOMES));
    assert_eq!(total.increase(errors), None);
    assert_eq!(
        total.increase(Source::Counter(FINISHED, Outcomes::All)),
        Some(10.0)
    );
    assert_eq!(total.gauge(Source::Gauge(RUNNING)), Some(3.0));
    // A source the engine lacks entirely.
    assert_eq!(
        total.rate(Source::Counter("llm_preemptions_total", Outcomes::All)),
        None
    );
}

#[test]
fn a_model_that_appears_late_and_new_buckets_start_afresh() {
    let mut h = History::default();
    for i in 0..=4 {
        h.push(f64::from(i) * 5.0, &[scalar(RUNNING, 1.0)], 100);
    }
    assert_eq!(h.rollup().models(), ["m"]);
    let late = |v: f64| {
        reading(
            RUNNING,
            vec![
                SeriesValue {
                    model: "m".into(),
                    outcome: None,
                    value: Value::Scalar(1.0),
                },
                SeriesValue {
                    model: "late".into(),
                    outcome: None,
                    value: Value::Scalar(v),
                },
            ],
        )
    };
    h.push(25.0, &[late(7.0)], 100);
    assert_eq!(h.rollup().models(), ["late", "m"]);
    let grid = Grid::new(25.0, 300.0, 30).unwrap();
    assert_eq!(
        h.rollup()
            .total("late", &grid)
            .unwrap()
            .gauge(Source::Gauge(RUNNING)),
        Some(7.0)
    );

    // An engine upgrade with other TTFT buckets: the old steps cannot add to the new ones.
    let mut h = History::default();
    h.push(0.0, &[ttft(&[(0.1, 1.0), (f64::INFINITY, 1.0)], 0.0)], 100);
    h.push(5.0, &[ttft(&[(0.1, 5.0), (f64::INFINITY, 5.0)], 0.0)], 100);
    h.push(
        10.0,
        &[ttft(&[(0.2, 1.0), (0.4, 1.0), (f64::INFINITY, 1.0)], 0.0)],
        100,
    );
    h.push(
        15.0,
        &[ttft(&[(0.2, 1.0), (0.4, 3.0), (f64::INFINITY, 3.0)], 0.0)],
        100,
    );
    let grid = Grid::new(15.0, 300.0, 30).unwrap();
    let q = h
        .rollup()
        .total("m", &grid)
        .unwrap()
        .quantile(Source::Histogram(TTFT), 0.99);
    assert!(
        matches!(q, Some(Quantile::Value(v)) if v > 0.2 && v <= 0.4),
        "{q:?}"
    );
}

#[test]
fn steps_leave_their_tier_s_ring_and_gone_models_after_the_longest() {
    let h = history_of(
        &(0..=1000)
            .map(|i| (f64::from(i) * 5.0, f64::from(i)))
            .collect::<Vec<_>>(),
    );
    let rollup = h.rollup();
    let steps: usize = rollup.models["m"].tiers.iter().map(|t| t.steps.len()).sum();
    assert!(steps <= TIERS.len() * STEPS, "{steps} steps kept");
    assert!(rollup.bytes() > 0);
}

#[test]
fn a_failed_request_counts_for_all_requests_and_for_the_failed_ones() {
    let mut h = History::default();
    for i in 0..=10 {
        let at = f64::from(i) * 5.0;
        let counts = [
            ("ok_stop", f64::from(i) * 3.0),
            ("error_server", f64::from(i)),
        ];
        h.push(at, &[finished(&counts)], 100);
    }
    let grid = Grid::new(50.0, 300.0, 30).unwrap();
    let total = h.rollup().total("m", &grid).unwrap();
    let errors = Source::Counter(FINISHED, Outcomes::Only(&crate::catalog::ERROR_OUTCOMES));
    assert_eq!(
        total.increase(Source::Counter(FINISHED, Outcomes::All)),
        Some(40.0)
    );
    assert_eq!(total.increase(errors), Some(10.0));
}

proptest::proptest! {
    /// The running sum a whole-tier window reads equals the tier's steps added up, through
    /// irregular intervals, outages, counter resets, histograms and gauges.
    #[test]
    fn the_running_sum_equals_the_steps_added_up(
        scrapes in proptest::collection::vec((1u32..40, 0u32..50, proptest::bool::weighted(0.05), 0u32..100), 2..400)
    ) {
        let mut h = History::default();
        let (mut at, mut count, mut fast) = (0.0, 0.0, 0.0);
        for (gap, add, reset, gauge) in scrapes {
            at += f64::from(gap);
            if reset {
                (count, fast) = (0.0, 0.0);
            }
            count += f64::from(add);
            fast += f64::from(add / 2);
            let buckets = [(0.1, fast), (1.0, count), (f64::INFINITY, count)];
            let readings = [
                scalar(TOKENS, count),
                scalar(RUNNING, f64::from(gauge)),
                ttft(&buckets, 0.0),
            ];
            h.push(at, &readings, 10_000);
            for window in [300.0, 3600.0] {
                let grid = Grid::new(at, window, STEPS).unwrap();
                let rollup = h.rollup();
                let aligned = rollup.aligned(&grid);
                let Some(quick) = rollup.total("m", &grid) else {
                    continue;
                };
                let model = &rollup.models["m"];
                let slow = model.tiers[aligned.tier].added_up(&aligned, &model.shape);
                proptest::prop_assert!((quick.covered - slow.covered).abs() < 1e-6);
                proptest::prop_assert_eq!(quick.present, slow.present);
                for (i, s) in slow.values.iter().enumerate() {
                    // A gauge's newest value stands beside the running sums, not in them.
                    let q = quick
                        .newest
                        .iter()
                        .find(|(slot, _)| *slot == i)
                        .map_or(quick.values[i], |(_, v)| *v);
                    proptest::prop_assert!((q - s).abs() <= 1e-6 * s.abs().max(1.0), "{} vs {}", q, s);
                }
            }
        }
    }
}
