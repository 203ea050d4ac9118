"""The error-normalization filter in a real Envoy, with llmock faults injected per request."""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

from conftest import validate_log_line
from harness import as_bundle, hcm_of, post_json, set_route_timeout

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}


def only_line(envoy) -> dict:
    (line,) = envoy.wait_access_log(1)
    validate_log_line(line)
    return line


def test_a_429_with_retry_after_is_a_retryable_rate_limit_and_the_sdk_still_raises_its_class(start_envoy, fresh_upstream):
    envoy = start_envoy()
    fresh_upstream.scenario({"type": "fail", "status": 429, "retry_after": 2, "times": 1})
    oa = openai.OpenAI(base_url=envoy.url + "/v1", api_key="sk-test", max_retries=0)
    with pytest.raises(openai.RateLimitError) as raised:
        oa.chat.completions.create(**CHAT)
    assert raised.value.response.headers["x-llmobs-retry-after-ms"] == "2000"
    line = only_line(envoy)
    assert (line["error.type"], line["llmobs.error.retryable"], line["llmobs.error.origin"]) == ("rate_limit", "true", "upstream")
    assert line["llmobs.error.retry_after_ms"] == "2000"
    assert envoy.metric("llmobs_errors", error_type="rate_limit", gen_ai_provider_name="openai", origin="upstream",
                        retryable="true") == 1
    assert envoy.wait_metric("gen_ai_client_operation_duration_ms_count", 1, error_type="rate_limit") == 1


@pytest.mark.parametrize("pack", ["separate_filters", "bundle"])
def test_errors_are_counted_by_the_prompt_version_token_accounting_read(start_envoy, fresh_upstream, pack):
    envoy = start_envoy(mutate=as_bundle if pack == "bundle" else None)
    fresh_upstream.scenario({"type": "fail", "status": 429, "retry_after": 2, "times": 2})
    oa = openai.OpenAI(base_url=envoy.url + "/v1", api_key="sk-test", max_retries=0)
    with pytest.raises(openai.RateLimitError):
        oa.chat.completions.create(**CHAT, extra_headers={"x-llmobs-prompt-version": "support-v7"})
    # From the request body's metadata this time, not a header.
    with pytest.raises(openai.RateLimitError):
        oa.chat.completions.create(**CHAT, metadata={"prompt_version": "support-v8"}, store=True)
    envoy.wait_access_log(2)
    for version in ("support-v7", "support-v8"):
        assert envoy.metric("llmobs_errors", error_type="rate_limit", prompt_version=version) == 1, version
    assert envoy.metric("llmobs_errors", prompt_version="unknown") == 0


