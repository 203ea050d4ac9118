"""Evaluation export end to end (docs/filters/evaluation-export.md): the HTTP filters hand
consented exchanges to the singleton exporter service (dist/llmobs_eval_exporter.wasm), which
sends them as OTLP/HTTP logs to a real receiver decoding with the official `opentelemetry-proto`
messages. Only consented, unblocked, organic exchanges arrive, with their texts scrubbed; a
receiver that fails or is down never touches the traffic, and its failures are counted."""

from __future__ import annotations

import json
import uuid

import openai
import pytest

from harness import eval_exporting as exporting
from harness import chat_body, wait_until
from otlp_receiver import OtlpLogsReceiver

CANARY_EMAIL = "eval.canary.7f3a@example.com"
CANARY_CARD = "4111 1111 1111 1111"
PEM = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
       "-----END RSA PRIVATE KEY-----")


@pytest.fixture
def receiver():
    r = OtlpLogsReceiver()
    yield r
    r.stop()


def client(envoy) -> openai.OpenAI:
    return openai.OpenAI(base_url=envoy.url + "/v1", api_key="sk-test", max_retries=0)


@pytest.mark.parametrize("pack", ["separate", "bundle"])
def test_consented_exchanges_arrive_scrubbed_and_match_their_requests_and_no_other_does(start_envoy, receiver, pack):
    envoy = start_envoy(mutate=exporting(receiver.port, bundle=pack == "bundle"))
    oa = client(envoy)
    consent = {"x-llmobs-consent": "eval"}
    sent: dict[str, object] = {}
    for prompt in (f"Write to {CANARY_EMAIL} about card {CANARY_CARD}.", "What is the capital of France?"):
        rid = uuid.uuid4().hex
        sent[rid] = oa.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}],
            extra_headers={**consent, "x-request-id": rid, "x-conversation-id": "conv-eval"})
    # Not consented, a synthetic probe, a blocked request: none of them may arrive.
    absent = [uuid.uuid4().hex for _ in range(3)]
    oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "no consent"}],
                               extra_headers={"x-request-id": absent[0], "x-llmobs-consent": "no"})
    oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "probe"}],
                               extra_headers={**consent, "x-request-id": absent[1], "x-llmobs-synthetic": "true"})
    with pytest.raises(openai.BadRequestError):
        oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": PEM}],
                                   extra_headers={**consent, "x-request-id": absent[2]})

    wait_until(lambda: len(receiver.received()) >= 2, 10, "two evaluation records")
    assert envoy.wait_metric("llmobs_eval_export_exchanges", 1, result="blocked") == 1
    records = {r["attributes"]["llmobs.request_id"]: r for r in receiver.received()}
    assert set(records) == set(sent), "exactly the consented, organic, unblocked exchanges"
    for rid, response in sent.items():
        r = records[rid]
        a = r["attributes"]
        assert r["resource"]["service.name"] == "llmobs-e2e" and r["scope"] == "llmobs"
        assert a["event.name"] == "llmobs.eval.exchange" and a["llmobs.eval.consent"] == "header"
        assert a["gen_ai.conversation.id"] == "conv-eval"
        assert a["gen_ai.request.model"] == "gpt-4o-mini" and a["gen_ai.provider.name"] == "openai"
        assert a["gen_ai.usage.input_tokens"] == response.usage.prompt_tokens
        assert a["gen_ai.usage.output_tokens"] == response.usage.completion_tokens
        assert a["gen_ai.response.finish_reason"] == "stop"
        assert a["llmobs.pii.rule_set"].startswith("demo-1@")
        assert r["body"]["completion"] == response.choices[0].message.content[:400] or \
            len(response.choices[0].message.content) > 400
        assert r["body"]["prompt"]
    scrubbed = next(r for r in records.values() if "Write to" in r["body"]["prompt"])
    assert "EMAIL_k1_" in scrubbed["body"]["prompt"] and "[PAYMENT_CARD]" in scrubbed["body"]["prompt"]
    raw = receiver.raw_bytes()
    for canary in (CANARY_EMAIL.encode(), b"4111 1111", b"MIIEow", b"no consent", b"probe"):
        assert canary not in raw, canary
    assert receiver.requests[0] == {"path": "/v1/logs", "content_type": "application/x-protobuf"}
    assert envoy.metric("llmobs_eval_export_exchanges", result="enqueued") == 2
    assert envoy.metric("llmobs_eval_export_exchanges", result="no_consent") == 1
    assert envoy.metric("llmobs_eval_export_exchanges", result="synthetic") == 1
    assert envoy.wait_metric("llmobs_eval_export_records_sent", 2) == 2
    assert envoy.metric("llmobs_eval_export_batches", result="sent") >= 1
    assert envoy.metric("llmobs_eval_export_batches", result="failed") == 0


@pytest.mark.parametrize("receiver_state", ["answers_500", "slow", "down"])
def test_a_failing_receiver_never_touches_traffic_and_its_failures_and_drops_are_counted(
        start_envoy, receiver, receiver_state):
    if receiver_state == "answers_500":
        receiver.status = 500
    elif receiver_state == "slow":
        receiver.delay = 1.5  # past the exporter's timeout_ms: every send times out
    else:
        receiver.stop()
    retry = {"initial_backoff_ms": 50, "max_backoff_ms": 100, "max_attempts": 2}
    envoy = start_envoy(mutate=exporting(receiver.port, exporter={"retry": retry, "timeout_ms": 300}))
    oa = client(envoy)
    for _ in range(3):
        r = oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}],
                                       extra_headers={"x-llmobs-consent": "eval"})
        assert r.choices[0].message.content
    assert envoy.wait_metric("llmobs_eval_export_records_dropped", 3, timeout=15, reason="max_attempts") == 3
    assert envoy.metric("llmobs_eval_export_batches", result="failed") >= 2
    assert envoy.metric("llmobs_eval_export_batches", result="sent") == 0
    assert envoy.metric("llmobs_eval_export_queue_bytes") == 0, "nothing held once given up"
    if receiver_state == "answers_500":
        assert receiver.exports() >= 2, "each batch was tried again after its backoff"


