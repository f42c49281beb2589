//! Fuzzes the proxy's chunk scanner: no panic on any bytes, and whatever object the derived
//! deserialiser reads, the scan reads with the same facts
//! (`llmwatch::sse::scan::check_against_chunk`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = llmwatch::sse::scan::check_against_chunk(data) {
        panic!("{broken}");
    }
});
