"""The token-accounting filter in a real Envoy: usage recorded equals usage the SDKs report."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import anthropic
import openai
import pytest

from conftest import validate_log_line
from harness import ROOT, as_bundle, http_get, post_json, route_everything_to, set_route_timeout, without_filter

FIXTURES = ROOT / "tests" / "fixtures" / "providers"
CHAT_BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}


def by_request_id(lines: list[dict]) -> dict[str, dict]:
    return {l["llmobs.request_id"]: l for l in lines}


def as_int(line: dict, field: str) -> int | None:
    return int(line[field]) if field in line else None


def test_usage_recorded_equals_usage_reported_by_the_sdks_for_every_request(start_envoy):
    envoy = start_envoy()
    oa = openai.OpenAI(base_url=envoy.url + "/v1", api_key="sk-test", max_retries=0)
    an = anthropic.Anthropic(base_url=envoy.url + "/anthropic", api_key="sk-ant-test", max_retries=0)
    reported: dict[str, tuple[int, int, bool]] = {}  # request id -> (input, output, stream)

    def rid() -> dict:
        r = uuid.uuid4().hex
        return {"x-request-id": r}

    for i in range(3):
        h = rid()
        r = oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"plain {i} é"}],
                                       extra_headers=h)
        reported[h["x-request-id"]] = (r.usage.prompt_tokens, r.usage.completion_tokens, False)

        h = rid()
        usage = None
        for chunk in oa.chat.completions.create(model="gpt-4o", stream=True, stream_options={"include_usage": True},
                                                messages=[{"role": "user", "content": f"stream {i} 日本"}],
                                                extra_headers=h):
            usage = chunk.usage or usage
        reported[h["x-request-id"]] = (usage.prompt_tokens, usage.completion_tokens, True)

        h = rid()
        r = oa.responses.create(model="gpt-4.1", input=f"responses {i}", extra_headers=h)
        reported[h["x-request-id"]] = (r.usage.input_tokens, r.usage.output_tokens, False)

        h = rid()
        with oa.responses.stream(model="gpt-4.1", input=f"responses stream {i}", extra_headers=h) as s:
            final = s.get_final_response()
        reported[h["x-request-id"]] = (final.usage.input_tokens, final.usage.output_tokens, True)

        h = rid()
        m = an.messages.create(model="claude-sonnet-4", max_tokens=64, extra_headers=h,
                               messages=[{"role": "user", "content": f"anthropic {i}"}])
        u = m.usage
        reported[h["x-request-id"]] = (u.input_tokens + (u.cache_read_input_tokens or 0)
                                       + (u.cache_creation_input_tokens or 0), u.output_tokens, False)

        h = rid()
        with an.messages.stream(model="claude-sonnet-4", max_tokens=64, extra_headers=h,
                                messages=[{"role": "user", "content": f"anthropic stream {i} 🦀"}]) as s:
            u = s.get_final_message().usage
        reported[h["x-request-id"]] = (u.input_tokens + (u.cache_read_input_tokens or 0)
                                       + (u.cache_creation_input_tokens or 0), u.output_tokens, True)

        for path, stream in [("gemini-2.0-flash:generateContent", False),
                             ("gemini-2.0-flash:streamGenerateContent", True),
                             ("gemini-2.0-flash:streamGenerateContent?alt=sse", True)]:
            h = rid()
            status, _, body = post_json(envoy.url + "/gemini/v1beta/models/" + path,
                                        {"contents": [{"parts": [{"text": f"gemini {i}"}]}]}, h)
            assert status == 200
            if not stream:
                docs = [json.loads(body)]
            elif "alt=sse" in path:
                docs = [json.loads(l[5:]) for l in body.decode().splitlines() if l.startswith("data:")]
            else:
                docs = json.loads(body)
            meta = [d["usageMetadata"] for d in docs if "usageMetadata" in d][-1]
            reported[h["x-request-id"]] = (meta.get("promptTokenCount", 0) + meta.get("toolUsePromptTokenCount", 0),
                                           meta.get("candidatesTokenCount", 0) + meta.get("thoughtsTokenCount", 0),
                                           stream)

    lines = by_request_id(envoy.wait_access_log(len(reported)))
    mismatches = []
    for request_id, (input_tokens, output_tokens, stream) in reported.items():
        line = lines[request_id]
        validate_log_line(line)
        got = (as_int(line, "gen_ai.usage.input_tokens"), as_int(line, "gen_ai.usage.output_tokens"),
               line["llmobs.stream"] == "true")
        if got != (input_tokens, output_tokens, stream) or line["llmobs.stream_outcome"] != "completed":
            mismatches.append((line.get("url.path"), got, (input_tokens, output_tokens, stream)))
    assert mismatches == [], mismatches
    total_input = sum(i for i, _, _ in reported.values())
    total_output = sum(o for _, o, _ in reported.values())
    assert envoy.metric("llmobs_token_accounting_tokens", gen_ai_token_type="input") == total_input
    assert envoy.metric("llmobs_token_accounting_tokens", gen_ai_token_type="output") == total_output
    assert envoy.wait_metric("gen_ai_client_token_usage_count", len(reported), gen_ai_token_type="output") == len(reported)
    assert envoy.metric("llmobs_token_accounting_requests", usage_source="provider") == len(reported)
    streams = sum(1 for *_, stream in reported.values() if stream)
    assert envoy.wait_metric("gen_ai_client_operation_time_to_first_chunk_ms_count", streams) == streams


def fixture_cases() -> list[str]:
    return sorted(p.parent.name for p in FIXTURES.glob("*/meta.json"))


@pytest.mark.parametrize("pack", ["separate_filters", "bundle"])
def test_every_recorded_provider_exchange_replayed_through_envoy_is_read_exactly(start_envoy, replay, pack):
    """llmock has no Bedrock or Azure routes and reports no cached or reasoning tokens: the
    project's replay upstream sends the recorded bytes instead, in 7-byte chunks. Through the
    demo's four filters and through the bundle carrying the same configurations. OpenAI-compatible
    servers (a fixture's `provider_override`) are reached under `/<provider>/`, a prefix that the
    route removes and the configuration names."""
    named = sorted({json.loads((FIXTURES / case / "meta.json").read_text()).get("provider_override")
                    for case in fixture_cases()} - {None})
    rewrites = {f"/{name}/": "/" for name in named}
    overrides = [{"path_prefix": f"/{name}/", "provider": name} for name in named]

    def setup(config):
        route_everything_to(config, replay.port, rewrites)
        if pack == "bundle":
            as_bundle(config)

    envoy = start_envoy({"llmobs_token_accounting": {"providers": overrides},
                         "llmobs_error_normalization": {"providers": overrides}}, mutate=setup)
    sent = {}
    for case in fixture_cases():
        meta = json.loads((FIXTURES / case / "meta.json").read_text())
        body = (FIXTURES / case / meta["request_file"]).read_bytes() if meta.get("request_file") else b"{}"
        prefix = f"/{meta['provider_override']}" if meta.get("provider_override") else ""
        request_id = uuid.uuid4().hex
        headers = {**meta.get("request_headers", {}), "x-fixture": case, "x-request-id": request_id}
        status, _, received = post_json(envoy.url + prefix + meta["path"], body, headers)
        assert status == meta["status"], case
        recorded = (FIXTURES / case / meta["response_file"]).read_bytes()
        if case == "openai-chat-stream-pii-char-per-event":
            # The demo chain's PII filter rewrites this one (tests/test_pii_redaction.py).
            assert b'"4"' in recorded and b"[PAYMENT_CARD]" in received, f"{case}: not redacted"
        else:
            assert received == recorded, f"{case}: bytes changed"
        sent[request_id] = (case, meta["expected"])
    lines = by_request_id(envoy.wait_access_log(len(sent)))
    mismatches = []
    for request_id, (case, want) in sent.items():
        line = lines[request_id]
        validate_log_line(line)
        usage = want["usage"]
        op = {"messages": "chat", "converse": "chat"}.get(want["operation"], want["operation"])
        expected = {
            "gen_ai.provider.name": want["provider"], "gen_ai.operation.name": op,
            "gen_ai.request.model": want["request_model"], "gen_ai.response.model": want["response_model"],
            "gen_ai.response.id": want["response_id"],
            "gen_ai.usage.input_tokens": usage["input"], "gen_ai.usage.output_tokens": usage["output"],
            "gen_ai.usage.cache_read.input_tokens": usage["cache_read"],
            "gen_ai.usage.cache_creation.input_tokens": usage["cache_creation"],
            "llmobs.usage.reasoning_tokens": usage["reasoning"], "llmobs.usage.total_tokens": usage["total"],
            "llmobs.finish_reason.raw": want["finish_reason_raw"], "llmobs.finish_reason": want["finish_reason"],
            "llmobs.usage_source": want["usage_source"], "llmobs.stream_outcome": want["stream_outcome"] or "completed",
            # What the request asked, whatever framing the response came in (a 503 JSON body too).
            "llmobs.stream": str(bool(want["stream"])).lower(),
            # Error normalization in the same chain: the class, retryability and the provider's own code.
            "error.type": (want.get("error") or {}).get("type"),
            "llmobs.error.retryable": None if want.get("error") is None else str(want["error"]["retryable"]).lower(),
            "llmobs.error.provider_code": (want.get("error") or {}).get("provider_code"),
        }
        for field, value in expected.items():
            got = line.get(field)
            if (None if value is None else str(value)) != got:
                mismatches.append((case, field, got, value))
        failed_after_200 = expected["llmobs.stream_outcome"] != "completed" or (
            want.get("error") is not None and line["http.response.status_code"] < 400)
        if (line.get("llmobs.error") == "true") != failed_after_200:
            mismatches.append((case, "llmobs.error", line.get("llmobs.error"), expected["llmobs.stream_outcome"]))
    assert mismatches == [], mismatches
    # Every finish reason is counted once under its normalized value, with labels Prometheus can
    # select on (the refusal alert reads finish_reason="content_filter").
    finishes: dict[tuple[str, str], int] = {}
    for case, want in sent.values():
        if want["finish_reason"] is not None:
            key = (want["provider"], want["finish_reason"])
            finishes[key] = finishes.get(key, 0) + 1
    assert ("anthropic", "content_filter") in finishes and ("gcp.gemini", "content_filter") in finishes, finishes
    for (provider, reason), count in finishes.items():
        assert envoy.metric("llmobs_token_accounting_finish_reasons", gen_ai_provider_name=provider,
                            finish_reason=reason, synthetic="false") == count, (provider, reason)
    assert envoy.metric("llmobs_token_accounting_finish_reasons") == sum(finishes.values())


@pytest.mark.parametrize("fault, outcome", [
    ({"type": "stream_fault", "kind": "truncate", "after_chunks": 2}, "upstream_cut"),
    ({"type": "stream_fault", "kind": "disconnect", "after_chunks": 2}, "upstream_cut"),
    ({"type": "stream_fault", "kind": "malformed", "after_chunks": 2}, None),
])
def test_llmock_stream_faults_give_the_right_outcome_and_reach_the_client_unchanged(start_envoy, fresh_upstream,
                                                                                   fault, outcome):
    envoy = start_envoy()
    fresh_upstream.scenario(fault)
    oa = openai.OpenAI(base_url=envoy.url + "/v1", api_key="sk-test", max_retries=0)
    received, error = [], None
    try:
        for chunk in oa.chat.completions.create(model="gpt-4o", stream=True, stream_options={"include_usage": True},
                                                messages=[{"role": "user", "content": "a long answer please"}]):
            received.append(chunk)
    except Exception as err:  # what the SDK raises is what llmock's fault produces, unchanged
        error = err
    # llmock's README: truncate raises nothing, disconnect raises APIConnectionError, a malformed
    # chunk raises a JSON error; the filter must not change any of that.
    if fault["kind"] == "truncate":
        assert error is None and received
    elif fault["kind"] == "disconnect":
        assert isinstance(error, openai.APIConnectionError), repr(error)
    else:
        assert error is not None and "JSON" in type(error).__name__ + str(error), repr(error)
    (line,) = envoy.wait_access_log(1)
    validate_log_line(line)
    if outcome:
        assert line["llmobs.stream_outcome"] == outcome
        assert line["llmobs.error"] == "true"
    else:
        assert envoy.metric("llmobs_token_accounting_parse_failures", reason="response_json") == 1
    assert envoy.metric("llmobs_token_accounting_requests") == 1


def test_a_stalled_stream_cut_by_the_route_timeout_is_an_upstream_cut(start_envoy, fresh_upstream):
    envoy = start_envoy(mutate=lambda c: set_route_timeout(c, "1s"))
    fresh_upstream.scenario({"type": "stream_fault", "kind": "stall", "after_chunks": 1, "stall_seconds": 3})
    oa = openai.OpenAI(base_url=envoy.url + "/v1", api_key="sk-test", max_retries=0, timeout=10)
    with pytest.raises(openai.APIConnectionError):
        list(oa.chat.completions.create(model="gpt-4o", stream=True,
                                        messages=[{"role": "user", "content": "hi"}]))
    (line,) = envoy.wait_access_log(1)
    validate_log_line(line)
    assert line["llmobs.stream_outcome"] == "upstream_cut"
    assert "UT" in line["envoy.response_flags"]
    assert line["llmobs.error"] == "true"
    # Envoy cut the stream: error normalization calls it a gateway timeout.
    assert (line["error.type"], line["llmobs.error.origin"]) == ("timeout", "gateway")


def test_a_stream_without_usage_counts_missing_usage_and_keeps_the_other_metrics(start_envoy):
    envoy = start_envoy()
    oa = openai.OpenAI(base_url=envoy.url + "/v1", api_key="sk-test", max_retries=0)
    assert list(oa.chat.completions.create(model="gpt-4o", stream=True, messages=[{"role": "user", "content": "x"}]))
    (line,) = envoy.wait_access_log(1)
    assert line["llmobs.usage_source"] == "missing"
    assert "gen_ai.usage.input_tokens" not in line
    assert envoy.metric("llmobs_token_accounting_usage_missing", gen_ai_provider_name="openai") == 1
    assert envoy.wait_metric("gen_ai_client_operation_duration_ms_count", 1, gen_ai_request_model="gpt-4o") == 1
    assert envoy.wait_metric("gen_ai_client_operation_time_to_first_chunk_ms_count", 1) == 1


def test_requests_go_upstream_without_accept_encoding_so_responses_are_readable(start_envoy, fresh_upstream):
    envoy = start_envoy()
    post_json(envoy.url + "/v1/chat/completions", {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]},
              {"accept-encoding": "gzip, br"})
    seen = fresh_upstream.seen()[-1]["header_map"]
    assert "accept-encoding" not in seen


def test_an_unknown_api_is_counted_and_passed_through_untouched(start_envoy, fresh_upstream):
    envoy = start_envoy()
    status, body = http_get(envoy.url + "/v1/models")
    assert status == 200 and b"data" in body
    assert envoy.metric("llmobs_token_accounting_requests", gen_ai_provider_name="_OTHER") == 1
    (line,) = envoy.wait_access_log(1)
    assert "gen_ai.provider.name" not in line


def test_an_http_error_is_timed_with_the_error_class_from_error_normalization(start_envoy, fresh_upstream):
    envoy = start_envoy()
    fresh_upstream.scenario({"type": "fail", "status": 429, "retry_after": 1, "times": 1})
    oa = openai.OpenAI(base_url=envoy.url + "/v1", api_key="sk-test", max_retries=0)
    with pytest.raises(openai.RateLimitError):
        oa.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert envoy.wait_metric("gen_ai_client_operation_duration_ms_count", 1, error_type="rate_limit") == 1
    (line,) = envoy.wait_access_log(1)
    assert line["http.response.status_code"] == 429
    assert line["llmobs.usage_source"] == "missing"
    assert envoy.metric("llmobs_token_accounting_usage_missing") == 0


def test_a_bad_configuration_is_refused_with_the_field_named(start_envoy):
    envoy = start_envoy({"llmobs_token_accounting": {"max_frame_bytes": 0}}, wait_ready=False)
    assert envoy.wait_exit(30) != 0
    assert "llmobs token_accounting: invalid configuration: field `max_frame_bytes`" in envoy.log_text()


def test_injected_include_usage_gives_exact_usage_and_the_client_sees_the_stream_it_asked_for(start_envoy, fresh_upstream):
    envoy = start_envoy({"llmobs_token_accounting": {"inject_stream_usage": True}})
    oa = openai.OpenAI(base_url=envoy.url + "/v1", api_key="sk-test", max_retries=0)
    messages = [{"role": "user", "content": "the same prompt, twice"}]
    # The client that did not ask: no usage chunk reaches it, every chunk has a choice.
    chunks = list(oa.chat.completions.create(model="gpt-4o", stream=True, messages=messages,
                                             extra_headers={"x-request-id": "no-ask"}))
    assert chunks and all(c.choices for c in chunks) and all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks)
    # The client that asked gets the usage chunk as usual; llmock answers the same prompt the same way.
    usage = None
    for c in oa.chat.completions.create(model="gpt-4o", stream=True, stream_options={"include_usage": True},
                                        messages=messages, extra_headers={"x-request-id": "asked"}):
        usage = c.usage or usage
    assert usage is not None
    bodies = [r["body"] for r in json.loads(http_get(fresh_upstream.url + "/_llmock/requests")[1])["requests"]
              if r["path"] == "/v1/chat/completions"]
    assert [b["stream_options"] for b in bodies] == [{"include_usage": True}] * 2
    lines = by_request_id(envoy.wait_access_log(2))
    for request_id in ("no-ask", "asked"):
        assert as_int(lines[request_id], "gen_ai.usage.input_tokens") == usage.prompt_tokens
        assert as_int(lines[request_id], "gen_ai.usage.output_tokens") == usage.completion_tokens
    assert envoy.metric("llmobs_token_accounting_usage_injected") == 1


def test_the_tenant_header_becomes_a_bounded_label(start_envoy):
    envoy = start_envoy()
    for tenant in ("acme", "globex", "acme"):
        post_json(envoy.url + "/v1/chat/completions", {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]},
                  {"x-llmobs-tenant": tenant})
    assert envoy.metric("llmobs_token_accounting_tokens", tenant="acme", gen_ai_token_type="output") > 0
    assert envoy.metric("llmobs_token_accounting_tokens", tenant="globex", gen_ai_token_type="output") > 0
    lines = envoy.wait_access_log(3)
    assert [l["llmobs.tenant"] for l in lines] == ["acme", "globex", "acme"]


def test_a_10_mb_request_passes_unchanged_and_is_counted_over_the_limit(start_envoy, fresh_upstream):
    # Token accounting alone: the PII filter in traffic mode forwards edited requests chunked.
    envoy = start_envoy(mutate=lambda c: without_filter(c, "llmobs_pii_redaction"))
    big = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * (10 << 20)}]}
    body = json.dumps(big).encode()
    status, _, _ = post_json(envoy.url + "/v1/chat/completions", body)
    assert status < 500
    (received,) = fresh_upstream.seen()
    assert received["header_map"]["content-length"] == str(len(body))
    assert envoy.metric("llmobs_token_accounting_parse_failures", reason="request_over_limit") == 1


def test_a_10_mb_response_reaches_the_client_whole_and_is_counted_over_the_limit(start_envoy, fresh_upstream):
    envoy = start_envoy()
    text = "y" * (10 << 20)
    fresh_upstream.scenario({"type": "reply", "text": text, "times": 1})
    status, _, body = post_json(envoy.url + "/v1/chat/completions", CHAT_BODY, timeout=60)
    assert status == 200
    assert json.loads(body)["choices"][0]["message"]["content"] == text
    line = envoy.wait_access_log(1)[0]
    assert line["llmobs.usage_source"] == "missing"
    assert envoy.metric("llmobs_token_accounting_parse_failures", reason="response_over_limit") == 1
