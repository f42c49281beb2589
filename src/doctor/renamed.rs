//! The user's rules and dashboards against the engines running: a series they query that the
//! engine in front of them no longer exports (renamed or dropped by an upgrade), or never
//! exported, is an alert that can never fire and a panel that stays empty.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde_json::Value as Json;

use crate::engines::Engine;
use crate::engines::families::{engine_of, engine_title, family_of};
use crate::exposition::{self, Mode};
use crate::findings::{Finding, Severity};
use crate::lint::Selection;

/// One running engine and the series names its `/metrics` has.
#[derive(Debug, Clone)]
pub struct LiveTarget {
    pub name: String,
    pub engine: Engine,
    pub version: String,
    pub series: HashSet<String>,
}

impl LiveTarget {
    /// Reads `body` (a scrape of the engine).
    pub fn from_body(name: &str, engine: Engine, version: &str, body: &str) -> LiveTarget {
        let series = exposition::parse(body, Mode::Lenient)
            .map(|exp| exp.samples.iter().map(|s| s.name.to_string()).collect())
            .unwrap_or_default();
        LiveTarget {
            name: name.to_string(),
            engine,
            version: version.to_string(),
            series,
        }
    }
}

/// Fetches the `/metrics` of every engine the `up` at `base` scrapes (one extra scrape each).
/// Targets that cannot be read are left out: `target-down` already speaks of them.
pub async fn live_targets(base: &str, bearer_token: Option<&str>) -> Vec<LiveTarget> {
    let Ok(client) = super::client(base, Duration::from_secs(10)) else {
        return Vec::new();
    };
    let url = format!("{}/api/v1/targets", base.trim_end_matches('/'));
    let Ok(targets) = super::fetch_json(&client, &url, bearer_token).await else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for t in targets
        .get("targets")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        let text = |key: &str| t.get(key).and_then(Json::as_str).unwrap_or_default();
        let Some(engine) = Engine::from_name(text("engine")) else {
            continue;
        };
        let Ok(response) = client.get(text("url")).send().await else {
            continue;
        };
        if let Ok(body) = response.text().await {
            out.push(LiveTarget::from_body(
                text("name"),
                engine,
                text("version"),
                &body,
            ));
        }
    }
    out
}

/// A finding per query and series that an engine running does not export although a version
/// of it did (or no version ever did).
pub fn renamed_findings(selections: &[Selection], live: &[LiveTarget]) -> Vec<Finding> {
    let mut missing: BTreeMap<(&str, &str, &str), (&Selection, Vec<&LiveTarget>)> = BTreeMap::new();
    for sel in selections {
        for name in &sel.names {
            let Some(engine) = engine_of(name) else {
                continue;
            };
            let family = family_of(name);
            // Families the catalogue has in the current version may appear only once used
            // (LoRA, speculative decoding): only a removed or unknown one is a rename.
            if family.is_some_and(|f| f.removed.is_empty()) {
                continue;
            }
            let bridged = family.map(|f| f.instead).is_some_and(|instead| {
                sel.names
                    .iter()
                    .any(|n| n != name && instead.contains(n.as_str()))
            });
            for target in live.iter().filter(|t| t.engine == engine) {
                if !target.series.contains(name) && !bridged {
                    missing
                        .entry((&sel.path, &sel.place, name))
                        .or_insert((sel, Vec::new()))
                        .1
                        .push(target);
                }
            }
        }
    }
    missing
        .into_iter()
        .map(|((path, place, name), (sel, targets))| {
            let family = family_of(name);
            let running: Vec<String> = targets
                .iter()
                .map(|t| format!("{} ({} {})", t.name, engine_title(t.engine), t.version))
                .collect();
            let (had, fix) = match family {
                Some(f) if !f.instead.is_empty() => (
                    format!("; {} had it", f.versions()),
                    format!(
                        "query {} instead (or `new or old` while versions are mixed)",
                        f.instead
                    ),
                ),
                Some(f) => (
                    format!("; {} had it", f.versions()),
                    "drop the query: the engine no longer exports it".to_string(),
                ),
                None => (
                    String::new(),
                    "no engine version exports it: check the name".to_string(),
                ),
            };
            Finding {
                severity: Severity::Warning,
                check: "renamed-series",
                subject: path.to_string(),
                place: place.to_string(),
                message: format!(
                    "{name} is not exported by the engine running{had}: this query stays empty"
                ),
                evidence: vec![
                    format!("expr: {}", sel.written),
                    format!("running: {}", running.join(", ")),
                ],
                fix,
                runbook: String::new(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selection(names: &[&str]) -> Selection {
        Selection {
            path: "rules.yml".into(),
            place: "alert KV".into(),
            written: names.join(" or "),
            names: names.iter().map(|n| n.to_string()).collect(),
        }
    }

    #[test]
    fn a_query_of_a_series_the_running_version_dropped_is_found_with_its_replacement() {
        let body = include_str!("../../tests/fixtures/reconstructed/vllm-0.33.txt");
        let live = [LiveTarget::from_body("a", Engine::Vllm, "0.33.0", body)];
        let found = renamed_findings(&[selection(&["vllm:gpu_cache_usage_perc"])], &live);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].check, "renamed-series");
        assert_eq!(found[0].place, "alert KV");
        assert!(
            found[0].fix.contains("vllm:kv_cache_usage_perc"),
            "{found:?}"
        );
        assert_eq!(found[0].evidence[1], "running: a (vLLM 0.33.0)");
        // Bridged, current, or another engine's: nothing to say.
        let fine = [
            selection(&["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"]),
            selection(&["vllm:num_requests_running"]),
            selection(&["tgi_queue_size"]),
        ];
        assert_eq!(renamed_findings(&fine, &live), vec![]);
        let typo = renamed_findings(&[selection(&["vllm:num_requests_runing"])], &live);
        assert!(
            typo[0].fix.contains("no engine version exports it"),
            "{typo:?}"
        );
    }
}
