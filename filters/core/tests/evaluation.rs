//! Evaluation export through the PII redaction behaviour: which exchanges reach the exporter's
//! queue, and that what reaches it is the scrubbed capture, never a raw value.

use llmobs_core::filter_state as fs;
use llmobs_core::redaction::{PiiRedaction, RequestVerdict};
use llmobs_testkit::FakeHost;
use serde_json::{json, Value};

const EMAIL: &str = "jane.canary@example.com";
const SSN: &str = "536-22-8714";
const VM: &str = "llmobs_eval_exporter";
const QUEUE: &str = "llmobs.eval";

fn chat(text: &str) -> Vec<u8> {
    json!({"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}).to_string().into_bytes()
}

fn completion(text: &str) -> Vec<u8> {
    json!({"id": "x", "model": "gpt-4o-2024", "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]})
        .to_string()
        .into_bytes()
}

struct Run {
    host: FakeHost,
    verdict: RequestVerdict,
}

/// One exchange through the filter: request headers (with `headers`), the body, a JSON response,
/// the end. The exporter's queue is registered unless `exporter` is false.
fn run(config: Value, headers: &[(&str, &str)], prompt: &str, answer: &str, exporter: bool) -> Run {
    let mut all = vec![(":path", "/v1/chat/completions"), ("content-type", "application/json")];
    all.extend_from_slice(headers);
    let mut host = FakeHost::with_request_headers(&all);
    host.set_property(&["plugin_name"], b"pii");
    host.set_property(&[fs::REQUEST_ID], b"req-eval-1");
    if exporter {
        host.register_queue(VM, QUEUE);
    }
    let filter = PiiRedaction::new(config.to_string().as_bytes(), &mut host).unwrap();
    let mut ex = filter.on_request_headers(&mut host);
    let verdict = filter.on_request_body(&mut host, &mut ex, &chat(prompt));
    if !matches!(verdict, RequestVerdict::Reject { .. }) {
        host.add_response_header(":status", "200");
        host.add_response_header("content-type", "application/json");
        filter.on_response_headers(&mut host, &mut ex);
        let body = completion(answer);
        if ex.buffers_response() {
            let _ = filter.on_response_body(&mut host, &mut ex, &body);
        } else {
            let _ = filter.on_response_chunk(&mut host, &mut ex, &body, true);
        }
    }
    // What token accounting wrote before redaction finished (the response path's order).
    host.set_property(&[fs::REQUEST_MODEL], b"gpt-4o");
    host.set_property(&[fs::USAGE_INPUT], b"11");
    filter.finish(&mut host, &mut ex);
    Run { host, verdict }
}

fn eval(extra: Value) -> Value {
    let mut section = json!({"enabled": true});
    for (k, v) in extra.as_object().unwrap() {
        section[k] = v.clone();
    }
    json!({"mode": "telemetry", "evaluation": section})
}

fn result(host: &FakeHost, result: &str) -> Option<u64> {
    host.counter(&format!("llmobs.eval_export.exchanges.result={result};"))
}

#[test]
fn a_consented_exchange_is_queued_as_a_record_with_its_scrubbed_prompt_and_completion() {
    let r = run(
        eval(json!({})),
        &[("x-llmobs-consent", "eval")],
        &format!("mail {EMAIL} please"),
        &format!("I wrote to {EMAIL}."),
        true,
    );
    let queued = r.host.queued(VM, QUEUE);
    assert_eq!(queued.len(), 1);
    let record = String::from_utf8_lossy(&queued[0]);
    for expected in [
        "mail [EMAIL] please",
        "I wrote to [EMAIL].",
        "req-eval-1",
        "gpt-4o",
        "gen_ai.usage.input_tokens",
        "unversioned@",
        "header",
    ] {
        assert!(record.contains(expected), "{expected} missing");
    }
    assert!(!r.host.all_sinks().contains(EMAIL), "no raw value in any sink, the queue included");
    assert_eq!(result(&r.host, "enqueued"), Some(1));
    // Export does not turn on the log's capture: no capture field without `capture.parts`.
    assert!(r.host.filter_state_str(fs::CAPTURE_LAST_USER).is_none());
    assert!(r.host.filter_state_str(fs::CAPTURE_COMPLETION).is_none());
}

#[test]
fn an_exchange_without_consent_is_counted_and_never_queued() {
    for headers in [vec![], vec![("x-llmobs-consent", "no")]] {
        let r = run(eval(json!({})), &headers, "hello", "hi", true);
        assert!(r.host.queued(VM, QUEUE).is_empty());
        assert_eq!(result(&r.host, "no_consent"), Some(1));
    }
}

#[test]
fn an_allow_listed_tenant_consents_without_the_header() {
    let config = eval(json!({"tenant_header": "x-tenant", "tenants": ["acme"]}));
    let r = run(config.clone(), &[("x-tenant", "acme")], "hello", "hi", true);
    assert_eq!(r.host.queued(VM, QUEUE).len(), 1);
    assert!(String::from_utf8_lossy(&r.host.queued(VM, QUEUE)[0]).contains("tenant"));
    let r = run(config, &[("x-tenant", "globex")], "hello", "hi", true);
    assert!(r.host.queued(VM, QUEUE).is_empty());
}

#[test]
fn a_blocked_request_is_never_exported() {
    let config = json!({"mode": "both", "entities": {"email": "block"}, "evaluation": {"enabled": true}});
    let r = run(config, &[("x-llmobs-consent", "eval")], &format!("mail {EMAIL}"), "", true);
    assert!(matches!(r.verdict, RequestVerdict::Reject { status: 400, .. }));
    assert!(r.host.queued(VM, QUEUE).is_empty());
    assert_eq!(result(&r.host, "blocked"), Some(1));
}

#[test]
fn an_exchange_where_a_configured_entity_was_found_is_never_exported() {
    let config = eval(json!({"skip_entities": ["us_ssn"]}));
    let r = run(config.clone(), &[("x-llmobs-consent", "eval")], &format!("my SSN {SSN}"), "ok", true);
    assert!(r.host.queued(VM, QUEUE).is_empty());
    assert_eq!(result(&r.host, "entity"), Some(1));
    // Found in the completion counts too.
    let r = run(config, &[("x-llmobs-consent", "eval")], "what is it?", &format!("SSN {SSN}"), true);
    assert!(r.host.queued(VM, QUEUE).is_empty());
}

#[test]
fn synthetic_probes_are_exported_only_when_included() {
    let headers_host = |include: bool| {
        let mut host =
            FakeHost::with_request_headers(&[(":path", "/v1/chat/completions"), ("x-llmobs-consent", "eval")]);
        host.set_property(&[fs::SYNTHETIC], b"true");
        host.register_queue(VM, QUEUE);
        let filter =
            PiiRedaction::new(eval(json!({"include_synthetic": include})).to_string().as_bytes(), &mut host).unwrap();
        let mut ex = filter.on_request_headers(&mut host);
        let _ = filter.on_request_body(&mut host, &mut ex, &chat("ping"));
        filter.finish(&mut host, &mut ex);
        host
    };
    let host = headers_host(false);
    assert!(host.queued(VM, QUEUE).is_empty());
    assert_eq!(result(&host, "synthetic"), Some(1));
    assert_eq!(headers_host(true).queued(VM, QUEUE).len(), 1);
}

#[test]
fn without_an_exporter_the_record_is_dropped_counted_and_the_request_unaffected() {
    let r = run(eval(json!({})), &[("x-llmobs-consent", "eval")], "hello", "hi", false);
    assert_eq!(r.verdict, RequestVerdict::Forward);
    assert_eq!(result(&r.host, "dropped"), Some(1));
    assert_eq!(r.host.counter("llmobs.eval_export.records_dropped.reason=no_exporter;"), Some(1));
}

#[test]
fn export_is_off_by_default_and_adds_no_metric() {
    let r = run(json!({"mode": "telemetry"}), &[("x-llmobs-consent", "eval")], "hello", "hi", true);
    assert!(r.host.queued(VM, QUEUE).is_empty());
    assert!(r.host.metric_names("llmobs.eval_export").is_empty());
}

#[test]
fn evaluation_needs_a_capturing_mode_and_known_entities() {
    let mut host = FakeHost::default();
    let config = json!({"mode": "traffic", "evaluation": {"enabled": true, "skip_entities": ["shoe_size"]}});
    let err = PiiRedaction::new(config.to_string().as_bytes(), &mut host).unwrap_err();
    let fields: Vec<String> = err.into_all().into_iter().map(|e| e.field).collect();
    assert_eq!(fields, ["evaluation.skip_entities[0]", "evaluation.enabled"]);
}

#[test]
fn a_streamed_completion_is_exported_as_sent_scrubbed_without_log_sampling() {
    let mut host = FakeHost::with_request_headers(&[(":path", "/v1/chat/completions"), ("x-llmobs-consent", "eval")]);
    host.set_property(&[fs::SAMPLED], b"false");
    host.register_queue(VM, QUEUE);
    let config = json!({"mode": "both", "capture": {"parts": ["completion"]}, "evaluation": {"enabled": true}});
    let filter = PiiRedaction::new(config.to_string().as_bytes(), &mut host).unwrap();
    let mut ex = filter.on_request_headers(&mut host);
    let _ = filter.on_request_body(&mut host, &mut ex, &chat("where do I write?"));
    host.add_response_header(":status", "200");
    host.add_response_header("content-type", "text/event-stream");
    filter.on_response_headers(&mut host, &mut ex);
    let mut stream = String::new();
    for piece in ["Write ", "to ", EMAIL, " today."] {
        let event = json!({"id": "c", "choices": [{"index": 0, "delta": {"content": piece}}]});
        stream.push_str(&format!("data: {event}\n\n"));
    }
    stream.push_str("data: [DONE]\n\n");
    for (i, chunk) in stream.as_bytes().chunks(7).enumerate() {
        let last = (i + 1) * 7 >= stream.len();
        let _ = filter.on_response_chunk(&mut host, &mut ex, chunk, last);
    }
    filter.finish(&mut host, &mut ex);
    let queued = host.queued(VM, QUEUE);
    assert_eq!(queued.len(), 1);
    assert!(String::from_utf8_lossy(&queued[0]).contains("Write to [EMAIL] today."));
    assert!(!host.all_sinks().contains(EMAIL));
    // Not log-sampled: the log's completion capture stays off although configured.
    assert!(host.filter_state_str(fs::CAPTURE_COMPLETION).is_none());
}
