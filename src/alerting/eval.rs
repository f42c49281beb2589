//! One alert's condition over `up`'s state, per target (and model, for the alerts over a
//! model's numbers): true with its value, false, or not enough data to say. Windows are read
//! from each target's rollup (`collect::rollup`, up to 6 h), the queue's slope from its
//! history. A window the target's data does not cover (90 % of it) is "not enough data",
//! never a false "ok".

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::LazyLock;

use crate::catalog::alerts::{Alert, Condition, Quantity, Sli, Slo};
use crate::catalog::panels::{Outcomes, Source};
use crate::collect::history::{Part, SeriesKey, histogram_quantile};
use crate::collect::rollup::{Grid, ModelView, Sums};
use crate::collect::state::{Health, Store, TargetState, TargetStatus};
use crate::engines::{Reading, Signal, signal};

use super::labels::{LabelCache, identified};
pub use super::labels::{Labels, fingerprint};

/// What a condition says about one series.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// True, with the value the description shows.
    True(f64),
    /// False.
    False,
    /// The data does not reach back over the alert's window, or is not kept at all.
    NotEnoughData(Shortfall),
}

/// Why a verdict cannot be given. Formatted only when read: while history is short a round
/// has thousands of them, and formatting each cost more than judging it.
#[derive(Debug, Clone, PartialEq)]
pub enum Shortfall {
    /// Only `seconds` of data for a window of `window`.
    Covered {
        /// Seconds of scraping covered.
        seconds: f64,
        /// The window the alert reads.
        window: &'static str,
    },
    /// Anything else, said in words.
    Said(String),
}

impl std::fmt::Display for Shortfall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shortfall::Covered { seconds, window } => {
                write!(f, "{seconds:.0} s of data, the alert reads {window}")
            }
            Shortfall::Said(text) => f.write_str(text),
        }
    }
}

impl From<String> for Shortfall {
    fn from(text: String) -> Shortfall {
        Shortfall::Said(text)
    }
}

/// One series of an alert: its labels and what the condition says.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// `instance`, the target's static labels, and `engine` and `model` for a model's alert;
    /// shared by every alert of the target or model.
    pub labels: Arc<Labels>,
    /// A hash of the labels, which names the series across rounds.
    pub fingerprint: u64,
    /// The verdict.
    pub verdict: Verdict,
}

const FINISHED: &str = "llm_requests_finished_total";
const ERRORS: Outcomes = Outcomes::Only(&crate::catalog::ERROR_OUTCOMES);
const TTFT: &str = "llm_time_to_first_token_seconds";
const WAITING: &str = "llm_requests_waiting";
const RUNNING: &str = "llm_requests_running";
const TOKENS: &str = "llm_generation_tokens_total";

/// Seconds in a catalogue window (`5m`, `1h`). Read several times per model and round: the
/// common form (whole number, one-letter unit) is read here without the general parser.
pub(super) fn seconds(window: &str) -> f64 {
    let (digits, unit) = window.split_at(window.len().saturating_sub(1));
    let per = match unit {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => 0.0,
    };
    match digits.parse::<u32>() {
        Ok(n) if per > 0.0 => f64::from(n) * per,
        _ => crate::cli::parse_duration(window).map_or(0.0, |d| d.as_secs_f64()),
    }
}

