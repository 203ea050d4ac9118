"""A real OTLP/gRPC trace receiver for the span tests, built on the official OpenTelemetry protos
(`opentelemetry-proto`) and gRPC (`grpcio`): Envoy's OpenTelemetry tracer exports to it exactly
as to a collector, and the test reads every span it received, attributes as plain strings."""

from __future__ import annotations

import threading
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from harness import free_port


def _value(v) -> object:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


class _Service(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: "OtlpReceiver"):
        self.receiver = receiver

    def Export(self, request, context):  # noqa: N802 (the proto's method name)
        with self.receiver.lock:
            for resource_spans in request.resource_spans:
                resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.receiver.spans.append({
                            "name": span.name,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "kind": span.kind,
                            "attributes": {a.key: _value(a.value) for a in span.attributes},
                            "resource": resource,
                            "raw": span.SerializeToString(),
                        })
        return trace_service_pb2.ExportTraceServiceResponse()


class OtlpReceiver:
    def __init__(self):
        self.port = free_port()
        self.spans: list[dict] = []
        self.lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Service(self), self.server)
        self.server.add_insecure_port(f"127.0.0.1:{self.port}")
        self.server.start()

    def received(self) -> list[dict]:
        with self.lock:
            return list(self.spans)

    def stop(self) -> None:
        self.server.stop(grace=None)


class OtlpLogsReceiver:
    """A real OTLP/HTTP logs receiver (POST /v1/logs, protobuf) decoding with the official
    `opentelemetry-proto` messages, as a Collector's otlphttp receiver would. `status` is what it
    answers (set it to 500 to fail every export), after `delay` seconds (a slow receiver);
    `fail_next` requests are answered 500 first (a receiver failing for a moment); every request
    is kept, decoded and raw."""

    def __init__(self, status: int = 200):
        import http.server

        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

        self.port = free_port()
        self.status = status
        self.delay = 0.0
        self.fail_next = 0
        self.lock = threading.Lock()
        self.records: list[dict] = []
        self.raw: list[bytes] = []
        self.requests: list[dict] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver.lock:
                    receiver.raw.append(body)
                    receiver.requests.append({"path": self.path, "content_type": self.headers.get("content-type")})
                    status = receiver.status
                    if receiver.fail_next > 0:
                        receiver.fail_next -= 1
                        status = 500
                    if status == 200:
                        request = logs_service_pb2.ExportLogsServiceRequest.FromString(body)
                        for resource_logs in request.resource_logs:
                            resource = {a.key: _value(a.value) for a in resource_logs.resource.attributes}
                            for scope_logs in resource_logs.scope_logs:
                                for record in scope_logs.log_records:
                                    body_map = {kv.key: _value(kv.value) for kv in record.body.kvlist_value.values}
                                    receiver.records.append({
                                        "resource": resource,
                                        "scope": scope_logs.scope.name,
                                        "severity": record.severity_text,
                                        "body": body_map,
                                        "attributes": {a.key: _value(a.value) for a in record.attributes},
                                        "trace_id": record.trace_id.hex(),
                                    })
                if receiver.delay:
                    import time
                    time.sleep(receiver.delay)
                self.send_response(status)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def received(self) -> list[dict]:
        with self.lock:
            return list(self.records)

    def exports(self) -> int:
        with self.lock:
            return len(self.raw)

    def raw_bytes(self) -> bytes:
        with self.lock:
            return b"".join(self.raw)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
