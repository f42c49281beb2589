//! Drives one simulated engine in real time: a task owns the [`Engine`] and the
//! [`Recorder`], steps the engine, sleeps until each step's simulated end, and delivers the
//! step's events to the requests that subscribed. Handlers talk to it through an
//! [`EngineHandle`]: a bounded submission queue and a snapshot for `/metrics`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::time::Instant;
use tokio::sync::mpsc;

use super::engine::{Engine, Event, Profile, RequestSpec, Totals};
use super::record::{Histogram, Latencies, Recorder, RequestRecord};

/// Submissions waiting for the engine task; beyond this, callers are told the engine is busy.
const SUBMIT_QUEUE: usize = 4096;
/// Finished requests kept for ground truth.
const KEEP_FINISHED: usize = 10_000;

/// What `/metrics` renders, copied out of the engine task after every step.
#[derive(Debug, Clone)]
pub struct State {
    /// Requests in the batch.
    pub running: usize,
    /// Requests queued.
    pub waiting: usize,
    /// KV-cache usage.
    pub kv_usage: f64,
    /// Prompt and generated tokens of the running requests.
    pub context_tokens: u64,
    /// Engine totals.
    pub totals: Totals,
    /// Latency histograms.
    pub latencies: Latencies,
    /// Capacity and speed in force.
    pub profile: Profile,
}

struct Submission {
    spec: RequestSpec,
    /// Where the request's events go; `None` for background traffic nobody listens to.
    /// A listener that drops its receiver has gone away, and its request is aborted.
    events: Option<mpsc::UnboundedSender<Event>>,
    /// When the request reached the engine: its arrival in the ground truth, even when the
    /// engine thread only picks it up at the end of the step in progress.
    at: Instant,
}

/// What the engine task receives.
enum Msg {
    Submit(Submission),
    SetProfile(Profile),
    /// The request's listener went away: abort it.
    Gone(u64),
}

/// One event for one listener.
struct Delivery {
    id: u64,
    to: mpsc::UnboundedSender<Event>,
    event: Event,
}

/// What the engine task shares with the handlers, updated after every step.
struct Shared {
    running: usize,
    waiting: usize,
    kv_usage: f64,
    context_tokens: u64,
    totals: Totals,
    profile: Profile,
    recorder: Recorder,
    /// How late each step's events left, against the step's simulated end (seconds).
    lag: Histogram,
}

/// Bounds of the schedule-lag histogram: 10 µs to 1 s.
const LAG_BOUNDS: [f64; 12] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.1,
    1.0,
];

/// How the engine thread is scheduled by the operating system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheduling {
    /// Like any other thread.
    #[default]
    Normal,
    /// Real-time (`SCHED_FIFO`, lowest real-time priority): the thread preempts the HTTP
    /// side the moment a step is due, so the schedule holds on a saturated core. It sleeps
    /// between steps and spins at most 300 µs, so it cannot starve the rest.
    Realtime,
}

/// A running simulated engine.
#[derive(Clone)]
pub struct EngineHandle {
    submit: mpsc::Sender<Msg>,
    shared: Arc<Mutex<Shared>>,
    next_id: Arc<AtomicU64>,
    epoch_unix: f64,
}

/// Why a submission was refused.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The submission queue is full.
    #[error("the engine's submission queue is full")]
    Busy,
    /// The engine task has stopped.
    #[error("the engine has stopped")]
    Stopped,
}

