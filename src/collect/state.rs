//! The collector's state: for each target, the status of its latest scrape, the last good
//! scrape (kept when later ones fail), and its history. Scrapers publish; the HTTP handlers
//! read. Every lock is held only to swap an `Arc` or push one point, never while rendering.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::history::History;
use super::integrity::{Problem, Seen, merge};
use super::samples::SampleCounts;
use super::targets::Target;
use crate::config::HistoryConfig;
use crate::engines::{Engine, Reading};

/// A good scrape, normalised.
#[derive(Debug, Clone)]
pub struct Scraped {
    /// Unix seconds when the scrape started.
    pub at: f64,
    /// Engine, when recognised.
    pub engine: Option<Engine>,
    /// Exact version from the info endpoint, else the fingerprinted range.
    pub version: String,
    /// Samples in the body.
    pub samples: usize,
    /// Canonical signals.
    pub readings: Vec<Reading>,
    /// The body as served, kept only for targets whose raw series are re-exported.
    pub raw: Option<Arc<str>>,
    /// What the integrity checks found in this scrape.
    pub problems: Vec<Problem>,
    /// A GPU exporter's numbers, when the target is one rather than an engine.
    pub gpu: Option<Arc<crate::gpu::GpuScrape>>,
    /// CPU and memory of the engine's processes, when it runs on this machine.
    pub process: Option<crate::gpu::procfs::Usage>,
}

/// Whether the latest scrape worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Not scraped yet.
    Unknown,
    /// The latest scrape worked.
    Up,
    /// The latest scrape failed.
    Down,
}

/// A failed scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// A short, fixed reason (the `reason` label of the failure counter).
    pub reason: &'static str,
    /// The full message.
    pub message: String,
}

/// Everything known about one target, replaced as a whole after each scrape.
#[derive(Debug, Clone)]
pub struct TargetStatus {
    /// The target.
    pub target: Arc<Target>,
    /// Latest scrape's health.
    pub health: Health,
    /// Unix seconds of the latest attempt.
    pub last_attempt: Option<f64>,
    /// How long the latest attempt took, in seconds.
    pub last_duration: Option<f64>,
    /// Why the latest attempt failed, when it did.
    pub last_error: Option<Failure>,
    /// The last good scrape, kept through failures.
    pub last_good: Option<Arc<Scraped>>,
    /// Integrity problems seen in its scrapes so far.
    pub integrity: Arc<Vec<Seen>>,
}

impl TargetStatus {
    /// Whether its last good scrape was a GPU exporter's (GPUs, not a model server). A
    /// target never scraped successfully counts as a server.
    pub fn is_gpu_exporter(&self) -> bool {
        self.last_good.as_ref().is_some_and(|g| g.gpu.is_some())
    }
}

/// One target's status, with its history and sample counts at hand.
pub struct TargetState {
    /// The status when the state was taken.
    pub status: Arc<TargetStatus>,
    slot: Arc<Slot>,
}

impl TargetState {
    /// Runs `f` on the target's history.
    pub fn with_history<R>(&self, f: impl FnOnce(&History) -> R) -> R {
        locked(&self.slot.history, |h| f(h))
    }

    /// Runs `f` on the target's sample counts.
    pub fn with_sample_counts<R>(&self, f: impl FnOnce(&SampleCounts) -> R) -> R {
        locked(&self.slot.samples, |c| f(c))
    }
}

struct Slot {
    status: Mutex<Arc<TargetStatus>>,
    history: Mutex<History>,
    samples: Mutex<SampleCounts>,
}

/// All targets' state.
pub struct Store {
    slots: RwLock<BTreeMap<String, Arc<Slot>>>,
    history: HistoryConfig,
    /// Points and bytes held by all histories, kept up to date on every change.
    history_points: AtomicUsize,
    history_bytes: AtomicUsize,
}

