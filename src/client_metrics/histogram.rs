//! A histogram for the proxy's hot path. prometheus_client's takes a lock and scans its
//! buckets for each observation; the proxy made 35 observations a request, and half of
//! recording a request went there. Here an observation is an atomic add to its bucket and
//! to the sum, and a request's gaps (a batch) are counted locally first and added with one
//! atomic add per bucket they touch.
//!
//! A scrape reads the buckets one by one, so it may see an observation in its bucket
//! before it sees it in the sum (never the reverse order of magnitude: both are added at
//! once). The count is the buckets' total, so `_count` and the `+Inf` bucket always agree.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Buckets a batch can count locally: bounds beyond this are counted one by one.
const BATCH_BUCKETS: usize = 32;

/// Observations in fixed buckets (`+Inf` implied), shared by its clones.
#[derive(Debug, Clone)]
pub struct Histogram {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Upper bounds, ascending and finite.
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative), `+Inf` last.
    counts: Box<[AtomicU64]>,
    /// The sum of observations, as `f64` bits.
    sum: AtomicU64,
}

impl Histogram {
    /// An empty histogram over `bounds` (ascending, finite).
    pub fn new(bounds: &'static [f64]) -> Histogram {
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Histogram {
            inner: Arc::new(Inner {
                bounds,
                counts,
                sum: AtomicU64::new(0f64.to_bits()),
            }),
        }
    }

    /// The bucket `value` falls in: the first whose bound is at least it (`NaN` in `+Inf`,
    /// as prometheus_client counts it).
    fn bucket(&self, value: f64) -> usize {
        let bounds = self.inner.bounds;
        if value.is_nan() {
            return bounds.len();
        }
        bounds.partition_point(|bound| *bound < value)
    }

    /// Adds one observation.
    pub fn observe(&self, value: f64) {
        if let Some(count) = self.inner.counts.get(self.bucket(value)) {
            count.fetch_add(1, Relaxed);
        }
        self.add_to_sum(value);
    }

    /// Adds every value of `values`: one atomic add per bucket they touch, and one to the
    /// sum.
    pub fn observe_all(&self, values: impl IntoIterator<Item = f64>) {
        if self.inner.counts.len() > BATCH_BUCKETS {
            values.into_iter().for_each(|value| self.observe(value));
            return;
        }
        let (mut local, mut sum) = ([0u64; BATCH_BUCKETS], 0.0);
        for value in values {
            if let Some(n) = local.get_mut(self.bucket(value)) {
                *n += 1;
            }
            sum += value;
        }
        for (count, n) in self.inner.counts.iter().zip(local) {
            if n > 0 {
                count.fetch_add(n, Relaxed);
            }
        }
        self.add_to_sum(sum);
    }

    fn add_to_sum(&self, value: f64) {
        // An `f64` add as a compare-and-swap on its bits; it fails only under a race.
        let _ = self.inner.sum.fetch_update(Relaxed, Relaxed, |bits| {
            Some((f64::from_bits(bits) + value).to_bits())
        });
    }

    /// The sum, and `(upper bound, observations)` per bucket (not cumulative, `+Inf` last).
    pub fn snapshot(&self) -> (f64, Vec<(f64, u64)>) {
        let bounds = self.inner.bounds.iter().copied().chain([f64::INFINITY]);
        let buckets = bounds
            .zip(self.inner.counts.iter())
            .map(|(bound, count)| (bound, count.load(Relaxed)))
            .collect();
        (f64::from_bits(self.inner.sum.load(Relaxed)), buckets)
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (sum, buckets) = self.snapshot();
        let count = buckets.iter().map(|(_, n)| n).sum();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;
    use prometheus_client::registry::Registry;

    use super::Histogram;

    const BOUNDS: [f64; 3] = [0.1, 0.5, 1.0];

    /// The text both histograms render after the same observations.
    fn rendered(
        observe: impl FnOnce(&Histogram, &prometheus_client::metrics::histogram::Histogram),
    ) -> (String, String) {
        let (ours, theirs) = (
            Histogram::new(&BOUNDS),
            prometheus_client::metrics::histogram::Histogram::new(BOUNDS),
        );
        observe(&ours, &theirs);
        let text = |register: &dyn Fn(&mut Registry)| {
            let mut registry = Registry::default();
            register(&mut registry);
            let mut out = String::new();
            encode(&mut out, &registry).unwrap();
            out
        };
        (
            text(&|r| r.register("h", "help", ours.clone())),
            text(&|r| r.register("h", "help", theirs.clone())),
        )
    }

    #[test]
    fn it_renders_as_the_library_histogram_renders_the_same_observations() {
        let values = [0.05, 0.1, 0.3, 0.5, 0.9, 2.0, f64::NAN, -1.0, 1.0];
        let (ours, theirs) = rendered(|ours, theirs| {
            for v in values {
                ours.observe(v);
                theirs.observe(v);
            }
        });
        assert_eq!(ours, theirs);
        assert!(ours.contains("h_bucket{le=\"+Inf\"} 9"), "{ours}");
    }

    #[test]
    fn a_batch_counts_as_its_values_one_by_one() {
        let values = [0.05, 0.2, 0.2, 0.7, 3.0, 0.1];
        let (ours, theirs) = rendered(|ours, theirs| {
            ours.observe_all(values);
            values.iter().for_each(|v| theirs.observe(*v));
        });
        assert_eq!(ours, theirs);
        let (sum, buckets) = Histogram::new(&BOUNDS).snapshot();
        assert_eq!((sum, buckets.len()), (0.0, 4));
    }
}
