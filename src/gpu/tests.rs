use super::*;
use crate::engines::{Index, SignalKind};
use crate::exposition::{Mode, parse};

const MIB: f64 = 1_048_576.0;

fn read(file: &str) -> GpuScrape {
    let path = format!("{}/tests/fixtures/gpu/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let exp = parse(&text, Mode::Strict).unwrap();
    let source = detect(&Index::new(&exp)).unwrap();
    normalise(&exp, source)
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() <= 1e-9 * b.abs().max(1.0))
}

#[test]
fn schema_rules_hold_for_every_gpu_signal() {
    for s in GPU_SIGNALS {
        assert!(
            s.name.starts_with("llm_gpu_") || s.name.starts_with("llm_process_"),
            "{}",
            s.name
        );
        assert_eq!(
            s.kind == SignalKind::Counter,
            s.name.ends_with("_total"),
            "{}",
            s.name
        );
        assert!(!s.help.is_empty(), "{}", s.name);
        if s.unit == "ratio" {
            assert!(s.name.ends_with("_ratio"), "{}", s.name);
        }
        // Every cell explains a missing value.
        for source in GpuSource::ALL {
            let cell = s.mapping(source);
            if cell.how == signals::GpuHow::Missing {
                assert!(!cell.note.is_empty(), "{} / {source:?}", s.name);
            }
        }
    }
}

#[test]
fn uuids_are_keyed_in_one_form() {
    assert_eq!(
        normalise_uuid("GPU-AF2C63A8-8c8b-21cc-581a-bab6bba89d08"),
        "af2c63a8-8c8b-21cc-581a-bab6bba89d08"
    );
    assert_eq!(normalise_uuid("gpu-abc"), "abc");
    assert_eq!(normalise_uuid("00000000-0000"), "00000000-0000");
    assert_eq!(normalise_uuid(" GPU-"), "");
}

#[test]
fn dcgm_idle_l40s_reads_every_default_counter_the_table_knows() {
    let scrape = read("dcgm-exporter-l40s-idle.txt");
    assert_eq!(scrape.source, GpuSource::Dcgm);
    assert_eq!(scrape.devices.len(), 1);
    let gpu = &scrape.devices[0];
    let uuid = "5b4e07f6-3a86-4340-039d-25f2a83cdc43";
    assert_eq!(gpu.key.uuid, uuid);
    assert_eq!(gpu.uuid, "GPU-5b4e07f6-3a86-4340-039d-25f2a83cdc43");
    assert_eq!(gpu.index.as_deref(), Some("0"));
    assert_eq!(gpu.model.as_deref(), Some("NVIDIA L40S"));
    assert_eq!(gpu.hostname.as_deref(), Some("gpu1-wl8sg"));
    assert!(gpu.pods.is_empty());
    let value = |name| scrape.value(name, uuid);
    assert!(close(value("llm_gpu_utilization_ratio"), 0.0));
    assert!(close(value("llm_gpu_memory_used_bytes"), 0.0));
    // No FB_TOTAL in the default counters: free + used + reserved.
    assert!(close(
        value("llm_gpu_memory_total_bytes"),
        (45459.0 + 608.0) * MIB
    ));
    assert!(close(value("llm_gpu_power_watts"), 35.686));
    assert!(close(value("llm_gpu_temperature_celsius"), 32.0));
    assert!(close(value("llm_gpu_sm_clock_hertz"), 210e6));
    assert!(close(value("llm_gpu_energy_joules_total"), 1_820_391.533));
    // Not in the default counters: absent, not zero.
    assert_eq!(value("llm_gpu_power_limit_watts"), None);
    assert!(scrape.reading("llm_gpu_throttled_seconds_total").is_none());
    assert!(scrape.reading("llm_gpu_last_xid").is_none());
    // The utilisation came from GPU_UTIL, not the fallback.
    assert_eq!(
        scrape.reading("llm_gpu_utilization_ratio").unwrap().used,
        ["DCGM_FI_DEV_GPU_UTIL"]
    );
    assert!(
        scrape
            .unknown
            .contains(&"DCGM_FI_DEV_MEM_CLOCK".to_string())
    );
    assert!(
        scrape
            .unknown
            .contains(&"DCGM_FI_PROF_PIPE_TENSOR_ACTIVE".to_string())
    );
    assert!(!scrape.unknown.contains(&"DCGM_FI_DEV_GPU_UTIL".to_string()));
    assert_eq!(scrape.without_gpu, 0);
}

