//! The NVML calls behind [`super::NvmlGpu`]: the library is opened once per process (a
//! second `nvmlInit` is counted by the driver, not free), each GPU read by index every
//! round, and critical XID events polled without waiting.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use nvml_wrapper::Nvml;
use nvml_wrapper::bitmasks::event::EventTypes;
use nvml_wrapper::enum_wrappers::device::{Clock, PerformancePolicy, TemperatureSensor};
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::enums::event::XidError;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::event::EventSet;

use super::{LostGpu, NvmlGpu, ReadGpus};

static NVML: OnceLock<Result<Nvml, String>> = OnceLock::new();

/// Why NVML did not start, in words a user acts on.
fn said(e: &NvmlError) -> String {
    match e {
        NvmlError::LibloadingError(_) | NvmlError::DriverNotLoaded => {
            format!("no NVIDIA driver ({e})")
        }
        NvmlError::NoPermission => format!("NVML refused this user ({e})"),
        _ => format!("NVML did not start ({e})"),
    }
}

fn library() -> Result<&'static Nvml, String> {
    NVML.get_or_init(|| Nvml::init().map_err(|e| said(&e)))
        .as_ref()
        .map_err(Clone::clone)
}

/// This machine's GPUs through NVML, with the XID events seen since opening.
pub struct LocalGpus {
    nvml: &'static Nvml,
    count: u32,
    /// Critical XID events, when the driver lets us register for them.
    events: Option<EventSet<'static>>,
    /// Per UUID: XIDs seen, last code.
    xids: BTreeMap<String, (u64, u64)>,
}

/// Opens NVML; `Err` says why not ("no NVIDIA driver (…)", no GPU).
pub fn open() -> Result<LocalGpus, String> {
    let nvml = library()?;
    let count = nvml
        .device_count()
        .map_err(|e| format!("NVML lists no GPU ({e})"))?;
    if count == 0 {
        return Err("NVML lists no GPU".into());
    }
    Ok(LocalGpus {
        nvml,
        count,
        events: xid_events(nvml, count),
        xids: BTreeMap::new(),
    })
}

/// An event set registered for critical XIDs on every GPU that allows it. A failed
/// registration releases the set it was given (NVML's rule), so each GPU is first tried on a
/// set of its own.
fn xid_events(nvml: &'static Nvml, count: u32) -> Option<EventSet<'static>> {
    let supports = |index: u32| {
        let (Ok(device), Ok(probe)) = (nvml.device_by_index(index), nvml.create_event_set()) else {
            return false;
        };
        match device.register_events(EventTypes::CRITICAL_XID_ERROR, probe) {
            Ok(set) => {
                // Released only to be registered again below; a failure here leaks nothing
                // NVML does not free at shutdown.
                let _ = set.release_events();
                true
            }
            Err(_) => false,
        }
    };
    let mut set = nvml.create_event_set().ok()?;
    for index in (0..count).filter(|i| supports(*i)) {
        set = nvml
            .device_by_index(index)
            .ok()?
            .register_events(EventTypes::CRITICAL_XID_ERROR, set)
            .ok()?;
    }
    Some(set)
}

fn ok<T>(result: Result<T, NvmlError>) -> Option<T> {
    result.ok()
}

impl ReadGpus for LocalGpus {
    fn read(&mut self) -> (Vec<NvmlGpu>, Vec<LostGpu>) {
        self.poll_xids();
        let (mut gpus, mut lost) = (Vec::new(), Vec::new());
        for index in 0..self.count {
            match self.gpu(index) {
                Ok(gpu) => gpus.push(gpu),
                Err(e) => lost.push(LostGpu {
                    index,
                    error: e.to_string(),
                }),
            }
        }
        (gpus, lost)
    }

    fn count(&self) -> usize {
        self.count as usize
    }
}

impl LocalGpus {
    /// Takes every XID event waiting, without blocking.
    fn poll_xids(&mut self) {
        let Some(events) = &self.events else {
            return;
        };
        while let Ok(event) = events.wait(0) {
            let (Ok(uuid), Some(XidError::Value(code))) = (event.device.uuid(), event.event_data)
            else {
                continue;
            };
            let seen = self.xids.entry(uuid).or_default();
            seen.0 += 1;
            seen.1 = code;
        }
    }

    /// One GPU; an error only when it cannot be named (fell off the bus). A number it does
    /// not support is left out.
    fn gpu(&self, index: u32) -> Result<NvmlGpu, NvmlError> {
        let device = self.nvml.device_by_index(index)?;
        let uuid = device.uuid()?;
        let memory = ok(device.memory_info());
        let throttled = [
            ("power", PerformancePolicy::Power),
            ("thermal", PerformancePolicy::Thermal),
            ("hardware", PerformancePolicy::Reliability),
        ]
        .into_iter()
        .filter_map(|(reason, policy)| {
            Some((reason, ok(device.violation_status(policy))?.violation_time))
        })
        .collect();
        let processes = ok(device.running_compute_processes())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| match p.used_gpu_memory {
                UsedGpuMemory::Used(bytes) => Some((p.pid, bytes)),
                UsedGpuMemory::Unavailable => None,
            })
            .collect();
        let (xid_errors, last) = self.xids.get(&uuid).copied().unwrap_or_default();
        Ok(NvmlGpu {
            index,
            name: ok(device.name()),
            utilization_percent: ok(device.utilization_rates()).map(|u| u.gpu),
            memory_used_bytes: memory.as_ref().map(|m| m.used),
            memory_total_bytes: memory.as_ref().map(|m| m.total),
            power_milliwatts: ok(device.power_usage()),
            power_limit_milliwatts: ok(device.enforced_power_limit()),
            temperature_celsius: ok(device.temperature(TemperatureSensor::Gpu)),
            sm_clock_mhz: ok(device.clock_info(Clock::SM)),
            throttled_nanoseconds: throttled,
            energy_millijoules: ok(device.total_energy_consumption()),
            processes,
            xid_errors,
            last_xid: (xid_errors > 0).then_some(last),
            uuid,
        })
    }
}
