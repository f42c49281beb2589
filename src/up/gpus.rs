//! GPU exporters among `up`'s targets: their series on `/metrics` and `/api/v1/gpus`, each GPU
//! attached to the model servers it serves (`gpu::join`); and the CPU and memory of engines
//! running on this machine.

use std::sync::Arc;

use serde_json::{Value as Json, json};

use crate::collect::gpus::{servers, views};
use crate::collect::state::{Health, TargetStatus};
use crate::exposition::{write_family_header, write_sample};
use crate::gpu::join::servers_of;
use crate::gpu::procfs::Usage;
use crate::gpu::{gpu_signal, write_gpus};

/// Appends the GPU series and the local engines' process series to `/metrics`.
pub fn write(out: &mut String, statuses: &[Arc<TargetStatus>]) {
    write_gpus(out, &views(statuses), &servers(statuses));
    write_processes(out, statuses);
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
            let engine = status
                .last_good
                .as_ref()
                .and_then(|g| g.engine)
                .map_or("unknown", crate::engines::Engine::as_str);
            let labels = [
                ("engine", engine),
                ("instance", status.target.name.as_str()),
            ];
            let statics = status
                .target
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()));
            write_sample(
                out,
                name,
                labels.into_iter().chain(statics),
                value(usage),
                None,
            );
        }
    }
}

/// `/api/v1/gpus`: every GPU of every exporter that is up, with its latest numbers and the
/// servers it serves.
pub fn api(statuses: &[Arc<TargetStatus>]) -> Json {
    let servers = servers(statuses);
    let mut gpus = Vec::new();
    for view in views(statuses) {
        for (i, device) in view.scrape.devices.iter().enumerate() {
            let attached: Vec<Json> = servers_of(device, &servers)
                .into_iter()
                .map(|(server, via)| json!({"server": server, "via": via.as_str()}))
                .collect();
            let mut gpu = view.scrape.device_json(i);
            gpu.insert("exporter".into(), json!(view.instance));
            gpu.insert("source".into(), json!(view.scrape.source.as_str()));
            gpu.insert("servers".into(), attached.into());
            gpus.push(Json::Object(gpu));
        }
    }
    let processes: Vec<Json> = processes(statuses)
        .into_iter()
        .map(|(status, usage)| {
            json!({
                "target": status.target.name,
                "pid": usage.pid,
                "processes": usage.processes,
                "cpu_seconds": usage.cpu_seconds,
                "resident_bytes": usage.resident_bytes,
            })
        })
        .collect();
    json!({"status": "success", "data": {"gpus": gpus, "processes": processes}})
}
