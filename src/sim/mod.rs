//! `llmwatch sim`: a simulated inference server. The engine model (continuous batching over
//! a paged KV cache on simulated time), the ground-truth recorder, the metrics dialects, a
//! real-time runtime, the OpenAI-compatible and native HTTP APIs, faults, scenarios and
//! background load. See docs/sim.md.

pub mod dialect;
pub mod engine;
pub mod faults;
pub mod front;
pub mod gpu;
pub mod load;
pub mod record;
pub mod replay;
pub mod runtime;
pub mod scenario;
pub mod server;
