//! Reads one GPU exporter's scrape into the GPU signals: which exporter it is, the GPUs it
//! describes, and per signal the value for each GPU (and throttle reason, and process).

use std::collections::BTreeMap;

use super::device::{Device, GpuKey, PodRef, device_of};
use super::signals::{GPU_SIGNALS, GpuExpr, GpuHow, GpuSignal, GpuSource};
use crate::engines::Index;
use crate::exposition::Exposition;

/// One value of a GPU signal.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuSample {
    /// Index into [`GpuScrape::devices`].
    pub device: usize,
    /// The throttle reason, for `llm_gpu_throttled_seconds_total`.
    pub reason: Option<&'static str>,
    /// The host PID, for a process's number.
    pub pid: Option<u32>,
    /// In base units.
    pub value: f64,
}

/// One signal's values in a scrape, and the series they were read from.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuReading {
    /// The signal's table row.
    pub signal: &'static GpuSignal,
    /// The exporter's series read.
    pub used: Vec<&'static str>,
    /// The values.
    pub samples: Vec<GpuSample>,
}

/// What one GPU exporter's scrape says.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuScrape {
    /// Which exporter.
    pub source: GpuSource,
    /// The GPUs (and MIG instances), sorted by key.
    pub devices: Vec<Device>,
    /// Per signal with at least one value.
    pub readings: Vec<GpuReading>,
    /// The exporter's families the table does not read (kept in the raw body, counted).
    pub unknown: Vec<String>,
    /// Samples that name no GPU (no UUID label), so cannot be attributed.
    pub without_gpu: usize,
}

/// Which GPU exporter produced `index`'s body, if any: dcgm-exporter's `DCGM_FI_`/`DCGM_EXP_`
/// families (or 1.x `dcgm_`), nvidia_gpu_exporter's `nvidia_smi_`.
pub fn detect(index: &Index<'_, '_>) -> Option<GpuSource> {
    let families = &index.exposition().families;
    let count = |source| {
        families
            .iter()
            .filter(|f| is_exporters(source, f.name))
            .count()
    };
    match (count(GpuSource::Dcgm), count(GpuSource::NvidiaSmi)) {
        (0, 0) => None,
        (d, s) if d >= s => Some(GpuSource::Dcgm),
        _ => Some(GpuSource::NvidiaSmi),
    }
}

/// Whether a family name belongs to `source`'s vocabulary.
fn is_exporters(source: GpuSource, name: &str) -> bool {
    match source {
        GpuSource::Dcgm => name.starts_with("DCGM_") || name.starts_with("dcgm_"),
        GpuSource::NvidiaSmi => name.starts_with("nvidia_smi_"),
        GpuSource::Nvml | GpuSource::Procfs => false,
    }
}

/// Every series name a cell's expression reads.
fn names_of(expr: &GpuExpr, out: &mut Vec<&'static str>) {
    match expr {
        GpuExpr::First(names, _) | GpuExpr::SumOf(names, _, _) => out.extend_from_slice(names),
        GpuExpr::Either(a, b) => {
            names_of(a, out);
            names_of(b, out);
        }
        GpuExpr::ByReason(pairs, _) => out.extend(pairs.iter().map(|(name, _)| *name)),
    }
}

/// The GPUs of a scrape, found as the samples are read.
#[derive(Default)]
struct Devices {
    by_key: BTreeMap<GpuKey, Device>,
}

impl Devices {
    fn note(&mut self, device: Device, pod: Option<PodRef>) -> GpuKey {
        let key = device.key.clone();
        let known = match self.by_key.entry(key.clone()) {
            std::collections::btree_map::Entry::Vacant(entry) => entry.insert(device),
            std::collections::btree_map::Entry::Occupied(entry) => {
                let known = entry.into_mut();
                known.merge(device);
                known
            }
        };
        if let Some(pod) = pod {
            known.add_pod(pod);
        }
        key
    }
}

/// Where a value belongs: the GPU, the throttle reason, the process.
type Slot = (GpuKey, Option<&'static str>, Option<u32>);

/// One signal's values while it is read, and the series that gave them.
#[derive(Default)]
struct Values {
    by: BTreeMap<Slot, f64>,
    used: Vec<&'static str>,
}

/// What reading needs: the scrape and the GPUs found so far.
struct Reader<'x, 'e, 'a> {
    exp: &'x Exposition<'a>,
    index: &'x Index<'e, 'a>,
    devices: Devices,
    without_gpu: usize,
}

