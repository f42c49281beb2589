//! Writes valid Prometheus text format 0.0.4.
//!
//! Values are written so that they parse back to the same `f64`: integers below 2^53 without a
//! fraction, everything else in Rust's shortest round-trip form, and `NaN`, `+Inf`, `-Inf`.

use std::fmt::Write as _;

use super::Exposition;

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
        // Integral and exactly representable: no ".0", no exponent.
        let _ = write!(out, "{}", value as i64);
        if value == 0.0 && value.is_sign_negative() {
            // Keep -0.0 distinct from 0.0 so the round trip is exact.
            out.truncate(out.len() - 1);
            out.push_str("-0");
        }
    } else {
        let _ = write!(out, "{value:?}");
    }
}

/// Appends a label value with `\`, `"` and newline escaped.
pub(crate) fn escape_label_value_into(out: &mut String, value: &str) {
    // Most values need no escape: copy the runs between escapes whole, not char by char.
    let mut rest = value;
    while let Some(i) = memchr::memchr3(b'\\', b'"', b'\n', rest.as_bytes()) {
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
