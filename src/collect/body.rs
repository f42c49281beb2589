//! Checks a scrape body before parsing: what it is when it is not Prometheus text (empty, an
//! HTML error page, JSON), and the llama.cpp bug that JSON-escaped the whole body (#17384,
//! builds b7010 to about b7100), which is decoded with a warning rather than rejected.

use std::borrow::Cow;

use super::fetch::snippet;

/// Why a body cannot be read as Prometheus text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BodyError {
    /// Nothing but whitespace.
    #[error("{origin}: the body is empty: no metrics")]
    Empty {
        /// URL or file.
        origin: String,
    },
    /// An HTML page, typically a proxy's or gateway's error page.
    #[error(
        "{origin}: the body is an HTML page, not Prometheus text (is this the metrics path?): {snippet}"
    )]
    Html {
        /// URL or file.
        origin: String,
        /// Its first line.
        snippet: String,
    },
    /// JSON, typically an error object.
    #[error("{origin}: the body is JSON, not Prometheus text: {snippet}")]
    Json {
        /// URL or file.
        origin: String,
        /// Its first line.
        snippet: String,
    },
    /// gzip bytes sent without `Content-Encoding: gzip` (a misconfigured proxy or exporter).
    #[error(
        "{origin}: the body is gzip-compressed but the response did not say so (no Content-Encoding: gzip)"
    )]
    UndeclaredGzip {
        /// URL or file.
        origin: String,
    },
    /// Invalid UTF-8.
    #[error("{origin}: the body is not UTF-8 (first bad byte at offset {offset})")]
    NotUtf8 {
        /// URL or file.
        origin: String,
        /// Byte offset.
        offset: usize,
    },
}

/// A body ready to parse, and what was noticed on the way.
#[derive(Debug)]
pub struct Checked<'b> {
    /// Prometheus text.
    pub text: Cow<'b, str>,
    /// Whether it is OpenMetrics (its content type, or without one a final `# EOF`), to be
    /// held to that specification.
    pub openmetrics: bool,
    /// Warnings to show the user.
    pub warnings: Vec<String>,
}

/// Classifies `body` from `origin` (a URL or file name, for messages).
pub fn check<'b>(
    origin: &str,
    body: &'b [u8],
    content_type: Option<&str>,
) -> Result<Checked<'b>, BodyError> {
    if body.starts_with(&[0x1f, 0x8b]) {
        return Err(BodyError::UndeclaredGzip {
            origin: origin.to_string(),
        });
    }
    let text = std::str::from_utf8(body).map_err(|e| BodyError::NotUtf8 {
        origin: origin.to_string(),
        offset: e.valid_up_to(),
    })?;
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(BodyError::Empty {
            origin: origin.to_string(),
        });
    }
    let is_html = content_type.is_some_and(|c| c.contains("text/html")) || trimmed.starts_with('<');
    if is_html {
        return Err(BodyError::Html {
            origin: origin.to_string(),
            snippet: snippet(body),
        });
    }
    if trimmed.starts_with('"')
        && let Ok(decoded) = serde_json::from_str::<String>(trimmed.trim_end())
    {
        return Ok(Checked {
            openmetrics: crate::exposition::openmetrics::is_openmetrics(None, &decoded),
            text: Cow::Owned(decoded),
            warnings: vec![format!(
                "{origin}: the body was a JSON-escaped string (a llama.cpp bug in builds b7010 to ~b7100, #17384); decoded it. Upgrade llama.cpp: Prometheus itself cannot read this body"
            )],
        });
    }
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        return Err(BodyError::Json {
            origin: origin.to_string(),
            snippet: snippet(body),
        });
    }
    Ok(Checked {
        openmetrics: crate::exposition::openmetrics::is_openmetrics(content_type, text),
        text: Cow::Borrowed(text),
        warnings: Vec::new(),
    })
}
