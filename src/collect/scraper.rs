//! The scrape loop of `llmwatch up`: one task per target, at the target's interval from a
//! per-target offset (so a thousand targets do not fire at once), each scrape bounded in time,
//! body size, samples and labels. A scrape is fetched, checked, parsed strictly, detected and
//! normalised; any failure is counted by reason and the last good scrape stays in the state.
//! The engine's info endpoint is asked only when the detected engine or version changes.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::body::{self, BodyError};
use super::fetch::{self, ACCEPT, FetchError, FetchOptions};
use super::integrity::Checker;
use super::lean_fetch::LeanTarget;
use super::probe::{Probed, probe};
use super::state::{Failure, Scraped, Store};
use super::targets::Target;
use crate::config::ScrapeConfig;
use crate::engines::{Engine, Index, detect, normalise};
use crate::events::{
    EngineChanged, GpuExporterRead, IntegrityProblem, ProcessUnreadable, ScrapeFailed,
    ScrapeSucceeded, SelfMetrics,
};
use crate::exposition::{self, Mode};

/// Shared by every scrape task.
pub struct Scraper {
    client: reqwest::Client,
    store: Arc<Store>,
    metrics: SelfMetrics,
    limits: ScrapeConfig,
    /// One walk of `/proc` finds the processes of every local target.
    listeners: Arc<crate::gpu::procfs::ListenerScan>,
}

/// What a target's task remembers between scrapes.
#[derive(Debug, Default)]
struct Known {
    seen: bool,
    engine: Option<Engine>,
    range: String,
    probed: Option<Probed>,
    checker: Checker,
    /// A GPU exporter's source, GPUs, unknown families and samples without a GPU, as last
    /// reported.
    gpu_shape: Option<(crate::gpu::GpuSource, usize, usize, usize)>,
    /// The reader of a local engine's processes, made when the engine is first seen.
    processes: Option<crate::gpu::procfs::ProcessReader>,
    /// The last reason the processes could not be read, logged once.
    process_error: Option<String>,
    /// The lean client for a plain-HTTP target, made at its first scrape; dropped for the
    /// general client once the target redirects.
    lean: Option<LeanTarget>,
    /// Whether the lean client was considered (made, or found unfit for the target).
    lean_considered: bool,
}

impl Scraper {
    /// A scraper publishing into `store`. The client keeps connections alive between scrapes.
    pub fn new(store: Arc<Store>, metrics: SelfMetrics, limits: ScrapeConfig) -> Scraper {
        fetch::install_tls_provider();
        let idle_per_target = if limits.keep_alive { usize::MAX } else { 0 };
        let client = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(idle_per_target)
            .build()
            .unwrap_or_default();
        Scraper {
            client,
            store,
            metrics,
            limits,
            listeners: Arc::new(crate::gpu::procfs::ListenerScan::new("/proc")),
        }
    }

