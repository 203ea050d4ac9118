use llmobs_core::{id, trace_context};
use llmobs_testkit::FakeHost;

#[test]
fn minted_ids_are_32_lower_case_hex_characters_and_valid() {
    let mut host = FakeHost::default();
    let a = id::mint(&mut host);
    let b = id::mint(&mut host);
    assert_eq!(a.len(), 32);
    assert!(a.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert_ne!(a, b);
    assert!(id::validate(a.as_bytes()).is_ok());
}

#[test]
fn without_a_random_source_minted_ids_are_still_unique_and_valid() {
    let mut host = FakeHost::without_random();
    let a = id::mint(&mut host);
    let b = id::mint(&mut host);
    assert_ne!(a, b);
    assert!(id::validate(a.as_bytes()).is_ok());
}

#[test]
fn minted_traceparents_parse_back_with_the_requested_flag() {
    let mut host = FakeHost::default();
    let sampled = trace_context::mint(&mut host, true);
    assert_eq!(trace_context::parse(sampled.header_value().as_bytes()), Some(sampled.clone()));
    assert!(sampled.sampled());
    let unsampled = trace_context::mint(&mut host, false);
    assert!(!unsampled.sampled());
    assert_ne!(sampled.trace_id, unsampled.trace_id);
}

#[test]
fn minted_traceparents_are_valid_without_a_random_source() {
    let mut host = FakeHost::without_random();
    let tp = trace_context::mint(&mut host, false);
    assert!(trace_context::parse(tp.header_value().as_bytes()).is_some());
}
