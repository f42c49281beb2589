//! `llmwatch doctor`: reads a running `up`, or scrapes engines itself for a while, prints the
//! findings, returns the exit code.

use std::io::Write;

use crate::cli::DoctorCli;
use crate::doctor::{DoctorError, Evidence, Thresholds, diagnose, from_up};
use crate::findings::{self, EXIT_COULD_NOT_RUN};

/// Runs doctor; the exit code (0 healthy, 1 findings at or above `--fail-on`, 2 could not
/// run).
pub fn run(args: &DoctorCli) -> u8 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "llmwatch doctor: {err}");
            return EXIT_COULD_NOT_RUN;
        }
    };
    let window = if args.targets.is_empty() {
        args.window
    } else {
        args.for_
    };
    let gathered = if args.targets.is_empty() {
        runtime.block_on(from_up(&args.url, window, args.bearer_token.as_deref()))
    } else {
        runtime.block_on(scrape_for(args))
    };
    let evidence = match gathered {
        Ok(evidence) => evidence,
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "llmwatch doctor: {err}");
            return EXIT_COULD_NOT_RUN;
        }
    };
    let thresholds = Thresholds {
        ttft_seconds: args.ttft_seconds,
        itl_seconds: args.itl_seconds,
        // Most of the window (up to a minute) covered: the first scrape in it comes up to an
        // interval after its start.
        min_history_seconds: 0.8 * window.as_secs_f64().min(60.0),
        ..Thresholds::default()
    };
    let found = findings::sorted(diagnose(&evidence, &thresholds));
    let targets: std::collections::BTreeSet<&str> =
        evidence.iter().map(|e| e.target.as_str()).collect();
    let checked = match targets.len() {
        1 => "1 target".to_string(),
        n => format!("{n} targets"),
    };
    super::report::print(&found, &checked, args.format);
    findings::exit_code(&found, args.fail_on)
}

/// Scrapes the engines named on the command line for `--for` with the collector `up` runs
/// (on a loopback port of its own), then reads it as `--url` would.
async fn scrape_for(args: &DoctorCli) -> Result<Vec<Evidence>, DoctorError> {
    let could_not = |reason: String| DoctorError::Unreachable {
        url: args.targets.join(" "),
        reason,
    };
    let sources = crate::up::Sources {
        target_args: args.targets.clone(),
        listen: Some("127.0.0.1:0".into()),
        ..crate::up::Sources::default()
    };
    let mut config = sources.config().map_err(|e| could_not(e.to_string()))?;
    config.scrape.interval = args.interval;
    config.alerting.enabled = false;
    let targets = sources
        .targets(&config)
        .map_err(|e| DoctorError::Targets(e.to_string()))?;
    let count = targets.len();
    let running = crate::up::start(sources, config, targets)
        .await
        .map_err(|e| could_not(e.to_string()))?;
    let _ = writeln!(
        std::io::stderr(),
        "llmwatch doctor: scraping {count} {} every {:?} for {:?}…",
        if count == 1 { "target" } else { "targets" },
        args.interval,
        args.for_
    );
    tokio::time::sleep(args.for_).await;
    from_up(&format!("http://{}", running.addr), args.for_, None).await
}
