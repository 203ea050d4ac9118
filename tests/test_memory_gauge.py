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
