//! Prometheus text format 0.0.4 and OpenMetrics 1.0 text: the data model, a parser and a writer.
//!
//! This module owns the wire format only. It knows nothing about engines: `engines` reads the
//! [`Exposition`] it produces. The parser borrows metric names, label names and (unescaped) label
//! values from the input, so parsing a scrape allocates per family, not per sample; label pairs
//! of all samples live in one arena ([`Exposition::labels`]).

pub mod invariants;
mod lex;
pub mod openmetrics;
mod parse;
pub mod write;

use std::borrow::Cow;
use std::ops::Range;

/// The eight-bytes-at-a-time search, shared with the proxy's chunk scanner.
pub(crate) use lex::{find_swar, flag_below, flag_bytes};
pub use parse::{Mode, ParseError, ParseErrorKind, parse, parse_openmetrics};

/// Parses `text` as OpenMetrics (held to its specification) when `openmetrics`, else as text
/// 0.0.4.
pub fn parse_as(text: &str, mode: Mode, openmetrics: bool) -> Result<Exposition<'_>, ParseError> {
    if openmetrics {
        parse_openmetrics(text, mode)
    } else {
        parse(text, mode)
    }
}
pub use write::{
    write_exposition, write_family_header, write_openmetrics, write_sample, write_series,
};

/// The declared type of a metric family (`# TYPE`).
///
/// OpenMetrics types that classic Prometheus lacks are kept so the caller can tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricType {
    /// A monotonically increasing value (`_total`, optional `_created`).
    Counter,
    /// A value that can go up and down.
    Gauge,
    /// Cumulative buckets (`_bucket{le}`), `_sum`, `_count`.
    Histogram,
    /// Quantiles (`{quantile}`), `_sum`, `_count`.
    Summary,
    /// No `# TYPE` line, or `untyped` (0.0.4) / `unknown` (OpenMetrics).
    Untyped,
    /// OpenMetrics gauge histogram (`_bucket`, `_gcount`, `_gsum`).
    GaugeHistogram,
    /// OpenMetrics state set (one sample per state, value 0 or 1).
    StateSet,
    /// OpenMetrics info (`_info`, value 1).
    Info,
}

impl MetricType {
    /// The name used on a `# TYPE` line in text format 0.0.4 (OpenMetrics-only types map to
    /// their closest 0.0.4 equivalent so that classic parsers accept the output).
    pub fn as_text_004(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge | MetricType::StateSet | MetricType::Info => "gauge",
            MetricType::Histogram | MetricType::GaugeHistogram => "histogram",
            MetricType::Summary => "summary",
            MetricType::Untyped => "untyped",
        }
    }

    /// The name OpenMetrics gives the type on a `# TYPE` line.
    pub fn keyword(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::Summary => "summary",
            MetricType::Untyped => "unknown",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::StateSet => "stateset",
            MetricType::Info => "info",
        }
    }

    fn from_keyword(word: &str) -> Option<MetricType> {
        Some(match word {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "summary" => MetricType::Summary,
            "untyped" | "unknown" => MetricType::Untyped,
            "gaugehistogram" => MetricType::GaugeHistogram,
            "stateset" => MetricType::StateSet,
            "info" => MetricType::Info,
            _ => return None,
        })
    }

    /// Sample-name suffixes that belong to a family of this type.
    fn suffixes(self) -> &'static [&'static str] {
        match self {
            MetricType::Counter => &["_total", "_created"],
            MetricType::Histogram => &["_bucket", "_sum", "_count", "_created"],
            MetricType::Summary => &["_sum", "_count", "_created"],
            MetricType::GaugeHistogram => &["_bucket", "_gsum", "_gcount"],
            MetricType::Info => &["_info"],
            MetricType::Gauge | MetricType::Untyped | MetricType::StateSet => &[],
        }
    }
}

/// One `name="value"` pair. The value is borrowed unless the input escaped it.
#[derive(Debug, Clone, PartialEq)]
pub struct Label<'a> {
    /// Label name as written.
    pub name: &'a str,
    /// Label value with `\\`, `\"` and `\n` escapes resolved.
    pub value: Cow<'a, str>,
}

