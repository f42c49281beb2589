use super::*;
use crate::engines::{Engine, normalise};
use crate::exposition::{Mode, parse};

const VLLM: &str = include_str!("../../../tests/fixtures/reconstructed/vllm-0.33.txt");
const GENERATED: &str = "vllm:generation_tokens_total{engine=\"0\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\"} 41877.0";

/// Runs `checker` over one body as the scraper would.
fn scrape(checker: &mut Checker, engine: Engine, body: &str) -> Vec<Problem> {
    let exp = parse(body, Mode::Strict).unwrap();
    let index = Index::new(&exp);
    let mut readings = normalise(&index, engine, "m");
    checker.check(&mut readings, &index)
}

#[test]
fn a_counter_that_falls_alone_is_reported_and_a_restart_is_not() {
    let mut checker = Checker::default();
    assert_eq!(scrape(&mut checker, Engine::Vllm, VLLM), vec![]);
    assert_eq!(
        scrape(&mut checker, Engine::Vllm, VLLM),
        vec![],
        "nothing moved"
    );
    let fallen = VLLM.replace(GENERATED, &GENERATED.replace("41877.0", "41000.0"));
    let problems = scrape(&mut checker, Engine::Vllm, &fallen);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].kind, ProblemKind::CounterBackwards);
    assert_eq!(problems[0].series, "llm_generation_tokens_total");
    assert!(
        problems[0].detail.contains("41877 then 41000"),
        "{problems:?}"
    );
    // A restart: every counter starts again near zero.
    let restarted: String = VLLM
        .lines()
        .map(|l| {
            if !l.starts_with('#')
                && (l.contains("_total{")
                    || l.contains("_count{")
                    || l.contains("_sum{")
                    || l.contains("_bucket{"))
            {
                let (series, _) = l.rsplit_once(' ').unwrap();
                format!("{series} 0\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert_eq!(scrape(&mut checker, Engine::Vllm, &restarted), vec![]);
}

/// Runs `checker` over one body and returns the generated-tokens counter it leaves.
fn generated_after(checker: &mut Checker, body: &str) -> (Vec<Problem>, Option<f64>) {
    let exp = parse(body, Mode::Strict).unwrap();
    let index = Index::new(&exp);
    let mut readings = normalise(&index, Engine::Vllm, "m");
    let problems = checker.check(&mut readings, &index);
    let reading = readings
        .iter()
        .find(|r| r.signal.name == "llm_generation_tokens_total")
        .unwrap();
    let value = reading.series.first().map(|s| match s.value {
        crate::engines::Value::Scalar(v) => v,
        crate::engines::Value::Histogram(_) => f64::NAN,
    });
    (problems, value)
}

#[test]
fn a_counter_that_fell_is_left_out_and_then_continues_from_its_last_good_value() {
    let mut checker = Checker::default();
    assert_eq!(generated_after(&mut checker, VLLM), (vec![], Some(41877.0)));
    let at = |v: &str| VLLM.replace(GENERATED, &GENERATED.replace("41877.0", v));
    let (problems, value) = generated_after(&mut checker, &at("41000.0"));
    assert_eq!(problems.len(), 1);
    assert!(problems[0].detail.contains("left out"), "{problems:?}");
    assert_eq!(value, None, "the fallen series is left out of this scrape");
    // It rose by 100 since: served as 100 above the last good value, with no new problem.
    assert_eq!(
        generated_after(&mut checker, &at("41100.0")),
        (vec![], Some(41977.0))
    );
    // Falling again adds to the shift.
    let (problems, _) = generated_after(&mut checker, &at("40000.0"));
    assert_eq!(problems.len(), 1);
    assert_eq!(
        generated_after(&mut checker, &at("40050.0")),
        (vec![], Some(42027.0))
    );
}

#[test]
fn buckets_that_fall_or_an_inf_bucket_that_is_not_the_count_are_reported() {
    let bucket = |le: &str, v: &str| {
        format!(
            "vllm:time_to_first_token_seconds_bucket{{engine=\"0\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\",le=\"{le}\"}} {v}"
        )
    };
    let mut checker = Checker::default();
    let falling = VLLM.replace(&bucket("0.25", "337.0"), &bucket("0.25", "100.0"));
    let problems = scrape(&mut checker, Engine::Vllm, &falling);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].kind, ProblemKind::NonCumulativeHistogram);
    assert_eq!(problems[0].series, "llm_time_to_first_token_seconds");
    assert!(
        problems[0]
            .detail
            .contains("le=0.1 holds 128 but le=0.25 holds 100"),
        "{problems:?}"
    );
    let short = VLLM.replace(&bucket("+Inf", "342.0"), &bucket("+Inf", "343.0"));
    let problems = scrape(&mut Checker::default(), Engine::Vllm, &short);
    assert!(
        problems
            .iter()
            .any(|p| p.detail.contains("+Inf bucket 343 but count 342")),
        "{problems:?}"
    );
}

fn llamacpp(prompt_seconds: f64, prompt_gauge: f64) -> String {
    format!(
        "llamacpp:prompt_tokens_total 33\nllamacpp:prompt_seconds_total {prompt_seconds}\nllamacpp:tokens_predicted_total 80\nllamacpp:tokens_predicted_seconds_total 1.87288\nllamacpp:prompt_tokens_seconds {prompt_gauge}\nllamacpp:predicted_tokens_seconds 0\nllamacpp:requests_processing 0\nllamacpp:requests_deferred 0\n"
    )
}

#[test]
fn a_llamacpp_window_gauge_at_zero_after_time_was_spent_means_another_scraper() {
    let mut checker = Checker::default();
    assert_eq!(
        scrape(&mut checker, Engine::LlamaCpp, &llamacpp(0.177031, 186.4)),
        vec![]
    );
    // No prompt since: the gauge reads 0 and the time stands still, as with one scraper.
    assert_eq!(
        scrape(&mut checker, Engine::LlamaCpp, &llamacpp(0.177031, 0.0)),
        vec![]
    );
    // Prompts were processed, yet the window is empty: someone else's scrape reset it.
    let problems = scrape(&mut checker, Engine::LlamaCpp, &llamacpp(0.377031, 0.0));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].kind, ProblemKind::ScrapeWindowReset);
    assert_eq!(problems[0].series, "llamacpp:prompt_tokens_seconds");
    assert!(
        problems[0].detail.contains("rose by 0.200 s"),
        "{problems:?}"
    );
    assert_eq!(
        scrape(&mut checker, Engine::LlamaCpp, &llamacpp(0.577031, 190.0)),
        vec![]
    );
}

