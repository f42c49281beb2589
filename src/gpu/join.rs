//! The join: which model server(s) each GPU of an exporter serves. By the pod the exporter
//! says holds the GPU, matched against an engine target's `pod` (and `namespace`) labels; else
//! by process (NVML lists the host PIDs holding a GPU's memory; a local engine's are the
//! port's owner and its descendants, read from `/proc`); else by the GPU UUIDs an engine
//! target lists (`gpus`). A GPU no rule attaches is reported as
//! unattributed, never dropped. A shared GPU (time-slicing, MPS) attaches to every server on it:
//! its numbers are the device's, so summing them over servers counts the GPU more than once.

use std::collections::{BTreeMap, HashMap};

use super::device::{Device, GpuKey};

/// A model server the join can attach GPUs to: an engine target.
#[derive(Debug, Clone, Copy)]
pub struct Server<'a> {
    /// The target's name (`instance` of its series).
    pub name: &'a str,
    /// Its static labels (`pod`, `namespace` when it runs in Kubernetes).
    pub labels: &'a BTreeMap<String, String>,
    /// The GPUs its configuration lists, normalised UUIDs.
    pub gpus: &'a [String],
    /// Its processes on this machine (the port's owner and descendants), sorted; empty when
    /// it runs elsewhere.
    pub pids: &'a [u32],
}

/// How a GPU was attached to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Via {
    /// The exporter's pod labels equal the server's.
    Pod,
    /// One of the server's processes holds memory on the GPU (NVML).
    Process,
    /// The server's `gpus` lists the GPU's UUID.
    Config,
}

impl Via {
    /// The `via` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Pod => "pod",
            Via::Process => "process",
            Via::Config => "config",
        }
    }
}

/// Label names a target may use for its pod and namespace (as written, or as Kubernetes
/// service discovery names them before relabelling).
const POD_LABELS: [&str; 2] = ["pod", "kubernetes_pod_name"];
const NAMESPACE_LABELS: [&str; 2] = ["namespace", "kubernetes_namespace"];

fn label<'l>(labels: &'l BTreeMap<String, String>, names: &[&str]) -> Option<&'l str> {
    names
        .iter()
        .find_map(|name| labels.get(*name))
        .map(String::as_str)
}

/// The servers `device` serves, each with how it was found; empty when unattributed.
pub fn servers_of<'s>(device: &Device, servers: &[Server<'s>]) -> Vec<(&'s str, Via)> {
    let by_pod: Vec<(&str, Via)> = servers
        .iter()
        .filter(|server| {
            let Some(pod) = label(server.labels, &POD_LABELS) else {
                return false;
            };
            let namespace = label(server.labels, &NAMESPACE_LABELS);
            device.pods.iter().any(|held| {
                held.pod == pod
                    && match (namespace, held.namespace.as_deref()) {
                        (Some(want), Some(have)) => want == have,
                        _ => true,
                    }
            })
        })
        .map(|server| (server.name, Via::Pod))
        .collect();
    if !by_pod.is_empty() {
        return by_pod;
    }
    let by_process: Vec<(&str, Via)> = servers
        .iter()
        .filter(|server| {
            device
                .pids
                .iter()
                .any(|pid| server.pids.binary_search(pid).is_ok())
        })
        .map(|server| (server.name, Via::Process))
        .collect();
    if !by_process.is_empty() {
        return by_process;
    }
    servers
        .iter()
        .filter(|server| server.gpus.contains(&device.key.uuid))
        .map(|server| (server.name, Via::Config))
        .collect()
}

/// The join over every GPU source at once. A GPU (by normalised UUID and MIG instance) serves
/// whatever any source's view of it attaches it to: nvidia_gpu_exporter's series of a GPU whose
/// pod only dcgm-exporter names, or dcgm-exporter's of one whose engine process only NVML sees,
/// are attached too.
#[derive(Debug, Default)]
pub struct Join<'s> {
    by_key: HashMap<GpuKey, Vec<(&'s str, Via)>>,
}

