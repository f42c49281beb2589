//! The proxy's chunk scanner on the four kinds of chunk a vLLM stream sends (role, token,
//! finish, usage), for an instruction count per chunk under callgrind: run it with 0 and
//! with N chunks and divide the difference by N (docs/benchmarks.md). `walk` reads the four
//! in turn, each walked; `stream` reads them as a 16-token stream sends them (role, sixteen
//! tokens, finish, usage), the way the proxy does: each by the shape of the one before when
//! it fits.
//!
//! `cargo run --release --example sse_scan_cost -- CHUNKS [walk|stream]`

use std::io::Write;

use anyhow::Context;

const CHUNKS: [&str; 4] = [
    r#"{"choices":[{"delta":{"content":"","role":"assistant"},"finish_reason":null,"index":0,"logprobs":null}],"created":1796190945,"id":"chatcmpl-sim","model":"sim-vllm","object":"chat.completion.chunk"}"#,
    r#"{"choices":[{"delta":{"content":" the"},"finish_reason":null,"index":0,"logprobs":null}],"created":1796190945,"id":"chatcmpl-sim","model":"sim-vllm","object":"chat.completion.chunk"}"#,
    r#"{"choices":[{"delta":{"content":" calm"},"finish_reason":"length","index":0,"logprobs":null,"stop_reason":null}],"created":1796190945,"id":"chatcmpl-sim","model":"sim-vllm","object":"chat.completion.chunk"}"#,
    r#"{"choices":[],"created":1796190945,"id":"chatcmpl-sim","model":"sim-vllm","object":"chat.completion.chunk","usage":{"completion_tokens":16,"prompt_tokens":32,"total_tokens":48}}"#,
];

fn main() -> anyhow::Result<()> {
    let count: usize = std::env::args()
        .nth(1)
        .context("give the number of chunks to scan")?
        .parse()?;
    let stream = std::env::args().nth(2).as_deref() == Some("stream");
    let mut read = 0;
    if stream {
        // Role, sixteen tokens, finish, usage.
        let order = [0].into_iter().chain([1; 16]).chain([2, 3]);
        let mut shape = llmwatch::sse::scan::ChunkShape::default();
        for i in order.cycle().take(count) {
            let facts = shape.scan(std::hint::black_box(CHUNKS[i].as_bytes()));
            read += usize::from(std::hint::black_box(facts).is_some());
        }
    } else {
        for chunk in CHUNKS.iter().cycle().take(count) {
            let facts = llmwatch::sse::scan::scan_chunk(std::hint::black_box(chunk.as_bytes()));
            read += usize::from(std::hint::black_box(facts).is_some());
        }
    }
    anyhow::ensure!(
        read == count,
        "{} of {count} chunks were not read",
        count - read
    );
    writeln!(std::io::stdout(), "{count} chunks read")?;
    Ok(())
}
