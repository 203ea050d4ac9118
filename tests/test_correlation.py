"""The correlation filter in a real Envoy, in front of llmock, driven by real clients."""

from __future__ import annotations

import math

import anthropic
import openai
import pytest

from conftest import validate_log_line
from harness import chat_body, post_json, raw_request, without_envoy_tracer

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def is_fresh_id(value: str) -> bool:
    return len(value) == 32 and all(c in "0123456789abcdef" for c in value)


def last_seen(upstream) -> dict:
    seen = upstream.seen()
    assert seen, "llmock received nothing"
    return seen[-1]["header_map"]


def test_a_valid_request_id_is_kept_end_to_end(start_envoy, fresh_upstream):
    envoy = start_envoy()
    status, headers, _ = post_json(envoy.url + "/v1/chat/completions", chat_body(), {"x-request-id": "client-req-1"})
    assert status == 200
    assert headers["x-request-id"] == "client-req-1"
    assert last_seen(fresh_upstream)["x-request-id"] == "client-req-1"
    (line,) = envoy.wait_access_log(1)
    validate_log_line(line)
    assert line["llmobs.request_id"] == "client-req-1"
    assert "llmobs.ids_replaced" not in line


@pytest.mark.parametrize("bad, reason", [
    ("a" * 129, "too_long"),
    ("has space", "charset"),
    ('quo"te', "charset"),
    ("<script>", "charset"),
    ("caf\u00e9-\u00ff", "charset"),
])
def test_an_invalid_request_id_is_replaced_counted_and_never_logged(start_envoy, fresh_upstream, bad, reason):
    envoy = start_envoy()
    status, headers, _ = post_json(envoy.url + "/v1/chat/completions", chat_body(), {"x-request-id": bad})
    assert status == 200
    fresh = headers["x-request-id"]
    assert is_fresh_id(fresh)
    assert last_seen(fresh_upstream)["x-request-id"] == fresh
    assert envoy.metric("llmobs_correlation_ids_rejected", id="request_id", reason=reason) == 1
    assert envoy.metric("llmobs_correlation_ids_minted", id="request_id") == 1
    (line,) = envoy.wait_access_log(1)
    validate_log_line(line)
    assert line["llmobs.request_id"] == fresh
    assert line["llmobs.ids_replaced"] == "request_id"
    log_text = envoy.access_log_path.read_text(encoding="latin-1")
    assert bad not in log_text
    assert bad.encode("latin-1") not in envoy.log_path.read_bytes()


@pytest.mark.parametrize("raw_value, forwarded, replaced", [
    # Checked on Envoy 1.40 (balsa HTTP/1 parser): a bare CR inside a value is dropped, a bare LF
    # ends the header line, and an obs-fold (CRLF + space) is unfolded into a space. None of them
    # reaches a filter with the CR or LF in it; the filter's own CR/LF handling is unit-tested
    # (filters/core/src/id.rs, filters/core/tests/correlation.rs).
    (b"abc\rdef", "abcdef", False),
    (b"abc\ndef: x", "abc", False),
    (b"abc\r\n def", None, True),
])
def test_cr_or_lf_in_an_id_never_reaches_the_filter_or_the_upstream(start_envoy, fresh_upstream, raw_value,
                                                                    forwarded, replaced):
    envoy = start_envoy()
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
               b"x-conversation-id: " + raw_value + b"\r\ncontent-length: 2\r\n\r\n{}")
    raw_request(envoy.port, request)
    value = last_seen(fresh_upstream)["x-conversation-id"]
    assert "\r" not in value and "\n" not in value
    if forwarded is not None:
        assert value == forwarded
    if replaced:
        assert is_fresh_id(value)
    assert envoy.metric("llmobs_correlation_ids_rejected", id="conversation_id") == int(replaced)


def test_conversation_and_agent_ids_come_from_agent_headers(start_envoy, fresh_upstream):
    envoy = start_envoy()
    status, headers, _ = post_json(envoy.url + "/anthropic/v1/messages",
                                   {"model": "claude-sonnet-4", "max_tokens": 20,
                                    "messages": [{"role": "user", "content": "hi"}]},
                                   {"x-claude-code-session-id": "sess-42", "x-claude-code-agent-id": "sub-1",
                                    "x-claude-code-parent-agent-id": "main", "x-agent-run-id": "run-7",
                                    "anthropic-version": "2023-06-01", "x-api-key": "sk-ant-test"})
    assert status == 200
    assert headers["x-conversation-id"] == "sess-42"
    assert headers["x-agent-run-id"] == "run-7"
    (line,) = envoy.wait_access_log(1)
    validate_log_line(line)
    assert line["gen_ai.conversation.id"] == "sess-42"
    assert line["gen_ai.agent.id"] == "sub-1"
    assert line["llmobs.parent_agent_id"] == "main"
    assert line["llmobs.agent_run_id"] == "run-7"


