//! Unit tests for the parser: one input per feature the issue and the engines need.

use super::*;
use std::borrow::Cow;

use super::super::lex::find_quote_or_backslash;
use crate::exposition::write_exposition;

fn strict(input: &str) -> Exposition<'_> {
    match parse(input, Mode::Strict) {
        Ok(exp) => exp,
        Err(err) => panic!("parse failed: {err}\ninput:\n{input}"),
    }
}

fn err_of(input: &str) -> ParseError {
    match parse(input, Mode::Strict) {
        Ok(exp) => panic!("expected an error, parsed {} families", exp.families.len()),
        Err(err) => err,
    }
}

#[test]
fn colon_names_and_types() {
    let exp = strict(
        "# HELP vllm:num_requests_running Running.\n# TYPE vllm:num_requests_running gauge\n\
         vllm:num_requests_running{engine=\"0\",model_name=\"m\"} 7.0\n",
    );
    assert_eq!(exp.families.len(), 1);
    let f = &exp.families[0];
    assert_eq!(f.name, "vllm:num_requests_running");
    assert_eq!(f.kind, MetricType::Gauge);
    assert_eq!(f.help.as_deref(), Some("Running."));
    assert_eq!(exp.samples_of(f)[0].value, 7.0);
    assert_eq!(exp.label(&exp.samples_of(f)[0], "model_name"), Some("m"));
    assert_eq!(exp.label(&exp.samples_of(f)[0], "engine"), Some("0"));
}

#[test]
fn all_value_forms() {
    let exp = strict(
        "a 1.234567e+06\nb +Inf\nc -Inf\nd NaN\ne -0.5\nf 1e-9\ng 12345678901234567890\nh inf\n",
    );
    let v: Vec<f64> = exp
        .families
        .iter()
        .map(|f| exp.samples_of(f)[0].value)
        .collect();
    assert_eq!(v[0], 1_234_567.0);
    assert_eq!(v[1], f64::INFINITY);
    assert_eq!(v[2], f64::NEG_INFINITY);
    assert!(v[3].is_nan());
    assert_eq!(v[4], -0.5);
    assert_eq!(v[5], 1e-9);
    assert_eq!(v[6], 12_345_678_901_234_567_890.0);
    assert_eq!(v[7], f64::INFINITY);
}

#[test]
fn escaped_label_values_are_unescaped() {
    let exp = strict("m{a=\"x\\\"y\",b=\"back\\\\slash\",c=\"new\\nline\",d=\"}{,=\"} 1\n");
    let s = &exp.samples_of(&exp.families[0])[0];
    assert_eq!(exp.label(s, "a"), Some("x\"y"));
    assert_eq!(exp.label(s, "b"), Some("back\\slash"));
    assert_eq!(exp.label(s, "c"), Some("new\nline"));
    assert_eq!(exp.label(s, "d"), Some("}{,="));
    assert!(matches!(exp.labels_of(s)[3].value, Cow::Borrowed(_)));
    assert!(matches!(exp.labels_of(s)[0].value, Cow::Owned(_)));
}

#[test]
fn timestamps_tabs_trailing_blanks_crlf() {
    let exp = strict("a\t{x=\"1\"}\t3\t1700000000000  \r\nb 4 \r\n\r\n  c{} 5\n");
    assert_eq!(exp.families.len(), 3);
    assert_eq!(
        exp.samples_of(&exp.families[0])[0].timestamp,
        Some(1_700_000_000_000.0)
    );
    assert_eq!(exp.samples_of(&exp.families[1])[0].value, 4.0);
    assert_eq!(exp.samples_of(&exp.families[2])[0].value, 5.0);
}

#[test]
fn trailing_comma_and_empty_braces() {
    let exp = strict("a{x=\"1\",} 1\nb{} 2\n");
    assert_eq!(exp.labels_of(&exp.samples_of(&exp.families[0])[0]).len(), 1);
    assert!(
        exp.labels_of(&exp.samples_of(&exp.families[1])[0])
            .is_empty()
    );
}

