//! Alerts evaluated inside `up`: the same alerts `llmwatch export` writes as Prometheus rules
//! (`crate::catalog::alerts`), evaluated over `up`'s state on a fixed interval, with
//! Prometheus's states — inactive, pending while the condition has held for less than the
//! alert's `for`, firing after, and resolved when it stops (kept 15 minutes, as Prometheus
//! keeps sending resolved alerts). A series whose data does not reach back over the alert's
//! window is listed as "not enough data", never as fine.
//!
//! Served as `/api/v1/alerts` (Prometheus's shape) and as `llmwatch_alerts` on `/metrics`.
//! Differences from Prometheus, documented in docs/alerts.md: series are per target and model
//! (with `instance`), not summed per service; windows reach back at most 1 h.

pub mod deliver;
pub mod eval;
mod gpu;
mod labels;
pub mod template;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::Arc;

use serde_json::{Value as Json, json};

use crate::catalog::alerts::Slo;
use crate::catalog::alerts::{ALERTS, Alert};
use crate::collect::state::Store;
use eval::{Labels, Verdict};

/// How long a resolved alert is kept (and would be sent again).
const RESOLVED_KEPT: f64 = 900.0;

/// Keys that are fingerprints already: hashed as they are.
type Fingerprinted = std::hash::BuildHasherDefault<PassThrough>;

/// A hasher for `u64` fingerprints, which are hashes already.
#[derive(Debug, Default)]
pub struct PassThrough(u64);

impl std::hash::Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = eval::fingerprint(bytes) ^ self.0.rotate_left(5);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Where an alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// True for less than its `for`.
    Pending,
    /// True for at least its `for`.
    Firing,
    /// It was firing and is not true any more.
    Resolved,
}

impl State {
    /// The word Prometheus uses.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Firing => "firing",
            State::Resolved => "resolved",
        }
    }
}

/// One alert of one series, active or recently resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Active {
    /// The alert.
    pub alert: &'static Alert,
    /// The alert's name.
    pub name: &'static str,
    /// The series' labels (without `alertname` and `severity`, see [`Active::labels`]).
    pub series: Arc<Labels>,
    /// Where it stands.
    pub state: State,
    /// When the condition became true (Unix seconds).
    pub active_at: f64,
    /// When it fired.
    pub fired_at: Option<f64>,
    /// When it resolved.
    pub resolved_at: Option<f64>,
    /// The condition's latest value.
    pub value: f64,
    /// When it was last sent to an Alertmanager or webhook.
    pub sent_at: Option<f64>,
    /// Its state when last sent.
    pub sent_state: Option<State>,
    /// The round that last found the condition true.
    round: u64,
}

impl Active {
    /// The alert's labels: the series' with `alertname` and `severity`.
    pub fn labels(&self) -> Labels {
        let mut labels = (*self.series).clone();
        labels.insert("alertname".into(), self.name.into());
        labels.insert("severity".into(), self.alert.severity.as_str().into());
        labels
    }

    /// `summary`, `description` (rendered with the labels and value) and `runbook_url`.
    pub fn annotations(&self, settings: &Settings) -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            ("summary", self.alert.summary.to_string()),
            (
                "description",
                template::render(
                    &self.alert.description(&settings.slo),
                    &self.labels(),
                    self.value,
                ),
            ),
            (
                "runbook_url",
                format!("{}#{}", settings.runbook_base, self.name.to_lowercase()),
            ),
        ])
    }
}

/// A series the alert could not judge, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Unjudged {
    /// The alert's name.
    pub name: &'static str,
    /// The series' labels.
    pub labels: Arc<Labels>,
    /// Why.
    pub reason: eval::Shortfall,
}

/// Every alert's state after the latest round.
#[derive(Debug, Default)]
pub struct Alerts {
    /// By alert and series fingerprint.
    active: HashMap<u64, Active, Fingerprinted>,
    unjudged: Vec<Unjudged>,
    evaluated_at: Option<f64>,
    settings: Settings,
    /// Series labels kept between rounds.
    labels: labels::LabelCache,
    /// GPU scrapes of earlier rounds, for the GPU alerts' windows.
    gpus: gpu::GpuHistory,
    /// Rounds evaluated so far.
    round: u64,
}

/// What the evaluator needs besides the store.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The objectives of the burn-rate alerts.
    pub slo: Slo,
    /// Where the runbook's sections are (`#alertname` is appended).
    pub runbook_base: String,
}

impl Alerts {
    /// No alert yet, evaluated under `settings`.
    pub fn new(settings: Settings) -> Alerts {
        Alerts {
            settings,
            ..Alerts::default()
        }
    }

