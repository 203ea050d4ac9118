//! llmobs token-accounting filter (`dist/llmobs_token_accounting.wasm`).
//!
//! A thin adapter: proxy-wasm callbacks in, [`llmobs_core::token_accounting::TokenAccounting`]
//! does the work against [`llmobs_wasm_host::ProxyHost`]. Observe-only: every callback returns
//! Continue, so no body is ever paused or buffered by Envoy for this filter. See
//! `docs/filters/token-accounting.md`.

#[cfg(target_arch = "wasm32")]
mod filter;
