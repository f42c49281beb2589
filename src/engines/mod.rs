//! Engines: recognise which inference server produced a scrape, and map its series onto the
//! canonical `llm_*` schema.
//!
//! `signals` is the table (one row per canonical signal, one cell per engine), `recipe` its
//! vocabulary, `detect` the engine and version fingerprints, `normalise` the evaluator.
//! Nothing here does I/O.

pub mod canonical;
mod detect;
pub mod families;
mod index;
mod normalise;
pub mod recipe;
mod reference;
pub mod signals;

pub use detect::{Detection, detect};
pub use index::Index;
pub use normalise::{Histogram, Reading, SeriesValue, Source, Value, normalise};
pub use reference::reference_markdown;
pub(crate) use reference::write_mapping_row;
pub use signals::{OUTCOMES, SIGNALS, Signal, SignalKind, signal};

/// The inference servers llmwatch understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Engine {
    /// vLLM (`vllm:` prefix).
    Vllm,
    /// Hugging Face Text Generation Inference (`tgi_` prefix).
    Tgi,
    /// llama.cpp server (`llamacpp:` prefix).
    LlamaCpp,
    /// SGLang (`sglang:` prefix).
    Sglang,
}

impl Engine {
    /// All engines, in display order.
    pub const ALL: [Engine; 4] = [Engine::Vllm, Engine::Tgi, Engine::LlamaCpp, Engine::Sglang];

    /// The value of the canonical `engine` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Vllm => "vllm",
            Engine::Tgi => "tgi",
            Engine::LlamaCpp => "llamacpp",
            Engine::Sglang => "sglang",
        }
    }

    /// Parses the canonical `engine` label value.
    pub fn from_name(name: &str) -> Option<Engine> {
        Engine::ALL.into_iter().find(|e| e.as_str() == name)
    }

    /// The metric-name prefix that identifies the engine.
    pub fn prefix(self) -> &'static str {
        match self {
            Engine::Vllm => "vllm:",
            Engine::Tgi => "tgi_",
            Engine::LlamaCpp => "llamacpp:",
            Engine::Sglang => "sglang:",
        }
    }

    /// The engine label that names the served model, if the engine labels series with it.
    /// TGI and llama.cpp serve one model per process and carry no model label.
    pub fn model_label(self) -> Option<&'static str> {
        match self {
            Engine::Vllm | Engine::Sglang => Some("model_name"),
            Engine::Tgi | Engine::LlamaCpp => None,
        }
    }

    /// The HTTP path that reports the engine's version, and the JSON field holding it.
    pub fn version_endpoint(self) -> (&'static str, &'static str) {
        match self {
            Engine::Vllm => ("/version", "version"),
            Engine::Tgi => ("/info", "version"),
            Engine::LlamaCpp => ("/props", "build_info"),
            Engine::Sglang => ("/server_info", "version"),
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
