//! The bundle runs the four behaviours in one pass and must leave exactly what the four
//! separate filters leave, chained as Envoy chains them: the same bytes upstream and to the
//! client, the same filter state (the access log) and the same counters, for every chunk split.

use llmobs_core::bundle::{AccountingFilter, CorrelationFilter, ErrorsFilter, Flow, FullBundle, RedactionFilter};
use llmobs_core::filter_state as fs;
use llmobs_testkit::{body_pieces, chunkings, drive_body as drive, provider_fixtures, FakeHost, ProviderFixture};
use serde_json::{json, Value};

const KEY_B64: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const EMAIL: &str = "jane.canary@example.com";
const CARD: &str = "4111 1111 1111 1111";

fn sections() -> Value {
    json!({
        "correlation": {},
        "pii_redaction": {"mode": "both", "entities": {"email": "pseudonymize", "private_key": "block"}, "pseudonym_key": {"env": "LLMOBS_PII_KEY", "id": "k1"}, "restore_pseudonyms": true},
        // The shipped price table, so cost (log field and counters) is compared too.
        "token_accounting": {"prices": serde_json::from_str::<Value>(include_str!("../../../envoy/prices/default.json")).unwrap()},
        "error_normalization": {"uniform_error_body_routes": ["*"]},
    })
}

/// What one filter forwards: (bytes, end_of_stream) per continued callback.
type Forwarded = Vec<(Vec<u8>, bool)>;

fn joined(forwarded: &Forwarded) -> Vec<u8> {
    forwarded.iter().flat_map(|(b, _)| b.iter().copied()).collect()
}

/// What reached the upstream, the client, and every sink.
#[derive(Debug, PartialEq)]
struct Seen {
    upstream: Vec<u8>,
    client: Vec<u8>,
    replied: Option<u16>,
    filter_state: Vec<(String, String)>,
    counters: Vec<(String, u64)>,
}

fn seen(host: &FakeHost, upstream: Vec<u8>, client: Vec<u8>) -> Seen {
    let mut counters: Vec<(String, u64)> =
        host.metric_names("").into_iter().filter_map(|n| host.counter(&n).map(|v| (n, v))).collect();
    counters.sort();
    Seen {
        upstream,
        client,
        replied: host.local_response.as_ref().map(|r| r.0),
        filter_state: host
            .filter_state
            .iter()
            .filter(|(k, _)| !k.contains("duration") && !k.contains("time"))
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
            .collect(),
        counters,
    }
}

