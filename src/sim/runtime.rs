//! Drives one simulated engine in real time: a task owns the [`Engine`] and the
//! [`Recorder`], steps the engine, sleeps until each step's simulated end, and delivers the
//! step's events to the requests that subscribed. Handlers talk to it through an
//! [`EngineHandle`]: a bounded submission queue and a snapshot for `/metrics`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::engine::{Engine, Event, RequestSpec, Totals};
use super::record::{Latencies, Recorder};

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
    /// Engine totals.
    pub totals: Totals,
    /// Latency histograms.
    pub latencies: Latencies,
}

struct Submission {
    spec: RequestSpec,
    events: mpsc::UnboundedSender<Event>,
}

/// A running simulated engine.
#[derive(Clone)]
pub struct EngineHandle {
    submit: mpsc::Sender<Submission>,
    state: Arc<Mutex<State>>,
    next_id: Arc<AtomicU64>,
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
    /// Starts the engine task on the current tokio runtime.
    pub fn start(engine: Engine, recorder: Recorder) -> EngineHandle {
        let (submit, rx) = mpsc::channel(SUBMIT_QUEUE);
        let state = Arc::new(Mutex::new(snapshot(&engine, &recorder)));
        let task_state = state.clone();
        tokio::spawn(run(engine, recorder, rx, task_state));
        EngineHandle {
            submit,
            state,
            next_id: Arc::new(AtomicU64::new(1)),
        }
    }

    /// Queues a request; its events arrive on the returned receiver, ending with `Finished`.
    /// The id in `spec` is replaced by a fresh one.
    pub fn submit(
        &self,
        mut spec: RequestSpec,
    ) -> Result<mpsc::UnboundedReceiver<Event>, SubmitError> {
        spec.id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (events, rx) = mpsc::unbounded_channel();
        self.submit
            .try_send(Submission { spec, events })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => SubmitError::Busy,
                mpsc::error::TrySendError::Closed(_) => SubmitError::Stopped,
            })?;
        Ok(rx)
    }

    /// The latest state.
    pub fn state(&self) -> State {
        match self.state.lock() {
            Ok(state) => state.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

fn snapshot(engine: &Engine, recorder: &Recorder) -> State {
    State {
        running: engine.running(),
        waiting: engine.waiting(),
        kv_usage: engine.kv_usage(),
        totals: engine.totals().clone(),
        latencies: recorder.latencies().clone(),
    }
}

fn publish(state: &Mutex<State>, engine: &Engine, recorder: &Recorder) {
    let fresh = snapshot(engine, recorder);
    match state.lock() {
        Ok(mut guard) => *guard = fresh,
        Err(poisoned) => *poisoned.into_inner() = fresh,
    }
}

async fn run(
    mut engine: Engine,
    mut recorder: Recorder,
    mut rx: mpsc::Receiver<Submission>,
    state: Arc<Mutex<State>>,
) {
    // Simulated time is seconds since the task started.
    let start = Instant::now();
    let mut subscribers: HashMap<u64, mpsc::UnboundedSender<Event>> = HashMap::new();
    loop {
        if engine.is_idle() {
            publish(&state, &engine, &recorder);
            let Some(first) = rx.recv().await else { return };
            engine.advance_to(start.elapsed().as_secs_f64());
            accept(first, &mut engine, &mut recorder, &mut subscribers);
        }
        while let Ok(next) = rx.try_recv() {
            accept(next, &mut engine, &mut recorder, &mut subscribers);
        }
        let events = engine.step();
        tokio::time::sleep_until(start + Duration::from_secs_f64(engine.now())).await;
        recorder.observe(&events);
        for event in events {
            let id = match event {
                Event::Scheduled { id, .. }
                | Event::Token { id, .. }
                | Event::Preempted { id, .. }
                | Event::Finished { id, .. } => id,
            };
            if let Some(tx) = subscribers.get(&id) {
                // A client that went away just stops listening.
                let _ = tx.send(event);
            }
            if matches!(event, Event::Finished { .. }) {
                subscribers.remove(&id);
            }
        }
        publish(&state, &engine, &recorder);
    }
}

fn accept(
    submission: Submission,
    engine: &mut Engine,
    recorder: &mut Recorder,
    subscribers: &mut HashMap<u64, mpsc::UnboundedSender<Event>>,
) {
    recorder.arrive(&submission.spec, engine.now());
    subscribers.insert(submission.spec.id, submission.events);
    engine.submit(submission.spec);
}

/// The recorder size used by [`EngineHandle::start`] callers.
pub fn keep_finished() -> usize {
    KEEP_FINISHED
}
