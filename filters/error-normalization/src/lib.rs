//! llmobs error-normalization filter (`dist/llmobs_error_normalization.wasm`).
//!
//! A thin adapter: the shared [`llmobs_wasm_host::BundleStream`] runs
//! [`llmobs_core::error_normalization::ErrorNormalization`] alone in the bundle's body flow
//! (`llmobs_core::bundle`, one slot filled), against [`llmobs_wasm_host::ProxyHost`]. Observe-only unless response headers or the uniform error
//! body are configured; then it holds an error response until its size-capped body is read.
//! See `docs/filters/error-normalization.md`.

#[cfg(target_arch = "wasm32")]
llmobs_wasm_host::module!(
    "error_normalization",
    llmobs_core::bundle::ErrorsFilter::new,
    llmobs_wasm_host::BundleStream::boxed
);
