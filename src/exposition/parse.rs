//! The text parser. One pass over the input, line by line, with no copies unless a label value
//! or HELP text contains escapes.
//!
//! What it accepts, because real servers send it: colons in names (`vllm:`, `llamacpp:`),
//! exponent floats, `±Inf`/`NaN` in any case, blanks and tabs, trailing blanks, CRLF, trailing
//! commas in label sets, `{}`, families split across the body or in any order (TGI), `# TYPE`
//! lines naming a `_total` family (llama.cpp), `_created` samples, OpenMetrics `# UNIT`,
//! exemplars and `# EOF`, and a missing final newline (reported, since it usually means a
//! truncated body).

use super::lex::{
    FnvMap, NAME_CHAR, parse_timestamp, parse_value, scan_name, skip_blanks, token_end,
};
use super::openmetrics::{self, Rule};
use super::{Exposition, Family, MetricType, Sample};
use labels::{Repeat, Strict, one_space, parse_exemplar, parse_labels, past_blank};

/// How the parser treats a malformed line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Fail on the first malformed line.
    Strict,
    /// Skip malformed lines and record them in [`Exposition::skipped`].
    Lenient,
}

/// A malformed line: where, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}, column {column}: {kind}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// 1-based byte column within the line.
    pub column: usize,
    /// What is wrong.
    pub kind: ParseErrorKind,
}

/// Why a line is malformed. Messages are short and name the offending text where useful.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseErrorKind {
    /// The sample line does not start with a valid metric name.
    #[error("expected a metric name")]
    InvalidName,
    /// A label name is empty or has invalid characters.
    #[error("expected a label name")]
    InvalidLabelName,
    /// The same label name twice in one label set.
    #[error("label {0:?} appears twice")]
    DuplicateLabel(String),
    /// Missing `=` between label name and value.
    #[error("expected '=' after label name")]
    ExpectedEquals,
    /// Label value does not start with `"`.
    #[error("expected '\"' to open the label value")]
    ExpectedQuote,
    /// Label value runs to the end of the line.
    #[error("label value is not closed")]
    UnterminatedLabelValue,
    /// Garbage between label pairs.
    #[error("expected ',' or '}}' after a label value")]
    ExpectedCommaOrBrace,
    /// Nothing after the name and labels.
    #[error("missing sample value")]
    MissingValue,
    /// The value is not a float.
    #[error("invalid sample value {0:?}")]
    InvalidValue(String),
    /// The timestamp is not a number.
    #[error("invalid timestamp {0:?}")]
    InvalidTimestamp(String),
    /// More text after value and timestamp.
    #[error("unexpected text after the sample: {0:?}")]
    TrailingText(String),
    /// An exemplar (`# {…} value [ts]`) that does not parse.
    #[error("invalid exemplar")]
    InvalidExemplar,
    /// `# TYPE` names a type this parser does not know.
    #[error("unknown metric type {0:?}")]
    UnknownType(String),
    /// `# TYPE` for a family that already has samples of another type.
    #[error("family {0:?} declared again with another type")]
    ConflictingType(String),
    /// `# HELP`, `# TYPE` or `# UNIT` without its fields.
    #[error("malformed # {0} line")]
    MalformedComment(&'static str),
    /// Non-empty lines after OpenMetrics `# EOF`.
    #[error("content after # EOF")]
    AfterEof,
    /// The body does not end with a newline.
    #[error("the last line does not end with a newline (truncated body?)")]
    MissingFinalNewline,
    /// An OpenMetrics body breaks a rule of the specification.
    #[error("OpenMetrics: {}{}", .rule.text(), if .detail.is_empty() { String::new() } else { format!(" ({})", .detail) })]
    OpenMetrics {
        /// The rule.
        rule: Rule,
        /// What on the line breaks it.
        detail: String,
    },
}

impl ParseErrorKind {
    fn openmetrics(rule: Rule) -> ParseErrorKind {
        ParseErrorKind::OpenMetrics {
            rule,
            detail: String::new(),
        }
    }
}

/// Parses a Prometheus text 0.0.4 or OpenMetrics 1.0 text body.
///
/// In [`Mode::Strict`] the first malformed line is returned as the error. In [`Mode::Lenient`]
/// malformed lines are skipped and listed in [`Exposition::skipped`]; a missing final newline
/// is listed there too, but the last line is still parsed.
pub fn parse(input: &str, mode: Mode) -> Result<Exposition<'_>, ParseError> {
    parse_lines(input, mode, false, &[])
}

