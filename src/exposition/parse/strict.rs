//! OpenMetrics bodies: the parse with that specification's line rules, then its rules over
//! whole metrics; in lenient mode a second parse that skips every line that broke one.

use super::super::openmetrics::{self, Rule};
use super::{Mode, ParseError, ParseErrorKind, parse_lines};
use crate::exposition::Exposition;

/// Parses a body that is OpenMetrics 1.0 and holds it to every rule of that specification
/// (see [`openmetrics`](super::openmetrics)). In [`Mode::Strict`] the first broken rule is
/// the error; in [`Mode::Lenient`] every line that breaks one is skipped and listed in
/// [`Exposition::skipped`] (every line of a metric whose buckets break one).
pub fn parse_openmetrics(input: &str, mode: Mode) -> Result<Exposition<'_>, ParseError> {
    let exp = parse_lines(input, mode, true, &[])?;
    let broken = openmetrics::metrics(&exp, input.as_ptr() as usize);
    if broken.is_empty() {
        return Ok(exp);
    }
    let mut offsets: Vec<usize> = broken.iter().map(|v| v.at).collect();
    offsets.extend(broken.iter().flat_map(|v| v.lines.iter().copied()));
    let lines = line_numbers(input, &offsets);
    let error = |v: &openmetrics::MetricViolation| ParseError {
        line: lines[&v.at],
        column: 1,
        kind: ParseErrorKind::OpenMetrics {
            rule: v.rule,
            detail: v.detail.clone(),
        },
    };
    if mode == Mode::Strict {
        let first = broken.iter().min_by_key(|v| v.at).map(error);
        return Err(first.unwrap_or(ParseError {
            line: 1,
            column: 1,
            kind: ParseErrorKind::openmetrics(Rule::MissingEof),
        }));
    }
    let mut skip: Vec<usize> = broken
        .iter()
        .flat_map(|v| v.lines.iter().map(|o| lines[o]))
        .collect();
    skip.sort_unstable();
    skip.dedup();
    let mut again = parse_lines(input, mode, true, &skip)?;
    again.skipped.extend(broken.iter().map(error));
    again.skipped.sort_by_key(|e| e.line);
    Ok(again)
}

/// The 1-based line number of each byte offset.
fn line_numbers(input: &str, offsets: &[usize]) -> std::collections::HashMap<usize, usize> {
    let mut sorted = offsets.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let bytes = input.as_bytes();
    let (mut line, mut from) = (1, 0);
    let mut out = std::collections::HashMap::with_capacity(sorted.len());
    for offset in sorted {
        let upto = offset.min(bytes.len());
        line += memchr::memchr_iter(b'\n', bytes.get(from..upto).unwrap_or_default()).count();
        from = upto;
        out.insert(offset, line);
    }
    out
}