#[test]
fn histogram_groups_bucket_sum_count_in_any_order() {
    // SGLang's multiprocess collector prints _sum and _count before the buckets.
    let exp = strict(
        "# TYPE h histogram\nh_sum 3\nh_count 2\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n",
    );
    assert_eq!(exp.families.len(), 1);
    assert_eq!(exp.families[0].kind, MetricType::Histogram);
    assert_eq!(exp.families[0].samples.len(), 4);
}

#[test]
fn summary_with_quantiles() {
    let exp = strict(
        "# TYPE tgi_request_skipped_tokens summary\ntgi_request_skipped_tokens{quantile=\"0.5\"} 0\n\
         tgi_request_skipped_tokens_sum 0\ntgi_request_skipped_tokens_count 41877\n",
    );
    assert_eq!(exp.families.len(), 1);
    assert_eq!(exp.families[0].kind, MetricType::Summary);
    assert_eq!(exp.samples_of(&exp.families[0])[2].value, 41877.0);
}

#[test]
fn type_line_naming_a_total_family_llamacpp() {
    let exp =
        strict("# TYPE llamacpp:prompt_tokens_total counter\nllamacpp:prompt_tokens_total 48213\n");
    assert_eq!(exp.families[0].name, "llamacpp:prompt_tokens_total");
    assert_eq!(exp.families[0].kind, MetricType::Counter);
    assert_eq!(exp.families[0].samples.len(), 1);
}

#[test]
fn bare_counter_without_total_tgi() {
    let exp = strict("# TYPE tgi_request_count counter\ntgi_request_count 684\n");
    assert_eq!(exp.families[0].kind, MetricType::Counter);
    assert_eq!(exp.samples_of(&exp.families[0])[0].value, 684.0);
}

#[test]
fn split_family_is_merged() {
    let exp = strict(
        "# TYPE a counter\na_total{x=\"1\"} 1\n# TYPE b gauge\nb 2\na_total{x=\"2\"} 3\nb 4\n",
    );
    assert_eq!(exp.families.len(), 2);
    let values = |i: usize| -> Vec<f64> {
        exp.samples_of(&exp.families[i])
            .iter()
            .map(|s| s.value)
            .collect()
    };
    // Regrouped per family, input order kept within each.
    assert_eq!(values(0), [1.0, 3.0]);
    assert_eq!(values(1), [2.0, 4.0]);
    assert_eq!(
        exp.label(&exp.samples_of(&exp.families[0])[1], "x"),
        Some("2")
    );
    assert_eq!(exp.sample_count(), 4);
}

#[test]
fn openmetrics_counter_created_unit_exemplar_eof() {
    let exp = strict(
        "# TYPE req counter\n# UNIT req requests\n# HELP req Requests.\n\
         req_total{a=\"b\"} 5 # {trace_id=\"abc\"} 1.5 1700000000.123\n\
         req_created{a=\"b\"} 1700000000.5\n# TYPE info_thing info\ninfo_thing_info{v=\"1\"} 1\n\
         # TYPE gh gaugehistogram\ngh_bucket{le=\"+Inf\"} 2\ngh_gcount 2\ngh_gsum 4\n\
         # TYPE st stateset\nst{st=\"a\"} 1\n# TYPE u unknown\nu 1\n# EOF\n",
    );
    assert!(exp.saw_eof);
    let req = &exp.families[0];
    assert_eq!(req.unit, Some("requests"));
    assert_eq!(
        req.samples.len(),
        2,
        "_total and _created belong to the counter"
    );
    let ex = exp.samples_of(req)[0]
        .exemplar
        .as_ref()
        .map(|e| (e.value, e.timestamp, e.labels.len()));
    assert_eq!(ex, Some((1.5, Some(1_700_000_000.123), 1)));
    let kinds: Vec<MetricType> = exp.families.iter().map(|f| f.kind).collect();
    assert_eq!(
        kinds,
        [
            MetricType::Counter,
            MetricType::Info,
            MetricType::GaugeHistogram,
            MetricType::StateSet,
            MetricType::Untyped
        ]
    );
    assert_eq!(exp.families[2].samples.len(), 3);
}

