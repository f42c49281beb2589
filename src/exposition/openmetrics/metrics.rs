//! The rules over a whole metric rather than one line: a histogram's buckets (in increasing
//! `le`, cumulative, ending at `+Inf` equal to `_count`) and timestamps in order. One pass
//! over each histogram family's samples after the parse.

use super::{Rule, number, suffix_of};
use crate::exposition::{Exposition, Family, Label, MetricType, Sample};

/// A rule broken by a whole metric: where (the byte offset of its first sample's name in
/// the body), every line of it (offsets, for lenient mode to skip), the rule and the detail.
pub(crate) struct MetricViolation {
    pub at: usize,
    pub lines: Vec<usize>,
    pub rule: Rule,
    pub detail: String,
}

/// The rules over whole metrics: each histogram's buckets and count, and timestamps in
/// order. `base` is the body's address, to turn names into offsets. One pass over each
/// histogram family's samples; a metric ends where the label set (apart from `le`) changes.
pub(crate) fn metrics(exp: &Exposition<'_>, base: usize) -> Vec<MetricViolation> {
    let offset = |s: &Sample<'_>| s.name.as_ptr() as usize - base;
    let mut out = Vec::new();
    for family in &exp.families {
        let samples = exp.samples_of(family);
        if samples.iter().any(|s| s.timestamp.is_some()) {
            timestamps(exp, samples, &offset, &mut out);
        }
        if !matches!(
            family.kind,
            MetricType::Histogram | MetricType::GaugeHistogram
        ) {
            continue;
        }
        let gauge = family.kind == MetricType::GaugeHistogram;
        let mut run = Run::default();
        let mut previous: &[Label<'_>] = &[];
        for (i, s) in samples.iter().enumerate() {
            let labels = exp.labels_of(s);
            if i > run.start && !same_metric(previous, labels) {
                let ended = std::mem::replace(
                    &mut run,
                    Run {
                        start: i,
                        ..Run::default()
                    },
                );
                let start = ended.start;
                ended.finish(family, gauge, &samples[start..i], &offset, &mut out);
            }
            run.observe(family, gauge, s, labels);
            previous = labels;
        }
        let start = run.start;
        run.finish(
            family,
            gauge,
            samples.get(start..).unwrap_or_default(),
            &offset,
            &mut out,
        );
    }
    out
}

/// One histogram metric as its samples go by.
#[derive(Default)]
struct Run<'e> {
    /// Its first sample's index in the family.
    start: usize,
    /// The latest bucket: its `le` text, as a plain decimal if it is one, and its count.
    last: Option<(&'e str, Option<Decimal<'e>>, f64)>,
    count: Option<f64>,
    sum: bool,
    /// The first rule it broke.
    broken: Option<(Rule, String)>,
}

impl<'e> Run<'e> {
    fn observe(
        &mut self,
        family: &Family<'_>,
        gauge: bool,
        s: &Sample<'_>,
        labels: &'e [Label<'_>],
    ) {
        match (gauge, suffix_of(family, s)) {
            (_, "_bucket") => {}
            (false, "_count") | (true, "_gcount") => {
                self.count = Some(s.value);
                return;
            }
            (false, "_sum") | (true, "_gsum") => {
                self.sum = true;
                return;
            }
            _ => return,
        }
        if self.broken.is_some() {
            return;
        }
        let le = labels
            .iter()
            .find(|l| l.name == "le")
            .map_or("", |l| l.value.as_ref());
        let decimal = plain_decimal(le);
        if let Some((prev_le, prev_decimal, prev_count)) = self.last {
            let order = match (prev_decimal, decimal) {
                (Some(a), Some(b)) => Some(decimal_cmp(a, b)),
                _ => number(prev_le)
                    .zip(number(le))
                    .and_then(|(a, b)| a.partial_cmp(&b)),
            };
            if order != Some(std::cmp::Ordering::Less) {
                let rule = if number(le).is_some() {
                    Rule::BucketOrder
                } else {
                    Rule::BucketLabel
                };
                self.broken = Some((rule, format!("le={le:?} after le={prev_le:?}")));
            } else if s.value < prev_count {
                self.broken = Some((
                    Rule::NonCumulative,
                    format!(
                        "le={prev_le} holds {prev_count} but le={le} holds {}",
                        s.value
                    ),
                ));
            }
        } else if decimal.is_none() && number(le).is_none() {
            self.broken = Some((Rule::BucketLabel, format!("le={le:?}")));
        }
        self.last = Some((le, decimal, s.value));
    }

    /// Reports the rule the whole metric breaks, if any: a bucket rule, no `+Inf` last, or
    /// a count that differs from it.
    fn finish(
        self,
        family: &Family<'_>,
        gauge: bool,
        run: &[Sample<'_>],
        offset: &impl Fn(&Sample<'_>) -> usize,
        out: &mut Vec<MetricViolation>,
    ) {
        let Some(first) = run.first() else {
            return;
        };
        let (count_suffix, sum_suffix) = if gauge {
            ("_gcount", "_gsum")
        } else {
            ("_count", "_sum")
        };
        let name = family.name;
        let broken = self.broken.or_else(|| {
            let inf = match self.last {
                Some((le, None, n)) if number(le) == Some(f64::INFINITY) => n,
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
            out.push(MetricViolation {
                at: offset(first),
                lines: run.iter().map(offset).collect(),
                rule,
                detail,
            });
        }
    }
}

/// Whether two label sets name the same metric: equal apart from `le`. Buckets of one
/// metric have their labels in the same order, so they compare pairwise; a bucket against
/// `_count` compares without `le`.
fn same_metric(a: &[Label<'_>], b: &[Label<'_>]) -> bool {
    if a.len() == b.len() {
        return a.iter().zip(b).all(|(x, y)| {
            short_eq(x.name, y.name) && (x.name == "le" || short_eq(&x.value, &y.value))
        });
    }
    let mut a = a.iter().filter(|l| l.name != "le");
    let mut b = b.iter().filter(|l| l.name != "le");
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) if x.name == y.name && x.value == y.value => {}
            _ => return false,
        }
    }
}

