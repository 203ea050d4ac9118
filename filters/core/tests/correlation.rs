use llmobs_core::correlation::{Correlation, IdKind};
use llmobs_core::filter_state as fs;
use llmobs_testkit::FakeHost;

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn filter(host: &mut FakeHost, config: &str) -> Correlation {
    Correlation::new(config.as_bytes(), host).unwrap()
}

fn rejected(host: &FakeHost, id: &str, reason: &str) -> u64 {
    // A series not counted yet is not defined yet: zero.
    host.counter(&format!("llmobs.correlation.ids_rejected.id={id};.reason={reason};.synthetic=false;")).unwrap_or(0)
}

fn minted(host: &FakeHost, id: &str) -> u64 {
    host.counter(&format!("llmobs.correlation.ids_minted.id={id};.synthetic=false;")).unwrap_or(0)
}

fn is_fresh_id(value: &str) -> bool {
    value.len() == 32 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

#[test]
fn a_valid_request_id_is_kept_and_written_to_filter_state() {
    let mut host = FakeHost::with_request_headers(&[("x-request-id", "req-123"), ("traceparent", TP)]);
    let f = filter(&mut host, "");
    let ids = f.on_request_headers(&mut host);
    assert_eq!(ids.request_id, "req-123");
    assert_eq!(host.request_header_str("x-request-id").as_deref(), Some("req-123"));
    assert_eq!(host.filter_state_str(fs::REQUEST_ID).as_deref(), Some("req-123"));
    assert_eq!(host.filter_state_str(fs::IDS_REPLACED), None);
    assert_eq!(host.counter_sum("llmobs.correlation.ids_rejected"), 0);
    assert_eq!(host.counter_sum("llmobs.correlation.ids_minted"), 0);
}

#[test]
fn invalid_request_ids_are_replaced_counted_and_never_recorded() {
    let cases: &[(&[u8], &str)] = &[
        (b"has space", "charset"),
        (b"quote\"d", "charset"),
        (b"<script>alert(1)</script>", "charset"),
        ("caf\u{e9}".as_bytes(), "charset"),
        (b"\xff\xfe", "charset"),
        (b"a\r\nx-injected: 1", "charset"),
        (b"", "empty"),
    ];
    for (raw, reason) in cases {
        let mut host = FakeHost::default();
        host.add_raw_request_header("x-request-id", raw);
        let f = filter(&mut host, "");
        let ids = f.on_request_headers(&mut host);
        assert!(is_fresh_id(&ids.request_id), "{raw:?}");
        assert_eq!(host.request_header_str("x-request-id"), Some(ids.request_id.clone()));
        assert_eq!(rejected(&host, "request_id", reason), 1, "{raw:?}");
        assert_eq!(minted(&host, "request_id"), 1);
        assert_eq!(host.filter_state_str(fs::IDS_REPLACED).as_deref(), Some("request_id"));
        let raw_text = String::from_utf8_lossy(raw);
        if !raw_text.is_empty() {
            assert!(!host.all_sinks().contains(raw_text.as_ref()), "{raw:?} leaked");
        }
    }
}

#[test]
fn an_over_long_request_id_is_rejected_as_too_long() {
    let long = "a".repeat(129);
    let mut host = FakeHost::with_request_headers(&[("x-request-id", &long)]);
    let f = filter(&mut host, "");
    let ids = f.on_request_headers(&mut host);
    assert!(is_fresh_id(&ids.request_id));
    assert_eq!(rejected(&host, "request_id", "too_long"), 1);
    assert!(!host.all_sinks().contains(&long));
}

#[test]
fn a_missing_request_id_is_minted_and_sent_upstream() {
    let mut host = FakeHost::default();
    let f = filter(&mut host, "");
    let ids = f.on_request_headers(&mut host);
    assert!(is_fresh_id(&ids.request_id));
    assert_eq!(host.request_header_str("x-request-id"), Some(ids.request_id));
    assert_eq!(minted(&host, "request_id"), 1);
}

#[test]
fn the_conversation_id_comes_from_the_first_configured_header_present() {
    let mut host =
        FakeHost::with_request_headers(&[("x-session-id", "opencode-1"), ("x-claude-code-session-id", "claude-7")]);
    let f = filter(&mut host, "");
    let ids = f.on_request_headers(&mut host);
    assert_eq!(ids.conversation_id.as_deref(), Some("claude-7"));
    assert_eq!(host.filter_state_str(fs::CONVERSATION_ID).as_deref(), Some("claude-7"));
}

#[test]
fn agent_headers_map_to_agent_and_parent_ids() {
    let mut host = FakeHost::with_request_headers(&[
        ("x-claude-code-agent-id", "agent-a"),
        ("x-claude-code-parent-agent-id", "agent-root"),
        ("x-agent-run-id", "run-9"),
    ]);
    let f = filter(&mut host, "");
    let ids = f.on_request_headers(&mut host);
    assert_eq!(ids.agent_id.as_deref(), Some("agent-a"));
    assert_eq!(ids.parent_agent_id.as_deref(), Some("agent-root"));
    assert_eq!(ids.agent_run_id.as_deref(), Some("run-9"));
    assert_eq!(host.filter_state_str(fs::AGENT_ID).as_deref(), Some("agent-a"));
    assert_eq!(host.filter_state_str(fs::PARENT_AGENT_ID).as_deref(), Some("agent-root"));
    assert_eq!(host.filter_state_str(fs::AGENT_RUN_ID).as_deref(), Some("run-9"));
}

#[test]
fn an_invalid_conversation_id_is_replaced_in_its_header_and_lower_priority_invalid_ones_removed() {
    let mut host = FakeHost::with_request_headers(&[("x-conversation-id", "bad id"), ("session-id", "also bad")]);
    let f = filter(&mut host, "");
    let ids = f.on_request_headers(&mut host);
    let conv = ids.conversation_id.unwrap();
    assert!(is_fresh_id(&conv));
    assert_eq!(host.request_header_str("x-conversation-id"), Some(conv));
    assert_eq!(host.request_header_str("session-id"), None);
    assert_eq!(rejected(&host, "conversation_id", "charset"), 2);
    assert_eq!(minted(&host, "conversation_id"), 1);
}

#[test]
fn absent_optional_ids_stay_absent_unless_minting_is_configured() {
    let mut host = FakeHost::default();
    let f = filter(&mut host, "");
    let ids = f.on_request_headers(&mut host);
    assert_eq!(ids.conversation_id, None);
    assert_eq!(host.filter_state_str(fs::CONVERSATION_ID), None);

    let mut host = FakeHost::default();
    let f = filter(&mut host, r#"{"agent_run_id": {"headers": ["x-run"], "mint_when_absent": true}}"#);
    let ids = f.on_request_headers(&mut host);
    let run = ids.agent_run_id.unwrap();
    assert!(is_fresh_id(&run));
    assert_eq!(host.request_header_str("x-run"), Some(run));
    assert_eq!(minted(&host, "agent_run_id"), 1);
}

#[test]
fn a_valid_traceparent_is_kept_with_its_tracestate() {
    let mut host = FakeHost::with_request_headers(&[("traceparent", TP), ("tracestate", "vendor=1")]);
    let f = filter(&mut host, "");
    let ids = f.on_request_headers(&mut host);
    assert_eq!(ids.trace_id.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
    assert_eq!(host.request_header_str("traceparent").as_deref(), Some(TP));
    assert_eq!(host.request_header_str("tracestate").as_deref(), Some("vendor=1"));
    assert_eq!(host.filter_state_str(fs::TRACE_ID).as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
}

#[test]
fn an_invalid_traceparent_is_replaced_and_its_tracestate_dropped() {
    let mut host = FakeHost::with_request_headers(&[("traceparent", "00-zz-bad"), ("tracestate", "vendor=1")]);
    let f = filter(&mut host, "");
    let ids = f.on_request_headers(&mut host);
    let forwarded = host.request_header_str("traceparent").unwrap();
    let parsed = llmobs_core::trace_context::parse(forwarded.as_bytes()).unwrap();
    assert_eq!(ids.trace_id, Some(parsed.trace_id));
    assert_eq!(host.request_header_str("tracestate"), None);
    assert_eq!(rejected(&host, "traceparent", "format"), 1);
    assert_eq!(minted(&host, "traceparent"), 1);
    assert!(ids.replaced.contains(&IdKind::TraceParent));
}

#[test]
fn a_missing_traceparent_is_minted_with_the_sampling_decision_as_its_flag() {
    for (rate, flag) in [("1", "01"), ("0", "00")] {
        let mut host = FakeHost::default();
        let f = filter(&mut host, &format!(r#"{{"sample_rate": {rate}}}"#));
        f.on_request_headers(&mut host);
        let tp = host.request_header_str("traceparent").unwrap();
        assert!(tp.ends_with(flag), "{tp}");
        assert_eq!(minted(&host, "traceparent"), 1);
    }
}

#[test]
fn in_observe_mode_a_valid_traceparent_is_recorded_and_an_invalid_one_removed_never_minted() {
    let mut host = FakeHost::with_request_headers(&[("traceparent", "garbage"), ("tracestate", "v=1")]);
    let f = filter(&mut host, r#"{"trace_context": "observe"}"#);
    let ids = f.on_request_headers(&mut host);
    assert_eq!(ids.trace_id, None);
    assert_eq!(host.request_header_str("traceparent"), None);
    assert_eq!(host.request_header_str("tracestate"), None);
    assert_eq!(minted(&host, "traceparent"), 0);
    assert_eq!(rejected(&host, "traceparent", "format"), 1);

    let mut host = FakeHost::with_request_headers(&[("traceparent", TP)]);
    let f = filter(&mut host, r#"{"trace_context": "observe"}"#);
    let ids = f.on_request_headers(&mut host);
    assert_eq!(ids.trace_id.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
    assert_eq!(host.request_header_str("traceparent").as_deref(), Some(TP));

    let mut host = FakeHost::default();
    let f = filter(&mut host, r#"{"trace_context": "observe"}"#);
    f.on_request_headers(&mut host);
    assert_eq!(host.request_header_str("traceparent"), None);
}

#[test]
fn by_default_all_baggage_is_stripped_and_counted() {
    let mut host = FakeHost::with_request_headers(&[("baggage", "tenant=acme,user.email=x%40y")]);
    let f = filter(&mut host, "");
    f.on_request_headers(&mut host);
    assert_eq!(host.request_header_str("baggage"), None);
    assert_eq!(host.counter("llmobs.correlation.baggage_members_stripped.reason=policy;.synthetic=false;"), Some(2));
}

#[test]
fn baggage_keys_allowed_for_the_destination_cluster_pass() {
    let config = r#"{"baggage": {"destinations": [{"cluster": "openai", "allow_keys": ["tenant"]}]}}"#;
    let mut host = FakeHost::with_request_headers(&[("baggage", "tenant=acme,user=bob")]);
    host.set_property(&["xds", "cluster_name"], b"openai");
    let f = filter(&mut host, config);
    f.on_request_headers(&mut host);
    assert_eq!(host.request_header_str("baggage").as_deref(), Some("tenant=acme"));

    let mut host = FakeHost::with_request_headers(&[("baggage", "tenant=acme,user=bob")]);
    host.set_property(&["xds", "cluster_name"], b"anthropic");
    let f = filter(&mut host, config);
    f.on_request_headers(&mut host);
    assert_eq!(host.request_header_str("baggage"), None);
}

#[test]
fn baggage_destinations_match_the_authority_with_or_without_port() {
    let config = r#"{"baggage": {"destinations": [{"authority": "api.example.com", "allow_keys": ["tenant"]}]}}"#;
    for authority in ["api.example.com", "API.example.com:443"] {
        let mut host = FakeHost::with_request_headers(&[(":authority", authority), ("baggage", "tenant=acme,x=1")]);
        let f = filter(&mut host, config);
        f.on_request_headers(&mut host);
        assert_eq!(host.request_header_str("baggage").as_deref(), Some("tenant=acme"), "{authority}");
    }
}

#[test]
fn oversized_baggage_is_cut_to_the_configured_limits() {
    let header: Vec<String> = (0..10).map(|i| format!("k{i}=v")).collect();
    let mut host = FakeHost::with_request_headers(&[("baggage", &header.join(","))]);
    let f = filter(&mut host, r#"{"baggage": {"max_members": 3, "default_allow_keys": ["k0", "k1", "k2", "k3"]}}"#);
    f.on_request_headers(&mut host);
    assert_eq!(host.request_header_str("baggage").as_deref(), Some("k0=v,k1=v,k2=v"));
    assert_eq!(
        host.counter("llmobs.correlation.baggage_members_stripped.reason=over_limit;.synthetic=false;"),
        Some(7)
    );
}

#[test]
fn a_synthetic_probe_is_flagged_and_counted_apart() {
    let mut host = FakeHost::with_request_headers(&[("x-llmobs-synthetic", "true"), ("x-request-id", "bad id")]);
    let f = filter(&mut host, "");
    let ids = f.on_request_headers(&mut host);
    assert!(ids.synthetic);
    assert_eq!(host.filter_state_str(fs::SYNTHETIC).as_deref(), Some("true"));
    assert_eq!(host.counter("llmobs.correlation.requests.synthetic=true;"), Some(1));
    assert_eq!(host.counter("llmobs.correlation.requests.synthetic=false;"), Some(0));
    assert_eq!(host.counter("llmobs.correlation.ids_rejected.id=request_id;.reason=charset;.synthetic=true;"), Some(1));

    host.next_request(&[("x-llmobs-synthetic", "no")]);
    let ids = f.on_request_headers(&mut host);
    assert!(!ids.synthetic);
    assert_eq!(host.filter_state_str(fs::SYNTHETIC).as_deref(), Some("false"));
}

#[test]
fn the_sampling_decision_follows_the_request_id_and_is_written_once() {
    let mut host = FakeHost::default();
    let f = filter(&mut host, r#"{"sample_rate": 0.5}"#);
    let mut sampled = 0;
    for i in 0..400 {
        let id = format!("req-{i}");
        host.next_request(&[("x-request-id", &id)]);
        let ids = f.on_request_headers(&mut host);
        assert_eq!(ids.sampled, llmobs_core::sampling::is_sampled(&id, 0.5));
        assert_eq!(host.filter_state_str(fs::SAMPLED).as_deref(), Some(if ids.sampled { "true" } else { "false" }));
        sampled += usize::from(ids.sampled);
    }
    // Binomial(400, 0.5): mean 200, standard deviation 10.
    assert!((150..=250).contains(&sampled), "{sampled}");
}

#[test]
fn ids_are_echoed_in_the_configured_response_headers() {
    let mut host =
        FakeHost::with_request_headers(&[("x-request-id", "r1"), ("x-conversation-id", "c1"), ("traceparent", TP)]);
    let f = filter(&mut host, r#"{"echo": {"agent_run_id": "", "trace_id": "x-my-trace"}}"#);
    let ids = f.on_request_headers(&mut host);
    f.on_response_headers(&mut host, &ids);
    assert_eq!(host.response_header_str("x-request-id"), Some("r1"));
    assert_eq!(host.response_header_str("x-conversation-id"), Some("c1"));
    assert_eq!(host.response_header_str("x-my-trace"), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
    assert_eq!(host.response_header_str("x-agent-run-id"), None);
}

#[test]
fn a_counter_is_defined_when_first_counted_and_never_again() {
    let mut host = FakeHost::default();
    let f = filter(&mut host, "");
    // Only the request counter's two series (organic, synthetic) exist before any request.
    assert_eq!(host.metric_names("llmobs.correlation.").len(), 2);
    host.next_request(&[("x-request-id", "bad id"), ("baggage", "a=1")]);
    f.on_request_headers(&mut host);
    let after_first = host.metrics.len();
    assert!(after_first > 2);
    for _ in 0..4 {
        host.next_request(&[("x-request-id", "bad id"), ("baggage", "a=1")]);
        f.on_request_headers(&mut host);
    }
    assert_eq!(host.metrics.len(), after_first);
    assert_eq!(host.counter("llmobs.correlation.requests.synthetic=false;"), Some(5));
    assert_eq!(rejected(&host, "request_id", "charset"), 5);
    assert_eq!(rejected(&host, "conversation_id", "charset"), 0);
}

#[test]
fn a_host_that_refuses_metrics_fails_configuration_cleanly() {
    let mut host = FakeHost::refusing_metrics();
    let err = Correlation::new(b"", &mut host).unwrap_err();
    assert!(err.reason.contains("define_metric"), "{err}");
}

#[test]
fn a_bad_configuration_is_an_error_not_a_panic() {
    let mut host = FakeHost::default();
    let err = Correlation::new(br#"{"sample_rate": -1}"#, &mut host).unwrap_err();
    assert_eq!(err.field, "sample_rate");
}
