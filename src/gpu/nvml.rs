//! This machine's NVIDIA GPUs, read through NVML. The library is opened when `up` starts
//! (`nvml` feature, nvml-wrapper with libloading): on a machine without the driver `up` says
//! "no NVIDIA driver" once and reads no GPU. What one read returns is plain data
//! ([`NvmlGpu`]); [`scrape_of`] turns it into the same [`GpuScrape`] a scraped exporter gives,
//! so the join, `/metrics`, the API, the dashboard and `top` treat both alike.

use std::collections::BTreeMap;

use super::device::{Device, GpuKey, normalise_uuid};
use super::normalise::{GpuReading, GpuSample, GpuScrape};
use super::signals::{GpuSource, gpu_signal};

#[cfg(all(feature = "nvml", target_os = "linux"))]
mod library;

/// The name of the target NVML's GPUs appear under (`instance` of their series).
pub const NVML_TARGET: &str = "nvml";

/// Something that reads this machine's GPUs: NVML, or a stand-in in tests.
pub trait ReadGpus {
    /// Every GPU: those that answered, and those that did not.
    fn read(&mut self) -> (Vec<NvmlGpu>, Vec<LostGpu>);

    /// How many GPUs the driver lists (read at open, so telling it costs no GPU read).
    fn count(&self) -> usize;
}

/// Opens NVML; `Err` says why this machine's GPUs cannot be read ("no NVIDIA driver (…)").
#[cfg(all(feature = "nvml", target_os = "linux"))]
pub fn open() -> Result<impl ReadGpus, String> {
    library::open()
}

/// Built without NVML: nothing to open.
#[cfg(not(all(feature = "nvml", target_os = "linux")))]
pub fn open() -> Result<impl ReadGpus, String> {
    Err::<Unavailable, _>("built without NVML (the nvml feature, Linux only)".to_string())
}

/// The reader of a build without NVML: there is none.
#[cfg(not(all(feature = "nvml", target_os = "linux")))]
enum Unavailable {}

#[cfg(not(all(feature = "nvml", target_os = "linux")))]
impl ReadGpus for Unavailable {
    fn read(&mut self) -> (Vec<NvmlGpu>, Vec<LostGpu>) {
        match *self {}
    }

    fn count(&self) -> usize {
        match *self {}
    }
}

/// One GPU as one NVML read saw it. A number the GPU or driver does not support is `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NvmlGpu {
    /// NVML index.
    pub index: u32,
    /// UUID as NVML writes it (`GPU-…`).
    pub uuid: String,
    /// Product name.
    pub name: Option<String>,
    /// Percent of the last sample period a kernel ran.
    pub utilization_percent: Option<u32>,
    /// Device memory in use, bytes.
    pub memory_used_bytes: Option<u64>,
    /// Device memory, bytes.
    pub memory_total_bytes: Option<u64>,
    /// Power draw, milliwatts.
    pub power_milliwatts: Option<u32>,
    /// Enforced power limit, milliwatts.
    pub power_limit_milliwatts: Option<u32>,
    /// Die temperature, °C.
    pub temperature_celsius: Option<u32>,
    /// SM clock, MHz.
    pub sm_clock_mhz: Option<u32>,
    /// Cumulative time throttled, nanoseconds, by reason (power, thermal, hardware).
    pub throttled_nanoseconds: Vec<(&'static str, u64)>,
    /// Energy since the driver loaded, millijoules.
    pub energy_millijoules: Option<u64>,
    /// Compute processes and the device memory each holds (host PID, bytes).
    pub processes: Vec<(u32, u64)>,
    /// Critical XID events seen since `up` started.
    pub xid_errors: u64,
    /// The last critical XID's code.
    pub last_xid: Option<u64>,
}

/// A GPU NVML could not read this time (it fell off the bus, or the driver refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostGpu {
    /// NVML index.
    pub index: u32,
    /// NVML's error.
    pub error: String,
}

