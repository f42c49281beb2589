//! `llmwatch doctor`: reads a running `up`, prints the findings, returns the exit code.

use std::io::Write;

use crate::cli::DoctorCli;
use crate::doctor::{Thresholds, diagnose, from_up};
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
    let gathered = runtime.block_on(from_up(
        &args.url,
        args.window,
        args.bearer_token.as_deref(),
    ));
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
        min_history_seconds: 0.8 * args.window.as_secs_f64().min(60.0),
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
