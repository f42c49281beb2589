//! Prometheus text format 0.0.4 and OpenMetrics 1.0 text: the data model, a parser and a writer.
//!
//! This module owns the wire format only. It knows nothing about engines: `engines` reads the
//! [`Exposition`] it produces. The parser borrows metric names, label names and (unescaped) label
//! values from the input, so parsing a scrape allocates per family, not per sample; label pairs
//! of all samples live in one arena ([`Exposition::labels`]).

pub mod invariants;
mod lex;
mod parse;
pub mod write;

use std::borrow::Cow;
use std::ops::Range;

pub use parse::{Mode, ParseError, ParseErrorKind, parse};
pub use write::{write_exposition, write_family_header, write_sample, write_series};

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
        let range = sample.labels.start as usize..sample.labels.end as usize;
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
    /// label order). Returns `(series, first line index in sample order, count)` descriptions;
    /// empty when every series is unique. Prometheus rejects such samples, so callers report
    /// them rather than silently picking one.
    pub fn duplicate_series(&self) -> Vec<String> {
        let mut seen = std::collections::HashMap::<String, usize>::new();
        for sample in &self.samples {
            *seen.entry(self.series_key(sample)).or_default() += 1;
        }
        let mut dups: Vec<String> = seen
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(key, n)| format!("{key} ({n} times)"))
            .collect();
        dups.sort();
        dups
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
