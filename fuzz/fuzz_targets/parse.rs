//! Fuzzes the exposition parser: no panic in either mode, and whatever parses strictly
//! re-encodes to text that parses again to the same families and sample count. The engine
//! normaliser runs on every lenient parse, so it sees odd input too.

#![no_main]

use libfuzzer_sys::fuzz_target;
use llmwatch::engines::{Index, detect, normalise};
use llmwatch::exposition::{Mode, parse, write_exposition};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(exp) = parse(text, Mode::Lenient) {
        let index = Index::new(&exp);
        if let Some(engine) = detect(&index).engine {
            let _ = normalise(&index, engine, "m");
        }
        let _ = exp.duplicate_series();
    }
    let Ok(exp) = parse(text, Mode::Strict) else { return };
    let written = write_exposition(&exp);
    let again = match parse(&written, Mode::Strict) {
        Ok(again) => again,
        Err(e) => panic!("re-encoded text does not parse: {e}\n{written}"),
    };
    assert_eq!(again.sample_count(), exp.sample_count());
});
