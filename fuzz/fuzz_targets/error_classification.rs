//! Error documents and classification: never panics on any body, status or header.
#![no_main]
use libfuzzer_sys::fuzz_target;
use llmobs_core::error_normalization::classify::{amzn_error_type, classify, ErrorDocument, Evidence};
use llmobs_core::error_normalization::retry_after::duration_ms;

fuzz_target!(|data: &[u8]| {
    let status = u16::from_le_bytes([data.first().copied().unwrap_or(0), data.get(1).copied().unwrap_or(0)]) % 700;
    let text = String::from_utf8_lossy(data);
    let evidence = Evidence {
        wire: None,
        status,
        document: ErrorDocument::parse(data),
        amzn_error_type: Some(amzn_error_type(&text)),
        code_details: text.chars().take(64).collect(),
        envoy_overloaded: status % 2 == 0,
    };
    let _ = classify(&evidence);
    let _ = duration_ms(&text);
});
