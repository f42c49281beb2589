//! The rules over a whole metric rather than one line: a histogram's buckets (in increasing
//! `le`, cumulative, ending at `+Inf` equal to `_count`) and timestamps in order. Checked as
//! the parser goes, where the previous sample is still at hand: a second pass over the
//! parsed samples cost more than the whole rest of the OpenMetrics rules.

use std::cmp::Ordering::{Equal, Greater};
use std::ops::Range;

use super::bounds::Bound;
use super::ladder::Ladder;
use super::{Role, Rule, number};
use crate::exposition::lex::short_eq;
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
    /// The bounds of the last metric that broke no rule, which the next metric's are
    /// compared with.
    ladder: Ladder,
    /// What the finished metrics broke.
    pub violations: Vec<MetricViolation>,
}

/// A histogram sample's labels as written, apart from `le`: the text before the `le` pair
/// and the text after it. Two buckets whose texts match have the same labels; texts that
/// differ are compared label by label (another order, or escapes), once per metric.
type LabelText<'a> = (&'a [u8], &'a [u8]);

impl<'a> MetricRules<'a> {
    /// Takes a bucket that continues the previous bucket's metric and breaks no rule, if it
    /// is one, and says whether it did: its name was the previous sample's (the caller
    /// knows), its labels are written the same apart from `le`, at the same place, its count
    /// is a count no smaller than the previous bucket's, and its bound is above the previous
    /// one: written as the ladder's next rung (see [`Ladder`]), a plain decimal above a
    /// plain decimal, or `+Inf` after one. Its other rules held for the previous bucket.
    /// Anything else (another spelling of a number, a broken rule) goes to the full checks
    /// and [`Self::observe`], which name the rule.
    #[inline]
    pub(crate) fn next_bucket(
        &mut self,
        exp: &Exposition<'a>,
        labels: &[Label<'a>],
        line: &'a str,
        label_text: &'a str,
        count: f64,
    ) -> bool {
        let Some(run) = &self.run else {
            return false;
        };
        let (Some(le), Some((run_head, run_tail))) = (labels.get(run.le_index), run.text) else {
            return false;
        };
        let (b"le", std::borrow::Cow::Borrowed(value)) = (le.name.as_bytes(), &le.value) else {
            return false;
        };
        let Some((head, tail)) = split_at_le(label_text, le.name, value) else {
            return false;
        };
        if !short_eq(head, run_head) || !short_eq(tail, run_tail) {
            return false;
        }
        self.next_bound(exp, value, line, 0, count)
    }

    /// Takes the bound `value` (inside `line`) and count of a bucket known to continue the
    /// previous bucket's metric (the parser found its labels written as that bucket's but
    /// for `le`), if it breaks no rule, and says whether it did: see
    /// [`Self::next_bucket`]. `word` is the eight bytes from the bound's start, read by the
    /// parser, when the bound is shorter (else 0).
    #[inline(always)]
    pub(crate) fn next_bound(
        &mut self,
        exp: &Exposition<'a>,
        value: &'a str,
        line: &'a str,
        word: u64,
        count: f64,
    ) -> bool {
        let Some(run) = &mut self.run else {
            return false;
        };
        let Some(last) = &run.last else {
            return false;
        };
        // The last count is a count (a negative or NaN one breaks its sample's own rule
        // before it is stored), so this one is too when it is no smaller; NaN is not.
        if !matches!(count.partial_cmp(&last.count), Some(Greater | Equal)) {
            return false;
        }
        // The previous bound was the ladder's rung before this one: a bound written as
        // this rung is above it.
        if run.rung != usize::MAX {
            if let Some(bound) = self.ladder.climb(exp, run.rung, value, count) {
                run.rung += 1;
                run.last = Some(bound);
                return true;
            }
            run.rung = usize::MAX;
        }
        let bound = match word {
            0 => Bound::within(value, line, count),
            word => Bound::from_word(value, word, count),
        };
        // The `+Inf` bucket that ends a metric is above any plain decimal.
        let rises = last.rises_to_plain(&bound) || (last.is_plain() && value == "+Inf");
        if !rises {
            return false;
        }
        run.last = Some(bound);
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
            None => Some((label_text.as_bytes(), &b""[..])),
            Some(Label {
                name,
                value: std::borrow::Cow::Borrowed(value),
            }) => split_at_le(label_text, name, value),
            Some(_) => None,
        };
        let same = self.run.as_ref().is_some_and(|run| {
            run.family == family
                && (text.zip(run.text).is_some_and(|(a, b)| same_text(a, b))
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
                // Only a metric's first bound starts it on the ladder; a bound that comes
                // here after that was not the ladder's next.
                run.rung = match run.last {
                    None => self.ladder.first(exp, le),
                    Some(_) => usize::MAX,
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
            let (start, le_index) = (run.start, run.le_index);
            if run.finish(samples, base, &mut self.violations) {
                self.ladder = Ladder::new(start..exp.samples.len(), le_index);
            }
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
#[inline(always)]
fn split_at_le<'a>(label_text: &'a str, name: &str, value: &str) -> Option<LabelText<'a>> {
    let text = label_text.as_bytes();
    let base = text.as_ptr() as usize;
    // Offsets before the text wrap around to beyond its end, where `get` refuses them.
    let from = (name.as_ptr() as usize).wrapping_sub(base);
    // The value's closing quote follows it.
    let to = (value.as_ptr() as usize + value.len() + 1).wrapping_sub(base);
    Some((text.get(..from)?, text.get(to..)?))
}

/// Whether two label texts are written alike, compared without a library call: this runs
/// for every histogram sample off the buckets' straight path, and `memcmp` was a tenth of
/// the strict check's time there.
#[inline(always)]
fn same_text(a: LabelText<'_>, b: LabelText<'_>) -> bool {
    short_eq(a.0, b.0) && short_eq(a.1, b.1)
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
    /// Where the next bucket's bound is on the ladder: every bound so far was written as
    /// the ladder's, in order (`usize::MAX`: not).
    rung: usize,
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
    /// a count that differs from it. `run` is its samples. Says whether it broke none.
    fn finish(self, run: &[Sample<'_>], base: usize, out: &mut Vec<MetricViolation>) -> bool {
        let Some(first) = run.first() else {
            return false;
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
            return false;
        }
        true
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
