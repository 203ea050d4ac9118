//! AWS event-stream decoding: never panics, never holds more than its cap (a claimed length past
//! the cap is passed over, not buffered), and decodes the same messages, failure and oversized
//! count whole or split. A small cap as well as the default-like one, so messages over the cap
//! (skipped, decoding going on after them) are reached by the fuzzer.
#![no_main]
use libfuzzer_sys::fuzz_target;
use llmobs_core::framing::event_stream::EventStreamDecoder;

type Outcome = (Vec<(Option<String>, Vec<u8>)>, bool, u64);

fn messages(chunks: &[&[u8]], cap: usize) -> Outcome {
    let mut decoder = EventStreamDecoder::new(cap);
    let mut out = Vec::new();
    for chunk in chunks {
        let _ = decoder.push(chunk, &mut |m| out.push((m.event_type().map(str::to_string), m.payload().to_vec())));
        assert!(decoder.buffered_bytes() <= cap.max(11), "held {} over a cap of {cap}", decoder.buffered_bytes());
    }
    (out, decoder.failure().is_some(), decoder.oversized_messages())
}

fuzz_target!(|data: &[u8]| {
    let Some((&at, body)) = data.split_first() else { return };
    let split = usize::from(at) % (body.len() + 1);
    let (a, b) = body.split_at(split);
    for cap in [64 * 1024, 48] {
        assert_eq!(messages(&[body], cap), messages(&[a, b], cap));
    }
});
