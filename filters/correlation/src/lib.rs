//! llmobs correlation filter (`dist/llmobs_correlation.wasm`).
//!
//! A thin adapter: the shared [`llmobs_wasm_host::BundleStream`] runs [`llmobs_core::correlation::Correlation`]
//! alone in the bundle's body flow (`llmobs_core::bundle`, one slot filled), against
//! [`llmobs_wasm_host::ProxyHost`]. Header-only, it never buffers a body. Each
//! callback has one shape: evaluate, return Continue. See `docs/filters/correlation.md`.

#[cfg(target_arch = "wasm32")]
llmobs_wasm_host::module!(
    "correlation",
    llmobs_core::bundle::CorrelationFilter::new,
    llmobs_wasm_host::BundleStream::boxed
);
