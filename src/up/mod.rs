//! `llmwatch up`, the collector: resolves targets (arguments, configuration file, `file_sd`
//! files, or engines found on their well-known local ports), runs one scrape task per target,
//! and serves `/metrics`, the JSON API and health on one HTTP listener. The configuration and
//! target files are re-read on SIGHUP and `file_sd` files when they change; a bad reload is
//! logged and counted, and the previous targets stay.

mod api;
mod gap;
pub mod gpus;
mod http;
mod raw;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use crate::collect::scraper::Scraper;
use crate::collect::state::Store;
use crate::collect::targets::{self, Target, TargetError};
use crate::config::{Config, ConfigError};
use crate::events::{Reloaded, SelfMetrics};

/// Why `up` could not start.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    /// A bad configuration file.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A bad `--target` or target file.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The listener could not bind.
    #[error("cannot listen on {addr}: {error}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        error: std::io::Error,
    },
    /// The proxy could not be set up (a bad upstream).
    #[error("proxy: {0}")]
    Proxy(String),
    /// The OTLP export settings cannot be used.
    #[error("otlp: {0}")]
    Otlp(String),
}

/// Where the targets come from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The configuration file, re-read on SIGHUP.
    pub config_path: Option<PathBuf>,
    /// `--target` arguments.
    pub target_args: Vec<String>,
    /// `--listen`, overriding the file.
    pub listen: Option<String>,
    /// `--proxy-upstream`: run the proxy with these upstreams, replacing the file's.
    pub proxy_upstreams: Vec<String>,
    /// `--proxy-listen`, overriding the file.
    pub proxy_listen: Option<String>,
    /// `--proxy-*-timeout`, overriding the file.
    pub proxy_timeouts: crate::config::ProxyTimeouts,
}

impl Sources {
    /// Reads the configuration (the file, or defaults) with `--listen` applied.
    pub fn config(&self) -> Result<Config, ConfigError> {
        let mut config = match &self.config_path {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(listen) = &self.listen {
            config.listen.clone_from(listen);
        }
        if !self.proxy_upstreams.is_empty() {
            // The file's other proxy settings stay; only its upstreams are replaced.
            let mut proxy = config.proxy.take().unwrap_or_default();
            proxy.upstream.clone_from(&self.proxy_upstreams);
            config.proxy = Some(proxy);
        }
        if let Some(proxy) = config.proxy.as_mut() {
            if let Some(listen) = &self.proxy_listen {
                proxy.listen.clone_from(listen);
            }
            proxy.apply(self.proxy_timeouts);
        }
        Ok(config)
    }

    /// Every target the sources name: arguments, then the file's, then `file_sd` files'.
    pub fn targets(&self, config: &Config) -> Result<Vec<Target>, TargetError> {
        let mut all = Vec::new();
        for arg in &self.target_args {
            all.push(Target::from_arg(arg, &config.scrape)?);
        }
        for t in &config.targets {
            all.push(Target::from_config(t, &config.scrape)?);
        }
        for path in &config.file_sd {
            all.extend(targets::read_file_sd(path, &config.scrape)?);
        }
        targets::check_unique(&all)?;
        Ok(all)
    }

    fn watched_files(&self, config: &Config) -> Vec<PathBuf> {
        config.file_sd.clone()
    }
}

/// A running collector.
pub struct Running {
    /// The address it serves on.
    pub addr: SocketAddr,
    /// The proxy's address, when one runs inside.
    pub proxy_addr: Option<SocketAddr>,
    /// The state, for in-process readers.
    pub store: Arc<Store>,
    /// Targets scraped at start.
    pub targets: Vec<Arc<Target>>,
}

/// The scrape tasks, one per target, replaced as the target set changes.
struct Tasks {
    scraper: Arc<Scraper>,
    store: Arc<Store>,
    metrics: SelfMetrics,
    running: BTreeMap<String, (Arc<Target>, tokio::task::JoinHandle<()>)>,
    /// NVML's pseudo-target, kept through reloads and read by its own thread.
    local: Option<Arc<Target>>,
}

impl Tasks {
    /// Makes the running tasks match `targets`.
    fn reconcile(&mut self, targets: &[Arc<Target>]) {
        let with_local: Vec<Arc<Target>> = targets.iter().chain(&self.local).cloned().collect();
        let (_, removed) = self.store.set_targets(&with_local);
        for name in removed {
            if let Some((_, task)) = self.running.remove(&name) {
                task.abort();
            }
            self.metrics.forget(&name);
        }
        for target in targets {
            let same = self
                .running
                .get(&target.name)
                .is_some_and(|(running, _)| running == target);
            if same {
                continue;
            }
            if let Some((_, task)) = self.running.remove(&target.name) {
                task.abort();
            }
            let task = tokio::spawn(self.scraper.clone().run(target.clone()));
            self.running
                .insert(target.name.clone(), (target.clone(), task));
        }
    }
}

/// Starts scraping `targets` and serving on the configured address; returns once listening.
/// The collector runs until the runtime stops.
pub async fn start(
    sources: Sources,
    config: Config,
    targets: Vec<Target>,
) -> Result<Running, UpError> {
    let (metrics, mut registry) = SelfMetrics::registered();
    let otlp = config
        .otlp
        .settings("llmwatch-up")
        .resolve(|name| std::env::var(name).ok())
        .map_err(|e| UpError::Otlp(e.to_string()))?;
    let otlp_stats = otlp
        .as_ref()
        .map(|_| crate::otlp::push::ExportStats::registered(&mut registry, true));
    let store = Arc::new(Store::new(config.history.clone()));
    let scraper = Arc::new(Scraper::new(
        store.clone(),
        metrics.clone(),
        config.scrape.clone(),
    ));
    let targets: Vec<Arc<Target>> = targets.into_iter().map(Arc::new).collect();
    let local = start_local_gpus(&config, &targets, &store, &metrics).await;
    let mut tasks = Tasks {
        scraper,
        store: store.clone(),
        metrics: metrics.clone(),
        running: BTreeMap::new(),
        local: local.as_ref().map(|l| l.target.clone()),
    };
    tasks.reconcile(&targets);
    if let Some(local) = &local {
        local.go();
    }
    Reloaded {
        what: "targets loaded",
        error: None,
        targets: targets.len(),
    }
    .emit(&metrics);
    let (listener, addr) = bind(&config.listen).await?;
    let (proxy, proxy_addr) = match &config.proxy {
        Some(settings) => {
            let traces = otlp
                .as_ref()
                .and_then(|c| c.traces.clone())
                .zip(otlp_stats.clone());
            let (proxy, addr) = start_proxy(settings, traces).await?;
            (Some(proxy), Some(addr))
        }
        None => (None, None),
    };
    let alerts = config.alerting.enabled.then(|| {
        start_alerting(
            store.clone(),
            &config.alerting,
            (metrics.clone(), format!("http://{addr}")),
        )
    });
    let app = Arc::new(http::App {
        store: store.clone(),
        registry: Arc::new(registry),
        auth: config.auth.clone(),
        proxy,
        alerts,
    });
    if let (Some(otlp), Some(stats)) = (otlp, otlp_stats) {
        let source = app.clone();
        tokio::spawn(crate::otlp::push::run_metrics(
            otlp,
            Arc::new(move || http::render_metrics(&source, false).unwrap_or_default()),
            stats,
        ));
    }
    let app = http::router(app);
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!("the HTTP server stopped: {error}");
        }
    });
    tokio::spawn(watch(sources, config, tasks));
    Ok(Running {
        addr,
        proxy_addr,
        store,
        targets,
    })
}

