"""End-to-end: the bundle (dist/llmobs_bundle.wasm, the four behaviours in one filter) inside
the real Envoy, against llmock and the fixture replayer, driven by the official SDKs.

The bundle must leave what the four separate filters leave: the same bytes at the provider and
at the client, the same access-log fields and the same counters. Each scenario runs once
through the demo's four filters and once through the bundle configured with the same four
configurations as sections, and the two are compared field by field.
"""

from __future__ import annotations

import json
import re

import anthropic
import openai
import pytest

from conftest import validate_log_line
from harness import as_bundle, http_get

CARD = "4111 1111 1111 1111"
EMAIL = "jane.canary@example.com"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n-----END RSA PRIVATE KEY-----"
# Fields that differ between any two runs: ids, clocks, durations; and Envoy's response flags,
# which say how the client closed: the SDK closes a finished stream as soon as it has read
# `[DONE]`, sometimes before Envoy has sent the last empty chunk (`DC`), whatever the filters do.
VOLATILE = re.compile(r"(^timestamp$|duration_ms|time_to_first|per_second|^trace_id$|request_id|conversation\.id|agent\.id|"
                      r"agent_id|agent_run_id|response\.id$|^envoy\.response_flags$)")


def exercise(envoy, upstream) -> list[object]:
    """The scenarios: what each client call returned (or raised), in order."""
    oa = openai.OpenAI(base_url=envoy.url + "/v1", api_key="sk-test", max_retries=0, timeout=30)
    an = anthropic.Anthropic(base_url=envoy.url + "/anthropic", api_key="sk-ant-test", max_retries=0, timeout=30)
    seen: list[object] = []
    r = oa.chat.completions.create(model="gpt-4o-mini", user="user-1",
                                   messages=[{"role": "user", "content": f"card {CARD}, mail {EMAIL}, EMP-004211"}])
    seen.append(r.usage.model_dump())
    text = ""
    for chunk in oa.chat.completions.create(model="gpt-4o", stream=True, stream_options={"include_usage": True},
                                            messages=[{"role": "user", "content": "stream please"}]):
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
    seen.append(text)
    with an.messages.stream(model="claude-sonnet-4", max_tokens=64,
                            messages=[{"role": "user", "content": f"phone +1 415 555 0134, {EMAIL}"}]) as s:
        seen.append(s.get_final_message().usage.model_dump())
    upstream.scenario({"type": "fail", "status": 429, "retry_after": 2, "times": 1})
    with pytest.raises(openai.RateLimitError) as raised:
        oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    seen.append(raised.value.response.headers.get("x-llmobs-retry-after-ms"))
    with pytest.raises(openai.BadRequestError) as blocked:
        oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"key {PEM}"}])
    seen.append(blocked.value.code)
    return seen


def steady(line: dict) -> dict:
    return {k: v for k, v in line.items() if not VOLATILE.search(k)}


def llmock_bodies(upstream) -> list[dict]:
    _, body = http_get(upstream.url + "/_llmock/requests")
    return [r["body"] for r in json.loads(body)["requests"]]


def counters(envoy) -> dict[str, float]:
    """Every llmobs sample (the wasm memory gauge, the inspection-time histogram and build info
    aside), keyed by series."""
    out = {}
    for line in envoy.prometheus().splitlines():
        # build_info is one series per module: the bundle is one module where the pack is four.
        skip = ("wasm_memory", "inspect_us", "build_info")
        if line.startswith(("llmobs_", "envoy_llmobs_")) and not any(s in line for s in skip):
            series, value = line.rsplit(" ", 1)
            out[series.replace("llmobs_bundle", "PLUGIN").replace("llmobs_pii_redaction", "PLUGIN")] = float(value)
    return out


def test_the_bundle_leaves_what_the_four_separate_filters_leave(start_envoy, fresh_upstream):
    separate = start_envoy()
    from_separate = exercise(separate, fresh_upstream)
    bodies_separate = llmock_bodies(fresh_upstream)
    lines_separate = separate.wait_access_log(5)
    # The agent-iteration histogram (one observation per request that reached a provider: two
    # OpenAI, one Anthropic) reaches /stats/prometheus only at a stats flush; reading before it
    # compared an unflushed run with a flushed one (CI, Envoy 1.37).
    assert separate.wait_metric("llmobs_agent_iteration_count", 3) == 3
    counters_separate = counters(separate)
    separate.stop()

    fresh_upstream.reset()
    bundle = start_envoy(mutate=as_bundle)
    assert "llmobs_bundle" in bundle.config_dump() and "llmobs_token_accounting" not in bundle.config_dump()
    from_bundle = exercise(bundle, fresh_upstream)
    bodies_bundle = llmock_bodies(fresh_upstream)
    lines_bundle = bundle.wait_access_log(5)

    assert from_bundle == from_separate
    assert from_bundle[3] == "2000" and from_bundle[4] == "pii_blocked"
    assert bodies_bundle == bodies_separate
    assert CARD not in json.dumps(bodies_bundle) and EMAIL not in json.dumps(bodies_bundle)
    assert len(bodies_bundle) == 4, "the blocked request never reached the provider"
    for a, b in zip(lines_separate, lines_bundle):
        validate_log_line(b)
        assert steady(b) == steady(a)
    assert [line["gen_ai.usage.output_tokens"] for line in lines_bundle[:3]] == \
           [str(from_bundle[0]["completion_tokens"]), lines_bundle[1]["gen_ai.usage.output_tokens"],
            str(from_bundle[2]["output_tokens"])]
    assert bundle.wait_metric("llmobs_agent_iteration_count", 3) == 3
    assert counters(bundle) == counters_separate
    assert bundle.metric("llmobs_wasm_memory_bytes", plugin="llmobs_bundle") >= 65536
    assert bundle.metric("llmobs_build_info", module="llmobs_bundle") == 1
