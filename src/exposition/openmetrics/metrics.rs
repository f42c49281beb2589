//! The rules over a whole metric rather than one line: a histogram's buckets (in increasing
//! `le`, cumulative, ending at `+Inf` equal to `_count`) and timestamps in order. Checked as
//! the parser goes, where the previous sample is still at hand: a second pass over the
//! parsed samples cost more than the whole rest of the OpenMetrics rules.

use std::ops::Range;

use super::{Role, Rule, number};
use crate::exposition::{Exposition, Label, MetricType, Sample};

/// A rule broken by a whole metric: where (the byte offset of its first sample's name in
/// the body), every line of it (offsets, for lenient mode to skip), the rule and the detail.
pub(crate) struct MetricViolation {
    pub at: usize,
    pub lines: Vec<usize>,
    pub rule: Rule,
    pub detail: String,
}

/// The rules over whole metrics, fed each accepted sample in order before it joins the
/// arena. A histogram metric ends where the family or the label set (apart from `le`)
/// changes.
#[derive(Default)]
pub(crate) struct MetricRules<'a> {
    /// The histogram metric whose samples are arriving.
    run: Option<Run<'a>>,
    /// What the finished metrics broke.
    pub violations: Vec<MetricViolation>,
}

/// A histogram sample's labels as written, apart from `le`: the text before the `le` pair
/// and the text after it. Two buckets whose texts match have the same labels; texts that
/// differ are compared label by label (another order, or escapes), once per metric.
type LabelText<'a> = (&'a str, &'a str);

impl<'a> MetricRules<'a> {
    /// Takes a bucket that continues the previous bucket's metric, if it is one, and says
    /// whether it did: its name was the previous sample's (the caller knows), its labels
    /// are written the same apart from `le`, at the same place, and its count is a count.
    /// Its other rules held for the previous bucket, so only its bound and count are left.
    /// Anything else goes to the full checks and [`Self::observe`].
    #[inline]
    pub(crate) fn next_bucket(
        &mut self,
        labels: &[Label<'a>],
        label_text: &'a str,
        count: f64,
    ) -> bool {
        let Some(run) = &mut self.run else {
            return false;
        };
        let Some(le) = labels.get(run.le_index) else {
            return false;
        };
        let (b"le", std::borrow::Cow::Borrowed(value)) = (le.name.as_bytes(), &le.value) else {
            return false;
        };
        let (Some((head, tail)), Some((run_head, run_tail))) =
            (split_at_le(label_text, le.name, value), run.text)
        else {
            return false;
        };
        // A negative or NaN count is left to the full checks, which name the rule.
        let a_count = count.is_sign_positive() && !count.is_nan();
        if !a_count || !short_eq(head, run_head) || !short_eq(tail, run_tail) {
            return false;
        }
        run.bucket(Some(value), count);
        true
    }

    /// Takes the next sample before it is pushed (its index is `exp.samples.len()`), of
    /// family `family` and role `role`; `label_text` is what its braces hold (empty without
    /// labels), and `base` the body's address, to turn names into offsets.
    pub(crate) fn observe(
        &mut self,
        exp: &Exposition<'a>,
        family: usize,
        role: Role,
        sample: &Sample<'a>,
        label_text: &'a str,
        base: usize,
    ) {
        if sample.timestamp.is_some() {
            self.timestamp(exp, sample, base);
        }
        let Some(info) = exp.families.get(family) else {
            return;
        };
        let gauge = match info.kind {
            MetricType::Histogram => false,
            MetricType::GaugeHistogram => true,
            _ => return self.finish(exp, base),
        };
        let labels = exp.labels_of(sample);
        let le_index = labels.iter().position(|l| l.name == "le");
        let le = le_index.and_then(|i| labels.get(i));
        let text = match le {
            None => Some((label_text, "")),
            Some(Label {
                name,
                value: std::borrow::Cow::Borrowed(value),
            }) => split_at_le(label_text, name, value),
            Some(_) => None,
        };
        let same = self.run.as_ref().is_some_and(|run| {
            run.family == family
                && ((text.is_some() && run.text == text)
                    || same_metric(exp.labels.get(run.labels.clone()).unwrap_or(&[]), labels))
        });
        if !same {
            self.finish(exp, base);
            self.run = Some(Run {
                family,
                name: info.name,
                gauge,
                start: exp.samples.len(),
                ..Run::default()
            });
        }
        let Some(run) = &mut self.run else {
            return;
        };
        run.text = text;
        run.labels = sample.labels.start as usize..sample.labels.end as usize;
        match (gauge, role) {
            (_, Role::Bucket) => {
                run.le_index = le_index.unwrap_or(usize::MAX);
                let le = match le.map(|l| &l.value) {
                    Some(std::borrow::Cow::Borrowed(value)) => Some(*value),
                    Some(std::borrow::Cow::Owned(_)) => None,
                    None => Some(""),
                };
                run.bucket(le, sample.value);
            }
            (false, Role::Count) | (true, Role::GCount) => run.count = Some(sample.value),
            (false, Role::Sum) | (true, Role::GSum) => run.sum = true,
            _ => {}
        }
    }

    /// Ends the histogram metric in progress, reporting the rule it broke.
    pub(crate) fn finish(&mut self, exp: &Exposition<'a>, base: usize) {
        if let Some(run) = self.run.take() {
            let samples = exp.samples.get(run.start..).unwrap_or_default();
            run.finish(samples, base, &mut self.violations);
        }
    }

    /// Consecutive samples of one series (same name and labels) must have rising timestamps.
    fn timestamp(&mut self, exp: &Exposition<'a>, sample: &Sample<'a>, base: usize) {
        let Some(last) = exp.samples.last() else {
            return;
        };
        let (Some(ta), Some(tb)) = (last.timestamp, sample.timestamp) else {
            return;
        };
        if last.name == sample.name && tb <= ta && exp.labels_of(last) == exp.labels_of(sample) {
            let at = sample.name.as_ptr() as usize - base;
            self.violations.push(MetricViolation {
                at,
                lines: vec![at],
                rule: Rule::TimestampOrder,
                detail: format!("{} at {tb} after {ta}", sample.name),
            });
        }
    }
}

/// `label_text` without the `le` pair whose name and value (as written: no escapes) are
/// `name` and `value`: the text before it and the text after it.
fn split_at_le<'a>(label_text: &'a str, name: &str, value: &str) -> Option<LabelText<'a>> {
    let base = label_text.as_ptr() as usize;
    let from = (name.as_ptr() as usize).checked_sub(base)?;
    // The value's closing quote follows it.
    let to = (value.as_ptr() as usize + value.len() + 1).checked_sub(base)?;
    Some((label_text.get(..from)?, label_text.get(to..)?))
}

