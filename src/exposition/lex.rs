//! Byte-level scanning for the parser: character classes, blanks, names, the
//! word-at-a-time byte search, number parsing and HELP unescaping. Kept apart from the line
//! grammar in `parse.rs` so each stays readable.

use std::borrow::Cow;
use std::collections::HashMap;

/// FNV-1a: family names are short and trusted-length, so SipHash's DoS resistance buys
/// nothing here and costs a measurable share of parse time.
#[derive(Default, Clone, Copy)]
pub(super) struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

pub(super) type FnvMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<Fnv>>;

/// Bytes allowed in metric names after the first: `[a-zA-Z0-9_:]`.
pub(super) const fn name_table() -> [bool; 256] {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        table[i] = c.is_ascii_alphanumeric() || c == b'_' || c == b':';
        i += 1;
    }
    table
}
pub(super) static NAME_CHAR: [bool; 256] = name_table();

/// Bytes allowed in label names: `[a-zA-Z0-9_]` (no colon).
pub(super) const fn label_table() -> [bool; 256] {
    let mut table = name_table();
    table[b':' as usize] = false;
    table
}
pub(super) static LABEL_CHAR: [bool; 256] = label_table();

pub(super) fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

pub(super) fn skip_blanks(b: &[u8], mut pos: usize) -> usize {
    while pos < b.len() && is_blank(b[pos]) {
        pos += 1;
    }
    pos
}

pub(super) fn token_end(b: &[u8], mut pos: usize) -> usize {
    while pos < b.len() && !is_blank(b[pos]) {
        pos += 1;
    }
    pos
}

/// Length of the metric name at the start of `b` (0 if none). Label names use the same scan
/// and reject a colon afterwards.
pub(super) fn scan_name(b: &[u8], start: usize) -> usize {
    let mut pos = start;
    if pos < b.len() && b[pos].is_ascii_digit() {
        return start;
    }
    while pos < b.len() && NAME_CHAR[b[pos] as usize] {
        pos += 1;
    }
    pos
}

pub(super) const ONES: u64 = 0x0101_0101_0101_0101;
pub(super) const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Flags (high bit per byte) the bytes of `word` equal to `needle`. The lowest flag is always
/// a true match; borrows can only add false flags above a true one.
pub(crate) fn flag_bytes(word: u64, needle: u8) -> u64 {
    let v = word ^ (ONES * u64::from(needle));
    v.wrapping_sub(ONES) & !v & HIGHS
}

/// Flags (high bit per byte) the bytes of `word` below `bound` (at most 0x80), with the same
/// guarantee: the lowest flag is a true match.
pub(crate) fn flag_below(word: u64, bound: u8) -> u64 {
    word.wrapping_sub(ONES * u64::from(bound)) & !word & HIGHS
}

