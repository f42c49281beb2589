//! The GPU alerts over `up`'s state: per GPU of every GPU source that is up (throttling, XID
//! errors), and per GPU and model server it serves (memory held outside the KV cache, a GPU
//! idle while requests wait), as the exported rules compute them from `llm:gpu_*` and
//! `llm:gpu_server_info`. The counters' windows are read from the GPU scrapes of earlier
//! rounds, kept here for the longest window.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::eval::{Labels, Series, Shortfall, Verdict, seconds};
use super::labels::identified;
use crate::catalog::alerts::{Alert, Condition};
use crate::collect::gpus::{join, views};
use crate::collect::state::{Health, Store, TargetStatus};
use crate::gpu::{GpuKey, GpuScrape, GpuView};

/// Scrapes kept per GPU source: the longest GPU window at a 1 s interval, and then some.
const KEPT: usize = 1024;

/// The GPU scrapes of earlier rounds, by source, oldest first.
#[derive(Debug, Default)]
pub struct GpuHistory {
    by_source: HashMap<String, VecDeque<(f64, Arc<GpuScrape>)>>,
}

impl GpuHistory {
    /// Adds the latest scrape of every GPU source and forgets what no window reaches.
    fn note(&mut self, statuses: &[Arc<TargetStatus>], now: f64, reach: f64) {
        let mut seen = Vec::new();
        for status in statuses {
            let Some(good) = status.last_good.as_ref() else {
                continue;
            };
            let Some(scrape) = good.gpu.as_ref() else {
                continue;
            };
            let kept = self
                .by_source
                .entry(status.target.name.clone())
                .or_default();
            if kept.back().is_none_or(|(at, _)| *at < good.at) {
                kept.push_back((good.at, scrape.clone()));
            }
            // One scrape older than the window stays, so the window starts covered.
            while kept.len() > KEPT || kept.get(1).is_some_and(|(at, _)| *at < now - reach) {
                kept.pop_front();
            }
            seen.push(status.target.name.as_str());
        }
        self.by_source
            .retain(|name, _| seen.contains(&name.as_str()));
    }

    /// The increase of counter `name` (of `reason`) of GPU `key` of `source` over the last
    /// `window` seconds, and the seconds it spans; a reset counts from zero.
    fn increase(
        &self,
        source: &str,
        key: &GpuKey,
        (name, reason): (&str, Option<&str>),
        (now, window): (f64, f64),
    ) -> Option<(f64, f64)> {
        let kept = self.by_source.get(source)?;
        let value = |scrape: &GpuScrape| {
            let device = scrape.devices.iter().position(|d| &d.key == key)?;
            scrape
                .reading(name)?
                .samples
                .iter()
                .find(|s| s.device == device && s.reason == reason && s.pid.is_none())
                .map(|s| s.value)
        };
        let mut inside = kept
            .iter()
            .filter(|(at, _)| *at >= now - window)
            .filter_map(|(at, scrape)| Some((*at, value(scrape)?)));
        let (first_at, first) = inside.next()?;
        let (last_at, last) = inside.next_back()?;
        let increase = if last >= first { last - first } else { last };
        Some((increase, last_at - first_at))
    }
}

/// Labels of one GPU of `view`.
fn gpu_labels(view: &GpuView<'_>, device: usize) -> Labels {
    let mut labels: Labels = view
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert("instance".into(), view.instance.to_string());
    if let Some(d) = view.scrape.devices.get(device) {
        let gpu = d.index.clone().unwrap_or_else(|| d.key.uuid.clone());
        labels.insert("gpu".into(), gpu);
        if let Some(instance) = &d.key.instance {
            labels.insert("gpu_instance".into(), instance.clone());
        }
    }
    labels
}

/// A server's latest value of a gauge over all its models: the largest KV-cache usage, the
/// sum of requests waiting (the exported rules' `max by (instance)` and `sum by (instance)`).
fn server_gauge(status: &TargetStatus, signal: &'static str) -> Option<f64> {
    (status.health == Health::Up)
        .then(|| super::eval::latest_gauge(status, signal, None))
        .flatten()
}

/// One GPU being judged.
struct Judged<'a> {
    view: GpuView<'a>,
    device: usize,
    now: f64,
    history: &'a GpuHistory,
}

