//! Whether a series a query selects exists: in some engine version (the family catalogue), in
//! llmwatch's schema and recording rules, or in the user's own recording rules.

use std::collections::HashSet;

use crate::engines::families::{FAMILIES, Family, Kind, Quirk, engine_of, engine_title, family_of};
use crate::findings::Severity;

use super::Issue;

/// Series names that exist besides the engines' own: llmwatch's canonical schema and
/// recording rules, and the recording rules in the files being linted.
#[derive(Debug, Default)]
pub struct Known {
    names: HashSet<String>,
    /// Recorded series whose rule already takes a rate.
    rated: HashSet<String>,
}

impl Known {
    /// llmwatch's names plus `recorded`: the user's `record:` names, each with whether its
    /// expression already takes a rate.
    pub fn new(recorded: impl IntoIterator<Item = (String, bool)>) -> Known {
        let mut names = HashSet::new();
        let mut rated = HashSet::new();
        for (name, is_rate) in recorded {
            if is_rate {
                rated.insert(name.clone());
            }
            names.insert(name);
        }
        for signal in crate::engines::SIGNALS {
            match signal.kind {
                crate::engines::SignalKind::Histogram => {
                    for part in ["_bucket", "_sum", "_count"] {
                        names.insert(format!("{}{part}", signal.name));
                    }
                }
                _ => {
                    names.insert(signal.name.to_string());
                }
            }
        }
        names.insert("llm_engine_info".to_string());
        // The GPU and host signals and the GPU join (src/gpu/signals.rs).
        names.extend(crate::gpu::GPU_SIGNALS.iter().map(|s| s.name.to_string()));
        names.insert("llm_gpu_server_info".to_string());
        names.extend(crate::export::record_names());
        Known { names, rated }
    }

    pub fn has(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// Whether `name` is already a rate: a recording rule's result, by its rule or by the
    /// `level:metric:operation` naming convention (`…:rate5m`).
    pub fn has_rate_name(&self, name: &str) -> bool {
        self.rated.contains(name)
            || [":rate", ":irate", ":increase"]
                .iter()
                .any(|op| name.contains(op))
    }
}

/// Whether llmwatch's own naming owns `name` (so an unknown one is a mistake): the `llm:`
/// schema and the canonical `llm_` signals. The proxy's and the client-side series
/// (`llm_proxy_`, `llm_client_`) and self-metrics are not checked.
fn llmwatch_owned(name: &str) -> bool {
    name.starts_with("llm:")
        || (name.starts_with("llm_")
            && !name.starts_with("llm_proxy_")
            && !name.starts_with("llm_client_"))
}

/// What is wrong with selecting `name`, if anything. `selected` is every name the whole
/// expression selects: an old name beside its replacement (`new or old`) bridges versions and
/// is fine.
pub fn check_name(name: &str, known: &Known, selected: &[&str], recorded: bool) -> Option<Issue> {
    if name.starts_with("__var") || known.has(name) {
        return None;
    }
    if let Some(family) = family_of(name) {
        let bridged = !family.instead.is_empty()
            && selected.iter().any(|s| s.starts_with(replacement(family)));
        // Recording a series passes it on; what it means matters where it is shown.
        let quirk_shown = !recorded || family.quirk == Quirk::Fraction;
        return if bridged || (!quirk_shown && family.removed.is_empty()) {
            None
        } else {
            check_family(name, family)
        };
    }
    if engine_of(name).is_some() {
        return Some(unknown_engine_series(name));
    }
    if llmwatch_owned(name) {
        return Some(Issue::new(
            Severity::Critical,
            "unknown-series",
            format!("{name} is not an llmwatch series, so this selects nothing"),
            suggestion(name, known_llmwatch(known)).map_or_else(
                || "see docs/metrics.md for the llm_ and llm: series".to_string(),
                |s| format!("did you mean {s}?"),
            ),
        ));
    }
    None
}

fn known_llmwatch(known: &Known) -> impl Iterator<Item = &str> {
    known.names.iter().map(String::as_str)
}

/// A known family: only a removed one, or one with a quirk, is worth a word.
fn check_family(name: &str, family: &Family) -> Option<Issue> {
    if !family.removed.is_empty() {
        // With nothing to move to, knowing is all there is to it.
        let severity = if family.instead.starts_with("nothing") {
            Severity::Info
        } else {
            Severity::Warning
        };
        return Some(Issue::new(
            severity,
            "removed-series",
            format!(
                "{name} exists only in {}; later versions export nothing under this name",
                family.versions()
            ),
            match family.instead.strip_prefix("nothing: ") {
                Some(why) => why.to_string(),
                None => format!("use {}", family.instead),
            },
        ));
    }
    match family.quirk {
        Quirk::LifetimeAverage => Some(Issue::new(
            Severity::Warning,
            "lifetime-average",
            format!("{name} is an average over the server's whole life, not a current value"),
            "do not show or alert on it as current; for llama.cpp busy slots use llamacpp:requests_processing".into(),
        )),
        Quirk::ScrapeWindow => Some(Issue::new(
            Severity::Info,
            "scrape-windowed",
            format!(
                "{name} is averaged since the previous scrape and reset by every scrape: with two scrapers each sees part of the traffic"
            ),
            "prefer rate() of llamacpp:prompt_tokens_total / llamacpp:tokens_predicted_total".into(),
        )),
        Quirk::None | Quirk::Fraction => None,
    }
}

/// The series name a removed family's replacement starts with (`instead` up to its first
/// space or parenthesis).
fn replacement(family: &Family) -> &'static str {
    let end = family
        .instead
        .find([' ', '(', ')'])
        .unwrap_or(family.instead.len());
    &family.instead[..end]
}

