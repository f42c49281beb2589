//! Writes the GPU signals of scraped GPU exporters as Prometheus text: `llm_gpu_info`, the
//! join (`llm_gpu_server_info`), then each signal with every exporter's GPUs under one header.
//! Labels: `instance` (the exporter target), `gpu`, `gpu_model`, `gpu_instance` (MIG), `reason`
//! (throttling), then the exporter target's static labels.

use std::collections::BTreeMap;

use super::join::Join;
use super::normalise::GpuScrape;
use super::signals::{GPU_SIGNALS, Subject, gpu_signal};
use crate::exposition::{write_family_header, write_sample};

/// One scraped GPU exporter to write.
#[derive(Debug, Clone, Copy)]
pub struct GpuView<'a> {
    /// The exporter target's name.
    pub instance: &'a str,
    /// Its static labels.
    pub labels: &'a BTreeMap<String, String>,
    /// What it said.
    pub scrape: &'a GpuScrape,
}

/// Labels GPU series set themselves: a static label of the same name is left off.
const OWN: [&str; 8] = [
    "instance",
    "gpu",
    "gpu_model",
    "gpu_instance",
    "reason",
    "uuid",
    "server",
    "via",
];

/// The labels naming device `index` of `view`.
fn device_labels<'a>(view: &GpuView<'a>, index: usize) -> Vec<(&'a str, &'a str)> {
    let Some(device) = view.scrape.devices.get(index) else {
        return Vec::new();
    };
    let mut labels = vec![
        ("instance", view.instance),
        ("gpu", device.index.as_deref().unwrap_or(&device.key.uuid)),
    ];
    if let Some(instance) = &device.key.instance {
        labels.push(("gpu_instance", instance.as_str()));
    }
    labels
}

fn statics<'a>(view: &GpuView<'a>) -> impl Iterator<Item = (&'a str, &'a str)> {
    view.labels
        .iter()
        .filter(|(k, _)| !OWN.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()))
}

/// Appends the GPU exposition of `views` to `out`, attaching GPUs as `join` says.
pub fn write_gpus(out: &mut String, views: &[GpuView<'_>], join: &Join<'_>) {
    if views.iter().all(|v| v.scrape.devices.is_empty()) {
        return;
    }
    // Its help is the signal table's, like every other GPU series'.
    let info = gpu_signal("llm_gpu_info").map(|s| s.help);
    write_family_header(out, "llm_gpu_info", info, "gauge");
    for view in views {
        for (i, device) in view.scrape.devices.iter().enumerate() {
            let mut labels = device_labels(view, i);
            labels.push(("gpu_model", device.model.as_deref().unwrap_or("unknown")));
            labels.push(("uuid", device.key.uuid.as_str()));
            write_sample(
                out,
                "llm_gpu_info",
                labels.into_iter().chain(statics(view)),
                1.0,
                None,
            );
        }
    }
    write_family_header(
        out,
        "llm_gpu_server_info",
        Some(
            "Which model server (server: its target name) each GPU serves and how that was found (via: pod or config); via=\"none\" without server for a GPU no rule attributes.",
        ),
        "gauge",
    );
    for view in views {
        for (i, device) in view.scrape.devices.iter().enumerate() {
            let attached = join.servers(device);
            if attached.is_empty() {
                let labels = device_labels(view, i).into_iter().chain([("via", "none")]);
                write_sample(out, "llm_gpu_server_info", labels, 1.0, None);
            }
            for &(server, via) in attached {
                let labels = device_labels(view, i)
                    .into_iter()
                    .chain([("server", server), ("via", via.as_str())]);
                write_sample(out, "llm_gpu_server_info", labels, 1.0, None);
            }
        }
    }
    for signal in GPU_SIGNALS.iter().filter(|s| s.subject == Subject::Gpu) {
        let readings: Vec<_> = views
            .iter()
            .filter_map(|view| Some((view, view.scrape.reading(signal.name)?)))
            .collect();
        if readings.is_empty() {
            continue;
        }
        write_family_header(out, signal.name, Some(signal.help), signal.kind.as_str());
        for (view, reading) in readings {
            for sample in reading.samples.iter().filter(|s| s.pid.is_none()) {
                let Some(device) = view.scrape.devices.get(sample.device) else {
                    continue;
                };
                let mut labels = device_labels(view, sample.device);
                labels.push(("gpu_model", device.model.as_deref().unwrap_or("unknown")));
                if let Some(reason) = sample.reason {
                    labels.push(("reason", reason));
                }
                write_sample(
                    out,
                    signal.name,
                    labels.into_iter().chain(statics(view)),
                    sample.value,
                    None,
                );
            }
        }
    }
}
