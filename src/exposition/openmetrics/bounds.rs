//! A histogram bucket's bound, and the order of bounds as numbers without parsing them:
//! engines write them as plain decimals (`0.005`, `1024`, TGI's `0.00015000000000000001`),
//! whose digits compare directly; the rest (`+Inf`, exponents) are parsed.

use super::{Rule, number};
use crate::exposition::lex::word;

/// A bucket's bound and count. Bounds written as plain decimals (`0.005`, `1024`, TGI's
/// `0.00015000000000000001`) compare digit by digit, much cheaper than parsing; the rest
/// (`+Inf`, exponents) are parsed.
pub(super) struct Bound<'a> {
    pub(super) text: &'a str,
    /// Where the dot is (the text's length if it has none), if the text is a plain decimal.
    dot: Option<u32>,
    /// A plain decimal's first eight bytes as one big-endian word, its dot read as a `0`
    /// and a shorter text padded with `0`s. Two bounds whose dots are at the same place
    /// and whose keys differ order as their keys (their integer parts are as long, both
    /// have a `0` where the dot is or would be, and the padding adds only zeros to the
    /// fraction); equal keys of texts longer than eight bytes say nothing of the digits
    /// past them. TGI's long bounds (`0.00015000000000000001`, `0.00022500000000000002`)
    /// differ within their first eight bytes. Zero for any other text.
    key: u64,
    pub(super) count: f64,
}

impl<'a> Bound<'a> {
    #[inline]
    pub(super) fn new(text: &'a str, count: f64) -> Self {
        let b = text.as_bytes();
        let checked = match b.len() {
            // The text in the top bytes of a word, as `within` reads it from its line.
            n @ 1..8 => {
                let mut window = [0u8; 8];
                window[8 - n..].copy_from_slice(b);
                short_plain_dot(b, u64::from_le_bytes(window))
            }
            _ => long_plain_dot(b),
        };
        Bound::of(text, checked, count)
    }

    /// A bound whose text lies inside `line` (a sample line: the bound is its `le` value).
    /// A text shorter than eight bytes is checked as one word: the eight bytes of the line
    /// that end where it ends, shifted down past those before it.
    #[inline(always)]
    pub(super) fn within(text: &'a str, line: &str, count: f64) -> Self {
        let (bytes, n) = (line.as_bytes(), text.len());
        let start = (text.as_ptr() as usize).wrapping_sub(line.as_ptr() as usize);
        let window = match start.checked_add(n) {
            Some(end) if n < 8 && bytes.get(start..end).is_some() => end
                .checked_sub(8)
                .and_then(|from| bytes.get(from..end))
                .and_then(|w| w.first_chunk::<8>()),
            _ => None,
        };
        let checked = match window {
            Some(window) => short_plain_dot(text.as_bytes(), u64::from_le_bytes(*window)),
            None => long_plain_dot(text.as_bytes()),
        };
        Bound::of(text, checked, count)
    }

    /// A bound shorter than eight bytes, given the eight bytes from its start as a
    /// little-endian word (the line's, past the bound, in its top bytes).
    #[inline(always)]
    pub(super) fn from_word(text: &'a str, word: u64, count: f64) -> Self {
        let n = text.len();
        // A text of eight bytes or more is never given a word.
        let window = word << (8 * (8 - n.clamp(1, 7)));
        Bound::of(text, short_plain_dot(text.as_bytes(), window), count)
    }

    #[inline(always)]
    fn of(text: &'a str, (dot, key): (Option<u32>, u64), count: f64) -> Self {
        Bound {
            text,
            dot,
            key,
            count,
        }
    }

    /// A bound not read: ordered by parsing its text, as one that is not a plain decimal
    /// is, should anything ever order it (see [`Ladder`](super::ladder::Ladder)).
    #[inline(always)]
    pub(super) fn unread(text: &'a str, count: f64) -> Self {
        Bound::of(text, (None, 0), count)
    }

    /// Whether the bound is written as a plain decimal.
    pub(super) fn is_plain(&self) -> bool {
        self.dot.is_some()
    }

    pub(super) fn is_number(&self) -> bool {
        self.dot.is_some() || number(self.text).is_some()
    }

