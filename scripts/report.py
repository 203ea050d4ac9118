"""The monthly report: spend and the canned questions for one calendar month, from Prometheus.

    scripts/report --prometheus URL --month YYYY-MM --out DIR [--chromium PATH]

Writes DIR/report.html (one self-contained page, charts as inline SVG), DIR/report.pdf (that
page printed by headless Chromium) and DIR/report.json (every number of the page, spend in
integer micro-units). What the numbers mean and how exact they are: docs/questions.md.

Every figure is one PromQL query at a fixed instant: the month's totals are `increase(...[N d])`
evaluated at the first instant of the next month (N = the month's days), the previous month's
at the first instant of the month; daily figures are `increase(...[1d])` at each midnight (UTC).
Organic traffic only (synthetic="false"), except the health-check question.
"""

from __future__ import annotations

import argparse
import calendar
import datetime as dt
import html
import json
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

ORGANIC = 'synthetic="false"'
COST = f"llmobs_token_accounting_cost_micros{{{ORGANIC}}}"
TOKENS = f'llmobs_token_accounting_tokens{{{ORGANIC}, gen_ai_token_type=~"input|output"}}'
REQUESTS = f"llmobs_token_accounting_requests{{{ORGANIC}}}"
ERRORS = f"llmobs_errors{{{ORGANIC}}}"
FINISHED = f"llmobs_token_accounting_finish_reasons{{{ORGANIC}}}"
TTFT = f"gen_ai_client_operation_time_to_first_chunk_ms_bucket{{{ORGANIC}}}"
UNPRICED = f"llmobs_token_accounting_unpriced{{{ORGANIC}}}"
# Thresholds of the growth questions, the same as the alerts' (envoy/prometheus/alerts.yaml).
DOUBLED = {
    ("tokens", "day"): (TOKENS, "1d", 100_000),
    ("spend", "day"): (COST, "1d", 1_000_000),
    ("tokens", "week"): (TOKENS, "1w", 700_000),
    ("spend", "week"): (COST, "1w", 7_000_000),
}
# Prompt versions: each share's failing events and what they are a share of, and the least of
# the latter a version needs in each month to be compared (fewer makes a share noise). Errors by
# version are request durations with a non-empty error_type (empty on success): llmobs_errors
# carries no prompt_version.
PROMPT_VERSION_SHARES = {
    "errors": (f'gen_ai_client_operation_duration_ms_count{{{ORGANIC}, error_type!=""}}',
               f"gen_ai_client_operation_duration_ms_count{{{ORGANIC}}}", "calls", "failed calls"),
    "refusals": (f'llmobs_token_accounting_finish_reasons{{{ORGANIC}, finish_reason="content_filter"}}', FINISHED,
                 "answers", "refused answers"),
    "tool_errors": (f"llmobs_agent_sessions_first_tool_error{{{ORGANIC}}}", f"llmobs_agent_sessions_started{{{ORGANIC}}}",
                    "sessions", "sessions with a tool error"),
}
PROMPT_VERSION_FLOOR = 100
# Chart colours, in order; the first is also what the end-to-end test looks for in the PDF.
PALETTE = ["#1f6fb4", "#e8710a", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
# One marker colour per section, so a page image shows which sections it holds.
SECTIONS = [
    ("summary", "Summary", "#b00b1e"),
    ("spend", "Spend by team, model and provider", "#0b7a3e"),
    ("daily", "Daily spend and errors", "#5b2c8f"),
    ("movers", "Top movers", "#c47f00"),
    ("questions", "The questions, answered", "#006d77"),
]


class Prometheus:
    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def _get(self, path: str, **params) -> dict:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=60) as response:
            doc = json.load(response)
        if doc.get("status") != "success":
            raise RuntimeError(f"Prometheus refused {params}: {doc}")
        return doc["data"]

    def query(self, expr: str, at: dt.datetime | None = None) -> list[tuple[dict, float]]:
        params = {"query": expr}
        if at is not None:
            params["time"] = str(at.timestamp())
        data = self._get("query", **params)
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def query_range(self, expr: str, start: dt.datetime, end: dt.datetime, step: str) -> list[tuple[dict, list]]:
        data = self._get("query_range", query=expr, start=str(start.timestamp()), end=str(end.timestamp()), step=step)
        return [(r["metric"], [(dt.datetime.fromtimestamp(float(t), dt.timezone.utc), float(v)) for t, v in r["values"]])
                for r in data["result"]]


