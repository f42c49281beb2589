//! Benchmark results: every measured request folded into HDR histograms (microseconds, three
//! significant digits), error counts by class, token totals, and goodput under SLOs; rendered
//! as a terminal table, a JSON document and a CSV of requests.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Value as Json, json};

use super::request::{ErrorClass, Timing};

/// A latency measure an SLO can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Time to first content token, from the intended send time.
    Ttft,
    /// Mean time per output token after the first.
    Tpot,
    /// The longest gap between content chunks.
    Itl,
    /// End to end, from the intended send time.
    E2e,
}

/// One service-level objective, e.g. `ttft_p99=500ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slo {
    /// What is measured.
    pub measure: Measure,
    /// For a run-level check: the quantile (`p99` → 0.99) that must stay under the threshold.
    pub quantile: Option<f64>,
    /// The threshold.
    pub threshold: Duration,
}

impl Slo {
    /// Parses `ttft=500ms,itl_p99=50ms,…`.
    pub fn parse_list(text: &str) -> Result<Vec<Slo>, String> {
        text.split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|item| {
                let (name, value) = item
                    .split_once('=')
                    .ok_or_else(|| format!("invalid SLO {item:?}: use e.g. ttft_p99=500ms"))?;
                let (measure, quantile) = match name.trim().split_once("_p") {
                    Some((m, digits)) => {
                        // p99 → 0.99, p999 → 0.999, p50 → 0.5.
                        let n: f64 = digits
                            .parse()
                            .map_err(|_| format!("invalid percentile in SLO {item:?}"))?;
                        let scale = 10f64.powi(i32::try_from(digits.len()).unwrap_or(1));
                        (m, Some(n / scale))
                    }
                    None => (name.trim(), None),
                };
                let measure = match measure {
                    "ttft" => Measure::Ttft,
                    "tpot" => Measure::Tpot,
                    "itl" => Measure::Itl,
                    "e2e" => Measure::E2e,
                    other => {
                        return Err(format!(
                            "unknown SLO measure {other:?}: ttft, tpot, itl or e2e"
                        ));
                    }
                };
                let threshold = crate::cli::parse_duration(value)?;
                Ok(Slo {
                    measure,
                    quantile,
                    threshold,
                })
            })
            .collect()
    }
}

/// One request as reported (seconds; `None` where it does not apply).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RequestRecord {
    /// Request number.
    pub index: u64,
    /// Intended send time, from the start of the run.
    pub intended: f64,
    /// How late it was actually sent.
    pub send_lag: f64,
    /// First content token, from the actual send.
    pub ttft: Option<f64>,
    /// First content token, from the intended send.
    pub ttft_intended: Option<f64>,
    /// End to end, from the actual send.
    pub e2e: f64,
    /// End to end, from the intended send.
    pub e2e_intended: f64,
    /// Mean time per output token after the first.
    pub tpot: Option<f64>,
    /// Longest gap between content chunks.
    pub itl_max: Option<f64>,
    /// Prompt tokens asked for (synthetic prompts).
    pub asked_input_tokens: Option<u32>,
    /// Prompt tokens (usage).
    pub input_tokens: Option<u64>,
    /// Output tokens (usage).
    pub output_tokens: Option<u64>,
    /// Chunks carrying content.
    pub content_chunks: usize,
    /// Error class, if it failed.
    pub error: Option<ErrorClass>,
}

/// 1 µs to one hour at three significant digits (valid bounds: never `None`).
fn histogram() -> Option<Histogram<u64>> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).ok()
}

fn micros(d: f64) -> u64 {
    (d * 1e6).round().clamp(1.0, 3_600_000_000.0) as u64
}

/// Distinct error messages kept per class.
const MESSAGES_PER_CLASS: usize = 3;

/// One error message and how many failed requests of its class said it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ErrorMessage {
    /// The status and message, trimmed.
    pub message: String,
    /// Requests that failed with it.
    pub count: u64,
}

