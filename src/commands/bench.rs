//! `llmwatch bench`: turns the flags into a run, and the run into a table, JSON and CSV.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use crate::bench::report::Slo;
use crate::bench::workload::Workload;
use crate::bench::{Api, BenchOptions, LoadMode, Outcome};
use crate::cli::BenchCli;

/// The run the flags describe: `--rate` (open loop) or `--concurrency` (closed loop, 1 by
/// default), bounded by `--duration` and/or `--requests` (30 s when neither is given).
pub fn options(args: &BenchCli) -> anyhow::Result<BenchOptions> {
    let load = match (args.rate, args.concurrency) {
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
        (None, None) => Some(std::time::Duration::from_secs(30)),
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
    })
}

/// Prints the summary table and writes the JSON report and the per-request CSV.
pub fn write_outputs(
    outcome: &Outcome,
    json: Option<&Path>,
    csv: Option<&Path>,
) -> anyhow::Result<()> {
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
    Ok(())
}