#[test]
fn created_as_separate_gauge_family_prometheus_client() {
    let exp = strict(
        "# TYPE vllm:x_total counter\nvllm:x_total 1.0\n# TYPE vllm:x_created gauge\nvllm:x_created 1.7e9\n",
    );
    assert_eq!(exp.families.len(), 2);
    assert_eq!(exp.families[1].name, "vllm:x_created");
}

#[test]
fn content_after_eof_is_an_error() {
    let err = err_of("a 1\n# EOF\nb 2\n");
    assert_eq!((err.line, err.kind), (3, ParseErrorKind::AfterEof));
}

#[test]
fn errors_carry_line_and_column() {
    let err = err_of("ok 1\nbad{a=\"1\" b=\"2\"} 1\n");
    assert_eq!(err.line, 2);
    assert_eq!(err.column, 11);
    assert_eq!(err.kind, ParseErrorKind::ExpectedCommaOrBrace);
    assert_eq!(
        err.to_string(),
        "line 2, column 11: expected ',' or '}' after a label value"
    );

    assert_eq!(
        err_of("a{x=\"1} 1\n").kind,
        ParseErrorKind::UnterminatedLabelValue
    );
    assert_eq!(err_of("a{x=1} 1\n").kind, ParseErrorKind::ExpectedQuote);
    assert_eq!(err_of("a{x} 1\n").kind, ParseErrorKind::ExpectedEquals);
    assert_eq!(
        err_of("a{=\"1\"} 1\n").kind,
        ParseErrorKind::InvalidLabelName
    );
    assert_eq!(
        err_of("a{x=\"1\",x=\"2\"} 1\n").kind,
        ParseErrorKind::DuplicateLabel("x".into())
    );
    assert_eq!(err_of("a\n").kind, ParseErrorKind::MissingValue);
    assert_eq!(
        err_of("a one\n").kind,
        ParseErrorKind::InvalidValue("one".into())
    );
    assert_eq!(
        err_of("a 1 soon\n").kind,
        ParseErrorKind::InvalidTimestamp("soon".into())
    );
    assert_eq!(
        err_of("a 1 2 3\n").kind,
        ParseErrorKind::TrailingText("3".into())
    );
    assert_eq!(err_of("9a 1\n").kind, ParseErrorKind::InvalidName);
    assert_eq!(err_of("a-b 1\n").kind, ParseErrorKind::InvalidName);
    assert_eq!(
        err_of("# TYPE a nonsense\n").kind,
        ParseErrorKind::UnknownType("nonsense".into())
    );
    assert_eq!(
        err_of("# TYPE\n").kind,
        ParseErrorKind::MalformedComment("TYPE")
    );
    assert_eq!(err_of("a 1 # nope\n").kind, ParseErrorKind::InvalidExemplar);
    assert_eq!(
        err_of("a 1\n# TYPE a counter\n").kind,
        ParseErrorKind::ConflictingType("a".into())
    );
}

#[test]
fn missing_final_newline_strict_fails_lenient_keeps_the_line() {
    let err = err_of("a 1\nb 2");
    assert_eq!(
        (err.line, err.kind),
        (2, ParseErrorKind::MissingFinalNewline)
    );
    let exp = parse("a 1\nb 2", Mode::Lenient).unwrap();
    assert_eq!(exp.families.len(), 2);
    assert_eq!(exp.skipped.len(), 1);
}

