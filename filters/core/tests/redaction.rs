use llmobs_core::filter_state as fs;
use llmobs_core::host::Host;
use llmobs_core::redaction::{PiiRedaction, RequestVerdict};
use llmobs_testkit::{chunkings, FakeHost};
use serde_json::{json, Value};

/// 32 bytes, base64: what `openssl rand -base64 32` would put in the VM environment.
const KEY_B64: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const CARD: &str = "4111 1111 1111 1111";
const EMAIL: &str = "jane.canary@example.com";
const OPENAI_KEY: &str = "sk-proj-Zq8x2Lw9Rt4Yv7Bn3Mk6Pd1Hs5Jf0Gc8Xa2We4Qr7Ty9Ui3Op6As1Df5Gh8Jk2Lz4";
const SSN: &str = "SSN 536-22-8714";

fn host(path: &str) -> FakeHost {
    let mut host = FakeHost::with_request_headers(&[(":path", path), ("content-type", "application/json")]);
    host.env.insert("LLMOBS_PII_KEY".into(), KEY_B64.as_bytes().to_vec());
    host.set_property(&["plugin_name"], b"pii");
    host
}

fn filter(host: &mut FakeHost, config: Value) -> PiiRedaction {
    PiiRedaction::new(config.to_string().as_bytes(), host).unwrap()
}

fn chat(text: &str) -> Vec<u8> {
    json!({"model": "gpt-4o", "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": text}
    ]})
    .to_string()
    .into_bytes()
}

/// One request through the filter in traffic mode; returns the verdict and the host.
fn request(config: Value, path: &str, body: &[u8]) -> (RequestVerdict, FakeHost) {
    let mut host = host(path);
    let filter = filter(&mut host, config);
    let mut ex = filter.on_request_headers(&mut host);
    assert!(ex.buffers_request());
    let verdict = filter.on_request_body(&mut host, &mut ex, body);
    filter.finish(&mut host, &mut ex);
    (verdict, host)
}

fn replaced(verdict: RequestVerdict) -> Value {
    match verdict {
        RequestVerdict::Replace(bytes) => serde_json::from_slice(&bytes).unwrap(),
        other => panic!("expected a rewritten body, got {other:?}"),
    }
}

#[test]
fn traffic_mode_redacts_request_text_and_keeps_every_other_field() {
    let body = chat(&format!("card {CARD}, mail {EMAIL}, \"quoted\" \\ backslash"));
    let (verdict, host) = request(json!({"mode": "traffic"}), "/v1/chat/completions", &body);
    let out = replaced(verdict);
    let text = out["messages"][1]["content"].as_str().unwrap();
    assert_eq!(text, "card [PAYMENT_CARD], mail [EMAIL], \"quoted\" \\ backslash");
    assert_eq!(out["model"], "gpt-4o");
    assert_eq!(out["messages"][0]["content"], "You are a helpful assistant.");
    assert_eq!(host.filter_state_str(fs::PII_OUTCOME).as_deref(), Some("redacted"));
    assert_eq!(host.filter_state_str(fs::PII_DETECTIONS).as_deref(), Some("request:email=1,request:payment_card=1"));
    assert_eq!(host.counter("llmobs.pii.detections.entity=email;.action=redact;.direction=request;"), Some(1));
    assert!(host.request_header("content-length").is_none(), "a rewritten body has a new length");
    assert_eq!(host.histogram("llmobs.pii.inspect_us.direction=request;").len(), 1, "inspection time is recorded");
}

#[test]
fn phone_regions_choose_which_national_writings_are_redacted() {
    let body = chat("Ruf an: 044 668 18 00 oder +41 44 668 18 01");
    let (verdict, _) = request(json!({"mode": "traffic"}), "/v1/chat/completions", &body);
    let out = replaced(verdict);
    assert_eq!(out["messages"][1]["content"], "Ruf an: [PHONE] oder [PHONE]");
    let (verdict, _) = request(json!({"mode": "traffic", "phone_regions": ["US"]}), "/v1/chat/completions", &body);
    let out = replaced(verdict);
    assert_eq!(out["messages"][1]["content"], "Ruf an: 044 668 18 00 oder [PHONE]");
}

#[test]
fn phone_bare_runs_off_leaves_bare_digit_runs_alone() {
    let body = chat("Sure, it is 0328690788, or order 0328690789");
    let (verdict, _) = request(json!({"mode": "traffic"}), "/v1/chat/completions", &body);
    assert_eq!(replaced(verdict)["messages"][1]["content"], "Sure, it is [PHONE], or order 0328690789");
    let (verdict, _) = request(json!({"mode": "traffic", "phone_bare_runs": false}), "/v1/chat/completions", &body);
    assert!(matches!(verdict, RequestVerdict::Forward), "nothing to redact: {verdict:?}");
}

