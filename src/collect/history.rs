//! A ring of past scrapes per target, compact enough to keep an hour of thousands of targets:
//! each point is its scrape time and a flat array of numbers, stored as the bitwise difference
//! from the previous point (most numbers do not change between scrapes, and take one byte);
//! what each number means (signal, model, outcome, bucket) lives in a layout shared by every
//! point with the same series.
//! Rates and quantiles over a window are computed from it the way PromQL's `increase` and
//! `histogram_quantile` are: counter resets never make a rate negative, and quantiles
//! interpolate within the buckets the engine defined.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::engines::{Reading, Value};

/// What one number in a point is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    /// Canonical signal name.
    pub signal: &'static str,
    /// Model label.
    pub model: String,
    /// Outcome label, for finished requests.
    pub outcome: Option<&'static str>,
    /// Which part of the value.
    pub part: Part,
}

/// A part of a canonical value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Part {
    /// A gauge or counter.
    Scalar,
    /// Cumulative count of a histogram bucket, by index in the layout's bucket bounds.
    Bucket(u16),
    /// A histogram's sum.
    Sum,
    /// A histogram's count.
    Count,
}

/// The meaning of every number in the points that share it.
#[derive(Debug, Default, PartialEq)]
pub struct Layout {
    keys: Vec<SeriesKey>,
    /// The keys' positions, sorted by key, for finding one by binary search: a hash map of
    /// the keys held a second copy of each, more memory at a thousand targets than their
    /// hour of numbers.
    order: Vec<u32>,
    /// Each histogram's bucket upper bounds, in the order of the keys; `Part::Bucket(i)`
    /// indexes these.
    histogram_bounds: Vec<Vec<f64>>,
    /// Where the bounds of (signal, model) are in `histogram_bounds`.
    bounds: HashMap<(&'static str, String), usize>,
}

impl Layout {
    fn of(readings: &[Reading]) -> (Layout, Vec<f64>) {
        let mut layout = Layout::default();
        let mut values = Vec::new();
        for reading in readings {
            for series in &reading.series {
                let key = |part| SeriesKey {
                    signal: reading.signal.name,
                    model: series.model.clone(),
                    outcome: series.outcome,
                    part,
                };
                match &series.value {
                    Value::Scalar(v) => layout.push(key(Part::Scalar), *v, &mut values),
                    Value::Histogram(h) => {
                        let bounds = h.buckets.iter().map(|(le, _)| *le).collect();
                        layout.bounds.insert(
                            (reading.signal.name, series.model.clone()),
                            layout.histogram_bounds.len(),
                        );
                        layout.histogram_bounds.push(bounds);
                        for (i, (_, count)) in h.buckets.iter().enumerate() {
                            let i = u16::try_from(i).unwrap_or(u16::MAX);
                            layout.push(key(Part::Bucket(i)), *count, &mut values);
                        }
                        layout.push(key(Part::Sum), h.sum, &mut values);
                        layout.push(key(Part::Count), h.count, &mut values);
                    }
                }
            }
        }
        (layout.sort(), values)
    }

    /// The values of `readings` when they have exactly this layout (the same keys in the same
    /// order, the same bucket bounds): the usual case, a scrape like the one before. Checked
    /// by walking both in order: building a new layout (a `String` and two hash-map entries
    /// per number) to compare it with the last one was most of `up`'s time on a 400-model
    /// target. A series is named by its first key; the keys after it need only their part
    /// compared, since a layout holds a histogram's keys together in one order (buckets from
    /// 0, sum, count), so a part that continues that order continues the same series.
    fn values_if_same(&self, readings: &[Reading]) -> Option<Vec<f64>> {
        let mut values = Vec::with_capacity(self.keys.len());
        let mut keys = self.keys.iter();
        let mut histograms = self.histogram_bounds.iter();
        for reading in readings {
            let signal = reading.signal.name;
            for series in &reading.series {
                let first = keys.next()?;
                let named = std::ptr::eq(first.signal, signal) || first.signal == signal;
                if !named || first.outcome != series.outcome || first.model != series.model {
                    return None;
                }
                match &series.value {
                    Value::Scalar(v) => {
                        (first.part == Part::Scalar).then(|| values.push(*v))?;
                    }
                    Value::Histogram(h) => {
                        let bounds = histograms.next()?;
                        let same_bounds = bounds.len() == h.buckets.len()
                            && bounds.iter().zip(&h.buckets).all(|(b, (le, _))| b == le);
                        if !same_bounds {
                            return None;
                        }
                        let buckets = h.buckets.iter().enumerate().map(|(i, (_, count))| {
                            (Part::Bucket(u16::try_from(i).unwrap_or(u16::MAX)), *count)
                        });
                        let parts = buckets.chain([(Part::Sum, h.sum), (Part::Count, h.count)]);
                        let mut key = Some(first);
                        for (part, v) in parts {
                            let at = match key.take() {
                                Some(first) => first,
                                None => keys.next()?,
                            };
                            (at.part == part).then(|| values.push(v))?;
                        }
                    }
                }
            }
        }
        keys.next().is_none().then_some(values)
    }

