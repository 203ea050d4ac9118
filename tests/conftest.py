"""Fixtures for the end-to-end suite. See tests/harness.py for the processes themselves."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from harness import ROOT, Envoy, Upstream, build_config

LOG_SCHEMA = json.loads((ROOT / "docs" / "log-schema.json").read_text())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)


@pytest.fixture(scope="session")
def upstream(tmp_path_factory):
    up = Upstream(tmp_path_factory.mktemp("llmock") / "llmock.log")
    yield up
    up.stop()


@pytest.fixture(scope="session")
def replay(tmp_path_factory):
    """The project-owned upstream that replays tests/fixtures/providers byte for byte, in
    7-byte chunks so Envoy's body callbacks split frames at odd offsets."""
    up = Upstream(tmp_path_factory.mktemp("replay") / "replay.log", script="replay_upstream.py",
                  args=("--chunk-size", "7"))
    yield up
    up.stop()


@pytest.fixture
def fresh_upstream(upstream):
    upstream.reset()
    return upstream


@pytest.fixture
def start_envoy(request, tmp_path, fresh_upstream):
    """Starts Envoy from envoy/demo.yaml with test ports; prints its log if the test fails."""
    started: list[Envoy] = []

    def start(filter_configs: dict | None = None, mutate=None, **kwargs) -> Envoy:
        workdir = tmp_path / f"envoy{len(started)}"
        workdir.mkdir()
        config, ports = build_config(workdir, fresh_upstream.port, filter_configs, mutate)
        envoy = Envoy(workdir, config, ports, **kwargs)
        started.append(envoy)
        return envoy

    yield start
    failed = getattr(request.node, "rep_call", None) is None or request.node.rep_call.failed
    for envoy in started:
        envoy.stop()
        if failed:
            print(f"----- Envoy log ({envoy.log_path}) -----")
            print(envoy.log_text()[-20000:])


def validate_log_line(line: dict) -> None:
    jsonschema.validate(line, LOG_SCHEMA)
