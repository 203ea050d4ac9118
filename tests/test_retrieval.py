"""End-to-end: the retrieval-diagnostics header through the real Envoy, sent by the official
OpenAI and Anthropic SDKs as docs/filters/correlation.md shows; the separate correlation filter
and the bundle alike. The header never reaches the provider; valid reports become metrics by
route, tenant and prompt version and log fields; invalid ones are counted and change nothing
else about the request."""

from __future__ import annotations

from types import SimpleNamespace

import anthropic
import openai
import pytest

from conftest import validate_log_line
from harness import as_bundle

MODES = {"separate": None, "bundle": as_bundle}
HEADER = "x-llmobs-retrieval"


def diagnostics(hits: list, packed: list, sparse_timed_out: bool) -> str:
    """The client snippet of docs/filters/correlation.md ("Retrieval diagnostics"), as written."""
    members = [f"chunks={len(hits)}", f"dropped={len(hits) - len(packed)}",
               f"sparse_skipped={int(sparse_timed_out)}", f"empty={int(not hits)}"]
    if hits:  # no score without chunks (`inconsistent`)
        members.append(f"top_score={max(h.score for h in hits):.4f}")
    return "; ".join(members)


@pytest.mark.parametrize("mode", MODES)
def test_a_retrieval_report_is_recorded_by_route_tenant_and_prompt_version_and_never_reaches_the_provider(
        start_envoy, fresh_upstream, mode):
    envoy = start_envoy(mutate=MODES[mode])
    hits = [SimpleNamespace(score=s) for s in (0.82391, 0.5, 0.4, 0.1)]
    oa = openai.OpenAI(base_url=envoy.url + "/v1", api_key="sk-test", max_retries=0, timeout=30)
    labels = {"x-llmobs-tenant": "acme", "x-llmobs-prompt-version": "support-v7"}
    oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "grounded?"}],
                               extra_headers={HEADER: diagnostics(hits, hits[:3], True), **labels})
    an = anthropic.Anthropic(base_url=envoy.url + "/anthropic", api_key="sk-ant-test", max_retries=0, timeout=30)
    an.messages.create(model="claude-sonnet-4", max_tokens=32, messages=[{"role": "user", "content": "nothing found"}],
                       extra_headers={HEADER: diagnostics([], [], False), **labels})

    seen = fresh_upstream.seen()
    assert len(seen) == 2
    assert all(HEADER not in r["header_map"] for r in seen), "removed before the provider"
    assert all(r["header_map"].get("x-llmobs-prompt-version") == "support-v7" for r in seen), "others untouched"

    lines = envoy.wait_access_log(2)
    for line in lines:
        validate_log_line(line)
    by_path = {line["url.path"]: line for line in lines}
    full = by_path["/v1/chat/completions"]
    assert (full["llmobs.retrieval.chunks"], full["llmobs.retrieval.dropped"], full["llmobs.retrieval.top_score"],
            full["llmobs.retrieval.sparse_skipped"], full["llmobs.retrieval.empty"]) == ("4", "1", "0.823", "1", "0")
    empty = by_path["/anthropic/v1/messages"]
    assert (empty["llmobs.retrieval.chunks"], empty["llmobs.retrieval.empty"]) == ("0", "1")
    assert "llmobs.retrieval.top_score" not in empty

    common = {"tenant": "acme", "prompt_version": "support-v7", "synthetic": "false"}
    assert envoy.metric("llmobs_retrieval_requests", route="openai", **common) == 1
    assert envoy.metric("llmobs_retrieval_requests", route="anthropic", **common) == 1
    assert envoy.metric("llmobs_retrieval_sparse_skipped", route="openai", **common) == 1
    assert envoy.metric("llmobs_retrieval_empty", route="anthropic", **common) == 1
    assert envoy.metric("llmobs_retrieval_empty", route="openai", **common) == 0
    assert envoy.metric("llmobs_retrieval_chunks_dropped", route="openai", **common) == 1
    # Histograms reach the admin endpoint at a stats flush.
    assert envoy.wait_metric("llmobs_retrieval_chunks_count", 2, **common) == 2
    assert envoy.wait_metric("llmobs_retrieval_top_score_milli_bucket", 1, route="openai", le="900", **common) == 1
    assert envoy.metric("llmobs_retrieval_top_score_milli_bucket", route="openai", le="800", **common) == 0
    assert envoy.metric("llmobs_retrieval_invalid") == 0


@pytest.mark.parametrize("mode", MODES)
def test_an_invalid_retrieval_header_is_removed_counted_and_the_request_still_succeeds(start_envoy, fresh_upstream, mode):
    envoy = start_envoy(mutate=MODES[mode])
    oa = openai.OpenAI(base_url=envoy.url + "/v1", api_key="sk-test", max_retries=0, timeout=30)
    bad = {"chunks=2; dropped=3": "inconsistent", "chunks=1; recall=0.9": "unknown_key",
           "chunks=-1": "value", "jane.canary@example.com": "syntax"}
    for value in bad:
        r = oa.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}],
                                                         extra_headers={HEADER: value})
        assert r.status_code == 200
    seen = fresh_upstream.seen()
    assert len(seen) == len(bad) and all(HEADER not in r["header_map"] for r in seen)
    for reason in bad.values():
        assert envoy.metric("llmobs_retrieval_invalid", reason=reason, synthetic="false") == 1, reason
    assert envoy.metric("llmobs_retrieval_requests") == 0
    lines = envoy.wait_access_log(len(bad))
    for line in lines:
        validate_log_line(line)
    assert sorted(line["llmobs.retrieval.invalid"] for line in lines) == sorted(bad.values())
    assert not any("llmobs.retrieval.chunks" in line for line in lines)
    assert "jane.canary" not in envoy.access_log_path.read_text() + envoy.log_text()
