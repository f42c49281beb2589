//! The GPU under a simulated engine, written as dcgm-exporter writes it (with `--kubernetes`
//! and a counter file that adds the throttling fields), served on `/dcgm/metrics` by every
//! GPU engine (vLLM, TGI, SGLang; llama.cpp runs on the CPU). Its numbers follow the engine:
//! memory is the weights plus the KV blocks in use, utilisation the share of time the engine
//! spent in prefill and decode steps, power and temperature follow utilisation. Scenario steps
//! add throttling, an XID error and memory held outside the KV cache.

use std::fmt::Write as _;

use super::dialect::Snapshot;
use crate::exposition::write::write_value;
use crate::exposition::write_family_header;

/// A reason the clocks are held down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttle {
    /// Power cap.
    Power,
    /// Temperature.
    Thermal,
}

impl Throttle {
    /// From a scenario's `gpu_throttle` (`"none"` is no throttling).
    pub fn parse(text: &str) -> Result<Option<Throttle>, String> {
        match text {
            "power" => Ok(Some(Throttle::Power)),
            "thermal" => Ok(Some(Throttle::Thermal)),
            "none" => Ok(None),
            other => Err(format!(
                "gpu_throttle {other:?}: use \"power\", \"thermal\" or \"none\""
            )),
        }
    }
}

/// What a scenario did to the GPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GpuFaults {
    /// Clocks held down, and why.
    pub throttle: Option<Throttle>,
    /// The last XID error's code (0: none yet).
    pub xid: u32,
    /// GiB of device memory another process holds.
    pub foreign_memory_gib: u32,
}

/// Device memory of an H100 80GB HBM3 as NVML reports it, in MiB.
const TOTAL_MIB: f64 = 81_559.0;
/// A 7B model's fp16 weights plus the CUDA context.
const WEIGHTS_MIB: f64 = 14_336.0 + 1_024.0;
/// Bytes of KV per token for a 7B model (2 × 32 layers × 4096 × 2 bytes).
const KV_MIB_PER_TOKEN: f64 = 0.5;
const IDLE_WATTS: f64 = 70.0;
const LIMIT_WATTS: f64 = 700.0;
const SM_MHZ: f64 = 1980.0;
const THROTTLED_SM_MHZ: f64 = 1410.0;

/// One simulated GPU, carrying its counters between scrapes.
#[derive(Debug, Clone)]
pub struct SimGpu {
    uuid: String,
    pod: String,
    container: &'static str,
    last: Option<(f64, f64)>,
    utilization: f64,
    energy_mj: f64,
    violation_ns: [f64; 2],
}

impl SimGpu {
    /// The GPU of the engine `container` (its dialect) listening on `port`: the UUID and the
    /// pod name are made from both, so every engine of one simulator has its own.
    pub fn new(container: &'static str, port: u16) -> SimGpu {
        // A hash of the dialect: a stable tail for the UUID.
        let tag = crate::rng::fnv1a(container.as_bytes()) & 0xffff_ffff_ffff;
        SimGpu {
            uuid: format!("GPU-{port:08x}-5100-4000-8000-{tag:012x}"),
            pod: format!("{container}-{port}"),
            container,
            last: None,
            utilization: 0.0,
            energy_mj: 0.0,
            violation_ns: [0.0; 2],
        }
    }

    /// The UUID as dcgm-exporter writes it (`GPU-…`).
    pub fn uuid(&self) -> &str {
        &self.uuid
    }

