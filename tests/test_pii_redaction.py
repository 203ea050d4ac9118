"""End-to-end: the PII redaction filter inside the real Envoy, in front of llmock (or the fixture
replayer), driven by the official openai and anthropic SDKs.

The demo config (envoy/demo.yaml) runs the filter in `both` mode: emails and phones
pseudonymized, private keys blocked, everything else redacted, an `employee_id` custom rule, the
`user` field removed, a system-prompt fingerprint and content capture.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import re
import shutil
import time

import anthropic
import openai
import pytest
import yaml

from conftest import validate_log_line
from harness import PII_KEY_B64, ROOT, Envoy, as_bundle, build_config, http_get, post_json, route_everything_to

CARD = "4111 1111 1111 1111"
EMAIL = "jane.canary@example.com"
# Canary values: unique strings that must never appear in any sink.
CANARIES = {
    "card": "5500 0000 0000 0004",
    "email": "canary.7f3a@example.org",
    "openai_key": "sk-proj-Zq8x2Lw9Rt4Yv7Bn3Mk6Pd1Hs5Jf0Gc8Xa2We4Qr7Ty9Ui3Op6As1Df5Gh8Jk2Lz4",
    "ssn": "536-22-8714",
    # Issue 13's entities: a national phone writing, a 19-digit Maestro, a keyword-gated national
    # id, a printed CPF.
    "phone": "044 668 18 07",
    "maestro": "6759 1234 5678 9012 342",
    "nhs": "NHS 943 476 5919",
    "cpf": "529.982.247-25",
}
PII_FILTER = "llmobs_pii_redaction"


def demo_pii_config() -> dict:
    config = yaml.safe_load((ROOT / "envoy" / "demo.yaml").read_text())
    for f in config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]:
        wasm = f.get("typed_config", {}).get("config", {})
        if wasm.get("name") == PII_FILTER:
            return json.loads(wasm["configuration"]["value"])
    raise AssertionError("the demo config has no PII filter")


def openai_client(envoy, **headers) -> openai.OpenAI:
    return openai.OpenAI(base_url=envoy.url + "/v1", api_key="sk-test", max_retries=0, timeout=30,
                         default_headers=headers or None)


def llmock_bodies(upstream) -> list[dict]:
    _, body = http_get(upstream.url + "/_llmock/requests")
    return [r["body"] for r in json.loads(body)["requests"]]


def test_traffic_mode_rewrites_what_the_provider_receives_and_the_sdk_still_parses(start_envoy, fresh_upstream):
    envoy = start_envoy()
    client = openai_client(envoy)
    reply = client.chat.completions.create(
        model="gpt-4o-mini",
        user="user-8842",
        messages=[
            {"role": "system", "content": "You are a billing assistant. Today is 2026-11-27."},
            {"role": "user", "content": f"Charge {CARD} and mail {EMAIL}; I am EMP-004211 \"quoted\" \\ é"},
        ],
    )
    assert reply.choices[0].message.content
    (sent,) = llmock_bodies(fresh_upstream)
    text = sent["messages"][1]["content"]
    assert CARD not in text and EMAIL not in text and "EMP-004211" not in text
    assert "[PAYMENT_CARD]" in text and "[EMPLOYEE_ID]" in text
    assert re.search(r"EMAIL_k1_[0-9a-f]{16}", text), text
    assert text.endswith("\"quoted\" \\ é"), "escaping survives the rewrite"
    assert "user" not in sent, "a block-listed field never reaches the provider"
    (line,) = envoy.wait_access_log(1)
    validate_log_line(line)
    assert line["llmobs.pii.outcome"] == "redacted"
    assert line["llmobs.pii.detections"] == "request:email=1,request:employee_id=1,request:payment_card=1"
    assert line["llmobs.pii.rule_set"].startswith("demo-1@")
    assert re.fullmatch(r"k1:[0-9a-f]{16}", line["llmobs.prompt_fingerprint"])
    assert "[PAYMENT_CARD]" in line["llmobs.capture.last_user"]
    assert envoy.wait_metric("llmobs_pii_detections", 1, entity="email", action="pseudonymize", direction="request") == 1
    assert envoy.metric("llmobs_pii_detections", entity="payment_card", action="redact", direction="request") == 1


def pseudonym(entity: str, value: str) -> str:
    """The filter's pseudonym, computed independently from its documented definition:
    `<ENTITY>_<key id>_<first 8 bytes of HMAC-SHA256(key, entity NUL value), hex>`."""
    mac = hmac.new(base64.b64decode(PII_KEY_B64), entity.encode() + b"\0" + value.encode(), hashlib.sha256)
    return f"{entity.upper()}_k1_{mac.hexdigest()[:16]}"


def test_pseudonyms_the_model_echoes_are_restored_for_the_client_only(start_envoy, fresh_upstream):
    config = {**demo_pii_config(), "mode": "traffic", "restore_pseudonyms": True}
    envoy = start_envoy({PII_FILTER: config})
    alias = pseudonym("email", EMAIL)
    fresh_upstream.scenario({"type": "reply", "text": f"I will write to {alias} today.", "times": 2})
    client = openai_client(envoy)
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"mail {EMAIL}"}])
    assert llmock_bodies(fresh_upstream)[0]["messages"][0]["content"] == f"mail {alias}", "the key and format are as documented"
    assert reply.choices[0].message.content == f"I will write to {EMAIL} today."
    stream = client.chat.completions.create(model="gpt-4o-mini", stream=True,
                                            messages=[{"role": "user", "content": f"mail {EMAIL}"}])
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == f"I will write to {EMAIL} today."
    envoy.wait_access_log(2)
    assert EMAIL not in envoy.access_log_path.read_text(), "restored values are for the client only"
    assert envoy.wait_metric("llmobs_pii_restored", 2) == 2


def test_the_prompt_fingerprint_is_stable_across_dynamic_parts_and_changes_with_the_prompt(start_envoy, fresh_upstream):
    envoy = start_envoy()
    client = openai_client(envoy)
    for system in ["You are terse. Today is 2026-11-27.", "You are  terse.\nToday is 2027-01-02.", "You are verbose."]:
        client.chat.completions.create(model="gpt-4o-mini", messages=[
            {"role": "system", "content": system}, {"role": "user", "content": "hi"}])
    lines = envoy.wait_access_log(3)
    prints = [line["llmobs.prompt_fingerprint"] for line in lines]
    assert prints[0] == prints[1] != prints[2]


def test_a_card_and_an_email_streamed_one_character_per_event_never_reach_the_client(start_envoy, replay):
    envoy = start_envoy(mutate=lambda c: route_everything_to(c, replay.port))
    client = openai_client(envoy, **{"x-fixture": "openai-chat-stream-pii-char-per-event"})
    stream = client.chat.completions.create(model="gpt-4o-mini", stream=True,
                                            messages=[{"role": "user", "content": "Confirm my card and email."}])
    chunks = [c.choices[0].delta.content or "" for c in stream if c.choices]
    text = "".join(chunks)
    assert CARD not in text and EMAIL not in text and "jane.canary" not in text
    assert text.startswith("Your card [PAYMENT_CARD] is on file; write to EMAIL_k1_")
    assert text.endswith(" — merci, café ☕."), "every other character arrives, in order"
    (line,) = envoy.wait_access_log(1)
    validate_log_line(line)
    assert line["llmobs.pii.detections"] == "response:email=1,response:payment_card=1"
    assert line["llmobs.stream_outcome"] == "completed", "token accounting still read the whole stream"
    assert CARD not in line.get("llmobs.capture.completion", "")


def test_anthropic_sdk_streams_are_redacted_across_word_events(start_envoy, fresh_upstream):
    envoy = start_envoy()
    fresh_upstream.scenario({"type": "reply", "text": f"Card on file: {CARD}. Contact {EMAIL} or call +1 415 555 0132.", "times": 1})
    client = anthropic.Anthropic(base_url=envoy.url + "/anthropic", api_key="sk-ant-test", max_retries=0, timeout=30)
    with client.messages.stream(model="claude-3-5-haiku-latest", max_tokens=64,
                                messages=[{"role": "user", "content": "What is on file?"}]) as stream:
        text = "".join(stream.text_stream)
    assert CARD not in text and EMAIL not in text and "555 0132" not in text
    assert "[PAYMENT_CARD]" in text
    assert re.search(r"PHONE_k1_[0-9a-f]{16}", text), text


def test_responses_api_streams_are_redacted_in_the_deltas_and_in_the_final_copy(start_envoy, fresh_upstream):
    envoy = start_envoy()
    fresh_upstream.scenario({"type": "reply", "text": f"Your card {CARD} is on file.", "times": 1})
    client = openai_client(envoy)
    deltas, final = [], None
    with client.responses.stream(model="gpt-4o-mini", input="Which card is on file?") as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    streamed = "".join(deltas)
    assert CARD not in streamed and "[PAYMENT_CARD]" in streamed, streamed
    assert final.output_text == streamed, "the completed response's copy is redacted the same way"
    (line,) = envoy.wait_access_log(1)
    validate_log_line(line)
    assert line["llmobs.pii.detections"] == "response:payment_card=1", "each value counted once"


def test_a_blocked_entity_refuses_the_request_with_an_error_the_sdk_raises(start_envoy, fresh_upstream):
    envoy = start_envoy()
    client = openai_client(envoy)
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n-----END RSA PRIVATE KEY-----"
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"fix {pem}"}])
    assert raised.value.code == "pii_blocked"
    assert "private_key" in raised.value.message and "MIIEow" not in str(raised.value.body)
    assert llmock_bodies(fresh_upstream) == [], "the provider is never called"
    (line,) = envoy.wait_access_log(1)
    validate_log_line(line)
    assert line["llmobs.pii.outcome"] == "blocked"
    assert envoy.wait_metric("llmobs_pii_blocked", 1, reason="entity") == 1


def test_requests_over_the_inspection_limit_follow_the_named_policy(start_envoy, fresh_upstream):
    # Under llmock's 256 KiB journal limit, so what it received can be compared.
    big = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"{EMAIL} " + "x" * 150_000}]}
    body = json.dumps(big).encode()
    for policy, want in [("block", 413), ("pass", 200)]:
        config = {**demo_pii_config(), "max_inspected_bytes": 100_000, "over_limit": policy}
        envoy = start_envoy({PII_FILTER: config})
        fresh_upstream.reset()
        status, _, reply = post_json(envoy.url + "/v1/chat/completions", body)
        assert status == want, reply[:300]
        if policy == "block":
            assert json.loads(reply)["error"]["type"] == "request_too_large"
            assert llmock_bodies(fresh_upstream) == []
        else:
            (sent,) = llmock_bodies(fresh_upstream)
            assert sent == big, "passed whole and unchanged (uninspected, flagged)"
        assert envoy.wait_metric("llmobs_pii_skipped", 1, direction="request", reason="over_limit") == 1
        envoy.stop()


def test_a_compressed_request_is_refused_when_nothing_unscanned_may_reach_the_provider(start_envoy, fresh_upstream):
    body = gzip.compress(json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": EMAIL}]}).encode())
    headers = {"content-encoding": "gzip"}
    for policy, want in [("block", 415), ("pass", None)]:
        envoy = start_envoy({PII_FILTER: {**demo_pii_config(), "mode": "traffic", "uninspectable": policy}})
        fresh_upstream.reset()
        status, _, reply = post_json(envoy.url + "/v1/chat/completions", body, headers)
        if want:
            assert status == want and json.loads(reply)["error"]["code"] == "unsupported_body"
            assert llmock_bodies(fresh_upstream) == [], "nothing unscanned reached the provider"
            assert envoy.wait_metric("llmobs_pii_blocked", 1, reason="uninspectable") == 1
        else:
            assert status != 415 and len(fresh_upstream.seen()) == 1, "passed on, unscanned"
        assert envoy.wait_metric("llmobs_pii_skipped", 1, direction="request", reason="compressed") == 1
        envoy.stop()


def send_canaries(envoy, mode: str) -> None:
    text = "; ".join(f"{k}: {v}" for k, v in CANARIES.items())
    headers = {"x-canary-card": CANARIES["card"], "x-canary-key": CANARIES["openai_key"],
               "cookie": f"session={CANARIES['email']}"}
    client = openai_client(envoy, **headers)
    client.chat.completions.create(model="gpt-4o-mini", messages=[
        {"role": "system", "content": f"Operator notes: {text}"}, {"role": "user", "content": text}])
    stream = client.chat.completions.create(model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": text}])
    for _ in stream:
        pass


@pytest.mark.parametrize("mode,pack", [("telemetry", "separate_filters"), ("traffic", "separate_filters"),
                                       ("both", "separate_filters"), ("telemetry", "bundle"), ("both", "bundle")])
def test_canaries_never_reach_a_log_stat_config_dump_or_in_traffic_mode_the_provider(start_envoy, fresh_upstream, mode,
                                                                                     pack):
    config = {**demo_pii_config(), "mode": mode, "entities": {}, "default_action": "redact",
              "capture": {"parts": ["last_user", "system", "completion"], "max_bytes": 2048}}
    envoy = start_envoy({PII_FILTER: config}, mutate=as_bundle if pack == "bundle" else None)
    # llmock echoes nothing of the prompt by default; make the model say the canaries back.
    # `; ` between them: digits right before a number would make it part of a longer one.
    fresh_upstream.scenario({"type": "reply", "text": "; ".join(CANARIES.values()), "times": 2})
    send_canaries(envoy, mode)
    envoy.wait_access_log(2)
    time.sleep(0.5)
    sinks = {
        "access log": envoy.access_log_path.read_text(),
        "envoy log (info, wasm at trace)": envoy.log_text(),
        "stats": http_get(envoy.admin + "/stats")[1].decode(),
        "prometheus": envoy.prometheus(),
        "config_dump": envoy.config_dump(),
    }
    if mode != "telemetry":
        sinks["what llmock received"] = json.dumps(llmock_bodies(fresh_upstream))
    for sink, content in sinks.items():
        for name, value in CANARIES.items():
            assert value not in content, f"{mode}: {name} canary in {sink}"
        assert PII_KEY_B64 not in content, f"{mode}: the pseudonym key in {sink}"
    if mode == "telemetry":
        # Telemetry mode never changes traffic: the provider got the canaries as sent.
        assert CANARIES["email"] in json.dumps(llmock_bodies(fresh_upstream))
    for line in envoy.access_log():
        validate_log_line(line)


def ecds_bootstrap(tmp, upstream_port: int, rules_path) -> tuple[dict, dict]:
    """The demo bootstrap with the PII filter's configuration served by file-based ECDS."""
    config, ports = build_config(tmp, upstream_port)
    config["node"] = {"id": "llmobs-test", "cluster": "llmobs"}  # file-based xDS needs one
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    for i, f in enumerate(hcm["http_filters"]):
        if f.get("typed_config", {}).get("config", {}).get("name") == PII_FILTER:
            hcm["http_filters"][i] = {"name": "llmobs.pii_redaction", "config_discovery": {
                "config_source": {"path_config_source": {"path": str(rules_path),
                                                         "watched_directory": {"path": str(rules_path.parent)}}},
                "type_urls": ["type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"]}}
    return config, ports


