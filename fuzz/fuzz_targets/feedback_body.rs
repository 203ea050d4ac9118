//! The client-feedback endpoint: any body, split anywhere into body callbacks, through the
//! correlation filter and the full bundle, never panics, is always answered by the filter
//! (204 or a structured refusal), never forwarded, and answered alike however it is split; a
//! body the parser keeps holds only values in their documented forms.
//!
//! Input: byte 0 picks the split point; the rest is the body.
#![no_main]
use libfuzzer_sys::fuzz_target;
use llmobs_core::bundle::{CorrelationFilter, Flow, FullBundle};
use llmobs_core::signals::feedback;
use llmobs_testkit::{body_pieces, drive_body, FakeHost};

const CORRELATION: &str = r#"{"feedback": {"path": "/fb", "max_body_bytes": 2048}, "signal_labels": {"tenant_header": "x-tenant"}}"#;

fn host() -> FakeHost {
    FakeHost::with_request_headers(&[
        (":method", "POST"),
        (":path", "/fb"),
        ("content-type", "application/json"),
        ("x-tenant", "acme"),
        ("x-llmobs-prompt-version", "v1"),
    ])
}

/// The reply (status, body) and whether anything was forwarded.
fn answer(pieces: &[&[u8]], bundle: bool) -> (Option<(u16, Vec<u8>)>, bool) {
    let mut host = host();
    let forwarded = if bundle {
        let config = format!(r#"{{"correlation": {CORRELATION}, "token_accounting": {{}}, "error_normalization": {{}}}}"#);
        let Ok(f) = FullBundle::new(config.as_bytes(), &mut host) else { return (None, true) };
        let mut ex = f.on_request_headers(&mut host);
        assert_eq!(f.request_headers_flow(&mut host, &mut ex, false), Flow::Pause);
        drive_body(&body_pieces(pieces, true), |b, n, e| f.on_request_body(&mut host, &mut ex, b, n, e))
    } else {
        let Ok(f) = CorrelationFilter::new(CORRELATION.as_bytes(), &mut host) else { return (None, true) };
        let mut ex = f.on_request_headers(&mut host);
        assert_eq!(f.request_headers_flow(&mut host, &mut ex, false), Flow::Pause);
        drive_body(&body_pieces(pieces, true), |b, n, e| f.on_request_body(&mut host, &mut ex, b, n, e))
    };
    (host.local_response.map(|(status, _, body)| (status, body)), !forwarded.is_empty())
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else { return };
    if let Ok(fb) = feedback::parse(body) {
        assert!(llmobs_core::id::validate(fb.request_id.as_bytes()).is_ok());
        if let Some(url) = &fb.ticket_url {
            assert!(url.starts_with("http://") || url.starts_with("https://"));
            assert!(!url.contains(['?', '#', '@']) && url.bytes().all(|b| (0x21..0x7f).contains(&b)));
        }
        if let Some(locale) = &fb.locale {
            assert!(locale.len() <= 12 && locale.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        }
        assert!(fb.rating.is_some() || fb.kind == feedback::Kind::ClientError);
    }
    let at = usize::from(split).min(body.len());
    let (head, tail) = body.split_at(at);
    let whole = answer(&[body], false);
    let (reply, forwarded) = &whole;
    assert!(!forwarded, "a feedback body is never forwarded");
    let (status, payload) = reply.as_ref().map(|(s, p)| (*s, p.clone())).unwrap_or_default();
    assert!(matches!(status, 204 | 400 | 413), "always answered: {status}");
    if status != 204 {
        let v: serde_json::Value = serde_json::from_slice(&payload).unwrap_or_default();
        assert_eq!(v["error"]["type"], "invalid_feedback");
    }
    let mut split_pieces: Vec<&[u8]> = [head, tail].into_iter().filter(|p| !p.is_empty()).collect();
    if split_pieces.is_empty() {
        // An empty body still ends in one (empty) callback, as in the whole case.
        split_pieces.push(body);
    }
    assert_eq!(answer(&split_pieces, false), whole, "the answer does not depend on the split");
    assert_eq!(answer(&split_pieces, true), whole, "the bundle answers as the separate filter");
});
