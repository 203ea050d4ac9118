//! The client-feedback endpoint the correlation filter answers itself: strict validation, a
//! structured refusal for every bad input, 204 for a good one, and never a byte forwarded; the
//! separate correlation filter and the bundle alike, for every chunk split of the body.

use llmobs_core::bundle::{CorrelationFilter, Flow, FullBundle};
use llmobs_core::signals::feedback::{self, Invalid, Kind, Rating};
use llmobs_core::signals::{self as sig};
use llmobs_testkit::{body_pieces, chunkings, drive_body as drive, FakeHost};
use serde_json::{json, Value};

const PATH: &str = "/llmobs/v1/feedback";

fn correlation_config() -> Value {
    json!({"feedback": {"path": PATH}, "signal_labels": {"tenant_header": "x-llmobs-tenant"}})
}

fn request_host(extra: &[(&str, &str)]) -> FakeHost {
    let mut headers = vec![
        (":method", "POST"),
        (":path", PATH),
        ("content-type", "application/json"),
        ("x-request-id", "fb-req-1"),
        ("x-llmobs-tenant", "acme"),
        ("x-llmobs-prompt-version", "support-v7"),
    ];
    for (k, v) in extra {
        headers.retain(|(n, _)| n != k);
        headers.push((k, v));
    }
    FakeHost::with_request_headers(&headers)
}

/// What a client and the upstream saw of one feedback request.
#[derive(Debug, PartialEq)]
struct Outcome {
    headers_flow: Flow,
    forwarded: Vec<(Vec<u8>, bool)>,
    status: Option<u16>,
    reply_body: Option<Value>,
}

/// Sends `body` in `chunks` through the separate correlation filter (`bundle: false`) or the
/// full bundle with every section (`bundle: true`).
fn send(host: &mut FakeHost, chunks: &[&[u8]], bundle: bool) -> Outcome {
    let has_body = !chunks.is_empty();
    let (headers_flow, forwarded) = if bundle {
        let sections = json!({
            "correlation": correlation_config(),
            "pii_redaction": {"mode": "both"},
            "token_accounting": {"tenant_header": "x-llmobs-tenant"},
            "error_normalization": {},
        });
        let f = FullBundle::new(sections.to_string().as_bytes(), host).unwrap();
        let mut ex = f.on_request_headers(host);
        let flow = f.request_headers_flow(host, &mut ex, !has_body);
        let out = drive(&body_pieces(chunks, true), |b, n, e| f.on_request_body(host, &mut ex, b, n, e));
        f.on_response_headers(host, &mut ex, true);
        f.on_log(host, &mut ex);
        (flow, out)
    } else {
        let f = CorrelationFilter::new(correlation_config().to_string().as_bytes(), host).unwrap();
        let mut ex = f.on_request_headers(host);
        let flow = f.request_headers_flow(host, &mut ex, !has_body);
        let out = drive(&body_pieces(chunks, true), |b, n, e| f.on_request_body(host, &mut ex, b, n, e));
        f.on_response_headers(host, &mut ex, true);
        f.on_log(host, &mut ex);
        (flow, out)
    };
    let reply = host.local_response.clone();
    Outcome {
        headers_flow,
        forwarded,
        status: reply.as_ref().map(|r| r.0),
        reply_body: reply.and_then(|r| serde_json::from_slice(&r.2).ok()),
    }
}

fn good_body() -> Vec<u8> {
    json!({
        "request_id": "chatcmpl-req-42",
        "conversation_id": "conv-9",
        "rating": "down",
        "kind": "feedback",
        "task_completed": false,
        "ticket_url": "https://support.example/t/42?email=jane.canary@example.com#x",
        "locale": "de_ch",
    })
    .to_string()
    .into_bytes()
}

const RECEIVED: &str = "llmobs.feedback.received.kind=feedback;.rating=down;.tenant=acme;.prompt_version=support-v7;.locale=de-CH;.synthetic=false;";

