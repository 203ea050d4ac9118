//! Rules and entities on trial (`shadow`): they count what they would have done, under
//! `llmobs.pii.shadow_detections{entity, action, direction}`, and change nothing else: the bytes
//! upstream and to the client, the verdict, the log fields, the captures and every other counter
//! are those of the same configuration without the trials (docs/filters/pii-redaction.md,
//! "Trial a rule").

use llmobs_core::filter_state as fs;
use llmobs_core::redaction::{PiiRedaction, RequestVerdict};
use llmobs_testkit::FakeHost;
use serde_json::{json, Value};

const KEY_B64: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
/// A value for every trial below, and for the rules in force next to them.
const TEXT: &str = "Call +41 44 668 18 00 about TKT-123456, mail jane.canary@example.com, badge EMP-004211.";

/// The configuration in force: phone only counted, a custom employee_id rule, every capture.
fn live(mode: &str) -> Value {
    json!({
        "mode": mode,
        "entities": {"phone": "count"},
        "custom_rules": [{"entity": "employee_id", "pattern": "\\bEMP-[0-9]{6}\\b", "action": "redact"}],
        "capture": {"parts": ["last_user", "system", "completion"], "max_bytes": 4096},
    })
}

/// The same plus trials: a stricter action for phone and email, a new ticket rule, and a looser
/// employee rule listed first, where in force it would win the position from the rule in force.
fn with_trials(mode: &str) -> Value {
    let mut config = live(mode);
    config["entities"] = json!({"phone": {"action": "count", "shadow": "block"}, "email": {"shadow": "block"}});
    config["custom_rules"] = json!([
        {"entity": "employee_any", "pattern": "EMP-[0-9]+", "shadow": "block"},
        {"entity": "employee_id", "pattern": "\\bEMP-[0-9]{6}\\b", "action": "redact"},
        {"entity": "ticket", "pattern": "\\bTKT-[0-9]{6}\\b", "shadow": "redact"},
    ]);
    config
}

fn chat_request() -> Vec<u8> {
    json!({"model": "gpt-4o", "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": TEXT}
    ]})
    .to_string()
    .into_bytes()
}

fn json_response() -> Vec<u8> {
    json!({"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": TEXT}, "finish_reason": "stop"}]})
        .to_string()
        .into_bytes()
}

/// An OpenAI chat stream sending `TEXT` one character per event, so every value spans events
/// and the held text is scanned many times.
fn stream_response() -> Vec<u8> {
    stream_of(TEXT)
}

fn stream_of(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut event = |v: Value| out.extend_from_slice(format!("data: {v}\n\n").as_bytes());
    event(json!({"id": "c", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}));
    for ch in text.chars() {
        event(json!({"id": "c", "choices": [{"index": 0, "delta": {"content": ch.to_string()}}]}));
    }
    event(json!({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}));
    out.extend_from_slice(b"data: [DONE]\n\n");
    out
}

/// What one exchange left, minus what names the configuration itself (the rule-set hash
/// differs between the two configurations by design) and the trials' own counter.
#[derive(Debug, PartialEq)]
struct Seen {
    verdict: RequestVerdict,
    client: Vec<u8>,
    filter_state: Vec<(String, String)>,
    counters: Vec<(String, u64)>,
}