    /// One round: every alert over `store` at `now`.
    pub fn evaluate(&mut self, store: &Store, now: f64) {
        self.unjudged.clear();
        let all = eval::evaluate(
            &ALERTS,
            store,
            &self.settings.slo,
            now,
            (&mut self.labels, &mut self.gpus),
        );
        self.round += 1;
        for (alert, series) in ALERTS.iter().zip(all) {
            self.update(alert, series, now);
        }
        // Not true any more: a pending alert goes away, a firing one resolves.
        let round = self.round;
        self.active.retain(|_, a| {
            if a.round == round {
                return true;
            }
            match a.state {
                State::Pending => false,
                State::Firing => {
                    a.state = State::Resolved;
                    a.resolved_at = Some(now);
                    true
                }
                State::Resolved => a.resolved_at.is_some_and(|r| now - r < RESOLVED_KEPT),
            }
        });
        self.evaluated_at = Some(now);
    }

    fn update(&mut self, alert: &'static Alert, series: Vec<eval::Series>, now: f64) {
        let for_ = crate::cli::parse_duration(alert.for_).map_or(0.0, |d| d.as_secs_f64());
        let named = eval::fingerprint(alert.name.as_bytes());
        let round = self.round;
        for s in series {
            let value = match s.verdict {
                Verdict::True(v) => v,
                Verdict::False => continue,
                Verdict::NotEnoughData(reason) => {
                    self.unjudged.push(Unjudged {
                        name: alert.name,
                        labels: s.labels,
                        reason,
                    });
                    continue;
                }
            };
            let key = s.fingerprint ^ named;
            let entry = self.active.entry(key).or_insert_with(|| Active {
                alert,
                name: alert.name,
                series: s.labels.clone(),
                state: State::Pending,
                active_at: now,
                fired_at: None,
                resolved_at: None,
                value,
                sent_at: None,
                sent_state: None,
                round,
            });
            entry.round = round;
            if entry.state == State::Resolved {
                // True again: a new activation.
                entry.state = State::Pending;
                entry.active_at = now;
                entry.fired_at = None;
                entry.resolved_at = None;
            }
            entry.value = value;
            if entry.state == State::Pending && now - entry.active_at >= for_ {
                entry.state = State::Firing;
                entry.fired_at = Some(now);
            }
        }
    }

    /// The active and recently resolved alerts.
    pub fn active(&self) -> impl Iterator<Item = &Active> {
        self.active.values()
    }

    /// The pending and firing alerts, by name and series.
    fn listed(&self) -> Vec<&Active> {
        let mut active: Vec<&Active> = self
            .active()
            .filter(|a| a.state != State::Resolved)
            .collect();
        active.sort_by(|a, b| (a.name, &a.series).cmp(&(b.name, &b.series)));
        active
    }

    /// The series no alert could judge, and why.
    pub fn unjudged(&self) -> &[Unjudged] {
        &self.unjudged
    }

    /// `/api/v1/alerts`: Prometheus's shape (pending and firing alerts), with the series that
    /// could not be judged beside them.
    pub fn api(&self) -> Json {
        let alerts: Vec<Json> = self
            .listed()
            .into_iter()
            .map(|a| {
                json!({
                    "labels": a.labels(),
                    "annotations": a.annotations(&self.settings),
                    "state": a.state.as_str(),
                    "activeAt": template::rfc3339(a.active_at),
                    "value": template::api_value(a.value),
                })
            })
            .collect();
        let unjudged: Vec<Json> = self
            .unjudged
            .iter()
            .map(|u| json!({"alertname": u.name, "labels": *u.labels, "reason": u.reason.to_string()}))
            .collect();
        json!({
            "status": "success",
            "data": {
                "alerts": alerts,
                "not_enough_data": unjudged,
                "evaluated_at": self.evaluated_at.map(template::rfc3339),
            }
        })
    }

    /// `llmwatch_alerts{alertname, state, …} 1` for every pending and firing alert.
    pub fn write_metrics(&self, out: &mut String) {
        out.push_str(
            "# HELP llmwatch_alerts Alerts evaluated inside up that are pending or firing, as Prometheus's ALERTS series.\n\
             # TYPE llmwatch_alerts gauge\n",
        );
        for a in self.listed() {
            out.push_str("llmwatch_alerts{");
            for (k, v) in &a.labels() {
                let _ = write!(out, "{k}=\"");
                crate::exposition::write::escape_label_value_into(out, v);
                out.push_str("\",");
            }
            let _ = writeln!(out, "state=\"{}\"}} 1", a.state.as_str());
        }
    }
}

#[cfg(test)]
mod tests;
