//! `/metrics` of a simulated engine in each engine's own dialect: names, types, labels,
//! buckets, number formatting and quirks as the real servers write them (see
//! docs/metrics.md and the engine notes it was built from). Values come from the engine
//! model and the recorder, so they agree with what clients observe.

mod llamacpp;
mod sglang;
mod tgi;
mod vllm;

pub use llamacpp::{ScrapeWindow, render_llamacpp};
pub use sglang::{render_sglang, sglang_buckets};
pub use tgi::{render_tgi, tgi_buckets};
pub use vllm::{VllmVersion, render_vllm};

use super::engine::{Profile, Totals};
use super::front::{Exposure, FrontCounts};
use super::record::{Buckets, Histogram, Latencies};
use crate::exposition::{write_family_header, write_series};

/// Everything a dialect renders, read from one engine at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot<'a> {
    /// Served model name.
    pub model: &'a str,
    /// Requests in the batch.
    pub running: usize,
    /// Requests queued.
    pub waiting: usize,
    /// KV-cache usage, 0 to 1.
    pub kv_usage: f64,
    /// Prompt and generated tokens of the running requests.
    pub context_tokens: u64,
    /// Engine totals.
    pub totals: &'a Totals,
    /// Latency histograms (bucketed as the dialect asked).
    pub latencies: &'a Latencies,
    /// Process start as Unix seconds (vLLM's `_created` samples).
    pub started_unix: f64,
    /// Capacity in force (vLLM's `cache_config_info`).
    pub profile: &'a Profile,
    /// Requests the front end refused before the engine saw them.
    pub front: FrontCounts,
    /// What a scenario changed about the endpoint.
    pub exposure: Exposure,
}

impl<'a> Snapshot<'a> {
    /// An engine and its recorder at rest: no refusals, the endpoint as configured, started
    /// at the epoch (tests and made-up-time renders).
    pub fn of_engine(
        model: &'a str,
        engine: &'a super::engine::Engine,
        recorder: &'a super::record::Recorder,
    ) -> Snapshot<'a> {
        Snapshot {
            model,
            running: engine.running(),
            waiting: engine.waiting(),
            kv_usage: engine.kv_usage(),
            context_tokens: engine.running_context_tokens(),
            totals: engine.totals(),
            latencies: recorder.latencies(),
            started_unix: 0.0,
            profile: engine.profile(),
            front: FrontCounts::default(),
            exposure: Exposure::default(),
        }
    }
}

/// Which engine a simulated server imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// vLLM of the given release.
    Vllm(VllmVersion),
    /// TGI 3.x.
    Tgi,
    /// llama.cpp server.
    LlamaCpp,
    /// SGLang 0.5.
    Sglang,
}

impl Dialect {
    /// Its name on the command line, in model names (`sim-NAME`) and GPU pods (`NAME-PORT`).
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Vllm(VllmVersion::V0_33) => "vllm",
            Dialect::Vllm(VllmVersion::V0_10) => "vllm-0.10",
            Dialect::Tgi => "tgi",
            Dialect::LlamaCpp => "llamacpp",
            Dialect::Sglang => "sglang",
        }
    }

    /// Whether its engine runs on a GPU (llama.cpp's runs on the CPU here).
    pub fn runs_on_gpu(self) -> bool {
        self != Dialect::LlamaCpp
    }
}

/// The histogram bounds a dialect's engine uses (llama.cpp exports no histograms; its
/// recorder keeps vLLM's).
pub fn buckets_for(dialect: Dialect) -> Buckets {
    match dialect {
        Dialect::Vllm(_) | Dialect::LlamaCpp => vllm_buckets(),
        Dialect::Tgi => tgi_buckets(),
        Dialect::Sglang => sglang_buckets(),
    }
}

/// Renders one engine's `/metrics` scrape after scrape, keeping what a dialect carries
/// between them: llama.cpp's throughput gauges cover the time since the previous scrape,
/// and TGI's family order changes per scrape.
#[derive(Debug, Clone)]
pub struct Renderer {
    dialect: Dialect,
    previous: Totals,
    scrapes: u64,
    pid: u32,
}

impl Renderer {
    /// A renderer for `dialect`; `pid` is the process id SGLang writes in its labels.
    pub fn new(dialect: Dialect, pid: u32) -> Renderer {
        Renderer {
            dialect,
            previous: Totals::default(),
            scrapes: 0,
            pid,
        }
    }

