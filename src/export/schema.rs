//! Recording rules that build the `llm:` schema inside Prometheus, generated from the signal
//! table: one group per engine from its raw series (rules-only mode, no llmwatch process),
//! and one group that copies llmwatch's own `llm_*` series. Alerts and dashboards read only
//! `llm:` series, so they work the same in both modes.
//!
//! The translation mirrors the Rust normaliser: renames become `new or old`, fan-out labels
//! are summed (or maxed) away per model, SGLang's tensor-parallel replicas other than rank 0
//! are dropped, the engine's model label becomes `model`, and outcome splits become one rule
//! per canonical outcome.

use crate::engines::recipe::{Agg, Expr, How, OutcomePart, Sel};
use crate::engines::{Engine, SIGNALS, Signal, SignalKind};

use super::rules::{Group, Rule};

/// Labels every `llm:` series keeps: where it came from and which model. Labels absent from a
/// series cost nothing in `by (…)`.
pub const KEEP: &str = "namespace, service, job, instance, model";

/// The `llm:` name of a canonical `llm_*` signal (`llm_requests_running` → `llm:requests_running`).
pub fn schema_name(signal: &str) -> String {
    format!("llm:{}", signal.trim_start_matches("llm_"))
}

/// The histogram series suffixes with the extra grouping label each needs.
const HISTOGRAM_PARTS: [(&str, &str); 3] = [("_bucket", ", le"), ("_sum", ""), ("_count", "")];

/// The rules that build the schema from `engine`'s raw series.
pub fn engine_group(engine: Engine) -> Group {
    let mut rules = Vec::new();
    for signal in SIGNALS {
        let expr = match signal.mapping(engine).how {
            How::Native(expr) | How::Derived(expr) => expr,
            How::Missing => continue,
        };
        rules.extend(signal_rules(engine, signal, &expr));
    }
    Group::new(&format!("llm-schema-{}", engine.as_str()), rules)
}

/// The rules that copy llmwatch's `llm_*` series to their `llm:` names.
pub fn llmwatch_group() -> Group {
    let mut rules = Vec::new();
    for signal in SIGNALS {
        let name = schema_name(signal.name);
        if signal.kind == SignalKind::Histogram {
            for (suffix, _) in HISTOGRAM_PARTS {
                rules.push(Rule::record(
                    &format!("{name}{suffix}"),
                    &format!("{}{suffix}", signal.name),
                ));
            }
        } else {
            rules.push(Rule::record(&name, signal.name));
        }
    }
    Group::new("llm-schema-llmwatch", rules)
}

fn signal_rules(engine: Engine, signal: &Signal, expr: &Expr) -> Vec<Rule> {
    let name = schema_name(signal.name);
    let with_engine = |rule: Rule| rule.label("engine", engine.as_str());
    match expr {
        Expr::Histogram(sel) => HISTOGRAM_PARTS
            .iter()
            .map(|(suffix, extra)| {
                let promql = select(engine, sel, suffix, extra);
                with_engine(Rule::record(&format!("{name}{suffix}"), &promql))
            })
            .collect(),
        Expr::Outcomes(parts) => parts
            .iter()
            .flat_map(|part| outcome_rules(engine, part))
            .map(|(outcome, promql)| {
                with_engine(Rule::record(&name, &promql)).label("outcome", outcome)
            })
            .collect(),
        other => vec![with_engine(Rule::record(&name, &scalar(engine, other)))],
    }
}

/// PromQL for a scalar expression, per model.
fn scalar(engine: Engine, expr: &Expr) -> String {
    match expr {
        Expr::Series(sel) | Expr::Histogram(sel) => select(engine, sel, "", ""),
        Expr::Sum(sels) => {
            let Some((first, rest)) = sels.split_first() else {
                return String::new();
            };
            let first = select(engine, first, "", "");
            let mut out = first.clone();
            for sel in rest {
                // A later term counts only where the engine version exports it.
                out = format!("{out} + ({} or {first} * 0)", select(engine, sel, "", ""));
            }
            out
        }
        Expr::Diff(a, b) => {
            let a = select(engine, a, "", "");
            let b = select(engine, b, "", "");
            format!("clamp_min({a} - ({b} or {a} * 0), 0)")
        }
        Expr::Ratio(a, b) => format!("({}) / ({} > 0)", scalar(engine, a), scalar(engine, b)),
        Expr::Outcomes(_) => String::new(),
    }
}

