"""The peer a user would pick instead of the pack, measured as the pack is, in one run.

    .venv/bin/python bench/peers.py --litellm VENV/bin/litellm [--quick] [--repetitions N]
                                    [--seconds S] [--out DIR]

Issue 15 asks for LiteLLM proxy beside the pack, on the same upstream and workloads. Configurations,
all running at once, every one on core 0 (wrk, the upstream and this script on core 1):

- `no_wasm`: Envoy from envoy/demo.yaml with no filter but the router;
- `bundle`: the same Envoy with dist/llmobs_bundle.wasm (the demo's configuration), as in
  bench/envoy_pack.py;
- `litellm`: LiteLLM proxy (pinned in bench/peers-requirements.txt), one worker, no database,
  routing the workloads' model to the same upstream as an OpenAI-compatible server;
- `litellm_prometheus`: the same with its Prometheus callback, the metrics a user of it would turn
  on to get what the pack's stats give.

Workloads are bench/envoy_pack.py's (chat, the 16 KiB prompt with PII, the 200-event stream). Per
cell: req/s, p50/p99 (wrk, one thread, 8 connections), CPU per request of the whole process tree
(utime + stime over the cell / requests completed), and RSS after the run. LiteLLM runs without
a master key (loopback only, `dangerously_permit_weak_or_unset_master_key`): the cheapest way it
can run, so its numbers are if anything flattering to it. Never part of ./scripts/test: it needs
LiteLLM from PyPI in its own virtualenv (scripts/bench --peers makes it).

Writes <out>/<timestamp>-peers.json and .md and prints the table. Exits non-zero only when the
harness is broken (a request failed, a peer did not start), never on a speed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pack  # noqa: E402
from envoy_pack import (CONNECTIONS, PATH, WORKLOADS, check_cell, check_port, fmt, git_commit,  # noqa: E402
                        workload_files, write_report)
from responses import small_chat, write_responses  # noqa: E402

MODEL = json.loads(small_chat())["model"]
ENVOYS = {"no_wasm": {"replace": []}, "bundle": {"replace": [pack.bundle_filter()]}}
PEERS = {"litellm": [], "litellm_prometheus": ["prometheus"]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiteLLM:
    """LiteLLM proxy, one worker, its model routed to the bench upstream."""

    def __init__(self, litellm: Path, directory: Path, upstream_port: int, callbacks: list[str]):
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings = {"telemetry": False, **({"callbacks": callbacks} if callbacks else {})}
        config = {
            "model_list": [{"model_name": MODEL, "litellm_params": {
                "model": f"openai/{MODEL}", "api_base": f"http://127.0.0.1:{upstream_port}/v1",
                # Not a key: the bench upstream reads none; LiteLLM refuses to start without one.
                "api_key": "bench-upstream-reads-no-key"}}],
            "litellm_settings": settings,
            # Loopback only, for the bench's lifetime; see the module doc.
            "general_settings": {"dangerously_permit_weak_or_unset_master_key": True},
        }
        (directory / "config.yaml").write_text(json.dumps(config))
        self.log = (directory / "litellm.log").open("wb")
        # LITELLM_LOCAL_MODEL_COST_MAP: use the price map shipped in the package, not a download.
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
        self.proc = subprocess.Popen([str(litellm), "--config", str(directory / "config.yaml"), "--host",
                                      "127.0.0.1", "--port", str(self.port), "--num_workers", "1"],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=directory,
                                     start_new_session=True)
        self.log_path = directory / "litellm.log"

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"litellm exited: {self.log_path.read_text(errors='replace')[-3000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/health/liveliness")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"litellm not ready in {timeout} s: {self.log_path.read_text(errors='replace')[-3000:]}")

    def pids(self) -> list[int]:
        return [self.proc.pid] + descendants(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(timeout=10)
        self.log.close()


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (uvicorn or a metrics server may fork)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def tree_cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += pack.cpu_seconds(pid)
        except OSError:
            pass
    return total


def tree_rss(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += pack.rss_bytes(pid)
        except OSError:
            pass
    return total


def pin(pids: list[int]) -> None:
    for pid in pids:
        pack.pin_envoy(pid)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--litellm", type=Path, required=True, help="the litellm executable")
    parser.add_argument("--quick", action="store_true", help="1 repetition of 3 s per cell")
    parser.add_argument("--repetitions", type=int)
    parser.add_argument("--seconds", type=int)
    parser.add_argument("--out", default=str(pack.ROOT / "bench" / "results"))
    args = parser.parse_args()
    # LiteLLM runs in its own directory.
    args.litellm = args.litellm.absolute()
    reps = args.repetitions or (1 if args.quick else 3)
    seconds = args.seconds or (3 if args.quick else 10)
    if not pack.BUNDLE_WASM.exists():
        raise SystemExit("bench/peers.py: dist/llmobs_bundle.wasm is not built (./scripts/build)")

    pack.pin_self_to_load_core()
    work = Path(tempfile.mkdtemp(prefix="llmobs-peers-"))
    write_responses(work / "responses")
    bodies, manifests = workload_files(work)
    upstream = pack.FastUpstream(work / "responses", work / "upstream.log")
    envoys, peers = {}, {}
    started = time.time()
    try:
        specs = {}
        for name, spec in ENVOYS.items():
            d = work / name
            d.mkdir()
            specs[name] = (d, *pack.envoy_config(d, upstream.port, replace=spec["replace"]))
        envoys = pack.start_envoys(specs)
        for name, callbacks in PEERS.items():
            peers[name] = LiteLLM(args.litellm, work / name, upstream.port, callbacks)
        for p in peers.values():
            p.wait_ready()
            pin(p.pids())
        targets = {n: (e.url, lambda e=e: [e.proc.pid]) for n, e in envoys.items()}
        targets.update({n: (p.url, p.pids) for n, p in peers.items()})
        for name, (url, _) in targets.items():
            check_port(int(url.rsplit(":", 1)[1]), name, bodies, timeout=60)
        print(f"peers: {len(targets)} configurations x {len(WORKLOADS)} workloads, {reps} repetition(s) of "
              f"{seconds} s per cell", file=sys.stderr)
        mixed = pack.write_manifest(work / "mixed.tsv", [(PATH, "-", work / f"{w}.json") for w in WORKLOADS])
        for name, (url, _) in targets.items():
            check_cell(name, "warm-up", pack.wrk(url, mixed, 2 if args.quick else 5, CONNECTIONS))

        cells = {(n, w): [] for n in targets for w in WORKLOADS}
        names = list(targets)
        for rep in range(reps):
            for w in WORKLOADS:
                for name in names[rep % len(names):] + names[:rep % len(names)]:
                    url, pids = targets[name]
                    tree = pids()
                    cpu0 = tree_cpu_seconds(tree)
                    r = pack.wrk(url, manifests[w], seconds, CONNECTIONS)
                    cpu1 = tree_cpu_seconds(tree)
                    check_cell(name, w, r)
                    cells[(name, w)].append({"rps": r["rps"], "p50_us": r["p50_us"], "p99_us": r["p99_us"],
                                             "requests": r["requests"],
                                             "cpu_us_per_request": (cpu1 - cpu0) * 1e6 / r["requests"]})
            print(f"peers: repetition {rep + 1}/{reps} done ({time.time() - started:.0f} s)", file=sys.stderr)
        rss = {n: tree_rss(pids()) for n, (_, pids) in targets.items()}
    finally:
        for p in peers.values():
            p.stop()
        for e in envoys.values():
            e.stop()
        upstream.stop()

    result = summarize(cells, rss, reps, seconds, litellm_version(args.litellm))
    write_report(Path(args.out), "-peers", result, markdown(result), started, "peers")
    shutil.rmtree(work, ignore_errors=True)
    return 0


def litellm_version(litellm: Path) -> str:
    python = litellm.parent / "python"
    out = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def summarize(cells, rss, reps, seconds, version) -> dict:
    table = {}
    for (name, w), runs in cells.items():
        table.setdefault(name, {})[w] = {
            "rps": statistics.median(r["rps"] for r in runs),
            "p50_us": statistics.median(r["p50_us"] for r in runs),
            "p99_us": statistics.median(r["p99_us"] for r in runs),
            "cpu_us_per_request": statistics.median(r["cpu_us_per_request"] for r in runs),
            "runs": runs}
    for w in WORKLOADS:
        bundle = table["bundle"][w]["cpu_us_per_request"]
        for name in table:
            row = table[name][w]
            row["x_bundle_envoy"] = row["cpu_us_per_request"] / bundle if bundle > 0 else None
    return {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": git_commit(),
            "litellm": version, "pinned": pack.PINNED,
            "method": {"repetitions": reps, "seconds_per_cell": seconds, "wrk_connections": CONNECTIONS},
            "cells": table, "rss_bytes": rss}


def markdown(r: dict) -> str:
    m = r["method"]
    lines = [f"# llmobs in Envoy against LiteLLM proxy {r['litellm']} ({r['date']}, commit {r['commit']})", "",
             f"Every configuration on one core{' (core 0; wrk and the upstream on core 1)' if r['pinned'] else ''}; "
             f"{m['repetitions']} repetition(s) x {m['seconds_per_cell']} s per cell, wrk with {m['wrk_connections']} "
             "connections, medians. `CPU µs/req`: the whole process tree's CPU time over the cell per request "
             "completed; for Envoy it includes Envoy's own proxying, not only the filters'. `x bundle`: that CPU "
             "over Envoy-with-the-bundle's.", "",
             "| configuration | workload | req/s | p50 µs | p99 µs | CPU µs/req | x bundle |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for name, rows in r["cells"].items():
        for w, row in rows.items():
            lines.append(f"| {name} | {w} | {fmt(row['rps'])} | {fmt(row['p50_us'])} | {fmt(row['p99_us'])} | "
                         f"{fmt(row['cpu_us_per_request'], 1)} | {fmt(row['x_bundle_envoy'], 1)} |")
    lines += ["", "RSS after the run: " + ", ".join(f"{n} {v / 1048576:.0f} MiB" for n, v in r["rss_bytes"].items()), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
