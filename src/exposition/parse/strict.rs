//! OpenMetrics bodies: the parse with that specification's line rules, then its rules over
//! whole metrics; in lenient mode a second parse that skips every line that broke one.

use super::super::lex::{scan_name, unescape_help};
use super::super::openmetrics::{self, Rule};
use super::{Mode, ParseError, ParseErrorKind, Parser, parse_lines, parse_with_metric_rules};
use crate::exposition::{Exposition, MetricType, Sample};

/// Parses a body that is OpenMetrics 1.0 and holds it to every rule of that specification
/// (see [`openmetrics`](super::openmetrics)). In [`Mode::Strict`] the first broken rule is
/// the error; in [`Mode::Lenient`] every line that breaks one is skipped and listed in
/// [`Exposition::skipped`] (every line of a metric whose buckets break one).
pub fn parse_openmetrics(input: &str, mode: Mode) -> Result<Exposition<'_>, ParseError> {
    let (exp, broken) = parse_with_metric_rules(input, mode, true, &[])?;
    if broken.is_empty() {
        return Ok(exp);
    }
    let mut offsets: Vec<usize> = broken.iter().map(|v| v.at).collect();
    offsets.extend(broken.iter().flat_map(|v| v.lines.iter().copied()));
    let lines = line_numbers(input, &offsets);
    let error = |v: &openmetrics::MetricViolation| ParseError {
        line: lines[&v.at],
        column: 1,
        kind: ParseErrorKind::OpenMetrics {
            rule: v.rule,
            detail: v.detail.clone(),
        },
    };
    if mode == Mode::Strict {
        let first = broken.iter().min_by_key(|v| v.at).map(error);
        return Err(first.unwrap_or(ParseError {
            line: 1,
            column: 1,
            kind: ParseErrorKind::openmetrics(Rule::MissingEof),
        }));
    }
    let mut skip: Vec<usize> = broken
        .iter()
        .flat_map(|v| v.lines.iter().map(|o| lines[o]))
        .collect();
    skip.sort_unstable();
    skip.dedup();
    let mut again = parse_lines(input, mode, true, &skip)?;
    again.skipped.extend(broken.iter().map(error));
    again.skipped.sort_by_key(|e| e.line);
    Ok(again)
}

/// `text` without the spaces and tabs it ends with.
fn trim_blanks_end(text: &str) -> &str {
    let b = text.as_bytes();
    let mut end = b.len();
    while end > 0 && matches!(b[end - 1], b' ' | b'\t') {
        end -= 1;
    }
    text.get(..end).unwrap_or(text)
}

/// The 1-based line number of each byte offset.
fn line_numbers(input: &str, offsets: &[usize]) -> std::collections::HashMap<usize, usize> {
    let mut sorted = offsets.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let bytes = input.as_bytes();
    let (mut line, mut from) = (1, 0);
    let mut out = std::collections::HashMap::with_capacity(sorted.len());
    for offset in sorted {
        let upto = offset.min(bytes.len());
        line += memchr::memchr_iter(b'\n', bytes.get(from..upto).unwrap_or_default()).count();
        from = upto;
        out.insert(offset, line);
    }
    out
}

/// The OpenMetrics rules that need the parser's state: metadata once and in place, a
/// family's samples together, each sample's own rules, and the rules over whole metrics.
impl<'a> Parser<'a> {
    /// OpenMetrics: whether a family has had a line already (metadata or a sample), so a
    /// line of it after another family's would split it.
    fn family_started(&self, idx: usize) -> bool {
        !self.exp.families[idx].samples.is_empty()
            || self.metadata.get(idx).is_some_and(|m| *m != 0)
    }

    /// OpenMetrics: a metadata line the strict grammar has read. A family's HELP, TYPE and
    /// UNIT come once each, before its samples, and a unit is the end of the family's name;
    /// all checked before the line changes anything. Errors are at the name's column.
    pub(super) fn metadata_line(
        &mut self,
        line: openmetrics::MetadataLine<'a>,
    ) -> Result<(), (usize, ParseErrorKind)> {
        const NAME_AT: usize = 7;
        let name = line.name;
        let family = match self.current {
            Some(cur) if self.exp.families[cur].name == name => Some(cur),
            _ => self.index.get(name).copied(),
        };
        let unit_breaks =
            line.kind == openmetrics::Metadata::Unit && !openmetrics::unit_fits(name, line.text);
        let rule = match family {
            Some(idx) if self.current != Some(idx) && self.family_started(idx) => {
                Some(Rule::InterleavedFamilies)
            }
            Some(idx)
                if self
                    .metadata
                    .get(idx)
                    .is_some_and(|m| m & line.kind as u8 != 0) =>
            {
                Some(Rule::RepeatedMetadata)
            }
            Some(idx) if !self.exp.families[idx].samples.is_empty() => {
                Some(Rule::MetadataAfterSamples)
            }
            _ if unit_breaks => Some(Rule::UnitSuffix),
            _ => None,
        };
        if let Some(rule) = rule {
            return Err((NAME_AT, ParseErrorKind::openmetrics(rule)));
        }
        if !line.name_checked && (name.is_empty() || scan_name(name.as_bytes(), 0) != name.len()) {
            let which = line.kind.keyword();
            return Err((NAME_AT, ParseErrorKind::MalformedComment(which)));
        }
        if let (Some(kind), Some(idx)) = (line.metric_type, family)
            && super::type_conflicts(&self.exp.families[idx], kind)
        {
            return Err((NAME_AT, ParseErrorKind::ConflictingType(name.to_string())));
        }
        let idx = family.unwrap_or_else(|| self.new_family(name, MetricType::Untyped));
        let entry = &mut self.exp.families[idx];
        match line.kind {
            openmetrics::Metadata::Help => {
                let text = trim_blanks_end(line.text);
                // The grammar's check found any escape already: most texts have none.
                entry.help = Some(if line.escaped {
                    unescape_help(text)
                } else {
                    std::borrow::Cow::Borrowed(text)
                });
            }
            openmetrics::Metadata::Type => entry.kind = line.metric_type.unwrap_or(entry.kind),
            openmetrics::Metadata::Unit => {
                entry.unit = (!line.text.is_empty()).then_some(line.text)
            }
        }
        if let Some(bits) = self.metadata.get_mut(idx) {
            *bits |= line.kind as u8;
        }
        // The next sample must not take the same-name shortcut into this family.
        self.last_name = "";
        self.current = Some(idx);
        Ok(())
    }

