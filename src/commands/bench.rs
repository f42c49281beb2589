//! `llmwatch bench`: turns the flags into a run, and the run into a table, JSON and CSV.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use crate::bench::html::{self, Step};
use crate::bench::report::Slo;
use crate::bench::workload::Workload;
use crate::bench::{Api, BenchOptions, LoadMode, Outcome};
use crate::cli::BenchCli;

/// The run the flags describe: `--rate` (open loop) or `--concurrency` (closed loop, 1 by
/// default), bounded by `--duration` and/or `--requests` (30 s when neither is given).
pub fn options(args: &BenchCli) -> anyhow::Result<BenchOptions> {
    let trace = match &args.trace {
        Some(path) => Some(std::sync::Arc::new(
            crate::bench::trace::load(path).map_err(anyhow::Error::msg)?,
        )),
        None => None,
    };
    let load = match (args.rate, args.concurrency) {
        // A trace sets its own times; the rate is only reported.
        _ if trace.is_some() => LoadMode::Open {
            rate: 1.0,
            arrival: crate::bench::schedule::Arrival::Constant,
        },
        (Some(rate), _) if !(rate > 0.0 && rate.is_finite()) => {
            anyhow::bail!("--rate must be a positive number of requests per second")
        }
        (Some(rate), _) => LoadMode::Open {
            rate,
            arrival: args.arrival,
        },
        (None, concurrency) => LoadMode::Closed {
            concurrency: concurrency.unwrap_or(1).max(1),
        },
    };
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.prefix_ratio),
        "--prefix-ratio must be between 0 and 1"
    );
    let duration = match (args.duration, args.requests) {
        (None, None) if trace.is_none() => Some(std::time::Duration::from_secs(30)),
        (d, _) => d,
    };
    let slos = match &args.slo {
        Some(text) => Slo::parse_list(text).map_err(anyhow::Error::msg)?,
        None => Vec::new(),
    };
    Ok(BenchOptions {
        url: args.url.clone(),
        api: if args.completions {
            Api::Completions
        } else {
            Api::Chat
        },
        model: args.model.clone(),
        load,
        duration,
        requests: args.requests,
        warmup: args.warmup,
        workload: Workload {
            input: args.input_tokens.clone(),
            output: args.output_tokens.clone(),
            prefix_ratio: args.prefix_ratio,
            sizing: crate::bench::sizing::Sizing::Words,
        },
        stream: !args.no_stream,
        ignore_eos: !args.no_ignore_eos,
        api_key: args.api_key.clone(),
        timeout: args.timeout,
        dataset: match &args.dataset {
            Some(path) => Some(std::sync::Arc::new(crate::bench::dataset::load(path)?)),
            None => None,
        },
        seed: args.seed,
        slos,
        max_in_flight: args.max_in_flight,
        metrics_listen: args.metrics_listen.clone(),
        otlp: args
            .otlp
            .settings("llmwatch-bench")
            .resolve(|name| std::env::var(name).ok())?
            .map(|config| config.with_server(&args.url)),
        engine_metrics: args.engine_metrics.clone(),
        threads: args.threads.map(usize::from),
        trace,
        fail_fast: (args.fail_fast > 0).then_some(args.fail_fast),
        tokenizer: match &args.tokenizer {
            Some(path) => Some(std::sync::Arc::new(crate::tokenize::Tokenizer::load(path)?)),
            None => None,
        },
        calibrate: !args.no_calibrate,
        progress: true,
    })
}

/// Prints the summary table and writes the JSON report and the per-request CSV.
pub fn write_outputs(outcome: &Outcome, args: &BenchCli) -> anyhow::Result<()> {
    let (json, csv) = (args.json.as_deref(), args.csv.as_deref());
    let mut out = std::io::stdout().lock();
    if outcome.interrupted {
        writeln!(out, "interrupted: partial results")?;
    }
    out.write_all(outcome.aggregate.table(&outcome.report).as_bytes())?;
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&outcome.report)?;
        std::fs::write(path, text).with_context(|| format!("{}: cannot write", path.display()))?;
    }
    if let Some(path) = csv {
        std::fs::write(path, outcome.aggregate.csv())
            .with_context(|| format!("{}: cannot write", path.display()))?;
    }
    if let Some(path) = &args.html {
        let (offered, axis) = offered(outcome.load);
        let steps = [Step {
            offered,
            report: &outcome.report,
        }];
        let html = html::render(
            &format!("llmwatch bench {}", args.url),
            axis,
            &steps,
            Some(&outcome.aggregate.records),
        );
        write_file(path, &html)?;
    }
    match &outcome.failed_fast {
        Some(why) => anyhow::bail!("stopped early: {why} (--fail-fast 0 runs on regardless)"),
        None => Ok(()),
    }
}

