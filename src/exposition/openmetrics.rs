//! OpenMetrics 1.0, exactly. When a body is OpenMetrics (its content type says so, or a file
//! or standard input ends with `# EOF`), the parser holds it to every rule of the
//! specification that text 0.0.4 does not have: the line grammar (single spaces, no blank
//! lines, no CR, no trailing comma, three escapes, four comment kinds, `# EOF` last), the
//! metadata (once each, before the samples, a unit the name ends with), the sample names each
//! type allows, and the values each type allows (counts that are counts, cumulative buckets
//! ending at `+Inf` equal to `_count`, quantiles between 0 and 1, info 1, state sets 0 or 1),
//! exemplars only where they belong. A violation is an error naming the line and the rule
//! (strict) or a listed, skipped line (lenient), as Prometheus' OpenMetrics parser and the
//! reference Python parser refuse such bodies.
//!
//! The line rules run inside the parser's one pass; the rules over a whole metric (a
//! histogram's buckets, a summary's quantiles, timestamps) run on the parsed exposition.

use super::{Family, Label, MetricType, Sample};

/// The rule a body breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// The body ends with `# EOF`.
    MissingEof,
    /// No blank lines.
    BlankLine,
    /// Lines end with LF alone.
    CarriageReturn,
    /// Tokens are separated by exactly one space.
    Whitespace,
    /// No comma after the last label.
    TrailingComma,
    /// Label values and HELP texts escape only `\\`, `\"` and `\n`.
    InvalidEscape,
    /// Label names starting with `__` are reserved.
    ReservedLabelName,
    /// The only comments are `# HELP`, `# TYPE`, `# UNIT` and `# EOF`.
    UnknownComment,
    /// The types are OpenMetrics' eight (no `untyped`).
    InvalidType,
    /// A family has at most one HELP, TYPE and UNIT.
    RepeatedMetadata,
    /// A family's metadata comes before its samples.
    MetadataAfterSamples,
    /// A family with a unit has a name ending in `_<unit>`.
    UnitSuffix,
    /// A family's samples are together, not interleaved with another family's.
    InterleavedFamilies,
    /// A sample's name is its family's name plus a suffix the type allows.
    SampleSuffix,
    /// Counter totals and created times are not negative and not NaN.
    CounterValue,
    /// `le` only on buckets, `quantile` only on summary quantiles.
    MisplacedLabel,
    /// A bucket has an `le` label holding a number.
    BucketLabel,
    /// Buckets are in increasing `le` order.
    BucketOrder,
    /// Bucket counts are cumulative.
    NonCumulative,
    /// The last bucket is `+Inf`.
    MissingInf,
    /// `_count` equals the `+Inf` bucket, and `_count` and `_sum` come together.
    CountMismatch,
    /// Bucket counts and `_count` are not negative and not NaN.
    NegativeCount,
    /// A quantile sample has a `quantile` label from 0 to 1.
    QuantileLabel,
    /// An info sample's value is 1.
    InfoValue,
    /// A state-set sample is 0 or 1 and has a label named after its family.
    StateSetValue,
    /// Exemplars only on counter `_total` and histogram `_bucket` samples.
    ExemplarPlacement,
    /// An exemplar's labels hold at most 128 characters.
    ExemplarTooLong,
    /// Samples of one series with timestamps are in increasing time order.
    TimestampOrder,
}

impl Rule {
    /// Every rule.
    pub const ALL: [Rule; 28] = [
        Rule::MissingEof,
        Rule::BlankLine,
        Rule::CarriageReturn,
        Rule::Whitespace,
        Rule::TrailingComma,
        Rule::InvalidEscape,
        Rule::ReservedLabelName,
        Rule::UnknownComment,
        Rule::InvalidType,
        Rule::RepeatedMetadata,
        Rule::MetadataAfterSamples,
        Rule::UnitSuffix,
        Rule::InterleavedFamilies,
        Rule::SampleSuffix,
        Rule::CounterValue,
        Rule::MisplacedLabel,
        Rule::BucketLabel,
        Rule::BucketOrder,
        Rule::NonCumulative,
        Rule::MissingInf,
        Rule::CountMismatch,
        Rule::NegativeCount,
        Rule::QuantileLabel,
        Rule::InfoValue,
        Rule::StateSetValue,
        Rule::ExemplarPlacement,
        Rule::ExemplarTooLong,
        Rule::TimestampOrder,
    ];