    fn push(&mut self, key: SeriesKey, value: f64, values: &mut Vec<f64>) {
        self.keys.push(key);
        values.push(value);
    }

    /// Sorts `order` once every key is in.
    fn sort(mut self) -> Layout {
        let keys = &self.keys;
        self.order = (0..u32::try_from(keys.len()).unwrap_or(u32::MAX)).collect();
        self.order
            .sort_by(|a, b| keys[*a as usize].cmp(&keys[*b as usize]));
        self
    }

    /// Where `key` is among the keys.
    fn position(&self, key: &SeriesKey) -> Option<usize> {
        let found = self
            .order
            .binary_search_by(|i| self.keys[*i as usize].cmp(key))
            .ok()?;
        self.order.get(found).map(|i| *i as usize)
    }

    /// The keys, in order.
    pub fn keys(&self) -> &[SeriesKey] {
        &self.keys
    }

    /// The bucket upper bounds of histogram `signal` for `model`, in order.
    pub fn bounds(&self, signal: &'static str, model: &str) -> Option<&[f64]> {
        let at = *self.bounds.get(&(signal, model.to_string()))?;
        self.histogram_bounds.get(at).map(Vec::as_slice)
    }
}

/// One past scrape, decoded.
#[derive(Debug, Clone)]
pub struct Point {
    /// Unix seconds.
    pub at: f64,
    layout: Arc<Layout>,
    values: Vec<f64>,
}

impl Point {
    /// The value of `key` at this point.
    pub fn get(&self, key: &SeriesKey) -> Option<f64> {
        let i = self.layout.position(key)?;
        self.values.get(i).copied()
    }

    /// The layout of this point.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
}

/// A stored point: its time, its layout, and how many bytes of the target's byte ring hold
/// its numbers, encoded against the previous point's (or zeros after a layout change).
#[derive(Debug)]
struct Stored {
    at: f64,
    layout: Arc<Layout>,
    len: u32,
}

/// Bytes a stored point costs besides its encoded numbers.
const STORED_OVERHEAD: usize = std::mem::size_of::<Stored>();

/// Each number's bits XOR the previous number's: a header byte (0 when equal; else
/// `0x40 | leading zero bytes << 3 | trailing zero bytes`) and the bytes between.
fn xor_encode(values: &[f64], previous: &[f64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * 2);
    for (v, p) in values.iter().zip(previous) {
        let x = v.to_bits() ^ p.to_bits();
        if x == 0 {
            out.push(0);
            continue;
        }
        let lead = (x.leading_zeros() / 8) as usize;
        let trail = (x.trailing_zeros() / 8) as usize;
        out.push(0x40 | (lead as u8) << 3 | trail as u8);
        out.extend_from_slice(&x.to_be_bytes()[lead..8 - trail]);
    }
    out
}

fn xor_decode(bytes: &[u8], previous: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(previous.len());
    let mut i = 0;
    for p in previous {
        let Some(&header) = bytes.get(i) else { break };
        i += 1;
        let mut x = 0u64;
        if header != 0 {
            let lead = usize::from(header >> 3 & 7);
            let trail = usize::from(header & 7);
            let mut be = [0u8; 8];
            let n = 8usize.saturating_sub(lead + trail);
            if let (Some(dst), Some(src)) = (be.get_mut(lead..lead + n), bytes.get(i..i + n)) {
                dst.copy_from_slice(src);
            }
            i += n;
            x = u64::from_be_bytes(be);
        }
        out.push(f64::from_bits(p.to_bits() ^ x));
    }
    out
}

/// The history of one target: the points in order, and all their encoded numbers in one
/// byte ring (no allocation per point, so a long-running fleet does not fragment memory).
/// Each point's numbers are the XOR of its bits with the previous point's, so unchanged
/// numbers take one byte; `anchor` holds the numbers of the point before the oldest kept.
#[derive(Debug, Default)]
pub struct History {
    points: VecDeque<Stored>,
    bytes: VecDeque<u8>,
    anchor: Vec<f64>,
    anchor_layout: Option<Arc<Layout>>,
    /// The newest point's numbers, to encode the next against.
    newest: Vec<f64>,
    /// The overview's sums per time step, kept as points arrive.
    rollup: super::rollup::Rollup,
}

/// The numbers a point is encoded against: the previous point's when the layout is the
/// same, else zeros.
fn base<'a>(
    previous: &'a [f64],
    same_layout: bool,
    len: usize,
    zeros: &'a mut Vec<f64>,
) -> &'a [f64] {
    if same_layout && previous.len() == len {
        previous
    } else {
        zeros.clear();
        zeros.resize(len, 0.0);
        zeros
    }
}

