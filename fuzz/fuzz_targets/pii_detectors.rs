//! PII detectors: any text gives matches inside it, on character boundaries, sorted and not
//! overlapping, and never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use llmobs_core::pii::Detector;
use std::sync::OnceLock;

static DETECTOR: OnceLock<Detector> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let detector = DETECTOR.get_or_init(Detector::default);
    let mut last_end = 0;
    for m in detector.scan(&text) {
        assert!(m.start < m.end && m.end <= text.len());
        assert!(text.is_char_boundary(m.start) && text.is_char_boundary(m.end));
        assert!(m.start >= last_end);
        last_end = m.end;
    }
});
