//! `llmwatch up`: the collector, on given targets or on engines found on their usual ports.

use std::fmt::Write as _;
use std::io::Write as _;

use crate::up::{self, Sources};

/// Runs the collector until Ctrl-C. With no target anywhere, looks for engines on their
/// well-known local ports first and says what it found.
pub async fn run(sources: Sources) -> anyhow::Result<()> {
    let config = sources.config()?;
    let mut targets = sources.targets(&config)?;
    let mut out = String::new();
    if targets.is_empty() && config.file_sd.is_empty() {
        let found = discover().await;
        if found.is_empty() {
            writeln!(
                out,
                "llmwatch up: no target given and no engine on the well-known local ports (vLLM 8000, TGI 3000/8080, llama.cpp 8080, SGLang 30000); pass --target URL"
            )?;
        }
        for (engine, url) in found {
            writeln!(out, "llmwatch up: found {engine} at {url}")?;
            targets.push(crate::collect::targets::Target::from_arg(
                &url,
                &config.scrape,
            )?);
        }
    }
    let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
    let running = up::start(sources, config, targets).await?;
    writeln!(
        out,
        "llmwatch up: serving http://{addr}/metrics, http://{addr}/api/v1/snapshot ({} targets: {})",
        names.len(),
        names.join(", "),
        addr = running.addr
    )?;
    if let Some(proxy) = running.proxy_addr {
        writeln!(
            out,
            "llmwatch up: proxy serving http://{proxy}/v1 (its client-side series join /metrics)"
        )?;
    }
    print_banner(&out);
    tokio::signal::ctrl_c().await?;
    Ok(())
}

/// Prints what the command started. A closed standard output (say, piped into `head`) must not
/// stop the collector, so write errors are ignored here.
pub fn print_banner(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// Engines answering on their well-known local ports: `(engine, metrics URL)`. Each port is
/// scraped as `llmwatch scrape` would, leniently and without asking the info endpoint.
async fn discover() -> Vec<(crate::engines::Engine, String)> {
    let mut found = Vec::new();
    for port in crate::collect::targets::WELL_KNOWN_PORTS {
        let args = crate::commands::scrape::ScrapeArgs {
            target: format!("http://127.0.0.1:{port}/metrics"),
            fetch: crate::collect::fetch::FetchOptions {
                timeout: std::time::Duration::from_millis(500),
                max_body_bytes: 16 << 20,
                bearer_token: None,
            },
            lenient: true,
            model: None,
            probe_version: false,
        };
        if let Ok(analysis) = crate::commands::scrape::scrape(&args).await
            && let Some(engine) = analysis.engine()
        {
            found.push((engine, args.target));
        }
    }
    found
}
