//! The catalogue's panels (`crate::catalog::panels`, the list the built-in dashboard draws)
//! compiled to Grafana panels over the `llm:` schema: each line's measure becomes one PromQL
//! query, aggregated by the labels the dashboard groups on. A user who moves from the
//! built-in dashboard to Grafana sees the same panels with the same meaning.

use super::alerts::{GPU, as_server, on_servers_matching};
use super::grafana::Panel;
use super::schema::schema_name;
use crate::catalog::gpu_panels::{GpuMeasure, GpuPanel};
use crate::catalog::panels::{Measure, Outcomes, Panel as Catalogued};

const RATE: &str = "[$__rate_interval]";

/// The selector of `signal`'s `llm:` series (`suffix` e.g. `_bucket`), filtered by `filter`
/// and, for a counter of some outcomes only, by outcome.
fn selector(signal: &str, suffix: &str, filter: &str, outcomes: Outcomes) -> String {
    let name = schema_name(signal);
    match outcomes {
        Outcomes::All => format!("{name}{suffix}{{{filter}}}"),
        Outcomes::Only(list) => {
            format!(
                "{name}{suffix}{{{filter}, outcome=~\"{}\"}}",
                list.join("|")
            )
        }
    }
}

fn summed_rate(signal: &str, filter: &str, outcomes: Outcomes, by: &str) -> String {
    format!(
        "sum by ({by}) (rate({}{RATE}))",
        selector(signal, "", filter, outcomes)
    )
}

/// One measure as PromQL, grouped by `by`.
pub fn promql(measure: Measure, filter: &str, by: &str) -> String {
    match measure {
        Measure::Rate(signal, outcomes) => summed_rate(signal, filter, outcomes, by),
        Measure::RateByOutcome(signal) => {
            summed_rate(signal, filter, Outcomes::All, &format!("{by}, outcome"))
        }
        Measure::Ratio(signal, part, whole) => {
            let part = summed_rate(signal, filter, part, by);
            let whole = summed_rate(signal, filter, whole, by);
            // No failed series yet is no failure, once something finished.
            format!("({part} or {whole} * 0) / ({whole} > 0)")
        }
        Measure::Gauge(signal) => format!(
            "{} by ({by}) ({})",
            measure.aggregation().promql(),
            selector(signal, "", filter, Outcomes::All)
        ),
        Measure::Quantile(signal, q) => format!(
            "histogram_quantile({q}, sum by ({by}, le) (rate({}{RATE})))",
            selector(signal, "_bucket", filter, Outcomes::All)
        ),
    }
}

/// `panel` as a Grafana panel, its series filtered by `filter` and grouped by `by` (labels
/// separated by `, `).
pub fn compile(panel: &Catalogued, filter: &str, by: &str) -> Panel {
    let legend: Vec<String> = by.split(", ").map(|l| format!("{{{{{l}}}}}")).collect();
    let legend = legend.join(" ");
    let queries = panel
        .lines
        .iter()
        .map(|line| {
            let suffix = match line.measure {
                Measure::RateByOutcome(_) => " {{outcome}}".to_string(),
                _ if panel.lines.len() > 1 || matches!(line.measure, Measure::Quantile(..)) => {
                    format!(" {}", line.label)
                }
                _ => String::new(),
            };
            (
                promql(line.measure, filter, by),
                format!("{legend}{suffix}"),
            )
        })
        .collect();
    Panel {
        title: panel.title,
        unit: panel.unit.grafana(),
        description: panel.help,
        queries,
    }
}

/// A GPU panel as a Grafana panel: per GPU (`{{instance}} GPU {{gpu}}`), or per model server
/// selected by the `instance` variable.
pub fn compile_gpu(panel: &GpuPanel) -> Panel {
    let queries = panel
        .lines
        .iter()
        .map(|line| {
            let (expr, legend) = gpu_promql(line.measure);
            let legend = match line.label {
                "" => legend.to_string(),
                label => format!("{legend} {label}"),
            };
            (expr, legend)
        })
        .collect();
    Panel {
        title: panel.title,
        unit: panel.unit.grafana(),
        description: panel.help,
        queries,
    }
}

