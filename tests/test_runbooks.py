"""docs/runbooks.md, step by step, against real Envoy with the pack and llmock.

Each runbook's Envoy fragment is loaded from envoy/runbooks/ (the file the doc shows), merged into
the demo config the way the doc says, and driven with the official SDKs. Recovery is checked with
the doc's synthetic canary request: while shedding, and in a fresh Envoy without the fragments.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request

import anthropic
import openai
import pytest
import yaml

from conftest import validate_log_line
from harness import ROOT, hcm_of, wait_until

RUNBOOKS = ROOT / "envoy" / "runbooks"
DOC = ROOT / "docs" / "runbooks.md"
FRAGMENTS = sorted(RUNBOOKS.glob("*.yaml"))
PROBE = {"x-llmobs-synthetic": "true"}


def with_runbook(name: str, upstream_port: int):
    """A build_config `mutate` that applies envoy/runbooks/<name>.yaml as docs/runbooks.md says:
    routes first in the provider virtual host, HTTP filters just before the router, clusters
    added, `local_reply_config` set on the connection manager. Cluster addresses get the test's
    llmock port, as build_config does for `llmock`."""
    fragment = yaml.safe_load((RUNBOOKS / f"{name}.yaml").read_text())

    def mutate(config: dict) -> None:
        hcm = hcm_of(config)
        hcm["route_config"]["virtual_hosts"][0]["routes"][:0] = fragment.get("routes", [])
        hcm["http_filters"][-1:-1] = fragment.get("http_filters", [])
        if "local_reply_config" in fragment:
            hcm["local_reply_config"] = fragment["local_reply_config"]
        for cluster in fragment.get("clusters", []):
            for ep in cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]:
                ep["endpoint"]["address"]["socket_address"]["port_value"] = upstream_port
            config["static_resources"]["clusters"].append(cluster)

    return mutate


def llmock_models(upstream) -> list[str]:
    """The `model` of every request llmock served, from its own journal (it keeps bodies)."""
    with urllib.request.urlopen(upstream.url + "/_llmock/requests", timeout=10) as resp:
        return [r["model"] for r in json.loads(resp.read())["requests"]]


def openai_client(envoy, **headers) -> openai.OpenAI:
    return openai.OpenAI(base_url=envoy.url + "/v1", api_key="sk-test", max_retries=0, default_headers=headers)


def logged(envoy, count: int) -> list[dict]:
    lines = envoy.wait_access_log(count)
    for line in lines:
        validate_log_line(line)
    return lines


def canary(envoy, upstream, model: str = "gpt-4o-mini", **headers) -> dict:
    """The doc's recovery check: one synthetic probe succeeds through the provider route, and
    the probe counters move while organic ones do not. Returns the probe's access-log line."""
    organic_before = envoy.metric("llmobs_correlation_requests", synthetic="false")
    probes_before = envoy.metric("llmobs_correlation_requests", synthetic="true")
    accounted_before = envoy.metric("llmobs_token_accounting_requests", synthetic="true")
    seen_before = len(upstream.seen())
    raw = openai_client(envoy, **PROBE, **headers).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "canary"}], max_tokens=1)
    assert raw.parse().choices[0].message.content
    assert len(upstream.seen()) == seen_before + 1
    assert upstream.seen()[-1]["header_map"]["x-llmobs-synthetic"] == "true"
    # The probe's own log line, found by the request id the correlation filter echoed.
    request_id = raw.headers["x-request-id"]
    line = wait_until(lambda: next((entry for entry in envoy.access_log() if entry.get("llmobs.request_id") == request_id), None),
                      10, "the probe's access-log line")
    validate_log_line(line)
    assert (line["llmobs.synthetic"], line["http.response.status_code"]) == ("true", 200)
    assert "error.type" not in line
    # Counters are final once the log line is written (Envoy logs after the filters complete).
    assert envoy.metric("llmobs_correlation_requests", synthetic="true") == probes_before + 1
    assert envoy.metric("llmobs_token_accounting_requests", synthetic="true") == accounted_before + 1
    assert envoy.metric("llmobs_correlation_requests", synthetic="false") == organic_before
    assert envoy.metric("llmobs_errors", synthetic="true") == 0
    return line


