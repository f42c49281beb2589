//! Fuzzes the lean HTTP/1.1 client's response parsing: no panic on any bytes, and a body
//! decodes the same whether it arrives whole or cut in two (`llmwatch::http1::check_split`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, wire)) = data.split_first() else {
        return;
    };
    if let Err(broken) = llmwatch::http1::check_split(wire, usize::from(cut)) {
        panic!("{broken}");
    }
});
