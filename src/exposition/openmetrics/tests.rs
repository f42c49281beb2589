//! One test per rule: a body that breaks it is refused in strict mode with the rule and the
//! line, and listed and skipped in lenient mode; the same body with the break mended parses.
//! Every type in one conforming body, and the 0.0.4 leniency untouched.

use super::*;
use crate::exposition::{Mode, ParseErrorKind, parse, parse_openmetrics};

/// Every type, every suffix, an exemplar, a unit: valid OpenMetrics 1.0.
const CONFORMING: &str = r#"# TYPE request_seconds histogram
# UNIT request_seconds seconds
# HELP request_seconds Time per request, with \"quotes\" and a \\ and a\nnewline.
request_seconds_bucket{path="/v1",le="0.1"} 1 # {trace_id="abc"} 0.05 1700000000.5
request_seconds_bucket{path="/v1",le="+Inf"} 2
request_seconds_count{path="/v1"} 2
request_seconds_sum{path="/v1"} 0.3
request_seconds_created{path="/v1"} 1700000000
# TYPE requests counter
requests_total{code="200",note="a \"quoted\" , } value"} 5 # {trace_id="x"} 1
requests_created{code="200",note="a \"quoted\" , } value"} 1700000000
# TYPE up gauge
up 1
up{} -2.5e-3
# TYPE build info
build_info{version="1.2"} 1
# TYPE mode stateset
mode{mode="a"} 1
mode{mode="b"} 0
# TYPE latency summary
latency{quantile="0.5"} 0.1
latency{quantile="1"} 0.9
latency_count 3
latency_sum 0.5
# TYPE queue gaugehistogram
queue_bucket{le="1"} 1
queue_bucket{le="+Inf"} 2
queue_gcount 2
queue_gsum 1
# TYPE other unknown
# HELP other 
other 3 1700000000
other 4 1700000001
# EOF
"#;

/// What strict mode says about `body`: the rule and line of its first error.
fn refusal(body: &str) -> Option<(Rule, usize)> {
    match parse_openmetrics(body, Mode::Strict) {
        Ok(_) => None,
        Err(e) => match e.kind {
            ParseErrorKind::OpenMetrics { rule, .. } => Some((rule, e.line)),
            other => panic!("not an OpenMetrics rule: {other} ({body:?})"),
        },
    }
}

/// `broken` breaks `rule` at `line` (strict refuses it there; lenient skips that line and
/// names the rule), and `mended` parses in strict mode.
fn check(rule: Rule, broken: &str, line: usize, mended: &str) {
    dump_case(rule, broken, mended);
    assert_eq!(refusal(broken), Some((rule, line)), "{broken}");
    let lenient = parse_openmetrics(broken, Mode::Lenient).unwrap();
    assert!(
        lenient.skipped.iter().any(|e| e.line == line
            && matches!(&e.kind, ParseErrorKind::OpenMetrics { rule: r, .. } if *r == rule)),
        "{:?}",
        lenient.skipped
    );
    if let Err(e) = parse_openmetrics(mended, Mode::Strict) {
        panic!("{rule:?}: the mended body is refused: {e}\n{mended}");
    }
}

/// With `LLMWATCH_DUMP_OPENMETRICS_CASES=DIR`, writes each case's two bodies there, to run
/// other parsers over them (docs/benchmarks.md compares the reference Python parser).
fn dump_case(rule: Rule, broken: &str, mended: &str) {
    let Some(dir) = std::env::var_os("LLMWATCH_DUMP_OPENMETRICS_CASES") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    let n = std::fs::read_dir(&dir).unwrap().count();
    std::fs::write(dir.join(format!("{n:03}-{rule:?}-broken.txt")), broken).unwrap();
    std::fs::write(dir.join(format!("{n:03}-{rule:?}-mended.txt")), mended).unwrap();
}

/// Text 0.0.4 accepts the broken body as before.
fn text_004_accepts(body: &str) {
    let body = body.replace("# EOF\n", "");
    parse(&body, Mode::Strict).unwrap_or_else(|e| panic!("0.0.4 refuses {body:?}: {e}"));
}

