use llmobs_core::error_normalization::ErrorNormalization;
use llmobs_core::filter_state as fs;
use llmobs_core::response::End;
use llmobs_testkit::{chunkings, provider_fixtures, FakeHost, ProviderFixture};
use serde_json::Value;

fn cases() -> Vec<Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/errors/cases.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Runs one error case through the filter; the body arrives in `chunks`.
fn run(case: &Value, chunks: &[&[u8]], config: &str) -> (FakeHost, Option<Vec<u8>>) {
    let mut host = FakeHost::with_request_headers(&[(":path", case["path"].as_str().unwrap())]);
    host.set_property(
        &["response", "code_details"],
        case["code_details"].as_str().unwrap_or("via_upstream").as_bytes(),
    );
    host.set_property(&["xds", "route_name"], b"r");
    let filter = ErrorNormalization::new(config.as_bytes(), &mut host).unwrap();
    let mut ex = filter.on_request_headers(&mut host);
    host.add_response_header(":status", &case["status"].to_string());
    for (k, v) in case["headers"].as_object().unwrap() {
        host.add_response_header(k, v.as_str().unwrap());
    }
    let body_empty = chunks.iter().all(|c| c.is_empty());
    filter.on_response_headers(&mut host, &mut ex, body_empty);
    let mut replacement = None;
    for (i, chunk) in chunks.iter().enumerate() {
        if let Some(body) = filter.on_response_body(&mut host, &mut ex, chunk, i + 1 == chunks.len()) {
            replacement = Some(body);
        }
    }
    (host, replacement)
}