/// Everything measured in a run.
pub struct Aggregate {
    latencies: BTreeMap<&'static str, Histogram<u64>>,
    errors: BTreeMap<ErrorClass, u64>,
    /// The first few distinct messages per error class, warm-up included.
    messages: BTreeMap<ErrorClass, Vec<ErrorMessage>>,
    /// Finished requests that failed, warm-up included (to tell a server that fails every
    /// request from the start).
    pub failed_any: u64,
    /// Requests sent (measured and warm-up).
    pub sent: u64,
    /// Requests sent during warm-up, not measured.
    pub warmup: u64,
    completed: u64,
    good: u64,
    input_tokens: u64,
    output_tokens: u64,
    first_intended: Option<f64>,
    first_sent: Option<f64>,
    last_sent: Option<f64>,
    last_end: Option<f64>,
    /// Ends of the first and last successful requests, for the rate answers completed at.
    first_done: Option<f64>,
    last_done: Option<f64>,
    slos: Vec<Slo>,
    /// Every measured request.
    pub records: Vec<RequestRecord>,
}

/// The latency families, in report order.
const FAMILIES: [&str; 9] = [
    "ttft",
    "ttft_intended",
    "ttfc",
    "itl_chunk",
    "itl_token",
    "tpot",
    "e2e",
    "e2e_intended",
    "send_lag",
];

impl Aggregate {
    /// An empty aggregate checking `slos` per request.
    pub fn new(slos: Vec<Slo>) -> Aggregate {
        Aggregate {
            latencies: FAMILIES
                .iter()
                .filter_map(|f| Some((*f, histogram()?)))
                .collect(),
            errors: BTreeMap::new(),
            messages: BTreeMap::new(),
            failed_any: 0,
            sent: 0,
            warmup: 0,
            completed: 0,
            good: 0,
            input_tokens: 0,
            output_tokens: 0,
            first_intended: None,
            first_sent: None,
            last_sent: None,
            last_end: None,
            first_done: None,
            last_done: None,
            slos,
            records: Vec::new(),
        }
    }

    fn record(&mut self, family: &'static str, seconds: f64, count: u64) {
        if let Some(h) = self.latencies.get_mut(family) {
            let _ = h.record_n(micros(seconds), count.max(1));
        }
    }

    /// Folds in one finished request; `start` is the run's time zero.
    pub fn add(
        &mut self,
        index: u64,
        intended: Instant,
        timing: &Timing,
        asked: Option<u32>,
        start: Instant,
        measured: bool,
    ) {
        self.sent += 1;
        if let Some(class) = timing.error {
            self.failed_any += 1;
            self.note_message(class, timing.error_detail.as_deref());
        }
        if !measured {
            self.warmup += 1;
            return;
        }
        let since = |t: Instant| t.saturating_duration_since(start).as_secs_f64();
        let sent = timing.sent.unwrap_or(intended);
        let end = timing.end.unwrap_or(sent);
        let gap = |a: Instant, b: Instant| b.saturating_duration_since(a).as_secs_f64();
        let first = timing.content.first().copied();
        let output = timing.output_tokens;
        let chunks = timing.content.len();
        let tpot = match (first, timing.content.last(), output) {
            (Some(f), Some(l), Some(n)) if n > 1 => Some(gap(f, *l) / (n - 1) as f64),
            _ => None,
        };
        let gaps: Vec<f64> = timing.content.windows(2).map(|w| gap(w[0], w[1])).collect();
        let record = RequestRecord {
            index,
            intended: since(intended),
            send_lag: gap(intended, sent),
            ttft: first.map(|f| gap(sent, f)),
            ttft_intended: first.map(|f| gap(intended, f)),
            e2e: gap(sent, end),
            e2e_intended: gap(intended, end),
            tpot,
            itl_max: gaps.iter().copied().reduce(f64::max),
            asked_input_tokens: asked,
            input_tokens: timing.input_tokens,
            output_tokens: output,
            content_chunks: chunks,
            error: timing.error,
        };
        self.first_intended = Some(
            self.first_intended
                .map_or(record.intended, |t| t.min(record.intended)),
        );
        self.first_sent = Some(self.first_sent.map_or(since(sent), |t| t.min(since(sent))));
        self.last_sent = Some(self.last_sent.map_or(since(sent), |t| t.max(since(sent))));
        self.last_end = Some(self.last_end.map_or(since(end), |t| t.max(since(end))));
        self.record("send_lag", record.send_lag, 1);
        match timing.error {
            Some(class) => *self.errors.entry(class).or_default() += 1,
            None => {
                let done = since(end);
                self.first_done = Some(self.first_done.map_or(done, |t| t.min(done)));
                self.last_done = Some(self.last_done.map_or(done, |t| t.max(done)));
                self.completed += 1;
                self.input_tokens += timing.input_tokens.unwrap_or(0);
                self.output_tokens += output.unwrap_or(0);
                self.observe(&record, timing, &gaps);
            }
        }
        self.records.push(record);
    }

