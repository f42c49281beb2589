//! Fuzzes the exposition parser:
//! - no panic in either mode, and the engine normaliser runs on every lenient parse;
//! - a strict parse re-encodes to text that parses again to the same series;
//! - a lenient parse equals the strict parse of the same body with the skipped lines
//!   removed (a skipped line must leave no trace in the parser's state).

#![no_main]

use libfuzzer_sys::fuzz_target;
use llmwatch::engines::{Index, detect, normalise};
use llmwatch::exposition::{Exposition, Mode, ParseErrorKind, parse, write_exposition};

fn shape(exp: &Exposition<'_>) -> Vec<(String, Vec<String>)> {
    exp.families
        .iter()
        .map(|f| {
            let samples = exp.samples_of(f).iter().map(|s| exp.series_key(s)).collect();
            (f.name.to_string(), samples)
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(lenient) = parse(text, Mode::Lenient) {
        let index = Index::new(&lenient);
        if let Some(engine) = detect(&index).engine {
            let _ = normalise(&index, engine, "m");
        }
        let _ = lenient.duplicate_series();
        let skipped: Vec<usize> = lenient
            .skipped
            .iter()
            .filter(|e| e.kind != ParseErrorKind::MissingFinalNewline)
            .map(|e| e.line)
            .collect();
        let mut kept = String::new();
        for (i, line) in text.split('\n').enumerate() {
            if !skipped.contains(&(i + 1)) {
                kept.push_str(line);
                kept.push('\n');
            }
        }
        if let Ok(strict) = parse(&kept, Mode::Strict) {
            assert_eq!(shape(&strict), shape(&lenient), "lenient != strict without skipped lines");
        }
    }
    let Ok(exp) = parse(text, Mode::Strict) else { return };
    let written = write_exposition(&exp);
    let again = match parse(&written, Mode::Strict) {
        Ok(again) => again,
        Err(e) => panic!("re-encoded text does not parse: {e}\n{written}"),
    };
    let series = |e: &Exposition<'_>| -> Vec<String> {
        let mut keys: Vec<String> = e.samples.iter().map(|s| e.series_key(s)).collect();
        keys.sort();
        keys
    };
    assert_eq!(series(&again), series(&exp));
});