#[test]
fn pseudonyms_are_keyed_stable_and_carry_the_key_id() {
    let config = json!({"mode": "traffic", "default_action": "pseudonymize", "pseudonym_key": {"env": "LLMOBS_PII_KEY", "id": "k1"}});
    let (a, _) = request(config.clone(), "/v1/chat/completions", &chat(&format!("mail {EMAIL}")));
    let (b, _) = request(config, "/v1/chat/completions", &chat(&format!("again {EMAIL}")));
    let a = replaced(a)["messages"][1]["content"].as_str().unwrap().to_string();
    let b = replaced(b)["messages"][1]["content"].as_str().unwrap().to_string();
    let pseudonym = a.strip_prefix("mail ").unwrap();
    assert!(pseudonym.starts_with("EMAIL_k1_") && pseudonym.len() == "EMAIL_k1_".len() + 16, "{pseudonym}");
    assert_eq!(b, format!("again {pseudonym}"));
}

#[test]
fn block_refuses_the_request_with_a_structured_error_naming_only_the_entity() {
    let config = json!({"mode": "traffic", "entities": {"openai_key": "block"}});
    let (verdict, host) = request(config, "/v1/chat/completions", &chat(&format!("my key is {OPENAI_KEY}")));
    let RequestVerdict::Reject { status, body } = verdict else { panic!("not refused") };
    assert_eq!(status, 400);
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["error"]["code"], "pii_blocked");
    assert_eq!(doc["llmobs"]["entity"], "openai_key");
    assert!(!String::from_utf8_lossy(&body).contains(OPENAI_KEY));
    assert_eq!(host.filter_state_str(fs::PII_OUTCOME).as_deref(), Some("blocked"));
    assert_eq!(host.counter("llmobs.pii.blocked.reason=entity;"), Some(1));
}

#[test]
fn anthropic_block_errors_use_anthropics_error_shape() {
    let body = json!({"model": "claude", "max_tokens": 5, "system": "s", "messages": [{"role": "user", "content": [{"type": "text", "text": EMAIL}]}]});
    let config = json!({"mode": "traffic", "entities": {"email": "block"}});
    let (verdict, _) = request(config, "/v1/messages", body.to_string().as_bytes());
    let RequestVerdict::Reject { body, .. } = verdict else { panic!("not refused") };
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["type"], "error");
    assert_eq!(doc["error"]["type"], "invalid_request_error");
}

#[test]
fn telemetry_mode_never_changes_or_refuses_a_request_but_counts_what_it_saw() {
    let mut host = host("/v1/chat/completions");
    let filter = filter(&mut host, json!({"mode": "telemetry", "entities": {"email": "block"}}));
    let mut ex = filter.on_request_headers(&mut host);
    assert!(!ex.buffers_request() && ex.observes_request());
    let body = chat(&format!("mail {EMAIL} card {CARD}"));
    for chunk in body.chunks(5) {
        filter.on_request_chunk(&mut ex, chunk);
    }
    filter.on_request_end(&mut host, &mut ex);
    filter.finish(&mut host, &mut ex);
    assert_eq!(host.filter_state_str(fs::PII_OUTCOME).as_deref(), Some("detected"));
    assert_eq!(host.counter("llmobs.pii.detections.entity=email;.action=block;.direction=request;"), Some(1));
    assert!(host.local_response.is_none());
}

#[test]
fn blocked_fields_are_removed_before_anything_is_scanned() {
    let body = json!({"model": "m", "user": EMAIL, "metadata": {"user_id": "u-77"}, "messages": [{"role": "user", "content": "hi", "name": "jane"}]});
    let config = json!({"mode": "traffic", "blocked_fields": [{"path": "$.user"}, {"path": "$.metadata.user_id", "action": "replace"}, {"path": "$.messages[*].name"}]});
    let (verdict, host) = request(config, "/v1/chat/completions", body.to_string().as_bytes());
    let out = replaced(verdict);
    assert!(out.get("user").is_none());
    assert_eq!(out["metadata"]["user_id"], "[REMOVED]");
    assert!(out["messages"][0].get("name").is_none());
    assert!(host.filter_state_str(fs::PII_DETECTIONS).is_none(), "removed fields are never scanned");
    assert_eq!(host.counter("llmobs.pii.fields_removed"), Some(3));
}

#[test]
fn custom_rules_find_security_defined_entities() {
    let config = json!({"mode": "traffic", "custom_rules": [{"entity": "employee_id", "pattern": "EMP-[0-9]{6}", "action": "redact"}]});
    let (verdict, host) =
        request(config, "/v1/responses", json!({"model": "m", "input": "ask EMP-004211 now"}).to_string().as_bytes());
    assert_eq!(replaced(verdict)["input"], "ask [EMPLOYEE_ID] now");
    assert_eq!(host.counter("llmobs.pii.detections.entity=employee_id;.action=redact;.direction=request;"), Some(1));
}

