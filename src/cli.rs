//! Command-line definitions, in one place. No logic here beyond turning flags into the
//! commands' argument structs.

use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::collect::fetch::FetchOptions;
use crate::commands::render::Format;
use crate::commands::scrape::ScrapeArgs;

/// Observability for LLM inference servers (vLLM, TGI, llama.cpp, SGLang).
#[derive(Debug, Parser)]
#[command(name = "llmwatch", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch one scrape, detect the engine and version, and print every canonical signal as
    /// native, derived or missing.
    Scrape(ScrapeCli),
    /// Serve simulated inference engines (vLLM, TGI, llama.cpp, SGLang dialects) on loopback.
    Sim(SimCli),
    /// Scrape engines, normalise them into one schema, keep history, and serve a web
    /// dashboard, `/metrics` and a JSON API.
    Up(UpCli),
    /// The overview of a running `up` (or of engines scraped directly) in the terminal.
    Top(TopCli),
    /// `up` on simulated engines of every dialect, with the proxy, client load and a scripted
    /// incident: the whole system, no GPU needed.
    Demo(DemoCli),
    /// Load an OpenAI-compatible endpoint and measure what a client sees.
    Bench(Box<BenchCli>),
    /// An OpenAI-compatible streaming proxy that measures what its clients experience.
    Proxy(ProxyCli),
    /// Write Prometheus configuration, recording and alert rules, Alertmanager, Grafana
    /// dashboards, Compose and Kubernetes files for your engines.
    Export(ExportCli),
    /// Check Prometheus rule files, Grafana dashboards and Prometheus scrape configurations
    /// against what the engines really export. Exit 0 clean, 1 findings at or above
    /// --fail-on, 2 could not run.
    Lint(LintCli),
    /// Diagnose engines from their live numbers (a running `up`, engine URLs scraped for a
    /// while, or a Prometheus): targets down, KV-, queue-, prefill- or decode-bound engines,
    /// error and 429 bursts, time lost before the engine, unbalanced replicas, scrapes that
    /// corrupt the numbers, and your rules' renamed series — each with the evidence and the
    /// engine's flags to change. Exit 0 healthy, 1 findings at or above --fail-on, 2 could not
    /// run.
    Doctor(DoctorCli),
}

/// `llmwatch doctor`.
#[derive(Debug, clap::Args)]
pub struct DoctorCli {
    /// Engines to scrape for `--for` and diagnose, instead of reading a running `up`:
    /// `URL[,name=N][,model=M]…` as `up --target` takes them.
    pub targets: Vec<String>,
    /// With engine URLs: how long to scrape them before judging.
    #[arg(long = "for", default_value = "60s", value_parser = parse_duration)]
    pub for_: Duration,
    /// With engine URLs: the scrape interval.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub interval: Duration,
    /// The running `llmwatch up` to read.
    #[arg(long, default_value = "http://127.0.0.1:9464")]
    pub url: String,
    /// Read a Prometheus instead of `up`: the `llm:` schema (from llmwatch's series or the
    /// rules-only recording rules) through its query API.
    #[arg(long, value_name = "URL", conflicts_with = "targets")]
    pub prometheus: Option<String>,
    /// Your Prometheus rule file or Grafana dashboard (repeatable): every series it queries
    /// that the engines running no longer export (renamed by an upgrade) is a finding.
    #[arg(long = "rules", value_name = "FILE")]
    pub rules: Vec<std::path::PathBuf>,
    /// The window the rates and quantiles are read over (with engine URLs: `--for`).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub window: Duration,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: FindingsFormat,
    /// Exit 1 when a finding is at least this severe: info, warning or critical.
    #[arg(long, default_value = "warning", value_parser = crate::findings::Severity::parse)]
    pub fail_on: crate::findings::Severity,
    /// TTFT p95 above this many seconds is slow.
    #[arg(long, default_value_t = 1.0)]
    pub ttft_seconds: f64,
    /// Inter-token latency p95 above this many seconds is slow.
    #[arg(long, default_value_t = 0.1)]
    pub itl_seconds: f64,
    /// Bearer token for an `up` with `[auth]`.
    #[arg(long, env = "LLMWATCH_BEARER_TOKEN", hide_env_values = true)]
    pub bearer_token: Option<String>,
}

/// How findings are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FindingsFormat {
    /// For people, grouped by file or target (coloured on a terminal).
    Text,
    /// One JSON document.
    Json,
}

