//! Fuzzes the proxy's request-head parser: no panic on any bytes, and a head reads the same
//! whole, with anything after it, or cut short (`llmwatch::proxy::check_head`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = llmwatch::proxy::check_head(data) {
        panic!("{broken}");
    }
});
