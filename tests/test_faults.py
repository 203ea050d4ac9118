"""Every llmock fault kind on every provider wire llmock speaks, plain and streaming, through the
whole pack in one Envoy (docs/reliability.md, "Fault injection").

Faults are injected per request through llmock's scenario API, each behaviour matched to one
request by a model name of its own, so the whole matrix runs concurrently against one Envoy, as
production traffic would. The module fixture sends every case once and keeps what each client
saw; the tests then read the per-case outcome, the access log (one line per request), the
response details Envoy recorded, and the counters.

`PACKS` is a fixture parameter: a packaging of the filters is a config mutation of the demo.
"""

from __future__ import annotations

import concurrent.futures
import functools
import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

import jsonschema

from conftest import LOG_SCHEMA
from harness import (DIST, Envoy, _find_http_filters, add_details_log, build_config, hcm_of, http_get,
                     read_json_lines)

SHORT_TIMEOUT_HEADER = "x-test-short-timeout"
LOG_LINE = jsonschema.Draft202012Validator(LOG_SCHEMA)  # compiled once for the 200-odd lines
REPLY = "one two three four five six seven eight nine ten"


# -- packagings of the filters -------------------------------------------------------------

def pack_of_four(config: dict) -> None:
    """The demo as shipped: four wasm filters, each in its own VM."""


def bundle(config: dict) -> None:
    """The four filters replaced by `dist/llmobs_bundle.wasm`, FAIL_CLOSED (redaction is inside),
    its configuration the four demo configurations keyed by section."""
    filters = _find_http_filters(config)
    wasm = [f for f in filters if f.get("typed_config", {}).get("config")]
    sections = {"llmobs_correlation": "correlation", "llmobs_pii_redaction": "pii_redaction",
                "llmobs_token_accounting": "token_accounting",
                "llmobs_error_normalization": "error_normalization"}
    merged = {sections[f["typed_config"]["config"]["name"]]: json.loads(f["typed_config"]["config"]["configuration"]["value"])
              for f in wasm}
    one = json.loads(json.dumps(wasm[1]))  # the PII filter's entry carries the key's host_env_keys
    cfg = one["typed_config"]["config"]
    cfg.update(name="llmobs_bundle", root_id="llmobs_bundle", failure_policy="FAIL_CLOSED")
    cfg["vm_config"]["vm_id"] = "llmobs_bundle"
    cfg["vm_config"]["code"]["local"]["filename"] = str(DIST / "llmobs_bundle.wasm")
    cfg["configuration"]["value"] = json.dumps(merged)
    one["name"] = "llmobs.bundle"
    filters[:] = [one] + [f for f in filters if not f.get("typed_config", {}).get("config")]


PACKS = [("pack", pack_of_four), ("bundle", bundle)]


def matrix_routes(config: dict) -> None:
    """Routes for every llmock wire (the demo routes OpenAI, Anthropic and Gemini only), and a
    1 s route timeout selected by a header, for faults that must outlast Envoy's patience."""
    routes = hcm_of(config)["route_config"]["virtual_hosts"][0]["routes"]
    routes.insert(0, {"name": "short_timeout",
                      "match": {"prefix": "/", "headers": [{"name": SHORT_TIMEOUT_HEADER, "present_match": True}]},
                      "route": {"cluster": "llmock", "timeout": "1s"}})
    routes.append({"name": "compatible", "match": {"prefix": "/"}, "route": {"cluster": "llmock", "timeout": "300s"}})
    add_details_log(config, Path("details.log"))


# -- the wires ------------------------------------------------------------------------------

@dataclass
class Sent:
    """What one client saw."""
    status: int | None = None  # None: no status (the transport failed before headers)
    client_error: str = ""  # exception class the client raised, if any
    text: str = ""


OPENAI_COMPATIBLE = {"openai": "/v1", "mistral": "/mistral/v1", "groq": "/groq/openai/v1",
                     "together": "/together/v1", "perplexity": "/perplexity/v1", "ai21": "/ai21/v1",
                     "xai": "/xai/v1"}


def _sdk_call(sent: Sent, call, stream: bool, pieces) -> None:
    try:
        result = call()
        sent.status = 200
        if stream:
            for event in result:
                sent.text += pieces(event)
        else:
            sent.text = pieces(result)
    except (openai.APIStatusError, anthropic.APIStatusError) as err:
        sent.status, sent.client_error = err.status_code, type(err).__name__
    except Exception as err:  # transport errors and raw decode errors (llmock README)
        sent.client_error = type(err).__name__


