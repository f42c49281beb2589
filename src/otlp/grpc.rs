//! OTLP over gRPC: the same protobuf bodies as OTLP/HTTP, sent as a unary call of the
//! collector's `Export` method. A call is an HTTP/2 POST of one length-prefixed message;
//! its outcome is the `grpc-status` the server sends in the trailers (or, when it fails
//! before answering, in the headers alone). No gRPC library is needed for that much, so
//! none is linked: reqwest speaks HTTP/2 and hands over the trailers.

use std::time::Duration;

use http_body_util::BodyExt;

use super::push::Posted;

/// The URL of `signal`'s (`metrics`, `traces`) `Export` method on the server at `base`
/// (`http://host:4317`; a path after the host is kept, as a reverse proxy may need it).
pub fn method_url(base: &str, signal: &str) -> String {
    let service = match signal {
        "traces" => "opentelemetry.proto.collector.trace.v1.TraceService",
        _ => "opentelemetry.proto.collector.metrics.v1.MetricsService",
    };
    format!("{}/{service}/Export", base.trim_end_matches('/'))
}

/// `message` as a gRPC message: not compressed, its length in four bytes big-endian.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let length = u32::try_from(message.len()).unwrap_or(u32::MAX);
    let mut framed = Vec::with_capacity(message.len() + 5);
    framed.push(0);
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(message);
    framed
}

/// What an export's `grpc-status` means for it, in the words of the HTTP exporter's
/// results: `RESOURCE_EXHAUSTED` and `UNAVAILABLE` are the server asking for less (as 429
/// and 503 are); the codes the OTLP specification retries are the server's trouble; the
/// rest refuse the export itself.
pub fn result_of(code: u32) -> &'static str {
    match code {
        0 => "ok",
        8 | 14 => "throttled",
        1 | 2 | 4 | 10 | 11 | 13 | 15 => "server_error",
        _ => "rejected",
    }
}

/// `grpc-timeout` for `timeout`: milliseconds, in at most the eight digits gRPC allows (a
/// longer timeout is sent as the longest that fits, 27 hours).
fn timeout_header(timeout: Duration) -> String {
    format!("{}m", timeout.as_millis().clamp(1, 99_999_999))
}

/// Calls `Export` at `url` with the protobuf `body`.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    headers: &[(String, String)],
    timeout: Duration,
    body: &[u8],
) -> Posted {
    let mut request = client
        .post(url)
        .timeout(timeout)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", timeout_header(timeout))
        .body(frame(body));
    for (k, v) in headers {
        request = request.header(k.as_str(), v.as_str());
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            let reason = crate::collect::fetch::flatten_error(&e);
            // The usual cause: an OTLP/HTTP port (4318) given for gRPC (4317).
            return Posted::unreachable(format!("{reason} (is it an OTLP/gRPC server?)"));
        }
    };
    let status = response.status();
    if !status.is_success() {
        // Not a gRPC answer at all (a proxy in the way, a wrong port): read as HTTP.
        return Posted::from_http(status.as_u16(), None);
    }
    let response: axum::http::Response<reqwest::Body> = response.into();
    let (parts, body) = response.into_parts();
    let trailers = match body.collect().await {
        Ok(collected) => collected.trailers().cloned(),
        Err(e) => return Posted::unreachable(format!("the gRPC answer broke off: {e}")),
    };
    // A call that fails at once may put its status in the headers ("trailers-only").
    let field = |name: &str| {
        trailers
            .as_ref()
            .and_then(|t| t.get(name))
            .or_else(|| parts.headers.get(name))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let Some(code) = field("grpc-status").and_then(|c| c.trim().parse::<u32>().ok()) else {
        return Posted {
            result: "server_error",
            detail: "the answer has no grpc-status".to_string(),
            retry_after: None,
        };
    };
    let message = field("grpc-message").unwrap_or_default();
    Posted {
        result: result_of(code),
        // `grpc-message` is percent-encoded, as OTLP's header settings are.
        detail: format!("grpc-status {code} {}", super::percent_decode(&message)),
        retry_after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_framed_uncompressed_with_its_length_big_endian() {
        assert_eq!(frame(b"abc"), [0, 0, 0, 0, 3, b'a', b'b', b'c']);
        assert_eq!(frame(&[7; 300])[..5], [0, 0, 0, 1, 44]);
    }

    #[test]
    fn each_signal_calls_its_services_export_method() {
        assert_eq!(
            method_url("http://c:4317/", "metrics"),
            "http://c:4317/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
        );
        assert_eq!(
            method_url("https://c/otlp", "traces"),
            "https://c/otlp/opentelemetry.proto.collector.trace.v1.TraceService/Export"
        );
    }

    #[test]
    fn status_codes_read_as_the_http_exporters_results() {
        assert_eq!(result_of(0), "ok");
        assert_eq!(result_of(14), "throttled"); // UNAVAILABLE
        assert_eq!(result_of(8), "throttled"); // RESOURCE_EXHAUSTED
        assert_eq!(result_of(4), "server_error"); // DEADLINE_EXCEEDED
        assert_eq!(result_of(3), "rejected"); // INVALID_ARGUMENT
        assert_eq!(result_of(16), "rejected"); // UNAUTHENTICATED
        assert_eq!(result_of(99), "rejected");
    }

    #[test]
    fn the_timeout_is_sent_in_at_most_eight_digits() {
        assert_eq!(timeout_header(Duration::from_secs(10)), "10000m");
        assert_eq!(timeout_header(Duration::ZERO), "1m");
        assert_eq!(timeout_header(Duration::from_secs(1 << 40)), "99999999m");
    }

    #[test]
    fn a_grpc_message_is_percent_decoded_and_a_bad_escape_kept() {
        use super::super::percent_decode;
        assert_eq!(percent_decode("no%20room%21"), "no room!");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
