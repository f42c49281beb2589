//! Writes valid Prometheus text format 0.0.4, and OpenMetrics 1.0 text.
//!
//! Values are written so that they parse back to the same `f64`: integers below 2^53 without a
//! fraction, everything else in Rust's shortest round-trip form, and `NaN`, `+Inf`, `-Inf`.

use std::fmt::Write as _;

use super::{Exposition, Family, MetricType, Sample};

/// Writes a whole exposition: per family an optional `# HELP`, a `# TYPE` and its samples.
/// Exemplars are dropped, since text 0.0.4 has no syntax for them.
pub fn write_exposition(exp: &Exposition<'_>) -> String {
    let mut out = String::with_capacity(exp.sample_count() * 64);
    for family in &exp.families {
        write_family_header(
            &mut out,
            family.name,
            family.help.as_deref(),
            family.kind.as_text_004(),
        );
        for sample in exp.samples_of(family) {
            let labels = exp
                .labels_of(sample)
                .iter()
                .map(|l| (l.name, l.value.as_ref()));
            write_sample(
                &mut out,
                sample.name,
                labels,
                sample.value,
                sample.timestamp,
            );
        }
    }
    out
}

/// Writes a whole exposition as OpenMetrics 1.0 text that passes the strict check:
/// OpenMetrics' type names, `# UNIT` when the family's name ends with it, HELP with its three
/// escapes, exemplars, and `# EOF`. Counters take OpenMetrics' naming: a family declared as
/// `x_total` (llama.cpp) is written as family `x`, and a counter sample with no suffix (TGI)
/// gets `_total`. Timestamps are written as held (OpenMetrics reads them as seconds).
pub fn write_openmetrics(exp: &Exposition<'_>) -> String {
    let mut out = String::with_capacity(exp.sample_count() * 64 + 16);
    for family in &exp.families {
        let name = openmetrics_family_name(family);
        out.push_str("# TYPE ");
        out.push_str(name);
        out.push(' ');
        out.push_str(family.kind.keyword());
        out.push('\n');
        if let Some(unit) = family.unit
            && super::openmetrics::unit_fits(name, unit)
        {
            let _ = writeln!(out, "# UNIT {name} {unit}");
        }
        if let Some(help) = &family.help {
            let _ = write!(out, "# HELP {name} ");
            escape_label_value_into(&mut out, help);
            out.push('\n');
        }
        for sample in exp.samples_of(family) {
            write_openmetrics_sample(&mut out, exp, family, name, sample);
        }
    }
    out.push_str("# EOF\n");
    out
}

/// A family's name as OpenMetrics wants it: a counter's without `_total`.
fn openmetrics_family_name<'a>(family: &Family<'a>) -> &'a str {
    match family.kind {
        MetricType::Counter => family.name.strip_suffix("_total").unwrap_or(family.name),
        _ => family.name,
    }
}

fn write_openmetrics_sample(
    out: &mut String,
    exp: &Exposition<'_>,
    family: &Family<'_>,
    name: &str,
    sample: &Sample<'_>,
) {
    let labels = exp
        .labels_of(sample)
        .iter()
        .map(|l| (l.name, l.value.as_ref()));
    if family.kind == MetricType::Counter && sample.name == family.name {
        write_series(out, &format!("{name}_total"), labels);
    } else {
        write_series(out, sample.name, labels);
    }
    write_value(out, sample.value);
    if let Some(ts) = sample.timestamp {
        out.push(' ');
        write_value(out, ts);
    }
    if let Some(exemplar) = &sample.exemplar {
        out.push_str(" # ");
        if exemplar.labels.is_empty() {
            out.push_str("{} ");
        } else {
            let labels = exemplar.labels.iter().map(|l| (l.name, l.value.as_ref()));
            write_series(out, "", labels);
        }
        write_value(out, exemplar.value);
        if let Some(ts) = exemplar.timestamp {
            out.push(' ');
            write_value(out, ts);
        }
    }
    out.push('\n');
}