def test_an_invalid_conversation_id_is_replaced_upstream(start_envoy, fresh_upstream):
    envoy = start_envoy()
    status, headers, _ = post_json(envoy.url + "/v1/chat/completions", chat_body(), {"x-conversation-id": "bad value!"})
    assert status == 200
    forwarded = last_seen(fresh_upstream)["x-conversation-id"]
    assert is_fresh_id(forwarded)
    assert headers["x-conversation-id"] == forwarded
    assert envoy.metric("llmobs_correlation_ids_rejected", id="conversation_id", reason="charset") == 1


def test_traceparent_is_kept_when_valid_replaced_when_invalid_and_minted_when_absent(start_envoy, fresh_upstream):
    # The filter owns trace context (`manage`) where Envoy runs no tracer of its own; the demo
    # runs Envoy's tracer with `observe` (docs/tracing.md).
    envoy = start_envoy({"llmobs_correlation": {"sample_rate": 1.0, "trace_context": "manage"}},
                        mutate=without_envoy_tracer)
    url = envoy.url + "/v1/chat/completions"
    post_json(url, chat_body(), {"traceparent": TP, "tracestate": "vendor=abc"})
    kept = last_seen(fresh_upstream)
    assert kept["traceparent"] == TP
    assert kept["tracestate"] == "vendor=abc"

    _, headers, _ = post_json(url, chat_body(), {"traceparent": "00-not-a-trace-01", "tracestate": "vendor=abc"})
    replaced = last_seen(fresh_upstream)
    assert replaced["traceparent"] != "00-not-a-trace-01"
    assert replaced["traceparent"].split("-")[1] == headers["x-trace-id"]
    assert "tracestate" not in replaced

    _, headers, _ = post_json(url, chat_body())
    minted = last_seen(fresh_upstream)["traceparent"]
    assert minted.startswith("00-") and len(minted) == 55
    assert minted.split("-")[1] == headers["x-trace-id"]

    assert envoy.metric("llmobs_correlation_ids_rejected", id="traceparent", reason="format") == 1
    assert envoy.metric("llmobs_correlation_ids_minted", id="traceparent") == 2
    lines = envoy.wait_access_log(3)
    for line in lines:
        validate_log_line(line)
    assert [l["trace_id"] for l in lines] == [TP.split("-")[1], replaced["traceparent"].split("-")[1],
                                              minted.split("-")[1]]


def _with_envoy_tracer(collector_port: int):
    def mutate(config):
        from harness import hcm_of
        without_envoy_tracer(config)
        hcm_of(config)["tracing"] = {
            "random_sampling": {"value": 100},
            "provider": {
                "name": "envoy.tracers.opentelemetry",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig",
                    "grpc_service": {"envoy_grpc": {"cluster_name": "otel_collector"}, "timeout": "0.25s"},
                    "service_name": "llmobs-test",
                },
            },
        }
        config["static_resources"]["clusters"].append({
            "name": "otel_collector", "type": "STATIC", "connect_timeout": "0.25s",
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}},
                },
            },
            "load_assignment": {"cluster_name": "otel_collector", "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": collector_port}}}}]}]},
        })
    return mutate


def test_with_envoys_own_tracer_the_filter_only_observes_traceparent(start_envoy, fresh_upstream):
    from harness import free_port
    envoy = start_envoy({"llmobs_correlation": {"trace_context": "observe"}}, mutate=_with_envoy_tracer(free_port()))
    url = envoy.url + "/v1/chat/completions"
    _, headers, _ = post_json(url, chat_body(), {"traceparent": TP})
    forwarded = last_seen(fresh_upstream)["traceparent"]
    # Envoy's tracer continues the trace with a span of its own; the filter records the trace id.
    assert forwarded.split("-")[1] == TP.split("-")[1]
    assert forwarded.split("-")[2] != TP.split("-")[2]
    assert headers["x-trace-id"] == TP.split("-")[1]

    # Envoy's tracer starts no span for an unparsable traceparent and would forward it as is:
    # the filter removes it.
    post_json(url, chat_body(), {"traceparent": "garbage", "tracestate": "v=1"})
    seen = last_seen(fresh_upstream)
    assert "traceparent" not in seen and "tracestate" not in seen
    assert envoy.metric("llmobs_correlation_ids_rejected", id="traceparent", reason="format") == 1
    assert envoy.metric("llmobs_correlation_ids_minted", id="traceparent") == 0
    lines = envoy.wait_access_log(2)
    assert lines[0]["trace_id"] == TP.split("-")[1]
    assert "trace_id" not in lines[1]