/// Opens NVML for this machine's GPUs unless `[scrape] nvml = false`.
async fn start_local_gpus(
    config: &Config,
    targets: &[Arc<Target>],
    store: &Arc<Store>,
    metrics: &SelfMetrics,
) -> Option<crate::collect::local_gpus::LocalGpus> {
    use crate::gpu::nvml::NVML_TARGET;
    if !config.scrape.nvml {
        return None;
    }
    if targets.iter().any(|t| t.name == NVML_TARGET) {
        crate::events::NvmlOpened {
            result: Err("a target is named \"nvml\", the name NVML's GPUs would take"),
        }
        .emit(metrics);
        return None;
    }
    let interval = config.scrape.interval;
    crate::collect::local_gpus::start(
        crate::gpu::nvml::open,
        store.clone(),
        metrics.clone(),
        interval,
    )
    .await
}

/// A listener on `addr` and the address it got.
async fn bind(addr: &str) -> Result<(tokio::net::TcpListener, SocketAddr), UpError> {
    let failed = |error| UpError::Listen {
        addr: addr.to_string(),
        error,
    };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(failed)?;
    let bound = listener.local_addr().map_err(failed)?;
    Ok((listener, bound))
}

/// The proxy's settings from `[proxy]`: the standalone proxy's defaults where it says nothing.
pub fn proxy_options(settings: &crate::config::ProxyConfig) -> crate::proxy::ProxyOptions {
    let d = crate::proxy::ProxyOptions::default();
    crate::proxy::ProxyOptions {
        max_body_bytes: settings.max_body_bytes.unwrap_or(d.max_body_bytes),
        connect_timeout: settings.connect_timeout.unwrap_or(d.connect_timeout),
        first_byte_timeout: settings.first_byte_timeout.unwrap_or(d.first_byte_timeout),
        idle_timeout: settings.idle_timeout.unwrap_or(d.idle_timeout),
        total_timeout: settings.total_timeout.unwrap_or(d.total_timeout),
        inject_usage: settings.inject_usage.unwrap_or(d.inject_usage),
        max_models: settings.max_models.unwrap_or(d.max_models),
        upstream_ca: settings.upstream_ca.clone(),
    }
}

