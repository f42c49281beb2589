//! Collect: getting scrape bodies from targets (HTTP, files) and checking them before parsing;
//! for `llmwatch up`, the targets, the scrape loop, and the state and history it publishes.
//! The interpretation of metrics is `engines`.

pub mod body;
pub mod fetch;
pub mod gpus;
pub mod history;
pub mod integrity;
pub mod lean_fetch;
pub mod local_gpus;
pub mod probe;
pub mod rollup;
pub mod samples;
pub mod scraper;
pub mod state;
pub mod targets;
