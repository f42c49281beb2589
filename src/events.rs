//! llmwatch's own telemetry. Each noteworthy thing that happens is a typed event whose
//! `emit` writes one log line and updates one self-metric, so the logs and `/metrics` never
//! tell different stories. Self-metrics live in a `prometheus-client` registry built once.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// `instance` label of per-target self-metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InstanceLabel {
    /// Target name.
    pub instance: String,
}

/// Labels of the scrape-failure counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// Target name.
    pub instance: String,
    /// Fixed reason, e.g. `timeout`, `refused`, `http_status`, `not_text`.
    pub reason: String,
}

/// Labels of the integrity-problem counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProblemLabels {
    /// Target name.
    pub instance: String,
    /// `counter_backwards`, `non_cumulative_histogram` or `scrape_window_reset`.
    pub kind: String,
}

/// Labels of the reload counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ok` or `error`.
    pub result: String,
}

/// The self-metrics, cheap to clone (each handle is shared).
#[derive(Debug, Clone, Default)]
pub struct SelfMetrics {
    /// 1 when the latest scrape of the target worked.
    pub up: Family<InstanceLabel, Gauge>,
    /// Duration of the latest scrape.
    pub scrape_duration: Family<InstanceLabel, Gauge<f64, AtomicU64>>,
    /// Samples in the latest good scrape.
    pub scrape_samples: Family<InstanceLabel, Gauge>,
    /// Failed scrapes by reason.
    pub scrape_failures: Family<FailureLabels, Counter>,
    /// Scrapes attempted.
    pub scrapes: Family<InstanceLabel, Counter>,
    /// Times a target's engine or version was first seen or changed.
    pub engine_changes: Family<InstanceLabel, Counter>,
    /// Integrity problems found in good scrapes, by kind.
    pub integrity_problems: Family<ProblemLabels, Counter>,
    /// Targets scraped.
    pub targets: Gauge,
    /// Configuration and target-file reloads.
    pub reloads: Family<ResultLabel, Counter>,
    /// Points held in the history.
    pub history_points: Gauge,
    /// Bytes the history's points hold.
    pub history_bytes: Gauge,
    /// Alert deliveries to an Alertmanager or webhook, by result.
    pub alert_deliveries: Family<ResultLabel, Counter>,
    /// A GPU exporter's families that llmwatch does not read (kept in its raw body).
    pub gpu_unknown_families: Family<InstanceLabel, Gauge>,
    /// A GPU exporter's samples that name no GPU, so are not read.
    pub gpu_samples_without_gpu: Family<InstanceLabel, Gauge>,
    /// Failed reads of a local engine's processes from `/proc`.
    pub process_read_failures: Family<InstanceLabel, Counter>,
    /// 1 while NVML reads this machine's GPUs.
    pub nvml_up: Gauge,
    /// Reads of one local GPU through NVML that failed.
    pub nvml_gpu_read_failures: Counter,
}

impl SelfMetrics {
    /// The metrics and a registry holding them, with `llmwatch_` names.
    pub fn registered() -> (SelfMetrics, Registry) {
        let metrics = SelfMetrics::default();
        let mut registry = Registry::with_prefix("llmwatch");
        registry.register(
            "target_up",
            "1 when the latest scrape of the target worked, 0 when it failed",
            metrics.up.clone(),
        );
        registry.register(
            "scrape_duration_seconds",
            "Duration of the latest scrape of the target",
            metrics.scrape_duration.clone(),
        );
        registry.register(
            "scrape_samples",
            "Samples in the latest good scrape of the target",
            metrics.scrape_samples.clone(),
        );
        registry.register(
            "scrape_failures",
            "Failed scrapes by target and reason",
            metrics.scrape_failures.clone(),
        );
        registry.register("scrapes", "Scrapes attempted", metrics.scrapes.clone());
        registry.register(
            "engine_changes",
            "Times a target's engine or version was first seen or changed",
            metrics.engine_changes.clone(),
        );
        registry.register(
            "integrity_problems",
            "Problems in good scrapes that would corrupt rates or quantiles (a counter falling without a restart, histogram buckets not cumulative) or llama.cpp gauges reset by another scraper, by target and kind",
            metrics.integrity_problems.clone(),
        );
        registry.register("targets", "Targets scraped", metrics.targets.clone());
        registry.register(
            "reloads",
            "Reloads of the configuration or target files, by result",
            metrics.reloads.clone(),
        );
        registry.register(
            "history_points",
            "Scrapes held in the in-memory history, all targets",
            metrics.history_points.clone(),
        );
        registry.register(
            "history_bytes",
            "Bytes held by the in-memory history's points, all targets",
            metrics.history_bytes.clone(),
        );
        registry.register(
            "alert_deliveries",
            "Sends of alerts to an Alertmanager or webhook, by result",
            metrics.alert_deliveries.clone(),
        );
        registry.register(
            "gpu_unknown_families",
            "Families of a GPU exporter's latest scrape that llmwatch does not read (still served raw with raw = true)",
            metrics.gpu_unknown_families.clone(),
        );
        registry.register(
            "gpu_samples_without_gpu",
            "Samples of a GPU exporter's latest scrape that carry no GPU UUID, so cannot be attributed",
            metrics.gpu_samples_without_gpu.clone(),
        );
        registry.register(
            "process_read_failures",
            "Failed reads of a local engine's processes from /proc (no listener found, /proc unreadable)",
            metrics.process_read_failures.clone(),
        );
        registry.register(
            "nvml_up",
            "1 while this machine's GPUs are read through NVML; 0 without an NVIDIA driver, with NVML off, or with no GPU",
            metrics.nvml_up.clone(),
        );
        registry.register(
            "nvml_gpu_read_failures",
            "Reads of one of this machine's GPUs through NVML that failed (fell off the bus, driver error); the GPU is left out of that round",
            metrics.nvml_gpu_read_failures.clone(),
        );
        (metrics, registry)
    }

