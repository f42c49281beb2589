//! Prompts from a file: JSON lines of OpenAI chat requests (`{"messages": [...]}`, optional
//! `max_tokens`) or ShareGPT conversations (`{"conversations": [{"from": "human", "value":
//! ...}, {"from": "gpt", "value": ...}]}`, as JSON lines or one JSON array). ShareGPT's first
//! human turn is the prompt and its first answer's length (about four characters per token)
//! the requested output length.

use serde_json::{Value, json};

/// One request from a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Chat messages.
    pub messages: Value,
    /// The same as plain text, for the completions route.
    pub text: String,
    /// Requested output length, when the dataset says.
    pub max_tokens: Option<u32>,
}

/// Why a dataset was refused.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// Unreadable file.
    #[error("{path}: cannot read: {error}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// A record that is neither form.
    #[error("{path}:{line}: {reason}")]
    Record {
        /// The file.
        path: String,
        /// 1-based line (or array index + 1).
        line: usize,
        /// Why.
        reason: String,
    },
    /// Nothing usable.
    #[error("{path}: no requests in the file")]
    Empty {
        /// The file.
        path: String,
    },
}

fn entry(record: &Value) -> Result<Entry, String> {
    if let Some(messages) = record.get("messages").and_then(Value::as_array) {
        let text = messages
            .iter()
            .filter_map(|m| m.get("content").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n");
        let max_tokens = record
            .get("max_tokens")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok());
        return Ok(Entry {
            messages: Value::Array(messages.clone()),
            text,
            max_tokens,
        });
    }
    let turns = record
        .get("conversations")
        .and_then(Value::as_array)
        .ok_or("expected an object with \"messages\" (OpenAI) or \"conversations\" (ShareGPT)")?;
    let turn = |who: &str| {
        turns
            .iter()
            .find(|t| t.get("from").and_then(Value::as_str) == Some(who))
            .and_then(|t| t.get("value").and_then(Value::as_str))
    };
    let prompt = turn("human").ok_or("a ShareGPT conversation without a human turn")?;
    let max_tokens = turn("gpt").map(|answer| (answer.len() as u32).div_ceil(4).max(1));
    Ok(Entry {
        messages: json!([{"role": "user", "content": prompt}]),
        text: prompt.to_string(),
        max_tokens,
    })
}

/// Reads a dataset file.
pub fn load(path: &std::path::Path) -> Result<Vec<Entry>, DatasetError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| DatasetError::Read {
        path: name.clone(),
        error,
    })?;
    let bad = |line: usize, reason: String| DatasetError::Record {
        path: name.clone(),
        line,
        reason,
    };
    let records: Vec<(usize, Value)> = if text.trim_start().starts_with('[') {
        let array: Vec<Value> =
            serde_json::from_str(&text).map_err(|e| bad(e.line(), e.to_string()))?;
        array
            .into_iter()
            .enumerate()
            .map(|(i, v)| (i + 1, v))
            .collect()
    } else {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l)
                    .map(|v| (i + 1, v))
                    .map_err(|e| bad(i + 1, e.to_string()))
            })
            .collect::<Result<_, _>>()?
    };
    let entries = records
        .iter()
        .map(|(line, v)| entry(v).map_err(|reason| bad(*line, reason.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    if entries.is_empty() {
        return Err(DatasetError::Empty { path: name });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Vec<Entry>, DatasetError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.jsonl");
        std::fs::write(&path, text).unwrap();
        load(&path)
    }

    #[test]
    fn openai_lines_and_sharegpt_arrays_both_load() {
        let openai = load_text(
            "{\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":7}\n\n{\"messages\":[{\"role\":\"user\",\"content\":\"yo\"}]}\n",
        )
        .unwrap();
        assert_eq!(openai.len(), 2);
        assert_eq!(openai[0].max_tokens, Some(7));
        assert_eq!(openai[0].text, "be brief\nhi");
        assert_eq!(openai[1].max_tokens, None);
        let sharegpt = load_text(
            r#"[{"conversations":[{"from":"human","value":"What is the sea?"},{"from":"gpt","value":"A large body of salt water."}]}]"#,
        )
        .unwrap();
        assert_eq!(sharegpt[0].messages[0]["content"], "What is the sea?");
        assert_eq!(sharegpt[0].max_tokens, Some(7));
    }

    #[test]
    fn a_bad_record_names_its_line() {
        let err = load_text("{\"messages\":[]}\n{\"prompt\":\"x\"}\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with(
                ":2: expected an object with \"messages\" (OpenAI) or \"conversations\" (ShareGPT)"
            ),
            "{err}"
        );
        let err = load_text("{oops\n").unwrap_err().to_string();
        assert!(err.contains(":1: "), "{err}");
        assert!(matches!(load_text("\n"), Err(DatasetError::Empty { .. })));
    }
}
