"""An OTLP receiver for the tests: decodes each export with the reference OTLP schema
(the `opentelemetry-proto` package, independent of llmwatch's encoder) and appends it as one
JSON line to OUT. OTLP/HTTP by default; `--grpc` serves the collector's gRPC services instead
(with `grpcio`, gRPC's own implementation). `--throttle N` answers the first N metrics
exports 503 with `Retry-After: 1` (gRPC: UNAVAILABLE). `--tls CERT KEY` serves over TLS
with that certificate chain and key (PEM).

    python otlp_receiver.py OUT [--throttle N] [--port PORT] [--grpc] [--tls CERT KEY]

Prints `listening http://127.0.0.1:PORT` (`https://` with `--tls`) once it accepts
connections.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

SIGNALS = {
    "/v1/metrics": (
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
    ),
    "/v1/traces": (
        trace_service_pb2.ExportTraceServiceRequest,
        trace_service_pb2.ExportTraceServiceResponse,
    ),
}


def hex_ids(message, body):
    """Span ids as W3C writes them (hex), not as protobuf's JSON does (base64)."""
    for r, resource_spans in enumerate(message.resource_spans):
        for s, scope_spans in enumerate(resource_spans.scope_spans):
            for i, span in enumerate(scope_spans.spans):
                out = body["resource_spans"][r]["scope_spans"][s]["spans"][i]
                for field in ("trace_id", "span_id", "parent_span_id"):
                    if getattr(span, field):
                        out[field] = getattr(span, field).hex()


def known_length(message):
    known = type(message)()
    known.CopyFrom(message)
    known.DiscardUnknownFields()
    return len(known.SerializeToString())


def decoded(path, body, headers, protocol):
    """The JSON line of one export to `path` (`/v1/metrics`, `/v1/traces`), or None when the
    reference schema cannot read `body`, which is then recorded as an error."""
    request, _ = SIGNALS[path]
    message = request()
    try:
        message.ParseFromString(body)
    except Exception as error:  # a body the reference schema cannot read
        return None, {"path": path, "protocol": protocol, "error": str(error)}
    body_dict = MessageToDict(message, preserving_proto_field_name=True)
    if path == "/v1/traces":
        hex_ids(message, body_dict)
    return message, {
        "path": path,
        "protocol": protocol,
        "content_type": headers.get("content-type"),
        "headers": headers,
        "body": body_dict,
        # With unknown fields dropped, the reference schema's encoding is as long as
        # ours exactly when every field we wrote is one the schema knows.
        "length": len(body),
        "known_length": known_length(message),
    }


def append(out, record):
    with open(out, "a") as f:
        f.write(json.dumps(record) + "\n")


def serve_http(out, port, throttle, tls):
    state = {"throttled": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            if self.path not in SIGNALS:
                self.send_response(404)
                self.end_headers()
                return
            if self.path == "/v1/metrics" and state["throttled"] < throttle:
                state["throttled"] += 1
                self.send_response(503)
                self.send_header("retry-after", "1")
                self.send_header("content-length", "0")
                self.end_headers()
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            message, record = decoded(self.path, body, headers, "http/protobuf")
            append(out, record)
            if message is None:
                self.send_response(400)
                self.end_headers()
                return
            reply = SIGNALS[self.path][1]().SerializeToString()
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    scheme = "http"
    if tls:
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    print(f"listening {scheme}://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


def serve_grpc(out, port, throttle, tls):
    from concurrent import futures

    import grpc

    state = {"throttled": 0}
    services = {
        "/v1/metrics": "opentelemetry.proto.collector.metrics.v1.MetricsService",
        "/v1/traces": "opentelemetry.proto.collector.trace.v1.TraceService",
    }

    def export(path):
        # No deserialiser: the handler gets the message's bytes, to measure them too.
        def handle(body, context):
            if path == "/v1/metrics" and state["throttled"] < throttle:
                state["throttled"] += 1
                context.abort(grpc.StatusCode.UNAVAILABLE, "busy, try later")
            headers = {k.lower(): v for k, v in context.invocation_metadata()}
            message, record = decoded(path, body, headers, "grpc")
            append(out, record)
            if message is None:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "not an export request")
            return SIGNALS[path][1]().SerializeToString()

        return grpc.unary_unary_rpc_method_handler(handle)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    for path, service in services.items():
        handler = grpc.method_handlers_generic_handler(service, {"Export": export(path)})
        server.add_generic_rpc_handlers((handler,))
    if tls:
        cert, key = (open(path, "rb").read() for path in tls)
        credentials = grpc.ssl_server_credentials([(key, cert)])
        bound = server.add_secure_port(f"127.0.0.1:{port}", credentials)
        scheme = "https"
    else:
        bound = server.add_insecure_port(f"127.0.0.1:{port}")
        scheme = "http"
    server.start()
    print(f"listening {scheme}://127.0.0.1:{bound}", flush=True)
    server.wait_for_termination()


def main():
    out = sys.argv[1]
    throttle = int(sys.argv[sys.argv.index("--throttle") + 1]) if "--throttle" in sys.argv else 0
    port = int(sys.argv[sys.argv.index("--port") + 1]) if "--port" in sys.argv else 0
    tls = None
    if "--tls" in sys.argv:
        at = sys.argv.index("--tls")
        tls = (sys.argv[at + 1], sys.argv[at + 2])
    if "--grpc" in sys.argv:
        serve_grpc(out, port, throttle, tls)
    else:
        serve_http(out, port, throttle, tls)


if __name__ == "__main__":
    main()
