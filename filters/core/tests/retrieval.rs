//! The retrieval-diagnostics header: parsed strictly, recorded by route, tenant and prompt
//! version, written to the log fields as numbers, and removed before the provider whatever it
//! holds; the separate correlation filter and the bundle alike.

use llmobs_core::bundle::{CorrelationFilter, FullBundle};
use llmobs_core::signals::retrieval::{self, Invalid, Retrieval};
use llmobs_core::signals::{self as sig};
use llmobs_testkit::FakeHost;
use serde_json::json;

const HEADER: &str = "x-llmobs-retrieval";
const LABELS: &str = ".route=rag;.tenant=acme;.prompt_version=support-v7;.synthetic=false;";

fn host(value: &[u8]) -> FakeHost {
    let mut host = FakeHost::with_request_headers(&[
        (":path", "/v1/chat/completions"),
        ("x-llmobs-tenant", "acme"),
        ("x-llmobs-prompt-version", "support-v7"),
    ]);
    host.add_raw_request_header(HEADER, value);
    host.set_property(&["xds", "route_name"], b"rag");
    host
}

fn correlation_config() -> serde_json::Value {
    json!({"signal_labels": {"tenant_header": "x-llmobs-tenant"}})
}

/// Runs the request headers through the separate correlation filter or the full bundle.
fn run(host: &mut FakeHost, bundle: bool) {
    if bundle {
        let sections = json!({"correlation": correlation_config(), "pii_redaction": {}, "token_accounting": {}, "error_normalization": {}});
        let f = FullBundle::new(sections.to_string().as_bytes(), host).unwrap();
        let _ = f.on_request_headers(host);
    } else {
        let f = CorrelationFilter::new(correlation_config().to_string().as_bytes(), host).unwrap();
        let _ = f.on_request_headers(host);
    }
}

#[test]
fn a_valid_header_is_recorded_by_route_tenant_and_prompt_version_logged_and_removed() {
    for bundle in [false, true] {
        let mut host = host(b"chunks=12; dropped=3; top_score=0.8239; sparse_skipped=1; empty=0");
        run(&mut host, bundle);
        assert_eq!(host.request_header_str(HEADER), None, "never reaches the provider");
        assert_eq!(host.counter(&format!("llmobs.retrieval.requests{LABELS}")), Some(1));
        assert_eq!(host.counter(&format!("llmobs.retrieval.sparse_skipped{LABELS}")), Some(1));
        assert_eq!(host.counter(&format!("llmobs.retrieval.chunks_dropped{LABELS}")), Some(3));
        assert_eq!(host.counter(&format!("llmobs.retrieval.empty{LABELS}")), None, "not empty: never defined");
        assert_eq!(host.histogram(&format!("llmobs.retrieval.chunks{LABELS}")), vec![12]);
        assert_eq!(host.histogram(&format!("llmobs.retrieval.dropped_chunks{LABELS}")), vec![3]);
        assert_eq!(host.histogram(&format!("llmobs.retrieval.top_score_milli{LABELS}")), vec![823]);
        let state = |k: &str| host.filter_state_str(k);
        assert_eq!(state(sig::FS_RETRIEVAL_CHUNKS).as_deref(), Some("12"));
        assert_eq!(state(sig::FS_RETRIEVAL_DROPPED).as_deref(), Some("3"));
        assert_eq!(state(sig::FS_RETRIEVAL_TOP_SCORE).as_deref(), Some("0.823"));
        assert_eq!(state(sig::FS_RETRIEVAL_SPARSE_SKIPPED).as_deref(), Some("1"));
        assert_eq!(state(sig::FS_RETRIEVAL_EMPTY).as_deref(), Some("0"));
        assert_eq!(state(sig::FS_RETRIEVAL_INVALID), None);
    }
}

#[test]
fn an_empty_retrieval_is_counted_as_empty_whether_said_by_the_flag_or_by_zero_chunks() {
    for value in [&b"empty=1"[..], b"chunks=0", b"chunks=0; empty=1; sparse_skipped=0"] {
        let mut host = host(value);
        run(&mut host, false);
        assert_eq!(host.counter(&format!("llmobs.retrieval.empty{LABELS}")), Some(1), "{value:?}");
        assert_eq!(host.filter_state_str(sig::FS_RETRIEVAL_EMPTY).as_deref(), Some("1"));
    }
}

