//! The overview's numbers, kept current as scrapes arrive: per target and model, the increase
//! of each counter and histogram bucket the overview reads, and the latest value of each gauge,
//! summed into fixed time steps of four widths (10 s, 30 s, 2 min and 12 min, 30 steps each:
//! the dashboard's 5 min, 15 min and 1 h windows, and the 6 h that slow burn-rate alerts
//! read). A request for 1,000 rows then adds up at most
//! 30 small arrays per row instead of decoding and walking each target's history, which is
//! what made the overview cost hundreds of milliseconds. The detail of one target still reads
//! the full history.
//!
//! Increases follow PromQL's `increase`: a drop is a counter reset, after which the new value
//! counts; a series' first value is not an increase. A scrape's increase covers the time since
//! the previous scrape, and is shared between the steps that time overlaps, so a scrape
//! interval longer than a step leaves no holes; after a gap of more than three intervals
//! (the target was down) it is not spread over the gap but counted, over the whole gap, in
//! the step of the scrape that ends it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, LazyLock};

use super::history::{Layout, Part, SeriesKey};
use crate::catalog::panels::{Aggregation, Source, overview_sources};

/// Width of each tier's steps, in seconds.
pub const TIERS: [f64; 4] = [10.0, 30.0, 120.0, 720.0];
/// Steps kept per tier.
pub const STEPS: usize = 30;

static SOURCES: LazyLock<Vec<Source>> = LazyLock::new(overview_sources);

/// The sources kept, in the order their numbers sit in a step.
pub fn sources() -> &'static [Source] {
    &SOURCES
}