#[test]
fn every_provider_schema_is_rewritten_where_its_text_lives() {
    let cases = [
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "assistant", "content": null, "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": format!("{{\"to\":\"{EMAIL}\"}}")}}]}, {"role": "tool", "tool_call_id": "c", "content": EMAIL}]}),
        ),
        (
            "/v1/responses",
            json!({"instructions": EMAIL, "input": [{"role": "user", "content": [{"type": "input_text", "text": EMAIL}]}]}),
        ),
        (
            "/v1/messages",
            json!({"system": [{"type": "text", "text": EMAIL}], "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": EMAIL}]}]}),
        ),
        (
            "/v1beta/models/gemini-2.0-flash:generateContent",
            json!({"systemInstruction": {"parts": [{"text": EMAIL}]}, "contents": [{"role": "user", "parts": [{"text": EMAIL}]}]}),
        ),
    ];
    for (path, body) in cases {
        let (verdict, _) = request(json!({"mode": "traffic"}), path, body.to_string().as_bytes());
        let out = replaced(verdict).to_string();
        assert!(!out.contains("jane.canary"), "{path}: {out}");
        assert!(out.contains("[EMAIL]"), "{path}: {out}");
    }
}

#[test]
fn a_body_that_is_not_json_passes_unchanged_and_is_counted() {
    let (verdict, host) = request(json!({"mode": "traffic"}), "/v1/chat/completions", b"not json {");
    assert_eq!(verdict, RequestVerdict::Forward);
    assert_eq!(host.counter("llmobs.pii.skipped.direction=request;.reason=not_json;"), Some(1));
    assert_eq!(host.filter_state_str(fs::PII_OUTCOME).as_deref(), Some("skipped"));
}

#[test]
fn over_limit_requests_follow_the_named_policy() {
    for (policy, want_status) in [("block", Some(413)), ("pass", None)] {
        let mut host = host("/v1/chat/completions");
        let filter = filter(&mut host, json!({"mode": "traffic", "max_inspected_bytes": 100, "over_limit": policy}));
        let mut ex = filter.on_request_headers(&mut host);
        let verdict = filter.on_request_over_limit(&mut host, &mut ex);
        filter.finish(&mut host, &mut ex);
        match (verdict, want_status) {
            (RequestVerdict::Reject { status, .. }, Some(want)) => assert_eq!(status, want),
            (RequestVerdict::Forward, None) => {}
            (other, _) => panic!("{policy}: {other:?}"),
        }
        assert_eq!(host.counter("llmobs.pii.skipped.direction=request;.reason=over_limit;"), Some(1));
    }
}

#[test]
fn signed_bedrock_requests_are_never_rewritten_unless_signing_happens_after_the_filter() {
    let path = "/model/anthropic.claude-3-haiku/converse";
    let body = json!({"messages": [{"role": "user", "content": [{"text": EMAIL}]}]}).to_string();
    for (signed_after, rewrites) in [(false, false), (true, true)] {
        let mut host = host(path);
        host.request_headers.push(("authorization".into(), b"AWS4-HMAC-SHA256 Credential=x".to_vec()));
        let filter = filter(&mut host, json!({"mode": "traffic", "signed_after_filter": signed_after}));
        let mut ex = filter.on_request_headers(&mut host);
        assert_eq!(ex.buffers_request(), rewrites);
        if !rewrites {
            filter.on_request_chunk(&mut ex, body.as_bytes());
            filter.on_request_end(&mut host, &mut ex);
            filter.finish(&mut host, &mut ex);
            assert_eq!(host.counter("llmobs.pii.skipped.direction=request;.reason=signed;"), Some(1));
            assert_eq!(host.counter("llmobs.pii.detections.entity=email;.action=redact;.direction=request;"), Some(1));
        }
    }
}

#[test]
fn the_prompt_fingerprint_is_keyed_whitespace_normalized_and_masks_dynamic_parts() {
    let config = json!({"fingerprint": {"enabled": true, "mask_patterns": ["[0-9]{4}-[0-9]{2}-[0-9]{2}"]}, "entities": {"email": "pseudonymize"}, "pseudonym_key": {"env": "LLMOBS_PII_KEY", "id": "k1"}});
    let fp = |system: &str| {
        let body = json!({"model": "m", "messages": [{"role": "system", "content": system}, {"role": "user", "content": "hi"}]});
        let mut host = host("/v1/chat/completions");
        let filter = filter(&mut host, config.clone());
        let mut ex = filter.on_request_headers(&mut host);
        filter.on_request_chunk(&mut ex, body.to_string().as_bytes());
        filter.on_request_end(&mut host, &mut ex);
        filter.finish(&mut host, &mut ex);
        host.filter_state_str(fs::PROMPT_FINGERPRINT).unwrap()
    };
    let a = fp("You are Ada.  Today is 2026-11-27.\nBe brief.");
    assert!(a.starts_with("k1:") && a.len() == 3 + 16, "{a}");
    assert_eq!(a, fp("You are Ada. Today is 2025-01-02. Be brief."));
    assert_ne!(a, fp("You are Bob. Today is 2026-11-27. Be brief."));
    // PII inside the prompt is typed, not pseudonymized: one prompt version, one fingerprint.
    assert_eq!(fp("Write to a@example.com today."), fp("Write to b@example.org today."));
    assert!(!a.contains("Ada"));
}