    /// The rule in words.
    pub fn text(self) -> &'static str {
        match self {
            Rule::MissingEof => "the body must end with `# EOF`",
            Rule::BlankLine => "blank lines are not allowed",
            Rule::CarriageReturn => "lines end with LF alone, not CR LF",
            Rule::Whitespace => {
                "tokens are separated by exactly one space (no tabs, no leading, doubled or trailing blanks)"
            }
            Rule::TrailingComma => "no comma after the last label",
            Rule::InvalidEscape => "label values and HELP escape only \\\\, \\\" and \\n",
            Rule::ReservedLabelName => "label names starting with __ are reserved",
            Rule::UnknownComment => "the only comments are # HELP, # TYPE, # UNIT and # EOF",
            Rule::InvalidType => {
                "the types are counter, gauge, histogram, gaugehistogram, stateset, info, summary and unknown"
            }
            Rule::RepeatedMetadata => "a family has at most one HELP, one TYPE and one UNIT",
            Rule::MetadataAfterSamples => "a family's HELP, TYPE and UNIT come before its samples",
            Rule::UnitSuffix => "a family with a UNIT has a name ending in _ and the unit",
            Rule::InterleavedFamilies => {
                "a family's samples are together, not split by another family"
            }
            Rule::SampleSuffix => {
                "a sample is named after its family with a suffix its type allows"
            }
            Rule::CounterValue => "counter totals and created times are not negative and not NaN",
            Rule::MisplacedLabel => {
                "le belongs only on buckets and quantile only on summary quantiles"
            }
            Rule::BucketLabel => "a bucket has an le label holding a number",
            Rule::BucketOrder => "buckets come in increasing le order",
            Rule::NonCumulative => "bucket counts are cumulative: they never fall as le rises",
            Rule::MissingInf => "a histogram ends with an le=\"+Inf\" bucket",
            Rule::CountMismatch => {
                "_count equals the +Inf bucket, and _count and _sum come together"
            }
            Rule::NegativeCount => "bucket counts and _count are not negative and not NaN",
            Rule::QuantileLabel => "a summary quantile has a quantile label from 0 to 1",
            Rule::InfoValue => "an info sample's value is 1",
            Rule::StateSetValue => {
                "a state-set sample is 0 or 1 and has a label named after its family"
            }
            Rule::ExemplarPlacement => {
                "exemplars belong only on counter _total and histogram _bucket samples"
            }
            Rule::ExemplarTooLong => {
                "an exemplar's label names and values hold at most 128 characters"
            }
            Rule::TimestampOrder => "samples of one series come in increasing timestamp order",
        }
    }
}

/// Whether a body is OpenMetrics: its content type says so, or (no content type: a file or
/// standard input) its last line is `# EOF`.
pub fn is_openmetrics(content_type: Option<&str>, text: &str) -> bool {
    match content_type {
        Some(ct) => ct.split(';').next().is_some_and(|media| {
            media
                .trim()
                .eq_ignore_ascii_case("application/openmetrics-text")
        }),
        None => text.trim_end_matches('\n').rsplit('\n').next() == Some("# EOF"),
    }
}