/// String equality without a library call for the short strings label names and values
/// mostly are (a call per comparison costs more than the comparison).
fn short_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut chunks = a.chunks_exact(8).zip(b.chunks_exact(8));
    let words_equal = chunks.all(|(x, y)| x == y);
    let tail = a.len() - a.len() % 8;
    words_equal && a[tail..].iter().zip(&b[tail..]).all(|(x, y)| x == y)
}

/// A non-negative decimal without exponent, as integer digits (no leading zeros) and
/// fraction digits. Bucket bounds written so (`0.00015000000000000001`, `2.5`, `10`) compare
/// digit by digit, much cheaper than parsing: TGI writes a thousand buckets with twenty
/// digits each. Anything else is parsed.
type Decimal<'a> = (&'a [u8], &'a [u8]);

/// Orders two plain decimals as numbers.
fn decimal_cmp((ai, af): Decimal<'_>, (bi, bf): Decimal<'_>) -> std::cmp::Ordering {
    ai.len()
        .cmp(&bi.len())
        .then(ai.cmp(bi))
        .then_with(|| fraction_cmp(af, bf))
}

/// `text` as a plain decimal, if it is one.
fn plain_decimal(text: &str) -> Option<Decimal<'_>> {
    let b = text.as_bytes();
    let dot = b.iter().position(|c| *c == b'.').unwrap_or(b.len());
    let (int, frac) = (&b[..dot], b.get(dot + 1..).unwrap_or_default());
    let digits = |d: &[u8]| d.iter().all(u8::is_ascii_digit);
    if int.is_empty() || !digits(int) || !digits(frac) || (dot < b.len() && frac.is_empty()) {
        return None;
    }
    let first = int.iter().position(|c| *c != b'0').unwrap_or(int.len());
    Some((&int[first..], frac))
}

/// Compares fraction digits as numbers: the shorter one is padded with zeros.
fn fraction_cmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let common = a.len().min(b.len());
    a[..common].cmp(&b[..common]).then_with(|| {
        let rest_nonzero = |r: &[u8]| r.iter().any(|c| *c != b'0');
        rest_nonzero(&a[common..]).cmp(&rest_nonzero(&b[common..]))
    })
}

/// Consecutive samples of one series (same name and labels) must have rising timestamps.
fn timestamps(
    exp: &Exposition<'_>,
    samples: &[Sample<'_>],
    offset: &impl Fn(&Sample<'_>) -> usize,
    out: &mut Vec<MetricViolation>,
) {
    for pair in samples.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let (Some(ta), Some(tb)) = (a.timestamp, b.timestamp) else {
            continue;
        };
        if a.name == b.name && tb <= ta && exp.labels_of(a) == exp.labels_of(b) {
            out.push(MetricViolation {
                at: offset(b),
                lines: vec![offset(b)],
                rule: Rule::TimestampOrder,
                detail: format!("{} at {tb} after {ta}", b.name),
            });
        }
    }
}