#[test]
fn the_conforming_body_parses_with_every_type() {
    let exp = parse_openmetrics(CONFORMING, Mode::Strict).unwrap();
    let kinds: Vec<MetricType> = exp.families.iter().map(|f| f.kind).collect();
    assert_eq!(kinds.len(), 8);
    for kind in [
        MetricType::Counter,
        MetricType::Gauge,
        MetricType::Histogram,
        MetricType::GaugeHistogram,
        MetricType::Summary,
        MetricType::Info,
        MetricType::StateSet,
        MetricType::Untyped,
    ] {
        assert!(kinds.contains(&kind), "{kind:?}");
    }
    assert_eq!(exp.families[0].unit, Some("seconds"));
    // Without its final newline too.
    parse_openmetrics(CONFORMING.trim_end(), Mode::Strict).unwrap();
}

#[test]
fn missing_eof() {
    check(Rule::MissingEof, "up 1\n", 1, "up 1\n# EOF\n");
}

#[test]
fn blank_line() {
    check(
        Rule::BlankLine,
        "up 1\n\nup2 1\n# EOF\n",
        2,
        "up 1\nup2 1\n# EOF\n",
    );
    text_004_accepts("up 1\n\nup2 1\n# EOF\n");
}

#[test]
fn carriage_return() {
    check(Rule::CarriageReturn, "up 1\r\n# EOF\n", 1, "up 1\n# EOF\n");
    text_004_accepts("up 1\r\n");
}

#[test]
fn whitespace() {
    for (broken, line) in [
        ("up  1\n# EOF\n", 1),
        ("up\t1\n# EOF\n", 1),
        (" up 1\n# EOF\n", 1),
        ("up 1 \n# EOF\n", 1),
        ("up {a=\"1\"} 1\n# EOF\n", 1),
        ("up{a=\"1\", b=\"2\"} 1\n# EOF\n", 1),
        ("up{a = \"1\"} 1\n# EOF\n", 1),
        ("up 1 1700000000  # {a=\"1\"} 1\n# EOF\n", 1),
        ("#  TYPE up gauge\nup 1\n# EOF\n", 1),
        ("# TYPE up  gauge\nup 1\n# EOF\n", 1),
        ("# HELP up\nup 1\n# EOF\n", 1),
    ] {
        check(
            Rule::Whitespace,
            broken,
            line,
            "up{a=\"1\",b=\"2\"} 1\n# EOF\n",
        );
        text_004_accepts(broken);
    }
}

#[test]
fn trailing_comma() {
    check(
        Rule::TrailingComma,
        "up{a=\"1\",} 1\n# EOF\n",
        1,
        "up{a=\"1\"} 1\n# EOF\n",
    );
    text_004_accepts("up{a=\"1\",} 1\n");
}

#[test]
fn invalid_escape() {
    check(
        Rule::InvalidEscape,
        "up{a=\"C:\\dir\"} 1\n# EOF\n",
        1,
        "up{a=\"C:\\\\dir\"} 1\n# EOF\n",
    );
    check(
        Rule::InvalidEscape,
        "# HELP up A \\t tab.\nup 1\n# EOF\n",
        1,
        "# HELP up A \\\\t tab.\nup 1\n# EOF\n",
    );
    text_004_accepts("up{a=\"C:\\dir\"} 1\n");
}

#[test]
fn reserved_label_name() {
    check(
        Rule::ReservedLabelName,
        "up{__name__=\"x\"} 1\n# EOF\n",
        1,
        "up{name=\"x\"} 1\n# EOF\n",
    );
}

#[test]
fn unknown_comment() {
    check(
        Rule::UnknownComment,
        "# a free comment\nup 1\n# EOF\n",
        1,
        "up 1\n# EOF\n",
    );
    text_004_accepts("# a free comment\nup 1\n");
}

#[test]
fn invalid_type() {
    check(
        Rule::InvalidType,
        "# TYPE up untyped\nup 1\n# EOF\n",
        1,
        "# TYPE up unknown\nup 1\n# EOF\n",
    );
}

#[test]
fn repeated_metadata() {
    check(
        Rule::RepeatedMetadata,
        "# HELP up One.\n# HELP up Two.\nup 1\n# EOF\n",
        2,
        "# HELP up One.\nup 1\n# EOF\n",
    );
    check(
        Rule::RepeatedMetadata,
        "# TYPE up gauge\n# TYPE up gauge\nup 1\n# EOF\n",
        2,
        "# TYPE up gauge\nup 1\n# EOF\n",
    );
}

