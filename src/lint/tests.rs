use super::*;

fn lint_one(path: &str, text: &str) -> Vec<Finding> {
    let input = Input {
        path: path.into(),
        text: text.into(),
    };
    lint(&[input], &LintOptions::default()).unwrap()
}

fn checks_of_rule(expr: &str) -> Vec<&'static str> {
    let text = format!("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: '{expr}'\n");
    lint_one("rules.yml", &text)
        .iter()
        .map(|f| f.check)
        .collect()
}

#[test]
fn each_expression_check_fires_on_its_mistake_and_not_on_the_fix() {
    let cases = [
        (
            "rate(vllm:num_preemptions[5m]) > 1",
            "missing-total",
            "rate(vllm:num_preemptions_total[5m]) > 1",
        ),
        (
            "vllm:kv_cache_usage_perc > 90",
            "percent-threshold",
            "vllm:kv_cache_usage_perc > 0.9",
        ),
        (
            "max by (model_name) (vllm:kv_cache_usage_perc) >= 95",
            "percent-threshold",
            "max by (model_name) (vllm:kv_cache_usage_perc) * 100 >= 95",
        ),
        (
            "histogram_quantile(0.99, sum by (le) (vllm:e2e_request_latency_seconds_bucket)) > 10",
            "quantile-without-rate",
            "histogram_quantile(0.99, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket[5m]))) > 10",
        ),
        (
            "histogram_quantile(0.99, sum by (model_name) (rate(vllm:e2e_request_latency_seconds_bucket[5m]))) > 10",
            "quantile-without-le",
            "histogram_quantile(0.99, sum by (model_name, le) (rate(vllm:e2e_request_latency_seconds_bucket[5m]))) > 10",
        ),
        (
            "histogram_quantile(0.99, sum(rate(vllm:e2e_request_latency_seconds_bucket[5m]))) > 10",
            "quantile-without-le",
            "histogram_quantile(0.99, sum without (instance) (rate(vllm:e2e_request_latency_seconds_bucket[5m]))) > 10",
        ),
        (
            "rate(vllm:num_requests_waiting[5m]) > 1",
            "rate-of-gauge",
            "deriv(vllm:num_requests_waiting[5m]) > 1",
        ),
        (
            "vllm:e2e_request_latency_seconds_sum / vllm:e2e_request_latency_seconds_count > 10",
            "lifetime-average",
            "rate(vllm:e2e_request_latency_seconds_sum[5m]) / rate(vllm:e2e_request_latency_seconds_count[5m]) > 10",
        ),
        (
            "rate(vllm:generation_tokens_total[30s]) < 1",
            "short-rate-window",
            "rate(vllm:generation_tokens_total[1m]) < 1",
        ),
        (
            "vllm:gpu_cache_usage_perc > 0.9",
            "removed-series",
            "vllm:kv_cache_usage_perc > 0.9",
        ),
        (
            "vllm:request_success_total > 100",
            "instant-counter",
            "rate(vllm:request_success_total[5m]) > 100",
        ),
        (
            "rate(tgi_request_failure_total[5m]) > 0",
            "extra-total",
            "rate(tgi_request_failure[5m]) > 0",
        ),
        (
            "histogram_quantile(0.9, rate(vllm:time_to_first_token_seconds[5m]))",
            "histogram-base-name",
            "histogram_quantile(0.9, rate(vllm:time_to_first_token_seconds_bucket[5m]))",
        ),
    ];
    for (bad, check, good) in cases {
        assert!(
            checks_of_rule(bad).contains(&check),
            "{bad}: {:?}",
            checks_of_rule(bad)
        );
        assert_eq!(checks_of_rule(good), Vec::<&str>::new(), "{good}");
    }
}

#[test]
fn a_scrape_config_sets_the_window_the_rates_need() {
    let scrape = "global:\n  scrape_interval: 30s\nscrape_configs:\n- job_name: vllm\n  static_configs:\n  - targets: [a:8000]\n";
    let rules = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: rate(vllm:generation_tokens_total[1m]) < 1\n";
    let inputs = [
        Input {
            path: "prometheus.yml".into(),
            text: scrape.into(),
        },
        Input {
            path: "rules.yml".into(),
            text: rules.into(),
        },
    ];
    let found = lint(&inputs, &LintOptions::default()).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].message.contains("job vllm in prometheus.yml"),
        "{found:?}"
    );
    assert_eq!(
        found[0].fix,
        "use a window of at least 2m (in Grafana, $__rate_interval)"
    );
}

#[test]
fn grafana_variables_become_parseable_stand_ins() {
    assert_eq!(
        grafana_to_promql("rate(x{a=\"$v\"}[$__rate_interval]) by ($group)"),
        "rate(x{a=\"$v\"}[1d]) by (__var_group)"
    );
    assert_eq!(
        grafana_to_promql("sum(${metric:raw}) [[w]]"),
        "sum(__var_metric) __var_w"
    );
    assert_eq!(
        grafana_to_promql("topk($n, y[$w:1m])"),
        "topk(__var_n, y[1d:1m])"
    );
}

#[test]
fn a_users_own_recording_rule_is_a_known_series() {
    let rules = "groups:\n- name: g\n  rules:\n  - record: job:vllm_latency_bucket:rate5m\n    expr: sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket[5m]))\n  - record: llm:my_own\n    expr: sum(vllm:num_requests_running)\n  - alert: A\n    expr: histogram_quantile(0.99, job:vllm_latency_bucket:rate5m) > 1 and llm:my_own > 0\n";
    assert_eq!(lint_one("rules.yml", rules), vec![]);
}

#[test]
fn bad_files_are_errors_that_name_the_file_and_place() {
    let err = |path: &str, text: &str| {
        let input = Input {
            path: path.into(),
            text: text.into(),
        };
        lint(&[input], &LintOptions::default())
            .unwrap_err()
            .to_string()
    };
    assert!(
        err("d.json", "{\"panels\": [").starts_with("d.json:1:"),
        "{}",
        err("d.json", "{\"panels\": [")
    );
    assert!(err("r.yml", "groups: [a: b: c]").starts_with("r.yml: not valid YAML"));
    let unparsable = err(
        "r.yml",
        "groups:\n- name: g\n  rules:\n  - alert: Broken\n    expr: rate(x[5m]\n",
    );
    assert!(
        unparsable.starts_with("r.yml: group g, alert Broken: the expression does not parse"),
        "{unparsable}"
    );
    assert!(err("x.yml", "hello: world").contains("not a Prometheus rule file"));
}

#[test]
fn regex_patterns_are_checked_once_and_not_compiled_by_the_parser() {
    let mut valid = std::collections::HashSet::new();
    let expr = r#"sum(x{a=~"v.*|w", b!~ 'z\\d', c="=~\"q\""})"#;
    let parsed = promql::parse(expr, &mut valid).unwrap();
    assert_eq!(valid.len(), 2, "{valid:?}");
    assert_eq!(parsed.to_string(), r#"sum(x{a="x",b!="x",c="=~\"q\""})"#);
    let err = promql::parse(r#"x{a=~"(unclosed"}"#, &mut valid).unwrap_err();
    assert!(
        err.starts_with("invalid regular expression \"(unclosed\""),
        "{err}"
    );
}
