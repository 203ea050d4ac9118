//! llmobs bundle (`dist/llmobs_bundle.wasm`): correlation, PII redaction, token accounting and
//! error normalization in one filter.
//!
//! A thin adapter: one configuration with a section per behaviour, compiled by
//! [`llmobs_core::bundle::Bundle::new`]; every callback is one call into the bundle through
//! [`llmobs_wasm_host::BundleStream`], the same context the four separate modules run. With
//! redaction inside, the bundle's `failure_policy` must be closed (`FAIL_CLOSED` or
//! `FAIL_RELOAD`): see `docs/filters/bundle.md`.

#[cfg(target_arch = "wasm32")]
llmobs_wasm_host::module!("bundle", llmobs_core::bundle::FullBundle::new, llmobs_wasm_host::BundleStream::boxed);
