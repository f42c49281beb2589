//! The one integration-test binary. Tests start the real `llmwatch` binary and talk to real
//! servers: a canned HTTP server in-process, and a real llama.cpp server where installed.

// Test helpers outside #[test] functions may fail loudly: a panic is a test failure here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod alert_scenarios;
mod alerts;
mod alerts_agreement;
mod alerts_agreement_gpu;
mod bad_input;
mod bench;
mod demo;
mod docs;
mod doctor;
mod export;
mod export_gpu;
mod export_lint;
mod export_prometheus;
mod fixtures;
mod gpu;
mod lint;
mod llamacpp_real;
mod openmetrics;
mod otlp;
mod otlp_grpc;
mod overview;
mod prometheus_real;
mod promtool;
mod proxy;
mod proxy_tls;
mod real_clients;
mod roundtrip;
mod sim_server;
mod sim_streams;
mod top;
mod up;
mod up_config;
mod util;
mod web;
