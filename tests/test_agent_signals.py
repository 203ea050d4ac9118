"""Agent, tool and prompt signals in a real Envoy: a scripted multi-turn agent run with the
official SDKs (llmock asks for tools, the client runs them, some fail) and the session ratio
read from Envoy's Prometheus counters, exactly; the log fields equal what each client sent."""

from __future__ import annotations

import json
import uuid

import anthropic
import openai
import pytest

from conftest import validate_log_line
from harness import ROOT, Upstream, as_bundle, post_json, route_everything_to, wait_until
from test_prometheus import Prometheus

WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}
SEARCH_TOOL = {"type": "function", "function": {"name": "search_docs", "parameters": {"type": "object"}}}
ANTHROPIC_TOOL = {"name": "run_sql", "description": "runs SQL", "input_schema": {"type": "object"}}


def ask_for_tools(upstream, *names: str) -> None:
    """The next request gets an answer that calls these tools, or with none a plain answer
    (llmock's scripted reply; unscripted, llmock calls a tool whenever tools are offered)."""
    if names:
        upstream.scenario({"type": "reply", "times": 1,
                           "tool_calls": [{"name": n, "arguments": {"city": "argument-canary"}} for n in names]})
    else:
        upstream.scenario({"type": "reply", "text": "All done.", "times": 1})


def openai_session(oa, upstream, failures: list[list[bool]], prompt_version: str, sent: dict,
                   stream: bool = False) -> None:
    """One agent session on OpenAI chat: per iteration the model calls one tool per flag, the
    client runs them (True: the tool fails, reported by the JSON-error convention), and the loop
    ends with a plain answer. `sent` maps request id -> (iteration, results, errors)."""
    messages = [{"role": "user", "content": "plan my trip"}]
    for iteration, flags in enumerate(failures + [None], start=1):
        ask_for_tools(upstream, *(["get_weather", "search_docs"][: len(flags or [])]))
        rid = uuid.uuid4().hex
        new = failures[iteration - 2] if iteration > 1 else []
        sent[rid] = (iteration, len(new), sum(new))
        kwargs = dict(model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL, SEARCH_TOOL],
                      extra_headers={"x-request-id": rid, "x-llmobs-prompt-version": prompt_version,
                                     "x-llmobs-prompt-id": "trip-planner"})
        if stream:
            # The SDK's own accumulation of streamed tool-call fragments.
            with oa.beta.chat.completions.stream(**kwargs) as s:
                msg = s.get_final_completion().choices[0].message
        else:
            msg = oa.chat.completions.create(**kwargs).choices[0].message
        calls[rid] = [c.function.name for c in msg.tool_calls or []]
        if flags is None:
            assert not msg.tool_calls
            return
        assert len(msg.tool_calls) == len(flags)
        messages.append(msg.model_dump(exclude_none=True))
        for call, fails in zip(msg.tool_calls, flags):
            output = {"error": "tool-output-canary timeout"} if fails else {"temp_c": 21, "note": "tool-output-canary"}
            messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(output)})


def anthropic_session(an, upstream, failures: list[bool], sent: dict) -> None:
    """One session on Anthropic Messages: one run_sql call per iteration, is_error when it fails."""
    messages = [{"role": "user", "content": "count the orders"}]
    for iteration, fails in enumerate(failures + [None], start=1):
        ask_for_tools(upstream, *(["run_sql"] if fails is not None else []))
        rid = uuid.uuid4().hex
        prev = failures[iteration - 2] if iteration > 1 else None
        sent[rid] = (iteration, 0 if prev is None else 1, int(bool(prev)))
        m = an.messages.create(model="claude-sonnet-4", max_tokens=128, messages=messages, tools=[ANTHROPIC_TOOL],
                               metadata={"user_id": "u-1"}, extra_headers={"x-request-id": rid})
        uses = [b for b in m.content if b.type == "tool_use"]
        calls[rid] = [b.name for b in uses]
        if fails is None:
            assert not uses
            return
        assert len(uses) == 1
        messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in m.content]})
        messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id,
                                                      "content": "tool-output-canary", "is_error": fails}]})


# Request id -> the tool names the SDK saw the model ask for, in order.
calls: dict[str, list[str]] = {}


def tool_calls_field(names: list[str]) -> str | None:
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    return ",".join(f"{n}={c}" for n, c in counts.items()) or None


def session_counter(envoy, name: str, **labels: str) -> float:
    return envoy.metric(f"llmobs_agent_{name}", **labels)


