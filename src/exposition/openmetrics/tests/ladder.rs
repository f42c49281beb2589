//! A histogram metric whose bounds are written as those of the metric before it (which
//! broke no rule) has them checked by comparing texts (see `ladder.rs`). Every way a later
//! metric can leave or abuse that ladder still breaks the rule it breaks elsewhere.

use super::{check, refusal};
use crate::exposition::openmetrics::Rule;
use crate::exposition::{Mode, ParseErrorKind, parse_openmetrics};

/// A histogram of two metrics, `model="a"` then `model="b"`, with these bounds and counts
/// (`_count` is the last count).
fn two_metrics(a: &[(&str, u32)], b: &[(&str, u32)]) -> String {
    let mut body = String::from("# TYPE h histogram\n");
    for (model, buckets) in [("a", a), ("b", b)] {
        for (le, count) in buckets {
            body.push_str(&format!(
                "h_bucket{{model=\"{model}\",le=\"{le}\"}} {count}\n"
            ));
        }
        let total = buckets.last().map_or(0, |b| b.1);
        body.push_str(&format!(
            "h_count{{model=\"{model}\"}} {total}\nh_sum{{model=\"{model}\"}} 1\n"
        ));
    }
    body + "# EOF\n"
}

const FIRST: [(&str, u32); 4] = [("0.1", 1), ("0.25", 2), ("0.5", 3), ("+Inf", 4)];

#[test]
fn a_metric_on_the_ladder_keeps_every_bucket_rule() {
    // The second metric's buckets are on lines 8 to 11.
    let mended = two_metrics(&FIRST, &FIRST);
    check(
        Rule::NonCumulative,
        &two_metrics(&FIRST, &[("0.1", 1), ("0.25", 2), ("0.5", 1), ("+Inf", 4)]),
        8,
        &mended,
    );
    check(
        Rule::BucketOrder,
        &two_metrics(&FIRST, &[("0.1", 1), ("0.25", 2), ("0.2", 3), ("+Inf", 4)]),
        8,
        &mended,
    );
    check(
        Rule::BucketOrder,
        &two_metrics(&FIRST, &[("0.1", 1), ("0.25", 2), ("0.25", 3), ("+Inf", 4)]),
        8,
        &mended,
    );
    check(
        Rule::BucketOrder,
        &two_metrics(
            &FIRST,
            &[("0.1", 1), ("0.25", 2), ("0.5", 3), ("+Inf", 4), ("0.5", 4)],
        ),
        8,
        &mended,
    );
    check(
        Rule::MissingInf,
        &two_metrics(&FIRST, &[("0.1", 1), ("0.25", 2), ("0.5", 3)]),
        8,
        &mended,
    );
}

/// Leaving the ladder and rejoining it at a later rung proves nothing about the order:
/// after `1`, the ladder's `0.5` is below.
#[test]
fn a_bound_that_left_the_ladder_is_ordered_as_a_number() {
    let broken = two_metrics(&FIRST, &[("0.1", 1), ("1", 2), ("0.5", 3), ("+Inf", 4)]);
    assert_eq!(refusal(&broken), Some((Rule::BucketOrder, 8)), "{broken}");
    for fine in [
        // A rung skipped, one added, another spelling of a rung's number.
        &[("0.1", 1), ("0.5", 3), ("+Inf", 4)][..],
        &[("0.1", 1), ("0.2", 1), ("0.25", 2), ("0.5", 3), ("+Inf", 4)],
        &[("0.1", 1), ("0.250", 2), ("0.5", 3), ("+Inf", 4)],
        &[("0.1", 1), ("2.5e-1", 2), ("0.5", 3), ("+Inf", 4)],
        &[("0.05", 1), ("0.25", 2), ("0.5", 3), ("+Inf", 4)],
    ] {
        let body = two_metrics(&FIRST, fine);
        assert_eq!(refusal(&body), None, "{body}");
    }
}

/// A metric that broke a rule is no ladder: the next one written the same breaks it too.
#[test]
fn a_broken_metric_is_no_ladder_for_the_next() {
    let broken = [("0.5", 1), ("0.25", 2), ("+Inf", 4)];
    let body = two_metrics(&broken, &broken);
    let lenient = parse_openmetrics(&body, Mode::Lenient).unwrap();
    let lines: Vec<usize> = lenient
        .skipped
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                ParseErrorKind::OpenMetrics {
                    rule: Rule::BucketOrder,
                    ..
                }
            )
        })
        .map(|e| e.line)
        .collect();
    assert_eq!(lines, [2, 7], "{:?}", lenient.skipped);
}