#[test]
fn lenient_skips_and_counts_bad_lines_keeping_good_ones() {
    let exp = parse("a 1\nbad{ 1\nc{x=\"1\"} 2\n{} 3\nd 4\n", Mode::Lenient).unwrap();
    let names: Vec<&str> = exp.families.iter().map(|f| f.name).collect();
    assert_eq!(names, ["a", "c", "d"]);
    assert_eq!(exp.skipped.len(), 2);
    assert_eq!(exp.skipped[0].line, 2);
    // The failed line's labels must not leak into the arena.
    assert_eq!(exp.labels.len(), 1);
}

#[test]
fn free_comments_and_blank_lines_are_ignored() {
    let exp = strict("# just a comment\n\n#\n# HELP\ta\thelp\twith tabs\na 1\n");
    assert_eq!(exp.families.len(), 1);
    assert_eq!(exp.families[0].help.as_deref(), Some("help\twith tabs"));
}

#[test]
fn help_escapes() {
    let exp = strict("# HELP a line\\nbreak and \\\\ slash\na 1\n");
    assert_eq!(
        exp.families[0].help.as_deref(),
        Some("line\nbreak and \\ slash")
    );
}

#[test]
fn duplicate_series_are_found_in_any_label_order() {
    let exp = strict("a{x=\"1\",y=\"2\"} 1\na{y=\"2\",x=\"1\"} 2\na{x=\"2\"} 3\n");
    assert_eq!(exp.duplicate_series(), ["a{x=\"1\",y=\"2\"} (2 times)"]);
}

#[test]
fn write_then_parse_keeps_everything() {
    let input = "# HELP a A \\\\ help\n# TYPE a counter\na{x=\"q\\\"\"} 1 1700000000000\n\
                 # TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.75\nh_count 2\n";
    let exp = strict(input);
    let written = write_exposition(&exp);
    assert_eq!(written, input);
}

proptest::proptest! {
    /// The decimal fast path must agree bit for bit with `f64::from_str`.
    #[test]
    fn fast_decimal_matches_std(text in "-?[0-9]{1,17}(\\.[0-9]{0,17})?") {
        let ours = parse_value(&text).map(f64::to_bits);
        let std = text.parse::<f64>().ok().map(f64::to_bits);
        proptest::prop_assert_eq!(ours, std, "{}", text);
    }
}

proptest::proptest! {
    /// The word-at-a-time search agrees with a plain scan.
    #[test]
    fn quote_search_matches_a_plain_scan(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
        let plain = bytes.iter().position(|&c| c == b'"' || c == b'\\');
        proptest::prop_assert_eq!(find_quote_or_backslash(&bytes), plain);
    }
}

/// Found by the fuzzer: a HELP line for another family between two samples of the same name
/// sent the second sample into that other family.
#[test]
fn same_name_after_help_of_another_family_keeps_its_family() {
    let exp = strict("# TYPE a counter\na 1\n# HELP b text\na 2\n");
    let names: Vec<&str> = exp.families.iter().map(|f| f.name).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(exp.families[0].samples.len(), 2);
    assert!(exp.samples_of(&exp.families[1]).is_empty());
    let again = write_exposition(&exp);
    assert_eq!(parse(&again, Mode::Strict).map(|e| e.sample_count()), Ok(2));
}

/// A malformed line must not leave its name behind as the same-name shortcut: the next
/// sample of that name belongs to its own family, not the previous good sample's.
#[test]
fn lenient_bad_line_does_not_redirect_the_next_sample() {
    let exp = parse("a 1\nb{x=1} 2\nb 3\n", Mode::Lenient).unwrap();
    let names: Vec<&str> = exp.families.iter().map(|f| f.name).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(exp.samples_of(&exp.families[1])[0].value, 3.0);
    assert_eq!(exp.skipped.len(), 1);
}