def write_rules(rules_path, pii_config: dict) -> None:
    """Writes the ECDS resource as security's pipeline would: a new file moved into place."""
    template = yaml.safe_load((ROOT / "envoy" / "ecds" / "pii-redaction-rules.yaml").read_text())
    wasm = template["resources"][0]["typed_config"]
    wasm["config"]["vm_config"]["code"]["local"]["filename"] = str(ROOT / "dist" / "llmobs_pii_redaction.wasm")
    wasm["config"]["configuration"]["value"] = json.dumps(pii_config)
    staging = rules_path.parent.parent / "rules.staging.yaml"
    staging.write_text(yaml.safe_dump(template))
    shutil.move(str(staging), str(rules_path))


def test_rule_updates_apply_on_the_next_request_and_a_bad_rule_keeps_the_previous_rules(tmp_path, fresh_upstream):
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    rules_path = rules_dir / "pii-redaction-rules.yaml"
    base = {**demo_pii_config(), "rule_set_version": "2026-11-01", "custom_rules": []}
    write_rules(rules_path, base)
    workdir = tmp_path / "envoy"
    workdir.mkdir()
    config, ports = ecds_bootstrap(workdir, fresh_upstream.port, rules_path)
    envoy = Envoy(workdir, config, ports)
    try:
        client = openai_client(envoy)

        def send(text: str) -> str:
            fresh_upstream.reset()
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])
            return llmock_bodies(fresh_upstream)[0]["messages"][0]["content"]

        assert send("I am EMP-004211") == "I am EMP-004211", "no employee rule yet"
        reloads = envoy.metric("envoy_extension_config_discovery_http_filter_llmobs_pii_redaction_config_reload")
        updated = {**base, "rule_set_version": "2026-11-27",
                   "custom_rules": [{"entity": "employee_id", "pattern": "EMP-[0-9]{6}", "action": "redact"}]}
        write_rules(rules_path, updated)
        envoy.wait_metric("envoy_extension_config_discovery_http_filter_llmobs_pii_redaction_config_reload", reloads + 1)
        assert send("I am EMP-004211") == "I am [EMPLOYEE_ID]", "the new rule applies on the next request"
        assert envoy.wait_metric("llmobs_pii_rule_set", 1, rule_set_version="2026-11-27") == 1
        assert envoy.metric("llmobs_pii_rule_set", rule_set_version="2026-11-01") == 0
        line = envoy.wait_access_log(2)[-1]
        assert line["llmobs.pii.rule_set"].startswith("2026-11-27@")

        fails = envoy.metric("envoy_extension_config_discovery_http_filter_llmobs_pii_redaction_config_fail")
        bad = {**updated, "rule_set_version": "2026-11-28",
               "custom_rules": [{"entity": "employee_id", "pattern": "(?<=EMP-)[0-9]{6}", "action": "redact"}]}
        write_rules(rules_path, bad)
        envoy.wait_metric("envoy_extension_config_discovery_http_filter_llmobs_pii_redaction_config_fail", fails + 1)
        assert envoy.metric("envoy_extension_config_discovery_http_filter_llmobs_pii_redaction_config_fail") == fails + 1
        assert "invalid configuration: field `custom_rules[0]`" in envoy.log_text()
        assert send("I am EMP-004211") == "I am [EMPLOYEE_ID]", "the previous rules stay in force"
        assert envoy.metric("llmobs_pii_rule_set", rule_set_version="2026-11-27") == 1
    finally:
        envoy.stop()