/// The x value and axis name of a load level in the HTML report.
fn offered(load: LoadMode) -> (f64, &'static str) {
    match load {
        LoadMode::Open { rate, .. } => (rate, "offered rate (requests/s)"),
        LoadMode::Closed { concurrency } => (concurrency as f64, "concurrency"),
    }
}

fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("{}: cannot write", path.display()))
}

/// The load levels of `--sweep rate:A,B,…` or `concurrency:A,B,…`; rates use `arrival`
/// (`--arrival`), so each step is paced as a single run with the same flags would be.
pub fn parse_sweep(
    text: &str,
    arrival: crate::bench::schedule::Arrival,
) -> anyhow::Result<Vec<LoadMode>> {
    let usage =
        || anyhow::anyhow!("invalid --sweep {text:?}: use rate:5,10,20 or concurrency:1,4,16");
    let (kind, values) = text.split_once(':').ok_or_else(usage)?;
    values
        .split(',')
        .map(|v| {
            let v = v.trim();
            match kind {
                "rate" => match v.parse::<f64>() {
                    Ok(rate) if rate > 0.0 && rate.is_finite() => {
                        Ok(LoadMode::Open { rate, arrival })
                    }
                    _ => Err(usage()),
                },
                "concurrency" => match v.parse::<usize>() {
                    Ok(n) if n > 0 => Ok(LoadMode::Closed { concurrency: n }),
                    _ => Err(usage()),
                },
                _ => Err(usage()),
            }
        })
        .collect()
}

/// Requests a step should send for its throughput to say something.
const ENOUGH_REQUESTS: f64 = 30.0;

/// A warning when a step is too short for its rate: fewer than [`ENOUGH_REQUESTS`] planned.
fn too_short(load: LoadMode, base: &BenchOptions) -> Option<String> {
    let LoadMode::Open { rate, .. } = load else {
        return None;
    };
    let planned = match (base.duration, base.requests) {
        (_, Some(n)) => n as f64,
        (Some(d), None) => (rate * d.as_secs_f64()).floor(),
        (None, None) => return None,
    };
    (planned < ENOUGH_REQUESTS).then(|| {
        format!(
            "warning: rate {rate}/s sends only {planned} requests per step: too few for its \
             throughput to mean much; give --duration or --requests for {ENOUGH_REQUESTS} or more"
        )
    })
}

/// Failed requests in a report, all classes together.
fn failed_requests(report: &serde_json::Value) -> u64 {
    report["requests"]["errors"].as_object().map_or(0, |e| {
        e.values().filter_map(serde_json::Value::as_u64).sum()
    })
}

/// Why a step counts as saturated. Open loop: fewer than 90 % of the requests sent
/// completed, or answers completed at under 90 % of the pace they were sent at (a server
/// past its capacity completes at its own pace while its queue grows). Closed loop:
/// throughput grew by under 10 % over the last step's although concurrency grew. Either:
/// more than 5 % errors, or a percentile objective missed.
fn saturated(report: &serde_json::Value, load: LoadMode, previous: Option<f64>) -> Option<String> {
    let sent = report["requests"]["measured"].as_f64().unwrap_or(0.0);
    let completed = report["requests"]["completed"].as_f64().unwrap_or(0.0);
    let failed = failed_requests(report) as f64;
    if sent > 0.0 && failed / sent > 0.05 {
        return Some(format!("{:.1} % of requests failed", failed / sent * 100.0));
    }
    match load {
        LoadMode::Open { .. } => {
            if completed < 0.9 * sent {
                return Some(format!(
                    "only {completed} of {sent} requests sent completed"
                ));
            }
            let rate = &report["rate"];
            if let (Some(sending), Some(completing)) = (
                rate["achieved_per_second"].as_f64(),
                rate["completed_per_second"].as_f64(),
            ) && completing < 0.9 * sending
            {
                return Some(format!(
                    "answers completed at {completing:.2} req/s while requests were sent at {sending:.2}/s"
                ));
            }
        }
        LoadMode::Closed { .. } => {
            let done = report["throughput"]["requests_per_second"]
                .as_f64()
                .unwrap_or(0.0);
            if let Some(before) = previous
                && done < 1.1 * before
            {
                return Some(format!(
                    "throughput {done:.2} req/s, not above the last step's {before:.2}"
                ));
            }
        }
    }
    let missed = report["slo"]["objectives"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["met"] == serde_json::Value::Bool(false))?;
    Some(format!(
        "{} p{} over its objective",
        missed["measure"], missed["quantile"]
    ))
}