    fn observe(&mut self, r: &RequestRecord, timing: &Timing, gaps: &[f64]) {
        if let Some(v) = r.ttft {
            self.record("ttft", v, 1);
        }
        if let Some(v) = r.ttft_intended {
            self.record("ttft_intended", v, 1);
        }
        if let (Some(sent), Some(chunk)) = (timing.sent, timing.first_chunk) {
            self.record(
                "ttfc",
                chunk.saturating_duration_since(sent).as_secs_f64(),
                1,
            );
        }
        let per_chunk = timing.tokens_per_chunk();
        for g in gaps {
            self.record("itl_chunk", *g, 1);
            self.record("itl_token", g / per_chunk, per_chunk.round() as u64);
        }
        if let Some(v) = r.tpot {
            self.record("tpot", v, 1);
        }
        self.record("e2e", r.e2e, 1);
        self.record("e2e_intended", r.e2e_intended, 1);
        if self.slos.iter().all(|slo| meets(slo, r)) {
            self.good += 1;
        }
    }

    fn note_message(&mut self, class: ErrorClass, detail: Option<&str>) {
        let message = detail.unwrap_or("(no message)");
        let kept = self.messages.entry(class).or_default();
        if let Some(seen) = kept.iter_mut().find(|m| m.message == message) {
            seen.count += 1;
        } else if kept.len() < MESSAGES_PER_CLASS {
            kept.push(ErrorMessage {
                message: message.to_string(),
                count: 1,
            });
        }
    }