@functools.cache
def client_for(base: str, wire: str):
    """One client per wire, shared by the threads (the SDK clients are thread-safe); building one
    per request costs more than the request."""
    if wire == "anthropic":
        return anthropic.Anthropic(base_url=base + "/anthropic", api_key="sk-ant-test", max_retries=0, timeout=20)
    if wire in ("gemini", "cohere", "raw"):
        return httpx.Client(timeout=20)
    return openai.OpenAI(base_url=base + OPENAI_COMPATIBLE.get(wire, "/v1"), api_key="sk-test", max_retries=0, timeout=20)


def send_openai(base: str, wire: str, model: str, stream: bool, headers: dict) -> Sent:
    oa = client_for(base, wire)
    sent = Sent()
    if wire == "responses":
        _sdk_call(sent, lambda: oa.responses.create(model=model, input="hi", stream=stream, extra_headers=headers),
                  stream, lambda e: getattr(e, "delta", "") if stream else e.output_text)
    else:
        _sdk_call(sent, lambda: oa.chat.completions.create(model=model, stream=stream, extra_headers=headers,
                                                           messages=[{"role": "user", "content": "hi"}]),
                  stream, lambda e: (e.choices[0].delta.content or "") if (stream and e.choices)
                  else ("" if stream else e.choices[0].message.content))
    return sent


def send_anthropic(base: str, wire: str, model: str, stream: bool, headers: dict) -> Sent:
    an = client_for(base, wire)
    sent = Sent()
    _sdk_call(sent, lambda: an.messages.create(model=model, max_tokens=64, stream=stream, extra_headers=headers,
                                               messages=[{"role": "user", "content": "hi"}]),
              stream, lambda e: (getattr(getattr(e, "delta", None), "text", "") or "") if stream else e.content[0].text)
    return sent


