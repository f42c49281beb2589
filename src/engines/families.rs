//! Every metric family each engine exports or once exported, with the versions that have it
//! (from the engines' release wheels and sources; see docs/metrics.md). The normaliser reads
//! only the families the signal table names; this list is for judging other people's queries:
//! `lint` asks it whether a series exists, in which versions, and what replaced it.

use super::Engine;

/// What a family is on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
    /// An info-style gauge whose value is 1 (or a timestamp) and whose labels carry the data.
    Info,
    /// Every family whose name starts with this prefix (a connector's or subsystem's own set).
    Prefix,
}

/// A property of a family that makes a common query wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quirk {
    None,
    /// A 0–1 fraction, whatever its name says (`_perc`).
    Fraction,
    /// An average over the process's whole life, not the current value.
    LifetimeAverage,
    /// Averaged over the time since the previous scrape, and reset by every scrape.
    ScrapeWindow,
}

/// One family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    /// The wire name of a counter or gauge; the base name of a histogram or summary; the
    /// prefix of a [`Kind::Prefix`].
    pub name: &'static str,
    pub kind: Kind,
    /// The first version that has it ("" = every version with metrics).
    pub since: &'static str,
    /// The first version that no longer has it ("" = the current version has it).
    pub removed: &'static str,
    /// What to use instead, when it was removed or renamed.
    pub instead: &'static str,
    pub quirk: Quirk,
}

impl Family {
    const fn new(name: &'static str, kind: Kind) -> Family {
        Family {
            name,
            kind,
            since: "",
            removed: "",
            instead: "",
            quirk: Quirk::None,
        }
    }

    const fn since(mut self, version: &'static str) -> Family {
        self.since = version;
        self
    }

    const fn removed(mut self, version: &'static str, instead: &'static str) -> Family {
        self.removed = version;
        self.instead = instead;
        self
    }

    const fn quirk(mut self, quirk: Quirk) -> Family {
        self.quirk = quirk;
        self
    }

    /// The engine whose prefix the family has.
    pub fn engine(&self) -> Option<Engine> {
        engine_of(self.name)
    }

    /// Whether `series` (a name as a query selects it) is one of this family's series.
    pub fn has_series(&self, series: &str) -> bool {
        match self.kind {
            Kind::Counter | Kind::Gauge | Kind::Info => series == self.name,
            Kind::Prefix => series.starts_with(self.name),
            Kind::Histogram => series
                .strip_prefix(self.name)
                .is_some_and(|s| matches!(s, "_bucket" | "_sum" | "_count")),
            Kind::Summary => {
                series == self.name
                    || series
                        .strip_prefix(self.name)
                        .is_some_and(|s| matches!(s, "_sum" | "_count"))
            }
        }
    }

    /// The versions that have it, in words ("vLLM 0.9.2 to before 0.12.0").
    pub fn versions(&self) -> String {
        let engine = self.engine().map_or("", engine_title);
        let from = match self.since {
            "" => String::new(),
            NEWER_THAN_0_13 => "newer than 0.13".to_string(),
            since => since.to_string(),
        };
        let until = match self.removed {
            "" => String::new(),
            NEWER_THAN_0_13 => "up to 0.13".to_string(),
            removed => format!("before {removed}"),
        };
        match (from.as_str(), until.as_str()) {
            ("", "") => format!("every {engine} version"),
            (from, "") if self.since == NEWER_THAN_0_13 => format!("{engine} {from}"),
            (from, "") => format!("{engine} {from} and later"),
            ("", until) => format!("{engine} {until}"),
            (from, until) => format!("{engine} {from} to {until}"),
        }
    }
}

/// The engine a series name belongs to, by its prefix.
pub fn engine_of(series: &str) -> Option<Engine> {
    Engine::ALL
        .into_iter()
        .find(|e| series.starts_with(e.prefix()))
}