/// Runs one step per level, printing a line each, until a step saturates the server.
pub async fn sweep(
    base: BenchOptions,
    levels: Vec<LoadMode>,
    args: &BenchCli,
) -> anyhow::Result<()> {
    let mut steps = Vec::new();
    let mut saturated_at = None;
    writeln!(
        std::io::stdout(),
        "{:<18} {:>10} {:>14} {:>12} {:>12} {:>8}",
        "load",
        "req/s",
        "output tok/s",
        "TTFT p99 ms",
        "ITL p99 ms",
        "errors"
    )?;
    let mut previous = None;
    let mut failed_fast = None;
    for load in levels {
        if let Some(warning) = too_short(load, &base) {
            writeln!(std::io::stderr(), "{warning}")?;
        }
        let outcome = crate::bench::run(BenchOptions {
            load,
            ..base.clone()
        })
        .await?;
        let r = &outcome.report;
        let label = match load {
            LoadMode::Open { rate, .. } => format!("rate {rate}/s"),
            LoadMode::Closed { concurrency } => format!("concurrency {concurrency}"),
        };
        let ms = |family: &str| {
            r["latency_seconds"][family]["p99"]
                .as_f64()
                .map_or(f64::NAN, |v| v * 1e3)
        };
        let errors = failed_requests(r);
        writeln!(
            std::io::stdout(),
            "{label:<18} {:>10.2} {:>14.1} {:>12.2} {:>12.2} {errors:>8}",
            r["throughput"]["requests_per_second"]
                .as_f64()
                .unwrap_or(0.0),
            r["throughput"]["output_tokens_per_second"]
                .as_f64()
                .unwrap_or(0.0),
            ms("ttft_intended"),
            ms("itl_token"),
        )?;
        let why = saturated(r, load, previous);
        previous = r["throughput"]["requests_per_second"].as_f64();
        let mut step = r.clone();
        step["load"] = serde_json::json!(label);
        steps.push((load, step));
        if let Some(why) = &outcome.failed_fast {
            failed_fast = Some(format!("{label}: {why}"));
            break;
        }
        if let Some(why) = why {
            writeln!(std::io::stdout(), "saturated at {label}: {why}")?;
            saturated_at = Some(serde_json::json!({ "load": label, "why": why }));
            break;
        }
        if outcome.interrupted {
            break;
        }
    }
    if let Some(path) = &args.html {
        let axis = steps.first().map_or("load", |(load, _)| offered(*load).1);
        let points: Vec<Step<'_>> = steps
            .iter()
            .map(|(load, report)| Step {
                offered: offered(*load).0,
                report,
            })
            .collect();
        let title = format!("llmwatch bench {} (sweep)", args.url);
        write_file(path, &html::render(&title, axis, &points, None))?;
    }
    if let Some(path) = &args.json {
        let steps: Vec<&serde_json::Value> = steps.iter().map(|(_, r)| r).collect();
        let doc = serde_json::json!({
            "steps": steps,
            "saturated": saturated_at,
            "stopped_early": failed_fast,
        });
        write_file(path, &serde_json::to_string_pretty(&doc)?)?;
    }
    match failed_fast {
        Some(why) => anyhow::bail!("stopped early at {why} (--fail-fast 0 runs on regardless)"),
        None => Ok(()),
    }
}
