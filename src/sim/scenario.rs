//! Scenarios: TOML files that change a simulated engine's capacity, speed and fault rates at
//! set times, to replay incidents. Changes do not depend on arrivals, so the same scenario
//! under different load shows how load and capacity interact.
//!
//! ```toml
//! name = "kv-pressure"
//! description = "The KV cache shrinks to a tenth at 60 s"
//!
//! [[step]]
//! at = "60s"
//! kv_blocks = 690
//! ```

use std::time::Duration;

use serde::Deserialize;

use super::engine::Profile;
use super::faults::FaultRates;
use super::front::Exposure;

/// A scenario file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name.
    pub name: String,
    /// What it replays, for people.
    #[serde(default)]
    pub description: String,
    /// Changes, applied in order of `at`.
    #[serde(default, rename = "step")]
    pub steps: Vec<Step>,
}

/// One change at one time. Every field but `at` is optional; absent fields keep their value.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// When, from the simulator's start: `"90s"`, `"1500ms"`, `"2m"`.
    pub at: String,
    /// Most running sequences.
    pub max_running: Option<usize>,
    /// KV-cache blocks.
    pub kv_blocks: Option<u32>,
    /// Prefill milliseconds per prompt token.
    pub prefill_ms_per_token: Option<f64>,
    /// Decode step milliseconds with one sequence.
    pub decode_base_ms: Option<f64>,
    /// Extra decode milliseconds per additional sequence.
    pub decode_per_seq_ms: Option<f64>,
    /// Probability of HTTP 500.
    pub error_rate: Option<f64>,
    /// Probability of an error event mid-stream.
    pub midstream_error_rate: Option<f64>,
    /// Probability of a mid-stream stall.
    pub stall_rate: Option<f64>,
    /// Probability of a first-byte delay.
    pub delay_rate: Option<f64>,
    /// Probability of a connection reset.
    pub reset_rate: Option<f64>,
    /// Queue length at which requests get HTTP 429 (0 rejects everything).
    pub max_waiting: Option<usize>,
    /// `true`: `/metrics` answers HTTP 503 until a later step sets it `false`.
    pub metrics_down: Option<bool>,
    /// `false`: the engine's own families disappear from `/metrics` (only process and
    /// HTTP families stay), as after a restart with vLLM's `--disable-log-stats`.
    pub engine_metrics: Option<bool>,
    /// LoRA adapters in use: vLLM writes a `vllm:lora_requests_info` series for each one.
    pub lora_adapters: Option<u32>,
    /// The GPU's clocks held down: `"power"`, `"thermal"`, or `"none"` to end it.
    pub gpu_throttle: Option<String>,
    /// An XID error of this code (its gauge keeps the last code, as dcgm-exporter's does).
    pub gpu_xid: Option<u32>,
    /// GiB of GPU memory another process takes (outside the engine's KV cache).
    pub gpu_foreign_memory_gib: Option<u32>,
    /// `true`: the scheduler stops moving waiting requests into the batch (the running ones
    /// finish), so requests wait while the GPU idles; `false` ends it.
    pub scheduler_stall: Option<bool>,
}

/// Why a scenario file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// Not valid TOML for a scenario.
    #[error("{origin}: {message}")]
    Parse {
        /// File name.
        origin: String,
        /// What is wrong, with line and column.
        message: String,
    },
    /// A value out of range.
    #[error("{origin}: step {step} ({at}): {message}")]
    Invalid {
        /// File name.
        origin: String,
        /// 1-based step number.
        step: usize,
        /// Its `at`.
        at: String,
        /// What is wrong.
        message: String,
    },
}

impl Scenario {
    /// Parses and checks a scenario; `origin` names it in errors.
    pub fn parse(origin: &str, text: &str) -> Result<Scenario, ScenarioError> {
        let mut scenario: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        for (i, step) in scenario.steps.iter().enumerate() {
            let invalid = |message: String| ScenarioError::Invalid {
                origin: origin.to_string(),
                step: i + 1,
                at: step.at.clone(),
                message,
            };
            crate::cli::parse_duration(&step.at).map_err(invalid)?;
            let rates = [
                step.error_rate,
                step.midstream_error_rate,
                step.stall_rate,
                step.delay_rate,
                step.reset_rate,
            ];
            if rates.iter().flatten().any(|r| !(0.0..=1.0).contains(r)) {
                return Err(invalid("fault rates must be between 0 and 1".into()));
            }
            if let Some(throttle) = &step.gpu_throttle {
                super::gpu::Throttle::parse(throttle).map_err(invalid)?;
            }
            if step.gpu_foreign_memory_gib.is_some_and(|g| g > 1024) {
                return Err(invalid(
                    "gpu_foreign_memory_gib must be at most 1024".into(),
                ));
            }
            if step.kv_blocks == Some(0) || step.max_running == Some(0) {
                return Err(invalid(
                    "kv_blocks and max_running must be at least 1".into(),
                ));
            }
        }
        scenario
            .steps
            .sort_by_key(|s| step_time(s).unwrap_or_default());
        Ok(scenario)
    }
}