/// Position of the first byte of `b` for which `flags` flags a match, 8 bytes per step, with
/// `plain` for the tail. Lines and label values are short, so this beats a vectorised search
/// and its per-call set-up.
pub(crate) fn find_swar(
    b: &[u8],
    flags: impl Fn(u64) -> u64,
    plain: impl Fn(u8) -> bool,
) -> Option<usize> {
    let mut offset = 0;
    let mut chunks = b.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let hits = flags(u64::from_le_bytes(word));
        if hits != 0 {
            return Some(offset + (hits.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&c| plain(c))
        .map(|i| offset + i)
}

/// Position of the first `"` or `\` in `b`.
pub(super) fn find_quote_or_backslash(b: &[u8]) -> Option<usize> {
    find_swar(
        b,
        |w| flag_bytes(w, b'"') | flag_bytes(w, b'\\'),
        |c| c == b'"' || c == b'\\',
    )
}

/// Exact powers of ten as `f64` (10^22 is the largest that is exact).
pub(super) const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// Parses a sample value. Plain decimals (`123`, `-0.4231`, `7.0`) of at most 15 significant
/// digits take a fast path that is still correctly rounded: the digits form an integer below
/// 2^53 and the scale a power of ten that is exact in `f64`, so one division rounds once
/// (Clinger's fast path). Everything else — exponents, `±Inf`, `NaN`, long digit strings —
/// goes through `f64::from_str`.
pub(super) fn parse_value(text: &str) -> Option<f64> {
    fast_decimal(text.as_bytes()).or_else(|| text.parse::<f64>().ok())
}

pub(super) fn fast_decimal(b: &[u8]) -> Option<f64> {
    let (negative, digits) = match b.first()? {
        b'-' => (true, b.get(1..)?),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    let mut mantissa: u64 = 0;
    let mut frac_digits = None;
    for (i, &c) in digits.iter().enumerate() {
        match c {
            b'0'..=b'9' => mantissa = mantissa * 10 + u64::from(c - b'0'),
            b'.' if frac_digits.is_none() && i > 0 => frac_digits = Some(digits.len() - i - 1),
            _ => return None,
        }
    }
    let scale = frac_digits.unwrap_or(0);
    if frac_digits == Some(0) || mantissa >= 1 << 53 || scale >= POW10.len() {
        return None;
    }
    // Integers (bucket counts, most counters) skip the division.
    let value = if scale == 0 {
        mantissa as f64
    } else {
        mantissa as f64 / POW10[scale]
    };
    Some(if negative { -value } else { value })
}

pub(super) fn parse_timestamp(text: &str) -> Option<f64> {
    let value = text.parse::<f64>().ok()?;
    value.is_finite().then_some(value)
}

/// HELP text escapes: `\\` and `\n` (0.0.4), plus `\"` (OpenMetrics).
pub(super) fn unescape_help(text: &str) -> Cow<'_, str> {
    if !text.contains('\\') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

/// String equality without a library call for the short strings label names and values
/// mostly are (a call per comparison costs more than the comparison). Comparing the
/// bytes past the last whole word as the last eight (overlapping) measured slower.
#[inline(always)]
pub(crate) fn short_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut x, mut y) = (a.chunks_exact(8), b.chunks_exact(8));
    for (p, q) in x.by_ref().zip(y.by_ref()) {
        if word(p) != word(q) {
            return false;
        }
    }
    tail_eq(x.remainder(), y.remainder())
}

/// Equality of two slices of one length below eight: four, two and one bytes at a time.
#[inline(always)]
fn tail_eq(mut a: &[u8], mut b: &[u8]) -> bool {
    if let (Some((p, a4)), Some((q, b4))) = (a.split_first_chunk::<4>(), b.split_first_chunk::<4>())
    {
        if p != q {
            return false;
        }
        (a, b) = (a4, b4);
    }
    if let (Some((p, a2)), Some((q, b2))) = (a.split_first_chunk::<2>(), b.split_first_chunk::<2>())
    {
        if p != q {
            return false;
        }
        (a, b) = (a2, b2);
    }
    a.first() == b.first()
}

/// Eight bytes as one little-endian word (the chunk is eight bytes long).
#[inline(always)]
pub(crate) fn word(chunk: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(chunk);
    u64::from_le_bytes(w)
}

#[cfg(test)]
mod tests {
    use super::short_eq;

    proptest::proptest! {
        /// The word-at-a-time equality says what slice equality says, for texts of every
        /// length around the word size that differ in one byte anywhere or not at all.
        #[test]
        fn short_eq_is_equality(
            a in proptest::collection::vec(b'a'..b'c', 0..40),
            at in proptest::num::usize::ANY,
            flip in proptest::bool::ANY,
        ) {
            let mut b = a.clone();
            if flip && !b.is_empty() {
                let i = at % b.len();
                b[i] ^= 1;
            }
            proptest::prop_assert_eq!(short_eq(&a, &b), a == b);
            proptest::prop_assert!(!short_eq(&a, &b[..b.len().saturating_sub(1)]) || a.is_empty());
        }
    }
}
