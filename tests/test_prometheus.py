"""The pack's Prometheus artifacts against real tools: a real Prometheus (Debian's package)
scrapes a real Envoy running the pack, loads envoy/prometheus/alerts.yaml, and answers every
query of envoy/grafana/llmobs-dashboard.json with data. The rule unit tests themselves are
`promtool test rules` in scripts/test."""

from __future__ import annotations

import json
import math
import re
import subprocess
import time
import urllib.parse
from pathlib import Path

import anthropic
import openai
import pytest
import yaml

from harness import (PII_KEY_B64, ROOT, Envoy, build_config, eval_exporting, free_port, hcm_of, http_get, post_json,
                     wait_until)
from otlp_receiver import OtlpLogsReceiver

PROMETHEUS = "/usr/bin/prometheus"
ALERTS = ROOT / "envoy" / "prometheus" / "alerts.yaml"
DASHBOARD = ROOT / "envoy" / "grafana" / "llmobs-dashboard.json"
ALERTS_DOC = ROOT / "docs" / "alerts.md"
EMAIL = "jane.roe@example.com"  # a PII value the filter must keep out of every series
# A value only a rule on trial finds (RULE_ON_TRIAL): counted as a would-be block, changing nothing.
TICKET = "TKT-123456"
RULE_ON_TRIAL = {"entity": "ticket_id", "pattern": "\\bTKT-[0-9]{6}\\b", "shadow": "block"}
# What the dashboard's variables and Grafana's interval macros become in the test.
MACROS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}


class Prometheus:
    """Prometheus on a free loopback port with its own storage, scraping one Envoy every second."""

    def __init__(self, tmp: Path, envoy_admin_port: int):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [{
                "job_name": "envoy",
                "metrics_path": "/stats/prometheus",
                "static_configs": [{"targets": [f"127.0.0.1:{envoy_admin_port}"]}],
            }],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log_path = tmp / "prometheus.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=tmp,
        )
        wait_until(self._ready, 30, "Prometheus to become ready")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"Prometheus exited with {self.proc.returncode}:\n{self.log_path.read_text()[-4000:]}")
        try:
            return http_get(self.url + "/-/ready", timeout=1)[0] == 200
        except OSError:
            return False

    def api(self, path: str, **params) -> dict:
        query = urllib.parse.urlencode(params, doseq=True)
        status, body = http_get(f"{self.url}/api/v1/{path}?{query}")
        doc = json.loads(body)
        assert status == 200 and doc["status"] == "success", (path, params, doc)
        return doc["data"]

    def query(self, expr: str) -> list[dict]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", (expr, data)
        return data["result"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# The stack's evaluation exporter holds one record at most and waits 1.5 s before a retry, so one
# round of export_round() gives every export series a step: a failed batch, its retry sent, the
# record behind it dropped (queue_full), and bytes held long enough for a scrape to see them.
EVAL_EXPORTER = {"max_queued_records": 1, "batch_max_records": 1,
                 "retry": {"initial_backoff_ms": 1500, "max_backoff_ms": 1500, "max_attempts": 3}}


def export_round(envoy: Envoy, receiver: OtlpLogsReceiver) -> int:
    """Two consented exchanges while the receiver fails its next export: the first record's batch
    fails and is held for its retry (then sent), the second finds the exporter full. Returns the
    output tokens the SDK reported."""
    oa = openai.OpenAI(base_url=envoy.url + "/v1", api_key="sk-test", max_retries=0)
    sent = envoy.metric("llmobs_eval_export_records_sent")
    full = envoy.metric("llmobs_eval_export_records_dropped", reason="queue_full")
    receiver.fail_next = 1
    output_tokens = 0
    for _ in range(2):
        r = oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "evaluate me"}],
                                       extra_headers={"x-llmobs-consent": "eval", "x-llmobs-tenant": "acme"})
        output_tokens += r.usage.completion_tokens
    assert envoy.wait_metric("llmobs_eval_export_records_dropped", full + 1, reason="queue_full") == full + 1
    assert envoy.wait_metric("llmobs_eval_export_records_sent", sent + 1) == sent + 1
    return output_tokens


