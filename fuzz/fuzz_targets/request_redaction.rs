//! The PII filter on arbitrary request bodies, in traffic mode with every action in use: never a
//! panic; a rewritten body is valid JSON; a refused one carries a JSON error; the sinks never
//! hold the email the input may carry.
#![no_main]
use libfuzzer_sys::fuzz_target;
use llmobs_core::redaction::{PiiRedaction, RequestVerdict};
use llmobs_testkit::FakeHost;

const PATHS: [&str; 5] =
    ["/v1/chat/completions", "/v1/responses", "/v1/messages", "/v1beta/models/g:generateContent", "/model/m/converse"];
const CONFIG: &str = r#"{"mode": "both", "default_action": "redact",
  "entities": {"email": "pseudonymize", "private_key": "block", "ipv4": "count"},
  "pseudonym_key": {"env": "K", "id": "k1"}, "restore_pseudonyms": true,
  "custom_rules": [{"entity": "employee_id", "pattern": "EMP-[0-9]{6}", "action": "redact"}],
  "blocked_fields": [{"path": "$.user"}, {"path": "$.messages[*].name", "action": "replace"}],
  "fingerprint": {"enabled": true, "mask_patterns": ["[0-9]{4}-[0-9]{2}-[0-9]{2}"]},
  "capture": {"parts": ["last_user", "system"], "max_bytes": 64}}"#;

fn host(path: &str) -> FakeHost {
    let mut host = FakeHost::with_request_headers(&[(":path", path)]);
    host.env.insert("K".into(), b"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_vec());
    host.set_property(&["llmobs.sampled"], b"true");
    host
}

thread_local! {
    // Compiled once, as in a VM: configuration is per plugin, not per request.
    static FILTER: PiiRedaction = PiiRedaction::new(CONFIG.as_bytes(), &mut host("/")).unwrap_or_else(|e| panic!("{e}"));
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else { return };
    let mut host = host(PATHS[usize::from(which) % PATHS.len()]);
    FILTER.with(|filter| run(filter, &mut host, body));
});

fn run(filter: &PiiRedaction, host: &mut FakeHost, body: &[u8]) {
    let host = &mut *host;
    let mut ex = filter.on_request_headers(host);
    match filter.on_request_body(host, &mut ex, body) {
        RequestVerdict::Replace(out) => assert!(serde_json::from_slice::<serde_json::Value>(&out).is_ok()),
        RequestVerdict::Reject { body, .. } => assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok()),
        RequestVerdict::Forward => {}
    }
    filter.finish(host, &mut ex);
    if body.windows(17).any(|w| w == b"alice@example.com") {
        assert!(!host.all_sinks().contains("alice@example.com"));
    }
}
