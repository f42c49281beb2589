//! This machine's GPUs, read through NVML on a thread of their own (NVML's calls block, and
//! its event set may not cross threads) at the scrape interval, and published in the store
//! under the target `nvml` like a scraped GPU exporter: the join, `/metrics`, the API, the
//! dashboard and `top` read them the same way. A GPU that cannot be read is left out of that
//! round and counted; a round with no GPU read is a failed scrape, the last good one kept.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::state::{Failure, Scraped, Store};
use super::targets::Target;
use crate::events::{NvmlGpuUnreadable, NvmlOpened, ScrapeFailed, ScrapeSucceeded, SelfMetrics};
use crate::gpu::nvml::{NVML_TARGET, ReadGpus, scrape_of};

/// The pseudo-target NVML's GPUs are published under.
pub fn nvml_target(interval: Duration) -> Target {
    Target {
        name: NVML_TARGET.to_string(),
        url: "nvml:".to_string(),
        labels: BTreeMap::new(),
        interval,
        timeout: interval,
        bearer_token: None,
        model: None,
        raw: false,
        gpus: Vec::new(),
    }
}

/// A started reader: add its target to the store's set, then let it go.
pub struct LocalGpus {
    /// The target to add.
    pub target: Arc<Target>,
    go: std::sync::mpsc::Sender<()>,
}

impl LocalGpus {
    /// Starts reading (call once the target is in the store).
    pub fn go(&self) {
        // The reader is gone only if its thread ended, which it does not.
        let _ = self.go.send(());
    }
}

/// Opens the GPU library on a thread of its own and, when it opens, keeps that thread reading
/// every `interval`. `None` when it does not open: one line says why.
pub async fn start<R, F>(
    open: F,
    store: Arc<Store>,
    metrics: SelfMetrics,
    interval: Duration,
) -> Option<LocalGpus>
where
    R: ReadGpus,
    F: FnOnce() -> Result<R, String> + Send + 'static,
{
    let (opened_tx, opened_rx) = tokio::sync::oneshot::channel();
    let (go, go_rx) = std::sync::mpsc::channel();
    let thread_metrics = metrics.clone();
    let spawned = std::thread::Builder::new()
        .name("nvml".into())
        .spawn(move || {
            let mut reader = match open() {
                Ok(reader) => reader,
                Err(why) => {
                    let _ = opened_tx.send(Err(why));
                    return;
                }
            };
            let _ = opened_tx.send(Ok(reader.count()));
            if go_rx.recv().is_ok() {
                read_forever(&mut reader, &store, &thread_metrics, interval);
            }
        });
    let opened = match spawned {
        Ok(_) => opened_rx
            .await
            .unwrap_or_else(|_| Err("the NVML thread stopped".into())),
        Err(e) => Err(format!("cannot start the NVML thread: {e}")),
    };
    NvmlOpened {
        result: opened.as_ref().copied().map_err(String::as_str),
    }
    .emit(&metrics);
    opened.ok()?;
    Some(LocalGpus {
        target: Arc::new(nvml_target(interval)),
        go,
    })
}

fn read_forever(reader: &mut impl ReadGpus, store: &Store, metrics: &SelfMetrics, every: Duration) {
    let mut errors: BTreeMap<u32, String> = BTreeMap::new();
    loop {
        let started = Instant::now();
        read_round(reader, store, metrics, &mut errors);
        std::thread::sleep(every.saturating_sub(started.elapsed()));
    }
}

