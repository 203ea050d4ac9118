//! llmobs correlation filter (`dist/llmobs_correlation.wasm`).
//!
//! A thin adapter: proxy-wasm callbacks in, [`llmobs_core::correlation::Correlation`] does the
//! work against [`llmobs_wasm_host::ProxyHost`]. Header-only, it never buffers a body. Each
//! callback has one shape: evaluate, return Continue. See `docs/filters/correlation.md`.

#[cfg(target_arch = "wasm32")]
mod filter;
