//! The GPU and host signal table: every `llm_gpu_*` and `llm_process_*` signal, and per source
//! (dcgm-exporter, nvidia_gpu_exporter, NVML read by `up`, `/proc`) how it is obtained. Like the
//! engines' table (`engines::signals`), it is the one source of truth: the normaliser evaluates
//! it and the metric reference is generated from it. Facts: the dcgm-exporter counter files and
//! label template, nvidia_gpu_exporter's unit suffixes and NVML's calls (docs/metrics.md names
//! versions).

use crate::engines::SignalKind;

/// What a GPU signal's series are about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// One GPU (or MIG instance), labelled `gpu`.
    Gpu,
    /// One engine process (found through the target's port).
    Process,
}

/// An expression over an exporter's series, in the exporter's units; the sample's value is
/// multiplied by `scale` to reach base units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GpuExpr {
    /// The first of `names` present (newest name first, older spellings after).
    First(&'static [&'static str], f64),
    /// The sum of `names` per GPU: the first `required` must all be there, the rest count
    /// where the exporter has them (a field a later version added).
    SumOf(&'static [&'static str], usize, f64),
    /// `a` where the exporter has it, else `b`.
    Either(&'static GpuExpr, &'static GpuExpr),
    /// Each series names a throttle reason: `(series, reason)`, summed per reason.
    ByReason(&'static [(&'static str, &'static str)], f64),
}

impl GpuExpr {
    /// The formula for humans.
    pub fn describe(&self) -> String {
        let scaled = |text: String, scale: f64| {
            if scale == 1.0 {
                text
            } else {
                format!("{text} × {scale}")
            }
        };
        match self {
            GpuExpr::First(names, scale) => {
                let mut text = names.first().copied().unwrap_or_default().to_string();
                if names.len() > 1 {
                    text.push_str(&format!(" (older: {})", names[1..].join(", ")));
                }
                scaled(text, *scale)
            }
            GpuExpr::SumOf(names, required, scale) => {
                let (all, extra) = names.split_at((*required).min(names.len()));
                let mut text = all.join(" + ");
                for name in extra {
                    text.push_str(&format!(" + {name} where present"));
                }
                scaled(format!("({text})"), *scale)
            }
            GpuExpr::Either(a, b) => format!("{}, else {}", a.describe(), b.describe()),
            GpuExpr::ByReason(pairs, scale) => {
                let parts: Vec<String> = pairs
                    .iter()
                    .map(|(name, reason)| format!("{reason}: {name}"))
                    .collect();
                scaled(parts.join("; "), *scale)
            }
        }
    }
}

/// How one source gives one signal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GpuHow {
    /// Exported as is (renamed and scaled).
    Native(GpuExpr),
    /// Computed from other series.
    Derived(GpuExpr),
    /// Read by `up` itself through a library call or a file (NVML, `/proc`): the text says which.
    Read(&'static str),
    /// Taken from the labels the text names (identity, not a number).
    Labels(&'static str),
    /// Not available from this source.
    Missing,
}

/// One cell: how, and a note for the operator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GpuMapping {
    /// Native, derived, read or missing.
    pub how: GpuHow,
    /// Caveat or reason.
    pub note: &'static str,
}

const fn native(expr: GpuExpr, note: &'static str) -> GpuMapping {
    GpuMapping {
        how: GpuHow::Native(expr),
        note,
    }
}

const fn derived(expr: GpuExpr, note: &'static str) -> GpuMapping {
    GpuMapping {
        how: GpuHow::Derived(expr),
        note,
    }
}

const fn read(call: &'static str, note: &'static str) -> GpuMapping {
    GpuMapping {
        how: GpuHow::Read(call),
        note,
    }
}

const fn labels(which: &'static str) -> GpuMapping {
    GpuMapping {
        how: GpuHow::Labels(which),
        note: "",
    }
}

const fn missing(note: &'static str) -> GpuMapping {
    GpuMapping {
        how: GpuHow::Missing,
        note,
    }
}

/// One canonical GPU or host signal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GpuSignal {
    /// Canonical name (`llm_gpu_` or `llm_process_`, base units, counters end in `_total`).
    pub name: &'static str,
    /// Prometheus type.
    pub kind: SignalKind,
    /// Unit in words.
    pub unit: &'static str,
    /// What it means.
    pub help: &'static str,
    /// A GPU's or a process's.
    pub subject: Subject,
    /// NVIDIA dcgm-exporter (current names; `--use-old-namespace` 1.x names as older ones).
    pub dcgm: GpuMapping,
    /// utkuozdemir/nvidia_gpu_exporter (`nvidia_smi_*`).
    pub smi: GpuMapping,
    /// NVML, read by `up` on its own machine.
    pub nvml: GpuMapping,
    /// `/proc` of a local engine process.
    pub procfs: GpuMapping,
}

