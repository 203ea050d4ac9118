//! Streaming redaction: never panics on any bytes for any wire, stays within its caps, forwards
//! the input unchanged when the editor finds nothing, and gives the same output whether the input
//! arrives whole or split at any point.
//!
//! Input: byte 0 picks the split point, byte 1 the wire (low 3 bits) and tight or default limits
//! (bit 3; tight limits reach the forced releases and the oversized-event path quickly); the rest
//! is the stream.
#![no_main]
use libfuzzer_sys::fuzz_target;
use llmobs_core::pii::{Detector, Entity};
use llmobs_core::redaction::stream::{Edit, Editor, StreamLimits, StreamRedactor};
use llmobs_core::token_accounting::provider::Wire;
use std::sync::OnceLock;

static DETECTOR: OnceLock<Detector> = OnceLock::new();

const WIRES: [Wire; 5] =
    [Wire::OpenAiChat, Wire::OpenAiResponses, Wire::AnthropicMessages, Wire::Gemini, Wire::BedrockConverse];

fn run(wire: Wire, limits: StreamLimits, chunks: &[&[u8]], editor: &mut Editor<'_>) -> (Vec<u8>, Vec<u16>) {
    let mut redactor = StreamRedactor::new(wire, limits);
    let (mut bytes, mut committed) = (Vec::new(), Vec::new());
    for chunk in chunks {
        let pushed = redactor.push(chunk, editor);
        bytes.extend(pushed.bytes);
        committed.extend(pushed.committed);
        assert!(redactor.held_events() <= limits.max_held_events);
        assert!(redactor.held_bytes() <= limits.max_held_bytes + limits.max_event_bytes + chunk.len());
    }
    let pushed = redactor.finish(editor);
    bytes.extend(pushed.bytes);
    committed.extend(pushed.committed);
    assert!(redactor.captured().len() <= limits.capture_bytes);
    (bytes, committed)
}

fuzz_target!(|data: &[u8]| {
    let [at, mode, body @ ..] = data else { return };
    let split = usize::from(*at) % (body.len() + 1);
    let (a, b) = body.split_at(split);
    let wire = WIRES[usize::from(mode & 7) % WIRES.len()];
    let limits = if mode & 8 != 0 {
        StreamLimits {
            window_bytes: 16,
            max_held_events: 4,
            max_held_bytes: 512,
            max_event_bytes: 256,
            capture_bytes: 7,
        }
    } else {
        StreamLimits { capture_bytes: 64, ..StreamLimits::default() }
    };

    let mut none = |_: &str| Vec::new();
    assert_eq!(run(wire, limits, &[body], &mut none).0, body);
    assert_eq!(run(wire, limits, &[a, b], &mut none).0, body);

    let detector = DETECTOR.get_or_init(|| Detector::new(&Entity::ALL));
    let mut redact = |text: &str| -> Vec<Edit> {
        detector
            .scan(text)
            .into_iter()
            .map(|m| Edit {
                start: m.start,
                end: m.end,
                replacement: Some(format!("[{}]", m.entity.label())),
                kind: m.entity as u16,
            })
            .collect()
    };
    assert_eq!(run(wire, limits, &[body], &mut redact), run(wire, limits, &[a, b], &mut redact));
});