#[test]
fn a_valid_feedback_is_answered_204_counted_and_logged_with_its_ids_for_every_split_in_both_modules() {
    let body = good_body();
    for bundle in [false, true] {
        for chunks in chunkings(&body) {
            let mut host = request_host(&[]);
            let out = send(&mut host, &chunks, bundle);
            assert_eq!(out.headers_flow, Flow::Pause, "the headers never reach the router");
            assert!(out.forwarded.is_empty(), "nothing is forwarded");
            assert_eq!(out.status, Some(204));
            assert_eq!(host.counter(RECEIVED), Some(1), "bundle={bundle}");
            assert_eq!(host.counter_sum("llmobs.feedback.rejected"), 0);
            let state = |k: &str| host.filter_state_str(k);
            assert_eq!(state(sig::FS_FEEDBACK_KIND).as_deref(), Some("feedback"));
            assert_eq!(state(sig::FS_FEEDBACK_RATING).as_deref(), Some("down"));
            assert_eq!(state(sig::FS_FEEDBACK_REQUEST_ID).as_deref(), Some("chatcmpl-req-42"));
            assert_eq!(state(sig::FS_FEEDBACK_CONVERSATION_ID).as_deref(), Some("conv-9"));
            assert_eq!(state(sig::FS_FEEDBACK_TASK_COMPLETED).as_deref(), Some("false"));
            assert_eq!(state(sig::FS_FEEDBACK_TICKET_URL).as_deref(), Some("https://support.example/t/42"));
            assert_eq!(state(sig::FS_FEEDBACK_LOCALE).as_deref(), Some("de-CH"));
            assert_eq!(state(sig::FS_FEEDBACK_PROMPT_VERSION).as_deref(), Some("support-v7"));
            assert_eq!(state("llmobs.tenant").as_deref(), Some("acme"));
            // The feedback request's own id, as for any request.
            assert_eq!(state("llmobs.request_id").as_deref(), Some("fb-req-1"));
            assert!(!host.all_sinks().contains("jane.canary"), "the ticket URL's query never reaches a sink");
        }
    }
}

#[test]
fn in_the_bundle_no_other_behaviour_counts_or_logs_a_feedback_request() {
    let mut host = request_host(&[]);
    send(&mut host, &[&good_body()], true);
    assert_eq!(host.counter_sum("llmobs.token_accounting"), 0);
    assert_eq!(host.counter_sum("llmobs.errors"), 0);
    for prefix in ["llmobs.pii.detections", "llmobs.pii.skipped", "llmobs.pii.blocked", "llmobs.pii.inspect_us"] {
        assert_eq!(host.counter_sum(prefix), 0, "{prefix}");
    }
    assert_eq!(host.filter_state_str("llmobs.provider"), None);
    assert_eq!(host.filter_state_str("llmobs.pii.outcome"), None);
    assert_eq!(host.filter_state_str("llmobs.error_type"), None);
}