impl Reader<'_, '_, '_> {
    /// The values of series `name`, scaled. Per GPU, the series without pod labels (the
    /// device's own) wins over the copies dcgm-exporter makes for each pod on a shared GPU;
    /// without one, the copies (equal) give one value. Several series of the device itself
    /// (a counter split by a label such as `xid`) add up.
    fn series(&mut self, name: &'static str, reason: Option<&'static str>, scale: f64) -> Values {
        let mut by: BTreeMap<Slot, (bool, f64)> = BTreeMap::new();
        let exp = self.exp;
        for sample in self.index.samples(name).filter(|s| s.value.is_finite()) {
            let Some((device, pod)) = device_of(exp, sample) else {
                self.without_gpu += 1;
                continue;
            };
            let own = pod.is_none();
            let key = self.devices.note(device, pod);
            let pid = exp.label(sample, "pid").and_then(|p| p.parse().ok());
            let value = sample.value * scale;
            by.entry((key, reason, pid))
                .and_modify(|(had_own, old)| match (own, *had_own) {
                    // Two series of the device itself split by another label (XIDs by code):
                    // their sum.
                    (true, true) => *old += value,
                    (true, false) => {
                        *old = value;
                        *had_own = true;
                    }
                    (false, false) => *old = old.max(value),
                    (false, true) => {}
                })
                .or_insert((own, value));
        }
        let used = if by.is_empty() { vec![] } else { vec![name] };
        Values {
            by: by.into_iter().map(|(slot, (_, v))| (slot, v)).collect(),
            used,
        }
    }

    /// The values of `expr`.
    fn evaluate(&mut self, expr: &GpuExpr) -> Values {
        match expr {
            GpuExpr::First(names, scale) => {
                for name in names.iter() {
                    let values = self.series(name, None, *scale);
                    if !values.by.is_empty() {
                        return values;
                    }
                }
                Values::default()
            }
            GpuExpr::SumOf(names, required, scale) => {
                let parts: Vec<Values> = names
                    .iter()
                    .map(|name| self.series(name, None, *scale))
                    .collect();
                // Only GPUs with every required part get a sum.
                let needed: Vec<Slot> = parts
                    .iter()
                    .take(*required)
                    .fold(None, |kept: Option<Vec<Slot>>, part| {
                        let here = part.by.keys();
                        Some(match kept {
                            None => here.cloned().collect(),
                            Some(kept) => kept
                                .into_iter()
                                .filter(|s| part.by.contains_key(s))
                                .collect(),
                        })
                    })
                    .unwrap_or_default();
                let mut sum = added(parts);
                sum.by.retain(|slot, _| needed.contains(slot));
                if sum.by.is_empty() {
                    sum.used.clear();
                }
                sum
            }
            GpuExpr::ByReason(pairs, scale) => {
                let parts: Vec<Values> = pairs
                    .iter()
                    .map(|(name, reason)| self.series(name, Some(reason), *scale))
                    .collect();
                added(parts)
            }
            GpuExpr::Either(a, b) => {
                // Per GPU: a MIG instance without `a` takes `b` while whole GPUs keep `a`.
                let mut first = self.evaluate(a);
                let second = self.evaluate(b);
                let mut took = false;
                for (slot, value) in second.by {
                    if let std::collections::btree_map::Entry::Vacant(entry) = first.by.entry(slot)
                    {
                        entry.insert(value);
                        took = true;
                    }
                }
                if took {
                    first.used.extend(second.used);
                }
                first
            }
        }
    }
}

/// Values added up slot by slot.
fn added(parts: Vec<Values>) -> Values {
    let mut out = Values::default();
    for part in parts {
        for (slot, value) in part.by {
            *out.by.entry(slot).or_default() += value;
        }
        out.used.extend(part.used);
    }
    out
}

