//! Property test: write ∘ parse is the identity on expositions, for names with colons, label
//! values with escapes and any UTF-8, and every float including ±Inf and NaN.

use llmwatch::exposition::{Mode, parse, write_family_header, write_sample};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct GenSample {
    labels: Vec<(String, String)>,
    value: f64,
    timestamp: Option<i64>,
}

#[derive(Debug, Clone)]
struct GenFamily {
    name: String,
    kind: &'static str,
    help: Option<String>,
    samples: Vec<GenSample>,
}

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z_:][a-zA-Z0-9_:]{0,20}"
}

fn label_name() -> impl Strategy<Value = String> {
    "[a-zA-Z_][a-zA-Z0-9_]{0,10}"
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::NAN),
        (0u64..10_000_000).prop_map(|v| v as f64),
    ]
}

fn sample() -> impl Strategy<Value = GenSample> {
    (
        prop::collection::btree_map(label_name(), any::<String>(), 0..4),
        value(),
        prop::option::of(0i64..4_000_000_000_000),
    )
        .prop_map(|(labels, value, timestamp)| GenSample {
            labels: labels.into_iter().collect(),
            value,
            timestamp,
        })
}

fn family() -> impl Strategy<Value = GenFamily> {
    (
        name(),
        prop::sample::select(vec!["counter", "gauge", "untyped"]),
        prop::option::of("[^\n]{0,30}"),
        prop::collection::vec(sample(), 1..5),
    )
        .prop_map(|(name, kind, help, samples)| GenFamily {
            name,
            kind,
            help: help.map(|h| h.trim_matches([' ', '\t', '\r']).to_string()),
            samples,
        })
}

fn same(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn write_then_parse_round_trips(families in prop::collection::vec(family(), 1..6)) {
        // Family names must be unique for the round trip to be one-to-one.
        let mut seen = std::collections::HashSet::new();
        let families: Vec<GenFamily> =
            families.into_iter().filter(|f| seen.insert(f.name.clone())).collect();
        let mut text = String::new();
        for f in &families {
            write_family_header(&mut text, &f.name, f.help.as_deref(), f.kind);
            for s in &f.samples {
                let labels = s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()));
                write_sample(&mut text, &f.name, labels, s.value, s.timestamp.map(|t| t as f64));
            }
        }
        let exp = parse(&text, Mode::Strict).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(exp.families.len(), families.len());
        for (got, want) in exp.families.iter().zip(&families) {
            prop_assert_eq!(got.name, want.name.as_str());
            prop_assert_eq!(got.kind.as_text_004(), want.kind);
            let help = want.help.as_deref().filter(|h| !h.is_empty());
            prop_assert_eq!(got.help.as_deref().filter(|h| !h.is_empty()), help);
            prop_assert_eq!(got.samples.len(), want.samples.len());
            for (gs, ws) in exp.samples_of(got).iter().zip(&want.samples) {
                prop_assert!(same(gs.value, ws.value), "{} vs {}", gs.value, ws.value);
                prop_assert_eq!(gs.timestamp, ws.timestamp.map(|t| t as f64));
                let labels: Vec<(&str, &str)> =
                    exp.labels_of(gs).iter().map(|l| (l.name, l.value.as_ref())).collect();
                let want_labels: Vec<(&str, &str)> =
                    ws.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                prop_assert_eq!(labels, want_labels);
            }
        }
    }

    #[test]
    fn parser_never_panics_on_arbitrary_text(text in ".{0,400}") {
        let _ = parse(&text, Mode::Strict);
        let lenient = parse(&text, Mode::Lenient);
        prop_assert!(lenient.is_ok());
    }
}

/// Inputs the fuzzer once broke hold the fuzz target's invariants.
#[test]
fn fuzz_regressions_hold_the_fuzz_invariants() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let Ok(text) = String::from_utf8(std::fs::read(&path).unwrap()) else {
            continue;
        };
        seen += 1;
        if let Err(broken) = llmwatch::exposition::invariants::check(&text) {
            panic!("{}: {broken}", path.display());
        }
        if let Err(broken) = llmwatch::exposition::invariants::check_openmetrics(&text) {
            panic!("{} (OpenMetrics): {broken}", path.display());
        }
    }
    assert!(seen >= 2, "fuzz regression inputs missing");
}

/// The invariants hold on every exposition fixture too (the llama.cpp `metrics-*` captures
/// and every reconstructed sample).
#[test]
fn engine_fixtures_hold_the_fuzz_invariants() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let captures = std::fs::read_dir(root.join("llamacpp")).unwrap();
    let reconstructed = std::fs::read_dir(root.join("reconstructed")).unwrap();
    let mut checked = 0;
    for path in captures.chain(reconstructed).map(|e| e.unwrap().path()) {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let is_exposition =
            name.starts_with("metrics-") || path.parent() == Some(&root.join("reconstructed"));
        if !is_exposition {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        if let Err(broken) = llmwatch::exposition::invariants::check(&text) {
            panic!("{}: {broken}", path.display());
        }
        // Written as OpenMetrics, every engine's body passes the strict check, and holds it.
        let exp = parse(&text, Mode::Strict).unwrap();
        let openmetrics = llmwatch::exposition::write_openmetrics(&exp);
        if let Err(broken) = llmwatch::exposition::invariants::check_openmetrics(&openmetrics) {
            panic!("{} as OpenMetrics: {broken}", path.display());
        }
        let again = llmwatch::exposition::parse_openmetrics(&openmetrics, Mode::Strict).unwrap();
        assert_eq!(
            again.sample_count(),
            exp.sample_count(),
            "{}",
            path.display()
        );
        checked += 1;
    }
    assert_eq!(
        checked,
        3 + 8,
        "3 llama.cpp captures and 8 reconstructed samples"
    );
}