    /// The rule `next` breaks by following this bucket: bounds must rise and counts must
    /// not fall.
    #[inline]
    pub(super) fn followed_by(&self, next: &Bound<'a>) -> Option<(Rule, String)> {
        if self.order(next) != Some(std::cmp::Ordering::Less) {
            return Some(self.out_of_order(next));
        }
        (next.count < self.count).then(|| self.not_cumulative(next))
    }

    /// Whether `next` is a plain decimal above this bound: by their keys alone when both
    /// have one and their dots are at one place (most of a metric's buckets), else by
    /// [`Self::order`]. The first test is `order`'s first arm written out for the hot
    /// path; the two sharing one helper cost TGI's strict parse 12,000 instructions.
    #[inline(always)]
    pub(super) fn rises_to_plain(&self, next: &Bound<'a>) -> bool {
        if self.key != 0 && next.key != 0 && self.dot == next.dot && self.key != next.key {
            return self.key < next.key;
        }
        next.is_plain() && self.order(next) == Some(std::cmp::Ordering::Less)
    }

    /// How this bound orders against `other`, if both are numbers.
    #[inline(always)]
    pub(super) fn order(&self, other: &Bound<'a>) -> Option<std::cmp::Ordering> {
        let (a, b) = (self.text.as_bytes(), other.text.as_bytes());
        match (self.dot, other.dot) {
            // The integer parts have as many digits written: the texts order as numbers.
            (Some(x), Some(y))
                if x == y && self.key != 0 && other.key != 0 && self.key != other.key =>
            {
                Some(self.key.cmp(&other.key))
            }
            (Some(x), Some(y)) if x == y => Some(aligned_cmp(a, b)),
            (Some(x), Some(y)) => Some(decimal_cmp(decimal(a, x), decimal(b, y))),
            _ => number(self.text)
                .zip(number(other.text))
                .and_then(|(a, b)| a.partial_cmp(&b)),
        }
    }

    #[cold]
    fn out_of_order(&self, next: &Bound<'a>) -> (Rule, String) {
        let rule = if next.is_number() {
            Rule::BucketOrder
        } else {
            Rule::BucketLabel
        };
        (rule, format!("le={:?} after le={:?}", next.text, self.text))
    }

    #[cold]
    fn not_cumulative(&self, next: &Bound<'a>) -> (Rule, String) {
        let detail = format!(
            "le={} holds {} but le={} holds {}",
            self.text, self.count, next.text, next.count
        );
        (Rule::NonCumulative, detail)
    }
}

/// A non-negative decimal without exponent, as integer digits (no leading zeros) and
/// fraction digits, for bounds whose integer parts are written with different numbers of
/// digits.
type Decimal<'a> = (&'a [u8], &'a [u8]);

/// A plain decimal's parts, given where its dot is (its length if it has none).
fn decimal(text: &[u8], dot: u32) -> Decimal<'_> {
    let dot = dot as usize;
    let (int, frac) = (text.get(..dot).unwrap_or_default(), text.get(dot + 1..));
    let first = int.iter().position(|c| *c != b'0').unwrap_or(int.len());
    (&int[first..], frac.unwrap_or_default())
}

/// Orders two plain decimals as numbers.
#[inline]
fn decimal_cmp((ai, af): Decimal<'_>, (bi, bf): Decimal<'_>) -> std::cmp::Ordering {
    ai.len()
        .cmp(&bi.len())
        .then_with(|| digits_cmp(ai, bi))
        .then_with(|| fraction_cmp(af, bf))
}

/// Orders digit strings byte by byte up to the first difference: bounds differ within a
/// few digits, where a library `memcmp` call costs more than the loop.
fn digits_cmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

/// Compares fraction digits as numbers: the shorter one is padded with zeros.
fn fraction_cmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let common = a.len().min(b.len());
    digits_cmp(&a[..common], &b[..common])
        .then_with(|| any_nonzero(&a[common..]).cmp(&any_nonzero(&b[common..])))
}

/// Whether digits (and perhaps a dot) hold one that is not zero.
fn any_nonzero(digits: &[u8]) -> bool {
    digits.iter().any(|c| *c > b'0')
}

/// Orders two plain decimals whose dots are at the same place (or that have none and are
/// as long): their common length orders as text, eight bytes at a time (a big-endian word
/// compares as its bytes do; the last word overlaps the one before, which was equal); if
/// that is equal, the longer one is larger when what it adds holds a digit other than zero.
#[inline]
fn aligned_cmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let common = a.len().min(b.len());
    let (x, y) = (&a[..common], &b[..common]);
    let prefix = if common < 8 {
        digits_cmp(x, y)
    } else {
        words_cmp(x, y)
    };
    prefix.then_with(|| any_nonzero(&a[common..]).cmp(&any_nonzero(&b[common..])))
}

