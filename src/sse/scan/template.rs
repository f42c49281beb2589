//! Chunks of different streams from one engine are written alike too: the same keys in
//! the same order, and only values such as the id, the creation time, the text, the finish
//! reason and the token counts between them. A stream's first chunks of each kind (the
//! role chunk, the first text, the finish, the usage) differ from the chunk before, so the
//! stream's own shape ([`ChunkShape`](super::ChunkShape)) cannot read them, and each cost a
//! walk: four a request, a fifth of the proxy's user-space work.
//!
//! A template is a walked chunk with its scalar values cut out as holes: the strings and
//! numbers the walk skips, the first text, the finish reasons, the model and the token
//! counts. A chunk reads by a template when it holds the template's bytes between its holes
//! and each hole holds a value the walk reads there the same way (the same reader is used).
//! The walk of such a chunk takes the same path as the walk of the template's chunk, since
//! its path depends only on the bytes around the values and on which reader took each
//! value, so the facts are the template's with the holes' values read in (a property test
//! and a fuzz target hold the two together).

use std::sync::Mutex;

use super::{ChunkFacts, Cursor, Text, walk, walk_from};

/// Holes a template may have: a usual chunk has five to ten, llama.cpp's last (with its
/// timings) twenty.
const MAX_HOLES: usize = 32;
/// Templates kept: an engine writes four kinds of chunk; a few engines or models behind
/// one proxy fit too.
const MAX_TEMPLATES: usize = 8;
/// A chunk longer than this is not kept as a template (a usual one is 150 to 400 bytes).
const MAX_TEMPLATE_BYTES: usize = 2048;

/// What a hole holds, and so how it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A skipped string.
    Skipped,
    /// A skipped number.
    Number,
    /// The first text string.
    Text,
    /// A choice's finish reason: a string or `null`.
    Reason,
    /// The model: a string or `null`.
    Model,
    /// The usage's prompt tokens: a count or `null`.
    Prompt,
    /// The usage's completion tokens: a count or `null`.
    Completion,
}

#[derive(Debug, Clone, Copy)]
struct Hole {
    start: usize,
    end: usize,
    kind: Kind,
}

/// The holes noted while a chunk is walked, in order.
#[derive(Debug)]
pub(super) struct Holes {
    list: [Hole; MAX_HOLES],
    len: usize,
    /// More than [`MAX_HOLES`] came: the chunk is not kept.
    overflow: bool,
}

impl Default for Holes {
    fn default() -> Self {
        let none = Hole {
            start: 0,
            end: 0,
            kind: Kind::Skipped,
        };
        Holes {
            list: [none; MAX_HOLES],
            len: 0,
            overflow: false,
        }
    }
}

impl Holes {
    pub(super) fn push(&mut self, start: usize, end: usize, kind: Kind) {
        match self.list.get_mut(self.len) {
            Some(slot) => {
                *slot = Hole { start, end, kind };
                self.len += 1;
            }
            None => self.overflow = true,
        }
    }

    fn noted(&self) -> Option<&[Hole]> {
        if self.overflow {
            return None;
        }
        self.list.get(..self.len)
    }
}

/// A chunk learnt as a template: its bytes between its holes, and what it says apart from
/// what the holes hold.
#[derive(Debug)]
struct Template {
    /// The bytes outside the holes, one run after another.
    literals: Vec<u8>,
    /// Each hole: where the run before it ends in `literals`, and what it holds.
    holes: Vec<(usize, Kind)>,
    choices: usize,
    usage: bool,
    error: bool,
}

impl Template {
    /// The chunk in `data`, walked, as a template; `None` when it is not kept: too long,
    /// too many holes, or content besides its first text (a reasoning or tool-call chunk,
    /// whose words would be kept in the template's bytes).
    fn learn(data: &[u8], facts: &ChunkFacts<'_>, holes: &[Hole]) -> Option<Template> {
        if data.len() > MAX_TEMPLATE_BYTES || facts.content {
            return None;
        }
        let mut literals = Vec::with_capacity(data.len());
        let mut kinds = Vec::with_capacity(holes.len());
        let mut at = 0;
        for hole in holes {
            literals.extend_from_slice(data.get(at..hole.start)?);
            kinds.push((literals.len(), hole.kind));
            at = hole.end;
        }
        literals.extend_from_slice(data.get(at..)?);
        Some(Template {
            literals,
            holes: kinds,
            choices: facts.choices,
            usage: facts.usage,
            error: facts.error,
        })
    }

