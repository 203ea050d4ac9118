"""Soak: memory stays flat under a long mixed load, after a warm-up with the largest body.

    .venv/bin/python bench/soak.py [--short] [--requests N]

Through the four-filter pack (envoy/demo.yaml's chain and configurations) and then, when
dist/llmobs_bundle.wasm is built, the bundle, each in its own Envoy (one worker, pinned as in
bench/envoy_pack.py) in front of bench/fast-upstream. The load cycles through every recorded
provider exchange in tests/fixtures/providers (OpenAI, Responses, Azure, Anthropic, Gemini,
Bedrock, vLLM, Ollama; plain and streaming, cut and failed streams), a quarter of the upstream
error replies in tests/fixtures/errors, the benchmark's small chat request, its 200-event SSE
stream and its 16 KiB prompt with PII.

Warm-up: three 512 KiB requests with PII (the PII filter's largest inspected body, its
max_inspected_bytes default), every request of the mix once, then a tenth of the run under load.
Then wrk runs in segments until N requests have been sent, and after each segment Envoy's RSS
(/proc/<pid>/status VmRSS) and every module's llmobs_wasm_memory_bytes are sampled. Passes when
every sample after the warm-up is within 5% of the first one (a module's memory: 5% or two
64 KiB Wasm pages, whichever is larger, since linear memory only grows by pages), Envoy is still up, no request
failed at the socket level, and Envoy sent no 5xx of its own (downstream 5xx == upstream 5xx).

Then the verdict is checked against a known leak: the benchmark's floor filter configured to keep
16 KiB per request (bench/floor-filter) goes through the same run (at most 3,000 requests), and
the soak fails unless that run's verdict is an RSS growth over the tolerance. A soak that cannot
see 16 KiB per request cannot vouch for the packs (--no-leak-check skips it).
Prints the samples and the verdicts; exits non-zero on a failed verdict.
"""

from __future__ import annotations

import argparse
import http.client
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pack  # noqa: E402
from envoy_pii import chat_body as pii_chat_body  # noqa: E402
from responses import error_cases, fixture_cases, small_chat, write_responses  # noqa: E402

CHAT = "/v1/chat/completions"
LARGEST_BODY = 512 * 1024
TOLERANCE = 0.05
CONNECTIONS = 8
# The known leak the verdict must catch: 16 KiB a request is 47 MiB over 3,000 requests, against
# an Envoy of about 60 MiB with the floor alone.
LEAK_BYTES_PER_REQUEST = 16 * 1024
LEAK_CHECK_REQUESTS = 3_000
# Wasm linear memory grows in 64 KiB pages and never shrinks, so a module's memory moves by whole
# pages when 8 concurrent requests first overlap in a new way (an allocator high-water mark, not a
# leak). For a module of about 1.2 MiB, 5% is less than one page: stop 21's CI failed on one page
# (1.19 -> 1.25 MiB) that then stayed flat for 6,000 requests. A module may grow by up to two
# pages or 5%, whichever is larger.
WASM_PAGE = 64 * 1024
MODULE_SLACK_PAGES = 2


def request_mix(work: Path) -> list[tuple[str, str, Path]]:
    """(path, x-fixture, body file) for every request of the mix, in wrk's order."""
    bodies = work / "bodies"
    bodies.mkdir()
    mix = []

    def body(name: str, data: bytes) -> Path:
        f = bodies / f"{name}.json"
        f.write_bytes(data)
        return f

    chat, sse, pii = body("chat", small_chat()), body("sse", small_chat(True)), body("pii16k", pii_chat_body(True))
    for name, meta in fixture_cases().items():
        mix.append((meta["path"], name, body(name, meta["request"])))
        mix.append((CHAT, "-", chat if len(mix) % 4 else pii))
        mix.append((CHAT, "-", sse))
    for case in error_cases()[::4]:
        name = "err-" + case["name"]
        mix.append((case["path"], name, chat))
    return mix


def largest_body() -> bytes:
    data = pii_chat_body(True, size=LARGEST_BODY)
    assert LARGEST_BODY - 512 < len(data) <= LARGEST_BODY, len(data)
    return data


def send(port: int, path: str, fixture: str, data: bytes) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"content-type": "application/json"}
    if fixture != "-":
        headers["x-fixture"] = fixture
    conn.request("POST", path, body=data, headers=headers)
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp.status


def counter(envoy, name: str) -> int:
    _, text = pack.http_get(f"{envoy.admin}/stats?filter=^{re.escape(name)}$")
    m = re.search(rf"^{re.escape(name)}: (\d+)$", text.decode(), re.M)
    return int(m.group(1)) if m else 0


def sample(envoy, requests: int, started: float) -> dict:
    return {"requests": requests, "seconds": round(time.monotonic() - started, 1),
            "rss": pack.rss_bytes(envoy.proc.pid), "modules": pack.module_memory(envoy)}