#[test]
fn every_bad_body_gets_a_structured_400_with_its_reason_counted_and_nothing_forwarded() {
    let cases: &[(&str, &str)] = &[
        ("", "json"),
        ("[]", "json"),
        ("{\"request_id\": \"r1\", \"rating\": \"up\"} trailing", "json"),
        ("{\"request_id\": \"r1\", \"rating\": \"up\"", "json"),
        (r#"{"request_id": "r1", "rating": "up", "comment": "the jane.canary@example.com answer"}"#, "unknown_field"),
        (r#"{"request_id": "r1", "rating": "up", "rating": "down"}"#, "duplicate_field"),
        (r#"{"rating": "up"}"#, "request_id"),
        (r#"{"request_id": "has space", "rating": "up"}"#, "request_id"),
        (r#"{"request_id": 42, "rating": "up"}"#, "request_id"),
        (r#"{"request_id": "r1", "rating": "up", "conversation_id": "a\nb"}"#, "conversation_id"),
        (r#"{"request_id": "r1"}"#, "rating"),
        (r#"{"request_id": "r1", "rating": "meh"}"#, "rating"),
        (r#"{"request_id": "r1", "rating": "UP"}"#, "rating"),
        (r#"{"request_id": "r1", "rating": "up", "kind": "bug"}"#, "kind"),
        (r#"{"request_id": "r1", "rating": "up", "task_completed": "yes"}"#, "task_completed"),
        (r#"{"request_id": "r1", "rating": "up", "ticket_url": "javascript:alert(1)"}"#, "ticket_url"),
        (r#"{"request_id": "r1", "rating": "up", "ticket_url": "https://user:pw@host/x"}"#, "ticket_url"),
        (
            r#"{"request_id": "r1", "rating": "up", "ticket_url": "https://jane.canary@example.com@host/"}"#,
            "ticket_url",
        ),
        (
            r#"{"request_id": "r1", "rating": "up", "ticket_url": "https://host/t/jane.canary@example.com"}"#,
            "ticket_url",
        ),
        (
            r#"{"request_id": "r1", "rating": "up", "ticket_url": "https://host/t/jane.canary%40example.com"}"#,
            "ticket_url",
        ),
        (r#"{"request_id": "r1", "rating": "up", "ticket_url": "https:///x"}"#, "ticket_url"),
        (r#"{"request_id": "r1", "rating": "up", "ticket_url": "https://h/a b"}"#, "ticket_url"),
        (r#"{"request_id": "r1", "rating": "up", "locale": "english"}"#, "locale"),
        (r#"{"request_id": "r1", "rating": "up", "locale": "en-US-u-ca-gregory"}"#, "locale"),
        (r#"{"request_id": "r1", "rating": "up", "locale": "en-US-GB"}"#, "locale"),
        (r#"{"request_id": "r1", "rating": "up", "locale": ""}"#, "locale"),
    ];
    for bundle in [false, true] {
        for (body, reason) in cases {
            let mut host = request_host(&[]);
            let chunks: Vec<&[u8]> = if body.is_empty() { vec![] } else { vec![body.as_bytes()] };
            let out = send(&mut host, &chunks, bundle);
            assert!(out.forwarded.is_empty(), "{body}");
            assert_eq!(out.status, Some(400), "{body}");
            let reply = out.reply_body.unwrap();
            assert_eq!(reply["error"]["type"], "invalid_feedback", "{body}");
            assert_eq!(reply["error"]["reason"], *reason, "{body}");
            let counter = format!("llmobs.feedback.rejected.reason={reason};.synthetic=false;");
            assert_eq!(host.counter(&counter), Some(1), "{body}");
            assert_eq!(host.counter_sum("llmobs.feedback.received"), 0, "{body}");
            assert_eq!(host.filter_state_str(sig::FS_FEEDBACK_REJECTED).as_deref(), Some(*reason));
            assert_eq!(host.filter_state_str(sig::FS_FEEDBACK_REQUEST_ID), None, "{body}");
            assert!(!host.all_sinks().contains("canary"), "{body}");
        }
    }
}

#[test]
fn a_wrong_method_or_content_type_or_stated_length_is_refused_at_the_headers() {
    type Headers<'a> = &'a [(&'a str, &'a str)];
    let cases: &[(Headers, u16, &str)] = &[
        (&[(":method", "GET")], 405, "method"),
        (&[(":method", "PUT")], 405, "method"),
        (&[("content-type", "text/plain")], 415, "content_type"),
        (&[("content-length", "5000")], 413, "too_large"),
    ];
    for bundle in [false, true] {
        for (headers, status, reason) in cases {
            let mut host = request_host(headers);
            let out = send(&mut host, &[&good_body()], bundle);
            assert_eq!(out.status, Some(*status), "{headers:?}");
            assert_eq!(out.reply_body.unwrap()["error"]["reason"], *reason);
            assert!(out.forwarded.is_empty());
            assert_eq!(host.counter(&format!("llmobs.feedback.rejected.reason={reason};.synthetic=false;")), Some(1));
            if *status == 405 {
                let allow = host.local_response.as_ref().unwrap().1.iter().any(|(k, v)| k == "allow" && v == "POST");
                assert!(allow, "a 405 says which method to use");
            }
        }
    }
}

#[test]
fn a_body_over_the_limit_without_a_stated_length_is_refused_413_once_it_passes_the_limit() {
    let mut body = br#"{"request_id": "r1", "rating": "up", "ticket_url": "https://h/"#.to_vec();
    body.extend(std::iter::repeat_n(b'a', 5000));
    body.extend_from_slice(b"\"}");
    for bundle in [false, true] {
        let mut host = request_host(&[]);
        let chunks: Vec<&[u8]> = body.chunks(1000).collect();
        let out = send(&mut host, &chunks, bundle);
        assert_eq!(out.status, Some(413));
        assert!(out.forwarded.is_empty());
        assert_eq!(host.counter("llmobs.feedback.rejected.reason=too_large;.synthetic=false;"), Some(1));
    }
}

#[test]
fn other_paths_and_a_filter_without_a_feedback_path_pass_the_request_on() {
    for path in ["/llmobs/v1/feedbackx", "/llmobs/v1", "/v1/chat/completions"] {
        let mut host = request_host(&[(":path", path)]);
        let out = send(&mut host, &[b"{}"], false);
        assert_eq!(out.headers_flow, Flow::Continue, "{path}");
        assert_eq!(out.status, None);
        assert_eq!(out.forwarded, vec![(b"{}".to_vec(), true)], "the body goes on unchanged");
    }
    let mut host = request_host(&[]);
    let f = CorrelationFilter::new(b"{}", &mut host).unwrap();
    let mut ex = f.on_request_headers(&mut host);
    assert_eq!(f.request_headers_flow(&mut host, &mut ex, false), Flow::Continue);
    let out = drive(&body_pieces(&[&good_body()], true), |b, n, e| f.on_request_body(&mut host, &mut ex, b, n, e));
    assert_eq!(out.len(), 1, "the body goes on");
    assert!(host.local_response.is_none());
}

#[test]
fn the_path_matches_with_a_query_string_and_the_feedback_still_never_leaves() {
    let mut host = request_host(&[(":path", "/llmobs/v1/feedback?src=web")]);
    let out = send(&mut host, &[&good_body()], false);
    assert_eq!(out.status, Some(204));
}

#[test]
fn request_trailers_end_a_feedback_body() {
    let mut host = request_host(&[]);
    let f = CorrelationFilter::new(correlation_config().to_string().as_bytes(), &mut host).unwrap();
    let mut ex = f.on_request_headers(&mut host);
    assert_eq!(f.request_headers_flow(&mut host, &mut ex, false), Flow::Pause);
    let forwarded =
        drive(&body_pieces(&[&good_body()], false), |b, n, e| f.on_request_body(&mut host, &mut ex, b, n, e));
    assert!(forwarded.is_empty());
    assert!(host.local_response.is_none(), "no answer before the end");
    assert_eq!(f.on_request_trailers(&mut host, &mut ex), Flow::Pause);
    assert_eq!(host.local_response.as_ref().map(|r| r.0), Some(204));
}

#[test]
fn a_client_error_needs_no_rating_and_is_counted_by_kind() {
    let body = br#"{"request_id": "r1", "kind": "client_error", "locale": "EN"}"#;
    let mut host = request_host(&[]);
    let out = send(&mut host, &[body], false);
    assert_eq!(out.status, Some(204));
    let name = "llmobs.feedback.received.kind=client_error;.rating=none;.tenant=acme;.prompt_version=support-v7;.locale=en;.synthetic=false;";
    assert_eq!(host.counter(name), Some(1));
    assert_eq!(host.filter_state_str(sig::FS_FEEDBACK_RATING), None);
}

#[test]
fn locale_tenant_and_prompt_version_labels_are_bounded_and_overflow_is_counted() {
    let config = json!({
        "feedback": {"path": PATH, "locale_label": {"max_distinct": 1}},
        "signal_labels": {"tenant_header": "x-llmobs-tenant", "tenant_label": {"allow": ["acme"]}, "prompt_version_label": {"max_distinct": 1}},
    });
    let mut host = request_host(&[]);
    let f = CorrelationFilter::new(config.to_string().as_bytes(), &mut host).unwrap();
    let sends = [("fr-FR", "globex", "v1"), ("de", "acme", "v2"), ("fr-fr", "acme", "v1")];
    for (locale, tenant, version) in sends {
        host.next_request(&[
            (":method", "POST"),
            (":path", PATH),
            ("content-type", "application/json; charset=utf-8"),
            ("x-llmobs-tenant", tenant),
            ("x-llmobs-prompt-version", version),
        ]);
        host.local_response = None;
        let mut ex = f.on_request_headers(&mut host);
        f.request_headers_flow(&mut host, &mut ex, false);
        let body = json!({"request_id": "r1", "rating": "up", "locale": locale}).to_string();
        drive(&body_pieces(&[body.as_bytes()], true), |b, n, e| f.on_request_body(&mut host, &mut ex, b, n, e));
        assert_eq!(host.local_response.as_ref().map(|r| r.0), Some(204));
    }
    let c = |labels: &str| {
        host.counter(&format!("llmobs.feedback.received.kind=feedback;.rating=up;{labels}.synthetic=false;"))
    };
    assert_eq!(c(".tenant=_OTHER;.prompt_version=v1;.locale=fr-FR;"), Some(1));
    assert_eq!(c(".tenant=acme;.prompt_version=_OTHER;.locale=_OTHER;"), Some(1));
    assert_eq!(c(".tenant=acme;.prompt_version=v1;.locale=fr-FR;"), Some(1), "a known value stays itself");
    assert_eq!(host.counter("llmobs.label_overflow.label=tenant;"), Some(1));
    assert_eq!(host.counter("llmobs.label_overflow.label=locale;"), Some(1));
    assert_eq!(host.counter("llmobs.label_overflow.label=prompt_version;"), Some(1));
}

#[test]
fn an_invalid_prompt_version_or_tenant_header_is_unknown_and_never_logged() {
    let mut host = request_host(&[("x-llmobs-prompt-version", "v 1 <script>"), ("x-llmobs-tenant", "a;b")]);
    send(&mut host, &[&good_body()], false);
    let name = "llmobs.feedback.received.kind=feedback;.rating=down;.tenant=unknown;.prompt_version=unknown;.locale=de-CH;.synthetic=false;";
    assert_eq!(host.counter(name), Some(1));
    assert_eq!(host.filter_state_str(sig::FS_FEEDBACK_PROMPT_VERSION), None);
    assert!(!host.all_sinks().contains("<script>"));
}

#[test]
fn the_parser_reads_each_field_in_its_documented_form() {
    let fb = feedback::parse(
        br#"{"request_id":"a:b.c-d_e","rating":"up","locale":"zh_hant_tw","ticket_url":"HTTP://Host:8080/p#frag"}"#,
    )
    .unwrap();
    assert_eq!(fb.kind, Kind::Feedback);
    assert_eq!(fb.rating, Some(Rating::Up));
    assert_eq!(fb.locale.as_deref(), Some("zh-Hant-TW"));
    assert_eq!(fb.ticket_url.as_deref(), Some("http://Host:8080/p"));
    assert_eq!(
        feedback::parse(br#"{"request_id":"r","rating":"up","locale":"es-419"}"#).unwrap().locale.as_deref(),
        Some("es-419")
    );
    let long = format!(r#"{{"request_id":"{}","rating":"up"}}"#, "r".repeat(129));
    assert_eq!(feedback::parse(long.as_bytes()), Err(Invalid::RequestId));
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert_eq!(feedback::parse(deep.as_bytes()), Err(Invalid::Json), "deep nesting is refused, not a crash");
    let nested_unknown = format!(r#"{{"request_id":"r","rating":"up","x":{}1{}}}"#, "[".repeat(200), "]".repeat(200));
    assert!(feedback::parse(nested_unknown.as_bytes()).is_err());
}

#[test]
fn a_synthetic_probes_feedback_is_counted_apart_from_users() {
    let mut host = request_host(&[("x-llmobs-synthetic", "true")]);
    assert_eq!(send(&mut host, &[&good_body()], false).status, Some(204));
    assert_eq!(host.counter(RECEIVED), None, "not counted as a user's");
    assert_eq!(host.counter(&RECEIVED.replace(".synthetic=false;", ".synthetic=true;")), Some(1));
    let mut host = request_host(&[("x-llmobs-synthetic", "1")]);
    send(&mut host, &[b"{}"], true);
    assert_eq!(host.counter("llmobs.feedback.rejected.reason=request_id;.synthetic=true;"), Some(1));
}

#[test]
fn a_ticket_url_with_an_at_sign_anywhere_before_its_query_is_refused_but_one_in_the_query_is_cut() {
    // An `@` in the user info or the path (or its percent-encoded `%40`) is how an address
    // would reach the log: the URL is logged up to its query, so only the query may hold one.
    let url =
        |u: &str| feedback::parse(json!({"request_id": "r", "rating": "up", "ticket_url": u}).to_string().as_bytes());
    for bad in [
        "https://jane.doe@example.com@host/",
        "https://host/path/jane@example.com",
        "https://host/path/jane%40example.com",
        "https://host/path/jane%40",
        "http://host/@",
    ] {
        assert_eq!(url(bad), Err(Invalid::TicketUrl), "{bad}");
    }
    assert_eq!(
        url("https://host/t/42?reporter=jane@example.com#by:jane@example.com").unwrap().ticket_url.as_deref(),
        Some("https://host/t/42")
    );
    assert_eq!(url("https://host/t/%41%4f").unwrap().ticket_url.as_deref(), Some("https://host/t/%41%4f"));
}

#[test]
fn a_field_twice_is_refused_however_its_key_is_spelled_and_whatever_its_second_value() {
    for body in [
        r#"{"request_id": "r1", "rating": "up", "rating": "down"}"#,
        r#"{"request_id": "r1", "rating": "up", "r\u0061ting": "up"}"#,
        r#"{"request_id": "r1", "rating": "up", "rating": 7}"#,
        r#"{"request_id": "r1", "rating": "up", "rating": {"a": [1, 2]}"#,
        r#"{"request_id": "r1", "request_id": "r1", "rating": "up"}"#,
        r#"{"request_id": "r1", "rating": "up", "locale": "en", "locale": "en"}"#,
        r#"{"rating": "up", "rating": "up"}"#,
    ] {
        assert_eq!(feedback::parse(body.as_bytes()), Err(Invalid::DuplicateField), "{body}");
    }
}

#[test]
fn a_body_is_refused_for_its_first_fault_in_reading_order_and_reported_once() {
    // One pass, stopping at the first fault: what follows an unknown or repeated field is never
    // read, so a huge or malformed tail after it costs nothing and cannot change the reason.
    let cases: &[(&str, Invalid)] = &[
        (r#"{"comment": "x", "request_id": 5"#, Invalid::UnknownField),
        (r#"{"rating": "up", "rating": [[[["#, Invalid::DuplicateField),
        (r#"{"request_id": 5, "comment": "x"}"#, Invalid::RequestId),
        (r#"{"request_id": "bad id", "rating": "meh"}"#, Invalid::RequestId),
        (r#"{"rating": "meh", "request_id": "bad id"}"#, Invalid::Rating),
        (r#"{"kind": "bug", "rating": "meh"}"#, Invalid::Kind),
        (r#"{"request_id": "r1", "rating": "up"} trailing"#, Invalid::Json),
        (r#"{"request_id": "r1"}"#, Invalid::Rating),
        (r#"{"rating": "up"}"#, Invalid::RequestId),
    ];
    for (body, reason) in cases {
        assert_eq!(feedback::parse(body.as_bytes()), Err(*reason), "{body}");
    }
    let tail = format!(r#"{{"comment": 1, {}}}"#, vec![r#""x": 1"#; 20_000].join(", "));
    assert_eq!(feedback::parse(tail.as_bytes()), Err(Invalid::UnknownField));
    // A field with a bad value is one refusal: one count, one log field, one reply.
    for bundle in [false, true] {
        let mut host = request_host(&[]);
        let out = send(&mut host, &[br#"{"request_id": 42, "rating": "up"}"#], bundle);
        assert_eq!(out.reply_body.unwrap()["error"]["reason"], "request_id");
        assert_eq!(host.counter_sum("llmobs.feedback.rejected"), 1, "bundle={bundle}");
    }
}