#[test]
fn content_capture_is_opt_in_sampled_only_capped_and_scrubbed() {
    let config = json!({"mode": "both", "entities": {"email": "count"}, "capture": {"parts": ["last_user", "system"], "max_bytes": 40}});
    let run = |sampled: bool| {
        let mut host = host("/v1/chat/completions");
        host.set_property(&[fs::SAMPLED], if sampled { b"true" } else { b"false" });
        let filter = filter(&mut host, config.clone());
        let mut ex = filter.on_request_headers(&mut host);
        let verdict =
            filter.on_request_body(&mut host, &mut ex, &chat(&format!("write to {EMAIL} about the café order please")));
        filter.finish(&mut host, &mut ex);
        (verdict, host)
    };
    let (verdict, host) = run(true);
    assert_eq!(verdict, RequestVerdict::Forward, "count-only leaves the wire unchanged");
    let captured = host.filter_state_str(fs::CAPTURE_LAST_USER).unwrap();
    assert!(captured.starts_with("write to [EMAIL] about"), "{captured}");
    assert!(captured.len() <= 40);
    assert_eq!(host.filter_state_str(fs::CAPTURE_SYSTEM).as_deref(), Some("You are a helpful assistant."));
    let (_, host) = run(false);
    assert!(host.filter_state_str(fs::CAPTURE_LAST_USER).is_none());
}

#[test]
fn json_responses_are_redacted_and_echoed_pseudonyms_restored_for_the_client() {
    let config = json!({"mode": "traffic", "entities": {"email": "pseudonymize"}, "restore_pseudonyms": true, "pseudonym_key": {"env": "LLMOBS_PII_KEY", "id": "k1"}});
    let mut host = host("/v1/chat/completions");
    let filter = filter(&mut host, config);
    let mut ex = filter.on_request_headers(&mut host);
    let sent = replaced(filter.on_request_body(&mut host, &mut ex, &chat(&format!("mail {EMAIL}"))));
    let pseudonym = sent["messages"][1]["content"].as_str().unwrap().strip_prefix("mail ").unwrap().to_string();
    host.add_response_header(":status", "200");
    host.add_response_header("content-type", "application/json");
    host.add_response_header("content-length", "999");
    filter.on_response_headers(&mut host, &mut ex);
    assert!(ex.buffers_response());
    assert!(host.response_header("content-length").is_none());
    let response = json!({"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("Sent to {pseudonym}; card {CARD}.")}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 1}});
    let out = filter.on_response_body(&mut host, &mut ex, response.to_string().as_bytes()).unwrap();
    let out: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(out["choices"][0]["message"]["content"], format!("Sent to {EMAIL}; card [PAYMENT_CARD]."));
    assert_eq!(out["usage"]["prompt_tokens"], 1);
    filter.finish(&mut host, &mut ex);
    assert_eq!(host.counter("llmobs.pii.restored"), Some(1));
    assert!(!host.all_sinks().contains(EMAIL));
}

fn sse(events: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        out.extend_from_slice(format!("data: {e}\n\n").as_bytes());
    }
    out.extend_from_slice(b"data: [DONE]\n\n");
    out
}

/// An OpenAI chat stream that sends `text` one character per event.
fn char_per_event(text: &str) -> Vec<u8> {
    let mut events = vec![json!({"id": "c", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})];
    for ch in text.chars() {
        events.push(json!({"id": "c", "choices": [{"index": 0, "delta": {"content": ch.to_string()}}]}));
    }
    events.push(json!({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}));
    sse(&events)
}

fn stream_text(bytes: &[u8]) -> String {
    let mut text = String::new();
    for line in String::from_utf8_lossy(bytes).lines() {
        let Some(data) = line.strip_prefix("data: ") else { continue };
        let Ok(v) = serde_json::from_str::<Value>(data) else { continue };
        if let Some(s) = v["choices"][0]["delta"]["content"].as_str() {
            text.push_str(s);
        }
    }
    text
}

#[test]
fn a_card_and_an_email_streamed_one_character_per_event_never_reach_the_client_under_any_split() {
    let body = char_per_event(&format!("Your card {CARD} is on file; write to {EMAIL} today."));
    let mut host = host("/v1/chat/completions");
    let filter = filter(&mut host, json!({"mode": "traffic", "capture": {"parts": ["completion"]}}));
    let splits = chunkings(&body);
    let mut first: Option<Vec<u8>> = None;
    for chunks in splits.iter().step_by(17) {
        host.next_request(&[(":path", "/v1/chat/completions")]);
        let mut ex = filter.on_request_headers(&mut host);
        filter.on_request_body(&mut host, &mut ex, &chat("hi"));
        host.add_response_header(":status", "200");
        host.add_response_header("content-type", "text/event-stream");
        host.add_response_header("content-length", &body.len().to_string());
        filter.on_response_headers(&mut host, &mut ex);
        assert!(ex.rewrites_stream());
        assert!(host.response_header("content-length").is_none(), "a rewritten stream has a new length");
        let mut out = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            out.extend(filter.on_response_chunk(&mut host, &mut ex, chunk, i + 1 == chunks.len()).unwrap());
        }
        filter.finish(&mut host, &mut ex);
        let text = stream_text(&out);
        assert_eq!(text, "Your card [PAYMENT_CARD] is on file; write to [EMAIL] today.");
        assert!(!String::from_utf8_lossy(&out).contains("jane.canary"));
        assert_eq!(
            host.filter_state_str(fs::PII_DETECTIONS).as_deref(),
            Some("response:email=1,response:payment_card=1")
        );
        match &first {
            None => first = Some(out),
            Some(f) => assert_eq!(f, &out, "every chunk split gives the same bytes"),
        }
    }
}

