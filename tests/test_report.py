"""The monthly report end to end: two months of realistic series backfilled into a real
Prometheus (promtool tsdb create-blocks-from openmetrics), scripts/report run against it, its PDF
turned into page images (pdftoppm) that are opened and checked for every section and both
charts, and every number of the report equal to what this test computes from the data it wrote.
The spend dashboard's history questions (growth, the period before, new kinds of error) are
checked against the same Prometheus."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness import ROOT, free_port, http_get, wait_until

sys.path.insert(0, str(ROOT / "scripts"))
import report as report_module  # noqa: E402  (scripts/report.py: its palette, sections and formatting)

PROMETHEUS = "/usr/bin/prometheus"
MONTH = "2026-11"
START = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)  # the previous month's first day
NOV = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
END = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
DAYS = (END - START).days  # 61: October and November
LE = ["100", "250", "500", "1000", "2500", "5000", "+Inf"]


def day_date(i: int) -> dt.date:
    return (START + dt.timedelta(days=i)).date()


def in_november(i: int) -> bool:
    return day_date(i) >= NOV.date()


# --- The data: per-day increments of every series, deterministic ----------------------------

def traffic() -> dict[str, list[int]]:
    """Series (OpenMetrics name with labels) -> increment on each of the 61 days."""
    series: dict[str, list[int]] = {}

    def add(name: str, labels: dict, per_day) -> None:
        text = name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
        series[text] = [int(per_day(i)) for i in range(DAYS)]

    models = {  # team -> (provider, model, micro-units per token in, per token out)
        "acme": ("openai", "gpt-4o-mini", 0.15, 0.60),
        "globex": ("anthropic", "claude-sonnet-4", 3, 15),
        "initech": ("gcp.gemini", "gemini-2.5-flash", 0.30, 2.50),
    }

    def tokens_in(team: str, i: int) -> int:
        d = day_date(i)
        if team == "acme":  # triples on 15 November: a day-over-day and a week-over-week doubling
            return (150_000 + 1_000 * (i % 7)) * (3 if d >= dt.date(2026, 11, 15) else 1)
        if team == "globex":  # steady, a little busier in November
            return 40_000 + 500 * (i % 5) + (4_000 if in_november(i) else 0)
        # initech starts on 10 November, big from its first day (no doubling: nothing before)
        return 120_000_000 if d >= dt.date(2026, 11, 10) else 0

    def tokens_out(team: str, i: int) -> int:
        return tokens_in(team, i) // 4

    for team, (provider, model, rate_in, rate_out) in models.items():
        base = {"synthetic": "false", "gen_ai_operation_name": "chat", "gen_ai_provider_name": provider,
                "gen_ai_request_model": model, "tenant": team}
        add("llmobs_token_accounting_tokens", {**base, "gen_ai_token_type": "input"}, lambda i, t=team: tokens_in(t, i))
        add("llmobs_token_accounting_tokens", {**base, "gen_ai_token_type": "output"}, lambda i, t=team: tokens_out(t, i))
        add("llmobs_token_accounting_tokens", {**base, "gen_ai_token_type": "cache_read"},
            lambda i, t=team: tokens_in(t, i) // 10)  # inside input: must not count twice
        add("llmobs_token_accounting_cost_micros", {**base, "currency": "USD"},
            lambda i, t=team, a=rate_in, b=rate_out: round(tokens_in(t, i) * a + tokens_out(t, i) * b))
    # The price table's effective date (a gauge, YYYYMMDD): a new table from 15 November.
    add("llmobs_token_accounting_price_table_date", {"currency": "USD"},
        lambda i: 20261115 if day_date(i) >= dt.date(2026, 11, 15) else 20260901)
    # A health check's spend: never in the report.
    add("llmobs_token_accounting_cost_micros", {"synthetic": "true", "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o-mini", "tenant": "unknown", "currency": "USD"},
        lambda i: 90_000_000)
    add("llmobs_token_accounting_unpriced", {"synthetic": "false", "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "openai", "gen_ai_request_model": "llama3.2", "tenant": "acme", "reason": "no_price"},
        lambda i: 5 + i % 3)
    for provider, calls in (("openai", 9_000), ("anthropic", 3_000), ("gcp.gemini", 6_000)):
        add("llmobs_token_accounting_requests", {"synthetic": "false", "gen_ai_provider_name": provider,
            "gen_ai_operation_name": "chat", "usage_source": "provider", "stream_outcome": "completed"},
            lambda i, c=calls: c + 10 * (i % 4))
        add("llmobs_token_accounting_requests", {"synthetic": "true", "gen_ai_provider_name": provider,
            "gen_ai_operation_name": "chat", "usage_source": "provider", "stream_outcome": "completed"}, lambda i: 288)
        # Anthropic's traffic is prompt version support-v2, whose refusals double in November.
        version = "support-v2" if provider == "anthropic" else "support-v1"
        refused = {"openai": lambda i: 9, "anthropic": lambda i: 120 if in_november(i) else 60,
                   "gcp.gemini": lambda i: 24}[provider]
        add("llmobs_token_accounting_finish_reasons", {"synthetic": "false", "gen_ai_provider_name": provider,
            "gen_ai_request_model": "m", "finish_reason": "content_filter", "prompt_version": version}, refused)
        add("llmobs_token_accounting_finish_reasons", {"synthetic": "false", "gen_ai_provider_name": provider,
            "gen_ai_request_model": "m", "finish_reason": "stop", "prompt_version": version},
            lambda i, c=calls, r=refused: c - r(i) - 100)
    # Requests by prompt version (the duration histogram's count: successes carry no error_type,
    # as Envoy exports the empty tag): support-v1's errors halve in November, support-v2's
    # quadruple, support-v3 starts on 20 November (new: nothing to compare), beta is too small to
    # compare (2 calls a day), and probes of support-v2 failing never count.
    duration = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o-mini",
                "tenant": "acme"}
    by_version = [("support-v1", "false", lambda i: 1_000, "rate_limit", lambda i: 5 if in_november(i) else 10),
                  ("support-v2", "false", lambda i: 500, "context_length_exceeded", lambda i: 20 if in_november(i) else 5),
                  ("support-v3", "false", lambda i: 300 if day_date(i) >= dt.date(2026, 11, 20) else 0, "400",
                   lambda i: 18 if day_date(i) >= dt.date(2026, 11, 20) else 0),
                  ("beta", "false", lambda i: 2, "500", lambda i: 1 if in_november(i) else 0),
                  ("support-v2", "true", lambda i: 10, "overloaded", lambda i: 100 if in_november(i) else 0)]
    for version, synthetic, ok, error_type, failed in by_version:
        labels = {**duration, "synthetic": synthetic, "prompt_version": version}
        add("gen_ai_client_operation_duration_ms_count", labels, ok)
        add("gen_ai_client_operation_duration_ms_count", {**labels, "error_type": error_type}, failed)
    # Agent sessions by prompt version: support-v1's share with a tool error doubles in
    # November (5% to 10%), support-v2's falls (8% to 7%).
    for version, started, first_error in (("support-v1", 200, lambda i: 20 if in_november(i) else 10),
                                          ("support-v2", 100, lambda i: 7 if in_november(i) else 8)):
        session = {"synthetic": "false", "gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o-mini",
                   "tenant": "acme", "prompt_version": version}
        add("llmobs_agent_sessions_started", session, lambda i, s=started: s)
        add("llmobs_agent_sessions_first_tool_error", session, first_error)
    errors = [("openai", "rate_limit", lambda i: 50 + i % 6),
              ("anthropic", "overloaded", lambda i: 20),
              ("openai", "quota_exhausted", lambda i: 30 if day_date(i) >= dt.date(2026, 11, 20) else 0)]
    for provider, error_type, per_day in errors:
        add("llmobs_errors", {"synthetic": "false", "gen_ai_provider_name": provider, "error_type": error_type,
                              "origin": "upstream", "retryable": "true"}, per_day)
    add("llmobs_errors", {"synthetic": "true", "gen_ai_provider_name": "anthropic", "error_type": "overloaded",
                          "origin": "upstream", "retryable": "true"}, lambda i: 72 if in_november(i) else 0)
    # Time to first token: gpt-4o-mini mostly within 250-500 ms; claude-sonnet-4 slower.
    shapes = {"gpt-4o-mini": [100, 300, 500, 80, 15, 5, 0], "claude-sonnet-4": [0, 50, 200, 400, 250, 90, 10]}
    for model, counts in shapes.items():
        cumulative = [sum(counts[:k + 1]) for k in range(len(counts))]
        for le, c in zip(LE, cumulative):
            add("gen_ai_client_operation_time_to_first_chunk_ms_bucket", {"synthetic": "false",
                "gen_ai_operation_name": "chat", "gen_ai_request_model": model, "tenant": "acme", "le": le},
                lambda i, c=c: c * (2 if in_november(i) else 1))
    return series


def openmetrics(series: dict[str, list[int]]) -> str:
    """Cumulative samples at every midnight (UTC) from 1 October to 1 December. No TYPE lines:
    OpenMetrics would want counters named *_total, which is not how Envoy exports them."""
    lines = []
    for name, increments in series.items():
        if name.startswith("llmobs_token_accounting_price_table_date"):  # a gauge: values as they are
            lines += [f"{name} {increments[min(i, DAYS - 1)]} {int((START + dt.timedelta(days=i)).timestamp())}"
                      for i in range(DAYS + 1)]
            continue
        value = 0
        for i in range(DAYS + 1):
            lines.append(f"{name} {value} {int((START + dt.timedelta(days=i)).timestamp())}")
            if i < DAYS:
                value += increments[i]
    return "\n".join(lines) + "\n# EOF\n"


# --- What the report must say, computed here from the data ----------------------------------

def labels_of(name: str) -> dict:
    return dict(re.findall(r'(\w+)="([^"]*)"', name))


def metric_of(name: str) -> str:
    return name.split("{", 1)[0]


def total(series, metric, month_days, keep=lambda l: True) -> int:
    return sum(v for name, inc in series.items() if metric_of(name) == metric and keep(labels_of(name))
               for i, v in enumerate(inc) if i in month_days)


def expected_report(series: dict[str, list[int]]) -> dict:
    nov = {i for i in range(DAYS) if in_november(i)}
    octo = set(range(DAYS)) - nov
    organic = lambda l: l.get("synthetic") == "false"  # noqa: E731
    tokens = lambda l: organic(l) and l.get("gen_ai_token_type") in ("input", "output")  # noqa: E731
    exp = {
        "spend": (total(series, "llmobs_token_accounting_cost_micros", nov, organic),
                  total(series, "llmobs_token_accounting_cost_micros", octo, organic)),
        "tokens": (total(series, "llmobs_token_accounting_tokens", nov, tokens),
                   total(series, "llmobs_token_accounting_tokens", octo, tokens)),
        "requests": (total(series, "llmobs_token_accounting_requests", nov, organic),
                     total(series, "llmobs_token_accounting_requests", octo, organic)),
        "unpriced": total(series, "llmobs_token_accounting_unpriced", nov, organic),
    }
    teams = sorted({labels_of(n)["tenant"] for n in series if metric_of(n) == "llmobs_token_accounting_cost_micros"
                    and organic(labels_of(n))})
    exp["by_tenant"] = {t: (total(series, "llmobs_token_accounting_cost_micros", nov, lambda l, t=t: organic(l) and l["tenant"] == t),
                            total(series, "llmobs_token_accounting_cost_micros", octo, lambda l, t=t: organic(l) and l["tenant"] == t))
                        for t in teams}
    nov_days = sorted(nov)
    exp["spend_per_day"] = {t: [sum(inc[i] for n, inc in series.items()
                                    if metric_of(n) == "llmobs_token_accounting_cost_micros" and organic(labels_of(n))
                                    and labels_of(n)["tenant"] == t) for i in nov_days] for t in teams}
    # Growth, the alerts' rule, day by day: the 1 (or 7) days ending at each November midnight
    # against the 1 (or 7) before.
    def team_daily(t, metric, keep):
        return [sum(inc[i] for n, inc in series.items() if metric_of(n) == metric and keep(labels_of(n))
                    and labels_of(n)["tenant"] == t) for i in range(DAYS)]
    doubled = set()
    for what, metric, keep, floors in (("tokens", "llmobs_token_accounting_tokens", tokens, (100_000, 700_000)),
                                       ("spend", "llmobs_token_accounting_cost_micros", organic, (1_000_000, 7_000_000))):
        for t in teams:
            daily = team_daily(t, metric, keep)
            for period, span, floor in (("day", 1, floors[0]), ("week", 7, floors[1])):
                for i in nov_days:
                    last = sum(daily[i - span + 1:i + 1])
                    before = sum(daily[i - 2 * span + 1:i - span + 1])
                    if before >= floor and last >= 2 * before:
                        doubled.add((t, what, period, day_date(i).isoformat()))
    exp["doubled"] = doubled
    budgets = {"acme": 500_000_000}  # envoy/prometheus/alerts.yaml; every other team 100 USD
    exp["over_budget"] = {t: [day_date(i).isoformat() for k, i in enumerate(nov_days)
                              if exp["spend_per_day"][t][k] > budgets.get(t, 100_000_000)] for t in teams}
    exp["over_budget"] = {t: d for t, d in exp["over_budget"].items() if d}
    errors_nov = {labels_of(n)["error_type"]: 0 for n in series if metric_of(n) == "llmobs_errors"}
    for et in list(errors_nov):
        errors_nov[et] = total(series, "llmobs_errors", nov, lambda l, e=et: organic(l) and l["error_type"] == e)
    errors_oct = {et: total(series, "llmobs_errors", octo, lambda l, e=et: organic(l) and l["error_type"] == e)
                  for et in errors_nov}
    exp["error_shares"] = {et: v / exp["requests"][0] for et, v in errors_nov.items() if v > 0}
    exp["new_error_classes"] = {et: v for et, v in errors_nov.items() if v > 0 and errors_oct[et] == 0}
    providers = sorted({labels_of(n)["gen_ai_provider_name"] for n in series
                        if metric_of(n) == "llmobs_token_accounting_finish_reasons"})
    fin = lambda p, reason=None: total(series, "llmobs_token_accounting_finish_reasons", nov,  # noqa: E731
                                       lambda l: organic(l) and l["gen_ai_provider_name"] == p
                                       and (reason is None or l["finish_reason"] == reason))
    exp["refusal_shares"] = {p: fin(p, "content_filter") / fin(p) for p in providers}
    probe = lambda metric, p: total(series, metric, nov,  # noqa: E731
                                    lambda l: l.get("synthetic") == "true" and l["gen_ai_provider_name"] == p)
    exp["probe_failure_shares"] = {p: probe("llmobs_errors", p) / probe("llmobs_token_accounting_requests", p)
                                   for p in providers}
    # Prompt versions: per measure, the share in each month of the versions with at least 100
    # of what the share is of in both months; those that rose (largest rise first) and the new.
    def by_version(metric, days, keep=lambda l: True):
        out = {}
        for name, inc in series.items():
            l = labels_of(name)
            if metric_of(name) == metric and organic(l) and keep(l):
                out[l["prompt_version"]] = out.get(l["prompt_version"], 0) + sum(inc[i] for i in days)
        return out
    measures = {
        "errors": ("gen_ai_client_operation_duration_ms_count", lambda l: "error_type" in l, lambda l: True),
        "refusals": ("llmobs_token_accounting_finish_reasons", lambda l: l["finish_reason"] == "content_filter",
                     lambda l: True),
    }
    exp["prompt_versions"] = {}
    for measure, (metric, failing, _) in measures.items():
        exp["prompt_versions"][measure] = (by_version(metric, nov, failing), by_version(metric, nov),
                                           by_version(metric, octo, failing), by_version(metric, octo))
    exp["prompt_versions"]["tool_errors"] = (
        by_version("llmobs_agent_sessions_first_tool_error", nov), by_version("llmobs_agent_sessions_started", nov),
        by_version("llmobs_agent_sessions_first_tool_error", octo), by_version("llmobs_agent_sessions_started", octo))
    for measure, (num_now, den_now, num_before, den_before) in exp["prompt_versions"].items():
        rose, new = [], []
        for version, den in den_now.items():
            if den < 100:
                continue
            if den_before.get(version, 0) < 100:
                new.append((version, num_now.get(version, 0) / den, den))
            elif num_now.get(version, 0) / den > num_before.get(version, 0) / den_before[version]:
                rose.append((version, num_now.get(version, 0) / den, num_before.get(version, 0) / den_before[version],
                             den, den_before[version]))
        rose.sort(key=lambda v: v[2] - v[1])
        exp["prompt_versions"][measure] = {"rose": rose, "new": sorted(new)}
    # p95 from the buckets as Prometheus interpolates: linearly inside the bucket that holds it.
    exp["ttft_p95_ms"] = {}
    for model in ("gpt-4o-mini", "claude-sonnet-4"):
        counts = [total(series, "gen_ai_client_operation_time_to_first_chunk_ms_bucket", nov,
                        lambda l, le=le: l["gen_ai_request_model"] == model and l["le"] == le) for le in LE]
        rank = 0.95 * counts[-1]
        k = next(k for k, c in enumerate(counts) if c >= rank)
        lower, lower_count = (0.0, 0) if k == 0 else (float(LE[k - 1]), counts[k - 1])
        exp["ttft_p95_ms"][model] = lower + (float(LE[k]) - lower) * (rank - lower_count) / (counts[k] - lower_count)
    return exp


# --- Real tools -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def backfilled(tmp_path_factory):
    """A real Prometheus over two backfilled months, with the pack's rules (budgets) loaded."""
    tmp = tmp_path_factory.mktemp("report")
    series = traffic()
    (tmp / "series.om").write_text(openmetrics(series))
    data = tmp / "data"
    subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(tmp / "series.om"), str(data)],
                   check=True, capture_output=True, timeout=120)
    port = free_port()
    config = {"global": {"evaluation_interval": "1s"}, "rule_files": [str(ROOT / "envoy/prometheus/alerts.yaml")]}
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = open(tmp / "prometheus.log", "wb")
    # Retention is relative to the newest data, not the clock: keep the two months whole.
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={data}",
                             "--storage.tsdb.retention.time=10y", f"--web.listen-address=127.0.0.1:{port}",
                             "--log.level=warn"], stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
    url = f"http://127.0.0.1:{port}"
    try:
        def budgets_evaluated():
            if proc.poll() is not None:
                raise RuntimeError((tmp / "prometheus.log").read_text()[-3000:])
            try:
                status, body = http_get(url + "/api/v1/query?query=llmobs%3Atenant_daily_budget_micros%3Adefault", timeout=1)
            except OSError:
                return False
            return status == 200 and json.loads(body)["data"]["result"]
        wait_until(budgets_evaluated, 30, "Prometheus to load the blocks and evaluate the budget rules")
        yield url, series, tmp
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()


