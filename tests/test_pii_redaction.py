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
from harness import PII_KEY_B64, ROOT, Envoy, as_bundle, build_config, http_get, post_json, route_everything_to, wait_until
from otlp_receiver import OtlpReceiver
from test_genai_spans import exporting_to

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


@pytest.mark.parametrize("pack", ["separate_filters", "bundle"])
def test_a_block_rule_on_trial_lets_the_request_through_unchanged_and_is_counted(start_envoy, fresh_upstream, pack):
    """A `shadow` block (a custom rule and a built-in entity on trial) counts the block it would
    have made and changes nothing: the provider gets the request as the rules in force make it,
    the client its reply, the log its usual fields (docs/filters/pii-redaction.md, "Trial a
    rule")."""
    config = {**demo_pii_config(), "mode": "traffic"}
    config["entities"] = {**config.get("entities", {}), "email": {"action": "pseudonymize", "shadow": "block"}}
    config["custom_rules"] = [{"entity": "ticket_id", "pattern": "\\bTKT-[0-9]{6}\\b", "shadow": "block"},
                              *config.get("custom_rules", [])]
    envoy = start_envoy({PII_FILTER: config}, mutate=as_bundle if pack == "bundle" else None)
    fresh_upstream.scenario({"type": "reply", "text": "Ticket TKT-654321 is open."})
    reply = openai_client(envoy).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"Close TKT-123456 and mail {EMAIL}"}])
    assert reply.choices[0].message.content == "Ticket TKT-654321 is open.", "the response is unchanged"
    (sent,) = llmock_bodies(fresh_upstream)
    text = sent["messages"][0]["content"]
    assert text.startswith("Close TKT-123456 and mail EMAIL_k1_"), f"{pack}: the rules in force, nothing else: {text}"
    (line,) = envoy.wait_access_log(1)
    validate_log_line(line)
    assert line["llmobs.pii.outcome"] == "redacted"
    assert line["llmobs.pii.detections"] == "request:email=1", "a trial is not in the log's detections"
    shadow = "llmobs_pii_shadow_detections"
    assert envoy.wait_metric(shadow, 1, entity="ticket_id", action="block", direction="request") == 1
    assert envoy.metric(shadow, entity="ticket_id", action="block", direction="response") == 1
    assert envoy.metric(shadow, entity="email", action="block", direction="request") == 1
    assert envoy.metric("llmobs_pii_detections", entity="ticket_id", action="block", direction="request") == 0
    assert envoy.metric("llmobs_pii_blocked", reason="entity") == 0


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
    # And a long multi-line secret (issue 20): a 2048-bit RSA key, 1.7 KB over 28 lines.
    text = "; ".join(f"{k}: {v}" for k, v in CANARIES.items()) + f"\nkey:\n{read_test_key(RSA_2048)}\nend"
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
    receiver = OtlpReceiver()  # Envoy's GenAI spans (docs/tracing.md) are a sink too
    envoy = start_envoy({PII_FILTER: config}, mutate=exporting_to(receiver, pack == "bundle"))
    # llmock echoes nothing of the prompt by default; make the model say the canaries back.
    # `; ` between them: digits right before a number would make it part of a longer one.
    fresh_upstream.scenario({"type": "reply", "text": "; ".join(CANARIES.values()) + f"\n{read_test_key(RSA_2048)}\nok",
                             "times": 2})
    send_canaries(envoy, mode)
    lines = envoy.wait_access_log(2)
    if mode != "traffic":
        # Every part was captured (checked, not withheld), and none holds any of the key.
        for line in lines:
            for part in ("last_user", "system", "completion"):
                if part == "system" and line is lines[1]:
                    continue  # the streamed request has no system message
                assert f"llmobs.capture.{part}" in line, f"{mode}: {part} not captured"
    time.sleep(0.5)
    sinks = {
        "access log": envoy.access_log_path.read_text(),
        "envoy log (info, wasm at trace)": envoy.log_text(),
        "stats": http_get(envoy.admin + "/stats")[1].decode(),
        "prometheus": envoy.prometheus(),
        "config_dump": envoy.config_dump(),
    }
    wait_until(lambda: len(receiver.received()) >= 2, 20, "both requests' spans")
    receiver.stop()
    sinks["spans"] = b"".join(span["raw"] for span in receiver.received()).decode("utf-8", "replace")
    if mode != "telemetry":
        sinks["what llmock received"] = json.dumps(llmock_bodies(fresh_upstream))
    for sink, content in sinks.items():
        for name, value in CANARIES.items():
            assert value not in content, f"{mode}: {name} canary in {sink}"
        assert PII_KEY_B64 not in content, f"{mode}: the pseudonym key in {sink}"
        assert_no_key(read_test_key(RSA_2048), content, f"{mode}: {sink}")
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
        assert ("invalid configuration: field `custom_rules[0].pattern`: not a linear-time construct at character 1"
                in envoy.log_text()), "the same message `llmobs rules check` prints"
        assert send("I am EMP-004211") == "I am [EMPLOYEE_ID]", "the previous rules stay in force"
        assert envoy.metric("llmobs_pii_rule_set", rule_set_version="2026-11-27") == 1
    finally:
        envoy.stop()