/// The ladder's rungs are its buckets only: a `_count` written among them (which the rules
/// allow) is not read as a bound, not even where its label in `le`'s place holds one.
#[test]
fn a_count_among_the_ladders_buckets_is_not_a_rung() {
    let body = "# TYPE h histogram\n\
        h_bucket{le=\"1\",m=\"0.5\"} 1\nh_count{m=\"0.5\"} 3\nh_bucket{le=\"2\",m=\"0.5\"} 2\n\
        h_bucket{le=\"+Inf\",m=\"0.5\"} 3\nh_sum{m=\"0.5\"} 1\n\
        h_bucket{le=\"1\",m=\"b\"} 1\nh_bucket{le=\"0.5\",m=\"b\"} 2\n\
        h_bucket{le=\"+Inf\",m=\"b\"} 3\nh_count{m=\"b\"} 3\nh_sum{m=\"b\"} 1\n# EOF\n";
    assert_eq!(refusal(body), Some((Rule::BucketOrder, 7)), "{body}");
}

/// Bounds of every kind: short and long plain decimals, integers, another spelling of a
/// number (`0.10`, `1e0`), and `+Inf`.
const POOL: [&str; 12] = [
    "0.00015000000000000001",
    "0.00022500000000000002",
    "0.1",
    "0.10",
    "0.25",
    "1",
    "1.0",
    "1e0",
    "2.5",
    "10",
    "100",
    "+Inf",
];

fn number(text: &str) -> f64 {
    text.parse().unwrap_or(f64::INFINITY)
}

/// The first rule a metric's buckets break, read the plain way: bounds rising as numbers,
/// counts not falling (the order first, on the same bucket), `+Inf` last.
fn reference_rule(buckets: &[(&str, u32)]) -> Option<Rule> {
    for pair in buckets.windows(2) {
        let [(a, m), (b, n)] = pair else { continue };
        if number(b) <= number(a) {
            return Some(Rule::BucketOrder);
        }
        if n < m {
            return Some(Rule::NonCumulative);
        }
    }
    (buckets.last().map(|b| b.0) != Some("+Inf")).then_some(Rule::MissingInf)
}

proptest::proptest! {
    /// Metrics that mostly repeat one ladder of bounds, with a rung now and then replaced,
    /// dropped, repeated or swapped and a count now and then falling: the strict check
    /// refuses exactly those a plain reading refuses, with its rule, at the first of them.
    #[test]
    fn the_ladder_changes_no_verdict(
        ladder in proptest::sample::subsequence(&POOL[..11], 1..6),
        metrics in proptest::collection::vec(
            (
                proptest::collection::vec((0..5usize, 0..12usize, 0..12usize), 0..3),
                proptest::collection::vec(0..3u32, 12),
                proptest::option::of(0..12usize),
            ),
            1..5,
        ),
        le_first in proptest::bool::ANY,
    ) {
        let mut base: Vec<&str> = ladder;
        base.sort_by(|a, b| number(a).total_cmp(&number(b)));
        base.dedup_by(|a, b| number(a) == number(b));
        base.push("+Inf");
        let mut body = String::from("# TYPE h histogram\n");
        let mut expected = None;
        let mut line = 2;
        for (m, (edits, steps, fall)) in metrics.iter().enumerate() {
            let mut bounds = base.clone();
            for &(op, at, with) in edits {
                let (at, other, len) = (at % bounds.len(), with % bounds.len(), bounds.len());
                let here = bounds[at];
                match op {
                    0 => bounds[at] = POOL[with],
                    1 if len > 1 => { bounds.remove(at); }
                    2 => bounds.insert(at, here),
                    3 => bounds.swap(at, other),
                    _ => {}
                }
            }
            let mut count = 0;
            let buckets: Vec<(&str, u32)> = bounds
                .iter()
                .enumerate()
                .map(|(i, le)| {
                    count += steps[i % steps.len()];
                    let value = if *fall == Some(i) { count.saturating_sub(5) } else { count };
                    (*le, value)
                })
                .collect();
            if expected.is_none() {
                expected = reference_rule(&buckets).map(|rule| (rule, line));
            }
            for (le, value) in &buckets {
                let labels = if le_first {
                    format!("le=\"{le}\",m=\"{m}\"")
                } else {
                    format!("m=\"{m}\",le=\"{le}\"")
                };
                body.push_str(&format!("h_bucket{{{labels}}} {value}\n"));
            }
            let total = buckets.last().map_or(0, |b| b.1);
            body.push_str(&format!("h_count{{m=\"{m}\"}} {total}\nh_sum{{m=\"{m}\"}} 1\n"));
            line += buckets.len() + 2;
        }
        body.push_str("# EOF\n");
        proptest::prop_assert_eq!(refusal(&body), expected, "{}", body);
    }
}