/// Orders two texts of the same length, at least eight bytes, as text.
fn words_cmp(x: &[u8], y: &[u8]) -> std::cmp::Ordering {
    let (mut p, mut q) = (x.chunks_exact(8), y.chunks_exact(8));
    for (c, d) in p.by_ref().zip(q.by_ref()) {
        let (c, d) = (big_endian(c), big_endian(d));
        if c != d {
            return c.cmp(&d);
        }
    }
    let (Some(c), Some(d)) = (x.last_chunk::<8>(), y.last_chunk::<8>()) else {
        return std::cmp::Ordering::Equal;
    };
    u64::from_be_bytes(*c).cmp(&u64::from_be_bytes(*d))
}

/// Eight bytes as a big-endian word.
#[inline(always)]
fn big_endian(chunk: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(chunk);
    u64::from_be_bytes(w)
}

/// Where the dot of `text` is (its length if it has none), if `text` is a plain decimal:
/// digits with at most one dot, between digits. Eight bytes at a time: a word's bytes that
/// are not digits must be exactly its dots. The bytes past the last whole word are read
/// as the text's last eight, shifted down past those already read and topped up with `0`s.
#[inline(always)]
fn plain_dot(text: &[u8]) -> Option<u32> {
    let mut dot = usize::MAX;
    let Some(last) = text.last_chunk::<8>() else {
        digits_and_dot(text, &mut dot)?;
        return ends_plain(text, dot);
    };
    let mut chunks = text.chunks_exact(8);
    let mut at = 0;
    for chunk in chunks.by_ref() {
        dot_in_word(word(chunk), at, &mut dot)?;
        at += 8;
    }
    let rest = chunks.remainder().len();
    if rest > 0 {
        let shifted = u64::from_le_bytes(*last) >> (8 * (8 - rest));
        dot_in_word(
            shifted | (0x3030_3030_3030_3030 << (8 * rest)),
            at,
            &mut dot,
        )?;
    }
    ends_plain(text, dot)
}

/// [`plain_dot`] of `text`, and its key (see [`Bound`]) when it is a plain decimal of at
/// least eight bytes (else 0): its first eight bytes, a dot among them read as a `0`.
/// Most such bounds (TGI's `0.00015000000000000001`) have their dot there: that dot made a
/// `0`, every word must then be digits alone, one test for all of them; anything else is
/// read by `plain_dot`.
#[inline(always)]
fn long_plain_dot(text: &[u8]) -> (Option<u32>, u64) {
    let (Some(head), Some(last)) = (text.first_chunk::<8>(), text.last_chunk::<8>()) else {
        return (plain_dot(text), 0);
    };
    let head = u64::from_le_bytes(*head);
    let dots = dot_bytes(head);
    if dots != 0 && dots & (dots - 1) == 0 {
        let fixed = head ^ ((dots >> 7) * DOT_TO_ZERO);
        let mut not_digits = not_digit_bytes(fixed);
        let mut chunks = text.get(8..).unwrap_or_default().chunks_exact(8);
        for chunk in chunks.by_ref() {
            not_digits |= not_digit_bytes(word(chunk));
        }
        let rest = chunks.remainder().len();
        if rest > 0 {
            let shifted = u64::from_le_bytes(*last) >> (8 * (8 - rest));
            not_digits |= not_digit_bytes(shifted | (0x3030_3030_3030_3030 << (8 * rest)));
        }
        let at = dots.trailing_zeros() / 8;
        if not_digits == 0 && at != 0 && at as usize + 1 != text.len() {
            return (Some(at), fixed.swap_bytes());
        }
    }
    let dot = plain_dot(text);
    let key = match dot {
        Some(dot) if (dot as usize) < 8 => head ^ (DOT_TO_ZERO << (8 * dot)),
        Some(_) => head,
        None => return (None, 0),
    };
    (dot, key.swap_bytes())
}

/// What turns a `.` byte into a `0`.
const DOT_TO_ZERO: u64 = (b'.' ^ b'0') as u64;

