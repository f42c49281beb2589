//! The GPU and host part of the metric reference (docs/metrics.md), generated from the GPU
//! signal table.

use std::fmt::Write as _;

use super::signals::{GPU_SIGNALS, GpuHow, GpuSource, Subject};
use crate::engines::write_mapping_row;

/// Renders the GPU and host signals as Markdown, to follow the engines' reference.
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "\n# GPU and host signals\n\n\
         Generated from `src/gpu/signals.rs`. GPU series carry `gpu` (the index as the source\n\
         reports it) and `gpu_model`, plus `gpu_instance` for a MIG instance; GPUs are keyed by\n\
         UUID (lower case, without `GPU-`), which only `llm_gpu_info` carries as a label.\n\
         `llm_gpu_throttled_seconds_total` adds `reason` (power, thermal, hardware). Process\n\
         series are per engine target. Per source a cell says **native** (the exporter's series,\n\
         renamed and scaled to base units), **derived** (a formula), **read** (what `up` calls\n\
         or reads itself; `/proc` today, NVML not yet: see docs/gpu.md), **labels** (identity\n\
         from labels) or **missing** (why).\n",
    );
    for signal in GPU_SIGNALS {
        let subject = match signal.subject {
            Subject::Gpu => "per GPU",
            Subject::Process => "per engine process",
        };
        let _ = write!(
            out,
            "\n## `{}`\n\n{} Type: {}, unit: {}, {subject}. OTLP: {}.\n\n| source | how | from | note |\n|---|---|---|---|\n",
            signal.name,
            signal.help,
            signal.kind.as_str(),
            signal.unit,
            crate::otlp::metrics::describe_otel(signal.name, signal.kind.as_str())
        );
        for source in GpuSource::ALL {
            let mapping = signal.mapping(source);
            let (how, from) = match &mapping.how {
                GpuHow::Native(expr) => ("native", expr.describe()),
                GpuHow::Derived(expr) => ("derived", expr.describe()),
                GpuHow::Read(call) => ("read", call.to_string()),
                GpuHow::Labels(which) => ("labels", which.to_string()),
                GpuHow::Missing => ("missing", String::new()),
            };
            write_mapping_row(&mut out, source.as_str(), how, &from, mapping.note);
        }
    }
    out
}
