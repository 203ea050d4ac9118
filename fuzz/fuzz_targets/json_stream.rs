//! JSON-array and NDJSON splitting: never panics and is split-invariant.
#![no_main]
use libfuzzer_sys::fuzz_target;
use llmobs_core::framing::json_stream::{JsonArraySplitter, NdjsonSplitter};

fn array(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut s = JsonArraySplitter::new(4096);
    let mut out = Vec::new();
    for chunk in chunks {
        s.push(chunk, &mut |v| out.push(v.to_vec()));
    }
    let _ = s.finish();
    out
}

fn ndjson(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut s = NdjsonSplitter::new(4096);
    let mut out = Vec::new();
    for chunk in chunks {
        s.push(chunk, &mut |v| out.push(v.to_vec()));
    }
    let _ = s.finish(&mut |v| out.push(v.to_vec()));
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&at, body)) = data.split_first() else { return };
    let split = usize::from(at) % (body.len() + 1);
    let (a, b) = body.split_at(split);
    assert_eq!(array(&[body]), array(&[a, b]));
    assert_eq!(ndjson(&[body]), ndjson(&[a, b]));
});
