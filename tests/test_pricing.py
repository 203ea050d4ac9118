"""Prices and cost in a real Envoy: the shipped price table reaches Envoy through ECDS unchanged,
SDK traffic costs exactly what the table says (separate filters and the bundle), and new prices
apply without a restart."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from decimal import Decimal
from pathlib import Path

import anthropic
import openai
import pytest
import yaml

from conftest import validate_log_line
from harness import ROOT, Envoy, as_bundle, build_config, hcm_of, post_json, route_everything_to, wait_until



def ecds_configuration(path: Path) -> dict:
    resource = yaml.safe_load(path.read_text())["resources"][0]
    return json.loads(resource["typed_config"]["config"]["configuration"]["value"])


def test_the_ecds_resource_carries_the_shipped_price_table_unchanged(tmp_path):
    shipped = json.loads((ROOT / "envoy/prices/default.json").read_text())
    assert ecds_configuration(ROOT / "envoy/ecds/token-accounting.yaml")["prices"] == shipped
    regenerated = tmp_path / "token-accounting.yaml"
    subprocess.run([str(ROOT / "scripts/sync-prices"), "envoy/prices/default.json", str(regenerated)],
                   check=True, capture_output=True)
    assert regenerated.read_text() == (ROOT / "envoy/ecds/token-accounting.yaml").read_text(), \
        "envoy/ecds/token-accounting.yaml is stale: run scripts/sync-prices"


SHIPPED = json.loads((ROOT / "envoy/prices/default.json").read_text())
ACCOUNTING = "llmobs_token_accounting"


def micros_per_million(text: str) -> int:
    """A table rate as this test reads it: micro-units per million tokens, i.e. pico-units per token."""
    whole, _, frac = text.partition(".")
    return int(whole) * 1_000_000 + int((frac + "000000")[:6])


def entry_for(table: dict, provider: str, model: str) -> dict | None:
    rows = [e for e in table["models"] if e["provider"] == provider]
    exact = [e for e in rows if e["model"] == model]
    if exact:
        return exact[0]
    prefixes = [e for e in rows if e["model"].endswith("*") and model.startswith(e["model"][:-1])]
    return max(prefixes, key=lambda e: len(e["model"]), default=None)


def picos(table: dict, provider: str, model: str, plain_input: int, cache_read: int, cache_write: int,
          output: int) -> int | None:
    """The exact cost in 10^-12 currency units, computed here from the SDK's own usage fields."""
    entry = entry_for(table, provider, model)
    if entry is None:
        return None
    rate = lambda key: micros_per_million(entry[key]) if key in entry else 0  # noqa: E731
    return (plain_input * rate("input") + cache_read * rate("cache_read") + cache_write * rate("cache_write")
            + output * rate("output"))


def ecds_resource(path: Path, table: dict, tenant_header: str = "x-llmobs-tenant") -> None:
    """Writes the accounting filter's ECDS resource with `table` as finance's update would: with
    scripts/sync-prices (a temporary file renamed into place), the wasm path made absolute."""
    source = path.parent.parent / "table.json"
    source.write_text(json.dumps(table))
    staging = path.parent.parent / "staged.yaml"
    subprocess.run([str(ROOT / "scripts/sync-prices"), str(source), str(staging)], check=True, capture_output=True)
    text = staging.read_text().replace("filename: dist/", f"filename: {ROOT}/dist/")
    staging.write_text(text)
    shutil.move(str(staging), str(path))


def served_by_ecds(resource: Path):
    def mutate(config: dict) -> None:
        config["node"] = {"id": "llmobs-test", "cluster": "llmobs"}  # file-based xDS needs one
        filters = hcm_of(config)["http_filters"]
        for i, f in enumerate(filters):
            if f.get("typed_config", {}).get("config", {}).get("name") == ACCOUNTING:
                filters[i] = {"name": "llmobs.token_accounting", "config_discovery": {
                    "config_source": {"path_config_source": {"path": str(resource),
                                                             "watched_directory": {"path": str(resource.parent)}}},
                    "type_urls": ["type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"]}}
    return mutate


