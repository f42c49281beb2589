//! The label-set and exemplar grammar of a sample line, in its lenient (text 0.0.4) and
//! strict (OpenMetrics) spellings.

use std::borrow::Cow;

use memchr::memchr2;

use super::super::lex::{
    LABEL_CHAR, find_quote_or_backslash, parse_timestamp, parse_value, skip_blanks, token_end,
};
use super::super::openmetrics::{self, Rule};
use super::super::{Exemplar, Label};
use super::ParseErrorKind;

/// Parses `{a="1",b="2"}` starting at the `{` at `pos`; pushes labels onto `arena` and returns
/// the position after `}`. `first` is where this sample's labels start in the arena, for the
/// duplicate check.
pub(super) fn parse_labels<'a>(
    line: &'a str,
    mut pos: usize,
    arena: &mut Vec<Label<'a>>,
    first: usize,
    strict: Option<Strict>,
) -> Result<usize, (usize, ParseErrorKind)> {
    let b = line.as_bytes();
    let om = strict.is_some();
    pos += 1;
    loop {
        let before = pos;
        pos = skip_blanks(b, pos);
        no_blank(om, before, pos)?;
        match b.get(pos) {
            Some(b'}') if om && before > 0 && b[before - 1] == b',' => {
                return Err((before - 1, ParseErrorKind::openmetrics(Rule::TrailingComma)));
            }
            Some(b'}') => return Ok(pos + 1),
            None => return Err((pos, ParseErrorKind::ExpectedCommaOrBrace)),
            Some(_) => {}
        }
        let name_end = label_name_end(b, pos)?;
        let name = line.get(pos..name_end).unwrap_or_default();
        let mut p = skip_blanks(b, name_end);
        no_blank(om, name_end, p)?;
        if b.get(p) != Some(&b'=') {
            return Err((p, ParseErrorKind::ExpectedEquals));
        }
        let equals = p + 1;
        p = skip_blanks(b, equals);
        no_blank(om, equals, p)?;
        if b.get(p) != Some(&b'"') {
            return Err((p, ParseErrorKind::ExpectedQuote));
        }
        let (value, after) = parse_label_value(line, p + 1)?;
        // A value without escapes is borrowed as written: only one with escapes is checked.
        if om
            && matches!(value, Cow::Owned(_))
            && let Err(i) =
                openmetrics::valid_escapes(line.get(p + 1..after - 1).unwrap_or_default())
        {
            return Err((p + 1 + i, ParseErrorKind::openmetrics(Rule::InvalidEscape)));
        }
        let earlier = arena.get(first..).unwrap_or_default();
        if earlier.iter().any(|l| l.name == name) {
            return Err((pos, ParseErrorKind::DuplicateLabel(name.to_string())));
        }
        arena.push(Label { name, value });
        pos = skip_blanks(b, after);
        no_blank(om, after, pos)?;
        match b.get(pos) {
            Some(b',') => pos += 1,
            Some(b'}') => return Ok(pos + 1),
            _ => return Err((pos, ParseErrorKind::ExpectedCommaOrBrace)),
        }
    }
}

/// End of the label name at `pos` (`[a-zA-Z_][a-zA-Z0-9_]*`).
fn label_name_end(b: &[u8], pos: usize) -> Result<usize, (usize, ParseErrorKind)> {
    if b[pos].is_ascii_digit() {
        return Err((pos, ParseErrorKind::InvalidLabelName));
    }
    let mut end = pos;
    while end < b.len() && LABEL_CHAR[b[end] as usize] {
        end += 1;
    }
    if end == pos {
        return Err((pos, ParseErrorKind::InvalidLabelName));
    }
    Ok(end)
}

