//! The monitoring files `lint` reads: Prometheus rule files (plain or as a Kubernetes
//! PrometheusRule), Grafana dashboards (as saved, as exported for sharing with `__inputs` and
//! library panels in `__elements`, or wrapped as the HTTP API returns them) and Prometheus
//! configurations with `scrape_configs`. Each is turned into the queries in it and, for
//! configurations, the facts the query checks need.

use std::time::Duration;

use serde_json::Value as Json;
use serde_norway::Value as Yaml;

use super::{LintError, Query, QueryKind};

/// What a file is.
pub enum Source {
    Dashboard(Json),
    Rules(Vec<Yaml>),
    Scrape(Yaml),
}

/// Reads `text` (from `path`) as one of the kinds `lint` knows.
pub fn classify(path: &str, text: &str) -> Result<Source, LintError> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || path.ends_with(".json") {
        let doc: Json = serde_json::from_str(text).map_err(|e| LintError::Json {
            path: path.to_string(),
            line: e.line(),
            column: e.column(),
            reason: e.to_string(),
        })?;
        let dashboard = doc
            .get("dashboard")
            .filter(|d| d.is_object())
            .unwrap_or(&doc);
        if dashboard.get("panels").is_some() || dashboard.get("rows").is_some() {
            return Ok(Source::Dashboard(doc));
        }
        return Err(LintError::Unrecognised {
            path: path.to_string(),
        });
    }
    let mut documents = Vec::new();
    for document in serde_norway::Deserializer::from_str(text) {
        let value =
            <Yaml as serde::Deserialize>::deserialize(document).map_err(|e| LintError::Yaml {
                path: path.to_string(),
                reason: e.to_string(),
            })?;
        documents.push(value);
    }
    if documents.iter().any(|d| d.get("scrape_configs").is_some()) {
        let config = documents
            .into_iter()
            .find(|d| d.get("scrape_configs").is_some())
            .unwrap_or(Yaml::Null);
        return Ok(Source::Scrape(config));
    }
    let rules: Vec<Yaml> = documents
        .into_iter()
        .filter_map(|d| rule_groups(&d).cloned())
        .collect();
    if rules.is_empty() {
        return Err(LintError::Unrecognised {
            path: path.to_string(),
        });
    }
    Ok(Source::Rules(rules))
}

/// `groups` of a rule file, or `spec.groups` of a PrometheusRule.
fn rule_groups(doc: &Yaml) -> Option<&Yaml> {
    doc.get("groups")
        .or_else(|| doc.get("spec").and_then(|s| s.get("groups")))
        .filter(|g| g.is_sequence())
}

fn yaml_str<'a>(value: &'a Yaml, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Yaml::as_str)
}

/// Every rule's expression, and every `record:` name with whether its rule takes a rate.
pub fn rule_queries(path: &str, groups: &[Yaml]) -> Result<Vec<Query>, LintError> {
    let mut out = Vec::new();
    for (g, group) in groups
        .iter()
        .flat_map(|gs| gs.as_sequence().into_iter().flatten())
        .enumerate()
    {
        let group_name = yaml_str(group, "name").map_or_else(|| format!("#{g}"), str::to_string);
        let rules = group
            .get("rules")
            .and_then(Yaml::as_sequence)
            .into_iter()
            .flatten();
        for (r, rule) in rules.enumerate() {
            let (kind, name) = match (yaml_str(rule, "alert"), yaml_str(rule, "record")) {
                (Some(alert), _) => (QueryKind::Alert, format!("alert {alert}")),
                (None, Some(record)) => (QueryKind::Record, format!("record {record}")),
                (None, None) => (QueryKind::Record, format!("rule #{r}")),
            };
            let place = format!("group {group_name}, {name}");
            let Some(expr) = rule.get("expr").and_then(|e| match e {
                Yaml::String(s) => Some(s.clone()),
                Yaml::Number(n) => Some(n.to_string()),
                _ => None,
            }) else {
                return Err(LintError::Shape {
                    path: path.to_string(),
                    place,
                    reason: "the rule has no expr".into(),
                });
            };
            let record = yaml_str(rule, "record").map(str::to_string);
            out.push(Query {
                place,
                written: expr.clone(),
                expr,
                kind,
                record,
            });
        }
    }
    Ok(out)
}

