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

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value as Json, json};

use super::workload::WORDS;
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
        /// Each prompt word's tokens, where they add up in this tokenizer: prompts are then
        /// sized by lookup instead of encoding each one.
        counts: Option<Arc<WordCounts>>,
    },
}

/// Longest prompt built by doubling before giving up on reaching a length (words).
const MAX_WORDS: u32 = 1 << 20;

impl Sizing {
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
                counts,
            } => {
                let target = asked.saturating_sub(*overhead).max(1);
                counts
                    .as_ref()
                    .and_then(|c| c.text(target, &words))
                    .unwrap_or_else(|| exact(tokenizer, target, words))
            }
        }
    }

    /// Exact sizing with `tokenizer`, by lookup where its word counts add up.
    pub fn exact(tokenizer: Arc<Tokenizer>, overhead: u32) -> Sizing {
        let counts = WordCounts::measure(&tokenizer).map(Arc::new);
        Sizing::Exact {
            tokenizer,
            overhead,
            counts,
        }
    }
}

/// How many tokens each prompt word takes, at the start of a prompt and after another word,
/// in a tokenizer that splits on white space (nearly all do). Kept only when the counts of
/// sample prompts add up exactly; with them, a prompt of an exact length costs a lookup per
/// word instead of several encodings (a real tokenizer takes milliseconds for a long one).
#[derive(Debug)]
pub struct WordCounts {
    first: HashMap<&'static str, u32>,
    after: HashMap<&'static str, u32>,
    /// A word of one token after another word, and one at the start, to end on the exact
    /// length.
    one_after: Option<&'static str>,
    one_first: Option<&'static str>,
    mean_after: f64,
}

impl WordCounts {
    /// The counts, or `None` where they do not add up in `tokenizer`.
    fn measure(tokenizer: &Tokenizer) -> Option<WordCounts> {
        let mut first = HashMap::new();
        let mut after = HashMap::new();
        for word in WORDS.iter().map(|w| w.trim_end()) {
            let alone = tokenizer.count(word);
            let two = tokenizer.count(&format!("{word} {word}"));
            let three = tokenizer.count(&format!("{word} {word} {word}"));
            // After a word, the same count each time: else nothing adds up.
            if three.checked_sub(two)? != two.checked_sub(alone)? {
                return None;
            }
            first.insert(word, u32::try_from(alone).ok()?);
            after.insert(word, u32::try_from(three - two).ok()?);
        }
        let pick = |map: &HashMap<&'static str, u32>| {
            WORDS
                .iter()
                .map(|w| w.trim_end())
                .find(|w| map.get(w) == Some(&1))
        };
        let counts = WordCounts {
            one_after: pick(&after),
            one_first: pick(&first),
            mean_after: after.values().map(|c| f64::from(*c)).sum::<f64>() / after.len() as f64,
            first,
            after,
        };
        // Sample prompts of every word in several orders must count as the sum says.
        for (start, n) in [(0, 1), (3, 17), (7, 50), (11, 200)] {
            let sample = WORDS
                .iter()
                .cycle()
                .skip(start)
                .take(n)
                .map(|w| w.trim_end())
                .collect::<Vec<_>>()
                .join(" ");
            if counts.count(&sample)? as usize != tokenizer.count(&sample) {
                return None;
            }
        }
        (counts.mean_after > 0.0).then_some(counts)
    }

    /// Tokens of a text of prompt words, by the table.
    fn count(&self, text: &str) -> Option<u32> {
        text.split_whitespace()
            .enumerate()
            .map(|(i, word)| {
                let table = if i == 0 { &self.first } else { &self.after };
                table.get(word).copied()
            })
            .sum()
    }

    /// Words of the prompt (from `words(n)`) up to exactly `target` tokens, ended with
    /// one-token words where the next word would go over; `None` when that cannot be done.
    fn text(&self, target: u32, words: impl Fn(u32) -> String) -> Option<String> {
        let estimate = (f64::from(target) / self.mean_after).ceil().max(1.0);
        let source = words(estimate.min(f64::from(MAX_WORDS)) as u32);
        let mut out = String::with_capacity(source.len() + 16);
        let mut have = 0;
        for (i, word) in source.split_whitespace().enumerate() {
            let table = if i == 0 { &self.first } else { &self.after };
            let tokens = *table.get(word)?;
            if have + tokens > target {
                break;
            }
            if i > 0 {
                out.push(' ');
            }
            out.push_str(word);
            have += tokens;
            if have == target {
                return Some(out);
            }
        }
        while have < target {
            if out.is_empty() {
                out.push_str(self.one_first?);
            } else {
                out.push(' ');
                out.push_str(self.one_after?);
            }
            have += 1;
        }
        Some(out)
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
    let mut count = tokenizer.count(&text);
    while count < target && n < MAX_WORDS {
        n = n.saturating_mul(2).min(MAX_WORDS);
        text = words(n);
        let longer = tokenizer.count(&text);
        if longer <= count {
            // More words, no more tokens: the tokenizer caps lengths; take what it gives.
            break;
        }
        count = longer;
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
        let by_lookup = Sizing::exact(tokenizer.clone(), 5);
        let Sizing::Exact { counts, .. } = &by_lookup else {
            panic!("exact")
        };
        assert!(counts.is_some(), "the test tokenizer's word counts add up");
        let by_encoding = Sizing::Exact {
            tokenizer: tokenizer.clone(),
            overhead: 5,
            counts: None,
        };
        for sizing in [by_lookup, by_encoding] {
            for asked in [6, 7, 8, 64, 65, 300] {
                let text = sizing.text(asked, words);
                assert_eq!(
                    tokenizer.count(&text),
                    asked as usize - 5,
                    "{asked}: {text:?}"
                );
            }
        }
        assert_eq!(Sizing::Words.text(3, words), "sea sky fog ");
    }
}
