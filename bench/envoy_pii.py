"""Added time of the PII redaction filter inside the real Envoy (V8), per 16 KiB chat request.

    .venv/bin/python bench/envoy_pii.py [--quick] [--out run/bench/envoy-pii.json]

Two Envoys from envoy/demo.yaml in front of one llmock: one without the PII filter, one with it
in traffic mode (every built-in entity redacted). The same 16 KiB OpenAI chat request, with and
without ten PII values, is sent N times over one kept-alive connection to each; the table gives
the client-side median and p90 latency per cell and the difference (the added time), plus the
filter's own inspection time from its `llmobs.pii.inspect_us` histogram (Envoy's quantiles).
Cells are interleaved (A, B, A, B, ...) so drift on this shared 2-core machine hits both alike.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from harness import Envoy, Upstream, build_config, http_get, without_filter  # noqa: E402

PII_FILTER = "llmobs_pii_redaction"
PII_VALUES = ["4111 1111 1111 1111", "jane.doe@example.com", "+1 415 555 0132", "DE89 3704 0044 0532 0130 00",
              "536-22-8714", "10.20.30.40", "AKIAIOSFODNN7QWERTZU", "ghp_R8x2Lw9Rt4Yv7Bn3Mk6Pd1Hs5Jf0Gc8Xa2We",
              "mike.smith@corp.example.org", "5500 0000 0000 0004"]
PROSE = ("The quarterly report covers revenue, churn and the roadmap for the next two releases. "
         "Please summarise the main risks, list open questions for the finance team, and suggest "
         "three follow-ups with owners and dates. Keep the tone neutral and the answer short. ")


def chat_body(with_pii: bool, size: int = 16 * 1024) -> bytes:
    words = []
    total = 0
    i = 0
    while total < size - 200:
        piece = PROSE
        if with_pii and i % 8 == 3 and i // 8 < len(PII_VALUES):
            piece = f"Contact: {PII_VALUES[i // 8]}. " + PROSE
        words.append(piece)
        total += len(piece)
        i += 1
    text = "".join(words)[: size - 200]
    body = {"model": "gpt-4o-mini", "max_tokens": 16,
            "messages": [{"role": "system", "content": "You are a concise analyst."},
                         {"role": "user", "content": text}]}
    return json.dumps(body).encode()


def write_bodies(directory: str) -> None:
    """The two request bodies, for bench/v8_filter.mjs (the same bytes as sent to Envoy)."""
    Path(directory, "chat-16k-clean.json").write_bytes(chat_body(False))
    Path(directory, "chat-16k-pii.json").write_bytes(chat_body(True))


def send(conn: http.client.HTTPConnection, body: bytes) -> float:
    started = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body=body, headers={"content-type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    elapsed = time.perf_counter() - started
    if resp.status != 200:
        raise RuntimeError(f"status {resp.status}")
    return elapsed * 1e6


def inspect_quantiles(envoy: Envoy) -> dict:
    """Envoy's computed quantiles of llmobs.pii.inspect_us (direction=request), in µs."""
    text = http_get(envoy.admin + "/stats?filter=llmobs.pii.inspect_us")[1].decode()
    for line in text.splitlines():
        if "direction=request" in line and "P50(" in line:
            # Interval and cumulative quantiles: P50(interval,cumulative).
            return {q: float(c) for q, _, c in re.findall(r"P(\d+(?:\.\d+)?)\(([^,]+),([^)]+)\)", line)
                    if c != "nan"}
    return {}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "run" / "bench" / "envoy-pii.json"))
    args = parser.parse_args()
    n = 60 if args.quick else 400
    warmup = 20 if args.quick else 100
    work = Path(tempfile.mkdtemp(prefix="llmobs-bench-"))
    upstream = Upstream(work / "llmock.log")
    envoys = {}
    try:
        pii_config = {"mode": "traffic", "default_action": "redact", "rule_set_version": "bench"}
        for name, mutate, configs in [
            ("without filter", lambda c: without_filter(c, PII_FILTER), None),
            ("with filter", None, {PII_FILTER: pii_config}),
        ]:
            d = work / name.replace(" ", "-")
            d.mkdir()
            config, ports = build_config(d, upstream.port, configs, mutate)
            envoys[name] = Envoy(d, config, ports, component_log_levels="")
        bodies = {"clean": chat_body(False), "with PII": chat_body(True)}
        conns = {name: http.client.HTTPConnection("127.0.0.1", e.port, timeout=30) for name, e in envoys.items()}
        samples = {(e, b): [] for e in envoys for b in bodies}
        for i in range(warmup + n):
            for b, body in bodies.items():
                for e, conn in conns.items():
                    t = send(conn, body)
                    if i >= warmup:
                        samples[(e, b)].append(t)
        rows = []
        for b in bodies:
            base = statistics.median(samples[("without filter", b)])
            with_f = statistics.median(samples[("with filter", b)])
            p90 = lambda xs: statistics.quantiles(xs, n=10)[8]  # noqa: E731
            rows.append({"body": b, "bytes": len(bodies[b]), "n": n,
                         "median_us_without": round(base), "median_us_with": round(with_f),
                         "p90_us_without": round(p90(samples[("without filter", b)])),
                         "p90_us_with": round(p90(samples[("with filter", b)])),
                         "added_median_us": round(with_f - base)})
        quantiles = inspect_quantiles(envoys["with filter"])
        result = {"date": time.strftime("%Y-%m-%d"), "requests_per_cell": n, "cells": rows,
                  "inspect_us_quantiles_all_bodies": quantiles}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(f"PII filter in Envoy (V8), 16 KiB OpenAI chat request, {n} requests per cell, median (p90) µs")
        print(f"{'body':<10} {'without':>16} {'with':>16} {'added':>8}")
        for r in rows:
            print(f"{r['body']:<10} {r['median_us_without']:>7} ({r['p90_us_without']:>6}) "
                  f"{r['median_us_with']:>7} ({r['p90_us_with']:>6}) {r['added_median_us']:>8}")
        if quantiles:
            print("filter's own inspection time (llmobs.pii.inspect_us, both bodies): "
                  + ", ".join(f"P{q}={v:.0f}" for q, v in quantiles.items() if q in ("50", "90", "99")))
        return 0
    finally:
        for e in envoys.values():
            e.stop()
        upstream.stop()


if __name__ == "__main__":
    sys.exit(main())