#[test]
fn dcgm_pods_own_series_win_over_per_pod_copies_and_throttling_is_split_by_reason() {
    let scrape = read("dcgm-exporter-h100-pods.txt");
    assert_eq!(scrape.devices.len(), 2);
    let busy = "8f0b0c1e-4a5d-4b7e-9c1d-2e3f4a5b6c7d";
    let idle = "1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d";
    let held = scrape.devices.iter().find(|d| d.key.uuid == busy).unwrap();
    assert_eq!(
        held.pods,
        [PodRef {
            namespace: Some("llm".into()),
            pod: "llama-0".into(),
            container: Some("vllm".into()),
        }]
    );
    assert_eq!(held.hostname.as_deref(), Some("node-7"));
    let free = scrape.devices.iter().find(|d| d.key.uuid == idle).unwrap();
    assert!(free.pods.is_empty());
    // The device-level series (97 %, 74211 MiB), not the per-pod split (95 %, 72000 MiB).
    assert!(close(scrape.value("llm_gpu_utilization_ratio", busy), 0.97));
    assert!(close(
        scrape.value("llm_gpu_memory_used_bytes", busy),
        74211.0 * MIB
    ));
    // Series that carry the pod labels in place still give one value per GPU.
    assert!(close(scrape.value("llm_gpu_power_watts", busy), 612.304));
    assert!(close(
        scrape.value("llm_gpu_memory_total_bytes", busy),
        (5875.0 + 74211.0 + 1017.0) * MIB
    ));
    let throttled = scrape.reading("llm_gpu_throttled_seconds_total").unwrap();
    let position = scrape.devices.iter().position(|d| d.key.uuid == busy);
    let by_reason = |reason| {
        throttled
            .samples
            .iter()
            .find(|s| Some(s.device) == position && s.reason == Some(reason))
            .map(|s| s.value)
    };
    assert!(close(by_reason("power"), 4.2));
    assert!(close(by_reason("thermal"), 1.5));
    assert_eq!(by_reason("hardware"), None);
    assert!(close(scrape.value("llm_gpu_last_xid", idle), 79.0));
    assert_eq!(scrape.value("llm_gpu_last_xid", busy), None);
    assert_eq!(scrape.unknown, ["DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL"]);
}

#[test]
fn dcgm_old_namespace_mig_instances_are_their_own_gpus_and_fall_back_to_engine_activity() {
    let scrape = read("dcgm-exporter-mig-old-namespace.txt");
    assert_eq!(scrape.source, GpuSource::Dcgm);
    let keys: Vec<(&str, Option<&str>)> = scrape
        .devices
        .iter()
        .map(|d| (d.key.uuid.as_str(), d.key.instance.as_deref()))
        .collect();
    assert_eq!(
        keys,
        [
            ("931446e6-0413-2864-5b76-11227dcda4ae", None),
            ("af2c63a8-8c8b-21cc-581a-bab6bba89d08", None),
            ("af2c63a8-8c8b-21cc-581a-bab6bba89d08", Some("1")),
        ]
    );
    let instance = &scrape.devices[2];
    assert_eq!(instance.profile.as_deref(), Some("4g.40gb"));
    // `pod_name=""` is no pod.
    assert!(instance.pods.is_empty());
    let pod = &scrape.devices[0].pods;
    assert_eq!(pod.len(), 1);
    assert_eq!(pod[0].pod, "d85np-t6mdg");
    assert_eq!(pod[0].namespace.as_deref(), Some("ai-1"));
    assert_eq!(pod[0].container.as_deref(), Some("-grpc-pod"));
    let util = scrape.reading("llm_gpu_utilization_ratio").unwrap();
    let of = |device: usize| {
        util.samples
            .iter()
            .find(|s| s.device == device)
            .map(|s| s.value)
    };
    // Whole GPUs from dcgm_gpu_utilization; the MIG instance, which has none, from the
    // graphics engine's active ratio.
    assert!(close(of(0), 0.12));
    assert!(close(of(1), 0.0));
    assert!(close(of(2), 0.0));
    assert_eq!(
        util.used,
        ["dcgm_gpu_utilization", "dcgm_fi_prof_gr_engine_active"]
    );
    // Only used memory in 1.x names: no total (free + used needs both).
    assert!(scrape.reading("llm_gpu_memory_total_bytes").is_none());
    let used = scrape.reading("llm_gpu_memory_used_bytes").unwrap();
    assert!(
        used.samples
            .iter()
            .any(|s| s.device == 2 && (s.value - 20480.0 * MIB).abs() < 1.0)
    );
}