fn new_host(fixture: &ProviderFixture) -> FakeHost {
    let mut headers: Vec<(&str, &str)> = vec![(":path", &fixture.path)];
    headers.extend(fixture.request_headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut host = FakeHost::with_request_headers(&headers);
    host.env.insert("LLMOBS_PII_KEY".into(), KEY_B64.as_bytes().to_vec());
    host.set_property(&["plugin_name"], b"llmobs");
    // How Envoy says the exchange ended; a test of a torn-down stream sets it in `meta`.
    let details = fixture.meta.get("code_details").and_then(Value::as_str).unwrap_or("via_upstream");
    host.set_property(&["response", "code_details"], details.as_bytes());
    host
}

fn add_response_headers(host: &mut FakeHost, fixture: &ProviderFixture) {
    host.add_response_header(":status", &fixture.status.to_string());
    for (k, v) in &fixture.response_headers {
        host.add_response_header(k, v);
    }
}

fn through_bundle(fixture: &ProviderFixture, request: &[&[u8]], response: &[&[u8]], ends: bool) -> Seen {
    through_bundle_with(&sections(), fixture, request, response, ends)
}

fn through_bundle_with(
    cfg: &Value,
    fixture: &ProviderFixture,
    request: &[&[u8]],
    response: &[&[u8]],
    ends: bool,
) -> Seen {
    let mut host = new_host(fixture);
    let bundle = FullBundle::new(cfg.to_string().as_bytes(), &mut host).unwrap();
    let mut ex = bundle.on_request_headers(&mut host);
    let upstream = drive(&body_pieces(request, true), |b, n, e| bundle.on_request_body(&mut host, &mut ex, b, n, e));
    if host.local_response.is_some() {
        bundle.on_log(&mut host, &mut ex);
        return seen(&host, joined(&upstream), Vec::new());
    }
    add_response_headers(&mut host, fixture);
    bundle.on_response_headers(&mut host, &mut ex, false);
    let client = drive(&body_pieces(response, ends), |b, n, e| bundle.on_response_body(&mut host, &mut ex, b, n, e));
    bundle.on_log(&mut host, &mut ex);
    seen(&host, joined(&upstream), joined(&client))
}

/// The four separate filters in the demo's order, each with its own context and Envoy buffer;
/// responses pass them in reverse.
fn through_separate_filters(fixture: &ProviderFixture, request: &[&[u8]], response: &[&[u8]], ends: bool) -> Seen {
    through_separate_filters_with(&sections(), fixture, request, response, ends)
}

fn through_separate_filters_with(
    cfg: &Value,
    fixture: &ProviderFixture,
    request: &[&[u8]],
    response: &[&[u8]],
    ends: bool,
) -> Seen {
    let mut host = new_host(fixture);
    let section = |name: &str| cfg[name].to_string().into_bytes();
    let correlation = CorrelationFilter::new(&section("correlation"), &mut host).unwrap();
    let redaction = RedactionFilter::new(&section("pii_redaction"), &mut host).unwrap();
    let accounting = AccountingFilter::new(&section("token_accounting"), &mut host).unwrap();
    let errors = ErrorsFilter::new(&section("error_normalization"), &mut host).unwrap();
    let mut cx = correlation.on_request_headers(&mut host);
    let mut rx = redaction.on_request_headers(&mut host);
    let mut ax = accounting.on_request_headers(&mut host);
    let mut ex = errors.on_request_headers(&mut host);

    let after_redaction =
        drive(&body_pieces(request, true), |b, n, e| redaction.on_request_body(&mut host, &mut rx, b, n, e));
    let upstream = if host.local_response.is_some() {
        Vec::new()
    } else {
        drive(&after_redaction, |b, n, e| accounting.on_request_body(&mut host, &mut ax, b, n, e))
    };
    if host.local_response.is_some() {
        errors.on_log(&mut host, &mut ex);
        accounting.on_log(&mut host, &mut ax);
        redaction.on_log(&mut host, &mut rx);
        return seen(&host, joined(&upstream), Vec::new());
    }
    add_response_headers(&mut host, fixture);
    errors.on_response_headers(&mut host, &mut ex, false);
    accounting.on_response_headers(&mut host, &mut ax, false);
    redaction.on_response_headers(&mut host, &mut rx, false);
    correlation.on_response_headers(&mut host, &mut cx, false);
    let r1 = drive(&body_pieces(response, ends), |b, n, e| errors.on_response_body(&mut host, &mut ex, b, n, e));
    let r2 = drive(&r1, |b, n, e| accounting.on_response_body(&mut host, &mut ax, b, n, e));
    let client = drive(&r2, |b, n, e| redaction.on_response_body(&mut host, &mut rx, b, n, e));
    errors.on_log(&mut host, &mut ex);
    accounting.on_log(&mut host, &mut ax);
    redaction.on_log(&mut host, &mut rx);
    correlation.on_log(&mut host, &mut cx);
    seen(&host, joined(&upstream), joined(&client))
}

/// A few splits of a body: whole, two halves, 7-byte pieces, one byte at a time for short ones.
fn some_chunkings(body: &[u8]) -> Vec<Vec<&[u8]>> {
    let mut out = vec![vec![body], body.chunks(7).collect()];
    let half = body.len() / 2;
    out.push(vec![body.get(..half).unwrap_or_default(), body.get(half..).unwrap_or_default()]);
    if body.len() <= 2048 {
        out.extend(chunkings(body).into_iter().take(8));
    }
    out
}

fn chat_fixture(prompt: &str, answer: &str) -> ProviderFixture {
    let mut fixture =
        provider_fixtures().into_iter().find(|f| f.name == "openai-chat-plain").expect("the openai-chat-plain fixture");
    fixture.request_body =
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]}).to_string().into_bytes();
    let mut response: Value = serde_json::from_slice(&fixture.response_body).unwrap();
    response["choices"][0]["message"]["content"] = json!(answer);
    fixture.response_body = response.to_string().into_bytes();
    fixture.response_headers.retain(|(k, _)| k != "content-length");
    fixture
}

