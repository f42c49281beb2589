//! Each dialect, read back through the same parser and normaliser that `llmwatch scrape`
//! uses, says what the simulated engine did.

use super::*;
use crate::engines::{Engine as EngineKind, Index, Value, detect, normalise};
use crate::exposition::{Mode, parse};
use crate::sim::engine::{Engine, Profile, RequestSpec};
use crate::sim::record::Recorder;

/// Runs 12 requests through a CPU-profile engine, leaving some in flight.
fn busy_engine(buckets: &Buckets) -> (Engine, Recorder) {
    let mut engine = Engine::new(Profile::cpu_270m());
    let mut recorder = Recorder::new(buckets, 64);
    for id in 0..12u32 {
        let spec = RequestSpec {
            id: u64::from(id),
            prompt_tokens: 20 + id * 5,
            cached_tokens: id % 3 * 4,
            natural_length: 4 + id % 5,
            max_tokens: 6,
        };
        recorder.arrive(&spec, 0.0);
        engine.submit(spec);
    }
    for _ in 0..14 {
        let events = engine.step();
        recorder.observe(&events);
    }
    (engine, recorder)
}

fn snapshot<'a>(engine: &'a Engine, recorder: &'a Recorder) -> Snapshot<'a> {
    Snapshot {
        model: "sim-model",
        running: engine.running(),
        waiting: engine.waiting(),
        kv_usage: engine.kv_usage(),
        context_tokens: engine.running_context_tokens(),
        totals: engine.totals(),
        latencies: recorder.latencies(),
        started_unix: 1_795_813_765.756_2,
        profile: engine.profile(),
        front: FrontCounts::default(),
        exposure: Exposure::default(),
    }
}

/// Reads a rendered body back the way `llmwatch scrape` does: checks the parser's
/// invariants, detects the engine (which must be `kind`) and normalises.
fn read_back(text: &str, kind: EngineKind) -> (String, Vec<crate::engines::Reading>) {
    assert_eq!(crate::exposition::invariants::check(text), Ok(()));
    let exp = parse(text, Mode::Strict).unwrap();
    assert!(exp.duplicate_series().is_empty());
    let index = Index::new(&exp);
    let detection = detect(&index);
    assert_eq!(detection.engine, Some(kind));
    (detection.version, normalise(&index, kind, "sim-model"))
}

/// TGI and SGLang count tokens and requests when a request finishes: the read-back totals
/// equal the recorder's sums over finished requests, all with outcome `ok`.
fn assert_counted_at_finish(r: &[crate::engines::Reading], engine: &Engine, recorder: &Recorder) {
    let l = recorder.latencies();
    let t = engine.totals();
    assert_eq!(scalar(r, "llm_prompt_tokens_total"), l.prompt_tokens.sum);
    assert_eq!(
        scalar(r, "llm_generation_tokens_total"),
        l.output_tokens.sum
    );
    let finished = (t.finished_stop + t.finished_length) as f64;
    assert_eq!(outcomes(r), [("ok", finished)]);
}

fn scalar(readings: &[crate::engines::Reading], name: &str) -> f64 {
    let reading = readings.iter().find(|r| r.signal.name == name).unwrap();
    match reading.series.first().map(|s| &s.value) {
        Some(Value::Scalar(v)) => *v,
        other => panic!("{name}: {other:?} ({:?})", reading.source),
    }
}

fn outcomes(readings: &[crate::engines::Reading]) -> Vec<(&'static str, f64)> {
    let reading = readings
        .iter()
        .find(|r| r.signal.name == "llm_requests_finished_total")
        .unwrap();
    reading
        .series
        .iter()
        .filter_map(|s| match s.value {
            Value::Scalar(v) if v > 0.0 => Some((s.outcome.unwrap_or("?"), v)),
            _ => None,
        })
        .collect()
}

#[test]
fn vllm_dialects_read_back_as_the_engine_state() {
    for (version, range) in [
        (VllmVersion::V0_33, "> 0.13"),
        (VllmVersion::V0_10, ">= 0.10.2, < 0.12"),
    ] {
        let (engine, recorder) = busy_engine(&vllm_buckets());
        assert!(engine.running() > 0 && engine.totals().finished_stop > 0);
        let text = render_vllm(&snapshot(&engine, &recorder), version);
        assert_eq!(crate::exposition::invariants::check(&text), Ok(()));
        let exp = parse(&text, Mode::Strict).unwrap();
        assert!(exp.duplicate_series().is_empty());
        let index = Index::new(&exp);
        let detection = detect(&index);
        assert_eq!(detection.engine, Some(EngineKind::Vllm));
        assert_eq!(detection.version, range, "{version:?}");
        let r = normalise(&index, EngineKind::Vllm, "unused");
        let t = engine.totals();
        assert_eq!(scalar(&r, "llm_requests_running"), engine.running() as f64);
        assert_eq!(scalar(&r, "llm_requests_waiting"), engine.waiting() as f64);
        assert_eq!(scalar(&r, "llm_kv_cache_usage_ratio"), engine.kv_usage());
        assert_eq!(
            scalar(&r, "llm_prompt_tokens_total"),
            t.prompt_tokens as f64
        );
        assert_eq!(
            scalar(&r, "llm_generation_tokens_total"),
            t.generated_tokens as f64
        );
        assert_eq!(scalar(&r, "llm_preemptions_total"), t.preemptions as f64);
        assert_eq!(
            outcomes(&r),
            [
                ("ok_length", t.finished_length as f64),
                ("ok_stop", t.finished_stop as f64)
            ]
        );
        let ttft = r
            .iter()
            .find(|r| r.signal.name == "llm_time_to_first_token_seconds")
            .unwrap();
        let Some(Value::Histogram(h)) = ttft.series.first().map(|s| &s.value) else {
            panic!("no TTFT histogram");
        };
        let finished = t.finished_stop + t.finished_length;
        assert_eq!(h.count, finished as f64);
        assert_eq!(h.buckets.len(), 23, "vLLM's 22 TTFT bounds and +Inf");
        assert_eq!(ttft.series[0].model, "sim-model");
        assert_iteration_tokens_and_cache_config(&exp, &engine);
    }
}