/// The one pass over the lines. `openmetrics` adds that specification's line rules; the
/// 1-based lines in `skip` (sorted) are passed over as if absent.
fn parse_lines<'a>(
    input: &'a str,
    mode: Mode,
    openmetrics: bool,
    skip: &[usize],
) -> Result<Exposition<'a>, ParseError> {
    parse_with_metric_rules(input, mode, openmetrics, skip).map(|(exp, _)| exp)
}

/// [`parse_lines`], also returning what the OpenMetrics rules over whole metrics found
/// (nothing unless `openmetrics`).
fn parse_with_metric_rules<'a>(
    input: &'a str,
    mode: Mode,
    openmetrics: bool,
    skip: &[usize],
) -> Result<(Exposition<'a>, Vec<openmetrics::MetricViolation>), ParseError> {
    let bytes = input.as_bytes();
    // Reserving up front saves the arenas' repeated growth and copying: a line holds at most
    // one sample.
    let lines = memchr::memchr_iter(b'\n', bytes).count() + 1;
    // Every label pair has an `=`, so their count bounds the label arena (HELP texts and
    // label values may add a few): sized once, it is neither copied as it grows nor faulted
    // in twice. A vLLM body holds about three pairs per line.
    let pairs = memchr::memchr_iter(b'=', bytes).count();
    let mut parser = Parser {
        exp: Exposition {
            labels: Vec::with_capacity(pairs),
            samples: Vec::with_capacity(lines),
            ..Exposition::default()
        },
        sample_family: Vec::with_capacity(lines),
        split: false,
        index: FnvMap::default(),
        current: None,
        last_name: "",
        repeat: Repeat::default(),
        repeat_bucket: false,
        metadata: Vec::new(),
        rules: openmetrics::MetricRules::default(),
        role: openmetrics::Role::Plain,
        base: input.as_ptr() as usize,
    };
    let line_no = match openmetrics {
        true => parser.lines::<true>(input, mode, skip)?,
        false => parser.lines::<false>(input, mode, skip)?,
    };
    if openmetrics && !parser.exp.saw_eof {
        let err = ParseError {
            line: line_no.max(1),
            column: 1,
            kind: ParseErrorKind::openmetrics(Rule::MissingEof),
        };
        match mode {
            Mode::Strict => return Err(err),
            Mode::Lenient => parser.exp.skipped.push(err),
        }
    }
    if openmetrics {
        parser.rules.finish(&parser.exp, parser.base);
    }
    if parser.split {
        parser.regroup();
    }
    Ok((parser.exp, parser.rules.violations))
}

struct Parser<'a> {
    exp: Exposition<'a>,
    /// Family name → index into `exp.families`.
    index: FnvMap<&'a str, usize>,
    /// The family the previous sample went to; samples of one family are almost always
    /// contiguous, so this avoids a hash lookup per sample.
    current: Option<usize>,
    /// The family of each sample in `exp.samples`, for regrouping split families.
    sample_family: Vec<u32>,
    /// Whether some family's samples are not contiguous in `exp.samples`.
    split: bool,
    /// The previous sample's name. Consecutive samples usually share it (a histogram's
    /// buckets), and comparing it is much cheaper than scanning the name byte by byte.
    last_name: &'a str,
    /// How the next sample's label set may repeat the previous sample's.
    repeat: Repeat<'a>,
    /// OpenMetrics: the previous sample was a bucket and the value that varies in `repeat`
    /// is its `le`, so a repeat of its label set is its metric's next bucket.
    repeat_bucket: bool,
    /// OpenMetrics: which metadata lines each family has had (`Metadata` bits).
    metadata: Vec<u8>,
    /// OpenMetrics: the rules over whole metrics, fed each sample as it is accepted.
    rules: openmetrics::MetricRules<'a>,
    /// OpenMetrics: the role of the previous sample's name (`last_name`) in its family.
    role: openmetrics::Role,
    /// The body's address, to turn a name into its offset.
    base: usize,
}

