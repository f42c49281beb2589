//! `llmwatch bench`: a load generator for OpenAI-compatible endpoints that measures what a
//! client sees. Open loop (constant, Poisson or gamma arrivals, latency from the intended send
//! time) or closed loop (fixed concurrency); synthetic prompts with length distributions and
//! a shared prefix; TTFT to the first content token, ITL per chunk and per token, TPOT,
//! end-to-end, send lag, errors by class and goodput under SLOs.

mod calibration;
pub mod dataset;
mod drive;
pub mod engine_view;
pub mod html;
pub mod live;
pub mod report;
pub mod request;
pub mod schedule;
pub mod sizing;
pub mod trace;
pub mod workload;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::{Duration, Instant};

use serde_json::json;

use report::{Aggregate, Slo};
use schedule::OpenLoop;
use workload::Workload;

/// Which OpenAI route to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `/v1/chat/completions`.
    Chat,
    /// `/v1/completions`.
    Completions,
}

/// Open or closed loop.
#[derive(Debug, Clone, Copy)]
pub enum LoadMode {
    /// Requests at their own times, whatever the server does.
    Open {
        /// Requests per second.
        rate: f64,
        /// Gap distribution.
        arrival: schedule::Arrival,
    },
    /// A fixed number of requests in flight.
    Closed {
        /// How many.
        concurrency: usize,
    },
}

/// A whole benchmark.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Base URL of the server.
    pub url: String,
    /// Route.
    pub api: Api,
    /// Model; asked from `/v1/models` when absent.
    pub model: Option<String>,
    /// Load shape.
    pub load: LoadMode,
    /// Stop sending after this long.
    pub duration: Option<Duration>,
    /// Stop after this many requests.
    pub requests: Option<u64>,
    /// Requests intended in this first stretch are sent but not measured.
    pub warmup: Duration,
    /// What to send.
    pub workload: Workload,
    /// Requests from a file instead of synthetic prompts, used in turn.
    pub dataset: Option<Arc<Vec<dataset::Entry>>>,
    /// Stream answers.
    pub stream: bool,
    /// Ask engines to ignore end-of-sequence so answers have the requested length.
    pub ignore_eos: bool,
    /// Bearer token.
    pub api_key: Option<String>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Seed for lengths and gaps.
    pub seed: u64,
    /// Objectives for goodput.
    pub slos: Vec<Slo>,
    /// At most this many requests in flight; later ones wait for a slot (and the wait shows
    /// in latency from the intended send time).
    pub max_in_flight: Option<usize>,
    /// Serve live client metrics on this address during the run.
    pub metrics_listen: Option<String>,
    /// Push the client metrics over OTLP during the run and once at its end.
    pub otlp: Option<crate::otlp::OtlpConfig>,
    /// Scrape the engine's metrics before and after, for the engine's view: the server's own
    /// `/metrics` (`Some(None)`), or this URL (`Some(Some(url))`), e.g. the engine's when the
    /// benchmark goes through a proxy.
    pub engine_metrics: Option<Option<String>>,
    /// Replay these requests at their times instead of `load`'s schedule.
    pub trace: Option<Arc<Vec<trace::TraceEntry>>>,
    /// Open-loop sender threads; one per core when absent.
    pub threads: Option<usize>,
    /// Stop when the first this-many finished requests all failed (`None`: never).
    pub fail_fast: Option<u64>,
    /// The model's tokenizer, for exact prompt lengths.
    pub tokenizer: Option<Arc<crate::tokenize::Tokenizer>>,
    /// Without a tokenizer, measure the server's tokens per prompt word before the run.
    pub calibrate: bool,
    /// Show a progress line on a terminal (off for load that runs inside another command).
    pub progress: bool,
}

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The server does not answer.
    #[error("{url}: the server does not answer: {reason}")]
    Unreachable {
        /// Where.
        url: String,
        /// Why.
        reason: String,
    },
    /// No model given and none listed.
    #[error("{url}: no model given (--model) and /v1/models lists none")]
    NoModel {
        /// Where.
        url: String,
    },
    /// The live metrics listener could not bind.
    #[error("cannot serve metrics on {addr}: {error}")]
    Metrics {
        /// The address.
        addr: String,
        /// Why.
        error: std::io::Error,
    },
    /// The pacer thread could not start.
    #[error("cannot start the pacer thread: {0}")]
    Pacer(std::io::Error),
}

