"""Shared by the in-Envoy benchmark (bench/envoy_pack.py) and the soak (bench/soak.py): the fast
upstream, Envoy configurations built from envoy/demo.yaml, CPU pinning, wrk runs and the
process and module memory readings."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

import harness  # noqa: E402
from harness import DEMO_CONFIG, Envoy, build_config, hcm_of, http_get, wait_until  # noqa: E402

ENVOY = harness.ENVOY

# Absolute: each Envoy runs in its own directory.
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target" / "bench")).absolute()
FAST_UPSTREAM = TARGET / "release" / "fast-upstream"
FLOOR_WASM = TARGET / "wasm32-wasip1" / "release" / "floor_filter.wasm"
REFERENCE_WASM = TARGET / "wasm32-wasip1" / "release" / "reference_filter.wasm"
BUNDLE_WASM = ROOT / "dist" / "llmobs_bundle.wasm"
WRK_SCRIPT = ROOT / "bench" / "wrk_requests.lua"
FILTERS = ["llmobs_correlation", "llmobs_pii_redaction", "llmobs_token_accounting", "llmobs_error_normalization"]
# The bundle's configuration section for each filter's configuration (the same schema).
BUNDLE_SECTIONS = {"llmobs_correlation": "correlation", "llmobs_pii_redaction": "pii_redaction",
                   "llmobs_token_accounting": "token_accounting", "llmobs_error_normalization": "error_normalization"}
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

# Envoy on core 0, everything else (this process, wrk, the upstream) on core 1, when there are two.
PINNED = (os.cpu_count() or 1) >= 2 and hasattr(os, "sched_setaffinity")
ENVOY_CORE, LOAD_CORE = 0, 1


def pin_self_to_load_core() -> None:
    """Pins this process; the upstream and wrk inherit it (Envoy is moved to its own core)."""
    if PINNED:
        os.sched_setaffinity(0, {LOAD_CORE})


def pin_envoy(pid: int) -> None:
    if PINNED:
        # -a: every thread Envoy has started (main, worker, file flush, stats).
        subprocess.run(["taskset", "-a", "-p", "-c", str(ENVOY_CORE), str(pid)], check=True,
                       stdout=subprocess.DEVNULL)


class FastUpstream:
    """bench/fast-upstream serving the prepared responses in `directory`."""

    def __init__(self, directory: Path, log_path: Path):
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen([str(FAST_UPSTREAM), "--dir", str(directory)], stdout=subprocess.PIPE,
                                     stderr=self._log)
        line = self.proc.stdout.readline().decode()
        m = re.match(r"listening (\d+)", line)
        if not m:
            raise RuntimeError(f"fast-upstream did not start: {log_path.read_text()}")
        self.port = int(m.group(1))
        self.url = f"http://127.0.0.1:{self.port}"
        wait_until(lambda: http_get(self.url + "/health", timeout=1)[0] == 200, 10, "fast-upstream /health")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self._log.close()


def demo_filter_configs() -> dict[str, dict]:
    """Each llmobs filter's configuration in envoy/demo.yaml, by plugin name."""
    config = yaml.safe_load(DEMO_CONFIG.read_text())
    out = {}
    for f in hcm_of(config)["http_filters"]:
        wasm = f.get("typed_config", {}).get("config")
        if wasm:
            out[wasm["name"]] = json.loads(wasm["configuration"]["value"])
    return out


def _wasm_filter(name: str, wasm: Path, failure_policy: str, configuration: dict | None,
                 env_keys: list[str] | None = None) -> dict:
    vm = {"vm_id": name, "runtime": "envoy.wasm.runtime.v8", "code": {"local": {"filename": str(wasm)}}}
    if env_keys:
        vm["environment_variables"] = {"host_env_keys": env_keys}
    config = {"name": name, "root_id": name, "failure_policy": failure_policy, "vm_config": vm}
    if configuration is not None:
        config["configuration"] = {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                   "value": json.dumps(configuration)}
    return {"name": f"bench.{name}",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                             "config": config}}


def floor_filter(configuration: dict | None = None) -> dict:
    """The floor; `{"leak_bytes_per_request": N}` makes it the soak's known leak."""
    return _wasm_filter("llmobs_floor", FLOOR_WASM, "FAIL_OPEN", configuration)


def reference_filter() -> dict:
    """The "necessary work" reference (bench/reference-filter): the host I/O the bundle cannot
    avoid, and nothing else."""
    return _wasm_filter("llmobs_reference", REFERENCE_WASM, "FAIL_OPEN", None)