def month_bounds(month: str) -> tuple[dt.datetime, dt.datetime, dt.datetime]:
    year, mon = (int(p) for p in month.split("-"))
    start = dt.datetime(year, mon, 1, tzinfo=dt.timezone.utc)
    end = start + dt.timedelta(days=calendar.monthrange(year, mon)[1])
    prev_start = (start - dt.timedelta(days=1)).replace(day=1)
    return start, end, prev_start


def by(results: list[tuple[dict, float]], *labels: str) -> dict:
    return {tuple(m.get(l, "") for l in labels) if len(labels) > 1 else m.get(labels[0], ""): v for m, v in results}


def micros(value: float) -> int:
    return int(round(value))


def build(prom: Prometheus, month: str) -> dict:
    start, end, prev_start = month_bounds(month)
    days, prev_days = (end - start).days, (start - prev_start).days
    window, prev_window = f"{days}d", f"{prev_days}d"

    def this_and_prev(expr_of_window, *labels):
        now = prom.query(expr_of_window(window), end)
        before = prom.query(expr_of_window(prev_window), start)
        if not labels:
            return (now[0][1] if now else 0.0), (before[0][1] if before else 0.0)
        return by(now, *labels), by(before, *labels)

    spend = this_and_prev(lambda w: f"sum(increase({COST}[{w}]))")
    tokens = this_and_prev(lambda w: f"sum(increase({TOKENS}[{w}]))")
    requests = this_and_prev(lambda w: f"sum(increase({REQUESTS}[{w}]))")
    currency = sorted({m.get("currency", "") for m, _ in prom.query(f"count by (currency) (increase({COST}[{window}]))", end)})

    def table(*labels):
        now, before = this_and_prev(lambda w: f"sum by ({', '.join(labels)}) (increase({COST}[{w}]))", *labels)
        rows = []
        for key in sorted(set(now) | set(before)):
            rows.append({"key": list(key) if isinstance(key, tuple) else [key],
                         "this_micros": micros(now.get(key, 0.0)), "prev_micros": micros(before.get(key, 0.0))})
        rows.sort(key=lambda r: (-r["this_micros"], r["key"]))
        return rows

    by_tenant, by_model, by_provider = table("tenant"), table("gen_ai_provider_name", "gen_ai_request_model"), \
        table("gen_ai_provider_name")
    unpriced = prom.query(f"sum(increase({UNPRICED}[{window}]))", end)

    first_day = start + dt.timedelta(days=1)
    daily_spend = prom.query_range(f"sum by (tenant) (increase({COST}[1d]))", first_day, end, "1d")
    daily_errors = prom.query_range(f"sum by (error_type) (increase({ERRORS}[1d]))", first_day, end, "1d")
    day_labels = [(start + dt.timedelta(days=i)).date().isoformat() for i in range(days)]

    def per_day(results, label):
        out = {}
        for metric, values in results:
            series = out.setdefault(metric.get(label, ""), [0] * days)
            for t, v in values:
                index = (t - first_day).days
                if 0 <= index < days:
                    series[index] = micros(v)
        return dict(sorted(out.items()))

    spend_per_day = per_day(daily_spend, "tenant")
    errors_per_day = per_day(daily_errors, "error_type")

    movers = []
    for kind, rows in (("team", by_tenant), ("model", by_model)):
        for row in rows:
            movers.append({"kind": kind, "name": " ".join(row["key"]), "change_micros": row["this_micros"] - row["prev_micros"],
                           "this_micros": row["this_micros"], "prev_micros": row["prev_micros"]})
    movers.sort(key=lambda m: (-abs(m["change_micros"]), m["kind"], m["name"]))
    movers = [m for m in movers if m["change_micros"] != 0][:5]

    # Growth: the days (midnights ending a day, or a week) on which a team doubled.
    doubled = []
    for (what, period), (selector, span, floor) in DOUBLED.items():
        expr = (f"sum by (tenant) (increase({selector}[{span}])) >= 2 * sum by (tenant) (increase({selector}[{span}] offset {span}))"
                f" and sum by (tenant) (increase({selector}[{span}] offset {span})) >= {floor}")
        for metric, values in prom.query_range(expr, first_day, end, "1d"):
            ends = [(t - dt.timedelta(days=1)).date().isoformat() for t, _ in values]
            doubled.append({"tenant": metric.get("tenant", ""), "what": what, "period": period, "days": ends})
    doubled.sort(key=lambda d: (d["tenant"], d["what"], d["period"]))

    # Budgets are recording rules (envoy/prometheus/alerts.yaml): read as they stand now.
    budgets = {m.get("tenant", ""): micros(v) for m, v in prom.query("llmobs:tenant_daily_budget_micros")}
    default = prom.query("llmobs:tenant_daily_budget_micros:default")
    default_budget = micros(default[0][1]) if default else None
    over_budget = []
    for tenant, series in spend_per_day.items():
        budget = budgets.get(tenant, default_budget)
        if budget is None:
            continue
        over = [day_labels[i] for i, v in enumerate(series) if v > budget]
        if over:
            over_budget.append({"tenant": tenant, "budget_micros": budget, "days": over})

    errors_now, errors_before = this_and_prev(lambda w: f"sum by (error_type) (increase({ERRORS}[{w}]))", "error_type")
    error_shares = {k: (v / requests[0] if requests[0] else 0.0) for k, v in sorted(errors_now.items()) if v > 0}
    new_errors = {k: micros(v) for k, v in sorted(errors_now.items()) if v > 0 and errors_before.get(k, 0) <= 0}
    refusals = by(prom.query(
        f'(sum by (gen_ai_provider_name) (increase(llmobs_token_accounting_finish_reasons{{{ORGANIC}, finish_reason="content_filter"}}[{window}]))'
        f" or sum by (gen_ai_provider_name) (increase({FINISHED}[{window}])) * 0)"
        f" / sum by (gen_ai_provider_name) (increase({FINISHED}[{window}]))", end), "gen_ai_provider_name")
    ttft = by(prom.query(
        f"histogram_quantile(0.95, sum by (gen_ai_request_model, le) (increase({TTFT}[{window}])))", end),
        "gen_ai_request_model")
    probes = by(prom.query(
        f'(sum by (gen_ai_provider_name) (increase(llmobs_errors{{synthetic="true"}}[{window}]))'
        f' or sum by (gen_ai_provider_name) (increase(llmobs_token_accounting_requests{{synthetic="true"}}[{window}])) * 0)'
        f' / sum by (gen_ai_provider_name) (increase(llmobs_token_accounting_requests{{synthetic="true"}}[{window}]))', end),
        "gen_ai_provider_name")

    # Prompt versions whose error, refusal or tool-error share rose against the previous month:
    # each version with at least PROMPT_VERSION_FLOOR calls (answers, sessions) in both months,
    # the largest rise first; versions above the floor this month only are new (no comparison).
    prompt_versions = {}
    for measure, (failing, of, _, _) in PROMPT_VERSION_SHARES.items():
        num_now, num_before = this_and_prev(lambda w, f=failing: f"sum by (prompt_version) (increase({f}[{w}]))", "prompt_version")
        den_now, den_before = this_and_prev(lambda w, o=of: f"sum by (prompt_version) (increase({o}[{w}]))", "prompt_version")
        rose, new = [], []
        for version in sorted(den_now):
            if den_now[version] < PROMPT_VERSION_FLOOR:
                continue
            share = num_now.get(version, 0.0) / den_now[version]
            if den_before.get(version, 0.0) < PROMPT_VERSION_FLOOR:
                new.append({"prompt_version": version, "this": share, "count": micros(den_now[version])})
                continue
            before = num_before.get(version, 0.0) / den_before[version]
            if share > before:
                rose.append({"prompt_version": version, "this": share, "prev": before,
                             "count": micros(den_now[version]), "prev_count": micros(den_before[version])})
        rose.sort(key=lambda v: (-(v["this"] - v["prev"]), v["prompt_version"]))
        prompt_versions[measure] = {"rose": rose, "new": new}

    # The price tables in force: token accounting publishes each one's effective date (YYYYMMDD).
    tables = prom.query_range("max by (currency) (llmobs_token_accounting_price_table_date)", start, end, "1d")
    price_tables = sorted({f"{int(v) // 10000:04d}-{int(v) // 100 % 100:02d}-{int(v) % 100:02d}"
                           for _, values in tables for _, v in values if v > 0})

    return {
        "month": month, "previous_month": prev_start.strftime("%Y-%m"), "days": days, "price_tables": price_tables,
        "currency": currency[0] if len(currency) == 1 else ("mixed" if currency else "USD"),
        "totals": {
            "spend_micros": {"this": micros(spend[0]), "prev": micros(spend[1])},
            "tokens": {"this": micros(tokens[0]), "prev": micros(tokens[1])},
            "requests": {"this": micros(requests[0]), "prev": micros(requests[1])},
            "unpriced_requests": micros(unpriced[0][1]) if unpriced else 0,
        },
        "by_tenant": by_tenant, "by_model": by_model, "by_provider": by_provider,
        "days_labels": day_labels, "spend_per_day_micros": spend_per_day, "errors_per_day": errors_per_day,
        "top_movers": movers, "doubled": doubled, "over_budget": over_budget,
        "budgets_micros": budgets, "default_budget_micros": default_budget,
        "error_shares": error_shares, "new_error_classes": new_errors,
        "refusal_shares": dict(sorted(refusals.items())),
        "ttft_p95_ms": {k: v for k, v in sorted(ttft.items()) if v == v},
        "probe_failure_shares": dict(sorted(probes.items())),
        "prompt_versions": prompt_versions,
    }