/// One histogram metric as its samples go by.
#[derive(Default)]
struct Run<'a> {
    /// Its family: index and name.
    family: usize,
    name: &'a str,
    /// Whether it is a gauge histogram (`_gcount`, `_gsum`).
    gauge: bool,
    /// Its first sample's index in the arena.
    start: usize,
    /// The latest sample's labels: as written apart from `le`, and their range in the arena.
    text: Option<LabelText<'a>>,
    labels: Range<usize>,
    /// Where the latest bucket's `le` was among its labels.
    le_index: usize,
    /// The latest bucket.
    last: Option<Bound<'a>>,
    count: Option<f64>,
    sum: bool,
    /// The first rule it broke.
    broken: Option<(Rule, String)>,
}

impl<'a> Run<'a> {
    /// Takes a bucket: its bound as written (`None` if it had escapes, which no number
    /// has) and its count.
    #[inline]
    fn bucket(&mut self, le: Option<&'a str>, count: f64) {
        if self.broken.is_some() {
            return;
        }
        let Some(le) = le else {
            self.broken = Some((Rule::BucketLabel, "le holds escapes".to_string()));
            return;
        };
        let bound = Bound::new(le, count);
        match &self.last {
            Some(prev) => self.broken = prev.followed_by(&bound),
            None if !bound.is_number() => {
                self.broken = Some((Rule::BucketLabel, format!("le={le:?}")));
            }
            None => {}
        }
        self.last = Some(bound);
    }