#[test]
fn metadata_after_samples() {
    check(
        Rule::MetadataAfterSamples,
        "# TYPE up gauge\nup 1\n# HELP up Late.\n# EOF\n",
        3,
        "# TYPE up gauge\n# HELP up Early.\nup 1\n# EOF\n",
    );
}

#[test]
fn unit_suffix() {
    check(
        Rule::UnitSuffix,
        "# TYPE latency gauge\n# UNIT latency seconds\nlatency 1\n# EOF\n",
        2,
        "# TYPE latency_seconds gauge\n# UNIT latency_seconds seconds\nlatency_seconds 1\n# EOF\n",
    );
}

#[test]
fn interleaved_families() {
    check(
        Rule::InterleavedFamilies,
        "# TYPE a gauge\na{x=\"1\"} 1\n# TYPE b gauge\nb 1\na{x=\"2\"} 2\n# EOF\n",
        5,
        "# TYPE a gauge\na{x=\"1\"} 1\na{x=\"2\"} 2\n# TYPE b gauge\nb 1\n# EOF\n",
    );
    text_004_accepts("# TYPE a gauge\na{x=\"1\"} 1\n# TYPE b gauge\nb 1\na{x=\"2\"} 2\n");
}

#[test]
fn sample_suffix() {
    // llama.cpp's `# TYPE x_total counter` with a sample `x_total`: OpenMetrics wants
    // `x_total_total`.
    check(
        Rule::SampleSuffix,
        "# TYPE tokens_total counter\ntokens_total 5\n# EOF\n",
        2,
        "# TYPE tokens counter\ntokens_total 5\n# EOF\n",
    );
    check(
        Rule::SampleSuffix,
        "# TYPE hits counter\nhits 5\n# EOF\n",
        2,
        "# TYPE hits counter\nhits_total 5\n# EOF\n",
    );
}

#[test]
fn counter_value() {
    check(
        Rule::CounterValue,
        "# TYPE hits counter\nhits_total -1\n# EOF\n",
        2,
        "# TYPE hits counter\nhits_total 0\n# EOF\n",
    );
    check(
        Rule::CounterValue,
        "# TYPE hits counter\nhits_total NaN\n# EOF\n",
        2,
        "# TYPE hits counter\nhits_total +Inf\n# EOF\n",
    );
}

#[test]
fn misplaced_label() {
    check(
        Rule::MisplacedLabel,
        "# TYPE up gauge\nup{le=\"1\"} 1\n# EOF\n",
        2,
        "# TYPE up gauge\nup{bound=\"1\"} 1\n# EOF\n",
    );
    check(
        Rule::MisplacedLabel,
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count{quantile=\"1\"} 1\nh_sum 1\n# EOF\n",
        3,
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 1\n# EOF\n",
    );
}

#[test]
fn bucket_label() {
    check(
        Rule::BucketLabel,
        "# TYPE h histogram\nh_bucket{le=\"fast\"} 1\n# EOF\n",
        2,
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\n# EOF\n",
    );
}

#[test]
fn bucket_order() {
    check(
        Rule::BucketOrder,
        "# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\n# EOF\n",
        2,
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"+Inf\"} 1\n# EOF\n",
    );
}

#[test]
fn non_cumulative() {
    check(
        Rule::NonCumulative,
        "# TYPE h histogram\nh_bucket{le=\"1\"} 5\nh_bucket{le=\"+Inf\"} 3\nh_count 3\nh_sum 1\n# EOF\n",
        2,
        "# TYPE h histogram\nh_bucket{le=\"1\"} 3\nh_bucket{le=\"+Inf\"} 5\nh_count 5\nh_sum 1\n# EOF\n",
    );
}

/// The bucket checks compare a bucket with the previous one by its label text first; a
/// text that differs is compared label by label, so writing the labels in another order
/// keeps one metric, and another value starts a new one.
#[test]
fn buckets_with_labels_in_another_order_are_one_metric() {
    let body = "# TYPE h histogram\nh_bucket{a=\"1\",le=\"1\"} 1\nh_bucket{le=\"2\",a=\"1\"} 2\n\
                h_bucket{a=\"1\",le=\"+Inf\"} 3\nh_count{a=\"1\"} 3\nh_sum{a=\"1\"} 1\n# EOF\n";
    assert_eq!(refusal(body), None);
}

#[test]
fn a_bucket_of_another_label_set_starts_a_new_metric() {
    // a="1" ends without +Inf where a="2" begins: a bucket order check across the two
    // would pass (1 < 2 < 3), so only the metric boundary finds it.
    let broken = "# TYPE h histogram\nh_bucket{a=\"1\",le=\"1\"} 1\nh_bucket{a=\"2\",le=\"2\"} 2\n\
                  h_bucket{a=\"2\",le=\"+Inf\"} 3\n# EOF\n";
    assert_eq!(refusal(broken), Some((Rule::MissingInf, 2)));
    // A bound that does not rise within one label set is found after many that did.
    let mut body = String::from("# TYPE h histogram\n");
    for (i, le) in ["1", "2", "3", "2.5", "+Inf"].iter().enumerate() {
        body.push_str(&format!("h_bucket{{model=\"m\",le=\"{le}\"}} {i}\n"));
    }
    body.push_str("# EOF\n");
    assert_eq!(refusal(&body), Some((Rule::BucketOrder, 2)));
}

#[test]
fn missing_inf() {
    check(
        Rule::MissingInf,
        "# TYPE h histogram\nh_bucket{le=\"1\"} 5\nh_count 5\nh_sum 1\n# EOF\n",
        2,
        "# TYPE h histogram\nh_bucket{le=\"1\"} 5\nh_bucket{le=\"+Inf\"} 5\nh_count 5\nh_sum 1\n# EOF\n",
    );
}

#[test]
fn count_mismatch() {
    check(
        Rule::CountMismatch,
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 5\nh_count 4\nh_sum 1\n# EOF\n",
        2,
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 5\nh_count 5\nh_sum 1\n# EOF\n",
    );
    check(
        Rule::CountMismatch,
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 5\nh_count 5\n# EOF\n",
        2,
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 5\nh_count 5\nh_sum 4\n# EOF\n",
    );
    check(
        Rule::CountMismatch,
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 5\nh_sum 4\n# EOF\n",
        2,
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 5\nh_count 5\nh_sum 4\n# EOF\n",
    );
}

#[test]
fn negative_count() {
    check(
        Rule::NegativeCount,
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} -1\n# EOF\n",
        2,
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\n# EOF\n",
    );
}

