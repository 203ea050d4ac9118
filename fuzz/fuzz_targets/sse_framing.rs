//! SSE framing: never panics, stays within its bound, and gives the same events whether the
//! input arrives whole or split at any point.
#![no_main]
use libfuzzer_sys::fuzz_target;
use llmobs_core::framing::sse::SseParser;

fn events(chunks: &[&[u8]]) -> (Vec<(Vec<u8>, Vec<u8>)>, u64) {
    let mut parser = SseParser::new(4096);
    let mut out = Vec::new();
    for chunk in chunks {
        parser.push(chunk, &mut |e| out.push((e.event.to_vec(), e.data.to_vec())));
        assert!(parser.buffered_bytes() <= 4096 + 8);
    }
    let _ = parser.finish();
    (out, parser.oversized_events())
}

fuzz_target!(|data: &[u8]| {
    let Some((&at, body)) = data.split_first() else { return };
    let split = usize::from(at) % (body.len() + 1);
    let (a, b) = body.split_at(split);
    assert_eq!(events(&[body]), events(&[a, b]));
});
