//! Properties every parse must have. The fuzz target and the test suite check them through
//! [`check`], so both hold the parser to the same contract.

use super::{
    Exposition, Mode, ParseErrorKind, parse, parse_openmetrics, write_exposition, write_openmetrics,
};

/// Checks, for one body:
/// - a strict parse, when it succeeds, re-encodes to text 0.0.4 that parses again to the same
///   series (family grouping may change: text 0.0.4 has no `info` type);
/// - a lenient parse equals the strict parse of the body with the skipped lines removed, so a
///   skipped line leaves no trace in the parser's state.
///
/// Returns what differs, for the caller to report.
pub fn check(text: &str) -> Result<(), String> {
    let lenient = parse(text, Mode::Lenient).map_err(|e| format!("lenient parse failed: {e}"))?;
    let skipped: Vec<usize> = lenient
        .skipped
        .iter()
        .filter(|e| e.kind != ParseErrorKind::MissingFinalNewline)
        .map(|e| e.line)
        .collect();
    let kept: String = text
        .split('\n')
        .enumerate()
        .filter(|(i, _)| !skipped.contains(&(i + 1)))
        .map(|(_, line)| format!("{line}\n"))
        .collect();
    if let Ok(strict) = parse(&kept, Mode::Strict)
        && grouped(&strict) != grouped(&lenient)
    {
        return Err("lenient parse differs from the strict parse without the skipped lines".into());
    }
    let Ok(exp) = parse(text, Mode::Strict) else {
        return Ok(());
    };
    let written = write_exposition(&exp);
    let again = parse(&written, Mode::Strict)
        .map_err(|e| format!("re-encoded text does not parse: {e}\n{written}"))?;
    if series(&again) != series(&exp) {
        return Err(format!(
            "re-encoded text parses to other series:\n{written}"
        ));
    }
    Ok(())
}

/// Checks, for one body read as OpenMetrics:
/// - a lenient OpenMetrics parse never fails;
/// - a strict OpenMetrics parse, when it succeeds, is also a strict 0.0.4 parse with the same
///   samples (OpenMetrics accepts less, never more);
/// - the OpenMetrics writer's text of it passes the strict check again with the same values.
pub fn check_openmetrics(text: &str) -> Result<(), String> {
    parse_openmetrics(text, Mode::Lenient)
        .map_err(|e| format!("lenient OpenMetrics parse failed: {e}"))?;
    let Ok(exp) = parse_openmetrics(text, Mode::Strict) else {
        return Ok(());
    };
    let plain = parse(text, Mode::Strict)
        .map_err(|e| format!("strict OpenMetrics accepted what text 0.0.4 refuses: {e}"))?;
    if series(&plain) != series(&exp) {
        return Err("strict OpenMetrics and text 0.0.4 read other samples".into());
    }
    let written = write_openmetrics(&exp);
    let again = parse_openmetrics(&written, Mode::Strict).map_err(|e| {
        format!("the OpenMetrics writer's text fails the strict check: {e}\n{written}")
    })?;
    let values =
        |e: &Exposition<'_>| -> Vec<u64> { e.samples.iter().map(|s| s.value.to_bits()).collect() };
    if values(&again) != values(&exp) {
        return Err(format!(
            "the OpenMetrics writer's text holds other values:\n{written}"
        ));
    }
    Ok(())
}

/// Family names with their samples' series keys, in order.
fn grouped(exp: &Exposition<'_>) -> Vec<(String, Vec<String>)> {
    exp.families
        .iter()
        .map(|f| {
            let keys = exp
                .samples_of(f)
                .iter()
                .map(|s| exp.series_key(s))
                .collect();
            (f.name.to_string(), keys)
        })
        .collect()
}

/// Every sample's series key, sorted.
fn series(exp: &Exposition<'_>) -> Vec<String> {
    let mut keys: Vec<String> = exp.samples.iter().map(|s| exp.series_key(s)).collect();
    keys.sort();
    keys
}
