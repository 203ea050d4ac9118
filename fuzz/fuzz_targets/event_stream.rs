//! AWS event-stream decoding: never panics, never allocates a claimed length past its cap, and
//! decodes the same messages whole or split.
#![no_main]
use libfuzzer_sys::fuzz_target;
use llmobs_core::framing::event_stream::EventStreamDecoder;

fn messages(chunks: &[&[u8]]) -> (Vec<(Option<String>, Vec<u8>)>, bool) {
    let mut decoder = EventStreamDecoder::new(64 * 1024);
    let mut out = Vec::new();
    for chunk in chunks {
        let _ = decoder.push(chunk, &mut |m| out.push((m.event_type().map(str::to_string), m.payload().to_vec())));
    }
    let failed = decoder.failure().is_some();
    (out, failed)
}

fuzz_target!(|data: &[u8]| {
    let Some((&at, body)) = data.split_first() else { return };
    let split = usize::from(at) % (body.len() + 1);
    let (a, b) = body.split_at(split);
    assert_eq!(messages(&[body]), messages(&[a, b]));
});