#[test]
fn every_documented_error_case_is_classified_as_its_fixture_says_under_every_chunk_split() {
    let cases = cases();
    assert!(cases.len() >= 60, "{}", cases.len());
    let mut mismatches = Vec::new();
    for case in &cases {
        let body = case["body"].as_str().unwrap().as_bytes();
        let want = &case["expected"];
        let clock_dependent = case["clock_dependent"].as_bool().unwrap_or(false);
        let splits = if body.len() > 4096 { vec![vec![body], body.chunks(7).collect()] } else { chunkings(body) };
        for chunks in splits {
            let (host, _) = run(case, &chunks, "");
            let got = (
                host.filter_state_str(fs::ERROR_TYPE),
                host.filter_state_str(fs::ERROR_RETRYABLE),
                host.filter_state_str(fs::ERROR_ORIGIN),
                host.filter_state_str(fs::RETRY_AFTER_MS),
                host.filter_state_str(fs::ERROR_PROVIDER_CODE),
            );
            let expected = (
                want["error_type"].as_str().map(str::to_string),
                Some(want["retryable"].as_bool().unwrap().to_string()),
                want["origin"].as_str().map(str::to_string),
                if clock_dependent { got.3.clone() } else { want["retry_after_ms"].as_u64().map(|v| v.to_string()) },
                want["provider_code"].as_str().map(str::to_string),
            );
            if got != expected {
                mismatches.push(format!("{}: got {got:?}, want {expected:?}", case["name"]));
                break;
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn every_error_is_counted_by_type_provider_origin_and_retryable() {
    let case = cases().into_iter().find(|c| c["name"] == "openai-429-insufficient-quota-with-retry-after").unwrap();
    let (host, _) = run(&case, &[case["body"].as_str().unwrap().as_bytes()], "");
    assert_eq!(
        host.counter(
            "llmobs.errors.error.type=quota_exhausted;.gen_ai.provider.name=openai;.origin=upstream;\
             .retryable=false;.synthetic=false;.prompt_version=unknown;"
        ),
        Some(1)
    );
    assert_eq!(host.filter_state_str(fs::ERROR_PROVIDER_CODE).as_deref(), Some("insufficient_quota"));
}

#[test]
fn errors_carry_the_prompt_version_label_token_accounting_decided_for_the_request() {
    let case = cases().into_iter().find(|c| c["name"] == "openai-429-insufficient-quota-with-retry-after").unwrap();
    let mut host = FakeHost::with_request_headers(&[(":path", case["path"].as_str().unwrap())]);
    host.set_property(&["response", "code_details"], b"via_upstream");
    host.set_property(&[fs::PROMPT_VERSION_LABEL], b"support-v7");
    let filter = ErrorNormalization::new(b"", &mut host).unwrap();
    let mut ex = filter.on_request_headers(&mut host);
    host.add_response_header(":status", "429");
    filter.on_response_headers(&mut host, &mut ex, false);
    filter.on_response_body(&mut host, &mut ex, case["body"].as_str().unwrap().as_bytes(), true);
    let counted = |host: &FakeHost, version: &str| {
        host.counter(&format!(
            "llmobs.errors.error.type=quota_exhausted;.gen_ai.provider.name=openai;.origin=upstream;\
             .retryable=false;.synthetic=false;.prompt_version={version};"
        ))
    };
    assert_eq!(counted(&host, "support-v7"), Some(1));
    assert_eq!(counted(&host, "unknown"), None);
}

#[test]
fn class_headers_are_set_only_when_the_status_and_headers_decide_the_class() {
    let config = r#"{"response_headers": {"error_type": "x-error-type", "retryable": "x-retryable", "retry_after_ms": "x-retry-after-ms"}}"#;
    let all = cases();
    let find = |name: &str| all.iter().find(|c| c["name"] == name).unwrap().clone();
    // An OpenAI 429 may be a rate limit or an exhausted quota: only the body tells.
    let quota = find("openai-429-insufficient-quota-with-retry-after");
    let (host, _) = run(&quota, &[quota["body"].as_str().unwrap().as_bytes()], config);
    assert_eq!(host.response_header_str("x-error-type"), None);
    assert!(host.response_header_str("x-retry-after-ms").is_some());
    // A 529 from Anthropic is an overload whatever the body says.
    let overloaded = all.iter().find(|c| c["status"] == 529).unwrap();
    let (host, _) = run(overloaded, &[overloaded["body"].as_str().unwrap().as_bytes()], config);
    assert_eq!(host.response_header_str("x-error-type"), Some("overloaded"));
    assert_eq!(host.response_header_str("x-retryable"), Some("true"));
    // A 503's body may say the provider is overloaded: no class header before the body is read,
    // while the log has the exact class. Without a body the status decides.
    let engine = find("openai-503-engine-overloaded");
    let (host, _) = run(&engine, &[engine["body"].as_str().unwrap().as_bytes()], config);
    assert_eq!(host.response_header_str("x-error-type"), None);
    assert_eq!(host.response_header_str("x-retryable"), None);
    assert_eq!(host.filter_state_str(fs::ERROR_TYPE).as_deref(), Some("overloaded"));
    let (host, _) = run(&engine, &[b""], config);
    assert_eq!(host.response_header_str("x-error-type"), Some("upstream_unavailable"));
    // A 504 is a timeout whatever its body says.
    let deadline = find("gemini-504-deadline-exceeded");
    let (host, _) = run(&deadline, &[deadline["body"].as_str().unwrap().as_bytes()], config);
    assert_eq!(host.response_header_str("x-error-type"), Some("timeout"));
}

#[test]
fn the_uniform_body_keeps_the_providers_message_and_adds_the_class() {
    let all = cases();
    let quota = all.iter().find(|c| c["name"] == "openai-429-insufficient-quota-with-retry-after").unwrap();
    let body = quota["body"].as_str().unwrap().as_bytes();
    let (host, replacement) = run(quota, &[body], r#"{"uniform_error_body_routes": ["r"]}"#);
    let uniform: Value = serde_json::from_slice(&replacement.unwrap()).unwrap();
    let original: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(uniform["error"]["message"], original["error"]["message"]);
    assert_eq!(uniform["error"]["type"], "quota_exhausted");
    assert_eq!(uniform["error"]["retryable"], false);
    assert_eq!(uniform["error"]["provider"], "openai");
    assert_eq!(uniform["error"]["origin"], "upstream");
    assert_eq!(host.response_header_str("content-type"), Some("application/json"));
    assert_eq!(host.response_header_str("content-length"), None);
}

#[test]
fn a_gateway_failure_gets_a_structured_degraded_mode_reply() {
    let all = cases();
    let timeout = all.iter().find(|c| c["provider"] == "envoy" && c["status"] == 504).unwrap();
    let (_, replacement) =
        run(timeout, &[timeout["body"].as_str().unwrap().as_bytes()], r#"{"uniform_error_body_routes": ["*"]}"#);
    let reply: Value = serde_json::from_slice(&replacement.unwrap()).unwrap();
    assert_eq!(reply["error"]["type"], "timeout");
    assert_eq!(reply["error"]["origin"], "gateway");
    assert_eq!(reply["error"]["retryable"], true);
    assert!(reply["error"]["message"].as_str().unwrap().contains("gateway"));
}

#[test]
fn routes_not_listed_keep_their_error_body() {
    let case = &cases()[0];
    let (_, replacement) =
        run(case, &[case["body"].as_str().unwrap().as_bytes()], r#"{"uniform_error_body_routes": ["other"]}"#);
    assert_eq!(replacement, None);
}

/// Runs one provider fixture through error normalization, its response in `chunks`.
fn run_fixture(fixture: &ProviderFixture, chunks: &[&[u8]]) -> FakeHost {
    let mut headers: Vec<(&str, &str)> = vec![(":path", &fixture.path)];
    headers.extend(fixture.request_headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut host = FakeHost::with_request_headers(&headers);
    host.set_property(&["response", "code_details"], b"via_upstream");
    let filter = ErrorNormalization::new(b"", &mut host).unwrap();
    let mut ex = filter.on_request_headers(&mut host);
    host.add_response_header(":status", &fixture.status.to_string());
    for (k, v) in &fixture.response_headers {
        host.add_response_header(k, v);
    }
    filter.on_response_headers(&mut host, &mut ex, false);
    for chunk in chunks {
        assert_eq!(filter.on_response_body(&mut host, &mut ex, chunk, false), None);
    }
    filter.on_response_body(&mut host, &mut ex, b"", true);
    host
}

/// Every provider fixture that fails (in-band errors and cut streams after a 200, error statuses)
/// names its class, retryability and provider code in `expected.error`; the others are no error.
#[test]
fn every_provider_fixture_is_classified_as_it_expects_under_every_chunk_split() {
    let mut failing = 0;
    for fixture in provider_fixtures() {
        let want = &fixture.meta["expected"]["error"];
        let expected = (
            want["type"].as_str().map(str::to_string),
            want["retryable"].as_bool().map(|r| r.to_string()),
            want["provider_code"].as_str().map(str::to_string),
        );
        failing += usize::from(expected.0.is_some());
        for chunks in chunkings(&fixture.response_body) {
            let host = run_fixture(&fixture, &chunks);
            let got = (
                host.filter_state_str(fs::ERROR_TYPE),
                host.filter_state_str(fs::ERROR_RETRYABLE),
                host.filter_state_str(fs::ERROR_PROVIDER_CODE),
            );
            assert_eq!(got, expected, "{} in {} chunks", fixture.name, chunks.len());
            let after_success = fixture.status < 400 && expected.0.is_some();
            assert_eq!(host.filter_state_str(fs::ERROR).is_some(), after_success, "{}", fixture.name);
        }
    }
    assert!(failing >= 12, "only {failing} failing fixtures");
}

/// In-band failures are classified by their own code and type, not as `internal` by default.
#[test]
fn an_error_inside_a_stream_is_classified_by_its_own_code_and_type() {
    let expected = [
        ("openai-chat-stream-in-band-error", "internal"),
        ("openai-responses-stream-failed", "internal"),
        ("anthropic-messages-stream-overloaded-error", "overloaded"),
        ("bedrock-converse-stream-exception", "internal"),
        ("openrouter-chat-stream-error-with-usage", "context_length_exceeded"),
        ("groq-chat-stream-tool-use-failed", "bad_request"),
        ("openai-chat-stream-in-band-rate-limit", "rate_limit"),
    ];
    let fixtures = provider_fixtures();
    for (name, error_type) in expected {
        let fixture = fixtures.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("{name}"));
        let host = run_fixture(fixture, &[&fixture.response_body]);
        assert_eq!(host.filter_state_str(fs::ERROR_TYPE).as_deref(), Some(error_type), "{name}");
        assert_eq!(host.filter_state_str(fs::ERROR).as_deref(), Some("true"), "{name}");
    }
}

#[test]
fn a_successful_stream_is_not_an_error() {
    let fixture = provider_fixtures().into_iter().find(|f| f.name == "anthropic-messages-stream").unwrap();
    let mut host = FakeHost::with_request_headers(&[(":path", &fixture.path)]);
    let filter = ErrorNormalization::new(b"", &mut host).unwrap();
    let mut ex = filter.on_request_headers(&mut host);
    host.add_response_header(":status", "200");
    host.add_response_header("content-type", "text/event-stream");
    filter.on_response_headers(&mut host, &mut ex, false);
    filter.on_response_body(&mut host, &mut ex, &fixture.response_body, true);
    filter.finish(&mut host, &mut ex, End::Aborted);
    assert_eq!(host.filter_state_str(fs::ERROR_TYPE), None);
    assert_eq!(host.counter_sum("llmobs.errors"), 0);
}

#[test]
fn a_stream_cut_by_envoys_timeout_is_a_gateway_timeout() {
    let fixture = provider_fixtures().into_iter().find(|f| f.name == "openai-chat-stream-usage").unwrap();
    let mut host = FakeHost::with_request_headers(&[(":path", "/v1/chat/completions")]);
    host.set_property(&["response", "code_details"], b"response_timeout");
    let filter = ErrorNormalization::new(b"", &mut host).unwrap();
    let mut ex = filter.on_request_headers(&mut host);
    host.add_response_header(":status", "200");
    host.add_response_header("content-type", "text/event-stream");
    filter.on_response_headers(&mut host, &mut ex, false);
    filter.on_response_body(&mut host, &mut ex, &fixture.response_body[..100], false);
    filter.finish(&mut host, &mut ex, End::Aborted);
    assert_eq!(host.filter_state_str(fs::ERROR_TYPE).as_deref(), Some("timeout"));
    assert_eq!(host.filter_state_str(fs::ERROR_ORIGIN).as_deref(), Some("gateway"));
}