# ---- Issue 20: multi-line secrets in streams, and the capture check ---------------------------

KEYS_DIR = ROOT / "tests" / "fixtures" / "keys"  # test-only keys (README.md there)


def read_test_key(name: str) -> str:
    return (KEYS_DIR / name).read_text().strip()


RSA_2048 = "test-only-rsa2048-pkcs8.pem"
ALL_KEYS = [RSA_2048, "test-only-rsa4096-pkcs1.pem", "test-only-ec-p256.pem", "test-only-ed25519-openssh.pem"]


def key_fragments(pem: str) -> list[str]:
    """Every 16-character window of the key's base64 body (lines joined), stepping by 8: any leaked
    run of 24 or more of its characters contains one, however it was cut or split into lines."""
    body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
    return [body[i:i + 16] for i in range(0, len(body) - 15, 8)]


def assert_no_key(pem: str, text: str, where: str) -> None:
    joined = re.sub(r"\s", "", text.replace("\\n", ""))
    for fragment in key_fragments(pem):
        assert fragment not in joined, f"{where}: the key's {fragment!r} leaked"


def sinks_of(envoy) -> dict[str, str]:
    return {
        "access log": envoy.access_log_path.read_text(),
        "envoy log (info, wasm at trace)": envoy.log_text(),
        "stats": http_get(envoy.admin + "/stats")[1].decode(),
        "prometheus": envoy.prometheus(),
        "config_dump": envoy.config_dump(),
        "clusters": http_get(envoy.admin + "/clusters")[1].decode(),
    }


def stream_openai_chat(envoy, tool: bool) -> str:
    client = openai_client(envoy)
    stream = client.chat.completions.create(model="gpt-4o-mini", stream=True,
                                            messages=[{"role": "user", "content": "the deploy key, please"}])
    out = []
    for chunk in stream:
        for choice in chunk.choices:
            out.append(choice.delta.content or "")
            for call in choice.delta.tool_calls or []:
                out.append(call.function.arguments or "" if call.function else "")
    return "".join(out)


def stream_responses(envoy, tool: bool) -> str:
    client = openai_client(envoy)
    out = []
    with client.responses.stream(model="gpt-4o-mini", input="the deploy key, please") as stream:
        for event in stream:
            if event.type in ("response.output_text.delta", "response.function_call_arguments.delta"):
                out.append(event.delta)
        final = stream.get_final_response()
    return "".join(out) + "\n" + final.model_dump_json()


def stream_anthropic(envoy, tool: bool) -> str:
    client = anthropic.Anthropic(base_url=envoy.url + "/anthropic", api_key="sk-ant-test", max_retries=0, timeout=30)
    out = []
    with client.messages.stream(model="claude-3-5-haiku-latest", max_tokens=4096,
                                messages=[{"role": "user", "content": "the deploy key, please"}]) as stream:
        for event in stream:
            if event.type == "content_block_delta":
                out.append(getattr(event.delta, "text", None) or getattr(event.delta, "partial_json", None) or "")
        final = stream.get_final_message()
    return "".join(out) + "\n" + final.model_dump_json()


