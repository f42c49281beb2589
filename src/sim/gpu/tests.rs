//! The simulated GPU, read back through the GPU normaliser `up` uses.

use super::*;
use crate::engines::Index;
use crate::exposition::{Mode, parse};
use crate::gpu::{GpuScrape, GpuSource, detect, normalise};
use crate::sim::dialect::buckets_for;
use crate::sim::dialect::{Dialect, VllmVersion};
use crate::sim::engine::{Engine, Profile, RequestSpec};
use crate::sim::record::Recorder;

const MIB: f64 = 1_048_576.0;

fn read(body: &str) -> GpuScrape {
    let exp = parse(body, Mode::Strict).unwrap();
    assert_eq!(detect(&Index::new(&exp)), Some(GpuSource::Dcgm));
    normalise(&exp, GpuSource::Dcgm)
}

#[test]
fn memory_follows_the_kv_cache_and_utilisation_the_engine_s_busy_time() {
    let mut engine = Engine::new(Profile::gpu_7b());
    let recorder = Recorder::new(&buckets_for(Dialect::Vllm(VllmVersion::V0_33)), 8);
    for id in 0..40u32 {
        engine.submit(RequestSpec {
            id: u64::from(id),
            prompt_tokens: 2_000,
            cached_tokens: 0,
            natural_length: 500,
            max_tokens: 500,
        });
    }
    let mut gpu = SimGpu::new("vllm", 8000);
    let idle = read(&gpu.render(
        0.0,
        &Snapshot::of_engine("m", &engine, &recorder),
        GpuFaults::default(),
    ));
    let uuid = crate::gpu::normalise_uuid(gpu.uuid());
    assert_eq!(idle.value("llm_gpu_utilization_ratio", &uuid), Some(0.0));
    assert_eq!(
        idle.value("llm_gpu_memory_used_bytes", &uuid),
        Some((14_336.0 + 1_024.0) * MIB)
    );
    assert_eq!(
        idle.value("llm_gpu_memory_total_bytes", &uuid),
        Some(81_559.0 * MIB)
    );
    assert_eq!(idle.devices[0].pods[0].pod, "vllm-8000");
    // Run the engine for a while: busy the whole time, KV filling.
    while engine.now() < 5.0 {
        engine.step();
    }
    let (kv, now) = (engine.kv_usage(), engine.now());
    let busy = engine.totals().prefill_seconds + engine.totals().decode_seconds;
    assert!(kv > 0.1, "{kv}");
    let loaded = read(&gpu.render(
        now,
        &Snapshot::of_engine("m", &engine, &recorder),
        GpuFaults::default(),
    ));
    let util = loaded.value("llm_gpu_utilization_ratio", &uuid).unwrap();
    assert!(
        (util - (busy / now).min(1.0)).abs() <= 0.01,
        "{util} vs {busy} / {now}"
    );
    let used = loaded.value("llm_gpu_memory_used_bytes", &uuid).unwrap() / MIB;
    let want = 14_336.0 + 1_024.0 + kv * 6_900.0 * 16.0 * 0.5;
    assert!((used - want.round()).abs() <= 1.0, "{used} vs {want}");
    let power = loaded.value("llm_gpu_power_watts", &uuid).unwrap();
    assert!(power > 600.0, "{power}");
    assert!(loaded.value("llm_gpu_energy_joules_total", &uuid).unwrap() > 1_000.0);
}

#[test]
fn faults_throttle_the_clocks_record_an_xid_and_fill_memory_outside_the_kv_cache() {
    let engine = Engine::new(Profile::gpu_7b());
    let recorder = Recorder::new(&buckets_for(Dialect::Tgi), 8);
    let mut gpu = SimGpu::new("tgi", 3000);
    let uuid = crate::gpu::normalise_uuid(gpu.uuid());
    let faults = GpuFaults {
        throttle: Some(Throttle::Thermal),
        xid: 79,
        foreign_memory_gib: 60,
    };
    gpu.render(10.0, &Snapshot::of_engine("m", &engine, &recorder), faults);
    let body = gpu.render(40.0, &Snapshot::of_engine("m", &engine, &recorder), faults);
    let scrape = read(&body);
    let throttled = scrape.reading("llm_gpu_throttled_seconds_total").unwrap();
    let thermal = throttled
        .samples
        .iter()
        .find(|s| s.reason == Some("thermal"))
        .unwrap();
    assert!((thermal.value - 30.0).abs() < 1e-9, "{}", thermal.value);
    assert_eq!(scrape.value("llm_gpu_last_xid", &uuid), Some(79.0));
    assert_eq!(scrape.value("llm_gpu_sm_clock_hertz", &uuid), Some(1410e6));
    // Weights plus 60 GiB held by another process; the KV cache is empty.
    let used = scrape.value("llm_gpu_memory_used_bytes", &uuid).unwrap() / MIB;
    assert_eq!(used, 14_336.0 + 1_024.0 + 61_440.0);
    assert!(body.contains("err_msg=\"GPU has fallen off the bus\""));
    assert_eq!(Throttle::parse("none"), Ok(None));
    assert!(Throttle::parse("hot").unwrap_err().contains("gpu_throttle"));
}
