"""An OTLP/HTTP receiver for the tests: decodes each export with the reference OTLP schema
(the `opentelemetry-proto` package, independent of llmwatch's encoder) and appends it as one
JSON line to OUT. `--throttle N` answers the first N metrics exports 503 with `Retry-After: 1`.

    python otlp_receiver.py OUT [--throttle N] [--port PORT]

Prints `listening http://127.0.0.1:PORT` once it accepts connections.
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


def main():
    out = sys.argv[1]
    throttle = int(sys.argv[sys.argv.index("--throttle") + 1]) if "--throttle" in sys.argv else 0
    state = {"throttled": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            kinds = SIGNALS.get(self.path)
            if kinds is None:
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
            request, response = kinds
            message = request()
            try:
                message.ParseFromString(body)
            except Exception as error:  # a body the reference schema cannot read
                self.send_response(400)
                self.end_headers()
                with open(out, "a") as f:
                    f.write(json.dumps({"path": self.path, "error": str(error)}) + "\n")
                return
            body_dict = MessageToDict(message, preserving_proto_field_name=True)
            if self.path == "/v1/traces":
                hex_ids(message, body_dict)
            record = {
                "path": self.path,
                "content_type": self.headers.get("content-type"),
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body_dict,
                # With unknown fields dropped, the reference schema's encoding is as long as
                # ours exactly when every field we wrote is one the schema knows.
                "length": len(body),
                "known_length": known_length(message),
            }
            with open(out, "a") as f:
                f.write(json.dumps(record) + "\n")
            reply = response().SerializeToString()
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):
            pass

    port = int(sys.argv[sys.argv.index("--port") + 1]) if "--port" in sys.argv else 0
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"listening http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