@pytest.mark.parametrize("pack", ["separate", "bundle"])
def test_a_scripted_agent_run_gives_the_exact_share_of_sessions_with_tool_errors(start_envoy, upstream, pack, tmp_path):
    envoy = start_envoy(mutate=as_bundle if pack == "bundle" else None)
    oa = openai.OpenAI(base_url=envoy.url + "/v1", api_key="sk-test", max_retries=0)
    an = anthropic.Anthropic(base_url=envoy.url + "/anthropic", api_key="sk-ant-test", max_retries=0)
    sent: dict[str, tuple[int, int, int]] = {}
    # Eight sessions, three of which hit a tool error (one only at its third iteration, one
    # twice: counted once), on two prompt versions.
    openai_session(oa, upstream, [[False, False], [False]], "v7", sent)
    openai_session(oa, upstream, [[True, False], [True]], "v7", sent)
    openai_session(oa, upstream, [[False], [False], [True]], "v8", sent)
    openai_session(oa, upstream, [], "v8", sent)
    openai_session(oa, upstream, [[False, False]], "v8", sent, stream=True)
    anthropic_session(an, upstream, [False, False], sent)
    anthropic_session(an, upstream, [True], sent)
    anthropic_session(an, upstream, [], sent)

    envoy.wait_metric("llmobs_agent_sessions_started", 8)
    started = session_counter(envoy, "sessions_started")
    with_errors = session_counter(envoy, "sessions_first_tool_error")
    # The PromQL ratio, sum(llmobs_agent_sessions_first_tool_error) / sum(llmobs_agent_sessions_started).
    assert (with_errors, started) == (3, 8)
    assert with_errors / started == 0.375
    assert session_counter(envoy, "sessions_started", prompt_version="v7") == 2
    assert session_counter(envoy, "sessions_first_tool_error", prompt_version="v7") == 1
    assert session_counter(envoy, "sessions_first_tool_error", prompt_version="v8") == 1
    assert session_counter(envoy, "sessions_first_tool_error", prompt_version="unknown",
                           gen_ai_provider_name="anthropic") == 1
    assert session_counter(envoy, "tool_errors", gen_ai_tool_name="get_weather", error_source="convention") == 3
    assert session_counter(envoy, "tool_errors", gen_ai_tool_name="run_sql", error_source="flag") == 1
    assert session_counter(envoy, "tool_results") == sum(r for _, r, _ in sent.values())
    asked = [n for rid in sent for n in calls[rid]]
    assert session_counter(envoy, "tool_calls", tool_type="client") == len(asked) > 10
    assert session_counter(envoy, "tool_calls", gen_ai_tool_name="run_sql") == asked.count("run_sql")

    lines = {l["llmobs.request_id"]: l for l in envoy.wait_access_log(len(sent)) if "llmobs.request_id" in l}
    for rid, (iteration, results, errors) in sent.items():
        line = lines[rid]
        validate_log_line(line)
        assert (line["llmobs.agent.iteration"], line["llmobs.tool_results"], line["llmobs.tool_errors"]) == (
            str(iteration), str(results), str(errors)), line
        if errors:
            assert line["llmobs.tool_error_names"] in ("get_weather", "run_sql")
        assert line.get("llmobs.tool_calls") == tool_calls_field(calls[rid]), line
        if line["gen_ai.provider.name"] == "openai":
            assert line["llmobs.prompt.id"] == "trip-planner"
            assert line["llmobs.prompt.version"] in ("v7", "v8")
    text = envoy.access_log_path.read_text() + envoy.prometheus()
    assert "tool-output-canary" not in text and "argument-canary" not in text

    # The same ratio as one PromQL expression in a real Prometheus scraping this Envoy.
    prom = Prometheus(tmp_path, int(envoy.admin.rsplit(":", 1)[1]))
    try:
        ratio = "sum(llmobs_agent_sessions_first_tool_error) / sum(llmobs_agent_sessions_started)"
        wait_until(lambda: prom.query(ratio), 30, "Prometheus to scrape the agent counters")
        assert float(prom.query(ratio)[0]["value"][1]) == 0.375
        by_version = {r["metric"]["prompt_version"]: float(r["value"][1]) for r in prom.query(
            "sum by (prompt_version) (llmobs_agent_sessions_first_tool_error)"
            " / sum by (prompt_version) (llmobs_agent_sessions_started)")}
        assert by_version == {"v7": 0.5, "v8": 1 / 3, "unknown": 1 / 3}
    finally:
        prom.stop()


