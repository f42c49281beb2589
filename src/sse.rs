//! OpenAI-style server-sent events as clients see them: where an event ends, its `data:`
//! payloads, and the parts of a completion chunk that timing needs (content, finish reason,
//! usage, an error object). Shared by the load generator and the proxy.

use std::borrow::Cow;

use serde::Deserialize;

pub mod scan;

/// A completion chunk (streamed) or a whole completion, borrowing from the bytes.
#[derive(Deserialize)]
pub struct Chunk<'a> {
    /// Choices (one unless `n` was asked).
    #[serde(default, borrow)]
    pub choices: Vec<Choice<'a>>,
    /// Token counts, in the usage chunk or a whole answer.
    #[serde(default)]
    pub usage: Option<Usage>,
    /// An error object: the stream failed after HTTP 200.
    #[serde(default)]
    pub error: Option<serde::de::IgnoredAny>,
    /// The model that answered (`gen_ai.response.model` on the proxy's spans).
    #[serde(default, borrow)]
    pub model: Option<Cow<'a, str>>,
}

/// One choice of a chunk.
#[derive(Deserialize)]
pub struct Choice<'a> {
    /// Chat: what this chunk adds.
    #[serde(default)]
    pub delta: Option<Delta>,
    /// Completions: the text this chunk adds.
    #[serde(default)]
    pub text: Option<Text>,
    /// Why generation stopped, on the last chunk.
    #[serde(default, borrow)]
    pub finish_reason: Option<Cow<'a, str>>,
}

/// A chat delta.
#[derive(Deserialize)]
pub struct Delta {
    /// Answer text.
    #[serde(default)]
    pub content: Option<Text>,
    /// Reasoning text (reasoning models).
    #[serde(default)]
    pub reasoning_content: Option<Text>,
    /// Tool-call fragments.
    #[serde(default)]
    pub tool_calls: Option<serde::de::IgnoredAny>,
}

/// Token counts.
#[derive(Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    #[serde(default)]
    pub prompt_tokens: Option<u64>,
    /// Generated tokens.
    #[serde(default)]
    pub completion_tokens: Option<u64>,
}

/// A string of generated text, of which only whether it is empty matters: read as raw
/// bytes, so it is neither copied nor checked for UTF-8 (the hot path of every chunk).
pub struct Text(bool);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Text, D::Error> {
        struct NonEmpty;
        impl serde::de::Visitor<'_> for NonEmpty {
            type Value = Text;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Text, E> {
                Ok(Text(!v.is_empty()))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(!v.is_empty()))
            }
        }
        d.deserialize_bytes(NonEmpty)
    }
}

impl Choice<'_> {
    /// Whether it carries text, reasoning or a tool call (not just a role).
    pub fn has_content(&self) -> bool {
        let some = |s: &Option<Text>| s.as_ref().is_some_and(|t| t.0);
        some(&self.text)
            || self.delta.as_ref().is_some_and(|d| {
                some(&d.content) || some(&d.reasoning_content) || d.tool_calls.is_some()
            })
    }
}

/// Where the first complete event in a buffer ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventEnd {
    /// The event's content length (without the blank line that ends it).
    pub len: usize,
    /// Its length with that blank line.
    pub with_separator: usize,
    /// Its content is one line, so its data line is found without a search: most events
    /// are one `data:` line, and a second search of each was a twentieth of the proxy's
    /// user-space work.
    pub one_line: bool,
}

impl EventEnd {
    /// The payloads of the data lines of `event`, the content this ends.
    pub fn data<'a>(&self, event: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        lines_of(event, self.one_line)
    }
}

/// The end of the first complete event in `buf`. An event ends at a blank line, `\n\n` or
/// `\r\n\r\n`. One pass over the line feeds, so a buffer of many events is scanned once,
/// not once per event.
pub fn event_end(buf: &[u8]) -> Option<EventEnd> {
    for (n, i) in memchr::memchr_iter(b'\n', buf).enumerate() {
        let end = |len, with_separator| EventEnd {
            len,
            with_separator,
            one_line: n == 0,
        };
        match buf.get(i + 1) {
            Some(b'\n') => return Some(end(i, i + 2)),
            Some(b'\r') if i > 0 && buf[i - 1] == b'\r' && buf.get(i + 2) == Some(&b'\n') => {
                return Some(end(i - 1, i + 3));
            }
            _ => {}
        }
    }
    None
}