/// Writes `# HELP` (when given) and `# TYPE` lines.
pub fn write_family_header(out: &mut String, name: &str, help: Option<&str>, kind: &str) {
    if let Some(help) = help {
        out.push_str("# HELP ");
        out.push_str(name);
        out.push(' ');
        for c in help.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('\n');
    }
    out.push_str("# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(kind);
    out.push('\n');
}

/// Writes one sample line. Labels are written in the order given.
pub fn write_sample<'l>(
    out: &mut String,
    name: &str,
    labels: impl IntoIterator<Item = (&'l str, &'l str)>,
    value: f64,
    timestamp: Option<f64>,
) {
    write_series(out, name, labels);
    write_value(out, value);
    if let Some(ts) = timestamp {
        out.push(' ');
        write_value(out, ts);
    }
    out.push('\n');
}

/// Writes `name{labels} ` — a sample line up to its value, for writers that format the
/// value themselves (the simulator's engine dialects).
pub fn write_series<'l>(
    out: &mut String,
    name: &str,
    labels: impl IntoIterator<Item = (&'l str, &'l str)>,
) {
    out.push_str(name);
    let mut first = true;
    for (label, label_value) in labels {
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str(label);
        out.push_str("=\"");
        escape_label_value_into(out, label_value);
        out.push('"');
    }
    if !first {
        out.push('}');
    }
    out.push(' ');
}

/// Appends `value` in a form that parses back to the same float.
pub fn write_value(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else if value.fract() == 0.0 && value.abs() < 9.0e15 {
        // Integral and exactly representable: no ".0", no exponent. (`itoa` rather than
        // `write!`: bucket counts are most of a large body's values.)
        out.push_str(itoa::Buffer::new().format(value as i64));
        if value == 0.0 && value.is_sign_negative() {
            // Keep -0.0 distinct from 0.0 so the round trip is exact.
            out.truncate(out.len() - 1);
            out.push_str("-0");
        }
    } else {
        let _ = write!(out, "{value:?}");
    }
}

/// Position of the first `\`, `"` or newline in `b`, eight bytes at a time: label values
/// are short, where a vectorised search's set-up per call costs more than the search
/// (about 1 % of `scrape --format prom`'s instructions on a 400-model body).
fn find_escaped(b: &[u8]) -> Option<usize> {
    use super::lex::{find_swar, flag_bytes};
    find_swar(
        b,
        |w| flag_bytes(w, b'\\') | flag_bytes(w, b'"') | flag_bytes(w, b'\n'),
        |c| matches!(c, b'\\' | b'"' | b'\n'),
    )
}

/// Appends a label value with `\`, `"` and newline escaped.
pub(crate) fn escape_label_value_into(out: &mut String, value: &str) {
    // Most values need no escape: copy the runs between escapes whole, not char by char.
    let mut rest = value;
    while let Some(i) = find_escaped(rest.as_bytes()) {
        out.push_str(rest.get(..i).unwrap_or_default());
        out.push_str(match rest.as_bytes()[i] {
            b'\\' => "\\\\",
            b'"' => "\\\"",
            _ => "\\n",
        });
        rest = rest.get(i + 1..).unwrap_or_default();
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::escape_label_value_into;

    proptest::proptest! {
        /// The word-at-a-time search escapes exactly what a character-by-character escaper
        /// does, with the three escaped characters common, at every place in a word, next to
        /// multi-byte characters.
        #[test]
        fn label_values_escape_as_character_by_character(value in "[a\\\\\"\n\u{e9}\u{1f600}/.-]{0,40}") {
            let reference: String = value
                .chars()
                .map(|c| match c {
                    '\\' => "\\\\".to_string(),
                    '"' => "\\\"".to_string(),
                    '\n' => "\\n".to_string(),
                    c => c.to_string(),
                })
                .collect();
            let mut out = String::from("prefix");
            escape_label_value_into(&mut out, &value);
            proptest::prop_assert_eq!(out, format!("prefix{reference}"));
        }
    }
}
