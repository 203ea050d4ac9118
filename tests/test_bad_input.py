"""Bad input through the whole pack (envoy/demo.yaml): each case has the outcome documented in
docs/reliability.md ("Bad input"), and no case makes a filter the reason a request fails.

One Envoy serves the module (counters are compared as differences around each case). Providers
are llmock, and, for answers llmock cannot give (broken JSON, compressed bodies), a small
stdlib upstream in this file behind the route `/bad/` (the path after it is what the upstream
sees, so token accounting recognises `/bad/v1/chat/completions` as OpenAI chat).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import re
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import brotli
import h2.config
import h2.connection
import h2.events
import httpx
import jsonschema
import openai
import pytest

from conftest import LOG_SCHEMA, validate_log_line
from harness import (Envoy, add_details_log, build_config, free_port, hcm_of, http_get, post_json, raw_request,
                     read_json_lines, wait_until)

CHAT_REPLY = {"id": "chatcmpl-bad", "object": "chat.completion", "model": "gpt-4o",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "fine"}, "finish_reason": "stop"}],
              "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}
SSE_REPLY = (b'data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,'
             b'"delta":{"content":"fine"},"finish_reason":null}]}\n\n'
             b'data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,'
             b'"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
NESTED = b"[" * 10_000 + b"]" * 10_000


def bad_answer(kind: str) -> tuple[dict, bytes]:
    """(headers, body) the bad upstream sends for `x-bad: <kind>`."""
    json_ct = {"content-type": "application/json"}
    sse_ct = {"content-type": "text/event-stream"}
    ok = json.dumps(CHAT_REPLY).encode()
    return {
        "ok": (json_ct, ok),
        "malformed-json": (json_ct, b'{"id": "chatcmpl-bad", "choices": [{"message": {"content": "fi'),
        "nested-json": (json_ct, b'{"id":"chatcmpl-bad","choices":' + NESTED + b'}'),
        "invalid-utf8": (json_ct, ok.replace(b'"fine"', b'"fi\xff\xfe\xc3ne"')),
        "gzip": ({**json_ct, "content-encoding": "gzip"}, gzip.compress(ok, mtime=0)),
        "br": ({**json_ct, "content-encoding": "br"}, brotli.compress(ok)),
        "gzip-sse": ({**sse_ct, "content-encoding": "gzip"}, gzip.compress(SSE_REPLY, mtime=0)),
        "br-sse": ({**sse_ct, "content-encoding": "br"}, brotli.compress(SSE_REPLY)),
    }[kind]


class BadUpstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: dict[str, dict] = {}  # x-request-id -> what arrived

    def do_POST(self) -> None:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            parts = []
            while (size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)) > 0:
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            body = b"".join(parts)
        else:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
        self.seen[self.headers.get("x-request-id", "")] = {
            "path": self.path, "length": len(body), "sha256": hashlib.sha256(body).hexdigest()}
        headers, data = bad_answer(self.headers.get("x-bad", "ok"))
        self.send_response(200)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args) -> None:
        pass


def bad_route(port: int):
    def mutate(config: dict) -> None:
        routes = hcm_of(config)["route_config"]["virtual_hosts"][0]["routes"]
        routes.insert(0, {"name": "bad", "match": {"prefix": "/bad/"},
                          "route": {"cluster": "bad", "timeout": "60s", "prefix_rewrite": "/"}})
        config["static_resources"]["clusters"].append({
            "name": "bad", "type": "STATIC", "connect_timeout": "5s",
            "load_assignment": {"cluster_name": "bad", "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]},
        })
        add_details_log(config, Path("details.log"))
    return mutate


@pytest.fixture(scope="module")
def env(tmp_path_factory, upstream):
    upstream.reset()
    bad = ThreadingHTTPServer(("127.0.0.1", free_port()), BadUpstream)
    bad.daemon_threads = True
    threading.Thread(target=bad.serve_forever, daemon=True).start()
    workdir = tmp_path_factory.mktemp("bad-input")
    config, ports = build_config(workdir, upstream.port, mutate=bad_route(bad.server_address[1]))
    envoy = Envoy(workdir, config, ports)
    try:
        yield envoy
    finally:
        envoy.stop()
        bad.shutdown()
        bad.server_close()
        print(envoy.log_text()[-5000:])


class Stats:
    """Counter differences around one case."""

    def __init__(self, envoy: Envoy):
        self.envoy, self.before = envoy, envoy.prometheus()

    @staticmethod
    def _sum(text: str, name: str, labels: dict) -> float:
        total = 0.0
        for m in re.finditer(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$", text, re.M):
            series = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
            if m.group(1) == name and all(series.get(k) == v for k, v in labels.items()):
                total += float(m.group(3))
        return total

    def delta(self, name: str, **labels: str) -> float:
        return self._sum(self.envoy.prometheus(), name, labels) - self._sum(self.before, name, labels)


def rid() -> str:
    return uuid.uuid4().hex


def line_for(envoy: Envoy, request_id: str, timeout: float = 10) -> dict:
    """The one access-log line of a request, schema-checked."""
    found = wait_until(lambda: [l for l in envoy.access_log() if l.get("llmobs.request_id") == request_id],
                       timeout, f"the access-log line of {request_id}")
    assert len(found) == 1, found
    validate_log_line(found[0])
    return found[0]


def details_for(envoy: Envoy, request_id: str) -> dict:
    found = wait_until(lambda: [d for d in read_json_lines(envoy.tmp / "details.log") if d["request_id"] == request_id],
                       10, f"Envoy's details of {request_id}")
    return found[0]


def assert_no_filter_failure(envoy: Envoy, request_id: str) -> None:
    """Envoy is up, and the response was not a filter's local reply nor a filter-caused 5xx."""
    assert envoy.proc.poll() is None
    details = details_for(envoy, request_id)
    assert not details["details"].startswith(("wasm", "llmobs")), details
    assert details["status"] < 500 or details["details"] == "via_upstream", details