#[test]
fn the_bundle_leaves_what_the_four_separate_filters_leave_for_every_provider_fixture_and_split() {
    let (mut compared, mut priced) = (0, 0);
    for fixture in provider_fixtures() {
        for response in some_chunkings(&fixture.response_body) {
            let request = vec![fixture.request_body.as_slice()];
            let bundle = through_bundle(&fixture, &request, &response, true);
            let separate = through_separate_filters(&fixture, &request, &response, true);
            assert_eq!(bundle, separate, "{}", fixture.name);
            compared += 1;
            priced += usize::from(bundle.filter_state.iter().any(|(k, _)| k == fs::COST));
        }
    }
    assert!(compared > 40, "only {compared} comparisons ran");
    assert!(priced > 40, "only {priced} comparisons had a cost");
}

#[test]
fn the_bundle_redacts_a_request_and_a_response_as_the_separate_filters_do_for_every_split() {
    let fixture = chat_fixture(&format!("mail {EMAIL} card {CARD}"), &format!("I wrote to {EMAIL}."));
    for request in some_chunkings(&fixture.request_body) {
        for response in [vec![fixture.response_body.as_slice()], fixture.response_body.chunks(5).collect()] {
            let bundle = through_bundle(&fixture, &request, &response, true);
            let separate = through_separate_filters(&fixture, &request, &response, true);
            let upstream = String::from_utf8(bundle.upstream.clone()).unwrap();
            assert!(!upstream.contains(EMAIL) && !upstream.contains(CARD), "{upstream}");
            assert!(upstream.contains("[PAYMENT_CARD]"));
            assert!(!String::from_utf8_lossy(&bundle.client).contains("[EMAIL"));
            assert_eq!(bundle, separate);
        }
    }
}

/// The sections plus PII trials (`shadow`) that would block an email, a card and a ticket.
fn sections_with_trials() -> Value {
    let mut cfg = sections();
    cfg["pii_redaction"]["entities"]["email"] = json!({"action": "pseudonymize", "shadow": "block"});
    cfg["pii_redaction"]["entities"]["payment_card"] = json!({"shadow": "block"});
    cfg["pii_redaction"]["custom_rules"] =
        json!([{"entity": "ticket", "pattern": "\\bTKT-[0-9]{6}\\b", "shadow": "block"}]);
    cfg
}

#[test]
fn trials_in_a_bundle_count_as_in_the_separate_filter_and_change_nothing_for_every_fixture() {
    let without_trials = |seen: &Seen| {
        let counters: Vec<(String, u64)> = seen
            .counters
            .iter()
            .filter(|(n, _)| !n.starts_with("llmobs.pii.shadow_detections") && !n.starts_with("llmobs.pii.rule_set"))
            .cloned()
            .collect();
        let state: Vec<(String, String)> =
            seen.filter_state.iter().filter(|(k, _)| k.as_str() != fs::PII_RULE_SET).cloned().collect();
        (seen.upstream.clone(), seen.client.clone(), seen.replied, state, counters)
    };
    let mut fixtures = provider_fixtures();
    fixtures.push(chat_fixture(&format!("mail {EMAIL} card {CARD} re TKT-123456"), &format!("I wrote to {EMAIL}.")));
    let mut counted = 0;
    for fixture in &fixtures {
        let request = [fixture.request_body.as_slice()];
        let response: Vec<&[u8]> = fixture.response_body.chunks(7).collect();
        let bundle = through_bundle_with(&sections_with_trials(), fixture, &request, &response, true);
        let separate = through_separate_filters_with(&sections_with_trials(), fixture, &request, &response, true);
        assert_eq!(bundle, separate, "{}", fixture.name);
        let plain = through_bundle(fixture, &request, &response, true);
        assert_eq!(without_trials(&bundle), without_trials(&plain), "{}: a trial changed something", fixture.name);
        counted += bundle.counters.iter().filter(|(n, _)| n.starts_with("llmobs.pii.shadow_detections")).count();
    }
    let last = fixtures.last().unwrap();
    let bundle =
        through_bundle_with(&sections_with_trials(), last, &[&last.request_body], &[&last.response_body], true);
    assert_eq!(bundle.replied, None, "three blocks on trial refuse nothing");
    let count = |name: &str| bundle.counters.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
    for entity in ["email", "payment_card", "ticket"] {
        let name = format!("llmobs.pii.shadow_detections.entity={entity};.action=block;.direction=request;");
        assert_eq!(count(&name), Some(1), "{entity}");
    }
    assert!(counted >= 4, "only {counted} trial series");
}