def with_rule_on_trial(mutate):
    """A `mutate` for build_config: `mutate`, then the demo's PII rules plus RULE_ON_TRIAL, a
    custom rule with only `shadow` (not in force), so the trial panel has data while the rules in
    force, and every other series, stay the demo's."""
    def both(config: dict) -> None:
        mutate(config)
        for f in hcm_of(config)["http_filters"]:
            wasm = f.get("typed_config", {}).get("config", {})
            if wasm.get("name") == "llmobs_pii_redaction":
                pii = json.loads(wasm["configuration"]["value"])
                pii["custom_rules"] = [*pii.get("custom_rules", []), RULE_ON_TRIAL]
                wasm["configuration"]["value"] = json.dumps(pii)
    return both


def drive(envoy: Envoy, upstream, receiver: OtlpLogsReceiver) -> dict:
    """One round of traffic that every dashboard panel reads (tokens, PII, a rule on trial, a
    stream, a parse failure, errors, probes, evaluation export). Returns the output tokens the
    SDKs reported, by (provider, model, tenant)."""
    oa = openai.OpenAI(base_url=envoy.url + "/v1", api_key="sk-test", max_retries=0)
    an = anthropic.Anthropic(base_url=envoy.url + "/anthropic", api_key="sk-ant-test", max_retries=0)
    reported = {}
    # The e-mail address is pseudonymized (in force); the ticket only counted (on trial).
    r = oa.chat.completions.create(model="gpt-4o-mini",
                                   messages=[{"role": "user", "content": f"write to {EMAIL} about {TICKET}"}],
                                   extra_headers={"x-llmobs-tenant": "acme"})
    reported[("openai", "gpt-4o-mini", "acme")] = r.usage.completion_tokens + export_round(envoy, receiver)
    # Quality signals: retrieval reports (a full one, an empty one, an invalid one) and client
    # feedback (a thumbs-down, a thumbs-up, a refused one).
    for diag in ("chunks=12; dropped=3; top_score=0.82; sparse_skipped=1; empty=0", "empty=1", "chunks=2; dropped=3"):
        r = oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "grounded?"}],
                                       extra_headers={"x-llmobs-tenant": "acme", "x-llmobs-retrieval": diag,
                                                      "x-llmobs-prompt-version": "support-v7"})
        reported[("openai", "gpt-4o-mini", "acme")] += r.usage.completion_tokens
    for rating in ("down", "up", "meh"):
        post_json(envoy.url + "/llmobs/v1/feedback", {"request_id": "r-1", "rating": rating, "locale": "de-CH"},
                  {"x-llmobs-prompt-version": "support-v7", "x-llmobs-tenant": "acme"})
    m = an.messages.create(model="claude-3-5-haiku", max_tokens=64, messages=[{"role": "user", "content": "hello"}],
                           extra_headers={"x-llmobs-tenant": "globex"})
    reported[("anthropic", "claude-3-5-haiku", "globex")] = m.usage.output_tokens
    # A stream without include_usage: time to first chunk, and a response without usage.
    assert list(oa.chat.completions.create(model="gpt-4o", stream=True, messages=[{"role": "user", "content": "x"}],
                                           extra_headers={"x-llmobs-tenant": "acme"}))
    # A stream cut by a malformed event: a parse failure.
    upstream.scenario({"type": "stream_fault", "kind": "malformed", "after_chunks": 2})
    with pytest.raises(json.JSONDecodeError):
        list(oa.chat.completions.create(model="gpt-4o", stream=True, messages=[{"role": "user", "content": "x"}]))
    upstream.scenario({"type": "fail", "status": 429, "retry_after": 1, "times": 1})
    with pytest.raises(openai.RateLimitError):
        oa.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    # An agent turn: the model asks for a tool, the tool fails, the next call carries its error
    # (agent, tool and prompt-version panels and rules).
    upstream.scenario({"type": "reply", "times": 1, "tool_calls": [{"name": "get_weather", "arguments": {}}]})
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    prompt = {"x-llmobs-tenant": "acme", "x-llmobs-prompt-version": "v7"}
    asked = oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "weather?"}],
                                       tools=tools, extra_headers=prompt)
    first = asked.choices[0].message
    upstream.scenario({"type": "reply", "text": "Sorry.", "times": 1})
    r = oa.chat.completions.create(model="gpt-4o-mini", tools=tools, extra_headers=prompt, messages=[
        {"role": "user", "content": "weather?"}, first.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": '{"error": "timeout"}'}])
    reported[("openai", "gpt-4o-mini", "acme")] += asked.usage.completion_tokens + r.usage.completion_tokens
    # Synthetic probes: one answered, one failed.
    probe = {"x-llmobs-synthetic": "true"}
    oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "probe"}], extra_headers=probe)
    upstream.scenario({"type": "fail", "status": 529, "times": 1})
    with pytest.raises(anthropic.APIStatusError):
        an.messages.create(model="claude-3-5-haiku", max_tokens=8, messages=[{"role": "user", "content": "probe"}],
                           extra_headers=probe)
    return reported