/// The outcome of a run.
pub struct Outcome {
    /// The measurements.
    pub aggregate: Aggregate,
    /// The JSON report.
    pub report: serde_json::Value,
    /// Whether Ctrl-C cut the run short.
    pub interrupted: bool,
    /// Why the run stopped before its end because its first requests all failed.
    pub failed_fast: Option<String>,
    /// The load it ran.
    pub load: LoadMode,
}

/// The server's root: `http://h:p`, `http://h:p/` and `http://h:p/v1` all mean `http://h:p`.
pub fn base_url(url: &str) -> &str {
    let base = url.trim_end_matches('/');
    base.strip_suffix("/v1").unwrap_or(base)
}

fn route(url: &str, api: Api) -> String {
    let base = base_url(url);
    match api {
        Api::Chat => format!("{base}/v1/chat/completions"),
        Api::Completions => format!("{base}/v1/completions"),
    }
}

/// The model the server lists first; also tells a dead endpoint apart quickly.
async fn first_model(
    client: &reqwest::Client,
    url: &str,
    key: Option<&str>,
) -> Result<Option<String>, BenchError> {
    let base = base_url(url);
    let mut request = client
        .get(format!("{base}/v1/models"))
        .timeout(Duration::from_secs(5));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.map_err(|e| BenchError::Unreachable {
        url: url.to_string(),
        reason: crate::collect::fetch::flatten_error(&e),
    })?;
    let bytes = response.bytes().await.unwrap_or_default();
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    Ok(body["data"][0]["id"].as_str().map(str::to_string))
}

/// Request `index`'s body, and the prompt length in tokens it asks for (none for a dataset
/// entry, whose length is its own).
fn body(options: &BenchOptions, model: &str, index: u64) -> (String, Option<u32>) {
    let mut rng = crate::rng::Rng::new(options.seed, index.wrapping_add(1_000));
    let traced = options.trace.as_ref().and_then(|t| t.get(index as usize));
    let prompt = match traced {
        Some(entry) => Workload {
            input: workload::LengthDist::Fixed(entry.input_tokens),
            output: workload::LengthDist::Fixed(entry.output_tokens),
            ..options.workload.clone()
        }
        .prompt(&mut rng, index),
        None => options.workload.prompt(&mut rng, index),
    };
    let entry = options
        .dataset
        .as_ref()
        .and_then(|d| d.get((index % d.len().max(1) as u64) as usize));
    let mut body = match (options.api, entry) {
        (Api::Chat, Some(entry)) => json!({ "model": model, "messages": entry.messages }),
        (Api::Completions, Some(entry)) => json!({ "model": model, "prompt": entry.text }),
        (Api::Chat, None) => json!({
            "model": model,
            "messages": [{"role": "user", "content": prompt.text}],
        }),
        (Api::Completions, None) => json!({ "model": model, "prompt": prompt.text }),
    };
    let max_tokens = entry
        .and_then(|e| e.max_tokens)
        .unwrap_or(prompt.max_tokens);
    body["max_tokens"] = json!(max_tokens);
    body["stream"] = json!(options.stream);
    if options.stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    if options.ignore_eos {
        body["ignore_eos"] = json!(true);
    }
    let asked = entry.is_none().then_some(prompt.input_tokens);
    (body.to_string(), asked)
}

/// The benchmark's HTTP client for `url`: one per runtime, since a pooled connection lives
/// on the runtime that opened it.
fn http_client(url: &reqwest::Url) -> Result<request::Client, BenchError> {
    request::Client::for_url(url).map_err(|reason| BenchError::Unreachable {
        url: url.to_string(),
        reason,
    })
}

