//! Sending alerts out, as Prometheus does: firing alerts to an Alertmanager's v2 API
//! (`POST /api/v2/alerts`, a JSON list of `labels`, `annotations`, `startsAt`, `endsAt`) when
//! they fire and again every minute while they fire, with `endsAt` four resends ahead so the
//! Alertmanager resolves them by itself if `up` goes away; resolved alerts with `endsAt` at
//! their resolution, for the 15 minutes they are kept. A plain webhook gets the same list as
//! `{"alerts": [...]}`. A failed delivery is logged and counted, and tried again next round.

use serde_json::{Value as Json, json};

use super::template::rfc3339;
use super::{Active, Alerts, Settings, State};

/// Time between two sends of an alert that keeps firing.
pub const RESEND: f64 = 60.0;

/// An alert as the Alertmanager v2 API takes it.
fn payload(alert: &Active, settings: &Settings, now: f64, base_url: &str) -> Json {
    let ends = match (alert.state, alert.resolved_at) {
        (State::Resolved, Some(at)) => at,
        _ => now + 4.0 * RESEND,
    };
    json!({
        "labels": alert.labels(),
        "annotations": alert.annotations(settings),
        "startsAt": rfc3339(alert.fired_at.unwrap_or(alert.active_at)),
        "endsAt": rfc3339(ends),
        "generatorURL": format!("{base_url}/api/v1/alerts"),
    })
}

impl Alerts {
    /// The alerts due to be sent at `now`: firing ones not sent in the last minute (or whose
    /// state changed since), and resolved ones not yet sent as resolved or due again; marks
    /// them sent (see [`Alerts::unsent`] when the send fails).
    pub fn due(&mut self, now: f64, base_url: &str) -> (Vec<Sent>, Vec<Json>) {
        let (mut keys, mut out) = (Vec::new(), Vec::new());
        let settings = &self.settings;
        for (key, alert) in &mut self.active {
            if alert.state == State::Pending {
                continue;
            }
            let changed = alert.sent_state != Some(alert.state);
            let stale = alert.sent_at.is_none_or(|at| now - at >= RESEND);
            if changed || stale {
                out.push(payload(alert, settings, now, base_url));
                keys.push(*key);
                alert.sent_at = Some(now);
                alert.sent_state = Some(alert.state);
            }
        }
        (keys, out)
    }

    /// Marks `sent` as not sent, so the next round tries again.
    pub fn unsent(&mut self, sent: &[Sent]) {
        for key in sent {
            if let Some(alert) = self.active.get_mut(key) {
                alert.sent_at = None;
                alert.sent_state = None;
            }
        }
    }
}

/// Which alert a send carried: the fingerprint of its name and series.
pub type Sent = u64;

/// Why a delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// No answer.
    #[error("{url}: {reason}")]
    Unreachable {
        /// Where to.
        url: String,
        /// The client's error.
        reason: String,
    },
    /// An answer other than 2xx.
    #[error("{url}: HTTP {status}")]
    Refused {
        /// Where to.
        url: String,
        /// Its status.
        status: u16,
    },
}

/// Posts `body` to `url`.
pub async fn post(client: &reqwest::Client, url: &str, body: &Json) -> Result<(), DeliveryError> {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .timeout(std::time::Duration::from_secs(10))
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| DeliveryError::Unreachable {
            url: url.to_string(),
            reason: crate::collect::fetch::flatten_error(&e),
        })?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(DeliveryError::Refused {
            url: url.to_string(),
            status: response.status().as_u16(),
        })
    }
}

/// Sends `due` to the Alertmanager (its base URL) and the webhook, whichever are set.
pub async fn send(
    client: &reqwest::Client,
    (alertmanager, webhook): (Option<&str>, Option<&str>),
    due: Vec<Json>,
) -> Vec<DeliveryError> {
    let mut errors = Vec::new();
    if due.is_empty() {
        return errors;
    }
    if let Some(base) = alertmanager {
        let url = format!("{}/api/v2/alerts", base.trim_end_matches('/'));
        if let Err(e) = post(client, &url, &Json::Array(due.clone())).await {
            errors.push(e);
        }
    }
    if let Some(url) = webhook
        && let Err(e) = post(client, url, &json!({ "alerts": due })).await
    {
        errors.push(e);
    }
    errors
}
