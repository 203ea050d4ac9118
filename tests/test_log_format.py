"""One source for the access log (issue 17 item 4): envoy/access-log.yaml holds the json_format
and the CEL filter once; envoy/demo.yaml and every example in envoy/filters/ carry a copy written
by scripts/sync-access-log, and docs/log-schema.md's field table is generated from it and
docs/log-schema.json. Most tests read files; the last runs two shipped examples in Envoy."""
from __future__ import annotations

import hashlib
import re
import subprocess

import yaml

import pytest

from conftest import validate_log_line
from harness import ROOT, Envoy, free_port, post_json, wait_until

SOURCE = ROOT / "envoy" / "access-log.yaml"
TARGETS = [ROOT / "envoy" / "demo.yaml", *sorted((ROOT / "envoy" / "filters").glob("*.yaml"))]
# The Rust modules (under filters/core/src) behind each filter named in the table's "written by".
MODULES = {
    "correlation": ["correlation", "signals"],
    "token accounting": ["token_accounting", "agent", "pricing.rs"],
    "error normalization": ["error_normalization"],
    "PII redaction": ["redaction"],
}


def hcm_access_logs(path) -> list:
    config = yaml.safe_load(path.read_text())
    logs = []
    for listener in config["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for f in chain["filters"]:
                if f["name"] == "envoy.filters.network.http_connection_manager":
                    logs.append(f["typed_config"].get("access_log"))
    return logs


def without_path(access_log: list) -> list:
    import copy
    out = copy.deepcopy(access_log)
    for entry in out:
        entry["typed_config"].pop("path", None)
    return out


def test_every_config_carries_the_access_log_of_the_one_source():
    run = subprocess.run([str(ROOT / "scripts" / "sync-access-log"), "--check"], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    source = without_path(yaml.safe_load(SOURCE.read_text())["access_log"])
    for target in TARGETS:
        logs = hcm_access_logs(target)
        assert logs, f"{target.name}: no HttpConnectionManager"
        for log in logs:
            assert log is not None, f"{target.name}: no access log"
            assert without_path(log) == source, f"{target.name}: differs from envoy/access-log.yaml"


def test_the_check_fails_when_a_copy_drifts(tmp_path):
    # The check reads the repository; a drifted copy is simulated on a scratch clone of the files.
    scratch = tmp_path / "repo"
    for rel in ["scripts/sync-access-log", "envoy/access-log.yaml", "docs/log-schema.json", "docs/log-schema.md",
                *[str(t.relative_to(ROOT)) for t in TARGETS]]:
        (scratch / rel).parent.mkdir(parents=True, exist_ok=True)
        (scratch / rel).write_bytes((ROOT / rel).read_bytes())
    (scratch / ".venv").symlink_to(ROOT / ".venv")
    (scratch / "scripts" / "sync-access-log").chmod(0o755)
    demo = scratch / "envoy" / "demo.yaml"
    demo.write_text(demo.read_text().replace('llmobs.tenant: "%FILTER_STATE(wasm.llmobs.tenant:PLAIN)%"\n', "", 1))
    run = subprocess.run([str(scratch / "scripts" / "sync-access-log"), "--check"], capture_output=True, text=True)
    assert run.returncode == 1 and "envoy/demo.yaml" in run.stderr, run.stdout + run.stderr
    subprocess.run([str(scratch / "scripts" / "sync-access-log")], check=True, capture_output=True)
    assert "llmobs.tenant" in demo.read_text(), "the sync writes the field back"


def table_rows() -> list[tuple[str, str, str]]:
    doc = (ROOT / "docs" / "log-schema.md").read_text()
    rows = re.findall(r"^\| `([^`]+)` \| `([^`]+)` \| ([^|]+) \|", doc, re.M)
    return [(field, key, by.strip()) for field, key, by in rows]


def test_the_field_table_lists_every_logged_field_with_its_key_and_writer():
    fmt = yaml.safe_load(SOURCE.read_text())["access_log"][0]["typed_config"]["log_format"]["json_format"]
    rows = table_rows()
    assert [r[0] for r in rows] == list(fmt), "one row per field, in the log's order"
    for field, key, by in rows:
        m = re.fullmatch(r"%FILTER_STATE\(([^:]+):PLAIN\)%", fmt[field])
        assert key == (m.group(1) if m else fmt[field]), field
        assert by == "Envoy" or m, field


def test_each_writer_named_in_the_table_sets_that_key_in_its_own_code():
    src = ROOT / "filters" / "core" / "src"
    rust = {p: p.read_text() for p in src.rglob("*.rs")}
    checked = 0
    for field, key, by in table_rows():
        if by == "Envoy":
            continue
        name = key.removeprefix("wasm.")
        # The constant(s) holding the key, wherever defined.
        consts = {c for text in rust.values() for c in re.findall(rf'const (\w+): &str = "{re.escape(name)}";', text)}
        assert consts, f"{field}: no Rust constant holds {name}"
        writers = [w.split(" (")[0].strip() for w in re.sub(r"\([^)]*\)", "", by).split(",")]
        for writer in writers:
            files = [p for p in rust if any(p.relative_to(src).parts[0] == m for m in MODULES[writer])]
            used = any(re.search(rf"\b{c}\b", rust[p]) for p in files for c in consts)
            assert used, f"{field}: {writer} never names {sorted(consts)}"
            checked += 1
    assert checked >= 60, checked


def test_the_token_accounting_docs_say_success_lines_need_the_correlation_filters_sampling():
    doc = (ROOT / "docs" / "filters" / "token-accounting.md").read_text()
    assert "envoy/access-log.yaml" in doc and "llmobs.sampled" in doc
    assert re.search(r"success[^.]*correlation filter[^.]*sampl", doc, re.S), "the dependency is stated"


def run_example(name: str, workdir, upstream_port: int) -> Envoy:
    """A shipped example as it is, with test ports, absolute module paths and its log in `workdir`."""
    config = yaml.safe_load((ROOT / "envoy" / "filters" / name).read_text())
    ports = {"admin": free_port(), "listener": free_port()}
    config["admin"] = {"address": {"socket_address": {"address": "127.0.0.1", "port_value": ports["admin"]}}}
    listener = config["static_resources"]["listeners"][0]
    listener["address"]["socket_address"]["port_value"] = ports["listener"]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    for log in hcm["access_log"]:
        log["typed_config"]["path"] = str(workdir / "access.log")
    for f in hcm["http_filters"]:
        local = f.get("typed_config", {}).get("config", {}).get("vm_config", {}).get("code", {}).get("local")
        if local:
            local["filename"] = str(ROOT / local["filename"])
    for cluster in config["static_resources"]["clusters"]:
        for ep in cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]:
            ep["endpoint"]["address"]["socket_address"]["port_value"] = upstream_port
    workdir.mkdir()
    return Envoy(workdir, config, ports)


@pytest.mark.parametrize("example,success_logged", [("token-accounting.yaml", False), ("bundle.yaml", True)])
def test_a_shipped_example_logs_errors_and_logs_successes_only_with_the_correlation_filter(
        tmp_path, fresh_upstream, example, success_logged):
    """What docs/filters/token-accounting.md says: without the correlation filter's sampling
    decision a success is never logged, an error always is."""
    envoy = run_example(example, tmp_path / "envoy", fresh_upstream.port)
    try:
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        # The examples sample 10%: a request id the correlation filter samples (SHA-256 of the
        # id below the rate, docs/filters/correlation.md), so only the filter's absence can drop it.
        sampled = next(f"req-{i}" for i in range(1000)
                       if int.from_bytes(hashlib.sha256(f"req-{i}".encode()).digest()[:8], "big") < 0.1 * 2**64)
        status, _, _ = post_json(envoy.url + "/v1/chat/completions", body, {"x-request-id": sampled})
        assert status == 200
        fresh_upstream.scenario({"type": "fail", "status": 429, "retry_after": 2, "times": 1})
        status, _, _ = post_json(envoy.url + "/v1/chat/completions", body)
        assert status == 429
        lines = wait_until(lambda: (l := envoy.access_log()) and l[-1]["http.response.status_code"] == 429 and l,
                           10, "the error's line")
        for line in lines:
            validate_log_line(line)
        assert [l["http.response.status_code"] for l in lines] == ([200, 429] if success_logged else [429]), lines
        assert lines[-1]["gen_ai.request.model"] == "gpt-4o-mini", "the filter's fields are in the example's line"
    finally:
        envoy.stop()
