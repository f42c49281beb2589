//! Prometheus rule files as data: groups of recording and alerting rules, serialised in the
//! order Prometheus documents them (`record`/`alert`, `expr`, `for`, `labels`, `annotations`).
//! The aggregate rules here turn the `llm:` schema into the rates, ratios and quantiles the
//! alerts and dashboards read.

use serde::Serialize;

/// A rule group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    /// Group name, unique in a file.
    pub name: String,
    /// The rules, evaluated in order.
    pub rules: Vec<Rule>,
}

impl Group {
    /// A group named `name`.
    pub fn new(name: &str, rules: Vec<Rule>) -> Group {
        Group {
            name: name.to_string(),
            rules,
        }
    }
}

/// A recording or alerting rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    /// The series a recording rule writes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// The alert an alerting rule raises.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    /// PromQL.
    pub expr: String,
    /// How long the condition must hold before the alert fires.
    #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    /// Labels added to the result.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "serialize_pairs"
    )]
    pub labels: Vec<(String, String)>,
    /// Alert annotations.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "serialize_pairs"
    )]
    pub annotations: Vec<(String, String)>,
}

fn serialize_pairs<S: serde::Serializer>(
    pairs: &[(String, String)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = serializer.serialize_map(Some(pairs.len()))?;
    for (k, v) in pairs {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

impl Rule {
    /// A recording rule.
    pub fn record(name: &str, expr: &str) -> Rule {
        Rule {
            record: Some(name.to_string()),
            alert: None,
            expr: expr.to_string(),
            for_: None,
            labels: Vec::new(),
            annotations: Vec::new(),
        }
    }

    /// An alerting rule that must hold for `for_`.
    pub fn alert(name: &str, expr: &str, for_: &str) -> Rule {
        Rule {
            record: None,
            alert: Some(name.to_string()),
            expr: expr.to_string(),
            for_: Some(for_.to_string()),
            labels: Vec::new(),
            annotations: Vec::new(),
        }
    }

    /// Adds a label.
    pub fn label(mut self, key: &str, value: &str) -> Rule {
        self.labels.push((key.to_string(), value.to_string()));
        self
    }

    /// Adds an annotation.
    pub fn annotation(mut self, key: &str, value: &str) -> Rule {
        self.annotations.push((key.to_string(), value.to_string()));
        self
    }

    /// The recorded series or alert name.
    pub fn name(&self) -> &str {
        self.record
            .as_deref()
            .or(self.alert.as_deref())
            .unwrap_or_default()
    }
}

/// A rule file: `groups:` at the top.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleFile {
    /// Its groups.
    pub groups: Vec<Group>,
}

/// Labels the aggregates keep: a service's model on one engine kind.
pub const BY: &str = "namespace, service, engine, model";

/// [`crate::catalog::ERROR_OUTCOMES`] as a PromQL regular expression.
pub const ERROR_OUTCOMES: &str = "error_server|rejected_overload";

/// The windows of the multi-window, multi-burn-rate alerts (the SRE workbook's pairs).
pub const SLO_WINDOWS: [&str; 4] = ["5m", "30m", "1h", "6h"];

/// The objectives of the SLO rules and alerts (one definition, with the alerts).
pub use crate::catalog::alerts::Slo;

/// A regular expression matching a bucket bound however the engine formats it (`1`, `1.0`).
pub fn le_matcher(bound: f64) -> String {
    let mut text = format!("{bound}");
    if !text.contains('.') && !text.contains('e') {
        text.push_str("(\\\\.0)?");
    } else {
        text = text.replace('.', "\\\\.");
    }
    format!("le=~\"{text}\"")
}

/// Rates, ratios and quantiles over the `llm:` schema.
pub fn aggregate_group(slo: &Slo) -> Group {
    let mut rules = vec![
        Rule::record(
            "llm:requests:rate5m",
            &format!("sum by ({BY}, outcome) (rate(llm:requests_finished_total[5m]))"),
        ),
        Rule::record(
            "llm:generation_tokens:rate5m",
            &format!("sum by ({BY}, instance) (rate(llm:generation_tokens_total[5m]))"),
        ),
        Rule::record(
            "llm:generation_tokens:rate1h",
            &format!("sum by ({BY}, instance) (rate(llm:generation_tokens_total[1h]))"),
        ),
        Rule::record(
            "llm:prompt_tokens:rate5m",
            &format!("sum by ({BY}, instance) (rate(llm:prompt_tokens_total[5m]))"),
        ),
    ];
    for window in SLO_WINDOWS {
        let all = format!("sum by ({BY}) (rate(llm:requests_finished_total[{window}]))");
        let failed = format!(
            "sum by ({BY}) (rate(llm:requests_finished_total{{outcome=~\"{ERROR_OUTCOMES}\"}}[{window}]))"
        );
        rules.push(Rule::record(
            &format!("llm:request_errors:ratio_rate{window}"),
            &format!("({failed} or {all} * 0) / ({all} > 0)"),
        ));
        let count =
            format!("sum by ({BY}) (rate(llm:time_to_first_token_seconds_count[{window}]))");
        let fast = format!(
            "sum by ({BY}) (rate(llm:time_to_first_token_seconds_bucket{{{}}}[{window}]))",
            le_matcher(slo.ttft_seconds)
        );
        rules.push(Rule::record(
            &format!("llm:time_to_first_token_seconds:slow_ratio_rate{window}"),
            &format!("1 - {fast} / ({count} > 0)"),
        ));
    }
    for histogram in [
        "time_to_first_token_seconds",
        "request_queue_seconds",
        "e2e_request_latency_seconds",
        "inter_token_latency_seconds",
    ] {
        rules.push(Rule::record(
            &format!("llm:{histogram}:p99_rate5m"),
            &format!(
                "histogram_quantile(0.99, sum by ({BY}, le) (rate(llm:{histogram}_bucket[5m])))"
            ),
        ));
    }
    Group::new("llm-aggregates", rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_bound_matches_both_spellings() {
        assert_eq!(le_matcher(1.0), "le=~\"1(\\\\.0)?\"");
        assert_eq!(le_matcher(2.5), "le=~\"2\\\\.5\"");
    }

    #[test]
    fn rules_serialise_in_prometheus_order() {
        let rule = Rule::alert("A", "up == 0", "5m")
            .label("severity", "page")
            .annotation("summary", "s");
        let yaml = serde_norway::to_string(&rule).unwrap_or_default();
        assert_eq!(
            yaml,
            "alert: A\nexpr: up == 0\nfor: 5m\nlabels:\n  severity: page\nannotations:\n  summary: s\n"
        );
    }
}
