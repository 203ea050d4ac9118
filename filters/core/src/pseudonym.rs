//! Keyed pseudonyms for PII: HMAC-SHA256 with a secret key and a key id.
//!
//! The same value gives the same pseudonym under one key, so joins and counts still work; a key
//! id inside the pseudonym lets keys rotate (old and new pseudonyms are told apart). Never an
//! unkeyed hash: a phone number or a card number has so few possibilities that SHA-256 of it
//! is reversed by enumeration. The key never sits in plugin configuration (Envoy shows that in
//! `/config_dump`): the filter reads it from the VM environment
//! (`vm_config.environment_variables.host_env_keys`), fed from a secret.
//!
//! Format: `<ENTITY>_<key id>_<16 hex>`, e.g. `EMAIL_k1_5f2b0c9ad1e84c73`: letters, digits and
//! underscores only, so a model echoing it back keeps it intact. The entity label is part of
//! the MAC input, so the same digits as a phone number and as a card differ.

use crate::config::ConfigError;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The shortest key accepted: 256 bits, the HMAC-SHA256 block-size guidance.
pub const MIN_KEY_BYTES: usize = 32;

#[derive(Clone)]
pub struct Pseudonymizer {
    key_id: String,
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Pseudonymizer {
    // The key must never reach a log, even through a Debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pseudonymizer").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl Pseudonymizer {
    /// `key_id`: 1-16 of `[a-z0-9]`; `key`: at least 32 bytes.
    pub fn new(key_id: &str, key: &[u8]) -> Result<Self, ConfigError> {
        let id_ok =
            (1..=16).contains(&key_id.len()) && key_id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !id_ok {
            return Err(ConfigError::new("pseudonym.key_id", "must be 1-16 characters of a-z, 0-9"));
        }
        if key.len() < MIN_KEY_BYTES {
            return Err(ConfigError::new("pseudonym.key", "must be at least 32 bytes"));
        }
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
            .map_err(|_| ConfigError::new("pseudonym.key", "is not a usable HMAC key"))?;
        Ok(Self { key_id: key_id.to_string(), mac })
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The pseudonym of `value` as an `entity` (a label such as `email`).
    pub fn pseudonym(&self, entity: &str, value: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(entity.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        let hex = crate::id::hex(digest.get(..8).unwrap_or_default());
        format!("{}_{}_{}", entity.to_ascii_uppercase(), self.key_id, hex)
    }
}

impl Pseudonymizer {
    /// A keyed fingerprint of a text (a system prompt): `<key id>:<16 hex>`. Domain-separated
    /// from pseudonyms, so a fingerprint never equals a pseudonym of the same text.
    pub fn fingerprint(&self, text: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(b"llmobs.fingerprint\0");
        mac.update(text.as_bytes());
        let digest = mac.finalize().into_bytes();
        format!("{}:{}", self.key_id, crate::id::hex(digest.get(..8).unwrap_or_default()))
    }
}

/// HMAC-SHA256 of `data` under `key`, for keyed fingerprints (system prompts).
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Option<[u8; 32]> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).ok()?;
    mac.update(data);
    let out = mac.finalize().into_bytes();
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(out.get(..32)?);
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?").unwrap();
        assert_eq!(crate::id::hex(&mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn the_same_value_gives_the_same_pseudonym_under_one_key() {
        let p = Pseudonymizer::new("k1", KEY).unwrap();
        let a = p.pseudonym("email", "alice@example.com");
        assert_eq!(a, p.pseudonym("email", "alice@example.com"));
        assert!(a.starts_with("EMAIL_k1_"));
        assert_eq!(a.len(), "EMAIL_k1_".len() + 16);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        assert!(!a.contains("alice"));
    }

    #[test]
    fn different_keys_values_or_entities_give_different_pseudonyms() {
        let p1 = Pseudonymizer::new("k1", KEY).unwrap();
        let p2 = Pseudonymizer::new("k2", b"another key of at least 32 bytes!!").unwrap();
        assert_ne!(p1.pseudonym("phone", "+14155550132"), p2.pseudonym("phone", "+14155550132"));
        assert_ne!(p1.pseudonym("phone", "+14155550132"), p1.pseudonym("phone", "+14155550133"));
        assert_ne!(
            p1.pseudonym("phone", "4111111111111111")[6..],
            p1.pseudonym("payment_card", "4111111111111111")[13..]
        );
    }

    #[test]
    fn short_keys_and_bad_key_ids_are_refused_without_quoting_them() {
        let err = Pseudonymizer::new("k1", b"short").unwrap_err();
        assert_eq!(err.field, "pseudonym.key");
        assert!(!err.to_string().contains("short"));
        assert_eq!(Pseudonymizer::new("K 1", KEY).unwrap_err().field, "pseudonym.key_id");
    }

    #[test]
    fn debug_output_never_shows_the_key() {
        let p = Pseudonymizer::new("k1", KEY).unwrap();
        let shown = format!("{p:?}");
        assert!(shown.contains("k1"));
        assert!(!shown.contains("0123456789abcdef"));
    }
}
