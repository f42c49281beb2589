//! Fuzzes the proxy's chunk scanner: no panic on any bytes, and whatever object the derived
//! deserialiser reads, the scan reads with the same facts
//! (`llmwatch::sse::scan::check_against_chunk`); and, the bytes cut at their first newline
//! into two chunks, the second read by the first's shape, and by the templates learnt from
//! the first, reads as it is walked (`llmwatch::sse::scan::check_by_shape`,
//! `llmwatch::sse::scan::check_by_template`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = llmwatch::sse::scan::check_against_chunk(data) {
        panic!("{broken}");
    }
    let newline = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let (first, second) = (&data[..newline], data.get(newline + 1..).unwrap_or_default());
    if let Err(broken) = llmwatch::sse::scan::check_by_shape(first, second) {
        panic!("{broken}");
    }
    if let Err(broken) = llmwatch::sse::scan::check_by_template(first, second) {
        panic!("{broken}");
    }
});
