//! The panels: what each one plots, over which canonical signal, aggregated how, in which
//! unit. The overview's columns and the detail page's charts are both lists of these.

use super::ERROR_OUTCOMES;

/// What a number is measured in, for formatting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Events per second (requests, preemptions).
    PerSecond,
    /// Tokens per second.
    TokensPerSecond,
    /// A share from 0 to 1.
    Ratio,
    /// A duration.
    Seconds,
    /// A count at an instant (requests running, batch size).
    Count,
    /// Seconds of work per second of wall time (summed over requests, so it may pass 1).
    SecondsPerSecond,
}

impl Unit {
    /// Grafana's unit id for it.
    pub fn grafana(self) -> &'static str {
        match self {
            Unit::PerSecond => "reqps",
            Unit::Ratio => "percentunit",
            Unit::Seconds => "s",
            Unit::TokensPerSecond | Unit::Count | Unit::SecondsPerSecond => "short",
        }
    }
}

/// How a gauge's series (several engines behind one target, or several targets in Grafana)
/// combine: counts add up; a share does not, and the highest is the one that matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    /// Added up.
    Sum,
    /// The highest.
    Max,
}

impl Aggregation {
    /// A ratio signal's series combine by the highest, every other's by the sum.
    pub fn of(signal: &str) -> Aggregation {
        if signal.ends_with("_ratio") {
            Aggregation::Max
        } else {
            Aggregation::Sum
        }
    }

    /// The PromQL aggregation operator.
    pub fn promql(self) -> &'static str {
        match self {
            Aggregation::Sum => "sum",
            Aggregation::Max => "max",
        }
    }

    /// Combines `values`; `None` when there are none.
    pub fn combine(self, values: impl Iterator<Item = f64>) -> Option<f64> {
        values.fold(None, |acc, v| {
            Some(match (self, acc) {
                (_, None) => v,
                (Aggregation::Sum, Some(a)) => a + v,
                (Aggregation::Max, Some(a)) => a.max(v),
            })
        })
    }
}

/// Which finished-request outcomes a rate counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcomes {
    /// Every outcome (or a signal without outcomes).
    All,
    /// Only these.
    Only(&'static [&'static str]),
}

impl Outcomes {
    /// Whether a series with `outcome` counts.
    pub fn admits(self, outcome: Option<&str>) -> bool {
        match (self, outcome) {
            (Outcomes::All, _) => true,
            (Outcomes::Only(list), Some(o)) => list.contains(&o),
            (Outcomes::Only(_), None) => false,
        }
    }
}