impl EngineHandle {
    /// Starts the engine on a thread of its own. Fails when the thread cannot be started or
    /// real-time scheduling was asked for and refused (it needs `CAP_SYS_NICE`).
    pub fn start(
        engine: Engine,
        recorder: Recorder,
        scheduling: Scheduling,
    ) -> std::io::Result<EngineHandle> {
        let (submit, rx) = mpsc::channel(SUBMIT_QUEUE);
        let shared = Arc::new(Mutex::new(Shared {
            running: 0,
            waiting: 0,
            kv_usage: 0.0,
            context_tokens: 0,
            totals: engine.totals().clone(),
            profile: engine.profile().clone(),
            recorder,
            lag: Histogram::new(&LAG_BOUNDS),
        }));
        // Simulated time zero, as an instant and as Unix time.
        let start = Instant::now();
        let epoch_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let task_shared = shared.clone();
        // Each step's events cross to the async side in one batch, and a task there hands
        // them out: waking the runtime costs a system call, so once per step rather than once
        // per event (at thousands of streams that was most of the simulator's own time).
        let (deliveries, batches) = mpsc::unbounded_channel();
        tokio::spawn(deliver(batches, submit.clone()));
        // A thread of its own: tokio's timer wakes on millisecond ticks, too coarse for a
        // schedule of decode steps; the thread sleeps and then spins to each deadline.
        let (ready, scheduled) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("sim-engine".into())
            .spawn(move || {
                let outcome = schedule_current_thread(scheduling);
                let refused = outcome.is_err();
                let _ = ready.send(outcome);
                if !refused {
                    run(engine, rx, deliveries, task_shared, start);
                }
            })?;
        scheduled
            .recv()
            .map_err(|_| std::io::Error::other("the engine thread stopped while starting"))??;
        Ok(EngineHandle {
            submit,
            shared,
            next_id: Arc::new(AtomicU64::new(1)),
            epoch_unix,
        })
    }

    /// Changes capacity and speed from the next step on (a scenario step).
    pub async fn set_profile(&self, profile: Profile) -> Result<(), SubmitError> {
        self.submit
            .send(Msg::SetProfile(profile))
            .await
            .map_err(|_| SubmitError::Stopped)
    }

    /// Unix time of simulated time zero: add it to a record's times for wall-clock times.
    pub fn epoch_unix(&self) -> f64 {
        self.epoch_unix
    }

    /// How late the engine's steps delivered their events (seconds behind schedule).
    pub fn schedule_lag(&self) -> Histogram {
        with(&self.shared, |s| s.lag.clone())
    }

    /// The ground truth of the most recent finished requests, oldest first.
    pub fn finished(&self) -> Vec<RequestRecord> {
        with(&self.shared, |s| s.recorder.finished().cloned().collect())
    }

    /// Queues a request; its events arrive on the returned receiver, ending with `Finished`.
    /// Dropping the receiver aborts the request. The id in `spec` is replaced by a fresh one.
    pub fn submit(&self, spec: RequestSpec) -> Result<mpsc::UnboundedReceiver<Event>, SubmitError> {
        let (events, rx) = mpsc::unbounded_channel();
        self.enqueue(spec, Some(events))?;
        Ok(rx)
    }

    /// Queues a request nobody listens to (background traffic): it runs to its end.
    pub fn submit_detached(&self, spec: RequestSpec) -> Result<(), SubmitError> {
        self.enqueue(spec, None)
    }

    fn enqueue(
        &self,
        mut spec: RequestSpec,
        events: Option<mpsc::UnboundedSender<Event>>,
    ) -> Result<(), SubmitError> {
        spec.id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.submit
            .try_send(Msg::Submit(Submission {
                spec,
                events,
                at: Instant::now(),
            }))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => SubmitError::Busy,
                mpsc::error::TrySendError::Closed(_) => SubmitError::Stopped,
            })
    }

    /// Requests queued, without copying the rest of the state.
    pub fn waiting(&self) -> usize {
        with(&self.shared, |s| s.waiting)
    }

    /// The latest state.
    pub fn state(&self) -> State {
        with(&self.shared, |s| State {
            running: s.running,
            waiting: s.waiting,
            kv_usage: s.kv_usage,
            context_tokens: s.context_tokens,
            totals: s.totals.clone(),
            latencies: s.recorder.latencies().clone(),
            profile: s.profile.clone(),
        })
    }
}

/// Runs `f` under the lock; a poisoned lock still holds consistent data here (every update
/// is a plain assignment), so it is used rather than propagated.
fn with<R>(shared: &Mutex<Shared>, f: impl FnOnce(&mut Shared) -> R) -> R {
    f(&mut shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner))
}

fn publish(shared: &Mutex<Shared>, engine: &Engine) {
    with(shared, |s| {
        s.running = engine.running();
        s.waiting = engine.waiting();
        s.kv_usage = engine.kv_usage();
        s.context_tokens = engine.running_context_tokens();
        s.totals = engine.totals().clone();
        s.profile = engine.profile().clone();
    });
}

