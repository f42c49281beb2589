//! Trace replay: JSON lines of `{"timestamp": SECONDS, "input_tokens": N, "output_tokens": M}`
//! (seconds from the start of the trace), sent open loop at those times with those lengths.

/// One request of a trace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TraceEntry {
    /// Seconds from the start of the trace.
    pub at: f64,
    /// Prompt length in tokens.
    pub input_tokens: u32,
    /// Output length in tokens.
    pub output_tokens: u32,
}

#[derive(serde::Deserialize)]
struct Line {
    timestamp: f64,
    input_tokens: u32,
    output_tokens: u32,
}

/// Reads a trace; entries come back sorted by time. Errors name the file and line.
pub fn load(path: &std::path::Path) -> Result<Vec<TraceEntry>, String> {
    let name = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: cannot read: {e}"))?;
    let mut entries = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let l: Line = serde_json::from_str(line).map_err(|e| {
            format!(
                "{name}:{}: expected {{\"timestamp\", \"input_tokens\", \"output_tokens\"}}: {e}",
                i + 1
            )
        })?;
        if !(l.timestamp.is_finite() && l.timestamp >= 0.0)
            || l.input_tokens == 0
            || l.output_tokens == 0
        {
            return Err(format!(
                "{name}:{}: timestamps must be ≥ 0 and lengths ≥ 1",
                i + 1
            ));
        }
        entries.push(TraceEntry {
            at: l.timestamp,
            input_tokens: l.input_tokens,
            output_tokens: l.output_tokens,
        });
    }
    if entries.is_empty() {
        return Err(format!("{name}: no requests in the trace"));
    }
    entries.sort_by(|a, b| a.at.total_cmp(&b.at));
    Ok(entries)
}
