//! The metric reference (docs/metrics.md), generated from the signal table so the docs cannot
//! drift from the normaliser.

use std::fmt::Write as _;

use super::Engine;
use super::recipe::How;
use super::signals::SIGNALS;

/// Renders the reference as Markdown.
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "# Canonical metrics\n\n\
         Generated from `src/engines/signals.rs` (the one table the normaliser evaluates) and,\n\
         for the GPU and host signals at the end, `src/gpu/signals.rs`; a test fails when this\n\
         file is out of date. Regenerate with\n\
         `LLMWATCH_BLESS=1 cargo test --test integration docs`.\n\n\
         Every series carries `engine` (vllm, tgi, llamacpp, sglang) and `model` labels;\n\
         `llm_requests_finished_total` adds `outcome`. Histograms keep the engine's own buckets.\n\
         `llm_engine_info{engine,version} 1` names the engine version.\n\n\
         Per engine a cell says **native** (the engine's series, renamed; a later name in\n\
         parentheses is the older name read when the newer is absent), **derived** (a formula) or\n\
         **missing** (why, and what to use instead).\n",
    );
    for signal in SIGNALS {
        let _ = write!(
            out,
            "\n## `{}`\n\n{} Type: {}, unit: {}. OTLP: {}.\n\n| engine | how | from | note |\n|---|---|---|---|\n",
            signal.name,
            signal.help,
            signal.kind.as_str(),
            signal.unit,
            crate::otlp::metrics::describe_otel(signal.name, signal.kind.as_str())
        );
        for engine in Engine::ALL {
            let mapping = signal.mapping(engine);
            let (how, from) = match &mapping.how {
                How::Native(expr) => ("native", expr.describe()),
                How::Derived(expr) => ("derived", expr.describe()),
                How::Missing => ("missing", String::new()),
            };
            write_mapping_row(&mut out, engine.as_str(), how, &from, mapping.note);
        }
    }
    out
}

/// One row of a signal's table: who gives it, how, from what (as code, when anything) and
/// the note, with `|` escaped so Markdown keeps the columns.
pub(crate) fn write_mapping_row(out: &mut String, who: &str, how: &str, from: &str, note: &str) {
    let from = if from.is_empty() {
        String::new()
    } else {
        format!("`{from}`")
    };
    let _ = writeln!(
        out,
        "| {who} | {how} | {} | {} |",
        from.replace('|', "\\|"),
        note.replace('|', "\\|")
    );
}