/// How one line of a panel is computed from a target's history, per model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Measure {
    /// Per-second increase of a counter, summed over the outcomes chosen.
    Rate(&'static str, Outcomes),
    /// One rate over another (both of the same counter): e.g. failed over finished.
    Ratio(&'static str, Outcomes, Outcomes),
    /// The latest value of a gauge.
    Gauge(&'static str),
    /// A quantile of a histogram's observations in the window.
    Quantile(&'static str, f64),
    /// One line per outcome present: the rate of each.
    RateByOutcome(&'static str),
}

impl Measure {
    /// How its series combine.
    pub fn aggregation(self) -> Aggregation {
        Aggregation::of(self.signal())
    }

    /// The canonical signal it reads.
    pub fn signal(self) -> &'static str {
        match self {
            Measure::Rate(s, _)
            | Measure::Ratio(s, ..)
            | Measure::Gauge(s)
            | Measure::Quantile(s, _)
            | Measure::RateByOutcome(s) => s,
        }
    }
}

/// A quantity the collector keeps per time step for the overview (see `collect::rollup`), so
/// that a request for 1,000 rows copies sums instead of walking each target's history. Each
/// overview line reads one, or two for a ratio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Source {
    /// The increase of a counter, summed over the outcomes chosen.
    Counter(&'static str, Outcomes),
    /// The latest value of a gauge.
    Gauge(&'static str),
    /// The increase of each bucket of a histogram.
    Histogram(&'static str),
}

impl Source {
    /// Whether `self` is `other` by identity: the same static strings (the catalogue's
    /// sources are constants, so a lookup usually finds the very same ones). Cheaper than
    /// `==`, which compares names of equal length byte by byte; a `false` here does not mean
    /// the sources differ.
    pub fn is_identical(&self, other: &Source) -> bool {
        let same = |a: &str, b: &str| std::ptr::eq(a, b);
        match (self, other) {
            (Source::Counter(a, oa), Source::Counter(b, ob)) => {
                same(a, b)
                    && match (oa, ob) {
                        (Outcomes::All, Outcomes::All) => true,
                        (Outcomes::Only(x), Outcomes::Only(y)) => std::ptr::eq(*x, *y),
                        _ => false,
                    }
            }
            (Source::Gauge(a), Source::Gauge(b)) | (Source::Histogram(a), Source::Histogram(b)) => {
                same(a, b)
            }
            _ => false,
        }
    }
}

impl Measure {
    /// The sources the measure reads: the rate, gauge or histogram, and a ratio's part.
    pub fn sources(self) -> (Source, Option<Source>) {
        match self {
            Measure::Rate(s, outcomes) => (Source::Counter(s, outcomes), None),
            Measure::Ratio(s, part, whole) => {
                (Source::Counter(s, whole), Some(Source::Counter(s, part)))
            }
            Measure::Gauge(s) => (Source::Gauge(s), None),
            Measure::Quantile(s, _) => (Source::Histogram(s), None),
            Measure::RateByOutcome(s) => (Source::Counter(s, Outcomes::All), None),
        }
    }
}

/// Every distinct source the overview's lines read, in the order they first appear, then
/// those only `up`'s alerts read (queue time).
pub fn overview_sources() -> Vec<Source> {
    let mut out: Vec<Source> = Vec::new();
    let alerts = [Line {
        label: "queue p99",
        measure: Measure::Quantile("llm_request_queue_seconds", 0.99),
    }];
    for line in OVERVIEW.iter().flat_map(|p| p.lines).chain(&alerts) {
        let (main, part) = line.measure.sources();
        for source in std::iter::once(main).chain(part) {
            if !out.contains(&source) {
                out.push(source);
            }
        }
    }
    out
}

/// One line of a panel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line {
    /// Its name in the legend (or the column's, in the overview).
    pub label: &'static str,
    /// How it is computed.
    pub measure: Measure,
}

/// A chart of the detail page, or a column group of the overview.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Panel {
    /// Stable identifier (URLs, tests).
    pub id: &'static str,
    /// Title.
    pub title: &'static str,
    /// Unit of every line.
    pub unit: Unit,
    /// One sentence on what it shows.
    pub help: &'static str,
    /// The lines.
    pub lines: &'static [Line],
}

const FINISHED: &str = "llm_requests_finished_total";
const ERRORS: Outcomes = Outcomes::Only(&ERROR_OUTCOMES);

const fn line(label: &'static str, measure: Measure) -> Line {
    Line { label, measure }
}

const fn quantiles(signal: &'static str) -> [Line; 3] {
    [
        line("p50", Measure::Quantile(signal, 0.5)),
        line("p95", Measure::Quantile(signal, 0.95)),
        line("p99", Measure::Quantile(signal, 0.99)),
    ]
}

/// The overview's columns, left to right: each a panel of one or more lines, each line a
/// number with a sparkline.
pub const OVERVIEW: [Panel; 9] = [
    Panel {
        id: "requests",
        title: "req/s",
        unit: Unit::PerSecond,
        help: "Finished requests per second, every outcome.",
        lines: &[line("req/s", Measure::Rate(FINISHED, Outcomes::All))],
    },
    Panel {
        id: "tokens",
        title: "tokens/s",
        unit: Unit::TokensPerSecond,
        help: "Prompt and generated tokens per second.",
        lines: &[
            line(
                "prompt",
                Measure::Rate("llm_prompt_tokens_total", Outcomes::All),
            ),
            line(
                "generated",
                Measure::Rate("llm_generation_tokens_total", Outcomes::All),
            ),
        ],
    },
    Panel {
        id: "errors",
        title: "errors",
        unit: Unit::Ratio,
        help: "Requests the server failed or turned away, over all finished.",
        lines: &[line(
            "error ratio",
            Measure::Ratio(FINISHED, ERRORS, Outcomes::All),
        )],
    },
    Panel {
        id: "ttft",
        title: "TTFT",
        unit: Unit::Seconds,
        help: "Engine-measured time to first token.",
        lines: &quantiles("llm_time_to_first_token_seconds"),
    },
    Panel {
        id: "itl",
        title: "ITL",
        unit: Unit::Seconds,
        help: "Engine-measured time between tokens.",
        lines: &[line(
            "p95",
            Measure::Quantile("llm_inter_token_latency_seconds", 0.95),
        )],
    },
    Panel {
        id: "e2e",
        title: "e2e",
        unit: Unit::Seconds,
        help: "Engine-measured arrival to last token.",
        lines: &[line(
            "p95",
            Measure::Quantile("llm_e2e_request_latency_seconds", 0.95),
        )],
    },
    Panel {
        id: "load",
        title: "running / waiting",
        unit: Unit::Count,
        help: "Requests in the batch and requests queued.",
        lines: &[
            line("running", Measure::Gauge("llm_requests_running")),
            line("waiting", Measure::Gauge("llm_requests_waiting")),
        ],
    },
    Panel {
        id: "kv",
        title: "KV cache",
        unit: Unit::Ratio,
        help: "Share of the KV cache in use.",
        lines: &[line("used", Measure::Gauge("llm_kv_cache_usage_ratio"))],
    },
    Panel {
        id: "preemptions",
        title: "preemptions/s",
        unit: Unit::PerSecond,
        help: "Requests preempted per second for want of KV cache.",
        lines: &[line(
            "preemptions/s",
            Measure::Rate("llm_preemptions_total", Outcomes::All),
        )],
    },
];

/// The detail page's charts, in order: traffic, errors, latency, saturation. The exported
/// Grafana dashboards draw the same list (per service, engine and model in the overview, per
/// instance in the engine detail).
pub const DETAIL: [Panel; 15] = [
    OVERVIEW[0],
    OVERVIEW[1],
    Panel {
        id: "outcomes",
        title: "Finished requests by outcome",
        unit: Unit::PerSecond,
        help: "Per second, by canonical outcome (ok_stop, ok_length, aborted, error_client, error_server, rejected_overload, …).",
        lines: &[line("", Measure::RateByOutcome(FINISHED))],
    },
    OVERVIEW[2],
    Panel {
        id: "ttft",
        title: "Time to first token",
        unit: Unit::Seconds,
        help: "Engine-measured arrival to first token.",
        lines: &quantiles("llm_time_to_first_token_seconds"),
    },
    Panel {
        id: "itl",
        title: "Inter-token latency",
        unit: Unit::Seconds,
        help: "Engine-measured time between successive tokens of a request.",
        lines: &quantiles("llm_inter_token_latency_seconds"),
    },
    Panel {
        id: "e2e",
        title: "End-to-end latency",
        unit: Unit::Seconds,
        help: "Engine-measured arrival to last token.",
        lines: &quantiles("llm_e2e_request_latency_seconds"),
    },
    Panel {
        id: "queue",
        title: "Queue time",
        unit: Unit::Seconds,
        help: "Time requests waited before being scheduled.",
        lines: &quantiles("llm_request_queue_seconds"),
    },
    Panel {
        id: "prefill",
        title: "Prefill time",
        unit: Unit::Seconds,
        help: "Time spent computing each request's prompt.",
        lines: &quantiles("llm_request_prefill_seconds"),
    },
    Panel {
        id: "decode",
        title: "Decode time",
        unit: Unit::Seconds,
        help: "Time spent generating each request's tokens.",
        lines: &quantiles("llm_request_decode_seconds"),
    },
    Panel {
        id: "tpot",
        title: "Time per output token",
        unit: Unit::Seconds,
        help: "Per request, decode time over the tokens generated after the first.",
        lines: &quantiles("llm_time_per_output_token_seconds"),
    },
    Panel {
        id: "busy",
        title: "Prefill vs decode time",
        unit: Unit::SecondsPerSecond,
        help: "Seconds spent in prefill and in decode per second of wall time, summed over requests: which phase the engine is busy with.",
        lines: &[
            line(
                "prefill",
                Measure::Rate("llm_prefill_seconds_total", Outcomes::All),
            ),
            line(
                "decode",
                Measure::Rate("llm_decode_seconds_total", Outcomes::All),
            ),
        ],
    },
    OVERVIEW[6],
    Panel {
        id: "cache",
        title: "KV cache and prefix cache",
        unit: Unit::Ratio,
        help: "Share of the KV cache in use, and of prompt tokens found in the prefix cache.",
        lines: &[
            line("KV used", Measure::Gauge("llm_kv_cache_usage_ratio")),
            line("prefix hits", Measure::Gauge("llm_prefix_cache_hit_ratio")),
        ],
    },
    Panel {
        id: "pressure",
        title: "Preemptions and batch size",
        unit: Unit::Count,
        help: "Preemptions per second, and requests per decode step.",
        lines: &[
            line(
                "preemptions/s",
                Measure::Rate("llm_preemptions_total", Outcomes::All),
            ),
            line("batch size", Measure::Gauge("llm_batch_size")),
        ],
    },
];

/// The detail page's chart of requests through the proxy by outcome, shown when the proxy
/// runs in `up`: HTTP 429s, timeouts and streams cut after HTTP 200 that the engine's own
/// counters never see. One line per outcome the proxy counted, from its own counters (the
/// exported client view's `llm_proxy_requests_total`), not from a canonical signal, so it
/// has no lines here.
pub const PROXY_OUTCOMES: Panel = Panel {
    id: "proxy_outcomes",
    title: "Through the proxy: requests by outcome",
    unit: Unit::PerSecond,
    help: "Per second, as clients of the proxy saw them: completed, length, rate_limited (429), timeout, stream_error (cut after HTTP 200), upstream_error, client_disconnect, client_error.",
    lines: &[],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_panel_reads_a_signal_of_the_table_of_the_right_kind() {
        use crate::engines::{SignalKind, signal};
        for panel in OVERVIEW.iter().chain(&DETAIL) {
            for line in panel.lines {
                let s = signal(line.measure.signal())
                    .unwrap_or_else(|| panic!("{}: {}", panel.id, line.measure.signal()));
                let wanted = match line.measure {
                    Measure::Rate(..) | Measure::Ratio(..) | Measure::RateByOutcome(_) => {
                        SignalKind::Counter
                    }
                    Measure::Gauge(_) => SignalKind::Gauge,
                    Measure::Quantile(..) => SignalKind::Histogram,
                };
                assert_eq!(s.kind, wanted, "{} reads {}", panel.id, s.name);
            }
        }
        let mut ids: Vec<&str> = DETAIL.iter().map(|p| p.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), DETAIL.len(), "detail panel ids are unique");
    }
}