#[test]
fn a_blocked_value_is_refused_once_and_nothing_goes_upstream() {
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n-----END RSA PRIVATE KEY-----";
    let fixture = chat_fixture(&format!("key {pem}"), "ok");
    let mut host = new_host(&fixture);
    let bundle = FullBundle::new(sections().to_string().as_bytes(), &mut host).unwrap();
    let mut ex = bundle.on_request_headers(&mut host);
    let chunks: Vec<(Vec<u8>, bool)> = body_pieces(&fixture.request_body.chunks(9).collect::<Vec<_>>(), true);
    let upstream = drive(&chunks, |b, n, e| bundle.on_request_body(&mut host, &mut ex, b, n, e));
    assert!(upstream.is_empty());
    assert_eq!(host.local_response.as_ref().map(|r| r.0), Some(400));
    assert_eq!(bundle.on_request_trailers(&mut host, &mut ex), Flow::Pause);
}

#[test]
fn an_error_body_is_replaced_by_the_uniform_one_after_the_whole_body_is_held() {
    let mut fixture = chat_fixture("hello", "unused");
    fixture.status = 429;
    fixture.response_body =
        br#"{"error":{"message":"Rate limit reached for requests","type":"requests","code":"rate_limit_exceeded"}}"#
            .to_vec();
    let response: Vec<&[u8]> = fixture.response_body.chunks(3).collect();
    let bundle = through_bundle(&fixture, &[fixture.request_body.as_slice()], &response, true);
    let body: Value = serde_json::from_slice(&bundle.client).unwrap();
    assert!(body["error"]["type"].is_string(), "{body}");
    assert_eq!(bundle, through_separate_filters(&fixture, &[fixture.request_body.as_slice()], &response, true));
}

