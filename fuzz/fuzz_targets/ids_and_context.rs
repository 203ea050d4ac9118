//! Id, traceparent and baggage validation: never panic; whatever is kept is valid.
#![no_main]
use libfuzzer_sys::fuzz_target;
use llmobs_core::baggage::{self, Limits};
use llmobs_core::{id, trace_context};

fuzz_target!(|data: &[u8]| {
    if let Ok(kept) = id::validate(data) {
        assert!(kept.bytes().all(|b| b.is_ascii_alphanumeric() || b".:_-".contains(&b)));
    }
    if let Some(tp) = trace_context::parse(data) {
        assert!(trace_context::parse(tp.header_value().as_bytes()).is_some());
    }
    let filtered = baggage::filter(data, Limits::default(), &|k| k.len() % 2 == 0);
    if let Some(value) = filtered.value {
        assert!(value.len() <= 8192);
        assert!(value.bytes().all(|b| (0x20..0x7f).contains(&b)));
    }
});