    /// Forgets the per-target series of a removed target.
    pub fn forget(&self, instance: &str) {
        let label = InstanceLabel {
            instance: instance.to_string(),
        };
        self.up.remove(&label);
        self.scrape_duration.remove(&label);
        self.scrape_samples.remove(&label);
        self.scrapes.remove(&label);
        self.engine_changes.remove(&label);
        self.gpu_unknown_families.remove(&label);
        self.gpu_samples_without_gpu.remove(&label);
        self.process_read_failures.remove(&label);
        for kind in crate::collect::integrity::ProblemKind::ALL {
            self.integrity_problems.remove(&ProblemLabels {
                instance: instance.to_string(),
                kind: kind.as_str().to_string(),
            });
        }
    }
}

fn instance(name: &str) -> InstanceLabel {
    InstanceLabel {
        instance: name.to_string(),
    }
}

/// A scrape worked.
pub struct ScrapeSucceeded<'a> {
    /// Target name.
    pub target: &'a str,
    /// Seconds it took.
    pub duration: f64,
    /// Samples read.
    pub samples: usize,
}

impl ScrapeSucceeded<'_> {
    /// Logs at debug level and updates `up`, duration and samples.
    pub fn emit(&self, m: &SelfMetrics) {
        tracing::debug!(
            instance = self.target,
            duration = self.duration,
            samples = self.samples,
            "scrape ok"
        );
        let label = instance(self.target);
        m.scrapes.get_or_create(&label).inc();
        m.up.get_or_create(&label).set(1);
        m.scrape_duration.get_or_create(&label).set(self.duration);
        m.scrape_samples
            .get_or_create(&label)
            .set(i64::try_from(self.samples).unwrap_or(i64::MAX));
    }
}

/// A scrape failed.
pub struct ScrapeFailed<'a> {
    /// Target name.
    pub target: &'a str,
    /// Seconds it took.
    pub duration: f64,
    /// Fixed reason.
    pub reason: &'static str,
    /// Full message (no credentials: URLs are logged without user info).
    pub message: &'a str,
}

impl ScrapeFailed<'_> {
    /// Logs a warning and counts the failure by reason.
    pub fn emit(&self, m: &SelfMetrics) {
        tracing::warn!(
            instance = self.target,
            reason = self.reason,
            "scrape failed: {}",
            self.message
        );
        let label = instance(self.target);
        m.scrapes.get_or_create(&label).inc();
        m.up.get_or_create(&label).set(0);
        m.scrape_duration.get_or_create(&label).set(self.duration);
        m.scrape_failures
            .get_or_create(&FailureLabels {
                instance: self.target.to_string(),
                reason: self.reason.to_string(),
            })
            .inc();
    }
}

/// A good scrape had an integrity problem.
pub struct IntegrityProblem<'a> {
    /// Target name.
    pub target: &'a str,
    /// What the check found.
    pub problem: &'a crate::collect::integrity::Problem,
}

impl IntegrityProblem<'_> {
    /// Logs a warning and counts the problem by kind.
    pub fn emit(&self, m: &SelfMetrics) {
        tracing::warn!(
            instance = self.target,
            kind = self.problem.kind.as_str(),
            series = self.problem.series,
            "scrape integrity: {}",
            self.problem.detail
        );
        m.integrity_problems
            .get_or_create(&ProblemLabels {
                instance: self.target.to_string(),
                kind: self.problem.kind.as_str().to_string(),
            })
            .inc();
    }
}

/// A target's engine or version was seen for the first time or changed (an upgrade).
pub struct EngineChanged<'a> {
    /// Target name.
    pub target: &'a str,
    /// Engine, or `unknown`.
    pub engine: &'a str,
    /// Version.
    pub version: &'a str,
}

impl EngineChanged<'_> {
    /// Logs at info level and counts the change.
    pub fn emit(&self, m: &SelfMetrics) {
        tracing::info!(
            instance = self.target,
            engine = self.engine,
            version = self.version,
            "engine detected"
        );
        m.engine_changes.get_or_create(&instance(self.target)).inc();
    }
}

