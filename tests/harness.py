"""Real processes for the end-to-end suite: Envoy with the built filters, and the llmock upstream.

One Envoy per test, on its own ports (`--use-dynamic-base-id` gives each a unique base id),
built from `envoy/demo.yaml` (the shipped config, not a copy) with only ports, paths and the
filter configuration changed. Everything binds to 127.0.0.1 and is stopped by the test that
started it.
"""

from __future__ import annotations

import copy
import http.client
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
# 32 random bytes, base64: the test pseudonym key. Tests grep every sink for it.
PII_KEY_B64 = "q0Yh3uJ7e1Vd0c2m9WZrT8sLbN4pF6aXgK5oQyIiR3E="
# LLMOBS_ENVOY picks another Envoy (scripts/test runs a subset on 1.37, 1.38 and 1.39: .venv-envoy13x/bin/envoy);
# a relative path is the repository's, since Envoy runs in each test's own directory.
ENVOY = str(ROOT / os.environ.get("LLMOBS_ENVOY", str(VENV_BIN / "envoy")))
DIST = ROOT / "dist"
DEMO_CONFIG = ROOT / "envoy" / "demo.yaml"
STATS_FRAGMENT = ROOT / "envoy" / "stats-config.yaml"


_envoy_version: tuple[int, int, int] | None = None


def envoy_version() -> tuple[int, int, int]:
    """The (major, minor, patch) of the Envoy under test (`envoy --version`), read once."""
    global _envoy_version
    if _envoy_version is None:
        out = subprocess.run([ENVOY, "--version"], capture_output=True, text=True, timeout=30).stdout
        found = re.search(r"/(\d+)\.(\d+)\.(\d+)/", out)
        if not found:
            raise RuntimeError(f"cannot read the version of {ENVOY}: {out!r}")
        _envoy_version = tuple(int(n) for n in found.groups())
    return _envoy_version


