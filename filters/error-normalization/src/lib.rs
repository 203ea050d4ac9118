//! llmobs error-normalization filter (`dist/llmobs_error_normalization.wasm`).
//!
//! A thin adapter: proxy-wasm callbacks in,
//! [`llmobs_core::error_normalization::ErrorNormalization`] does the work against
//! [`llmobs_wasm_host::ProxyHost`]. Observe-only unless response headers or the uniform error
//! body are configured; then it holds an error response until its size-capped body is read.
//! See `docs/filters/error-normalization.md`.

#[cfg(target_arch = "wasm32")]
mod filter;
