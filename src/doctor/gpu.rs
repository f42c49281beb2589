//! What `doctor` says of the GPUs a running `up` reads (`/api/v1/gpus`): a GPU no model server
//! claims, whose numbers then stand beside no KV cache or queue; and a GPU that reported an
//! XID error.

use serde_json::Value as Json;

use crate::findings::{Finding, Severity};

/// Where the join is explained.
const JOIN: &str = "docs/gpu.md#which-model-server-a-gpu-serves";

/// The findings about the GPUs in an `/api/v1/gpus` answer.
pub fn gpu_findings(answer: &Json) -> Vec<Finding> {
    let gpus = answer
        .pointer("/data/gpus")
        .and_then(Json::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    gpus.iter().flat_map(one).collect()
}

fn text(gpu: &Json, key: &str) -> String {
    gpu.get(key)
        .and_then(Json::as_str)
        .unwrap_or("?")
        .to_string()
}

fn one(gpu: &Json) -> Vec<Finding> {
    let exporter = text(gpu, "exporter");
    let place = format!("gpu {}", text(gpu, "gpu"));
    let uuid = text(gpu, "uuid");
    let mut out = Vec::new();
    let unattributed = gpu
        .get("servers")
        .and_then(Json::as_array)
        .is_some_and(Vec::is_empty);
    if unattributed {
        let pods: Vec<String> = gpu
            .get("pods")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .map(|p| format!("{}/{}", text(p, "namespace"), text(p, "pod")))
            .collect();
        let (evidence, fix) = if pods.is_empty() {
            (
                format!("uuid {uuid}; the exporter names no pod holding it"),
                format!("list it in the engine target's gpus = [\"GPU-{uuid}\"]"),
            )
        } else {
            (
                format!("uuid {uuid}; held by pod {}", pods.join(", ")),
                "give the engine target the labels pod and namespace of that pod, or list the GPU in its gpus".to_string(),
            )
        };
        out.push(Finding {
            severity: Severity::Warning,
            check: "gpu-unattributed",
            subject: exporter.clone(),
            place: place.clone(),
            message: "this GPU serves no known model server, so its numbers stand beside no KV cache or queue".into(),
            evidence: vec![evidence],
            fix,
            runbook: JOIN.into(),
        });
    }
    if let Some(code) = gpu
        .pointer("/values/llm_gpu_last_xid")
        .and_then(Json::as_f64)
    {
        out.push(Finding {
            severity: Severity::Critical,
            check: "gpu-xid",
            subject: exporter,
            place,
            message: format!("the GPU reported XID {code}: a driver-level fault"),
            evidence: vec![format!("llm_gpu_last_xid = {code} (uuid {uuid})")],
            fix: "look the code up in NVIDIA's XID catalogue; most (48, 63, 64, 74, 79, 94, 95) need the GPU drained and reset, 79 means it fell off the bus".into(),
            runbook: String::new(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_unclaimed_gpu_and_an_xid_are_findings_and_a_claimed_healthy_gpu_is_none() {
        let answer = json!({"data": {"gpus": [
            {"exporter": "dcgm", "gpu": "0", "uuid": "aa", "servers": [{"server": "vllm", "via": "pod"}],
             "pods": [], "values": {}},
            {"exporter": "dcgm", "gpu": "1", "uuid": "bb", "servers": [],
             "pods": [{"namespace": "llm", "pod": "llama-1"}], "values": {"llm_gpu_last_xid": 79.0}},
            {"exporter": "smi", "gpu": "0", "uuid": "cc", "servers": [], "pods": [], "values": {}}
        ]}});
        let found = gpu_findings(&answer);
        let checks: Vec<(&str, &str, &str)> = found
            .iter()
            .map(|f| (f.check, f.subject.as_str(), f.place.as_str()))
            .collect();
        assert_eq!(
            checks,
            [
                ("gpu-unattributed", "dcgm", "gpu 1"),
                ("gpu-xid", "dcgm", "gpu 1"),
                ("gpu-unattributed", "smi", "gpu 0"),
            ]
        );
        assert!(found[0].evidence[0].contains("llm/llama-1"));
        assert!(found[2].fix.contains("gpus = [\"GPU-cc\"]"));
        assert_eq!(found[1].severity, Severity::Critical);
        // Not an answer with GPUs: nothing.
        assert!(gpu_findings(&json!({"error": "not found"})).is_empty());
    }
}
