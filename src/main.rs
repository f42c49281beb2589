//! The `llmwatch` binary: parse arguments, run a command, print, map errors to exit codes
//! (0 success or broken pipe, 1 runtime error, 2 usage error or bad configuration).

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use llmwatch::cli::{Cli, Command};
use llmwatch::commands::{bench, render, scrape, sim, up};

// mimalloc rather than the system allocator: it takes memory from the kernel in large aligned
// regions and advises transparent huge pages for them, so a command that fills tens of
// megabytes at once, as `scrape` of a large body does, takes a few hundred page faults instead
// of ten thousand: a third less time for `scrape` of a 15 MB body (docs/benchmarks.md). Huge
// pages cost a process that runs for days resident memory, though (the proxy at 1,000 streams
// held 79 MB with them against 54 MB without), so the long-running commands turn them off
// for themselves first: see `long_running`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for this process (what it allocated before keeps its
/// pages): `up`, `proxy`, `sim`, `top` and `demo` keep the footprint of small pages. A
/// kernel without the setting leaves things as they were, which costs memory, not function.
fn long_running() {
    let _ = nix::sys::prctl::set_thp_disable(true);
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Lint has exit codes of its own (0 clean, 1 findings, 2 could not run).
    if let Command::Lint(args) = &cli.command {
        return ExitCode::from(llmwatch::commands::lint::run(args));
    }
    // So has doctor.
    if let Command::Doctor(args) = &cli.command {
        llmwatch::collect::fetch::install_tls_provider();
        return ExitCode::from(llmwatch::commands::doctor::run(args));
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) if is_bad_configuration(&err) => {
            let _ = writeln!(std::io::stderr(), "llmwatch: {err:#}");
            ExitCode::from(2)
        }
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "llmwatch: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if matches!(
        cli.command,
        Command::Up(_) | Command::Proxy(_) | Command::Sim(_) | Command::Top(_) | Command::Demo(_)
    ) {
        long_running();
    }
    llmwatch::collect::fetch::install_tls_provider();
    // The load generator (on its own, or as the demo's clients) wants every core; everything
    // else runs on one thread.
    let runtime = match cli.command {
        Command::Bench(_) | Command::Demo(_) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
    };
    match cli.command {
        Command::Scrape(args) => {
            let analysis = runtime.block_on(scrape::scrape(&args.args()))?;
            let mut stderr = std::io::stderr();
            if args.format != render::Format::Table {
                for warning in &analysis.warnings {
                    writeln!(stderr, "llmwatch: warning: {warning}")?;
                }
            }
            let mut stdout = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
            render::write_to(&analysis, args.format, &mut stdout)?;
            stdout.flush()?;
        }
        Command::Sim(args) => {
            let faults = args.faults.rates().map_err(anyhow::Error::msg)?;
            let scenario = args
                .scenario
                .as_deref()
                .map(sim::load_scenario)
                .transpose()?;
            let options = sim::SimOptions {
                engines: args.engines,
                host: args.host,
                profile: args.profile,
                faults,
                seed: args.seed,
                scenario,
                load: args.load.map(llmwatch::sim::load::Load::chat),
                api_key: args.api_key,
                llamacpp_metrics: !args.llamacpp_no_metrics,
                scheduling: if args.realtime {
                    llmwatch::sim::runtime::Scheduling::Realtime
                } else {
                    llmwatch::sim::runtime::Scheduling::Normal
                },
                tokenizer: match &args.tokenizer {
                    Some(path) => Some(std::sync::Arc::new(llmwatch::tokenize::Tokenizer::load(
                        path,
                    )?)),
                    None => None,
                },
            };
            runtime.block_on(sim::run(&options))?;
        }
        Command::Up(args) => {
            init_logging();
            let sources = llmwatch::up::Sources {
                config_path: args.config,
                target_args: args.targets,
                listen: args.listen,
                proxy_upstreams: args.proxy_upstreams,
                proxy_listen: args.proxy_listen,
                proxy_timeouts: llmwatch::config::ProxyTimeouts {
                    connect: args.proxy_connect_timeout,
                    first_byte: args.proxy_first_byte_timeout,
                    idle: args.proxy_idle_timeout,
                    total: args.proxy_total_timeout,
                },
            };
            runtime.block_on(up::run(sources))?;
        }
        Command::Proxy(args) => {
            init_logging();
            runtime.block_on(llmwatch::commands::proxy::run(&args))?;
        }
        Command::Top(args) => {
            runtime.block_on(llmwatch::ui::top::run(llmwatch::ui::top::TopOptions {
                url: args.url,
                targets: args.targets,
                bearer_token: args.bearer_token,
            }))?;
        }
        Command::Demo(args) => {
            init_logging();
            let ended = runtime.block_on(llmwatch::commands::demo::run(
                args.listen,
                args.incident_at,
                args.incident_every,
            ));
            // Its clients' requests still in flight and the engines' threads are not waited
            // for: Ctrl-C ends the demo now.
            runtime.shutdown_timeout(std::time::Duration::from_millis(100));
            ended?;
        }
        Command::Export(args) => {
            let written = llmwatch::commands::export::run(&args)?;
            let mut stdout = std::io::stdout().lock();
            for path in &written {
                writeln!(stdout, "{}", args.out.join(path).display())?;
            }
        }
        // Handled in `main`, before a runtime starts.
        Command::Lint(_) | Command::Doctor(_) => {}
        Command::Bench(args) => {
            let options = bench::options(&args)?;
            match args.sweep.as_deref() {
                Some(levels) => {
                    let levels = bench::parse_sweep(levels, args.arrival)?;
                    runtime.block_on(bench::sweep(options, levels, &args))?;
                }
                None => {
                    let outcome = runtime.block_on(llmwatch::bench::run(options))?;
                    bench::write_outputs(&outcome, &args)?;
                }
            }
        }
    }
    Ok(())
}

/// Logs to standard error; `LLMWATCH_LOG` filters (`info` by default, e.g. `debug`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LLMWATCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// A bad configuration file or target: exit code 2, like a usage error.
fn is_bad_configuration(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.is::<llmwatch::config::ConfigError>()
            || cause.is::<llmwatch::collect::targets::TargetError>()
            || matches!(
                cause.downcast_ref::<llmwatch::export::ExportError>(),
                Some(
                    llmwatch::export::ExportError::Target { .. }
                        | llmwatch::export::ExportError::Option { .. }
                )
            )
            || cause.is::<llmwatch::up::UpError>()
                && !matches!(
                    cause.downcast_ref::<llmwatch::up::UpError>(),
                    Some(llmwatch::up::UpError::Listen { .. })
                )
    })
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