def stream_gemini(envoy, tool: bool) -> str:
    status, _, body = post_json(envoy.url + "/gemini/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
                                {"contents": [{"role": "user", "parts": [{"text": "the deploy key, please"}]}]},
                                {"x-goog-api-key": "test"})
    assert status == 200, body[:300]
    out = []
    for line in body.decode().splitlines():
        if line.startswith("data: "):
            for candidate in json.loads(line[6:]).get("candidates", []):
                for part in candidate.get("content", {}).get("parts", []):
                    out.append(part.get("text") or json.dumps(part.get("functionCall", {})))
    return "".join(out)


STREAMERS = {"openai_chat": stream_openai_chat, "responses": stream_responses, "anthropic": stream_anthropic,
             "gemini": stream_gemini}


@pytest.mark.parametrize("pack", ["separate_filters", "bundle"])
def test_a_streamed_private_key_never_reaches_the_client_or_the_access_log(start_envoy, fresh_upstream, pack):
    """Issue 20: a PKCS#8 RSA-2048 key streamed by the model reached `llmobs.capture.completion`
    raw (and the client, past the stream window). The demo configuration (`both`, private keys
    blocked, completion captured), streamed text and tool calls on every wire llmock streams,
    and RSA-4096, EC and OpenSSH keys as text."""
    envoy = start_envoy(mutate=as_bundle if pack == "bundle" else None)
    cases = [(wire, tool, RSA_2048) for wire in STREAMERS for tool in (False, True)]
    cases += [("openai_chat", False, name) for name in ALL_KEYS[1:]] + [("anthropic", True, ALL_KEYS[1])]
    for i, (wire, tool, name) in enumerate(cases):
        pem = read_test_key(name)
        text = f"Here is the key you asked for:\n{pem}\nKeep it safe."
        if tool:
            fresh_upstream.scenario({"type": "reply", "tool_calls": [{"name": "save_key", "arguments": {"pem": text}}]})
        else:
            fresh_upstream.scenario({"type": "reply", "text": text})
        what = f"{pack} {wire} {'tool call' if tool else 'text'} {name}"
        seen = STREAMERS[wire](envoy, tool)
        assert_no_key(pem, seen, f"{what}: client")
        assert "[BLOCKED:PRIVATE_KEY]" in seen, f"{what}: {seen[:400]}"
        if not (tool and wire == "gemini"):  # Gemini sends a call whole: nothing after the key to hold
            assert "Keep it safe." in seen, f"{what}: the text after the key arrives: {seen[-300:]}"
        line = envoy.wait_access_log(i + 1)[-1]
        validate_log_line(line)
        assert line["llmobs.pii.detections"] == "response:private_key=1", what
        assert line["llmobs.pii.outcome"] == "redacted", what
        capture = line.get("llmobs.capture.completion", "")
        assert "BEGIN" not in capture, f"{what}: {capture}"
        if not tool:
            assert "[BLOCKED:PRIVATE_KEY]" in capture, f"{what}: {capture}"
    time.sleep(0.5)
    for sink, content in sinks_of(envoy).items():
        for name in ALL_KEYS:
            assert_no_key(read_test_key(name), content, f"{pack}: {sink}")
    assert envoy.metric("llmobs_pii_detections", entity="private_key", action="block", direction="response") == len(cases)