/// The sources of GPU and host numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GpuSource {
    /// NVIDIA dcgm-exporter, scraped.
    Dcgm,
    /// nvidia_gpu_exporter, scraped.
    NvidiaSmi,
    /// NVML on `up`'s machine.
    Nvml,
    /// `/proc` on `up`'s machine.
    Procfs,
}

impl GpuSource {
    /// Every source, in the reference's column order.
    pub const ALL: [GpuSource; 4] = [
        GpuSource::Dcgm,
        GpuSource::NvidiaSmi,
        GpuSource::Nvml,
        GpuSource::Procfs,
    ];

    /// Its name in labels, the API and the reference.
    pub fn as_str(self) -> &'static str {
        match self {
            GpuSource::Dcgm => "dcgm-exporter",
            GpuSource::NvidiaSmi => "nvidia_gpu_exporter",
            GpuSource::Nvml => "nvml",
            GpuSource::Procfs => "procfs",
        }
    }
}

impl GpuSignal {
    /// The cell for `source`.
    pub fn mapping(&self, source: GpuSource) -> &GpuMapping {
        match source {
            GpuSource::Dcgm => &self.dcgm,
            GpuSource::NvidiaSmi => &self.smi,
            GpuSource::Nvml => &self.nvml,
            GpuSource::Procfs => &self.procfs,
        }
    }
}

const MIB: f64 = 1_048_576.0;
const NOT_GPU: GpuMapping = missing("`/proc` knows nothing of GPUs");
const HOST_ONLY: GpuMapping = missing("a host process's number: up reads it from `/proc`");

/// The canonical throttle reasons (low cardinality: what an operator acts on).
pub const THROTTLE_REASONS: [&str; 3] = ["power", "thermal", "hardware"];