#[test]
fn a_series_with_invalid_numbers_is_left_out_and_the_others_kept() {
    let body = "# TYPE vllm:generation_tokens counter\n\
        vllm:generation_tokens_total{model_name=\"bad\"} -3\n\
        vllm:generation_tokens_total{model_name=\"good\"} 7\n\
        # TYPE vllm:time_to_first_token_seconds histogram\n\
        vllm:time_to_first_token_seconds_bucket{model_name=\"bad\",le=\"0.1\"} 5\n\
        vllm:time_to_first_token_seconds_bucket{model_name=\"bad\",le=\"+Inf\"} 3\n\
        vllm:time_to_first_token_seconds_sum{model_name=\"bad\"} 1\n\
        vllm:time_to_first_token_seconds_count{model_name=\"bad\"} 3\n\
        vllm:time_to_first_token_seconds_bucket{model_name=\"good\",le=\"0.1\"} 2\n\
        vllm:time_to_first_token_seconds_bucket{model_name=\"good\",le=\"+Inf\"} 3\n\
        vllm:time_to_first_token_seconds_sum{model_name=\"good\"} 1\n\
        vllm:time_to_first_token_seconds_count{model_name=\"good\"} 3\n\
        vllm:num_requests_running{model_name=\"bad\"} 1\n";
    let exp = parse(body, Mode::Strict).unwrap();
    let index = Index::new(&exp);
    let mut readings = normalise(&index, Engine::Vllm, "m");
    let problems = exclude_invalid(&mut readings);
    let kinds: Vec<(ProblemKind, &str)> = problems
        .iter()
        .map(|p| (p.kind, p.series.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (ProblemKind::InvalidCounter, "llm_generation_tokens_total"),
            (
                ProblemKind::NonCumulativeHistogram,
                "llm_time_to_first_token_seconds"
            ),
        ]
    );
    let models = |name: &str| -> Vec<String> {
        readings
            .iter()
            .find(|r| r.signal.name == name)
            .map(|r| r.series.iter().map(|s| s.model.clone()).collect())
            .unwrap_or_default()
    };
    assert_eq!(models("llm_generation_tokens_total"), ["good"]);
    assert_eq!(models("llm_time_to_first_token_seconds"), ["good"]);
    // The model's other signals stay.
    assert_eq!(models("llm_requests_running"), ["bad"]);
    let note = |name: &str| {
        readings
            .iter()
            .find(|r| r.signal.name == name)
            .map(|r| r.note)
    };
    assert_eq!(note("llm_generation_tokens_total"), Some(LEFT_OUT));
    assert_ne!(note("llm_requests_running"), Some(LEFT_OUT));
}