/// Runs `f` on a locked value; a poisoned lock still holds a consistent value here (every
/// update is an assignment or a push), so it is used rather than propagated.
fn locked<T, R>(m: &Mutex<T>, f: impl FnOnce(&mut T) -> R) -> R {
    f(&mut m.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
}

impl Store {
    /// An empty store.
    pub fn new(history: HistoryConfig) -> Store {
        Store {
            slots: RwLock::new(BTreeMap::new()),
            history,
            history_points: AtomicUsize::new(0),
            history_bytes: AtomicUsize::new(0),
        }
    }

    fn slots(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Slot>>> {
        self.slots
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes the target set `targets`: new ones start unknown, removed ones are forgotten,
    /// changed ones keep their state. Returns the names added and removed.
    pub fn set_targets(&self, targets: &[Arc<Target>]) -> (Vec<String>, Vec<String>) {
        let mut slots = self
            .slots
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let removed: Vec<String> = slots
            .keys()
            .filter(|name| !targets.iter().any(|t| &t.name == *name))
            .cloned()
            .collect();
        for name in &removed {
            if let Some(slot) = slots.remove(name) {
                let (points, bytes) = locked(&slot.history, |h| (h.len(), h.bytes()));
                self.history_points.fetch_sub(points, Ordering::Relaxed);
                self.history_bytes.fetch_sub(bytes, Ordering::Relaxed);
            }
        }
        let mut added = Vec::new();
        for target in targets {
            match slots.get(&target.name) {
                Some(slot) => locked(&slot.status, |s| {
                    if *s.target != **target {
                        let mut status = (**s).clone();
                        status.target = target.clone();
                        *s = Arc::new(status);
                    }
                }),
                None => {
                    added.push(target.name.clone());
                    let status = TargetStatus {
                        target: target.clone(),
                        health: Health::Unknown,
                        last_attempt: None,
                        last_duration: None,
                        last_error: None,
                        last_good: None,
                        integrity: Arc::default(),
                    };
                    slots.insert(
                        target.name.clone(),
                        Arc::new(Slot {
                            status: Mutex::new(Arc::new(status)),
                            history: Mutex::new(History::default()),
                            samples: Mutex::new(SampleCounts::default()),
                        }),
                    );
                }
            }
        }
        (added, removed)
    }

    /// Records a good scrape and appends it to the target's history.
    pub fn record_success(&self, name: &str, scraped: Scraped, duration: f64) {
        let (targets, slot) = {
            let slots = self.slots();
            (slots.len().max(1), slots.get(name).cloned())
        };
        let Some(slot) = slot else {
            return;
        };
        let at = scraped.at;
        let interval = locked(&slot.status, |s| s.target.interval);
        locked(&slot.history, |h| {
            let (points, bytes) = (h.len(), h.bytes());
            let per_point = h.last_point_bytes().unwrap_or(0);
            let capacity = self.capacity(interval, per_point, targets);
            h.push(at, &scraped.readings, capacity);
            // Under the history lock, so the totals never count a point twice.
            self.history_points.fetch_add(h.len(), Ordering::Relaxed);
            self.history_points.fetch_sub(points, Ordering::Relaxed);
            self.history_bytes.fetch_add(h.bytes(), Ordering::Relaxed);
            self.history_bytes.fetch_sub(bytes, Ordering::Relaxed);
        });
        locked(&slot.samples, |c| c.push(at, scraped.samples));
        let scraped = Arc::new(scraped);
        locked(&slot.status, |s| {
            let mut status = (**s).clone();
            if !scraped.problems.is_empty() {
                let mut seen = (*status.integrity).clone();
                merge(&mut seen, &scraped.problems, at);
                status.integrity = Arc::new(seen);
            }
            status.health = Health::Up;
            status.last_attempt = Some(at);
            status.last_duration = Some(duration);
            status.last_error = None;
            status.last_good = Some(scraped);
            *s = Arc::new(status);
        });
    }

    /// Records a failed scrape; the last good scrape stays.
    pub fn record_failure(&self, name: &str, at: f64, duration: f64, failure: Failure) {
        let Some(slot) = self.slots().get(name).cloned() else {
            return;
        };
        locked(&slot.status, |s| {
            let mut status = (**s).clone();
            status.health = Health::Down;
            status.last_attempt = Some(at);
            status.last_duration = Some(duration);
            status.last_error = Some(failure);
            *s = Arc::new(status);
        });
    }

    /// Points each target may keep: the retention at its interval, or less when the memory
    /// budget split between all targets does not hold that many.
    fn capacity(&self, interval: std::time::Duration, point_bytes: usize, targets: usize) -> usize {
        let by_time = (self.history.retention.as_secs_f64() / interval.as_secs_f64().max(0.001))
            .ceil() as usize;
        let by_memory = match point_bytes {
            0 => usize::MAX,
            bytes => self.history.max_bytes / targets / bytes,
        };
        by_time.min(by_memory).max(2)
    }

    /// The status of every target, by name.
    pub fn statuses(&self) -> Vec<Arc<TargetStatus>> {
        let slots: Vec<Arc<Slot>> = self.slots().values().cloned().collect();
        slots
            .iter()
            .map(|slot| locked(&slot.status, |s| s.clone()))
            .collect()
    }

    /// Every target's state, in name order, each with its slot so its history and sample
    /// counts are read without a lookup by name (a round over 1,000 targets made 2,000).
    pub fn targets(&self) -> Vec<TargetState> {
        let slots: Vec<Arc<Slot>> = self.slots().values().cloned().collect();
        slots
            .into_iter()
            .map(|slot| TargetState {
                status: locked(&slot.status, |s| s.clone()),
                slot,
            })
            .collect()
    }

    /// Runs `f` on the history of target `name`.
    pub fn with_history<R>(&self, name: &str, f: impl FnOnce(&History) -> R) -> Option<R> {
        let slot = self.slots().get(name).cloned()?;
        Some(locked(&slot.history, |h| f(h)))
    }

    /// Runs `f` on the sample counts of target `name`.
    pub fn with_sample_counts<R>(
        &self,
        name: &str,
        f: impl FnOnce(&SampleCounts) -> R,
    ) -> Option<R> {
        let slot = self.slots().get(name).cloned()?;
        Some(locked(&slot.samples, |c| f(c)))
    }

    /// Whether every target has been tried at least once (the readiness condition).
    pub fn all_attempted(&self) -> bool {
        self.statuses().iter().all(|s| s.last_attempt.is_some())
    }

    /// Points held in all histories, and their bytes (layouts, shared, not counted).
    pub fn history_size(&self) -> (usize, usize) {
        (
            self.history_points.load(Ordering::Relaxed),
            self.history_bytes.load(Ordering::Relaxed),
        )
    }
}
