//! `llmwatch sim`: a simulated inference server. So far the engine model only
//! (continuous batching over a paged KV cache on simulated time); the HTTP API, metrics
//! dialects, faults and scenarios build on it.

pub mod engine;
