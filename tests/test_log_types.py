"""The log's types for log stores: Envoy writes every wasm filter-state value as a JSON string
(docs/envoy-settings.md), so envoy/logging/elasticsearch-index-template.json, written from
docs/log-schema.json by scripts/sync-log-types, tells a store which fields are numbers, decimals
and flags. These tests keep the template equal to the schema, and check its types against what a
real Envoy writes: every typed field of real lines parses as its type."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime

import anthropic
import openai
import pytest

from conftest import validate_log_line
from harness import ROOT, post_json

TEMPLATE = ROOT / "envoy" / "logging" / "elasticsearch-index-template.json"
SCHEMA = ROOT / "docs" / "log-schema.json"


def mappings() -> dict[str, str]:
    return {k: v["type"] for k, v in json.loads(TEMPLATE.read_text())["template"]["mappings"]["properties"].items()}


def test_the_committed_template_is_what_sync_log_types_writes_from_the_schema(tmp_path):
    committed = TEMPLATE.read_text()
    subprocess.run([str(ROOT / "scripts" / "sync-log-types")], check=True, capture_output=True, timeout=60)
    assert TEMPLATE.read_text() == committed, "run scripts/sync-log-types and commit the template"
    assert set(mappings()) == set(json.loads(SCHEMA.read_text())["properties"])


def parses_as(kind: str, value: object) -> bool:
    try:
        if kind == "long":
            return isinstance(value, int) or (isinstance(value, str) and str(int(value)) == value)
        if kind == "double":
            return isinstance(value, str) and float(value) >= 0 and value.strip() == value
        if kind == "boolean":
            return value in ("true", "false")
        if kind == "date":
            return datetime.fromisoformat(value.replace("Z", "+00:00")) is not None
    except ValueError:
        return False
    return isinstance(value, str)


def test_every_typed_field_of_real_lines_parses_as_its_type(start_envoy, fresh_upstream):
    envoy = start_envoy()
    oa = openai.OpenAI(base_url=envoy.url + "/v1", api_key="sk-test", max_retries=0, timeout=30)
    an = anthropic.Anthropic(base_url=envoy.url + "/anthropic", api_key="sk-ant-test", max_retries=0, timeout=30)
    chat = oa.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-llmobs-retrieval": "chunks=4; dropped=1; top_score=0.823; sparse_skipped=1; empty=0"})
    for _ in oa.chat.completions.create(model="gpt-4o", stream=True, stream_options={"include_usage": True},
                                        messages=[{"role": "user", "content": "stream please"}]):
        pass
    with an.messages.stream(model="claude-sonnet-4", max_tokens=64, messages=[{"role": "user", "content": "x"}]) as s:
        s.get_final_message()
    fresh_upstream.scenario({"type": "fail", "status": 429, "retry_after": 2, "times": 1})
    with pytest.raises(openai.RateLimitError):
        oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    status, _, _ = post_json(envoy.url + "/llmobs/v1/feedback",
                             {"request_id": chat.headers["x-request-id"], "rating": "up", "task_completed": True}, {})
    assert status == 204
    lines = envoy.wait_access_log(5)
    kinds = mappings()
    seen: dict[str, int] = {}
    for line in lines:
        validate_log_line(line)
        for field, value in line.items():
            kind = kinds[field]
            assert parses_as(kind, value), (field, kind, value)
            if kind != "keyword":
                seen[kind] = seen.get(kind, 0) + 1
                seen[field] = 1
    # Not vacuous: the lines held counts, decimals, flags and dates.
    assert all(seen.get(k) for k in ("long", "double", "boolean", "date")), seen
    for field in ("gen_ai.usage.input_tokens", "llmobs.error.retry_after_ms", "llmobs.retrieval.top_score",
                  "llmobs.feedback.task_completed", "llmobs.sampled", "llmobs.time_to_first_chunk_ms"):
        assert field in seen, field
