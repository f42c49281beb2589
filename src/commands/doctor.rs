//! `llmwatch doctor`: reads a running `up`, or scrapes engines itself for a while, prints the
//! findings, returns the exit code.

use std::io::Write;

use crate::cli::DoctorCli;
use crate::doctor::{
    DoctorError, Prometheus, Thresholds, diagnose, from_up, gpus_of_up, live_targets,
    renamed_findings,
};
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
    // Read first: a bad file stops doctor before it scrapes for a minute.
    let selections = match crate::lint::read(&args.rules).and_then(|i| crate::lint::selections(&i))
    {
        Ok(selections) => selections,
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
    let gathered = runtime.block_on(async {
        if let Some(url) = &args.prometheus {
            let prometheus = Prometheus::new(url, window, args.bearer_token.as_deref())?;
            let evidence = prometheus.evidence().await?;
            let live = if selections.is_empty() {
                Vec::new()
            } else {
                prometheus.live_targets().await?
            };
            let gpus = prometheus.gpu_findings().await?;
            return Ok((evidence, live, gpus));
        }
        let (base, token) = if args.targets.is_empty() {
            (args.url.clone(), args.bearer_token.as_deref())
        } else {
            (scrape_for(args).await?, None)
        };
        let evidence = from_up(&base, window, token).await?;
        let live = if selections.is_empty() {
            Vec::new()
        } else {
            live_targets(&base, token).await
        };
        let gpus = gpus_of_up(&base, token).await;
        Ok::<_, DoctorError>((evidence, live, gpus))
    });
    let (evidence, live, gpus) = match gathered {
        Ok(gathered) => gathered,
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
    let mut found = diagnose(&evidence, &thresholds);
    found.extend(renamed_findings(&selections, &live));
    found.extend(gpus);
    let found = findings::sorted(found);
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
/// (on a loopback port of its own, alive as long as the runtime); returns its base URL, to be
/// read as `--url` would.
async fn scrape_for(args: &DoctorCli) -> Result<String, DoctorError> {
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
    Ok(format!("http://{}", running.addr))
}