thread_local! {
    /// Sources that equal one of [`sources`] without being the same constants (the same name
    /// written in another module), with their index: found by identity next time.
    static ALIASES: std::cell::RefCell<Vec<(Source, Option<usize>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Most sources ever kept as aliases (callers pass constants: a handful).
const MAX_ALIASES: usize = 64;

/// Where `source` sits among [`sources`]: found by identity first, by value otherwise.
fn source_index(source: &Source) -> Option<usize> {
    let all = sources();
    if let Some(i) = all.iter().position(|x| x.is_identical(source)) {
        return Some(i);
    }
    ALIASES.with_borrow_mut(|aliases| {
        if let Some((_, i)) = aliases.iter().find(|(x, _)| x.is_identical(source)) {
            return *i;
        }
        let i = all.iter().position(|x| x == source);
        if aliases.len() < MAX_ALIASES {
            aliases.push((*source, i));
        }
        i
    })
}

/// Where each source's numbers sit in a step, and a histogram's bucket bounds.
#[derive(Debug, Clone, PartialEq, Default)]
struct Shape {
    /// Start of each source's numbers, and the total at the end.
    offsets: Vec<usize>,
    /// Per source: a histogram's bucket upper bounds.
    bounds: Vec<Option<Arc<[f64]>>>,
    /// Per number: a gauge's latest value (and how its series combine) rather than an
    /// increase.
    gauge: Vec<Option<Aggregation>>,
    /// Per number: the index of its source (a bit of a step's `present`).
    source_of: Vec<u8>,
    /// The gauges' numbers, with their source.
    gauge_slots: Vec<(usize, u8)>,
}

impl Shape {
    fn of(layout: &Layout, model: &str) -> Shape {
        let mut shape = Shape::default();
        for source in sources() {
            shape.offsets.push(shape.gauge.len());
            let (width, bounds) = match source {
                Source::Counter(..) | Source::Gauge(_) => (1, None),
                Source::Histogram(signal) => match layout.bounds(signal, model) {
                    Some(b) => (b.len(), Some(Arc::<[f64]>::from(b))),
                    None => (0, None),
                },
            };
            shape.bounds.push(bounds);
            let gauge = match source {
                Source::Gauge(signal) => Some(Aggregation::of(signal)),
                _ => None,
            };
            let index = u8::try_from(shape.offsets.len() - 1).unwrap_or(u8::MAX);
            if gauge.is_some() {
                shape.gauge_slots.push((shape.gauge.len(), index));
            }
            shape.gauge.extend(std::iter::repeat_n(gauge, width));
            shape.source_of.extend(std::iter::repeat_n(index, width));
        }
        shape.offsets.push(shape.gauge.len());
        shape
    }

    fn width(&self) -> usize {
        self.gauge.len()
    }
}

/// A series of the layout feeding one number of a step.
#[derive(Debug, Clone)]
struct Input {
    key: SeriesKey,
    index: usize,
    slot: usize,
}

/// The slots `key` feeds: one per source that reads it (a finished request with an error
/// outcome counts for all requests and for the failed ones).
fn slots_of(shape: &Shape, key: &SeriesKey) -> Vec<usize> {
    sources()
        .iter()
        .enumerate()
        .filter_map(|(s, source)| {
            let offset = shape.offsets.get(s)?;
            let within = match (source, key.part) {
                (Source::Counter(signal, outcomes), Part::Scalar) => {
                    (*signal == key.signal && outcomes.admits(key.outcome)).then_some(0)
                }
                (Source::Gauge(signal), Part::Scalar) => (*signal == key.signal).then_some(0),
                (Source::Histogram(signal), Part::Bucket(i)) => {
                    (*signal == key.signal).then_some(usize::from(i))
                }
                _ => None,
            }?;
            (offset + within < *shape.offsets.get(s + 1)?).then_some(offset + within)
        })
        .collect()
}

/// One time step's sums.
#[derive(Debug, Clone)]
struct Step {
    /// `floor(time / width)`.
    index: i64,
    /// Seconds of scraping the increases cover.
    covered: f64,
    /// Bit `i`: source `i` had a value in this step (absent numbers stay 0, so adding steps
    /// up is a plain sum).
    present: u64,
    /// Per number: the summed increase (a gauge's latest value).
    values: Box<[f32]>,
}

impl Step {
    /// Adds a scrape's `delta` (its `share` of it) to this step and the same amounts to
    /// `running`, the tier's sum of its steps.
    fn add(
        &mut self,
        (share, covered): (f64, f64),
        delta: &[f32],
        shape: &Shape,
        running: &mut Running,
    ) {
        self.covered += covered;
        running.covered += covered;
        // Unshared by now: the sums a round read were dropped with it.
        let sums = Arc::make_mut(&mut running.sum);
        for (i, (value, d)) in self.values.iter_mut().zip(delta).enumerate() {
            if d.is_nan() {
                continue;
            }
            if let Some(&source) = shape.source_of.get(i) {
                let bit = 1 << source;
                if self.present & bit == 0 {
                    self.present |= bit;
                    running.present[usize::from(source)] += 1;
                }
            }
            let before = *value;
            *value = match shape.gauge.get(i) {
                Some(Some(_)) => *d,
                _ => *value + d * share as f32,
            };
            if let Some(sum) = sums.get_mut(i) {
                *sum += f64::from(*value) - f64::from(before);
            }
        }
    }
}

/// A tier's steps added up as they change, so a window of the whole tier (the dashboard's
/// and the alerts' 5 minutes and 1 hour) is one read rather than 30 steps added up.
#[derive(Debug, Default)]
struct Running {
    /// Shared with the sums of a whole-tier window read since (no copy per read); copied on
    /// the next change only while such a read still holds it.
    sum: Arc<Vec<f64>>,
    covered: f64,
    /// Per source: kept steps where it had a value.
    present: Vec<u32>,
    /// Bit `i`: source `i` has a value in some kept step (from `present`, after each scrape).
    present_bits: u64,
    /// Each gauge's newest value in the kept steps, by slot (after each scrape), so a read of
    /// the whole tier need not look through its steps.
    newest: Arc<Vec<(usize, f64)>>,
}

impl Running {
    fn remove(&mut self, step: &Step) {
        self.covered -= step.covered;
        for (sum, value) in Arc::make_mut(&mut self.sum)
            .iter_mut()
            .zip(step.values.iter())
        {
            *sum -= f64::from(*value);
        }
        for (s, count) in self.present.iter_mut().enumerate() {
            if step.present & (1 << s) != 0 {
                *count = count.saturating_sub(1);
            }
        }
    }
}

/// The steps of one tier, oldest first, and their running sum.
#[derive(Debug, Default)]
struct Tier {
    steps: VecDeque<Step>,
    running: Running,
}

/// The step `index` of `steps`, made when missing (in order).
fn step_at(steps: &mut VecDeque<Step>, index: i64, width: usize) -> Option<&mut Step> {
    let at = match steps.binary_search_by_key(&index, |s| s.index) {
        Ok(i) => i,
        Err(i) => {
            let values = vec![0.0; width].into_boxed_slice();
            steps.insert(
                i,
                Step {
                    index,
                    covered: 0.0,
                    present: 0,
                    values,
                },
            );
            i
        }
    };
    steps.get_mut(at)
}

impl Tier {
    fn record(&mut self, width: f64, scrape: &Scrape<'_>, shape: &Shape) {
        let Tier { steps, running } = self;
        Arc::make_mut(&mut running.sum).resize(shape.width(), 0.0);
        running.present.resize(sources().len(), 0);
        let end = step_of(scrape.at, width);
        let oldest = end - STEPS as i64 + 1;
        if scrape.spread && scrape.covered > 0.0 {
            let since = scrape.at - scrape.covered;
            let first = ((since / width).floor() as i64).max(oldest);
            for index in first..=end {
                let lo = (index as f64 * width).max(since);
                let hi = ((index + 1) as f64 * width).min(scrape.at);
                if hi > lo
                    && let Some(step) = step_at(steps, index, shape.width())
                {
                    let share = ((hi - lo) / scrape.covered, hi - lo);
                    step.add(share, scrape.delta, shape, running);
                }
            }
        } else if let Some(step) = step_at(steps, end, shape.width()) {
            step.add((1.0, scrape.covered), scrape.delta, shape, running);
        }
        while steps.front().is_some_and(|s| s.index < oldest) {
            if let Some(gone) = steps.pop_front() {
                running.remove(&gone);
            }
        }
        running.present_bits = running
            .present
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
            .fold(0, |bits, (s, _)| bits | (1 << s));
        let newest = Arc::make_mut(&mut running.newest);
        newest.clear();
        newest.extend(shape.gauge_slots.iter().filter_map(|&(slot, source)| {
            let step = steps
                .iter()
                .rev()
                .find(|s| s.present & (1 << source) != 0)?;
            Some((slot, f64::from(*step.values.get(slot)?)))
        }));
    }

    /// The sums over `grid` (already aligned), its steps added up one by one.
    fn added_up(&self, grid: &Grid, shape: &Arc<Shape>) -> Sums {
        let mut sums = Sums::empty(shape);
        for step in grid.steps_of(self) {
            sums.add(step);
        }
        sums
    }

    /// Whether `grid` reads exactly the steps kept (one tier step per grid step, all of them,
    /// ending at the newest), so the running sum answers it.
    fn is_whole(&self, grid: &Grid) -> bool {
        self.steps.back().is_some_and(|newest| {
            grid.per_step == 1 && grid.count == STEPS && newest.index == grid.end
        })
    }

    /// A gauge's mean over `grid` (each step's latest value, in the steps that have one) and
    /// the seconds covered: from the running sum when the grid is the whole tier.
    fn gauge_mean(&self, grid: &Grid, slot: usize, source: usize) -> Option<(f64, f64)> {
        if self.is_whole(grid) {
            let n = *self.running.present.get(source)?;
            let sum = *self.running.sum.get(slot)?;
            return (n > 0).then(|| (sum / f64::from(n), self.running.covered));
        }
        let (mut sum, mut n, mut covered) = (0.0, 0u32, 0.0);
        for step in grid.steps_of(self) {
            covered += step.covered;
            if step.present & (1 << source) != 0 {
                sum += f64::from(*step.values.get(slot)?);
                n += 1;
            }
        }
        (n > 0).then(|| (sum / f64::from(n), covered))
    }

    /// The running sum as the sums of the whole tier, when `grid` reads exactly the steps
    /// kept.
    fn whole(&self, grid: &Grid, shape: &Arc<Shape>) -> Option<Sums> {
        if !self.is_whole(grid) {
            return None;
        }
        let sums = Sums {
            shape: shape.clone(),
            covered: self.running.covered,
            present: self.running.present_bits,
            values: self.running.sum.clone(),
            newest: self.running.newest.clone(),
        };
        Some(sums)
    }
}

/// The step holding time `t`: steps are `(index × width, (index + 1) × width]`, so a scrape on
/// a boundary closes the step it ends rather than opening an empty one.
fn step_of(t: f64, width: f64) -> i64 {
    (t / width).ceil() as i64 - 1
}

/// What one scrape adds to a model's steps.
struct Scrape<'a> {
    at: f64,
    covered: f64,
    spread: bool,
    delta: &'a [f32],
}

/// The rollup of one model of a target.
#[derive(Debug)]
struct ModelRollup {
    layout: Option<Arc<Layout>>,
    inputs: Vec<Input>,
    shape: Arc<Shape>,
    /// Each input's value at the previous scrape (NaN where absent).
    previous: Vec<f64>,
    /// The model was in the previous scrape.
    present: bool,
    seen: f64,
    tiers: [Tier; TIERS.len()],
}

impl ModelRollup {
    fn new() -> ModelRollup {
        ModelRollup {
            layout: None,
            inputs: Vec::new(),
            shape: Arc::default(),
            previous: Vec::new(),
            present: false,
            seen: 0.0,
            tiers: Default::default(),
        }
    }

    /// Plans the inputs for a new layout, keeping each series' previous value by key; a new
    /// shape (another engine, other buckets) starts the steps afresh.
    fn replan(&mut self, layout: &Arc<Layout>, model: &str) {
        let shape = Shape::of(layout, model);
        let mut inputs = Vec::new();
        for (index, key) in layout.keys().iter().enumerate() {
            if key.model != model {
                continue;
            }
            for slot in slots_of(&shape, key) {
                inputs.push(Input {
                    key: key.clone(),
                    index,
                    slot,
                });
            }
        }
        let old: BTreeMap<&SeriesKey, f64> = self
            .inputs
            .iter()
            .map(|i| &i.key)
            .zip(self.previous.iter().copied())
            .collect();
        let previous = inputs
            .iter()
            .map(|i| old.get(&i.key).copied().unwrap_or(f64::NAN))
            .collect();
        if *self.shape != shape {
            self.tiers = Default::default();
            self.shape = Arc::new(shape);
        }
        self.previous = previous;
        self.inputs = inputs;
        self.layout = Some(layout.clone());
    }

    fn record(&mut self, at: f64, values: &[f64], gap: Option<f64>, spread: bool) {
        let mut delta = vec![f32::NAN; self.shape.width()];
        let counted = if self.present { gap } else { None };
        for (input, previous) in self.inputs.iter().zip(&mut self.previous) {
            let value = values.get(input.index).copied().unwrap_or(f64::NAN);
            let gauge = self.shape.gauge.get(input.slot).copied().flatten();
            let increase = if gauge.is_some() {
                Some(value)
            } else if counted.is_some() && previous.is_finite() && value.is_finite() {
                Some(if value >= *previous {
                    value - *previous
                } else {
                    value
                })
            } else {
                None
            };
            if let (Some(v), Some(d)) = (increase, delta.get_mut(input.slot)) {
                let v = v as f32;
                *d = match gauge {
                    _ if d.is_nan() => v,
                    Some(Aggregation::Max) => d.max(v),
                    _ => *d + v,
                };
            }
            *previous = value;
        }
        let scrape = Scrape {
            at,
            covered: counted.unwrap_or(0.0),
            spread,
            delta: &delta,
        };
        for (tier, width) in self.tiers.iter_mut().zip(TIERS) {
            tier.record(width, &scrape, &self.shape);
        }
        self.present = true;
        self.seen = at;
    }

    fn bytes(&self) -> usize {
        let steps: usize = self.tiers.iter().map(|t| t.steps.len()).sum();
        steps * (std::mem::size_of::<Step>() + self.shape.width() * 4)
            + self.inputs.len() * (std::mem::size_of::<Input>() + 8)
    }
}

/// The overview's rollup of one target.
#[derive(Debug, Default)]
pub struct Rollup {
    models: BTreeMap<String, ModelRollup>,
    /// The models of the newest scrape, sorted.
    current: Vec<String>,
    layout: Option<Arc<Layout>>,
    last_at: Option<f64>,
    last_gap: Option<f64>,
}

impl Rollup {
    /// Adds a scrape taken at `at`, its numbers as `layout` describes them.
    pub fn push(&mut self, at: f64, layout: &Arc<Layout>, values: &[f64]) {
        let gap = self.last_at.map(|t| at - t).filter(|g| *g > 0.0);
        // A gap over three intervals is an outage: its increase is not spread over it.
        let spread = match (gap, self.last_gap) {
            (Some(g), Some(last)) => g <= 3.0 * last,
            _ => true,
        };
        let changed = !self.layout.as_ref().is_some_and(|l| Arc::ptr_eq(l, layout));
        if changed {
            let mut models: Vec<String> = layout.keys().iter().map(|k| k.model.clone()).collect();
            models.sort_unstable();
            models.dedup();
            self.current = models;
            self.layout = Some(layout.clone());
        }
        for model in &self.current {
            // Looked up before inserting: an entry needs an owned name, a `String` per model
            // per scrape.
            if !self.models.contains_key(model) {
                self.models.insert(model.clone(), ModelRollup::new());
            }
            let Some(rollup) = self.models.get_mut(model) else {
                continue;
            };
            if !rollup
                .layout
                .as_ref()
                .is_some_and(|l| Arc::ptr_eq(l, layout))
            {
                rollup.replan(layout, model);
            }
            rollup.record(at, values, gap, spread);
        }
        let horizon = at - TIERS[TIERS.len() - 1] * STEPS as f64;
        let current = &self.current;
        self.models.retain(|model, rollup| {
            rollup.present = current.binary_search(model).is_ok();
            rollup.seen >= horizon
        });
        if gap.is_some() {
            self.last_gap = gap;
        }
        self.last_at = Some(at);
    }

    /// The models of the newest scrape, sorted.
    pub fn models(&self) -> &[String] {
        &self.current
    }

    /// Bytes held by the steps and inputs.
    pub fn bytes(&self) -> usize {
        self.models.values().map(ModelRollup::bytes).sum()
    }

    /// `grid` ending at this target's newest scrape when that is at most a step old (so the
    /// newest step is never one that no scrape has reached yet), else at the grid's end.
    fn aligned(&self, grid: &Grid) -> Grid {
        let width = TIERS[grid.tier];
        match self.last_at {
            Some(at) if grid.now - at <= width => Grid {
                end: step_of(at, width),
                ..*grid
            },
            _ => *grid,
        }
    }

    /// The sums over the whole of `grid`'s window for `model` (see [`ModelView::total`]).
    pub fn total(&self, model: &str, grid: &Grid) -> Option<Sums> {
        self.model(model)?.total(grid)
    }

    /// The mean of a gauge over `grid`'s steps for `model` (see [`ModelView::gauge_mean`]).
    pub fn gauge_mean(&self, model: &str, grid: &Grid, source: Source) -> Option<(f64, f64)> {
        self.model(model)?.gauge_mean(grid, source)
    }

    /// The models of the newest scrape, sorted, each with its rollup.
    pub fn current(&self) -> impl Iterator<Item = (&str, ModelView<'_>)> {
        self.models
            .iter()
            .filter(|(_, model)| model.present)
            .map(|(name, model)| {
                let view = ModelView {
                    rollup: self,
                    model,
                };
                (name.as_str(), view)
            })
    }

    /// `model`'s rollup, found once for several reads.
    pub fn model(&self, model: &str) -> Option<ModelView<'_>> {
        Some(ModelView {
            rollup: self,
            model: self.models.get(model)?,
        })
    }

    /// The sums of each of `grid`'s steps for `model`, oldest first.
    pub fn steps(&self, model: &str, grid: &Grid) -> Option<Vec<Sums>> {
        let rollup = self.models.get(model)?;
        let grid = self.aligned(grid);
        let mut out: Vec<Sums> = (0..grid.count)
            .map(|_| Sums::empty(&rollup.shape))
            .collect();
        for step in grid.steps_of(&rollup.tiers[grid.tier]) {
            if let Some(sums) = out.get_mut(grid.position(step.index)) {
                sums.add(step);
            }
        }
        Some(out)
    }
}

mod read;
pub use read::{Grid, ModelView, Sums};

#[cfg(test)]
mod tests;