    /// Scrapes `target` forever at its interval, starting at an offset derived from its
    /// name (stable across restarts, spread over the interval).
    pub async fn run(self: Arc<Self>, target: Arc<Target>) {
        tokio::time::sleep(offset(&target.name, target.interval)).await;
        let mut ticker = tokio::time::interval(target.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut known = Known::default();
        loop {
            ticker.tick().await;
            self.scrape_once(&target, &mut known).await;
        }
    }

    async fn scrape_once(&self, target: &Target, known: &mut Known) {
        let at = crate::clock::unix_now();
        let started = Instant::now();
        let result = self.read(target, known, at).await;
        let duration = started.elapsed().as_secs_f64();
        match result {
            Ok(scraped) => {
                ScrapeSucceeded {
                    target: &target.name,
                    duration,
                    samples: scraped.samples,
                }
                .emit(&self.metrics);
                for problem in &scraped.problems {
                    IntegrityProblem {
                        target: &target.name,
                        problem,
                    }
                    .emit(&self.metrics);
                }
                self.store.record_success(&target.name, scraped, duration);
            }
            Err(failure) => {
                ScrapeFailed {
                    target: &target.name,
                    duration,
                    reason: failure.reason,
                    message: &failure.message,
                }
                .emit(&self.metrics);
                self.store
                    .record_failure(&target.name, at, duration, failure);
            }
        }
        let (points, bytes) = self.store.history_size();
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.metrics.history_points.set(gauge(points));
        self.metrics.history_bytes.set(gauge(bytes));
    }

    async fn read(&self, target: &Target, known: &mut Known, at: f64) -> Result<Scraped, Failure> {
        let opts = FetchOptions {
            timeout: target.timeout,
            max_body_bytes: self.limits.max_body_bytes,
            bearer_token: target.bearer_token.clone(),
        };
        let fetched = self
            .fetch(target, known, &opts)
            .await
            .map_err(fetch_failure)?;
        let checked = body::check(&target.url, &fetched.body, fetched.content_type.as_deref())
            .map_err(body_failure)?;
        let exp = exposition::parse_as(&checked.text, Mode::Strict, checked.openmetrics).map_err(
            |e| Failure {
                reason: "parse",
                message: format!("{}: {e}", target.url),
            },
        )?;
        self.check_limits(target, &exp)?;
        let index = Index::new(&exp);
        let detection = detect(&index);
        // Not an engine: perhaps a GPU exporter.
        let gpu_source = detection
            .engine
            .is_none()
            .then(|| crate::gpu::detect(&index))
            .flatten();
        if !known.seen || detection.engine != known.engine || detection.version != known.range {
            known.seen = true;
            known.engine = detection.engine;
            known.range = detection.version.clone();
            known.probed = match detection.engine.filter(|_| self.limits.probe_version) {
                Some(engine) => probe(&self.client, &target.url, engine, &opts).await.ok(),
                None => None,
            };
            let version = known
                .probed
                .as_ref()
                .map_or(known.range.as_str(), |p| p.version_or(&known.range));
            EngineChanged {
                target: &target.name,
                engine: detection
                    .engine
                    .map(Engine::as_str)
                    .or(gpu_source.map(crate::gpu::GpuSource::as_str))
                    .unwrap_or("unknown"),
                version,
            }
            .emit(&self.metrics);
        }
        let probed_model = known.probed.as_ref().and_then(|p| p.model.as_deref());
        let model = target
            .model
            .as_deref()
            .or(probed_model)
            .unwrap_or("unknown");
        let mut readings = match detection.engine {
            Some(engine) => normalise(&index, engine, model),
            None => Vec::new(),
        };
        let gpu = gpu_source.map(|source| Arc::new(crate::gpu::normalise(&exp, source)));
        if let Some(scrape) = &gpu {
            self.note_gpu_exporter(target, known, scrape);
        }
        let problems = known.checker.check(&mut readings, &index);
        let process = match detection.engine {
            Some(_) if self.limits.processes => self.read_processes(target, known),
            _ => None,
        };
        Ok(Scraped {
            at,
            engine: detection.engine,
            version: known
                .probed
                .as_ref()
                .map_or(detection.version.as_str(), |p| {
                    p.version_or(&detection.version)
                })
                .to_string(),
            samples: exp.sample_count(),
            readings,
            raw: target.raw.then(|| Arc::from(checked.text.as_ref())),
            problems,
            gpu,
            process,
        })
    }

    /// Fetches the target: with the lean client where it serves it, with the general one
    /// otherwise and from a target's first redirect on.
    async fn fetch(
        &self,
        target: &Target,
        known: &mut Known,
        opts: &FetchOptions,
    ) -> Result<fetch::Fetched, FetchError> {
        if !known.lean_considered {
            known.lean_considered = true;
            known.lean = LeanTarget::for_url(&target.url);
        }
        if let Some(lean) = &known.lean {
            match lean.fetch(opts, ACCEPT, self.limits.keep_alive).await? {
                Some(fetched) => return Ok(fetched),
                None => known.lean = None,
            }
        }
        fetch::fetch(&self.client, &target.url, opts, ACCEPT).await
    }

    /// Emits [`GpuExporterRead`] when the shape of a GPU exporter's scrape changed.
    fn note_gpu_exporter(
        &self,
        target: &Target,
        known: &mut Known,
        scrape: &crate::gpu::GpuScrape,
    ) {
        let shape = (
            scrape.source,
            scrape.devices.len(),
            scrape.unknown.len(),
            scrape.without_gpu,
        );
        if known.gpu_shape != Some(shape) {
            known.gpu_shape = Some(shape);
            GpuExporterRead {
                target: &target.name,
                source: scrape.source.as_str(),
                gpus: scrape.devices.len(),
                unknown: &scrape.unknown,
                without_gpu: scrape.without_gpu,
            }
            .emit(&self.metrics);
        }
    }

    /// The engine's processes, when it listens on a loopback address of this machine.
    fn read_processes(
        &self,
        target: &Target,
        known: &mut Known,
    ) -> Option<crate::gpu::procfs::Usage> {
        if known.processes.is_none() {
            let port = local_port(&target.url)?;
            known.processes = Some(crate::gpu::procfs::ProcessReader::sharing(
                self.listeners.clone(),
                port,
            ));
        }
        match known.processes.as_mut()?.read() {
            Ok(usage) => {
                known.process_error = None;
                Some(usage)
            }
            Err(e) => {
                let error = e.to_string();
                ProcessUnreadable {
                    target: &target.name,
                    error: &error,
                    log: known.process_error.as_ref() != Some(&error),
                }
                .emit(&self.metrics);
                known.process_error = Some(error);
                None
            }
        }
    }

    /// Prometheus' sample and label limits, and its refusal of duplicate series.
    fn check_limits(
        &self,
        target: &Target,
        exp: &exposition::Exposition<'_>,
    ) -> Result<(), Failure> {
        let samples = exp.sample_count();
        if samples > self.limits.max_samples {
            return Err(Failure {
                reason: "sample_limit",
                message: format!(
                    "{}: {samples} samples, over the limit of {} (scrape.max_samples)",
                    target.url, self.limits.max_samples
                ),
            });
        }
        if let Some(s) = exp
            .samples
            .iter()
            .find(|s| s.labels.len() > self.limits.max_labels)
        {
            return Err(Failure {
                reason: "label_limit",
                message: format!(
                    "{}: a sample of {} has {} labels, over the limit of {} (scrape.max_labels)",
                    target.url,
                    s.name,
                    s.labels.len(),
                    self.limits.max_labels
                ),
            });
        }
        let duplicates = exp.duplicate_series();
        if !duplicates.is_empty() {
            return Err(Failure {
                reason: "duplicate_series",
                message: format!(
                    "{}: duplicate series: {}",
                    target.url,
                    duplicates.join("; ")
                ),
            });
        }
        Ok(())
    }
}

/// A stable offset within `interval` for a target name.
fn offset(name: &str, interval: Duration) -> Duration {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut hasher);
    let nanos = interval.as_nanos().max(1);
    Duration::from_nanos(u64::try_from(u128::from(hasher.finish()) % nanos).unwrap_or(0))
}