#[test]
fn a_missing_section_turns_its_behaviour_off() {
    let fixture = chat_fixture(&format!("mail {EMAIL}"), "ok");
    let mut host = new_host(&fixture);
    let bundle = FullBundle::new(br#"{"token_accounting": {}}"#, &mut host).unwrap();
    let mut ex = bundle.on_request_headers(&mut host);
    let upstream = drive(&body_pieces(&[&fixture.request_body], true), |b, n, e| {
        bundle.on_request_body(&mut host, &mut ex, b, n, e)
    });
    assert_eq!(joined(&upstream), fixture.request_body);
    assert_eq!(host.filter_state_str(fs::PII_RULE_SET), None);
}

#[test]
fn a_bad_section_is_refused_with_the_section_in_the_field_path() {
    let mut host = new_host(&chat_fixture("x", "y"));
    let err = FullBundle::new(br#"{"pii_redaction": {"mode": "loud"}}"#, &mut host).unwrap_err();
    assert_eq!(err.field, "pii_redaction.mode");
    let err = FullBundle::new(br#"{"token_acounting": {}}"#, &mut host).unwrap_err();
    assert_eq!(err.field, "token_acounting");
    assert!(err.reason.contains("unknown section"), "{}", err.reason);
    assert_eq!(FullBundle::new(b"{}", &mut host).unwrap_err().field, ".");
    assert_eq!(FullBundle::new(b"[1]", &mut host).unwrap_err().field, ".");
}

#[test]
fn every_sections_errors_are_reported_together_under_their_section() {
    let mut host = new_host(&chat_fixture("x", "y"));
    let config = json!({
        "extra": {},
        "correlation": {"sample_rate": 2.0},
        "pii_redaction": {"mode": "loud", "custom_rules": [{"entity": "e", "pattern": "(?=x)", "action": "redact"}]},
        "token_accounting": {"unknown_knob": 1},
    });
    let err = FullBundle::new(config.to_string().as_bytes(), &mut host).unwrap_err();
    let fields: Vec<String> = err.into_all().into_iter().map(|e| e.field).collect();
    assert_eq!(fields, ["extra", "correlation.sample_rate", "pii_redaction.mode", "token_accounting.unknown_knob"]);
}

#[test]
fn accounting_reads_the_model_from_redactions_parse_exactly_as_from_its_own() {
    let base = chat_fixture(&format!("mail {EMAIL}"), "ok");
    let bodies = [
        json!({"model": "gpt-4o-mini", "stream": false, "messages": [{"role": "user", "content": EMAIL}]}),
        json!({"model": "", "messages": [{"role": "user", "content": "x"}]}),
        json!({"model": 7, "messages": [{"role": "user", "content": "x"}]}),
        json!({"model": "m", "stream": "yes", "messages": [{"role": "user", "content": "x"}]}),
        json!({"stream": null, "messages": [{"role": "user", "content": "x"}]}),
        json!(["gpt-4o-mini", true]),
    ];
    let raw = [r#"{"model":"a","model":"b","messages":[{"role":"user","content":"x"}]}"#.to_string()];
    for body in bodies.iter().map(Value::to_string).chain(raw) {
        let mut fixture = base.clone();
        fixture.request_body = body.clone().into_bytes();
        let request: Vec<&[u8]> = fixture.request_body.chunks(11).collect();
        let response = [fixture.response_body.as_slice()];
        let bundle = through_bundle(&fixture, &request, &response, true);
        assert_eq!(bundle, through_separate_filters(&fixture, &request, &response, true), "{body}");
    }
}

fn over_limit_request(policy: &str) -> (FakeHost, Forwarded) {
    let fixture = chat_fixture("x", "y");
    let mut host = new_host(&fixture);
    host.request_headers.push(("content-length".into(), b"10485760".to_vec()));
    let config = json!({"pii_redaction": {"mode": "traffic", "max_inspected_bytes": 1024, "over_limit": policy}});
    let bundle = FullBundle::new(config.to_string().as_bytes(), &mut host).unwrap();
    let mut ex = bundle.on_request_headers(&mut host);
    // The first callback carries far less than the limit: the stated length decides.
    let first = vec![b' '; 100];
    let forwarded = drive(&[(first, false)], |b, n, e| bundle.on_request_body(&mut host, &mut ex, b, n, e));
    (host, forwarded)
}

#[test]
fn a_request_whose_stated_length_is_over_the_limit_is_never_held() {
    let (host, forwarded) = over_limit_request("pass");
    assert_eq!(forwarded.len(), 1, "forwarded at the first callback, not held");
    assert_eq!(host.request_header_str("content-length").as_deref(), Some("10485760"));
    assert!(host.local_response.is_none());
    let (host, forwarded) = over_limit_request("block");
    assert!(forwarded.is_empty());
    assert_eq!(host.local_response.as_ref().map(|r| r.0), Some(413), "refused at the first callback");
}

/// Accounting after error normalization's headers, as the bundle runs them: does it follow
/// error normalization's tracker (and so stop wanting the body itself)?
fn accounting_follows(fixture: &ProviderFixture, accounting_config: &str) -> bool {
    use llmobs_core::error_normalization::ErrorNormalization;
    use llmobs_core::token_accounting::TokenAccounting;
    let mut host = new_host(fixture);
    let errors = ErrorNormalization::new(b"{}", &mut host).unwrap();
    let accounting = TokenAccounting::new(accounting_config.as_bytes(), &mut host).unwrap();
    let mut ex = errors.on_request_headers(&mut host);
    let mut ax = accounting.on_request_headers(&mut host);
    accounting.on_request_body(&mut ax, &fixture.request_body, true);
    add_response_headers(&mut host, fixture);
    errors.on_response_headers(&mut host, &mut ex, false);
    accounting.on_response_headers_led(&mut host, &mut ax, false, Some(ex.response_mut()));
    !ax.wants_response_body()
}

#[test]
fn in_the_bundle_accounting_reads_a_stream_through_error_normalizations_parse_and_other_bodies_itself() {
    let fixture = |name: &str| provider_fixtures().into_iter().find(|f| f.name == name).unwrap();
    // Successful streams of every framing: SSE, AWS event-stream, a Gemini JSON array.
    for name in ["openai-chat-stream-usage", "bedrock-converse-stream", "gemini-stream-json-array"] {
        assert!(accounting_follows(&fixture(name), "{}"), "{name}");
    }
    // A buffered body: accounting reads success bodies, error normalization does not.
    assert!(!accounting_follows(&fixture("openai-chat-plain"), "{}"));
    // An error response, even one labelled as a stream: the two keep error bodies to different limits.
    let mut failed_stream = fixture("openai-chat-stream-usage");
    failed_stream.status = 503;
    assert!(!accounting_follows(&failed_stream, "{}"));
    // A different frame limit reads differently: each parses its own.
    assert!(!accounting_follows(&fixture("openai-chat-stream-usage"), r#"{"max_frame_bytes": 4096}"#));
}

/// One way through the pack: the bundle, or the four separate filters.
type Pass = fn(&ProviderFixture, &[&[u8]], &[&[u8]], bool) -> Seen;

#[test]
fn a_stream_torn_down_midway_ends_in_the_bundle_as_in_the_separate_filters() {
    let mut compared = 0;
    for fixture in provider_fixtures().into_iter().filter(|f| f.status < 400) {
        let half = fixture.response_body.len() / 2;
        let response = [&fixture.response_body[..half]];
        let request = [fixture.request_body.as_slice()];
        for details in ["downstream_remote_disconnect", "upstream_reset_after_response_started{remote_reset}"] {
            let cut = |seen: Pass| {
                let mut f = fixture.clone();
                f.meta["code_details"] = Value::from(details);
                seen(&f, &request, &response, false)
            };
            assert_eq!(cut(through_bundle), cut(through_separate_filters), "{} {details}", fixture.name);
            compared += 1;
        }
    }
    assert!(compared > 40, "only {compared} comparisons ran");
}

#[test]
fn the_bundle_reads_agent_signals_as_the_separate_filters_do_for_every_agent_fixture_and_split() {
    let mut compared = 0;
    for agent in llmobs_testkit::agent_fixtures() {
        let fixture = ProviderFixture {
            name: agent.name.clone(),
            meta: json!({}),
            path: agent.path.clone(),
            request_headers: agent.request_headers.clone(),
            request_body: agent.request_body.clone(),
            status: 200,
            response_headers: vec![("content-type".into(), "application/json".into())],
            response_body: b"{}".to_vec(),
        };
        for request in some_chunkings(&fixture.request_body) {
            let bundle = through_bundle(&fixture, &request, &[b"{}"], true);
            assert!(bundle.filter_state.iter().any(|(k, _)| k == "llmobs.agent.iteration"), "{}", fixture.name);
            assert_eq!(bundle, through_separate_filters(&fixture, &request, &[b"{}"], true), "{}", fixture.name);
            compared += 1;
        }
    }
    assert!(compared > 40, "only {compared} comparisons ran");
}

#[test]
fn the_bundle_reads_tool_calls_as_the_separate_filters_do_for_every_tool_response_and_split() {
    let mut compared = 0;
    for fixture in llmobs_testkit::agent_response_fixtures() {
        for response in some_chunkings(&fixture.response_body) {
            let request = vec![fixture.request_body.as_slice()];
            let bundle = through_bundle(&fixture, &request, &response, true);
            assert!(bundle.filter_state.iter().any(|(k, _)| k == "llmobs.tool_calls"), "{}", fixture.name);
            assert_eq!(bundle, through_separate_filters(&fixture, &request, &response, true), "{}", fixture.name);
            compared += 1;
        }
    }
    assert!(compared > 30, "only {compared} comparisons ran");
}

#[test]
fn an_errors_prompt_version_label_is_the_one_accounting_decided_in_the_bundle_and_the_separate_filters() {
    let mut fixture = chat_fixture("hello", "unused");
    fixture.status = 429;
    fixture.response_body =
        br#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#.to_vec();
    fixture.request_headers.push(("x-llmobs-prompt-version".into(), "support-v7".into()));
    let body = fixture.response_body.clone();
    let bundle = through_bundle(&fixture, &[&fixture.request_body], &[&body], true);
    let errors: Vec<&(String, u64)> = bundle.counters.iter().filter(|(n, _)| n.starts_with("llmobs.errors.")).collect();
    assert!(!errors.is_empty() && errors.iter().all(|(n, _)| n.contains(".prompt_version=support-v7;")), "{errors:?}");
    assert_eq!(bundle, through_separate_filters(&fixture, &[&fixture.request_body], &[&body], true));
}