#[test]
fn quantile_label() {
    check(
        Rule::QuantileLabel,
        "# TYPE s summary\ns{quantile=\"1.5\"} 1\n# EOF\n",
        2,
        "# TYPE s summary\ns{quantile=\"1\"} 1\n# EOF\n",
    );
}

#[test]
fn info_value() {
    check(
        Rule::InfoValue,
        "# TYPE build info\nbuild_info{v=\"1\"} 2\n# EOF\n",
        2,
        "# TYPE build info\nbuild_info{v=\"1\"} 1\n# EOF\n",
    );
}

#[test]
fn state_set_value() {
    check(
        Rule::StateSetValue,
        "# TYPE mode stateset\nmode{mode=\"a\"} 2\n# EOF\n",
        2,
        "# TYPE mode stateset\nmode{mode=\"a\"} 1\n# EOF\n",
    );
    check(
        Rule::StateSetValue,
        "# TYPE mode stateset\nmode{state=\"a\"} 1\n# EOF\n",
        2,
        "# TYPE mode stateset\nmode{mode=\"a\"} 1\n# EOF\n",
    );
}

#[test]
fn exemplar_placement() {
    check(
        Rule::ExemplarPlacement,
        "# TYPE up gauge\nup 1 # {trace_id=\"a\"} 1\n# EOF\n",
        2,
        "# TYPE up gauge\nup 1\n# EOF\n",
    );
}

#[test]
fn exemplar_too_long() {
    let long = "x".repeat(121);
    check(
        Rule::ExemplarTooLong,
        &format!("# TYPE c counter\nc_total 1 # {{trace_id=\"{long}\"}} 1\n# EOF\n"),
        2,
        &format!(
            "# TYPE c counter\nc_total 1 # {{trace_id=\"{}\"}} 1\n# EOF\n",
            &long[..120]
        ),
    );
}

#[test]
fn timestamp_order() {
    check(
        Rule::TimestampOrder,
        "# TYPE up gauge\nup 1 1700000001\nup 2 1700000000\n# EOF\n",
        3,
        "# TYPE up gauge\nup 1 1700000000\nup 2 1700000001\n# EOF\n",
    );
}

