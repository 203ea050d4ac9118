"""Every module publishes its own linear memory size (`llmobs_wasm_memory_bytes{plugin}`), the
signal the soak and the benchmarks read to prove memory stays bounded."""

from __future__ import annotations

from harness import chat_body, post_json

PLUGINS = ("llmobs_correlation", "llmobs_pii_redaction", "llmobs_token_accounting", "llmobs_error_normalization")


def test_each_module_reports_its_linear_memory_in_whole_wasm_pages(start_envoy):
    envoy = start_envoy()
    status, _, _ = post_json(envoy.url + "/v1/chat/completions", chat_body("hello"))
    assert status == 200
    for plugin in PLUGINS:
        size = envoy.metric("llmobs_wasm_memory_bytes", plugin=plugin)
        assert size >= 65536 and size % 65536 == 0, (plugin, size)
        # A module's heap is far below the cap a leak would reach; 64 MiB would mean a runaway.
        assert size < 64 * 1024 * 1024, (plugin, size)


def test_each_module_reports_its_release_and_revision_in_build_info(start_envoy):
    """`llmobs_build_info{module, version, revision}` is 1 for every loaded module: the release
    from Cargo.toml and the revision scripts/build stamped (the same one `dist/llmobs version`
    prints, as both come from one build)."""
    import re
    import subprocess

    from harness import DIST, ROOT

    version = re.search(r'^version = "(.+)"', (ROOT / "Cargo.toml").read_text(), re.M).group(1)
    cli = subprocess.run([str(DIST / "llmobs"), "version"], capture_output=True, text=True, check=True).stdout
    revision = re.fullmatch(r"llmobs (\S+) \((\S+)\)\n", cli)
    assert revision and revision.group(1) == version, cli
    assert re.fullmatch(r"[0-9a-f]{12}(-dirty)?", revision.group(2)), "scripts/build stamps the git revision"
    envoy = start_envoy()
    for module in PLUGINS:
        assert envoy.metric("llmobs_build_info", module=module, version=version, revision=revision.group(2)) == 1, module
