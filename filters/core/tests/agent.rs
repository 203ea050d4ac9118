//! Agent, tool and prompt signals read from each provider's request history, through the
//! token-accounting filter, for every split of the request body.

use llmobs_core::agent::{self, config::AgentConfig, request::AgentRequest};
use llmobs_core::token_accounting::TokenAccounting;
use llmobs_testkit::{
    agent_fixtures, agent_response_fixtures, chunkings, provider_fixtures, AgentFixture, FakeHost, ProviderFixture,
};
use serde_json::{json, Value};

fn config(fixture: &AgentFixture) -> String {
    json!({ "agent": fixture.config }).to_string()
}

/// Runs one fixture's request, split into `chunks`, and a 200 answer through accounting.
fn run(fixture: &AgentFixture, chunks: &[&[u8]]) -> FakeHost {
    let mut host = FakeHost::default();
    let mut headers: Vec<(&str, &str)> = vec![(":path", &fixture.path), (":method", "POST")];
    headers.extend(fixture.request_headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    host.next_request(&headers);
    let filter = TokenAccounting::new(config(fixture).as_bytes(), &mut host).unwrap();
    let mut ex = filter.on_request_headers(&mut host);
    for chunk in chunks {
        filter.on_request_body(&mut ex, chunk, false);
    }
    filter.on_request_body(&mut ex, b"", true);
    host.add_response_header(":status", "200");
    host.add_response_header("content-type", "application/json");
    filter.on_response_headers(&mut host, &mut ex, false);
    filter.on_response_body(&mut host, &mut ex, b"{}", true);
    host
}

/// What the filter recorded, in the fixtures' `expected` vocabulary.
fn observed(host: &FakeHost) -> Value {
    let number = |key: &str| host.filter_state_str(key).map(|v| v.parse::<u64>().expect("a number"));
    json!({
        "iteration": number(agent::ITERATION),
        "tool_results": number(agent::TOOL_RESULTS),
        "tool_errors": number(agent::TOOL_ERRORS),
        "tool_error_names": host.filter_state_str(agent::TOOL_ERROR_NAMES).map(|v| v.split(',').map(str::to_string).collect::<Vec<_>>()),
        "session_start": host.counter_sum("llmobs.agent.sessions_started") == 1,
        "first_tool_error": host.counter_sum("llmobs.agent.sessions_first_tool_error") == 1,
        "prompt_id": host.filter_state_str(agent::PROMPT_ID),
        "prompt_version": host.filter_state_str(agent::PROMPT_VERSION),
    })
}

#[test]
fn every_agent_fixture_reads_as_expected_for_every_split_of_its_request() {
    let fixtures = agent_fixtures();
    assert!(fixtures.len() >= 16, "fixtures missing: {}", fixtures.len());
    for fixture in &fixtures {
        for chunks in chunkings(&fixture.request_body) {
            assert_eq!(observed(&run(fixture, &chunks)), fixture.expected, "{} split {}", fixture.name, chunks.len());
        }
    }
}

#[test]
fn tool_results_and_errors_are_counted_by_tool_and_error_source() {
    let fixture = agent_fixtures().into_iter().find(|f| f.name == "anthropic-tool-result-is-error").unwrap();
    let host = run(&fixture, &[&fixture.request_body]);
    let base = ".gen_ai.provider.name=anthropic;";
    assert_eq!(
        host.counter(&format!(
            "llmobs.agent.tool_results{base}.gen_ai.tool.name=run_sql;.prompt_version=unknown;.synthetic=false;"
        )),
        Some(1)
    );
    assert_eq!(
        host.counter(&format!(
            "llmobs.agent.tool_results{base}.gen_ai.tool.name=get_schema;.prompt_version=unknown;.synthetic=false;"
        )),
        Some(1)
    );
    assert_eq!(
        host.counter(&format!("llmobs.agent.tool_errors{base}.gen_ai.tool.name=run_sql;.error_source=flag;.prompt_version=unknown;.synthetic=false;")),
        Some(1)
    );
    assert_eq!(host.counter_sum("llmobs.agent.tool_errors"), 1);
    assert_eq!(host.histogram("llmobs.agent.iteration.gen_ai.provider.name=anthropic;.prompt_version=unknown;.synthetic=false;.tenant=unknown;"), vec![2]);
}

#[test]
fn the_prompt_version_labels_the_session_counters() {
    let fixture = agent_fixtures().into_iter().find(|f| f.name == "openai-chat-header-prompt-wins").unwrap();
    let host = run(&fixture, &[&fixture.request_body]);
    assert_eq!(
        host.counter("llmobs.agent.sessions_started.gen_ai.provider.name=openai;.gen_ai.request.model=gpt-4o-mini;.prompt_version=v8-canary;.synthetic=false;.tenant=unknown;"),
        Some(1)
    );
}

#[test]
fn a_failed_call_writes_the_log_fields_but_counts_nothing() {
    let fixture = agent_fixtures().into_iter().find(|f| f.name == "openai-chat-tool-error-json-convention").unwrap();
    let mut host = FakeHost::default();
    host.next_request(&[(":path", &fixture.path), (":method", "POST")]);
    let filter = TokenAccounting::new(b"", &mut host).unwrap();
    let mut ex = filter.on_request_headers(&mut host);
    filter.on_request_body(&mut ex, &fixture.request_body, true);
    host.add_response_header(":status", "429");
    filter.on_response_headers(&mut host, &mut ex, true);
    assert_eq!(host.filter_state_str(agent::TOOL_ERRORS).as_deref(), Some("1"));
    assert_eq!(host.counter_sum("llmobs.agent."), 0);
}

#[test]
fn tool_names_past_the_cap_become_other_and_count_an_overflow() {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "go"},
        {"role": "assistant", "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "first", "arguments": "{}"}},
            {"id": "b", "type": "function", "function": {"name": "second", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "a", "content": "{\"error\": 1}"},
        {"role": "tool", "tool_call_id": "b", "content": "{\"error\": 2}"}]});
    let fixture = AgentFixture {
        name: "cap".into(),
        path: "/v1/chat/completions".into(),
        request_headers: Vec::new(),
        request_body: body.to_string().into_bytes(),
        config: json!({"tool_name_label": {"max_distinct": 1}}),
        expected: Value::Null,
    };
    let host = run(&fixture, &[&fixture.request_body]);
    assert_eq!(host.filter_state_str(agent::TOOL_ERROR_NAMES).as_deref(), Some("first,_OTHER"));
    assert_eq!(host.counter("llmobs.label_overflow.label=gen_ai.tool.name;"), Some(1));
}