#[test]
fn every_rule_has_its_test() {
    let source = include_str!("tests.rs");
    for rule in Rule::ALL {
        let name = format!("Rule::{rule:?},");
        assert!(source.contains(&name), "no test breaks {rule:?}");
    }
}

#[test]
fn lenient_mode_keeps_the_lines_that_keep_the_rules() {
    let body = "# TYPE h histogram\nh_bucket{le=\"1\"} 5\nh_bucket{le=\"+Inf\"} 3\nh_count 3\n# TYPE up gauge\nup  1\nup{a=\"1\"} 2\n# EOF\n";
    let exp = parse_openmetrics(body, Mode::Lenient).unwrap();
    let lines: Vec<usize> = exp.skipped.iter().map(|e| e.line).collect();
    // The whole broken histogram (its three lines, listed once at its first) and the
    // doubled space.
    assert_eq!(lines, [2, 6]);
    let names: Vec<&str> = exp.samples.iter().map(|s| s.name).collect();
    assert_eq!(names, ["up"]);
}

#[test]
fn detection_by_content_type_or_final_eof() {
    assert!(is_openmetrics(
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        "up 1\n"
    ));
    assert!(!is_openmetrics(
        Some("text/plain; version=0.0.4"),
        "up 1\n# EOF\n"
    ));
    assert!(is_openmetrics(None, "up 1\n# EOF\n"));
    assert!(is_openmetrics(None, "up 1\n# EOF"));
    assert!(!is_openmetrics(None, "up 1\n"));
}

/// One family of a 0.0.4-flavoured body with valid values: each type, with the naming
/// quirks real servers have (llama.cpp's `x_total` counter family, TGI's bare counter),
/// label values and HELP texts that need escapes.
fn family_text(i: usize, kind: usize, quirk: bool, labels: &[(usize, usize)], n: u32) -> String {
    const NAMES: [&str; 3] = ["path", "code", "x"];
    const VALUES: [&str; 5] = ["a", "with \\\"quote\\\"", "back\\\\slash", "new\\nline", ""];
    let mut seen = Vec::new();
    let pairs: Vec<String> = labels
        .iter()
        .filter(|(name, _)| {
            let fresh = !seen.contains(name);
            seen.push(*name);
            fresh
        })
        .map(|(name, value)| format!("{}=\"{}\"", NAMES[*name], VALUES[*value]))
        .collect();
    let set = |extra: &str| {
        let all: Vec<String> = pairs
            .iter()
            .cloned()
            .chain((!extra.is_empty()).then(|| extra.to_string()))
            .collect();
        if all.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", all.join(","))
        }
    };
    let v = f64::from(n);
    let help = if quirk {
        format!("# HELP f{i} Help with a \\\\ and a \\n.\n")
    } else {
        String::new()
    };
    match kind {
        0 if quirk => format!("# TYPE f{i}_total counter\nf{i}_total{} {v}\n", set("")),
        0 => format!(
            "{help}# TYPE f{i} counter\nf{i}_total{} {v}\nf{i}_created{} 1700000000\n",
            set(""),
            set("")
        ),
        1 => format!("{help}# TYPE f{i} counter\nf{i}{} {v}\n", set("")),
        2 => format!("{help}# TYPE f{i} gauge\nf{i}{} -{v}.5\n", set("")),
        3 => format!(
            "{help}# TYPE f{i} histogram\nf{i}_bucket{} {v}\nf{i}_bucket{} {}\nf{i}_sum{} 3.5\nf{i}_count{} {}\n",
            set("le=\"0.5\""),
            set("le=\"+Inf\""),
            v + 2.0,
            set(""),
            set(""),
            v + 2.0
        ),
        4 => format!(
            "{help}# TYPE f{i} summary\nf{i}{} 0.1\nf{i}{} 0.9\nf{i}_sum{} 3\nf{i}_count{} {v}\n",
            set("quantile=\"0.5\""),
            set("quantile=\"1\""),
            set(""),
            set("")
        ),
        5 => format!("# TYPE f{i} info\nf{i}_info{} 1\n", set("")),
        6 => format!(
            "# TYPE f{i} stateset\nf{i}{} 1\nf{i}{} 0\n",
            set(&format!("f{i}=\"on\"")),
            set(&format!("f{i}=\"off\""))
        ),
        7 => format!(
            "# TYPE f{i} gaugehistogram\nf{i}_bucket{} {v}\nf{i}_bucket{} {v}\nf{i}_gcount{} {v}\nf{i}_gsum{} 1\n",
            set("le=\"1\""),
            set("le=\"+Inf\""),
            set(""),
            set("")
        ),
        _ => format!("f{i}{} {v}\n", set("")),
    }
}