/// Every PromQL query of a dashboard: panel targets (rows, collapsed rows and library panels
/// included) and query variables.
pub fn dashboard_queries(doc: &Json) -> Vec<Query> {
    let dashboard = doc
        .get("dashboard")
        .filter(|d| d.is_object())
        .unwrap_or(doc);
    let inputs = DataSources::new(doc);
    let mut out = Vec::new();
    let mut panels: Vec<&Json> = Vec::new();
    collect_panels(dashboard.get("panels"), &mut panels);
    for row in dashboard
        .get("rows")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        collect_panels(row.get("panels"), &mut panels);
    }
    for panel in panels {
        let model = library_model(doc, panel).unwrap_or(panel);
        panel_queries(model, panel, &inputs, &mut out);
    }
    let variables = dashboard
        .pointer("/templating/list")
        .and_then(Json::as_array);
    for variable in variables.into_iter().flatten() {
        if let Some(query) = variable_query(variable, &inputs) {
            let name = variable.get("name").and_then(Json::as_str).unwrap_or("?");
            out.push(Query {
                place: format!("variable {name}"),
                expr: grafana_to_promql(&query),
                written: query,
                kind: QueryKind::Variable,
                record: None,
            });
        }
    }
    out
}

fn collect_panels<'a>(panels: Option<&'a Json>, out: &mut Vec<&'a Json>) {
    for panel in panels.and_then(Json::as_array).into_iter().flatten() {
        out.push(panel);
        collect_panels(panel.get("panels"), out);
    }
}

/// The model of a library panel exported with the dashboard (`__elements`, a map in
/// Grafana 9 and later, a list before).
fn library_model<'a>(doc: &'a Json, panel: &Json) -> Option<&'a Json> {
    let uid = panel.pointer("/libraryPanel/uid")?.as_str()?;
    let elements = doc.get("__elements")?;
    let element = match elements {
        Json::Object(map) => map.get(uid),
        Json::Array(list) => list
            .iter()
            .find(|e| e.get("uid").and_then(Json::as_str) == Some(uid)),
        _ => None,
    }?;
    element.get("model")
}

fn panel_queries(model: &Json, panel: &Json, inputs: &DataSources, out: &mut Vec<Query>) {
    let title = model
        .get("title")
        .or_else(|| panel.get("title"))
        .and_then(Json::as_str)
        .unwrap_or("untitled");
    let library = panel.get("libraryPanel").is_some();
    let id = panel.get("id").and_then(Json::as_i64);
    let panel_source = model.get("datasource");
    for (i, target) in model
        .get("targets")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let Some(expr) = target.get("expr").and_then(Json::as_str) else {
            continue;
        };
        let source = target
            .get("datasource")
            .filter(|d| !d.is_null())
            .or(panel_source);
        if !inputs.is_prometheus(source) || expr.trim().is_empty() {
            continue;
        }
        let reference = target
            .get("refId")
            .and_then(Json::as_str)
            .map_or_else(|| format!("#{i}"), str::to_string);
        let what = if library { "library panel" } else { "panel" };
        let id = id.map(|id| format!(" (id {id})")).unwrap_or_default();
        out.push(Query {
            place: format!("{what} {title:?}{id}, query {reference}"),
            expr: grafana_to_promql(expr),
            written: expr.to_string(),
            kind: QueryKind::Panel,
            record: None,
        });
    }
}

/// The selector or expression of a Prometheus query variable: `label_values(X, l)` and
/// `query_result(X)` hold PromQL; `label_values(l)` and `metrics(re)` hold none.
fn variable_query(variable: &Json, inputs: &DataSources) -> Option<String> {
    if variable.get("type").and_then(Json::as_str) != Some("query")
        || !inputs.is_prometheus(variable.get("datasource"))
    {
        return None;
    }
    let query = variable.get("query")?;
    let text = query
        .as_str()
        .or_else(|| query.get("query")?.as_str())?
        .trim();
    let inner = if let Some(rest) = text.strip_prefix("label_values(") {
        let rest = rest.strip_suffix(')')?;
        rest.rsplit_once(',')?.0
    } else {
        text.strip_prefix("query_result(")?.strip_suffix(')')?
    };
    Some(inner.trim().to_string())
}

/// Which data sources are Prometheus: by `type`, or through the dashboard's `__inputs`.
struct DataSources {
    /// `${DS_NAME}` input names whose plugin is not Prometheus.
    other_inputs: Vec<String>,
}

impl DataSources {
    fn new(doc: &Json) -> DataSources {
        let other_inputs = doc
            .get("__inputs")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter(|i| {
                i.get("pluginId")
                    .and_then(Json::as_str)
                    .is_some_and(|p| !p.contains("prometheus"))
            })
            .filter_map(|i| i.get("name").and_then(Json::as_str).map(str::to_string))
            .collect();
        DataSources { other_inputs }
    }

    /// Unknown or unset counts as Prometheus: a query with `expr` is PromQL unless something
    /// says otherwise (Loki also uses `expr`).
    fn is_prometheus(&self, source: Option<&Json>) -> bool {
        let reference = match source {
            Some(Json::String(s)) => s.as_str(),
            Some(Json::Object(o)) => {
                if let Some(kind) = o.get("type").and_then(Json::as_str) {
                    return kind.contains("prometheus") || kind == "datasource";
                }
                o.get("uid").and_then(Json::as_str).unwrap_or("")
            }
            _ => return true,
        };
        !self
            .other_inputs
            .iter()
            .any(|name| reference.contains(name.as_str()))
    }
}

