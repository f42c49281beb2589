//! Writes a vLLM `/metrics` body serving N models (a server with many LoRA adapters, or a
//! federation endpoint), made from the vLLM 0.33 capture: every series of its one model is
//! repeated once per model, family by family, so the body stays a valid exposition.
//!
//! `cargo run --release --example many_models -- 400 > /tmp/vllm-400-models.txt` (13 MB)

use std::io::Write;

use anyhow::Context;

const CAPTURE: &str = "tests/fixtures/reconstructed/vllm-0.33.txt";
const MODEL: &str = "model_name=\"meta-llama/Llama-3.1-8B-Instruct\"";

fn main() -> anyhow::Result<()> {
    let models: usize = std::env::args()
        .nth(1)
        .map_or(Ok(400), |a| a.parse())
        .context("usage: many_models [MODELS]")?;
    let text = std::fs::read_to_string(CAPTURE).with_context(|| format!("reading {CAPTURE}"))?;
    let mut out = String::with_capacity(text.len() * models);
    // A family's lines for its one model, repeated per model when the family ends.
    let mut held: Vec<&str> = Vec::new();
    let flush = |held: &mut Vec<&str>, out: &mut String| {
        for i in 0..models {
            let name = format!("model_name=\"meta-llama/Llama-3.1-8B-Instruct-lora-{i:03}\"");
            for line in held.iter() {
                out.push_str(&line.replace(MODEL, &name));
                out.push('\n');
            }
        }
        held.clear();
    };
    for line in text.lines() {
        if line.contains(MODEL) {
            held.push(line);
            continue;
        }
        flush(&mut held, &mut out);
        out.push_str(line);
        out.push('\n');
    }
    flush(&mut held, &mut out);
    std::io::stdout()
        .lock()
        .write_all(out.as_bytes())
        .context("writing the body")?;
    Ok(())
}