impl<'s> Join<'s> {
    /// The join of `devices` (every source's) to `servers`.
    pub fn new<'d>(devices: impl IntoIterator<Item = &'d Device>, servers: &[Server<'s>]) -> Self {
        let mut by_key: HashMap<GpuKey, Vec<(&'s str, Via)>> = HashMap::new();
        for device in devices {
            let found = servers_of(device, servers);
            let known = by_key.entry(device.key.clone()).or_default();
            for (server, via) in found {
                match known.iter_mut().find(|(s, _)| *s == server) {
                    Some(seen) => seen.1 = seen.1.min(via),
                    None => known.push((server, via)),
                }
            }
        }
        for attached in by_key.values_mut() {
            attached.sort_unstable();
        }
        Join { by_key }
    }

    /// The servers `device` serves, each with how it was found; empty when unattributed.
    pub fn servers(&self, device: &Device) -> &[(&'s str, Via)] {
        self.by_key.get(&device.key).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::device::{GpuKey, PodRef};

    fn device(uuid: &str, pods: &[(&str, &str)]) -> Device {
        Device {
            key: GpuKey {
                uuid: uuid.into(),
                instance: None,
            },
            uuid: format!("GPU-{uuid}"),
            index: Some("0".into()),
            model: None,
            profile: None,
            hostname: None,
            pods: pods
                .iter()
                .map(|(ns, pod)| PodRef {
                    namespace: Some(ns.to_string()),
                    pod: pod.to_string(),
                    container: None,
                })
                .collect(),
            pids: Vec::new(),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn pods_win_then_configured_uuids_and_otherwise_nothing() {
        let in_llm = labels(&[("pod", "llama-0"), ("namespace", "llm")]);
        let other_ns = labels(&[("pod", "llama-0"), ("namespace", "test")]);
        let sd_names = labels(&[("kubernetes_pod_name", "llama-1")]);
        let none = labels(&[]);
        let listed = vec!["bbbb".to_string()];
        let servers = [
            Server {
                name: "a",
                labels: &in_llm,
                gpus: &[],
                pids: &[],
            },
            Server {
                name: "b",
                labels: &other_ns,
                gpus: &[],
                pids: &[],
            },
            Server {
                name: "c",
                labels: &sd_names,
                gpus: &[],
                pids: &[],
            },
            Server {
                name: "d",
                labels: &none,
                gpus: &listed,
                pids: &[],
            },
        ];
        // Same pod name in another namespace is another pod.
        let held = device("aaaa", &[("llm", "llama-0")]);
        assert_eq!(servers_of(&held, &servers), [("a", Via::Pod)]);
        // Shared: both pods' servers.
        let shared = device("aaaa", &[("llm", "llama-0"), ("llm", "llama-1")]);
        assert_eq!(
            servers_of(&shared, &servers),
            [("a", Via::Pod), ("c", Via::Pod)]
        );
        // No pod labels: the configured UUID.
        assert_eq!(
            servers_of(&device("bbbb", &[]), &servers),
            [("d", Via::Config)]
        );
        // Neither: unattributed.
        assert!(servers_of(&device("cccc", &[("x", "y")]), &servers).is_empty());
    }

    #[test]
    fn a_gpu_holding_memory_of_a_servers_process_attaches_to_it() {
        let none = labels(&[]);
        let listed = vec!["aaaa".to_string()];
        // vLLM: the API server (100) listens; the engine core (101) holds the memory.
        let servers = [
            Server {
                name: "vllm",
                labels: &none,
                gpus: &[],
                pids: &[100, 101, 102],
            },
            Server {
                name: "listed",
                labels: &none,
                gpus: &listed,
                pids: &[],
            },
        ];
        let mut held = device("aaaa", &[]);
        held.pids = vec![101];
        // The process wins over a configured UUID.
        assert_eq!(servers_of(&held, &servers), [("vllm", Via::Process)]);
        held.pids = vec![999];
        assert_eq!(servers_of(&held, &servers), [("listed", Via::Config)]);
    }

    #[test]
    fn a_gpu_is_attached_by_what_any_source_knows_of_it() {
        let held = labels(&[("pod", "llama-0"), ("namespace", "llm")]);
        let none = labels(&[]);
        let servers = [
            Server {
                name: "llama",
                labels: &held,
                gpus: &[],
                pids: &[],
            },
            Server {
                name: "vllm",
                labels: &none,
                gpus: &[],
                pids: &[40, 41],
            },
        ];
        // dcgm-exporter names the pod; nvidia_gpu_exporter's view of the same GPU does not.
        let dcgm = device("aaaa", &[("llm", "llama-0")]);
        let smi = device("aaaa", &[]);
        // NVML sees vLLM's process on another GPU, which dcgm-exporter also lists.
        let mut nvml = device("bbbb", &[]);
        nvml.pids = vec![41];
        let dcgm_b = device("bbbb", &[]);
        let other = device("cccc", &[]);
        let join = Join::new([&dcgm, &smi, &nvml, &dcgm_b, &other], &servers);
        assert_eq!(join.servers(&smi), [("llama", Via::Pod)]);
        assert_eq!(join.servers(&dcgm_b), [("vllm", Via::Process)]);
        assert!(join.servers(&other).is_empty());
    }
}