def soak(name: str, envoy, manifest: Path, mix: list, target: int) -> list[str]:
    """Runs the load and returns what failed (empty when memory stayed flat)."""
    print(f"\n== soak: {name}, {target:,} requests after warm-up", flush=True)
    big = largest_body()
    failures = []
    for _ in range(3):
        status = send(envoy.port, CHAT, "-", big)
        print(f"warm-up: {len(big):,}-byte request with PII -> {status}")
        if status != 200:
            # Refused or failed: the modules never held the largest body, so "flat" would mean nothing.
            failures.append(f"the {len(big):,}-byte warm-up request got {status}")
    statuses = {}
    for path, fixture, body_file in mix:
        s = send(envoy.port, path, fixture, body_file.read_bytes())
        statuses[s] = statuses.get(s, 0) + 1
    print("warm-up: every request of the mix once -> " + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())))
    started = time.monotonic()
    # Under load for a while (3 s, or a tenth of the run) before the first sample; its rate
    # sizes the segments so the run gives about ten samples.
    warm = pack.wrk(envoy.url, manifest, 3, CONNECTIONS)
    rate = max(warm["rps"], 1.0)
    if target / 10 / rate > 3:
        warm = pack.wrk(envoy.url, manifest, round(target / 10 / rate), CONNECTIONS)
    segment = max(1, round(target / 10 / rate))
    socket_errors = warm["socket_errors"]
    sent = 0
    samples = [sample(envoy, sent, started)]
    while sent < target and envoy.proc.poll() is None:
        r = pack.wrk(envoy.url, manifest, segment, CONNECTIONS)
        sent += r["requests"]
        socket_errors += r["socket_errors"]
        samples.append(sample(envoy, sent, started))
    base = samples[0]
    print(f"{'requests':>10} {'s':>6} {'RSS MiB':>9}  modules (MiB)")
    for s in samples:
        mods = ", ".join(f"{k} {v / 1048576:.2f}" for k, v in sorted(s["modules"].items())) or "n/a"
        print(f"{s['requests']:>10,} {s['seconds']:>6} {s['rss'] / 1048576:>9.1f}  {mods}")
    if envoy.proc.poll() is not None:
        failures.append(f"Envoy exited with {envoy.proc.returncode}")
    if socket_errors:
        failures.append(f"{socket_errors} requests failed at the socket level")
    rss_growth = max(s["rss"] for s in samples) / base["rss"] - 1
    if rss_growth > TOLERANCE:
        failures.append(f"RSS grew {rss_growth:.1%} after warm-up")
    if not base["modules"]:
        print("module memory: n/a (llmobs_wasm_memory_bytes not published)")
    for plugin, first in base["modules"].items():
        peak = max(s["modules"].get(plugin, 0) for s in samples)
        if peak - first > max(TOLERANCE * first, MODULE_SLACK_PAGES * WASM_PAGE):
            failures.append(f"{plugin} memory grew {peak / first - 1:.1%} "
                            f"({(peak - first) // 1024:,} KiB) after warm-up")
    down = counter(envoy, "http.llm_egress.downstream_rq_5xx")
    up = counter(envoy, "cluster.llmock.upstream_rq_5xx")
    print(f"5xx: {down:,} sent to clients, {up:,} from the upstream; {sent:,} requests in "
          f"{samples[-1]['seconds'] - samples[0]['seconds']:.0f} s; RSS {rss_growth:+.1%} after warm-up")
    if down != up:
        failures.append(f"Envoy sent {down - up} 5xx of its own")
    if sent < target:
        failures.append(f"only {sent:,} of {target:,} requests sent")
    return failures


def verdict(name: str, failures: list[str]) -> bool:
    print(f"verdict ({name}): " + ("PASS, memory flat" if not failures else "FAIL: " + "; ".join(failures)))
    return not failures


def leak_caught(failures: list[str]) -> bool:
    """The known leak's run must fail on memory growth, and on nothing else."""
    grew = [f for f in failures if f.startswith("RSS grew")]
    other = [f for f in failures if not f.startswith("RSS grew")]
    caught = bool(grew) and not other
    print(f"verdict (known leak, {LEAK_BYTES_PER_REQUEST // 1024} KiB per request): "
          + (f"caught: {grew[0]}" if caught else "NOT CAUGHT as a memory growth: " + ("; ".join(failures) or "passed as flat")))
    return caught


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--short", action="store_true", help="6,000 requests per pack (scripts/test)")
    parser.add_argument("--requests", type=int)
    parser.add_argument("--no-leak-check", action="store_true", help="skip the run against a known leak")
    args = parser.parse_args()
    target = args.requests or (6_000 if args.short else 300_000)

    pack.pin_self_to_load_core()
    work = Path(tempfile.mkdtemp(prefix="llmobs-soak-"))
    write_responses(work / "responses")
    mix = request_mix(work)
    manifest = pack.write_manifest(work / "mix.tsv", mix)
    print(f"soak: {len(mix)} requests in the mix ({len({m[1] for m in mix}) - 1} recorded exchanges)")
    packs = {"four_separate": {}}
    if pack.BUNDLE_WASM.exists():
        packs["bundle"] = {"replace": [pack.bundle_filter()]}
    else:
        print("soak: bundle not built (dist/llmobs_bundle.wasm missing), four-filter pack only")
    if not args.no_leak_check:
        leak = {"leak_bytes_per_request": LEAK_BYTES_PER_REQUEST}
        packs["known_leak"] = {"replace": [pack.floor_filter(leak)], "target": min(target, LEAK_CHECK_REQUESTS)}
    upstream = pack.FastUpstream(work / "responses", work / "upstream.log")
    ok = True
    try:
        for name, spec in packs.items():
            d = work / name
            d.mkdir()
            envoys = pack.start_envoys({name: (d, *pack.envoy_config(d, upstream.port, replace=spec.get("replace")))})
            try:
                failures = soak(name, envoys[name], manifest, mix, spec.get("target", target))
            finally:
                envoys[name].stop()
            ok = (leak_caught(failures) if name == "known_leak" else verdict(name, failures)) and ok
    finally:
        upstream.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
