//! The engine model, step by step on simulated time.

use super::*;

fn spec(id: u64, prompt: u32, natural: u32, max: u32) -> RequestSpec {
    RequestSpec {
        id,
        prompt_tokens: prompt,
        cached_tokens: 0,
        natural_length: natural,
        max_tokens: max,
    }
}

fn tiny(max_running: usize, kv_blocks: u32) -> Profile {
    Profile {
        max_running,
        kv_blocks,
        block_tokens: 4,
        prefill_per_token: 0.001,
        decode_base: 0.010,
        decode_per_seq: 0.002,
        admitting: true,
    }
}

/// Steps until idle (bounded), collecting events.
fn run(engine: &mut Engine) -> Vec<Event> {
    let mut events = Vec::new();
    for _ in 0..100_000 {
        if engine.is_idle() {
            return events;
        }
        events.extend(engine.step());
    }
    panic!("engine did not drain");
}

fn finished(events: &[Event]) -> Vec<(u64, Finish, u32)> {
    events
        .iter()
        .filter_map(|e| match *e {
            Event::Finished {
                id,
                reason,
                generated,
                ..
            } => Some((id, reason, generated)),
            _ => None,
        })
        .collect()
}

fn token_times(events: &[Event], want: u64) -> Vec<f64> {
    events
        .iter()
        .filter_map(|e| match *e {
            Event::Token { id, at, .. } if id == want => Some(at),
            _ => None,
        })
        .collect()
}

#[test]
fn one_request_prefills_then_decodes_at_the_single_stream_rate() {
    let mut engine = Engine::new(tiny(4, 100));
    engine.submit(spec(1, 10, 5, 100));
    let events = run(&mut engine);
    let times = token_times(&events, 1);
    assert_eq!(times.len(), 5);
    // First token: prefill of 10 tokens plus one decode step.
    assert!((times[0] - (0.010 + 0.010)).abs() < 1e-12, "{times:?}");
    for pair in times.windows(2) {
        assert!((pair[1] - pair[0] - 0.010).abs() < 1e-12);
    }
    assert_eq!(finished(&events), [(1, Finish::Stop, 5)]);
    assert_eq!(engine.totals().prompt_tokens, 10);
    assert_eq!(engine.totals().generated_tokens, 5);
    assert_eq!(engine.kv_usage(), 0.0);
}

#[test]
fn max_tokens_cuts_generation_with_length() {
    let mut engine = Engine::new(tiny(4, 100));
    engine.submit(spec(1, 4, 50, 3));
    let events = run(&mut engine);
    assert_eq!(finished(&events), [(1, Finish::Length, 3)]);
    assert_eq!(engine.totals().finished_length, 1);
}

#[test]
fn a_batch_decodes_together_and_each_step_costs_more() {
    let mut engine = Engine::new(tiny(4, 100));
    for id in 0..4 {
        engine.submit(spec(id, 2, 3, 10));
    }
    let first = engine.step();
    let scheduled = first
        .iter()
        .filter(|e| matches!(e, Event::Scheduled { .. }))
        .count();
    assert_eq!(scheduled, 4);
    assert_eq!(engine.running(), 4);
    // 8 prompt tokens of prefill, then a 4-wide decode step.
    assert!((engine.now() - (0.008 + 0.010 + 3.0 * 0.002)).abs() < 1e-12);
}

#[test]
fn requests_beyond_max_running_wait_in_the_queue() {
    let mut engine = Engine::new(tiny(2, 100));
    for id in 0..3 {
        engine.submit(spec(id, 2, 2, 10));
    }
    engine.step();
    assert_eq!((engine.running(), engine.waiting()), (2, 1));
    let events = run(&mut engine);
    let ids: Vec<u64> = finished(&events).iter().map(|f| f.0).collect();
    assert_eq!(ids, [0, 1, 2]);
    // The third started only after the first two finished.
    let third_first_token = token_times(&events, 2)[0];
    let second_last_token = *token_times(&events, 1).last().unwrap();
    assert!(third_first_token > second_last_token);
}