# -- malformed, nested and invalid UTF-8 JSON ---------------------------------------------------

# body -> whether token accounting's scanner (which reads only the fields it needs) counts a
# parse failure. The PII filter parses the whole body (serde_json, nesting limit 128): it can
# read none of them.
REQUEST_BODIES = {
    "malformed": (b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"', True),
    "nested": (b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"metadata":' + NESTED + b"}", False),
    "nested_unclosed": (b"[" * 10_000, True),
    "invalid_utf8": (b'{"model":"gpt-4o","messages":[{"role":"user","content":"h\xff\xfei \xc3"}]}', False),
}


@pytest.mark.parametrize("kind", REQUEST_BODIES)
def test_an_unreadable_request_body_is_forwarded_unchanged_and_counted(env, kind):
    (body, accounting_fails), request_id, stats = REQUEST_BODIES[kind], rid(), Stats(env)
    status, _, reply = post_json(env.url + "/bad/v1/chat/completions", body, {"x-request-id": request_id})
    assert status == 200, reply[:200]
    received = BadUpstream.seen[request_id]
    assert (received["length"], received["sha256"]) == (len(body), hashlib.sha256(body).hexdigest())
    assert stats.delta("llmobs_pii_skipped", direction="request", reason="not_json") == 1
    assert stats.delta("llmobs_token_accounting_parse_failures", reason="request_json") == int(accounting_fails)
    line = line_for(env, request_id)
    assert line["http.response.status_code"] == 200 and "error.type" not in line
    assert line.get("gen_ai.request.model") == (None if accounting_fails else "gpt-4o")
    assert_no_filter_failure(env, request_id)


# kind -> whether token accounting counts a parse failure (else it reads the usage). Invalid
# UTF-8 inside a string value does not stop its scanner; the PII filter reads none of them.
RESPONSE_KINDS = {"malformed-json": True, "nested-json": True, "invalid-utf8": False}


@pytest.mark.parametrize("kind", RESPONSE_KINDS)
def test_an_unreadable_response_body_reaches_the_client_unchanged_and_is_counted(env, kind):
    request_id, stats = rid(), Stats(env)
    status, _, reply = post_json(env.url + "/bad/v1/chat/completions",
                                 {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
                                 {"x-request-id": request_id, "x-bad": kind})
    assert status == 200
    assert reply == bad_answer(kind)[1]
    assert stats.delta("llmobs_token_accounting_parse_failures", reason="response_json") == int(RESPONSE_KINDS[kind])
    assert stats.delta("llmobs_pii_skipped", direction="response", reason="not_json") == 1
    line = line_for(env, request_id)
    assert line["llmobs.usage_source"] == ("missing" if RESPONSE_KINDS[kind] else "provider")
    assert "error.type" not in line
    assert_no_filter_failure(env, request_id)


# -- 10 MB bodies ---------------------------------------------------------------------------

# With a content-length the filters decide at the headers; a chunked body of unknown length is
# decided as it grows, while Envoy buffers it: in 64 KiB writes, or in one 10 MiB write that
# reaches Envoy's socket at once, it must still pass before Envoy's 1 MiB buffer limit.
@pytest.mark.parametrize("framing", ["content-length", "chunked-64k", "chunked-one-write"])
def test_a_10_mb_request_passes_the_pack_unchanged_flagged_over_the_limit(env, upstream, framing):
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * (10 << 20)}]}).encode()
    request_id, stats = rid(), Stats(env)
    if framing == "content-length":
        status, _, reply = post_json(env.url + "/bad/v1/chat/completions", body, {"x-request-id": request_id}, timeout=60)
    else:
        piece = 64 << 10 if framing == "chunked-64k" else len(body)
        pieces = (body[i:i + piece] for i in range(0, len(body), piece))
        answer = httpx.post(env.url + "/bad/v1/chat/completions", content=pieces, timeout=60,
                            headers={"x-request-id": request_id, "content-type": "application/json"})
        status, reply = answer.status_code, answer.content
    assert status == 200, reply[:200]
    received = BadUpstream.seen[request_id]
    assert (received["length"], received["sha256"]) == (len(body), hashlib.sha256(body).hexdigest())
    assert stats.delta("llmobs_pii_skipped", direction="request", reason="over_limit") == 1
    assert stats.delta("llmobs_token_accounting_parse_failures", reason="request_over_limit") == 1
    line = line_for(env, request_id)
    assert line["llmobs.pii.outcome"] == "over_limit"
    # The response was small and readable: usage is still counted.
    assert line["gen_ai.usage.output_tokens"] == "1"
    assert_no_filter_failure(env, request_id)