/// The payloads of the `data:` lines of `event`, which is one line when `one_line`.
/// Lines are found with `memchr`: a byte-by-byte split of every event was a tenth of the
/// proxy's user-space instructions.
fn lines_of(event: &[u8], one_line: bool) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(event);
    std::iter::from_fn(move || {
        loop {
            let text = rest?;
            let (line, next) = match memchr::memchr(b'\n', text).filter(|_| !one_line) {
                Some(i) => (&text[..i], text.get(i + 1..)),
                None => (text, None),
            };
            rest = next;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(data) = line.strip_prefix(b"data:") {
                return Some(data.strip_prefix(b" ").unwrap_or(data));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_on_blank_lines_of_either_kind() {
        let end = |buf: &[u8]| event_end(buf).map(|e| (e.len, e.with_separator, e.one_line));
        assert_eq!(end(b"data: a\n\ndata: b\n\n"), Some((7, 9, true)));
        assert_eq!(end(b"data: a\r\n\r\n"), Some((7, 11, true)));
        assert_eq!(end(b"data: a\n"), None);
        assert_eq!(end(b"data: a\r\ndata: b\r\n\r\n"), Some((16, 20, false)));
        assert_eq!(end(b"data: a\r\n\n"), Some((8, 10, true)));
        assert_eq!(end(b"data: a\r\n\r"), None);
        assert_eq!(end(b"\n\n"), Some((0, 2, true)));
        let lines: Vec<&[u8]> =
            lines_of(b"event: x\r\ndata: {\"a\":1}\r\ndata:[DONE]", false).collect();
        assert_eq!(lines, [&b"{\"a\":1}"[..], &b"[DONE]"[..]]);
    }

    proptest::proptest! {
        /// The lines found with `memchr` are those a split on every line feed finds.
        #[test]
        fn data_lines_are_the_data_lines_of_a_split(
            lines in proptest::collection::vec("(data: ?|event: |:|)[a-z\r]{0,6}", 0..6),
            end in "(\n|\r\n|)",
        ) {
            let event = format!("{}{end}", lines.join("\n"));
            let split: Vec<&[u8]> = event
                .as_bytes()
                .split(|b| *b == b'\n')
                .filter_map(|line| {
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    let data = line.strip_prefix(b"data:")?;
                    Some(data.strip_prefix(b" ").unwrap_or(data))
                })
                .collect();
            let found: Vec<&[u8]> = lines_of(event.as_bytes(), false).collect();
            proptest::prop_assert_eq!(found, split);
        }

        /// An event's data read by its end (with no search when it is one line) is what
        /// a search of its lines finds, however many lines it has.
        #[test]
        fn an_events_data_read_by_its_end_is_its_data_lines(
            lines in proptest::collection::vec("(data: ?|event: |:|)[a-z\r]{0,6}", 1..4),
            separator in "(\n\n|\r\n\r\n)",
        ) {
            let buf = format!("{}{separator}", lines.join("\n"));
            if let Some(end) = event_end(buf.as_bytes()) {
                let event = &buf.as_bytes()[..end.len];
                let by_end: Vec<&[u8]> = end.data(event).collect();
                let searched: Vec<&[u8]> = lines_of(event, false).collect();
                proptest::prop_assert_eq!(by_end, searched);
                proptest::prop_assert_eq!(end.one_line, !event.contains(&b'\n'));
            }
        }
    }

    #[test]
    fn the_role_only_chunk_is_not_content() {
        let parse = |s: &'static str| serde_json::from_str::<Chunk<'_>>(s).unwrap();
        let role = parse(r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#);
        assert!(!role.choices.iter().any(Choice::has_content));
        let null = parse(r#"{"choices":[{"delta":{"role":"assistant","content":null}}]}"#);
        assert!(!null.choices.iter().any(Choice::has_content));
        let text = parse(r#"{"choices":[{"delta":{"content":" the"}}]}"#);
        assert!(text.choices.iter().any(Choice::has_content));
        let escaped = parse(r#"{"choices":[{"delta":{"content":"\u00e9\n"}}]}"#);
        assert!(escaped.choices.iter().any(Choice::has_content));
        let text = parse(r#"{"choices":[{"text":"é","finish_reason":null}]}"#);
        assert!(text.choices.iter().any(Choice::has_content));
        let think = parse(r#"{"choices":[{"delta":{"reasoning_content":"hm"}}]}"#);
        assert!(think.choices.iter().any(Choice::has_content));
        let tool = parse(r#"{"choices":[{"delta":{"tool_calls":[{"id":"x"}]}}]}"#);
        assert!(tool.choices.iter().any(Choice::has_content));
        let completion = parse(r#"{"choices":[{"text":"Once","finish_reason":null}]}"#);
        assert!(completion.choices.iter().any(Choice::has_content));
    }

    #[test]
    fn a_model_name_with_escapes_does_not_stop_the_chunk_being_read() {
        let chunk: Chunk<'_> = serde_json::from_str(
            r#"{"model":"org\/m\u00e9","choices":[{"delta":{"content":"x"}}]}"#,
        )
        .unwrap();
        assert_eq!(chunk.model.as_deref(), Some("org/mé"));
        assert!(chunk.choices.iter().any(Choice::has_content));
    }
}
