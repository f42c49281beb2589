//! The samples the strict check takes on a straight path, without the full checks: a
//! bucket that continues its metric (the `+Inf` one too), and a counter's, gauge's or
//! unknown's series that repeats the previous series' name and label names. Each still
//! breaks the rules its value or place can break.

use super::{check, refusal};
use crate::exposition::openmetrics::Rule;

#[test]
fn a_counters_next_series_keeps_its_value_rule() {
    for value in ["-1", "NaN", "-Inf"] {
        check(
            Rule::CounterValue,
            &format!(
                "# TYPE hits counter\nhits_total{{model=\"a\"}} 1\nhits_total{{model=\"b\"}} {value}\n# EOF\n"
            ),
            3,
            "# TYPE hits counter\nhits_total{model=\"a\"} 1\nhits_total{model=\"b\"} 0\n# EOF\n",
        );
    }
    check(
        Rule::CounterValue,
        "# TYPE hits counter\nhits_created{model=\"a\"} 1\nhits_created{model=\"b\"} -5\n# EOF\n",
        3,
        "# TYPE hits counter\nhits_created{model=\"a\"} 1\nhits_created{model=\"b\"} 5\n# EOF\n",
    );
}

#[test]
fn a_gauges_next_series_with_an_exemplar_goes_to_the_full_checks() {
    check(
        Rule::ExemplarPlacement,
        "# TYPE up gauge\nup{job=\"a\"} 1\nup{job=\"b\"} 1 # {trace_id=\"x\"} 1\n# EOF\n",
        3,
        "# TYPE up gauge\nup{job=\"a\"} 1\nup{job=\"b\"} -1\n# EOF\n",
    );
}

/// The types whose next series is not taken on the straight path keep their rules there.
#[test]
fn next_series_of_other_types_keep_their_rules() {
    check(
        Rule::QuantileLabel,
        "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns{quantile=\"1.5\"} 2\n# EOF\n",
        3,
        "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns{quantile=\"1\"} 2\n# EOF\n",
    );
    check(
        Rule::StateSetValue,
        "# TYPE mode stateset\nmode{mode=\"a\"} 1\nmode{mode=\"b\"} 2\n# EOF\n",
        3,
        "# TYPE mode stateset\nmode{mode=\"a\"} 1\nmode{mode=\"b\"} 0\n# EOF\n",
    );
    check(
        Rule::InfoValue,
        "# TYPE build info\nbuild_info{v=\"1\"} 1\nbuild_info{v=\"2\"} 2\n# EOF\n",
        3,
        "# TYPE build info\nbuild_info{v=\"1\"} 1\nbuild_info{v=\"2\"} 1\n# EOF\n",
    );
}

/// A metric's `+Inf` bucket after plain-decimal buckets takes the buckets' straight path;
/// its count still has to be cumulative, and `_count` still has to equal it.
#[test]
fn the_inf_bucket_on_the_straight_path_still_ends_its_metric() {
    let metric = |inf: u32, count: u32| {
        format!(
            "# TYPE h histogram\nh_bucket{{a=\"x\",le=\"1\"}} 5\nh_bucket{{a=\"x\",le=\"2.5\"}} 6\n\
             h_bucket{{a=\"x\",le=\"+Inf\"}} {inf}\nh_count{{a=\"x\"}} {count}\nh_sum{{a=\"x\"}} 1\n# EOF\n"
        )
    };
    check(Rule::NonCumulative, &metric(4, 4), 2, &metric(7, 7));
    check(Rule::CountMismatch, &metric(7, 6), 2, &metric(7, 7));
    // A bucket after `+Inf` is out of order, and so is a second `+Inf`.
    for after in ["3", "+Inf"] {
        let body = format!(
            "# TYPE h histogram\nh_bucket{{le=\"1\"}} 5\nh_bucket{{le=\"+Inf\"}} 6\n\
             h_bucket{{le=\"{after}\"}} 6\nh_count 6\nh_sum 1\n# EOF\n"
        );
        assert_eq!(refusal(&body), Some((Rule::BucketOrder, 2)), "{body}");
    }
}

/// A histogram's `_count` and `_sum` belong to its buckets when their labels are the
/// buckets' without `le`, wherever `le` was among them; other labels start a new metric.
#[test]
fn count_and_sum_join_their_buckets_wherever_le_was() {
    for (before, after, labels) in [
        ("", "", ""),
        ("a=\"x\",", "", "a=\"x\""),
        ("", ",b=\"y\"", "b=\"y\""),
        ("a=\"x\",", ",b=\"y\"", "a=\"x\",b=\"y\""),
    ] {
        let metric = |count_labels: &str| {
            format!(
                "# TYPE h histogram\nh_bucket{{{before}le=\"1\"{after}}} 1\n\
                 h_bucket{{{before}le=\"+Inf\"{after}}} 2\nh_count{{{count_labels}}} 2\n\
                 h_sum{{{labels}}} 1\n# EOF\n"
            )
        };
        let mended = metric(labels);
        assert_eq!(refusal(&mended), None, "{mended}");
        let broken = metric("a=\"z\"");
        assert_eq!(refusal(&broken), Some((Rule::MissingInf, 4)), "{broken}");
    }
}
