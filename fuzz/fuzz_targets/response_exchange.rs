//! A whole exchange through token accounting and error normalization with arbitrary response
//! bytes, for every provider API and content type: never panics, records once, and reads the
//! same usage, and prices it the same (every kind of token has a rate), whole or split.
#![no_main]
use libfuzzer_sys::fuzz_target;
use llmobs_core::error_normalization::ErrorNormalization;
use llmobs_core::filter_state as fs;
use llmobs_core::token_accounting::TokenAccounting;
use llmobs_testkit::FakeHost;

const PATHS: [&str; 6] = [
    "/v1/chat/completions",
    "/v1/responses",
    "/v1/messages",
    "/v1beta/models/m:streamGenerateContent",
    "/model/m/converse-stream",
    "/v1/other",
];
const TYPES: [&str; 4] = ["text/event-stream", "application/json", "application/vnd.amazon.eventstream", "text/html"];
const STATUSES: [&str; 4] = ["200", "429", "500", "529"];
/// Every provider's model `m` priced, reasoning apart, so any usage a response claims is priced
/// (or counted as inconsistent), never left to a code path the fuzzer cannot reach.
const PRICES: &str = r#"{"prices": {"currency": "USD", "effective_date": "2026-12-04", "models": [
    {"provider": "openai", "model": "m*", "input": "2.5", "cache_read": "1.25", "cache_write": "3", "output": "10", "reasoning": "12"},
    {"provider": "anthropic", "model": "*", "input": "3", "cache_read": "0.3", "cache_write": "3.75", "output": "15"},
    {"provider": "gcp.gemini", "model": "m", "input": "0.3", "cache_read": "0.03", "output": "2.5", "reasoning": "2.5"},
    {"provider": "aws.bedrock", "model": "m", "input": "999999.999999", "cache_read": "0.000001", "cache_write": "1", "output": "999999.999999"}
]}}"#;

fn run(selector: u8, chunks: &[&[u8]]) -> (Option<String>, Option<String>, Option<String>, Option<String>) {
    let path = PATHS[usize::from(selector) % PATHS.len()];
    let content_type = TYPES[usize::from(selector / 8) % TYPES.len()];
    let status = STATUSES[usize::from(selector / 32) % STATUSES.len()];
    let mut host = FakeHost::with_request_headers(&[(":path", path)]);
    let tokens = TokenAccounting::new(PRICES.as_bytes(), &mut host).expect("a valid price table");
    let errors = ErrorNormalization::new(b"", &mut host).expect("defaults");
    let mut ex = tokens.on_request_headers(&mut host);
    let mut er = errors.on_request_headers(&mut host);
    tokens.on_request_body(&mut ex, br#"{"model": "m", "stream": true}"#, true);
    host.add_response_header(":status", status);
    host.add_response_header("content-type", content_type);
    errors.on_response_headers(&mut host, &mut er, false);
    tokens.on_response_headers(&mut host, &mut ex, false);
    for chunk in chunks {
        let _ = errors.on_response_body(&mut host, &mut er, chunk, false);
        tokens.on_response_body(&mut host, &mut ex, chunk, false);
    }
    let _ = errors.on_response_body(&mut host, &mut er, b"", true);
    tokens.on_response_body(&mut host, &mut ex, b"", true);
    assert!(host.counter_sum("llmobs.token_accounting.requests") == 1);
    (
        host.filter_state_str(fs::USAGE_INPUT),
        host.filter_state_str(fs::USAGE_OUTPUT),
        host.filter_state_str(fs::ERROR_TYPE),
        host.filter_state_str(fs::COST),
    )
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let Some((&at, body)) = rest.split_first() else { return };
    let split = usize::from(at) % (body.len() + 1);
    let (a, b) = body.split_at(split);
    assert_eq!(run(selector, &[body]), run(selector, &[a, b]));
});
