//! llmwatch: observability for LLM inference servers.
//!
//! The library is organised as collect → state → render. `exposition` reads and writes the
//! Prometheus text formats; `engines` recognises which inference server produced a scrape and
//! maps it onto one canonical schema; `collect` fetches scrapes over HTTP; `cli` and `commands`
//! are the thin layer the binary uses.

pub mod alerting;
pub mod bench;
pub mod catalog;
pub mod cli;
pub mod client_metrics;
pub mod clock;
pub mod collect;
pub mod commands;
pub mod config;
pub mod doctor;
pub mod engines;
pub mod events;
pub mod export;
pub mod exposition;
pub mod findings;
pub mod gpu;
pub mod http1;
pub mod lint;
pub mod otlp;
pub mod proxy;
pub mod rng;
pub mod sim;
pub mod sse;
pub mod tokenize;
pub mod ui;
pub mod up;