/// One GPU measure as PromQL, and its legend.
fn gpu_promql(measure: GpuMeasure) -> (String, &'static str) {
    let per_gpu = "{{instance}} GPU {{gpu}}";
    let servers = "server=~\"$instance\"";
    let by = GPU;
    match measure {
        GpuMeasure::Gauge(s) => (format!("max by ({by}) ({})", schema_name(s)), per_gpu),
        GpuMeasure::Share(a, b) => (
            format!(
                "max by ({by}) ({}) / max by ({by}) ({})",
                schema_name(a),
                schema_name(b)
            ),
            per_gpu,
        ),
        GpuMeasure::Rate(s) => (
            format!("sum by ({by}, reason) (rate({}{RATE}))", schema_name(s)),
            "{{instance}} GPU {{gpu}} {{reason}}",
        ),
        GpuMeasure::HourlyIncrease(s) => (
            format!("sum by ({by}) (increase({}[1h]))", schema_name(s)),
            per_gpu,
        ),
        GpuMeasure::ServerShare(a, b) => {
            let share = format!("{} / {}", schema_name(a), schema_name(b));
            let joined = on_servers_matching(&share, servers);
            (format!("max by (server) ({joined})"), "{{server}}")
        }
        GpuMeasure::ServerGauge(s) => {
            let joined = on_servers_matching(&schema_name(s), servers);
            (format!("max by (server) ({joined})"), "{{server}}")
        }
        GpuMeasure::Server(s) => (
            as_server(&format!(
                "max by (instance) ({}{{instance=~\"$instance\"}})",
                schema_name(s)
            )),
            "{{server}}",
        ),
        GpuMeasure::ProcessRate(s) => (
            format!(
                "sum by (instance) (rate({}{{instance=~\"$instance\"}}{RATE}))",
                schema_name(s)
            ),
            "{{instance}}",
        ),
        GpuMeasure::Process(s) => (
            format!(
                "sum by (instance) ({}{{instance=~\"$instance\"}})",
                schema_name(s)
            ),
            "{{instance}}",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::panels::DETAIL;

    fn panel(id: &str) -> Panel {
        let p = DETAIL.iter().find(|p| p.id == id).unwrap();
        compile(p, "service=~\"$service\"", "service, model")
    }

    #[test]
    fn each_kind_of_measure_compiles_to_the_promql_it_means() {
        let ttft = panel("ttft");
        assert_eq!(ttft.unit, "s");
        assert_eq!(
            ttft.queries[2],
            (
                "histogram_quantile(0.99, sum by (service, model, le) (rate(llm:time_to_first_token_seconds_bucket{service=~\"$service\"}[$__rate_interval])))".to_string(),
                "{{service}} {{model}} p99".to_string()
            )
        );
        let errors = &panel("errors").queries[0].0;
        assert!(
            errors.contains("outcome=~\"error_server|rejected_overload\""),
            "{errors}"
        );
        assert!(errors.ends_with("> 0)"), "{errors}");
        let outcomes = &panel("outcomes").queries[0];
        assert!(
            outcomes
                .0
                .starts_with("sum by (service, model, outcome) (rate(llm:requests_finished_total{"),
            "{outcomes:?}"
        );
        assert!(outcomes.1.ends_with("{{outcome}}"));
        let cache = panel("cache");
        assert!(
            cache.queries[0]
                .0
                .starts_with("max by (service, model) (llm:kv_cache_usage_ratio{"),
            "{:?}",
            cache.queries
        );
        let load = panel("load");
        assert!(
            load.queries[1]
                .0
                .starts_with("sum by (service, model) (llm:requests_waiting{")
        );
        assert_eq!(load.queries[1].1, "{{service}} {{model}} waiting");
    }

    #[test]
    fn gpu_panels_join_each_gpu_to_the_servers_it_serves() {
        use crate::catalog::gpu_panels::GPU_PANELS;
        let memory = compile_gpu(&GPU_PANELS[0]);
        assert_eq!(memory.unit, "percentunit");
        let (gpu, legend) = &memory.queries[0];
        assert!(
            gpu.starts_with("max by (server) (max by (instance, gpu, gpu_instance, server) (llm:gpu_server_info{server=~\"$instance\"} * on (instance, gpu, gpu_instance) group_left () (llm:gpu_memory_used_bytes / llm:gpu_memory_total_bytes)))"),
            "{gpu}"
        );
        assert_eq!(legend, "{{server}} GPU memory");
        assert_eq!(
            memory.queries[1].0,
            "label_replace(max by (instance) (llm:kv_cache_usage_ratio{instance=~\"$instance\"}), \"server\", \"$1\", \"instance\", \"(.*)\")"
        );
        let throttled = GPU_PANELS.iter().find(|p| p.id == "throttled").unwrap();
        let (expr, legend) = &compile_gpu(throttled).queries[0];
        assert_eq!(
            expr,
            "sum by (instance, gpu, gpu_instance, reason) (rate(llm:gpu_throttled_seconds_total[$__rate_interval]))"
        );
        assert_eq!(legend, "{{instance}} GPU {{gpu}} {{reason}}");
    }
}