/// A GPU exporter's scrape was read differently from the one before: first seen, or its GPUs,
/// unknown families or unattributable samples changed in number.
pub struct GpuExporterRead<'a> {
    /// Target name.
    pub target: &'a str,
    /// Which exporter.
    pub source: &'a str,
    /// GPUs (and MIG instances) described.
    pub gpus: usize,
    /// Families not read, by name.
    pub unknown: &'a [String],
    /// Samples without a GPU UUID.
    pub without_gpu: usize,
}

impl GpuExporterRead<'_> {
    /// Logs at info level and sets the two gauges.
    pub fn emit(&self, m: &SelfMetrics) {
        tracing::info!(
            instance = self.target,
            source = self.source,
            gpus = self.gpus,
            unknown_families = self.unknown.len(),
            samples_without_gpu = self.without_gpu,
            "GPU exporter read{}",
            if self.unknown.is_empty() {
                String::new()
            } else {
                format!(" (not read: {})", self.unknown.join(", "))
            }
        );
        let label = instance(self.target);
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        m.gpu_unknown_families
            .get_or_create(&label)
            .set(gauge(self.unknown.len()));
        m.gpu_samples_without_gpu
            .get_or_create(&label)
            .set(gauge(self.without_gpu));
    }
}

/// A local engine's processes could not be read from `/proc`. Counted every time; logged
/// when the reason differs from the last one logged for the target.
pub struct ProcessUnreadable<'a> {
    /// Target name.
    pub target: &'a str,
    /// Why.
    pub error: &'a str,
    /// Whether to log (the reason changed).
    pub log: bool,
}

impl ProcessUnreadable<'_> {
    /// Logs a warning when asked and counts the failure.
    pub fn emit(&self, m: &SelfMetrics) {
        if self.log {
            tracing::warn!(
                instance = self.target,
                error = self.error,
                "cannot read the engine's processes; no llm_process_* series for it"
            );
        }
        m.process_read_failures
            .get_or_create(&instance(self.target))
            .inc();
    }
}

/// NVML was opened when `up` started, or could not be.
pub struct NvmlOpened<'a> {
    /// The GPUs it lists, or why it is not read.
    pub result: Result<usize, &'a str>,
}

impl NvmlOpened<'_> {
    /// Logs one line and sets `llmwatch_nvml_up`.
    pub fn emit(&self, m: &SelfMetrics) {
        match self.result {
            Ok(gpus) => {
                tracing::info!(gpus, "reading this machine's GPUs through NVML");
                m.nvml_up.set(1);
            }
            Err(why) => {
                tracing::info!("{why}: this machine's GPUs are not read (GPU exporters still are)");
                m.nvml_up.set(0);
            }
        }
    }
}

/// One local GPU could not be read through NVML this round.
pub struct NvmlGpuUnreadable<'a> {
    /// Its NVML index.
    pub gpu: u32,
    /// NVML's error.
    pub error: &'a str,
    /// Whether to log (the error changed).
    pub log: bool,
}

impl NvmlGpuUnreadable<'_> {
    /// Logs a warning when asked and counts the failure.
    pub fn emit(&self, m: &SelfMetrics) {
        if self.log {
            tracing::warn!(
                gpu = self.gpu,
                error = self.error,
                "cannot read a GPU through NVML; it is left out until it answers again"
            );
        }
        m.nvml_gpu_read_failures.inc();
    }
}

/// The configuration or a target file was (re)loaded.
pub struct Reloaded<'a> {
    /// What was reloaded and the outcome, as a message.
    pub what: &'a str,
    /// The error, when it failed (the previous targets stay).
    pub error: Option<&'a str>,
    /// Targets in force afterwards.
    pub targets: usize,
}

impl Reloaded<'_> {
    /// Logs (info or warning) and counts the reload by result.
    pub fn emit(&self, m: &SelfMetrics) {
        let result = match self.error {
            None => {
                tracing::info!(targets = self.targets, "{}", self.what);
                "ok"
            }
            Some(error) => {
                tracing::warn!(
                    targets = self.targets,
                    "{}: {error}; keeping the previous targets",
                    self.what
                );
                "error"
            }
        };
        m.reloads
            .get_or_create(&ResultLabel {
                result: result.into(),
            })
            .inc();
        m.targets
            .set(i64::try_from(self.targets).unwrap_or(i64::MAX));
    }
}

/// Alerts sent to an Alertmanager or webhook, or not.
#[derive(Debug)]
pub struct AlertsDelivered<'a> {
    /// How many alerts the send carried.
    pub alerts: usize,
    /// Why it failed, if it did.
    pub error: Option<&'a str>,
}

impl AlertsDelivered<'_> {
    /// Logs (debug, or a warning on failure) and counts the delivery by result.
    pub fn emit(&self, m: &SelfMetrics) {
        let result = match self.error {
            None => {
                tracing::debug!(alerts = self.alerts, "alerts delivered");
                "ok"
            }
            Some(error) => {
                tracing::warn!(
                    alerts = self.alerts,
                    "alert delivery failed: {error}; trying again next round"
                );
                "error"
            }
        };
        m.alert_deliveries
            .get_or_create(&ResultLabel {
                result: result.into(),
            })
            .inc();
    }
}
