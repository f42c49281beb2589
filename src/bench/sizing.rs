//! Making synthetic prompts the length asked for, in the server's tokens. The words the load
//! generator writes are about one token each only on some tokenizers (212 tokens came back
//! for `--input-tokens 64` on one real model, 88 on another), so lengths are set one of
//! three ways:
//!
//! - **exact**, with the model's `tokenizer.json`: each prompt is cut to the asked number of
//!   tokens, less the tokens the server's chat template adds (measured by a probe);
//! - **calibrated** (the default without a tokenizer): two probe requests of known word
//!   counts before the run give the server's tokens per word and its template overhead, and
//!   word counts are scaled to match;
//! - **words**: one word per token, uncorrected (`--no-calibrate`, or when the server reports
//!   no usage).

use std::sync::Arc;

use serde_json::{Value as Json, json};

use crate::tokenize::Tokenizer;

/// How asked token counts become prompt text.
#[derive(Debug, Clone, Default)]
pub enum Sizing {
    /// One word per asked token.
    #[default]
    Words,
    /// The server counts `overhead + per_word × words` tokens.
    Calibrated {
        /// Tokens per prompt word.
        per_word: f64,
        /// Tokens the server adds around the content (chat template).
        overhead: f64,
    },
    /// Cut with the model's tokenizer.
    Exact {
        /// The tokenizer.
        tokenizer: Arc<Tokenizer>,
        /// Tokens the server adds around the content.
        overhead: u32,
    },
}

/// Longest prompt built by doubling before giving up on reaching a length (words).
const MAX_WORDS: u32 = 1 << 20;

impl Sizing {
    /// The name in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Sizing::Words => "words",
            Sizing::Calibrated { .. } => "calibrated",
            Sizing::Exact { .. } => "tokenizer",
        }
    }

    /// The report's description of the sizing.
    pub fn to_json(&self) -> Json {
        match self {
            Sizing::Words => json!({ "method": "words" }),
            Sizing::Calibrated { per_word, overhead } => json!({
                "method": "calibrated",
                "tokens_per_word": per_word,
                "template_tokens": overhead,
            }),
            Sizing::Exact { overhead, .. } => json!({
                "method": "tokenizer",
                "template_tokens": overhead,
            }),
        }
    }

    /// Prompt text of about `asked` server tokens, from `words(n)` (the first n words of the
    /// prompt's word sequence).
    pub fn text(&self, asked: u32, words: impl Fn(u32) -> String) -> String {
        match self {
            Sizing::Words => words(asked.max(1)),
            Sizing::Calibrated { per_word, overhead } => {
                let n = ((f64::from(asked) - overhead) / per_word).round();
                words(n.clamp(1.0, f64::from(MAX_WORDS)) as u32)
            }
            Sizing::Exact {
                tokenizer,
                overhead,
            } => exact(tokenizer, asked.saturating_sub(*overhead).max(1), words),
        }
    }
}

/// Text of exactly `target` tokens where the tokenizer allows it: enough words, cut at the
/// end of token `target`; checked once more, as a cut word can tokenize differently.
fn exact(tokenizer: &Tokenizer, target: u32, words: impl Fn(u32) -> String) -> String {
    let target = target as usize;
    // Words come to at least one token each, so `target` words are enough unless the
    // tokenizer merges words; then double.
    let mut n = target.max(1) as u32;
    let mut text = words(n);
    while tokenizer.count(&text) < target && n < MAX_WORDS {
        n = n.saturating_mul(2).min(MAX_WORDS);
        text = words(n);
    }
    for want in [target, target + 1, target.saturating_sub(1)] {
        let Some(end) = tokenizer.end_of_token(&text, want) else {
            continue;
        };
        let cut = text[..end].to_string();
        if tokenizer.count(&cut) == target {
            return cut;
        }
    }
    match tokenizer.end_of_token(&text, target) {
        Some(end) => text[..end].to_string(),
        None => text,
    }
}

/// Derives the calibration from two probes: `(words, prompt tokens the server reported)`.
/// `None` when the counts make no sense (no growth with more words).
pub fn calibrate(small: (u32, u64), large: (u32, u64)) -> Option<Sizing> {
    let words = f64::from(large.0) - f64::from(small.0);
    let tokens = large.1 as f64 - small.1 as f64;
    if words <= 0.0 || tokens <= 0.0 {
        return None;
    }
    let per_word = tokens / words;
    let overhead = (small.1 as f64 - per_word * f64::from(small.0)).max(0.0);
    Some(Sizing::Calibrated { per_word, overhead })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(n: u32) -> String {
        ["sea ", "sky ", "fog "]
            .iter()
            .cycle()
            .take(n as usize)
            .copied()
            .collect()
    }

    #[test]
    fn calibration_recovers_tokens_per_word_and_overhead() {
        // A server that counts 2.5 tokens a word and 12 for its template.
        let Some(Sizing::Calibrated { per_word, overhead }) = calibrate((64, 172), (256, 652))
        else {
            panic!("calibrates")
        };
        assert!((per_word - 2.5).abs() < 1e-9 && (overhead - 12.0).abs() < 1e-9);
        let sizing = Sizing::Calibrated { per_word, overhead };
        // 212 asked: (212 - 12) / 2.5 = 80 words.
        assert_eq!(sizing.text(212, words).split_whitespace().count(), 80);
        assert!(calibrate((64, 100), (64, 100)).is_none());
        assert!(calibrate((64, 100), (256, 90)).is_none());
    }

    #[test]
    fn a_tokenizer_gives_the_exact_length_asked() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tokenizer/tokenizer.json");
        let tokenizer = Arc::new(Tokenizer::load(&path).unwrap());
        let sizing = Sizing::Exact {
            tokenizer: tokenizer.clone(),
            overhead: 5,
        };
        for asked in [6, 7, 8, 64, 65, 300] {
            let text = sizing.text(asked, words);
            assert_eq!(
                tokenizer.count(&text),
                asked as usize - 5,
                "{asked}: {text:?}"
            );
        }
        assert_eq!(Sizing::Words.text(3, words), "sea sky fog ");
    }
}
