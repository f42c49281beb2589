//! Small builders for YAML documents whose keys keep the order they are written in (Prometheus,
//! Compose and Kubernetes files read best in their documented order), and the one place that
//! serialises them, behind a comment header.

use serde::Serialize;
use serde_norway::{Mapping, Value};

use super::{ExportError, File};

/// A mapping with keys in the given order.
pub fn map<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    let mut mapping = Mapping::new();
    for (k, v) in pairs {
        mapping.insert(Value::String(k.to_string()), v);
    }
    Value::Mapping(mapping)
}

/// A mapping from `(key, value)` string pairs.
pub fn string_map<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
    let mut mapping = Mapping::new();
    for (k, v) in pairs {
        mapping.insert(s(k), s(v));
    }
    Value::Mapping(mapping)
}

/// Adds `key: value` to a mapping (no-op on anything else).
pub fn insert(target: &mut Value, key: &str, value: Value) {
    if let Value::Mapping(m) = target {
        m.insert(s(key), value);
    }
}

/// A string.
pub fn s(text: impl Into<String>) -> Value {
    Value::String(text.into())
}

/// A sequence.
pub fn seq(items: impl IntoIterator<Item = Value>) -> Value {
    Value::Sequence(items.into_iter().collect())
}

/// A sequence of strings.
pub fn strings<'a>(items: impl IntoIterator<Item = &'a str>) -> Value {
    seq(items.into_iter().map(s))
}

/// A number.
pub fn n(value: u64) -> Value {
    Value::Number(value.into())
}

/// A boolean.
pub fn b(value: bool) -> Value {
    Value::Bool(value)
}

/// `value` as YAML text after a `#` comment header.
pub fn text(header: &str, value: &impl Serialize, path: &str) -> Result<String, ExportError> {
    let body = serde_norway::to_string(value).map_err(|e| ExportError::Render {
        file: path.to_string(),
        reason: e.to_string(),
    })?;
    let mut out = String::new();
    for line in header.lines() {
        out.push_str("# ");
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&body);
    Ok(out)
}

/// A YAML file at `path`.
pub fn file(path: &str, header: &str, value: &impl Serialize) -> Result<File, ExportError> {
    Ok(File {
        path: path.to_string(),
        text: text(header, value, path)?,
    })
}

/// Several documents in one file, `---` between them.
pub fn documents(path: &str, header: &str, values: &[Value]) -> Result<File, ExportError> {
    let mut out = String::new();
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&text(if i == 0 { header } else { "" }, value, path)?);
    }
    Ok(File {
        path: path.to_string(),
        text: out,
    })
}