@pytest.fixture(scope="module")
def rendered(backfilled):
    url, series, tmp = backfilled
    out = tmp / "out"
    subprocess.run([str(ROOT / "scripts/report"), "--prometheus", url, "--month", MONTH, "--out", str(out)],
                   check=True, capture_output=True, timeout=180)
    return json.loads((out / "report.json").read_text()), out, expected_report(series)


def test_the_reports_numbers_equal_the_ones_computed_from_the_backfilled_series(rendered):
    got, _, exp = rendered
    t = got["totals"]
    assert (t["spend_micros"]["this"], t["spend_micros"]["prev"]) == exp["spend"]
    assert (t["tokens"]["this"], t["tokens"]["prev"]) == exp["tokens"]
    assert (t["requests"]["this"], t["requests"]["prev"]) == exp["requests"]
    assert t["unpriced_requests"] == exp["unpriced"]
    assert {r["key"][0]: (r["this_micros"], r["prev_micros"]) for r in got["by_tenant"]} == exp["by_tenant"]
    assert sum(r["this_micros"] for r in got["by_model"]) == exp["spend"][0]
    assert sum(r["this_micros"] for r in got["by_provider"]) == exp["spend"][0]
    assert got["spend_per_day_micros"] == exp["spend_per_day"]
    assert {(d["tenant"], d["what"], d["period"], day) for d in got["doubled"] for day in d["days"]} == exp["doubled"]
    assert {o["tenant"]: o["days"] for o in got["over_budget"]} == exp["over_budget"]
    assert got["new_error_classes"] == exp["new_error_classes"] == {"quota_exhausted": 11 * 30}
    assert got["price_tables"] == ["2026-09-01", "2026-11-15"]
    for key in ("error_shares", "refusal_shares", "probe_failure_shares", "ttft_p95_ms"):
        assert got[key].keys() == exp[key].keys(), key
        for k, v in exp[key].items():
            assert math.isclose(got[key][k], v, rel_tol=1e-9), (key, k, got[key][k], v)
    for measure, exp_versions in exp["prompt_versions"].items():
        got_versions = got["prompt_versions"][measure]
        assert [(v["prompt_version"], v["count"], v["prev_count"]) for v in got_versions["rose"]] == \
            [(v, n, p) for v, _, _, n, p in exp_versions["rose"]], measure
        for g, (_, this, prev, _, _) in zip(got_versions["rose"], exp_versions["rose"]):
            assert math.isclose(g["this"], this, rel_tol=1e-9) and math.isclose(g["prev"], prev, rel_tol=1e-9), (measure, g)
        assert [(v["prompt_version"], v["count"]) for v in got_versions["new"]] == \
            [(v, n) for v, _, n in exp_versions["new"]], measure
        for g, (_, this, _) in zip(got_versions["new"], exp_versions["new"]):
            assert math.isclose(g["this"], this, rel_tol=1e-9), (measure, g)
    # The story the data tells, so the checks above cannot pass on an empty month.
    assert [v[0] for v in exp["prompt_versions"]["errors"]["rose"]] == ["support-v2"]  # v1 fell; beta too small
    assert [v[0] for v in exp["prompt_versions"]["errors"]["new"]] == ["support-v3"]
    assert exp["prompt_versions"]["refusals"]["rose"][0][0] == "support-v2"
    assert [v[0] for v in exp["prompt_versions"]["tool_errors"]["rose"]] == ["support-v1"]
    assert ("acme", "tokens", "day", "2026-11-15") in exp["doubled"]
    assert exp["over_budget"]["initech"][0] == "2026-11-10" and "acme" not in exp["over_budget"]
    # Initech's new spend is the biggest change, as a team and as its model (the same money).
    movers = {(m["kind"], m["name"]): m["change_micros"] for m in got["top_movers"][:2]}
    assert movers == {("team", "initech"): exp["by_tenant"]["initech"][0],
                      ("model", "gcp.gemini gemini-2.5-flash"): exp["by_tenant"]["initech"][0]}