impl<'a> Parser<'a> {
    /// Every line of `input` but those in `skip`, in one pass; the number of lines. `OM`
    /// (the body is OpenMetrics) is a constant so that each spelling's parse is compiled
    /// on its own, without the other's branches.
    fn lines<const OM: bool>(
        &mut self,
        input: &'a str,
        mode: Mode,
        skip: &[usize],
    ) -> Result<usize, ParseError> {
        let bytes = input.as_bytes();
        let mut skip = skip.iter().copied().peekable();
        let mut start = 0;
        let mut line_no = 0;
        while start < bytes.len() {
            line_no += 1;
            let rest = bytes.get(start..).unwrap_or_default();
            let (end, next) = match memchr::memchr(b'\n', rest) {
                Some(i) => (start + i, start + i + 1),
                None => (bytes.len(), bytes.len()),
            };
            // '\n' is ASCII, so both ends are char boundaries.
            let line = input.get(start..end).unwrap_or_default();
            if skip.next_if_eq(&line_no).is_some() {
                start = next;
                continue;
            }
            // OpenMetrics lets `# EOF` end the body without a newline; any other last line
            // without one is likely cut off.
            if end == bytes.len() && !line.trim().is_empty() && line.trim_end() != "# EOF" {
                let err = ParseError {
                    line: line_no,
                    column: line.len() + 1,
                    kind: ParseErrorKind::MissingFinalNewline,
                };
                match mode {
                    Mode::Strict => return Err(err),
                    Mode::Lenient => self.exp.skipped.push(err),
                }
            }
            if let Err(err) = self.line::<OM>(line, line_no) {
                match mode {
                    Mode::Strict => return Err(err),
                    Mode::Lenient => self.exp.skipped.push(err),
                }
            }
            start = next;
        }
        Ok(line_no)
    }

    fn line<const OM: bool>(&mut self, raw: &'a str, line_no: usize) -> Result<(), ParseError> {
        let b = raw.as_bytes();
        let mut end = b.len();
        while end > 0 && matches!(b[end - 1], b'\r' | b' ' | b'\t') {
            end -= 1;
        }
        let indent = skip_blanks(b, 0).min(end);
        // Every OpenMetrics layout rule is about an empty line or blanks and CRs at either
        // end: only such a line needs the check.
        if OM && ((indent | (b.len() - end)) != 0 || b.is_empty()) {
            openmetrics::line_layout(raw).map_err(|(column, rule)| ParseError {
                line: line_no,
                column: column + 1,
                kind: ParseErrorKind::openmetrics(rule),
            })?;
        }
        let line = raw.get(indent..end).unwrap_or_default();
        if line.is_empty() {
            return Ok(());
        }
        let err = |column: usize, kind| ParseError {
            line: line_no,
            column: indent + column + 1,
            kind,
        };
        if self.exp.saw_eof {
            return Err(err(0, ParseErrorKind::AfterEof));
        }
        if line.as_bytes()[0] == b'#' {
            if !OM {
                return self.comment(line).map_err(|(col, kind)| err(col, kind));
            }
            let metadata = openmetrics::comment(raw)
                .map_err(|(col, rule)| err(col, ParseErrorKind::openmetrics(rule)))?;
            let Some(metadata) = metadata else {
                self.exp.saw_eof = true;
                return Ok(());
            };
            return self
                .metadata_line(metadata)
                .map_err(|(col, kind)| err(col, kind));
        }
        let arena_len = self.exp.labels.len();
        self.sample::<OM>(line).map_err(|(col, kind)| {
            self.exp.labels.truncate(arena_len);
            err(col, kind)
        })
    }

    /// The family named exactly `name`, created untyped if it does not exist yet.
    fn family_by_name(&mut self, name: &'a str) -> usize {
        // A metadata line may move `current` to another family, so the next sample must not
        // take the same-name shortcut into it.
        self.last_name = "";
        // `# HELP x` is followed by `# TYPE x`: the second needs no lookup.
        if let Some(cur) = self.current
            && self.exp.families[cur].name == name
        {
            return cur;
        }
        let idx = match self.index.get(name) {
            Some(&idx) => idx,
            None => self.new_family(name, MetricType::Untyped),
        };
        self.current = Some(idx);
        idx
    }

    fn new_family(&mut self, name: &'a str, kind: MetricType) -> usize {
        let idx = self.exp.families.len();
        self.exp.families.push(Family {
            name,
            kind,
            help: None,
            unit: None,
            samples: 0..0,
        });
        self.metadata.push(0);
        self.index.insert(name, idx);
        idx
    }

