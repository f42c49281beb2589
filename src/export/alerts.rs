//! The alert rules. Every alert reads `llm:` series (or Prometheus's and llmwatch's own scrape
//! health), carries a severity, a summary, a description with the value, and a runbook link
//! whose anchor is the alert's name in lower case (a heading in docs/runbook.md).

use super::rules::{BY, Group, Rule, SLO_WINDOWS, Slo};

/// Jobs of the generated scrape configuration.
pub const JOBS: &str = "llmwatch|vllm|tgi|llamacpp|sglang";
/// The jobs that scrape engines directly.
const ENGINE_JOBS: &str = "vllm|tgi|llamacpp|sglang";

/// Everything an alert says, before it becomes a rule.
struct Spec {
    name: &'static str,
    expr: String,
    for_: &'static str,
    severity: &'static str,
    summary: &'static str,
    description: String,
}

/// The alert group; runbook links start with `runbook_base`.
pub fn alert_group(slo: &Slo, runbook_base: &str) -> Group {
    let rules = specs(slo)
        .into_iter()
        .map(|spec| {
            Rule::alert(spec.name, &spec.expr, spec.for_)
                .label("severity", spec.severity)
                .annotation("summary", spec.summary)
                .annotation("description", &spec.description)
                .annotation(
                    "runbook_url",
                    &format!("{runbook_base}#{}", spec.name.to_lowercase()),
                )
        })
        .collect();
    Group::new("llm-alerts", rules)
}

/// The names of every alert, in file order.
pub fn alert_names() -> Vec<&'static str> {
    specs(&Slo::default()).iter().map(|s| s.name).collect()
}

const WHERE: &str = "{{ $labels.service }} {{ $labels.engine }} {{ $labels.model }}";