/// Reads a label value that starts at `start` (after the opening quote). Returns the value and
/// the position after the closing quote.
fn parse_label_value(
    line: &str,
    start: usize,
) -> Result<(Cow<'_, str>, usize), (usize, ParseErrorKind)> {
    let b = line.as_bytes();
    let rest = b.get(start..).unwrap_or_default();
    let unterminated = || (start, ParseErrorKind::UnterminatedLabelValue);
    let first = find_quote_or_backslash(rest).ok_or_else(unterminated)?;
    if rest[first] == b'"' {
        let value = line.get(start..start + first).unwrap_or_default();
        return Ok((Cow::Borrowed(value), start + first + 1));
    }
    // Escapes present: build an owned value.
    let mut out = String::with_capacity(first + 16);
    let mut pos = start;
    loop {
        let rest = b.get(pos..).unwrap_or_default();
        let i = memchr2(b'"', b'\\', rest).ok_or_else(unterminated)?;
        out.push_str(line.get(pos..pos + i).unwrap_or_default());
        pos += i;
        if b[pos] == b'"' {
            return Ok((Cow::Owned(out), pos + 1));
        }
        match b.get(pos + 1) {
            Some(b'n') => out.push('\n'),
            Some(b'\\') => out.push('\\'),
            Some(b'"') => out.push('"'),
            // 0.0.4 says other escapes are kept as written.
            Some(_) => out.push('\\'),
            None => return Err(unterminated()),
        }
        pos += if matches!(b.get(pos + 1), Some(b'n' | b'\\' | b'"')) {
            2
        } else {
            1
        };
    }
}

/// Marks the OpenMetrics spelling of the grammar: single spaces, no blanks in label sets.
#[derive(Debug, Clone, Copy)]
pub(super) struct Strict;

/// OpenMetrics: exactly one space between `from` and `to` (or the end of the line).
pub(super) fn one_space(
    om: bool,
    b: &[u8],
    from: usize,
    to: usize,
) -> Result<(), (usize, ParseErrorKind)> {
    let single = to == from + 1 && b[from] == b' ';
    if om && to < b.len() && !single {
        return Err((from, ParseErrorKind::openmetrics(Rule::Whitespace)));
    }
    Ok(())
}

/// OpenMetrics: no blank between `from` and `to` (inside a label set).
fn no_blank(om: bool, from: usize, to: usize) -> Result<(), (usize, ParseErrorKind)> {
    if om && to != from {
        return Err((from, ParseErrorKind::openmetrics(Rule::Whitespace)));
    }
    Ok(())
}

/// Parses ` # {labels} value [timestamp]` starting at the `#`.
pub(super) fn parse_exemplar(
    line: &str,
    hash: usize,
    strict: Option<Strict>,
) -> Result<Exemplar<'_>, (usize, ParseErrorKind)> {
    let b = line.as_bytes();
    let om = strict.is_some();
    let bad = || (hash, ParseErrorKind::InvalidExemplar);
    let mut pos = skip_blanks(b, hash + 1);
    one_space(om, b, hash + 1, pos)?;
    if b.get(pos) != Some(&b'{') {
        return Err(bad());
    }
    let mut labels = Vec::new();
    pos = parse_labels(line, pos, &mut labels, 0, strict)?;
    let after = pos;
    pos = skip_blanks(b, pos);
    one_space(om, b, after, pos)?;
    let value_end = token_end(b, pos);
    let value = parse_value(line.get(pos..value_end).unwrap_or_default()).ok_or_else(bad)?;
    pos = skip_blanks(b, value_end);
    one_space(om, b, value_end, pos)?;
    let mut timestamp = None;
    if pos < b.len() {
        let ts_end = token_end(b, pos);
        let ts = parse_timestamp(line.get(pos..ts_end).unwrap_or_default()).ok_or_else(bad)?;
        if om && ts_end < b.len() {
            return Err((ts_end, ParseErrorKind::openmetrics(Rule::Whitespace)));
        }
        timestamp = Some(ts);
        if skip_blanks(b, ts_end) < b.len() {
            return Err(bad());
        }
    }
    Ok(Exemplar {
        labels,
        value,
        timestamp,
    })
}