def test_anthropic_529_is_overloaded_not_a_rate_limit(start_envoy, fresh_upstream):
    envoy = start_envoy()
    fresh_upstream.scenario({"type": "fail", "status": 529, "times": 1})
    an = anthropic.Anthropic(base_url=envoy.url + "/anthropic", api_key="sk-ant-test", max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as raised:
        an.messages.create(model="claude-sonnet-4", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert raised.value.status_code == 529
    assert raised.value.response.headers["x-llmobs-error-type"] == "overloaded"
    line = only_line(envoy)
    assert line["error.type"] == "overloaded"
    assert line["llmobs.error.provider_code"] == "overloaded_error"


def test_503_is_upstream_unavailable_and_retryable(start_envoy, fresh_upstream):
    envoy = start_envoy()
    status, headers, body = post_json(envoy.url + "/v1/chat/completions", CHAT, {"x-llmock-force-status": "503"})
    assert status == 503 and body and b"overload" not in body.lower()
    # A 503 body may say the provider is overloaded (a different class), so the class headers,
    # set before the body is read, are left off (docs/filters/error-normalization.md).
    assert "x-llmobs-error-type" not in headers and "x-llmobs-retryable" not in headers
    line = only_line(envoy)
    assert (line["error.type"], line["llmobs.error.retryable"]) == ("upstream_unavailable", "true")


def test_context_window_overflow_is_classified_from_the_body(start_envoy, fresh_upstream):
    envoy = start_envoy()
    fresh_upstream.scenario({"type": "fail", "status": 400, "code": "context_length_exceeded",
                             "message": "This model's maximum context length was exceeded.", "times": 1})
    oa = openai.OpenAI(base_url=envoy.url + "/v1", api_key="sk-test", max_retries=0)
    with pytest.raises(openai.BadRequestError) as raised:
        oa.chat.completions.create(**CHAT)
    # A 4xx body can change the class, so the class headers are not set for it (module docs).
    assert "x-llmobs-error-type" not in raised.value.response.headers
    line = only_line(envoy)
    assert (line["error.type"], line["llmobs.error.retryable"]) == ("context_length_exceeded", "false")


@pytest.mark.parametrize("kind, error_type", [("disconnect", "stream_interrupted"), ("truncate", "stream_interrupted")])
def test_a_stream_that_breaks_after_a_200_is_logged_as_a_failure(start_envoy, fresh_upstream, kind, error_type):
    envoy = start_envoy()
    fresh_upstream.scenario({"type": "stream_fault", "kind": kind, "after_chunks": 2})
    oa = openai.OpenAI(base_url=envoy.url + "/v1", api_key="sk-test", max_retries=0)
    try:
        list(oa.chat.completions.create(stream=True, **CHAT))
    except openai.APIConnectionError:
        assert kind == "disconnect"
    line = only_line(envoy)
    assert line["http.response.status_code"] == 200
    assert (line["error.type"], line["llmobs.error"]) == (error_type, "true")


def test_a_stall_that_trips_the_route_timeout_is_a_gateway_timeout(start_envoy, fresh_upstream):
    envoy = start_envoy(mutate=lambda c: set_route_timeout(c, "1s"))
    fresh_upstream.scenario({"type": "delay", "seconds": 3, "times": 1})
    status, headers, body = post_json(envoy.url + "/v1/chat/completions", CHAT)
    assert status == 504
    assert headers["x-llmobs-error-type"] == "timeout"
    line = only_line(envoy)
    assert (line["error.type"], line["llmobs.error.origin"]) == ("timeout", "gateway")


def _no_endpoints(config):
    config["static_resources"]["clusters"].append({"name": "empty", "type": "STATIC", "connect_timeout": "1s",
                                                   "load_assignment": {"cluster_name": "empty", "endpoints": []}})
    routes = hcm_of(config)["route_config"]["virtual_hosts"][0]["routes"]
    routes.insert(0, {"name": "down", "match": {"prefix": "/down/"}, "route": {"cluster": "empty"}})


def test_a_gateway_failure_becomes_a_structured_degraded_reply_that_the_sdk_parses(start_envoy, fresh_upstream):
    envoy = start_envoy({"llmobs_error_normalization": {"uniform_error_body_routes": ["down"]}}, mutate=_no_endpoints)
    oa = openai.OpenAI(base_url=envoy.url + "/down/v1", api_key="sk-test", max_retries=0)
    with pytest.raises(openai.InternalServerError) as raised:
        oa.chat.completions.create(**CHAT)
    assert raised.value.status_code == 503
    error = raised.value.body
    assert error["type"] == "upstream_unavailable" and error["origin"] == "gateway" and error["retryable"] is True
    assert raised.value.response.headers["content-type"] == "application/json"
    line = only_line(envoy)
    assert (line["error.type"], line["llmobs.error.origin"]) == ("upstream_unavailable", "gateway")


def test_the_uniform_body_keeps_the_provider_message_and_the_sdk_class(start_envoy, fresh_upstream):
    envoy = start_envoy({"llmobs_error_normalization": {"uniform_error_body_routes": ["openai"]}})
    fresh_upstream.scenario({"type": "fail", "status": 429, "code": "insufficient_quota",
                             "message": "You exceeded your current quota.", "times": 1})
    oa = openai.OpenAI(base_url=envoy.url + "/v1", api_key="sk-test", max_retries=0)
    with pytest.raises(openai.RateLimitError) as raised:
        oa.chat.completions.create(**CHAT)
    body = raised.value.body
    assert body["message"] == "You exceeded your current quota."
    assert (body["type"], body["retryable"], body["provider"]) == ("quota_exhausted", False, "openai")
    assert body["request_id"] == raised.value.response.headers["x-request-id"]
    line = only_line(envoy)
    assert (line["error.type"], line["llmobs.error.retryable"]) == ("quota_exhausted", "false")


def test_error_bodies_reach_clients_unchanged_by_default(start_envoy, fresh_upstream):
    envoy = start_envoy()
    status, _, body = post_json(envoy.url + "/v1/chat/completions", CHAT, {"x-llmock-force-status": "401"})
    assert status == 401
    assert "error" in json.loads(body)
    assert b'"type"' in body and b"retryable" not in body
    assert only_line(envoy)["error.type"] == "invalid_api_key"


def test_a_malformed_chunk_reaches_the_client_unchanged_and_never_breaks_the_filter(start_envoy, fresh_upstream):
    envoy = start_envoy()
    fresh_upstream.scenario({"type": "stream_fault", "kind": "malformed", "after_chunks": 2})
    status, _, body = post_json(envoy.url + "/v1/chat/completions", {**CHAT, "stream": True})
    assert status == 200
    events = [l[5:].strip() for l in body.decode().splitlines() if l.startswith("data:")]
    def not_json(event: str) -> bool:
        try:
            json.loads(event)
            return False
        except ValueError:
            return True

    bad = [e for e in events if e != "[DONE]" and not_json(e)]
    assert bad, "llmock's malformed chunk did not reach the client"
    line = only_line(envoy)
    # A malformed chunk is counted as a parse failure; the stream still ended with its
    # terminator, so it is not a failure of the exchange.
    assert envoy.metric("llmobs_token_accounting_parse_failures", reason="response_json") == 1
    assert line["llmobs.stream_outcome"] == "completed"
    assert "error.type" not in line
