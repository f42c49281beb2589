//! The label-set and exemplar grammar of a sample line, in its lenient (text 0.0.4) and
//! strict (OpenMetrics) spellings.

use std::borrow::Cow;

use memchr::memchr2;

use super::super::lex::{
    LABEL_CHAR, find_quote_or_backslash, flag_bytes, parse_timestamp, parse_value, short_eq,
    skip_blanks, token_end,
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

/// Where the next sample's label set may repeat this one's: a histogram's next bucket is
/// written as the bucket before it but for its `le` value, a summary's next quantile but
/// for its `quantile`, and so for any set but for one value. `head` is this set from its
/// `{` through the opening quote of that value (the `le` label's, else the last label's),
/// `tail` from its closing quote through the `}`, `index` the label's place in the set.
/// Empty when the set has no such value (no labels, or escapes in it).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Repeat<'a> {
    head: &'a [u8],
    tail: &'a [u8],
    index: usize,
    /// Where the varying label's name starts in the head (blanks may surround its `=`).
    name_at: usize,
}

impl<'a> Repeat<'a> {
    /// The repeat of the label set from `open` to `after` (its `{` and the byte past its
    /// `}`) in `line`, whose labels (just parsed, so borrowed from this line unless
    /// escaped) are `labels`.
    #[inline]
    pub(super) fn of(
        line: &'a str,
        (open, after): (usize, usize),
        labels: &[Label<'a>],
    ) -> Repeat<'a> {
        let index = labels
            .iter()
            .rposition(|l| l.name == "le")
            .unwrap_or(labels.len().wrapping_sub(1));
        let Some(Label {
            name,
            value: Cow::Borrowed(value),
        }) = labels.get(index)
        else {
            return Repeat::default();
        };
        let b = line.as_bytes();
        let offset = |s: &str| (s.as_ptr() as usize).wrapping_sub(b.as_ptr() as usize);
        let (start, name_at) = (offset(value), offset(name).wrapping_sub(open));
        let end = start.wrapping_add(value.len());
        match (b.get(open..start), b.get(end..after)) {
            (Some(head), Some(tail)) if name_at < head.len() => Repeat {
                head,
                tail,
                index,
                name_at,
            },
            _ => Repeat::default(),
        }
    }

    /// Whether the value that varies is an `le` (the head ends with it).
    pub(super) fn varies_le(&self) -> bool {
        matches!(self.head, [.., b'{' | b',', b'l', b'e', b'=', b'"'])
    }

    /// Reads the label set at `open` in `line` if it is written as this one's but for the
    /// value that varies, which holds no escape: pushes the labels of the set this repeats
    /// (`previous` in the arena) with that value replaced, and returns the position after
    /// the `}`, the value, and the eight bytes from its start as a little-endian word when
    /// the value is shorter (else 0: a bucket's bound is checked from it without reading
    /// it again). `None`, with nothing pushed, sends the set to the full grammar.
    ///
    /// Every rule the full grammar (either spelling) holds a set to is about the bytes of
    /// the head and tail, which passed it already, or about the new value, which escapes
    /// nothing; and repeating the names cannot repeat one. The labels besides the one that
    /// varies keep pointing into the line that was parsed in full: the same text.
    #[inline(always)]
    pub(super) fn labels(
        &self,
        line: &'a str,
        open: usize,
        previous: std::ops::Range<usize>,
        arena: &mut Vec<Label<'a>>,
    ) -> Option<(usize, &'a str, u64)> {
        let b = line.as_bytes();
        let start = open + self.head.len();
        if self.head.is_empty() || !short_eq(b.get(open..start)?, self.head) {
            return None;
        }
        let rest = b.get(start..)?;
        // Most values (bounds, quantiles) end within the first eight bytes.
        let first = rest
            .first_chunk::<8>()
            .map_or(0, |w| u64::from_le_bytes(*w));
        let hits = flag_bytes(first, b'"') | flag_bytes(first, b'\\');
        let (close, word) = match hits {
            0 => (find_quote_or_backslash(rest)?, 0),
            _ => ((hits.trailing_zeros() / 8) as usize, first),
        };
        let after = start + close + self.tail.len();
        if !short_eq(b.get(start + close..after)?, self.tail) {
            return None;
        }
        let varies = arena.get(previous.start + self.index)?;
        // The name is in the head: taken from this line, as the value is.
        let name_at = open + self.name_at;
        let name = line.get(name_at..name_at + varies.name.len())?;
        let value = line.get(start..start + close)?;
        let varies = previous.start + self.index;
        repeat_from(arena, previous.start..varies);
        arena.push(Label {
            name,
            value: Cow::Borrowed(value),
        });
        repeat_from(arena, varies + 1..previous.end);
        Some((after, value, word))
    }
}

/// Pushes copies of `arena[range]`: the few labels around the one that varies, where
/// `Vec::extend_from_within`'s call costs more than the copies.
#[inline(always)]
fn repeat_from(arena: &mut Vec<Label<'_>>, range: std::ops::Range<usize>) {
    for i in range {
        if let Some(label) = arena.get(i).cloned() {
            arena.push(label);
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

/// Where the next token of a sample line (trimmed: no blank ends it) starts after `from`:
/// past any blanks (text 0.0.4), or past exactly one space (OpenMetrics, where anything
/// else between two tokens breaks the whitespace rule). [`one_space`] after a skip of the
/// blanks, in one step.
#[inline(always)]
pub(super) fn past_blank<const OM: bool>(
    b: &[u8],
    from: usize,
) -> Result<usize, (usize, ParseErrorKind)> {
    if !OM {
        return Ok(skip_blanks(b, from));
    }
    match (b.get(from), b.get(from + 1)) {
        (None, _) => Ok(from),
        (Some(b' '), next) if next.is_none_or(|c| !matches!(c, b' ' | b'\t')) => Ok(from + 1),
        _ => Err((from, ParseErrorKind::openmetrics(Rule::Whitespace))),
    }
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