/// [`plain_dot`] of `text`, shorter than eight bytes, given the eight bytes that end where
/// it ends as a little-endian word (`text` its top bytes), and its key (see [`Bound`]).
#[inline(always)]
fn short_plain_dot(text: &[u8], window: u64) -> (Option<u32>, u64) {
    let n = text.len();
    if n == 0 || n >= 8 {
        return (plain_dot(text), 0);
    }
    let mut dot = usize::MAX;
    let padded = (window >> (8 * (8 - n))) | (0x3030_3030_3030_3030 << (8 * n));
    match dot_in_word(padded, 0, &mut dot).and_then(|()| ends_plain(text, dot)) {
        // An integer's padding puts a `0` where a decimal with its dot at the same place
        // has the dot: the decimal's key reads its dot as a `0` too.
        Some(dot) if dot as usize == n => (Some(dot), padded.swap_bytes()),
        Some(dot) => (
            Some(dot),
            (padded ^ (DOT_TO_ZERO << (8 * dot))).swap_bytes(),
        ),
        None => (None, 0),
    }
}

/// The dot's place once every byte was checked: the text's length if none was seen; none
/// if the text is empty or the dot starts or ends it.
#[inline(always)]
fn ends_plain(text: &[u8], dot: usize) -> Option<u32> {
    let dot = if dot == usize::MAX { text.len() } else { dot };
    let ok = dot != 0 && dot + 1 != text.len() && text.len() <= u32::MAX as usize;
    ok.then_some(dot as u32)
}

/// Checks `bytes`, fewer than eight, are digits but for one dot, which it records in `dot`.
fn digits_and_dot(bytes: &[u8], dot: &mut usize) -> Option<()> {
    for (i, c) in bytes.iter().enumerate() {
        if *c == b'.' && *dot == usize::MAX {
            *dot = i;
        } else if !c.is_ascii_digit() {
            return None;
        }
    }
    Some(())
}

const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `w` that is not an ASCII digit.
#[inline(always)]
fn not_digit_bytes(w: u64) -> u64 {
    // Digits become 0..=9; adding 0x76 sets the high bit of anything larger, and masking
    // to seven bits first keeps every byte's carry inside it.
    let x = w ^ 0x3030_3030_3030_3030;
    (((x & LOW7) + 0x7676_7676_7676_7676) | x) & HIGH
}

/// The high bit of each byte of `w` that is a dot.
#[inline(always)]
fn dot_bytes(w: u64) -> u64 {
    // A byte of `y` is zero exactly where `w` holds a dot.
    let y = w ^ 0x2E2E_2E2E_2E2E_2E2E;
    !(((y & LOW7) + LOW7) | y) & HIGH
}

/// Checks the eight bytes of `w` (at offset `at` of the text, first byte lowest) are digits
/// but for one dot, which it records in `dot` (`usize::MAX` while none was seen).
#[inline(always)]
fn dot_in_word(w: u64, at: usize, dot: &mut usize) -> Option<()> {
    let not_digit = not_digit_bytes(w);
    if not_digit == 0 {
        return Some(());
    }
    let is_dot = dot_bytes(w);
    if not_digit != is_dot || is_dot.count_ones() != 1 || *dot != usize::MAX {
        return None;
    }
    *dot = at + (is_dot.trailing_zeros() / 8) as usize;
    Some(())
}

#[cfg(test)]
mod tests {
    use super::{Bound, plain_dot};