/// Serves the proxy on its own address, and snapshots its client TTFT totals every 5 s for
/// the windowed client-minus-engine gap.
async fn start_proxy(
    settings: &crate::config::ProxyConfig,
    traces: Option<(
        crate::otlp::trace::TraceConfig,
        crate::otlp::push::ExportStats,
    )>,
) -> Result<(Arc<crate::proxy::Proxy>, SocketAddr), UpError> {
    let options = proxy_options(settings);
    let mut proxy = crate::proxy::Proxy::new(&settings.upstream, options)
        .map_err(|e| UpError::Proxy(e.to_string()))?;
    // With `[otlp]`, the in-process proxy exports a span per request as `llmwatch proxy` does.
    if let Some((config, stats)) = traces {
        let (tracer, exporter) = crate::otlp::trace::tracer(config, stats);
        proxy.set_tracer(tracer);
        tokio::spawn(exporter);
    }
    let proxy = Arc::new(proxy);
    let (listener, addr) = bind(&settings.listen).await?;
    tokio::spawn(crate::proxy::serve(
        listener,
        proxy.clone(),
        std::future::pending(),
    ));
    let ticking = proxy.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            ticking.snapshot_totals();
        }
    });
    Ok((proxy, addr))
}

/// Evaluates the alerts every `settings.interval`, from now on; returns their shared state.
/// Delivers due alerts to the configured Alertmanager and webhook after each round.
fn start_alerting(
    store: Arc<Store>,
    settings: &crate::config::AlertingConfig,
    (metrics, base_url): (SelfMetrics, String),
) -> Arc<std::sync::Mutex<crate::alerting::Alerts>> {
    let alerts = Arc::new(std::sync::Mutex::new(crate::alerting::Alerts::new(
        crate::alerting::Settings {
            slo: crate::catalog::alerts::Slo {
                availability: settings.availability,
                ttft_objective: settings.ttft_objective,
                ttft_seconds: settings.ttft_seconds,
            },
            runbook_base: settings.runbook_base.clone(),
        },
    )));
    let shared = alerts.clone();
    let interval = settings.interval;
    let targets = (
        settings.alertmanager_url.clone(),
        settings.webhook_url.clone(),
    );
    let delivers = targets.0.is_some() || targets.1.is_some();
    let client = reqwest::Client::new();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            let (keys, due) = {
                let mut alerts = shared.lock().unwrap_or_else(|e| e.into_inner());
                alerts.evaluate(&store, now);
                if delivers {
                    alerts.due(now, &base_url)
                } else {
                    (Vec::new(), Vec::new())
                }
            };
            let count = due.len();
            if count == 0 {
                continue;
            }
            let errors = crate::alerting::deliver::send(
                &client,
                (targets.0.as_deref(), targets.1.as_deref()),
                due,
            )
            .await;
            if !errors.is_empty() {
                shared
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .unsent(&keys);
            }
            let error = errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            crate::events::AlertsDelivered {
                alerts: count,
                error: (!errors.is_empty()).then_some(error.as_str()),
            }
            .emit(&metrics);
        }
    });
    alerts
}

/// Re-reads the sources on SIGHUP, and when a watched `file_sd` file changes.
async fn watch(sources: Sources, config: Config, mut tasks: Tasks) {
    let mut hangup = hangup_signal();
    let mut files = sources.watched_files(&config);
    let mut stamps = mtimes(&files);
    let mut poll = tokio::time::interval(config.file_sd_refresh);
    loop {
        let what = tokio::select! {
            _ = recv(&mut hangup) => "reloaded on SIGHUP",
            _ = poll.tick() => {
                let now = mtimes(&files);
                if now == stamps {
                    continue;
                }
                stamps = now;
                "reloaded a changed target file"
            }
        };
        let reloaded = sources.config().map_err(|e| e.to_string()).and_then(|c| {
            let t = sources.targets(&c).map_err(|e| e.to_string())?;
            Ok((c, t))
        });
        match reloaded {
            Ok((config, targets)) => {
                files = sources.watched_files(&config);
                stamps = mtimes(&files);
                let targets: Vec<Arc<Target>> = targets.into_iter().map(Arc::new).collect();
                tasks.reconcile(&targets);
                Reloaded {
                    what,
                    error: None,
                    targets: targets.len(),
                }
                .emit(&tasks.metrics);
            }
            Err(error) => {
                let targets = tasks.running.len();
                Reloaded {
                    what,
                    error: Some(&error),
                    targets,
                }
                .emit(&tasks.metrics);
            }
        }
    }
}

fn mtimes(files: &[PathBuf]) -> Vec<Option<SystemTime>> {
    files
        .iter()
        .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
        .collect()
}

#[cfg(unix)]
fn hangup_signal() -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

#[cfg(not(unix))]
fn hangup_signal() -> Option<()> {
    None
}

#[cfg(unix)]
async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn recv(_: &mut Option<()>) {
    std::future::pending().await
}