def test_the_html_answers_each_question_in_a_sentence_with_its_number(rendered):
    got, out, exp = rendered
    page = (out / "report.html").read_text()
    for _, title, _ in report_module.SECTIONS:
        assert title in page
    sentences = dict(report_module.answers(got))
    assert len(sentences) >= 8
    spend = report_module.money(exp["spend"][0])
    assert spend in sentences["How much did we spend, against the month before?"]
    assert "initech on 21 day(s)" in sentences["Did a team go over its daily budget?"]
    assert "quota_exhausted (330 calls)" in sentences["Is any kind of error new?"]
    assert "acme (tokens, day over day, first on 2026-11-15" in sentences["Which teams' token use or spend doubled?"]
    versions = sentences["Did a prompt version raise errors, refusals or tool errors?"]
    _, this, prev, count, _ = exp["prompt_versions"]["errors"]["rose"][0]
    assert (f"By prompt version (with at least 100 calls, answers or sessions in both months): the share of failed calls rose for 1 version(s), most for support-v2 ({report_module.percent(this)}"
            f" of {count:,} calls against {report_module.percent(prev)} in October 2026)") in versions
    _, this, prev, count, _ = exp["prompt_versions"]["tool_errors"]["rose"][0]
    assert (f"most for support-v1 ({report_module.percent(this)} of {count:,} sessions against"
            f" {report_module.percent(prev)} in October 2026)") in versions
    assert "most for support-v2" in versions.split("refused answers", 1)[1].split(";", 1)[0]
    assert versions.endswith("New this month, with nothing to compare: support-v3.")
    for sentence in sentences.values():
        assert sentence.replace("&#x27;", "'") in page.replace("&#x27;", "'")
    assert page.count("<svg") == 2
    assert "Prices: the price table(s) effective 2026-09-01, 2026-11-15 (USD)." in page


