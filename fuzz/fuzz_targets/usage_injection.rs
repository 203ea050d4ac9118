//! include_usage injection: an edited body is valid JSON asking for usage; the usage-chunk
//! stripper only ever removes whole events, and removes nothing from a stream without one.
#![no_main]
use libfuzzer_sys::fuzz_target;
use llmobs_core::token_accounting::inject::{add_include_usage, asks_for_usage, UsageChunkStripper};

fuzz_target!(|data: &[u8]| {
    if let Some(edited) = add_include_usage(data) {
        assert!(serde_json::from_slice::<serde_json::Value>(&edited).is_ok());
        assert!(asks_for_usage(&edited));
    }
    let Some((&at, body)) = data.split_first() else { return };
    let split = usize::from(at) % (body.len() + 1);
    let (a, b) = body.split_at(split);
    let mut s = UsageChunkStripper::new(1 << 16);
    let mut out = s.push(a, false);
    out.extend(s.push(b, true));
    if s.removed == 0 {
        assert_eq!(out, body);
    } else {
        assert!(out.len() < body.len());
    }
});
