//! Recording rules for the GPU part of the `llm:` schema, generated from the GPU signal table:
//! one group per GPU exporter from its own series (rules-only mode), and one that copies
//! llmwatch's `llm_gpu_*` series. Each GPU keeps `gpu` (the exporter's index), `gpu_model`
//! and, for a MIG instance, `gpu_instance`.
//!
//! The translation mirrors the Rust normaliser: a rename is `new or old`, a unit becomes a
//! factor, a sum needs its required parts and adds the others where present, `Either` is
//! PromQL's per-series `or` (a MIG instance without `GPU_UTIL` takes the engine-active ratio
//! while whole GPUs keep theirs), and the copies dcgm-exporter makes per pod on a shared GPU
//! are one value (`max`: the device's own series is never below a pod's share of it), while
//! nvidia_gpu_exporter's series split by a label (XIDs by code) are summed.
//! nvidia_gpu_exporter's series carry only `uuid`: its index and name come from
//! `nvidia_smi_gpu_info`.

use crate::gpu::signals::{GPU_SIGNALS, GpuExpr, GpuHow, GpuSource, Subject};

use super::rules::{Group, Rule};
use super::schema::schema_name;

/// Labels every `llm:gpu_*` series keeps. Not `namespace`: on an exporter's series it names
/// the pod holding the GPU, not where the exporter runs.
pub const GPU_KEEP: &str = "service, job, instance, gpu, gpu_model, gpu_instance";

/// One exporter series with the schema's labels, one value per GPU.
fn select(source: GpuSource, name: &str, scale: f64) -> String {
    let relabelled = match source {
        GpuSource::NvidiaSmi => format!(
            "{name} * on (job, instance, uuid) group_left (gpu, gpu_model) \
             label_replace(label_replace(nvidia_smi_gpu_info, \"gpu\", \"$1\", \"index\", \"(.+)\"), \
             \"gpu_model\", \"$1\", \"name\", \"(.+)\")"
        ),
        _ => format!(
            "label_replace(label_replace({name}, \"gpu_model\", \"$1\", \"modelName\", \"(.+)\"), \
             \"gpu_instance\", \"$1\", \"GPU_I_ID\", \"(.+)\")"
        ),
    };
    // dcgm-exporter copies a device's series once per pod on a shared GPU: one value.
    // nvidia_gpu_exporter makes no copies; a series split by a label (XIDs by code) adds up.
    let aggregate = match source {
        GpuSource::NvidiaSmi => "sum",
        _ => "max",
    };
    let one = format!("{aggregate} by ({GPU_KEEP}) ({relabelled})");
    if scale == 1.0 {
        one
    } else {
        format!("{one} * {scale}")
    }
}

/// `a + b` where both are present, else whichever is.
fn added_where_present(parts: &[String]) -> String {
    parts.iter().fold(String::new(), |acc, part| {
        if acc.is_empty() {
            part.clone()
        } else {
            format!("(({acc}) + ({part}) or ({acc}) or ({part}))")
        }
    })
}

/// PromQL for an expression without a reason split.
fn promql(source: GpuSource, expr: &GpuExpr) -> String {
    match expr {
        GpuExpr::First(names, scale) => names
            .iter()
            .map(|name| select(source, name, *scale))
            .collect::<Vec<_>>()
            .join(" or "),
        GpuExpr::SumOf(names, required, scale) => {
            let (all, optional) = names.split_at((*required).min(names.len()));
            let all: Vec<String> = all.iter().map(|n| select(source, n, *scale)).collect();
            let mut out = all.join(" + ");
            let first = all.first().cloned().unwrap_or_default();
            for name in optional {
                out = format!("{out} + ({} or {first} * 0)", select(source, name, *scale));
            }
            out
        }
        GpuExpr::Either(a, b) => format!("({}) or ({})", promql(source, a), promql(source, b)),
        GpuExpr::ByReason(..) => String::new(),
    }
}

/// The rules of one signal for `source`.
fn signal_rules(source: GpuSource, name: &str, expr: &GpuExpr) -> Vec<Rule> {
    let record = schema_name(name);
    let GpuExpr::ByReason(pairs, scale) = expr else {
        return vec![Rule::record(&record, &promql(source, expr))];
    };
    let mut reasons: Vec<&str> = pairs.iter().map(|(_, r)| *r).collect();
    reasons.dedup();
    reasons
        .into_iter()
        .map(|reason| {
            let parts: Vec<String> = pairs
                .iter()
                .filter(|(_, r)| *r == reason)
                .map(|(n, _)| select(source, n, *scale))
                .collect();
            Rule::record(&record, &added_where_present(&parts)).label("reason", reason)
        })
        .collect()
}

/// The group name of an exporter's rules.
fn group_name(source: GpuSource) -> String {
    format!("llm-schema-{}", source.as_str().replace('_', "-"))
}

/// The rules that build the GPU schema from `source`'s own series.
pub fn exporter_group(source: GpuSource) -> Group {
    let mut rules = Vec::new();
    for signal in GPU_SIGNALS.iter().filter(|s| s.subject == Subject::Gpu) {
        if let GpuHow::Native(expr) | GpuHow::Derived(expr) = signal.mapping(source).how {
            rules.extend(signal_rules(source, signal.name, &expr));
        }
    }
    if source == GpuSource::Dcgm {
        rules.push(pod_join());
    }
    Group::new(&group_name(source), rules)
}

/// The join in rules-only mode: a GPU whose dcgm-exporter series name a pod serves the engine
/// target scraped from that pod (its `pod` and `namespace` target labels). Behind a
/// ServiceMonitor without `honorLabels` the pod holding the GPU is `exported_pod`.
fn pod_join() -> Rule {
    let held = "label_replace(label_replace(label_replace(DCGM_FI_DEV_FB_USED{pod!=\"\"} or DCGM_FI_DEV_FB_USED{exported_pod!=\"\"}, \
                \"pod\", \"$1\", \"exported_pod\", \"(.+)\"), \"namespace\", \"$1\", \"exported_namespace\", \"(.+)\"), \
                \"gpu_instance\", \"$1\", \"GPU_I_ID\", \"(.+)\")";
    let engines = crate::catalog::alerts::ENGINE_JOBS;
    let servers = format!(
        "label_replace(max by (instance, namespace, pod) (up{{job=~\"{engines}\", pod!=\"\"}}), \"server\", \"$1\", \"instance\", \"(.*)\")"
    );
    Rule::record(
        "llm:gpu_server_info",
        &format!(
            "group by (job, instance, gpu, gpu_instance, server) ({held} * on (namespace, pod) group_left (server) {servers})"
        ),
    )
    .label("via", "pod")
}

/// The rules that copy llmwatch's GPU and process series to their `llm:` names, and the join.
pub fn llmwatch_gpu_group() -> Group {
    // What llmwatch writes: every GPU and process signal (the processes' from `/proc` and
    // NVML), and the join.
    let names = GPU_SIGNALS
        .iter()
        .map(|s| s.name)
        .chain(["llm_gpu_server_info"]);
    let rules = names
        .map(|name| Rule::record(&schema_name(name), name))
        .collect();
    Group::new("llm-schema-llmwatch-gpu", rules)
}

/// The exporters with rules-only groups.
pub const EXPORTERS: [GpuSource; 2] = [GpuSource::Dcgm, GpuSource::NvidiaSmi];
