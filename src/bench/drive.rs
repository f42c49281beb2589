//! Driving a run: what every request task shares, how open-loop releases become tasks and
//! how closed-loop workers loop. The open loop runs on sender threads, each with its own
//! single-threaded runtime, HTTP client and pacer (a precise timer on that runtime's reactor)
//! taking every n-th release of the one schedule: a request is paced, sent and read on one
//! thread, with no hand-over between threads — at thousands of requests a second the
//! wake-ups of a shared pacer and a work-stealing pool cost more than the requests.
//! Finished requests fold into one aggregate under a lock held for microseconds; the driver
//! only waits for the end, ticks the progress line and watches for Ctrl-C.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore};

use super::report::Aggregate;
use super::request::{self, Timing};
use super::schedule::{self, OpenLoop, Release};
use super::{BenchError, BenchOptions, live};
use crate::client_metrics::{ClientMetrics, Operation};

/// What the request tasks of one run share.
pub struct Run {
    /// The benchmark.
    pub options: Arc<BenchOptions>,
    /// The route, parsed once.
    pub url: reqwest::Url,
    /// The model asked for.
    pub model: String,
    /// `--max-in-flight`.
    pub slots: Option<Arc<Semaphore>>,
    /// Live client metrics, when served.
    pub live: Option<ClientMetrics>,
    /// Labels of the live metrics.
    pub operation: Operation,
    /// Time zero.
    pub start: Instant,
    /// Requests intended before this are warm-up.
    pub warm_until: Instant,
    /// Finished requests.
    pub aggregate: Mutex<Aggregate>,
    /// Requests in flight, for the progress line.
    pub in_flight: AtomicUsize,
}

impl Run {
    /// The aggregate, even if a request task panicked while holding it.
    pub fn aggregate(&self) -> MutexGuard<'_, Aggregate> {
        self.aggregate.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends one request and records it.
    async fn send(&self, client: &request::Client, release: Release) {
        // Held until the answer ends; the wait for it is part of the send lag.
        let _slot = match &self.slots {
            Some(slots) => slots.clone().acquire_owned().await.ok(),
            None => None,
        };
        let (body, asked) = super::body(&self.options, &self.model, release.index);
        if let Some(live) = &self.live {
            live.in_flight.inc();
        }
        let o = &self.options;
        let timing = request::run(
            client,
            &self.url,
            body,
            o.api_key.as_deref(),
            o.stream,
            o.timeout,
        )
        .await;
        if let Some(live) = &self.live {
            live.in_flight.dec();
            live::observe(live, &self.operation, &timing);
        }
        self.record(release, &timing, asked);
    }

    fn record(&self, release: Release, timing: &Timing, asked: Option<u32>) {
        let measured = release.intended >= self.warm_until;
        self.aggregate().add(
            release.index,
            release.intended,
            timing,
            asked,
            self.start,
            measured,
        );
    }
}

/// Open loop on `threads` sender threads. Resolves when every sender has paced its share
/// and its requests have ended.
pub fn open_loop(
    run: Arc<Run>,
    plan: OpenLoop,
    threads: usize,
    stop: Arc<AtomicBool>,
) -> Result<impl Future<Output = ()>, BenchError> {
    let threads = threads.max(1) as u64;
    let mut senders = Vec::new();
    for k in 0..threads {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(BenchError::Pacer)?;
        let client = super::http_client(&run.url)?;
        let (run, plan, stop) = (run.clone(), plan.clone(), stop.clone());
        let mine = move |r: &Release| r.index % threads == k;
        let sender = std::thread::Builder::new()
            .name(format!("bench-sender-{k}"))
            .spawn(move || {
                runtime.block_on(send_share(run, client, plan, mine, stop));
            })
            .map_err(BenchError::Pacer)?;
        senders.push(sender);
    }
    Ok(async move {
        for sender in senders {
            let _ = tokio::task::spawn_blocking(move || sender.join()).await;
        }
    })
}

/// One sender thread's work: its share of the schedule, each request a task on this thread's
/// runtime, then waits for them.
async fn send_share(
    run: Arc<Run>,
    client: request::Client,
    plan: OpenLoop,
    mine: impl Fn(&Release) -> bool,
    stop: Arc<AtomicBool>,
) {
    let local = Arc::new(Tally::default());
    let releases = schedule::Schedule::new(plan, run.start).filter(mine);
    let paced = schedule::pace(releases, &stop, |release| {
        local.begin();
        run.in_flight.fetch_add(1, Ordering::AcqRel);
        let (run, client, local) = (run.clone(), client.clone(), local.clone());
        tokio::spawn(async move {
            run.send(&client, release).await;
            run.in_flight.fetch_sub(1, Ordering::AcqRel);
            local.end();
        });
    })
    .await;
    if let Err(error) = paced {
        tracing::error!(%error, "bench: the pacer's timer failed; this sender stopped early");
    }
    local.until_idle().await;
}