    /// Reports the rule the whole metric broke, if any: a bucket rule, no `+Inf` last, or
    /// a count that differs from it. `run` is its samples.
    fn finish(self, run: &[Sample<'_>], base: usize, out: &mut Vec<MetricViolation>) {
        let Some(first) = run.first() else {
            return;
        };
        let (count_suffix, sum_suffix) = if self.gauge {
            ("_gcount", "_gsum")
        } else {
            ("_count", "_sum")
        };
        let name = self.name;
        let broken = self.broken.or_else(|| {
            let inf = match self.last {
                Some(Bound { text, count, .. }) if number(text) == Some(f64::INFINITY) => count,
                _ => return Some((Rule::MissingInf, format!("{name}_bucket"))),
            };
            match self.count {
                Some(count) if count != inf => Some((
                    Rule::CountMismatch,
                    format!("{name}{count_suffix} is {count} but the +Inf bucket holds {inf}"),
                )),
                None if self.sum => Some((
                    Rule::CountMismatch,
                    format!("{name}{sum_suffix} without {name}{count_suffix}"),
                )),
                Some(_) if !self.sum => Some((
                    Rule::CountMismatch,
                    format!("{name}{count_suffix} without {name}{sum_suffix}"),
                )),
                _ => None,
            }
        });
        if let Some((rule, detail)) = broken {
            let offset = |s: &Sample<'_>| s.name.as_ptr() as usize - base;
            out.push(MetricViolation {
                at: offset(first),
                lines: run.iter().map(offset).collect(),
                rule,
                detail,
            });
        }
    }
}

/// A bucket's bound and count. Bounds written as plain decimals (`0.005`, `1024`, TGI's
/// `0.00015000000000000001`) compare digit by digit, much cheaper than parsing; the rest
/// (`+Inf`, exponents) are parsed.
struct Bound<'a> {
    text: &'a str,
    decimal: Option<Decimal<'a>>,
    count: f64,
}

impl<'a> Bound<'a> {
    #[inline]
    fn new(text: &'a str, count: f64) -> Self {
        Bound {
            text,
            decimal: plain_decimal(text),
            count,
        }
    }

    fn is_number(&self) -> bool {
        self.decimal.is_some() || number(self.text).is_some()
    }

    /// The rule `next` breaks by following this bucket: bounds must rise and counts must
    /// not fall.
    #[inline]
    fn followed_by(&self, next: &Bound<'a>) -> Option<(Rule, String)> {
        let order = match (self.decimal, next.decimal) {
            (Some(a), Some(b)) => Some(decimal_cmp(a, b)),
            _ => number(self.text)
                .zip(number(next.text))
                .and_then(|(a, b)| a.partial_cmp(&b)),
        };
        if order != Some(std::cmp::Ordering::Less) {
            return Some(self.out_of_order(next));
        }
        (next.count < self.count).then(|| self.not_cumulative(next))
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

/// Whether two label sets name the same metric: equal apart from `le`, in any order (the
/// specification does not fix one). Label names are unique within a set, so equal counts
/// and every label of one found in the other make the sets equal. Called where the label
/// text changed, about once per metric, so the quadratic search stays small.
fn same_metric(a: &[Label<'_>], b: &[Label<'_>]) -> bool {
    let not_le = |l: &&Label<'_>| l.name != "le";
    a.iter().filter(not_le).count() == b.iter().filter(not_le).count()
        && a.iter()
            .filter(not_le)
            .all(|x| b.iter().any(|y| x.name == y.name && x.value == y.value))
}

/// String equality without a library call for the short strings label names and values
/// mostly are (a call per comparison costs more than the comparison).
#[inline(always)]
fn short_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let (mut x, mut y) = (a.chunks_exact(8), b.chunks_exact(8));
    for (p, q) in x.by_ref().zip(y.by_ref()) {
        if word(p) != word(q) {
            return false;
        }
    }
    x.remainder().iter().zip(y.remainder()).all(|(p, q)| p == q)
}

/// Eight bytes as one word (the chunk is eight bytes long).
#[inline(always)]
fn word(chunk: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(chunk);
    u64::from_le_bytes(w)
}

/// A non-negative decimal without exponent, as integer digits (no leading zeros) and
/// fraction digits. Bucket bounds written so (`0.00015000000000000001`, `2.5`, `10`) compare
/// digit by digit, much cheaper than parsing: TGI writes a thousand buckets with twenty
/// digits each. Anything else is parsed.
type Decimal<'a> = (&'a [u8], &'a [u8]);

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
    digits_cmp(&a[..common], &b[..common]).then_with(|| {
        let rest_nonzero = |r: &[u8]| r.iter().any(|c| *c != b'0');
        rest_nonzero(&a[common..]).cmp(&rest_nonzero(&b[common..]))
    })
}

