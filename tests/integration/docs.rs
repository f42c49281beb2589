//! docs/metrics.md is generated from the signal table; this fails when it is stale.

#[test]
fn metric_reference_matches_the_signal_table() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/metrics.md");
    let want = llmwatch::engines::reference_markdown()
        + &llmwatch::gpu::reference_markdown()
        + &llmwatch::otlp::reference_markdown();
    if std::env::var("LLMWATCH_BLESS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/metrics.md is out of date: run LLMWATCH_BLESS=1 cargo test --test integration docs"
    );
}

#[test]
fn every_signal_has_a_cell_per_engine_and_missing_cells_say_why() {
    use llmwatch::engines::recipe::How;
    use llmwatch::engines::{Engine, SIGNALS};
    let mut names = std::collections::HashSet::new();
    for signal in SIGNALS {
        assert!(names.insert(signal.name), "{} twice", signal.name);
        assert!(signal.name.starts_with("llm_"));
        if signal.kind == llmwatch::engines::SignalKind::Counter {
            assert!(signal.name.ends_with("_total"), "{}", signal.name);
        }
        for engine in Engine::ALL {
            let m = signal.mapping(engine);
            if m.how == How::Missing {
                assert!(
                    !m.note.is_empty(),
                    "{} / {engine}: missing without a reason",
                    signal.name
                );
            }
            if let How::Native(expr) | How::Derived(expr) = m.how {
                assert!(
                    expr.describe().contains(engine.prefix()),
                    "{} / {engine}",
                    signal.name
                );
            }
        }
    }
}
