//! The labels of alert series, built once and kept between rounds: a target's (its name as
//! `instance` and its static labels) and each of its models' (plus `model` and `engine`),
//! each shared and with its fingerprint. Building and hashing label maps for every series of
//! every round was a fifth of a round's time at 1,000 targets.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::collect::state::TargetStatus;
use crate::collect::targets::Target;

/// Labels of an alert's series.
pub type Labels = BTreeMap<String, String>;

/// Shared labels and the hash that names their series across rounds.
pub type Identified = (Arc<Labels>, u64);

/// A fingerprint of `bytes`: FNV-1a, cheap to compute.
pub use crate::rng::fnv1a as fingerprint;

/// Shared labels and their fingerprint (names and values separated by bytes no UTF-8 text
/// holds).
pub fn identified(labels: Labels) -> Identified {
    let mut bytes = Vec::with_capacity(128);
    for (k, v) in &labels {
        bytes.extend_from_slice(k.as_bytes());
        bytes.push(0xff);
        bytes.extend_from_slice(v.as_bytes());
        bytes.push(0xfe);
    }
    (Arc::new(labels), fingerprint(&bytes))
}

/// One target's labels and its models'.
#[derive(Debug)]
struct Cached {
    /// The target they were built from, held so its address stays its own.
    _target: Arc<Target>,
    labels: Labels,
    identified: Identified,
    /// By model and engine, with the round that last used them (a target serves one model
    /// or a few: a list, not a map).
    models: Vec<CachedModel>,
    round: u64,
}

#[derive(Debug)]
struct CachedModel {
    model: String,
    engine: Option<&'static str>,
    identified: Identified,
    used: u64,
}

/// Labels by target, kept while the targets and models are. Keyed by the target's address:
/// the entry holds the `Arc`, so no other target can take that address while it is kept, and
/// a reconfigured target (a new `Arc`) gets a new entry.
#[derive(Debug, Default)]
pub struct LabelCache {
    targets: HashMap<usize, Cached>,
    round: u64,
}

impl Cached {
    fn of(status: &TargetStatus) -> Cached {
        let mut labels: Labels = status.target.labels.clone().into_iter().collect();
        labels.insert("instance".into(), status.target.name.clone());
        Cached {
            _target: status.target.clone(),
            identified: identified(labels.clone()),
            labels,
            models: Vec::new(),
            round: 0,
        }
    }
}

impl LabelCache {
    /// Starts a round.
    pub fn begin(&mut self) {
        self.round += 1;
    }

    /// Forgets the targets and models the round did not ask for.
    pub fn end(&mut self) {
        let round = self.round;
        self.targets.retain(|_, t| {
            t.models.retain(|m| m.used == round);
            t.round == round
        });
    }

    /// The labels of `status`'s target and of its models.
    pub fn target(&mut self, status: &TargetStatus) -> TargetLabels<'_> {
        let cached = self
            .targets
            .entry(Arc::as_ptr(&status.target) as usize)
            .or_insert_with(|| Cached::of(status));
        cached.round = self.round;
        TargetLabels {
            cached,
            round: self.round,
        }
    }
}

/// One target's labels, for this round.
#[derive(Debug)]
pub struct TargetLabels<'c> {
    cached: &'c mut Cached,
    round: u64,
}

impl TargetLabels<'_> {
    /// The target's own labels.
    pub fn identified(&self) -> Identified {
        self.cached.identified.clone()
    }

    /// The labels of one of its models, served by `engine`.
    pub fn model(&mut self, model: &str, engine: Option<&'static str>) -> Identified {
        if let Some(cached) = self
            .cached
            .models
            .iter_mut()
            .find(|m| m.engine == engine && m.model == model)
        {
            cached.used = self.round;
            return cached.identified.clone();
        }
        let mut labels = self.cached.labels.clone();
        labels.insert("model".into(), model.to_string());
        if let Some(engine) = engine {
            labels.insert("engine".into(), engine.to_string());
        }
        let identified = identified(labels);
        self.cached.models.push(CachedModel {
            model: model.to_string(),
            engine,
            identified: identified.clone(),
            used: self.round,
        });
        identified
    }
}