def _ports_below_ephemeral() -> range:
    """Listening ports the kernel never hands out on its own: below the ephemeral range
    (`net.ipv4.ip_local_port_range`)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return range(max(10000, low - 12000), low) if low > 11000 else range(0)


_ports_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port that nothing listens on, for a server a test starts next.

    A port found by binding port 0 comes from the ephemeral range, so between closing that
    socket and the server's own bind, any outgoing connection (Envoy to llmock, a client to
    Envoy) may take it as its source port: CI once lost a run to Envoy's `cannot bind
    '127.0.0.1:50327': Address already in use`. Ports below the ephemeral range are never
    used as source ports, and none is handed out twice in one test run."""
    candidates = _ports_below_ephemeral()
    for _ in range(200):
        if not candidates:
            break
        port = random.choice(candidates)
        if port in _ports_handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _ports_handed_out.add(port)
        return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    """Polls `predicate` until it returns a truthy value; raises naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


class Upstream:
    """llmock (tests/upstream.py) on a free loopback port; with `script="replay_upstream.py"`,
    the project's fixture replayer instead."""

    def __init__(self, log_path: Path, script: str = "upstream.py", args: tuple = ()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / script), "--port", str(self.port), *args],
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        wait_until(self._healthy, 30, f"{script} to answer /health")

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"upstream exited with {self.proc.returncode}")
        try:
            return http_get(self.url + "/health", timeout=1)[0] == 200
        except OSError:
            return False

    def reset(self) -> None:
        req = urllib.request.Request(self.url + "/_llmock/reset", method="POST")
        urllib.request.urlopen(req, timeout=5).read()
        req = urllib.request.Request(self.url + "/_llmobs/seen", method="DELETE")
        urllib.request.urlopen(req, timeout=5).read()

    def scenario(self, *behaviors: dict) -> None:
        """Queues llmock fault behaviours for the next requests (its scenario API)."""
        body = json.dumps({"behaviors": list(behaviors)}).encode()
        req = urllib.request.Request(self.url + "/_llmock/scenario", data=body, method="POST",
                                     headers={"content-type": "application/json"})
        urllib.request.urlopen(req, timeout=5).read()

    def seen(self) -> list[dict]:
        """Requests llmock received, with their headers as a dict (last value wins)."""
        _, body = http_get(self.url + "/_llmobs/seen")
        out = []
        for r in json.loads(body):
            r["header_map"] = {k: v for k, v in r["headers"]}
            out.append(r)
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def route_everything_to(config: dict, port: int, rewrites: dict | None = None) -> None:
    """Sends every path to one cluster at `port` (`rewrites` maps a path prefix to the prefix
    the upstream sees, for routes that stand for a custom provider)."""
    routes = [{"match": {"prefix": prefix}, "route": {"cluster": "replay", "timeout": "60s", "prefix_rewrite": to}}
              for prefix, to in (rewrites or {}).items()]
    routes.append({"match": {"prefix": "/"}, "route": {"cluster": "replay", "timeout": "60s"}})
    hcm_of(config)["route_config"]["virtual_hosts"][0]["routes"] = routes
    config["static_resources"]["clusters"].append({
        "name": "replay", "type": "STATIC", "connect_timeout": "5s",
        "load_assignment": {"cluster_name": "replay", "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]},
    })


def without_filter(config: dict, name: str) -> None:
    """Removes the wasm filter whose `config.name` is `name` (e.g. `llmobs_pii_redaction`)."""
    filters = _find_http_filters(config)
    filters[:] = [f for f in filters if f.get("typed_config", {}).get("config", {}).get("name") != name]


SECTION_OF = {
    "llmobs_correlation": "correlation",
    "llmobs_pii_redaction": "pii_redaction",
    "llmobs_token_accounting": "token_accounting",
    "llmobs_error_normalization": "error_normalization",
}


def as_bundle(config: dict) -> None:
    """Replaces the demo's four llmobs filters by one bundle filter (dist/llmobs_bundle.wasm)
    whose sections are the four filters' configurations, FAIL_CLOSED (redaction is inside)."""
    filters = _find_http_filters(config)
    sections, first = {}, None
    for i, f in enumerate(filters):
        wasm = f.get("typed_config", {}).get("config", {})
        if wasm.get("name") in SECTION_OF:
            sections[SECTION_OF[wasm["name"]]] = json.loads(wasm["configuration"]["value"] or "{}")
            first = i if first is None else first
    bundle = {
        "name": "llmobs.bundle",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "llmobs_bundle", "root_id": "llmobs_bundle", "failure_policy": "FAIL_CLOSED",
                # The correlation section's feedback endpoint (docs/filters/correlation.md).
                "allow_on_headers_stop_iteration": True,
                "vm_config": {
                    "vm_id": "llmobs_bundle", "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": str(ROOT / "dist" / "llmobs_bundle.wasm")}},
                    "environment_variables": {"host_env_keys": ["LLMOBS_PII_KEY"]},
                },
                "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                  "value": json.dumps(sections)},
            },
        },
    }
    rest = [f for f in filters if f.get("typed_config", {}).get("config", {}).get("name") not in SECTION_OF]
    filters[:] = rest[:first] + [bundle] + rest[first:]


def enable_evaluation(config: dict) -> None:
    """Turns on the redaction filter's `evaluation` section (its defaults: consent header
    `x-llmobs-consent: eval`, the exporter's default vm_id and queue)."""
    for f in hcm_of(config)["http_filters"]:
        wasm = f.get("typed_config", {}).get("config", {})
        if wasm.get("name") == "llmobs_pii_redaction":
            pii = json.loads(wasm["configuration"]["value"])
            pii["evaluation"] = {"enabled": True}
            wasm["configuration"]["value"] = json.dumps(pii)


def eval_exporting(port: int, bundle: bool = False, exporter: dict | None = None):
    """A `mutate` for build_config: the demo with `evaluation` on in the redaction filter and the
    evaluation exporter service (dist/llmobs_eval_exporter.wasm, a singleton bootstrap service)
    sending to 127.0.0.1:`port`; `exporter` overrides its settings."""
    def mutate(config: dict) -> None:
        enable_evaluation(config)
        config["static_resources"]["clusters"].append({
            "name": "eval_receiver", "type": "STATIC", "connect_timeout": "1s",
            "load_assignment": {"cluster_name": "eval_receiver", "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]},
        })
        settings = {"cluster": "eval_receiver", "flush_interval_ms": 50, "service_name": "llmobs-e2e"}
        settings.update(exporter or {})
        config["bootstrap_extensions"] = [{
            "name": "envoy.bootstrap.wasm",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.wasm.v3.WasmService",
                "singleton": True,
                "config": {
                    "name": "llmobs_eval_exporter", "root_id": "llmobs_eval_exporter",
                    "vm_config": {"vm_id": "llmobs_eval_exporter", "runtime": "envoy.wasm.runtime.v8",
                                  "code": {"local": {"filename": str(ROOT / "dist" / "llmobs_eval_exporter.wasm")}}},
                    "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                      "value": json.dumps(settings)},
                },
            },
        }]
        if bundle:
            as_bundle(config)
    return mutate


