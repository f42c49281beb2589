//! The canonical signal table: every `llm_*` signal, and per engine how it is obtained.
//!
//! This is the one source of truth for the schema. The normaliser evaluates it; the metric
//! reference and (later) the recording rules are generated from it. Facts come from the
//! engines' sources (see docs/metrics.md); a cell says `missing` rather than fake a value.

use super::Engine;
use super::recipe::{
    Expr, Mapping, OutcomePart, derived, max, missing, native, native_note, sum, sum_where,
};

/// The Prometheus type of a canonical signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalKind {
    /// Point-in-time value.
    Gauge,
    /// Monotonic total since the engine started.
    Counter,
    /// Classic histogram with the engine's own buckets.
    Histogram,
}

impl SignalKind {
    /// Lower-case Prometheus type name.
    pub fn as_str(self) -> &'static str {
        match self {
            SignalKind::Gauge => "gauge",
            SignalKind::Counter => "counter",
            SignalKind::Histogram => "histogram",
        }
    }
}

/// One canonical signal and its mapping for each engine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Signal {
    /// Canonical metric name (`llm_` prefix, base units, counters end in `_total`).
    pub name: &'static str,
    /// Prometheus type.
    pub kind: SignalKind,
    /// Unit in words (`requests`, `tokens`, `seconds`, `ratio`).
    pub unit: &'static str,
    /// What it means, engine-neutral.
    pub help: &'static str,
    /// vLLM (V0 and V1, 0.8 → 0.33).
    pub vllm: Mapping,
    /// Hugging Face TGI 2.x/3.x.
    pub tgi: Mapping,
    /// llama.cpp server.
    pub llamacpp: Mapping,
    /// SGLang.
    pub sglang: Mapping,
}

impl Signal {
    /// The mapping cell for `engine`.
    pub fn mapping(&self, engine: Engine) -> &Mapping {
        match engine {
            Engine::Vllm => &self.vllm,
            Engine::Tgi => &self.tgi,
            Engine::LlamaCpp => &self.llamacpp,
            Engine::Sglang => &self.sglang,
        }
    }

    /// Whether this signal carries the canonical `outcome` label.
    pub fn has_outcome(&self) -> bool {
        self.name == "llm_requests_finished_total"
    }
}

/// Canonical request outcomes (values of the `outcome` label).
pub const OUTCOMES: [&str; 8] = [
    "ok_stop",
    "ok_length",
    "ok",
    "aborted",
    "error_client",
    "error_server",
    "rejected_overload",
    "other",
];

const NO_HISTOGRAMS: &str = "llama.cpp exports no histograms";

const LLAMA_PROMPT: Expr = Expr::Sum(&[
    sum(&["llamacpp:prompt_tokens_total"]),
    sum(&["llamacpp:prompt_tokens_cached_total"]),
]);
const VLLM_CACHE_HITS: Expr = Expr::Series(sum(&[
    "vllm:prefix_cache_hits_total",
    "vllm:gpu_prefix_cache_hits_total",
]));
const VLLM_CACHE_QUERIES: Expr = Expr::Series(sum(&[
    "vllm:prefix_cache_queries_total",
    "vllm:gpu_prefix_cache_queries_total",
]));
const LLAMA_CACHE_HITS: Expr = Expr::Series(sum(&["llamacpp:prompt_tokens_cached_total"]));
const SGLANG_CACHE_HITS: Expr = Expr::Series(sum(&["sglang:cached_tokens_total"]));
const SGLANG_PROMPT: Expr = Expr::Series(sum(&["sglang:prompt_tokens_total"]));