@pytest.mark.parametrize("pack", ["separate_filters", "bundle"])
def test_a_private_key_bedrock_streams_is_masked_for_the_client_and_every_sink(start_envoy, tmp_path, pack):
    """Bedrock's binary event stream, rewritten frame by frame (new lengths and CRCs): the key
    streamed as text (40 characters a frame) and as tool input never reaches the client or a
    sink, the frames still decode, and token accounting still reads the whole stream."""
    import sys
    sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "providers"))
    from make_eventstream import event  # the fixtures' own frame encoder

    from harness import Upstream
    pem = read_test_key(RSA_2048)
    text = f"Here is the key:\n{pem}\nKeep it safe."
    args = json.dumps({"pem": text})
    (tmp_path / "fixtures").mkdir()
    for name, tool in [("bedrock-key-text", False), ("bedrock-key-tool", True)]:
        frames = [event("messageStart", {"role": "assistant"}, 8)]
        if tool:
            frames.append(event("contentBlockStart", {"contentBlockIndex": 0,
                                                      "start": {"toolUse": {"toolUseId": "t1", "name": "save_key"}}}, 3))
        streamed = args if tool else text
        frames += [event("contentBlockDelta", {"contentBlockIndex": 0, "delta": (
            {"toolUse": {"input": streamed[i:i + 40]}} if tool else {"text": streamed[i:i + 40]})}, 4)
                   for i in range(0, len(streamed), 40)]
        frames += [event("contentBlockStop", {"contentBlockIndex": 0}, 2),
                   event("messageStop", {"stopReason": "tool_use" if tool else "end_turn"}, 2),
                   event("metadata", {"usage": {"inputTokens": 12, "outputTokens": 700, "totalTokens": 712},
                                      "metrics": {"latencyMs": 900}}, 2)]
        case = tmp_path / "fixtures" / name
        case.mkdir()
        (case / "response.bin").write_bytes(b"".join(frames))
        (case / "meta.json").write_text(json.dumps({
            "method": "POST", "path": f"/model/{name}/converse-stream", "status": 200,
            "response_headers": {"content-type": "application/vnd.amazon.eventstream"},
            "response_file": "response.bin", "expected": {"stream": True}}))
    replay = Upstream(tmp_path / "replay.log", script="replay_upstream.py", args=("--fixtures", str(tmp_path / "fixtures")))
    try:
        def routed(config):
            route_everything_to(config, replay.port)
            if pack == "bundle":
                as_bundle(config)
        envoy = start_envoy(mutate=routed)
        for i, (name, tool) in enumerate([("bedrock-key-text", False), ("bedrock-key-tool", True)]):
            status, _, body = post_json(envoy.url + f"/model/{name}/converse-stream",
                                        {"messages": [{"role": "user", "content": [{"text": "the key"}]}]})
            assert status == 200
            payloads = decode_event_stream(body)
            seen = "".join(p.get("delta", {}).get("toolUse", {}).get("input", "") if tool
                           else p.get("delta", {}).get("text", "") for p in payloads)
            assert_no_key(pem, seen, f"{pack} {name}: client")
            assert "[BLOCKED:PRIVATE_KEY]" in seen and "Keep it safe." in seen, seen
            if tool:
                assert "[BLOCKED:PRIVATE_KEY]" in json.loads(seen)["pem"], "the tool input is still JSON"
            line = envoy.wait_access_log(i + 1)[-1]
            validate_log_line(line)
            assert line["llmobs.pii.detections"] == "response:private_key=1"
            assert line["llmobs.stream_outcome"] == "completed", "accounting read every frame"
            assert int(line["gen_ai.usage.output_tokens"]) == 700
            if not tool:
                assert "[BLOCKED:PRIVATE_KEY]" in line["llmobs.capture.completion"]
        time.sleep(0.5)
        for sink, content in sinks_of(envoy).items():
            assert_no_key(pem, content, f"{pack}: {sink}")
    finally:
        replay.stop()


def decode_event_stream(body: bytes) -> list[dict]:
    """The JSON payloads of an AWS event stream, each frame's lengths and CRCs checked."""
    import struct
    import zlib
    out, at = [], 0
    while at < len(body):
        total, headers = struct.unpack(">II", body[at:at + 8])
        assert struct.unpack(">I", body[at + 8:at + 12])[0] == zlib.crc32(body[at:at + 8]), "prelude CRC"
        frame = body[at:at + total]
        assert struct.unpack(">I", frame[-4:])[0] == zlib.crc32(frame[:-4]), "message CRC"
        out.append(json.loads(frame[12 + headers:-4]))
        at += total
    assert at == len(body)
    return out
