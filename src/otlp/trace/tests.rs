//! Trace context, sampling, ids, the span queue and the batch encoding.

use super::*;

const SAMPLER: Sampler = Sampler {
    ratio: 1.0,
    keep_slower_than: Duration::from_secs(5),
};

#[test]
fn a_valid_traceparent_is_continued_with_a_new_span() {
    let ids = Ids::default();
    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let ctx = TraceContext::start(Some(incoming), &ids, &SAMPLER);
    assert_eq!(ctx.trace_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(
        ctx.parent,
        Some([0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7])
    );
    assert!(ctx.sampled);
    let forwarded = ctx.traceparent();
    let forwarded = forwarded.as_str();
    assert!(forwarded.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
    assert!(
        !forwarded.contains("00f067aa0ba902b7"),
        "our span is the parent upstream"
    );
    // Not sampled by the caller: not sampled here, whatever the ratio.
    let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    assert!(!TraceContext::start(Some(unsampled), &ids, &SAMPLER).sampled);
}

#[test]
fn the_forwarded_traceparent_reads_back_as_this_span_and_its_flag() {
    let ids = Ids::default();
    for ratio in [0.0, 1.0] {
        let sampler = Sampler { ratio, ..SAMPLER };
        let ctx = TraceContext::start(None, &ids, &sampler);
        let forwarded = ctx.traceparent();
        assert_eq!(
            parse_traceparent(forwarded.as_str()),
            Some((ctx.trace_id, ctx.span_id, u8::from(ctx.sampled))),
            "{}",
            forwarded.as_str()
        );
        assert_eq!(forwarded.as_str().len(), 55);
    }
}

#[test]
fn an_invalid_traceparent_starts_a_new_trace() {
    let ids = Ids::default();
    for bad in [
        "",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
    ] {
        let ctx = TraceContext::start(Some(bad), &ids, &SAMPLER);
        assert_eq!(ctx.parent, None, "{bad:?}");
        assert_ne!(
            ctx.trace_hex(),
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "{bad:?}"
        );
    }
    // A later version may add fields.
    let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more";
    assert!(
        TraceContext::start(Some(later), &ids, &SAMPLER)
            .parent
            .is_some()
    );
}

#[test]
fn the_ratio_samples_its_share_of_new_traces_and_errors_and_slow_ones_are_kept() {
    let ids = Ids::default();
    let sampler = Sampler {
        ratio: 0.25,
        keep_slower_than: Duration::from_secs(2),
    };
    let n = 20_000;
    let sampled = (0..n)
        .filter(|_| TraceContext::start(None, &ids, &sampler).sampled)
        .count();
    let share = sampled as f64 / n as f64;
    assert!((share - 0.25).abs() < 0.02, "{share}");
    let ctx = TraceContext::start(
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
        &ids,
        &sampler,
    );
    assert!(!sampler.keeps(&ctx, false, Duration::from_millis(10)));
    assert!(sampler.keeps(&ctx, true, Duration::from_millis(10)));
    assert!(sampler.keeps(&ctx, false, Duration::from_secs(3)));
}

#[test]
fn a_full_queue_drops_spans_and_counts_them_without_waiting() {
    let stats = ExportStats::default();
    let config = TraceConfig {
        url: "http://127.0.0.1:9/v1/traces".to_string(),
        protocol: crate::otlp::Protocol::HttpProtobuf,
        ca: None,
        headers: Vec::new(),
        timeout: Duration::from_secs(1),
        sampler: SAMPLER,
        resource: Resource {
            attributes: Vec::new(),
        },
        provider: None,
    };
    // The exporter is never run: nothing drains the queue.
    let (tracer, _exporter) = tracer(config, stats.clone());
    let span = TestSpan::new(&tracer.ids, "m", 1);
    for _ in 0..QUEUE + 5 {
        tracer.finish(&span.head(), |a| span.attributes(a));
    }
    let dropped = stats
        .dropped
        .get_or_create(&super::super::push::ExportLabels {
            signal: "traces".to_string(),
            result: "queue_full".to_string(),
        })
        .get();
    assert_eq!(dropped, 5);
}

/// A span with what the head borrows, and what its attributes hold.
struct TestSpan {
    ctx: TraceContext,
    model: String,
    events: Vec<(&'static str, u64)>,
    error: Option<&'static str>,
    reasons: usize,
}

impl TestSpan {
    fn new(ids: &Ids, model: &str, reasons: usize) -> TestSpan {
        TestSpan {
            ctx: TraceContext::start(None, ids, &SAMPLER),
            model: model.to_string(),
            events: vec![("gen_ai.first_chunk", 1_700_000_000_050_000_000)],
            error: (reasons == 0).then_some("timeout"),
            reasons,
        }
    }

    /// One attribute of every kind.
    fn attributes(&self, a: &mut Attributes<'_>) {
        a.string("gen_ai.request.model", &self.model);
        a.string("server.address", "127.0.0.1");
        a.int("server.port", 8000);
        a.bool("gen_ai.request.stream", true);
        a.double("gen_ai.response.time_to_first_chunk", 0.05);
        a.strings(
            "gen_ai.response.finish_reasons",
            &vec!["stop"; self.reasons],
        );
    }

    fn head(&self) -> SpanHead<'_> {
        SpanHead {
            ctx: self.ctx,
            operation: "chat",
            model: &self.model,
            kind: 3,
            start_unix_ns: 1_700_000_000_000_000_000,
            end_unix_ns: 1_700_000_000_250_000_000,
            events: &self.events,
            error: self.error,
        }
    }
}

/// The request as nested messages, each built and then copied into its parent.
fn nested_request(spans: &[TestSpan], resource: &Resource) -> Vec<u8> {
    let mut scope = Message::new();
    scope.string(1, "llmwatch");
    scope.string(2, env!("CARGO_PKG_VERSION"));
    let mut scope_spans = Message::new();
    scope_spans.message(1, scope);
    for test in spans {
        let (mut span, mut scratch) = (Message::new(), Message::new());
        test.head()
            .write(&mut span, &mut scratch, |a| test.attributes(a));
        scope_spans.message(2, span);
    }
    let mut resource_spans = Message::new();
    resource_spans.message(1, resource.message());
    resource_spans.message(2, scope_spans);
    let mut request = Message::new();
    request.message(1, resource_spans);
    request.into_bytes()
}

#[test]
fn queued_spans_leave_in_batches_that_read_as_nested_messages_would() {
    let ids = Ids::default();
    let resource = Resource {
        attributes: vec![("service.name".to_string(), "llmwatch".to_string())],
    };
    let queue = export::SpanQueue::default();
    // Long batches, then short ones in the buffers given back: nothing of an earlier batch
    // may show through.
    let spans: Vec<TestSpan> = (0..1100)
        .map(|i| TestSpan::new(&ids, &"m".repeat(i % 200), i % 3))
        .collect();
    for round in [&spans[..], &spans[..1], &spans[7..9], &spans[..600]] {
        for span in round {
            assert!(queue.push(&span.head(), |a| span.attributes(a)));
        }
        let mut from = 0;
        while let Some((scope_spans, n)) = queue.take() {
            assert_eq!(n, (round.len() - from).min(export::BATCH));
            assert_eq!(
                export::request(scope_spans.as_bytes(), &resource),
                nested_request(&round[from..from + n], &resource),
                "spans {from}..{}",
                from + n
            );
            queue.give_back(scope_spans);
            from += n;
        }
        assert_eq!(from, round.len());
    }
}

#[test]
fn ids_are_distinct() {
    let ids = Ids::default();
    let mut seen = std::collections::HashSet::new();
    assert!((0..10_000).all(|_| seen.insert(ids.span_id())));
}

#[test]
fn an_upstreams_host_and_port_are_read_as_a_url_parser_would() {
    for (base, host, port) in [
        ("http://127.0.0.1:8000", "127.0.0.1", 8000),
        ("http://vllm:8000/", "vllm", 8000),
        ("https://engine.example.com/v1", "engine.example.com", 443),
        ("http://user:secret@engine:9000", "engine", 9000),
        ("http://[::1]:8080", "::1", 8080),
        ("http://[::1]", "::1", 80),
    ] {
        assert_eq!(
            host_and_port(base),
            (host.to_string(), Some(port)),
            "{base}"
        );
    }
}

#[test]
fn the_wall_clock_gives_unix_times_that_keep_the_instants_apart() {
    let clock = WallClock::new();
    let now = std::time::Instant::now();
    let ours = clock.unix_nanos(now);
    let wall = crate::otlp::unix_nanos(std::time::SystemTime::now());
    assert!(wall.abs_diff(ours) < 50_000_000, "{ours} against {wall}");
    let later = now + Duration::from_millis(250);
    assert_eq!(clock.unix_nanos(later) - ours, 250_000_000);
    // Long after its last measurement the clock measures again, and still agrees.
    let far = now + Duration::from_secs(5);
    let expected = ours + 5_000_000_000;
    assert!(clock.unix_nanos(far).abs_diff(expected) < 50_000_000);
}
