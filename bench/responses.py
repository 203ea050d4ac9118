"""What the fast upstream (bench/fast-upstream) serves, and the requests sent to it through Envoy.

Responses are prepared here, from the recorded exchanges in tests/fixtures/, as the exact bytes
of each write (`<name>.<n>` files), so the Rust server only copies bytes:

- `chat`: tests/fixtures/providers/openai-chat-plain (OpenAI Chat Completions JSON), with a
  content-length, one write;
- `sse`: an OpenAI Chat stream of SSE_EVENTS events built from openai-chat-stream-usage (its role
  event, its content events repeated in order, its finish event, its usage event, `data: [DONE]`),
  chunked like a provider: headers and the first event in the first write, then one chunk of
  SSE_EVENTS_PER_WRITE events per write;
- every other provider fixture under its folder name (streams chunked, 512 bytes per write), and
  every upstream error case of tests/fixtures/errors/cases.json as `err-<name>` (for the soak).
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROVIDERS = ROOT / "tests" / "fixtures" / "providers"
ERRORS = ROOT / "tests" / "fixtures" / "errors" / "cases.json"
SSE_EVENTS = 200
SSE_EVENTS_PER_WRITE = 10
STREAM_WRITE_BYTES = 512
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           408: "Request Timeout", 413: "Payload Too Large", 422: "Unprocessable Entity", 424: "Failed Dependency",
           429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
           504: "Gateway Timeout", 529: "Overloaded"}
# Framing is ours: the fixture's own framing headers would contradict it.
FRAMING = {"content-length", "transfer-encoding", "connection"}


def _head(status: int, headers: dict, framing: str) -> bytes:
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() not in FRAMING]
    lines.append(framing)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def fixed(status: int, headers: dict, body: bytes) -> list[bytes]:
    return [_head(status, headers, f"content-length: {len(body)}") + body]


def chunked(status: int, headers: dict, pieces: list[bytes]) -> list[bytes]:
    writes = [_head(status, headers, "transfer-encoding: chunked") + _chunk(pieces[0])]
    writes += [_chunk(p) for p in pieces[1:]]
    writes[-1] += b"0\r\n\r\n"
    return writes


def sse_events() -> list[bytes]:
    """SSE_EVENTS events, each `data: ...\\n\\n`; usage and `[DONE]` at the end."""
    source = (PROVIDERS / "openai-chat-stream-usage" / "response.sse").read_bytes()
    events = [e + b"\n\n" for e in source.split(b"\n\n") if e.strip()]
    role, content, finish, usage, done = events[0], events[1:-3], events[-3], events[-2], events[-1]
    assert done.strip() == b"data: [DONE]" and b'"usage":{' in usage and b'"finish_reason":"stop"' in finish
    middle = [content[i % len(content)] for i in range(SSE_EVENTS - 4)]
    return [role, *middle, finish, usage, done]


def sse_response() -> list[bytes]:
    meta = json.loads((PROVIDERS / "openai-chat-stream-usage" / "meta.json").read_text())
    events = sse_events()
    pieces = [events[0]] + [b"".join(events[i:i + SSE_EVENTS_PER_WRITE])
                            for i in range(1, len(events), SSE_EVENTS_PER_WRITE)]
    return chunked(200, meta["response_headers"], pieces)


def fixture_cases() -> dict[str, dict]:
    """Provider fixtures: name -> meta (with `body` and `request` bytes)."""
    cases = {}
    for meta_file in sorted(PROVIDERS.glob("*/meta.json")):
        meta = json.loads(meta_file.read_text())
        meta["body"] = (meta_file.parent / meta["response_file"]).read_bytes()
        meta["request"] = (meta_file.parent / meta["request_file"]).read_bytes()
        cases[meta_file.parent.name] = meta
    return cases


def error_cases() -> list[dict]:
    """The upstream error replies of tests/fixtures/errors (Envoy's own replies left out)."""
    return [c for c in json.loads(ERRORS.read_text()) if c["code_details"] == "via_upstream"]


def write_responses(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    chat = json.loads((PROVIDERS / "openai-chat-plain" / "meta.json").read_text())
    prepared = {
        "chat": fixed(200, chat["response_headers"], (PROVIDERS / "openai-chat-plain" / "response.json").read_bytes()),
        "sse": sse_response(),
    }
    for name, meta in fixture_cases().items():
        if meta["expected"].get("stream"):
            body = meta["body"]
            pieces = [body[i:i + STREAM_WRITE_BYTES] for i in range(0, len(body), STREAM_WRITE_BYTES)]
            prepared[name] = chunked(meta["status"], meta["response_headers"], pieces)
        else:
            prepared[name] = fixed(meta["status"], meta["response_headers"], meta["body"])
    for case in error_cases():
        prepared["err-" + case["name"]] = fixed(case["status"], case["headers"], case["body"].encode())
    for name, writes in prepared.items():
        for i, w in enumerate(writes):
            (directory / f"{name}.{i}").write_bytes(w)


PROSE = ("The quarterly report covers revenue, churn and the roadmap for the next two releases. "
         "Please summarise the main risks, list open questions for the finance team, and suggest "
         "three follow-ups with owners and dates. Keep the tone neutral and the answer short. ")


def small_chat(stream: bool = False) -> bytes:
    """A ~1 KiB OpenAI chat request (no PII); `stream` asks for SSE with usage."""
    body = {"model": "gpt-4o-mini", "max_tokens": 256,
            "messages": [{"role": "system", "content": "You are a concise analyst. Answer in plain English."},
                         {"role": "user", "content": (PROSE * 4)[:800]}]}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body).encode()