    proptest::proptest! {
        /// The eight-at-a-time digit check says what a byte-by-byte reading says: runs of
        /// digits, dots, and at most one byte next to the digits and the dot in ASCII or
        /// with the high bit set.
        #[test]
        fn plain_dot_accepts_exactly_digits_with_one_inner_dot(
            text in "[0-9]{0,12}[0-9./:x\\-+eé\u{7f}\u{80}-\u{ff}]?[0-9]{0,12}[.]?[0-9]{0,8}"
        ) {
            let reference = match text.split_once('.') {
                Some((int, frac)) => (!int.is_empty() && !frac.is_empty()
                    && int.bytes().chain(frac.bytes()).all(|c| c.is_ascii_digit()))
                    .then_some(int.len() as u32),
                None => (!text.is_empty() && text.bytes().all(|c| c.is_ascii_digit()))
                    .then_some(text.len() as u32),
            };
            proptest::prop_assert_eq!(plain_dot(text.as_bytes()), reference, "{}", text);
            // The same text read from inside a line, as a bucket's `le` value is.
            let line = format!("metric_bucket{{le=\"{text}\"}} 1");
            let inside = &line[line.find('"').unwrap() + 1..][..text.len()];
            let within = Bound::within(inside, &line, 1.0);
            proptest::prop_assert_eq!(within.dot, reference, "{}", line);
            // Its order key is the one the text alone gives: the first eight bytes of a plain
            // decimal (padded with `0`s), its dot read as a `0`.
            proptest::prop_assert_eq!(within.key, Bound::new(&text, 1.0).key, "{}", line);
            let key = reference.map_or(0, |_| {
                let mut head = [b'0'; 8];
                for (to, from) in head.iter_mut().zip(text.bytes()) {
                    *to = if from == b'.' { b'0' } else { from };
                }
                u64::from_be_bytes(head)
            });
            proptest::prop_assert_eq!(within.key, key, "{}", text);
            // And so for one read from the word that starts at it, as the parser gives.
            let at = line.find('"').unwrap() + 1;
            if let Some(w) = line.as_bytes()[at..].first_chunk::<8>().filter(|_| text.len() < 8) {
                let from_word = Bound::from_word(inside, u64::from_le_bytes(*w), 1.0);
                proptest::prop_assert_eq!((from_word.dot, from_word.key), (within.dot, within.key));
            }
            let line = format!("{text}\"");
            proptest::prop_assert_eq!(Bound::within(&line[..text.len()], &line, 1.0).dot, reference);
        }

        /// Bounds with up to fifteen significant digits are distinct as floats, so the
        /// float order is the reference for the digit-by-digit one: integers with and
        /// without a dot, leading zeros, trailing zeros, dots at the same and at different
        /// places.
        #[test]
        fn bound_order_is_the_numbers_order(
            a in (0u64..100_000, 0u64..1_000_000_000, 0usize..3, 0usize..3, 0usize..4),
            b in (0u64..100_000, 0u64..1_000_000_000, 0usize..3, 0usize..3, 0usize..4),
        ) {
            let write = |(int, frac, lead, trail, digits): (u64, u64, usize, usize, usize)| {
                let frac = format!("{frac:09}{}", "0".repeat(trail));
                match digits {
                    0 => format!("{}{int}", "0".repeat(lead)),
                    d => format!("{}{int}.{}", "0".repeat(lead), &frac[..3 * d.min(3) + trail]),
                }
            };
            let (x, y) = (write(a), write(b));
            let reference = x.parse::<f64>().ok().zip(y.parse::<f64>().ok())
                .and_then(|(p, q)| p.partial_cmp(&q));
            proptest::prop_assert!(plain_dot(x.as_bytes()).is_some(), "{}", x);
            let order = Bound::new(&x, 0.0).order(&Bound::new(&y, 0.0));
            proptest::prop_assert_eq!(order, reference, "{} vs {}", x, y);
        }
    }

    /// The order of two plain decimals, by normalising them as text: no leading zeros in
    /// the integer part, no trailing zeros in the fraction, integer parts padded to one
    /// length, fractions to another.
    fn reference_order(x: &str, y: &str) -> std::cmp::Ordering {
        let parts = |t: &str| {
            let (int, frac) = t.split_once('.').unwrap_or((t, ""));
            (
                int.trim_start_matches('0').to_string(),
                frac.trim_end_matches('0').to_string(),
            )
        };
        let ((xi, xf), (yi, yf)) = (parts(x), parts(y));
        let (iw, fw) = (xi.len().max(yi.len()), xf.len().max(yf.len()));
        let pad = |i: &str, f: &str| format!("{i:0>iw$}{f:0<fw$}");
        pad(&xi, &xf).cmp(&pad(&yi, &yf))
    }