/// When a step applies (checked by [`Scenario::parse`]).
pub fn step_time(step: &Step) -> Option<Duration> {
    crate::cli::parse_duration(&step.at).ok()
}

impl Step {
    /// `profile` with this step's changes.
    pub fn apply_profile(&self, profile: &Profile) -> Profile {
        let ms = |v: f64| v / 1000.0;
        Profile {
            max_running: self.max_running.unwrap_or(profile.max_running),
            kv_blocks: self.kv_blocks.unwrap_or(profile.kv_blocks),
            block_tokens: profile.block_tokens,
            prefill_per_token: self
                .prefill_ms_per_token
                .map_or(profile.prefill_per_token, ms),
            decode_base: self.decode_base_ms.map_or(profile.decode_base, ms),
            decode_per_seq: self.decode_per_seq_ms.map_or(profile.decode_per_seq, ms),
            admitting: self
                .scheduler_stall
                .map_or(profile.admitting, |stall| !stall),
        }
    }

    /// `rates` with this step's changes.
    pub fn apply_faults(&self, rates: &FaultRates) -> FaultRates {
        FaultRates {
            error: self.error_rate.unwrap_or(rates.error),
            midstream_error: self.midstream_error_rate.unwrap_or(rates.midstream_error),
            stall: self.stall_rate.unwrap_or(rates.stall),
            delay: self.delay_rate.unwrap_or(rates.delay),
            reset: self.reset_rate.unwrap_or(rates.reset),
            max_waiting: self.max_waiting.or(rates.max_waiting),
            ..rates.clone()
        }
    }

    /// `exposure` with this step's changes.
    pub fn apply_exposure(&self, exposure: &Exposure) -> Exposure {
        Exposure {
            metrics_down: self.metrics_down.unwrap_or(exposure.metrics_down),
            engine_families: self.engine_metrics.unwrap_or(exposure.engine_families),
            lora_adapters: self.lora_adapters.unwrap_or(exposure.lora_adapters),
            gpu: super::gpu::GpuFaults {
                throttle: match &self.gpu_throttle {
                    Some(text) => super::gpu::Throttle::parse(text).unwrap_or(None),
                    None => exposure.gpu.throttle,
                },
                xid: self.gpu_xid.unwrap_or(exposure.gpu.xid),
                foreign_memory_gib: self
                    .gpu_foreign_memory_gib
                    .unwrap_or(exposure.gpu.foreign_memory_gib),
            },
        }
    }

    /// Whether the step changes the engine (not only faults).
    pub fn changes_profile(&self) -> bool {
        self.max_running.is_some()
            || self.kv_blocks.is_some()
            || self.prefill_ms_per_token.is_some()
            || self.decode_base_ms.is_some()
            || self.decode_per_seq_ms.is_some()
            || self.scheduler_stall.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_scenarios_parse() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut seen = 0;
        let files = [root.clone(), root.join("alerts")]
            .into_iter()
            .flat_map(|dir| std::fs::read_dir(dir).unwrap())
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "toml"));
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap();
            let scenario = Scenario::parse(&path.display().to_string(), &text).unwrap();
            assert!(!scenario.steps.is_empty(), "{}", path.display());
            assert!(!scenario.description.is_empty(), "{}", path.display());
            seen += 1;
        }
        assert!(seen >= 9, "four scenarios and five alert scenarios ship");
    }

    #[test]
    fn bad_scenarios_say_where() {
        let err = Scenario::parse("x.toml", "name = \"x\"\n[[step]]\nat = \"soon\"\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("x.toml: step 1 (soon): invalid duration"),
            "{err}"
        );
        let err = Scenario::parse(
            "x.toml",
            "name = \"x\"\n[[step]]\nat = \"1s\"\nerror_rate = 2\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("between 0 and 1"), "{err}");
        let err = Scenario::parse("x.toml", "name = \"x\"\nsurprise = 1\n").unwrap_err();
        assert!(err.to_string().contains("surprise"), "{err}");
    }

    #[test]
    fn steps_change_only_what_they_name() {
        let step = Step {
            at: "1s".into(),
            kv_blocks: Some(10),
            decode_base_ms: Some(50.0),
            error_rate: Some(0.5),
            ..Step::default()
        };
        let profile = step.apply_profile(&Profile::gpu_7b());
        assert_eq!(profile.kv_blocks, 10);
        assert_eq!(profile.decode_base, 0.05);
        assert_eq!(profile.max_running, Profile::gpu_7b().max_running);
        let rates = step.apply_faults(&FaultRates::default());
        assert_eq!(rates.error, 0.5);
        assert_eq!(rates.reset, 0.0);
    }
}
