"""GenAI spans through Envoy's own OpenTelemetry tracer: Envoy exports to a real OTLP/gRPC
receiver (tests/otlp_receiver.py), and each span's attributes, read by Envoy from the pack's
filter state (envoy/tracing/genai-spans.yaml), equal what the official SDKs saw. No prompt,
tool argument or tool output reaches a span."""

from __future__ import annotations

import json
import uuid

import anthropic
import openai
import pytest
import yaml

from harness import ROOT, as_bundle, hcm_of, post_json, wait_until
from otlp_receiver import OtlpReceiver

FRAGMENT = yaml.safe_load((ROOT / "envoy" / "tracing" / "genai-spans.yaml").read_text())
CANARIES = ("prompt-canary-7f3a", "argument-canary-7f3a", "tool-output-canary-7f3a", "gemini-key-canary-7f3a")


SERVER = 2  # opentelemetry.proto.trace.v1.Span.SpanKind.SPAN_KIND_SERVER


@pytest.fixture
def receiver():
    r = OtlpReceiver()
    yield r
    r.stop()


def exporting_to(receiver: OtlpReceiver, bundle: bool):
    def mutate(config: dict) -> None:
        for cluster in config["static_resources"]["clusters"]:
            if cluster["name"] == "otel_collector":
                cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"][
                    "socket_address"]["port_value"] = receiver.port
        # Export each span at once instead of batching 5 per 5 s (the tracer's runtime keys).
        config["layered_runtime"] = {"layers": [{"name": "static", "static_layer": {
            "tracing.opentelemetry.min_flush_spans": 1, "tracing.opentelemetry.flush_interval_ms": 100}}]}
        if bundle:
            as_bundle(config)
    return mutate


def test_the_demo_carries_the_span_fragment_unchanged():
    demo = yaml.safe_load((ROOT / "envoy" / "demo.yaml").read_text())
    assert hcm_of(demo)["tracing"] == FRAGMENT["http_connection_manager"]["tracing"]
    clusters = {c["name"]: c for c in demo["static_resources"]["clusters"]}
    assert clusters["otel_collector"] == FRAGMENT["clusters"][0]