def without_envoy_tracer(config: dict) -> None:
    """Removes the demo's Envoy tracer (envoy/tracing/genai-spans.yaml) and its collector cluster,
    for tests of set-ups where the correlation filter owns trace context (`manage`)."""
    hcm_of(config).pop("tracing", None)
    config["static_resources"]["clusters"] = [c for c in config["static_resources"]["clusters"]
                                              if c["name"] != "otel_collector"]


def set_route_timeout(config: dict, timeout: str) -> None:
    for route in hcm_of(config)["route_config"]["virtual_hosts"][0]["routes"]:
        route["route"]["timeout"] = timeout


def _find_http_filters(config: dict) -> list:
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    return hcm["http_filters"]


def hcm_of(config: dict) -> dict:
    return config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]


def build_config(tmp: Path, upstream_port: int, filter_configs: dict | None = None,
                 mutate=None) -> tuple[dict, dict]:
    """The demo config with test ports and paths. `filter_configs` maps a wasm filter's
    `config.name` (e.g. `llmobs_correlation`) to the JSON object that replaces its
    configuration. `mutate(config)` may change anything else. Returns (config, ports)."""
    config = yaml.safe_load(DEMO_CONFIG.read_text())
    ports = {"admin": free_port(), "listener": free_port()}
    config["admin"]["address"]["socket_address"]["port_value"] = ports["admin"]
    listener = config["static_resources"]["listeners"][0]
    listener["address"]["socket_address"]["port_value"] = ports["listener"]
    for log in hcm_of(config)["access_log"]:
        log["typed_config"]["path"] = str(tmp / "access.log")
    for f in _find_http_filters(config):
        wasm = f.get("typed_config", {}).get("config")
        if not wasm:
            continue
        local = wasm["vm_config"]["code"]["local"]
        local["filename"] = str(ROOT / local["filename"])
        if filter_configs and wasm["name"] in filter_configs:
            wasm["configuration"]["value"] = json.dumps(filter_configs[wasm["name"]])
    for cluster in config["static_resources"]["clusters"]:
        if cluster["name"] == "llmock":
            for ep in cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]:
                ep["endpoint"]["address"]["socket_address"]["port_value"] = upstream_port
    # Histograms reach /stats/prometheus only at a stats flush (default every 5 s).
    config["stats_flush_interval"] = "0.25s"
    if mutate:
        mutate(config)
    return config, ports