    /// Failed requests so far.
    pub fn errors(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The first message of the most frequent error class, for a one-line reason.
    pub fn main_error(&self) -> Option<String> {
        let (class, messages) = self
            .messages
            .iter()
            .max_by_key(|(_, m)| m.iter().map(|m| m.count).sum::<u64>())?;
        let first = messages.first()?;
        Some(format!("{}: {}", class.as_str(), first.message))
    }

    /// The latency family's value at quantile `q`, in seconds.
    pub fn quantile(&self, family: &str, q: f64) -> Option<f64> {
        let h = self.latencies.get(family)?;
        (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1e6)
    }

    /// The JSON report.
    pub fn to_json(&self, target_rate: Option<f64>) -> Json {
        let window = match (self.first_intended, self.last_end) {
            (Some(a), Some(b)) if b > a => b - a,
            _ => 0.0,
        };
        let per_second = |n: u64| if window > 0.0 { n as f64 / window } else { 0.0 };
        let measured = self.records.len() as u64;
        let achieved = match (self.first_sent, self.last_sent) {
            (Some(a), Some(b)) if b > a && measured > 1 => Some((measured - 1) as f64 / (b - a)),
            _ => None,
        };
        // Answers completed per second while they were completing: the server's pace,
        // whatever the latency of the first and last request (which a rate over the whole
        // window would count against it).
        let completing = match (self.first_done, self.last_done) {
            (Some(a), Some(b)) if b > a && self.completed > 1 => {
                Some((self.completed - 1) as f64 / (b - a))
            }
            _ => None,
        };
        let latency: serde_json::Map<String, Json> = self
            .latencies
            .iter()
            .map(|(name, h)| {
                let s = |v: u64| v as f64 / 1e6;
                let value = if h.is_empty() {
                    Json::Null
                } else {
                    json!({
                        "count": h.len(),
                        "mean": h.mean() / 1e6,
                        "p50": s(h.value_at_quantile(0.5)),
                        "p90": s(h.value_at_quantile(0.9)),
                        "p99": s(h.value_at_quantile(0.99)),
                        "p999": s(h.value_at_quantile(0.999)),
                        "max": s(h.max()),
                    })
                };
                ((*name).to_string(), value)
            })
            .collect();
        let slos: Vec<Json> = self
            .slos
            .iter()
            .map(|slo| {
                let family = match slo.measure {
                    Measure::Ttft => "ttft_intended",
                    Measure::Tpot => "tpot",
                    Measure::Itl => "itl_chunk",
                    Measure::E2e => "e2e_intended",
                };
                let value = slo.quantile.and_then(|q| self.quantile(family, q));
                json!({
                    "measure": family,
                    "quantile": slo.quantile,
                    "threshold_seconds": slo.threshold.as_secs_f64(),
                    "value_seconds": value,
                    "met": value.map(|v| v <= slo.threshold.as_secs_f64()),
                })
            })
            .collect();
        json!({
            "requests": {
                "sent": self.sent,
                "warmup": self.warmup,
                "measured": measured,
                "completed": self.completed,
                "errors": self.errors.iter().map(|(k, v)| (k.as_str().to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
                "error_messages": self.messages.iter().map(|(k, v)| (k.as_str().to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            },
            "rate": {
                "target_per_second": target_rate,
                "achieved_per_second": achieved,
                "completed_per_second": completing,
            },
            "window_seconds": window,
            "throughput": {
                "requests_per_second": per_second(self.completed),
                "input_tokens_per_second": per_second(self.input_tokens),
                "output_tokens_per_second": per_second(self.output_tokens),
                "good_requests_per_second": per_second(self.good),
            },
            "tokens": { "input": self.input_tokens, "output": self.output_tokens },
            "prompt_tokens": self.prompt_lengths(),
            "latency_seconds": latency,
            "slo": { "good_requests": self.good, "objectives": slos },
        })
    }

    /// Asked against achieved prompt lengths, over the measured requests whose answer
    /// reported its prompt tokens.
    fn prompt_lengths(&self) -> Json {
        let pairs: Vec<(f64, f64)> = self
            .records
            .iter()
            .filter_map(|r| Some((f64::from(r.asked_input_tokens?), r.input_tokens? as f64)))
            .collect();
        if pairs.is_empty() {
            return json!({ "requests": 0 });
        }
        let n = pairs.len() as f64;
        let asked = pairs.iter().map(|p| p.0).sum::<f64>() / n;
        let achieved = pairs.iter().map(|p| p.1).sum::<f64>() / n;
        let worst = pairs
            .iter()
            .map(|(a, b)| (b - a).abs() / a.max(1.0))
            .fold(0.0, f64::max);
        json!({
            "requests": pairs.len(),
            "asked_mean": asked,
            "achieved_mean": achieved,
            "achieved_over_asked": achieved / asked.max(1.0),
            "largest_relative_error": worst,
        })
    }

    /// The terminal summary.
    pub fn table(&self, report: &Json) -> String {
        let mut out = String::new();
        let r = &report["requests"];
        let t = &report["throughput"];
        out.push_str(&format!(
            "requests   sent {} (warm-up {}), completed {}, errors {}\n",
            r["sent"], r["warmup"], r["completed"], r["errors"]
        ));
        if let Some(messages) = r["error_messages"].as_object() {
            for (class, list) in messages {
                for m in list.as_array().into_iter().flatten() {
                    out.push_str(&format!(
                        "  {class:<12} {:>6} × {}\n",
                        m["count"],
                        m["message"].as_str().unwrap_or("")
                    ));
                }
            }
        }
        if let Some(rate) = report["rate"]["achieved_per_second"].as_f64() {
            out.push_str(&format!("rate       achieved {rate:.2}/s\n"));
        }
        let p = &report["prompt_tokens"];
        if let (Some(asked), Some(achieved)) =
            (p["asked_mean"].as_f64(), p["achieved_mean"].as_f64())
        {
            out.push_str(&format!(
                "prompts    asked {asked:.1} tokens, server counted {achieved:.1} (mean; sized by {})\n",
                p["sizing"]["method"].as_str().unwrap_or("words")
            ));
        }
        if let Some(note) = p["sizing"]["note"].as_str() {
            out.push_str(&format!("prompts    {note}\n"));
        }
        if let Some(cpu) = report["client_cpu"]["per_request_microseconds"].as_f64() {
            out.push_str(&format!("client CPU {cpu:.0} µs per request\n"));
        }
        out.push_str(&format!(
            "throughput {:.2} req/s, {:.1} output tok/s, {:.1} input tok/s, goodput {:.2} req/s\n\n",
            t["requests_per_second"].as_f64().unwrap_or(0.0),
            t["output_tokens_per_second"].as_f64().unwrap_or(0.0),
            t["input_tokens_per_second"].as_f64().unwrap_or(0.0),
            t["good_requests_per_second"].as_f64().unwrap_or(0.0),
        ));
        let e = &report["engine_view"];
        if let Some(error) = e["error"].as_str() {
            out.push_str(&format!("engine     no engine view: {error}\n\n"));
        } else if !e.is_null() && e["generation_tokens"].is_null() {
            out.push_str(&format!(
                "engine     {} {}: counted no generated tokens between the scrapes\n\n",
                e["engine"].as_str().unwrap_or("?"),
                e["version"].as_str().unwrap_or(""),
            ));
        }
        if let Some(tokens) = e["generation_tokens"].as_f64() {
            let ms = |k: &str, q: &str| {
                serde_json::from_value::<crate::collect::history::Quantile>(e[k][q].clone())
                    .map_or("-".into(), |q| q.display(1e3, 2))
            };
            out.push_str(&format!(
                "engine     {} {}: {tokens} output tokens, TTFT p50 {} p99 {} ms, ITL p50 {} p99 {} ms\n\n",
                e["engine"].as_str().unwrap_or("?"),
                e["version"].as_str().unwrap_or(""),
                ms("ttft_seconds", "p50"),
                ms("ttft_seconds", "p99"),
                ms("itl_seconds", "p50"),
                ms("itl_seconds", "p99"),
            ));
        }
        out.push_str(&format!(
            "{:<14} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
            "latency (ms)", "mean", "p50", "p90", "p99", "max"
        ));
        for family in FAMILIES {
            let v = &report["latency_seconds"][family];
            if v.is_null() {
                continue;
            }
            let ms = |k: &str| v[k].as_f64().unwrap_or(0.0) * 1e3;
            out.push_str(&format!(
                "{family:<14} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2}\n",
                ms("mean"),
                ms("p50"),
                ms("p90"),
                ms("p99"),
                ms("max")
            ));
        }
        out
    }

    /// One CSV line per measured request.
    pub fn csv(&self) -> String {
        let mut out = String::from(
            "index,intended_s,send_lag_s,ttft_s,ttft_intended_s,e2e_s,e2e_intended_s,tpot_s,itl_max_s,input_tokens,output_tokens,content_chunks,error,asked_input_tokens\n",
        );
        let opt = |v: Option<f64>| v.map(|x| format!("{x:.6}")).unwrap_or_default();
        let int = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_default();
        for r in &self.records {
            out.push_str(&format!(
                "{},{:.6},{:.6},{},{},{:.6},{:.6},{},{},{},{},{},{},{}\n",
                r.index,
                r.intended,
                r.send_lag,
                opt(r.ttft),
                opt(r.ttft_intended),
                r.e2e,
                r.e2e_intended,
                opt(r.tpot),
                opt(r.itl_max),
                int(r.input_tokens),
                int(r.output_tokens),
                r.content_chunks,
                r.error.map(ErrorClass::as_str).unwrap_or(""),
                int(r.asked_input_tokens.map(u64::from)),
            ));
        }
        out
    }
}

fn meets(slo: &Slo, r: &RequestRecord) -> bool {
    let value = match slo.measure {
        Measure::Ttft => r.ttft_intended,
        Measure::Tpot => r.tpot,
        Measure::Itl => r.itl_max,
        Measure::E2e => Some(r.e2e_intended),
    };
    value.is_none_or(|v| v <= slo.threshold.as_secs_f64())
}