/// `iteration_tokens_total` (a histogram despite its name) counts every step with its
/// prefill and decode tokens; `cache_config_info` names the KV geometry.
fn assert_iteration_tokens_and_cache_config(exp: &crate::exposition::Exposition, engine: &Engine) {
    let value = |name: &str, le: Option<&str>| {
        exp.samples
            .iter()
            .find(|s| s.name == name && exp.label(s, "le") == le)
            .map(|s| s.value)
    };
    let t = engine.totals();
    assert_eq!(
        t.preemptions, 0,
        "a recompute would add prefill tokens to the sum"
    );
    let family = "vllm:iteration_tokens_total";
    assert_eq!(
        value(&format!("{family}_count"), None),
        Some(t.steps as f64)
    );
    let uncached = t.prompt_tokens - t.cached_tokens;
    assert_eq!(
        value(&format!("{family}_sum"), None),
        Some((uncached + t.generated_tokens) as f64)
    );
    let bucket = format!("{family}_bucket");
    assert_eq!(value(&bucket, Some("+Inf")), Some(t.steps as f64));
    assert!(value(&bucket, Some("16384.0")).is_some());
    let info = exp
        .samples
        .iter()
        .find(|s| s.name == "vllm:cache_config_info")
        .unwrap();
    assert_eq!(info.value, 1.0);
    let blocks = engine.profile().kv_blocks.to_string();
    assert_eq!(exp.label(info, "num_gpu_blocks"), Some(blocks.as_str()));
    assert_eq!(exp.label(info, "block_size"), Some("16"));
}

#[test]
fn llamacpp_dialect_reads_back_as_the_engine_state() {
    let (engine, recorder) = busy_engine(&vllm_buckets());
    let window = ScrapeWindow {
        prompt_tokens: 10,
        prompt_seconds: 0.025,
        generated_tokens: 40,
        generated_seconds: 1.0,
    };
    let text = render_llamacpp(&snapshot(&engine, &recorder), &window, 3.5);
    let (_, r) = read_back(&text, EngineKind::LlamaCpp);
    let t = engine.totals();
    assert_eq!(scalar(&r, "llm_requests_running"), engine.running() as f64);
    assert_eq!(scalar(&r, "llm_requests_waiting"), engine.waiting() as f64);
    // Processed + cached, as llama.cpp splits them.
    assert_eq!(
        scalar(&r, "llm_prompt_tokens_total"),
        t.prompt_tokens as f64
    );
    assert_eq!(
        scalar(&r, "llm_prompt_tokens_cached_total"),
        t.cached_tokens as f64
    );
    assert_eq!(
        scalar(&r, "llm_generation_tokens_total"),
        t.generated_tokens as f64
    );
    assert!(
        text.contains("llamacpp:predicted_tokens_seconds 40\n"),
        "{text}"
    );
    assert!(
        text.contains("llamacpp:prompt_tokens_seconds 400\n"),
        "{text}"
    );
    assert!(text.contains("# TYPE llamacpp:prompt_tokens_total counter\n"));
    assert!(!text.contains('{'), "llama.cpp has no labels");
}

#[test]
fn tgi_dialect_reads_back_and_shuffles_families_per_scrape() {
    let (engine, recorder) = busy_engine(&tgi_buckets());
    let snap = snapshot(&engine, &recorder);
    let text = render_tgi(&snap, 7);
    assert_ne!(text, render_tgi(&snap, 8), "family order varies per scrape");
    let (_, r) = read_back(&text, EngineKind::Tgi);
    assert_eq!(scalar(&r, "llm_requests_running"), engine.running() as f64);
    assert_eq!(scalar(&r, "llm_requests_waiting"), engine.waiting() as f64);
    // TGI's token totals are histogram sums over finished requests.
    assert_counted_at_finish(&r, &engine, &recorder);
    assert!(text.contains("tgi_request_duration_bucket{le=\"0.00015000000000000001\"}"));
    assert!(!text.contains("_total"), "TGI counters have no _total");
}

#[test]
fn sglang_dialect_reads_back_through_rank_and_pid_labels() {
    let (engine, recorder) = busy_engine(&sglang_buckets());
    let text = render_sglang(&snapshot(&engine, &recorder), 20723);
    let (version, r) = read_back(&text, EngineKind::Sglang);
    assert_eq!(version, ">= 0.5.23");
    let t = engine.totals();
    assert_eq!(scalar(&r, "llm_requests_running"), engine.running() as f64);
    assert_eq!(scalar(&r, "llm_preemptions_total"), t.preemptions as f64);
    assert_counted_at_finish(&r, &engine, &recorder);
    assert!(text.contains("pid=\"20723\""));
}

mod completeness;
