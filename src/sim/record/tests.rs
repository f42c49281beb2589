//! Ground truth from engine events.

use super::*;
use crate::sim::engine::{Engine, Profile};

fn buckets() -> Buckets {
    Buckets {
        ttft: vec![0.01, 0.1, 1.0],
        itl: vec![0.005, 0.05, 0.5],
        e2e: vec![0.1, 1.0, 10.0],
        queue: vec![0.1, 1.0, 10.0],
        phase: vec![0.1, 1.0, 10.0],
        tokens: vec![10.0, 100.0],
    }
}

fn spec(id: u64, prompt: u32, natural: u32) -> RequestSpec {
    RequestSpec {
        id,
        prompt_tokens: prompt,
        cached_tokens: 0,
        natural_length: natural,
        max_tokens: 100,
    }
}

fn drive(engine: &mut Engine, recorder: &mut Recorder) {
    for _ in 0..10_000 {
        if engine.is_idle() {
            return;
        }
        let events = engine.step();
        recorder.observe(&events);
    }
    panic!("did not drain");
}

#[test]
fn histogram_buckets_follow_prometheus_le() {
    let mut h = Histogram::new(&[1.0, 2.0]);
    for v in [0.5, 1.0, 1.5, 2.0, 3.0] {
        h.observe(v);
    }
    assert_eq!(h.cumulative(), [(1.0, 2), (2.0, 4), (f64::INFINITY, 5)]);
    assert_eq!((h.count, h.sum), (5, 8.0));
}

#[test]
fn records_match_the_engine_timeline() {
    let mut engine = Engine::new(Profile::cpu_270m());
    let mut recorder = Recorder::new(&buckets(), 16);
    for id in 0..6 {
        let s = spec(id, 10 + id as u32, 3 + id as u32);
        recorder.arrive(&s, 0.0);
        engine.submit(s);
    }
    drive(&mut engine, &mut recorder);
    let records: Vec<&RequestRecord> = recorder.finished().collect();
    assert_eq!(records.len(), 6);
    let l = recorder.latencies();
    assert_eq!(l.ttft.count, 6);
    assert_eq!(l.e2e.count, 6);
    // One gap per token after the first.
    let tokens: u64 = records.iter().map(|r| r.token_times.len() as u64).sum();
    assert_eq!(l.itl.count, tokens - 6);
    assert_eq!(tokens, engine.totals().generated_tokens);
    for r in &records {
        assert_eq!(r.token_times.len() as u32, 3 + r.id as u32);
        assert_eq!(r.outcome, Some(Finish::Stop));
        let ttft = r.ttft().unwrap();
        assert!(ttft > 0.0 && ttft <= r.e2e().unwrap());
    }
    // 4 slots: the last two queued behind the first four.
    let queued = records
        .iter()
        .filter(|r| r.scheduled.unwrap() > 0.0)
        .count();
    assert_eq!(queued, 2);
    assert!((l.e2e.sum - records.iter().map(|r| r.e2e().unwrap()).sum::<f64>()).abs() < 1e-9);
}

#[test]
fn the_finished_ring_is_bounded() {
    let mut engine = Engine::new(Profile::gpu_7b());
    let mut recorder = Recorder::new(&buckets(), 3);
    for id in 0..10 {
        let s = spec(id, 5, 2);
        recorder.arrive(&s, 0.0);
        engine.submit(s);
    }
    drive(&mut engine, &mut recorder);
    let ids: Vec<u64> = recorder.finished().map(|r| r.id).collect();
    assert_eq!(ids, [7, 8, 9]);
    assert_eq!(
        recorder.latencies().e2e.count,
        10,
        "histograms see every request"
    );
    assert!(recorder.open(9).is_none());
}

/// Two requests through a KV cache too small for both: one is preempted.
fn preempting_run() -> (Engine, Recorder) {
    let tight = Profile {
        kv_blocks: 6,
        block_tokens: 4,
        ..Profile::cpu_270m()
    };
    let mut engine = Engine::new(tight);
    let mut recorder = Recorder::new(&buckets(), 8);
    for id in 1..=2 {
        let s = spec(id, 8, 8);
        recorder.arrive(&s, 0.0);
        engine.submit(s);
    }
    drive(&mut engine, &mut recorder);
    (engine, recorder)
}

#[test]
fn preemptions_are_counted_per_request() {
    let (engine, recorder) = preempting_run();
    let preempted: u32 = recorder.finished().map(|r| r.preemptions).sum();
    assert_eq!(u64::from(preempted), engine.totals().preemptions);
    assert!(preempted > 0);
}

#[test]
fn a_request_preempted_after_its_first_token_keeps_its_first_scheduling() {
    let (_, recorder) = preempting_run();
    assert!(recorder.finished().any(|r| r.preemptions > 0));
    for r in recorder.finished() {
        let scheduled = r.scheduled.unwrap();
        assert!(scheduled <= r.token_times[0], "{r:?}");
    }
    let latencies = recorder.latencies();
    assert!(latencies.prefill.sum >= 0.0 && latencies.queue.sum >= 0.0);
}

#[test]
fn quantile_bounds_are_the_holding_buckets() {
    let mut h = Histogram::new(&[1.0, 2.0, 5.0]);
    assert_eq!(h.quantile_bound(0.5), None);
    for v in [0.5, 0.7, 1.5, 4.0] {
        h.observe(v);
    }
    assert_eq!(h.quantile_bound(0.5), Some(1.0));
    assert_eq!(h.quantile_bound(0.75), Some(2.0));
    assert_eq!(h.quantile_bound(0.99), Some(5.0));
    h.observe(9.0);
    assert_eq!(h.quantile_bound(1.0), Some(f64::INFINITY));
}
