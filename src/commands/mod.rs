//! The commands the binary runs. Each command is a library function so tests and other
//! commands can call it; `main.rs` only parses arguments and prints.

pub mod bench;
pub mod demo;
pub mod doctor;
pub mod export;
pub mod lint;
pub mod proxy;
pub mod render;
pub mod render_gpu;
pub mod report;
pub mod scrape;
pub mod sim;
pub mod up;
