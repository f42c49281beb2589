//! The part of Prometheus's alert templates the alerts use, so one description text serves
//! Prometheus and `up`: `{{ $labels.NAME }}`, `{{ $value }}`, and `$value` piped to
//! `humanize`, `humanizePercentage` or `humanizeDuration`, formatted as Prometheus formats
//! them. Anything else is left as written.

use super::eval::Labels;

/// `description` with its placeholders filled from `labels` and `value`.
pub fn render(template: &str, labels: &Labels, value: f64) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = rest[start + 2..start + end].trim();
        match placeholder(inner, labels, value) {
            Some(text) => out.push_str(&text),
            None => out.push_str(&rest[start..start + end + 2]),
        }
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}

fn placeholder(inner: &str, labels: &Labels, value: f64) -> Option<String> {
    if let Some(name) = inner.strip_prefix("$labels.") {
        return Some(labels.get(name).cloned().unwrap_or_default());
    }
    let (var, filter) = match inner.split_once('|') {
        Some((v, f)) => (v.trim(), Some(f.trim())),
        None => (inner, None),
    };
    if var != "$value" {
        return None;
    }
    Some(match filter {
        None => plain(value),
        Some("humanize") => humanize(value),
        Some("humanizePercentage") => format!("{}%", g4(value * 100.0)),
        Some("humanizeDuration") => duration(value),
        Some(_) => return None,
    })
}

/// A number as Go's `%v` writes a float: shortest form, exponent for large and small.
fn plain(v: f64) -> String {
    if v != 0.0 && !(1e-4..1e21).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// `%.4g`: four significant digits, trailing zeros dropped.
pub fn g4(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let exponent = v.abs().log10().floor() as i32;
    if !(-4..4).contains(&exponent) {
        let mantissa = v / 10f64.powi(exponent);
        let m = trim(format!("{mantissa:.3}"));
        return format!(
            "{m}e{}{:02}",
            if exponent < 0 { '-' } else { '+' },
            exponent.abs()
        );
    }
    let decimals = usize::try_from(3 - exponent).unwrap_or(0);
    trim(format!("{v:.decimals$}"))
}

fn trim(text: String) -> String {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// Prometheus's `humanize`: SI prefixes, four significant digits.
fn humanize(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return g4(v);
    }
    const UP: [&str; 8] = ["", "k", "M", "G", "T", "P", "E", "Z"];
    const DOWN: [&str; 8] = ["", "m", "u", "n", "p", "f", "a", "z"];
    let mut x = v;
    if v.abs() >= 1.0 {
        let mut i = 0;
        while x.abs() >= 1000.0 && i + 1 < UP.len() {
            x /= 1000.0;
            i += 1;
        }
        format!("{}{}", g4(x), UP[i])
    } else {
        let mut i = 0;
        while x.abs() < 1.0 && i + 1 < DOWN.len() {
            x *= 1000.0;
            i += 1;
        }
        format!("{}{}", g4(x), DOWN[i])
    }
}

/// Prometheus's `humanizeDuration`: `1d 2h 3m 4s` from a second up, else `ms`, `us`, `ns`.
fn duration(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{}s", g4(v));
    }
    if v.abs() < 1.0 {
        for (scale, unit) in [(1e3, "ms"), (1e6, "us"), (1e9, "ns")] {
            if (v * scale).abs() >= 1.0 || unit == "ns" {
                return format!("{}{unit}", g4(v * scale));
            }
        }
    }
    let whole = v.abs().trunc() as u64;
    let (days, hours, minutes) = (whole / 86_400, whole / 3600 % 24, whole / 60 % 60);
    let seconds = v.abs() % 60.0;
    let sign = if v < 0.0 { "-" } else { "" };
    let mut parts = Vec::new();
    if days > 0 {
        parts.push(format!("{days}d"));
    }
    if hours > 0 {
        parts.push(format!("{hours}h"));
    }
    if minutes > 0 {
        parts.push(format!("{minutes}m"));
    }
    if seconds >= 0.001 || parts.is_empty() {
        parts.push(format!("{}s", g4(seconds)));
    }
    format!("{sign}{}", parts.join(" "))
}

/// A value as Prometheus's API writes it (Go's `%e` with the shortest mantissa: `9.7e-01`).
pub fn api_value(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let text = format!("{v:e}");
    let Some((mantissa, exponent)) = text.split_once('e') else {
        return text;
    };
    let (sign, digits) = match exponent.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', exponent),
    };
    format!("{mantissa}e{sign}{digits:0>2}")
}

/// Unix seconds as RFC 3339 in UTC, with milliseconds.
pub fn rfc3339(unix: f64) -> String {
    let millis = (unix * 1000.0).round() as i64;
    let (secs, ms) = (millis.div_euclid(1000), millis.rem_euclid(1000));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_render_as_prometheus_renders_them() {
        let labels = Labels::from([("instance".to_string(), "vllm-0".to_string())]);
        let text = "{{ $labels.instance }}: {{ $value | humanizePercentage }} ({{ $value }}), {{ $labels.missing }}|{{ .Other }}";
        assert_eq!(
            render(text, &labels, 0.1234),
            "vllm-0: 12.34% (0.1234), |{{ .Other }}"
        );
        assert_eq!(humanize(1234.0), "1.234k");
        assert_eq!(humanize(0.5), "500m");
        assert_eq!(humanize(3.0), "3");
        assert_eq!(duration(2.5), "2.5s");
        assert_eq!(duration(65.0), "1m 5s");
        assert_eq!(duration(0.25), "250ms");
        assert_eq!(duration(90_061.0), "1d 1h 1m 1s");
        assert_eq!(g4(123456.0), "1.235e+05");
        assert_eq!(plain(0.0), "0");
        assert_eq!(render("{{ unterminated", &labels, 1.0), "{{ unterminated");
    }

    #[test]
    fn values_are_written_as_prometheus_writes_them() {
        assert_eq!(api_value(0.97), "9.7e-01");
        assert_eq!(api_value(0.0), "0e+00");
        assert_eq!(api_value(1234.5), "1.2345e+03");
        assert_eq!(api_value(f64::NAN), "NaN");
    }

    #[test]
    fn times_are_rfc3339_in_utc() {
        assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_796_059_626.5), "2026-11-30T17:27:06.500Z");
        assert_eq!(rfc3339(951_782_400.0), "2000-02-29T00:00:00.000Z");
    }
}