#[test]
fn a_stream_event_too_big_to_hold_is_counted_as_skipped_and_the_events_after_it_are_redacted() {
    let big = json!({"id": "c", "choices": [{"index": 0, "delta": {"content": "a".repeat(2000)}}]});
    let after = json!({"id": "c", "choices": [{"index": 0, "delta": {"content": format!(" write to {EMAIL}.")}}]});
    let done = json!({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
    let body = sse(&[big, after, done]);
    let mut host = host("/v1/chat/completions");
    let filter = filter(&mut host, json!({"mode": "traffic", "max_inspected_bytes": 1024}));
    let mut ex = filter.on_request_headers(&mut host);
    filter.on_request_body(&mut host, &mut ex, &chat("hi"));
    host.add_response_header(":status", "200");
    host.add_response_header("content-type", "text/event-stream");
    filter.on_response_headers(&mut host, &mut ex);
    let out = filter.on_response_chunk(&mut host, &mut ex, &body, true).unwrap();
    filter.finish(&mut host, &mut ex);
    assert!(!String::from_utf8_lossy(&out).contains("jane.canary"));
    assert!(stream_text(&out).ends_with(" write to [EMAIL]."));
    assert_eq!(host.counter("llmobs.pii.skipped.direction=response;.reason=oversized_event;"), Some(1));
    assert_eq!(host.filter_state_str(fs::PII_OUTCOME).as_deref(), Some("redacted"));
}

#[test]
fn telemetry_mode_streams_pass_byte_for_byte_and_the_captured_completion_is_scrubbed() {
    let body = char_per_event(&format!("mail {EMAIL} now"));
    let mut host = host("/v1/chat/completions");
    host.set_property(&[fs::SAMPLED], b"true");
    let filter = filter(&mut host, json!({"mode": "telemetry", "capture": {"parts": ["completion"]}}));
    let mut ex = filter.on_request_headers(&mut host);
    host.add_response_header(":status", "200");
    host.add_response_header("content-type", "text/event-stream");
    filter.on_response_headers(&mut host, &mut ex);
    assert!(!ex.rewrites_stream());
    for chunk in body.chunks(9) {
        assert_eq!(filter.on_response_chunk(&mut host, &mut ex, chunk, false), None);
    }
    filter.on_response_chunk(&mut host, &mut ex, b"", true);
    filter.finish(&mut host, &mut ex);
    assert_eq!(host.filter_state_str(fs::CAPTURE_COMPLETION).as_deref(), Some("mail [EMAIL] now"));
    assert_eq!(host.counter("llmobs.pii.detections.entity=email;.action=redact;.direction=response;"), Some(1));
}

#[test]
fn the_rule_set_gauge_names_the_active_version_and_zeroes_the_previous_one() {
    let mut host = host("/v1/chat/completions");
    let a = filter(&mut host, json!({"rule_set_version": "2026-11-01"}));
    let b = filter(&mut host, json!({"rule_set_version": "2026-11-27", "entities": {"email": "count"}}));
    let gauge = |host: &FakeHost, v: &str, hash: &str| {
        host.counter(&format!("llmobs.pii.rule_set.plugin=pii;.rule_set_version={v};.rule_set_hash={hash};"))
    };
    let (va, ha) = a.rule_set().split_once('@').unwrap();
    let (vb, hb) = b.rule_set().split_once('@').unwrap();
    assert_eq!(gauge(&host, va, ha), Some(0));
    assert_eq!(gauge(&host, vb, hb), Some(1));
    assert_eq!(hb.len(), 12);
}

#[test]
fn configuration_errors_name_the_field_and_never_quote_the_secret_or_pattern() {
    let mut host = host("/");
    let cases = [
        (json!({"entities": {"emial": "redact"}}), "entities.emial"),
        (json!({"phone_regions": ["CH", "XX"]}), "phone_regions"),
        (json!({"default_action": "pseudonymize"}), "pseudonym_key"),
        (json!({"fingerprint": {"enabled": true}}), "pseudonym_key"),
        (
            json!({"custom_rules": [{"entity": "x", "pattern": "(?=secretlookahead)", "action": "redact"}]}),
            "custom_rules[0].pattern",
        ),
        (json!({"blocked_fields": [{"path": "user"}]}), "blocked_fields[0].path"),
        (json!({"restore_pseudonyms": true}), "restore_pseudonyms"),
        (
            json!({"default_action": "pseudonymize", "pseudonym_key": {"env": "MISSING", "id": "k1"}}),
            "pseudonym_key.env",
        ),
    ];
    for (config, field) in cases {
        let err = PiiRedaction::new(config.to_string().as_bytes(), &mut host).unwrap_err();
        assert_eq!(err.field, field, "{config}");
        assert!(!err.to_string().contains("secretlookahead"));
    }
    host.env.insert("SHORT".into(), b"c2hvcnQ=".to_vec());
    let err = PiiRedaction::new(
        json!({"default_action": "pseudonymize", "pseudonym_key": {"env": "SHORT", "id": "k1"}}).to_string().as_bytes(),
        &mut host,
    )
    .unwrap_err();
    assert_eq!(err.field, "pseudonym_key.key");
    assert!(!err.to_string().contains("c2hvcnQ") && !err.to_string().contains("short"));
}

#[test]
fn every_configuration_error_is_reported_at_once_each_with_its_own_cause() {
    let mut host = host("/");
    let config = json!({
        "entities": {"emial": "redact", "employee_id": "block"},
        "custom_rules": [
            {"entity": "email", "pattern": "x@y", "action": "redact"},
            {"entity": "employee_id", "pattern": "TKT-[0-9{6}", "action": "redact"},
            {"entity": "Bad-Name", "pattern": "(?=x)y", "action": "redact"},
        ],
        "blocked_fields": [{"path": "user"}],
        "restore_pseudonyms": true,
    });
    let err = PiiRedaction::new(config.to_string().as_bytes(), &mut host).unwrap_err();
    let all: Vec<(String, String)> = err.clone().into_all().into_iter().map(|e| (e.field, e.reason)).collect();
    let fields: Vec<&str> = all.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        [
            "entities.emial",
            "entities.employee_id",
            "custom_rules[0].entity",
            "custom_rules[2].entity",
            "restore_pseudonyms",
            "custom_rules[1].pattern",
            "custom_rules[2].pattern",
            "blocked_fields[0].path",
        ]
    );
    let reason = |field: &str| all.iter().find(|(f, _)| f == field).map(|(_, r)| r.clone()).unwrap();
    assert!(reason("entities.emial").contains("not a built-in entity"));
    assert!(reason("entities.employee_id").contains("custom rule's entity"));
    assert!(reason("custom_rules[0].entity").contains("built-in entity's name"));
    assert!(reason("custom_rules[2].entity").contains("a-z, 0-9"));
    assert!(reason("custom_rules[1].pattern").starts_with("regex syntax error at character 5"));
    assert!(reason("custom_rules[2].pattern").starts_with("not a linear-time construct"));
    // The filter logs all of them in its one line.
    let line = err.to_string();
    assert!(line.starts_with("invalid configuration: field `entities.emial`"), "{line}");
    assert!(line.contains("; field `blocked_fields[0].path`: "), "{line}");
    assert!(line.ends_with(" (8 errors)"), "{line}");
}

#[test]
fn structural_errors_are_all_reported_not_only_the_first() {
    let mut host = host("/");
    let config = json!({"mode": "trafic", "capture": {"max_bytez": 3}, "max_inspected_bytes": "big"});
    let err = PiiRedaction::new(config.to_string().as_bytes(), &mut host).unwrap_err();
    let fields: Vec<String> = err.into_all().into_iter().map(|e| e.field).collect();
    assert_eq!(fields, ["mode", "capture.max_bytez", "max_inspected_bytes"]);
}

#[test]
fn the_rule_set_hash_is_the_gauges_label_whatever_the_formatting() {
    let mut host = host("/");
    let compact =
        br#"{"rule_set_version":"v1","custom_rules":[{"entity":"e","pattern":"E-[0-9]+","action":"redact"}]}"#;
    let spaced = b"{\n  \"custom_rules\": [ {\"action\": \"redact\", \"pattern\": \"E-[0-9]+\", \"entity\": \"e\"} ],\n  \"rule_set_version\": \"v1\" }";
    let pii = PiiRedaction::new(compact, &mut host).unwrap();
    let hash = llmobs_core::redaction::rule_set_hash(compact);
    assert_eq!(pii.rule_set(), format!("v1@{hash}"));
    assert_eq!(llmobs_core::redaction::rule_set_hash(spaced), hash);
    assert_eq!(hash.len(), 12);
    assert!(host.metric_names("llmobs.pii.rule_set").iter().any(|n| n.contains(&hash)));
}

#[test]
fn no_canary_reaches_any_sink_in_any_mode() {
    let canaries = [CARD, EMAIL, OPENAI_KEY, "536-22-8714"];
    let text = format!("{CARD} {EMAIL} {OPENAI_KEY} {SSN}");
    for mode in ["telemetry", "traffic", "both"] {
        for action in ["redact", "pseudonymize", "count", "block"] {
            let config = json!({"mode": mode, "default_action": action, "pseudonym_key": {"env": "LLMOBS_PII_KEY", "id": "k1"}, "fingerprint": {"enabled": true}, "capture": {"parts": ["last_user", "system", "completion"]}});
            let mut host = host("/v1/chat/completions");
            host.set_property(&[fs::SAMPLED], b"true");
            let filter = filter(&mut host, config);
            let mut ex = filter.on_request_headers(&mut host);
            let body = json!({"messages": [{"role": "system", "content": text}, {"role": "user", "content": text}]})
                .to_string();
            let verdict = if ex.buffers_request() {
                filter.on_request_body(&mut host, &mut ex, body.as_bytes())
            } else {
                filter.on_request_chunk(&mut ex, body.as_bytes());
                filter.on_request_end(&mut host, &mut ex);
                RequestVerdict::Forward
            };
            host.add_response_header(":status", "200");
            host.add_response_header("content-type", "text/event-stream");
            filter.on_response_headers(&mut host, &mut ex);
            let _ = filter.on_response_chunk(&mut host, &mut ex, &char_per_event(&text), true);
            filter.finish(&mut host, &mut ex);
            let sinks = host.all_sinks();
            for c in canaries {
                assert!(!sinks.contains(c), "{mode}/{action}: {c} in sinks");
            }
            if let RequestVerdict::Replace(bytes) = &verdict {
                let sent = String::from_utf8_lossy(bytes);
                if action != "count" {
                    for c in canaries {
                        assert!(!sent.contains(c), "{mode}/{action}: {c} sent upstream");
                    }
                }
            }
        }
    }
}

#[test]
fn direction_limits_what_is_inspected() {
    for (direction, requests, responses) in [("request", true, false), ("response", false, true), ("both", true, true)]
    {
        let mut host = host("/v1/chat/completions");
        let filter = filter(&mut host, json!({"mode": "traffic", "direction": direction}));
        let mut ex = filter.on_request_headers(&mut host);
        assert_eq!(ex.buffers_request(), requests, "{direction}");
        if requests {
            assert!(matches!(filter.on_request_body(&mut host, &mut ex, &chat(EMAIL)), RequestVerdict::Replace(_)));
        }
        host.add_response_header(":status", "200");
        host.add_response_header("content-type", "text/event-stream");
        filter.on_response_headers(&mut host, &mut ex);
        assert_eq!(ex.rewrites_stream(), responses, "{direction}");
        let out = filter.on_response_chunk(&mut host, &mut ex, &char_per_event(CARD), true);
        assert_eq!(out.is_some_and(|o| !String::from_utf8_lossy(&o).contains("\"4\"")), responses, "{direction}");
    }
}

#[test]
fn uninspectable_requests_pass_counted_or_are_refused_by_policy() {
    for (policy, compressed, want) in
        [("pass", false, None), ("block", false, Some(415)), ("block", true, Some(415)), ("pass", true, None)]
    {
        let mut host = host("/v1/chat/completions");
        if compressed {
            host.request_headers.push(("content-encoding".into(), b"gzip".to_vec()));
        }
        let filter = filter(&mut host, json!({"mode": "traffic", "uninspectable": policy}));
        let mut ex = filter.on_request_headers(&mut host);
        let verdict = if ex.buffers_request() {
            filter.on_request_body(&mut host, &mut ex, b"\x1f\x8b not json")
        } else {
            RequestVerdict::Forward
        };
        filter.finish(&mut host, &mut ex);
        match (verdict, want) {
            (RequestVerdict::Reject { status, body }, Some(w)) => {
                assert_eq!(status, w);
                assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["error"]["code"], "unsupported_body");
                assert_eq!(host.counter("llmobs.pii.blocked.reason=uninspectable;"), Some(1));
            }
            (RequestVerdict::Forward, None) => {}
            (other, _) => panic!("{policy}/{compressed}: {other:?}"),
        }
        let reason = if compressed { "compressed" } else { "not_json" };
        assert_eq!(host.counter(&format!("llmobs.pii.skipped.direction=request;.reason={reason};")), Some(1));
    }
}

