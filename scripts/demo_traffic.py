"""Drives the demo's traffic mix through Envoy with the official SDKs, then prints a summary.

Called by scripts/demo. Exits non-zero if any check failed: an SDK call that should have
worked, an error that should have been raised, counters that disagree with the requests sent,
or an access-log line that does not match docs/log-schema.json.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import anthropic
import jsonschema
import openai

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "docs" / "log-schema.json").read_text())


DEMO_CARD = "4111 1111 1111 1111"
DEMO_EMAIL = "jane.doe@example.com"
DEMO_PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n-----END RSA PRIVATE KEY-----"


class Demo:
    def __init__(self, args):
        self.args = args
        self.sent = 0
        self.failures: list[str] = []

    def check(self, ok: bool, what: str) -> None:
        if not ok:
            self.failures.append(what)

    def scenario(self, *behaviors: dict) -> None:
        req = urllib.request.Request(self.args.llmock + "/_llmock/scenario", method="POST",
                                     data=json.dumps({"behaviors": list(behaviors)}).encode(),
                                     headers={"content-type": "application/json"})
        urllib.request.urlopen(req, timeout=5).read()

    def metrics(self) -> list[tuple[str, dict, float]]:
        text = urllib.request.urlopen(self.args.admin + "/stats/prometheus", timeout=5).read().decode()
        out = []
        for line in text.splitlines():
            m = re.match(r"^(llmobs_[a-z_]+)(\{(.*)\})? (\S+)$", line)
            if m:
                out.append((m.group(1), dict(re.findall(r'(\w+)="([^"]*)"', m.group(3) or "")), float(m.group(4))))
        return out

    def traffic(self) -> None:
        base = self.args.listener
        oa = openai.OpenAI(base_url=base + "/v1", api_key="sk-demo-not-a-real-key", max_retries=0)
        an = anthropic.Anthropic(base_url=base + "/anthropic", api_key="sk-ant-demo-not-a-real-key", max_retries=0)

        for i in range(3):
            r = oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"hello {i}"}],
                                           extra_headers={"x-conversation-id": "demo-conv-openai"})
            self.sent += 1
            self.check(bool(r.choices[0].message.content), "openai chat returned no content")
        for _ in range(2):
            chunks = list(oa.chat.completions.create(model="gpt-4o-mini", stream=True,
                                                     stream_options={"include_usage": True},
                                                     messages=[{"role": "user", "content": "stream please"}],
                                                     extra_headers={"baggage": "tenant=acme,user.email=a%40b.c",
                                                                    "x-llmobs-tenant": "acme"}))
            self.sent += 1
            self.check(len(chunks) > 1, "openai stream had no chunks")
            self.check(chunks[-1].usage is not None, "openai stream carried no usage")
        for _ in range(2):
            m = an.messages.create(model="claude-sonnet-4", max_tokens=64,
                                   messages=[{"role": "user", "content": "hi"}],
                                   extra_headers={"x-claude-code-session-id": "demo-claude-session",
                                                  "x-claude-code-agent-id": "demo-subagent"})
            self.sent += 1
            self.check(bool(m.content), "anthropic message returned no content")
        with an.messages.stream(model="claude-sonnet-4", max_tokens=64,
                                messages=[{"role": "user", "content": "stream"}]) as stream:
            self.check(bool(stream.get_final_text()), "anthropic stream returned no text")
        self.sent += 1

        # Gemini over raw HTTP, with the key in the query string as Gemini clients send it.
        req = urllib.request.Request(
            base + "/gemini/v1beta/models/gemini-2.0-flash:generateContent?key=demo-query-key",
            data=json.dumps({"contents": [{"parts": [{"text": "hi"}]}]}).encode(),
            headers={"content-type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=30) as resp:
            self.check(resp.status == 200, "gemini call failed")
        self.sent += 1

        # A client id that must not pass, and a synthetic probe.
        r = oa.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-request-id": "<bad id>", "x-llmobs-synthetic": "true"})
        self.sent += 1
        self.check(r.headers.get("x-request-id", "") != "<bad id>", "invalid request id was passed on")

        # PII: a card, an email and an employee id in a prompt (redacted or pseudonymized before
        # llmock sees them), a model that says a card back in a stream, and a private key that
        # blocks the request.
        oa.chat.completions.create(
            model="gpt-4o-mini", user="demo-user-42",
            messages=[{"role": "system", "content": "You are a billing assistant. Today is 2026-11-27."},
                      {"role": "user", "content": f"Charge {DEMO_CARD} and mail {DEMO_EMAIL}; I am EMP-004211."}])
        self.sent += 1
        seen = json.loads(urllib.request.urlopen(self.args.llmock + "/_llmock/requests", timeout=5).read())
        sent_text = json.dumps(seen["requests"][-1]["body"])
        self.check(DEMO_CARD not in sent_text and DEMO_EMAIL not in sent_text, "PII reached the provider")
        self.scenario({"type": "reply", "text": f"The card on file is {DEMO_CARD}.", "times": 1})
        streamed = "".join(c.choices[0].delta.content or "" for c in oa.chat.completions.create(
            model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "which card?"}]) if c.choices)
        self.sent += 1
        self.check(DEMO_CARD not in streamed and "[PAYMENT_CARD]" in streamed, "a streamed card reached the client")
        try:
            oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": DEMO_PEM}])
            self.check(False, "expected the private key to block the request")
        except openai.BadRequestError as err:
            self.check(err.code == "pii_blocked", f"expected pii_blocked, got {err.code}")
        self.sent += 1

        # Errors, injected per request through llmock's scenario API.
        self.scenario({"type": "fail", "status": 429, "retry_after": 1, "times": 1})
        try:
            oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
            self.check(False, "expected a 429 from the OpenAI route")
        except openai.RateLimitError:
            pass
        self.sent += 1
        self.scenario({"type": "fail", "status": 529, "times": 1})
        try:
            an.messages.create(model="claude-sonnet-4", max_tokens=16, messages=[{"role": "user", "content": "x"}])
            self.check(False, "expected a 529 from the Anthropic route")
        except anthropic.APIStatusError as err:
            self.check(err.status_code == 529, f"expected 529, got {err.status_code}")
        self.sent += 1

    def access_log(self, at_least: int) -> list[dict]:
        path = Path(self.args.access_log)
        deadline = time.monotonic() + 10
        while True:
            lines = [json.loads(l) for l in path.read_text().splitlines() if l.strip()] if path.exists() else []
            if len(lines) >= at_least or time.monotonic() > deadline:
                return lines
            time.sleep(0.1)

    def summary(self) -> None:
        metrics = self.metrics()

        def total(name, **labels):
            return sum(v for n, l, v in metrics if n == name and all(l.get(k) == x for k, x in labels.items()))

        requests = total("llmobs_correlation_requests")
        self.check(requests == self.sent, f"filter counted {requests:.0f} requests, demo sent {self.sent}")
        lines = self.access_log(self.sent)
        self.check(len(lines) == self.sent, f"access log has {len(lines)} lines for {self.sent} requests")
        for line in lines:
            try:
                jsonschema.validate(line, SCHEMA)
            except jsonschema.ValidationError as err:
                self.failures.append(f"access-log line does not match the schema: {err.message}")
        text = Path(self.args.access_log).read_text() + Path(self.args.envoy_log).read_text()
        for secret in ("sk-demo-not-a-real-key", "sk-ant-demo-not-a-real-key", "demo-query-key", "<bad id>"):
            self.check(secret not in text, f"a secret or invalid id reached a log: {secret}")

        print()
        print("llmobs demo summary")
        print("===================")
        print(f"requests sent through Envoy: {self.sent}; counted by the correlation filter: {requests:.0f} "
              f"(synthetic: {total('llmobs_correlation_requests', synthetic='true'):.0f})")
        statuses = Counter(l["http.response.status_code"] for l in lines)
        print("responses by status:", ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())))
        minted = {l["id"]: v for n, l, v in metrics if n == "llmobs_correlation_ids_minted" and v}
        rejected = {f'{l["id"]}/{l["reason"]}': v for n, l, v in metrics if n == "llmobs_correlation_ids_rejected" and v}
        stripped = {l["reason"]: v for n, l, v in metrics if n == "llmobs_correlation_baggage_members_stripped" and v}
        print("ids minted:", ", ".join(f"{k} {v:.0f}" for k, v in sorted(minted.items())) or "none")
        print("ids rejected (replaced):", ", ".join(f"{k} {v:.0f}" for k, v in sorted(rejected.items())) or "none")
        print("baggage members stripped:", ", ".join(f"{k} {v:.0f}" for k, v in sorted(stripped.items())) or "none")
        tokens: dict[tuple[str, str], list[float]] = {}
        for n, l, v in metrics:
            if n == "llmobs_token_accounting_tokens" and l.get("gen_ai_token_type") in ("input", "output"):
                key = (l["gen_ai_provider_name"], l["gen_ai_request_model"])
                tokens.setdefault(key, [0.0, 0.0])[l["gen_ai_token_type"] == "output"] += v
        print("tokens by provider and model (input / output):")
        for (provider, model), (tin, tout) in sorted(tokens.items()):
            print(f"  {provider:<12} {model:<20} {tin:>6.0f} / {tout:.0f}")
        self.check(bool(tokens), "no tokens were counted")
        outcomes = Counter(l.get("llmobs.stream_outcome", "-") for l in lines)
        print("stream outcomes:", ", ".join(f"{k}: {v}" for k, v in sorted(outcomes.items())))
        missing = total("llmobs_token_accounting_usage_missing")
        print(f"responses without usage: {missing:.0f}")
        errors = Counter((l["error.type"], l["llmobs.error.origin"]) for l in lines if "error.type" in l)
        print("errors by type and origin:", ", ".join(f"{t} ({o}): {n}" for (t, o), n in sorted(errors.items())) or "none")
        self.check(errors.get(("rate_limit", "upstream")) == 1, "the 429 was not classified as rate_limit")
        self.check(errors.get(("overloaded", "upstream")) == 1, "the 529 was not classified as overloaded")
        conversations = Counter(l.get("gen_ai.conversation.id", "-") for l in lines)
        print("requests by conversation:", ", ".join(f"{k}: {v}" for k, v in sorted(conversations.items())))
        detections = {(l["entity"], l["action"], l["direction"]): v for n, l, v in metrics
                      if n == "llmobs_pii_detections" and v}
        print("PII detections by entity and action (direction):")
        for (entity, action, direction), v in sorted(detections.items()):
            print(f"  {entity:<16} {action:<13} {direction:<9} {v:.0f}")
        self.check(detections.get(("payment_card", "redact", "request")) == 1, "the prompt's card was not redacted")
        self.check(detections.get(("payment_card", "redact", "response")) == 1, "the streamed card was not redacted")
        self.check(detections.get(("email", "pseudonymize", "request")) == 1, "the email was not pseudonymized")
        self.check(total("llmobs_pii_blocked", reason="entity") == 1, "the private key did not block")
        rule_sets = [l["rule_set_version"] for n, l, v in metrics if n == "llmobs_pii_rule_set" and v == 1]
        print("PII rule set in force:", ", ".join(rule_sets) or "none",
              "| outcomes:", ", ".join(f"{k}: {v}" for k, v in sorted(Counter(l.get("llmobs.pii.outcome", "-") for l in lines).items())))
        for secret in (DEMO_CARD, DEMO_EMAIL, "MIIEowIBAAKCAQEA"):
            self.check(secret not in text, f"PII reached a log: {secret[:4]}...")
        print(f"access-log lines: {len(lines)} (all errors, and successes at the sample rate)")
        print("sample access-log lines:")
        picks = [lines[0]] + [l for l in lines if l["http.response.status_code"] >= 400][:1] + \
                [l for l in lines if l.get("llmobs.ids_replaced")][:1]
        for line in picks:
            print("  " + json.dumps(line, sort_keys=True))
        print("where to look:")
        print(f"  metrics     {self.args.admin}/stats/prometheus  (grep llmobs_)")
        print(f"  admin       {self.args.admin}/")
        print(f"  access log  {self.args.access_log}")
        print(f"  Envoy log   {self.args.envoy_log}")
        if self.failures:
            print("\nDEMO CHECKS FAILED:")
            for f in self.failures:
                print("  - " + f)
        else:
            print("\nall demo checks passed")


def wait_ready(admin: str, llmock: str) -> None:
    deadline = time.monotonic() + 30
    for url in (llmock + "/health", admin + "/ready"):
        while True:
            try:
                if urllib.request.urlopen(url, timeout=1).status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                sys.exit(f"demo: {url} did not answer in 30 s; see run/demo/*.log")
            time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser()
    for flag in ("--listener", "--admin", "--llmock", "--access-log", "--envoy-log"):
        parser.add_argument(flag, required=True)
    args = parser.parse_args()
    wait_ready(args.admin, args.llmock)
    demo = Demo(args)
    try:
        demo.traffic()
    except Exception as err:  # a demo that crashes must still say why, then fail
        demo.failures.append(f"traffic stopped: {type(err).__name__}: {err}")
    demo.summary()
    return 1 if demo.failures else 0


if __name__ == "__main__":
    sys.exit(main())
