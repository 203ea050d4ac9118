//! llmobs token-accounting filter (`dist/llmobs_token_accounting.wasm`).
//!
//! A thin adapter: the shared [`llmobs_wasm_host::BundleStream`] runs
//! [`llmobs_core::token_accounting::TokenAccounting`] alone in the bundle's body flow
//! (`llmobs_core::bundle`, one slot filled), against [`llmobs_wasm_host::ProxyHost`]. Observe-only: every callback returns
//! Continue, so no body is ever paused or buffered by Envoy for this filter. See
//! `docs/filters/token-accounting.md`.

#[cfg(target_arch = "wasm32")]
llmobs_wasm_host::module!(
    "token_accounting",
    llmobs_core::bundle::AccountingFilter::new,
    llmobs_wasm_host::BundleStream::boxed
);