fn specs(slo: &Slo) -> Vec<Spec> {
    let mut specs = vec![
        Spec {
            name: "LLMTargetDown",
            expr: format!("up{{job=~\"{JOBS}\"}} == 0 or llmwatch_target_up == 0"),
            for_: "2m",
            severity: "critical",
            summary: "An inference server's metrics cannot be scraped",
            description: "{{ $labels.job }} target {{ $labels.instance }} has failed every scrape for 2 minutes (up = {{ $value }}).".into(),
        },
        Spec {
            name: "LLMExpectedMetricsAbsent",
            expr: format!(
                "(up{{job=~\"{ENGINE_JOBS}\"}} == 1 unless on (job, instance) (llm:requests_running and on (job, instance) llm:generation_tokens_total)) \
                 or (llmwatch_target_up == 1 unless on (instance) (llm:requests_running and on (instance) llm:generation_tokens_total))"
            ),
            for_: "10m",
            severity: "warning",
            summary: "An engine is scraped but its core metrics are missing",
            description: "{{ $labels.instance }} answers scrapes but llm:requests_running or llm:generation_tokens_total is absent: an engine upgrade may have renamed its metrics, or metrics are disabled (up = {{ $value }}).".into(),
        },
        Spec {
            name: "LLMHighErrorRatio",
            expr: "llm:request_errors:ratio_rate5m > 0.05".into(),
            for_: "5m",
            severity: "warning",
            summary: "More than 5% of requests fail",
            description: format!("{WHERE}: {{{{ $value | humanizePercentage }}}} of requests failed on the server or were rejected for overload over 5 minutes."),
        },
    ];
    let error_budget = 1.0 - slo.availability;
    let ttft_budget = 1.0 - slo.ttft_objective;
    for (name, series, budget, severity, summary) in [
        (
            "LLMErrorBudgetBurnFast",
            "llm:request_errors:ratio_rate",
            error_budget,
            "critical",
            "The availability error budget burns 14.4 times too fast",
        ),
        (
            "LLMTTFTBudgetBurnFast",
            "llm:time_to_first_token_seconds:slow_ratio_rate",
            ttft_budget,
            "critical",
            "The time-to-first-token budget burns 14.4 times too fast",
        ),
    ] {
        specs.push(burn(
            name,
            series,
            budget,
            14.4,
            [SLO_WINDOWS[2], SLO_WINDOWS[0]],
            "2m",
            severity,
            summary,
        ));
    }
    for (name, series, budget, summary) in [
        (
            "LLMErrorBudgetBurnSlow",
            "llm:request_errors:ratio_rate",
            error_budget,
            "The availability error budget burns 6 times too fast",
        ),
        (
            "LLMTTFTBudgetBurnSlow",
            "llm:time_to_first_token_seconds:slow_ratio_rate",
            ttft_budget,
            "The time-to-first-token budget burns 6 times too fast",
        ),
    ] {
        specs.push(burn(
            name,
            series,
            budget,
            6.0,
            [SLO_WINDOWS[3], SLO_WINDOWS[1]],
            "15m",
            "warning",
            summary,
        ));
    }
    specs.extend([
        Spec {
            name: "LLMTTFTP99High",
            expr: "llm:time_to_first_token_seconds:p99_rate5m > 2".into(),
            for_: "10m",
            severity: "warning",
            summary: "p99 time to first token above 2 s",
            description: format!("{WHERE}: p99 TTFT is {{{{ $value | humanizeDuration }}}} over 5 minutes."),
        },
        Spec {
            name: "LLMQueueTimeP99High",
            expr: "llm:request_queue_seconds:p99_rate5m > 1".into(),
            for_: "10m",
            severity: "warning",
            summary: "p99 queue time above 1 s",
            description: format!("{WHERE}: p99 time waiting to be scheduled is {{{{ $value | humanizeDuration }}}} over 5 minutes."),
        },
        Spec {
            name: "LLMQueueBacklogGrowing",
            expr: "llm:requests_waiting > 10 and deriv(llm:requests_waiting[10m]) > 0".into(),
            for_: "10m",
            severity: "warning",
            summary: "The request queue keeps growing",
            description: "{{ $labels.instance }}: {{ $value }} requests waiting and the queue has grown for 10 minutes: arrivals exceed capacity.".into(),
        },
        Spec {
            name: "LLMKVCacheNearlyFull",
            expr: "llm:kv_cache_usage_ratio > 0.9".into(),
            for_: "15m",
            severity: "warning",
            summary: "KV cache above 90% for 15 minutes",
            description: "{{ $labels.instance }}: KV cache {{ $value | humanizePercentage }} full; expect preemptions and queueing.".into(),
        },
        Spec {
            name: "LLMPreemptionsRising",
            expr: "rate(llm:preemptions_total[5m]) > 0".into(),
            for_: "10m",
            severity: "warning",
            summary: "Requests are being preempted",
            description: "{{ $labels.instance }}: {{ $value | humanize }} preemptions/s for 10 minutes: the KV cache cannot hold the batch.".into(),
        },
        Spec {
            name: "LLMThroughputCollapse",
            expr: format!(
                "llm:generation_tokens:rate5m <= 0.2 * llm:generation_tokens:rate1h and sum by ({BY}, instance) (llm:requests_waiting) > 0"
            ),
            for_: "5m",
            severity: "critical",
            summary: "Token throughput collapsed while requests wait",
            description: "{{ $labels.instance }}: {{ $value | humanize }} generated tokens/s, under a fifth of the last hour's rate, with requests waiting.".into(),
        },
        Spec {
            name: "LLMScrapeSamplesExploding",
            expr: format!(
                "(scrape_samples_scraped{{job=~\"{JOBS}\"}} > 2 * quantile_over_time(0.5, scrape_samples_scraped{{job=~\"{JOBS}\"}}[6h])) \
                 or (llmwatch_scrape_samples > 2 * quantile_over_time(0.5, llmwatch_scrape_samples[6h]))"
            ),
            for_: "15m",
            severity: "warning",
            summary: "A target's sample count more than doubled",
            description: "{{ $labels.instance }} now exposes {{ $value }} samples, over twice its 6-hour median: a label's cardinality is exploding.".into(),
        },
    ]);
    specs
}

#[allow(clippy::too_many_arguments)]
fn burn(
    name: &'static str,
    series: &str,
    budget: f64,
    factor: f64,
    windows: [&str; 2],
    for_: &'static str,
    severity: &'static str,
    summary: &'static str,
) -> Spec {
    let threshold = factor * budget;
    let [long, short] = windows;
    Spec {
        name,
        expr: format!("{series}{long} > {threshold:.4} and {series}{short} > {threshold:.4}"),
        for_,
        severity,
        summary,
        description: format!(
            "{WHERE}: {{{{ $value | humanizePercentage }}}} of requests missed the objective over {long} (and over {short}); at {factor}x the budget of {:.1}% lasts {:.1} days of a 30-day window.",
            budget * 100.0,
            30.0 / factor
        ),
    }
}