# --- Rendering ------------------------------------------------------------------------------

def money(value_micros: int, currency: str = "USD") -> str:
    sign = "-" if value_micros < 0 else ""
    cents = (abs(value_micros) + 5_000) // 10_000
    symbol = "$" if currency == "USD" else currency + " "
    return f"{sign}{symbol}{cents // 100:,}.{cents % 100:02d}"


def percent(share: float) -> str:
    return f"{share * 100:.1f}%"


def change(this: int, prev: int) -> str:
    if prev == 0:
        return "new" if this else "-"
    return f"{(this - prev) / prev * 100:+.1f}%"


def month_name(month: str) -> str:
    year, mon = month.split("-")
    return f"{calendar.month_name[int(mon)]} {year}"


def answers(r: dict) -> list[tuple[str, str]]:
    """Each canned question and its one-sentence answer, with its number."""
    cur = r["currency"]
    t = r["totals"]
    month, prev = month_name(r["month"]), month_name(r["previous_month"])
    out = []
    spend_this, spend_prev = t["spend_micros"]["this"], t["spend_micros"]["prev"]
    top_team = r["by_tenant"][0] if r["by_tenant"] else None
    sentence = f"We spent {money(spend_this, cur)} in {month}, {change(spend_this, spend_prev)} against {prev} ({money(spend_prev, cur)})"
    if top_team:
        sentence += f"; the largest team was {top_team['key'][0]} with {money(top_team['this_micros'], cur)}"
    out.append(("How much did we spend, against the month before?", sentence + "."))
    if r["doubled"]:
        parts = [f"{d['tenant']} ({d['what']}, {d['period']} over {d['period']}, first on {d['days'][0]}, {len(d['days'])} day(s))"
                 for d in r["doubled"]]
        teams = sorted({d["tenant"] for d in r["doubled"]})
        text = f"{len(teams)} team(s) at least doubled their token use or spend: " + "; ".join(parts) + "."
    else:
        text = "No team doubled its token use or spend from one day or week to the next."
    out.append(("Which teams' token use or spend doubled?", text))
    if r["over_budget"]:
        parts = [f"{o['tenant']} on {len(o['days'])} day(s) (budget {money(o['budget_micros'], cur)} a day)" for o in r["over_budget"]]
        text = f"{len(r['over_budget'])} team(s) went over their daily budget: " + "; ".join(parts) + "."
    elif r["default_budget_micros"] is None and not r["budgets_micros"]:
        text = "No daily budgets are defined (envoy/prometheus/alerts.yaml)."
    else:
        text = "No team went over its daily budget."
    out.append(("Did a team go over its daily budget?", text))
    failed = sum(r["error_shares"].values())
    if r["error_shares"]:
        worst = max(r["error_shares"].items(), key=lambda kv: kv[1])
        text = f"{percent(failed)} of calls failed; the most common kind was {worst[0]} ({percent(worst[1])} of calls)."
    else:
        text = "No call failed."
    out.append(("What went wrong?", text))
    if r["new_error_classes"]:
        parts = [f"{k} ({v:,} calls)" for k, v in r["new_error_classes"].items()]
        text = f"{len(parts)} kind(s) of error appeared that were not seen in {prev}: " + ", ".join(parts) + "."
    else:
        text = f"No kind of error appeared that was not seen in {prev}."
    out.append(("Is any kind of error new?", text))
    if r["refusal_shares"]:
        parts = [f"{k} {percent(v)}" for k, v in sorted(r["refusal_shares"].items(), key=lambda kv: -kv[1])]
        text = "Share of answers refused or filtered by the provider: " + ", ".join(parts) + "."
    else:
        text = "No answers were recorded with a finish reason."
    out.append(("How often did providers refuse to answer?", text))
    if r["ttft_p95_ms"]:
        parts = [f"{k} {v / 1000:.2f} s" for k, v in sorted(r["ttft_p95_ms"].items(), key=lambda kv: -kv[1])]
        text = "95% of streamed answers showed their first words within: " + ", ".join(parts) + "."
    else:
        text = "No streamed answers were recorded."
    out.append(("How long did users wait for the first words?", text))
    if r["probe_failure_shares"]:
        parts = [f"{k} {percent(v)}" for k, v in sorted(r["probe_failure_shares"].items(), key=lambda kv: -kv[1])]
        text = "Share of health checks that failed: " + ", ".join(parts) + "."
    else:
        text = "No health checks ran."
    out.append(("Are the health checks passing?", text))
    parts, new_versions = [], set()
    for measure, (_, _, noun, failing) in PROMPT_VERSION_SHARES.items():
        found = r["prompt_versions"][measure]
        new_versions |= {v["prompt_version"] for v in found["new"]}
        if found["rose"]:
            top = found["rose"][0]
            parts.append(f"the share of {failing} rose for {len(found['rose'])} version(s), most for {top['prompt_version']}"
                         f" ({percent(top['this'])} of {top['count']:,} {noun} against {percent(top['prev'])} in {prev})")
        else:
            parts.append(f"no version's share of {failing} rose")
    text = (f"By prompt version (with at least {PROMPT_VERSION_FLOOR} calls, answers or sessions in both months): "
            + "; ".join(parts) + ".")
    if new_versions:
        text += f" New this month, with nothing to compare: {', '.join(sorted(new_versions))}."
    out.append(("Did a prompt version raise errors, refusals or tool errors?", text))
    return out


