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
        engine_metrics: args.engine_metrics,
        threads: args.threads.map(usize::from),
        trace,
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
    Ok(())
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

/// The load levels of `--sweep rate:A,B,…` or `concurrency:A,B,…`; rates keep the arrival
/// process of `base`.
pub fn parse_sweep(text: &str, base: LoadMode) -> anyhow::Result<Vec<LoadMode>> {
    let usage =
        || anyhow::anyhow!("invalid --sweep {text:?}: use rate:5,10,20 or concurrency:1,4,16");
    let (kind, values) = text.split_once(':').ok_or_else(usage)?;
    let arrival = match base {
        LoadMode::Open { arrival, .. } => arrival,
        LoadMode::Closed { .. } => crate::bench::schedule::Arrival::Poisson,
    };
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

/// Failed requests in a report, all classes together.
fn failed_requests(report: &serde_json::Value) -> u64 {
    report["requests"]["errors"].as_object().map_or(0, |e| {
        e.values().filter_map(serde_json::Value::as_u64).sum()
    })
}

/// Why a step counts as saturated: open-loop throughput under 90 % of the offered rate,
/// more than 5 % errors, or a percentile objective missed.
fn saturated(report: &serde_json::Value, load: LoadMode) -> Option<String> {
    let done = report["throughput"]["requests_per_second"]
        .as_f64()
        .unwrap_or(0.0);
    if let LoadMode::Open { rate, .. } = load
        && done < 0.9 * rate
    {
        return Some(format!("completed {done:.2} req/s of {rate} offered"));
    }
    let measured = report["requests"]["measured"].as_f64().unwrap_or(0.0);
    let failed = failed_requests(report) as f64;
    if measured > 0.0 && failed / measured > 0.05 {
        return Some(format!(
            "{:.1} % of requests failed",
            failed / measured * 100.0
        ));
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
    for load in levels {
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
        let why = saturated(r, load);
        let mut step = r.clone();
        step["load"] = serde_json::json!(label);
        steps.push((load, step));
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
        let doc = serde_json::json!({ "steps": steps, "saturated": saturated_at });
        write_file(path, &serde_json::to_string_pretty(&doc)?)?;
    }
    Ok(())
}