fn exchange(config: &Value, response_type: &str, response: &[u8]) -> (Seen, FakeHost) {
    let mut host =
        FakeHost::with_request_headers(&[(":path", "/v1/chat/completions"), ("content-type", "application/json")]);
    host.env.insert("LLMOBS_PII_KEY".into(), KEY_B64.as_bytes().to_vec());
    host.set_property(&["plugin_name"], b"pii");
    host.set_property(&[fs::SAMPLED], b"true");
    let filter = PiiRedaction::new(config.to_string().as_bytes(), &mut host).unwrap();
    let mut ex = filter.on_request_headers(&mut host);
    let body = chat_request();
    let verdict = if ex.buffers_request() {
        filter.on_request_body(&mut host, &mut ex, &body)
    } else {
        for chunk in body.chunks(11) {
            filter.on_request_chunk(&mut ex, chunk);
        }
        filter.on_request_end(&mut host, &mut ex);
        RequestVerdict::Forward
    };
    let mut client = Vec::new();
    if !matches!(verdict, RequestVerdict::Reject { .. }) {
        host.add_response_header(":status", "200");
        host.add_response_header("content-type", response_type);
        filter.on_response_headers(&mut host, &mut ex);
        if ex.buffers_response() {
            client = filter.on_response_body(&mut host, &mut ex, response).unwrap_or_else(|| response.to_vec());
        } else {
            let chunks: Vec<&[u8]> = response.chunks(13).collect();
            for (i, chunk) in chunks.iter().enumerate() {
                let out = filter.on_response_chunk(&mut host, &mut ex, chunk, i + 1 == chunks.len());
                client.extend(out.unwrap_or_else(|| chunk.to_vec()));
            }
        }
    }
    filter.finish(&mut host, &mut ex);
    let mut counters: Vec<(String, u64)> = host
        .metrics
        .iter()
        .filter(|(n, _)| !n.starts_with("llmobs.pii.rule_set") && !n.starts_with("llmobs.pii.shadow_detections"))
        .cloned()
        .collect();
    counters.sort();
    let filter_state = host
        .filter_state
        .iter()
        .filter(|(k, _)| k.as_str() != fs::PII_RULE_SET)
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
        .collect();
    (Seen { verdict, client, filter_state, counters }, host)
}

