//! The GPU exporters among the targets and the model servers their GPUs can attach to, read
//! from the targets' latest state, for `/metrics`, `/api/v1/gpus` and the overview.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::state::{Health, TargetStatus};
use crate::gpu::GpuView;
use crate::gpu::join::{Join, Server, Via};

/// The GPU exporters that are up, with their latest scrape.
pub fn views(statuses: &[Arc<TargetStatus>]) -> Vec<GpuView<'_>> {
    statuses
        .iter()
        .filter(|s| s.health == Health::Up)
        .filter_map(|s| {
            let scrape = s.last_good.as_ref()?.gpu.as_deref()?;
            Some(GpuView {
                instance: s.target.name.as_str(),
                labels: &s.target.labels,
                scrape,
            })
        })
        .collect()
}

/// Every target that is not a GPU exporter, as a server GPUs can attach to (whether it is up
/// or not: a GPU still serves a server whose scrape just failed).
pub fn servers(statuses: &[Arc<TargetStatus>]) -> Vec<Server<'_>> {
    statuses
        .iter()
        .filter(|s| !s.is_gpu_exporter())
        .map(|s| Server {
            name: s.target.name.as_str(),
            labels: &s.target.labels,
            gpus: &s.target.gpus,
            pids: s
                .last_good
                .as_ref()
                .and_then(|g| g.process.as_ref())
                .map_or(&[], |usage| usage.pids.as_slice()),
        })
        .collect()
}

/// One GPU as a server sees it: which exporter and device, and how it was attached.
#[derive(Debug, Clone, Copy)]
pub struct Attached<'a> {
    /// The exporter and its scrape.
    pub view: GpuView<'a>,
    /// The device's position in the scrape.
    pub device: usize,
    /// How the join found it.
    pub via: Via,
}

impl Attached<'_> {
    /// The device's latest value of GPU signal `name` (whole device: no reason, no process).
    pub fn value(&self, name: &str) -> Option<f64> {
        self.view.scrape.device_value(name, self.device)
    }
}

/// The join of every GPU source's GPUs to the servers among `statuses`.
pub fn join(statuses: &[Arc<TargetStatus>]) -> Join<'_> {
    let views = views(statuses);
    let devices = views.iter().flat_map(|v| v.scrape.devices.iter());
    Join::new(devices, &servers(statuses))
}

/// Each server's GPUs, by server name.
pub fn by_server<'a>(statuses: &'a [Arc<TargetStatus>]) -> BTreeMap<&'a str, Vec<Attached<'a>>> {
    let join = join(statuses);
    let mut out: BTreeMap<&str, Vec<Attached<'_>>> = BTreeMap::new();
    for view in views(statuses) {
        for (device, gpu) in view.scrape.devices.iter().enumerate() {
            for &(server, via) in join.servers(gpu) {
                out.entry(server)
                    .or_default()
                    .push(Attached { view, device, via });
            }
        }
    }
    out
}
