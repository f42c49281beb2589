//! The one integration-test binary. Tests start the real `llmwatch` binary and talk to real
//! servers: a canned HTTP server in-process, and a real llama.cpp server where installed.

mod bad_input;
mod docs;
mod fixtures;
mod llamacpp_real;
mod roundtrip;
mod util;
