"""End-to-end: client feedback answered by the correlation filter inside the real Envoy, from
the documented Python and TypeScript clients (docs/examples/), next to the official OpenAI SDK
call it rates; the separate correlation filter and the bundle alike.

A feedback request is answered 204 by the filter and never reaches the upstream; its access-log
line carries the rated request's id, so it joins that request's own line. Bad input gets a
structured refusal, is counted, and is never forwarded.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess

import httpx
import openai
import pytest

from conftest import validate_log_line
from harness import ROOT, as_bundle, hcm_of, post_json, raw_request

FEEDBACK = "/llmobs/v1/feedback"
CANARY = "jane.canary@example.com"
MODES = {"separate": None, "bundle": as_bundle}


def python_client():
    spec = importlib.util.spec_from_file_location("llmobs_feedback", ROOT / "docs" / "examples" / "llmobs_feedback.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def typescript_send(tmp_path, gateway: str, feedback: dict, prompt_version: str) -> str:
    """Compiles docs/examples/llmobs-feedback.ts with tsc and calls sendFeedback from Node."""
    out = tmp_path / "ts"
    shutil.copy(ROOT / "docs" / "examples" / "llmobs-feedback.ts", tmp_path / "llmobs-feedback.ts")
    subprocess.run(["tsc", "--strict", "--target", "es2022", "--module", "commonjs", "--lib", "es2022,dom",
                    "--outDir", str(out), str(tmp_path / "llmobs-feedback.ts")], check=True, timeout=120)
    driver = ("const { sendFeedback } = require('./llmobs-feedback.js');"
              "sendFeedback(process.argv[1], JSON.parse(process.argv[2]), process.argv[3])"
              ".then(ok => console.log(String(ok)));")
    done = subprocess.run(["node", "-e", driver, gateway, json.dumps(feedback), prompt_version],
                          cwd=out, capture_output=True, text=True, check=True, timeout=60)
    return done.stdout.strip()


def feedback_lines(envoy) -> list[dict]:
    return [line for line in envoy.access_log() if line.get("url.path") == FEEDBACK]


@pytest.mark.parametrize("mode", MODES)
def test_feedback_from_the_python_and_typescript_clients_is_answered_204_and_joins_the_rated_request(
        start_envoy, fresh_upstream, tmp_path, mode):
    envoy = start_envoy(mutate=MODES[mode])
    client = openai.OpenAI(base_url=envoy.url + "/v1", api_key="sk-test", max_retries=0, timeout=30)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}],
        extra_headers={"x-llmobs-tenant": "acme", "x-conversation-id": "conv-7"})
    raw.parse()
    rated = raw.headers["x-request-id"]

    sent = python_client().send_feedback(
        envoy.url, rated, "down", conversation_id="conv-7", task_completed=False, locale="de-CH",
        ticket_url=f"https://support.example/t/42?reporter={CANARY}", prompt_version="support-v7")
    assert sent is True
    ts = typescript_send(tmp_path, envoy.url, {"request_id": rated, "rating": "up", "locale": "fr-FR"}, "support-v7")
    assert ts == "true"

    assert [r["path"] for r in fresh_upstream.seen()] == ["/v1/chat/completions"], "feedback never goes upstream"
    lines = envoy.wait_access_log(3)
    for line in lines:
        validate_log_line(line)
    chat = next(line for line in lines if line.get("url.path") == "/v1/chat/completions")
    assert chat["llmobs.request_id"] == rated
    down, up = feedback_lines(envoy)
    for line in (down, up):
        assert line["http.response.status_code"] == 204
        assert line["llmobs.feedback.request_id"] == chat["llmobs.request_id"], "joins the rated request's line"
        assert line["llmobs.feedback.prompt_version"] == "support-v7"
        assert "envoy.upstream_cluster" not in line or line["envoy.upstream_cluster"] in ("-", "")
    assert (down["llmobs.feedback.rating"], down["llmobs.feedback.locale"]) == ("down", "de-CH")
    assert down["llmobs.feedback.conversation_id"] == "conv-7"
    assert down["llmobs.feedback.task_completed"] == "false"
    assert down["llmobs.feedback.ticket_url"] == "https://support.example/t/42"
    assert (up["llmobs.feedback.rating"], up["llmobs.feedback.locale"]) == ("up", "fr-FR")
    assert CANARY not in envoy.access_log_path.read_text()
    assert CANARY not in envoy.log_text()

    labels = {"kind": "feedback", "tenant": "unknown", "prompt_version": "support-v7", "synthetic": "false"}
    assert envoy.metric("llmobs_feedback_received", rating="down", locale="de-CH", **labels) == 1
    assert envoy.metric("llmobs_feedback_received", rating="up", locale="fr-FR", **labels) == 1
    assert envoy.metric("llmobs_feedback_rejected") == 0


@pytest.mark.parametrize("mode", MODES)
def test_bad_feedback_gets_a_structured_refusal_is_counted_and_never_forwarded(start_envoy, fresh_upstream, mode):
    envoy = start_envoy(mutate=MODES[mode])
    url = envoy.url + FEEDBACK
    bad_bodies = [
        (b'{"request_id": "r1", "rating": "meh"}', 400, "rating"),
        (json.dumps({"request_id": "r1", "rating": "up", "comment": f"mail {CANARY}"}).encode(), 400, "unknown_field"),
        (b'{"request_id": "r1", "rating": "up", "rating": "down"}', 400, "duplicate_field"),
        (f"not json {CANARY}".encode(), 400, "json"),
        (json.dumps({"request_id": CANARY, "rating": "up"}).encode(), 400, "request_id"),
        # An address in the ticket URL's path would be logged with it (only the query is cut).
        (json.dumps({"request_id": "r1", "rating": "up", "ticket_url": f"https://support.example/t/{CANARY}"}).encode(),
         400, "ticket_url"),
        (b'{"request_id": "r1", "rating": "up", "pad": "' + b"x" * 10000 + b'"}', 413, "too_large"),
    ]
    for body, status, reason in bad_bodies:
        got, headers, payload = post_json(url, body)
        assert got == status, (body[:60], got, payload)
        assert headers["content-type"] == "application/json"
        assert json.loads(payload)["error"] == {"type": "invalid_feedback", "reason": reason,
                                                "message": json.loads(payload)["error"]["message"]}
    # Over the limit without a stated length (chunked): refused once the held bytes pass it.
    chunked = httpx.post(url, content=iter([b'{"request_id": "r1", "pad": "', b"y" * 8000, b'"}']),
                         headers={"content-type": "application/json"}, timeout=10)
    assert chunked.status_code == 413
    wrong_method = httpx.get(url, timeout=10)
    assert (wrong_method.status_code, wrong_method.headers["allow"]) == (405, "POST")
    wrong_type = httpx.post(url, content=b'{"request_id": "r1", "rating": "up"}',
                            headers={"content-type": "text/plain"}, timeout=10)
    assert (wrong_type.status_code, wrong_type.json()["error"]["reason"]) == (415, "content_type")

    assert fresh_upstream.seen() == [], "nothing reached the upstream"
    expected = {"rating": 1, "unknown_field": 1, "duplicate_field": 1, "json": 1, "request_id": 1,
                "ticket_url": 1, "too_large": 2, "method": 1, "content_type": 1}
    for reason, count in expected.items():
        assert envoy.metric("llmobs_feedback_rejected", reason=reason) == count, reason
    assert envoy.metric("llmobs_feedback_received") == 0
    lines = envoy.wait_access_log(10)
    for line in lines:
        validate_log_line(line)
    assert sorted(line["llmobs.feedback.rejected"] for line in lines) == sorted(
        r for r, n in expected.items() for _ in range(n))
    assert CANARY not in envoy.access_log_path.read_text()
    assert CANARY not in envoy.log_text()


def test_a_feedback_line_is_logged_even_when_sampling_drops_successes(start_envoy, fresh_upstream):
    envoy = start_envoy({"llmobs_correlation": {"sample_rate": 0.0, "feedback": {"path": FEEDBACK}}})
    status, _, _ = post_json(envoy.url + "/v1/chat/completions",
                             {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert status == 200
    status, _, _ = post_json(envoy.url + FEEDBACK, {"request_id": "r-unsampled", "rating": "up"})
    assert status == 204
    lines = envoy.wait_access_log(1)
    assert [line.get("llmobs.feedback.request_id") for line in lines] == ["r-unsampled"], \
        "the sampled-out chat line is dropped, the feedback line kept"


def test_without_a_feedback_path_the_applications_own_route_gets_the_request(start_envoy, fresh_upstream):
    def app_route(config):
        routes = hcm_of(config)["route_config"]["virtual_hosts"][0]["routes"]
        routes.insert(0, {"name": "app", "match": {"prefix": "/llmobs/"}, "route": {"cluster": "llmock"}})

    envoy = start_envoy({"llmobs_correlation": {}}, mutate=app_route)
    post_json(envoy.url + FEEDBACK, {"request_id": "r1", "rating": "up"})
    assert [r["path"] for r in fresh_upstream.seen()] == [FEEDBACK]
    assert envoy.metric("llmobs_feedback_received") == 0


@pytest.mark.parametrize("mode", MODES)
def test_feedback_over_http2_and_with_expect_100_continue_is_answered_too(start_envoy, fresh_upstream, mode):
    envoy = start_envoy(mutate=MODES[mode])
    body = json.dumps({"request_id": "r1", "rating": "up", "ticket_url": "https://h/" + "a" * 2000}).encode()
    with httpx.Client(http1=False, http2=True, timeout=10) as h2:
        r = h2.post(envoy.url + FEEDBACK, content=body, headers={"content-type": "application/json"})
        assert (r.http_version, r.status_code) == ("HTTP/2", 204)
    # Clients such as curl ask for 100-continue before a larger body; the answer still comes
    # from the filter once the body is read.
    head = (f"POST {FEEDBACK} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nexpect: 100-continue\r\n\r\n").encode()
    answer = raw_request(envoy.port, head + body, timeout=2)
    assert b"HTTP/1.1 204" in answer, answer[:200]
    assert fresh_upstream.seen() == []
    assert envoy.metric("llmobs_feedback_received", rating="up") == 2