def read_ppm(path: Path) -> tuple[int, int, bytes]:
    data = path.read_bytes()
    m = re.match(rb"P6\s+(\d+)\s+(\d+)\s+255\s", data)
    assert m, path
    return int(m.group(1)), int(m.group(2)), data[m.end():]


def pixels_near(image: bytes, colour: str, tolerance: int = 6) -> int:
    r, g, b = (int(colour[k:k + 2], 16) for k in (1, 3, 5))
    count = 0
    for k in range(0, len(image) - 2, 3):
        if abs(image[k] - r) <= tolerance and abs(image[k + 1] - g) <= tolerance and abs(image[k + 2] - b) <= tolerance:
            count += 1
    return count


def test_the_pdf_pages_show_every_section_and_both_charts(rendered):
    got, out, exp = rendered
    pdf = out / "report.pdf"
    assert pdf.read_bytes().startswith(b"%PDF")
    subprocess.run(["pdftoppm", "-r", "40", str(pdf), str(out / "page")], check=True, timeout=60)
    pages = sorted(out.glob("page-*.ppm"))
    assert 1 <= len(pages) <= 8
    images = [read_ppm(p)[2] for p in pages]
    for key, title, colour in report_module.SECTIONS:
        assert any(pixels_near(img, colour) >= 40 for img in images), f"section {title} ({colour}) on no page"
    # The charts: bars in the first palette colours (acme's spend, rate_limit's errors), and the
    # daily section's marker on the same page as the first chart's bars.
    bars = [pixels_near(img, report_module.PALETTE[0]) for img in images]
    assert sum(bars) >= 600, bars
    assert sum(pixels_near(img, report_module.PALETTE[1]) for img in images) >= 200
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    assert report_module.money(exp["spend"][0]) in text
    assert "The questions, answered" in text and "November 2026" in text


