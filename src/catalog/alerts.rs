//! The alerts, as typed data: what each one watches (a [`Condition`] over the `llm:` schema or
//! the scrape's health), for how long, how severe, and what it says. `export` compiles them to
//! Prometheus alerting rules; `up` evaluates the same list over its own history. Descriptions
//! are Prometheus templates (`{{ $labels.instance }}`, `{{ $value | humanizePercentage }}`),
//! which both Prometheus and `up` render.

/// Jobs of the generated scrape configuration.
pub const JOBS: &str = "llmwatch|vllm|tgi|llamacpp|sglang";
/// The jobs that scrape engines directly.
pub const ENGINE_JOBS: &str = "vllm|tgi|llamacpp|sglang";

/// Where the firing series is, for descriptions.
const WHERE: &str = "{{ $labels.service }} {{ $labels.engine }} {{ $labels.model }}";

/// A service level indicator the burn-rate alerts watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sli {
    /// Requests the server failed or turned away, over all finished.
    Errors,
    /// Requests whose first token came later than the objective's threshold.
    SlowTtft,
}

/// The objectives the burn-rate alerts measure against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slo {
    /// Fraction of requests that must succeed (availability objective), e.g. 0.99.
    pub availability: f64,
    /// Fraction of requests whose first token must come within `ttft_seconds`.
    pub ttft_objective: f64,
    /// TTFT threshold; must be a bucket bound the engines export (vLLM and SGLang have 1.0).
    pub ttft_seconds: f64,
}

impl Default for Slo {
    fn default() -> Slo {
        Slo {
            availability: 0.99,
            ttft_objective: 0.99,
            ttft_seconds: 1.0,
        }
    }
}

impl Slo {
    /// The error budget of `sli`: the share of requests allowed to miss.
    pub fn budget(&self, sli: Sli) -> f64 {
        match sli {
            Sli::Errors => 1.0 - self.availability,
            Sli::SlowTtft => 1.0 - self.ttft_objective,
        }
    }
}

/// A number an alert compares with its threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quantity {
    /// The error ratio over a window.
    ErrorRatio(&'static str),
    /// A quantile of a histogram signal over a window.
    Quantile(&'static str, f64, &'static str),
    /// The latest value of a gauge signal.
    Gauge(&'static str),
    /// The mean of a gauge signal's samples over a window (PromQL's `avg_over_time`): a
    /// gauge that oscillates near its limit, as KV usage does while sequences are preempted
    /// and readmitted, would reset a `for` at every low scrape.
    Average(&'static str, &'static str),
    /// The per-second rate of a counter signal over a window.
    Rate(&'static str, &'static str),
}

/// What makes an alert's condition true.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Condition {
    /// The target's scrapes fail.
    TargetDown,
    /// The target answers scrapes but its core signals are absent.
    CoreSignalsAbsent,
    /// A quantity above a threshold.
    Above(Quantity, f64),
    /// An SLI's burn rate: over both windows, above `factor` times the error budget.
    Burn {
        /// The indicator.
        sli: Sli,
        /// How many times too fast the budget burns.
        factor: f64,
        /// The long window.
        long: &'static str,
        /// The short window.
        short: &'static str,
    },
    /// More than `above` requests waiting, and the queue growing over `window`.
    BacklogGrowing {
        /// The queue length.
        above: f64,
        /// The window of its slope.
        window: &'static str,
    },
    /// Generated tokens per second over `short` at most `fraction` of the rate over `long`,
    /// while requests wait.
    ThroughputCollapse {
        /// The share of the long rate.
        fraction: f64,
        /// The recent window.
        short: &'static str,
        /// The reference window.
        long: &'static str,
    },
    /// A GPU's device memory above `memory_above` of its total while the KV cache of a model
    /// server it serves is under `kv_below`: memory is held outside the KV cache.
    GpuMemoryOutsideKv {
        /// Used over total.
        memory_above: f64,
        /// The server's KV-cache usage.
        kv_below: f64,
    },
    /// A GPU held back by its power or thermal limit more than `share` of the time over
    /// `window`.
    GpuThrottled {
        /// Throttled seconds per second.
        share: f64,
        /// The window of the rate.
        window: &'static str,
    },
    /// A GPU reported a critical XID error: its last XID code (dcgm-exporter, NVML), or XIDs
    /// counted over `window` (nvidia_gpu_exporter).
    GpuXid {
        /// The window of the count.
        window: &'static str,
    },
    /// A GPU busy less than `utilization_below` while a model server it serves has requests
    /// waiting: the scheduler, not the GPU, holds them.
    GpuIdleWhileWaiting {
        /// Utilisation, 0 to 1.
        utilization_below: f64,
    },
    /// A target's sample count above `factor` times its median over `window`.
    SamplesExploding {
        /// How many times the median.
        factor: f64,
        /// The window of the median.
        window: &'static str,
    },
}

/// How bad it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Look soon.
    Warning,
    /// Look now.
    Critical,
}

