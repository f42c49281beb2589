//! The GPU panels: each GPU's saturation numbers, and per model server its GPUs' memory and
//! utilisation beside its KV cache and queue (through the join, `llm:gpu_server_info`), and
//! the CPU and memory of engines running beside `up`. Their series carry other labels than a
//! model's (`instance` is the GPU source, `gpu` its index), so they are a list of their own.

/// What a GPU panel's number is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuUnit {
    /// A share from 0 to 1.
    Ratio,
    /// Watts.
    Watts,
    /// Degrees Celsius.
    Celsius,
    /// Hertz.
    Hertz,
    /// Bytes.
    Bytes,
    /// A plain number (an XID code, a count).
    Count,
    /// CPU seconds per second (cores busy).
    Cores,
}

impl GpuUnit {
    /// Grafana's unit id for it.
    pub fn grafana(self) -> &'static str {
        match self {
            GpuUnit::Ratio => "percentunit",
            GpuUnit::Watts => "watt",
            GpuUnit::Celsius => "celsius",
            GpuUnit::Hertz => "hertz",
            GpuUnit::Bytes => "bytes",
            GpuUnit::Count | GpuUnit::Cores => "short",
        }
    }
}

/// How one line of a GPU panel is computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GpuMeasure {
    /// A GPU gauge, per GPU.
    Gauge(&'static str),
    /// One GPU gauge over another, per GPU (memory used over total).
    Share(&'static str, &'static str),
    /// The per-second increase of a GPU counter, per GPU and `reason` where it has one.
    Rate(&'static str),
    /// The increase of a GPU counter over an hour, per GPU.
    HourlyIncrease(&'static str),
    /// One GPU gauge over another, per model server the GPU serves (the largest of its GPUs).
    ServerShare(&'static str, &'static str),
    /// A GPU gauge per model server the GPU serves (the largest of its GPUs).
    ServerGauge(&'static str),
    /// A model server's own gauge, the largest over its models.
    Server(&'static str),
    /// The per-second increase of a local engine process counter, per server.
    ProcessRate(&'static str),
    /// A local engine process gauge, per server.
    Process(&'static str),
}

/// One line of a GPU panel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GpuLine {
    /// Its name in the legend.
    pub label: &'static str,
    /// How it is computed.
    pub measure: GpuMeasure,
}

/// One GPU panel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GpuPanel {
    /// Stable identifier.
    pub id: &'static str,
    /// Title.
    pub title: &'static str,
    /// Unit of every line.
    pub unit: GpuUnit,
    /// One sentence on what it shows.
    pub help: &'static str,
    /// The lines.
    pub lines: &'static [GpuLine],
}

const fn line(label: &'static str, measure: GpuMeasure) -> GpuLine {
    GpuLine { label, measure }
}

const USED: &str = "llm_gpu_memory_used_bytes";
const TOTAL: &str = "llm_gpu_memory_total_bytes";

/// The GPU dashboard's panels, two per row.
pub const GPU_PANELS: [GpuPanel; 11] = [
    GpuPanel {
        id: "server-memory",
        title: "GPU memory and KV cache per server",
        unit: GpuUnit::Ratio,
        help: "Device memory in use on each server's GPUs beside its KV-cache usage: memory near full with the cache far from it is memory held outside the cache.",
        lines: &[
            line("GPU memory", GpuMeasure::ServerShare(USED, TOTAL)),
            line("KV cache", GpuMeasure::Server("llm_kv_cache_usage_ratio")),
        ],
    },
    GpuPanel {
        id: "server-busy",
        title: "GPU utilisation per server",
        unit: GpuUnit::Ratio,
        help: "Share of time a kernel ran on each server's GPUs; read it beside the queue (requests waiting while the GPU idles point at the scheduler).",
        lines: &[line(
            "GPU busy",
            GpuMeasure::ServerGauge("llm_gpu_utilization_ratio"),
        )],
    },
    GpuPanel {
        id: "utilization",
        title: "GPU utilisation",
        unit: GpuUnit::Ratio,
        help: "Share of the last sample period in which a kernel ran, per GPU.",
        lines: &[line("", GpuMeasure::Gauge("llm_gpu_utilization_ratio"))],
    },
    GpuPanel {
        id: "memory",
        title: "GPU memory used",
        unit: GpuUnit::Ratio,
        help: "Device memory in use over the device's total, per GPU (engines claim their pool at start).",
        lines: &[line("", GpuMeasure::Share(USED, TOTAL))],
    },
    GpuPanel {
        id: "power",
        title: "Power draw and limit",
        unit: GpuUnit::Watts,
        help: "Power drawn and the enforced limit, per GPU.",
        lines: &[
            line("draw", GpuMeasure::Gauge("llm_gpu_power_watts")),
            line("limit", GpuMeasure::Gauge("llm_gpu_power_limit_watts")),
        ],
    },
    GpuPanel {
        id: "temperature",
        title: "GPU temperature",
        unit: GpuUnit::Celsius,
        help: "Die temperature, per GPU.",
        lines: &[line("", GpuMeasure::Gauge("llm_gpu_temperature_celsius"))],
    },
    GpuPanel {
        id: "clock",
        title: "SM clock",
        unit: GpuUnit::Hertz,
        help: "Streaming-multiprocessor clock, per GPU: it falls when the GPU throttles.",
        lines: &[line("", GpuMeasure::Gauge("llm_gpu_sm_clock_hertz"))],
    },
    GpuPanel {
        id: "throttled",
        title: "Time throttled",
        unit: GpuUnit::Ratio,
        help: "Share of time the clocks were held down, per GPU and reason (power, thermal, hardware).",
        lines: &[line(
            "",
            GpuMeasure::Rate("llm_gpu_throttled_seconds_total"),
        )],
    },
    GpuPanel {
        id: "xid",
        title: "XID errors",
        unit: GpuUnit::Count,
        help: "The last critical XID code (dcgm-exporter, NVML) and XIDs counted over the last hour (nvidia_gpu_exporter, NVML), per GPU.",
        lines: &[
            line("last XID", GpuMeasure::Gauge("llm_gpu_last_xid")),
            line(
                "XIDs per hour",
                GpuMeasure::HourlyIncrease("llm_gpu_xid_errors_total"),
            ),
        ],
    },
    GpuPanel {
        id: "processes",
        title: "Engine processes: CPU",
        unit: GpuUnit::Cores,
        help: "CPU cores busy in each local engine's processes (the port's owner and its descendants), from /proc.",
        lines: &[line(
            "CPU",
            GpuMeasure::ProcessRate("llm_process_cpu_seconds_total"),
        )],
    },
    GpuPanel {
        id: "process-memory",
        title: "Engine processes: memory",
        unit: GpuUnit::Bytes,
        help: "Resident host memory of each local engine's processes (/proc), and the device memory they hold on every GPU (NVML).",
        lines: &[
            line(
                "resident",
                GpuMeasure::Process("llm_process_resident_memory_bytes"),
            ),
            line(
                "GPU memory",
                GpuMeasure::Process("llm_process_gpu_memory_bytes"),
            ),
        ],
    },
];