def raw_request(wire: str, model: str, stream: bool) -> tuple[str, dict]:
    """The path and body each wire's SDK would send."""
    messages = [{"role": "user", "content": "hi"}]
    if wire == "gemini":
        return (f"/gemini/v1beta/models/{model}:" + ("streamGenerateContent?alt=sse" if stream else "generateContent"),
                {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    if wire == "cohere":
        return "/cohere/v2/chat", {"model": model, "stream": stream, "messages": messages}
    if wire == "anthropic":
        return "/anthropic/v1/messages", {"model": model, "max_tokens": 64, "stream": stream, "messages": messages}
    if wire == "responses":
        return "/v1/responses", {"model": model, "input": "hi", "stream": stream}
    return OPENAI_COMPATIBLE[wire] + "/chat/completions", {"model": model, "stream": stream, "messages": messages}


TOOL_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def tools_for(wire: str) -> list:
    """One offered tool, in the wire's own shape."""
    if wire == "anthropic":
        return [{"name": "get_weather", "description": "weather", "input_schema": TOOL_SCHEMA}]
    if wire == "responses":
        return [{"type": "function", "name": "get_weather", "parameters": TOOL_SCHEMA}]
    if wire == "gemini":
        return [{"functionDeclarations": [{"name": "get_weather", "parameters": TOOL_SCHEMA}]}]
    return [{"type": "function", "function": {"name": "get_weather", "description": "weather", "parameters": TOOL_SCHEMA}}]


def send_raw(base: str, wire: str, model: str, stream: bool, headers: dict, tools: bool = False) -> Sent:
    """Plain HTTP, reading to the end whatever arrives: Gemini and Cohere (no official SDK in
    the pinned set), and a corrupted stream, on which the official SDKs raise and hang up
    (llmock's README) where a lenient client reads on."""
    path, body = raw_request(wire, model, stream)
    if tools:
        body["tools"] = tools_for(wire)
    sent = Sent()
    try:
        with client_for(base, "raw").stream("POST", base + path, json=body, headers=headers) as r:
            sent.status = r.status_code
            sent.text = "".join(r.iter_text())
    except httpx.HTTPError as err:
        sent.client_error = type(err).__name__
    return sent


WIRES = {"openai": send_openai, "responses": send_openai, "anthropic": send_anthropic, "gemini": send_raw,
         "cohere": send_raw, **{w: send_openai for w in OPENAI_COMPATIBLE if w != "openai"}}
# What token accounting reads: OpenAI-compatible servers speak the OpenAI wire on the same paths
# (their own provider name needs `providers` configuration); Cohere's API is not recognised.
PROVIDER_LABEL = {"openai": "openai", "responses": "openai", "anthropic": "anthropic", "gemini": "gcp.gemini",
                  "cohere": "_OTHER", **{w: "openai" for w in OPENAI_COMPATIBLE}}
RECOGNISED = {w for w, p in PROVIDER_LABEL.items() if p != "_OTHER"}


# -- the faults -----------------------------------------------------------------------------

def context_overflow(wire: str) -> dict:
    """The provider's own "prompt too long" answer, worded as llmock's --context-window writes it."""
    if wire == "anthropic":
        return {"type": "fail", "status": 400, "message": "prompt is too long: 9000 tokens > 8000 maximum"}
    if wire == "gemini":
        return {"type": "fail", "status": 400,
                "message": "The input token count (9000) exceeds the maximum number of tokens allowed (8000)."}
    return {"type": "fail", "status": 400, "code": "context_length_exceeded",
            "message": "This model's maximum context length is 8000 tokens. However, your messages resulted in 9000 tokens."}


@dataclass(frozen=True)
class Fault:
    name: str
    behaviour: object  # dict, or wire -> dict
    streaming_only: bool = False
    short_timeout: bool = False
    status: int = 200  # the status the client gets
    error_type: str | None = None  # the normalized class in the access log (None: no error)
    envoy_reply: bool = False  # the status is Envoy's own (timeout), not the upstream's
    cut: bool = False  # the stream breaks after its 200
    tools: bool = False  # the request offers a tool (llmock's tool faults wait for one)

    def behaviours(self, wire: str, model: str) -> list[dict]:
        b = self.behaviour(wire) if callable(self.behaviour) else dict(self.behaviour)
        return [{**b, "match": {"model": model}}]


FAULTS = [
    Fault("http_401", {"type": "fail", "status": 401}, status=401, error_type="invalid_api_key"),
    Fault("http_500", {"type": "fail", "status": 500}, status=500, error_type="internal"),
    Fault("http_503", {"type": "fail", "status": 503}, status=503, error_type="upstream_unavailable"),
    Fault("rate_limit_retry_after", {"type": "fail", "status": 429, "retry_after": 2}, status=429, error_type="rate_limit"),
    Fault("context_overflow", context_overflow, status=400, error_type="context_length_exceeded"),
    Fault("delay", {"type": "delay", "seconds": 0.2}),
    # Past the 1 s route, and short enough that llmock has finished with them when its journal
    # is read (it waits 2 s for requests in flight).
    Fault("delay_past_route_timeout", {"type": "delay", "seconds": 1.5}, short_timeout=True, status=504,
          error_type="timeout", envoy_reply=True),
    Fault("slow_first_token", {"type": "slow_first_token", "seconds": 0.2}, streaming_only=True),
    Fault("disconnect", {"type": "stream_fault", "kind": "disconnect", "after_chunks": 2}, streaming_only=True,
          error_type="stream_interrupted", cut=True),
    Fault("truncate", {"type": "stream_fault", "kind": "truncate", "after_chunks": 2}, streaming_only=True,
          error_type="stream_interrupted", cut=True),
    Fault("malformed_chunk", {"type": "stream_fault", "kind": "malformed", "after_chunks": 2}, streaming_only=True),
    Fault("stall", {"type": "stream_fault", "kind": "stall", "after_chunks": 2, "stall_seconds": 0.3},
          streaming_only=True),
    # A broken tool call inside a valid answer: content, not transport; sent as plain HTTP, as a
    # lenient client would read it.
    Fault("tool_malformed_arguments", {"type": "tool_fault", "kind": "malformed_arguments"}, tools=True),
    Fault("tool_unknown_tool", {"type": "tool_fault", "kind": "unknown_tool"}, tools=True),
    Fault("stall_past_route_timeout", {"type": "stream_fault", "kind": "stall", "after_chunks": 2, "stall_seconds": 1.5},
          streaming_only=True, short_timeout=True, error_type="timeout", cut=True),
]


@dataclass
class Case:
    wire: str
    fault: Fault
    stream: bool
    model: str = ""
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    sent: Sent | None = None

    @property
    def id(self) -> str:
        return f"{self.wire}-{'stream' if self.stream else 'plain'}-{self.fault.name}"

    def expected_error_type(self) -> str | None:
        """What the access log must say. Faults that only a parser of the wire can see (a
        clean early end) are invisible on a wire token accounting does not recognise."""
        if self.fault.name == "truncate" and self.wire not in RECOGNISED:
            return None
        # llmock answers Anthropic's 503 with Anthropic's `overloaded_error` body, and the
        # provider's own code decides the class.
        if self.fault.name == "http_503" and self.wire == "anthropic":
            return "overloaded"
        return self.fault.error_type


CASES = [Case(wire, fault, stream) for wire in WIRES for stream in (False, True) for fault in FAULTS
         if stream or not fault.streaming_only]
for n, c in enumerate(CASES):
    c.model = f"fault-model-{n}"


def run_case(base: str, case: Case) -> None:
    headers = {"x-request-id": case.request_id}
    if case.fault.short_timeout:
        headers[SHORT_TIMEOUT_HEADER] = "1"
    if case.fault.name == "malformed_chunk" or case.fault.tools:
        case.sent = send_raw(base, case.wire, case.model, case.stream, headers, tools=case.fault.tools)
    else:
        case.sent = WIRES[case.wire](base, case.wire, case.model, case.stream, headers)


@pytest.fixture(scope="module", params=PACKS, ids=[p[0] for p in PACKS])
def matrix(request, tmp_path_factory, upstream):
    """One Envoy per packaging; every case sent once, eight at a time."""
    upstream.reset()
    workdir = tmp_path_factory.mktemp(f"faults-{request.param[0]}")

    def mutate(config: dict) -> None:
        request.param[1](config)
        matrix_routes(config)

    config, ports = build_config(workdir, upstream.port, mutate=mutate)
    envoy = Envoy(workdir, config, ports)
    cases = [Case(c.wire, c.fault, c.stream, c.model) for c in CASES]
    try:
        for case in cases:
            behaviours = case.fault.behaviours(case.wire, case.model)
            # A fail answers before any reply is chosen; elsewhere a fixed reply gives every
            # stream enough chunks for the fault to land inside it.
            if behaviours[0]["type"] != "fail":
                behaviours.append({"type": "reply", "text": REPLY, "match": {"model": case.model}})
            upstream.scenario(*behaviours)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda c: run_case(envoy.url, c), cases))
        lines = envoy.wait_access_log(len(cases), timeout=20)
        details = read_json_lines(workdir / "details.log")
        yield {"envoy": envoy, "cases": {c.id: c for c in cases}, "lines": lines, "details": details,
               "upstream": upstream}
    finally:
        envoy.stop()
        client_for.cache_clear()


