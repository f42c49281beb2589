//! Confirms an engine's exact version (and, for single-model engines, the model name) through
//! its own info endpoint: vLLM `/version`, TGI `/info`, llama.cpp `/props`, SGLang
//! `/server_info`. Best effort: a failure leaves the fingerprint's range in place.

use super::fetch::{FetchOptions, fetch};
use crate::engines::Engine;

/// What the info endpoint said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probed {
    /// The exact version string; `None` when the engine says it does not know its own
    /// build (llama.cpp built outside a git checkout reports `b0-unknown`).
    pub version: Option<String>,
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
    let reported = json
        .get(field)
        .and_then(|v| v.as_str())
        .ok_or_else(|| format!("{url}: no \"{field}\" field"))?;
    let version = (!is_unknown_build(reported)).then(|| reported.to_string());
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

impl Probed {
    /// The exact version when the engine knows it, else `range` (the fingerprint's).
    pub fn version_or<'a>(&'a self, range: &'a str) -> &'a str {
        self.version.as_deref().unwrap_or(range)
    }
}

/// Whether a reported version names no build: empty, `unknown`, or llama.cpp's `b0-…` (build
/// number 0: compiled without git, as the PyPI wheels are). Such a string is worse than the
/// range read from the metrics, so it never replaces it.
fn is_unknown_build(version: &str) -> bool {
    let v = version.trim().to_ascii_lowercase();
    v.is_empty() || v.contains("unknown") || v == "b0" || v.starts_with("b0-")
}

#[cfg(test)]
mod tests {
    use super::is_unknown_build;

    #[test]
    fn unknown_builds_are_not_versions() {
        for unknown in ["b0-unknown", "b0", "", "unknown", "b0-abc123"] {
            assert!(is_unknown_build(unknown), "{unknown:?}");
        }
        for known in ["b7100-sim", "b6123-4f3e2a1", "0.11.0", "3.3.4", "b10-x"] {
            assert!(!is_unknown_build(known), "{known:?}");
        }
    }
}