/// The OpenMetrics checks of a raw line before the parser trims it: no CR, no blank line,
/// no leading blank, and (sample lines) no trailing blank. Column and rule on failure.
pub(super) fn line_layout(raw: &str) -> Result<(), (usize, Rule)> {
    let b = raw.as_bytes();
    if b.last() == Some(&b'\r') {
        return Err((b.len() - 1, Rule::CarriageReturn));
    }
    // Only a line that is empty or starts with a blank needs a closer look.
    if b.is_empty() {
        return Err((0, Rule::BlankLine));
    }
    if matches!(b[0], b' ' | b'\t') {
        let blank = b.iter().all(|c| *c == b' ' || *c == b'\t');
        return Err((
            0,
            if blank {
                Rule::BlankLine
            } else {
                Rule::Whitespace
            },
        ));
    }
    if b[0] != b'#' && matches!(b.last(), Some(b' ' | b'\t')) {
        return Err((b.len() - 1, Rule::Whitespace));
    }
    Ok(())
}

/// A metadata line's kind, for the once-each and before-samples rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Metadata {
    Help = 1,
    Type = 2,
    Unit = 4,
}

impl Metadata {
    pub(super) fn keyword(self) -> &'static str {
        match self {
            Metadata::Help => "HELP",
            Metadata::Type => "TYPE",
            Metadata::Unit => "UNIT",
        }
    }
}

/// A metadata line as the strict grammar read it.
#[derive(Debug, Clone, Copy)]
pub(super) struct MetadataLine<'a> {
    pub kind: Metadata,
    pub name: &'a str,
    /// The HELP text (escapes as written), the unit, or the type keyword.
    pub text: &'a str,
    /// The type a TYPE line declares.
    pub metric_type: Option<MetricType>,
    /// Whether the HELP text holds an escape (else it is its own unescaped text).
    pub escaped: bool,
    /// Whether the name was found to be a valid metric name.
    pub name_checked: bool,
}

/// The exact grammar of a comment line: `# HELP name text`, `# TYPE name type`,
/// `# UNIT name unit` or `# EOF`, single spaces, the eight types, the three escapes.
/// Returns the metadata line (`None` for `# EOF`).
pub(super) fn comment(raw: &str) -> Result<Option<MetadataLine<'_>>, (usize, Rule)> {
    let Some(rest) = raw.strip_prefix("# ") else {
        return Err((0, Rule::UnknownComment));
    };
    if rest == "EOF" {
        return Ok(None);
    }
    let kind = match rest.as_bytes().get(..5) {
        Some(b"HELP ") => Metadata::Help,
        Some(b"TYPE ") => Metadata::Type,
        Some(b"UNIT ") => Metadata::Unit,
        _ if rest.starts_with([' ', '\t']) => return Err((2, Rule::Whitespace)),
        _ if matches!(rest, "HELP" | "TYPE" | "UNIT") => return Err((raw.len(), Rule::Whitespace)),
        _ => return Err((2, Rule::UnknownComment)),
    };
    let rest = rest.get(5..).unwrap_or_default();
    if rest.starts_with(' ') {
        return Err((7, Rule::Whitespace));
    }
    // A valid name ends at the space; only a name with a byte no name may hold needs the
    // search for the space (the name is then refused where its family is known).
    let name_end = super::lex::scan_name(rest.as_bytes(), 0);
    let name_checked = name_end > 0 && rest.as_bytes().get(name_end) == Some(&b' ');
    let space = match name_checked {
        true => Some(name_end),
        false => memchr::memchr(b' ', rest.as_bytes()),
    };
    let Some(space) = space else {
        // HELP and UNIT need the space before an empty text; TYPE needs its type.
        return Err((raw.len(), Rule::Whitespace));
    };
    let (name, text) = (
        rest.get(..space).unwrap_or_default(),
        rest.get(space + 1..).unwrap_or_default(),
    );
    let text_at = raw.len() - text.len();
    let (mut metric_type, mut escaped) = (None, false);
    match kind {
        Metadata::Type | Metadata::Unit if text.starts_with(' ') || text.ends_with(' ') => {
            return Err((text_at, Rule::Whitespace));
        }
        Metadata::Type => {
            // `untyped` is text 0.0.4's word; OpenMetrics says `unknown`.
            metric_type = MetricType::from_keyword(text).filter(|_| text != "untyped");
            if metric_type.is_none() {
                return Err((text_at, Rule::InvalidType));
            }
        }
        Metadata::Help => {
            escaped = valid_escapes(text).map_err(|i| (text_at + i, Rule::InvalidEscape))?;
        }
        Metadata::Unit => {}
    }
    Ok(Some(MetadataLine {
        kind,
        name,
        text,
        metric_type,
        escaped,
        name_checked,
    }))
}

