//! A completion chunk's facts read by walking its JSON once, building no values: the proxy
//! reads one chunk per streamed token, and deserialising each (a `Vec` of choices, every
//! unknown field's value parsed to be ignored) was its largest cost after the system calls.
//! It says what [`Chunk`](super::Chunk) says of the same bytes (a property test holds the
//! two together), and refuses what that refuses: a value of the wrong type, a repeated
//! field, text after the object, JSON that is not JSON; and it takes what that takes, a
//! struct written as the list of its fields' values included.

use std::borrow::Cow;

mod request;
mod shape;
mod template;

pub use request::{RequestFacts, scan_request};
pub use shape::{ChunkShape, check_by_shape};
pub use template::{Templates, check_by_template};

use template::{Holes, Kind};

/// What the proxy needs of a chunk (or of a whole answer).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ChunkFacts<'a> {
    /// A choice carries text, reasoning or a tool call (not just a role).
    pub content: bool,
    /// How many choices it has.
    pub choices: usize,
    /// The first choice's finish reason that is not null.
    pub finish_reason: Option<Cow<'a, str>>,
    /// A `usage` object came (not null).
    pub usage: bool,
    /// Its token counts.
    pub prompt_tokens: Option<u64>,
    /// Its token counts.
    pub completion_tokens: Option<u64>,
    /// An `error` came (not null): the stream failed after HTTP 200.
    pub error: bool,
    /// The model that answered.
    pub model: Option<Cow<'a, str>>,
}

/// How deep skipped values may nest, as serde_json allows.
const MAX_DEPTH: usize = 128;

/// The facts of the chunk in `data`, or `None` when it is not a chunk.
pub fn scan_chunk(data: &[u8]) -> Option<ChunkFacts<'_>> {
    let (mut facts, text) = walk(data)?;
    facts.content |= text.is_some_and(|t| t.non_empty);
    Some(facts)
}

/// The first string of a choice's text (its `delta.content`, or `text`): where the chunks
/// of a stream differ. Its body lies between `start` and `end` (the closing quote).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Text {
    start: usize,
    end: usize,
    non_empty: bool,
}

/// Walks the chunk in `data` once: its facts, but for what its first text says (left out
/// of `content`, and given apart).
fn walk(data: &[u8]) -> Option<(ChunkFacts<'_>, Option<Text>)> {
    walk_from(&mut Cursor::at(data, 0))
}

/// [`walk`] with the cursor given (at the start), which may note the chunk's holes.
fn walk_from<'a>(c: &mut Cursor<'a>) -> Option<(ChunkFacts<'a>, Option<Text>)> {
    let mut facts = ChunkFacts::default();
    c.record(&[b"choices", b"usage", b"error", b"model"], |c, field| {
        match field {
            // A list, never `null` (it may be left out).
            0 => c.choices(&mut facts),
            1 => c.or_null(|c| c.usage(&mut facts)),
            2 => {
                facts.error = !c.null();
                c.skip_if(facts.error)
            }
            _ => {
                let start = c.value_start();
                facts.model = c.text_or_null()?;
                c.hole(start, Kind::Model);
                Some(())
            }
        }
    })?;
    c.end()?;
    Some((facts, c.text))
}

/// The scan's invariant, shared by the fuzz target and the tests: whatever object the
/// derived deserialiser reads, the scan reads too, with the same facts.
pub fn check_against_chunk(data: &[u8]) -> Result<(), String> {
    let Some(expected) = deserialised(data) else {
        return Ok(());
    };
    let scanned = scan_chunk(data);
    if scanned.as_ref() == Some(&expected) {
        Ok(())
    } else {
        Err(format!("scan {scanned:?}, deserialised {expected:?}"))
    }
}

/// What deserialising the chunk says: the reference the scan is held to.
pub(crate) fn deserialised(data: &[u8]) -> Option<ChunkFacts<'_>> {
    let chunk: super::Chunk<'_> = serde_json::from_slice(data).ok()?;
    Some(ChunkFacts {
        content: chunk.choices.iter().any(super::Choice::has_content),
        choices: chunk.choices.len(),
        finish_reason: chunk.choices.iter().find_map(|c| c.finish_reason.clone()),
        usage: chunk.usage.is_some(),
        prompt_tokens: chunk.usage.as_ref().and_then(|u| u.prompt_tokens),
        completion_tokens: chunk.usage.as_ref().and_then(|u| u.completion_tokens),
        error: chunk.error.is_some(),
        model: chunk.model,
    })
}