    /// Declares `name`'s type. A conflicting declaration is rejected before any state
    /// changes, so a skipped line leaves the parser exactly as it was.
    fn declare_type(&mut self, name: &'a str, kind: MetricType) -> Result<(), ParseErrorKind> {
        if let Some(&idx) = self.index.get(name)
            && type_conflicts(&self.exp.families[idx], kind)
        {
            return Err(ParseErrorKind::ConflictingType(name.to_string()));
        }
        let idx = self.family_by_name(name);
        self.exp.families[idx].kind = kind;
        Ok(())
    }

    /// Which family a sample named `name` belongs to: the current one if it matches, else a
    /// declared family whose name is `name` or `name` minus a type suffix, else a new untyped
    /// family named `name`.
    fn family_for_sample(&mut self, name: &'a str) -> usize {
        if let Some(cur) = self.current
            && belongs(&self.exp.families[cur], name)
        {
            return cur;
        }
        let idx = self
            .lookup_family(name)
            .unwrap_or_else(|| self.new_family(name, MetricType::Untyped));
        self.current = Some(idx);
        idx
    }

    fn lookup_family(&self, name: &str) -> Option<usize> {
        if let Some(&idx) = self.index.get(name) {
            return Some(idx);
        }
        const SUFFIXES: [&str; 8] = [
            "_bucket", "_sum", "_count", "_total", "_created", "_gsum", "_gcount", "_info",
        ];
        SUFFIXES.iter().find_map(|suffix| {
            let base = name.strip_suffix(suffix)?;
            let &idx = self.index.get(base)?;
            belongs(&self.exp.families[idx], name).then_some(idx)
        })
    }

    /// Appends a sample to the arena and extends its family's range; a family whose range
    /// does not end at the arena's end has been split, and is regrouped at the end.
    fn push_sample(&mut self, idx: usize, sample: Sample<'a>) {
        let at = self.exp.samples.len() as u32;
        let range = &mut self.exp.families[idx].samples;
        if range.start == range.end {
            *range = at..at + 1;
        } else if range.end == at {
            range.end += 1;
        } else {
            self.split = true;
        }
        self.exp.samples.push(sample);
        self.sample_family.push(idx as u32);
    }

    /// Reorders the sample arena so every family's samples are contiguous, keeping input
    /// order within a family. Only needed when a family was split across the input.
    fn regroup(&mut self) {
        let mut order: Vec<usize> = (0..self.exp.samples.len()).collect();
        order.sort_by_key(|&i| self.sample_family[i]);
        let mut old: Vec<Option<Sample<'a>>> = std::mem::take(&mut self.exp.samples)
            .into_iter()
            .map(Some)
            .collect();
        let mut start = 0u32;
        for family in &mut self.exp.families {
            family.samples = start..start;
        }
        for i in order {
            let family = self.sample_family[i] as usize;
            if let Some(sample) = old[i].take() {
                self.exp.samples.push(sample);
            }
            let range = &mut self.exp.families[family].samples;
            if range.start == range.end {
                *range = start..start + 1;
            } else {
                range.end += 1;
            }
            start += 1;
        }
    }

    /// Where the metric name at the start of `b` ends: the previous sample's name when the
    /// line repeats it (followed by a non-name byte), else a full scan.
    /// The flag says whether it is the previous sample's name.
    fn name_end(&self, b: &[u8]) -> (usize, bool) {
        let last = self.last_name.as_bytes();
        if !last.is_empty()
            && b.len() > last.len()
            && b.starts_with(last)
            && !NAME_CHAR[b[last.len()] as usize]
        {
            return (last.len(), true);
        }
        (scan_name(b, 0), false)
    }

