//! Integration tests of the core logic against the testkit's `FakeHost`.
//!
//! They live here rather than in `#[cfg(test)]` modules because the testkit depends on core: a
//! unit test would see a second copy of the `Host` trait that `FakeHost` does not implement.

mod correlation;
mod framing;
mod minting;
