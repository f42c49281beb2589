//! Reading a rollup: the [`Grid`] of steps a request asks for, and the [`Sums`] of a model's
//! steps over it, with what each source's numbers mean (rates, gauges, quantiles).

use std::sync::Arc;

use super::{ModelRollup, Rollup, STEPS, Shape, Step, TIERS, Tier, source_index, step_of};
use crate::catalog::panels::Source;
use crate::collect::history::{Quantile, bucket_quantile};

/// The steps a request reads: a tier, how many of its steps make one of the request's, and
/// how many of those end at the step holding `now`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grid {
    pub(super) now: f64,
    pub(super) tier: usize,
    pub(super) per_step: i64,
    pub(super) count: usize,
    pub(super) end: i64,
}

impl Grid {
    /// The grid for `window` seconds in about `points` steps ending at `now`: the coarsest
    /// tier no wider than a step that still reaches back over the window.
    pub fn new(now: f64, window: f64, points: usize) -> Result<Grid, String> {
        let reach = TIERS[TIERS.len() - 1] * STEPS as f64;
        if !(window > 0.0 && window <= reach) {
            return Err(format!(
                "window: the overview keeps at most {} min, not {window} s",
                reach / 60.0
            ));
        }
        let wanted = window / points.max(1) as f64;
        let reaching = |w: &f64| w * STEPS as f64 >= window;
        let width = TIERS
            .iter()
            .rfind(|w| reaching(w) && **w <= wanted)
            .or_else(|| TIERS.iter().find(|w| reaching(w)))
            .copied()
            .unwrap_or(TIERS[0]);
        let tier = TIERS.iter().position(|w| *w == width).unwrap_or(0);
        let per_step = ((wanted / width).round() as i64).max(1);
        let count = ((window / (width * per_step as f64)).ceil() as usize).max(1);
        Ok(Grid {
            now,
            tier,
            per_step,
            count,
            end: step_of(now, width),
        })
    }

    /// Seconds per step.
    pub fn step_seconds(&self) -> f64 {
        TIERS[self.tier] * self.per_step as f64
    }

    /// Steps in the window.
    pub fn count(&self) -> usize {
        self.count
    }

    pub(super) fn first(&self) -> i64 {
        self.end - self.per_step * self.count as i64 + 1
    }

    pub(super) fn position(&self, index: i64) -> usize {
        usize::try_from((index - self.first()) / self.per_step).unwrap_or(usize::MAX)
    }

    pub(super) fn steps_of<'t>(&self, tier: &'t Tier) -> impl Iterator<Item = &'t Step> {
        let (first, end) = (self.first(), self.end);
        tier.steps
            .iter()
            .filter(move |s| s.index >= first && s.index <= end)
    }
}

/// One model's rollup in a target's, found once for several reads.
#[derive(Debug, Clone, Copy)]
pub struct ModelView<'r> {
    pub(super) rollup: &'r Rollup,
    pub(super) model: &'r ModelRollup,
}

impl ModelView<'_> {
    /// The sums over the whole of `grid`'s window: the tier's running sum when the window is
    /// the whole tier, else its steps added up.
    pub fn total(&self, grid: &Grid) -> Option<Sums> {
        let grid = self.rollup.aligned(grid);
        let tier = self.model.tiers.get(grid.tier)?;
        tier.whole(&grid, &self.model.shape)
            .or_else(|| Some(tier.added_up(&grid, &self.model.shape)))
    }

    /// The mean of a gauge over `grid`'s steps (each step's latest value, in the steps that
    /// have one: with scrapes 10 s or more apart, the mean of the scraped values) and the
    /// seconds of scraping the steps cover; `None` without the gauge. A window of a whole
    /// tier reads its running sum; any other, at most 30 steps.
    pub fn gauge_mean(&self, grid: &Grid, source: Source) -> Option<(f64, f64)> {
        let grid = self.rollup.aligned(grid);
        let tier = self.model.tiers.get(grid.tier)?;
        let s = source_index(&source)?;
        let slot = *self.model.shape.offsets.get(s)?;
        tier.gauge_mean(&grid, slot, s)
    }
}