/// Tasks still running, and a wake-up when none are.
#[derive(Default)]
pub struct Tally {
    running: AtomicUsize,
    idle: Notify,
}

impl Tally {
    fn begin(&self) {
        self.running.fetch_add(1, Ordering::AcqRel);
    }

    fn end(&self) {
        if self.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_one();
        }
    }

    async fn until_idle(&self) {
        loop {
            let idle = self.idle.notified();
            if self.running.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// Closed loop: `concurrency` workers, each sending its next request when the last ends,
/// until the request count or the duration is reached. Resolves when all have stopped.
pub async fn closed_loop(
    run: Arc<Run>,
    client: request::Client,
    concurrency: usize,
    stop: Arc<AtomicBool>,
) {
    tokio::time::sleep_until(run.start.into()).await;
    let workers_running = Arc::new(Tally::default());
    let next = Arc::new(AtomicU64::new(0));
    let deadline = run.options.duration.map(|d| run.start + d);
    for _ in 0..concurrency.max(1) {
        let (run, next, stop) = (run.clone(), next.clone(), stop.clone());
        let (client, tally) = (client.clone(), workers_running.clone());
        tally.begin();
        tokio::spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let in_bounds = run.options.requests.is_none_or(|n| index < n)
                    && deadline.is_none_or(|d| Instant::now() < d)
                    && !stop.load(Ordering::Relaxed);
                if !in_bounds {
                    break;
                }
                let intended = Instant::now();
                run.in_flight.fetch_add(1, Ordering::AcqRel);
                run.send(&client, Release { index, intended }).await;
                run.in_flight.fetch_sub(1, Ordering::AcqRel);
            }
            tally.end();
        });
    }
    workers_running.until_idle().await;
}

/// How a run's sending ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Every request of the plan was sent and has ended.
    Done,
    /// Ctrl-C.
    Interrupted,
    /// The first requests all failed; why, in words.
    FailedFast(String),
}

/// Waits for `ended`, ticking the progress line on a terminal. Ctrl-C, or the first
/// `fail_fast` requests all failing, sets `stop`; after Ctrl-C requests still running are
/// left out of the report, after a fast failure they are waited for (they fail fast too).
pub async fn supervise(
    run: &Run,
    ended: impl Future<Output = ()>,
    stop: &AtomicBool,
    options: &BenchOptions,
) -> Ended {
    let fail_fast = options.fail_fast;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c, ended);
    // Checked often, so a server that fails everything is left within a fraction of a second.
    let mut check = tokio::time::interval(Duration::from_millis(100));
    let mut last_progress = Instant::now();
    let terminal = options.progress && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut failed_fast = None;
    let how = loop {
        tokio::select! {
            () = &mut ended => break failed_fast.unwrap_or(Ended::Done),
            _ = check.tick() => {
                if failed_fast.is_none()
                    && let Some(why) = fail_fast.and_then(|n| all_failed(&run.aggregate(), n))
                {
                    // Stop releasing; the requests already out end by themselves.
                    stop.store(true, Ordering::Relaxed);
                    failed_fast = Some(Ended::FailedFast(why));
                }
                if terminal && last_progress.elapsed() >= Duration::from_secs(1) {
                    last_progress = Instant::now();
                    let in_flight = run.in_flight.load(Ordering::Relaxed);
                    live::progress(&run.aggregate(), in_flight, run.start);
                }
            }
            _ = &mut ctrl_c => break Ended::Interrupted,
        }
    };
    stop.store(true, Ordering::Relaxed);
    if terminal {
        live::eprintln_progress("\n");
    }
    how
}

/// Why the run should stop, when the first `n` finished requests (n ≥ 1) all failed.
fn all_failed(aggregate: &Aggregate, n: u64) -> Option<String> {
    let n = n.max(1);
    if aggregate.sent < n || aggregate.failed_any < aggregate.sent {
        return None;
    }
    let reason = aggregate.main_error().unwrap_or_default();
    Some(format!(
        "the first {} requests all failed ({reason})",
        aggregate.sent
    ))
}