/// Every GPU and host signal.
pub const GPU_SIGNALS: &[GpuSignal] = &[
    GpuSignal {
        name: "llm_gpu_info",
        kind: SignalKind::Gauge,
        unit: "info",
        help: "1 per GPU (or MIG instance), with its index (gpu), product name (gpu_model) and UUID (uuid, only here).",
        subject: Subject::Gpu,
        dcgm: labels("gpu, UUID (uuid), modelName on every series"),
        smi: labels("nvidia_smi_gpu_info{index, name, uuid}: uuid lower-case without GPU-"),
        nvml: read("Device::uuid, index, name", ""),
        procfs: NOT_GPU,
    },
    GpuSignal {
        name: "llm_gpu_utilization_ratio",
        kind: SignalKind::Gauge,
        unit: "ratio",
        help: "Share of the last sample period in which a kernel ran (0–1). High does not mean busy: one small kernel counts.",
        subject: Subject::Gpu,
        dcgm: native(
            GpuExpr::Either(
                &GpuExpr::First(&["DCGM_FI_DEV_GPU_UTIL", "dcgm_gpu_utilization"], 0.01),
                &GpuExpr::First(
                    &[
                        "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
                        "dcgm_fi_prof_gr_engine_active",
                    ],
                    1.0,
                ),
            ),
            "MIG instances have no GPU_UTIL: the graphics engine's active ratio stands in",
        ),
        smi: native(
            GpuExpr::First(&["nvidia_smi_utilization_gpu_ratio"], 1.0),
            "",
        ),
        nvml: read("Device::utilization_rates().gpu / 100", ""),
        procfs: NOT_GPU,
    },
    GpuSignal {
        name: "llm_gpu_memory_used_bytes",
        kind: SignalKind::Gauge,
        unit: "bytes",
        help: "Device memory in use, by every process (an engine claims its pool at start: near-full even when idle).",
        subject: Subject::Gpu,
        dcgm: native(
            GpuExpr::First(&["DCGM_FI_DEV_FB_USED", "dcgm_fb_used"], MIB),
            "MiB on the wire",
        ),
        smi: native(GpuExpr::First(&["nvidia_smi_memory_used_bytes"], 1.0), ""),
        nvml: read("Device::memory_info().used", ""),
        procfs: NOT_GPU,
    },
    GpuSignal {
        name: "llm_gpu_memory_total_bytes",
        kind: SignalKind::Gauge,
        unit: "bytes",
        help: "Device memory in all.",
        subject: Subject::Gpu,
        dcgm: derived(
            GpuExpr::Either(
                &GpuExpr::First(&["DCGM_FI_DEV_FB_TOTAL"], MIB),
                &GpuExpr::SumOf(
                    &[
                        "DCGM_FI_DEV_FB_FREE",
                        "DCGM_FI_DEV_FB_USED",
                        "DCGM_FI_DEV_FB_RESERVED",
                    ],
                    2,
                    MIB,
                ),
            ),
            "FB_TOTAL is not in the default counters: free + used + reserved (reserved since 4.3.1), within 2 MiB of the card",
        ),
        smi: native(GpuExpr::First(&["nvidia_smi_memory_total_bytes"], 1.0), ""),
        nvml: read("Device::memory_info().total", ""),
        procfs: NOT_GPU,
    },
    GpuSignal {
        name: "llm_gpu_power_watts",
        kind: SignalKind::Gauge,
        unit: "watts",
        help: "Power draw.",
        subject: Subject::Gpu,
        dcgm: native(
            GpuExpr::First(&["DCGM_FI_DEV_POWER_USAGE", "dcgm_power_usage"], 1.0),
            "",
        ),
        smi: native(GpuExpr::First(&["nvidia_smi_power_draw_watts"], 1.0), ""),
        nvml: read("Device::power_usage() / 1000", "mW on the wire"),
        procfs: NOT_GPU,
    },
    GpuSignal {
        name: "llm_gpu_power_limit_watts",
        kind: SignalKind::Gauge,
        unit: "watts",
        help: "The power limit the driver enforces.",
        subject: Subject::Gpu,
        dcgm: native(
            GpuExpr::First(&["DCGM_FI_DEV_POWER_MGMT_LIMIT"], 1.0),
            "not in the default counters: add DCGM_FI_DEV_POWER_MGMT_LIMIT to the CSV",
        ),
        smi: native(
            GpuExpr::First(
                &[
                    "nvidia_smi_enforced_power_limit_watts",
                    "nvidia_smi_power_limit_watts",
                ],
                1.0,
            ),
            "",
        ),
        nvml: read("Device::enforced_power_limit() / 1000", ""),
        procfs: NOT_GPU,
    },
    GpuSignal {
        name: "llm_gpu_temperature_celsius",
        kind: SignalKind::Gauge,
        unit: "celsius",
        help: "GPU core temperature.",
        subject: Subject::Gpu,
        dcgm: native(
            GpuExpr::First(&["DCGM_FI_DEV_GPU_TEMP", "dcgm_gpu_temp"], 1.0),
            "",
        ),
        smi: native(GpuExpr::First(&["nvidia_smi_temperature_gpu"], 1.0), ""),
        nvml: read("Device::temperature(Gpu)", ""),
        procfs: NOT_GPU,
    },
    GpuSignal {
        name: "llm_gpu_sm_clock_hertz",
        kind: SignalKind::Gauge,
        unit: "hertz",
        help: "Streaming-multiprocessor clock (falls when the GPU throttles).",
        subject: Subject::Gpu,
        dcgm: native(
            GpuExpr::First(&["DCGM_FI_DEV_SM_CLOCK", "dcgm_sm_clock"], 1e6),
            "MHz on the wire",
        ),
        smi: native(
            GpuExpr::First(&["nvidia_smi_clocks_current_sm_clock_hz"], 1.0),
            "",
        ),
        nvml: read("Device::clock_info(SM) × 10⁶", ""),
        procfs: NOT_GPU,
    },
    GpuSignal {
        name: "llm_gpu_throttled_seconds_total",
        kind: SignalKind::Counter,
        unit: "seconds",
        help: "Time the clocks were held down, by reason (power, thermal, hardware).",
        subject: Subject::Gpu,
        dcgm: native(
            GpuExpr::ByReason(
                &[
                    ("DCGM_FI_DEV_POWER_VIOLATION", "power"),
                    ("DCGM_FI_DEV_THERMAL_VIOLATION", "thermal"),
                    ("DCGM_FI_DEV_RELIABILITY_VIOLATION", "hardware"),
                ],
                1e-9,
            ),
            "not in the default counters: enable the *_VIOLATION fields (ns) in the CSV",
        ),
        smi: native(
            GpuExpr::ByReason(
                &[
                    (
                        "nvidia_smi_clocks_event_reasons_counters_sw_power_cap_seconds",
                        "power",
                    ),
                    (
                        "nvidia_smi_clocks_event_reasons_counters_hw_power_brake_slowdown_seconds",
                        "power",
                    ),
                    (
                        "nvidia_smi_clocks_event_reasons_counters_sw_thermal_slowdown_seconds",
                        "thermal",
                    ),
                    (
                        "nvidia_smi_clocks_event_reasons_counters_hw_thermal_slowdown_seconds",
                        "thermal",
                    ),
                    (
                        "nvidia_smi_clocks_event_reasons_counters_hw_slowdown_seconds",
                        "hardware",
                    ),
                ],
                1.0,
            ),
            "exported as gauges, cumulative: read as counters",
        ),
        nvml: read(
            "Device::violation_status(Power | Thermal | Reliability) / 10⁹",
            "",
        ),
        procfs: NOT_GPU,
    },
    GpuSignal {
        name: "llm_gpu_xid_errors_total",
        kind: SignalKind::Counter,
        unit: "errors",
        help: "XID errors (driver-reported GPU faults) since the source started.",
        subject: Subject::Gpu,
        dcgm: missing(
            "DCGM_FI_DEV_XID_ERRORS is the last XID's code, not a count: see llm_gpu_last_xid",
        ),
        smi: native(
            GpuExpr::First(&["nvidia_smi_xid_errors_total"], 1.0),
            "its nvml backend only",
        ),
        nvml: read("critical XID events counted by up", ""),
        procfs: NOT_GPU,
    },
    GpuSignal {
        name: "llm_gpu_last_xid",
        kind: SignalKind::Gauge,
        unit: "code",
        help: "The code of the last XID error (0: none yet). It never returns to 0.",
        subject: Subject::Gpu,
        dcgm: native(
            GpuExpr::First(&["DCGM_FI_DEV_XID_ERRORS", "dcgm_xid_errors"], 1.0),
            "absent until the first XID",
        ),
        smi: missing("nvidia_smi_xid_last_timestamp_seconds has the time, per code"),
        nvml: read("the last critical XID event's code", ""),
        procfs: NOT_GPU,
    },
    GpuSignal {
        name: "llm_gpu_energy_joules_total",
        kind: SignalKind::Counter,
        unit: "joules",
        help: "Energy used since the driver loaded.",
        subject: Subject::Gpu,
        dcgm: native(
            GpuExpr::First(
                &[
                    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
                    "dcgm_total_energy_consumption",
                ],
                1e-3,
            ),
            "mJ on the wire",
        ),
        smi: native(
            GpuExpr::First(&["nvidia_smi_energy_joules_total"], 1.0),
            "its nvml backend only",
        ),
        nvml: read(
            "Device::total_energy_consumption() / 1000",
            "Volta and newer",
        ),
        procfs: NOT_GPU,
    },
    GpuSignal {
        name: "llm_process_gpu_memory_bytes",
        kind: SignalKind::Gauge,
        unit: "bytes",
        help: "Device memory held by the engine's processes (the port's owner and its descendants), per GPU.",
        subject: Subject::Process,
        dcgm: missing("per pod only, on shared GPUs (4.5.3 and newer), not per process"),
        smi: native(
            GpuExpr::First(&["nvidia_smi_compute_app_used_memory_bytes"], 1.0),
            "with --collect.compute-apps; host PIDs",
        ),
        nvml: read("Device::running_compute_processes(), by host PID", ""),
        procfs: NOT_GPU,
    },
    GpuSignal {
        name: "llm_process_cpu_seconds_total",
        kind: SignalKind::Counter,
        unit: "seconds",
        help: "CPU time of the engine's processes (the port's owner and its descendants).",
        subject: Subject::Process,
        dcgm: HOST_ONLY,
        smi: HOST_ONLY,
        nvml: HOST_ONLY,
        procfs: read("/proc/PID/stat utime + stime", ""),
    },
    GpuSignal {
        name: "llm_process_resident_memory_bytes",
        kind: SignalKind::Gauge,
        unit: "bytes",
        help: "Resident host memory of the engine's processes (the port's owner and its descendants).",
        subject: Subject::Process,
        dcgm: HOST_ONLY,
        smi: HOST_ONLY,
        nvml: HOST_ONLY,
        procfs: read("/proc/PID/statm resident pages × page size", ""),
    },
];

/// The row of GPU signal `name`.
pub fn gpu_signal(name: &str) -> Option<&'static GpuSignal> {
    GPU_SIGNALS.iter().find(|s| s.name == name)
}
