//! The alert rules, compiled from the typed alerts of `crate::catalog::alerts` (which `up`
//! also evaluates). Every alert reads `llm:` series (or Prometheus's and llmwatch's own scrape
//! health), carries a severity, a summary, a description with the value, and a runbook link
//! whose anchor is the alert's name in lower case (a heading in docs/runbook.md).

use super::rules::{BY, Group, Rule, Slo};
use crate::catalog::alerts::{ALERTS, Alert, Condition, ENGINE_JOBS, JOBS, Quantity, Sli};

/// The alert group; runbook links start with `runbook_base`.
pub fn alert_group(slo: &Slo, runbook_base: &str) -> Group {
    let rules = ALERTS
        .iter()
        .map(|alert| {
            Rule::alert(alert.name, &promql(alert, slo), alert.for_)
                .label("severity", alert.severity.as_str())
                .annotation("summary", alert.summary)
                .annotation("description", &alert.description(slo))
                .annotation(
                    "runbook_url",
                    &format!("{runbook_base}#{}", alert.name.to_lowercase()),
                )
        })
        .collect();
    Group::new("llm-alerts", rules)
}

/// The names of every alert, in file order.
pub fn alert_names() -> Vec<&'static str> {
    ALERTS.iter().map(|a| a.name).collect()
}

/// The recorded series of an SLI's ratio (the window appended).
fn sli_series(sli: Sli) -> &'static str {
    match sli {
        Sli::Errors => "llm:request_errors:ratio_rate",
        Sli::SlowTtft => "llm:time_to_first_token_seconds:slow_ratio_rate",
    }
}

fn quantity(q: Quantity) -> String {
    match q {
        Quantity::ErrorRatio(window) => format!("llm:request_errors:ratio_rate{window}"),
        Quantity::Quantile(signal, quantile, window) => format!(
            "llm:{}:p{}_rate{window}",
            signal.trim_start_matches("llm_"),
            (quantile * 100.0).round()
        ),
        Quantity::Gauge(signal) => super::schema::schema_name(signal),
        Quantity::Average(signal, window) => format!(
            "avg_over_time({}[{window}])",
            super::schema::schema_name(signal)
        ),
        Quantity::Rate(signal, window) => {
            format!("rate({}[{window}])", super::schema::schema_name(signal))
        }
    }
}

/// The labels naming one GPU: the exporter (`instance`), its index and its MIG instance.
pub const GPU: &str = "instance, gpu, gpu_instance";

/// `expr` (one series per GPU) once per model server the GPU serves, with the server's
/// name in `server` (`llm:gpu_server_info` says which; a GPU may serve several).
fn on_servers(expr: &str) -> String {
    on_servers_matching(expr, "server!=\"\"")
}

/// [`on_servers`] for the servers `matcher` selects.
pub fn on_servers_matching(expr: &str, matcher: &str) -> String {
    format!(
        "max by ({GPU}, server) (llm:gpu_server_info{{{matcher}}} * on ({GPU}) group_left () ({expr}))"
    )
}

/// `expr`, a model server's series by `instance`, with the instance copied to `server` for
/// matching GPUs.
pub fn as_server(expr: &str) -> String {
    format!("label_replace({expr}, \"server\", \"$1\", \"instance\", \"(.*)\")")
}

/// An alert's condition as PromQL.
pub fn promql(alert: &Alert, slo: &Slo) -> String {
    match alert.condition {
        Condition::TargetDown => format!("up{{job=~\"{JOBS}\"}} == 0 or llmwatch_target_up == 0"),
        Condition::CoreSignalsAbsent => format!(
            "(up{{job=~\"{ENGINE_JOBS}\"}} == 1 unless on (job, instance) (llm:requests_running and on (job, instance) llm:generation_tokens_total)) \
             or (llmwatch_target_up == 1 unless on (instance) (llm:requests_running and on (instance) llm:generation_tokens_total))"
        ),
        Condition::Above(q, threshold) => format!("{} > {threshold}", quantity(q)),
        Condition::Burn {
            sli,
            factor,
            long,
            short,
        } => {
            let threshold = factor * slo.budget(sli);
            let series = sli_series(sli);
            format!("{series}{long} > {threshold:.4} and {series}{short} > {threshold:.4}")
        }
        Condition::BacklogGrowing { above, window } => {
            format!("llm:requests_waiting > {above} and deriv(llm:requests_waiting[{window}]) > 0")
        }
        Condition::ThroughputCollapse {
            fraction,
            short,
            long,
        } => format!(
            "llm:generation_tokens:rate{short} <= {fraction} * llm:generation_tokens:rate{long} and sum by ({BY}, instance) (llm:requests_waiting) > 0"
        ),
        Condition::GpuMemoryOutsideKv {
            memory_above,
            kv_below,
        } => format!(
            "{} > {memory_above} unless on (server) {}",
            on_servers("llm:gpu_memory_used_bytes / llm:gpu_memory_total_bytes"),
            as_server(&format!(
                "max by (instance) (llm:kv_cache_usage_ratio) >= {kv_below}"
            )),
        ),
        Condition::GpuThrottled { share, window } => format!(
            "sum by ({GPU}, gpu_model) (rate(llm:gpu_throttled_seconds_total{{reason=~\"power|thermal\"}}[{window}])) > {share}"
        ),
        Condition::GpuXid { window } => format!(
            "max by ({GPU}, gpu_model) (llm:gpu_last_xid) > 0 or max by ({GPU}, gpu_model) (increase(llm:gpu_xid_errors_total[{window}])) > 0"
        ),
        Condition::GpuIdleWhileWaiting { utilization_below } => format!(
            "{} < {utilization_below} and on (server) {}",
            on_servers("llm:gpu_utilization_ratio"),
            as_server("sum by (instance) (llm:requests_waiting) > 0"),
        ),
        Condition::SamplesExploding { factor, window } => format!(
            "(scrape_samples_scraped{{job=~\"{JOBS}\"}} > {factor} * quantile_over_time(0.5, scrape_samples_scraped{{job=~\"{JOBS}\"}}[{window}])) \
             or (llmwatch_scrape_samples > {factor} * quantile_over_time(0.5, llmwatch_scrape_samples[{window}]))"
        ),
    }
}