# Envoy merges histograms only at a stats flush (harness: every 0.25 s) while counters are live,
# so a scrape that already holds a round's request count can predate the flush that carries the
# round's histograms. A histogram series first appears already holding round one's observation,
# so the only increase a rate can see is round two's; if the last scrape predates its flush, the
# rate is zero and the quantile NaN (a flaky failure seen on the time-to-first-chunk panel under
# load). Waiting for a scrape at least this long after the round rules that out.
HISTOGRAM_SETTLE_S = 1.0


def scraped(prom: Prometheus, envoy: Envoy, round_ended: float) -> bool:
    """Prometheus holds Envoy's current request count from a scrape taken after the round's
    histograms were flushed (so the latest traffic was scraped, histograms included)."""
    want = envoy.metric("llmobs_token_accounting_requests")
    got = prom.query("sum(llmobs_token_accounting_requests)")
    if not got or float(got[0]["value"][1]) != want:
        return False
    taken = prom.query("max(timestamp(llmobs_token_accounting_requests))")
    return bool(taken) and float(taken[0]["value"][1]) >= round_ended + HISTOGRAM_SETTLE_S


@pytest.fixture(scope="module")
def stack(tmp_path_factory, upstream):
    """Envoy with the pack, scraped by Prometheus, after two rounds of traffic: the first
    creates the series, the second moves them, so rates over a minute are above zero."""
    tmp = tmp_path_factory.mktemp("prometheus")
    upstream.reset()
    # Two models fit under the label cap; gpt-4o arrives third and is counted as _OTHER.
    # With the shipped price table, so the spend series the rules and dashboards read exist.
    token_accounting = {"tenant_header": "x-llmobs-tenant", "model_label": {"max_distinct": 2},
                        "prices": json.loads((ROOT / "envoy" / "prices" / "default.json").read_text())}
    # With evaluation export on and its exporter sending to a real OTLP/HTTP receiver.
    receiver = OtlpLogsReceiver()
    config, ports = build_config(tmp, upstream.port, {"llmobs_token_accounting": token_accounting},
                                 mutate=with_rule_on_trial(eval_exporting(receiver.port, exporter=EVAL_EXPORTER)))
    envoy = Envoy(tmp, config, ports)
    prom = None
    try:
        prom = Prometheus(tmp, ports["admin"])
        reported = [drive(envoy, upstream, receiver)]
        ended = time.time()
        wait_until(lambda: scraped(prom, envoy, ended), 20, "Prometheus to scrape the first round")
        reported.append(drive(envoy, upstream, receiver))
        ended = time.time()
        wait_until(lambda: scraped(prom, envoy, ended), 20, "Prometheus to scrape the second round")
        totals = {k: sum(r[k] for r in reported) for k in reported[0]}
        yield envoy, prom, totals
    finally:
        if prom:
            prom.stop()
        envoy.stop()
        receiver.stop()


