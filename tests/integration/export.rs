//! `llmwatch export`: `deploy/` is its output for the example stack; the rules pass promtool's
//! checks and unit tests; the schema rules, evaluated by promtool on real engine captures, give
//! the numbers the Rust normaliser gives; the Compose file only mounts files that exist.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use llmwatch::exposition::{Mode, parse};

use crate::util::{external_program, fixture, llmwatch, run_ok};

/// The repository's `deploy/`.
pub fn deploy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// The example stack's arguments, one per line.
fn example_args() -> Vec<String> {
    std::fs::read_to_string(deploy().join("example-stack.args"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// Runs `export` with the example stack's arguments into a fresh folder.
pub fn export_example() -> (tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["export".to_string()];
    args.extend(example_args());
    args.push(format!("--out={}", dir.path().display()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let stdout = run_ok(&args);
    let written = stdout
        .lines()
        .map(|l| {
            Path::new(l)
                .strip_prefix(dir.path())
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    (dir, written)
}

/// Runs `cmd` and fails the test with its output unless it succeeds.
pub(crate) fn succeed(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn deploy_is_the_exports_output_for_the_example_stack() {
    let (dir, written) = export_example();
    assert!(written.len() >= 20, "{written:?}");
    let mut drifted = Vec::new();
    for rel in &written {
        let fresh = std::fs::read_to_string(dir.path().join(rel)).unwrap();
        let committed = std::fs::read_to_string(deploy().join(rel)).unwrap_or_default();
        if fresh != committed {
            drifted.push(rel.clone());
        }
    }
    assert!(
        drifted.is_empty(),
        "deploy/ differs from the export's output in {drifted:?}; regenerate with\n  \
         cargo run -- export $(cat deploy/example-stack.args) --out deploy"
    );
}

#[test]
fn bad_export_options_exit_2_naming_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let out = format!("--out={}", dir.path().display());
    for (args, needle) in [
        (vec!["--target=http://x:1,engine=triton"], "unknown engine"),
        (
            vec!["--target=http://x:1,scrape=prometheus"],
            "needs engine=",
        ),
        (
            vec!["--target=http://x:1", "--scrape-interval=soon"],
            "--scrape-interval",
        ),
        (
            vec!["--target=http://x:1", "--ttft-objective=99"],
            "--ttft-objective",
        ),
    ] {
        let output = llmwatch()
            .arg("export")
            .args(&args)
            .arg(&out)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

#[test]
fn promtool_accepts_the_config_and_rules_and_their_unit_tests_pass() {
    let Some(promtool) = external_program("promtool") else {
        return;
    };
    let (dir, _) = export_example();
    let run =
        |args: &[&str], cwd: &Path| succeed(Command::new(&promtool).args(args).current_dir(cwd));
    run(
        &["check", "config", "prometheus/prometheus.yml"],
        dir.path(),
    );
    let tests = deploy().join("prometheus/tests");
    let mut files: Vec<String> = std::fs::read_dir(&tests)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with("_test.yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    let mut args = vec!["test", "rules"];
    args.extend(files.iter().map(String::as_str));
    run(&args, &tests);
}

/// Captures of real engines (and their reconstructions) the schema rules are checked on.
const CAPTURES: [&str; 9] = [
    "reconstructed/vllm-0.33.txt",
    "reconstructed/vllm-0.33-dp2.txt",
    "reconstructed/vllm-0.33-multi-model.txt",
    "reconstructed/vllm-0.10.txt",
    "reconstructed/vllm-0.8-v1.txt",
    "reconstructed/vllm-v0.txt",
    "reconstructed/tgi-3.3.txt",
    "reconstructed/sglang-0.5.23.txt",
    "llamacpp/metrics-during.txt",
];

/// promtool compares values exactly; both sides are rounded to 1e-6 the way PromQL's
/// `round` does, so a last-bit difference in a sum's order cannot fail the test.
fn rounded(v: f64) -> f64 {
    (v * 1e6 + 0.5).floor() / 1e6
}

fn selector(name: &str, labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", serde_json::to_string(v).unwrap()))
        .collect();
    format!("{name}{{{}}}", pairs.join(", "))
}

pub(crate) fn labels_of(
    exp: &llmwatch::exposition::Exposition<'_>,
    sample: &llmwatch::exposition::Sample<'_>,
) -> BTreeMap<String, String> {
    exp.labels_of(sample)
        .iter()
        .map(|l| (l.name.to_string(), l.value.to_string()))
        .collect()
}

pub(crate) fn input_series(
    out: &mut String,
    name: &str,
    labels: &BTreeMap<String, String>,
    value: f64,
) {
    let _ = writeln!(
        out,
        "      - series: {}\n        values: '{value}'",
        yaml_quote(&selector(name, labels))
    );
}

/// Expected samples per `llm:` name, written as promtool expression tests.
#[derive(Default)]
pub(crate) struct Expected(BTreeMap<String, Vec<String>>);

impl Expected {
    pub(crate) fn add(&mut self, name: &str, labels: &BTreeMap<String, String>, value: f64) {
        self.0.entry(name.to_string()).or_default().push(format!(
            "          - labels: {}\n            value: {}\n",
            yaml_quote(&selector("", labels)),
            rounded(value)
        ));
    }

    /// One rounded expression per name; `matcher` narrows it (e.g. to one job).
    pub(crate) fn write(self, out: &mut String, matcher: &str) {
        out.push_str("    promql_expr_test:\n");
        for (name, samples) in self.0 {
            let _ = writeln!(
                out,
                "      - expr: round({{__name__=\"{name}\"{matcher}}}, 0.000001)\n        eval_time: 0m\n        exp_samples:\n{}",
                samples.concat().trim_end()
            );
        }
    }
}

/// One promtool test group for a capture: its samples as input series (as one target
/// `capture:9000` of service `capture`), and per `llm:` series the value the normaliser gave.
fn schema_case(rel: &str, covered: &mut BTreeSet<(String, String)>) -> String {
    let text = std::fs::read_to_string(fixture(rel)).unwrap();
    let canonical = run_ok(&["scrape", "--format", "prom", fixture(rel).to_str().unwrap()]);
    let expected = parse(&canonical, Mode::Strict).unwrap();
    let engine = expected
        .samples
        .iter()
        .find(|s| s.name == "llm_engine_info")
        .and_then(|s| expected.label(s, "engine"))
        .unwrap()
        .to_string();
    let raw = parse(&text, Mode::Lenient).unwrap();
    // Engines without a model label get it from the scrape job, as the export's model= does.
    let model_from_target = matches!(engine.as_str(), "tgi" | "llamacpp");
    let default_model = expected
        .samples
        .iter()
        .find(|s| s.name == "llm_requests_running")
        .and_then(|s| expected.label(s, "model"))
        .unwrap_or("unknown")
        .to_string();
    let target = |labels: &mut BTreeMap<String, String>| {
        labels.insert("job".into(), engine.clone());
        labels.insert("instance".into(), "capture:9000".into());
        labels.insert("service".into(), "capture".into());
    };
    let mut les: BTreeMap<u64, String> = BTreeMap::new();
    let mut out = format!("  # {rel} ({engine})\n  - interval: 1m\n    input_series:\n");
    for sample in &raw.samples {
        if sample.value.is_nan() {
            continue;
        }
        let mut labels = labels_of(&raw, sample);
        if let Some(le) = labels.get("le") {
            let bound: f64 = le.parse().unwrap_or(f64::INFINITY);
            les.insert(bound.to_bits(), le.clone());
        }
        target(&mut labels);
        if model_from_target {
            labels.insert("model".into(), default_model.clone());
        }
        input_series(&mut out, sample.name, &labels, sample.value);
    }
    let mut expect = Expected::default();
    for sample in &expected.samples {
        if sample.name == "llm_engine_info" {
            continue;
        }
        let mut labels = labels_of(&expected, sample);
        if let Some(le) = labels.get_mut("le") {
            // The rules keep the engine's own spelling of each bound.
            let bound: f64 = le.parse().unwrap_or(f64::INFINITY);
            *le = les.get(&bound.to_bits()).cloned().unwrap_or(le.clone());
        }
        target(&mut labels);
        let name = sample.name.replacen("llm_", "llm:", 1);
        expect.add(&name, &labels, sample.value);
        covered.insert((engine.clone(), name));
    }
    expect.write(&mut out, "");
    out
}

/// One promtool test group for a capture as llmwatch exposes it: the bridge rules copy every
/// `llm_*` series to its `llm:` name with the same labels and value.
fn bridge_case(rel: &str, covered: &mut BTreeSet<String>) -> String {
    let canonical = run_ok(&["scrape", "--format", "prom", fixture(rel).to_str().unwrap()]);
    let exp = parse(&canonical, Mode::Strict).unwrap();
    let mut out = format!("  # {rel} through llmwatch\n  - interval: 1m\n    input_series:\n");
    let mut expect = Expected::default();
    for sample in exp.samples.iter().filter(|s| s.name != "llm_engine_info") {
        let mut labels = labels_of(&exp, sample);
        labels.insert("job".into(), "llmwatch".into());
        labels.insert("instance".into(), "capture".into());
        input_series(&mut out, sample.name, &labels, sample.value);
        let name = sample.name.replacen("llm_", "llm:", 1);
        expect.add(&name, &labels, sample.value);
        covered.insert(name);
    }
    expect.write(&mut out, ", job=\"llmwatch\"");
    out
}

/// Fails unless `deploy/REL` holds `text`; with `LLMWATCH_BLESS=1` writes it first.
pub(crate) fn assert_generated(rel: &str, text: &str) {
    let path = deploy().join(rel);
    if std::env::var("LLMWATCH_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, text).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "{} is out of date; rerun this test with LLMWATCH_BLESS=1",
        path.display()
    );
}

pub(crate) fn yaml_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The rule names of the engine schema groups, as `(engine, record)`.
fn engine_rules() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for engine in llmwatch::engines::Engine::ALL {
        for rule in llmwatch::export::schema::engine_group(engine).rules {
            out.insert((engine.as_str().to_string(), rule.name().to_string()));
        }
    }
    out
}

#[test]
fn schema_rules_on_real_captures_give_the_normalisers_numbers() {
    let mut covered = BTreeSet::new();
    let mut text = String::from(
        "# promtool test rules deploy/prometheus/tests/*.yml\n\
         # Generated by the integration test export::schema_rules_on_real_captures_give_the_normalisers_numbers\n\
         # (LLMWATCH_BLESS=1 rewrites it): each engine capture under tests/fixtures is fed to the\n\
         # rules-only schema rules, and every llm: series must equal what `llmwatch scrape` gives.\n\
         # The same captures as llmwatch exposes them check the llmwatch bridge rules.\n\
         rule_files:\n  - ../rules/llm-schema-engines.yml\n  - ../rules/llm-schema-llmwatch.yml\n\
         evaluation_interval: 1m\ntests:\n",
    );
    let mut bridged = BTreeSet::new();
    for rel in CAPTURES {
        text.push_str(&schema_case(rel, &mut covered));
        text.push_str(&bridge_case(rel, &mut bridged));
    }
    assert_generated("prometheus/tests/schema_test.yml", &text);
    // Rules for series no capture holds are tested by hand in schema_extra_test.yml.
    let extra =
        std::fs::read_to_string(deploy().join("prometheus/tests/schema_extra_test.yml")).unwrap();
    let uncovered: Vec<_> = engine_rules()
        .difference(&covered)
        .filter(|(engine, record)| {
            !extra.contains(&format!("expr: {record}\n"))
                || !extra.contains(&format!("engine=\"{engine}\""))
        })
        .cloned()
        .collect();
    assert!(
        uncovered.is_empty(),
        "schema rules no capture exercises: {uncovered:?}"
    );
    let bridge: BTreeSet<String> = llmwatch::export::schema::llmwatch_group()
        .rules
        .iter()
        .map(|r| r.name().to_string())
        .collect();
    let unbridged: Vec<_> = bridge.difference(&bridged).collect();
    assert!(
        unbridged.is_empty(),
        "bridge rules no capture exercises: {unbridged:?}"
    );
    let Some(promtool) = external_program("promtool") else {
        return;
    };
    succeed(
        Command::new(promtool)
            .args(["test", "rules", "schema_test.yml"])
            .current_dir(deploy().join("prometheus/tests")),
    );
}

#[test]
fn alertmanager_accepts_its_config_and_groups_alerts_by_service() {
    let text = std::fs::read_to_string(deploy().join("alertmanager/alertmanager.yml")).unwrap();
    let doc: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let group_by: Vec<&str> = doc["route"]["group_by"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(group_by.contains(&"service"), "{group_by:?}");
    assert!(doc["receivers"][0]["webhook_configs"][0]["url"].is_string());
    let Some(amtool) = external_program("amtool") else {
        return;
    };
    let config = deploy().join("alertmanager/alertmanager.yml");
    succeed(Command::new(&amtool).arg("check-config").arg(&config));
    // A page and a warning both reach the webhook.
    for severity in ["critical", "warning"] {
        succeed(
            Command::new(&amtool)
                .args(["config", "routes", "test", "--verify.receivers=webhook"])
                .arg(format!("--config.file={}", config.display()))
                .args(["alertname=LLMTargetDown", "service=chat"])
                .arg(format!("severity={severity}")),
        );
    }
}