fn fetch_failure(e: FetchError) -> Failure {
    let reason = match &e {
        FetchError::InvalidUrl { .. } => "invalid_url",
        FetchError::Request { reason, .. } if reason.contains("Connection refused") => "refused",
        FetchError::Request { .. } => "connection",
        FetchError::Timeout { .. } => "timeout",
        FetchError::MetricsDisabled { .. } => "metrics_disabled",
        FetchError::Unauthorized { .. } => "unauthorized",
        FetchError::Status { .. } => "http_status",
        FetchError::TooLarge { .. } => "body_too_large",
    };
    Failure {
        reason,
        message: e.to_string(),
    }
}

fn body_failure(e: BodyError) -> Failure {
    let reason = match &e {
        BodyError::Empty { .. } => "empty",
        BodyError::Html { .. } => "html",
        BodyError::Json { .. } => "json",
        BodyError::UndeclaredGzip { .. } => "gzip",
        BodyError::NotUtf8 { .. } => "not_utf8",
    };
    Failure {
        reason,
        message: e.to_string(),
    }
}

/// The port of `url` when its host is a loopback address (an engine on this machine).
fn local_port(url: &str) -> Option<u16> {
    let url = reqwest::Url::parse(url).ok()?;
    let host = url
        .host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let local = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    local.then(|| url.port_or_known_default()).flatten()
}