    /// The next scrape's body and its content type. Without the engine's own families
    /// only vLLM has anything left to write (its HTTP and process families).
    pub fn render(&mut self, s: &Snapshot<'_>) -> (String, &'static str) {
        self.scrapes += 1;
        if !s.exposure.engine_families && !matches!(self.dialect, Dialect::Vllm(_)) {
            return (String::new(), "text/plain; version=0.0.4; charset=utf-8");
        }
        match self.dialect {
            Dialect::Vllm(version) => (
                render_vllm(s, version),
                "text/plain; version=1.0.0; charset=utf-8",
            ),
            Dialect::Tgi => (render_tgi(s, self.scrapes), "text/plain; charset=utf-8"),
            Dialect::Sglang => (
                render_sglang(s, self.pid),
                "text/plain; version=0.0.4; charset=utf-8",
            ),
            Dialect::LlamaCpp => {
                let previous = std::mem::replace(&mut self.previous, s.totals.clone());
                let t = s.totals;
                let window = ScrapeWindow {
                    prompt_tokens: (t.prompt_tokens - t.cached_tokens)
                        .saturating_sub(previous.prompt_tokens - previous.cached_tokens),
                    prompt_seconds: t.prefill_seconds - previous.prefill_seconds,
                    generated_tokens: t.generated_tokens - previous.generated_tokens,
                    generated_seconds: t.decode_seconds - previous.decode_seconds,
                };
                let busy = if t.steps > 0 {
                    t.generated_tokens as f64 / t.steps as f64
                } else {
                    0.0
                };
                (
                    render_llamacpp(s, &window, busy),
                    "text/plain; version=0.0.4",
                )
            }
        }
    }
}

/// vLLM's bucket families (`vllm/v1/metrics/buckets.py`), token buckets for a
/// `max_model_len` of 8,192.
pub fn vllm_buckets() -> Buckets {
    let request = vec![
        0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
        240.0, 480.0, 960.0, 1920.0, 7680.0,
    ];
    Buckets {
        ttft: vec![
            0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
            10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
        ],
        itl: vec![
            0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
            10.0, 20.0, 40.0, 80.0,
        ],
        e2e: request.clone(),
        queue: request.clone(),
        phase: request,
        tokens: vec![
            1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0,
        ],
    }
}

/// Parameters of the model the simulated GPU engines imagine serving (7B, bf16), for the
/// families that estimate FLOPs and bytes.
const MODEL_PARAMETERS: f64 = 7.0e9;
/// Bytes of KV cache one token takes (32 layers × K and V × 4,096 × 2 bytes).
pub(crate) const KV_BYTES_PER_TOKEN: f64 = 524_288.0;

/// Estimated FLOPs, bytes read and bytes written per GPU (vLLM's and SGLang's MFU
/// counters): 2 FLOPs per parameter per computed token, the weights read once per step, and
/// each computed token's KV written once.
fn performance_estimates(t: &Totals) -> [f64; 3] {
    let computed = (t.prompt_tokens - t.cached_tokens.min(t.prompt_tokens)) + t.generated_tokens;
    [
        2.0 * MODEL_PARAMETERS * computed as f64,
        2.0 * MODEL_PARAMETERS * t.steps as f64,
        KV_BYTES_PER_TOKEN * computed as f64,
    ]
}

/// Python's `repr` of a float, as `prometheus_client` writes values: `7.0`, `0.4231`.
fn py_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if v.fract() == 0.0 && v.abs() < 1e16 {
        format!("{v:.1}")
    } else {
        format!("{v:?}")
    }
}

/// Writes a histogram in `prometheus_client` form: buckets, then `_count` and `_sum`, with
/// `le` rendered as a Python float.
fn write_py_histogram(out: &mut String, name: &str, labels: &[(&str, &str)], h: &Histogram) {
    let bucket = format!("{name}_bucket");
    for (le, count) in h.cumulative() {
        let le = py_float(le);
        let with_le = labels.iter().copied().chain([("le", le.as_str())]);
        write_raw(out, &bucket, with_le, &py_float(count as f64));
    }
    write_raw(
        out,
        &format!("{name}_count"),
        labels.iter().copied(),
        &py_float(h.count as f64),
    );
    write_raw(
        out,
        &format!("{name}_sum"),
        labels.iter().copied(),
        &py_float(h.sum),
    );
}

/// Writes one sample with an already formatted value (dialects format numbers their way).
fn write_raw<'l>(
    out: &mut String,
    name: &str,
    labels: impl IntoIterator<Item = (&'l str, &'l str)>,
    value: &str,
) {
    write_series(out, name, labels);
    out.push_str(value);
    out.push('\n');
}

/// `# HELP` and `# TYPE` lines.
fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    write_family_header(out, name, Some(help), kind);
}

#[cfg(test)]
mod tests;