/// `llmwatch lint`.
#[derive(Debug, clap::Args)]
pub struct LintCli {
    /// Prometheus rule files (also Kubernetes PrometheusRule), Grafana dashboard JSON (also
    /// exported for sharing, with library panels) and Prometheus configurations.
    #[arg(required = true)]
    pub files: Vec<std::path::PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: FindingsFormat,
    /// Exit 1 when a finding is at least this severe: info, warning or critical.
    #[arg(long, default_value = "warning", value_parser = crate::findings::Severity::parse)]
    pub fail_on: crate::findings::Severity,
    /// The scrape interval rate() windows are checked against, when no Prometheus
    /// configuration is given among the files.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub scrape_interval: Duration,
}

/// `llmwatch export`.
#[derive(Debug, clap::Args)]
pub struct ExportCli {
    /// An engine: `URL[,engine=vllm|tgi|llamacpp|sglang][,name=N][,scrape=llmwatch|prometheus]
    /// [,model=M][,label=value…]`, repeatable. `scrape=prometheus` targets are scraped by
    /// Prometheus directly and get the schema from recording rules (needs `engine=`; `model=`
    /// names the model of engines whose series carry none); the rest are scraped by llmwatch.
    #[arg(long = "target", required = true)]
    pub targets: Vec<String>,
    /// Folder to write into (created if needed; files there with the same names are replaced).
    #[arg(long)]
    pub out: std::path::PathBuf,
    /// Where Prometheus reaches llmwatch.
    #[arg(long, default_value = "llmwatch:9464")]
    pub llmwatch: String,
    /// Where Prometheus reaches Alertmanager.
    #[arg(long, default_value = "alertmanager:9093")]
    pub alertmanager: String,
    /// Where Grafana reaches Prometheus.
    #[arg(long, default_value = "http://prometheus:9090")]
    pub prometheus_url: String,
    /// Scrape and rule-evaluation interval.
    #[arg(long, default_value = "5s")]
    pub scrape_interval: String,
    /// Runbook page the alerts link to; `#alertname` is appended.
    #[arg(long, default_value = "docs/runbook.md")]
    pub runbook_base: String,
    /// Run llmwatch's measuring proxy in front of this upstream.
    #[arg(long)]
    pub proxy_upstream: Option<String>,
    /// Alertmanager's webhook receiver.
    #[arg(long, default_value = "http://127.0.0.1:5001/alerts")]
    pub webhook_url: String,
    /// Kubernetes namespace.
    #[arg(long, default_value = "monitoring")]
    pub namespace: String,
    /// llmwatch's container image.
    #[arg(long, default_value = "llmwatch:latest")]
    pub image: String,
    /// Availability objective of the error-budget alerts.
    #[arg(long, default_value_t = 0.99)]
    pub availability_objective: f64,
    /// Fraction of requests whose first token must come within `--ttft-threshold`.
    #[arg(long, default_value_t = 0.99)]
    pub ttft_objective: f64,
    /// TTFT threshold of the latency SLO, in seconds: a bucket bound your engines export.
    #[arg(long, default_value_t = 1.0)]
    pub ttft_threshold: f64,
}

/// `llmwatch proxy`.
#[derive(Debug, clap::Args)]
pub struct ProxyCli {
    /// An upstream server: `URL[,models=a|b]`, repeatable. Requests go to the upstreams
    /// listing their `model` (least outstanding first, a failing one skipped for 10 s); an
    /// upstream listing no models is a default for any other model and for other paths.
    #[arg(long = "upstream", required = true)]
    pub upstreams: Vec<String>,
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:4000")]
    pub listen: String,
    /// Largest request body accepted, in bytes (413 beyond).
    #[arg(long, default_value_t = 8 << 20)]
    pub max_body_bytes: usize,
    /// Connecting to an upstream.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// From sending a request to the upstream's response head.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub first_byte_timeout: Duration,
    /// Longest gap between chunks of an answer.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// A whole request.
    #[arg(long, default_value = "600s", value_parser = parse_duration)]
    pub total_timeout: Duration,
    /// Do not add `stream_options.include_usage` to streams whose client did not ask for
    /// usage (then output tokens are counted from chunks, labelled `source="chunks"`).
    #[arg(long)]
    pub no_usage_injection: bool,
    /// Distinct model labels kept; later models are labelled `other`.
    #[arg(long, default_value_t = 32)]
    pub max_models: usize,
    /// A PEM file of CA certificates to trust for `https://` upstreams, besides the
    /// system's roots (a private CA in front of the engines).
    #[arg(long, value_name = "FILE")]
    pub upstream_ca: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub otlp: OtlpCli,
}

