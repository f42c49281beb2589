//! `llmwatch proxy`: serve the measuring proxy until Ctrl-C.

use std::io::Write;
use std::sync::Arc;

use crate::cli::ProxyCli;
use crate::proxy::{Proxy, ProxyOptions, serve};

/// The proxy's settings from its flags.
pub fn options(args: &ProxyCli) -> ProxyOptions {
    ProxyOptions {
        max_body_bytes: args.max_body_bytes,
        connect_timeout: args.connect_timeout,
        first_byte_timeout: args.first_byte_timeout,
        idle_timeout: args.idle_timeout,
        total_timeout: args.total_timeout,
        inject_usage: !args.no_usage_injection,
        max_models: args.max_models,
        upstream_ca: args.upstream_ca.clone(),
    }
}

/// Runs the proxy.
pub async fn run(args: &ProxyCli) -> anyhow::Result<()> {
    let mut proxy = Proxy::new(&args.upstreams, options(args))?;
    let otlp = args
        .otlp
        .settings("llmwatch-proxy")
        .resolve(|name| std::env::var(name).ok())?
        // With one upstream, the client metrics' server is known.
        .map(|config| match proxy.single_upstream() {
            Some(base) => config.with_server(base),
            None => config,
        });
    let otlp_stats = otlp.as_ref().map(|_| proxy.register_otlp_stats());
    let mut exporters = tokio::task::JoinSet::new();
    if let (Some(traces), Some(stats)) = (
        otlp.as_ref().and_then(|c| c.traces.clone()),
        otlp_stats.clone(),
    ) {
        let _ = writeln!(
            std::io::stdout(),
            "llmwatch proxy: exporting a span per request to {} (new traces sampled at {})",
            traces.url,
            traces.sampler.ratio
        );
        let (tracer, exporter) = crate::otlp::trace::tracer(traces, stats);
        proxy.set_tracer(tracer);
        exporters.spawn(exporter);
    }
    let proxy = Arc::new(proxy);
    if let (Some(config), Some(stats)) = (otlp, otlp_stats) {
        let source = Arc::clone(&proxy);
        let _ = writeln!(
            std::io::stdout(),
            "llmwatch proxy: exporting metrics to {} every {:?}",
            config.metrics_url,
            config.interval
        );
        exporters.spawn(crate::otlp::push::run_metrics(
            config,
            Arc::new(move || source.render_metrics()),
            stats,
        ));
    }
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr()?;
    // A closed standard output must not stop the proxy.
    let _ = writeln!(
        std::io::stdout(),
        "llmwatch proxy: serving http://{addr}/v1 (metrics on http://{addr}/metrics)"
    );
    let _ = std::io::stdout().flush();
    serve(listener, proxy, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    exporters.abort_all();
    Ok(())
}