def fill(expr: str) -> str:
    """A dashboard query as Grafana would send it with every variable at All."""
    for macro, value in MACROS.items():
        expr = expr.replace(macro, value)
    return re.sub(r"\$\{?(provider|model|tenant)\}?", ".*", expr)


def dashboard_targets(dashboard: dict) -> list[tuple[str, str]]:
    found = []
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                found.append((inner["title"], target["expr"]))
    return found


def test_prometheus_sees_tokens_by_provider_model_and_tenant_as_the_sdks_reported_them(stack):
    envoy, prom, totals = stack
    rows = prom.query('sum by (gen_ai_provider_name, gen_ai_request_model, tenant) '
                      '(llmobs_token_accounting_tokens{synthetic="false", gen_ai_token_type="output"})')
    seen = {(r["metric"]["gen_ai_provider_name"], r["metric"]["gen_ai_request_model"], r["metric"]["tenant"]):
            float(r["value"][1]) for r in rows}
    for key, output_tokens in totals.items():
        assert seen.get(key) == output_tokens, (key, seen)
    errors = prom.query('llmobs_errors{synthetic="false", error_type="rate_limit", gen_ai_provider_name="openai"}')
    assert [float(e["value"][1]) for e in errors] == [2.0]
    probes = prom.query('sum by (error_type) (llmobs_errors{synthetic="true"})')
    assert {p["metric"]["error_type"]: float(p["value"][1]) for p in probes} == {"overloaded": 2.0}


def test_every_histogram_has_the_buckets_of_envoy_stats_config(stack):
    envoy, _, _ = stack
    settings = yaml.safe_load((ROOT / "envoy" / "stats-config.yaml").read_text())["stats_config"]["histogram_bucket_settings"]
    exported = envoy.prometheus()
    assert len(settings) >= 8
    for setting in settings:
        prefix = setting["match"]["prefix"]
        assert prefix.startswith("wasmcustom."), f"{prefix}: Envoy names Wasm metrics wasmcustom.<name>"
        series = prefix.removeprefix("wasmcustom.").replace(".", "_") + "_bucket"
        found = re.search(rf"^{series}\{{([^}}]*)\}}", exported, flags=re.M)
        assert found, f"no {series} in Envoy's output"
        labels = re.sub(r',?le="[^"]*"', "", found.group(1))
        les = re.findall(rf'^{series}\{{{re.escape(labels)},le="([^"]+)"\}}', exported, flags=re.M)
        assert les[-1:] == ["+Inf"] and [float(le) for le in les[:-1]] == [float(b) for b in setting["buckets"]], \
            (series, les)


def test_no_series_or_label_in_prometheus_carries_the_pii_value_or_the_keys(stack):
    _, prom, _ = stack
    series = json.dumps(prom.api("series", **{"match[]": ['{__name__=~".+"}']}))
    assert "llmobs_pii_detections" in series
    for secret in (EMAIL, TICKET, "sk-test", "sk-ant-test", PII_KEY_B64):
        assert secret not in series


def test_the_rule_on_trial_is_counted_as_a_would_be_block_and_not_as_a_detection_in_force(stack):
    """The trial panel reads what RULE_ON_TRIAL would have done (one ticket per round, two rounds);
    the PII detections panel, which reads the rules in force, never sees its entity."""
    _, prom, _ = stack
    trial = prom.query('sum by (entity, action, direction) (llmobs_pii_shadow_detections)')
    assert {(t["metric"]["entity"], t["metric"]["action"], t["metric"]["direction"]): float(t["value"][1])
            for t in trial} == {("ticket_id", "block", "request"): 2.0}
    assert prom.query('count(llmobs_pii_detections{entity="ticket_id"})') == []
    assert [b["metric"] for b in prom.query("llmobs_pii_blocked > 0")] == [], "a trial blocks nothing"


