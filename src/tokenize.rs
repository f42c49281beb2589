//! Counting tokens the way a model does, from a local `tokenizer.json` (the Hugging Face
//! tokenizers format that vLLM, TGI and SGLang read). Used by the load generator for exact
//! prompt lengths and by the simulator to count prompts as a real engine would. Files only:
//! nothing is ever downloaded.

use std::path::{Path, PathBuf};

/// Why a tokenizer could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// The file is missing, unreadable or not a tokenizer.
    #[error("{path}: not a usable tokenizer.json: {reason}")]
    Load {
        /// The file.
        path: PathBuf,
        /// What the tokenizers library said.
        reason: String,
    },
}

/// A loaded tokenizer.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokenizer({})", self.path.display())
    }
}

impl Tokenizer {
    /// Loads `path`, checking that it can encode.
    pub fn load(path: &Path) -> Result<Tokenizer, TokenizerError> {
        let failed = |reason: String| TokenizerError::Load {
            path: path.to_path_buf(),
            reason,
        };
        let mut inner =
            tokenizers::Tokenizer::from_file(path).map_err(|e| failed(e.to_string()))?;
        // Counting, not feeding a model: a file that truncates (BERT's cut at 512, some at
        // 128) or pads would make every long prompt look the same length.
        inner
            .with_truncation(None)
            .map_err(|e| failed(format!("cannot turn truncation off: {e}")))?;
        inner.with_padding(None);
        let tokenizer = Tokenizer {
            inner,
            path: path.to_path_buf(),
        };
        tokenizer
            .inner
            .encode("hello", false)
            .map_err(|e| failed(format!("cannot encode: {e}")))?;
        Ok(tokenizer)
    }

    /// Tokens in `text`, without the special tokens a template adds.
    pub fn count(&self, text: &str) -> usize {
        self.inner.encode(text, false).map_or(0, |e| e.len())
    }

    /// The byte offset where token `n` (counted from 1) of `text` ends, or `None` when `text`
    /// has fewer tokens.
    pub fn end_of_token(&self, text: &str, n: usize) -> Option<usize> {
        let encoding = self.inner.encode(text, false).ok()?;
        let (_, end) = *encoding.get_offsets().get(n.checked_sub(1)?)?;
        Some(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Tokenizer {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer/tokenizer.json");
        Tokenizer::load(&path).unwrap()
    }

    #[test]
    fn the_test_tokenizer_splits_words_by_its_merges() {
        let t = fixture();
        // sea: one merged token; sky: "sk" + "y"; fog: three letters.
        assert_eq!(t.count("sea"), 1);
        assert_eq!(t.count("sky"), 2);
        assert_eq!(t.count("fog"), 3);
        assert_eq!(t.count("sea sky fog "), 6);
        assert_eq!(t.end_of_token("sea sky fog", 2), Some(6));
        assert_eq!(t.end_of_token("sea", 2), None);
    }

    #[test]
    fn a_file_that_is_not_a_tokenizer_is_named() {
        let dir = std::env::temp_dir().join(format!("llmwatch-tok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokenizer.json");
        std::fs::write(&path, "{\"model\": 3}").unwrap();
        let err = Tokenizer::load(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}: not a usable", path.display())),
            "{err}"
        );
        let missing = Tokenizer::load(&dir.join("nope.json"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("nope.json"), "{missing}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
