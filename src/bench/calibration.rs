//! Probe requests before a run that tell how the server counts the load generator's prompts:
//! its template overhead with a tokenizer, or its tokens per word without one (see
//! [`super::sizing`]). A probe that fails leaves a note in the report, never the run.

use std::time::Duration;

use serde_json::json;

use super::sizing::{Sizing, calibrate};
use super::workload::WORDS;
use super::{Api, BenchOptions};

/// Word counts of the two calibration probes: one and sixteen rounds of the prompt words,
/// so that each probe holds every word equally often, as the run's prompts do.
const PROBE_WORDS: (u32, u32) = (16, 256);

/// The sizing for the run, and a note when it is not what the options asked for.
pub async fn prepare(options: &BenchOptions, model: &str) -> (Sizing, Option<String>) {
    match (&options.tokenizer, options.calibrate) {
        (Some(tokenizer), _) => {
            let text = probe_text(PROBE_WORDS.0);
            match prompt_tokens(options, model, &text).await {
                Ok(reported) => {
                    let content = tokenizer.count(&text) as u64;
                    let overhead = u32::try_from(reported.saturating_sub(content)).unwrap_or(0);
                    (Sizing::exact(tokenizer.clone(), overhead), None)
                }
                Err(why) => {
                    let sizing = Sizing::exact(tokenizer.clone(), 0);
                    let note = format!(
                        "the server's template tokens are not counted (its probe failed: {why})"
                    );
                    (sizing, Some(note))
                }
            }
        }
        (None, true) => match calibrated(options, model).await {
            Ok(sizing) => (sizing, None),
            Err(why) => (
                Sizing::Words,
                Some(format!(
                    "not calibrated, one word per token assumed: {why}; give --tokenizer for exact lengths"
                )),
            ),
        },
        (None, false) => (Sizing::Words, None),
    }
}

async fn calibrated(options: &BenchOptions, model: &str) -> Result<Sizing, String> {
    let small = prompt_tokens(options, model, &probe_text(PROBE_WORDS.0)).await?;
    let large = prompt_tokens(options, model, &probe_text(PROBE_WORDS.1)).await?;
    calibrate((PROBE_WORDS.0, small), (PROBE_WORDS.1, large)).ok_or_else(|| {
        format!(
            "the server counted {small} prompt tokens for {} words and {large} for {}",
            PROBE_WORDS.0, PROBE_WORDS.1
        )
    })
}

/// `words` of the prompt words, each in turn.
fn probe_text(words: u32) -> String {
    WORDS.iter().cycle().take(words as usize).copied().collect()
}

/// Sends one whole (non-streamed) request with `text` as its prompt and one output token;
/// the prompt tokens its usage reports.
async fn prompt_tokens(options: &BenchOptions, model: &str, text: &str) -> Result<u64, String> {
    let mut body = match options.api {
        Api::Chat => json!({"model": model, "messages": [{"role": "user", "content": text}]}),
        Api::Completions => json!({"model": model, "prompt": text}),
    };
    body["max_tokens"] = json!(1);
    let client = reqwest::Client::new();
    let mut request = client
        .post(super::route(&options.url, options.api))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .timeout(Duration::from_secs(30).min(options.timeout.max(Duration::from_secs(1))))
        .body(body.to_string());
    if let Some(key) = &options.api_key {
        request = request.bearer_auth(key);
    }
    let response = request
        .send()
        .await
        .map_err(|e| crate::collect::fetch::flatten_error(&e))?;
    let status = response.status().as_u16();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| crate::collect::fetch::flatten_error(&e))?;
    if status != 200 {
        return Err(format!(
            "HTTP {status}: {}",
            super::request::error_message(&bytes)
        ));
    }
    let answer: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("the answer is not JSON: {e}"))?;
    answer["usage"]["prompt_tokens"]
        .as_u64()
        .ok_or_else(|| "the answer reports no usage.prompt_tokens".to_string())
}
