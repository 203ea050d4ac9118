//! Integration tests of the core logic against the testkit's `FakeHost`.
//!
//! They live here rather than in `#[cfg(test)]` modules because the testkit depends on core: a
//! unit test would see a second copy of the `Host` trait that `FakeHost` does not implement.

// Tests may unwrap, index and panic: a failed assertion is what they are for (clippy.toml allows
// the same inside #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod agent;
mod bundle;
mod correlation;
mod error_normalization;
mod evaluation;
mod feedback;
mod framing;
mod metric;
mod minting;
mod pii;
mod pii_independent;
mod pricing;
mod redaction;
mod redaction_secrets;
mod redaction_shadow;
mod redaction_stream;
mod retrieval;
mod token_accounting;