def test_the_spend_dashboards_history_questions_answer_from_the_backfilled_month(backfilled):
    url, series, _ = backfilled
    dashboard = json.loads((ROOT / "envoy/grafana/llmobs-questions.json").read_text())
    at = dt.datetime(2026, 11, 16, tzinfo=dt.timezone.utc).timestamp()  # the day after acme's jump
    answered = {}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$__range", "7d")
            status, body = http_get(f"{url}/api/v1/query?" + __import__("urllib.parse").parse.urlencode(
                {"query": expr, "time": str(at)}))
            doc = json.loads(body)
            assert status == 200 and doc["status"] == "success", (panel["title"], doc)
            answered[(panel["title"], target["refId"])] = {
                json.dumps(r["metric"], sort_keys=True): float(r["value"][1]) for r in doc["data"]["result"]}
    tokens_doubled = answered[("Teams whose token use doubled from one day to the next", "A")]
    assert list(tokens_doubled) == ['{"tenant": "acme"}']
    before = answered[("Spend by team: this period and the period before", "B")]
    assert before['{"tenant": "acme"}'] > 0
    # The week before 16 November by prompt version: support-v2 fails 20 calls in 520 a day, beta
    # 1 in 3, support-v3 has not started (its series, all zero, give no share rather than 0/0).
    failed = "Share of calls that failed, by prompt version: this period and the period before"
    assert answered[(failed, "A")].keys() == {'{"prompt_version": "support-v1"}', '{"prompt_version": "support-v2"}',
                                              '{"prompt_version": "beta"}'}
    assert math.isclose(answered[(failed, "A")]['{"prompt_version": "support-v2"}'], 20 / 520, rel_tol=1e-9)
    assert math.isclose(answered[(failed, "A")]['{"prompt_version": "beta"}'], 1 / 3, rel_tol=1e-9)
    tool_errors = "Share of agent sessions with a tool error, by prompt version: this period and the period before"
    assert math.isclose(answered[(tool_errors, "A")]['{"prompt_version": "support-v1"}'], 0.1, rel_tol=1e-9)
    new_kinds = answered[("Kinds of error new this week", "A")]
    assert new_kinds == {}, "quota_exhausted starts on 20 November"