def test_a_10_mb_response_reaches_the_client_whole_flagged_over_the_limit(env, upstream):
    text = "y" * (10 << 20)
    upstream.scenario({"type": "reply", "text": text, "match": {"model": "ten-mb-reply"}})
    request_id, stats = rid(), Stats(env)
    status, _, reply = post_json(env.url + "/v1/chat/completions",
                                 {"model": "ten-mb-reply", "messages": [{"role": "user", "content": "hi"}]},
                                 {"x-request-id": request_id}, timeout=60)
    assert status == 200
    assert json.loads(reply)["choices"][0]["message"]["content"] == text
    assert stats.delta("llmobs_pii_skipped", direction="response", reason="over_limit") == 1
    assert stats.delta("llmobs_token_accounting_parse_failures", reason="response_over_limit") == 1
    line = line_for(env, request_id)
    assert line["llmobs.usage_source"] == "missing" and "error.type" not in line
    assert_no_filter_failure(env, request_id)


# -- compressed responses -------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["gzip", "br", "gzip-sse", "br-sse"])
def test_a_compressed_response_reaches_the_client_byte_for_byte_and_is_counted_not_misread(env, kind):
    request_id, stats = rid(), Stats(env)
    with httpx.Client(timeout=20) as client:
        with client.stream("POST", env.url + "/bad/v1/chat/completions",
                           json={"model": "gpt-4o", "stream": kind.endswith("sse"),
                                 "messages": [{"role": "user", "content": "hi"}]},
                           headers={"x-request-id": request_id, "x-bad": kind}) as r:
            raw = b"".join(r.iter_raw())
            encoding = r.headers["content-encoding"]
    headers, sent = bad_answer(kind)
    assert raw == sent and encoding == headers["content-encoding"]
    decoded = gzip.decompress(raw) if encoding == "gzip" else brotli.decompress(raw)
    assert b"fine" in decoded
    assert stats.delta("llmobs_token_accounting_parse_failures", reason="compressed") == 1
    assert stats.delta("llmobs_pii_skipped", direction="response", reason="compressed") == 1
    line = line_for(env, request_id)
    assert line["llmobs.usage_source"] == "missing" and "error.type" not in line
    assert_no_filter_failure(env, request_id)


