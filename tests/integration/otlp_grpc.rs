//! OTLP over gRPC: the proxy's metrics and spans reach a gRPC server (`grpcio`'s, decoding
//! with the reference schema) as they reach an OTLP/HTTP one, and a server that asks for
//! less is left alone and counted.

use crate::otlp::{Receiver, attributes, int, metrics_of, otlp_proxy, prom, send_requests, spans};
use crate::up::{eventually, get};
use crate::util::start_with;

#[test]
fn grpc_exports_carry_the_metrics_and_spans_that_otlp_http_does() {
    let Some(receiver) = Receiver::start_grpc(&[]) else {
        return;
    };
    let sim = start_with(&["vllm"], &["--profile", "gpu-7b"]);
    let flags = ["--otlp-protocol", "grpc", "--gen-ai-provider", "vllm"];
    let proxy = otlp_proxy(&sim.urls[0].1, &receiver.base, "200ms", &flags);
    send_requests(&proxy.base, 2, 1);
    let metrics_url = format!("{}/metrics", proxy.base);
    eventually(10, || {
        let text = get(&metrics_url).1;
        (text.contains("llm_proxy_requests_total{") && !spans(&receiver).is_empty()).then_some(())
    });
    // An export after the requests were counted holds all three.
    let seen = receiver.exports().len();
    let text = get(&metrics_url).1;
    let export = eventually(10, || receiver.exports().into_iter().nth(seen + 1));
    for e in receiver.received() {
        assert_eq!(e["protocol"], "grpc");
        assert_eq!(
            e["length"], e["known_length"],
            "a field the schema does not know"
        );
    }
    let metrics = metrics_of(&export);
    let duration = &metrics["gen_ai.client.operation.duration"]["histogram"]["data_points"][0];
    let labels = "gen_ai_operation_name=\"chat\",gen_ai_request_model=\"sim-vllm\",gen_ai_response_model=\"sim-vllm\"";
    assert_eq!(
        int(&duration["count"]),
        prom(
            &text,
            &format!("gen_ai_client_operation_duration_seconds_count{{{labels}}}")
        )
    );
    assert_eq!(int(&duration["count"]), 3.0);
    assert_eq!(attributes(duration)["gen_ai.provider.name"], "vllm");
    let span = &spans(&receiver)[0];
    assert_eq!(span["name"], "chat sim-vllm");
    assert_eq!(span["kind"], "SPAN_KIND_CLIENT");
    assert!(
        prom(
            &text,
            "llmwatch_otlp_exports_total{signal=\"metrics\",result=\"ok\"}"
        ) >= 1.0
    );
}

#[test]
fn a_grpc_server_answering_unavailable_is_counted_as_throttling_and_export_resumes() {
    let Some(receiver) = Receiver::start_grpc(&["--throttle", "2"]) else {
        return;
    };
    let sim = start_with(&["vllm"], &["--profile", "gpu-7b"]);
    let flags = ["--otlp-protocol", "grpc"];
    let proxy = otlp_proxy(&sim.urls[0].1, &receiver.base, "200ms", &flags);
    send_requests(&proxy.base, 2, 0);
    let export = eventually(15, || receiver.exports().into_iter().next());
    let requests = &metrics_of(&export)["llm.proxy.requests"]["sum"]["data_points"][0];
    assert_eq!(requests["as_double"].as_f64(), Some(2.0));
    crate::otlp::assert_throttled_twice_then_delivered(&get(&format!("{}/metrics", proxy.base)).1);
}

#[test]
fn a_collector_behind_a_private_ca_is_reached_over_tls_when_its_ca_is_given() {
    let tls = [
        crate::util::fixture("tls/server.pem"),
        crate::util::fixture("tls/server.key"),
    ];
    let (cert, key) = (tls[0].to_str().unwrap(), tls[1].to_str().unwrap());
    let Some(receiver) = Receiver::start_grpc(&["--tls", cert, key]) else {
        return;
    };
    assert!(receiver.base.starts_with("https://"), "{}", receiver.base);
    let sim = start_with(&["vllm"], &["--profile", "gpu-7b"]);
    let ca = crate::util::fixture("tls/ca.pem");
    let trusted = [
        "--otlp-protocol",
        "grpc",
        "--otlp-certificate",
        ca.to_str().unwrap(),
    ];
    let proxy = otlp_proxy(&sim.urls[0].1, &receiver.base, "200ms", &trusted);
    send_requests(&proxy.base, 1, 0);
    let export = eventually(10, || receiver.exports().into_iter().next());
    assert_eq!(export["protocol"], "grpc");
    assert!(metrics_of(&export).contains_key("llm.proxy.requests"));

    // Without the CA the certificate is nobody's: exports fail and are counted, requests go
    // through.
    let untrusting = otlp_proxy(
        &sim.urls[0].1,
        &receiver.base,
        "200ms",
        &["--otlp-protocol", "grpc"],
    );
    send_requests(&untrusting.base, 1, 0);
    let url = format!("{}/metrics", untrusting.base);
    eventually(10, || {
        get(&url)
            .1
            .contains("llmwatch_otlp_exports_total{signal=\"metrics\",result=\"unreachable\"}")
            .then_some(())
    });
}