/// Every alert of `alerts` over every target of `store` at `now`: per alert, its series.
/// Target by target, so each model's window sums are added up once for all alerts.
pub fn evaluate(
    alerts: &[Alert],
    store: &Store,
    slo: &Slo,
    now: f64,
    (cache, gpus): (&mut LabelCache, &mut super::gpu::GpuHistory),
) -> Vec<Vec<Series>> {
    cache.begin();
    let mut out: Vec<Vec<Series>> = alerts.iter().map(|_| Vec::new()).collect();
    // An alert that reads further back than `up` keeps is one series that says so, not one
    // per target every round.
    let reachable: Vec<bool> = alerts
        .iter()
        .zip(&mut out)
        .map(|(alert, series)| match beyond_reach(alert) {
            Some(reason) => {
                let (labels, fingerprint) = identified(Labels::new());
                series.push(Series {
                    labels,
                    fingerprint,
                    verdict: Verdict::NotEnoughData(Shortfall::Said(reason)),
                });
                false
            }
            None => true,
        })
        .collect();
    for target in store.targets() {
        let status = &target.status;
        let mut labels = cache.target(status);
        let (shared, fingerprint) = labels.identified();
        for ((alert, series), reachable) in alerts.iter().zip(&mut out).zip(&reachable) {
            if !reachable {
                continue;
            }
            if let Some(verdict) = target_verdict(alert, &target, now) {
                series.push(Series {
                    labels: shared.clone(),
                    fingerprint,
                    verdict,
                });
            }
        }
        if status.health != Health::Up {
            // Prometheus has no fresh series of a target that is down: no verdict.
            continue;
        }
        let engine = status
            .last_good
            .as_ref()
            .and_then(|g| g.engine)
            .map(crate::engines::Engine::as_str);
        target.with_history(|history| {
            for (model, view) in history.rollup().current() {
                let at = At::new(view, history, status, model, now);
                let (shared, fingerprint) = labels.model(model, engine);
                let judged = alerts.iter().zip(&mut out).zip(&reachable);
                for ((alert, series), _) in judged.filter(|(_, reachable)| **reachable) {
                    if let Some(verdict) = model_verdict(alert, slo, &at) {
                        series.push(Series {
                            labels: shared.clone(),
                            fingerprint,
                            verdict,
                        });
                    }
                }
            }
        });
    }
    cache.end();
    super::gpu::evaluate(alerts, store, now, gpus, &mut out);
    out
}

/// Why `alert` can never be judged in `up`, if it cannot: a window longer than the rollup's
/// longest, or a history `up` does not keep.
fn beyond_reach(alert: &Alert) -> Option<String> {
    let reach = crate::collect::rollup::TIERS[crate::collect::rollup::TIERS.len() - 1]
        * crate::collect::rollup::STEPS as f64;
    match alert.condition {
        Condition::Burn { long, .. } if seconds(long) > reach => Some(format!(
            "reads {long}; up keeps {} min (Prometheus with the exported rules evaluates it)",
            reach / 60.0
        )),
        _ => None,
    }
}

/// The verdict of an alert about a whole target; `None` for an alert about a model's numbers.
fn target_verdict(alert: &Alert, target: &TargetState, now: f64) -> Option<Verdict> {
    let status = &target.status;
    Some(match alert.condition {
        Condition::SamplesExploding { factor, window } => {
            samples_exploding(target, now, factor, window)?
        }
        Condition::TargetDown => match status.health {
            Health::Down => Verdict::True(0.0),
            Health::Up => Verdict::False,
            Health::Unknown => Verdict::NotEnoughData(Shortfall::Said("not scraped yet".into())),
        },
        Condition::CoreSignalsAbsent => core_signals(status),
        _ => return None,
    })
}

/// The sample count against `factor` times its median over `window`, from the per-minute
/// counts `up` keeps (Prometheus takes the median of every scrape; per-minute highs differ
/// from it only while the count moves within a minute). `None` while the target is not up.
fn samples_exploding(
    target: &TargetState,
    now: f64,
    factor: f64,
    window: &'static str,
) -> Option<Verdict> {
    let status = &target.status;
    let samples = status
        .last_good
        .as_ref()
        .filter(|_| status.health == Health::Up)?
        .samples as f64;
    let span = seconds(window);
    let median = target.with_sample_counts(|c| c.median_since(now - span, 0.9 * span))?;
    Some(match median {
        Err(covered) => Verdict::NotEnoughData(Shortfall::Covered {
            seconds: covered,
            window,
        }),
        Ok(median) if samples > factor * median => Verdict::True(samples),
        Ok(_) => Verdict::False,
    })
}