# -- HTTP/2 ---------------------------------------------------------------------------------

def h2_exchange(port: int, path: str, body: bytes, headers: list, trailers: list) -> tuple[int, bytes]:
    """One HTTP/2 (cleartext, prior knowledge) request whose body ends in trailers."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        conn.initiate_connection()
        stream = conn.get_next_available_stream_id()
        conn.send_headers(stream, [(":method", "POST"), (":path", path), (":scheme", "http"),
                                   (":authority", "127.0.0.1"), ("content-type", "application/json"), *headers])
        conn.send_data(stream, body)
        conn.send_headers(stream, trailers, end_stream=True)
        sock.sendall(conn.data_to_send())
        status, data, ended = 0, b"", False
        while not ended:
            chunk = sock.recv(65536)
            if not chunk:
                break
            for event in conn.receive_data(chunk):
                if isinstance(event, h2.events.ResponseReceived):
                    status = int(dict(event.headers)[":status"])
                elif isinstance(event, h2.events.DataReceived):
                    data += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                    ended = True
            sock.sendall(conn.data_to_send())
    return status, data


def test_an_http2_request_ending_in_trailers_passes_as_uninspectable_and_is_counted(env, upstream):
    request_id, stats = rid(), Stats(env)
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).encode()
    status, data = h2_exchange(env.port, "/v1/chat/completions", body, [("x-request-id", request_id)],
                               [("x-checksum", "abc")])
    assert status == 200, data[:200]
    assert json.loads(data)["choices"][0]["message"]["content"]
    # The filter never sees the end of a body that ends in trailers: uninspectable, and the demo's
    # `uninspectable: pass` forwards it counted.
    assert stats.delta("llmobs_pii_skipped", direction="request", reason="trailers") == 1
    line = line_for(env, request_id)
    assert line["gen_ai.usage.output_tokens"] and "error.type" not in line
    assert_no_filter_failure(env, request_id)


def envoy_rss_kib(envoy: Envoy) -> int:
    status = Path(f"/proc/{envoy.proc.pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1))


def test_a_thousand_concurrent_streams_all_complete_and_are_each_counted_once(env, upstream):
    n = 1000
    ids = [rid() for _ in range(n)]
    stats, rss_before = Stats(env), envoy_rss_kib(env)

    async def one(client: openai.AsyncOpenAI, request_id: str) -> str:
        stream = await client.chat.completions.create(model="concurrent", stream=True, extra_headers={
            "x-request-id": request_id}, messages=[{"role": "user", "content": "hi"}])
        return "".join([chunk.choices[0].finish_reason or "" async for chunk in stream if chunk.choices])

    peak_kib, peak_active = rss_before, 0
    # Every stream waits 2 s for its first chunk, so they are open at the same time.
    upstream.scenario({"type": "slow_first_token", "seconds": 2, "times": n,
                       "match": {"model": "concurrent", "stream": True}})

    async def sample() -> None:
        nonlocal peak_kib, peak_active
        while True:
            peak_kib = max(peak_kib, envoy_rss_kib(env))
            stats = http_get(env.admin + "/stats?filter=^http.llm_egress.downstream_rq_active$")[1].decode()
            peak_active = max(peak_active, int(stats.split(":")[-1]))
            await asyncio.sleep(0.2)

    async def main() -> list[str]:
        # The official SDK over HTTP/2 (prior knowledge), streams multiplexed as a busy sidecar
        # sees them: httpx opens at most 100 streams on one connection, so ten clients of one
        # connection each.
        sampler = asyncio.create_task(sample())
        transports = [httpx.AsyncClient(http1=False, http2=True, limits=httpx.Limits(max_connections=1), timeout=120)
                      for _ in range(10)]
        clients = [openai.AsyncOpenAI(base_url=env.url + "/v1", api_key="sk-test", max_retries=0, http_client=t)
                   for t in transports]
        try:
            return await asyncio.gather(*(one(clients[k % 10], i) for k, i in enumerate(ids)))
        finally:
            sampler.cancel()
            for transport in transports:
                await transport.aclose()

    started = time.monotonic()
    finishes = asyncio.run(main())
    assert finishes == ["stop"] * n, "every stream ended with its finish reason"
    wanted = set(ids)
    lines = wait_until(lambda: len(found := [l for l in env.access_log()
                                             if l.get("llmobs.request_id") in wanted]) >= n and found,
                       30, f"{n} access-log lines")
    assert sorted(l["llmobs.request_id"] for l in lines) == sorted(ids)
    assert {l["llmobs.stream_outcome"] for l in lines} == {"completed"}
    assert stats.delta("llmobs_token_accounting_requests", stream_outcome="completed") == n
    assert stats.delta("llmobs_correlation_requests") == n
    assert stats.delta("envoy_http_downstream_rq_total", envoy_http_conn_manager_prefix="llm_egress") == n
    peak_mib, after_mib = (peak_kib - rss_before) / 1024, (envoy_rss_kib(env) - rss_before) / 1024
    print(f"{n} streams in {time.monotonic() - started:.1f}s, {peak_active} open at once; Envoy RSS "
          f"+{peak_mib:.0f} MiB at the peak, +{after_mib:.0f} MiB after")
    assert peak_active >= n // 2, "the streams were open at the same time"
    # Bounds with a wide margin over what was measured (docs/reliability.md): a per-stream leak
    # of 256 KiB, or buffering whole streams, would cross them.
    assert peak_mib < 256 and after_mib < 128, "memory stays bounded under 1000 concurrent streams"
    assert env.proc.poll() is None


# -- a client that leaves ---------------------------------------------------------------------

def test_a_client_that_hangs_up_mid_stream_is_logged_as_client_cancelled(env, upstream):
    request_id = rid()
    # The stream pauses after two chunks, so the client leaves while it is open.
    upstream.scenario({"type": "stream_fault", "kind": "stall", "after_chunks": 2, "stall_seconds": 3,
                       "match": {"model": "hang-up"}})
    body = json.dumps({"model": "hang-up", "stream": True, "messages": [{"role": "user", "content": "hi"}]}).encode()
    with socket.create_connection(("127.0.0.1", env.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                     b"x-request-id: " + request_id.encode() + b"\r\ncontent-length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)
        seen = b""
        while seen.count(b"data: ") < 2:
            seen += sock.recv(4096)
    line = line_for(env, request_id)
    assert line["http.response.status_code"] == 200
    assert "DC" in line["envoy.response_flags"]
    assert (line["llmobs.stream_outcome"], line["llmobs.error"]) == ("client_cancelled", "true")
    assert env.proc.poll() is None and http_get(env.admin + "/ready")[0] == 200


# -- headers --------------------------------------------------------------------------------

def raw_post(env: Envoy, extra_headers: bytes, body: bytes = b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}') -> bytes:
    return raw_request(env.port, b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nconnection: close\r\n"
                       b"content-type: application/json\r\n"
                       + extra_headers + b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def test_control_characters_in_headers_are_refused_by_envoy_or_never_reach_a_log_raw(env, upstream):
    log_lines_before = len(env.access_log())
    answers = {}
    for name, value in [(b"x-request-id", b"abc\x1bdef"), (b"x-conversation-id", b"conv\x00x"),
                        (b"x-llmobs-tenant", b"acme\x7f"), (b"x-llmobs-tenant", b"acme\x01\x02")]:
        answers[(name, value)] = raw_post(env, name + b": " + value + b"\r\n").split(b"\r\n", 1)[0]
    # Envoy's HTTP/1 codec refuses control characters other than tab in a header value itself.
    assert all(status.startswith(b"HTTP/1.1 400") for status in answers.values()), answers

    # Tab and bytes above 0x7f are legal in a header value: they reach the filters, which replace
    # invalid ids and keep labels bounded.
    request_id_with_tab = "abc\tdef"
    status = raw_post(env, b"x-request-id: abc\tdef\r\nx-conversation-id: conv\t1\r\n"
                           b"x-llmobs-tenant: caf\xc3\xa9\tcorp\r\n").split(b"\r\n", 1)[0]
    assert status.startswith(b"HTTP/1.1 200"), status
    lines = wait_until(lambda: (l := env.access_log()) and len(l) >= log_lines_before + 5 and l, 10, "5 lines")
    new = lines[log_lines_before:]
    assert len(new) == 5
    refused, last = new[:4], new[4]
    # Envoy's own refusals are logged too (downstream protocol error), before any filter ran:
    # no method, no filter field.
    assert all((l["http.response.status_code"], l["envoy.response_flags"]) == (400, "DPE") for l in refused), refused
    assert all(not any(k.startswith(("llmobs.", "gen_ai.")) for k in l) for l in refused), refused
    for line in refused:
        validate_log_line(line)
    validate_log_line(last)
    assert re.fullmatch(r"[0-9a-f]{32}", last["llmobs.request_id"]), last
    assert last["llmobs.ids_replaced"] == "request_id,conversation_id"
    # The tenant header is validated like an id: an invalid value is neither a label nor logged;
    # the line says `unknown`, as the metrics do.
    assert last["llmobs.tenant"] == "unknown"
    assert request_id_with_tab not in env.access_log_path.read_text()
    for path in (env.access_log_path, env.log_path):
        text = path.read_bytes()
        assert not re.search(rb"[\x00-\x08\x0b-\x1f\x7f]", text), path


def test_the_log_schema_lets_only_a_protocol_error_line_go_without_a_method_or_filter_fields():
    refused = {"timestamp": "2026-11-27T08:00:00.000Z", "http.response.status_code": 400,
               "duration_ms": 0, "envoy.response_flags": "DPE"}
    validate_log_line(refused)
    for wrong in ({**refused, "envoy.response_flags": "-"},
                  {**refused, "envoy.response_flags": "UT"},
                  {**refused, "llmobs.request_id": "0" * 32},
                  {**refused, "gen_ai.request.model": "gpt-4o-mini"}):
        assert not jsonschema.Draft202012Validator(LOG_SCHEMA).is_valid(wrong), wrong


def test_a_logged_value_with_control_characters_cannot_forge_a_log_line(env, upstream):
    """JSON escapes let a body carry any control character in a value the filters copy into
    the log (the model name): each access-log line stays one JSON object, and no raw control
    character reaches Envoy's own log."""
    request_id = rid()
    model = 'gpt-4o\n{"forged": true}\r\u001b[2J\u0000\u2028end'
    status, _, _ = post_json(env.url + "/v1/chat/completions",
                             {"model": model, "messages": [{"role": "user", "content": "hi"}]},
                             {"x-request-id": request_id})
    assert status == 200
    line = line_for(env, request_id)
    assert "forged" not in line  # one object, not two
    text = env.access_log_path.read_bytes()
    assert not re.search(rb"[\x00-\x08\x0b-\x1f\x7f]", text)
    assert not any(l.lstrip().startswith(b'{"forged"') for l in text.split(b"\n"))
    # U+2028 is legal raw inside a JSON string and Envoy writes it so: split lines at \n only.
    assert text.count(b"\n") == len(env.access_log())
    log = env.log_path.read_bytes()
    assert b"\x1b" not in log and b"\x00" not in log
    assert not any(l.lstrip().startswith(b'{"forged"') for l in log.split(b"\n"))