/// OTLP export, shared by the commands that serve metrics. Unset flags fall back to the
/// standard `OTEL_*` environment variables; with no endpoint anywhere, nothing is exported.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OtlpCli {
    /// OTLP endpoint to push metrics to, e.g. http://127.0.0.1:4318 (`/v1/metrics` is
    /// added), or http://127.0.0.1:4317 with `--otlp-protocol grpc`. Default:
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`.
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// `http/protobuf` or `grpc`. Default: `OTEL_EXPORTER_OTLP_PROTOCOL` (or the signal's
    /// own `…_METRICS_PROTOCOL`, `…_TRACES_PROTOCOL`), else http/protobuf.
    #[arg(long, value_name = "PROTOCOL")]
    pub otlp_protocol: Option<String>,
    /// A PEM file of CA certificates to trust for an `https://` OTLP endpoint, besides the
    /// system's roots (a collector behind a private CA). Default:
    /// `OTEL_EXPORTER_OTLP_CERTIFICATE`.
    #[arg(long, value_name = "FILE")]
    pub otlp_certificate: Option<std::path::PathBuf>,
    /// How often to export. Default: `OTEL_METRIC_EXPORT_INTERVAL`, else 60s.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub otlp_interval: Option<Duration>,
    /// `cumulative` or `delta` sums and histograms. Default:
    /// `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`, else cumulative.
    #[arg(long, value_name = "TEMPORALITY")]
    pub otlp_temporality: Option<String>,
    /// Share of new traces the proxy samples, 0 to 1 (a request's own `traceparent` decides
    /// when it has one). Default: `OTEL_TRACES_SAMPLER`/`OTEL_TRACES_SAMPLER_ARG`, else 1.
    #[arg(long, value_name = "RATIO")]
    pub otlp_trace_ratio: Option<f64>,
    /// Requests at least this long keep their span whatever the ratio (errors always do).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION", default_value = "10s")]
    pub otlp_keep_slower_than: Duration,
    /// `gen_ai.provider.name` on the exported client metrics and spans, which the GenAI
    /// conventions require; engines served on your own machines have no well-known name, so
    /// name yours (e.g. `vllm`). Left out when not given.
    #[arg(long, value_name = "NAME")]
    pub gen_ai_provider: Option<String>,
}

impl OtlpCli {
    /// The settings these flags give, for `service.name` `default_service`.
    pub fn settings(&self, default_service: &str) -> crate::otlp::OtlpSettings {
        crate::otlp::OtlpSettings {
            endpoint: self.otlp_endpoint.clone(),
            interval: self.otlp_interval,
            temporality: self.otlp_temporality.clone(),
            default_service: default_service.to_string(),
            trace_ratio: self.otlp_trace_ratio,
            keep_slower_than: Some(self.otlp_keep_slower_than),
            provider: self.gen_ai_provider.clone(),
            protocol: self.otlp_protocol.clone(),
            certificate: self.otlp_certificate.clone(),
        }
    }
}