def test_the_prompt_version_comes_from_the_responses_prompt_object_and_from_metadata(start_envoy):
    envoy = start_envoy()
    oa = openai.OpenAI(base_url=envoy.url + "/v1", api_key="sk-test", max_retries=0)
    rid_responses, rid_chat = uuid.uuid4().hex, uuid.uuid4().hex
    oa.responses.create(model="gpt-4.1", input="hi", prompt={"id": "pmpt_abc123", "version": "12"},
                        extra_headers={"x-request-id": rid_responses})
    oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                               metadata={"prompt_id": "checkout", "prompt_version": "v3"}, store=False,
                               extra_headers={"x-request-id": rid_chat})
    lines = {l["llmobs.request_id"]: l for l in envoy.wait_access_log(2)}
    assert (lines[rid_responses]["llmobs.prompt.id"], lines[rid_responses]["llmobs.prompt.version"]) == ("pmpt_abc123", "12")
    assert (lines[rid_chat]["llmobs.prompt.id"], lines[rid_chat]["llmobs.prompt.version"]) == ("checkout", "v3")
    for line in lines.values():
        validate_log_line(line)
    assert envoy.wait_metric("llmobs_agent_sessions_started", 1, prompt_version="12") == 1
    # The request, token and duration series carry the version too: a regression ties to a deploy.
    assert envoy.metric("llmobs_token_accounting_requests", prompt_version="v3") == 1
    assert envoy.metric("llmobs_token_accounting_tokens", prompt_version="12", gen_ai_token_type="output") > 0
    assert envoy.wait_metric("gen_ai_client_operation_duration_ms_count", 1, prompt_version="v3") == 1


@pytest.mark.parametrize("pack", ["separate", "bundle"])
def test_responses_tool_calls_plain_and_streamed_are_logged_as_the_sdk_saw_them(start_envoy, upstream, pack):
    envoy = start_envoy(mutate=as_bundle if pack == "bundle" else None)
    oa = openai.OpenAI(base_url=envoy.url + "/v1", api_key="sk-test", max_retries=0)
    tool = {"type": "function", "name": "lookup_order", "parameters": {"type": "object"}}
    seen: dict[str, list[str]] = {}
    for stream in (False, True):
        ask_for_tools(upstream, "lookup_order", "lookup_order")
        rid = uuid.uuid4().hex
        if stream:
            with oa.responses.stream(model="gpt-4.1", input="find order", tools=[tool],
                                     extra_headers={"x-request-id": rid}) as s:
                output = s.get_final_response().output
        else:
            output = oa.responses.create(model="gpt-4.1", input="find order", tools=[tool],
                                         extra_headers={"x-request-id": rid}).output
        seen[rid] = [item.name for item in output if item.type == "function_call"]
        assert seen[rid] == ["lookup_order", "lookup_order"]
    lines = {l["llmobs.request_id"]: l for l in envoy.wait_access_log(2)}
    for rid, names in seen.items():
        validate_log_line(lines[rid])
        assert lines[rid]["llmobs.tool_calls"] == tool_calls_field(names)
    assert envoy.wait_metric("llmobs_agent_tool_calls", 4, gen_ai_tool_name="lookup_order", tool_type="client") == 4


TOOL_FIXTURES = ROOT / "tests" / "fixtures" / "agent" / "responses"


@pytest.fixture(scope="module")
def tool_replay(tmp_path_factory):
    """The project's replay upstream serving the tool-calling responses of every wire
    (tests/fixtures/agent/responses), in 7-byte chunks."""
    up = Upstream(tmp_path_factory.mktemp("tool-replay") / "replay.log", script="replay_upstream.py",
                  args=("--chunk-size", "7", "--fixtures", str(TOOL_FIXTURES)))
    yield up
    up.stop()


@pytest.mark.parametrize("pack", ["separate", "bundle"])
def test_tool_calls_and_server_tool_errors_of_every_wire_replayed_through_envoy_are_logged(start_envoy, tool_replay,
                                                                                        pack):
    def setup(config):
        route_everything_to(config, tool_replay.port)
        if pack == "bundle":
            as_bundle(config)

    envoy = start_envoy(mutate=setup)
    sent = {}
    for meta_file in sorted(TOOL_FIXTURES.glob("*/meta.json")):
        meta = json.loads(meta_file.read_text())
        case = meta_file.parent.name
        request_id = uuid.uuid4().hex
        body = (meta_file.parent / meta["request_file"]).read_bytes()
        status, _, received = post_json(envoy.url + meta["path"], body,
                                        {**meta["request_headers"], "x-fixture": case, "x-request-id": request_id})
        assert status == 200 and received == (meta_file.parent / meta["response_file"]).read_bytes(), case
        sent[request_id] = (case, meta["expected"])
    assert len(sent) >= 10
    lines = {l["llmobs.request_id"]: l for l in envoy.wait_access_log(len(sent))}
    for request_id, (case, want) in sent.items():
        validate_log_line(lines[request_id])
        got = (lines[request_id].get("llmobs.tool_calls"), lines[request_id].get("llmobs.server_tool_errors"))
        assert got == (want["tool_calls"], want["server_tool_errors"]), case
    server_errors = sum(int(w["server_tool_errors"] or 0) for _, w in sent.values())
    assert envoy.wait_metric("llmobs_agent_server_tool_errors", server_errors) == server_errors == 5
    assert envoy.metric("llmobs_agent_tool_calls", tool_type="server") == 6


