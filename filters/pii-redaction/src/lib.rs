//! llmobs PII redaction filter (`dist/llmobs_pii_redaction.wasm`).
//!
//! A thin adapter: proxy-wasm callbacks in, [`llmobs_core::redaction::PiiRedaction`] does the
//! work against [`llmobs_wasm_host::ProxyHost`]. In traffic mode it buffers a request body (up to
//! `max_inspected_bytes`) to rewrite or refuse it, rewrites SSE response chunks as they pass
//! (holding back a bounded window of events), and buffers JSON responses to rewrite them whole.
//! In telemetry mode it only reads copies. See `docs/filters/pii-redaction.md`.

#[cfg(target_arch = "wasm32")]
mod filter;
