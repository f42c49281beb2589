//! `llmwatch lint`: checks the monitoring files people already have — Prometheus rule files,
//! Grafana dashboards, Prometheus scrape configurations — against what the engines really
//! export. Every expression is parsed with a real PromQL parser (promql-parser); the checks
//! walk its syntax tree. Findings name the file, the panel or rule, and a fix.

mod names;
mod promql;
mod sources;

use std::time::Duration;

use thiserror::Error;

use crate::findings::{Finding, Severity};
pub use names::Known;
use sources::Source;
pub use sources::grafana_to_promql;

/// Why lint could not run (exit code 2), as opposed to what it found.
#[derive(Debug, Error)]
pub enum LintError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: not valid JSON: {reason}")]
    Json {
        path: String,
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("{path}: not valid YAML: {reason}")]
    Yaml { path: String, reason: String },
    #[error(
        "{path}: not a Prometheus rule file (groups:), a Grafana dashboard (panels:) or a Prometheus configuration (scrape_configs:)"
    )]
    Unrecognised { path: String },
    #[error("{path}: {place}: {reason}")]
    Shape {
        path: String,
        place: String,
        reason: String,
    },
    #[error("{path}: {place}: the expression does not parse: {reason}\n  {expr}")]
    Expression {
        path: String,
        place: String,
        expr: String,
        reason: String,
    },
}

/// What a query is for; some checks depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    Alert,
    /// A recording rule: recording a raw counter is normal.
    Record,
    Panel,
    /// A dashboard variable's query: it lists label values, never shows a value.
    Variable,
}

/// One PromQL query and where it is.
#[derive(Debug, Clone)]
pub struct Query {
    pub place: String,
    /// The expression as it parses (Grafana's variables replaced).
    pub expr: String,
    /// The expression as the file has it.
    pub written: String,
    pub kind: QueryKind,
    /// The series a recording rule writes.
    pub record: Option<String>,
}

/// One problem in a query, before it is placed in a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub severity: Severity,
    pub check: &'static str,
    pub message: String,
    pub fix: String,
}

impl Issue {
    pub fn new(severity: Severity, check: &'static str, message: String, fix: String) -> Issue {
        Issue {
            severity,
            check,
            message,
            fix,
        }
    }
}

/// Options of a lint run.
#[derive(Debug, Clone)]
pub struct LintOptions {
    /// The scrape interval assumed when no Prometheus configuration is linted with the rules.
    pub scrape_interval: Duration,
}

impl Default for LintOptions {
    fn default() -> LintOptions {
        LintOptions {
            scrape_interval: Duration::from_secs(15),
        }
    }
}

/// One file's name and text.
pub struct Input {
    pub path: String,
    pub text: String,
}

/// Reads `paths`.
pub fn read(paths: &[std::path::PathBuf]) -> Result<Vec<Input>, LintError> {
    paths
        .iter()
        .map(|p| {
            let path = p.display().to_string();
            std::fs::read_to_string(p)
                .map(|text| Input {
                    path: path.clone(),
                    text,
                })
                .map_err(|source| LintError::Read { path, source })
        })
        .collect()
}

/// One query of a rule file or dashboard and the metric names it selects.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    pub path: String,
    pub place: String,
    pub written: String,
    pub names: Vec<String>,
}

/// Every query in `inputs` (rule files and dashboards; scrape configurations have none) with
/// the names it selects: what `doctor --rules` checks against the engines running.
pub fn selections(inputs: &[Input]) -> Result<Vec<Selection>, LintError> {
    let mut out = Vec::new();
    let mut valid_regexes = std::collections::HashSet::new();
    for input in inputs {
        let queries = match sources::classify(&input.path, &input.text)? {
            Source::Rules(groups) => sources::rule_queries(&input.path, &groups)?,
            Source::Dashboard(doc) => sources::dashboard_queries(&doc),
            Source::Scrape(_) => continue,
        };
        for query in queries {
            let expr = promql::parse(&query.expr, &mut valid_regexes).map_err(|reason| {
                LintError::Expression {
                    path: input.path.clone(),
                    place: query.place.clone(),
                    expr: query.written.clone(),
                    reason,
                }
            })?;
            out.push(Selection {
                path: input.path.clone(),
                place: query.place,
                written: one_line(&query.written),
                names: promql::names(&expr),
            });
        }
    }
    Ok(out)
}

/// Lints `inputs` together: recording rules in one file are known to the others, and a
/// scrape configuration among them sets the interval the rate windows are checked against.
pub fn lint(inputs: &[Input], options: &LintOptions) -> Result<Vec<Finding>, LintError> {
    let mut files = Vec::with_capacity(inputs.len());
    for input in inputs {
        files.push((
            input.path.as_str(),
            sources::classify(&input.path, &input.text)?,
        ));
    }
    let mut findings = Vec::new();
    let mut interval = (
        options.scrape_interval,
        "assumed; set --scrape-interval".to_string(),
    );
    let mut queries = Vec::new();
    for (path, source) in &files {
        match source {
            Source::Scrape(config) => {
                if let Some((longest, job)) = sources::scrape_interval(config) {
                    interval = (longest, format!("job {job} in {path}"));
                }
                findings.extend(engine_label_findings(path, config));
            }
            Source::Rules(groups) => queries.push((*path, sources::rule_queries(path, groups)?)),
            Source::Dashboard(doc) => queries.push((*path, sources::dashboard_queries(doc))),
        }
    }
    // Recording rules in any file name series the others may select.
    let recorded = queries.iter().flat_map(|(_, list)| list).filter_map(|q| {
        q.record
            .as_ref()
            .map(|name| (name.clone(), takes_rate(&q.expr)))
    });
    let known = Known::new(recorded);
    let mut valid_regexes = std::collections::HashSet::new();
    for (path, list) in &queries {
        for query in list {
            let expr = promql::parse(&query.expr, &mut valid_regexes).map_err(|reason| {
                LintError::Expression {
                    path: path.to_string(),
                    place: query.place.clone(),
                    expr: query.written.clone(),
                    reason,
                }
            })?;
            let ctx = promql::Context {
                known: &known,
                scrape_interval: interval.0,
                interval_from: &interval.1,
                kind: query.kind,
            };
            findings.extend(promql::check(&expr, &ctx).into_iter().map(|issue| Finding {
                severity: issue.severity,
                check: issue.check,
                subject: path.to_string(),
                place: query.place.clone(),
                message: issue.message,
                evidence: vec![format!("expr: {}", one_line(&query.written))],
                fix: issue.fix,
                runbook: String::new(),
            }));
        }
    }
    Ok(findings)
}

/// Whether a recording rule's expression takes a rate at its top (so its result is one).
fn takes_rate(expr: &str) -> bool {
    ["rate(", "irate(", "increase("]
        .iter()
        .any(|f| expr.contains(f))
}

fn one_line(expr: &str) -> String {
    expr.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn engine_label_findings(path: &str, config: &serde_norway::Value) -> Vec<Finding> {
    sources::engine_label_overwrites(config)
        .into_iter()
        .map(|(job, what)| Finding {
            severity: Severity::Warning,
            check: "engine-label-overwrite",
            subject: path.to_string(),
            place: format!("job {job}"),
            message: "a target label named engine meets vLLM's own engine label (the engine core's index): vLLM's is overwritten, or renamed exported_engine, and per-core series collide".into(),
            evidence: vec![what],
            fix: "name the label something else (e.g. inference_engine), or keep vLLM's with honor_labels: true".into(),
            runbook: String::new(),
        })
        .collect()
}

#[cfg(test)]
mod tests;