#[test]
fn every_malformed_header_is_removed_counted_by_reason_and_never_recorded() {
    let long = format!("chunks=1;{}", " ".repeat(300));
    let cases: &[(&[u8], &str)] = &[
        (long.as_bytes(), "too_long"),
        (b"", "syntax"),
        (b"chunks", "syntax"),
        (b"chunks=1;", "syntax"),
        (b";chunks=1", "syntax"),
        (b"chunks = 1", "syntax"),
        (b"chunks==1", "syntax"),
        (b"chunks=1,dropped=0", "syntax"),
        (b"chunks=1,2", "value"),
        (b"ch\xc3\xbcnks=1", "syntax"),
        (b"chunks=1\x01", "syntax"),
        (b"chunks=1; recall=0.5", "unknown_key"),
        (b"chunks=1; chunks=2", "duplicate"),
        (b"chunks=-1", "value"),
        (b"chunks=+1", "value"),
        (b"chunks=01", "value"),
        (b"chunks=100001", "value"),
        (b"chunks=1e3", "value"),
        (b"top_score=1.5", "value"),
        (b"top_score=.5", "value"),
        (b"top_score=0.1234567", "value"),
        (b"top_score=0.", "value"),
        (b"top_score=-0.1", "value"),
        (b"top_score=NaN", "value"),
        (b"empty=true", "value"),
        (b"sparse_skipped=2", "value"),
        (b"chunks=2; dropped=3", "inconsistent"),
        (b"empty=1; chunks=4", "inconsistent"),
        (b"empty=1; top_score=0.5", "inconsistent"),
        (b"empty=0; chunks=0", "inconsistent"),
        (b"chunks=0; top_score=0.1", "inconsistent"),
    ];
    for bundle in [false, true] {
        for (value, reason) in cases {
            let mut host = host(value);
            run(&mut host, bundle);
            assert_eq!(host.request_header_str(HEADER), None, "{value:?} removed");
            let counter = format!("llmobs.retrieval.invalid.reason={reason};.synthetic=false;");
            assert_eq!(host.counter(&counter), Some(1), "{:?}", String::from_utf8_lossy(value));
            assert_eq!(host.counter_sum("llmobs.retrieval.requests"), 0);
            assert!(host.metric_names("llmobs.retrieval.chunks").is_empty());
            assert_eq!(host.filter_state_str(sig::FS_RETRIEVAL_INVALID).as_deref(), Some(*reason));
            assert_eq!(host.filter_state_str(sig::FS_RETRIEVAL_CHUNKS), None);
        }
    }
}

#[test]
fn scores_are_read_in_thousandths_truncated() {
    let score = |v: &str| retrieval::parse(format!("top_score={v}").as_bytes()).map(|r| r.top_score_milli);
    assert_eq!(score("0"), Ok(Some(0)));
    assert_eq!(score("1"), Ok(Some(1000)));
    assert_eq!(score("1.000000"), Ok(Some(1000)));
    assert_eq!(score("0.82"), Ok(Some(820)));
    assert_eq!(score("0.999999"), Ok(Some(999)));
    assert_eq!(score("0.0005"), Ok(Some(0)));
    assert_eq!(score("1.0001"), Err(Invalid::Value));
}

#[test]
fn members_may_come_in_any_order_with_spaces_or_tabs_around_them() {
    let r = retrieval::parse(b" empty=0 ;\tchunks=100000;dropped=100000 ").unwrap();
    assert_eq!(
        r,
        Retrieval { chunks: Some(100_000), dropped: Some(100_000), empty: Some(false), ..Retrieval::default() }
    );
}

#[test]
fn with_the_header_turned_off_it_passes_untouched_and_nothing_is_recorded() {
    let mut host = host(b"chunks=3");
    let f = CorrelationFilter::new(br#"{"retrieval": {"header": ""}}"#, &mut host).unwrap();
    let _ = f.on_request_headers(&mut host);
    assert_eq!(host.request_header_str(HEADER).as_deref(), Some("chunks=3"));
    assert!(host.metric_names("llmobs.retrieval").is_empty());
}

#[test]
fn route_and_prompt_version_labels_are_bounded_with_overflow_counted() {
    let config = json!({"retrieval": {"route_label": {"allow": ["rag"]}}, "signal_labels": {"prompt_version_label": {"max_distinct": 1}}});
    let mut host = host(b"chunks=1");
    let f = CorrelationFilter::new(config.to_string().as_bytes(), &mut host).unwrap();
    for (route, version) in [("rag", "v1"), ("other-route", "v2")] {
        host.next_request(&[
            (":path", "/v1/chat/completions"),
            ("x-llmobs-prompt-version", version),
            (HEADER, "chunks=1"),
        ]);
        host.set_property(&["xds", "route_name"], route.as_bytes());
        let _ = f.on_request_headers(&mut host);
    }
    assert_eq!(
        host.counter("llmobs.retrieval.requests.route=rag;.tenant=unknown;.prompt_version=v1;.synthetic=false;"),
        Some(1)
    );
    assert_eq!(
        host.counter("llmobs.retrieval.requests.route=_OTHER;.tenant=unknown;.prompt_version=_OTHER;.synthetic=false;"),
        Some(1)
    );
    assert_eq!(host.counter("llmobs.label_overflow.label=route;"), Some(1));
    assert_eq!(host.counter("llmobs.label_overflow.label=prompt_version;"), Some(1));
}

#[test]
fn a_feedback_request_is_never_read_for_retrieval() {
    let mut host = host(b"chunks=3");
    host.next_request(&[
        (":method", "POST"),
        (":path", "/fb"),
        ("content-type", "application/json"),
        (HEADER, "chunks=3"),
    ]);
    let f = CorrelationFilter::new(br#"{"feedback": {"path": "/fb"}}"#, &mut host).unwrap();
    let _ = f.on_request_headers(&mut host);
    assert_eq!(host.counter_sum("llmobs.retrieval"), 0);
}
