//! GPU and host saturation: the `llm_gpu_*` and `llm_process_*` signals, read from GPU
//! exporters (dcgm-exporter, nvidia_gpu_exporter) scraped like engines, from NVML on `up`'s
//! machine, and from `/proc` for local engine processes.
//!
//! `signals` is the table (one row per signal, one cell per source), `device` how a series
//! names its GPU, `normalise` the evaluator of an exporter's body, `nvml` and `procfs` the
//! local readers (the only modules here that do I/O).

pub mod device;
pub mod join;
mod normalise;
pub mod nvml;
pub mod procfs;
mod reference;
pub mod signals;
mod write;

pub use device::{Device, GpuKey, PodRef, normalise_uuid};
pub use normalise::{GpuReading, GpuSample, GpuScrape, detect, normalise};
pub use reference::reference_markdown;
pub use signals::{GPU_SIGNALS, GpuSignal, GpuSource, gpu_signal};
pub use write::{GpuView, write_gpus};

#[cfg(test)]
mod tests;