#[test]
fn dcgm_without_profiling_module_reads_the_device_fields_and_counts_unknown_ones() {
    let scrape = read("dcgm-exporter-no-profiling.txt");
    let uuid = "0d9c8b7a-6f5e-4d3c-2b1a-0f9e8d7c6b5a";
    assert!(close(scrape.value("llm_gpu_utilization_ratio", uuid), 0.88));
    assert_eq!(
        scrape.reading("llm_gpu_utilization_ratio").unwrap().used,
        ["DCGM_FI_DEV_GPU_UTIL"]
    );
    assert!(close(
        scrape.value("llm_gpu_memory_used_bytes", uuid),
        14683.0 * MIB
    ));
    assert_eq!(scrape.unknown, ["DCGM_FI_DEV_FAN_SPEED"]);
}

#[test]
fn nvidia_gpu_exporter_reads_identity_from_the_info_series_and_processes_by_pid() {
    let scrape = read("nvidia-gpu-exporter-h100.txt");
    assert_eq!(scrape.source, GpuSource::NvidiaSmi);
    assert_eq!(scrape.devices.len(), 1);
    let gpu = &scrape.devices[0];
    let uuid = "00000000-0000-0000-0000-000000000000";
    assert_eq!(gpu.key.uuid, uuid);
    assert_eq!(gpu.index.as_deref(), Some("0"));
    assert_eq!(gpu.model.as_deref(), Some("NVIDIA H100 80GB HBM3"));
    let value = |name| scrape.value(name, uuid);
    assert!(close(value("llm_gpu_utilization_ratio"), 1.0));
    assert!(close(value("llm_gpu_memory_used_bytes"), 2.0780679168e10));
    assert!(close(value("llm_gpu_memory_total_bytes"), 8.5520809984e10));
    assert!(close(value("llm_gpu_power_watts"), 631.95));
    assert!(close(value("llm_gpu_power_limit_watts"), 700.0));
    assert!(close(value("llm_gpu_temperature_celsius"), 67.0));
    assert!(close(value("llm_gpu_sm_clock_hertz"), 1.98e9));
    let throttled = scrape.reading("llm_gpu_throttled_seconds_total").unwrap();
    let reason = |r| {
        throttled
            .samples
            .iter()
            .find(|s| s.reason == Some(r))
            .map(|s| s.value)
    };
    // Software power cap and hardware power brake are both "power".
    assert!(close(reason("power"), 13.0));
    assert!(close(reason("thermal"), 3.0));
    // XIDs split by code add up.
    assert!(close(value("llm_gpu_xid_errors_total"), 3.0));
    let process = scrape.reading("llm_process_gpu_memory_bytes").unwrap();
    assert_eq!(process.samples.len(), 1);
    assert_eq!(process.samples[0].pid, Some(11327));
    assert!(close(Some(process.samples[0].value), 2.690646016e9));
    // The exporter's health series carries no uuid: not a GPU's, and not read.
    assert_eq!(scrape.unknown, ["nvidia_smi_last_collect_success"]);
    assert_eq!(scrape.without_gpu, 0);
}

#[test]
fn engines_and_other_bodies_are_not_gpu_exporters() {
    let path = format!(
        "{}/tests/fixtures/reconstructed/vllm-0.33.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).unwrap();
    let exp = parse(&text, Mode::Strict).unwrap();
    assert_eq!(detect(&Index::new(&exp)), None);
}

#[test]
fn series_without_a_gpu_or_with_bad_values_are_counted_not_read() {
    let text = "# TYPE DCGM_FI_DEV_GPU_TEMP gauge\n\
        DCGM_FI_DEV_GPU_TEMP{gpu=\"0\"} 40\n\
        DCGM_FI_DEV_GPU_TEMP{gpu=\"1\",UUID=\"GPU-B\"} NaN\n\
        DCGM_FI_DEV_GPU_TEMP{gpu=\"2\",UUID=\"GPU-C\"} 51\n\
        # TYPE DCGM_FI_DEV_BRAND_NEW_FIELD gauge\n\
        DCGM_FI_DEV_BRAND_NEW_FIELD{gpu=\"2\",UUID=\"GPU-C\"} 1\n";
    let exp = parse(text, Mode::Strict).unwrap();
    let scrape = normalise(&exp, GpuSource::Dcgm);
    assert_eq!(scrape.without_gpu, 1);
    assert!(close(
        scrape.value("llm_gpu_temperature_celsius", "c"),
        51.0
    ));
    assert_eq!(scrape.value("llm_gpu_temperature_celsius", "b"), None);
    // GPU B is still a GPU (its info), only its NaN is not a value.
    assert_eq!(scrape.devices.len(), 2);
    assert_eq!(scrape.unknown, ["DCGM_FI_DEV_BRAND_NEW_FIELD"]);
}
