//! `llmwatch export`: the command-line options become [`ExportOptions`]; the files are written.

use crate::cli::ExportCli;
use crate::export::rules::Slo;
use crate::export::{ExportError, ExportOptions, ExportTarget};

/// The options `args` describe.
pub fn options(args: &ExportCli) -> Result<ExportOptions, ExportError> {
    let targets = args
        .targets
        .iter()
        .map(|t| ExportTarget::parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    for (name, value) in [
        ("--availability-objective", args.availability_objective),
        ("--ttft-objective", args.ttft_objective),
    ] {
        if !(value > 0.0 && value < 1.0) {
            return Err(ExportError::Option {
                option: name,
                reason: format!("{value} is not between 0 and 1, e.g. 0.99"),
            });
        }
    }
    if !(args.ttft_threshold.is_finite() && args.ttft_threshold > 0.0) {
        return Err(ExportError::Option {
            option: "--ttft-threshold",
            reason: format!(
                "{} is not a positive number of seconds",
                args.ttft_threshold
            ),
        });
    }
    Ok(ExportOptions {
        targets,
        llmwatch_address: args.llmwatch.clone(),
        alertmanager_address: args.alertmanager.clone(),
        prometheus_url: args.prometheus_url.clone(),
        scrape_interval: args.scrape_interval.clone(),
        runbook_base: args.runbook_base.clone(),
        proxy_upstream: args.proxy_upstream.clone(),
        webhook_url: args.webhook_url.clone(),
        namespace: args.namespace.clone(),
        image: args.image.clone(),
        slo: Slo {
            availability: args.availability_objective,
            ttft_objective: args.ttft_objective,
            ttft_seconds: args.ttft_threshold,
        },
    })
}

/// Writes every file; returns one line per file written, relative to `--out`.
pub fn run(args: &ExportCli) -> Result<Vec<String>, ExportError> {
    let options = options(args)?;
    let written = crate::export::write(&options, &args.out)?;
    Ok(written
        .iter()
        .map(|p| p.strip_prefix(&args.out).unwrap_or(p).display().to_string())
        .collect())
}