impl History {
    /// Appends a scrape taken at `at` (Unix seconds), keeping at most `capacity` points.
    pub fn push(&mut self, at: f64, readings: &[Reading], capacity: usize) {
        let reused = self.points.back().and_then(|last| {
            let values = last.layout.values_if_same(readings)?;
            Some((last.layout.clone(), values))
        });
        let (layout, values, same) = match reused {
            Some((layout, values)) => (layout, values, true),
            None => {
                let (layout, values) = Layout::of(readings);
                (Arc::new(layout), values, false)
            }
        };
        let mut zeros = Vec::new();
        let encoded = xor_encode(&values, base(&self.newest, same, values.len(), &mut zeros));
        self.bytes.extend(&encoded);
        self.rollup.push(at, &layout, &values);
        self.points.push_back(Stored {
            at,
            layout,
            len: u32::try_from(encoded.len()).unwrap_or(u32::MAX),
        });
        self.newest = values;
        while self.points.len() > capacity.max(1) {
            self.evict_oldest();
        }
    }

    /// Drops the oldest point, folding its numbers into the anchor.
    fn evict_oldest(&mut self) {
        let Some(oldest) = self.points.pop_front() else {
            return;
        };
        let len = oldest.len as usize;
        let encoded: Vec<u8> = self.bytes.drain(..len.min(self.bytes.len())).collect();
        let same = self
            .anchor_layout
            .as_ref()
            .is_some_and(|l| Arc::ptr_eq(l, &oldest.layout));
        let mut zeros = Vec::new();
        let count = oldest.layout.keys.len();
        self.anchor = xor_decode(&encoded, base(&self.anchor, same, count, &mut zeros));
        self.anchor_layout = Some(oldest.layout);
    }

    /// The points no older than `since` (Unix seconds), decoded, oldest first.
    pub fn window(&self, since: f64) -> Vec<Point> {
        let mut previous = self.anchor.clone();
        let mut previous_layout = self.anchor_layout.clone();
        let mut offset = 0;
        let mut out = Vec::new();
        let mut zeros = Vec::new();
        for stored in &self.points {
            let len = stored.len as usize;
            let encoded: Vec<u8> = self.bytes.range(offset..offset + len).copied().collect();
            offset += len;
            let same = previous_layout
                .as_ref()
                .is_some_and(|l| Arc::ptr_eq(l, &stored.layout));
            let count = stored.layout.keys.len();
            let values = xor_decode(&encoded, base(&previous, same, count, &mut zeros));
            if stored.at >= since {
                out.push(Point {
                    at: stored.at,
                    layout: stored.layout.clone(),
                    values: values.clone(),
                });
            }
            previous = values;
            previous_layout = Some(stored.layout.clone());
        }
        out
    }

    /// The overview's sums per time step.
    pub fn rollup(&self) -> &super::rollup::Rollup {
        &self.rollup
    }

    /// Number of points kept.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether no point is kept.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Bytes held by the points (layouts are shared and not counted).
    pub fn bytes(&self) -> usize {
        self.bytes.len() + self.points.len() * STORED_OVERHEAD
    }

    /// Bytes of the most recent point, to size the ring.
    pub fn last_point_bytes(&self) -> Option<usize> {
        self.points.back().map(|p| p.len as usize + STORED_OVERHEAD)
    }
}

/// The increase of a counter over the points, PromQL-style: a drop is a reset, after which the
/// new value counts from zero. `None` with fewer than two points holding the series.
pub fn increase<'p>(points: impl Iterator<Item = &'p Point>, key: &SeriesKey) -> Option<f64> {
    let mut previous: Option<f64> = None;
    let mut total = 0.0;
    let mut pairs = 0;
    for value in points.filter_map(|p| p.get(key)) {
        if let Some(prev) = previous {
            total += if value >= prev { value - prev } else { value };
            pairs += 1;
        }
        previous = Some(value);
    }
    (pairs > 0).then_some(total)
}