fn schedule_current_thread(scheduling: Scheduling) -> std::io::Result<()> {
    if scheduling == Scheduling::Normal {
        return Ok(());
    }
    use thread_priority::{
        RealtimeThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    let policy = ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo);
    set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, policy).map_err(
        |err| {
            let reason = match err {
                thread_priority::Error::OS(code) => std::io::Error::from_raw_os_error(code).to_string(),
                other => other.to_string(),
            };
            std::io::Error::other(format!(
                "cannot give the engine thread real-time scheduling (SCHED_FIFO needs root or CAP_SYS_NICE): {reason}"
            ))
        },
    )
}

/// Steps the engine in real time. Simulated time is seconds since `start`.
fn run(
    mut engine: Engine,
    mut rx: mpsc::Receiver<Msg>,
    deliveries: mpsc::UnboundedSender<Vec<Delivery>>,
    shared: Arc<Mutex<Shared>>,
    start: Instant,
) {
    let mut subscribers: HashMap<u64, mpsc::UnboundedSender<Event>> = HashMap::new();
    crate::clock::tighten_timer_slack();
    loop {
        if engine.is_idle() {
            publish(&shared, &engine);
            let Some(first) = rx.blocking_recv() else {
                return;
            };
            engine.advance_to(start.elapsed().as_secs_f64());
            accept(first, &mut engine, &shared, &mut subscribers, start);
        }
        while let Ok(next) = rx.try_recv() {
            accept(next, &mut engine, &shared, &mut subscribers, start);
        }
        if engine.is_idle() {
            continue;
        }
        let events = engine.step();
        let due = start + Duration::from_secs_f64(engine.now());
        // The last 50 µs spun: with the timer slack tightened a thread sleep overshoots by
        // ~30 µs at the median, and spinning longer costs a share of a core at 1 ms steps.
        crate::clock::wait_until(due, Duration::from_micros(50));
        let late = due.elapsed().as_secs_f64();
        with(&shared, |s| {
            s.recorder.observe(&events);
            s.lag.observe(late);
        });
        let mut batch = Vec::with_capacity(events.len());
        for event in events {
            let id = match event {
                Event::Scheduled { id, .. }
                | Event::Token { id, .. }
                | Event::Preempted { id, .. }
                | Event::Finished { id, .. } => id,
            };
            let to = if matches!(event, Event::Finished { .. }) {
                subscribers.remove(&id)
            } else {
                subscribers.get(&id).cloned()
            };
            if let Some(to) = to {
                batch.push(Delivery { id, to, event });
            }
        }
        if !batch.is_empty() && deliveries.send(batch).is_err() {
            return;
        }
        publish(&shared, &engine);
    }
}

fn accept(
    msg: Msg,
    engine: &mut Engine,
    shared: &Mutex<Shared>,
    subscribers: &mut HashMap<u64, mpsc::UnboundedSender<Event>>,
    start: Instant,
) {
    let submission = match msg {
        Msg::Submit(submission) => submission,
        Msg::SetProfile(profile) => {
            engine.set_profile(profile);
            return;
        }
        Msg::Gone(id) => {
            // A client that went away: the engine aborts its request, as real engines do.
            if subscribers.remove(&id).is_some()
                && let Some(aborted) = engine.abort(id)
            {
                with(shared, |s| s.recorder.observe(&[aborted]));
            }
            return;
        }
    };
    let arrival = submission.at.saturating_duration_since(start).as_secs_f64();
    with(shared, |s| s.recorder.arrive(&submission.spec, arrival));
    if let Some(events) = submission.events {
        subscribers.insert(submission.spec.id, events);
    }
    engine.submit(submission.spec);
}

/// Hands each step's events to their listeners on the async side; a listener that has gone
/// is reported to the engine once per step.
async fn deliver(mut batches: mpsc::UnboundedReceiver<Vec<Delivery>>, engine: mpsc::Sender<Msg>) {
    while let Some(batch) = batches.recv().await {
        let mut last_gone = None;
        for Delivery { id, to, event } in batch {
            let finished = matches!(event, Event::Finished { .. });
            if to.send(event).is_err() && !finished && last_gone != Some(id) {
                last_gone = Some(id);
                // A full queue is no loss: the next step's send fails and reports it again.
                let _ = engine.try_send(Msg::Gone(id));
            }
        }
    }
}

/// The recorder size used by [`EngineHandle::start`] callers.
pub fn keep_finished() -> usize {
    KEEP_FINISHED
}
