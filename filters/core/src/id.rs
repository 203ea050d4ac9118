//! Correlation-id validation and minting.
//!
//! Ids come from clients and end up in headers sent upstream, in filter state and in log lines,
//! so an id is kept only if it matches `^[A-Za-z0-9._:-]{1,128}$`: nothing in that set can
//! split a header, forge a log line or break JSON, and only if it does not look like a secret (a
//! known key prefix with a token after it, a JWT): that charset holds most API keys, and an id
//! is logged and labelled. Anything else is replaced by a fresh random id, never passed on and
//! never logged.

use crate::host::Host;

pub const MAX_ID_LEN: usize = 128;

/// Why an inbound id was rejected; a bounded metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    Empty,
    TooLong,
    Charset,
    /// A key or token shape (`sk-…`, `AKIA…`, `ghp_…`, `eyJ…`), as the capture check masks it.
    Secret,
}

impl Rejection {
    pub const ALL: [Rejection; 4] = [Rejection::Empty, Rejection::TooLong, Rejection::Charset, Rejection::Secret];

    pub fn label(self) -> &'static str {
        match self {
            Rejection::Empty => "empty",
            Rejection::TooLong => "too_long",
            Rejection::Charset => "charset",
            Rejection::Secret => "secret",
        }
    }
}

fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-')
}

/// Checks a raw header value. Length is checked before charset, so an over-long value with a
/// bad byte counts as too long.
pub fn validate(raw: &[u8]) -> Result<&str, Rejection> {
    if raw.is_empty() {
        return Err(Rejection::Empty);
    }
    if raw.len() > MAX_ID_LEN {
        return Err(Rejection::TooLong);
    }
    if !raw.iter().copied().all(is_id_byte) {
        return Err(Rejection::Charset);
    }
    // Every byte is ASCII, so this cannot fail; the error arm keeps it panic-free.
    let id = std::str::from_utf8(raw).map_err(|_| Rejection::Charset)?;
    if !crate::redaction::secrets::loose_spans(id).is_empty() {
        return Err(Rejection::Secret);
    }
    Ok(id)
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// A fresh unguessable id: 128 random bits as 32 hex characters. When the host has no random
/// source (never seen on Envoy, which implements WASI `random_get`), the id is derived from the
/// host clock and a counter instead, so the request still gets a unique id; the caller counts it.
pub fn mint<H: Host>(host: &mut H) -> String {
    let mut bytes = [0u8; 16];
    if !host.fill_random(&mut bytes) {
        return fallback_id();
    }
    hex(&bytes)
}

fn fallback_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("llmobs-fallback-{n:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_ids_are_kept() {
        for id in ["abc", "req-1", "a.b_c:d-e", "0123456789abcdef", "550e8400-e29b-41d4-a716-446655440000"] {
            assert_eq!(validate(id.as_bytes()), Ok(id));
        }
    }

    #[test]
    fn a_128_character_id_is_kept_and_129_is_too_long() {
        let ok = "a".repeat(128);
        assert_eq!(validate(ok.as_bytes()), Ok(ok.as_str()));
        assert_eq!(validate("a".repeat(129).as_bytes()), Err(Rejection::TooLong));
    }

    #[test]
    fn ids_with_injection_characters_are_rejected() {
        for bad in [
            &b"a b"[..],
            b"a\"b",
            b"<script>",
            b"a\rb",
            b"a\nb",
            b"a\r\nx-admin: 1",
            b"a\0b",
            b"a\tb",
            b"a,b",
            b"a;b",
            b"a{b}",
            "caf\u{e9}".as_bytes(),
            &[0x61, 0xff, 0x62],
        ] {
            assert_eq!(validate(bad), Err(Rejection::Charset), "{bad:?}");
        }
    }

    #[test]
    fn an_id_shaped_like_a_key_or_token_is_rejected_as_a_secret() {
        for secret in [
            "sk-proj-4f9a8b7c6d5e4f3a2b1c",
            "AKIAIOSFODNN7EXAMPLE",
            "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
            "xoxb-2048-7a9d3b1c5e",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig",
            "conv:sk-ant-api03-abcdef1234",
        ] {
            assert_eq!(validate(secret.as_bytes()), Err(Rejection::Secret), "{secret}");
        }
        // Words that only start like a prefix, or carry one glued to a word, are ids.
        for id in ["sk-1", "task-list12345678", "desk-12345678", "support-v7", "AKIA", "eyJ"] {
            assert_eq!(validate(id.as_bytes()), Ok(id), "{id}");
        }
    }

    #[test]
    fn an_empty_id_is_rejected_as_empty() {
        assert_eq!(validate(b""), Err(Rejection::Empty));
    }

    #[test]
    fn hex_encodes_lower_case() {
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
    }
}
