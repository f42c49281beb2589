//! llama.cpp server's hand-written exposition: `llamacpp:` names, no labels, `# TYPE` lines
//! naming the `_total` counters, C++ stream formatting with 6 significant digits, and the
//! two throughput gauges that measure only the window since the previous scrape.

use super::{Snapshot, header, write_raw};

/// The window the throughput gauges cover: what happened since the previous `/metrics`
/// call. The caller keeps it and resets it on every render, as llama.cpp does.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ScrapeWindow {
    /// Prompt tokens processed in the window.
    pub prompt_tokens: u64,
    /// Seconds spent on them.
    pub prompt_seconds: f64,
    /// Tokens generated in the window.
    pub generated_tokens: u64,
    /// Seconds spent on them.
    pub generated_seconds: f64,
}

/// C++ `operator<<` on a double with the default precision: 6 significant digits,
/// exponent form from 1e6 up (`1.23457e+06`), trailing zeros dropped.
fn cpp_double(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return if v.is_nan() {
            "nan".into()
        } else if v.is_infinite() {
            "inf".into()
        } else {
            "0".into()
        };
    }
    let exponent = v.abs().log10().floor() as i32;
    if !(-4..6).contains(&exponent) {
        let text = format!("{v:.5e}");
        let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
        let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    let decimals = (5 - exponent).max(0) as usize;
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// Renders llama.cpp's `/metrics` body. `window` is what happened since the previous
/// render; the caller resets it afterwards.
pub fn render_llamacpp(
    s: &Snapshot<'_>,
    window: &ScrapeWindow,
    busy_slots_per_decode: f64,
) -> String {
    let t = s.totals;
    let mut out = String::with_capacity(4096);
    let mut item = |name: &str, help: &str, kind: &str, value: f64| {
        header(&mut out, name, help, kind);
        write_raw(&mut out, name, [], &cpp_double(value));
    };
    let rate = |n: u64, secs: f64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    let processed = t.prompt_tokens.saturating_sub(t.cached_tokens);
    item(
        "llamacpp:prompt_tokens_total",
        "Number of prompt tokens processed, excluding cached tokens",
        "counter",
        processed as f64,
    );
    item(
        "llamacpp:prompt_tokens_cached_total",
        "Number of prompt tokens reused from the cache",
        "counter",
        t.cached_tokens as f64,
    );
    item(
        "llamacpp:prompt_seconds_total",
        "Total time spent processing prompts",
        "counter",
        t.prefill_seconds,
    );
    item(
        "llamacpp:tokens_predicted_total",
        "Number of generation tokens processed",
        "counter",
        t.generated_tokens as f64,
    );
    item(
        "llamacpp:tokens_predicted_seconds_total",
        "Total time spent generating tokens",
        "counter",
        t.decode_seconds,
    );
    item(
        "llamacpp:n_decode_total",
        "Total number of llama_decode() calls, excluding speculative decoding and multimodal decoding",
        "counter",
        t.steps as f64,
    );
    item(
        "llamacpp:n_tokens_max",
        "Largest observed sequence length (prompt + generation)",
        "counter",
        0.0,
    );
    item(
        "llamacpp:spec_decode_num_draft_tokens_total",
        "Speculative: Total draft tokens generated",
        "counter",
        0.0,
    );
    item(
        "llamacpp:spec_decode_num_accepted_tokens_total",
        "Speculative: Total draft tokens accepted by the target model",
        "counter",
        0.0,
    );
    item(
        "llamacpp:spec_decode_num_drafts_total",
        "Speculative: Total speculative decoding verification steps",
        "counter",
        0.0,
    );
    item(
        "llamacpp:prompt_tokens_seconds",
        "Average prompt throughput in tokens/s",
        "gauge",
        rate(window.prompt_tokens, window.prompt_seconds),
    );
    item(
        "llamacpp:predicted_tokens_seconds",
        "Average generation throughput in tokens/s",
        "gauge",
        rate(window.generated_tokens, window.generated_seconds),
    );
    item(
        "llamacpp:requests_processing",
        "Number of requests processing",
        "gauge",
        s.running as f64,
    );
    item(
        "llamacpp:requests_deferred",
        "Number of requests deferred",
        "gauge",
        s.waiting as f64,
    );
    item(
        "llamacpp:n_busy_slots_per_decode",
        "Average number of busy slots per llama_decode() call",
        "gauge",
        busy_slots_per_decode,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::cpp_double;

    #[test]
    fn formats_like_cpp_default_stream_precision() {
        // Values from the real captures and the C++ rules.
        assert_eq!(cpp_double(246.0), "246");
        assert_eq!(cpp_double(2.32067), "2.32067");
        assert_eq!(cpp_double(101.37412), "101.374");
        assert_eq!(cpp_double(1.86097), "1.86097");
        assert_eq!(cpp_double(1_204_930.0), "1.20493e+06");
        assert_eq!(cpp_double(999_999.0), "999999");
        assert_eq!(cpp_double(0.0), "0");
        assert_eq!(cpp_double(0.000_012_345_67), "1.23457e-05");
    }
}