/// Per-second rate of a counter over the points: increase over the time they span.
pub fn rate(points: &[&Point], key: &SeriesKey) -> Option<f64> {
    let holding: Vec<&Point> = points
        .iter()
        .copied()
        .filter(|p| p.get(key).is_some())
        .collect();
    let (first, last) = (holding.first()?, holding.last()?);
    let span = last.at - first.at;
    if span <= 0.0 {
        return None;
    }
    Some(increase(holding.iter().copied(), key)? / span)
}

/// A quantile read from histogram buckets: a value interpolated inside a bucket with a known
/// lower bound, or only a bound where the buckets cannot say more. Interpolating inside the
/// first bucket would assume observations spread evenly from zero (vLLM's e2e buckets start
/// at 0.3 s, so a 67 ms median would read 0.15 s), and past the last finite bound there is
/// nothing to interpolate: both come back as bounds, never as made-up values. Serialised as
/// a number, `{"at_most": B}` or `{"above": B}`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Quantile {
    /// Interpolated between two bucket bounds.
    Value(f64),
    /// In the first bucket: at most its upper bound.
    AtMost {
        /// The first bucket's upper bound.
        at_most: f64,
    },
    /// In the `+Inf` bucket: above the highest finite bound.
    Above {
        /// The highest finite bound.
        above: f64,
    },
}

impl Quantile {
    /// A short text for tables: the value, `≤B` or `>B`, scaled by `scale` (e.g. 1e3 for
    /// milliseconds) with `decimals` places.
    pub fn display(self, scale: f64, decimals: usize) -> String {
        match self {
            Quantile::Value(v) => format!("{:.decimals$}", v * scale),
            Quantile::AtMost { at_most } => format!("≤{:.decimals$}", at_most * scale),
            Quantile::Above { above } => format!(">{:.decimals$}", above * scale),
        }
    }
}

/// `histogram_quantile(q, increase(buckets))` over the points for one histogram series
/// (`key` with any part): bucket increases, then the bucket holding the rank. `None` when
/// nothing was observed in the window.
pub fn quantile(points: &[&Point], key: &SeriesKey, q: f64) -> Option<Quantile> {
    let last = points.last()?;
    let bounds = last.layout.bounds(key.signal, &key.model)?;
    let mut cumulative = Vec::with_capacity(bounds.len());
    for (i, le) in bounds.iter().enumerate() {
        let bucket = SeriesKey {
            part: Part::Bucket(u16::try_from(i).ok()?),
            ..key.clone()
        };
        cumulative.push((*le, increase(points.iter().copied(), &bucket)?));
    }
    bucket_quantile(q, &cumulative)
}

/// The quantile `q` of `(upper bound, cumulative count)` pairs ending in `+Inf`: interpolated
/// linearly inside the bucket holding the rank, as PromQL does, except in the first bucket
/// and in `+Inf`, which give bounds (see [`Quantile`]).
pub fn bucket_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<Quantile> {
    let &(last_le, total) = buckets.last()?;
    if !(0.0..=1.0).contains(&q) || total <= 0.0 || last_le != f64::INFINITY {
        return None;
    }
    let rank = q * total;
    let i = buckets.iter().position(|(_, c)| *c >= rank)?;
    if i == buckets.len() - 1 {
        let above = buckets.len().checked_sub(2).map(|j| buckets[j].0)?;
        return Some(Quantile::Above { above });
    }
    let (upper, count) = buckets[i];
    if i == 0 {
        return Some(Quantile::AtMost { at_most: upper });
    }
    let (lower, below) = buckets[i - 1];
    if count == below {
        return Some(Quantile::Value(upper));
    }
    Some(Quantile::Value(
        lower + (upper - lower) * (rank - below) / (count - below),
    ))
}

/// PromQL's `histogram_quantile` on `(upper bound, cumulative count)` pairs ending in `+Inf`:
/// the number Prometheus gives, first bucket interpolated from zero included. For showing
/// people, [`bucket_quantile`] says where that number is only a bound.
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    Some(match bucket_quantile(q, buckets)? {
        Quantile::Value(v) | Quantile::Above { above: v } => v,
        Quantile::AtMost { at_most } => {
            // PromQL interpolates the first bucket from zero when its bound is positive.
            let (total, first) = (buckets.last()?.1, buckets.first()?.1);
            if at_most > 0.0 && first > 0.0 {
                at_most * q * total / first
            } else {
                at_most
            }
        }
    })
}

#[cfg(test)]
pub(crate) mod tests;