/// The engine's name as people write it.
pub fn engine_title(engine: Engine) -> &'static str {
    match engine {
        Engine::Vllm => "vLLM",
        Engine::Tgi => "TGI",
        Engine::LlamaCpp => "llama.cpp",
        Engine::Sglang => "SGLang",
    }
}

/// The family `series` belongs to, if any engine version exports it.
pub fn family_of(series: &str) -> Option<&'static Family> {
    FAMILIES.iter().find(|f| f.has_series(series))
}

use Kind::{Counter as C, Gauge as G, Histogram as H, Info as I, Prefix as P, Summary as S};

const fn c(name: &'static str) -> Family {
    Family::new(name, C)
}
const fn g(name: &'static str) -> Family {
    Family::new(name, G)
}
const fn h(name: &'static str) -> Family {
    Family::new(name, H)
}
const fn p(name: &'static str) -> Family {
    Family::new(name, P)
}

/// V0-engine families: deprecated in vLLM 0.8, hidden in 0.9, gone in 0.10.
const V0: &str = "0.10";
/// Added (or removed) in a vLLM release after 0.13 whose number is not pinned down; 0.33
/// has it (or lacks it).
const NEWER_THAN_0_13: &str = ">0.13";

/// The catalogue. Order: engine, then current families, then removed ones.
pub static FAMILIES: &[Family] = &[
    // vLLM 0.33 (V1).
    g("vllm:num_requests_running"),
    g("vllm:num_requests_waiting"),
    g("vllm:num_requests_waiting_by_reason").since(NEWER_THAN_0_13),
    g("vllm:num_requests_kv_fetch_by_stage").since(NEWER_THAN_0_13),
    g("vllm:engine_sleep_state").since("0.12.0"),
    g("vllm:kv_cache_usage_perc").since("0.9.2").quirk(Quirk::Fraction),
    Family::new("vllm:lora_requests_info", I),
    Family::new("vllm:cache_config_info", I),
    c("vllm:prompt_tokens_total"),
    c("vllm:prompt_tokens_by_source_total").since(NEWER_THAN_0_13),
    c("vllm:prompt_tokens_cached_total").since(NEWER_THAN_0_13),
    c("vllm:prompt_tokens_cached_by_source_total").since(NEWER_THAN_0_13),
    c("vllm:generation_tokens_total"),
    c("vllm:request_success_total"),
    c("vllm:num_preemptions_total"),
    c("vllm:prefix_cache_queries_total").since("0.9.2"),
    c("vllm:prefix_cache_hits_total").since("0.9.2"),
    c("vllm:external_prefix_cache_queries_total").since("0.12.0"),
    c("vllm:external_prefix_cache_hits_total").since("0.12.0"),
    c("vllm:mm_cache_queries_total").since("0.12.0"),
    c("vllm:mm_cache_hits_total").since("0.12.0"),
    c("vllm:corrupted_requests_total").since("0.12.0"),
    c("vllm:watermark_requests_total").since(NEWER_THAN_0_13),
    c("vllm:admission_rejections_total").since(NEWER_THAN_0_13),
    h("vllm:request_prompt_tokens"),
    h("vllm:request_generation_tokens"),
    h("vllm:request_prefill_kv_computed_tokens").since("0.13.0"),
    h("vllm:request_max_num_generation_tokens"),
    h("vllm:request_params_max_tokens"),
    h("vllm:request_params_n"),
    h("vllm:iteration_tokens_total"),
    h("vllm:request_num_preemptions").since(NEWER_THAN_0_13),
    h("vllm:time_to_first_token_seconds"),
    h("vllm:inter_token_latency_seconds").since("0.10.2"),
    h("vllm:request_time_per_output_token_seconds").since("0.11.0"),
    h("vllm:e2e_request_latency_seconds"),
    h("vllm:request_queue_time_seconds"),
    h("vllm:request_prefill_time_seconds"),
    h("vllm:request_decode_time_seconds"),
    h("vllm:request_inference_time_seconds"),
    h("vllm:kv_block_lifetime_seconds").since("0.12.0"),
    h("vllm:kv_block_idle_before_evict_seconds").since("0.12.0"),
    h("vllm:kv_block_reuse_gap_seconds").since("0.12.0"),
    c("vllm:spec_decode_num_drafts_total"),
    c("vllm:spec_decode_num_draft_tokens_total"),
    c("vllm:spec_decode_num_accepted_tokens_total"),
    c("vllm:spec_decode_num_accepted_tokens_per_pos_total"),
    c("vllm:estimated_flops_per_gpu_total"),
    c("vllm:estimated_read_bytes_per_gpu_total"),
    c("vllm:estimated_write_bytes_per_gpu_total"),
    c("vllm:tool_call_parser_invocations_total"),
    p("vllm:diffusion_"),
    p("vllm:nixl_"),
    p("vllm:mooncake_"),
    p("vllm:hf3fs_"),
    p("vllm:umbp_"),
    p("vllm:hisparse_"),
    p("vllm:kv_offload_"),
    p("vllm:simple_kv_offload_"),
    p("vllm:sleep_mode_"),
    p("vllm:rl_weight_update_"),
    p("vllm:websocket_connection"),
    // vLLM: renamed or removed.
    g("vllm:gpu_cache_usage_perc")
        .removed("0.12.0", "vllm:kv_cache_usage_perc (0.9.2 and later)")
        .quirk(Quirk::Fraction),
    c("vllm:gpu_prefix_cache_queries_total")
        .removed("0.12.0", "vllm:prefix_cache_queries_total (0.9.2 and later)"),
    c("vllm:gpu_prefix_cache_hits_total")
        .removed("0.12.0", "vllm:prefix_cache_hits_total (0.9.2 and later)"),
    h("vllm:time_per_output_token_seconds").removed(
        NEWER_THAN_0_13,
        "vllm:inter_token_latency_seconds (0.10.2 and later; hidden behind --show-hidden-metrics-for-version from 0.12)",
    ),
    h("vllm:time_per_prefill_token_request_seconds")
        .since("0.10.0")
        .removed("0.10.2", "vllm:request_prefill_time_seconds"),
    g("vllm:num_requests_swapped").removed(V0, "nothing: V1 does not swap"),
    g("vllm:cpu_cache_usage_perc")
        .removed(V0, "vllm:kv_cache_usage_perc")
        .quirk(Quirk::Fraction),
    g("vllm:cpu_prefix_cache_hit_rate").removed(
        V0,
        "rate(vllm:prefix_cache_hits_total) / rate(vllm:prefix_cache_queries_total)",
    ),
    g("vllm:gpu_prefix_cache_hit_rate").removed(
        V0,
        "rate(vllm:prefix_cache_hits_total) / rate(vllm:prefix_cache_queries_total)",
    ),
    g("vllm:spec_decode_draft_acceptance_rate").removed(
        V0,
        "rate(vllm:spec_decode_num_accepted_tokens_total) / rate(vllm:spec_decode_num_draft_tokens_total)",
    ),
    g("vllm:spec_decode_efficiency").removed(V0, "vllm:spec_decode_num_accepted_tokens_total"),
    c("vllm:spec_decode_num_emitted_tokens_total")
        .removed(V0, "vllm:spec_decode_num_accepted_tokens_total"),
    g("vllm:avg_prompt_throughput_toks_per_s").removed("0.8", "rate(vllm:prompt_tokens_total)"),
    g("vllm:avg_generation_throughput_toks_per_s")
        .removed("0.8", "rate(vllm:generation_tokens_total)"),
    h("vllm:request_params_best_of").removed("0.8", "nothing: best_of was removed"),
    h("vllm:time_in_queue_requests").removed(V0, "vllm:request_queue_time_seconds"),
    h("vllm:model_forward_time_milliseconds").removed(V0, "vllm:request_inference_time_seconds"),
    h("vllm:model_execute_time_milliseconds").removed(V0, "vllm:request_inference_time_seconds"),
    // TGI 3.x: counters carry no `_total`.
    c("tgi_request_count"),
    c("tgi_request_success"),
    c("tgi_request_failure"),
    c("tgi_batch_inference_count"),
    c("tgi_batch_inference_success"),
    c("tgi_batch_inference_failure"),
    c("tgi_batch_concat"),
    g("tgi_queue_size"),
    g("tgi_batch_current_size"),
    g("tgi_batch_current_max_tokens"),
    g("tgi_batch_max_total_tokens").since("2.3.1"),
    h("tgi_request_duration"),
    h("tgi_request_validation_duration"),
    h("tgi_request_queue_duration"),
    h("tgi_request_inference_duration"),
    h("tgi_request_mean_time_per_token_duration"),
    h("tgi_request_generated_tokens"),
    h("tgi_request_input_length"),
    h("tgi_request_max_new_tokens"),
    h("tgi_batch_next_size"),
    h("tgi_batch_forward_duration").since("1.3.3"),
    h("tgi_batch_decode_duration").since("1.3.3"),
    h("tgi_batch_filter_duration").since("1.3.3"),
    h("tgi_batch_concat_duration").since("1.3.3"),
    h("tgi_batch_inference_duration"),
    Family::new("tgi_request_skipped_tokens", S).since("1.3.0"),
    // llama.cpp server (builds are numbered, b5400 and so on).
    c("llamacpp:prompt_tokens_total"),
    c("llamacpp:prompt_tokens_cached_total").since("2026 builds"),
    c("llamacpp:prompt_seconds_total"),
    c("llamacpp:tokens_predicted_total"),
    c("llamacpp:tokens_predicted_seconds_total"),
    c("llamacpp:n_decode_total"),
    c("llamacpp:n_tokens_max"),
    c("llamacpp:spec_decode_num_draft_tokens_total").since("2026-08 builds (#26389)"),
    c("llamacpp:spec_decode_num_accepted_tokens_total").since("2026-08 builds (#26389)"),
    c("llamacpp:spec_decode_num_drafts_total").since("2026-08 builds (#26389)"),
    c("llamacpp:spec_decode_num_accepted_tokens_per_pos_total").since("2026-08 builds (#26389)"),
    g("llamacpp:prompt_tokens_seconds").quirk(Quirk::ScrapeWindow),
    g("llamacpp:predicted_tokens_seconds").quirk(Quirk::ScrapeWindow),
    g("llamacpp:requests_processing"),
    g("llamacpp:requests_deferred"),
    g("llamacpp:n_busy_slots_per_decode").quirk(Quirk::LifetimeAverage),
    g("llamacpp:kv_cache_usage_ratio")
        .removed(
            "2025-05 builds (#13660)",
            "nothing: llama.cpp has no KV gauge since; watch llamacpp:requests_deferred",
        )
        .quirk(Quirk::Fraction),
    g("llamacpp:kv_cache_tokens").removed(
        "2025-05 builds (#13660)",
        "nothing: llama.cpp has no KV gauge since; watch llamacpp:requests_deferred",
    ),
    // SGLang 0.5.
    g("sglang:num_running_reqs"),
    g("sglang:num_queue_reqs"),
    g("sglang:num_grammar_queue_reqs"),
    g("sglang:token_usage").quirk(Quirk::Fraction),
    g("sglang:full_token_usage").quirk(Quirk::Fraction),
    g("sglang:swa_token_usage").quirk(Quirk::Fraction),
    g("sglang:mamba_usage").quirk(Quirk::Fraction),
    g("sglang:num_used_tokens"),
    p("sglang:kv_"),
    p("sglang:swa_"),
    p("sglang:mamba_"),
    p("sglang:max_total_num_tokens"),
    g("sglang:gen_throughput"),
    g("sglang:cache_hit_rate").quirk(Quirk::Fraction),
    g("sglang:decode_sum_seq_lens"),
    g("sglang:utilization"),
    g("sglang:fwd_occupancy"),
    g("sglang:new_token_ratio"),
    g("sglang:is_cuda_graph"),
    p("sglang:spec_"),
    g("sglang:num_retracted_reqs"),
    g("sglang:num_paused_reqs"),
    p("sglang:lora_pool_"),
    p("sglang:hicache_"),
    g("sglang:num_prefill_bootstrap_queue_reqs").since("0.5.12"),
    g("sglang:num_prefill_inflight_queue_reqs"),
    g("sglang:num_decode_prealloc_queue_reqs"),
    g("sglang:num_decode_transfer_queue_reqs"),
    g("sglang:num_decode_host_receive_queue_reqs"),
    g("sglang:num_decode_deferred_kv_release_reqs"),
    g("sglang:page_size"),
    g("sglang:num_pages"),
    g("sglang:context_len"),
    g("sglang:weight_memory_usage_gb"),
    g("sglang:kv_cache_memory_usage_gb"),
    g("sglang:graph_memory_usage_gb"),
    g("sglang:startup_available_gpu_memory_gb"),
    g("sglang:max_running_requests_under_SLO"),
    g("sglang:weight_load_duration_seconds"),
    g("sglang:num_streaming_sessions"),
    g("sglang:streaming_session_held_tokens"),
    g("sglang:num_unique_running_routing_keys"),
    c("sglang:num_retracted_requests_total").since("0.5.12"),
    c("sglang:num_retracted_input_tokens_total").since("0.5.12"),
    c("sglang:num_retracted_output_tokens_total").since("0.5.12"),
    c("sglang:realtime_tokens_total").since("0.5.12"),
    c("sglang:prefill_effective_tokens_total"),
    c("sglang:forward_execution_seconds_total").since("0.5.12"),
    c("sglang:scheduler_idle_seconds_total"),
    c("sglang:scheduler_process_cpu_seconds_total"),
    c("sglang:scheduler_stage_seconds_total"),
    c("sglang:cuda_graph_passes_total"),
    p("sglang:num_grammar_"),
    c("sglang:num_bootstrap_failed_reqs_total"),
    c("sglang:num_transfer_failed_reqs_total"),
    c("sglang:num_prefill_retries_total"),
    c("sglang:num_decode_host_receive_reqs_total"),
    c("sglang:decode_deferred_kv_release_total"),
    p("sglang:estimated_"),
    p("sglang:dp_cooperation_"),
    p("sglang:dp_attention_"),
    h("sglang:queue_time_seconds").since("0.5.5"),
    h("sglang:per_stage_req_latency_seconds").since("0.5.5"),
    p("sglang:grammar_"),
    h("sglang:decode_deferred_kv_release_seconds"),
    p("sglang:routing_key"),
    Family::new("sglang:eplb_balancedness", S),
    p("sglang:eplb_gpu_physical_count"),
    p("sglang:prefill_delayer_"),
    c("sglang:prompt_tokens_total"),
    c("sglang:generation_tokens_total"),
    c("sglang:cached_tokens_total").since("0.4.4"),
    c("sglang:num_requests_total").since("0.4.3"),
    c("sglang:num_aborted_requests_total").since("0.5.5"),
    c("sglang:num_so_requests_total"),
    c("sglang:spec_verify_calls_total"),
    h("sglang:time_to_first_token_seconds"),
    h("sglang:inter_token_latency_seconds").since("0.4.4"),
    h("sglang:request_time_per_output_token_seconds").since("0.5.23"),
    h("sglang:e2e_request_latency_seconds"),
    h("sglang:prompt_tokens_histogram"),
    h("sglang:uncached_prompt_tokens_histogram").since("0.5.12"),
    h("sglang:generation_tokens_histogram"),
    h("sglang:get_loads_duration_seconds"),
    g("sglang:startup_time_seconds").since("0.5.23"),
    g("sglang:startup_cuda_graph_time_seconds").since("0.5.23"),
    c("sglang:http_requests_total"),
    c("sglang:http_responses_total"),
    g("sglang:http_requests_active"),
    g("sglang:routing_keys_active"),
    h("sglang:func_latency_seconds"),
    c("sglang:process_cpu_seconds_total"),
    c("sglang:prefetched_tokens_total"),
    c("sglang:backuped_tokens_total"),
    p("sglang:storage_prefetch_"),
    c("sglang:evicted_tokens_total"),
    h("sglang:eviction_duration_seconds"),
    p("sglang:load_back_"),
    p("sglang:encoder_"),
    // SGLang: renamed or removed.
    h("sglang:time_per_output_token_seconds")
        .removed("0.4.5", "sglang:inter_token_latency_seconds (0.4.4 and later)"),
    g("sglang:avg_request_queue_latency")
        .since("0.4.6")
        .removed("0.5.5", "sglang:queue_time_seconds"),
    g("sglang:num_prefill_prealloc_queue_reqs")
        .since("0.5.5")
        .removed("0.5.12", "sglang:num_prefill_bootstrap_queue_reqs"),
    h("sglang:num_retractions")
        .since("0.5.5")
        .removed("0.5.12", "sglang:num_retracted_requests_total"),
    g("sglang:num_running_reqs_offline_batch")
        .since("0.5.5")
        .removed("0.5.12", "sglang:num_running_reqs"),
    g("sglang:engine_startup_time")
        .since("0.5.5")
        .removed("0.5.23", "sglang:startup_time_seconds"),
    g("sglang:engine_load_weights_time")
        .since("0.5.5")
        .removed("0.5.23", "sglang:startup_time_seconds"),
];

