//! What the proxy reads of a request body (its model, whether it streams, whether it asks
//! for usage), walked by the same cursor as the chunks: deserialising the body, every
//! message of the prompt parsed to be ignored, was a tenth of the proxy's user-space work
//! per request.
//!
//! The walk reads only the usual body: an object whose `model` is a string or `null`,
//! whose `stream` is a literal, whose `stream_options` is `null` or holds `include_usage`
//! alone, each given once. Anything else is left to deserialising (`None` here), so what
//! the two say of a body never differs (a property test holds them together).

use std::borrow::Cow;

use super::Cursor;

/// The request's fields that the proxy acts on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RequestFacts<'a> {
    /// The model asked for, when it is a string.
    pub model: Option<Cow<'a, str>>,
    /// `"stream": true`.
    pub stream: bool,
    /// `stream_options` was given (even as `null`).
    pub stream_options: bool,
    /// `stream_options.include_usage` is `true`.
    pub include_usage: bool,
}

/// The facts of a usual request body; `None` for any other (which deserialising reads).
pub fn scan_request(data: &[u8]) -> Option<RequestFacts<'_>> {
    // Deserialising checks every string's UTF-8, where the walk skips strings as bytes.
    std::str::from_utf8(data).ok()?;
    let mut c = Cursor::at(data, 0);
    // Not the struct written as a list, which `record` would also take.
    if c.peek() != Some(b'{') {
        return None;
    }
    let mut facts = RequestFacts::default();
    c.record(&[b"model", b"stream", b"stream_options"], |c, field| {
        match field {
            0 => {
                // A string or null; another value is read as deserialising reads it.
                if !matches!(c.peek(), Some(b'"' | b'n')) {
                    return None;
                }
                facts.model = c.text_or_null()?;
                Some(())
            }
            1 => {
                facts.stream = c.literal()?;
                Some(())
            }
            _ => {
                facts.stream_options = true;
                c.or_null(|c| {
                    c.object(|c, key| {
                        if key.as_ref() != b"include_usage" {
                            return None;
                        }
                        // Given twice, the last one counts, as in a deserialised map.
                        facts.include_usage = c.literal()?;
                        Some(())
                    })
                })
            }
        }
    })?;
    c.end()?;
    Some(facts)
}

impl Cursor<'_> {
    /// `true`, `false` or `null`: whether it was `true`.
    fn literal(&mut self) -> Option<bool> {
        if self.word(b"true") {
            return Some(true);
        }
        (self.word(b"false") || self.null()).then_some(false)
    }
}