#[test]
fn a_full_kv_cache_preempts_the_newest_and_recomputes_it() {
    // 6 blocks of 4 tokens: two sequences of 8-token prompts growing to 16 tokens each
    // cannot both fit.
    let mut engine = Engine::new(tiny(4, 6));
    engine.submit(spec(1, 8, 8, 100));
    engine.submit(spec(2, 8, 8, 100));
    let events = run(&mut engine);
    let preempted: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::Preempted { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    assert!(!preempted.is_empty());
    assert!(
        preempted.iter().all(|id| *id == 2),
        "the newest goes: {preempted:?}"
    );
    assert_eq!(
        finished(&events),
        [(1, Finish::Stop, 8), (2, Finish::Stop, 8)]
    );
    let totals = engine.totals();
    assert_eq!(totals.preemptions, preempted.len() as u64);
    // Each token is produced once and each prompt counted once, despite recomputation.
    assert_eq!(totals.generated_tokens, 16);
    assert_eq!(totals.prompt_tokens, 16);
    assert_eq!(token_times(&events, 2).len(), 8);
    assert_eq!(engine.kv_usage(), 0.0);
}

#[test]
fn prefix_cache_hits_skip_prefill_work() {
    let mut cold = Engine::new(tiny(4, 100));
    cold.submit(spec(1, 100, 1, 10));
    cold.step();
    let mut warm = Engine::new(tiny(4, 100));
    warm.submit(RequestSpec {
        cached_tokens: 60,
        ..spec(1, 100, 1, 10)
    });
    warm.step();
    assert!((cold.now() - warm.now() - 60.0 * 0.001).abs() < 1e-12);
    assert_eq!(warm.totals().cached_tokens, 60);
    assert_eq!(warm.totals().prompt_tokens, 100);
}

#[test]
fn a_prompt_larger_than_the_cache_is_rejected() {
    let mut engine = Engine::new(tiny(4, 3));
    engine.submit(spec(1, 50, 5, 10));
    engine.submit(spec(2, 4, 1, 10));
    let events = run(&mut engine);
    assert_eq!(
        finished(&events),
        [(1, Finish::TooLong, 0), (2, Finish::Stop, 1)]
    );
    assert_eq!(engine.totals().rejected_too_long, 1);
}

#[test]
fn same_inputs_same_events() {
    let make = || {
        let mut engine = Engine::new(Profile::cpu_270m());
        for id in 0..12 {
            engine.submit(spec(id, 20 + id as u32 * 7, 5 + id as u32 % 9, 12));
        }
        run(&mut engine)
    };
    assert_eq!(make(), make());
}

#[test]
fn cpu_profile_matches_the_measured_llamacpp_rates() {
    // One stream: ~23 tokens/s; four streams: ~52 tokens/s in aggregate (real-servers.md).
    let rate = |streams: u64| {
        let mut engine = Engine::new(Profile::cpu_270m());
        for id in 0..streams {
            engine.submit(spec(id, 1, 200, 200));
        }
        engine.step(); // leave prefill out
        let (t0, g0) = (engine.now(), engine.totals().generated_tokens);
        for _ in 0..100 {
            engine.step();
        }
        (engine.totals().generated_tokens - g0) as f64 / (engine.now() - t0)
    };
    let one = rate(1);
    let four = rate(4);
    assert!((20.0..=26.0).contains(&one), "{one}");
    assert!((46.0..=58.0).contains(&four), "{four}");
}

#[test]
fn shrinking_the_cache_takes_effect_as_blocks_free() {
    let mut engine = Engine::new(tiny(4, 100));
    engine.submit(spec(1, 40, 2, 10));
    engine.step();
    // 42 tokens in 4-token blocks: 11 of 100 blocks, then 11 of 20.
    assert!((engine.kv_usage() - 0.11).abs() < 1e-12);
    engine.set_profile(tiny(4, 20));
    let usage = engine.kv_usage();
    assert!((usage - 0.55).abs() < 1e-12, "{usage}");
    run(&mut engine);
    assert_eq!(engine.kv_usage(), 0.0);
}

proptest::proptest! {
    /// Whatever the load and capacity: the engine drains, every request finishes once with
    /// the right token count, each token index appears once and in order, time never goes
    /// back, and the cache is empty at the end.
    #[test]
    fn every_request_finishes_once_with_its_tokens(
        max_running in 1usize..6,
        kv_blocks in 1u32..40,
        requests in proptest::collection::vec((1u32..40, 1u32..30, 1u32..30), 1..12),
    ) {
        let mut engine = Engine::new(tiny(max_running, kv_blocks));
        for (id, (prompt, natural, max)) in requests.iter().enumerate() {
            engine.submit(spec(id as u64, *prompt, *natural, *max));
        }
        let events = run(&mut engine);
        let mut last_at = 0.0;
        for event in &events {
            let at = match *event {
                Event::Scheduled { at, .. } | Event::Token { at, .. } | Event::Preempted { at, .. } | Event::Finished { at, .. } => at,
            };
            proptest::prop_assert!(at >= last_at);
            last_at = at;
        }
        let done = finished(&events);
        proptest::prop_assert_eq!(done.len(), requests.len());
        for (id, (prompt, natural, max)) in requests.iter().enumerate() {
            let (_, reason, generated) = done.iter().find(|f| f.0 == id as u64).copied().unwrap();
            let indices: Vec<u32> = events.iter().filter_map(|e| match *e {
                Event::Token { id: t, index, .. } if t == id as u64 => Some(index),
                _ => None,
            }).collect();
            proptest::prop_assert_eq!(indices.len() as u32, generated);
            proptest::prop_assert!(indices.iter().enumerate().all(|(i, x)| i as u32 == *x));
            match reason {
                Finish::Stop => proptest::prop_assert_eq!(generated, *natural),
                Finish::Length => proptest::prop_assert_eq!(generated, *max),
                Finish::TooLong => proptest::prop_assert!((prompt + generated + 1).div_ceil(4) > kv_blocks),
                Finish::Aborted => proptest::prop_assert!(false, "nothing was aborted"),
            }
        }
        proptest::prop_assert_eq!(engine.kv_usage(), 0.0);
        let totals = engine.totals();
        let generated: u64 = done.iter().map(|f| u64::from(f.2)).sum();
        proptest::prop_assert_eq!(totals.generated_tokens, generated);
    }
}

#[test]
fn step_tokens_count_prefill_and_decode_per_step() {
    let mut engine = Engine::new(tiny(4, 100));
    for id in 0..4 {
        engine.submit(spec(id, 2, 3, 10));
    }
    run(&mut engine);
    let steps = engine.totals().step_tokens;
    // Step 1: 8 prompt tokens + 4 decoded = 12; steps 2 and 3: 4 decoded each.
    assert_eq!(steps.steps(), 3);
    assert_eq!(steps.sum, 12 + 4 + 4);
    assert_eq!(steps.at_most(1), 0);
    assert_eq!(steps.at_most(4), 2);
    assert_eq!(steps.at_most(8), 2);
    assert_eq!(steps.at_most(16), 3);
}

#[test]
fn step_token_buckets_are_powers_of_two() {
    let mut steps = StepTokens::default();
    for tokens in [0, 1, 2, 3, 4, 5, 8, 9, 16_384, 16_385, u64::MAX] {
        steps.observe(tokens);
    }
    assert_eq!(steps.at_most(1), 2);
    assert_eq!(steps.at_most(2), 3);
    assert_eq!(steps.at_most(4), 5);
    assert_eq!(steps.at_most(8), 7);
    assert_eq!(steps.at_most(16), 8);
    assert_eq!(steps.at_most(16_384), 9);
    assert_eq!(steps.steps(), 11);
}

#[test]
fn an_aborted_request_leaves_the_batch_and_frees_its_blocks() {
    let mut engine = Engine::new(tiny(1, 100));
    engine.submit(spec(1, 8, 50, 100));
    engine.submit(spec(2, 8, 50, 100));
    engine.step();
    assert_eq!((engine.running(), engine.waiting()), (1, 1));
    assert!(engine.kv_usage() > 0.0);
    let Some(Event::Finished {
        id,
        reason,
        generated,
        ..
    }) = engine.abort(1)
    else {
        panic!("request 1 was running");
    };
    assert_eq!((id, reason, generated), (1, Finish::Aborted, 1));
    assert_eq!(engine.running(), 0);
    assert_eq!(engine.kv_usage(), 0.0);
    // A waiting request can be aborted too; an unknown one is not there.
    assert!(engine.abort(2).is_some());
    assert!(engine.abort(2).is_none());
    assert!(engine.is_idle());
    assert_eq!(engine.totals().aborted, 2);
    assert_eq!(
        engine.totals().finished_stop + engine.totals().finished_length,
        0
    );
}

#[test]
fn a_stalled_scheduler_leaves_requests_waiting_without_busy_time_until_it_resumes() {
    let stalled = Profile {
        admitting: false,
        ..tiny(4, 100)
    };
    let mut engine = Engine::new(stalled);
    engine.submit(spec(1, 10, 5, 100));
    engine.submit(spec(2, 10, 5, 100));
    assert!(run(&mut engine).is_empty());
    assert_eq!((engine.waiting(), engine.running()), (2, 0));
    // No step ran: the GPU was idle, not busy doing nothing.
    assert_eq!(engine.totals().steps, 0);
    engine.set_profile(tiny(4, 100));
    let done = finished(&run(&mut engine));
    assert_eq!(done.len(), 2);
}