/// One read, published. `errors` holds each GPU's last error, so a GPU that stays lost is
/// logged once.
pub fn read_round(
    reader: &mut impl ReadGpus,
    store: &Store,
    metrics: &SelfMetrics,
    errors: &mut BTreeMap<u32, String>,
) {
    let at = crate::clock::unix_now();
    let started = Instant::now();
    let (gpus, lost) = reader.read();
    for gpu in &gpus {
        errors.remove(&gpu.index);
    }
    for gone in &lost {
        NvmlGpuUnreadable {
            gpu: gone.index,
            error: &gone.error,
            log: errors.get(&gone.index) != Some(&gone.error),
        }
        .emit(metrics);
        errors.insert(gone.index, gone.error.clone());
    }
    let duration = started.elapsed().as_secs_f64();
    if gpus.is_empty() {
        let message = match lost.first() {
            Some(gone) => format!("NVML read no GPU (GPU {}: {})", gone.index, gone.error),
            None => "NVML lists no GPU".to_string(),
        };
        let reason = "nvml";
        ScrapeFailed {
            target: NVML_TARGET,
            duration,
            reason,
            message: &message,
        }
        .emit(metrics);
        store.record_failure(NVML_TARGET, at, duration, Failure { reason, message });
        return;
    }
    let scrape = scrape_of(&gpus);
    let samples = scrape.readings.iter().map(|r| r.samples.len()).sum();
    ScrapeSucceeded {
        target: NVML_TARGET,
        duration,
        samples,
    }
    .emit(metrics);
    let scraped = Scraped {
        at,
        engine: None,
        version: String::new(),
        samples,
        readings: Vec::new(),
        raw: None,
        problems: Vec::new(),
        gpu: Some(Arc::new(scrape)),
        process: None,
    };
    store.record_success(NVML_TARGET, scraped, duration);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::state::Health;
    use crate::gpu::nvml::{LostGpu, NvmlGpu};

    /// GPUs that answer, then fall off the bus one by one.
    struct Scripted(Vec<(Vec<NvmlGpu>, Vec<LostGpu>)>);

    impl ReadGpus for Scripted {
        fn read(&mut self) -> (Vec<NvmlGpu>, Vec<LostGpu>) {
            if self.0.len() > 1 {
                self.0.remove(0)
            } else {
                self.0.first().cloned().unwrap_or_default()
            }
        }

        fn count(&self) -> usize {
            self.0
                .first()
                .map_or(0, |(gpus, lost)| gpus.len() + lost.len())
        }
    }

    fn gpu(index: u32) -> NvmlGpu {
        NvmlGpu {
            index,
            uuid: format!("GPU-{index:04}"),
            memory_used_bytes: Some(1 << 30),
            memory_total_bytes: Some(8 << 30),
            ..NvmlGpu::default()
        }
    }

    fn lost(index: u32) -> LostGpu {
        LostGpu {
            index,
            error: "the GPU has fallen off the bus or has otherwise become inaccessible".into(),
        }
    }

    fn store() -> Arc<Store> {
        let store = Arc::new(Store::new(crate::config::HistoryConfig::default()));
        store.set_targets(&[Arc::new(nvml_target(Duration::from_secs(5)))]);
        store
    }

    #[test]
    fn a_gpu_that_falls_off_the_bus_is_left_out_and_counted_and_the_last_good_read_kept() {
        let store = store();
        let metrics = SelfMetrics::default();
        let mut reader = Scripted(vec![
            (vec![gpu(0), gpu(1)], vec![]),
            (vec![gpu(0)], vec![lost(1)]),
            (vec![], vec![lost(0), lost(1)]),
        ]);
        let mut errors = BTreeMap::new();
        let devices = |store: &Store| {
            let status = store.statuses().pop().expect("the nvml target");
            let gpus = status
                .last_good
                .as_ref()
                .and_then(|g| g.gpu.as_ref())
                .map_or(0, |g| g.devices.len());
            (status.health, gpus)
        };
        read_round(&mut reader, &store, &metrics, &mut errors);
        assert_eq!(devices(&store), (Health::Up, 2));
        read_round(&mut reader, &store, &metrics, &mut errors);
        assert_eq!(devices(&store), (Health::Up, 1));
        assert_eq!(metrics.nvml_gpu_read_failures.get(), 1);
        read_round(&mut reader, &store, &metrics, &mut errors);
        // Nothing read: a failed scrape, the last good one (one GPU) kept.
        assert_eq!(devices(&store), (Health::Down, 1));
        assert_eq!(metrics.nvml_gpu_read_failures.get(), 3);
        let status = store.statuses().pop().expect("the nvml target");
        let error = status.last_error.clone().expect("the failure");
        assert!(error.message.contains("fallen off the bus"), "{error:?}");
    }

    #[tokio::test]
    async fn a_library_that_does_not_open_says_why_once_and_adds_no_target() {
        let store = Arc::new(Store::new(crate::config::HistoryConfig::default()));
        let metrics = SelfMetrics::default();
        metrics.nvml_up.set(1);
        let started = start(
            || Err::<Scripted, _>("no NVIDIA driver (libnvidia-ml.so.1: cannot open)".into()),
            store,
            metrics.clone(),
            Duration::from_secs(5),
        )
        .await;
        assert!(started.is_none());
        assert_eq!(metrics.nvml_up.get(), 0);
    }

    /// Opening counts the GPUs without reading them: the first round after `go` is the
    /// script's first read, not its second.
    #[tokio::test]
    async fn opening_counts_the_gpus_without_a_read() {
        let store = store();
        let metrics = SelfMetrics::default();
        let reader = Scripted(vec![
            (vec![gpu(0), gpu(1)], vec![]),
            (vec![gpu(0)], vec![lost(1)]),
        ]);
        let started = start(
            move || Ok(reader),
            store.clone(),
            metrics.clone(),
            Duration::from_secs(60),
        )
        .await
        .expect("opens");
        assert_eq!(metrics.nvml_up.get(), 1);
        assert!(
            store
                .statuses()
                .pop()
                .and_then(|s| s.last_good.clone())
                .is_none(),
            "nothing read before go"
        );
        started.go();
        let read = (0..200).find_map(|_| {
            std::thread::sleep(Duration::from_millis(10));
            let status = store.statuses().pop()?;
            status
                .last_good
                .as_ref()?
                .gpu
                .as_ref()
                .map(|g| g.devices.len())
        });
        assert_eq!(read, Some(2));
        assert_eq!(metrics.nvml_gpu_read_failures.get(), 0);
    }
}