/// True (value 1) when the last good scrape of an engine has no running requests or no
/// generated tokens.
fn core_signals(status: &TargetStatus) -> Verdict {
    let Some(good) = (status.health == Health::Up)
        .then_some(status.last_good.as_ref())
        .flatten()
    else {
        return Verdict::False;
    };
    if status.is_gpu_exporter() {
        // A GPU exporter serves no requests.
        return Verdict::False;
    }
    // One pass over the readings for both signals.
    let [running, tokens] = [RUNNING, TOKENS].map(own_signal);
    let (mut has_running, mut has_tokens) = (false, false);
    for r in good.readings.iter().filter(|r| !r.series.is_empty()) {
        has_running |= running.is_some_and(|s| std::ptr::eq(r.signal, s));
        has_tokens |= tokens.is_some_and(|s| std::ptr::eq(r.signal, s));
    }
    if has_running && has_tokens {
        Verdict::False
    } else {
        Verdict::True(1.0)
    }
}

/// One window's sums, shared, or why there are none.
type WindowSums = Result<Rc<Sums>, Shortfall>;

/// Fails with what was covered when `covered` seconds of data are less than 90 % of
/// `window`, as every windowed alert requires.
fn covering(covered: f64, window: &'static str) -> Result<(), Shortfall> {
    if covered < 0.9 * seconds(window) {
        return Err(Shortfall::Covered {
            seconds: covered,
            window,
        });
    }
    Ok(())
}

/// The sums over the last `window` for one model, or why there are none (added up once per
/// round and window).
fn window_sums(at: &At<'_>, window: &'static str) -> WindowSums {
    // By address first: the catalogue's windows are constants, so the same text is usually
    // the same string.
    let known = |windows: &[(&'static str, WindowSums)]| {
        windows
            .iter()
            .find(|(w, _)| std::ptr::eq(*w, window))
            .or_else(|| windows.iter().find(|(w, _)| *w == window))
            .map(|(_, found)| found.clone())
    };
    if let Some(found) = known(&at.windows.borrow()) {
        return found;
    }
    let result = (|| {
        let span = seconds(window);
        let grid = Grid::new(at.now, span, crate::collect::rollup::STEPS)?;
        let sums = at
            .view
            .total(&grid)
            .ok_or_else(|| format!("no data for {}", at.model))?;
        covering(sums.covered(), window)?;
        Ok(Rc::new(sums))
    })();
    at.windows.borrow_mut().push((window, result.clone()));
    result
}

/// A gauge's mean over the last `window`, from the rollup's steps (30 at most) rather than a
/// walk over the decoded history; `None` without the gauge.
fn gauge_mean(
    at: &At<'_>,
    signal: &'static str,
    window: &'static str,
) -> Result<Option<f64>, Shortfall> {
    let span = seconds(window);
    let grid = Grid::new(at.now, span, crate::collect::rollup::STEPS)?;
    let Some((mean, covered)) = at.view.gauge_mean(&grid, Source::Gauge(signal)) else {
        return Ok(None);
    };
    covering(covered, window)?;
    Ok(Some(mean))
}

/// Failed over finished requests in `sums`; `None` when nothing finished (Prometheus divides
/// by `(all > 0)`: no series).
fn error_ratio(sums: &Sums) -> Option<f64> {
    let all = sums.increase(Source::Counter(FINISHED, Outcomes::All))?;
    let failed = sums
        .increase(Source::Counter(FINISHED, ERRORS))
        .unwrap_or(0.0);
    (all > 0.0).then(|| failed / all)
}

/// The share of first tokens later than `threshold` (a bucket bound) in `sums`.
fn slow_ratio(sums: &Sums, threshold: f64) -> Option<f64> {
    let count = sums.bucket_pairs(Source::Histogram(TTFT))?.next_back()?.1;
    let fast = sums
        .bucket_pairs(Source::Histogram(TTFT))?
        .find(|(le, _)| (le - threshold).abs() < 1e-9)?
        .1;
    (count > 0.0).then(|| 1.0 - fast / count)
}

/// An SLI's ratio of misses in `sums`, under `slo`.
fn sli(sli: Sli, slo: &Slo, sums: &Sums) -> Option<f64> {
    match sli {
        Sli::Errors => error_ratio(sums),
        Sli::SlowTtft => slow_ratio(sums, slo.ttft_seconds),
    }
}

/// One model of one target at one time: what its conditions read.
struct At<'a> {
    /// The model's rollup.
    view: ModelView<'a>,
    history: &'a crate::collect::history::History,
    status: &'a TargetStatus,
    model: &'a str,
    now: f64,
    /// Window sums already added up, by window (shared, not copied, by the alerts reading
    /// the same window).
    windows: RefCell<Vec<(&'static str, WindowSums)>>,
    /// Room for a histogram's buckets, reused by each quantile.
    buckets: RefCell<Vec<(f64, f64)>>,
    /// The waiting requests in the last good scrape, once read (two alerts ask).
    waiting: std::cell::OnceCell<Option<f64>>,
}

impl<'a> At<'a> {
    fn new(
        view: ModelView<'a>,
        history: &'a crate::collect::history::History,
        status: &'a TargetStatus,
        model: &'a str,
        now: f64,
    ) -> At<'a> {
        At {
            view,
            history,
            status,
            model,
            now,
            windows: RefCell::default(),
            buckets: RefCell::default(),
            waiting: std::cell::OnceCell::new(),
        }
    }
}