@pytest.mark.parametrize("pack", ["separate", "bundle"])
def test_each_llm_call_is_one_genai_span_whose_attributes_equal_what_the_sdk_saw(start_envoy, upstream, receiver, pack):
    envoy = start_envoy(mutate=exporting_to(receiver, pack == "bundle"))
    oa = openai.OpenAI(base_url=envoy.url + "/v1", api_key="sk-test", max_retries=0)
    an = anthropic.Anthropic(base_url=envoy.url + "/anthropic", api_key="sk-ant-test", max_retries=0)
    expected: dict[str, dict] = {}

    def rid() -> str:
        return uuid.uuid4().hex

    # OpenAI chat: the model asks for a tool; the span names it.
    r1 = rid()
    upstream.scenario({"type": "reply", "times": 1, "tool_calls": [
        {"name": "get_weather", "arguments": {"city": CANARIES[1]}}]})
    r = oa.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": CANARIES[0]}],
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
        extra_headers={"x-request-id": r1, "x-conversation-id": "conv-42", "x-llmobs-prompt-version": "v7"})
    expected[r1] = {"name": f"chat gpt-4o-mini", "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o-mini", "gen_ai.response.model": r.model,
                    "gen_ai.response.id": r.id, "gen_ai.response.finish_reasons": r.choices[0].finish_reason,
                    "gen_ai.usage.input_tokens": str(r.usage.prompt_tokens),
                    "gen_ai.usage.output_tokens": str(r.usage.completion_tokens),
                    "gen_ai.conversation.id": "conv-42", "llmobs.prompt.version": "v7",
                    "llmobs.agent.iteration": "1", "llmobs.tool_calls": "get_weather=1", "llmobs.span.keep": "true"}
    call = r.choices[0].message.tool_calls[0]

    # The next iteration carries the failed tool's output (the JSON-error convention).
    r2 = rid()
    upstream.scenario({"type": "reply", "text": "Sorry.", "times": 1})
    r = oa.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": CANARIES[0]}, r.choices[0].message.model_dump(exclude_none=True),
                  {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"error": CANARIES[2]})}],
        extra_headers={"x-request-id": r2, "x-conversation-id": "conv-42", "x-llmobs-prompt-version": "v7"})
    expected[r2] = {"llmobs.agent.iteration": "2", "llmobs.tool_results": "1", "llmobs.tool_errors": "1",
                    "llmobs.tool_error_names": "get_weather", "gen_ai.response.id": r.id}

    # A stream.
    r3 = rid()
    with oa.chat.completions.stream(model="gpt-4o", messages=[{"role": "user", "content": "x"}],
                                    stream_options={"include_usage": True},
                                    extra_headers={"x-request-id": r3}) as s:
        final = s.get_final_completion()
    expected[r3] = {"name": "chat gpt-4o", "gen_ai.response.id": final.id,
                    "gen_ai.usage.output_tokens": str(final.usage.completion_tokens)}

    # Anthropic Messages.
    r4 = rid()
    m = an.messages.create(model="claude-sonnet-4", max_tokens=64, messages=[{"role": "user", "content": "hi"}],
                           extra_headers={"x-request-id": r4})
    expected[r4] = {"gen_ai.provider.name": "anthropic", "gen_ai.request.model": "claude-sonnet-4",
                    "gen_ai.response.id": m.id, "gen_ai.response.finish_reasons": m.stop_reason,
                    "gen_ai.usage.output_tokens": str(m.usage.output_tokens)}

    # A provider error: error.type on the span.
    r5 = rid()
    upstream.scenario({"type": "fail", "status": 429, "times": 1})
    with pytest.raises(openai.RateLimitError):
        oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}],
                                   extra_headers={"x-request-id": r5})
    expected[r5] = {"error.type": "rate_limit"}

    # Gemini with its API key in the query string (`?key=`, as Google's clients may send it).
    r6 = rid()
    status, _, _ = post_json(envoy.url + f"/gemini/v1beta/models/gemini-2.0-flash:generateContent?key={CANARIES[3]}",
                             {"contents": [{"parts": [{"text": "x"}]}]}, {"x-request-id": r6})
    assert status == 200
    expected[r6] = {"name": "generate_content gemini-2.0-flash", "gen_ai.provider.name": "gcp.gemini",
                    "http.url": envoy.url + "/gemini/v1beta/models/gemini-2.0-flash:generateContent"}

    # A deep agent run: with the demo's span_cap (first 10, then every 10th) iteration 12 is
    # marked for the collector to drop, iteration 20 kept; both counted by depth.
    for turns, keep in ((11, "false"), (19, "true")):
        history = [{"role": "user", "content": "go"}]
        for i in range(turns):
            history += [{"role": "assistant", "content": f"step {i}"}, {"role": "user", "content": "next"}]
        deep = rid()
        status, _, _ = post_json(envoy.url + "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": history},
                                 {"x-request-id": deep})
        assert status == 200
        expected[deep] = {"llmobs.agent.iteration": str(turns + 1), "llmobs.span.keep": keep}

    def spans_by_request() -> dict[str, dict]:
        # The downstream (server) span: the router's upstream span is finalized when the upstream
        # answer ends, before the pack has read the whole response.
        return {s["attributes"].get("llmobs.request_id"): s for s in receiver.received() if s["kind"] == SERVER}

    wait_until(lambda: set(expected) <= set(spans_by_request()), 20, "a span for every request")
    spans = spans_by_request()
    for request_id, want in expected.items():
        span = spans[request_id]
        seen = {k: (span["name"] if k == "name" else span["attributes"].get(k)) for k in want}
        assert seen == want, (request_id, {k: v for k, v in span.items() if k != "raw"},
                              [l for l in envoy.access_log() if l.get("llmobs.request_id") == request_id])
    assert spans[r1]["resource"]["service.name"] == "llmobs-egress"
    assert envoy.wait_metric("llmobs_agent_depth_requests", 1, depth="9-16") == 1
    assert envoy.metric("llmobs_agent_depth_requests", depth="17-32") == 1
    for span in receiver.received():
        for canary in CANARIES:
            assert canary.encode() not in span["raw"], span["name"]