/// `llmwatch bench`.
#[derive(Debug, clap::Args)]
pub struct BenchCli {
    /// The server's base URL, e.g. http://127.0.0.1:8000.
    pub url: String,
    /// Requests per second, open loop (latency counted from each request's intended send
    /// time). Either this or --concurrency.
    #[arg(long, conflicts_with = "concurrency")]
    pub rate: Option<f64>,
    /// Arrival process for --rate: constant, poisson or gamma:CV (CV above 1 is burstier).
    #[arg(long, default_value = "poisson", value_parser = crate::bench::schedule::Arrival::parse)]
    pub arrival: crate::bench::schedule::Arrival,
    /// Requests in flight, closed loop.
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Run one step per load level instead of one run: rates (with --rate's arrival process)
    /// or concurrencies, e.g. `rate:5,10,20,40` or `concurrency:1,4,16`. Each step lasts
    /// --duration / --requests; the sweep stops early once the server saturates.
    #[arg(long, conflicts_with_all = ["rate", "concurrency"])]
    pub sweep: Option<String>,
    /// With --rate, at most this many requests in flight: later ones wait for a slot, and
    /// the wait counts in latency from the intended send time.
    #[arg(long)]
    pub max_in_flight: Option<usize>,
    /// Open-loop sender threads, each pacing and sending its share of the schedule on its own
    /// runtime (default: one per core).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
    /// How long to send (e.g. 30s, 5m).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// How many requests to send.
    #[arg(long)]
    pub requests: Option<u64>,
    /// Requests intended in this first stretch are sent but not measured.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Prompt length in tokens: N, uniform:MIN-MAX, normal:MEAN,SD or lognormal:MEAN,SD.
    #[arg(long, default_value = "128", value_parser = crate::bench::workload::LengthDist::parse)]
    pub input_tokens: crate::bench::workload::LengthDist,
    /// Output length in tokens (`max_tokens`), same forms as --input-tokens.
    #[arg(long, default_value = "128", value_parser = crate::bench::workload::LengthDist::parse)]
    pub output_tokens: crate::bench::workload::LengthDist,
    /// Requests from a file, used in turn: JSON lines of OpenAI chat requests, or ShareGPT
    /// conversations (JSON lines or an array). Lengths then come from the file where it says.
    #[arg(long)]
    pub dataset: Option<std::path::PathBuf>,
    /// Replay a trace: JSON lines of {"timestamp": SECONDS, "input_tokens": N,
    /// "output_tokens": M}, sent open loop at those times with those lengths.
    #[arg(long, conflicts_with_all = ["rate", "concurrency", "sweep", "dataset"])]
    pub trace: Option<std::path::PathBuf>,
    /// The model's tokenizer.json (a local file; nothing is downloaded): prompts are cut to
    /// exactly --input-tokens of the server's tokens, its chat template's tokens included
    /// (measured by one probe request before the run).
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<std::path::PathBuf>,
    /// Without --tokenizer, do not calibrate: by default two probe requests before the run
    /// measure how many tokens the server counts per prompt word and for its template, and
    /// prompts are scaled to match.
    #[arg(long)]
    pub no_calibrate: bool,
    /// Share of each prompt that is the same for every request (0 to 1), for prefix caches.
    #[arg(long, default_value_t = 0.0)]
    pub prefix_ratio: f64,
    /// Use /v1/completions instead of /v1/chat/completions.
    #[arg(long)]
    pub completions: bool,
    /// Ask for whole answers instead of streams (TTFT and ITL are then not measured).
    #[arg(long)]
    pub no_stream: bool,
    /// Do not send `ignore_eos` (engines then stop when the model does, not at max_tokens).
    #[arg(long)]
    pub no_ignore_eos: bool,
    /// Model name; the first one /v1/models lists by default.
    #[arg(long)]
    pub model: Option<String>,
    /// Bearer token for the endpoint.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Per-request timeout.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Seed for lengths and arrival gaps.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Objectives for goodput, e.g. ttft_p99=500ms,itl_p99=50ms (ttft, tpot, itl, e2e).
    #[arg(long)]
    pub slo: Option<String>,
    /// Serve live client metrics (the OpenTelemetry GenAI client metrics and `llm_proxy_*`)
    /// on this address during the run, e.g. 127.0.0.1:9465.
    #[arg(long)]
    pub metrics_listen: Option<String>,
    #[command(flatten)]
    pub otlp: OtlpCli,
    /// Scrape the engine's metrics before and after the run, and report the engine's token
    /// counts and TTFT/ITL/e2e quantiles beside the client's: the server's own /metrics, or
    /// the URL given (the engine's, when the benchmark goes through a proxy), e.g.
    /// `--engine-metrics http://127.0.0.1:8000/metrics`.
    #[arg(long, value_name = "URL", num_args = 0..=1, require_equals = false)]
    pub engine_metrics: Option<Option<String>>,
    /// Stop, with exit code 1 and the servers' error messages, when the first N finished
    /// requests all failed (a wrong model, a context limit, a server that fails everything);
    /// 0 never stops early.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub fail_fast: u64,
    /// Write the JSON report here.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
    /// Write one CSV line per request here.
    #[arg(long)]
    pub csv: Option<std::path::PathBuf>,
    /// Write a self-contained HTML report here: latency and throughput against load (one
    /// point per sweep step) and, for a single run, second by second.
    #[arg(long)]
    pub html: Option<std::path::PathBuf>,
}

/// `llmwatch up`.
#[derive(Debug, clap::Args)]
pub struct UpCli {
    /// An engine to scrape: `URL[,name=NAME][,label=value…]`, repeatable. The URL is the
    /// engine's base URL (`/metrics` is added) or its metrics URL. With no target here, in
    /// the configuration or in file_sd files, engines on well-known local ports are used.
    #[arg(long = "target")]
    pub targets: Vec<String>,
    /// A configuration file (TOML; see config.example.toml). Re-read on SIGHUP.
    #[arg(long, env = "LLMWATCH_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// Address to serve on, overriding the configuration (default 127.0.0.1:9464).
    #[arg(long)]
    pub listen: Option<String>,
    /// Run the measuring proxy in the same process with this upstream (`URL[,models=a|b]`,
    /// repeatable): its client-side series join `/metrics`, with the gap between client and
    /// engine TTFT per model. Replaces the configuration file's `[proxy]` upstreams.
    #[arg(long = "proxy-upstream")]
    pub proxy_upstreams: Vec<String>,
    /// Address the in-process proxy serves on (default 127.0.0.1:4000).
    #[arg(long)]
    pub proxy_listen: Option<String>,
    /// The in-process proxy's limit on connecting to an upstream (as `proxy
    /// --connect-timeout`; default 5s).
    #[arg(long, value_parser = parse_duration)]
    pub proxy_connect_timeout: Option<Duration>,
    /// The in-process proxy's limit from sending a request to the response head (default
    /// 120s).
    #[arg(long, value_parser = parse_duration)]
    pub proxy_first_byte_timeout: Option<Duration>,
    /// The in-process proxy's longest gap between chunks of an answer (default 60s).
    #[arg(long, value_parser = parse_duration)]
    pub proxy_idle_timeout: Option<Duration>,
    /// The in-process proxy's limit on a whole request (default 600s).
    #[arg(long, value_parser = parse_duration)]
    pub proxy_total_timeout: Option<Duration>,
}

/// `llmwatch top`.
#[derive(Debug, clap::Args)]
pub struct TopCli {
    /// A running `llmwatch up` to read.
    #[arg(long, default_value = "http://127.0.0.1:9464")]
    pub url: String,
    /// Engines to scrape directly instead (`URL[,name=NAME][,label=value…]`, repeatable), so
    /// `top` works with nothing else running.
    #[arg(long = "target")]
    pub targets: Vec<String>,
    /// Bearer token for an `up` with `[auth]`.
    #[arg(long, env = "LLMWATCH_BEARER_TOKEN", hide_env_values = true)]
    pub bearer_token: Option<String>,
}

/// `llmwatch demo`.
#[derive(Debug, clap::Args)]
pub struct DemoCli {
    /// Address the collector serves on (default 127.0.0.1:9464; port 0 picks a free one).
    #[arg(long)]
    pub listen: Option<String>,
    /// When vLLM's first incident starts (KV pressure, preemptions, queueing, 429s).
    #[arg(long, default_value = "90s", value_parser = parse_duration)]
    pub incident_at: Duration,
    /// Time between the starts of two incidents.
    #[arg(long, default_value = "4m", value_parser = parse_duration)]
    pub incident_every: Duration,
}

/// `llmwatch sim`.
#[derive(Debug, clap::Args)]
pub struct SimCli {
    /// `DIALECT:PORT`, repeatable: vllm, vllm-0.10, tgi, llamacpp or sglang; port 0 picks one.
    #[arg(long = "engine", required = true, value_parser = crate::commands::sim::parse_engine_spec)]
    pub engines: Vec<crate::commands::sim::EngineSpec>,
    /// Address the engines listen on. Loopback by default; a container needs 0.0.0.0.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Capacity and speed: `gpu-7b` (a 7B model on an H100-class GPU), `cpu-270m`
    /// (llama.cpp with Gemma 3 270M on one CPU thread), `bench` (an upstream for load tests
    /// that is never the bottleneck) or `instant` (1 ms steps, no prefill: for measuring
    /// clients and proxies).
    #[arg(long, default_value = "gpu-7b", value_parser = crate::commands::sim::parse_profile)]
    pub profile: crate::sim::engine::Profile,
    /// Seed for fault draws: the same seed and request order give the same faults.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// A scenario file (TOML) that changes capacity, speed and fault rates over time; see
    /// scenarios/.
    #[arg(long)]
    pub scenario: Option<std::path::PathBuf>,
    /// Background traffic in requests per second, sent straight to every engine (chat-like
    /// lengths: prompts of 50–500 tokens, answers of 20–300).
    #[arg(long)]
    pub load: Option<f64>,
    /// API key the engines require on `/v1` (llama.cpp engines on `/metrics` too, as the real
    /// server does with `--api-key`).
    #[arg(long, env = "LLMWATCH_SIM_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// llama.cpp engines answer `/metrics` with HTTP 501, as without `--metrics`.
    #[arg(long)]
    pub llamacpp_no_metrics: bool,
    /// Count prompt tokens with this tokenizer.json, as an engine serving that model does
    /// (default: one token per four characters).
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<std::path::PathBuf>,
    /// Run each engine thread with real-time scheduling (SCHED_FIFO) so steps stay on
    /// schedule when the HTTP side saturates the core, as in load tests; needs root or
    /// CAP_SYS_NICE, and fails with a clear message without it.
    #[arg(long)]
    pub realtime: bool,
    /// Fault rates; a request can also force one with the `x-llmwatch-sim-fault` header.
    #[command(flatten)]
    pub faults: FaultCli,
}

/// Fault injection flags of `llmwatch sim` (probabilities per request, 0 to 1).
#[derive(Debug, clap::Args)]
pub struct FaultCli {
    /// HTTP 500 before any work.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// An error event halfway through a stream, after HTTP 200.
    #[arg(long, default_value_t = 0.0)]
    pub midstream_error_rate: f64,
    /// A pause of `--stall` halfway through a stream.
    #[arg(long, default_value_t = 0.0)]
    pub stall_rate: f64,
    /// How long a stall lasts.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub stall: Duration,
    /// A delay of `--delay` before the first byte.
    #[arg(long, default_value_t = 0.0)]
    pub delay_rate: f64,
    /// How long a delay lasts.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub delay: Duration,
    /// The connection dropped without a complete response.
    #[arg(long, default_value_t = 0.0)]
    pub reset_rate: f64,
    /// Queue length at which new requests get HTTP 429 with Retry-After.
    #[arg(long)]
    pub max_waiting: Option<usize>,
}

impl FaultCli {
    /// The rates, checked to be probabilities.
    pub fn rates(&self) -> Result<crate::sim::faults::FaultRates, String> {
        let rates = [
            self.error_rate,
            self.midstream_error_rate,
            self.stall_rate,
            self.delay_rate,
            self.reset_rate,
        ];
        let total: f64 = rates.iter().sum();
        if rates.iter().any(|r| !(0.0..=1.0).contains(r)) || total > 1.0 {
            return Err(format!(
                "fault rates must be between 0 and 1 and add up to at most 1 (they add up to {total})"
            ));
        }
        Ok(crate::sim::faults::FaultRates {
            error: self.error_rate,
            midstream_error: self.midstream_error_rate,
            stall: self.stall_rate,
            delay: self.delay_rate,
            reset: self.reset_rate,
            stall_for: self.stall,
            delay_for: self.delay,
            max_waiting: self.max_waiting,
        })
    }
}

/// `llmwatch scrape`.
#[derive(Debug, clap::Args)]
pub struct ScrapeCli {
    /// `http(s)://host:port[/path]` (a bare host means `/metrics`), a file, or `-` for stdin.
    pub target: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Request timeout, e.g. `5s` or `500ms`.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Largest body accepted, in bytes.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Bearer token for endpoints behind an API key (llama.cpp `--api-key` guards /metrics).
    #[arg(long, env = "LLMWATCH_BEARER_TOKEN", hide_env_values = true)]
    pub bearer_token: Option<String>,
    /// Skip and report malformed lines instead of failing on the first one.
    #[arg(long)]
    pub lenient: bool,
    /// Model label for engines whose series carry none (TGI, llama.cpp); by default the
    /// engine's info endpoint is asked.
    #[arg(long)]
    pub model: Option<String>,
    /// Do not ask the engine's info endpoint (/version, /info, /props, /server_info).
    #[arg(long)]
    pub no_version_probe: bool,
}

impl ScrapeCli {
    /// The command's arguments.
    pub fn args(&self) -> ScrapeArgs {
        ScrapeArgs {
            target: self.target.clone(),
            fetch: FetchOptions {
                timeout: self.timeout,
                max_body_bytes: self.max_body_bytes,
                bearer_token: self.bearer_token.clone(),
            },
            lenient: self.lenient,
            model: self.model.clone(),
            probe_version: !self.no_version_probe,
        }
    }
}

/// Parses `5s`, `250ms`, `1m`, `1h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. 5s, 250ms, 1m, 1h"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration unit in {text:?}: use ms, s, m or h"
            ));
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("invalid duration {text:?}: {e}"))
}