    fn sample<const OM: bool>(&mut self, line: &'a str) -> Result<(), (usize, ParseErrorKind)> {
        let b = line.as_bytes();
        let (name_end, same_name) = self.name_end(b);
        if name_end == 0 {
            return Err((0, ParseErrorKind::InvalidName));
        }
        let name = line.get(..name_end).unwrap_or_default();
        let mut pos = skip_blanks(b, name_end);
        let label_start = self.exp.labels.len() as u32;
        // Where the braces' text is, sliced only where a rule reads it: the hot repeated
        // bucket needs none, and a `str` slice checks both ends for a char boundary.
        let mut label_span = 0..0;
        // Whether the label set repeats the previous sample's but for one value, and
        // where the next sample's may repeat this one's from (none without labels).
        let mut repeated = None;
        let mut repeat = Repeat::default();
        if pos < b.len() && b[pos] == b'{' {
            if OM && pos != name_end {
                return Err((name_end, ParseErrorKind::openmetrics(Rule::Whitespace)));
            }
            let open = pos;
            if same_name && let Some(previous) = self.exp.samples.last() {
                let range = previous.labels.start as usize..previous.labels.end as usize;
                repeated = self.repeat.labels(line, open, range, &mut self.exp.labels);
            }
            pos = match repeated {
                Some((after, ..)) => after,
                None => {
                    let first = label_start as usize;
                    let strict = OM.then_some(Strict);
                    let after = parse_labels(line, pos, &mut self.exp.labels, first, strict)?;
                    let labels = self.exp.labels.get(first..).unwrap_or_default();
                    repeat = Repeat::of(line, (open, after), labels);
                    after
                }
            };
            let after = pos;
            label_span = open + 1..after - 1;
            pos = past_blank::<OM>(b, after)?;
        } else if pos == name_end && pos < b.len() {
            // A name character we do not accept, e.g. `foo-bar 1`.
            return Err((pos, ParseErrorKind::InvalidName));
        } else {
            one_space(OM, b, name_end, pos)?;
        }
        let labels = label_start..self.exp.labels.len() as u32;
        let value_end = token_end(b, pos);
        if value_end == pos {
            return Err((pos, ParseErrorKind::MissingValue));
        }
        let value_text = line.get(pos..value_end).unwrap_or_default();
        let value = parse_value(value_text)
            .ok_or_else(|| (pos, ParseErrorKind::InvalidValue(value_text.to_string())))?;
        pos = past_blank::<OM>(b, value_end)?;
        let mut timestamp = None;
        if pos < b.len() && b[pos] != b'#' {
            let ts_end = token_end(b, pos);
            let ts_text = line.get(pos..ts_end).unwrap_or_default();
            timestamp = Some(
                parse_timestamp(ts_text)
                    .ok_or_else(|| (pos, ParseErrorKind::InvalidTimestamp(ts_text.to_string())))?,
            );
            pos = past_blank::<OM>(b, ts_end)?;
        }
        let mut exemplar = None;
        if pos < b.len() {
            if b[pos] != b'#' {
                let rest = line.get(pos..).unwrap_or_default();
                return Err((pos, ParseErrorKind::TrailingText(rest.to_string())));
            }
            exemplar = Some(Box::new(parse_exemplar(line, pos, OM.then_some(Strict))?));
        }
        let previous = self.current;
        // The same name as the previous sample goes to the same family.
        let idx = match self.current {
            Some(cur) if same_name => cur,
            _ => self.family_for_sample(name),
        };
        let repeated_bound = repeated.map(|(_, bound, word)| (bound, word));
        let next_bucket = OM
            && self.next_bucket_holds(
                line,
                (same_name, exemplar.is_some()),
                (&labels, value),
                (&label_span, repeated_bound),
            );
        let sample = Sample {
            name,
            labels,
            value,
            timestamp,
            exemplar,
        };
        if OM && !next_bucket && !self.sibling_holds(same_name && repeated.is_some(), &sample) {
            let label_text = line.get(label_span).unwrap_or_default();
            self.check_openmetrics_sample(previous, idx, &sample, same_name, label_text)?;
        }
        // Only a sample that made it in may serve as the shortcut for the next one.
        self.last_name = name;
        // A repeated set leaves the repeat as it was: its bytes are the same.
        if repeated.is_none() {
            self.repeat = repeat;
            self.repeat_bucket = OM && self.role == openmetrics::Role::Bucket && repeat.varies_le();
        }
        self.push_sample(idx, sample);
        Ok(())
    }
}

/// Whether declaring `family` as `kind` contradicts what it already is: another type,
/// unless it is an untyped family with no samples yet (a HELP line made it).
fn type_conflicts(family: &Family<'_>, kind: MetricType) -> bool {
    let redeclarable = family.kind == MetricType::Untyped && family.samples.is_empty();
    family.kind != kind && !redeclarable
}

fn belongs(family: &Family<'_>, name: &str) -> bool {
    match name.strip_prefix(family.name) {
        Some("") => true,
        Some(suffix) => family.kind.suffixes().contains(&suffix),
        None => false,
    }
}

mod comment;
mod labels;
mod strict;

pub use strict::parse_openmetrics;

#[cfg(test)]
mod tests;