#[test]
fn a_held_request_that_ends_in_trailers_is_uninspectable() {
    for (policy, refused) in [("block", true), ("pass", false)] {
        let mut host = host("/v1/chat/completions");
        let filter = filter(&mut host, json!({"mode": "traffic", "uninspectable": policy}));
        let mut ex = filter.on_request_headers(&mut host);
        assert!(ex.buffers_request());
        let verdict = filter.on_request_trailers(&mut host, &mut ex);
        assert_eq!(matches!(verdict, RequestVerdict::Reject { status: 415, .. }), refused, "{policy}");
        assert_eq!(verdict == RequestVerdict::Forward, !refused, "{policy}");
        filter.finish(&mut host, &mut ex);
        assert_eq!(host.counter("llmobs.pii.skipped.direction=request;.reason=trailers;"), Some(1));
    }
}

#[test]
fn the_rule_set_hash_ignores_formatting_and_key_order_but_not_a_rule_change() {
    let mut h = host("/v1/chat/completions");
    let a = PiiRedaction::new(br#"{"mode": "traffic", "entities": {"email": "redact", "phone": "count"}}"#, &mut h)
        .unwrap();
    let b = PiiRedaction::new(
        b"{\n  \"entities\": {\"phone\": \"count\",\n \"email\": \"redact\"},\"mode\":\"traffic\"}",
        &mut h,
    )
    .unwrap();
    let c = PiiRedaction::new(br#"{"mode": "traffic", "entities": {"email": "redact", "phone": "redact"}}"#, &mut h)
        .unwrap();
    assert_eq!(a.rule_set(), b.rule_set());
    assert_ne!(a.rule_set(), c.rule_set());
    assert_eq!(
        PiiRedaction::new(b"", &mut h).unwrap().rule_set(),
        PiiRedaction::new(b"{}", &mut h).unwrap().rule_set()
    );
}

/// A JSON response through the filter in "both" mode, sampled, completion captured and a trial
/// rule on: the bytes sent instead (if any) and the host.
fn json_response_exchange(response: &[u8]) -> (Option<Vec<u8>>, FakeHost) {
    let config = json!({"mode": "both", "capture": {"parts": ["completion"]},
        "custom_rules": [{"entity": "ticket", "pattern": "\\bTKT-[0-9]{6}\\b", "shadow": "redact"}]});
    let mut host = host("/v1/chat/completions");
    host.set_property(&[fs::SAMPLED], b"true");
    let filter = filter(&mut host, config);
    let mut ex = filter.on_request_headers(&mut host);
    let _ = filter.on_request_body(&mut host, &mut ex, &chat("hello"));
    host.add_response_header(":status", "200");
    host.add_response_header("content-type", "application/json");
    filter.on_response_headers(&mut host, &mut ex);
    assert!(ex.buffers_response());
    let out = filter.on_response_body(&mut host, &mut ex, response);
    filter.finish(&mut host, &mut ex);
    (out, host)
}

#[test]
fn a_json_response_with_nothing_to_change_passes_as_it_came_with_its_completion_captured_and_trials_counted() {
    // Pretty-printed, with an escape: a rewrite would have re-serialized it.
    let response = b"{\n  \"choices\": [{\"message\": {\"role\": \"assistant\", \"content\": \"Ticket TKT-123456 is \\\"closed\\\".\"}}]\n}";
    let (out, host) = json_response_exchange(response);
    assert_eq!(out, None);
    assert_eq!(host.filter_state_str(fs::CAPTURE_COMPLETION).as_deref(), Some("Ticket TKT-123456 is \"closed\"."));
    assert_eq!(host.counter("llmobs.pii.shadow_detections.entity=ticket;.action=redact;.direction=response;"), Some(1));
    assert_eq!(host.counter_sum("llmobs.pii.detections"), 0);
}

#[test]
fn a_json_response_that_repeats_a_key_is_read_as_before_the_last_value_in_the_first_ones_place() {
    let response = format!(
        r#"{{"choices":[{{"message":{{"content":"no value here","role":"assistant","content":"mail {EMAIL}, TKT-123456"}}}}]}}"#
    );
    let (out, host) = json_response_exchange(response.as_bytes());
    let out = String::from_utf8(out.expect("the email is redacted")).unwrap();
    assert_eq!(out, r#"{"choices":[{"message":{"content":"mail [EMAIL], TKT-123456","role":"assistant"}}]}"#);
    assert_eq!(host.filter_state_str(fs::CAPTURE_COMPLETION).as_deref(), Some("mail [EMAIL], TKT-123456"));
    assert_eq!(host.counter("llmobs.pii.shadow_detections.entity=ticket;.action=redact;.direction=response;"), Some(1));
    assert_eq!(host.counter("llmobs.pii.detections.entity=email;.action=redact;.direction=response;"), Some(1));
}