class Envoy:
    """One Envoy process with a given bootstrap, on its own ports."""

    def __init__(self, tmp: Path, config: dict, ports: dict, log_level: str = "info",
                 component_log_levels: str = "wasm:trace", wait_ready: bool = True,
                 env: dict | None = None, config_yaml: str | None = None):
        self.tmp = tmp
        self.config_path = tmp / "envoy.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.access_log_path = tmp / "access.log"
        self.log_path = tmp / "envoy.log"
        self.admin = f"http://127.0.0.1:{ports['admin']}"
        self.port = ports["listener"]
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(self.log_path, "wb")
        # `config_yaml`: what is merged into the bootstrap (a proto merge, as Istio's custom
        # bootstrap and Envoy Gateway's Merge bootstrap are); the pack's stats fragment by default.
        cmd = [ENVOY, "-c", str(self.config_path), "--config-yaml", config_yaml or STATS_FRAGMENT.read_text(),
               "--use-dynamic-base-id", "--concurrency", "1", "--file-flush-interval-msec", "50",
               "-l", log_level]
        if component_log_levels:
            cmd += ["--component-log-level", component_log_levels]
        # The PII filter's pseudonym key reaches the VM only through the environment
        # (vm_config.environment_variables.host_env_keys), as a Kubernetes Secret would.
        environment = {**os.environ, "LLMOBS_PII_KEY": PII_KEY_B64, **(env or {})}
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, cwd=tmp, env=environment)
        if wait_ready:
            # Four V8 modules compile in a few seconds on an idle machine; a busy 2-core one took 49 s.
            # An Envoy that never gets ready is stopped here, so no caller leaks the process.
            try:
                wait_until(self._ready, 120, "Envoy to become ready")
            except BaseException:
                self.stop()
                raise

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"Envoy exited with {self.proc.returncode}:\n{self.log_text()[-4000:]}")
        try:
            return http_get(self.admin + "/ready", timeout=1)[0] == 200
        except OSError:
            return False

    def wait_exit(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def prometheus(self) -> str:
        return http_get(self.admin + "/stats/prometheus")[1].decode()

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the series of `name` whose labels include `labels`; 0 when none exists."""
        total = 0.0
        for line in self.prometheus().splitlines():
            m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$", line)
            if not m or m.group(1) != name:
                continue
            series = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
            if all(series.get(k) == v for k, v in labels.items()):
                total += float(m.group(4))
        return total

    def wait_metric(self, name: str, value: float, timeout: float = 10, **labels: str) -> float:
        """Waits until `metric(name, **labels)` equals `value` (histograms update at stats
        flushes); returns the last value seen, which the caller asserts on."""
        try:
            wait_until(lambda: self.metric(name, **labels) == value, timeout, f"{name}{labels} == {value}")
        except TimeoutError:
            pass
        return self.metric(name, **labels)

    def access_log(self) -> list[dict]:
        if not self.access_log_path.exists():
            return []
        lines = read_json_lines(self.access_log_path)
        if envoy_version() < (1, 40):
            # Envoy's JSON formatter before 1.40 writes an absent value as null despite
            # omit_empty_values (envoyproxy/envoy#37941, fixed by #46262); 1.40 leaves the key out,
            # and a null there still fails the log schema (docs/envoy-settings.md).
            lines = [{k: v for k, v in line.items() if v is not None} for line in lines]
        return lines

    def wait_access_log(self, count: int, timeout: float = 10) -> list[dict]:
        """Waits until the (buffered) access log holds at least `count` lines."""
        return wait_until(lambda: (lines := self.access_log()) and len(lines) >= count and lines,
                          timeout, f"{count} access-log lines")

    def config_dump(self) -> str:
        return http_get(self.admin + "/config_dump")[1].decode()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def raw_request(port: int, raw: bytes, timeout: float = 5.0) -> bytes:
    """Sends exact bytes and returns everything the server answered before closing."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        chunks = []
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    break
                chunks.append(data)
                if b"\r\n\r\n" in b"".join(chunks) and b"content-length: 0" in b"".join(chunks).lower():
                    break
        except socket.timeout:
            pass
        return b"".join(chunks)


def post_json(url: str, body: dict | bytes, headers: dict | None = None, timeout: float = 30) -> tuple[int, dict, bytes]:
    """A plain HTTP/1.1 POST with exact headers (values may be any latin-1 bytes)."""
    m = re.match(r"http://([^:/]+):(\d+)(/.*)", url)
    conn = http.client.HTTPConnection(m.group(1), int(m.group(2)), timeout=timeout)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn.putrequest("POST", m.group(3), skip_accept_encoding=True)
    conn.putheader("content-type", "application/json")
    conn.putheader("content-length", str(len(data)))
    for k, v in (headers or {}).items():
        conn.putheader(k, v.encode("latin-1") if isinstance(v, str) else v)
    conn.endheaders(data)
    resp = conn.getresponse()
    payload = resp.read()
    result = (resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload)
    conn.close()
    return result


def chat_body(content: str = "hello", stream: bool = False, model: str = "gpt-4o-mini") -> dict:
    return {"model": model, "messages": [{"role": "user", "content": content}], "stream": stream}


def add_details_log(config: dict, path: Path) -> None:
    """A second access log of every request (sampled or not) with what Envoy itself says about
    the response (%RESPONSE_CODE_DETAILS%, flags), keyed by x-request-id: tells a filter's local
    reply from the upstream's answer and from Envoy's own. The demo log's schema is a contract
    with no room for these fields."""
    hcm_of(config)["access_log"].append({
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": str(path),
            "log_format": {"json_format": {
                "request_id": "%REQ(X-REQUEST-ID)%", "status": "%RESPONSE_CODE%",
                "flags": "%RESPONSE_FLAGS%", "details": "%RESPONSE_CODE_DETAILS%"}},
        },
    })


def read_json_lines(path: Path) -> list[dict]:
    """The complete lines of a JSON-lines file: Envoy flushes its log files every 50 ms, and a
    read between two flushes can end inside a line. Lines end at a newline only: str.splitlines would
    also break at U+2028, which JSON allows raw inside a string (a logged completion)."""
    if not path.exists():
        return []
    text = path.read_text(errors="replace")
    return [json.loads(line) for line in text[:text.rfind("\n") + 1].split("\n") if line.strip()]