def test_baggage_is_stripped_per_destination_policy(start_envoy, fresh_upstream):
    policy = {"baggage": {"destinations": [{"cluster": "llmock", "allow_keys": ["tenant", "env"]}]}}
    envoy = start_envoy({"llmobs_correlation": policy})
    post_json(envoy.url + "/v1/chat/completions", chat_body(),
              {"baggage": "tenant=acme, user.email=alice%40example.com, env=prod;ttl=1, bad key=x"})
    assert last_seen(fresh_upstream)["baggage"] == "tenant=acme,env=prod;ttl=1"
    assert envoy.metric("llmobs_correlation_baggage_members_stripped", reason="policy") == 1
    assert envoy.metric("llmobs_correlation_baggage_members_stripped", reason="malformed") == 1


def test_by_default_no_baggage_leaves_toward_an_unlisted_destination(start_envoy, fresh_upstream):
    envoy = start_envoy({"llmobs_correlation": {}})
    post_json(envoy.url + "/v1/chat/completions", chat_body(), {"baggage": "tenant=acme,user=bob"})
    assert "baggage" not in last_seen(fresh_upstream)
    assert envoy.metric("llmobs_correlation_baggage_members_stripped", reason="policy") == 2


def test_oversized_baggage_is_cut_to_180_members(start_envoy, fresh_upstream):
    envoy = start_envoy({"llmobs_correlation": {"baggage": {"default_allow_keys": [f"k{i}" for i in range(300)]}}})
    header = ",".join(f"k{i}=v" for i in range(200))
    post_json(envoy.url + "/v1/chat/completions", chat_body(), {"baggage": header})
    forwarded = last_seen(fresh_upstream)["baggage"]
    assert len(forwarded.split(",")) == 180
    assert envoy.metric("llmobs_correlation_baggage_members_stripped", reason="over_limit") == 20


def test_synthetic_probes_are_flagged_and_counted_apart(start_envoy, fresh_upstream):
    envoy = start_envoy()
    post_json(envoy.url + "/v1/chat/completions", chat_body(), {"x-llmobs-synthetic": "true"})
    post_json(envoy.url + "/v1/chat/completions", chat_body())
    assert envoy.metric("llmobs_correlation_requests", synthetic="true") == 1
    assert envoy.metric("llmobs_correlation_requests", synthetic="false") == 1
    lines = envoy.wait_access_log(2)
    assert sorted(l["llmobs.synthetic"] for l in lines) == ["false", "true"]


def test_successes_are_sampled_at_the_configured_rate_and_every_error_is_logged(start_envoy, fresh_upstream):
    rate, n_ok, n_err = 0.3, 300, 40
    envoy = start_envoy({"llmobs_correlation": {"sample_rate": rate}})
    url = envoy.url + "/v1/chat/completions"
    for _ in range(n_ok):
        assert post_json(url, chat_body())[0] == 200
    for _ in range(n_err):
        assert post_json(url, chat_body(), {"x-llmock-force-status": "503"})[0] == 503
    assert envoy.metric("llmobs_correlation_requests") == n_ok + n_err
    # Wait for every error line: errors are always logged, and they come last.
    lines = envoy.wait_access_log(1)
    lines = envoy.wait_access_log(len([l for l in lines if l["http.response.status_code"] == 200]) + n_err)
    errors = [l for l in lines if l["http.response.status_code"] == 503]
    sampled_ok = [l for l in lines if l["http.response.status_code"] == 200]
    assert len(errors) == n_err
    assert all(l["llmobs.sampled"] == "true" for l in sampled_ok)
    # Binomial(300, 0.3): mean 90, sd 7.9; 4.5 sd bounds fail by chance about once in 150,000 runs.
    mean, sd = n_ok * rate, math.sqrt(n_ok * rate * (1 - rate))
    assert mean - 4.5 * sd <= len(sampled_ok) <= mean + 4.5 * sd, len(sampled_ok)
    for line in lines:
        validate_log_line(line)


