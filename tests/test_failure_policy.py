"""End-to-end: each filter's Envoy `failure_policy`, proven by failing its VM on purpose.

The test-only VM environment variable `LLMOBS_TEST_TRAP` (filters/wasm-host/src/root.rs) makes a
request's first callback trap: `always` on every request, `once` on the first request of the
process. The policies (docs/filters/pii-redaction.md, "Failure policy"): the PII filter never lets
an unscanned body through (FAIL_CLOSED, or FAIL_RELOAD whose fallback is closed); the observers
fail open.
"""

from __future__ import annotations

import json
import time

from harness import _find_http_filters, http_get, post_json

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "mail jane.canary@example.com"}]}


def trap(name: str, mode: str, policy: str | None = None):
    """A config mutation: the wasm filter `name` traps (`mode`), under `policy` if given."""
    def mutate(config: dict) -> None:
        for f in _find_http_filters(config):
            wasm = f.get("typed_config", {}).get("config", {})
            if wasm.get("name") == name:
                env = wasm["vm_config"].setdefault("environment_variables", {})
                env.setdefault("key_values", {})["LLMOBS_TEST_TRAP"] = mode
                if policy:
                    wasm["failure_policy"] = policy
    return mutate


def bodies(upstream) -> list:
    return [r["body"] for r in json.loads(http_get(upstream.url + "/_llmock/requests")[1])["requests"]]


def test_a_failed_redaction_vm_refuses_requests_and_nothing_reaches_the_provider(start_envoy, fresh_upstream):
    envoy = start_envoy(mutate=trap("llmobs_pii_redaction", "always"))
    for _ in range(2):
        status, _, _ = post_json(envoy.url + "/v1/chat/completions", CHAT)
        assert status == 503, "FAIL_CLOSED: refused"
    assert bodies(fresh_upstream) == [], "no unscanned body reached the provider"
    assert "jane.canary" not in envoy.log_text(), "a failing VM leaks nothing into the log"
    assert envoy.proc.poll() is None, "Envoy stays up"


def test_a_failed_observer_vm_lets_traffic_through(start_envoy, fresh_upstream):
    envoy = start_envoy(mutate=trap("llmobs_token_accounting", "always"))
    # Envoy answers 503 to the one request in flight when a VM fails, whatever the policy.
    first, _, _ = post_json(envoy.url + "/v1/chat/completions", CHAT)
    assert first == 503
    for _ in range(3):
        status, _, body = post_json(envoy.url + "/v1/chat/completions", CHAT)
        assert status == 200, body[:200]
    assert len(bodies(fresh_upstream)) == 3, "FAIL_OPEN: later requests go on without the failed filter"
    sent = json.dumps(bodies(fresh_upstream))
    assert "jane.canary" not in sent, "the other filters (redaction) still ran"


def test_a_reloaded_redaction_vm_serves_requests_again_and_none_goes_unscanned(start_envoy, fresh_upstream):
    envoy = start_envoy(mutate=trap("llmobs_pii_redaction", "once", "FAIL_RELOAD"))
    statuses = []
    # Envoy reloads a failed VM after a backoff (about a second here); until then it refuses.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and 200 not in statuses:
        statuses.append(post_json(envoy.url + "/v1/chat/completions", CHAT)[0])
        time.sleep(0.2)
    assert statuses[0] == 503 and statuses[-1] == 200, statuses
    assert set(statuses[:-1]) == {503}, "before the reload every request is refused, none passes unscanned"
    (sent,) = bodies(fresh_upstream)
    assert "jane.canary" not in json.dumps(sent), "the fresh VM redacts again"