def line_of(matrix, case: Case) -> dict:
    found = [l for l in matrix["lines"] if l.get("llmobs.request_id") == case.request_id]
    assert len(found) == 1, f"{case.id}: {len(found)} access-log lines"
    return found[0]


def details_of(matrix, case: Case) -> dict:
    (found,) = [d for d in matrix["details"] if d["request_id"] == case.request_id]
    return found


# Envoy's own reasons for a 5xx or a cut after the upstream failed or was too slow; a filter's
# local reply carries its own details (`llmobs_*`, `wasm_*`) and no upstream flag.
UPSTREAM_FLAGS = {"UT", "UC", "UR", "UF", "URX", "UH", "UO", "UPE"}


@pytest.mark.parametrize("case_id", [c.id for c in CASES])
def test_each_fault_reaches_the_client_as_injected_and_is_logged_with_its_class(matrix, case_id):
    case = matrix["cases"][case_id]
    fault, sent = case.fault, case.sent
    line, details = line_of(matrix, case), details_of(matrix, case)
    LOG_LINE.validate(line)

    if fault.cut:
        # The 200 was sent before the fault: the client sees a broken or short stream.
        assert sent.status == 200 or sent.client_error, (sent, details)
        assert line["http.response.status_code"] == 200
    else:
        assert sent.status == fault.status, (sent, details)
        assert line["http.response.status_code"] == fault.status
    if fault.name == "malformed_chunk":
        assert sent.status == 200 and line["http.response.status_code"] == 200

    flags = set(line["envoy.response_flags"].split(","))
    if line["http.response.status_code"] >= 500:
        if fault.envoy_reply:
            assert flags & UPSTREAM_FLAGS and not details["details"].startswith(("wasm", "llmobs")), details
        else:
            # Exactly the injected status, passed through from the upstream.
            assert details["details"] == "via_upstream" and line["envoy.response_flags"] == "-", details
    if not fault.envoy_reply and not fault.cut:
        # The OpenAI SDK hangs up right after `[DONE]`, before the last empty chunk: Envoy flags
        # a downstream disconnect on a stream the client read whole.
        sdk_hung_up_after_the_end = (case.stream and not sent.client_error and flags == {"DC"}
                                     and details["details"] == "downstream_remote_disconnect")
        assert line["envoy.response_flags"] == "-" or sdk_hung_up_after_the_end, details

    expected = case.expected_error_type()
    assert line.get("error.type") == expected, (line, details)
    if expected:
        assert line["llmobs.error.origin"] == ("gateway" if fault.short_timeout else "upstream"), line
    if fault.name == "rate_limit_retry_after":
        assert (line["llmobs.error.retryable"], line["llmobs.error.retry_after_ms"]) == ("true", "2000")
    if case.wire in RECOGNISED:
        assert line["gen_ai.provider.name"] == PROVIDER_LABEL[case.wire]
        assert line["gen_ai.request.model"] == case.model
        if fault.cut:
            assert line["llmobs.stream_outcome"] == "upstream_cut" and line["llmobs.error"] == "true", line
        elif line["http.response.status_code"] == 200:
            assert line["llmobs.stream_outcome"] == "completed", line
    if line["http.response.status_code"] == 200 and not fault.cut and fault.name != "malformed_chunk" and not fault.tools:
        # The whole reply reached the client (raw clients see it inside the wire's framing).
        assert re.search(".*".join(REPLY.split()), sent.text, re.S), sent


