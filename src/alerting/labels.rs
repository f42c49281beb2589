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

/// FNV-1a over `bytes`: a fingerprint, cheap to compute.
pub fn fingerprint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

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
    /// The target they were built from: a reconfigured target is a new `Arc`.
    target: Arc<Target>,
    labels: Labels,
    identified: Identified,
    /// By model and engine, with the round that last used them.
    models: HashMap<(String, Option<&'static str>), (Identified, u64)>,
    round: u64,
}

/// Labels by target name, kept while the targets and models are.
#[derive(Debug, Default)]
pub struct LabelCache {
    targets: HashMap<String, Cached>,
    round: u64,
}

impl Cached {
    fn of(status: &TargetStatus) -> Cached {
        let mut labels: Labels = status.target.labels.clone().into_iter().collect();
        labels.insert("instance".into(), status.target.name.clone());
        Cached {
            target: status.target.clone(),
            identified: identified(labels.clone()),
            labels,
            models: HashMap::new(),
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
            t.models.retain(|_, (_, used)| *used == round);
            t.round == round
        });
    }

    /// The labels of `status`'s target and of its models.
    pub fn target(&mut self, status: &TargetStatus) -> TargetLabels<'_> {
        let cached = self
            .targets
            .entry(status.target.name.clone())
            .or_insert_with(|| Cached::of(status));
        if !Arc::ptr_eq(&cached.target, &status.target) {
            *cached = Cached::of(status);
        }
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
        let key = (model.to_string(), engine);
        if let Some((identified, used)) = self.cached.models.get_mut(&key) {
            *used = self.round;
            return identified.clone();
        }
        let mut labels = self.cached.labels.clone();
        labels.insert("model".into(), model.to_string());
        if let Some(engine) = engine {
            labels.insert("engine".into(), engine.to_string());
        }
        let identified = identified(labels);
        self.cached
            .models
            .insert(key, (identified.clone(), self.round));
        identified
    }
}