/// A sentinel for a window a Grafana variable sets: long enough that no window check fires
/// on a value lint cannot know.
const VARIABLE_WINDOW: &str = "1d";

/// Grafana's variables replaced so the query parses: windows (`$__rate_interval`, `[$w]`)
/// by a long duration, `$__range`-like values likewise, any other variable outside quotes by
/// an identifier the name checks skip (`__var_name`). Inside quotes nothing changes.
pub fn grafana_to_promql(expr: &str) -> String {
    let mut out = String::with_capacity(expr.len());
    let bytes = expr.as_bytes();
    let mut quote = None;
    let mut brackets = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if let Some(q) = quote {
            if c == b'\\' && i + 1 < bytes.len() {
                out.push_str(&expr[i..i + 2]);
                i += 2;
                continue;
            }
            if c == q {
                quote = None;
            }
            out.push(c as char);
            i += 1;
            continue;
        }
        match c {
            b'"' | b'\'' | b'`' => quote = Some(c),
            b'[' if bytes.get(i + 1) == Some(&b'[') => {
                if let Some(end) = expr[i + 2..].find("]]") {
                    let name = &expr[i + 2..i + 2 + end];
                    out.push_str(&variable_stand_in(name, brackets > 0));
                    i += end + 4;
                    continue;
                }
            }
            b'[' => brackets += 1,
            b']' => brackets = brackets.saturating_sub(1),
            b'$' => {
                let (name, len) = variable_at(&expr[i + 1..]);
                if len > 0 {
                    out.push_str(&variable_stand_in(name, brackets > 0));
                    i += len + 1;
                    continue;
                }
            }
            _ => {}
        }
        // Multi-byte characters are copied whole.
        let width = expr[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&expr[i..i + width]);
        i += width;
    }
    out
}

/// The variable's name and the length of its reference after `$` (`name` or `{name:fmt}`).
fn variable_at(rest: &str) -> (&str, usize) {
    if let Some(inner) = rest.strip_prefix('{') {
        return match inner.find('}') {
            Some(end) => {
                let name = inner[..end].split(':').next().unwrap_or("");
                (name, end + 2)
            }
            None => ("", 0),
        };
    }
    let len = rest
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    (&rest[..len], len)
}

fn variable_stand_in(name: &str, in_brackets: bool) -> String {
    if in_brackets || matches!(name, "__rate_interval" | "__interval" | "__range") {
        return VARIABLE_WINDOW.to_string();
    }
    if matches!(name, "__range_s" | "__interval_ms" | "__range_ms") {
        return "86400".to_string();
    }
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("__var_{clean}")
}

/// The longest scrape interval in a Prometheus configuration (jobs inherit the global one,
/// which defaults to 1m) and the job it belongs to.
pub fn scrape_interval(config: &Yaml) -> Option<(Duration, String)> {
    let parse = |v: Option<&Yaml>| {
        v.and_then(Yaml::as_str)
            .and_then(|s| promql_parser::util::parse_duration(s).ok())
    };
    let global = parse(config.get("global").and_then(|g| g.get("scrape_interval")))
        .unwrap_or(Duration::from_secs(60));
    config
        .get("scrape_configs")
        .and_then(Yaml::as_sequence)
        .into_iter()
        .flatten()
        .map(|job| {
            let name = yaml_str(job, "job_name").unwrap_or("?").to_string();
            (parse(job.get("scrape_interval")).unwrap_or(global), name)
        })
        .max_by_key(|(interval, _)| *interval)
}

/// Scrape jobs that set a target label named `engine`: vLLM labels every series with
/// `engine` (the engine core's index), so the job's value either replaces it (series of
/// different cores collide) or pushes it aside to `exported_engine`.
pub fn engine_label_overwrites(config: &Yaml) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for job in config
        .get("scrape_configs")
        .and_then(Yaml::as_sequence)
        .into_iter()
        .flatten()
    {
        let name = yaml_str(job, "job_name").unwrap_or("?").to_string();
        for key in ["relabel_configs", "metric_relabel_configs"] {
            for (i, rule) in job
                .get(key)
                .and_then(Yaml::as_sequence)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let action = yaml_str(rule, "action").unwrap_or("replace");
                if yaml_str(rule, "target_label") == Some("engine") && action == "replace" {
                    out.push((
                        name.clone(),
                        format!("{key}[{i}] sets target_label: engine"),
                    ));
                }
            }
        }
        let honors = job
            .get("honor_labels")
            .and_then(Yaml::as_bool)
            .unwrap_or(false);
        for (i, group) in job
            .get("static_configs")
            .and_then(Yaml::as_sequence)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if !honors && group.get("labels").and_then(|l| l.get("engine")).is_some() {
                out.push((
                    name.clone(),
                    format!("static_configs[{i}] labels every target with engine"),
                ));
            }
        }
    }
    out
}
