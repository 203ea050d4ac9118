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
