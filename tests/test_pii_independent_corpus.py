"""End-to-end recall and precision on the independent PII corpus (issue 13): every line of
tests/fixtures/pii/independent_corpus.jsonl (phones from libphonenumber's examples and formatter,
cards from the networks' issuer ranges, national ids, IBANs, IPv6, hard negatives) is sent as a
user message through the real Envoy in traffic mode with the documented defaults (every entity
redacted, default `phone_regions`), separate PII filter and bundle alike, and what llmock
received is compared with what was sent:

- a labelled value is caught when the text before and after it arrived unchanged and what stands
  in its place holds no digit (a placeholder, not a value cut short);
- a line is over-redacted when anything outside its labelled values changed (every hard negative
  line must arrive byte for byte).

The floors are the recall the Rust measurement (filters/core/tests/pii_independent.rs) reports
for the same corpus, so the filter in Envoy must do what the detector does natively.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict

import pytest

from harness import ROOT, as_bundle, post_json
from test_pii_redaction import PII_FILTER, demo_pii_config, llmock_bodies

CORPUS = ROOT / "tests" / "fixtures" / "pii" / "independent_corpus.jsonl"
LINES_PER_REQUEST = 100
PLACEHOLDER = re.compile(r"\[[A-Z][A-Z0-9_]*\]")
# Recall floors per entity (docs/pii-accuracy.md has the measured values).
FLOORS = {"payment_card": 0.99, "phone": 0.95, "iban": 0.99, "ipv6": 0.99, "br_cnpj": 0.99, "fr_nir": 0.99,
          "uk_nino": 0.99, "es_dni": 0.99, "es_nie": 0.99, "it_fiscal_code": 0.99, "sg_nric": 0.99,
          # Alone in their own writing: a date or a digit rule on top of the check digits.
          "fi_hetu": 0.99, "br_cpf": 0.99, "de_tax_id": 0.99, "pl_pesel": 0.99, "se_personnummer": 0.99,
          # Found only after their keyword; the corpus writes half of them without one (some of
          # the rest are caught as phones).
          "in_pan": 0.5, "au_medicare": 0.72, "au_tfn": 0.97, "ca_sin": 0.67, "in_aadhaar": 0.5, "nl_bsn": 0.65,
          "uk_nhs": 0.97}


def corpus() -> list[dict]:
    return [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]


def split(row: dict) -> tuple[str, str, str]:
    """(before, value, after) of a one-value line, by the byte offsets of its span."""
    raw = row["text"].encode()
    (start, end), = row["spans"]
    return raw[:start].decode(), raw[start:end].decode(), raw[end:].decode()


@pytest.mark.parametrize("pack", ["separate_filters", "bundle"])
def test_the_independent_corpus_through_envoy_meets_the_recall_floors_with_no_over_redaction(start_envoy,
                                                                                               fresh_upstream, pack):
    config = {**demo_pii_config(), "mode": "traffic", "entities": {}, "default_action": "redact",
              "custom_rules": [], "blocked_fields": [], "max_inspected_bytes": 1024 * 1024}
    config.pop("phone_regions", None)
    envoy = start_envoy({PII_FILTER: config}, mutate=as_bundle if pack == "bundle" else None)
    rows = corpus()
    caught, values, over = defaultdict(int), defaultdict(int), []
    for first in range(0, len(rows), LINES_PER_REQUEST):
        batch = rows[first:first + LINES_PER_REQUEST]
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": r["text"]} for r in batch]}
        fresh_upstream.reset()
        status, _, reply = post_json(envoy.url + "/v1/chat/completions", json.dumps(body).encode())
        assert status == 200, reply[:300]
        (sent,) = llmock_bodies(fresh_upstream)
        received = [m["content"] for m in sent["messages"]]
        assert len(received) == len(batch)
        for row, got in zip(batch, received):
            if not row["spans"]:
                if got != row["text"]:
                    over.append((row["group"], row["text"], got))
                continue
            before, value, after = split(row)
            values[row["entity"]] += 1
            kept_around = got.startswith(before) and got.endswith(after)
            if not kept_around:
                over.append((row["group"], row["text"], got))
            elif not any(c.isdigit() for c in PLACEHOLDER.sub("", got[len(before):len(got) - len(after)])):
                # Replaced whole: what stands in its place (placeholders aside: `[IPV6]`) holds no
                # digit of it.
                caught[row["entity"]] += 1
    print(f"\n{pack}: | entity | values | caught | recall |")
    for entity in sorted(values):
        print(f"| {entity} | {values[entity]} | {caught[entity]} | {caught[entity] / values[entity]:.3f} |")
    print(f"lines changed outside their labelled values: {len(over)}")
    assert over == [], over[:5]
    for entity, floor in FLOORS.items():
        recall = caught[entity] / values[entity]
        assert recall >= floor, f"{pack}: {entity} recall {recall:.3f} < {floor}"