impl Severity {
    /// The `severity` label's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One alert.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Alert {
    /// `alertname`; its lower case is the runbook section's anchor.
    pub name: &'static str,
    /// When it is true.
    pub condition: Condition,
    /// How long it must stay true before it fires.
    pub for_: &'static str,
    /// The `severity` label.
    pub severity: Severity,
    /// One line.
    pub summary: &'static str,
    /// The description template; `None` for a burn-rate alert, whose text depends on the
    /// objective (see [`Alert::description`]).
    pub description: Option<&'static str>,
}

impl Alert {
    /// The error budget the alert burns, under `slo` (1 for an alert that burns none).
    pub fn budget(&self, slo: &Slo) -> f64 {
        match self.condition {
            Condition::Burn { sli, .. } => slo.budget(sli),
            _ => 1.0,
        }
    }

    /// The description template under `slo` (a burn alert's text names its budget).
    pub fn description(&self, slo: &Slo) -> String {
        if let Some(text) = self.description {
            return text.to_string();
        }
        let Condition::Burn {
            factor,
            long,
            short,
            ..
        } = self.condition
        else {
            return String::new();
        };
        format!(
            "{WHERE}: {{{{ $value | humanizePercentage }}}} of requests missed the objective over {long} (and over {short}); at {factor}x the budget of {:.1}% lasts {:.1} days of a 30-day window.",
            self.budget(slo) * 100.0,
            30.0 / factor
        )
    }
}

const fn burn(
    name: &'static str,
    sli: Sli,
    fast: bool,
    severity: Severity,
    summary: &'static str,
) -> Alert {
    let (factor, long, short, for_) = if fast {
        (14.4, "1h", "5m", "2m")
    } else {
        (6.0, "6h", "30m", "15m")
    };
    Alert {
        name,
        condition: Condition::Burn {
            sli,
            factor,
            long,
            short,
        },
        for_,
        severity,
        summary,
        description: None,
    }
}