def test_envoy_stays_up_through_the_whole_matrix_and_no_filter_failed(matrix):
    envoy = matrix["envoy"]
    assert envoy.proc.poll() is None
    assert http_get(envoy.admin + "/ready")[0] == 200
    log = envoy.log_text()
    assert not re.search(r"\]\[critical\]|panicked|Wasm VM failed|wasm_fail", log), \
        [l for l in log.splitlines() if re.search(r"critical|panicked|failed", l)][:5]
    # A filter's own local reply would carry its details; every response came from the upstream
    # or from Envoy's router.
    assert not [d for d in matrix["details"] if d["details"].startswith(("wasm", "llmobs"))]


def metric(prometheus: str, name: str, **labels: str) -> float:
    """Sum of the series of `name` whose labels include `labels`, from one /stats/prometheus."""
    total = 0.0
    for m in re.finditer(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$", prometheus, re.M):
        series = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if m.group(1) == name and all(series.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


def test_one_log_line_per_request_and_every_counter_equals_the_requests_sent(matrix):
    sent = len(matrix["cases"])
    assert len(matrix["lines"]) == sent
    assert len(matrix["details"]) == sent
    assert sorted(l["llmobs.request_id"] for l in matrix["lines"]) == sorted(c.request_id for c in matrix["cases"].values())
    stats = matrix["envoy"].prometheus()
    assert metric(stats, "envoy_http_downstream_rq_total", envoy_http_conn_manager_prefix="llm_egress") == sent
    assert metric(stats, "llmobs_correlation_requests") == sent
    assert metric(stats, "llmobs_token_accounting_requests") == sent
    by_type: dict[str, int] = {}
    for c in matrix["cases"].values():
        if c.expected_error_type():
            by_type[c.expected_error_type()] = by_type.get(c.expected_error_type(), 0) + 1
    assert metric(stats, "llmobs_errors") == sum(by_type.values())
    assert {t: metric(stats, "llmobs_errors", error_type=t) for t in by_type} == by_type


def test_every_request_reached_llmock_once_and_no_fault_was_left_unused(matrix):
    upstream = matrix["upstream"]
    pending = json.loads(http_get(upstream.url + "/_llmock/scenario")[1])["pending"]
    assert pending == [], pending[:3]
    journal = json.loads(http_get(upstream.url + "/_llmock/requests")[1])["requests"]
    assert sorted(r["model"] for r in journal) == sorted(c.model for c in matrix["cases"].values())