/// A position in the bytes.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
    /// The first text string, once read.
    text: Option<Text>,
    /// Where the values that another chunk of the same form may change lie, noted while a
    /// chunk is walked to learn its form from ([`template`]).
    holes: Option<Holes>,
}

impl<'a> Cursor<'a> {
    /// A cursor at `i` in `b` that notes no holes.
    fn at(b: &'a [u8], i: usize) -> Self {
        Cursor {
            b,
            i,
            text: None,
            holes: None,
        }
    }

    /// Where the next value starts (past blanks).
    fn value_start(&mut self) -> usize {
        self.peek();
        self.i
    }

    /// Notes the value from `start` to here as a hole of `kind`, when holes are noted.
    #[inline(always)]
    fn hole(&mut self, start: usize, kind: Kind) {
        if let Some(holes) = &mut self.holes {
            holes.push(start, self.i, kind);
        }
    }

    /// The next byte after blanks, not taken.
    #[inline(always)]
    fn peek(&mut self) -> Option<u8> {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
        self.b.get(self.i).copied()
    }

    /// Takes `byte` if it comes next.
    #[inline(always)]
    fn eat(&mut self, byte: u8) -> bool {
        let next = self.peek() == Some(byte);
        self.i += usize::from(next);
        next
    }

    /// Takes `word` (a literal) if it comes next.
    fn word(&mut self, word: &[u8]) -> bool {
        self.peek();
        let next = self.b.get(self.i..self.i + word.len()) == Some(word);
        self.i += if next { word.len() } else { 0 };
        next
    }

    fn null(&mut self) -> bool {
        self.word(b"null")
    }

    /// Only blanks are left.
    fn end(&mut self) -> Option<()> {
        self.peek().is_none().then_some(())
    }

    /// `null`, or what `read` takes.
    fn or_null(&mut self, read: impl FnOnce(&mut Self) -> Option<()>) -> Option<()> {
        if self.null() { Some(()) } else { read(self) }
    }

    /// Skips a value when `present` (its `null` is taken already otherwise).
    fn skip_if(&mut self, present: bool) -> Option<()> {
        if present { self.skip(0) } else { Some(()) }
    }

    /// A string's raw bytes (between the quotes) and whether it holds escapes. Control
    /// characters are refused unless `raw` (as deserialising reads text it takes as bytes,
    /// which refuses them everywhere else).
    #[inline(always)]
    fn string(&mut self, raw: bool) -> Option<(&'a [u8], bool)> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.i;
        let mut escaped = false;
        loop {
            let at = self.i + string_stop(self.b.get(self.i..)?, !raw)?;
            if self.b[at] < 0x20 {
                return None;
            }
            if self.b[at] == b'"' {
                self.i = at + 1;
                return Some((&self.b[start..at], escaped));
            }
            escaped = true;
            self.i = at + 2;
            match self.b.get(at + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                b'u' => {
                    let hex = self.b.get(self.i..self.i + 4)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    self.i += 4;
                }
                _ => return None,
            }
        }
    }