    /// OpenMetrics: whether a sample the line grammar accepted, from `line`, is a bucket
    /// after another of its metric whose bound and count hold, all it needs checked; any
    /// other sample goes to [`Self::check_openmetrics_sample`]. `same_name` says the
    /// previous sample had this name; `labels` is its label set's range in the arena;
    /// `label_span` is where the text its braces hold is in `line` (sliced only off the
    /// repeated path); `repeated`, when its label set repeated the previous sample's but for
    /// one value, is that value and the word read from its start (see `Repeat::labels`).
    #[inline(always)]
    pub(super) fn next_bucket_holds(
        &mut self,
        line: &'a str,
        (same_name, exemplar): (bool, bool),
        (labels, value): (&std::ops::Range<u32>, f64),
        (label_span, repeated): (&std::ops::Range<usize>, Option<(&'a str, u64)>),
    ) -> bool {
        match repeated {
            // The labels are the previous bucket's but for `le`: a repeat is only taken
            // after a sample of the same name, so its role is still the one it was set
            // for.
            Some((bound, word)) if self.repeat_bucket && !exemplar => {
                self.rules.next_bound(&self.exp, bound, line, word, value)
            }
            _ if !same_name || self.role != openmetrics::Role::Bucket || exemplar => false,
            _ => {
                let labels = self.exp.labels_in(labels);
                let label_text = line.get(label_span.clone()).unwrap_or_default();
                self.rules
                    .next_bucket(&self.exp, labels, line, label_text, value)
            }
        }
    }

    /// OpenMetrics: whether a sample of a counter, gauge or unknown family that repeats
    /// the previous sample's name and label names (`repeats`: the parser found its label
    /// set written as that sample's but for the last value) breaks no rule, checked on the
    /// spot: its family, role and label names are the previous sample's, which held every
    /// rule, and no rule over a whole metric concerns these types. What is left is its
    /// value (a counter's is a count) and no exemplar or timestamp, which go to the full
    /// checks. A second model's or a second label value's series take this path.
    #[inline]
    pub(super) fn sibling_holds(&self, repeats: bool, sample: &Sample<'a>) -> bool {
        if !repeats || sample.exemplar.is_some() || sample.timestamp.is_some() {
            return false;
        }
        let Some(family) = self.current.and_then(|idx| self.exp.families.get(idx)) else {
            return false;
        };
        // The value is held to the same rule the full checks hold it to (a counter's is a
        // count); `self.role` is still the previous sample's, of the same name.
        matches!(
            family.kind,
            MetricType::Counter | MetricType::Gauge | MetricType::Untyped
        ) && openmetrics::sample_value(family.kind, self.role, sample).is_ok()
    }

    /// OpenMetrics: a family's samples are together, and each sample keeps its type's rules;
    /// then the rules over whole metrics take it. `previous` is the family of the line
    /// before (a sample's or a metadata line's); `same_name` says the previous sample had
    /// this name (so its family and role hold already); `label_text` is what its braces hold.
    pub(super) fn check_openmetrics_sample(
        &mut self,
        previous: Option<usize>,
        idx: usize,
        sample: &Sample<'a>,
        same_name: bool,
        label_text: &'a str,
    ) -> Result<(), (usize, ParseErrorKind)> {
        let om_error = |(rule, detail)| (0, ParseErrorKind::OpenMetrics { rule, detail });
        let family = &self.exp.families[idx];
        let role = if same_name {
            self.role
        } else {
            if previous != Some(idx) && self.family_started(idx) {
                return Err(om_error((
                    Rule::InterleavedFamilies,
                    format!("{} resumes after another family", family.name),
                )));
            }
            openmetrics::sample_role(family, sample.name).map_err(om_error)?
        };
        let labels = self.exp.labels_of(sample);
        openmetrics::sample(family, role, sample, labels).map_err(om_error)?;
        self.role = role;
        self.rules
            .observe(&self.exp, idx, role, sample, label_text, self.base);
        Ok(())
    }
}