#[test]
fn documents_of_no_known_shape_read_as_an_empty_history() {
    for doc in [
        json!(null),
        json!([1, 2]),
        json!({"messages": "x"}),
        json!({"messages": [1, {"role": 5}]}),
        json!({"input": [{"type": 3}]}),
    ] {
        let reading = AgentRequest::read(&doc);
        assert_eq!(reading.iteration(), 1);
        assert!(reading.new_results(&AgentConfig::default()).is_empty());
    }
}

#[test]
fn bad_agent_configurations_name_their_field() {
    let mut host = FakeHost::default();
    for (json, field) in [
        (r#"{"agent": {"prompt_id_header": "X-Prompt"}}"#, "agent.prompt_id_header"),
        (r#"{"agent": {"tool_name_label": {"max_distinct": 0}}}"#, "agent.tool_name_label.max_distinct"),
        (r#"{"agent": {"tool_error_prefixes": ["   "]}}"#, "agent.tool_error_prefixes[0]"),
        (r#"{"agent": {"tool_errors": true}}"#, "agent.tool_errors"),
    ] {
        assert_eq!(TokenAccounting::new(json.as_bytes(), &mut host).unwrap_err().field, field, "{json}");
    }
}

/// Runs a provider-format fixture through accounting with the response split into `chunks`.
fn run_response(fixture: &ProviderFixture, chunks: &[&[u8]]) -> FakeHost {
    let mut host = FakeHost::default();
    let mut headers: Vec<(&str, &str)> = vec![(":path", &fixture.path), (":method", "POST")];
    headers.extend(fixture.request_headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    host.next_request(&headers);
    let filter = TokenAccounting::new(b"", &mut host).unwrap();
    let mut ex = filter.on_request_headers(&mut host);
    filter.on_request_body(&mut ex, &fixture.request_body, true);
    host.add_response_header(":status", &fixture.status.to_string());
    for (k, v) in &fixture.response_headers {
        host.add_response_header(k, v);
    }
    filter.on_response_headers(&mut host, &mut ex, false);
    for chunk in chunks {
        filter.on_response_body(&mut host, &mut ex, chunk, false);
    }
    filter.on_response_body(&mut host, &mut ex, b"", true);
    host
}

#[test]
fn tool_calls_and_server_tool_errors_are_read_from_every_response_fixture_at_every_split() {
    let fixtures: Vec<ProviderFixture> = agent_response_fixtures().into_iter().chain(provider_fixtures()).collect();
    let mut with_calls = 0;
    for fixture in &fixtures {
        let expected = (fixture.expected("tool_calls").as_str(), fixture.expected("server_tool_errors").as_str());
        with_calls += usize::from(expected.0.is_some());
        for chunks in chunkings(&fixture.response_body) {
            let host = run_response(fixture, &chunks);
            let seen = (host.filter_state_str(agent::TOOL_CALLS), host.filter_state_str(agent::SERVER_TOOL_ERRORS));
            assert_eq!((seen.0.as_deref(), seen.1.as_deref()), expected, "{} split {}", fixture.name, chunks.len());
        }
    }
    assert!(with_calls >= 12, "only {with_calls} fixtures ask for tools");
}

#[test]
fn tool_calls_are_counted_by_tool_and_tool_type_and_server_errors_by_tool() {
    let fixture = agent_response_fixtures().into_iter().find(|f| f.name == "openai-responses-plain-tools").unwrap();
    let host = run_response(&fixture, &[&fixture.response_body]);
    let calls = |tool: &str, kind: &str| {
        host.counter(&format!(
            "llmobs.agent.tool_calls.gen_ai.provider.name=openai;.gen_ai.tool.name={tool};.tool_type={kind};.prompt_version=unknown;.synthetic=false;"
        ))
    };
    assert_eq!(calls("lookup_order", "client"), Some(1));
    assert_eq!(calls("web_search", "server"), Some(1));
    assert_eq!(calls("create_issue", "server"), Some(1));
    assert_eq!(
        host.counter("llmobs.agent.server_tool_errors.gen_ai.provider.name=openai;.gen_ai.tool.name=create_issue;.prompt_version=unknown;.synthetic=false;"),
        Some(1)
    );
    assert_eq!(host.counter_sum("llmobs.agent.server_tool_errors"), 1);
}

#[test]
fn no_tool_argument_reaches_a_sink() {
    for fixture in agent_response_fixtures() {
        let sinks = run_response(&fixture, &[&fixture.response_body]).all_sinks();
        for argument in ["Zürich", "WZPZ", "select 1", "1/0", "permission denied", "blue"] {
            assert!(!sinks.contains(argument), "{}: {argument}", fixture.name);
        }
    }
}

/// Envoy may end a request's span before the filter's last callback (a client that leaves right
/// after `[DONE]`): accounting must have written its fields at the stream's end marker already.
#[test]
fn a_stream_is_finished_at_its_end_marker_before_its_body_ends() {
    for name in ["openai-chat-stream-usage", "anthropic-messages-stream-tool-use", "openai-responses-stream"] {
        let fixture = provider_fixtures().into_iter().find(|f| f.name == name).unwrap();
        let mut host = FakeHost::default();
        host.next_request(&[(":path", &fixture.path), (":method", "POST")]);
        let filter = TokenAccounting::new(b"", &mut host).unwrap();
        let mut ex = filter.on_request_headers(&mut host);
        filter.on_request_body(&mut ex, &fixture.request_body, true);
        host.add_response_header(":status", "200");
        for (k, v) in &fixture.response_headers {
            host.add_response_header(k, v);
        }
        filter.on_response_headers(&mut host, &mut ex, false);
        filter.on_response_body(&mut host, &mut ex, &fixture.response_body, false);
        assert_eq!(host.filter_state_str("llmobs.stream_outcome").as_deref(), Some("completed"), "{name}");
        assert!(host.filter_state_str("llmobs.usage.output_tokens").is_some(), "{name}");
    }
}

#[test]
fn the_span_cap_keeps_the_first_iterations_then_every_kth() {
    let cap = agent::config::SpanCap { first: 2, every: 3 };
    let kept: Vec<u32> = (1..=12).filter(|i| cap.keeps(*i)).collect();
    assert_eq!(kept, vec![1, 2, 5, 8, 11]);
}

#[test]
fn a_request_is_counted_by_the_depth_of_its_agent_run_and_marks_its_span() {
    let mut fixture =
        agent_fixtures().into_iter().find(|f| f.name == "openai-chat-history-error-then-new-error").unwrap();
    fixture.config = json!({"span_cap": {"first": 2, "every": 3}});
    let host = run(&fixture, &[&fixture.request_body]);
    assert_eq!(
        host.counter("llmobs.agent.depth.requests.depth=3-4;.gen_ai.provider.name=openai;.synthetic=false;"),
        Some(1)
    );
    assert_eq!(host.filter_state_str(agent::SPAN_KEEP).as_deref(), Some("false"));
    let fixture = agent_fixtures().into_iter().find(|f| f.name == "openai-chat-first-turn").unwrap();
    assert_eq!(run(&fixture, &[&fixture.request_body]).filter_state_str(agent::SPAN_KEEP), None, "no cap, no field");
}

#[test]
fn tool_calls_and_tokens_are_counted_by_depth() {
    let fixture = agent_response_fixtures().into_iter().find(|f| f.name == "openai-chat-plain-tool-calls").unwrap();
    let host = run_response(&fixture, &[&fixture.response_body]);
    assert_eq!(
        host.counter("llmobs.agent.depth.tool_calls.depth=1;.gen_ai.provider.name=openai;.synthetic=false;"),
        Some(3)
    );
    assert_eq!(
        host.counter("llmobs.agent.depth.tokens.depth=1;.gen_ai.token.type=output;.gen_ai.provider.name=openai;.synthetic=false;"),
        Some(40)
    );
    assert_eq!(
        host.counter(
            "llmobs.agent.depth.tokens.depth=1;.gen_ai.token.type=input;.gen_ai.provider.name=openai;.synthetic=false;"
        ),
        Some(80)
    );
}

#[test]
fn depth_labels_are_a_fixed_set() {
    let labels: std::collections::BTreeSet<&str> = (0..=1000).map(agent::depth_label).collect();
    assert_eq!(labels.len(), 8);
    assert_eq!((agent::depth_label(64), agent::depth_label(65)), ("33-64", "65+"));
}

#[test]
fn the_prompt_version_labels_the_request_token_duration_and_finish_reason_metrics() {
    let fixture = agent_fixtures().into_iter().find(|f| f.name == "openai-chat-metadata-prompt").unwrap();
    let mut host = FakeHost::default();
    host.next_request(&[(":path", &fixture.path), (":method", "POST")]);
    let filter = TokenAccounting::new(b"", &mut host).unwrap();
    let mut ex = filter.on_request_headers(&mut host);
    filter.on_request_body(&mut ex, &fixture.request_body, true);
    host.add_response_header(":status", "200");
    host.add_response_header("content-type", "application/json");
    filter.on_response_headers(&mut host, &mut ex, false);
    let answer = br#"{"id":"c1","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#;
    filter.on_response_body(&mut host, &mut ex, answer, true);
    for prefix in [
        "llmobs.token_accounting.requests.",
        "llmobs.token_accounting.tokens.",
        "gen_ai.client.token.usage.",
        "gen_ai.client.operation.duration_ms.",
        "llmobs.token_accounting.finish_reasons.",
    ] {
        let names = host.metric_names(prefix);
        assert!(!names.is_empty() && names.iter().all(|n| n.contains(".prompt_version=v7;")), "{prefix}: {names:?}");
    }
}

#[test]
fn a_tool_name_holding_a_key_or_an_address_is_masked_in_every_metric_label_and_log_field() {
    // Tool names come from the client's history and the model's answer, and become metric
    // labels and log fields: a key or an address in one must leave only its placeholder.
    const KEY: &str = "sk-proj-canaryKEY0123456789abcdef";
    const EMAIL: &str = "jane.canary@example.com";
    let call =
        |id: &str, name: &str| json!({"id": id, "type": "function", "function": {"name": name, "arguments": "{}"}});
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "go"},
        {"role": "assistant", "tool_calls": [call("a", KEY), call("b", EMAIL), call("c", "lookup")]},
        {"role": "tool", "tool_call_id": "a", "content": "{\"error\": 1}"},
        {"role": "tool", "tool_call_id": "b", "content": "{\"error\": 2}"},
        {"role": "tool", "tool_call_id": "c", "content": "{\"error\": 3}"}]});
    let answer = json!({"id": "c1", "model": "m", "choices": [{"index": 0, "finish_reason": "tool_calls",
        "message": {"role": "assistant", "content": null, "tool_calls": [call("d", KEY), call("e", EMAIL), call("f", EMAIL)]}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}});
    let fixture = ProviderFixture {
        name: "masked-tool-names".into(),
        meta: Value::Null,
        path: "/v1/chat/completions".into(),
        request_headers: Vec::new(),
        request_body: body.to_string().into_bytes(),
        status: 200,
        response_headers: vec![("content-type".into(), "application/json".into())],
        response_body: answer.to_string().into_bytes(),
    };
    let host = run_response(&fixture, &[&fixture.response_body]);
    let sinks = host.all_sinks();
    for raw in ["canary", "KEY0123456789", "example.com"] {
        assert!(!sinks.contains(raw), "{raw} reached a sink:\n{sinks}");
    }
    assert_eq!(host.filter_state_str(agent::TOOL_CALLS).as_deref(), Some("_SECRET_=1,_EMAIL_=2"));
    assert_eq!(host.filter_state_str(agent::TOOL_ERROR_NAMES).as_deref(), Some("_SECRET_,_EMAIL_,lookup"));
    let base = ".gen_ai.provider.name=openai;";
    for (tool, calls) in [("_SECRET_", 1), ("_EMAIL_", 2)] {
        let name = format!("llmobs.agent.tool_calls{base}.gen_ai.tool.name={tool};.tool_type=client;.prompt_version=unknown;.synthetic=false;");
        assert_eq!(host.counter(&name), Some(calls), "{name}");
        let name = format!("llmobs.agent.tool_errors{base}.gen_ai.tool.name={tool};.error_source=convention;.prompt_version=unknown;.synthetic=false;");
        assert_eq!(host.counter(&name), Some(1), "{name}");
    }
}
