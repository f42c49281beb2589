//! The vocabulary of the signal table: how one canonical signal is obtained from one engine's
//! series. Kept declarative (plain `const` data) so the same table can drive the Rust
//! normaliser, generated Prometheus recording rules and the metric reference.

/// How samples that remain after label matching are combined per model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agg {
    /// Add them up (counters, queue lengths; fan-out over DP engines or `is_streaming`).
    Sum,
    /// Take the largest (ratios such as KV-cache usage: the fullest engine is what saturates).
    Max,
}

/// A selection of one engine series: the first name present wins, so a rename is written as
/// `[new, old]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sel {
    /// Sample names (for histograms: the base name without `_bucket`), newest first.
    pub names: &'static [&'static str],
    /// Required label values, e.g. `method="prefill"`.
    pub matchers: &'static [(&'static str, &'static str)],
    /// How the matching samples are combined per model.
    pub agg: Agg,
}

impl Sel {
    /// The series names rendered for humans: `a` or `a (older: b)` plus matchers.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (i, name) in self.names.iter().enumerate() {
            if i == 1 {
                out.push_str(" (older: ");
            } else if i > 1 {
                out.push_str(", ");
            }
            out.push_str(name);
            if i == 0 {
                out.push_str(&self.describe_matchers());
            }
        }
        if self.names.len() > 1 {
            out.push(')');
        }
        out
    }

    /// `{k="v",…}` or the empty string.
    pub fn describe_matchers(&self) -> String {
        if self.matchers.is_empty() {
            return String::new();
        }
        let pairs: Vec<String> = self
            .matchers
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        format!("{{{}}}", pairs.join(","))
    }
}

/// Selects `names`, summed per model.
pub const fn sum(names: &'static [&'static str]) -> Sel {
    Sel {
        names,
        matchers: &[],
        agg: Agg::Sum,
    }
}

/// Selects `names`, maximum per model.
pub const fn max(names: &'static [&'static str]) -> Sel {
    Sel {
        names,
        matchers: &[],
        agg: Agg::Max,
    }
}

/// Selects `names` with label matchers, summed per model.
pub const fn sum_where(
    names: &'static [&'static str],
    matchers: &'static [(&'static str, &'static str)],
) -> Sel {
    Sel {
        names,
        matchers,
        agg: Agg::Sum,
    }
}

/// An expression over engine series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Expr {
    /// A scalar series.
    Series(Sel),
    /// A classic histogram, kept with the engine's own buckets.
    Histogram(Sel),
    /// The sum of several scalars. The first must be present; later ones are added when the
    /// engine version exports them.
    Sum(&'static [Sel]),
    /// `a - b`, clamped at zero.
    Diff(Sel, Sel),
    /// `a / b` over lifetime totals (no value when `b` is zero).
    Ratio(&'static Expr, &'static Expr),
    /// A counter split by the canonical `outcome` label.
    Outcomes(&'static [OutcomePart]),
}

/// One contribution to an outcome-labelled counter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OutcomePart {
    /// Every sample of `sel` counts as `outcome`.
    Fixed {
        /// Canonical outcome.
        outcome: &'static str,
        /// Where the count comes from.
        sel: Sel,
    },
    /// The engine label `label` says the outcome; `map` translates its values. Values not in
    /// the map count as `other`, so nothing is dropped.
    ByLabel {
        /// The series.
        sel: Sel,
        /// The engine's label carrying the reason.
        label: &'static str,
        /// Engine value → canonical outcome.
        map: &'static [(&'static str, &'static str)],
    },
    /// `total - minus`, clamped at zero, counts as `outcome` (an engine that counts all
    /// finished requests and, separately, the failed ones).
    Remainder {
        /// Canonical outcome.
        outcome: &'static str,
        /// All finished requests.
        total: Sel,
        /// The part already counted under another outcome.
        minus: Sel,
    },
}

impl Expr {
    /// A formula for humans, e.g. `llamacpp:prompt_tokens_total + llamacpp:prompt_tokens_cached_total`.
    pub fn describe(&self) -> String {
        match self {
            Expr::Series(sel) | Expr::Histogram(sel) => sel.describe(),
            Expr::Sum(sels) => sels
                .iter()
                .map(Sel::describe)
                .collect::<Vec<_>>()
                .join(" + "),
            Expr::Diff(a, b) => format!("{} - {}", a.describe(), b.describe()),
            Expr::Ratio(a, b) => format!("({}) / ({})", a.describe(), b.describe()),
            Expr::Outcomes(parts) => parts
                .iter()
                .map(|part| match part {
                    OutcomePart::Fixed { outcome, sel } => format!("{outcome}: {}", sel.describe()),
                    OutcomePart::ByLabel { sel, label, .. } => {
                        format!("by {label}: {}", sel.describe())
                    }
                    OutcomePart::Remainder {
                        outcome,
                        total,
                        minus,
                    } => format!("{outcome}: {} - {}", total.describe(), minus.describe()),
                })
                .collect::<Vec<_>>()
                .join("; "),
        }
    }
}

/// How a canonical signal is obtained from one engine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum How {
    /// The engine exports the signal; only renaming, label mapping and fan-out aggregation.
    Native(Expr),
    /// Computed from other series by a formula (the note says what it does and does not mean).
    Derived(Expr),
    /// Not available from this engine's metrics; the note says why and what to use instead.
    Missing,
}

/// One cell of the signal table: how, and a note for the operator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mapping {
    /// Native, derived or missing.
    pub how: How,
    /// Caveat or reason, shown next to the value.
    pub note: &'static str,
}

/// A native mapping without a caveat.
pub const fn native(expr: Expr) -> Mapping {
    Mapping {
        how: How::Native(expr),
        note: "",
    }
}

/// A native mapping with a caveat.
pub const fn native_note(expr: Expr, note: &'static str) -> Mapping {
    Mapping {
        how: How::Native(expr),
        note,
    }
}

/// A derived mapping; the note explains the formula's meaning.
pub const fn derived(expr: Expr, note: &'static str) -> Mapping {
    Mapping {
        how: How::Derived(expr),
        note,
    }
}

/// A missing mapping; the note says why.
pub const fn missing(note: &'static str) -> Mapping {
    Mapping {
        how: How::Missing,
        note,
    }
}