def start_priced_envoy(tmp_path: Path, upstream_port: int, pack: str) -> Envoy:
    workdir = tmp_path / "envoy"
    workdir.mkdir()
    if pack == "bundle":
        accounting = {"tenant_header": "x-llmobs-tenant", "prices": SHIPPED}
        config, ports = build_config(workdir, upstream_port, {ACCOUNTING: accounting}, as_bundle)
    else:
        resource_dir = tmp_path / "ecds"
        resource_dir.mkdir()
        resource = resource_dir / "token-accounting.yaml"
        ecds_resource(resource, SHIPPED)
        config, ports = build_config(workdir, upstream_port, None, served_by_ecds(resource))
    return Envoy(workdir, config, ports)


@pytest.mark.parametrize("pack", ["separate_filters_prices_by_ecds", "bundle"])
def test_sdk_traffic_costs_exactly_what_the_shipped_table_says(tmp_path, fresh_upstream, pack):
    envoy = start_priced_envoy(tmp_path, fresh_upstream.port, pack)
    try:
        oa = openai.OpenAI(base_url=envoy.url + "/v1", api_key="sk-test", max_retries=0)
        an = anthropic.Anthropic(base_url=envoy.url + "/anthropic", api_key="sk-ant-test", max_retries=0)
        expected: dict[str, int | None] = {}  # request id -> exact cost in pico-units (None: unpriced)

        def rid(tenant: str) -> dict:
            return {"x-request-id": uuid.uuid4().hex, "x-llmobs-tenant": tenant}

        for i, tenant in enumerate(["acme", "globex"]):
            h = rid(tenant)
            r = oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"plain {i}"}],
                                           extra_headers=h)
            cached = (r.usage.prompt_tokens_details.cached_tokens or 0) if r.usage.prompt_tokens_details else 0
            # OpenAI: cached tokens are inside prompt_tokens, reasoning inside completion_tokens.
            expected[h["x-request-id"]] = picos(SHIPPED, "openai", r.model, r.usage.prompt_tokens - cached, cached, 0,
                                                r.usage.completion_tokens)

            h = rid(tenant)
            usage, model = None, None
            for chunk in oa.chat.completions.create(model="gpt-4o", stream=True, stream_options={"include_usage": True},
                                                    messages=[{"role": "user", "content": f"stream {i}"}],
                                                    extra_headers=h):
                usage, model = chunk.usage or usage, chunk.model or model
            cached = (usage.prompt_tokens_details.cached_tokens or 0) if usage.prompt_tokens_details else 0
            expected[h["x-request-id"]] = picos(SHIPPED, "openai", model, usage.prompt_tokens - cached, cached, 0,
                                                usage.completion_tokens)

            h = rid(tenant)
            r = oa.responses.create(model="gpt-4.1", input=f"responses {i}", extra_headers=h)
            cached = (r.usage.input_tokens_details.cached_tokens or 0) if r.usage.input_tokens_details else 0
            expected[h["x-request-id"]] = picos(SHIPPED, "openai", r.model, r.usage.input_tokens - cached, cached, 0,
                                                r.usage.output_tokens)

            for stream in (False, True):
                h = rid(tenant)
                if stream:
                    with an.messages.stream(model="claude-sonnet-4", max_tokens=64, extra_headers=h,
                                            messages=[{"role": "user", "content": f"anthropic stream {i}"}]) as s:
                        m = s.get_final_message()
                else:
                    m = an.messages.create(model="claude-sonnet-4", max_tokens=64, extra_headers=h,
                                           messages=[{"role": "user", "content": f"anthropic {i}"}])
                u = m.usage
                # Anthropic: input_tokens excludes cache reads and writes, each priced at its own rate.
                expected[h["x-request-id"]] = picos(SHIPPED, "anthropic", m.model, u.input_tokens,
                                                    u.cache_read_input_tokens or 0, u.cache_creation_input_tokens or 0,
                                                    u.output_tokens)

            h = rid(tenant)
            status, _, body = post_json(envoy.url + "/gemini/v1beta/models/gemini-2.0-flash:generateContent",
                                        {"contents": [{"parts": [{"text": f"gemini {i}"}]}]}, h)
            assert status == 200
            doc = json.loads(body)
            meta = doc["usageMetadata"]
            cached = meta.get("cachedContentTokenCount", 0)
            # Gemini: promptTokenCount includes cached content; thoughts are billed as output.
            expected[h["x-request-id"]] = picos(
                SHIPPED, "gcp.gemini", doc.get("modelVersion") or "gemini-2.0-flash",
                meta.get("promptTokenCount", 0) + meta.get("toolUsePromptTokenCount", 0) - cached, cached, 0,
                meta.get("candidatesTokenCount", 0) + meta.get("thoughtsTokenCount", 0))

        h = rid("acme")
        oa.chat.completions.create(model="llama3.2", messages=[{"role": "user", "content": "not in the table"}],
                                   extra_headers=h)
        expected[h["x-request-id"]] = None

        lines = {l["llmobs.request_id"]: l for l in envoy.wait_access_log(len(expected))}
        for request_id, cost in expected.items():
            line = lines[request_id]
            validate_log_line(line)
            if cost is None:
                assert "llmobs.cost" not in line, line
            else:
                assert cost > 0
                assert Decimal(line["llmobs.cost"]) == Decimal(cost) / 10**12, (line.get("url.path"), line["llmobs.cost"])
        counted = sum((c + 500_000) // 1_000_000 for c in expected.values() if c is not None)
        assert envoy.metric("llmobs_token_accounting_cost_micros", currency="USD") == counted
        for tenant in ("acme", "globex"):
            ids = [r for r, c in expected.items() if c is not None and lines[r]["llmobs.tenant"] == tenant]
            assert envoy.metric("llmobs_token_accounting_cost_micros", tenant=tenant) == \
                sum((expected[r] + 500_000) // 1_000_000 for r in ids)
        assert envoy.metric("llmobs_token_accounting_unpriced", reason="no_price", gen_ai_request_model="llama3.2") == 1
        assert envoy.metric("llmobs_token_accounting_unpriced") == 1
    finally:
        envoy.stop()


def test_new_prices_apply_on_the_next_request_and_a_bad_table_keeps_the_previous_prices(tmp_path, fresh_upstream):
    envoy = start_priced_envoy(tmp_path, fresh_upstream.port, "separate_filters_prices_by_ecds")
    resource = tmp_path / "ecds" / "token-accounting.yaml"
    stat = "envoy_extension_config_discovery_http_filter_llmobs_token_accounting_"
    try:
        oa = openai.OpenAI(base_url=envoy.url + "/v1", api_key="sk-test", max_retries=0)

        def cost_of_one_request() -> tuple[Decimal, int, int]:
            h = {"x-request-id": uuid.uuid4().hex}
            r = oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                           extra_headers=h)
            line = wait_line(envoy, h["x-request-id"])
            return Decimal(line["llmobs.cost"]), r.usage.prompt_tokens, r.usage.completion_tokens

        before, p, c = cost_of_one_request()
        assert before == (Decimal(p) * Decimal("0.15") + Decimal(c) * Decimal("0.60")) / 10**6
        shipped_date = float(SHIPPED["effective_date"].replace("-", ""))
        assert envoy.metric("llmobs_token_accounting_price_table_date", currency="USD") == shipped_date
        reloads = envoy.metric(stat + "config_reload")
        dearer = json.loads(json.dumps(SHIPPED))
        dearer["effective_date"] = "2027-01-01"
        for e in dearer["models"]:
            if e["provider"] == "openai" and e["model"] == "gpt-4o-mini*":
                e["input"], e["output"] = "0.30", "1.20"
        ecds_resource(resource, dearer)
        assert envoy.wait_metric(stat + "config_reload", reloads + 1) == reloads + 1
        after, p, c = cost_of_one_request()
        assert after == (Decimal(p) * Decimal("0.30") + Decimal(c) * Decimal("1.20")) / 10**6, "new prices, no restart"
        assert envoy.metric("llmobs_token_accounting_price_table_date", currency="USD") == 20270101

        fails = envoy.metric(stat + "config_fail")
        broken = json.loads(json.dumps(dearer))
        broken["models"][0]["output"] = "1.5 USD"
        ecds_resource(resource, broken)
        assert envoy.wait_metric(stat + "config_fail", fails + 1) == fails + 1
        assert "invalid configuration: field `prices.models[0].output`" in envoy.log_text()
        kept, p, c = cost_of_one_request()
        assert kept == (Decimal(p) * Decimal("0.30") + Decimal(c) * Decimal("1.20")) / 10**6, "the previous prices stay"
        assert envoy.metric("llmobs_token_accounting_price_table_date", currency="USD") == 20270101
    finally:
        envoy.stop()


def wait_line(envoy: Envoy, request_id: str) -> dict:
    return wait_until(lambda: next((l for l in envoy.access_log() if l.get("llmobs.request_id") == request_id), None),
                      10, f"the access-log line of {request_id}")


FIXTURES = ROOT / "tests" / "fixtures" / "providers"


@pytest.mark.parametrize("pack", ["separate_filters", "bundle"])
def test_every_recorded_provider_exchange_costs_in_envoy_what_the_table_says(start_envoy, replay, pack):
    """The recorded exchanges carry what llmock never sends: OpenAI cached and reasoning tokens,
    Anthropic cache reads, Gemini thoughts, Bedrock and Azure. Replayed byte for byte in 7-byte
    chunks through a real Envoy; each one's cost computed here from its recorded usage."""
    rewrites = {"/vllm/": "/", "/ollama/": "/"}
    overrides = [{"path_prefix": "/vllm/", "provider": "vllm"}, {"path_prefix": "/ollama/", "provider": "ollama"}]

    def setup(config):
        route_everything_to(config, replay.port, rewrites)
        if pack == "bundle":
            as_bundle(config)

    envoy = start_envoy({ACCOUNTING: {"providers": overrides, "prices": SHIPPED}}, mutate=setup)
    expected: dict[str, tuple[str, int | None]] = {}
    for meta_file in sorted(FIXTURES.glob("*/meta.json")):
        case, meta = meta_file.parent.name, json.loads(meta_file.read_text())
        want = meta["expected"]
        body = (meta_file.parent / meta["request_file"]).read_bytes() if meta.get("request_file") else b"{}"
        prefix = f"/{meta['provider_override']}" if meta.get("provider_override") else ""
        request_id = uuid.uuid4().hex
        status, _, _ = post_json(envoy.url + prefix + meta["path"], body,
                                 {**meta.get("request_headers", {}), "x-fixture": case, "x-request-id": request_id})
        assert status == meta["status"], case
        if want["usage_source"] != "provider":
            continue
        usage = {k: v or 0 for k, v in want["usage"].items()}
        model = want["response_model"] or want["request_model"]
        expected[request_id] = (case, picos(SHIPPED, want["provider"], model,
                                            usage["input"] - usage["cache_read"] - usage["cache_creation"],
                                            usage["cache_read"], usage["cache_creation"], usage["output"]))

    def logged() -> dict | None:
        found = {l.get("llmobs.request_id"): l for l in envoy.access_log()}
        return found if set(expected) <= set(found) else None

    lines = wait_until(logged, 10, "every fixture's access-log line")
    mismatches = []
    for request_id, (case, cost) in expected.items():
        got = lines[request_id].get("llmobs.cost")
        want_text = None if cost is None else Decimal(cost) / 10**12
        if (None if got is None else Decimal(got)) != want_text:
            mismatches.append((case, got, want_text))
    assert mismatches == []
    priced = [c for _, c in expected.values() if c is not None]
    assert len(priced) >= 20 and any(c is None for _, c in expected.values())
    assert any(lines[r].get("gen_ai.usage.cache_read.input_tokens", "0") != "0" for r, (_, c) in expected.items() if c)
    assert envoy.metric("llmobs_token_accounting_cost_micros") == sum((c + 500_000) // 1_000_000 for c in priced)
    assert envoy.metric("llmobs_token_accounting_unpriced", reason="no_price") == len(expected) - len(priced)