/// Every alert, in the rule file's order.
pub const ALERTS: [Alert; 18] = [
    Alert {
        name: "LLMTargetDown",
        condition: Condition::TargetDown,
        for_: "2m",
        severity: Severity::Critical,
        summary: "An inference server's metrics cannot be scraped",
        description: Some(
            "{{ $labels.job }} target {{ $labels.instance }} has failed every scrape for 2 minutes (up = {{ $value }}).",
        ),
    },
    Alert {
        name: "LLMExpectedMetricsAbsent",
        condition: Condition::CoreSignalsAbsent,
        for_: "10m",
        severity: Severity::Warning,
        summary: "An engine is scraped but its core metrics are missing",
        description: Some(
            "{{ $labels.instance }} answers scrapes but llm:requests_running or llm:generation_tokens_total is absent: an engine upgrade may have renamed its metrics, or metrics are disabled (up = {{ $value }}).",
        ),
    },
    Alert {
        name: "LLMHighErrorRatio",
        condition: Condition::Above(Quantity::ErrorRatio("5m"), 0.05),
        for_: "5m",
        severity: Severity::Warning,
        summary: "More than 5% of requests fail",
        description: Some(
            "{{ $labels.service }} {{ $labels.engine }} {{ $labels.model }}: {{ $value | humanizePercentage }} of requests failed on the server or were rejected for overload over 5 minutes.",
        ),
    },
    burn(
        "LLMErrorBudgetBurnFast",
        Sli::Errors,
        true,
        Severity::Critical,
        "The availability error budget burns 14.4 times too fast",
    ),
    burn(
        "LLMTTFTBudgetBurnFast",
        Sli::SlowTtft,
        true,
        Severity::Critical,
        "The time-to-first-token budget burns 14.4 times too fast",
    ),
    burn(
        "LLMErrorBudgetBurnSlow",
        Sli::Errors,
        false,
        Severity::Warning,
        "The availability error budget burns 6 times too fast",
    ),
    burn(
        "LLMTTFTBudgetBurnSlow",
        Sli::SlowTtft,
        false,
        Severity::Warning,
        "The time-to-first-token budget burns 6 times too fast",
    ),
    Alert {
        name: "LLMTTFTP99High",
        condition: Condition::Above(
            Quantity::Quantile("llm_time_to_first_token_seconds", 0.99, "5m"),
            2.0,
        ),
        for_: "10m",
        severity: Severity::Warning,
        summary: "p99 time to first token above 2 s",
        description: Some(
            "{{ $labels.service }} {{ $labels.engine }} {{ $labels.model }}: p99 TTFT is {{ $value | humanizeDuration }} over 5 minutes.",
        ),
    },
    Alert {
        name: "LLMQueueTimeP99High",
        condition: Condition::Above(
            Quantity::Quantile("llm_request_queue_seconds", 0.99, "5m"),
            1.0,
        ),
        for_: "10m",
        severity: Severity::Warning,
        summary: "p99 queue time above 1 s",
        description: Some(
            "{{ $labels.service }} {{ $labels.engine }} {{ $labels.model }}: p99 time waiting to be scheduled is {{ $value | humanizeDuration }} over 5 minutes.",
        ),
    },
    Alert {
        name: "LLMQueueBacklogGrowing",
        condition: Condition::BacklogGrowing {
            above: 10.0,
            window: "10m",
        },
        for_: "10m",
        severity: Severity::Warning,
        summary: "The request queue keeps growing",
        description: Some(
            "{{ $labels.instance }}: {{ $value }} requests waiting and the queue has grown for 10 minutes: arrivals exceed capacity.",
        ),
    },
    Alert {
        name: "LLMKVCacheNearlyFull",
        condition: Condition::Above(Quantity::Average("llm_kv_cache_usage_ratio", "5m"), 0.9),
        for_: "10m",
        severity: Severity::Warning,
        summary: "KV cache above 90% on average for 15 minutes",
        description: Some(
            "{{ $labels.instance }}: KV cache {{ $value | humanizePercentage }} full; expect preemptions and queueing.",
        ),
    },
    Alert {
        name: "LLMPreemptionsRising",
        condition: Condition::Above(Quantity::Rate("llm_preemptions_total", "5m"), 0.0),
        for_: "10m",
        severity: Severity::Warning,
        summary: "Requests are being preempted",
        description: Some(
            "{{ $labels.instance }}: {{ $value | humanize }} preemptions/s for 10 minutes: the KV cache cannot hold the batch.",
        ),
    },
    Alert {
        name: "LLMThroughputCollapse",
        condition: Condition::ThroughputCollapse {
            fraction: 0.2,
            short: "5m",
            long: "1h",
        },
        for_: "5m",
        severity: Severity::Critical,
        summary: "Token throughput collapsed while requests wait",
        description: Some(
            "{{ $labels.instance }}: {{ $value | humanize }} generated tokens/s, under a fifth of the last hour's rate, with requests waiting.",
        ),
    },
    Alert {
        name: "LLMScrapeSamplesExploding",
        condition: Condition::SamplesExploding {
            factor: 2.0,
            window: "6h",
        },
        for_: "15m",
        severity: Severity::Warning,
        summary: "A target's sample count more than doubled",
        description: Some(
            "{{ $labels.instance }} now exposes {{ $value }} samples, over twice its 6-hour median: a label's cardinality is exploding.",
        ),
    },
    Alert {
        name: "LLMGPUMemoryFullOutsideKVCache",
        condition: Condition::GpuMemoryOutsideKv {
            memory_above: 0.95,
            kv_below: 0.5,
        },
        for_: "10m",
        severity: Severity::Warning,
        summary: "GPU memory nearly full while the KV cache is not",
        description: Some(
            "{{ $labels.instance }} GPU {{ $labels.gpu }}, serving {{ $labels.server }}: {{ $value | humanizePercentage }} of device memory in use while the server's KV cache is under half full: something outside the KV cache holds the memory.",
        ),
    },
    Alert {
        name: "LLMGPUThrottled",
        condition: Condition::GpuThrottled {
            share: 0.25,
            window: "5m",
        },
        for_: "10m",
        severity: Severity::Warning,
        summary: "A GPU is held back by its power or thermal limit",
        description: Some(
            "{{ $labels.instance }} GPU {{ $labels.gpu }}: clocks held down by the power or thermal limit {{ $value | humanizePercentage }} of the last 5 minutes; tokens/s fall with the clock.",
        ),
    },
    Alert {
        name: "LLMGPUXIDError",
        condition: Condition::GpuXid { window: "10m" },
        for_: "0m",
        severity: Severity::Critical,
        summary: "A GPU reported a critical XID error",
        description: Some(
            "{{ $labels.instance }} GPU {{ $labels.gpu }} reported a critical XID error (value {{ $value }}: the XID code, or from nvidia_gpu_exporter the count over 10 minutes).",
        ),
    },
    Alert {
        name: "LLMGPUIdleWhileRequestsWait",
        condition: Condition::GpuIdleWhileWaiting {
            utilization_below: 0.1,
        },
        for_: "5m",
        severity: Severity::Warning,
        summary: "A GPU idles while its server's requests wait",
        description: Some(
            "{{ $labels.instance }} GPU {{ $labels.gpu }} is {{ $value | humanizePercentage }} busy while {{ $labels.server }} has requests waiting: the scheduler, not the GPU, is the bottleneck.",
        ),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_names_are_unique_and_every_burn_alert_describes_its_budget() {
        let mut names: Vec<&str> = ALERTS.iter().map(|a| a.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALERTS.len());
        for alert in ALERTS {
            let text = alert.description(&Slo::default());
            assert!(!text.is_empty(), "{}", alert.name);
            if matches!(alert.condition, Condition::Burn { .. }) {
                assert!(text.contains("budget of 1.0%"), "{text}");
            }
        }
    }
}