def test_oversized_baggage_is_cut_to_the_w3c_limits_and_only_the_allowed_key_leaves(env, upstream):
    request_id, stats = rid(), Stats(env)
    members = ["tenant=acme"] + [f"k{i}={'v' * 90}" for i in range(200)]  # 201 members, about 19 KB
    status, _, _ = post_json(env.url + "/v1/chat/completions",
                             {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
                             {"x-request-id": request_id, "baggage": ",".join(members)})
    assert status == 200
    seen = [r for r in upstream.seen() if r["header_map"].get("x-request-id") == request_id]
    assert seen[0]["header_map"]["baggage"] == "tenant=acme"
    assert stats.delta("llmobs_correlation_baggage_members_stripped", reason="over_limit") > 0
    assert (stats.delta("llmobs_correlation_baggage_members_stripped", reason="over_limit")
            + stats.delta("llmobs_correlation_baggage_members_stripped", reason="policy")) == 200
    line_for(env, request_id)

    # Past Envoy's own header limit (60 KiB by default) Envoy answers 431 before any filter.
    huge = raw_post(env, b"baggage: " + b",".join(b"k%d=%s" % (i, b"v" * 200) for i in range(400)) + b"\r\n")
    assert huge.startswith(b"HTTP/1.1 431"), huge[:100]
    assert env.proc.poll() is None