# An answer of the request's own wire, from the tool replay, for each agent request fixture.
ANSWER_FOR = {"/v1/chat/completions": "openai-chat-plain-tool-calls", "/v1/responses": "openai-responses-plain-tools",
              "/v1/messages": "anthropic-messages-plain-server-tools"}


def answer_for(path: str) -> str:
    if path in ANSWER_FOR:
        return ANSWER_FOR[path]
    return "gemini-plain-function-call-and-code-execution" if "/models/" in path else "bedrock-converse-plain-tool-use"


@pytest.mark.parametrize("pack", ["separate", "bundle"])
def test_every_agent_request_fixture_through_envoy_logs_and_counts_what_its_history_says(start_envoy, tool_replay,
                                                                                         pack):
    """The request side of every wire (OpenAI chat and Responses, Anthropic, Bedrock, Gemini
    histories; filler turns, MCP isError, prompt headers and metadata) through a real Envoy, with
    the default agent configuration (fixtures that set their own are left to the native tests)."""
    def setup(config):
        route_everything_to(config, tool_replay.port)
        if pack == "bundle":
            as_bundle(config)

    envoy = start_envoy(mutate=setup)
    sent, starts, first_errors = {}, 0, 0
    for path in sorted((ROOT / "tests" / "fixtures" / "agent").glob("*.json")):
        case = json.loads(path.read_text())
        if "config" in case:
            continue
        request_id = uuid.uuid4().hex
        headers = {**case["request_headers"], "x-fixture": answer_for(case["path"]), "x-request-id": request_id}
        status, _, _ = post_json(envoy.url + case["path"], case["body"], headers)
        assert status == 200, path.name
        sent[request_id] = (path.name, case["expected"])
        starts += case["expected"]["session_start"]
        first_errors += case["expected"]["first_tool_error"]
    assert len(sent) >= 14
    lines = {l["llmobs.request_id"]: l for l in envoy.wait_access_log(len(sent))}
    for request_id, (name, want) in sent.items():
        line = lines[request_id]
        validate_log_line(line)
        names = line.get("llmobs.tool_error_names")
        got = {"iteration": int(line["llmobs.agent.iteration"]), "tool_results": int(line["llmobs.tool_results"]),
               "tool_errors": int(line["llmobs.tool_errors"]), "tool_error_names": names.split(",") if names else None,
               "prompt_id": line.get("llmobs.prompt.id"), "prompt_version": line.get("llmobs.prompt.version")}
        assert got == {k: want[k] for k in got}, name
    assert envoy.wait_metric("llmobs_agent_sessions_started", starts) == starts
    assert envoy.metric("llmobs_agent_sessions_first_tool_error") == first_errors > 5


@pytest.mark.parametrize("pack", ["separate", "bundle"])
def test_a_tool_name_holding_a_key_or_an_address_is_masked_in_the_metrics_and_the_log(start_envoy, upstream, pack):
    # Tool names become the gen_ai_tool_name label and the llmobs.tool_calls and
    # llmobs.tool_error_names fields: a key or an address in one must never reach either sink.
    envoy = start_envoy(mutate=as_bundle if pack == "bundle" else None)
    oa = openai.OpenAI(base_url=envoy.url + "/v1", api_key="sk-test", max_retries=0)
    key, email = "sk-proj-toolnameCANARY0123456789", "jane.toolname-canary@example.com"
    tools = [{"type": "function", "function": {"name": n, "parameters": {"type": "object"}}} for n in (key, email)]
    ask_for_tools(upstream, key, email)
    messages = [{"role": "user", "content": "go"}]
    msg = oa.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools).choices[0].message
    assert sorted(c.function.name for c in msg.tool_calls) == sorted([key, email])
    messages.append(msg.model_dump(exclude_none=True))
    for call in msg.tool_calls:
        messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps({"error": "failed"})})
    ask_for_tools(upstream)
    oa.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools)

    lines = envoy.wait_access_log(2)
    for line in lines:
        validate_log_line(line)
    assert sorted(l.get("llmobs.tool_calls") or "" for l in lines) == ["", "_SECRET_=1,_EMAIL_=1"]
    assert sorted(l.get("llmobs.tool_error_names") or "" for l in lines) == ["", "_SECRET_,_EMAIL_"]
    assert envoy.wait_metric("llmobs_agent_tool_calls", 1, gen_ai_tool_name="_SECRET_") == 1
    assert envoy.metric("llmobs_agent_tool_errors", gen_ai_tool_name="_EMAIL_") == 1
    text = envoy.access_log_path.read_text() + envoy.prometheus() + envoy.log_text()
    assert "toolname" not in text.lower(), "a tool name's key or address reached a sink"