    proptest::proptest! {
        /// Decimals of up to twelve integer and twelve fraction digits, drawn from two
        /// digits so that long shared prefixes and zero tails are common, order as their
        /// normalised texts do: keys that differ, keys that are equal with and without
        /// more digits beyond them, integers too long for a key.
        #[test]
        fn bound_order_is_the_decimals_order(
            x in "[05]{1,12}(\\.[05]{1,12})?",
            y in "[05]{1,12}(\\.[05]{1,12})?",
        ) {
            let order = Bound::new(&x, 0.0).order(&Bound::new(&y, 0.0));
            proptest::prop_assert_eq!(order, Some(reference_order(&x, &y)), "{} vs {}", x, y);
        }

        /// The keys-only test says what the general order says, for plain decimals of any
        /// length and for texts that are not.
        #[test]
        fn rises_to_plain_agrees_with_order(
            x in "[05]{1,9}(\\.[05]{1,9})?|\\+Inf|1e3",
            y in "[05]{1,9}(\\.[05]{1,9})?|\\+Inf|1e3",
        ) {
            let (a, b) = (Bound::new(&x, 0.0), Bound::new(&y, 0.0));
            let general = b.is_plain() && a.order(&b) == Some(std::cmp::Ordering::Less);
            proptest::prop_assert_eq!(a.rises_to_plain(&b), general, "{} then {}", x, y);
        }

        /// A decimal against itself written with more leading and trailing zeros (equal),
        /// and then with one more digit after them (larger unless it is a zero).
        #[test]
        fn bound_order_sees_zeros_and_digits_past_the_shorter_text(
            x in "[05]{1,9}(\\.[05]{1,9})?",
            lead in 0usize..3,
            trail in 0usize..10,
            last in proptest::option::of(proptest::sample::select(vec!['0', '5'])),
        ) {
            let dot = if x.contains('.') || (trail == 0 && last.is_none()) { "" } else { "." };
            let mut y = format!("{}{x}{dot}{}", "0".repeat(lead), "0".repeat(trail));
            y.extend(last);
            let order = Bound::new(&x, 0.0).order(&Bound::new(&y, 0.0));
            proptest::prop_assert_eq!(order, Some(reference_order(&x, &y)), "{} vs {}", x, y);
        }
    }

    /// Keys read a decimal's dot as a `0`, the byte an integer's padding puts there.
    #[test]
    fn short_integer_and_decimal_with_the_dot_at_one_place_order_by_key() {
        use std::cmp::Ordering::{Equal, Greater, Less};
        let bound = |t| Bound::new(t, 0.0);
        for (a, b, order) in [
            ("12", "12.5", Less),
            ("12", "12.0", Equal),
            ("12.05", "12", Greater),
            ("9", "9.000", Equal),
            ("1.9", "2", Less),
        ] {
            let (x, y) = (bound(a), bound(b));
            assert!(x.key != 0 && y.key != 0, "{a} and {b} have keys");
            assert_eq!(x.order(&y), Some(order), "{a} vs {b}");
        }
    }

    /// TGI's long bounds differ within their first eight bytes, where their keys decide;
    /// bounds whose keys are equal are ordered by the digits past them.
    #[test]
    fn long_bounds_order_by_key_and_past_it() {
        use std::cmp::Ordering::{Equal, Greater, Less};
        let bound = |t| Bound::new(t, 0.0);
        for (a, b, order) in [
            ("0.00015000000000000001", "0.00022500000000000002", Less),
            ("0.0011390625", "0.00170859375", Less),
            ("97.07397373664757", "64.71598249109839", Greater),
            ("0.00015000000000000001", "0.00015000000000000002", Less),
            ("0.0001500000", "0.00015", Equal),
            ("12345678.5", "12345678", Greater),
            ("12.000001", "12", Greater),
        ] {
            let (x, y) = (bound(a), bound(b));
            assert!(x.key != 0 && y.key != 0, "{a} and {b} have keys");
            assert_eq!(x.order(&y), Some(order), "{a} vs {b}");
            assert_eq!(x.rises_to_plain(&y), order == Less, "{a} then {b}");
        }
    }

    #[test]
    fn twenty_digit_bounds_that_meet_as_floats_still_order() {
        let (a, b) = ("0.10000000000000000001", "0.10000000000000000002");
        assert_eq!(a.parse::<f64>().ok(), b.parse::<f64>().ok());
        let (x, y) = (Bound::new(a, 0.0), Bound::new(b, 0.0));
        assert_eq!(x.order(&y), Some(std::cmp::Ordering::Less));
        assert_eq!(y.order(&x), Some(std::cmp::Ordering::Greater));
        let (x, y) = (
            Bound::new("10.10000000000000000001", 0.0),
            Bound::new(b, 0.0),
        );
        assert_eq!(y.order(&x), Some(std::cmp::Ordering::Less));
    }
}