/// Found by the fuzzer: a rejected `# TYPE` line moved the parser's current family, so in
/// lenient mode a later ambiguous sample (`h_sum`, both its own untyped family and part of
/// histogram `h`) landed elsewhere than with the bad line removed.
#[test]
fn rejected_type_line_leaves_no_trace() {
    let body = "h_sum 1\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\n# TYPE g info\ng_info 1\n\
                # TYPE h histogram\n# TYPE g gauge\nh_sum 2\n";
    let lenient = parse(body, Mode::Lenient).unwrap();
    assert_eq!(lenient.skipped.len(), 1);
    let without = body.replace("# TYPE g gauge\n", "");
    let strict = strict(&without);
    let shape = |exp: &Exposition<'_>| -> Vec<(String, usize)> {
        exp.families
            .iter()
            .map(|f| (f.name.to_string(), f.samples.len()))
            .collect()
    };
    assert_eq!(shape(&lenient), shape(&strict));
}

#[test]
fn points_of_one_series_at_distinct_times_are_not_duplicates() {
    let exp = strict(
        "# TYPE a gauge\na{x=\"1\"} 1 1700000000\na{x=\"1\"} 2 1700000015\na{x=\"1\"} 3 1700000015\n# EOF\n",
    );
    assert_eq!(exp.duplicate_series(), ["a{x=\"1\"} (2 times)"]);
}

#[test]
fn series_that_differ_in_one_label_value_or_name_are_not_duplicates() {
    let exp = strict(
        "a{x=\"1\",y=\"2\"} 1\na{x=\"2\",y=\"1\"} 1\na{x=\"1\"} 1\nb{x=\"1\"} 1\na{x=\"1\",z=\"2\"} 1\n",
    );
    assert!(exp.duplicate_series().is_empty());
}

#[test]
fn one_series_repeated_many_times_is_one_duplicate_with_its_count() {
    let mut text = String::new();
    for _ in 0..100 {
        text.push_str("a{x=\"1\"} 1\n");
    }
    text.push_str("a{x=\"2\"} 1\n");
    assert_eq!(strict(&text).duplicate_series(), ["a{x=\"1\"} (100 times)"]);
}

/// What `duplicate_series` must say, by text keys (the slow way it used to work).
fn duplicates_by_text(exp: &Exposition<'_>) -> Vec<String> {
    let mut seen = std::collections::BTreeMap::<(String, Option<u64>), usize>::new();
    for s in &exp.samples {
        *seen
            .entry((exp.series_key(s), s.timestamp.map(f64::to_bits)))
            .or_default() += 1;
    }
    seen.into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|((key, _), n)| format!("{key} ({n} times)"))
        .collect()
}

/// Generated `(name, value)` label picks without a name picked twice: the first of each.
fn first_of_each_name(labels: &[(usize, usize)]) -> Vec<(usize, usize)> {
    let mut names = Vec::new();
    labels
        .iter()
        .filter(|(n, _)| {
            let fresh = !names.contains(n);
            names.push(*n);
            fresh
        })
        .copied()
        .collect()
}

proptest::proptest! {
    /// The hashed duplicate check finds exactly what comparing text keys finds, whatever the
    /// label order, values, names and timestamps.
    #[test]
    fn duplicate_check_agrees_with_text_keys(lines in proptest::collection::vec(
        (0..2usize, proptest::collection::vec((0..3usize, 0..3usize), 0..4), 0..3usize),
        0..40,
    )) {
        let mut text = String::new();
        for (name, labels, ts) in &lines {
            let pairs: Vec<String> = first_of_each_name(labels)
                .iter()
                .map(|(n, v)| format!("{}=\"{}\"", ["x", "y", "long_label_name"][*n], ["1", "22", "a-value-longer-than-sixteen-bytes"][*v]))
                .collect();
            let stamp = ["", " 1000", " 2000"][*ts];
            text.push_str(&format!("{}{{{}}} 1{stamp}\n", ["a", "b"][*name], pairs.join(",")));
        }
        let exp = strict(&text);
        let mut expected = duplicates_by_text(&exp);
        expected.sort();
        proptest::prop_assert_eq!(exp.duplicate_series(), expected, "{}", text);
    }
}