/// An engine-prefixed name no version exports: the `_total` trap, a histogram's base name,
/// or a plain unknown name (with the nearest real one).
fn unknown_engine_series(name: &str) -> Issue {
    let with_total = format!("{name}_total");
    if family_of(&with_total).is_some_and(|f| f.kind == Kind::Counter) {
        return Issue::new(
            Severity::Critical,
            "missing-total",
            format!(
                "{name} does not exist: the counter's series is {with_total}, so this selects nothing"
            ),
            format!("select {with_total}"),
        );
    }
    if let Some(bare) = name.strip_suffix("_total")
        && family_of(bare).is_some_and(|f| f.kind == Kind::Counter)
    {
        return Issue::new(
            Severity::Critical,
            "extra-total",
            format!("{name} does not exist: this engine's counter is {bare}, without _total"),
            format!("select {bare}"),
        );
    }
    if family_of(&format!("{name}_bucket")).is_some() {
        return Issue::new(
            Severity::Critical,
            "histogram-base-name",
            format!(
                "{name} is a histogram: its series are {name}_bucket, _sum and _count, never {name}"
            ),
            format!(
                "select {name}_bucket (for quantiles, with rate()) or rate({name}_sum) / rate({name}_count)"
            ),
        );
    }
    let engine = engine_of(name).map_or("", engine_title);
    let nearest = suggestion(
        name,
        FAMILIES
            .iter()
            .filter(|f| f.kind != Kind::Prefix && engine_of(f.name) == engine_of(name))
            .map(|f| f.name),
    );
    Issue::new(
        Severity::Critical,
        "unknown-series",
        format!("no {engine} version exports {name}, so this selects nothing"),
        nearest.map_or_else(
            || "check the engine's metric list in docs/metrics.md".to_string(),
            |n| format!("did you mean {n}?"),
        ),
    )
}

/// The closest of `candidates` to `name`, if close enough to be a typo or a rename.
fn suggestion<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    let limit = (name.len() / 4).max(2);
    candidates
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c.to_string())
}

/// Levenshtein distance over bytes (names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// Whether `name` holds a 0–1 fraction.
pub fn is_fraction(name: &str) -> bool {
    if family_of(name).is_some_and(|f| f.quirk == Quirk::Fraction) {
        return true;
    }
    llmwatch_owned(name) && name.contains("ratio")
}

/// Whether `name` is a gauge (or info metric) of an engine: its rate means nothing.
pub fn is_gauge(name: &str) -> bool {
    family_of(name).is_some_and(|f| matches!(f.kind, Kind::Gauge | Kind::Info))
}

/// Whether `name` is a counter or a part of a histogram or summary: a total since start.
pub fn is_cumulative(name: &str) -> bool {
    match family_of(name) {
        Some(f) => match f.kind {
            Kind::Counter | Kind::Histogram => true,
            Kind::Summary => name != f.name,
            Kind::Gauge | Kind::Info | Kind::Prefix => false,
        },
        None => ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .any(|s| name.ends_with(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_real_mistakes_are_named() {
        let known = Known::new([]);
        let check = |name: &str| check_name(name, &known, &[name], false).map(|i| i.check);
        assert_eq!(check("vllm:num_preemptions"), Some("missing-total"));
        assert_eq!(check("vllm:generation_tokens"), Some("missing-total"));
        assert_eq!(check("tgi_request_count_total"), Some("extra-total"));
        assert_eq!(
            check("vllm:time_to_first_token_seconds"),
            Some("histogram-base-name")
        );
        assert_eq!(check("vllm:gpu_cache_usage_perc"), Some("removed-series"));
        assert_eq!(
            check("llamacpp:kv_cache_usage_ratio"),
            Some("removed-series")
        );
        assert_eq!(
            check("llamacpp:n_busy_slots_per_decode"),
            Some("lifetime-average")
        );
        assert_eq!(check("vllm:kv_cache_usage_percent"), Some("unknown-series"));
        assert_eq!(check("llm:made_up"), Some("unknown-series"));
        assert_eq!(check("vllm:num_preemptions_total"), None);
        assert_eq!(check("llm_time_to_first_token_seconds_bucket"), None);
        assert_eq!(check("llm:kv_cache_usage_ratio"), None);
        assert_eq!(check("node_cpu_seconds_total"), None);
        let unknown = check_name("vllm:kv_cache_usage_percent", &known, &[], false).unwrap();
        assert!(
            unknown.fix.contains("vllm:kv_cache_usage_perc"),
            "{unknown:?}"
        );
        let old = "vllm:gpu_cache_usage_perc";
        let both = [old, "vllm:kv_cache_usage_perc"];
        assert_eq!(
            check_name(old, &known, &both, false),
            None,
            "new or old bridges versions"
        );
        let lifetime = "llamacpp:n_busy_slots_per_decode";
        assert_eq!(
            check_name(lifetime, &known, &[lifetime], true),
            None,
            "recorded, not shown"
        );
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