/// Values and label sets of every sample, in order (the writer may rename samples).
fn values(exp: &crate::exposition::Exposition<'_>) -> Vec<(String, u64)> {
    exp.samples
        .iter()
        .map(|s| {
            let labels: Vec<String> = exp
                .labels_of(s)
                .iter()
                .map(|l| format!("{}={:?}", l.name, l.value))
                .collect();
            (labels.join(","), s.value.to_bits())
        })
        .collect()
}

proptest::proptest! {
    /// Whatever valid data a body held, and however a 0.0.4 server named it, the
    /// OpenMetrics writer's output passes the strict check and holds the same samples.
    #[test]
    fn what_the_openmetrics_writer_writes_passes_the_strict_check(families in proptest::collection::vec(
        (0..9usize, proptest::bool::ANY, proptest::collection::vec((0..3usize, 0..5usize), 0..3), 0..1000u32),
        0..8,
    )) {
        let body: String = families
            .iter()
            .enumerate()
            .map(|(i, (kind, quirk, labels, n))| family_text(i, *kind, *quirk, labels, *n))
            .collect();
        let exp = parse(&body, Mode::Strict).unwrap();
        let written = crate::exposition::write_openmetrics(&exp);
        let again = parse_openmetrics(&written, Mode::Strict);
        proptest::prop_assert!(again.is_ok(), "{:?}\n{}", again.err(), written);
        let again = again.unwrap();
        proptest::prop_assert_eq!(values(&again), values(&exp), "{}", written);
    }
}

/// Found by the fuzzer: a family's metadata, another family's sample, then the first
/// family's sample. The first family was never interleaved by samples, but its metadata and
/// samples were split: two families of one name, which OpenMetrics forbids.
#[test]
fn a_family_resuming_after_another_familys_line_is_interleaved() {
    let body = "# TYPE other unknown\n# HELP other \notIher 3\nother 4\n# EOF\n";
    assert_eq!(refusal(body), Some((Rule::InterleavedFamilies, 4)));
    let split_metadata = "# TYPE a gauge\n# TYPE b gauge\n# HELP a late\na 1\nb 1\n# EOF\n";
    assert_eq!(
        refusal(split_metadata),
        Some((Rule::InterleavedFamilies, 3))
    );
}

/// The strict grammar's escape check tells the HELP reader whether there is anything to
/// unescape: a text with escapes is unescaped, one without is kept as written, and trailing
/// blanks go in both cases, as in text 0.0.4.
#[test]
fn help_is_unescaped_exactly_where_it_holds_escapes() {
    let body = "# HELP a Line one\\nline \\\"two\\\" \\\\ end \n# TYPE a gauge\na 1\n\
                # HELP b Plain text, no escapes\t\n# TYPE b gauge\nb 1\n# EOF\n";
    let exp = parse_openmetrics(body, Mode::Strict).unwrap();
    let help = |name: &str| {
        let family = exp.families.iter().find(|f| f.name == name).unwrap();
        family.help.as_deref().map(str::to_string)
    };
    assert_eq!(help("a").as_deref(), Some("Line one\nline \"two\" \\ end"));
    assert_eq!(help("b").as_deref(), Some("Plain text, no escapes"));
}

/// The strict grammar finds a metadata line's name by scanning name bytes; a name holding
/// a byte no name may hold is still read to its space and refused as malformed, naming
/// the comment, in every kind of metadata line.
#[test]
fn metadata_names_with_bytes_no_name_holds_are_malformed() {
    for (line, which) in [
        ("# TYPE a-b gauge", "TYPE"),
        ("# HELP a.b Text.", "HELP"),
        ("# UNIT a:b-c_seconds seconds", "UNIT"),
        ("# HELP 1a Text.", "HELP"),
    ] {
        let body = format!("{line}\nok 1\n# EOF\n");
        let err = parse_openmetrics(&body, Mode::Strict).unwrap_err();
        assert_eq!(err.line, 1, "{line}");
        assert!(
            matches!(err.kind, ParseErrorKind::MalformedComment(w) if w == which),
            "{line}: {err}"
        );
    }
}

mod ladder;
mod straight_paths;