    /// The facts of the chunk in `data` when it has this template's form (as
    /// [`walk`] gives them: the first text apart).
    fn read<'a>(&self, data: &'a [u8]) -> Option<(ChunkFacts<'a>, Option<Text>)> {
        let mut c = Cursor::at(data, 0);
        // No content besides the first text (or the chunk was not kept).
        let mut facts = ChunkFacts {
            choices: self.choices,
            usage: self.usage,
            error: self.error,
            ..ChunkFacts::default()
        };
        let mut run = 0;
        for &(run_end, kind) in &self.holes {
            let literal = self.literals.get(run..run_end)?;
            if data.get(c.i..c.i + literal.len())? != literal {
                return None;
            }
            c.i += literal.len();
            run = run_end;
            c.read_hole(kind, &mut facts)?;
        }
        (data.get(c.i..)? == self.literals.get(run..)?).then_some((facts, c.text))
    }
}

impl<'a> Cursor<'a> {
    /// Reads a hole's value with the reader the walk used there; `None` when the value is
    /// not one that reader takes the same way.
    fn read_hole(&mut self, kind: Kind, facts: &mut ChunkFacts<'a>) -> Option<()> {
        match kind {
            Kind::Skipped => self.string(false).map(drop),
            Kind::Number => {
                // The walk skips a number only where no other value starts.
                if !matches!(self.peek()?, b'-' | b'0'..=b'9') {
                    return None;
                }
                self.number()
            }
            Kind::Text => {
                if self.peek()? != b'"' {
                    return None;
                }
                self.content(facts)
            }
            Kind::Reason => self.finish_reason(facts),
            Kind::Model => {
                facts.model = self.text_or_null()?;
                Some(())
            }
            Kind::Prompt => {
                facts.prompt_tokens = self.count_or_null()?;
                Some(())
            }
            Kind::Completion => {
                facts.completion_tokens = self.count_or_null()?;
                Some(())
            }
        }
    }
}

/// The templates learnt from walked chunks, shared by the streams of a proxy, in the order
/// they were learnt: the order of a stream's kinds of chunk.
#[derive(Debug, Default)]
pub struct Templates {
    learnt: Mutex<Vec<Template>>,
}

impl Templates {
    /// The facts of the chunk in `data` (as [`walk`] gives them), by a template when one
    /// fits, else by a walk, whose chunk then becomes a template. The template at `next`
    /// is tried first; `next` becomes the one after the template that fit, which is where a
    /// stream's next kind of chunk was learnt.
    pub(super) fn read_or_walk<'a>(
        &self,
        data: &'a [u8],
        next: &mut usize,
    ) -> Option<(ChunkFacts<'a>, Option<Text>)> {
        let mut learnt = self.learnt.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(read) = read_by(&learnt, data, next) {
            return Some(read);
        }
        let mut c = Cursor::at(data, 0);
        c.holes = Some(Holes::default());
        let (facts, text) = walk_from(&mut c)?;
        let holes = c.holes.as_ref().and_then(Holes::noted);
        if let Some(template) = holes.and_then(|holes| Template::learn(data, &facts, holes)) {
            if learnt.len() == MAX_TEMPLATES {
                learnt.remove(0);
            }
            learnt.push(template);
            *next = learnt.len();
        }
        Some((facts, text))
    }
}

/// The chunk in `data` read by the first of `learnt` from `next` on (and round) that fits
/// it; `next` becomes the one after it.
fn read_by<'a>(
    learnt: &[Template],
    data: &'a [u8],
    next: &mut usize,
) -> Option<(ChunkFacts<'a>, Option<Text>)> {
    let (first, rest) = learnt.split_at((*next).min(learnt.len()));
    let (at, read) = rest
        .iter()
        .chain(first)
        .enumerate()
        .find_map(|(at, template)| Some((at, template.read(data)?)))?;
    *next = (first.len() + at) % learnt.len() + 1;
    Some(read)
}

/// The templates' invariant, for the fuzz target and the tests: after `first` is learnt,
/// `second` reads as the walk reads it.
pub fn check_by_template(first: &[u8], second: &[u8]) -> Result<(), String> {
    let (templates, mut next) = (Templates::default(), 0);
    let learnt = templates.read_or_walk(first, &mut next);
    if learnt != walk(first) {
        return Err(format!("learning {learnt:?}, walked {:?}", walk(first)));
    }
    let (by_template, walked) = (templates.read_or_walk(second, &mut next), walk(second));
    if by_template == walked {
        Ok(())
    } else {
        Err(format!("by template {by_template:?}, walked {walked:?}"))
    }
}

#[cfg(test)]
mod tests;
