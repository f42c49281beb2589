//! The chunks of one stream are written alike: the same id, creation time, model and
//! fields, and only the text of a token between them. So after a chunk is read in full,
//! the next one is read by comparing it with that chunk: when it holds the same bytes
//! before and after its text, and its text is a string that ends where the other's did, its
//! facts are the other's with its own text. Two compares and a string scan instead of a
//! walk over the whole object: the walk was a third of the proxy's user-space work.
//!
//! The facts are those [`scan_chunk`](super::scan_chunk) gives (a test holds the two
//! together on streams and on every change of the text's bytes): the walk reads the bytes
//! before the text and after it the same way whatever lies between, once the text is a
//! string that ends at the same place.

use std::borrow::Cow;

use super::{ChunkFacts, Cursor, Templates, Text, walk};

/// Bytes kept for a shape at first: more than a usual chunk holds around its text.
const SHAPE_ROOM: usize = 512;

/// The shape of the last chunk read in full, to read the stream's next chunks by.
#[derive(Debug, Default)]
pub struct ChunkShape {
    /// The chunk's bytes without its text's body: up to and with the opening quote
    /// (`..head`), then from the closing quote on.
    bytes: Vec<u8>,
    head: usize,
    /// Whether `bytes` holds a shape to read by (its chunk had a text string and its model
    /// and finish reason were written without escapes).
    known: bool,
    facts: Facts,
    /// The template to try first for a chunk the shape does not fit: the one after the
    /// template that read the stream's last such chunk.
    next_template: usize,
}

/// The chunk's facts, where its strings lie instead of the strings.
#[derive(Debug, Default, Clone, Copy)]
struct Facts {
    /// Content from anything but its first text.
    content: bool,
    choices: usize,
    finish_reason: Option<Place>,
    usage: bool,
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    error: bool,
    model: Option<Place>,
}

/// Where a string lies in a chunk of the shape: before the text (from the start) or after
/// it (from the end), and its length.
#[derive(Debug, Clone, Copy)]
enum Place {
    FromStart(usize, usize),
    FromEnd(usize, usize),
}

impl ChunkShape {
    /// The facts of the chunk in `data` (as [`scan_chunk`](super::scan_chunk) reads them),
    /// by this shape when it fits, else by a walk, whose chunk then becomes the shape.
    pub fn scan<'a>(&mut self, data: &'a [u8]) -> Option<ChunkFacts<'a>> {
        self.scan_for(data, true, None)
    }

    /// [`scan`](Self::scan), but a chunk read by the shape leaves its model out unless
    /// `model` is asked for: the model is the shape's own bytes, read when the shape was
    /// learnt, and checking its text again for each token was a tenth of the shape's work.
    /// A chunk the shape does not fit is read by one of `templates` when one fits it.
    pub fn scan_for<'a>(
        &mut self,
        data: &'a [u8],
        model: bool,
        templates: Option<&Templates>,
    ) -> Option<ChunkFacts<'a>> {
        if self.known
            && let Some(facts) = self.read(data, model)
        {
            return Some(facts);
        }
        let (mut facts, text) = match templates {
            Some(templates) => templates.read_or_walk(data, &mut self.next_template)?,
            None => walk(data)?,
        };
        self.learn(data, &facts, text);
        facts.content |= text.is_some_and(|t| t.non_empty);
        Some(facts)
    }

    /// The facts of a chunk with this shape's bytes around a text string of its own.
    pub(super) fn read<'a>(&self, data: &'a [u8], model: bool) -> Option<ChunkFacts<'a>> {
        let (head, tail) = self.bytes.split_at(self.head);
        if data.len() < head.len() + tail.len() || !data.starts_with(head) || !data.ends_with(tail)
        {
            return None;
        }
        let mut c = Cursor::at(data, head.len().checked_sub(1)?);
        let (raw, _) = c.string(true)?;
        // The string must close where the shape's did: the tail's first byte.
        if c.i != data.len() - tail.len() + 1 {
            return None;
        }
        let f = &self.facts;
        Some(ChunkFacts {
            content: f.content || !raw.is_empty(),
            choices: f.choices,
            finish_reason: placed(data, f.finish_reason)?,
            usage: f.usage,
            prompt_tokens: f.prompt_tokens,
            completion_tokens: f.completion_tokens,
            error: f.error,
            model: if model { placed(data, f.model)? } else { None },
        })
    }

    /// Keeps the chunk just walked as the shape, if it can be read by: it has a text
    /// string, and its strings are borrowed from it (escaped ones are not).
    fn learn(&mut self, data: &[u8], facts: &ChunkFacts<'_>, text: Option<Text>) {
        self.known = false;
        let Some(text) = text else {
            return;
        };
        let (Some(finish_reason), Some(model)) = (
            place(data, &facts.finish_reason, text),
            place(data, &facts.model, text),
        ) else {
            return;
        };
        let (Some(head), Some(tail)) = (data.get(..text.start), data.get(text.end..)) else {
            return;
        };
        self.bytes.clear();
        // Room for a usual chunk at once, rather than growing through three allocations.
        self.bytes.reserve(SHAPE_ROOM.max(head.len() + tail.len()));
        self.bytes.extend_from_slice(head);
        self.bytes.extend_from_slice(tail);
        self.head = text.start;
        self.facts = Facts {
            content: facts.content,
            choices: facts.choices,
            finish_reason,
            usage: facts.usage,
            prompt_tokens: facts.prompt_tokens,
            completion_tokens: facts.completion_tokens,
            error: facts.error,
            model,
        };
        self.known = true;
    }
}

/// Where `value` (a string borrowed from `data`, or none) lies, as seen from the end of
/// `data` it is nearer to around `text`; `None` when it cannot be placed (escaped).
fn place(data: &[u8], value: &Option<Cow<'_, str>>, text: Text) -> Option<Option<Place>> {
    let s = match value {
        None => return Some(None),
        Some(Cow::Owned(_)) => return None,
        Some(Cow::Borrowed(s)) => s,
    };
    let start = (s.as_ptr() as usize).checked_sub(data.as_ptr() as usize)?;
    let end = start + s.len();
    if end <= text.start {
        Some(Some(Place::FromStart(start, s.len())))
    } else if start > text.end && end <= data.len() {
        Some(Some(Place::FromEnd(data.len() - start, s.len())))
    } else {
        None
    }
}

/// The string at `place` in `data`. Outer `None`: it does not read as text (it did in the
/// shape's chunk, whose bytes these are, so this does not happen).
fn placed(data: &[u8], place: Option<Place>) -> Option<Option<Cow<'_, str>>> {
    let Some(place) = place else {
        return Some(None);
    };
    let range = match place {
        Place::FromStart(start, len) => start..start + len,
        Place::FromEnd(back, len) => {
            let start = data.len().checked_sub(back)?;
            start..start + len
        }
    };
    let text = std::str::from_utf8(data.get(range)?).ok()?;
    Some(Some(Cow::Borrowed(text)))
}

/// The shape's invariant, for the fuzz target: after `first` is read, `second` reads by its
/// shape as the walk reads it.
pub fn check_by_shape(first: &[u8], second: &[u8]) -> Result<(), String> {
    let mut shape = ChunkShape::default();
    shape.scan(first);
    let (by_shape, walked) = (shape.scan(second), super::scan_chunk(second));
    if by_shape == walked {
        Ok(())
    } else {
        Err(format!("by shape {by_shape:?}, walked {walked:?}"))
    }
}