/// The signal-table rows of the signals the evaluator reads itself, looked up once, so a
/// reading is found by identity rather than by comparing names.
static OWN_SIGNALS: LazyLock<[(&'static str, Option<&'static Signal>); 3]> =
    LazyLock::new(|| [WAITING, RUNNING, TOKENS].map(|name| (name, signal(name))));

/// The signal-table row of `name`.
fn own_signal(name: &'static str) -> Option<&'static Signal> {
    OWN_SIGNALS
        .iter()
        .find(|(own, _)| std::ptr::eq(*own, name))
        .map_or_else(|| signal(name), |(_, row)| *row)
}

/// The reading of signal `name` among `readings`.
fn find_reading<'r>(readings: &'r [Reading], name: &'static str) -> Option<&'r Reading> {
    let wanted = own_signal(name)?;
    readings.iter().find(|r| std::ptr::eq(r.signal, wanted))
}

/// A gauge's value in the last good scrape, exactly as scraped: `model`'s, or with `None`
/// the whole target's (its models' series combined as one model's are).
pub(super) fn latest_gauge(
    status: &TargetStatus,
    signal: &'static str,
    model: Option<&str>,
) -> Option<f64> {
    let good = status.last_good.as_ref()?;
    let reading = find_reading(&good.readings, signal)?;
    let values = reading
        .series
        .iter()
        .filter(|s| model.is_none_or(|m| s.model == m))
        .filter_map(|s| match s.value {
            crate::engines::Value::Scalar(v) => Some(v),
            crate::engines::Value::Histogram(_) => None,
        });
    crate::catalog::panels::Aggregation::of(signal).combine(values)
}

fn quantity(q: Quantity, at: &At<'_>) -> Result<Option<f64>, Shortfall> {
    Ok(match q {
        Quantity::ErrorRatio(window) => error_ratio(window_sums(at, window)?.as_ref()),
        Quantity::Quantile(signal, q, window) => {
            let sums = window_sums(at, window)?;
            let mut buckets = at.buckets.borrow_mut();
            buckets.clear();
            buckets.extend(
                sums.bucket_pairs(Source::Histogram(signal))
                    .into_iter()
                    .flatten(),
            );
            (!buckets.is_empty())
                .then(|| histogram_quantile(q, &buckets))
                .flatten()
        }
        Quantity::Gauge(signal) if std::ptr::eq(signal, WAITING) => *at
            .waiting
            .get_or_init(|| latest_gauge(at.status, signal, Some(at.model))),
        Quantity::Gauge(signal) => latest_gauge(at.status, signal, Some(at.model)),
        Quantity::Average(signal, window) => gauge_mean(at, signal, window)?,
        Quantity::Rate(signal, window) => {
            window_sums(at, window)?.rate(Source::Counter(signal, Outcomes::All))
        }
    })
}

/// The verdict of an alert about one model's numbers; `None` for an alert about a target.
fn model_verdict(alert: &Alert, slo: &Slo, at: &At<'_>) -> Option<Verdict> {
    let result = match alert.condition {
        Condition::Above(q, threshold) => quantity(q, at).map(|v| v.filter(|v| *v > threshold)),
        Condition::Burn {
            sli: which,
            factor,
            long,
            short,
        } => (|| {
            let threshold = factor * slo.budget(which);
            let long = sli(which, slo, window_sums(at, long)?.as_ref());
            let short = sli(which, slo, window_sums(at, short)?.as_ref());
            Ok(long.filter(|l| *l > threshold && short.is_some_and(|s| s > threshold)))
        })(),
        Condition::BacklogGrowing { above, window } => (|| {
            // `and` as PromQL reads it: the slope (a walk over the history) only when the
            // queue is long.
            let Some(waiting) = quantity(Quantity::Gauge(WAITING), at)?.filter(|w| *w > above)
            else {
                return Ok(None);
            };
            let slope = slope(at.history, at.model, seconds(window), at.now)?;
            Ok((slope > 0.0).then_some(waiting))
        })(),
        Condition::ThroughputCollapse {
            fraction,
            short,
            long,
        } => (|| {
            if !quantity(Quantity::Gauge(WAITING), at)?.is_some_and(|w| w > 0.0) {
                return Ok(None);
            }
            let tokens = Source::Counter(TOKENS, Outcomes::All);
            let recent = window_sums(at, short)?.rate(tokens);
            let reference = window_sums(at, long)?.rate(tokens);
            Ok(match (recent, reference) {
                (Some(r), Some(l)) if r <= fraction * l => Some(r),
                _ => None,
            })
        })(),
        Condition::TargetDown
        | Condition::CoreSignalsAbsent
        | Condition::SamplesExploding { .. }
        | Condition::GpuMemoryOutsideKv { .. }
        | Condition::GpuThrottled { .. }
        | Condition::GpuXid { .. }
        | Condition::GpuIdleWhileWaiting { .. } => return None,
    };
    Some(match result {
        Ok(Some(value)) => Verdict::True(value),
        Ok(None) => Verdict::False,
        Err(why) => Verdict::NotEnoughData(why),
    })
}

/// PromQL's `deriv`: the least-squares slope, per second, of `model`'s waiting requests over
/// the last `window` seconds of history.
fn slope(
    history: &crate::collect::history::History,
    model: &str,
    window: f64,
    now: f64,
) -> Result<f64, String> {
    let samples = gauge_samples(history, WAITING, model, window, now)?;
    let n = samples.len() as f64;
    let (mt, mv) = samples
        .iter()
        .fold((0.0, 0.0), |(a, b), (t, v)| (a + t / n, b + v / n));
    let (num, den) = samples.iter().fold((0.0, 0.0), |(num, den), (t, v)| {
        (num + (t - mt) * (v - mv), den + (t - mt) * (t - mt))
    });
    Ok(if den > 0.0 { num / den } else { 0.0 })
}

/// `model`'s samples of a gauge signal over the last `window` seconds of history, or why
/// they do not cover it.
fn gauge_samples(
    history: &crate::collect::history::History,
    signal: &'static str,
    model: &str,
    window: f64,
    now: f64,
) -> Result<Vec<(f64, f64)>, String> {
    let key = SeriesKey {
        signal,
        model: model.to_string(),
        outcome: None,
        part: Part::Scalar,
    };
    let samples: Vec<(f64, f64)> = history
        .window(now - window)
        .iter()
        .filter_map(|p| p.get(&key).map(|v| (p.at, v)))
        .collect();
    let span = samples.last().map_or(0.0, |l| l.0) - samples.first().map_or(0.0, |f| f.0);
    if samples.len() < 2 || span < 0.9 * window {
        return Err(format!(
            "{span:.0} s of history of {signal}, the alert reads {window:.0} s"
        ));
    }
    Ok(samples)
}
