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