def test_the_runbook_shows_every_fragment_exactly_as_the_tests_apply_it():
    doc = DOC.read_text()
    assert FRAGMENTS
    for fragment in FRAGMENTS:
        assert f"envoy/runbooks/{fragment.name}" in doc
        assert fragment.read_text() in doc, f"{fragment.name} differs from its copy in docs/runbooks.md"


def test_every_yaml_block_in_the_runbook_parses():
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) >= 6
    for block in blocks:
        assert [doc for doc in yaml.safe_load_all(block)], block[:200]


def test_a_disabled_prompt_version_is_refused_by_envoy_in_the_provider_error_shape(start_envoy, fresh_upstream):
    envoy = start_envoy(mutate=with_runbook("disable-prompt-version", fresh_upstream.port))
    with pytest.raises(openai.PermissionDeniedError) as raised:
        openai_client(envoy, **{"x-llmobs-prompt-version": "checkout-v7"}).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert raised.value.code == "prompt_version_disabled"
    assert "checkout-v7 is disabled" in raised.value.message
    an = anthropic.Anthropic(base_url=envoy.url + "/anthropic", api_key="sk-ant-test", max_retries=0,
                             default_headers={"x-llmobs-prompt-version": "checkout-v7"})
    with pytest.raises(anthropic.PermissionDeniedError) as raised_an:
        an.messages.create(model="claude-sonnet-4", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert raised_an.value.body["error"]["type"] == "permission_error"
    assert fresh_upstream.seen() == []
    for line, route in zip(logged(envoy, 2), ["runbook_disable_prompt_version", "runbook_disable_prompt_version_anthropic"]):
        assert (line["envoy.route_name"], line["http.response.status_code"]) == (route, 403)
        assert "envoy.upstream_cluster" not in line
        assert (line["error.type"], line["llmobs.error.origin"], line["llmobs.error.retryable"]) == (
            "permission_denied", "gateway", "false")
    assert envoy.metric("llmobs_errors", error_type="permission_denied", origin="gateway") == 2

    # Other versions still reach the provider.
    openai_client(envoy, **{"x-llmobs-prompt-version": "checkout-v8"}).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert len(fresh_upstream.seen()) == 1


def test_the_fallback_route_sends_the_failing_model_to_the_fallback_model_and_logs_both(start_envoy, fresh_upstream):
    envoy = start_envoy(mutate=with_runbook("fallback-model", fresh_upstream.port))
    oa = openai_client(envoy)
    reply = oa.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert reply.model == "gpt-4o-mini"
    # Another model on the fallback route passes unchanged.
    oa.chat.completions.create(model="o3-mini", messages=[{"role": "user", "content": "x"}])
    assert llmock_models(fresh_upstream) == ["gpt-4o-mini", "o3-mini"]
    first, second = fresh_upstream.seen()
    assert first["header_map"]["x-llmobs-fallback-from"] == "gpt-4o"
    assert "x-llmobs-fallback-from" not in second["header_map"]
    line = logged(envoy, 2)[0]
    assert (line["envoy.route_name"], line["envoy.upstream_cluster"]) == ("runbook_fallback_model", "llm_fallback")
    assert (line["gen_ai.request.model"], line["gen_ai.response.model"]) == ("gpt-4o", "gpt-4o-mini")
    assert "error.type" not in line


def test_shedding_load_answers_a_structured_503_with_retry_after_while_probes_still_pass(start_envoy, fresh_upstream):
    envoy = start_envoy(mutate=with_runbook("shed-load", fresh_upstream.port))
    with pytest.raises(openai.InternalServerError) as raised:
        openai_client(envoy).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    err = raised.value
    assert (err.status_code, err.response.headers["retry-after"]) == (503, "5")
    assert err.response.headers["content-type"] == "application/json"
    assert (err.code, err.body["type"]) == ("load_shed", "overloaded")
    assert fresh_upstream.seen() == []
    line = logged(envoy, 1)[0]
    assert (line["envoy.route_name"], line["error.type"], line["llmobs.error.origin"]) == (
        "runbook_shed_load", "overloaded", "gateway")
    assert (line["llmobs.error.retryable"], line["llmobs.error.retry_after_ms"]) == ("true", "5000")

    # Anthropic clients get their own overloaded shape.
    an = anthropic.Anthropic(base_url=envoy.url + "/anthropic", api_key="sk-ant-test", max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as raised_an:
        an.messages.create(model="claude-sonnet-4", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert (raised_an.value.status_code, raised_an.value.body["error"]["type"]) == (529, "overloaded_error")

    # Probes pass while organic traffic is shed: they show when the provider is healthy again.
    canary(envoy, fresh_upstream)
    assert envoy.metric("llmobs_errors", error_type="overloaded", origin="gateway", synthetic="false") == 2

    # The SDK's own retry honours retry-after: one retry, five seconds later, shed again.
    retrying = openai.OpenAI(base_url=envoy.url + "/v1", api_key="sk-test", max_retries=1)
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError):
        retrying.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert time.monotonic() - started >= 5
    assert envoy.wait_metric("llmobs_errors", 4, error_type="overloaded", synthetic="false") == 4


def test_with_the_fragments_removed_the_canaries_show_recovery_from_every_runbook(start_envoy, fresh_upstream):
    # Removing any fragment gives back the plain pack config: one Envoy checks every runbook.
    envoy = start_envoy()
    # The disabled version is served again.
    canary(envoy, fresh_upstream, **{"x-llmobs-prompt-version": "checkout-v7"})
    # The original model is served as itself, through the primary route and cluster.
    line = canary(envoy, fresh_upstream, model="gpt-4o")
    assert llmock_models(fresh_upstream) == ["gpt-4o-mini", "gpt-4o"]
    assert (line["envoy.route_name"], line["envoy.upstream_cluster"], line["gen_ai.response.model"]) == (
        "openai", "llmock", "gpt-4o")
    # Organic traffic is no longer shed.
    openai_client(envoy).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert len(fresh_upstream.seen()) == 3
    assert envoy.metric("llmobs_correlation_requests", synthetic="true") == 2
    assert envoy.metric("llmobs_correlation_requests", synthetic="false") == 1


def test_shedding_above_a_rate_serves_the_bucket_and_answers_the_rest_with_a_structured_503(start_envoy, fresh_upstream):
    mutate = with_runbook("shed-load-above-rate", fresh_upstream.port)

    def small_bucket(config: dict) -> None:
        mutate(config)
        # The rate is the knob on-call sets; a bucket of 2 that never refills during the test
        # makes the third request the first one shed, on any machine.
        (limit,) = [f for f in hcm_of(config)["http_filters"] if f["name"] == "envoy.filters.http.local_ratelimit"]
        limit["typed_config"]["token_bucket"] = {"max_tokens": 2, "tokens_per_fill": 2, "fill_interval": "3600s"}

    envoy = start_envoy(mutate=small_bucket)
    oa = openai_client(envoy)
    for _ in range(2):
        oa.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.InternalServerError) as raised:
        oa.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    err = raised.value
    assert (err.status_code, err.response.headers["retry-after"], err.response.headers["content-type"]) == (
        503, "1", "application/json")
    assert (err.code, err.body["type"]) == ("load_shed", "overloaded")
    an = anthropic.Anthropic(base_url=envoy.url + "/anthropic", api_key="sk-ant-test", max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as raised_an:
        an.messages.create(model="claude-sonnet-4", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert (raised_an.value.status_code, raised_an.value.body["error"]["type"]) == (529, "overloaded_error")
    assert len(fresh_upstream.seen()) == 2
    shed = [line for line in logged(envoy, 4) if line["http.response.status_code"] != 200]
    assert [line["http.response.status_code"] for line in shed] == [503, 529]
    for line in shed:
        assert (line["envoy.response_flags"], line["error.type"], line["llmobs.error.origin"]) == ("RL", "overloaded", "gateway")
        assert (line["llmobs.error.retryable"], line["llmobs.error.retry_after_ms"]) == ("true", "1000")
    assert envoy.metric("llmobs_errors", error_type="overloaded", origin="gateway") == 2
    assert envoy.metric("envoy_http_local_rate_limit_rate_limited", envoy_local_http_ratelimit_prefix="llm_shed") == 2