/// `(outcome, PromQL)` pairs for one part of an outcome split.
fn outcome_rules(engine: Engine, part: &OutcomePart) -> Vec<(&'static str, String)> {
    match part {
        OutcomePart::Fixed { outcome, sel } => vec![(*outcome, select(engine, sel, "", ""))],
        OutcomePart::Remainder {
            outcome,
            total,
            minus,
        } => {
            let diff = Expr::Diff(*total, *minus);
            vec![(*outcome, scalar(engine, &diff))]
        }
        OutcomePart::ByLabel { sel, label, map } => {
            let mut outcomes: Vec<&'static str> = Vec::new();
            for (_, outcome) in map.iter() {
                if !outcomes.contains(outcome) {
                    outcomes.push(outcome);
                }
            }
            let mut out: Vec<(&'static str, String)> = outcomes
                .iter()
                .map(|outcome| {
                    let values: Vec<&str> = map
                        .iter()
                        .filter(|(_, o)| o == outcome)
                        .map(|(v, _)| *v)
                        .collect();
                    let matcher = format!("{label}=~\"{}\"", values.join("|"));
                    (*outcome, select_with(engine, sel, "", "", &matcher))
                })
                .collect();
            // Values the map does not know count as `other`, so nothing is dropped.
            let known: Vec<&str> = map.iter().map(|(v, _)| *v).collect();
            let matcher = format!("{label}!~\"{}\"", known.join("|"));
            out.push(("other", select_with(engine, sel, "", "", &matcher)));
            out
        }
    }
}

fn select(engine: Engine, sel: &Sel, suffix: &str, extra_by: &str) -> String {
    select_with(engine, sel, suffix, extra_by, "")
}

/// `agg by (KEEP) (series)` for the first name, `or` the older names after it.
fn select_with(engine: Engine, sel: &Sel, suffix: &str, extra_by: &str, matcher: &str) -> String {
    let agg = match sel.agg {
        Agg::Sum => "sum",
        Agg::Max => "max",
    };
    let parts: Vec<String> = sel
        .names
        .iter()
        .map(|name| {
            let series = vector(engine, &format!("{name}{suffix}"), sel, matcher);
            format!("{agg} by ({KEEP}{extra_by}) ({series})")
        })
        .collect();
    if parts.len() == 1 {
        parts.concat()
    } else {
        format!("({})", parts.join(" or "))
    }
}

/// One raw series selector, its model label renamed to `model`.
fn vector(engine: Engine, name: &str, sel: &Sel, matcher: &str) -> String {
    let mut matchers: Vec<String> = sel
        .matchers
        .iter()
        .map(|(k, v)| format!("{k}=\"{v}\""))
        .collect();
    if !matcher.is_empty() {
        matchers.push(matcher.to_string());
    }
    if engine == Engine::Sglang {
        // Tensor-parallel ranks repeat rank 0's numbers.
        matchers.push("tp_rank=~\"0|\"".to_string());
    }
    let selector = if matchers.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{}}}", matchers.join(", "))
    };
    match engine.model_label() {
        Some(label) => {
            format!("label_replace({selector}, \"model\", \"$1\", \"{label}\", \"(.+)\")")
        }
        None => selector,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule<'g>(group: &'g Group, record: &str) -> Vec<&'g Rule> {
        group
            .rules
            .iter()
            .filter(|r| r.record.as_deref() == Some(record))
            .collect()
    }

    #[test]
    fn a_rename_reads_the_new_name_or_the_old() {
        let group = engine_group(Engine::Vllm);
        let itl = rule(&group, "llm:inter_token_latency_seconds_bucket");
        assert_eq!(itl.len(), 1);
        let expr = &itl[0].expr;
        assert!(
            expr.contains("vllm:inter_token_latency_seconds_bucket"),
            "{expr}"
        );
        assert!(expr.contains(" or "), "{expr}");
        assert!(
            expr.contains("vllm:time_per_output_token_seconds_bucket"),
            "{expr}"
        );
        assert!(expr.contains("le)"), "buckets keep le: {expr}");
    }

    #[test]
    fn outcomes_become_one_rule_per_outcome_with_other_last() {
        let group = engine_group(Engine::Vllm);
        let finished = rule(&group, "llm:requests_finished_total");
        let outcomes: Vec<&str> = finished
            .iter()
            .filter_map(|r| r.labels.iter().find(|(k, _)| k == "outcome"))
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(
            outcomes,
            [
                "ok_stop",
                "ok_length",
                "aborted",
                "error_server",
                "other",
                "rejected_overload"
            ]
        );
        assert!(
            finished[0]
                .expr
                .contains("finished_reason=~\"stop|repetition\"")
        );
    }

    #[test]
    fn missing_signals_get_no_rule() {
        let group = engine_group(Engine::LlamaCpp);
        assert!(rule(&group, "llm:time_to_first_token_seconds_bucket").is_empty());
        assert!(!rule(&group, "llm:requests_running").is_empty());
    }

    #[test]
    fn sglang_drops_tensor_parallel_replicas_and_renames_model_name() {
        let group = engine_group(Engine::Sglang);
        let running = &rule(&group, "llm:requests_running")[0].expr;
        assert!(running.contains("tp_rank=~\"0|\""), "{running}");
        assert!(running.contains("\"model_name\""), "{running}");
    }
}