#[cfg(test)]
mod tests {
    use super::*;

    use crate::engines::recipe::{Expr, How, OutcomePart, Sel};

    /// The wire names an expression of the signal table reads.
    fn wire_names(expr: &Expr, out: &mut Vec<String>) {
        let scalar = |sel: &Sel, out: &mut Vec<String>| {
            out.extend(sel.names.iter().map(|n| n.to_string()));
        };
        match expr {
            Expr::Series(sel) => scalar(sel, out),
            Expr::Histogram(sel) => out.extend(sel.names.iter().map(|n| format!("{n}_bucket"))),
            Expr::Sum(sels) => sels.iter().for_each(|s| scalar(s, out)),
            Expr::Diff(a, b) => [a, b].into_iter().for_each(|s| scalar(s, out)),
            Expr::Ratio(a, b) => {
                wire_names(a, out);
                wire_names(b, out);
            }
            Expr::Outcomes(parts) => {
                for part in parts.iter() {
                    match part {
                        OutcomePart::Fixed { sel, .. } | OutcomePart::ByLabel { sel, .. } => {
                            scalar(sel, out)
                        }
                        OutcomePart::Remainder { total, minus, .. } => {
                            scalar(total, out);
                            scalar(minus, out);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_series_the_signal_table_reads_is_a_known_family() {
        for signal in crate::engines::SIGNALS {
            for engine in Engine::ALL {
                let (How::Native(expr) | How::Derived(expr)) = &signal.mapping(engine).how else {
                    continue;
                };
                let mut names = Vec::new();
                wire_names(expr, &mut names);
                for name in names {
                    assert!(
                        family_of(&name).is_some(),
                        "{}: {name} read for {engine} is not in FAMILIES",
                        signal.name
                    );
                }
            }
        }
    }

    #[test]
    fn histograms_answer_for_their_parts_only() {
        let ttft = family_of("vllm:time_to_first_token_seconds_bucket").unwrap();
        assert_eq!(ttft.kind, Kind::Histogram);
        assert!(family_of("vllm:time_to_first_token_seconds").is_none());
        assert!(family_of("vllm:num_preemptions").is_none());
        assert!(family_of("tgi_request_count_total").is_none());
        assert_eq!(
            family_of("vllm:gpu_cache_usage_perc").unwrap().versions(),
            "vLLM before 0.12.0"
        );
    }
}
