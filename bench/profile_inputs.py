"""Writes the in-Envoy benchmark's inputs for the native profile of the bundle
(filters/core/examples/bundle_profile.rs): the bundle's configuration (the demo's sections, as
bench/pack.py configures the bundle in Envoy) and, per workload, the request as Envoy hands it to
the filter and the response exactly as the fast upstream writes it (one piece per write).

    .venv/bin/python bench/profile_inputs.py DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pack  # noqa: E402
from envoy_pii import chat_body as pii_chat_body  # noqa: E402
from responses import PROVIDERS, SSE_EVENTS, SSE_EVENTS_PER_WRITE, small_chat, sse_events  # noqa: E402


def request_headers(body: bytes, path: str = "/v1/chat/completions") -> list[list[str]]:
    # What Envoy's router sees from wrk: its own x-request-id and x-forwarded-proto added.
    return [[":method", "POST"], [":path", path], [":authority", "bench"],
            [":scheme", "http"], ["content-type", "application/json"], ["content-length", str(len(body))],
            ["x-forwarded-proto", "http"], ["x-request-id", "6b3f2a9e-1c4d-4f1b-9a7e-2d5c8e0f1a2b"]]


def anthropic_stream() -> tuple[bytes, dict, list[bytes]]:
    """The recorded Anthropic stream with its text deltas repeated to SSE_EVENTS events, in
    writes of SSE_EVENTS_PER_WRITE events after the first."""
    fixture = PROVIDERS / "anthropic-messages-stream"
    meta = json.loads((fixture / "meta.json").read_text())
    events = [e + b"\n\n" for e in (fixture / "response.sse").read_bytes().split(b"\n\n") if e.strip()]
    deltas = [i for i, e in enumerate(events) if b"content_block_delta" in e]
    head, middle, tail = events[:deltas[0]], events[deltas[0]:deltas[-1] + 1], events[deltas[-1] + 1:]
    count = SSE_EVENTS - len(head) - len(tail)
    events = head + [middle[i % len(middle)] for i in range(count)] + tail
    pieces = [events[0]] + [b"".join(events[i:i + SSE_EVENTS_PER_WRITE])
                            for i in range(1, len(events), SSE_EVENTS_PER_WRITE)]
    return (fixture / meta["request_file"]).read_bytes(), meta, pieces


def main(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    demo = pack.demo_filter_configs()
    config = {pack.BUNDLE_SECTIONS[name]: demo[name] for name in pack.FILTERS}
    (directory / "config.json").write_text(json.dumps(config))
    plain = json.loads((PROVIDERS / "openai-chat-plain" / "meta.json").read_text())
    stream = json.loads((PROVIDERS / "openai-chat-stream-usage" / "meta.json").read_text())
    chat_response = (PROVIDERS / "openai-chat-plain" / "response.json").read_bytes()
    events = sse_events()
    sse_pieces = [events[0]] + [b"".join(events[i:i + SSE_EVENTS_PER_WRITE])
                                for i in range(1, len(events), SSE_EVENTS_PER_WRITE)]
    workloads = {
        "chat": (small_chat(), plain, [chat_response]),
        "pii16k": (pii_chat_body(True), plain, [chat_response]),
        "sse": (small_chat(stream=True), stream, sse_pieces),
        # Not an Envoy workload: a stream of another wire (each event read without the chat
        # fast path), the same size as `sse`.
        "sse_anthropic": anthropic_stream(),
    }
    manifest = {}
    for name, (body, meta, pieces) in workloads.items():
        (directory / f"{name}.request").write_bytes(body)
        files = []
        for i, piece in enumerate(pieces):
            f = f"{name}.response.{i}"
            (directory / f).write_bytes(piece)
            files.append(f)
        response_headers = [[":status", "200"]] + [[k.lower(), v] for k, v in meta["response_headers"].items()
                                                  if k.lower() not in ("content-length", "transfer-encoding")]
        manifest[name] = {"request_headers": request_headers(body, meta["path"]), "request": f"{name}.request",
                          "response_headers": response_headers, "response": files}
    (directory / "workloads.json").write_text(json.dumps(manifest, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
