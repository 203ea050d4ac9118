//! The bundle's body flow (the code every module runs): any request and response bytes, any
//! status and content type, any split into body callbacks as Envoy delivers them, never panic;
//! the provider and the client get the same bytes, and the log and filter state the same text,
//! whether a body arrives whole or in two callbacks.
//!
//! Input: byte 0 picks the path, byte 1 the status and content type, byte 2 the split point;
//! the rest is the request body, then 0xFF, then the response body.
#![no_main]
use libfuzzer_sys::fuzz_target;
use llmobs_core::bundle::{Flow, FullBundle};
use llmobs_testkit::{body_pieces, drive_body, EnvoyBody, FakeHost};
use std::fmt::Write;

const PATHS: [&str; 5] =
    ["/v1/chat/completions", "/v1/responses", "/v1/messages", "/v1beta/models/g:streamGenerateContent", "/other"];
const STATUSES: [(&str, &str); 4] =
    [("200", "text/event-stream"), ("200", "application/json"), ("429", "application/json"), ("500", "text/plain")];
const CONFIG: &str = r#"{
  "correlation": {"sample_rate": 1.0},
  "pii_redaction": {"mode": "both", "entities": {"email": "pseudonymize", "private_key": "block"},
                    "pseudonym_key": {"env": "K", "id": "k1"}, "restore_pseudonyms": true,
                    "capture": {"parts": ["last_user", "completion"], "max_bytes": 64}},
  "token_accounting": {"tenant_header": "x-tenant"},
  "error_normalization": {"uniform_error_body_routes": ["*"]}
}"#;

fn drive(pieces: &[&[u8]], call: impl FnMut(&mut EnvoyBody, usize, bool) -> Flow) -> Vec<u8> {
    drive_body(&body_pieces(pieces, true), call).into_iter().flat_map(|(bytes, _)| bytes).collect()
}

fn host(path: &str) -> FakeHost {
    let mut host = FakeHost::with_request_headers(&[(":path", path), ("x-tenant", "acme")]);
    host.env.insert("K".into(), b"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_vec());
    host.set_property(&["response", "code_details"], b"via_upstream");
    host
}

thread_local! {
    // Compiled once, as in a VM: configuration is per plugin, not per request. (Its metric
    // handles then point into the first host, so metrics are left out of the comparison.)
    static BUNDLE: FullBundle = FullBundle::new(CONFIG.as_bytes(), &mut host("/")).unwrap_or_else(|e| panic!("{e}"));
}

/// (what the provider got, what the client got, the log lines and filter state as text).
fn exchange(path: &str, status: (&str, &str), request: &[&[u8]], response: &[&[u8]]) -> (Vec<u8>, Vec<u8>, String) {
    BUNDLE.with(|bundle| run(bundle, path, status, request, response))
}

fn run(
    bundle: &FullBundle,
    path: &str,
    status: (&str, &str),
    request: &[&[u8]],
    response: &[&[u8]],
) -> (Vec<u8>, Vec<u8>, String) {
    let mut host = host(path);
    let mut ex = bundle.on_request_headers(&mut host);
    let upstream = drive(request, |b, n, e| bundle.on_request_body(&mut host, &mut ex, b, n, e));
    let mut client = Vec::new();
    if host.local_response.is_none() {
        host.add_response_header(":status", status.0);
        host.add_response_header("content-type", status.1);
        bundle.on_response_headers(&mut host, &mut ex, false);
        client = drive(response, |b, n, e| bundle.on_response_body(&mut host, &mut ex, b, n, e));
    }
    bundle.on_log(&mut host, &mut ex);
    let mut sinks = String::new();
    for (_, line) in host.logs.borrow().iter() {
        let _ = writeln!(sinks, "{line}");
    }
    for (key, value) in &host.filter_state {
        // Durations and rates depend on the fake clock, not on the bytes.
        if !key.contains("_ms") && !key.contains("per_second") {
            let _ = writeln!(sinks, "{key}={}", String::from_utf8_lossy(value));
        }
    }
    (upstream, client, sinks)
}

fuzz_target!(|data: &[u8]| {
    let [path, status, at, rest @ ..] = data else { return };
    let (request, response) = match rest.iter().position(|&b| b == 0xFF) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let path = PATHS[usize::from(*path) % PATHS.len()];
    let status = STATUSES[usize::from(*status) % STATUSES.len()];
    let whole = exchange(path, status, &[request], &[response]);
    let (r1, r2) = request.split_at(usize::from(*at) % (request.len() + 1));
    let (s1, s2) = response.split_at(usize::from(*at) % (response.len() + 1));
    let split = exchange(path, status, &[r1, r2], &[s1, s2]);
    assert_eq!(whole.0, split.0, "the provider's bytes depend on the split");
    assert_eq!(whole.1, split.1, "the client's bytes depend on the split");
    assert_eq!(whole.2, split.2, "the log or filter state depends on the split");
});