def test_without_the_exporter_records_are_dropped_counted_and_requests_succeed(start_envoy, receiver):
    def no_service(config: dict) -> None:
        exporting(receiver.port)(config)
        config.pop("bootstrap_extensions")
    envoy = start_envoy(mutate=no_service)
    r = client(envoy).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                              extra_headers={"x-llmobs-consent": "eval"})
    assert r.choices[0].message.content
    assert envoy.wait_metric("llmobs_eval_export_records_dropped", 1, reason="no_exporter") == 1


def test_with_the_receiver_down_the_exporter_holds_no_more_than_its_cap_and_counts_the_rest(start_envoy, receiver):
    receiver.stop()
    # A batch that keeps failing is held for its retry: with a long backoff it stays, and the
    # queue behind it fills to the cap.
    limits = {"max_queued_records": 5, "batch_max_records": 2,
              "retry": {"initial_backoff_ms": 60000, "max_backoff_ms": 60000, "max_attempts": 20}}
    envoy = start_envoy(mutate=exporting(receiver.port, exporter=limits))
    oa = client(envoy)
    for _ in range(12):
        r = oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}],
                                       extra_headers={"x-llmobs-consent": "eval"})
        assert r.choices[0].message.content
    assert envoy.wait_metric("llmobs_eval_export_records_dropped", 7, reason="queue_full") == 7
    held = envoy.metric("llmobs_eval_export_queue_bytes")
    assert 0 < held <= 8 * 1024 * 1024
    assert envoy.metric("llmobs_eval_export_exchanges", result="enqueued") == 12


WASM_PAGE = 64 * 1024


def bounded(before: float, after: float) -> bool:
    """bench/soak.py's rule: linear memory grows by whole 64 KiB pages and never shrinks, so a
    module may grow by two pages or 5%, whichever is larger; a leak grows without end."""
    return after - before <= max(2 * WASM_PAGE, 0.05 * before)


def send_consented(envoy, count: int, threads: int = 4) -> list[int]:
    """`count` consented chat requests over `threads` keep-alive connections; their statuses."""
    import http.client
    from concurrent.futures import ThreadPoolExecutor

    body = json.dumps(chat_body("Please summarize our refund policy for a customer.")).encode()

    def worker(n: int) -> list[int]:
        conn = http.client.HTTPConnection("127.0.0.1", envoy.port, timeout=30)
        statuses = []
        for _ in range(n):
            conn.request("POST", "/v1/chat/completions", body,
                         {"content-type": "application/json", "x-llmobs-consent": "eval"})
            resp = conn.getresponse()
            resp.read()
            statuses.append(resp.status)
        conn.close()
        return statuses

    share = [count // threads + (i < count % threads) for i in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        return [s for part in pool.map(worker, share) for s in part]


def test_soak_with_the_receiver_down_keeps_the_exporter_and_the_filters_memory_flat(start_envoy, receiver):
    """Thousands of consented exchanges while the receiver is down: every batch fails, is retried
    and given up, and the queue behind it overflows; requests all succeed, every record is
    accounted for, and neither the exporter's nor the HTTP filters' linear memory grows after a
    warm-up that filled the queue to its cap."""
    receiver.stop()
    # Batches of 20 held half a second between their two attempts drain 40 records a second, far
    # fewer than the requests bring: the queue fills to its cap of 100 and overflows all along.
    limits = {"max_queued_records": 100, "batch_max_records": 20,
              "retry": {"initial_backoff_ms": 500, "max_backoff_ms": 500, "max_attempts": 2}}
    envoy = start_envoy(mutate=exporting(receiver.port, exporter=limits))
    plugins = ("llmobs_eval_exporter", "llmobs_pii_redaction", "llmobs_correlation", "llmobs_token_accounting")

    def memory() -> dict[str, float]:
        return {p: envoy.metric("llmobs_wasm_memory_bytes", plugin=p) for p in plugins}

    # Warm-up: enough records to fill the queue to its cap several times over.
    assert set(send_consented(envoy, 500)) == {200}
    wait_until(lambda: envoy.metric("llmobs_eval_export_records_dropped", reason="queue_full") > 0, 10,
               "the queue to have been full")
    before = memory()
    assert all(v >= WASM_PAGE for v in before.values()), before
    assert set(send_consented(envoy, 3000)) == {200}, "the receiver being down never fails a request"
    after = memory()
    grown = {p: (before[p], after[p]) for p in plugins if not bounded(before[p], after[p])}
    assert grown == {}, "linear memory (bytes before, after) grew past two pages or 5%"
    # Every record is accounted for: sent none, dropped (full queue or out of attempts) or still
    # held, and what is held stays under the record cap's bytes.
    enqueued = envoy.metric("llmobs_eval_export_exchanges", result="enqueued")
    assert enqueued == 3500
    assert envoy.metric("llmobs_eval_export_records_sent") == 0
    wait_until(lambda: envoy.metric("llmobs_eval_export_queue_bytes") == 0, 15, "the held batches to be given up")
    dropped = {r: envoy.metric("llmobs_eval_export_records_dropped", reason=r) for r in ("queue_full", "max_attempts")}
    assert dropped["queue_full"] > 0 and dropped["max_attempts"] > 0, dropped
    assert sum(dropped.values()) == enqueued, dropped