/// An OpenMetrics exemplar attached to a sample (`# {trace_id="…"} 0.5 1700000000.1`).
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar<'a> {
    /// The exemplar's own labels.
    pub labels: Vec<Label<'a>>,
    /// The exemplar value.
    pub value: f64,
    /// Optional timestamp in seconds (OpenMetrics writes seconds as a float).
    pub timestamp: Option<f64>,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    /// Full sample name, including any `_bucket`/`_sum`/`_total` suffix.
    pub name: &'a str,
    /// Range into [`Exposition::labels`].
    pub labels: Range<u32>,
    /// The value; `NaN` and `±Inf` are allowed.
    pub value: f64,
    /// Optional timestamp exactly as written: milliseconds in text 0.0.4, seconds in
    /// OpenMetrics. The unit depends on the content type, which the parser does not see.
    pub timestamp: Option<f64>,
    /// OpenMetrics exemplar, rare, so boxed.
    pub exemplar: Option<Box<Exemplar<'a>>>,
}

/// A metric family: the samples that share one `# TYPE` declaration (or one name, if untyped).
#[derive(Debug, Clone, PartialEq)]
pub struct Family<'a> {
    /// Family name as declared on `# TYPE` (or the sample name for undeclared metrics).
    pub name: &'a str,
    /// Declared type.
    pub kind: MetricType,
    /// `# HELP` text with escapes resolved.
    pub help: Option<Cow<'a, str>>,
    /// OpenMetrics `# UNIT`.
    pub unit: Option<&'a str>,
    /// This family's samples: a range into [`Exposition::samples`] (in input order; a family
    /// split across the input is regrouped so its samples are contiguous).
    pub samples: Range<u32>,
}

/// The parsed body of one scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition<'a> {
    /// Families in order of first appearance.
    pub families: Vec<Family<'a>>,
    /// Sample arena, grouped by family; a family's samples are `samples[family.samples]`.
    pub samples: Vec<Sample<'a>>,
    /// Label arena; a sample's labels are `labels[sample.labels]`.
    pub labels: Vec<Label<'a>>,
    /// Lines skipped in lenient mode, with why.
    pub skipped: Vec<ParseError>,
    /// Whether an OpenMetrics `# EOF` line was seen.
    pub saw_eof: bool,
}

impl<'a> Exposition<'a> {
    /// The samples of one family.
    pub fn samples_of(&self, family: &Family<'a>) -> &[Sample<'a>] {
        let range = family.samples.start as usize..family.samples.end as usize;
        self.samples.get(range).unwrap_or(&[])
    }

    /// The labels of one sample.
    pub fn labels_of(&self, sample: &Sample<'a>) -> &[Label<'a>] {
        self.labels_in(&sample.labels)
    }

    /// The labels at `range` in the arena: a sample's, before the sample is built.
    pub fn labels_in(&self, range: &std::ops::Range<u32>) -> &[Label<'a>] {
        let range = range.start as usize..range.end as usize;
        self.labels.get(range).unwrap_or(&[])
    }

