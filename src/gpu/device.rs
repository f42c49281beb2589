//! Which GPU a series is about, read from an exporter's labels in every spelling the exporters
//! have used: dcgm-exporter's `UUID` (`uuid` under `--use-old-namespace`, `gpu_uuid` on link
//! series), `Hostname`/`hostname`, and the pod labels as the exporter wrote them, as Prometheus
//! renamed them (`exported_pod`) or as 1.x named them (`pod_name`). GPUs are keyed by UUID in
//! one form (lower case, no `GPU-`), never by index: NVML's index order is not stable.

use crate::exposition::{Exposition, Sample};

/// A GPU, or one MIG instance of it: the normalised UUID of the (parent) GPU and the GPU
/// instance id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GpuKey {
    /// Lower case, without `GPU-` (nvidia_gpu_exporter's form).
    pub uuid: String,
    /// The MIG GPU instance (`GPU_I_ID`), `None` for a whole GPU.
    pub instance: Option<String>,
}

/// The one form of a GPU UUID that every source can be brought to.
pub fn normalise_uuid(uuid: &str) -> String {
    let trimmed = uuid.trim();
    let bare = trimmed
        .get(..4)
        .filter(|prefix| prefix.eq_ignore_ascii_case("gpu-"))
        .map_or(trimmed, |_| &trimmed[4..]);
    bare.to_ascii_lowercase()
}

/// A Kubernetes pod that holds a GPU, as the exporter labelled it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct PodRef {
    /// `namespace` (or `exported_namespace`, `pod_namespace`).
    pub namespace: Option<String>,
    /// `pod` (or `exported_pod`, `pod_name`).
    pub pod: String,
    /// `container` (or `exported_container`, `container_name`).
    pub container: Option<String>,
}

/// One GPU as a source describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    /// Its key.
    pub key: GpuKey,
    /// The UUID as the source wrote it (`uuid` on `llm_gpu_info`).
    pub uuid: String,
    /// The NVML index as text (`gpu` label), when the source says.
    pub index: Option<String>,
    /// The product name (`NVIDIA H100 80GB HBM3`).
    pub model: Option<String>,
    /// The MIG profile (`3g.40gb`) of an instance.
    pub profile: Option<String>,
    /// The host the source names, if any (dcgm-exporter's `Hostname`).
    pub hostname: Option<String>,
    /// Pods the exporter says hold it (several on a shared GPU).
    pub pods: Vec<PodRef>,
    /// Host PIDs holding its memory, sorted (NVML only: exporters do not say).
    pub pids: Vec<u32>,
}

/// The first of `names` on `sample` with a non-empty value (old exporters wrote `pod=""`).
fn first<'s, 'a>(exp: &'s Exposition<'a>, sample: &Sample<'a>, names: &[&str]) -> Option<&'s str> {
    names
        .iter()
        .find_map(|name| exp.label(sample, name).filter(|v| !v.trim().is_empty()))
}

/// The UUID label spellings, current first.
pub const UUID_LABELS: [&str; 3] = ["UUID", "uuid", "gpu_uuid"];

/// The GPU a dcgm-exporter or nvidia_gpu_exporter sample is about, and the pod on it; `None`
/// without a UUID label.
pub fn device_of(exp: &Exposition<'_>, sample: &Sample<'_>) -> Option<(Device, Option<PodRef>)> {
    let uuid = first(exp, sample, &UUID_LABELS)?;
    let instance = first(exp, sample, &["GPU_I_ID", "gpu_instance_id"]).map(str::to_owned);
    let pod = first(exp, sample, &["pod", "exported_pod", "pod_name"]).map(|pod| PodRef {
        namespace: first(
            exp,
            sample,
            &["namespace", "exported_namespace", "pod_namespace"],
        )
        .map(str::to_owned),
        pod: pod.to_owned(),
        container: first(
            exp,
            sample,
            &["container", "exported_container", "container_name"],
        )
        .map(str::to_owned),
    });
    let device = Device {
        key: GpuKey {
            uuid: normalise_uuid(uuid),
            instance,
        },
        uuid: uuid.to_owned(),
        index: first(exp, sample, &["gpu", "index"]).map(str::to_owned),
        model: first(exp, sample, &["modelName", "name"]).map(str::to_owned),
        profile: first(exp, sample, &["GPU_I_PROFILE", "profile"]).map(str::to_owned),
        hostname: first(exp, sample, &["Hostname", "hostname"]).map(str::to_owned),
        pids: Vec::new(),
        pods: Vec::new(),
    };
    Some((device, pod))
}

impl Device {
    /// Fills what `other` (the same GPU, seen on another series) knows and this does not.
    pub fn merge(&mut self, other: Device) {
        self.index = self.index.take().or(other.index);
        self.model = self.model.take().or(other.model);
        self.profile = self.profile.take().or(other.profile);
        self.hostname = self.hostname.take().or(other.hostname);
    }

    /// Its identity as the JSON answers show it: index, MIG instance, UUID, model, MIG
    /// profile, host and pods.
    pub fn identity(&self) -> serde_json::Map<String, serde_json::Value> {
        let json = serde_json::json!({
            "gpu": self.index,
            "gpu_instance": self.key.instance,
            "uuid": self.key.uuid,
            "gpu_model": self.model,
            "mig_profile": self.profile,
            "hostname": self.hostname,
            "pods": self.pods,
            "pids": self.pids,
        });
        match json {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        }
    }

    /// Adds `pod` unless known.
    pub fn add_pod(&mut self, pod: PodRef) {
        if !self.pods.contains(&pod) {
            self.pods.push(pod);
            self.pods.sort();
        }
    }
}
