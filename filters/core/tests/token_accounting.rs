use llmobs_core::filter_state as fs;
use llmobs_core::token_accounting::{End, TokenAccounting};
use llmobs_testkit::{chunkings, provider_fixtures, FakeHost, ProviderFixture};
use serde_json::Value;

/// Runs one fixture through the filter with the response body split into `chunks`.
fn run(fixture: &ProviderFixture, chunks: &[&[u8]], config: &str) -> FakeHost {
    let mut host = FakeHost::default();
    let mut headers: Vec<(&str, &str)> = vec![(":path", &fixture.path), (":method", "POST")];
    headers.extend(fixture.request_headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    host.next_request(&headers);
    if fixture.meta.get("provider_override").is_some() {
        host.set_property(&["xds", "cluster_name"], b"override");
    }
    let filter = TokenAccounting::new(config.as_bytes(), &mut host).unwrap();
    let mut ex = filter.on_request_headers(&mut host);
    filter.on_request_body(&mut ex, &fixture.request_body, true);
    host.advance_ms(5);
    host.add_response_header(":status", &fixture.status.to_string());
    for (k, v) in &fixture.response_headers {
        host.add_response_header(k, v);
    }
    filter.on_response_headers(&mut host, &mut ex, false);
    for chunk in chunks {
        host.advance_ms(1);
        filter.on_response_body(&mut host, &mut ex, chunk, false);
    }
    filter.on_response_body(&mut host, &mut ex, b"", true);
    host
}

fn config_for(fixture: &ProviderFixture) -> String {
    match fixture.meta.get("provider_override").and_then(Value::as_str) {
        Some(p) => format!(r#"{{"providers": [{{"cluster": "override", "provider": "{p}"}}]}}"#),
        None => String::new(),
    }
}

fn expected_str(fixture: &ProviderFixture, key: &str) -> Option<String> {
    fixture.expected(key).as_str().map(str::to_string)
}

/// What the filter recorded, as comparable text; every fixture's expectations in one place.
fn observed(host: &FakeHost) -> Vec<(&'static str, Option<String>)> {
    [
        ("provider", fs::PROVIDER),
        ("operation", fs::OPERATION),
        ("request_model", fs::REQUEST_MODEL),
        ("response_model", fs::RESPONSE_MODEL),
        ("response_id", fs::RESPONSE_ID),
        ("input", fs::USAGE_INPUT),
        ("output", fs::USAGE_OUTPUT),
        ("cache_read", fs::USAGE_CACHE_READ),
        ("cache_creation", fs::USAGE_CACHE_CREATION),
        ("reasoning", fs::USAGE_REASONING),
        ("total", fs::USAGE_TOTAL),
        ("finish_reason_raw", fs::FINISH_REASON_RAW),
        ("finish_reason", fs::FINISH_REASON),
        ("usage_source", fs::USAGE_SOURCE),
        ("stream_outcome", fs::STREAM_OUTCOME),
        ("stream", fs::STREAM),
    ]
    .into_iter()
    .map(|(name, key)| (name, host.filter_state_str(key)))
    .collect()
}

fn expected(fixture: &ProviderFixture) -> Vec<(&'static str, Option<String>)> {
    let usage = |k: &str| fixture.expected("usage")[k].as_u64().map(|v| v.to_string());
    // meta.json uses the API's own operation names; the filter reports semconv's.
    let operation = expected_str(fixture, "operation").map(|op| match op.as_str() {
        "messages" | "converse" => "chat".to_string(),
        other => other.to_string(),
    });
    let outcome = expected_str(fixture, "stream_outcome").or_else(|| Some("completed".into()));
    vec![
        ("provider", expected_str(fixture, "provider")),
        ("operation", operation),
        ("request_model", expected_str(fixture, "request_model")),
        ("response_model", expected_str(fixture, "response_model")),
        ("response_id", expected_str(fixture, "response_id")),
        ("input", usage("input")),
        ("output", usage("output")),
        ("cache_read", usage("cache_read")),
        ("cache_creation", usage("cache_creation")),
        ("reasoning", usage("reasoning")),
        ("total", usage("total")),
        ("finish_reason_raw", expected_str(fixture, "finish_reason_raw")),
        ("finish_reason", expected_str(fixture, "finish_reason")),
        ("usage_source", expected_str(fixture, "usage_source")),
        ("stream_outcome", outcome),
        ("stream", Some(fixture.expected("stream").as_bool().unwrap_or(false).to_string())),
    ]
}

#[test]
fn every_provider_fixture_gives_its_expected_usage_under_every_chunk_split() {
    let fixtures = provider_fixtures();
    assert!(fixtures.len() >= 20, "fixtures missing: {}", fixtures.len());
    for fixture in &fixtures {
        let want = expected(fixture);
        let config = config_for(fixture);
        for chunks in chunkings(&fixture.response_body) {
            let host = run(fixture, &chunks, &config);
            assert_eq!(observed(&host), want, "{} split into {} chunks", fixture.name, chunks.len());
        }
    }
}

#[test]
fn fixtures_split_at_every_byte_offset_give_the_same_result() {
    // chunkings() splits only payloads up to 512 bytes at every offset; provider streams are
    // longer, so walk every offset of each here (two chunks each).
    for fixture in provider_fixtures() {
        let want = expected(&fixture);
        let config = config_for(&fixture);
        let body = &fixture.response_body;
        for at in (1..body.len()).step_by(1) {
            let (a, b) = body.split_at(at);
            let host = run(&fixture, &[a, b], &config);
            assert_eq!(observed(&host), want, "{} split at {at}", fixture.name);
        }
    }
}

#[test]
fn a_failure_after_a_200_sets_the_error_flag() {
    for fixture in provider_fixtures() {
        let host = run(&fixture, &[&fixture.response_body], &config_for(&fixture));
        let outcome = host.filter_state_str(fs::STREAM_OUTCOME).unwrap();
        let flagged = host.filter_state_str(fs::ERROR).as_deref() == Some("true");
        assert_eq!(flagged, outcome != "completed", "{}", fixture.name);
    }
}

#[test]
fn usage_becomes_semconv_token_histograms_with_bounded_labels() {
    let fixture = provider_fixtures().into_iter().find(|f| f.name == "anthropic-messages-stream").unwrap();
    let host = run(&fixture, &[&fixture.response_body], "");
    let name = |t: &str| {
        format!(
            "gen_ai.client.token.usage.gen_ai.token.type={t};.gen_ai.operation.name=chat;.gen_ai.provider.name=anthropic;\
             .gen_ai.request.model=claude-3-7-sonnet-20250219;.synthetic=false;.tenant=unknown;.prompt_version=unknown;"
        )
    };
    assert_eq!(host.histogram(&name("input")), vec![2520]);
    // Without a tenant header the log says what the metrics' label says.
    assert_eq!(host.filter_state_str(fs::TENANT).as_deref(), Some("unknown"));
    assert_eq!(host.histogram(&name("output")), vec![31]);
    assert_eq!(host.histogram(&name("cache_read")), vec![2048]);
    let exact = name("input").replacen("gen_ai.client.token.usage", "llmobs.token_accounting.tokens", 1);
    assert_eq!(host.counter(&exact), Some(2520));
    assert_eq!(host.metric_names("gen_ai.client.operation.time_to_first_chunk_ms").len(), 1);
    assert_eq!(host.metric_names("gen_ai.client.operation.duration_ms").len(), 1);
    assert_eq!(
        host.counter(
            "llmobs.token_accounting.requests.gen_ai.provider.name=anthropic;.gen_ai.operation.name=chat;\
             .usage_source=provider;.stream_outcome=completed;.synthetic=false;.prompt_version=unknown;"
        ),
        Some(1)
    );
}

#[test]
fn missing_usage_is_counted_and_other_metrics_are_still_recorded() {
    let fixture = provider_fixtures().into_iter().find(|f| f.name == "openai-chat-stream-no-usage").unwrap();
    let host = run(&fixture, &[&fixture.response_body], "");
    assert_eq!(host.filter_state_str(fs::USAGE_SOURCE).as_deref(), Some("missing"));
    assert_eq!(host.counter_sum("llmobs.token_accounting.usage_missing"), 1);
    assert!(host.metric_names("gen_ai.client.token.usage").is_empty());
    assert_eq!(host.metric_names("gen_ai.client.operation.duration_ms").len(), 1);
    assert_eq!(host.metric_names("gen_ai.client.operation.time_to_first_chunk_ms").len(), 1);
}

#[test]
fn every_finish_reason_is_counted_by_its_normalized_value_and_refusals_as_content_filter() {
    for fixture in provider_fixtures() {
        let host = run(&fixture, &[&fixture.response_body], &config_for(&fixture));
        let counted = host.metric_names("llmobs.token_accounting.finish_reasons");
        match expected_str(&fixture, "finish_reason") {
            None => assert!(counted.is_empty(), "{}: {counted:?}", fixture.name),
            Some(reason) => {
                assert_eq!(counted.len(), 1, "{}: {counted:?}", fixture.name);
                let name = &counted[0];
                assert!(name.contains(&format!(".finish_reason={reason};")), "{}: {name}", fixture.name);
                assert!(name.contains(".synthetic=false;"), "{name}");
                assert_eq!(host.counter(name), Some(1), "{name}");
            }
        }
    }
    let refusal = provider_fixtures().into_iter().find(|f| f.name == "anthropic-messages-refusal").unwrap();
    let host = run(&refusal, &[&refusal.response_body], "");
    assert_eq!(host.counter_sum("llmobs.token_accounting.finish_reasons.gen_ai.provider.name=anthropic;"), 1);
    assert_eq!(host.metric_names("llmobs.token_accounting.finish_reasons")[0].matches("content_filter").count(), 1);
}

fn chat_exchange(host: &mut FakeHost, filter: &TokenAccounting, model: &str) {
    host.next_request(&[(":path", "/v1/chat/completions")]);
    let mut ex = filter.on_request_headers(host);
    filter.on_request_body(&mut ex, format!(r#"{{"model": "{model}", "messages": []}}"#).as_bytes(), true);
    host.add_response_header(":status", "200");
    host.add_response_header("content-type", "application/json");
    filter.on_response_headers(host, &mut ex, false);
    let body = format!(r#"{{"model": "{model}", "usage": {{"prompt_tokens": 3, "completion_tokens": 2}}}}"#);
    filter.on_response_body(host, &mut ex, body.as_bytes(), true);
}

#[test]
fn models_past_the_cap_are_reported_as_other_and_counted() {
    let mut host = FakeHost::default();
    let filter = TokenAccounting::new(br#"{"model_label": {"max_distinct": 2}}"#, &mut host).unwrap();
    for model in ["m1", "m2", "m3", "m1", "m4"] {
        chat_exchange(&mut host, &filter, model);
    }
    let models: Vec<String> = host
        .metric_names("gen_ai.client.operation.duration_ms")
        .iter()
        .map(|n| n.split(".gen_ai.request.model=").nth(1).unwrap().split(';').next().unwrap().to_string())
        .collect();
    assert_eq!(models, vec!["m1", "m2", "_OTHER"]);
    assert_eq!(host.counter("llmobs.label_overflow.label=gen_ai.request.model;"), Some(2));
}

#[test]
fn the_model_cap_is_shared_by_every_vm_through_shared_data() {
    // Two filter instances stand for two worker VMs; shared data is the host's.
    let mut host = FakeHost::default();
    let worker_a = TokenAccounting::new(br#"{"model_label": {"max_distinct": 2}}"#, &mut host).unwrap();
    let worker_b = TokenAccounting::new(br#"{"model_label": {"max_distinct": 2}}"#, &mut host).unwrap();
    chat_exchange(&mut host, &worker_a, "m1");
    chat_exchange(&mut host, &worker_b, "m2");
    chat_exchange(&mut host, &worker_a, "m3");
    chat_exchange(&mut host, &worker_b, "m1");
    assert_eq!(host.counter("llmobs.label_overflow.label=gen_ai.request.model;"), Some(1));
}

#[test]
fn an_allow_list_reports_only_listed_models() {
    let mut host = FakeHost::default();
    let filter = TokenAccounting::new(br#"{"model_label": {"allow": ["gpt-4o"]}}"#, &mut host).unwrap();
    chat_exchange(&mut host, &filter, "gpt-4o");
    chat_exchange(&mut host, &filter, "secret-internal-model");
    let names = host.metric_names("gen_ai.client.operation.duration_ms").join("\n");
    assert!(names.contains("model=gpt-4o;"));
    assert!(names.contains("model=_OTHER;"));
    assert!(!names.contains("secret-internal-model"));
}

#[test]
fn an_unknown_provider_is_counted_and_left_alone() {
    let mut host = FakeHost::with_request_headers(&[(":path", "/internal/api"), ("accept-encoding", "gzip")]);
    let filter = TokenAccounting::new(b"", &mut host).unwrap();
    let mut ex = filter.on_request_headers(&mut host);
    assert!(!ex.wants_request_body());
    assert_eq!(host.request_header_str("accept-encoding").as_deref(), Some("gzip"));
    host.add_response_header(":status", "200");
    filter.on_response_headers(&mut host, &mut ex, false);
    filter.on_response_body(&mut host, &mut ex, b"not json at all", true);
    assert_eq!(host.counter_sum("llmobs.token_accounting.requests.gen_ai.provider.name=_OTHER;"), 1);
    assert!(host.metric_names("gen_ai.client").is_empty());
}

#[test]
fn a_complete_stream_that_is_not_read_is_not_reported_as_cut() {
    // Regression (tests/test_faults.py with Cohere v2, tests/test_bad_input.py with a gzip SSE
    // response): a stream the filter does not read (an unrecognised API, or a compressed body)
    // shows no terminator, and one that ended normally was logged as `upstream_cut` and
    // classified `stream_interrupted`. An upstream reset is still a cut.
    let body = b"\x1f\x8b compressed or unknown, never parsed";
    for (path, encoding) in [("/cohere/v2/chat", None), ("/v1/chat/completions", Some("gzip"))] {
        for (end, outcome) in [(None, "completed"), (Some(End::Aborted), "upstream_cut")] {
            let mut host = FakeHost::with_request_headers(&[(":path", path)]);
            host.set_property(&["response", "code_details"], b"upstream_reset_after_response_started{remote_reset}");
            let filter = TokenAccounting::new(b"", &mut host).unwrap();
            let mut ex = filter.on_request_headers(&mut host);
            host.add_response_header(":status", "200");
            host.add_response_header("content-type", "text/event-stream");
            if let Some(encoding) = encoding {
                host.add_response_header("content-encoding", encoding);
            }
            filter.on_response_headers(&mut host, &mut ex, false);
            filter.on_response_body(&mut host, &mut ex, body, end.is_none());
            if let Some(end) = end {
                filter.finish(&mut host, &mut ex, end);
            }
            assert_eq!(host.filter_state_str(fs::STREAM_OUTCOME).as_deref(), Some(outcome), "{path}");
            assert_eq!(host.filter_state_str(fs::ERROR).is_some(), outcome != "completed", "{path}");
        }
    }
}

#[test]
fn a_compressed_response_is_counted_and_skipped_not_misparsed() {
    let mut host = FakeHost::with_request_headers(&[(":path", "/v1/chat/completions")]);
    let filter = TokenAccounting::new(br#"{"request_identity_encoding": false}"#, &mut host).unwrap();
    let mut ex = filter.on_request_headers(&mut host);
    host.add_response_header(":status", "200");
    host.add_response_header("content-type", "application/json");
    host.add_response_header("content-encoding", "gzip");
    filter.on_response_headers(&mut host, &mut ex, false);
    assert!(!ex.wants_response_body());
    filter.on_response_body(&mut host, &mut ex, &[0x1f, 0x8b, 0x08, 0x00], true);
    assert_eq!(
        host.counter("llmobs.token_accounting.parse_failures.gen_ai.provider.name=openai;.reason=compressed;"),
        Some(1)
    );
    assert_eq!(host.filter_state_str(fs::USAGE_SOURCE).as_deref(), Some("missing"));
}

#[test]
fn by_default_accept_encoding_is_removed_toward_providers() {
    let mut host = FakeHost::with_request_headers(&[(":path", "/v1/messages"), ("accept-encoding", "gzip, br")]);
    let filter = TokenAccounting::new(b"", &mut host).unwrap();
    filter.on_request_headers(&mut host);
    assert_eq!(host.request_header_str("accept-encoding"), None);
}

#[test]
fn malformed_json_and_invalid_utf8_are_counted_never_a_panic() {
    for body in [&b"{not json"[..], b"\xff\xfe\xfd", b"", b"[]", b"{\"usage\": {\"prompt_tokens\": -5}}"] {
        let mut host = FakeHost::with_request_headers(&[(":path", "/v1/chat/completions")]);
        let filter = TokenAccounting::new(b"", &mut host).unwrap();
        let mut ex = filter.on_request_headers(&mut host);
        filter.on_request_body(&mut ex, body, true);
        host.add_response_header(":status", "200");
        host.add_response_header("content-type", "application/json");
        filter.on_response_headers(&mut host, &mut ex, false);
        filter.on_response_body(&mut host, &mut ex, body, true);
        assert_eq!(host.filter_state_str(fs::USAGE_SOURCE).as_deref(), Some("missing"), "{body:?}");
        if !body.is_empty() {
            assert!(host.counter_sum("llmobs.token_accounting.parse_failures") >= 1, "{body:?}");
        }
    }
}

#[test]
fn a_response_over_the_size_limit_is_counted_as_over_limit() {
    let mut host = FakeHost::with_request_headers(&[(":path", "/v1/chat/completions")]);
    let filter = TokenAccounting::new(br#"{"max_response_body_bytes": 1024}"#, &mut host).unwrap();
    let mut ex = filter.on_request_headers(&mut host);
    host.add_response_header(":status", "200");
    host.add_response_header("content-type", "application/json");
    filter.on_response_headers(&mut host, &mut ex, false);
    let big = vec![b' '; 600];
    filter.on_response_body(&mut host, &mut ex, &big, false);
    filter.on_response_body(&mut host, &mut ex, &big, true);
    assert_eq!(
        host.counter("llmobs.token_accounting.parse_failures.gen_ai.provider.name=openai;.reason=response_over_limit;"),
        Some(1)
    );
}

#[test]
fn a_bedrock_message_over_the_frame_cap_is_skipped_and_counted_and_the_usage_after_it_is_still_read() {
    // Its prelude CRC holds, so its length is trusted and the next message is found right after
    // it (docs/filters/token-accounting.md, `max_frame_bytes`).
    use llmobs_core::framing::event_stream::EventStreamDecoder;
    let fixture = provider_fixtures().into_iter().find(|f| f.name == "bedrock-converse-stream").expect("fixture");
    let mut frames = Vec::new();
    let mut decoder = EventStreamDecoder::default();
    decoder
        .push(&fixture.response_body, &mut |m| {
            let big = format!(r#"{{"contentBlockIndex":0,"delta":{{"text":"{}"}}}}"#, "x".repeat(8000));
            frames.push((
                m.event_type().map(str::to_string),
                m.with_payload(m.payload()),
                m.with_payload(big.as_bytes()),
            ));
        })
        .unwrap();
    let at = frames.iter().position(|(t, _, _)| t.as_deref() == Some("contentBlockDelta")).expect("a delta");
    let mut body = Vec::new();
    for (i, (_, original, big)) in frames.iter().enumerate() {
        body.extend_from_slice(original);
        if i == at {
            body.extend_from_slice(big);
        }
    }
    assert_eq!(frames.iter().map(|(_, o, _)| o.len()).sum::<usize>(), fixture.response_body.len());
    let config = r#"{"max_frame_bytes": 4096}"#;
    let want = expected(&fixture);
    for chunks in chunkings(&body) {
        let host = run(&fixture, &chunks, config);
        assert_eq!(observed(&host), want, "split into {} chunks", chunks.len());
        assert_eq!(
            host.counter("llmobs.token_accounting.parse_failures.gen_ai.provider.name=aws.bedrock;.reason=framing;"),
            Some(1)
        );
    }
}

#[test]
fn a_stream_torn_down_by_the_client_is_client_cancelled() {
    let fixture = provider_fixtures().into_iter().find(|f| f.name == "openai-chat-stream-usage").unwrap();
    for (details, outcome) in [
        ("downstream_remote_disconnect", "client_cancelled"),
        ("upstream_reset_after_response_started{remote_reset}", "upstream_cut"),
    ] {
        let mut host = FakeHost::with_request_headers(&[(":path", "/v1/chat/completions")]);
        host.set_property(&["response", "code_details"], details.as_bytes());
        let filter = TokenAccounting::new(b"", &mut host).unwrap();
        let mut ex = filter.on_request_headers(&mut host);
        host.add_response_header(":status", "200");
        host.add_response_header("content-type", "text/event-stream");
        filter.on_response_headers(&mut host, &mut ex, false);
        let half = &fixture.response_body[..fixture.response_body.len() / 2];
        filter.on_response_body(&mut host, &mut ex, half, false);
        filter.finish(&mut host, &mut ex, End::Aborted);
        assert_eq!(host.filter_state_str(fs::STREAM_OUTCOME).as_deref(), Some(outcome));
        assert_eq!(host.filter_state_str(fs::ERROR).as_deref(), Some("true"));
    }
}

#[test]
fn a_client_that_hangs_up_right_after_the_terminator_completed_its_stream() {
    // Regression: the OpenAI SDK may close the connection after `[DONE]`, before the final empty
    // chunk; Envoy then tears the stream down and only the access-log callback ends it.
    let fixture = provider_fixtures().into_iter().find(|f| f.name == "openai-chat-stream-usage").unwrap();
    let mut host = FakeHost::with_request_headers(&[(":path", "/v1/chat/completions")]);
    host.set_property(&["response", "code_details"], b"downstream_remote_disconnect");
    let filter = TokenAccounting::new(b"", &mut host).unwrap();
    let mut ex = filter.on_request_headers(&mut host);
    host.add_response_header(":status", "200");
    host.add_response_header("content-type", "text/event-stream");
    filter.on_response_headers(&mut host, &mut ex, false);
    filter.on_response_body(&mut host, &mut ex, &fixture.response_body, false);
    filter.finish(&mut host, &mut ex, End::Aborted);
    assert_eq!(host.filter_state_str(fs::STREAM_OUTCOME).as_deref(), Some("completed"));
    assert_eq!(host.filter_state_str(fs::ERROR), None);
}

#[test]
fn finishing_twice_records_once() {
    let mut host = FakeHost::with_request_headers(&[(":path", "/v1/chat/completions")]);
    let filter = TokenAccounting::new(b"", &mut host).unwrap();
    let mut ex = filter.on_request_headers(&mut host);
    host.add_response_header(":status", "200");
    filter.on_response_headers(&mut host, &mut ex, true);
    filter.finish(&mut host, &mut ex, End::Aborted);
    assert_eq!(host.counter_sum("llmobs.token_accounting.requests"), 1);
}

#[test]
fn the_synthetic_flag_from_the_correlation_filter_labels_the_metrics() {
    let mut host = FakeHost::with_request_headers(&[(":path", "/v1/chat/completions")]);
    host.set_property(&["llmobs.synthetic"], b"true");
    let filter = TokenAccounting::new(b"", &mut host).unwrap();
    chat_exchange(&mut host, &filter, "gpt-4o");
    assert!(host.metric_names("gen_ai.client.token.usage").iter().all(|n| n.contains(".synthetic=true;")));
}

fn injecting_exchange(headers: &[(&str, &str)], body: &[u8]) -> (FakeHost, Option<Vec<u8>>) {
    let mut host = FakeHost::with_request_headers(headers);
    let filter = TokenAccounting::new(br#"{"inject_stream_usage": true}"#, &mut host).unwrap();
    let mut ex = filter.on_request_headers(&mut host);
    let edited = if ex.buffers_request() { filter.on_buffered_request(&mut host, &mut ex, body) } else { None };
    (host, edited)
}

#[test]
fn injection_adds_include_usage_and_drops_content_length_for_streaming_chat_requests() {
    let body = br#"{"model": "gpt-4o", "stream": true, "messages": []}"#;
    let (host, edited) = injecting_exchange(&[(":path", "/v1/chat/completions"), ("content-length", "52")], body);
    let edited = edited.unwrap();
    assert!(String::from_utf8(edited).unwrap().ends_with(r#","stream_options":{"include_usage":true}}"#));
    assert_eq!(host.request_header_str("content-length"), None);
    assert_eq!(host.counter("llmobs.token_accounting.usage_injected.gen_ai.provider.name=openai;"), Some(1));
}

#[test]
fn injection_never_edits_signed_requests_other_apis_or_clients_that_asked() {
    let stream = br#"{"stream": true, "messages": []}"#;
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [u8]);
    let cases: &[Case] = &[
        (&[(":path", "/v1/chat/completions"), ("authorization", "AWS4-HMAC-SHA256 Credential=x")], stream),
        (&[(":path", "/v1/messages")], stream),
        (&[(":path", "/model/m/converse-stream")], stream),
        (&[(":path", "/v1/chat/completions")], br#"{"stream": true, "stream_options": {"include_usage": true}}"#),
        (&[(":path", "/v1/chat/completions")], br#"{"stream": false}"#),
    ];
    for (headers, body) in cases {
        let (_, edited) = injecting_exchange(headers, body);
        assert_eq!(edited, None, "{headers:?}");
    }
}

#[test]
fn with_injection_the_client_never_sees_the_usage_chunk_but_usage_is_recorded() {
    let fixture = provider_fixtures().into_iter().find(|f| f.name == "openai-chat-stream-usage").unwrap();
    let mut host = FakeHost::with_request_headers(&[(":path", "/v1/chat/completions")]);
    let filter = TokenAccounting::new(br#"{"inject_stream_usage": true}"#, &mut host).unwrap();
    let mut ex = filter.on_request_headers(&mut host);
    filter.on_buffered_request(&mut host, &mut ex, br#"{"model": "gpt-4o", "stream": true}"#).unwrap();
    host.add_response_header(":status", "200");
    host.add_response_header("content-type", "text/event-stream");
    filter.on_response_headers(&mut host, &mut ex, false);
    assert!(ex.rewrites_response());
    let mut to_client = Vec::new();
    let chunks: Vec<&[u8]> = fixture.response_body.chunks(7).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        to_client.extend(filter.on_response_body_rewrite(&mut host, &mut ex, chunk, i + 1 == chunks.len(), None));
    }
    let text = String::from_utf8(to_client).unwrap();
    assert!(!text.contains("\"choices\":[]"), "usage chunk reached the client");
    assert!(text.trim_end().ends_with("data: [DONE]"));
    assert_eq!(text.len(), fixture.response_body.len() - usage_event_len(&fixture.response_body));
    assert_eq!(host.filter_state_str(fs::USAGE_SOURCE).as_deref(), Some("provider"));
    let input = fixture.expected("usage")["input"].as_u64().map(|v| v.to_string());
    assert!(input.is_some());
    assert_eq!(host.filter_state_str(fs::USAGE_INPUT), input);
}

fn usage_event_len(body: &[u8]) -> usize {
    let text = String::from_utf8_lossy(body);
    let start = text.rfind("\"choices\":[]").unwrap();
    let event_start = text[..start].rfind("\n\n").map_or(0, |i| i + 2);
    let event_end = text[start..].find("\n\n").unwrap() + start + 2;
    event_end - event_start
}

#[test]
fn without_error_normalization_the_duration_error_type_is_the_http_status() {
    let mut host = FakeHost::with_request_headers(&[(":path", "/v1/chat/completions")]);
    let filter = TokenAccounting::new(b"", &mut host).unwrap();
    let mut ex = filter.on_request_headers(&mut host);
    host.add_response_header(":status", "429");
    filter.on_response_headers(&mut host, &mut ex, false);
    filter.on_response_body(&mut host, &mut ex, br#"{"error": {}}"#, true);
    assert_eq!(host.metric_names("gen_ai.client.operation.duration_ms").len(), 1);
    assert!(host.metric_names("gen_ai.client.operation.duration_ms")[0].contains(".error.type=429;"));

    let mut host = FakeHost::with_request_headers(&[(":path", "/v1/chat/completions")]);
    host.set_property(&[fs::ERROR_TYPE], b"quota_exhausted");
    let filter = TokenAccounting::new(b"", &mut host).unwrap();
    let mut ex = filter.on_request_headers(&mut host);
    host.add_response_header(":status", "429");
    filter.on_response_headers(&mut host, &mut ex, true);
    assert!(host.metric_names("gen_ai.client.operation.duration_ms")[0].contains(".error.type=quota_exhausted;"));
}

#[test]
fn a_count_the_provider_did_not_send_is_left_out_of_the_log_and_the_metrics_and_a_reported_zero_is_kept() {
    // Azure reports zero cached and zero reasoning tokens; Mistral reports neither.
    let fixture = |name: &str| provider_fixtures().into_iter().find(|f| f.name == name).unwrap();
    let azure = fixture("azure-v1-chat-stream");
    let host = run(&azure, &[&azure.response_body], "");
    assert_eq!(host.filter_state_str(fs::USAGE_CACHE_READ).as_deref(), Some("0"));
    assert_eq!(host.filter_state_str(fs::USAGE_REASONING).as_deref(), Some("0"));
    for token_type in ["cache_read", "reasoning"] {
        let series = host.metric_names(&format!("gen_ai.client.token.usage.gen_ai.token.type={token_type};"));
        assert_eq!(series.len(), 1, "{token_type}");
        assert_eq!(host.histogram(&series[0]), vec![0], "{token_type}");
        let exact = host.metric_names(&format!("llmobs.token_accounting.tokens.gen_ai.token.type={token_type};"));
        assert_eq!(exact.len(), 1, "{token_type}");
        assert_eq!(host.counter(&exact[0]), Some(0), "{token_type}");
    }
    let mistral = fixture("mistral-chat-stream-usage");
    let host = run(&mistral, &[&mistral.response_body], &config_for(&mistral));
    for (key, token_type) in [(fs::USAGE_CACHE_READ, "cache_read"), (fs::USAGE_REASONING, "reasoning")] {
        assert_eq!(host.filter_state_str(key), None, "{token_type}");
        assert!(host.metric_names(&format!("gen_ai.client.token.usage.gen_ai.token.type={token_type};")).is_empty());
        assert!(host
            .metric_names(&format!("llmobs.token_accounting.tokens.gen_ai.token.type={token_type};"))
            .is_empty());
    }
    assert_eq!(host.histogram(&host.metric_names("gen_ai.client.token.usage.gen_ai.token.type=input;")[0]), vec![21]);
}

#[test]
fn the_stream_flag_is_what_the_request_asked_and_the_response_framing_only_when_the_request_was_unread() {
    // (request body, response content type, logged flag)
    let cases: [(&[u8], &str, &str); 4] = [
        (br#"{"model": "m", "stream": true}"#, "application/json", "true"),
        (br#"{"model": "m", "stream": false}"#, "text/event-stream", "false"),
        (br#"{"model": "m"}"#, "text/event-stream", "false"),
        (b"not json", "text/event-stream", "true"),
    ];
    for (body, content_type, flag) in cases {
        let mut host = FakeHost::with_request_headers(&[(":path", "/v1/chat/completions")]);
        let filter = TokenAccounting::new(b"", &mut host).unwrap();
        let mut ex = filter.on_request_headers(&mut host);
        filter.on_request_body(&mut ex, body, true);
        host.add_response_header(":status", if content_type == "application/json" { "400" } else { "200" });
        host.add_response_header("content-type", content_type);
        filter.on_response_headers(&mut host, &mut ex, false);
        filter.on_response_body(&mut host, &mut ex, b"data: [DONE]\n\n", true);
        assert_eq!(host.filter_state_str(fs::STREAM).as_deref(), Some(flag), "{body:?} {content_type}");
        // The outcome still follows the response: every stream here ended with its terminator.
        assert_eq!(host.filter_state_str(fs::STREAM_OUTCOME).as_deref(), Some("completed"));
    }
}

#[test]
fn an_openai_v1_path_is_azure_by_its_host_or_api_key_and_otherwise_openai() {
    // (request headers, provider): Azure's v1 API and Groq's OpenAI-compatible API share the path.
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[(":authority", "my-resource.openai.azure.com")], "azure.ai.openai"),
        (&[(":authority", "My-Resource.CognitiveServices.Azure.com:443")], "azure.ai.openai"),
        (&[(":authority", "proj.services.ai.azure.com")], "azure.ai.openai"),
        (&[(":authority", "gateway.internal"), ("api-key", "k")], "azure.ai.openai"),
        (&[(":authority", "api.groq.com"), ("authorization", "Bearer x")], "openai"),
    ];
    for (headers, provider) in cases {
        for path in ["/openai/v1/chat/completions", "/openai/v1/responses"] {
            let mut all = vec![(":path", path)];
            all.extend_from_slice(headers);
            let mut host = FakeHost::with_request_headers(&all);
            let filter = TokenAccounting::new(b"", &mut host).unwrap();
            let mut ex = filter.on_request_headers(&mut host);
            host.add_response_header(":status", "200");
            filter.on_response_headers(&mut host, &mut ex, true);
            assert_eq!(host.filter_state_str(fs::PROVIDER).as_deref(), Some(provider), "{path} {headers:?}");
        }
    }
}