/// The assistant's text the client got, from a JSON body or an SSE stream.
fn client_text(bytes: &[u8]) -> String {
    if let Ok(doc) = serde_json::from_slice::<Value>(bytes) {
        return doc["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_string();
    }
    let mut text = String::new();
    for line in String::from_utf8_lossy(bytes).lines() {
        let Some(Ok(v)) = line.strip_prefix("data: ").map(serde_json::from_str::<Value>) else { continue };
        text.push_str(v["choices"][0]["delta"]["content"].as_str().unwrap_or_default());
    }
    text
}

fn shadow(host: &FakeHost, entity: &str, action: &str, direction: &str) -> Option<u64> {
    host.counter(&format!("llmobs.pii.shadow_detections.entity={entity};.action={action};.direction={direction};"))
}

#[test]
fn trials_change_nothing_and_count_what_they_would_do_in_every_mode_for_json_and_streams() {
    for mode in ["telemetry", "traffic", "both"] {
        for (response_type, response) in
            [("application/json", json_response()), ("text/event-stream", stream_response())]
        {
            let case = format!("{mode} {response_type}");
            let (without, _) = exchange(&live(mode), response_type, &response);
            let (with, host) = exchange(&with_trials(mode), response_type, &response);
            assert_eq!(with, without, "{case}: the trials changed something");
            // Not refused although two trials say block; what the rules in force do still happens.
            assert!(!matches!(with.verdict, RequestVerdict::Reject { .. }), "{case}");
            if mode != "telemetry" {
                let RequestVerdict::Replace(sent) = &with.verdict else { panic!("{case}: not rewritten") };
                let sent = String::from_utf8_lossy(sent);
                assert!(
                    sent.contains("TKT-123456") && sent.contains("[EMAIL]") && sent.contains("[EMPLOYEE_ID]"),
                    "{sent}"
                );
                let client = client_text(&with.client);
                assert_eq!(
                    client, "Call +41 44 668 18 00 about TKT-123456, mail [EMAIL], badge [EMPLOYEE_ID].",
                    "{case}"
                );
            }
            for direction in ["request", "response"] {
                // Each value once, however often the held stream text was scanned.
                assert_eq!(shadow(&host, "phone", "block", direction), Some(1), "{case} {direction}");
                assert_eq!(shadow(&host, "email", "block", direction), Some(1), "{case} {direction}");
                assert_eq!(shadow(&host, "employee_any", "block", direction), Some(1), "{case} {direction}");
                assert_eq!(shadow(&host, "ticket", "redact", direction), Some(1), "{case} {direction}");
            }
            // The rules in force are counted where they always were, trials never there.
            assert_eq!(host.counter_sum("llmobs.pii.detections.entity=ticket"), 0, "{case}");
            assert_eq!(host.counter_sum("llmobs.pii.detections.entity=employee_any"), 0, "{case}");
            if mode == "traffic" {
                continue; // traffic mode captures nothing
            }
            let captured = host.filter_state_str(fs::CAPTURE_LAST_USER).expect(&case);
            assert!(captured.contains("TKT-123456"), "{case}: a trial does not scrub a capture: {captured}");
        }
    }
}

#[test]
fn a_configuration_without_trials_defines_no_shadow_counter() {
    let (_, host) = exchange(&live("both"), "application/json", &json_response());
    assert!(host.metric_names("llmobs.pii.shadow_detections").is_empty());
}

#[test]
fn a_trial_must_name_an_action_to_trial_and_a_rule_needs_an_action_or_a_trial() {
    let mut host = FakeHost::default();
    let config = json!({
        "entities": {"email": {}, "phone": {"shadow": "off"}},
        "custom_rules": [{"entity": "ticket", "pattern": "TKT-[0-9]+"}, {"entity": "badge", "pattern": "B-[0-9]+", "shadow": "off"}],
    });
    let err = PiiRedaction::new(config.to_string().as_bytes(), &mut host).unwrap_err();
    let fields: Vec<String> = err.into_all().into_iter().map(|e| e.field).collect();
    assert_eq!(fields, ["entities.email", "entities.phone.shadow", "custom_rules[0].action", "custom_rules[1].shadow"]);
    let err =
        PiiRedaction::new(br#"{"entities": {"email": {"shadow": "block", "when": "x"}}}"#, &mut host).unwrap_err();
    assert_eq!(err.field, "entities.email.when", "an unknown key in a trial is named: {}", err.reason);
    let err = PiiRedaction::new(br#"{"entities": {"email": "blok"}}"#, &mut host).unwrap_err();
    assert_eq!(err.field, "entities.email", "{}", err.reason);
}

#[test]
fn a_trial_of_pseudonymize_needs_no_key_because_it_makes_no_pseudonym() {
    let mut host = FakeHost::default();
    let config = json!({"entities": {"email": {"shadow": "pseudonymize"}}});
    assert!(PiiRedaction::new(config.to_string().as_bytes(), &mut host).is_ok());
}

#[test]
fn the_preview_lists_trials_with_their_trial_action_and_leaves_the_text_as_the_rules_in_force_make_it() {
    let mut host = FakeHost::default();
    let pii = PiiRedaction::new(with_trials("traffic").to_string().as_bytes(), &mut host).unwrap();
    let preview = pii.preview_request(&mut host, TEXT);
    assert_eq!(preview.refused_for, None, "a block on trial refuses nothing");
    assert_eq!(preview.text, "Call +41 44 668 18 00 about TKT-123456, mail [EMAIL], badge [EMPLOYEE_ID].");
    let trials: Vec<(&str, &str)> =
        preview.detections.iter().filter(|d| d.shadow).map(|d| (d.entity.as_str(), d.action.label())).collect();
    assert_eq!(trials, [("phone", "block"), ("ticket", "redact"), ("email", "block"), ("employee_any", "block")]);
}

#[test]
fn a_stream_keeps_original_text_for_trials_only_up_to_max_inspected_bytes() {
    // 460 bytes of words, then TEXT: with 512 bytes kept, its phone (from byte 465) and ticket
    // (488) are counted, its email (from 505) is past the bound and not; the rules in force
    // still act on the whole stream.
    let text = format!("{}{TEXT}", "word ".repeat(92));
    let mut config = with_trials("traffic");
    config["max_inspected_bytes"] = json!(512);
    let (with, host) = exchange(&config, "text/event-stream", &stream_of(&text));
    assert_eq!(shadow(&host, "phone", "block", "response"), Some(1));
    assert_eq!(shadow(&host, "ticket", "redact", "response"), Some(1));
    assert_eq!(shadow(&host, "email", "block", "response"), None);
    assert!(client_text(&with.client).ends_with("mail [EMAIL], badge [EMPLOYEE_ID]."));
}