/// Runs the benchmark; `progress` is called with the aggregate after each request.
pub async fn run(options: BenchOptions) -> Result<Outcome, BenchError> {
    crate::collect::fetch::install_tls_provider();
    let listed = {
        let client = reqwest::Client::new();
        first_model(&client, &options.url, options.api_key.as_deref()).await?
    };
    let model = options
        .model
        .clone()
        .or(listed)
        .ok_or_else(|| BenchError::NoModel {
            url: options.url.clone(),
        })?;
    let mut options = options;
    // A dataset's prompts have their own lengths; synthetic ones and a trace's are sized.
    let sizing_note = if options.dataset.is_none() {
        let (sizing, note) = calibration::prepare(&options, &model).await;
        options.workload.sizing = sizing;
        note
    } else {
        None
    };
    let engine_url = options
        .engine_metrics
        .as_ref()
        .map(|explicit| engine_view::metrics_url(&options.url, explicit.as_deref()));
    let engine_before = match &engine_url {
        Some(url) => Some(engine_view::snapshot(url, options.api_key.as_deref()).await),
        None => None,
    };
    let cpu_before = process_cpu_seconds();
    let options = Arc::new(options);
    let url = reqwest::Url::parse(&route(&options.url, options.api)).map_err(|e| {
        BenchError::Unreachable {
            url: options.url.clone(),
            reason: e.to_string(),
        }
    })?;
    let (live_metrics, exporter) = live::start(&options).await?;
    let start = Instant::now() + Duration::from_millis(20);
    let run = Arc::new(drive::Run {
        url,
        slots: options
            .max_in_flight
            .map(|n| Arc::new(tokio::sync::Semaphore::new(n.max(1)))),
        live: live_metrics,
        operation: crate::client_metrics::Operation {
            gen_ai_operation_name: match options.api {
                Api::Chat => "chat".into(),
                Api::Completions => "text_completion".into(),
            },
            gen_ai_request_model: model.clone(),
        },
        model: model.clone(),
        start,
        warm_until: start + options.warmup,
        aggregate: std::sync::Mutex::new(Aggregate::new(options.slos.clone())),
        in_flight: AtomicUsize::new(0),
        options: options.clone(),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let ended = match options.load {
        LoadMode::Open { rate, arrival } => {
            let plan = OpenLoop {
                rate,
                arrival,
                duration: options.duration,
                requests: options.requests,
                seed: options.seed,
                times: options
                    .trace
                    .as_ref()
                    .map(|t| Arc::new(t.iter().map(|e| e.at).collect())),
            };
            let threads = options.threads.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
            });
            let ended = drive::open_loop(run.clone(), plan, threads, stop.clone())?;
            drive::supervise(&run, ended, &stop, &options).await
        }
        LoadMode::Closed { concurrency } => {
            let client = http_client(&run.url)?;
            let ended = drive::closed_loop(run.clone(), client, concurrency, stop.clone());
            drive::supervise(&run, ended, &stop, &options).await
        }
    };
    if let Some(exporter) = exporter {
        exporter.finish().await;
    }
    let interrupted = ended == drive::Ended::Interrupted;
    let failed_fast = match ended {
        drive::Ended::FailedFast(why) => Some(why),
        drive::Ended::Done | drive::Ended::Interrupted => None,
    };
    // Requests still running after Ctrl-C finish into the emptied aggregate, unreported.
    let aggregate = std::mem::replace(&mut *run.aggregate(), Aggregate::new(Vec::new()));
    let target = match options.load {
        LoadMode::Open { rate, .. } => Some(rate),
        LoadMode::Closed { .. } => None,
    };
    let mut report = aggregate.to_json(target);
    report["model"] = json!(model);
    report["url"] = json!(run.url.as_str());
    report["interrupted"] = json!(interrupted);
    report["stopped_early"] = json!(failed_fast);
    if options.dataset.is_none() {
        let mut sizing = options.workload.sizing.to_json();
        sizing["note"] = json!(sizing_note);
        report["prompt_tokens"]["sizing"] = sizing;
    }
    if let (Some(before), Some(url)) = (engine_before, &engine_url) {
        report["engine_view"] = engine_view::after(before, url, options.api_key.as_deref()).await;
    }
    if let (Some(before), Some(after)) = (cpu_before, process_cpu_seconds()) {
        let cpu = after - before;
        let sent = aggregate.sent.max(1) as f64;
        report["client_cpu"] = json!({
            "seconds": cpu,
            "per_request_microseconds": cpu / sent * 1e6,
        });
    }
    Ok(Outcome {
        aggregate,
        report,
        interrupted,
        failed_fast,
        load: options.load,
    })
}

/// This process's user + system CPU time, from `/proc/self/stat` (Linux; `None` elsewhere).
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15, i.e. 12 and 13 after the state field.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // The kernel's USER_HZ is 100 on every Linux architecture llmwatch builds for.
    Some(ticks / 100.0)
}
