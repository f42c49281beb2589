//! `llmwatch sim`: a simulated inference server. So far the engine model (continuous
//! batching over a paged KV cache on simulated time) and the ground-truth recorder; the HTTP
//! API, metrics dialects, faults and scenarios build on them.

pub mod dialect;
pub mod engine;
pub mod record;