def bar_chart(title: str, labels: list[str], series: dict[str, list[int]], scale: float, unit) -> str:
    """A stacked bar chart per day as inline SVG (no script, prints as vectors)."""
    width, height, left, bottom, top = 900, 260, 70, 40, 20
    totals = [sum(s[i] for s in series.values()) for i in range(len(labels))]
    peak = max(totals + [1]) / scale
    plot_w, plot_h = width - left - 10, height - bottom - top
    bar_w = plot_w / max(len(labels), 1)
    full_height = height + 20 * ((len(series) + 3) // 4)
    # Scales to the page width (A4 is narrower than 900 px) and keeps its proportions.
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {full_height}" width="100%" role="img" aria-label="{html.escape(title)}">',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}" stroke="#444"/>']
    for frac in (0, 0.5, 1):
        y = top + plot_h - frac * plot_h
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{html.escape(unit(peak * frac))}</text>')
    for i in range(len(labels)):
        y = top + plot_h
        for n, (name, values) in enumerate(series.items()):
            h = values[i] / scale / peak * plot_h if peak else 0
            if h > 0:
                y -= h
                parts.append(f'<rect x="{left + i * bar_w + 1:.1f}" y="{y:.1f}" width="{bar_w - 2:.1f}" height="{h:.1f}" fill="{PALETTE[n % len(PALETTE)]}"/>')
        if i % 5 == 0:
            parts.append(f'<text x="{left + i * bar_w + bar_w / 2:.1f}" y="{top + plot_h + 14}" font-size="10" text-anchor="middle">{labels[i][5:]}</text>')
    for n, name in enumerate(series):
        x, y = left + (n % 4) * 200, height + 20 * (n // 4)
        parts.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{PALETTE[n % len(PALETTE)]}"/>'
                     f'<text x="{x + 18}" y="{y}" font-size="12">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render(r: dict) -> str:
    cur = r["currency"]
    t = r["totals"]
    month, prev = month_name(r["month"]), month_name(r["previous_month"])
    esc = html.escape

    def section(key: str) -> str:
        _, title, colour = next(s for s in SECTIONS if s[0] == key)
        return f'<h2 id="{key}"><span class="marker" style="background:{colour}"></span>{esc(title)}</h2>'

    def spend_table(rows, headers):
        body = "".join(
            "<tr>" + "".join(f"<td>{esc(k)}</td>" for k in row["key"])
            + f'<td class="n">{money(row["this_micros"], cur)}</td><td class="n">{money(row["prev_micros"], cur)}</td>'
            + f'<td class="n">{change(row["this_micros"], row["prev_micros"])}</td></tr>'
            for row in rows)
        head = "".join(f"<th>{h}</th>" for h in headers)
        return (f"<table><tr>{head}<th>{esc(month)}</th><th>{esc(prev)}</th><th>change</th></tr>{body}</table>")

    summary = (
        f'<table class="totals"><tr><th></th><th>{esc(month)}</th><th>{esc(prev)}</th><th>change</th></tr>'
        f'<tr><td>Spend</td><td class="n">{money(t["spend_micros"]["this"], cur)}</td><td class="n">{money(t["spend_micros"]["prev"], cur)}</td><td class="n">{change(t["spend_micros"]["this"], t["spend_micros"]["prev"])}</td></tr>'
        f'<tr><td>Tokens</td><td class="n">{t["tokens"]["this"]:,}</td><td class="n">{t["tokens"]["prev"]:,}</td><td class="n">{change(t["tokens"]["this"], t["tokens"]["prev"])}</td></tr>'
        f'<tr><td>Calls</td><td class="n">{t["requests"]["this"]:,}</td><td class="n">{t["requests"]["prev"]:,}</td><td class="n">{change(t["requests"]["this"], t["requests"]["prev"])}</td></tr>'
        f'</table><p>Calls that could not be priced (their model is not in the price table): {t["unpriced_requests"]:,}. '
        "Spend is at list prices, before discounts, credits and taxes; health checks are left out. "
        + (f'Prices: the price table(s) effective {", ".join(r["price_tables"])} ({esc(cur)}).'
           if r["price_tables"] else "Prices: no price table was reported by the proxies.") + "</p>")
    spend_chart = bar_chart("Spend per day by team", r["days_labels"], r["spend_per_day_micros"], 1_000_000,
                            lambda v: money(int(v * 1_000_000), cur))
    error_chart = bar_chart("Failed calls per day by kind of error", r["days_labels"], r["errors_per_day"], 1,
                            lambda v: f"{v:,.0f}")
    movers = "".join(
        f'<tr><td>{esc(m["kind"])}</td><td>{esc(m["name"])}</td><td class="n">{money(m["prev_micros"], cur)}</td>'
        f'<td class="n">{money(m["this_micros"], cur)}</td><td class="n">{"+" if m["change_micros"] > 0 else ""}{money(m["change_micros"], cur)}</td></tr>'
        for m in r["top_movers"])
    qa = "".join(f'<div class="qa"><p class="q">{esc(q)}</p><p class="a">{esc(a)}</p></div>' for q, a in answers(r))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>LLM spend and answers, {esc(month)}</title>
<style>
body {{ font-family: "DejaVu Sans", Arial, sans-serif; margin: 28px; color: #222; font-size: 13px; }}
h1 {{ font-size: 22px; margin-bottom: 2px; }}
h2 {{ font-size: 17px; margin-top: 26px; border-bottom: 1px solid #ccc; padding-bottom: 4px; }}
.marker {{ display: inline-block; width: 36px; height: 14px; margin-right: 10px; vertical-align: -1px; }}
table {{ border-collapse: collapse; margin: 8px 0; }}
th, td {{ border-bottom: 1px solid #e3e3e3; padding: 3px 10px; text-align: left; }}
td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
.qa {{ margin: 8px 0; page-break-inside: avoid; }} .q {{ font-weight: bold; margin: 0; }} .a {{ margin: 2px 0 0 0; }}
svg {{ page-break-inside: avoid; }}
@page {{ size: A4; margin: 12mm; }}
</style></head><body>
<h1>LLM spend and answers: {esc(month)}</h1>
<p>From the llmobs proxies' counters in Prometheus; compared with {esc(prev)}. What the numbers mean: docs/questions.md.</p>
{section("summary")}{summary}
{section("spend")}<h3>By team</h3>{spend_table(r["by_tenant"], ["team"])}
<h3>By model</h3>{spend_table(r["by_model"], ["provider", "model"])}
<h3>By provider</h3>{spend_table(r["by_provider"], ["provider"])}
{section("daily")}<h3>Spend per day by team</h3>{spend_chart}<h3>Failed calls per day by kind of error</h3>{error_chart}
{section("movers")}<table><tr><th></th><th>name</th><th>{esc(prev)}</th><th>{esc(month)}</th><th>change</th></tr>{movers}</table>
{section("questions")}{qa}
</body></html>
"""


def find_chromium(explicit: str | None) -> str:
    for candidate in [explicit, "chromium", "chromium-browser", "google-chrome"]:
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    raise SystemExit("report: no Chromium found (scripts/setup installs Debian's chromium); pass --chromium PATH")


def print_pdf(chromium: str, html_path: Path, pdf_path: Path) -> None:
    with tempfile.TemporaryDirectory() as profile:
        # --no-sandbox: Chromium refuses to run as root with its sandbox (CI containers run as root).
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        f"--user-data-dir={profile}", "--no-pdf-header-footer", "--no-first-run",
                        f"--print-to-pdf={pdf_path}", html_path.resolve().as_uri()],
                       check=True, capture_output=True, timeout=120)
    if not pdf_path.exists() or pdf_path.stat().st_size == 0:
        raise SystemExit(f"report: Chromium wrote no PDF to {pdf_path}")


def main() -> int:
    parser = argparse.ArgumentParser(description="Monthly LLM spend report (HTML and PDF) from Prometheus.")
    parser.add_argument("--prometheus", required=True, help="Prometheus base URL, e.g. http://127.0.0.1:9090")
    parser.add_argument("--month", required=True, help="calendar month, YYYY-MM (UTC)")
    parser.add_argument("--out", required=True, type=Path, help="directory for report.html, report.pdf, report.json")
    parser.add_argument("--chromium", help="Chromium binary (default: chromium from PATH)")
    args = parser.parse_args()
    try:
        dt.datetime.strptime(args.month, "%Y-%m")
    except ValueError:
        parser.error("--month must be YYYY-MM")
    args.out.mkdir(parents=True, exist_ok=True)
    report = build(Prometheus(args.prometheus), args.month)
    (args.out / "report.json").write_text(json.dumps(report, indent=1, sort_keys=True))
    html_path = args.out / "report.html"
    html_path.write_text(render(report))
    print_pdf(find_chromium(args.chromium), html_path, args.out / "report.pdf")
    print(f"report: {html_path}, {args.out / 'report.pdf'}, {args.out / 'report.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