    /// A string as text (escapes decoded, UTF-8 checked), or `null`.
    fn text_or_null(&mut self) -> Option<Option<Cow<'a, str>>> {
        if self.null() {
            return Some(None);
        }
        let start = self.i;
        let (raw, escaped) = self.string(false)?;
        if !escaped {
            return Some(Some(Cow::Borrowed(std::str::from_utf8(raw).ok()?)));
        }
        let quoted = self.b.get(start..self.i)?;
        serde_json::from_slice::<String>(quoted)
            .ok()
            .map(|s| Some(Cow::Owned(s)))
    }

    /// A string with text in it: `Some(true)`; empty or `null`: `Some(false)`.
    fn non_empty_or_null(&mut self) -> Option<bool> {
        if self.null() {
            return Some(false);
        }
        self.string(true).map(|(raw, _)| !raw.is_empty())
    }

    /// A whole number (what a `u64` field takes).
    fn count(&mut self) -> Option<u64> {
        self.peek();
        let digits = self
            .b
            .get(self.i..)?
            .iter()
            .take_while(|b| b.is_ascii_digit());
        let len = digits.count();
        let text = std::str::from_utf8(self.b.get(self.i..self.i + len)?).ok()?;
        self.i += len;
        let next = self.b.get(self.i).copied();
        let leading_zero = len > 1 && text.starts_with('0');
        if leading_zero || matches!(next, Some(b'.' | b'e' | b'E')) {
            return None;
        }
        text.parse().ok()
    }

    /// A token count, or `null`.
    fn count_or_null(&mut self) -> Option<Option<u64>> {
        if self.null() {
            Some(None)
        } else {
            self.count().map(Some)
        }
    }

    /// A struct of `fields` (at most 32), as deserialising reads one: `field` is called with
    /// the index of each field present, the cursor at its value, which it must take. Other
    /// keys are skipped and a field given twice refuses the whole; deserialising also takes
    /// the struct written as a list of its fields' values in order (shorter lists leave the
    /// rest out).
    fn record(
        &mut self,
        fields: &'static [&'static [u8]],
        mut field: impl FnMut(&mut Self, usize) -> Option<()>,
    ) -> Option<()> {
        if self.peek() == Some(b'[') {
            let mut at = 0;
            return self.array(|c| {
                fields.get(at)?;
                at += 1;
                field(c, at - 1)
            });
        }
        let mut seen = 0u32;
        self.object(|c, key| {
            let Some(index) = fields.iter().position(|f| *f == key.as_ref()) else {
                return c.skip(0);
            };
            let bit = 1u32.checked_shl(u32::try_from(index).ok()?)?;
            if seen & bit != 0 {
                return None;
            }
            seen |= bit;
            field(c, index)
        })
    }

    /// Calls `member` with each key of an object, the cursor at its value, which `member`
    /// must take.
    fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, Cow<'a, [u8]>) -> Option<()>,
    ) -> Option<()> {
        if !self.eat(b'{') {
            return None;
        }
        if self.eat(b'}') {
            return Some(());
        }
        loop {
            // Keys are read as leniently as deserialising reads them (as bytes).
            let (raw, escaped) = self.string(true)?;
            let key = if escaped {
                Cow::Owned(unescape_key(raw))
            } else {
                Cow::Borrowed(raw)
            };
            if !self.eat(b':') {
                return None;
            }
            member(self, key)?;
            if self.eat(b'}') {
                return Some(());
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    /// Calls `element` for each element of an array, the cursor at it.
    fn array(&mut self, mut element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        if !self.eat(b'[') {
            return None;
        }
        if self.eat(b']') {
            return Some(());
        }
        loop {
            element(self)?;
            if self.eat(b']') {
                return Some(());
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    /// Skips any value.
    fn skip(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        let start = self.value_start();
        match *self.b.get(start)? {
            b'"' => {
                self.string(false)?;
                self.hole(start, Kind::Skipped);
                Some(())
            }
            b'{' => self.object(|c, _| c.skip(depth + 1)),
            b'[' => self.array(|c| c.skip(depth + 1)),
            b't' => self.word(b"true").then_some(()),
            b'f' => self.word(b"false").then_some(()),
            b'n' => self.null().then_some(()),
            _ => {
                self.number()?;
                self.hole(start, Kind::Number);
                Some(())
            }
        }
    }

    /// Skips a number: `-? int frac? exp?`.
    fn number(&mut self) -> Option<()> {
        let digits = |c: &mut Self| {
            let n =
                c.b.get(c.i..)
                    .map_or(0, |r| r.iter().take_while(|b| b.is_ascii_digit()).count());
            c.i += n;
            n
        };
        self.i += usize::from(self.b.get(self.i) == Some(&b'-'));
        let int = self.i;
        if digits(self) == 0 || (self.b[int] == b'0' && self.i - int > 1) {
            return None;
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return None;
            }
        }
        Some(())
    }

    /// The `choices` array.
    fn choices(&mut self, facts: &mut ChunkFacts<'a>) -> Option<()> {
        self.array(|c| {
            facts.choices += 1;
            c.choice(facts)
        })
    }

    /// One choice: `delta`, `text`, `finish_reason`.
    fn choice(&mut self, facts: &mut ChunkFacts<'a>) -> Option<()> {
        self.record(
            &[b"delta", b"text", b"finish_reason"],
            |c, field| match field {
                0 => c.or_null(|c| c.delta(facts)),
                1 => c.content(facts),
                _ => {
                    let start = c.value_start();
                    c.finish_reason(facts)?;
                    c.hole(start, Kind::Reason);
                    Some(())
                }
            },
        )
    }

    /// A choice's finish reason, a string or `null`: the first choice's that is not
    /// `null` is the chunk's.
    fn finish_reason(&mut self, facts: &mut ChunkFacts<'a>) -> Option<()> {
        let reason = self.text_or_null()?;
        if facts.finish_reason.is_none() {
            facts.finish_reason = reason;
        }
        Some(())
    }

    /// A chat delta: `content`, `reasoning_content`, `tool_calls`.
    fn delta(&mut self, facts: &mut ChunkFacts<'a>) -> Option<()> {
        self.record(
            &[b"content", b"reasoning_content", b"tool_calls"],
            |c, field| {
                if field == 2 {
                    let calls = !c.null();
                    facts.content |= calls;
                    return c.skip_if(calls);
                }
                if field == 1 {
                    facts.content |= c.non_empty_or_null()?;
                    return Some(());
                }
                c.content(facts)
            },
        )
    }

    /// A choice's text (`delta.content` or `text`), a string or `null`: the first string
    /// is kept apart as [`Text`], any other says whether there is content.
    fn content(&mut self, facts: &mut ChunkFacts<'a>) -> Option<()> {
        if self.text.is_some() || self.peek() != Some(b'"') {
            facts.content |= self.non_empty_or_null()?;
            return Some(());
        }
        let start = self.i + 1;
        let (raw, _) = self.string(true)?;
        self.hole(start - 1, Kind::Text);
        self.text = Some(Text {
            start,
            end: self.i - 1,
            non_empty: !raw.is_empty(),
        });
        Some(())
    }

    /// The `usage` object: `prompt_tokens`, `completion_tokens`.
    fn usage(&mut self, facts: &mut ChunkFacts<'a>) -> Option<()> {
        facts.usage = true;
        self.record(&[b"prompt_tokens", b"completion_tokens"], |c, field| {
            let start = c.value_start();
            let count = c.count_or_null()?;
            if field == 0 {
                facts.prompt_tokens = count;
                c.hole(start, Kind::Prompt);
            } else {
                facts.completion_tokens = count;
                c.hole(start, Kind::Completion);
            }
            Some(())
        })
    }
}

/// A key with escapes, decoded far enough to compare with the keys read, which are ASCII:
/// an escaped character outside ASCII becomes a byte no key holds.
fn unescape_key(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let escape = raw.get(i).copied().unwrap_or(0);
        i += 1;
        out.push(match escape {
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let hex = raw.get(i..i + 4).and_then(|h| std::str::from_utf8(h).ok());
                i += 4;
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(ascii) if ascii < 0x80 => ascii,
                    _ => 0xff,
                }
            }
            other => other,
        });
    }
    out
}

/// Where a string's text stops: the first quote, backslash or (when `controls`) control
/// character in `bytes`, in one pass eight bytes at a time: a chunk's strings are short
/// (keys, a token's text), where a library search's set-up, and a second pass for control
/// bytes, cost more.
#[inline(always)]
fn string_stop(bytes: &[u8], controls: bool) -> Option<usize> {
    use crate::exposition::{find_swar, flag_below, flag_bytes};
    let below = if controls { 0x20 } else { 0 };
    find_swar(
        bytes,
        |w| flag_bytes(w, b'"') | flag_bytes(w, b'\\') | flag_below(w, below),
        |c| c == b'"' || c == b'\\' || c < below,
    )
}

#[cfg(test)]
mod tests;