/// Appends `value` for device `device` to signal `name`'s samples.
fn push(
    readings: &mut BTreeMap<&'static str, Vec<GpuSample>>,
    name: &'static str,
    device: usize,
    split: (Option<&'static str>, Option<u32>),
    value: Option<f64>,
) {
    if let Some(value) = value.filter(|v| v.is_finite()) {
        readings.entry(name).or_default().push(GpuSample {
            device,
            reason: split.0,
            pid: split.1,
            value,
        });
    }
}

/// The values of `gpu` (device `device` of the scrape), per signal.
fn values(gpu: &NvmlGpu, device: usize, out: &mut BTreeMap<&'static str, Vec<GpuSample>>) {
    let whole = (None, None);
    let number = |v: Option<u32>| v.map(f64::from);
    let big = |v: Option<u64>| v.map(|v| v as f64);
    let ratio = gpu.utilization_percent.map(|p| f64::from(p) / 100.0);
    push(out, "llm_gpu_utilization_ratio", device, whole, ratio);
    let used = big(gpu.memory_used_bytes);
    push(out, "llm_gpu_memory_used_bytes", device, whole, used);
    let total = big(gpu.memory_total_bytes);
    push(out, "llm_gpu_memory_total_bytes", device, whole, total);
    let watts = |mw: Option<u32>| number(mw).map(|mw| mw / 1000.0);
    push(
        out,
        "llm_gpu_power_watts",
        device,
        whole,
        watts(gpu.power_milliwatts),
    );
    let limit = watts(gpu.power_limit_milliwatts);
    push(out, "llm_gpu_power_limit_watts", device, whole, limit);
    let celsius = number(gpu.temperature_celsius);
    push(out, "llm_gpu_temperature_celsius", device, whole, celsius);
    let hertz = number(gpu.sm_clock_mhz).map(|mhz| mhz * 1e6);
    push(out, "llm_gpu_sm_clock_hertz", device, whole, hertz);
    for (reason, ns) in &gpu.throttled_nanoseconds {
        let seconds = Some(*ns as f64 / 1e9);
        let split = (Some(*reason), None);
        push(
            out,
            "llm_gpu_throttled_seconds_total",
            device,
            split,
            seconds,
        );
    }
    let errors = Some(gpu.xid_errors as f64);
    push(out, "llm_gpu_xid_errors_total", device, whole, errors);
    let last = gpu.last_xid.map(|x| x as f64);
    push(out, "llm_gpu_last_xid", device, whole, last);
    let joules = big(gpu.energy_millijoules).map(|mj| mj / 1000.0);
    push(out, "llm_gpu_energy_joules_total", device, whole, joules);
    for (pid, bytes) in &gpu.processes {
        let split = (None, Some(*pid));
        let held = Some(*bytes as f64);
        push(out, "llm_process_gpu_memory_bytes", device, split, held);
    }
}

/// One NVML read as a [`GpuScrape`] of source `nvml`.
pub fn scrape_of(gpus: &[NvmlGpu]) -> GpuScrape {
    let mut sorted: Vec<&NvmlGpu> = gpus.iter().collect();
    sorted.sort_by_key(|g| normalise_uuid(&g.uuid));
    let mut by_signal = BTreeMap::new();
    let mut devices = Vec::with_capacity(sorted.len());
    for (position, gpu) in sorted.iter().enumerate() {
        values(gpu, position, &mut by_signal);
        let mut pids: Vec<u32> = gpu.processes.iter().map(|(pid, _)| *pid).collect();
        pids.sort_unstable();
        pids.dedup();
        devices.push(Device {
            key: GpuKey {
                uuid: normalise_uuid(&gpu.uuid),
                instance: None,
            },
            uuid: gpu.uuid.clone(),
            index: Some(gpu.index.to_string()),
            model: gpu.name.clone(),
            profile: None,
            hostname: None,
            pods: Vec::new(),
            pids,
        });
    }
    let readings = by_signal
        .into_iter()
        .filter_map(|(name, samples)| {
            Some(GpuReading {
                signal: gpu_signal(name)?,
                used: Vec::new(),
                samples,
            })
        })
        .collect();
    GpuScrape {
        source: GpuSource::Nvml,
        devices,
        readings,
        unknown: Vec::new(),
        without_gpu: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h100(index: u32, uuid: &str) -> NvmlGpu {
        NvmlGpu {
            index,
            uuid: uuid.into(),
            name: Some("NVIDIA H100 80GB HBM3".into()),
            utilization_percent: Some(87),
            memory_used_bytes: Some(70 << 30),
            memory_total_bytes: Some(80 << 30),
            power_milliwatts: Some(512_250),
            power_limit_milliwatts: Some(700_000),
            temperature_celsius: Some(64),
            sm_clock_mhz: Some(1980),
            throttled_nanoseconds: vec![("power", 2_500_000_000), ("thermal", 0)],
            energy_millijoules: Some(9_000_000),
            processes: vec![(4242, 60 << 30), (4243, 1 << 30)],
            xid_errors: 1,
            last_xid: Some(79),
        }
    }

    #[test]
    fn nvml_read_becomes_the_gpu_signals_in_base_units() {
        let scrape = scrape_of(&[h100(1, "GPU-BBBB"), h100(0, "GPU-AAAA")]);
        assert_eq!(scrape.source, GpuSource::Nvml);
        // Sorted by normalised UUID, like a scraped exporter's.
        let uuids: Vec<&str> = scrape.devices.iter().map(|d| d.key.uuid.as_str()).collect();
        assert_eq!(uuids, ["aaaa", "bbbb"]);
        assert_eq!(scrape.devices[0].index.as_deref(), Some("0"));
        assert_eq!(scrape.devices[0].pids, [4242, 4243]);
        let v = |name| scrape.value(name, "aaaa");
        assert_eq!(v("llm_gpu_utilization_ratio"), Some(0.87));
        assert_eq!(v("llm_gpu_memory_used_bytes"), Some((70u64 << 30) as f64));
        assert_eq!(v("llm_gpu_memory_total_bytes"), Some((80u64 << 30) as f64));
        assert_eq!(v("llm_gpu_power_watts"), Some(512.25));
        assert_eq!(v("llm_gpu_power_limit_watts"), Some(700.0));
        assert_eq!(v("llm_gpu_temperature_celsius"), Some(64.0));
        assert_eq!(v("llm_gpu_sm_clock_hertz"), Some(1.98e9));
        assert_eq!(v("llm_gpu_energy_joules_total"), Some(9000.0));
        assert_eq!(v("llm_gpu_xid_errors_total"), Some(1.0));
        assert_eq!(v("llm_gpu_last_xid"), Some(79.0));
        let throttled = scrape
            .reading("llm_gpu_throttled_seconds_total")
            .map(|r| {
                r.samples
                    .iter()
                    .filter(|s| s.device == 0)
                    .map(|s| (s.reason, s.value))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        assert_eq!(throttled, [(Some("power"), 2.5), (Some("thermal"), 0.0)]);
        let held: Vec<(Option<u32>, f64)> = scrape
            .reading("llm_process_gpu_memory_bytes")
            .map(|r| r.samples.iter().filter(|s| s.device == 1))
            .into_iter()
            .flatten()
            .map(|s| (s.pid, s.value))
            .collect();
        assert_eq!(
            held,
            [
                (Some(4242), (60u64 << 30) as f64),
                (Some(4243), (1u64 << 30) as f64)
            ]
        );
    }

    #[test]
    fn unsupported_numbers_are_absent_not_zero() {
        let bare = NvmlGpu {
            index: 0,
            uuid: "GPU-cccc".into(),
            ..NvmlGpu::default()
        };
        let scrape = scrape_of(&[bare]);
        assert_eq!(scrape.devices.len(), 1);
        assert_eq!(scrape.value("llm_gpu_utilization_ratio", "cccc"), None);
        assert_eq!(scrape.value("llm_gpu_power_watts", "cccc"), None);
        assert_eq!(scrape.value("llm_gpu_last_xid", "cccc"), None);
        // The XID count is up's own and starts at zero.
        assert_eq!(scrape.value("llm_gpu_xid_errors_total", "cccc"), Some(0.0));
    }
}