def test_the_official_sdks_work_through_the_filter_and_see_the_echoed_ids(start_envoy, fresh_upstream):
    envoy = start_envoy()
    oa = openai.OpenAI(base_url=envoy.url + "/v1", api_key="sk-test-canary-0001", max_retries=0)
    raw = oa.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-conversation-id": "conv-openai"})
    assert raw.headers["x-conversation-id"] == "conv-openai"
    assert raw.parse().choices[0].message.content
    chunks = list(oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                             stream=True))
    assert chunks

    an = anthropic.Anthropic(base_url=envoy.url + "/anthropic", api_key="sk-ant-canary-0002", max_retries=0)
    raw = an.messages.with_raw_response.create(model="claude-sonnet-4", max_tokens=30,
                                               messages=[{"role": "user", "content": "hi"}],
                                               extra_headers={"x-claude-code-session-id": "conv-anthropic"})
    assert raw.headers["x-conversation-id"] == "conv-anthropic"
    assert raw.parse().content
    with an.messages.stream(model="claude-sonnet-4", max_tokens=30,
                            messages=[{"role": "user", "content": "hi"}]) as stream:
        assert stream.get_final_text()

    lines = envoy.wait_access_log(4)
    for line in lines:
        validate_log_line(line)
    assert {l.get("gen_ai.conversation.id") for l in lines} >= {"conv-openai", "conv-anthropic"}


def test_no_secret_reaches_the_access_log_or_envoys_info_log(start_envoy, fresh_upstream):
    envoy = start_envoy(log_level="info", component_log_levels="wasm:trace")
    canaries = {
        "authorization": "Bearer sk-canary-bearer-7f3a9",
        "x-api-key": "sk-ant-canary-key-51c2",
        "cookie": "session=canary-cookie-88d1",
        "x-goog-api-key": "AIza-canary-goog-1234",
    }
    post_json(envoy.url + "/v1/chat/completions", chat_body("my card is 4111111111111111"), canaries)
    post_json(envoy.url + "/gemini/v1beta/models/gemini-2.0-flash:generateContent?key=AIza-canary-query-9z",
              {"contents": [{"parts": [{"text": "hi"}]}]})
    lines = envoy.wait_access_log(2)
    assert lines[1]["url.path"] == "/gemini/v1beta/models/gemini-2.0-flash:generateContent"
    sinks = envoy.access_log_path.read_text() + envoy.log_text() + envoy.prometheus()
    for secret in [*canaries.values(), "AIza-canary-query-9z", "4111111111111111"]:
        assert secret not in sinks, secret


def test_a_bad_configuration_stops_envoy_with_one_line_naming_the_field(start_envoy):
    envoy = start_envoy({"llmobs_correlation": {"sample_rate": 7}}, wait_ready=False)
    code = envoy.wait_exit(30)
    assert code != 0
    log = envoy.log_text()
    errors = [l for l in log.splitlines() if "llmobs correlation: invalid configuration" in l]
    assert len(errors) == 1, log[-3000:]
    assert "field `sample_rate`: must be a number from 0 to 1" in errors[0]


def test_an_unknown_field_is_rejected_by_name(start_envoy):
    envoy = start_envoy({"llmobs_correlation": {"sample_rat": 1}}, wait_ready=False)
    assert envoy.wait_exit(30) != 0
    assert "field `sample_rat`: unknown field `sample_rat`" in envoy.log_text()


def test_a_fresh_proxy_exports_a_correlation_series_only_once_it_is_counted(start_envoy, fresh_upstream):
    envoy = start_envoy()

    def correlation_series() -> list[str]:
        return [line.rsplit(" ", 1)[0] for line in envoy.prometheus().splitlines()
                if line.startswith("llmobs_correlation_")]

    # Before any request: the request counter's two series (the synthetic-probe alert reads
    # both), not one per id kind, rejection reason and baggage drop (there were 68).
    assert sorted(correlation_series()) == ['llmobs_correlation_requests{synthetic="false"}',
                                            'llmobs_correlation_requests{synthetic="true"}']
    status, _, _ = post_json(envoy.url + "/v1/chat/completions", chat_body(), {"x-request-id": "bad id with spaces"})
    assert status == 200
    assert envoy.metric("llmobs_correlation_ids_rejected", id="request_id", reason="charset") == 1
    assert 'llmobs_correlation_ids_rejected{id="conversation_id",reason="charset",synthetic="false"}' \
        not in correlation_series()


def test_an_id_shaped_like_a_key_is_replaced_counted_as_a_secret_and_never_logged(start_envoy, fresh_upstream):
    envoy = start_envoy()
    key = "sk-proj-4f9a8b7c6d5e4f3a2b1c0d9e"
    status, headers, _ = post_json(envoy.url + "/v1/chat/completions", chat_body(),
                                   {"x-conversation-id": key, "x-llmobs-tenant": key})
    assert status == 200
    assert last_seen(fresh_upstream)["x-conversation-id"] != key
    assert envoy.metric("llmobs_correlation_ids_rejected", id="conversation_id", reason="secret") == 1
    (line,) = envoy.wait_access_log(1)
    validate_log_line(line)
    assert line["llmobs.tenant"] == "unknown"
    assert key not in envoy.access_log_path.read_text() and key not in envoy.prometheus()
