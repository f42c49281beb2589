//! The bounds of the last histogram metric that broke no rule, held to the next metric:
//! a family's metrics (one per model, per label value) almost always have the same bounds,
//! and a bound written exactly as the `i`-th of a rising ladder, after one written as the
//! `(i-1)`-th, is above it. Comparing texts is cheaper than reading and ordering the bound
//! (on TGI's long bounds, `0.00015000000000000001`, that was the strict check's largest
//! cost), and the ladder costs nothing to keep: it is the earlier metric's samples, read in
//! place.

use std::borrow::Cow;
use std::ops::Range;

use super::bounds::Bound;
use crate::exposition::lex::short_eq;
use crate::exposition::{Exposition, Label};

/// The samples of the last histogram metric that broke no rule, and where `le` was among
/// its buckets' labels. Only its buckets have an `le` label (a rule it kept), so its `i`-th
/// sample is its `i`-th bucket when `le` is in its place there.
#[derive(Default)]
pub(super) struct Ladder {
    samples: Range<usize>,
    le_index: usize,
}

impl Ladder {
    /// The ladder of a metric that broke no rule (so its bounds rise): its samples in the
    /// arena, and where its last bucket had `le`.
    pub(super) fn new(samples: Range<usize>, le_index: usize) -> Ladder {
        Ladder { samples, le_index }
    }

    /// Where a metric whose first bound is `text` is on the ladder: past its first rung if
    /// that is written the same, else off it (`usize::MAX`).
    pub(super) fn first(&self, exp: &Exposition<'_>, text: Option<&str>) -> usize {
        match (self.rung(exp, 0), text) {
            (Some(rung), Some(text)) if short_eq(rung.as_bytes(), text.as_bytes()) => 1,
            _ => usize::MAX,
        }
    }

    /// The bound `text` holding `count`, if it is written as the rung at `at`; left unread
    /// (see [`Bound::unread`]): only a bound that leaves the ladder is read.
    #[inline(always)]
    pub(super) fn climb<'a>(
        &self,
        exp: &Exposition<'a>,
        at: usize,
        text: &'a str,
        count: f64,
    ) -> Option<Bound<'a>> {
        let rung = self.rung(exp, at)?;
        short_eq(rung.as_bytes(), text.as_bytes()).then(|| Bound::unread(text, count))
    }

    /// The bound of the rung at `at`, as written: the `le` of the ladder's `at`-th sample,
    /// if that is a bucket (it has `le` where the ladder's buckets had it).
    #[inline(always)]
    fn rung<'e>(&self, exp: &'e Exposition<'_>, at: usize) -> Option<&'e str> {
        if at >= self.samples.len() {
            return None;
        }
        let sample = exp.samples.get(self.samples.start + at)?;
        let le = sample.labels.start as usize + self.le_index;
        if le >= sample.labels.end as usize {
            return None;
        }
        match exp.labels.get(le)? {
            Label {
                name: "le",
                value: Cow::Borrowed(text),
            } => Some(text),
            _ => None,
        }
    }
}