/// Whether `text` holds escapes, all of them `\\`, `\"` or `\n`; else the byte offset of
/// the first that is not.
pub(super) fn valid_escapes(text: &str) -> Result<bool, usize> {
    let b = text.as_bytes();
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'\\', b.get(from..).unwrap_or_default()) {
        let at = from + i;
        if !matches!(b.get(at + 1), Some(b'\\' | b'"' | b'n')) {
            return Err(at);
        }
        from = at + 2;
    }
    Ok(from > 0)
}

/// Whether `unit` may follow `name` (`# UNIT`): the name ends in `_` and the unit.
pub(super) fn unit_fits(name: &str, unit: &str) -> bool {
    unit.is_empty()
        || name
            .strip_suffix(unit)
            .is_some_and(|stem| stem.ends_with('_'))
}

/// What a sample is within its family, from the suffix its name adds to the family's.
/// Decided once per name: a histogram's buckets repeat theirs line after line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// No suffix: a gauge, a state set, a summary's quantile, an unknown.
    Plain,
    Total,
    Created,
    Bucket,
    Count,
    Sum,
    GCount,
    GSum,
    Info,
}

impl Role {
    const ALL: [(Role, &'static str); 9] = [
        (Role::Plain, ""),
        (Role::Total, "_total"),
        (Role::Created, "_created"),
        (Role::Bucket, "_bucket"),
        (Role::Count, "_count"),
        (Role::Sum, "_sum"),
        (Role::GCount, "_gcount"),
        (Role::GSum, "_gsum"),
        (Role::Info, "_info"),
    ];

    /// Whether OpenMetrics allows this role in a `kind` family.
    fn allowed_in(self, kind: MetricType) -> bool {
        use Role::*;
        match kind {
            MetricType::Counter => matches!(self, Total | Created),
            MetricType::Gauge | MetricType::StateSet | MetricType::Untyped => self == Plain,
            MetricType::Histogram => matches!(self, Bucket | Count | Sum | Created),
            MetricType::GaugeHistogram => matches!(self, Bucket | GCount | GSum),
            MetricType::Summary => matches!(self, Plain | Count | Sum | Created),
            MetricType::Info => self == Info,
        }
    }
}

/// The role of a sample named `name` in `family`, if its type allows the suffix. The
/// parser puts a sample only in a family whose name starts its own.
pub(super) fn sample_role(family: &Family<'_>, name: &str) -> Result<Role, (Rule, String)> {
    let suffix = name.get(family.name.len()..).unwrap_or_default();
    let role = Role::ALL
        .iter()
        .find(|(_, s)| *s == suffix)
        .map(|(role, _)| *role)
        .filter(|role| role.allowed_in(family.kind));
    role.ok_or_else(|| {
        let allowed: Vec<String> = Role::ALL
            .iter()
            .filter(|(role, _)| role.allowed_in(family.kind))
            .map(|(_, s)| format!("{}{s}", family.name))
            .collect();
        (
            Rule::SampleSuffix,
            format!(
                "{name} in a {} family takes the names {}",
                family.kind.keyword(),
                allowed.join(", ")
            ),
        )
    })
}

/// The rules one sample can break on its own, given its family and its name's role:
/// reserved and misplaced labels, the values its type allows, and where exemplars go.
pub(super) fn sample(
    family: &Family<'_>,
    role: Role,
    sample: &Sample<'_>,
    labels: &[Label<'_>],
) -> Result<(), (Rule, String)> {
    sample_labels(family, role, labels)?;
    sample_value(family.kind, role, sample)?;
    if let Some(exemplar) = &sample.exemplar {
        let placed = matches!(
            (family.kind, role),
            (MetricType::Counter, Role::Total)
                | (
                    MetricType::Histogram | MetricType::GaugeHistogram,
                    Role::Bucket
                )
        );
        if !placed {
            return Err((Rule::ExemplarPlacement, format!("on {}", sample.name)));
        }
        let length: usize = exemplar
            .labels
            .iter()
            .map(|l| l.name.chars().count() + l.value.chars().count())
            .sum();
        if length > 128 {
            return Err((Rule::ExemplarTooLong, format!("{length} characters")));
        }
    }
    Ok(())
}

fn sample_labels(
    family: &Family<'_>,
    role: Role,
    labels: &[Label<'_>],
) -> Result<(), (Rule, String)> {
    let kind = family.kind;
    let bucket = role == Role::Bucket;
    let quantile = kind == MetricType::Summary && role == Role::Plain;
    let stateset = kind == MetricType::StateSet;
    let (mut le, mut q, mut state) = (false, None, false);
    for label in labels {
        let name = label.name.as_bytes();
        // Only names starting with `_`, `l` or `q` need a closer look.
        match name.first() {
            Some(b'_') if name.get(1) == Some(&b'_') => {
                return Err((Rule::ReservedLabelName, label.name.to_string()));
            }
            Some(b'l') if name == b"le" && bucket => le = true,
            Some(b'q') if name == b"quantile" && quantile => q = Some(label.value.as_ref()),
            Some(b'l' | b'q') if name == b"le" || name == b"quantile" => {
                return Err((
                    Rule::MisplacedLabel,
                    format!("{} on a {} sample", label.name, kind.keyword()),
                ));
            }
            _ => state |= stateset && label.name == family.name,
        }
    }
    // The `le` value is read with the other buckets of its metric (`metrics`).
    if bucket && !le {
        return Err((Rule::BucketLabel, "no le label".to_string()));
    }
    if quantile && !q.and_then(number).is_some_and(|q| (0.0..=1.0).contains(&q)) {
        return Err((
            Rule::QuantileLabel,
            format!("quantile={:?}", q.unwrap_or("(none)")),
        ));
    }
    if stateset && !state {
        return Err((
            Rule::StateSetValue,
            format!("no label named {}", family.name),
        ));
    }
    Ok(())
}

pub(super) fn sample_value(
    kind: MetricType,
    role: Role,
    sample: &Sample<'_>,
) -> Result<(), (Rule, String)> {
    let v = sample.value;
    let not_a_count = v.is_nan() || v < 0.0;
    let broken = match (kind, role) {
        (MetricType::Counter, _) | (_, Role::Created) if not_a_count => Some(Rule::CounterValue),
        (_, Role::Bucket | Role::Count | Role::GCount) if not_a_count => Some(Rule::NegativeCount),
        (MetricType::Info, _) if v != 1.0 => Some(Rule::InfoValue),
        (MetricType::StateSet, _) if v != 0.0 && v != 1.0 => Some(Rule::StateSetValue),
        _ => None,
    };
    match broken {
        Some(rule) => Err((rule, format!("{} is {v}", sample.name))),
        None => Ok(()),
    }
}

/// A number as OpenMetrics writes one in a label value (`le`, `quantile`).
pub(super) fn number(text: &str) -> Option<f64> {
    if let Some(v) = super::lex::fast_decimal(text.as_bytes()) {
        return Some(v);
    }
    match text {
        "+Inf" | "Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => text.parse::<f64>().ok().filter(|v| !v.is_nan()),
    }
}

mod bounds;
mod ladder;
mod metrics;

pub(super) use metrics::{MetricRules, MetricViolation};

#[cfg(test)]
mod tests;