/// Sums of steps for one model: the increase of each counter and histogram bucket, the seconds
/// they cover, and each gauge's latest value.
#[derive(Debug, Clone)]
pub struct Sums {
    pub(super) shape: Arc<Shape>,
    pub(super) covered: f64,
    pub(super) present: u64,
    /// Per number: the sum, or a gauge's newest value unless `newest` has it. Shared with a
    /// tier's running sum when the window is the whole tier.
    pub(super) values: Arc<Vec<f64>>,
    /// The gauges' newest values, by slot, where `values` holds sums (a whole-tier window).
    pub(super) newest: Arc<Vec<(usize, f64)>>,
}

impl Sums {
    pub(super) fn empty(shape: &Arc<Shape>) -> Sums {
        Sums {
            shape: shape.clone(),
            covered: 0.0,
            present: 0,
            values: Arc::new(vec![0.0; shape.width()]),
            newest: Arc::default(),
        }
    }

    /// Adds `step` (steps come oldest first): a plain sum of every number, then each gauge
    /// present in the step takes its value there, so the newest wins.
    pub(super) fn add(&mut self, step: &Step) {
        self.covered += step.covered;
        self.present |= step.present;
        let values = Arc::make_mut(&mut self.values);
        for (value, add) in values.iter_mut().zip(step.values.iter()) {
            *value += f64::from(*add);
        }
        for &(slot, source) in &self.shape.gauge_slots {
            if step.present & (1 << source) != 0
                && let (Some(value), Some(add)) = (values.get_mut(slot), step.values.get(slot))
            {
                *value = f64::from(*add);
            }
        }
    }

    fn numbers(&self, source: Source) -> Option<&[f64]> {
        let s = source_index(&source)?;
        if self.present & (1 << s) == 0 {
            return None;
        }
        let (start, end) = (*self.shape.offsets.get(s)?, *self.shape.offsets.get(s + 1)?);
        if let Some((_, newest)) = self.newest.iter().find(|(slot, _)| *slot == start) {
            return Some(std::slice::from_ref(newest));
        }
        self.values.get(start..end)
    }

    /// A counter's increase over the steps, `None` when absent.
    pub fn increase(&self, source: Source) -> Option<f64> {
        self.numbers(source)?
            .first()
            .copied()
            .filter(|v| v.is_finite())
    }

    /// A counter's per-second rate over the seconds the steps cover.
    pub fn rate(&self, source: Source) -> Option<f64> {
        let increase = self.increase(source)?;
        (self.covered > 0.0).then(|| increase / self.covered)
    }

    /// A gauge's latest value.
    pub fn gauge(&self, source: Source) -> Option<f64> {
        self.increase(source)
    }

    /// Seconds of scraping the increases cover.
    pub fn covered(&self) -> f64 {
        self.covered
    }

    /// A histogram's `(upper bound, cumulative increase)` pairs over the steps.
    pub fn buckets(&self, source: Source) -> Option<Vec<(f64, f64)>> {
        Some(self.bucket_pairs(source)?.collect())
    }

    /// The same pairs, read in place.
    pub fn bucket_pairs(
        &self,
        source: Source,
    ) -> Option<impl DoubleEndedIterator<Item = (f64, f64)> + '_> {
        let s = source_index(&source)?;
        let bounds = self.shape.bounds.get(s)?.as_ref()?;
        let counts = self.numbers(source)?;
        Some(bounds.iter().copied().zip(counts.iter().copied()))
    }

    /// A quantile of a histogram's observations over the steps.
    pub fn quantile(&self, source: Source, q: f64) -> Option<Quantile> {
        bucket_quantile(q, &self.buckets(source)?)
    }
}