/// Every canonical signal. Order is the display order.
pub static SIGNALS: &[Signal] = &[
    Signal {
        name: "llm_requests_running",
        kind: SignalKind::Gauge,
        unit: "requests",
        help: "Requests currently being executed (in the running batch).",
        vllm: native(Expr::Series(sum(&["vllm:num_requests_running"]))),
        tgi: native_note(
            Expr::Series(sum(&["tgi_batch_current_size"])),
            "reset to 0 between batches",
        ),
        llamacpp: native(Expr::Series(sum(&["llamacpp:requests_processing"]))),
        sglang: native_note(
            Expr::Series(sum(&["sglang:num_running_reqs"])),
            "pushed every 40 decode steps, so it can lag",
        ),
    },
    Signal {
        name: "llm_requests_waiting",
        kind: SignalKind::Gauge,
        unit: "requests",
        help: "Requests queued and not yet scheduled.",
        vllm: native(Expr::Series(sum(&["vllm:num_requests_waiting"]))),
        tgi: native(Expr::Series(sum(&["tgi_queue_size"]))),
        llamacpp: native_note(
            Expr::Series(sum(&["llamacpp:requests_deferred"])),
            "tasks deferred because no slot is free",
        ),
        sglang: native(Expr::Series(sum(&["sglang:num_queue_reqs"]))),
    },
    Signal {
        name: "llm_kv_cache_usage_ratio",
        kind: SignalKind::Gauge,
        unit: "ratio",
        help: "Fraction of the KV cache in use, 0 to 1 (the fullest engine when there are several).",
        vllm: native_note(
            Expr::Series(max(&[
                "vllm:kv_cache_usage_perc",
                "vllm:gpu_cache_usage_perc",
            ])),
            "a fraction despite the name _perc",
        ),
        tgi: missing(
            "TGI exports no KV-cache usage; the reservation proxy needs tgi_batch_max_total_tokens, which TGI never exports",
        ),
        llamacpp: native_note(
            Expr::Series(max(&["llamacpp:kv_cache_usage_ratio"])),
            "removed from llama.cpp in May 2025 (#13660); only older builds export it",
        ),
        sglang: native_note(
            Expr::Series(max(&["sglang:token_usage"])),
            "max over the KV pools, evictable radix-cache tokens excluded",
        ),
    },
    Signal {
        name: "llm_prompt_tokens_total",
        kind: SignalKind::Counter,
        unit: "tokens",
        help: "Prompt tokens of requests, cached tokens included.",
        vllm: native_note(
            Expr::Series(sum(&["vllm:prompt_tokens_total"])),
            "cached tokens included (seen on 0.32 and 0.33; earlier versions not checked)",
        ),
        tgi: derived(
            Expr::Series(sum(&["tgi_request_input_length_sum"])),
            "histogram sum recorded at validation: includes requests that later fail",
        ),
        llamacpp: derived(
            LLAMA_PROMPT,
            "processed + cached; builds without prompt_tokens_cached_total count processed tokens only",
        ),
        sglang: native_note(SGLANG_PROMPT, "counted when a request finishes"),
    },
    Signal {
        name: "llm_prompt_tokens_cached_total",
        kind: SignalKind::Counter,
        unit: "tokens",
        help: "Prompt tokens served from the prefix cache instead of computed.",
        vllm: native_note(
            Expr::Series(sum(&["vllm:prompt_tokens_cached_total"])),
            "newer than 0.13",
        ),
        tgi: missing("TGI has no prefix-cache metrics"),
        llamacpp: native_note(LLAMA_CACHE_HITS, "2026 builds"),
        sglang: native(SGLANG_CACHE_HITS),
    },
    Signal {
        name: "llm_generation_tokens_total",
        kind: SignalKind::Counter,
        unit: "tokens",
        help: "Generated (output) tokens.",
        vllm: native(Expr::Series(sum(&["vllm:generation_tokens_total"]))),
        tgi: derived(
            Expr::Series(sum(&["tgi_request_generated_tokens_sum"])),
            "histogram sum over successful requests only",
        ),
        llamacpp: native_note(
            Expr::Series(sum(&["llamacpp:tokens_predicted_total"])),
            "6 significant digits: steps above 999999",
        ),
        sglang: native_note(
            Expr::Series(sum(&["sglang:generation_tokens_total"])),
            "counted when a request finishes",
        ),
    },
    Signal {
        name: "llm_requests_finished_total",
        kind: SignalKind::Counter,
        unit: "requests",
        help: "Finished requests by outcome (ok_stop, ok_length, ok, aborted, error_client, error_server, rejected_overload, other).",
        vllm: native_note(
            Expr::Outcomes(&[
                OutcomePart::ByLabel {
                    sel: sum(&["vllm:request_success_total"]),
                    label: "finished_reason",
                    map: &[
                        ("stop", "ok_stop"),
                        ("length", "ok_length"),
                        ("repetition", "ok_stop"),
                        ("abort", "aborted"),
                        ("error", "error_server"),
                    ],
                },
                OutcomePart::Fixed {
                    outcome: "rejected_overload",
                    sel: sum(&["vllm:admission_rejections_total"]),
                },
            ]),
            "a client that disconnects is not counted as aborted (seen on 0.32): the proxy's client_disconnect outcome is then the only record",
        ),
        tgi: native_note(
            Expr::Outcomes(&[
                OutcomePart::Fixed {
                    outcome: "ok",
                    sel: sum(&["tgi_request_success"]),
                },
                OutcomePart::ByLabel {
                    sel: sum(&["tgi_request_failure"]),
                    label: "err",
                    map: &[
                        ("validation", "error_client"),
                        ("template", "error_client"),
                        ("overloaded", "rejected_overload"),
                        ("incomplete", "error_server"),
                        ("generation", "error_server"),
                        ("dropped", "aborted"),
                    ],
                },
            ]),
            "tgi_request_count over-counts chat requests, so success + failure is used",
        ),
        llamacpp: missing(
            "llama.cpp exports no request counter; llmwatch proxy measures outcomes client-side",
        ),
        sglang: derived(
            Expr::Outcomes(&[
                OutcomePart::Remainder {
                    outcome: "ok",
                    total: sum(&["sglang:num_requests_total"]),
                    minus: sum(&["sglang:num_aborted_requests_total"]),
                },
                OutcomePart::Fixed {
                    outcome: "aborted",
                    sel: sum(&["sglang:num_aborted_requests_total"]),
                },
            ]),
            "num_requests_total counts every finished request, aborted ones included",
        ),
    },
    Signal {
        name: "llm_time_to_first_token_seconds",
        kind: SignalKind::Histogram,
        unit: "seconds",
        help: "Time from arrival to the first output token, measured by the engine.",
        vllm: native(Expr::Histogram(sum(&["vllm:time_to_first_token_seconds"]))),
        tgi: missing(
            "TGI has no TTFT; only a mean is approximable: validation + queue + prefill forward",
        ),
        llamacpp: missing(NO_HISTOGRAMS),
        sglang: native(Expr::Histogram(sum(&[
            "sglang:time_to_first_token_seconds",
        ]))),
    },
    Signal {
        name: "llm_inter_token_latency_seconds",
        kind: SignalKind::Histogram,
        unit: "seconds",
        help: "Time between successive outputs of one request.",
        vllm: native_note(
            Expr::Histogram(sum(&[
                "vllm:inter_token_latency_seconds",
                "vllm:time_per_output_token_seconds",
            ])),
            "per output chunk (one chunk can hold several tokens with speculative decoding)",
        ),
        tgi: missing(
            "TGI has only a per-request mean that includes prefill: see llm_time_per_output_token_seconds",
        ),
        llamacpp: missing(
            "no histogram; a mean per sequence is llm_decode_seconds_total / llm_generation_tokens_total",
        ),
        sglang: native_note(
            Expr::Histogram(sum(&[
                "sglang:inter_token_latency_seconds",
                "sglang:time_per_output_token_seconds",
            ])),
            "per token: a chunk of n tokens adds n observations",
        ),
    },
    Signal {
        name: "llm_time_per_output_token_seconds",
        kind: SignalKind::Histogram,
        unit: "seconds",
        help: "Per-request mean time per output token (TPOT).",
        vllm: native_note(
            Expr::Histogram(sum(&["vllm:request_time_per_output_token_seconds"])),
            "0.11 and later",
        ),
        tgi: native_note(
            Expr::Histogram(sum(&["tgi_request_mean_time_per_token_duration"])),
            "includes prefill time",
        ),
        llamacpp: missing(NO_HISTOGRAMS),
        sglang: native(Expr::Histogram(sum(&[
            "sglang:request_time_per_output_token_seconds",
        ]))),
    },
    Signal {
        name: "llm_e2e_request_latency_seconds",
        kind: SignalKind::Histogram,
        unit: "seconds",
        help: "Time from arrival to the last token, measured by the engine.",
        vllm: native(Expr::Histogram(sum(&["vllm:e2e_request_latency_seconds"]))),
        tgi: native_note(
            Expr::Histogram(sum(&["tgi_request_duration"])),
            "successful requests only",
        ),
        llamacpp: missing(NO_HISTOGRAMS),
        sglang: native(Expr::Histogram(sum(&[
            "sglang:e2e_request_latency_seconds",
        ]))),
    },
    Signal {
        name: "llm_request_queue_seconds",
        kind: SignalKind::Histogram,
        unit: "seconds",
        help: "Time a request waited before it was scheduled.",
        vllm: native(Expr::Histogram(sum(&["vllm:request_queue_time_seconds"]))),
        tgi: native(Expr::Histogram(sum(&["tgi_request_queue_duration"]))),
        llamacpp: missing("no histogram; only the instantaneous llm_requests_waiting"),
        sglang: native(Expr::Histogram(sum(&["sglang:queue_time_seconds"]))),
    },
    Signal {
        name: "llm_request_prefill_seconds",
        kind: SignalKind::Histogram,
        unit: "seconds",
        help: "Per-request prefill time (scheduled to first token).",
        vllm: native(Expr::Histogram(sum(&["vllm:request_prefill_time_seconds"]))),
        tgi: missing("per batch only: see llm_prefill_seconds_total"),
        llamacpp: missing("counter only: see llm_prefill_seconds_total"),
        sglang: native(Expr::Histogram(sum_where(
            &["sglang:per_stage_req_latency_seconds"],
            &[("stage", "prefill_forward")],
        ))),
    },
    Signal {
        name: "llm_request_decode_seconds",
        kind: SignalKind::Histogram,
        unit: "seconds",
        help: "Per-request decode time (first token to last token).",
        vllm: native(Expr::Histogram(sum(&["vllm:request_decode_time_seconds"]))),
        tgi: missing("per batch step only: see llm_decode_seconds_total"),
        llamacpp: missing("counter only: see llm_decode_seconds_total"),
        sglang: native(Expr::Histogram(sum_where(
            &["sglang:per_stage_req_latency_seconds"],
            &[("stage", "decode_loop")],
        ))),
    },
    Signal {
        name: "llm_prefill_seconds_total",
        kind: SignalKind::Counter,
        unit: "seconds",
        help: "Total time spent in prefill.",
        vllm: derived(
            Expr::Series(sum(&["vllm:request_prefill_time_seconds_sum"])),
            "sum of the per-request prefill histogram",
        ),
        tgi: derived(
            Expr::Series(sum_where(
                &["tgi_batch_forward_duration_sum"],
                &[("method", "prefill")],
            )),
            "sum of per-batch prefill forward time",
        ),
        llamacpp: native_note(
            Expr::Series(sum(&["llamacpp:prompt_seconds_total"])),
            "summed per slot, so it grows faster than wall time under concurrency",
        ),
        sglang: derived(
            Expr::Series(sum_where(
                &["sglang:per_stage_req_latency_seconds_sum"],
                &[("stage", "prefill_forward")],
            )),
            "sum of the per-request prefill stage histogram",
        ),
    },
    Signal {
        name: "llm_decode_seconds_total",
        kind: SignalKind::Counter,
        unit: "seconds",
        help: "Total time spent in decode.",
        vllm: derived(
            Expr::Series(sum(&["vllm:request_decode_time_seconds_sum"])),
            "sum of the per-request decode histogram",
        ),
        tgi: derived(
            Expr::Series(sum_where(
                &["tgi_batch_forward_duration_sum"],
                &[("method", "decode")],
            )),
            "sum of per-batch decode forward time",
        ),
        llamacpp: native_note(
            Expr::Series(sum(&["llamacpp:tokens_predicted_seconds_total"])),
            "summed per slot, so it grows faster than wall time under concurrency",
        ),
        sglang: derived(
            Expr::Series(sum_where(
                &["sglang:per_stage_req_latency_seconds_sum"],
                &[("stage", "decode_loop")],
            )),
            "sum of the per-request decode stage histogram",
        ),
    },
    Signal {
        name: "llm_preemptions_total",
        kind: SignalKind::Counter,
        unit: "preemptions",
        help: "Requests preempted (evicted from the batch, to be recomputed or resumed).",
        vllm: native(Expr::Series(sum(&["vllm:num_preemptions_total"]))),
        tgi: missing("TGI exports no preemption metric"),
        llamacpp: missing("llama.cpp exports no preemption metric"),
        sglang: native_note(
            Expr::Series(sum(&["sglang:num_retracted_requests_total"])),
            "retractions, SGLang's preemption",
        ),
    },
    Signal {
        name: "llm_prefix_cache_queries_total",
        kind: SignalKind::Counter,
        unit: "tokens",
        help: "Prompt tokens looked up in the prefix cache.",
        vllm: native(VLLM_CACHE_QUERIES),
        tgi: missing("TGI has no prefix-cache metrics"),
        llamacpp: derived(LLAMA_PROMPT, "processed + cached prompt tokens"),
        sglang: derived(SGLANG_PROMPT, "all prompt tokens of finished requests"),
    },
    Signal {
        name: "llm_prefix_cache_hits_total",
        kind: SignalKind::Counter,
        unit: "tokens",
        help: "Prompt tokens found in the prefix cache.",
        vllm: native(VLLM_CACHE_HITS),
        tgi: missing("TGI has no prefix-cache metrics"),
        llamacpp: native_note(LLAMA_CACHE_HITS, "2026 builds"),
        sglang: native(SGLANG_CACHE_HITS),
    },
    Signal {
        name: "llm_prefix_cache_hit_ratio",
        kind: SignalKind::Gauge,
        unit: "ratio",
        help: "Prefix-cache hits / queries since the engine started (use rate() of the two counters for a window).",
        vllm: derived(
            Expr::Ratio(&VLLM_CACHE_HITS, &VLLM_CACHE_QUERIES),
            "lifetime ratio from counters",
        ),
        tgi: missing("TGI has no prefix-cache metrics"),
        llamacpp: derived(
            Expr::Ratio(&LLAMA_CACHE_HITS, &LLAMA_PROMPT),
            "lifetime ratio from counters (2026 builds)",
        ),
        sglang: derived(
            Expr::Ratio(&SGLANG_CACHE_HITS, &SGLANG_PROMPT),
            "lifetime ratio from counters; sglang:cache_hit_rate covers the last batch only",
        ),
    },
    Signal {
        name: "llm_batch_size",
        kind: SignalKind::Gauge,
        unit: "requests",
        help: "Requests per engine step.",
        vllm: derived(
            Expr::Series(sum(&["vllm:num_requests_running"])),
            "no batch-size gauge: running requests",
        ),
        tgi: native(Expr::Series(sum(&["tgi_batch_current_size"]))),
        llamacpp: derived(
            Expr::Series(max(&["llamacpp:n_busy_slots_per_decode"])),
            "lifetime average of busy slots per decode, not windowed",
        ),
        sglang: derived(
            Expr::Series(sum(&["sglang:num_running_reqs"])),
            "no batch-size gauge: running requests",
        ),
    },
];

/// Looks a signal up by canonical name.
pub fn signal(name: &str) -> Option<&'static Signal> {
    SIGNALS.iter().find(|s| s.name == name)
}