    /// Moves the counters to `now` (seconds) and renders the body.
    pub fn render(&mut self, now: f64, snap: &Snapshot<'_>, faults: GpuFaults) -> String {
        let busy = snap.totals.prefill_seconds + snap.totals.decode_seconds;
        let elapsed = self.last.map_or(0.0, |(at, _)| (now - at).max(0.0));
        if let Some((_, before)) = self.last
            && elapsed > 0.0
        {
            self.utilization = ((busy - before) / elapsed).clamp(0.0, 1.0);
        }
        self.last = Some((now, busy));
        let power = self.power(faults.throttle);
        self.energy_mj += power * elapsed * 1000.0;
        match faults.throttle {
            Some(Throttle::Power) => self.violation_ns[0] += elapsed * 1e9,
            Some(Throttle::Thermal) => self.violation_ns[1] += elapsed * 1e9,
            None => {}
        }
        let kv_tokens = f64::from(snap.profile.kv_blocks) * f64::from(snap.profile.block_tokens);
        let used = (WEIGHTS_MIB
            + snap.kv_usage * kv_tokens * KV_MIB_PER_TOKEN
            + f64::from(faults.foreign_memory_gib) * 1024.0)
            .min(TOTAL_MIB)
            .round();
        let reserved = 1_017.0;
        let temperature = 30.0
            + 45.0 * self.utilization
            + if faults.throttle == Some(Throttle::Thermal) {
                17.0
            } else {
                0.0
            };
        let clock = if faults.throttle.is_some() {
            THROTTLED_SM_MHZ
        } else {
            SM_MHZ
        };
        let fields: [(&str, &str, &str, f64, bool); 10] = [
            (
                "DCGM_FI_DEV_SM_CLOCK",
                "gauge",
                "SM clock frequency (in MHz).",
                clock,
                true,
            ),
            (
                "DCGM_FI_DEV_GPU_TEMP",
                "gauge",
                "GPU temperature (in C).",
                temperature.round(),
                true,
            ),
            (
                "DCGM_FI_DEV_POWER_USAGE",
                "gauge",
                "Power draw (in W).",
                power,
                false,
            ),
            (
                "DCGM_FI_DEV_POWER_MGMT_LIMIT",
                "gauge",
                "Power management limit (in W).",
                LIMIT_WATTS,
                false,
            ),
            (
                "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
                "counter",
                "Total energy consumption since boot (in mJ).",
                self.energy_mj.round(),
                true,
            ),
            (
                "DCGM_FI_DEV_GPU_UTIL",
                "gauge",
                "GPU utilization (in %).",
                (self.utilization * 100.0).round(),
                true,
            ),
            (
                "DCGM_FI_DEV_FB_FREE",
                "gauge",
                "Framebuffer memory free (in MiB).",
                (TOTAL_MIB - used - reserved).max(0.0),
                true,
            ),
            (
                "DCGM_FI_DEV_FB_USED",
                "gauge",
                "Framebuffer memory used (in MiB).",
                used,
                true,
            ),
            (
                "DCGM_FI_DEV_FB_RESERVED",
                "gauge",
                "Framebuffer memory reserved (in MiB).",
                reserved,
                true,
            ),
            (
                "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
                "gauge",
                "Ratio of time the graphics engine is active.",
                self.utilization * 0.8,
                false,
            ),
        ];
        let mut out = String::with_capacity(4096);
        for (name, kind, help, value, integer) in fields {
            self.field(&mut out, name, kind, help, value, integer, "");
        }
        let violations = [
            (
                "DCGM_FI_DEV_POWER_VIOLATION",
                "Throttling duration due to power constraints (in ns).",
                0,
            ),
            (
                "DCGM_FI_DEV_THERMAL_VIOLATION",
                "Throttling duration due to thermal constraints (in ns).",
                1,
            ),
        ];
        for (name, help, i) in violations {
            self.field(
                &mut out,
                name,
                "counter",
                help,
                self.violation_ns[i],
                true,
                "",
            );
        }
        if faults.xid > 0 {
            let extra = format!(
                ",err_code=\"{}\",err_msg=\"{}\"",
                faults.xid,
                xid_message(faults.xid)
            );
            let help = "Value of the last XID error encountered.";
            self.field(
                &mut out,
                "DCGM_FI_DEV_XID_ERRORS",
                "gauge",
                help,
                f64::from(faults.xid),
                true,
                &extra,
            );
        }
        out
    }

    fn power(&self, throttle: Option<Throttle>) -> f64 {
        let draw = IDLE_WATTS + (LIMIT_WATTS - IDLE_WATTS) * self.utilization.powf(0.8);
        if throttle == Some(Throttle::Power) {
            draw.min(LIMIT_WATTS * 0.98)
        } else {
            draw
        }
    }

    /// One family, written as dcgm-exporter's template does: integer fields with `%d`,
    /// doubles with six decimals, its label order, the pod labels after the driver version.
    #[allow(clippy::too_many_arguments)]
    fn field(
        &self,
        out: &mut String,
        name: &str,
        kind: &str,
        help: &str,
        value: f64,
        integer: bool,
        extra: &str,
    ) {
        write_family_header(out, name, Some(help), kind);
        let _ = write!(
            out,
            "{name}{{gpu=\"0\",UUID=\"{}\",pci_bus_id=\"00000000:3B:00.0\",device=\"nvidia0\",modelName=\"NVIDIA H100 80GB HBM3\",Hostname=\"sim\",DCGM_FI_DRIVER_VERSION=\"580.95.05\",container=\"{}\",namespace=\"sim\",pod=\"{}\"{extra}}} ",
            self.uuid, self.container, self.pod
        );
        if integer {
            write_value(out, value.round());
        } else {
            let _ = write!(out, "{value:.6}");
        }
        out.push('\n');
    }
}

/// dcgm-exporter's message for the XID codes the simulator uses.
fn xid_message(code: u32) -> &'static str {
    match code {
        79 => "GPU has fallen off the bus",
        48 => "Double Bit ECC Error",
        63 => "ECC page retirement or row remapping recording event",
        _ => "Unknown Error",
    }
}

#[cfg(test)]
mod tests;
