//! llmobs PII redaction filter (`dist/llmobs_pii_redaction.wasm`).
//!
//! A thin adapter: the shared [`llmobs_wasm_host::BundleStream`] runs [`llmobs_core::redaction::PiiRedaction`]
//! alone in the bundle's body flow (`llmobs_core::bundle`, one slot filled), against
//! [`llmobs_wasm_host::ProxyHost`]. In traffic mode it buffers a request body (up to
//! `max_inspected_bytes`) to rewrite or refuse it, rewrites SSE response chunks as they pass
//! (holding back a bounded window of events), and buffers JSON responses to rewrite them whole.
//! In telemetry mode it only reads copies. See `docs/filters/pii-redaction.md`.

#[cfg(target_arch = "wasm32")]
llmobs_wasm_host::module!(
    "pii_redaction",
    llmobs_core::bundle::RedactionFilter::new,
    llmobs_wasm_host::BundleStream::boxed
);
