//! PII detectors: any text gives matches inside it, on character boundaries, sorted and not
//! overlapping, and never a panic; the Wasm build's anchor gate gives the same matches. The
//! national phone writings of every region (not only the default `phone_regions`) are searched
//! too.
#![no_main]
use libfuzzer_sys::fuzz_target;
use llmobs_core::pii::{Detector, PhoneRegions};
use std::sync::OnceLock;

static DETECTOR: OnceLock<Detector> = OnceLock::new();
static ANCHORED: OnceLock<Detector> = OnceLock::new();
static EVERY_REGION: OnceLock<Detector> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let detector = DETECTOR.get_or_init(Detector::default);
    let anchored = ANCHORED.get_or_init(|| Detector::default().with_anchor_gate(true));
    let every_region = EVERY_REGION.get_or_init(|| Detector::default().with_phone_regions(PhoneRegions::all()));
    let found = detector.scan(&text);
    assert_eq!(found, anchored.scan(&text));
    for found in [found, every_region.scan(&text)] {
        let mut last_end = 0;
        for m in found {
            assert!(m.start < m.end && m.end <= text.len());
            assert!(text.is_char_boundary(m.start) && text.is_char_boundary(m.end));
            assert!(m.start >= last_end);
            last_end = m.end;
        }
    }
});