/// `text` as a plain decimal, if it is one: digits with at most one dot between digits.
/// One scan finds the dot and checks the digits, eight at a time where it can.
#[inline]
fn plain_decimal(text: &str) -> Option<Decimal<'_>> {
    let b = text.as_bytes();
    let mut dot = b.len();
    let mut chunks = b.chunks_exact(8);
    let mut at = 0;
    for chunk in chunks.by_ref() {
        if !eight_digits(word(chunk)) {
            digits_and_dot(chunk, at, &mut dot)?;
        }
        at += 8;
    }
    digits_and_dot(chunks.remainder(), at, &mut dot)?;
    let (int, frac) = (&b[..dot], b.get(dot + 1..).unwrap_or_default());
    if int.is_empty() || (dot < b.len() && frac.is_empty()) {
        return None;
    }
    let first = int.iter().position(|c| *c != b'0').unwrap_or(int.len());
    Some((&int[first..], frac))
}

/// Checks `bytes` (at offset `at` of the text) are digits but for one dot, which it
/// records in `dot` (the text's length while none was seen).
fn digits_and_dot(bytes: &[u8], at: usize, dot: &mut usize) -> Option<()> {
    let unseen = *dot;
    for (i, c) in bytes.iter().enumerate() {
        if *c == b'.' && *dot == unseen {
            *dot = at + i;
        } else if !c.is_ascii_digit() {
            return None;
        }
    }
    Some(())
}

/// Whether all eight bytes of `w` are ASCII digits: each byte's high nibble is 3, and
/// adding 6 leaves it 3 (so the low nibble is at most 9). A carry out of a byte only
/// happens from a byte that already fails.
#[inline(always)]
fn eight_digits(w: u64) -> bool {
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    (w & HIGH) | (((w.wrapping_add(0x0606_0606_0606_0606)) & HIGH) >> 4) == 0x3333_3333_3333_3333
}

#[cfg(test)]
mod tests {
    use super::{decimal_cmp, plain_decimal};

    proptest::proptest! {
        /// The eight-at-a-time digit check says what a byte-by-byte reading says.
        #[test]
        fn plain_decimal_accepts_exactly_digits_with_one_inner_dot(text in "[0-9.x]{0,30}") {
            let reference = match text.split_once('.') {
                Some((int, frac)) => !int.is_empty() && !frac.is_empty()
                    && int.bytes().chain(frac.bytes()).all(|c| c.is_ascii_digit()),
                None => !text.is_empty() && text.bytes().all(|c| c.is_ascii_digit()),
            };
            proptest::prop_assert_eq!(plain_decimal(&text).is_some(), reference, "{}", text);
        }

        /// Bounds with up to fifteen significant digits are distinct as floats, so the
        /// float order is the reference for the digit-by-digit one (zeros padded on both
        /// sides, as engines write them).
        #[test]
        fn decimal_order_is_the_numbers_order(
            a in (0u64..100_000, 0u64..1_000_000_000, 0usize..3, 0usize..3),
            b in (0u64..100_000, 0u64..1_000_000_000, 0usize..3, 0usize..3),
        ) {
            let write = |(int, frac, lead, trail): (u64, u64, usize, usize)| {
                format!("{}{int}.{frac:09}{}", "0".repeat(lead), "0".repeat(trail))
            };
            let (x, y) = (write(a), write(b));
            let (Some(dx), Some(dy)) = (plain_decimal(&x), plain_decimal(&y)) else {
                return Err(proptest::test_runner::TestCaseError::fail(format!("{x} or {y}")));
            };
            let reference = x.parse::<f64>().ok().zip(y.parse::<f64>().ok())
                .and_then(|(p, q)| p.partial_cmp(&q));
            proptest::prop_assert_eq!(Some(decimal_cmp(dx, dy)), reference, "{} vs {}", x, y);
        }
    }

    #[test]
    fn twenty_digit_bounds_that_meet_as_floats_still_order() {
        let (a, b) = ("0.10000000000000000001", "0.10000000000000000002");
        let (Some(da), Some(db)) = (plain_decimal(a), plain_decimal(b)) else {
            panic!("both are plain decimals");
        };
        assert_eq!(a.parse::<f64>().ok(), b.parse::<f64>().ok());
        assert_eq!(decimal_cmp(da, db), std::cmp::Ordering::Less);
        assert_eq!(decimal_cmp(db, da), std::cmp::Ordering::Greater);
    }
}