    /// The value of label `name` on `sample`, if present.
    pub fn label<'s>(&'s self, sample: &Sample<'a>, name: &str) -> Option<&'s str> {
        self.labels_of(sample)
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.value.as_ref())
    }

    /// Total number of samples in all families.
    pub fn sample_count(&self) -> usize {
        self.samples.len()
    }

    /// Series that appear more than once (same sample name and the same label set, in any
    /// label order, at the same timestamp: OpenMetrics allows one series several points at
    /// distinct times). Returns `series (N times)` descriptions, sorted; empty when every
    /// series is unique. Prometheus rejects such samples, so callers report them rather than
    /// silently picking one.
    ///
    /// Each sample is hashed without allocating (its labels' hashes added up, so label order
    /// does not matter) and only samples of equal hash are compared: building a text key per
    /// sample was most of the time `scrape` spent on a 15 MB body.
    pub fn duplicate_series(&self) -> Vec<String> {
        let index = |i: usize| u32::try_from(i).unwrap_or(u32::MAX);
        let samples = self.samples.iter().enumerate();
        let mut hashed: Vec<(u64, u32)> = samples
            .map(|(i, s)| (series_hash(s.name, self.labels_of(s)), index(i)))
            .collect();
        hashed.sort_unstable();
        let mut dups: Vec<String> = Vec::new();
        let mut i = 0;
        while i < hashed.len() {
            let run = hashed[i..]
                .iter()
                .take_while(|h| h.0 == hashed[i].0)
                .count();
            if run > 1 {
                self.duplicates_among(&hashed[i..i + run], &mut dups);
            }
            i += run;
        }
        dups.sort();
        dups
    }

    /// Among samples of one hash, each series found more than once.
    fn duplicates_among(&self, same_hash: &[(u64, u32)], out: &mut Vec<String>) {
        let sample = |i: u32| self.samples.get(i as usize);
        // Many samples of one hash (crafted collisions, or one series repeated thousands of
        // times): group them by text key rather than comparing every pair.
        if same_hash.len() > 32 {
            let mut times = std::collections::BTreeMap::<(String, Option<u64>), usize>::new();
            for s in same_hash.iter().filter_map(|&(_, i)| sample(i)) {
                let key = (self.series_key(s), s.timestamp.map(f64::to_bits));
                *times.entry(key).or_default() += 1;
            }
            out.extend(
                times
                    .into_iter()
                    .filter(|(_, n)| *n > 1)
                    .map(|((key, _), n)| format!("{key} ({n} times)")),
            );
            return;
        }
        let mut counted = vec![false; same_hash.len()];
        for (a, &(_, first)) in same_hash.iter().enumerate() {
            if counted[a] {
                continue;
            }
            let Some(first) = sample(first) else { continue };
            let mut times = 1;
            for (b, &(_, other)) in same_hash.iter().enumerate().skip(a + 1) {
                if !counted[b] && sample(other).is_some_and(|o| self.same_point(first, o)) {
                    counted[b] = true;
                    times += 1;
                }
            }
            if times > 1 {
                out.push(format!("{} ({times} times)", self.series_key(first)));
            }
        }
    }

    /// Whether two samples are the same series at the same time.
    fn same_point(&self, a: &Sample<'a>, b: &Sample<'a>) -> bool {
        let (la, lb) = (self.labels_of(a), self.labels_of(b));
        a.name == b.name
            && a.timestamp == b.timestamp
            && la.len() == lb.len()
            && la
                .iter()
                .all(|l| lb.iter().any(|m| m.name == l.name && m.value == l.value))
    }

    /// A canonical text identity of a series: `name{a="1",b="2"}` with labels sorted.
    pub fn series_key(&self, sample: &Sample<'a>) -> String {
        let mut labels: Vec<&Label<'a>> = self.labels_of(sample).iter().collect();
        labels.sort_by(|a, b| a.name.cmp(b.name));
        let mut key = String::from(sample.name);
        key.push('{');
        for (i, label) in labels.iter().enumerate() {
            if i > 0 {
                key.push(',');
            }
            key.push_str(label.name);
            key.push_str("=\"");
            write::escape_label_value_into(&mut key, &label.value);
            key.push('"');
        }
        key.push('}');
        key
    }
}

/// A hash of a series (a sample's name and labels) that does not depend on its labels' order.
fn series_hash(name: &str, labels: &[Label<'_>]) -> u64 {
    let mut hash = mix(text_hash(name.as_bytes(), 0));
    for label in labels {
        let named = text_hash(label.name.as_bytes(), 0x9e37_79b9_7f4a_7c15);
        // Added up, so each label's hash is mixed on its own.
        hash = hash.wrapping_add(mix(text_hash(label.value.as_bytes(), named)));
    }
    hash
}

/// splitmix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A hash of `bytes` from `seed` that reads at most sixteen of them: its length, its first
/// eight and its last eight bytes. Series that differ only in the middle of a long name or
/// value collide, and are then told apart by exact comparison
/// ([`Exposition::duplicate_series`], which groups large collisions by text); hashing every
/// byte of every sample cost as much as parsing the body.
fn text_hash(bytes: &[u8], seed: u64) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    // Fixed eight-byte loads: a copy of a variable length is a call to memcpy, and three per
    // name and value made hashing cost twice the parse.
    let short = |part: &[u8]| {
        part.iter()
            .enumerate()
            .fold(0u64, |w, (i, b)| w | (u64::from(*b) << (8 * (i & 7))))
    };
    let (first, last) = match (bytes.first_chunk::<8>(), bytes.last_chunk::<8>()) {
        (Some(first), Some(last)) => (u64::from_le_bytes(*first), u64::from_le_bytes(*last)),
        _ => (short(bytes), 0),
    };
    let middle = bytes
        .get((bytes.len() / 2).saturating_sub(4)..)
        .and_then(<[u8]>::first_chunk::<8>)
        .map_or(0, |w| u64::from_le_bytes(*w));
    (seed ^ (bytes.len() as u64).wrapping_mul(K))
        .wrapping_add(first.wrapping_mul(K))
        .wrapping_add(last.rotate_left(23).wrapping_mul(0x2545_f491_4f6c_dd1d))
        .wrapping_add(middle.rotate_left(41).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}
