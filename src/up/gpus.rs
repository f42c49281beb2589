//! GPU exporters among `up`'s targets: their series on `/metrics` and `/api/v1/gpus`, each GPU
//! attached to the model servers it serves (`gpu::join`); and the CPU and memory of engines
//! running on this machine.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value as Json, json};

use crate::collect::gpus::{join, views};
use crate::collect::state::{Health, TargetStatus};
use crate::exposition::{write_family_header, write_sample};
use crate::gpu::procfs::Usage;
use crate::gpu::{GpuView, gpu_signal, write_gpus};

/// Appends the GPU series and the local engines' process series to `/metrics`.
pub fn write(out: &mut String, statuses: &[Arc<TargetStatus>]) {
    let views = views(statuses);
    write_gpus(out, &views, &join(statuses));
    write_processes(out, statuses);
    write_process_gpu_memory(out, statuses, &views);
}

const PROCESS_GPU_MEMORY: &str = "llm_process_gpu_memory_bytes";

/// Device memory an engine's processes hold, per GPU (`gpu` label: the GPU's index or UUID),
/// from the per-process numbers a GPU source lists (NVML) and the engine's PIDs.
fn gpu_memory_of(usage: &Usage, views: &[GpuView<'_>]) -> Vec<(String, f64)> {
    let mut held: BTreeMap<String, f64> = BTreeMap::new();
    for view in views {
        let Some(reading) = view.scrape.reading(PROCESS_GPU_MEMORY) else {
            continue;
        };
        for sample in &reading.samples {
            let ours = sample
                .pid
                .is_some_and(|pid| usage.pids.binary_search(&pid).is_ok());
            let Some(device) = view.scrape.devices.get(sample.device).filter(|_| ours) else {
                continue;
            };
            let gpu = device.index.as_deref().unwrap_or(&device.key.uuid);
            *held.entry(gpu.to_string()).or_default() += sample.value;
        }
    }
    held.into_iter().collect()
}

/// `llm_process_gpu_memory_bytes` per local engine and GPU.
fn write_process_gpu_memory(
    out: &mut String,
    statuses: &[Arc<TargetStatus>],
    views: &[GpuView<'_>],
) {
    let mut header = false;
    for (status, usage) in processes(statuses) {
        for (gpu, bytes) in gpu_memory_of(usage, views) {
            if !header {
                let help = gpu_signal(PROCESS_GPU_MEMORY).map(|s| s.help);
                write_family_header(out, PROCESS_GPU_MEMORY, help, "gauge");
                header = true;
            }
            let labels = [
                ("engine", engine_of(status)),
                ("instance", status.target.name.as_str()),
                ("gpu", gpu.as_str()),
            ];
            write_sample(
                out,
                PROCESS_GPU_MEMORY,
                labels.into_iter().chain(statics(status)),
                bytes,
                None,
            );
        }
    }
}

fn engine_of(status: &TargetStatus) -> &'static str {
    status
        .last_good
        .as_ref()
        .and_then(|g| g.engine)
        .map_or("unknown", crate::engines::Engine::as_str)
}

fn statics(status: &TargetStatus) -> impl Iterator<Item = (&str, &str)> {
    status
        .target
        .labels
        .iter()
        .filter(|(k, _)| k.as_str() != "gpu")
        .map(|(k, v)| (k.as_str(), v.as_str()))
}

/// The engines on this machine whose processes were read in their latest good scrape.
fn processes(statuses: &[Arc<TargetStatus>]) -> Vec<(&TargetStatus, &Usage)> {
    statuses
        .iter()
        .filter(|s| s.health == Health::Up)
        .filter_map(|s| Some((s.as_ref(), s.last_good.as_ref()?.process.as_ref()?)))
        .collect()
}

/// Which number of a [`Usage`] a series shows.
type UsageField = fn(&Usage) -> f64;

/// `llm_process_cpu_seconds_total` and `llm_process_resident_memory_bytes` per local engine.
fn write_processes(out: &mut String, statuses: &[Arc<TargetStatus>]) {
    let found = processes(statuses);
    if found.is_empty() {
        return;
    }
    let signals: [(&str, UsageField); 2] = [
        ("llm_process_cpu_seconds_total", |u| u.cpu_seconds),
        ("llm_process_resident_memory_bytes", |u| u.resident_bytes),
    ];
    for (name, value) in signals {
        let Some(signal) = gpu_signal(name) else {
            continue;
        };
        write_family_header(out, name, Some(signal.help), signal.kind.as_str());
        for (status, usage) in &found {
            let labels = [
                ("engine", engine_of(status)),
                ("instance", status.target.name.as_str()),
            ];
            write_sample(
                out,
                name,
                labels.into_iter().chain(statics(status)),
                value(usage),
                None,
            );
        }
    }
}

/// `/api/v1/gpus`: every GPU of every exporter that is up, with its latest numbers and the
/// servers it serves.
pub fn api(statuses: &[Arc<TargetStatus>]) -> Json {
    let join = join(statuses);
    let mut gpus = Vec::new();
    for view in views(statuses) {
        for (i, device) in view.scrape.devices.iter().enumerate() {
            let attached: Vec<Json> = join
                .servers(device)
                .iter()
                .map(|(server, via)| json!({"server": server, "via": via.as_str()}))
                .collect();
            let mut gpu = view.scrape.device_json(i);
            gpu.insert("exporter".into(), json!(view.instance));
            gpu.insert("source".into(), json!(view.scrape.source.as_str()));
            gpu.insert("servers".into(), attached.into());
            gpus.push(Json::Object(gpu));
        }
    }
    let views = views(statuses);
    let processes: Vec<Json> = processes(statuses)
        .into_iter()
        .map(|(status, usage)| {
            let gpu_memory: serde_json::Map<String, Json> = gpu_memory_of(usage, &views)
                .into_iter()
                .map(|(gpu, bytes)| (gpu, json!(bytes)))
                .collect();
            json!({
                "target": status.target.name,
                "pid": usage.pid,
                "processes": usage.processes,
                "cpu_seconds": usage.cpu_seconds,
                "resident_bytes": usage.resident_bytes,
                "gpu_memory_bytes": gpu_memory,
            })
        })
        .collect();
    json!({"status": "success", "data": {"gpus": gpus, "processes": processes}})
}