/// Reads `exp`, a scrape of `source`.
pub fn normalise(exp: &Exposition<'_>, source: GpuSource) -> GpuScrape {
    let index = Index::new(exp);
    let mut reader = Reader {
        exp,
        index: &index,
        devices: Devices::default(),
        without_gpu: 0,
    };
    let mut per_signal: Vec<(&'static GpuSignal, Values)> = Vec::new();
    for signal in GPU_SIGNALS {
        if let GpuHow::Native(expr) | GpuHow::Derived(expr) = signal.mapping(source).how {
            let values = reader.evaluate(&expr);
            if !values.by.is_empty() {
                per_signal.push((signal, values));
            }
        }
    }
    // GPUs seen only on the info series (nvidia_gpu_exporter) or on series the table does
    // not read still count as GPUs.
    for sample in &exp.samples {
        if is_exporters(source, sample.name)
            && let Some((device, pod)) = device_of(exp, sample)
        {
            reader.devices.note(device, pod);
        }
    }
    let (devices, without_gpu) = (reader.devices, reader.without_gpu);
    finish(exp, source, devices, per_signal, without_gpu)
}

fn finish(
    exp: &Exposition<'_>,
    source: GpuSource,
    devices: Devices,
    per_signal: Vec<(&'static GpuSignal, Values)>,
    without_gpu: usize,
) -> GpuScrape {
    let keys: Vec<GpuKey> = devices.by_key.keys().cloned().collect();
    let position = |key: &GpuKey| keys.binary_search(key).unwrap_or(0);
    let readings = per_signal
        .into_iter()
        .map(|(signal, values)| GpuReading {
            signal,
            used: values.used,
            samples: values
                .by
                .into_iter()
                .map(|((key, reason, pid), value)| GpuSample {
                    device: position(&key),
                    reason,
                    pid,
                    value,
                })
                .collect(),
        })
        .collect();
    // The identity series is read for its labels.
    let mut known = vec!["nvidia_smi_gpu_info"];
    for signal in GPU_SIGNALS {
        if let GpuHow::Native(expr) | GpuHow::Derived(expr) = signal.mapping(source).how {
            names_of(&expr, &mut known);
        }
    }
    let mut unknown: Vec<String> = exp
        .families
        .iter()
        .map(|f| f.name)
        .filter(|name| is_exporters(source, name) && !known.contains(name))
        .map(str::to_owned)
        .collect();
    unknown.sort();
    unknown.dedup();
    GpuScrape {
        source,
        devices: devices.by_key.into_values().collect(),
        readings,
        unknown,
        without_gpu,
    }
}

impl GpuScrape {
    /// The reading of signal `name`.
    pub fn reading(&self, name: &str) -> Option<&GpuReading> {
        self.readings.iter().find(|r| r.signal.name == name)
    }

    /// The value of signal `name` for the device with normalised UUID `uuid` (whole GPU, no
    /// reason, no process), as tests read it.
    pub fn value(&self, name: &str, uuid: &str) -> Option<f64> {
        let device = self
            .devices
            .iter()
            .position(|d| d.key.uuid == uuid && d.key.instance.is_none())?;
        self.device_value(name, device)
    }

    /// The value of signal `name` for device `index` of [`GpuScrape::devices`]: the whole
    /// device's, not a throttle reason's or a process's.
    pub fn device_value(&self, name: &str, index: usize) -> Option<f64> {
        self.reading(name)?
            .samples
            .iter()
            .find(|s| s.device == index && s.reason.is_none() && s.pid.is_none())
            .map(|s| s.value)
    }

    /// Device `index` as the JSON answers show it: its identity, and under `values` every
    /// signal's value, a signal split by throttle reason or by process (host PID) as an
    /// object keyed by reason or PID.
    pub fn device_json(&self, index: usize) -> serde_json::Map<String, serde_json::Value> {
        let mut values = serde_json::Map::new();
        for reading in &self.readings {
            for s in reading.samples.iter().filter(|s| s.device == index) {
                let name = reading.signal.name.to_string();
                let split = match (s.reason, s.pid) {
                    (Some(reason), _) => Some(reason.to_string()),
                    (None, Some(pid)) => Some(pid.to_string()),
                    (None, None) => None,
                };
                match split {
                    None => {
                        values.insert(name, s.value.into());
                    }
                    Some(key) => {
                        let entry = values
                            .entry(name)
                            .or_insert_with(|| serde_json::Map::new().into());
                        if let Some(by) = entry.as_object_mut() {
                            by.insert(key, s.value.into());
                        }
                    }
                }
            }
        }
        let mut out = self
            .devices
            .get(index)
            .map(super::Device::identity)
            .unwrap_or_default();
        out.insert("values".into(), values.into());
        out
    }
}