def bundle_filter(wasm: Path = BUNDLE_WASM) -> dict:
    """One filter, FAIL_CLOSED (redaction inside must not fail open), a section per behaviour,
    each the demo's configuration for that filter. `wasm`: another build of the bundle (a
    before/after comparison in one run)."""
    demo = demo_filter_configs()
    configuration = {BUNDLE_SECTIONS[name]: demo[name] for name in FILTERS}
    return _wasm_filter("llmobs_bundle", wasm, "FAIL_CLOSED", configuration, ["LLMOBS_PII_KEY"])


def envoy_config(directory: Path, upstream_port: int, keep: list[str] | None = None,
                 replace: list[dict] | None = None) -> tuple[dict, dict]:
    """envoy/demo.yaml in front of the fast upstream: the llmobs filters named in `keep` (all
    four when None) with the demo's configurations, or the wasm filters `replace` instead.
    Without the access log (a sink's cost, not a filter's) and with Envoy's default stats flush;
    every path routed to the upstream (the demo's routes first, so route names stay)."""

    def mutate(config: dict) -> None:
        hcm = hcm_of(config)
        hcm.pop("access_log", None)
        config.pop("stats_flush_interval", None)
        hcm["route_config"]["virtual_hosts"][0]["routes"].append(
            {"name": "other", "match": {"prefix": "/"}, "route": {"cluster": "llmock", "timeout": "300s"}})
        filters = hcm["http_filters"]
        wasm = [f for f in filters if f.get("typed_config", {}).get("config")]
        rest = [f for f in filters if not f.get("typed_config", {}).get("config")]
        if replace is not None:
            chosen = copy.deepcopy(replace)
        else:
            chosen = [f for f in wasm if keep is None or f["typed_config"]["config"]["name"] in keep]
        filters[:] = chosen + rest

    return build_config(directory, upstream_port, None, mutate)


def start_envoys(specs: dict[str, tuple[Path, dict, dict]], timeout: float = 120) -> dict[str, Envoy]:
    """Starts every Envoy at once, unpinned (their modules compile on both cores), waits for all
    to be ready, then moves each, every thread, to the Envoy core. A failed start stops them all
    before raising."""
    envoys: dict[str, Envoy] = {}
    try:
        for name, (directory, config, ports) in specs.items():
            envoys[name] = Envoy(directory, config, ports, log_level="warning", component_log_levels="",
                                 wait_ready=False)
        for name, envoy in envoys.items():
            wait_until(envoy._ready, timeout, f"Envoy '{name}' to become ready")
        for envoy in envoys.values():
            pin_envoy(envoy.proc.pid)
    except BaseException:
        for envoy in envoys.values():
            envoy.stop()
        raise
    return envoys


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (every thread, live or exited), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def module_memory(envoy: Envoy) -> dict[str, int]:
    """`llmobs_wasm_memory_bytes` by plugin, from /stats/prometheus (empty when not published)."""
    out = {}
    for line in envoy.prometheus().splitlines():
        m = re.match(r'^llmobs_wasm_memory_bytes\{(.*)\} (\S+)$', line)
        if m:
            plugin = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1))).get("plugin", "?")
            out[plugin] = int(float(m.group(2)))
    return out


def write_manifest(path: Path, requests: list[tuple[str, str, Path]]) -> Path:
    """The wrk script's request list: (path, x-fixture or "-", body file) per line."""
    path.write_text("".join(f"{p}\t{fixture}\t{body}\n" for p, fixture, body in requests))
    return path


def wrk(url: str, manifest: Path, seconds: int, connections: int) -> dict:
    """One wrk run (one thread, on the load core, as this process is); its JSON summary."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(WRK_SCRIPT), url]
    out = subprocess.run(cmd, env={**os.environ, "BENCH_REQUESTS": str(manifest)}, capture_output=True,
                         timeout=seconds + 60)
    text = out.stdout.decode(errors="replace")
    m = re.search(r"^BENCH_JSON (\{.*\})$", text, re.M)
    if out.returncode != 0 or not m:
        raise RuntimeError(f"wrk failed ({out.returncode}): {text[-2000:]} {out.stderr.decode(errors='replace')[-2000:]}")
    result = json.loads(m.group(1))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["socket_errors"] = sum(result[k] for k in ("connect", "read", "write", "timeout"))
    return result
