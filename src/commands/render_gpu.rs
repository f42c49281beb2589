//! `llmwatch scrape` of a GPU exporter: its GPUs and their numbers, as a table, JSON or the
//! `llm_gpu_*` exposition `up` would serve for it.

use std::fmt::Write as _;

use serde_json::{Value as Json, json};

use crate::gpu::GpuScrape;

/// The signals the table shows, with their header and how a value is written.
const COLUMNS: [(&str, &str); 6] = [
    ("llm_gpu_utilization_ratio", "UTIL"),
    ("llm_gpu_memory_used_bytes", "MEM USED"),
    ("llm_gpu_memory_total_bytes", "MEM TOTAL"),
    ("llm_gpu_temperature_celsius", "TEMP"),
    ("llm_gpu_power_watts", "POWER"),
    ("llm_gpu_sm_clock_hertz", "SM CLOCK"),
];

fn written(name: &str, value: f64) -> String {
    match name {
        "llm_gpu_utilization_ratio" => format!("{:.0} %", value * 100.0),
        "llm_gpu_memory_used_bytes" | "llm_gpu_memory_total_bytes" => {
            format!("{:.1} GiB", value / 1_073_741_824.0)
        }
        "llm_gpu_temperature_celsius" => format!("{value:.0} °C"),
        "llm_gpu_power_watts" => format!("{value:.0} W"),
        "llm_gpu_sm_clock_hertz" => format!("{:.0} MHz", value / 1e6),
        _ => format!("{value}"),
    }
}

/// The GPUs as a table, then throttling, XIDs and what was not read.
pub fn table(scrape: &GpuScrape) -> String {
    let mut out = String::new();
    let _ = write!(out, "{:<6} {:<24} ", "GPU", "MODEL");
    for (_, header) in COLUMNS {
        let _ = write!(out, "{header:<10} ");
    }
    out.push_str("UUID\n");
    // By index as the exporter numbers them (the scrape keeps them by UUID).
    let mut order: Vec<usize> = (0..scrape.devices.len()).collect();
    order.sort_by_key(|&i| {
        let d = &scrape.devices[i];
        let index = d.index.as_deref().and_then(|x| x.parse::<u32>().ok());
        (index, d.key.instance.clone())
    });
    for i in order {
        let device = &scrape.devices[i];
        let mut gpu = device.index.clone().unwrap_or_else(|| "?".into());
        if let Some(instance) = &device.key.instance {
            gpu.push('/');
            gpu.push_str(instance);
        }
        let model = device.model.as_deref().unwrap_or("unknown");
        let _ = write!(out, "{gpu:<6} {model:<24} ");
        for (name, _) in COLUMNS {
            let text = scrape
                .device_value(name, i)
                .map_or("-".into(), |v| written(name, v));
            let _ = write!(out, "{text:<10} ");
        }
        let _ = writeln!(out, "{}", device.key.uuid);
        for pod in &device.pods {
            let namespace = pod.namespace.as_deref().unwrap_or("-");
            let _ = writeln!(out, "       held by pod {namespace}/{}", pod.pod);
        }
        if let Some(code) = scrape.device_value("llm_gpu_last_xid", i) {
            let _ = writeln!(out, "       last XID error: {code}");
        }
        if let Some(throttled) = scrape.reading("llm_gpu_throttled_seconds_total") {
            for s in throttled.samples.iter().filter(|s| s.device == i) {
                let reason = s.reason.unwrap_or("?");
                let _ = writeln!(out, "       throttled ({reason}): {:.1} s in all", s.value);
            }
        }
    }
    if !scrape.unknown.is_empty() {
        let _ = writeln!(out, "\nnot read: {}", scrape.unknown.join(", "));
    }
    if scrape.without_gpu > 0 {
        let _ = writeln!(
            out,
            "{} samples name no GPU (no UUID label)",
            scrape.without_gpu
        );
    }
    out
}

/// The GPUs as JSON: per GPU its identity, pods and every signal's latest value
/// ([`GpuScrape::device_json`]).
pub fn to_json(scrape: &GpuScrape) -> Json {
    let gpus: Vec<Json> = scrape
        .devices
        .iter()
        .enumerate()
        .map(|(i, _)| Json::Object(scrape.device_json(i)))
        .collect();
    json!({
        "source": scrape.source.as_str(),
        "gpus": gpus,
        "not_read": scrape.unknown,
        "samples_without_gpu": scrape.without_gpu,
    })
}