impl Judged<'_> {
    fn value(&self, name: &str) -> Option<f64> {
        self.view.scrape.device_value(name, self.device)
    }

    fn key(&self) -> Option<&GpuKey> {
        self.view.scrape.devices.get(self.device).map(|d| &d.key)
    }

    /// Throttled seconds per second by power or heat over `window`.
    fn throttled(&self, window: &'static str) -> Option<Result<f64, Shortfall>> {
        let key = self.key()?;
        let span = seconds(window);
        let mut share = None;
        for reason in ["power", "thermal"] {
            let counter = ("llm_gpu_throttled_seconds_total", Some(reason));
            let Some((increase, covered)) =
                self.history
                    .increase(self.view.instance, key, counter, (self.now, span))
            else {
                continue;
            };
            if covered < 0.9 * span {
                return Some(Err(Shortfall::Covered {
                    seconds: covered,
                    window,
                }));
            }
            *share.get_or_insert(0.0) += increase / covered;
        }
        share.map(Ok)
    }

    /// The last XID's code, else the XIDs counted over `window`; `None` without either.
    fn xid(&self, window: &'static str) -> Option<f64> {
        let code = self.value("llm_gpu_last_xid").filter(|c| *c > 0.0);
        if code.is_some() {
            return code;
        }
        let counter = ("llm_gpu_xid_errors_total", None);
        let window = (self.now, seconds(window));
        self.history
            .increase(self.view.instance, self.key()?, counter, window)
            .map(|(increase, _)| increase)
    }

    fn memory_ratio(&self) -> Option<f64> {
        let used = self.value("llm_gpu_memory_used_bytes")?;
        let total = self.value("llm_gpu_memory_total_bytes")?;
        (total > 0.0).then(|| used / total)
    }
}

/// The verdict of a GPU alert on one GPU, or `None` for an alert about its server.
fn gpu_verdict(alert: &Alert, gpu: &Judged<'_>) -> Option<Verdict> {
    Some(match alert.condition {
        Condition::GpuThrottled { share, window } => match gpu.throttled(window)? {
            Ok(v) if v > share => Verdict::True(v),
            Ok(_) => Verdict::False,
            Err(why) => Verdict::NotEnoughData(why),
        },
        Condition::GpuXid { window } => match gpu.xid(window)? {
            v if v > 0.0 => Verdict::True(v),
            _ => Verdict::False,
        },
        _ => return None,
    })
}

/// The verdict of a GPU alert on one GPU and a server it serves.
fn server_verdict(alert: &Alert, gpu: &Judged<'_>, server: &TargetStatus) -> Option<Verdict> {
    Some(match alert.condition {
        Condition::GpuMemoryOutsideKv {
            memory_above,
            kv_below,
        } => {
            let ratio = gpu.memory_ratio()?;
            let kv = server_gauge(server, "llm_kv_cache_usage_ratio");
            if ratio > memory_above && !kv.is_some_and(|kv| kv >= kv_below) {
                Verdict::True(ratio)
            } else {
                Verdict::False
            }
        }
        Condition::GpuIdleWhileWaiting { utilization_below } => {
            let busy = gpu.value("llm_gpu_utilization_ratio")?;
            let waiting = server_gauge(server, "llm_requests_waiting");
            if busy < utilization_below && waiting.is_some_and(|w| w > 0.0) {
                Verdict::True(busy)
            } else {
                Verdict::False
            }
        }
        _ => return None,
    })
}

fn is_gpu_alert(alert: &Alert) -> bool {
    matches!(
        alert.condition,
        Condition::GpuMemoryOutsideKv { .. }
            | Condition::GpuThrottled { .. }
            | Condition::GpuXid { .. }
            | Condition::GpuIdleWhileWaiting { .. }
    )
}

/// The longest window a GPU alert of `alerts` reads, in seconds.
fn reach(alerts: &[Alert]) -> f64 {
    alerts
        .iter()
        .filter_map(|a| match a.condition {
            Condition::GpuThrottled { window, .. } | Condition::GpuXid { window } => {
                Some(seconds(window))
            }
            _ => None,
        })
        .fold(0.0, f64::max)
}

/// Every GPU alert of `alerts` over every GPU in `store`, appended to `out` (one list per
/// alert, in `alerts`' order).
pub fn evaluate(
    alerts: &[Alert],
    store: &Store,
    now: f64,
    history: &mut GpuHistory,
    out: &mut [Vec<Series>],
) {
    if !alerts.iter().any(is_gpu_alert) {
        return;
    }
    let statuses = store.statuses();
    history.note(&statuses, now, reach(alerts));
    let join = join(&statuses);
    let by_name: HashMap<&str, &TargetStatus> = statuses
        .iter()
        .map(|s| (s.target.name.as_str(), s.as_ref()))
        .collect();
    for view in views(&statuses) {
        for (device, gpu) in view.scrape.devices.iter().enumerate() {
            let judged = Judged {
                view,
                device,
                now,
                history,
            };
            let labels = gpu_labels(&view, device);
            let attached = join.servers(gpu);
            for (alert, series) in alerts.iter().zip(out.iter_mut()) {
                if let Some(verdict) = gpu_verdict(alert, &judged) {
                    let mut own = labels.clone();
                    if let Some(model) = &gpu.model {
                        own.insert("gpu_model".into(), model.clone());
                    }
                    push(series, own, verdict);
                }
                for (server, _) in attached {
                    let Some(status) = by_name.get(server) else {
                        continue;
                    };
                    if let Some(verdict) = server_verdict(alert, &judged, status) {
                        let mut own = labels.clone();
                        own.insert("server".into(), (*server).to_string());
                        push(series, own, verdict);
                    }
                }
            }
        }
    }
}

fn push(series: &mut Vec<Series>, labels: Labels, verdict: Verdict) {
    let (labels, fingerprint) = identified(labels);
    series.push(Series {
        labels,
        fingerprint,
        verdict,
    });
}
