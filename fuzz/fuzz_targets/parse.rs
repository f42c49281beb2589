//! Fuzzes the exposition parser: no panic in either mode, the engine normaliser runs on every
//! lenient parse, and every input holds the parser's invariants
//! (`llmwatch::exposition::invariants::check`: strict round trip, and lenient equals strict
//! without the skipped lines), and read as OpenMetrics its invariants too
//! (`check_openmetrics`: strict accepts less than 0.0.4, the writer's text passes strict).

#![no_main]

use libfuzzer_sys::fuzz_target;
use llmwatch::engines::{Index, detect, normalise};
use llmwatch::exposition::{Mode, invariants, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(lenient) = parse(text, Mode::Lenient) {
        let index = Index::new(&lenient);
        if let Some(engine) = detect(&index).engine {
            let _ = normalise(&index, engine, "m");
        }
        let _ = lenient.duplicate_series();
    }
    if let Err(broken) = invariants::check(text) {
        panic!("{broken}");
    }
    if let Err(broken) = invariants::check_openmetrics(text) {
        panic!("{broken}");
    }
});