def test_prometheus_loads_every_rule_of_alerts_yaml_and_evaluates_it_without_error(stack):
    _, prom, _ = stack
    defined = [r.get("alert") or r["record"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]

    def evaluated():
        rules = [r for g in prom.api("rules")["groups"] for r in g["rules"]]
        return all(r["health"] != "unknown" for r in rules) and rules

    rules = wait_until(evaluated, 10, "every rule to be evaluated once")
    assert sorted(r["name"] for r in rules) == sorted(defined)
    assert [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"] == []


def test_every_series_the_rules_read_is_exported_by_envoy_under_that_name(stack):
    _, prom, _ = stack
    # Metric names, as opposed to label names, are followed by a selector or a range.
    names = set(re.findall(r"\b((?:llmobs|gen_ai|envoy)_[a-z_]+)(?=[{\[])", ALERTS.read_text()))
    assert "envoy_filesystem_write_buffered" in names and len(names) >= 8
    assert sorted(n for n in names if not prom.query(f"count({n})")) == []


def test_every_dashboard_variable_query_returns_values(stack):
    _, prom, _ = stack
    dashboard = json.loads(DASHBOARD.read_text())
    variables = [v for v in dashboard["templating"]["list"] if v["type"] == "query"]
    assert {v["name"] for v in variables} == {"provider", "model", "tenant"}
    expected = {"provider": {"openai", "anthropic"}, "model": {"gpt-4o-mini", "claude-3-5-haiku"},
                "tenant": {"acme", "globex"}}
    for var in variables:
        assert var["datasource"]["uid"] == "${datasource}"
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", fill(var["query"]["query"]))
        assert m, var["query"]
        values = set(prom.api(f"label/{m.group(2)}/values", **{"match[]": [m.group(1)]}))
        assert expected[var["name"]] <= values, (var["name"], values)


def test_every_dashboard_panel_query_returns_data_from_the_real_prometheus(stack):
    _, prom, _ = stack
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] >= 39
    targets = dashboard_targets(dashboard)
    assert len(targets) >= 12
    empty = []
    for title, expr in targets:
        assert "$" not in fill(expr), expr
        values = [float(r["value"][1]) for r in prom.query(fill(expr))]
        if not any(math.isfinite(v) and v > 0 for v in values):
            empty.append((title, expr, values))
    assert empty == []
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_every_alert_has_a_severity_a_summary_and_a_runbook_section_in_docs():
    doc = ALERTS_DOC.read_text()
    # GitHub's anchor of a heading: lower case, spaces to hyphens, punctuation dropped.
    anchors = {re.sub(r"[^a-z0-9 _-]", "", h.strip().lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", doc, flags=re.M)}
    alerts = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"] if "alert" in r]
    assert len(alerts) >= 10
    for rule in alerts:
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        page, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert page == "docs/alerts.md" and anchor == f"alert-{rule['alert'].lower()}", rule["alert"]
        assert anchor in anchors, f"docs/alerts.md has no section for {rule['alert']}"


QUESTIONS = ROOT / "envoy" / "grafana" / "llmobs-questions.json"


def test_every_question_on_the_spend_dashboard_is_a_query_the_real_prometheus_answers(stack):
    """Every query of the non-engineers' dashboard runs without error on live data, and those
    about the current period (not the period before, nor growth, which need history: the monthly
    report's test checks those on a backfilled month) return a series for what the traffic did."""
    _, prom, _ = stack
    dashboard = json.loads(QUESTIONS.read_text())
    targets = dashboard_targets(dashboard)
    assert len(targets) >= 15
    needs_history = ("offset", "unless", ">= 2 *")
    empty = []
    for title, expr in targets:
        assert "$" not in fill(expr), expr
        values = [float(r["value"][1]) for r in prom.query(fill(expr))]
        if not any(h in expr for h in needs_history) and "unpriced" not in expr \
                and not any(math.isfinite(v) and v >= 0 for v in values):
            empty.append((title, expr, values))
    assert empty == []
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["description"], panel["title"]
