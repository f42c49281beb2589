//! Confirms an engine's exact version (and, for single-model engines, the model name) through
//! its own info endpoint: vLLM `/version`, TGI `/info`, llama.cpp `/props`, SGLang
//! `/server_info`. Best effort: a failure leaves the fingerprint's range in place.

use super::fetch::{FetchOptions, fetch};
use crate::engines::Engine;

/// What the info endpoint said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probed {
    /// The exact version string.
    pub version: String,
    /// Where it came from, e.g. `/props`.
    pub path: &'static str,
    /// The served model, for engines without a model label (TGI `model_id`, llama.cpp
    /// `model_alias`).
    pub model: Option<String>,
}

/// Asks `engine`'s info endpoint on the server that serves `metrics_url`.
pub async fn probe(
    client: &reqwest::Client,
    metrics_url: &str,
    engine: Engine,
    opts: &FetchOptions,
) -> Result<Probed, String> {
    let (path, field) = engine.version_endpoint();
    let mut url = reqwest::Url::parse(metrics_url).map_err(|e| e.to_string())?;
    url.set_path(path);
    url.set_query(None);
    let fetched = fetch(client, url.as_str(), opts, "application/json")
        .await
        .map_err(|e| e.to_string())?;
    let json: serde_json::Value =
        serde_json::from_slice(&fetched.body).map_err(|e| format!("{url}: not JSON: {e}"))?;
    let version = json
        .get(field)
        .and_then(|v| v.as_str())
        .ok_or_else(|| format!("{url}: no \"{field}\" field"))?
        .to_string();
    let model_field = match engine {
        Engine::Tgi => Some("model_id"),
        Engine::LlamaCpp => Some("model_alias"),
        Engine::Vllm | Engine::Sglang => None,
    };
    let model = model_field
        .and_then(|f| json.get(f))
        .and_then(|v| v.as_str())
        .filter(|m| !m.is_empty())
        .map(str::to_string);
    Ok(Probed {
        version,
        path,
        model,
    })
}
