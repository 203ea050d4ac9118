//! The retrieval-diagnostics header: any value never panics; a kept report holds numbers in
//! their documented ranges that agree with each other; through the correlation filter the
//! header is always removed and only documented values reach the log fields.
#![no_main]
use libfuzzer_sys::fuzz_target;
use llmobs_core::bundle::CorrelationFilter;
use llmobs_core::signals::retrieval;
use llmobs_testkit::FakeHost;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = retrieval::parse(data) {
        assert!(data.len() <= retrieval::MAX_VALUE_BYTES);
        assert!(r.chunks.is_none_or(|c| c <= retrieval::MAX_CHUNKS));
        assert!(r.top_score_milli.is_none_or(|s| s <= 1000));
        if let (Some(c), Some(d)) = (r.chunks, r.dropped) {
            assert!(d <= c);
        }
        if r.empty == Some(true) {
            assert!(r.chunks.unwrap_or(0) == 0 && r.top_score_milli.is_none());
        }
    }
    let mut host = FakeHost::default();
    host.add_raw_request_header(":path", b"/v1/chat/completions");
    host.add_raw_request_header("x-llmobs-retrieval", data);
    let Ok(f) = CorrelationFilter::new(b"{}", &mut host) else { return };
    let _ = f.on_request_headers(&mut host);
    assert!(host.request_header_str("x-llmobs-retrieval").is_none(), "always removed");
    for (key, value) in &host.filter_state {
        if key.starts_with("llmobs.retrieval.") {
            assert!(value.len() <= 12 && value.iter().all(|b| b.is_ascii_alphanumeric() || b"._".contains(b)));
        }
    }
});