#[test]
fn an_openmetrics_body_may_end_with_eof_and_no_newline() {
    let exp = strict("# TYPE a gauge\na 1\n# EOF");
    assert!(exp.saw_eof);
    assert!(exp.skipped.is_empty());
    // Any other last line without a newline is still a likely truncation.
    let err = parse("# TYPE a gauge\na 1", Mode::Strict).unwrap_err();
    assert_eq!(err.kind, ParseErrorKind::MissingFinalNewline);
}

#[test]
fn an_empty_openmetrics_unit_is_no_unit() {
    let exp = strict("# TYPE a gauge\n# UNIT a \na 1\n# EOF\n");
    assert_eq!(exp.families[0].unit, None);
}

/// The labels of every sample of `exp` (parsed from `text`), each with the labels its line
/// gets when parsed alone: equal unless the parser's reading of a label set repeated from
/// the line before it went wrong.
fn labels_against_lines_alone(text: &str, exp: &Exposition<'_>) -> Vec<(String, String)> {
    let owned = |labels: &[crate::exposition::Label<'_>]| format!("{labels:?}");
    let mut out = Vec::new();
    for sample in &exp.samples {
        let at = sample.name.as_ptr() as usize - text.as_ptr() as usize;
        let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
        let line = format!("{}\n", &text[at..end]);
        let alone = parse(&line, Mode::Lenient).expect("a lenient parse");
        let labels = alone
            .samples
            .first()
            .map(|s| alone.labels_of(s))
            .unwrap_or(&[]);
        out.push((owned(exp.labels_of(sample)), owned(labels)));
    }
    out
}

proptest::proptest! {
    /// Consecutive samples of one name whose label sets differ in one value or in several,
    /// in any order, with blanks, escapes, commas, braces and quotes in values: every
    /// sample's labels are what its line alone parses to, whether its set was read in full
    /// or repeated from the line before.
    #[test]
    fn a_label_set_repeated_but_for_one_value_reads_as_its_line_alone(lines in proptest::collection::vec(
        (proptest::collection::vec((0..3usize, 0..8usize), 1..4), proptest::bool::ANY),
        1..30,
    )) {
        const VALUES: [&str; 8] = ["1", "2.5", "x}y", "a,b", "q\\\"", "", "+Inf", "0.0001"];
        let mut text = String::new();
        for (labels, blank) in &lines {
            let pairs: Vec<String> = first_of_each_name(labels)
                .iter()
                .map(|(n, v)| {
                    let eq = if *blank { " = " } else { "=" };
                    format!("{}{eq}\"{}\"", ["a", "le", "model_name"][*n], VALUES[*v])
                })
                .collect();
            text.push_str(&format!("m_bucket{{{}}} 1\n", pairs.join(",")));
        }
        let exp = parse(&text, Mode::Lenient).expect("a lenient parse");
        proptest::prop_assert_eq!(exp.samples.len(), lines.len(), "{}", text);
        for (i, (ours, alone)) in labels_against_lines_alone(&text, &exp).iter().enumerate() {
            proptest::prop_assert_eq!(ours, alone, "line {} of\n{}", i + 1, text);
        }
    }
}

#[test]
fn every_fixture_sample_reads_as_its_line_alone_in_both_spellings() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/reconstructed");
    let mut checked = 0;
    for entry in std::fs::read_dir(root).expect("the fixtures") {
        let path = entry.expect("an entry").path();
        let text = std::fs::read_to_string(&path).expect("a fixture");
        let Ok(exp) = parse(&text, Mode::Strict) else {
            continue;
        };
        let om = crate::exposition::write_openmetrics(&exp);
        let om_exp = parse_openmetrics(&om, Mode::Strict).expect("its OpenMetrics reading");
        for (body, exp) in [(&text, &exp), (&om, &om_exp)] {
            for (ours, alone) in labels_against_lines_alone(body, exp) {
                assert_eq!(ours, alone, "{}", path.display());
                checked += 1;
            }
        }
    }
    assert!(checked > 5_000, "only {checked} samples checked");
}
