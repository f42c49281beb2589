//! `llmwatch sim`: a simulated inference server. The engine model (continuous batching over
//! a paged KV cache on simulated time), the ground-truth recorder, the metrics dialects, a
//! real-time runtime and the OpenAI-compatible HTTP server. Faults, scenarios and the other
//! engines' native APIs come next.

pub mod dialect;
pub mod engine;
pub mod faults;
pub mod load;
pub mod record;
pub mod rng;
pub mod runtime;
pub mod scenario;
pub mod server;
