//! Pure logic of the llmobs filters.
//!
//! Nothing here links against proxy-wasm: a native test binary that can reach a proxy-wasm host
//! call fails to link (`undefined symbol: proxy_log`), so every piece of logic that must be
//! unit-tested natively lives in this crate and talks to the proxy only through the small
//! [`host::Host`] and [`host::Stats`] traits. Each filter crate is a thin adapter that
//! implements those traits over the raw hostcalls.
//!
//! Modules:
//! - [`agent`]: agent, tool and prompt signals (iteration, tool results and errors, sessions,
//!   prompt id and version), read by token accounting.
//! - [`host`]: the seam between logic and proxy (headers, filter state, metrics, log, random).
//! - [`content`]: where conversation text lives in each provider's request (typed walk).
//! - [`config`]: strict JSON parsing with errors that name the field.
//! - [`id`]: correlation-id validation and minting.
//! - [`trace_context`]: W3C `traceparent` parsing, validation and minting.
//! - [`baggage`]: W3C `baggage` parsing with limits and per-destination allow-lists.
//! - [`sampling`]: the one consistent sampling decision per request.
//! - [`metric`]: metric names with labels encoded for Envoy `stats_tags`.
//! - [`framing`]: incremental stream framing (SSE, AWS event-stream, JSON array, NDJSON).
//! - [`filter_state`]: the filter-state keys the access log reads (the log schema's source).
//! - [`response`]: reading a provider response once (framer, observer, outcome), shared by
//!   token accounting and error normalization.
//! - [`pseudonym`]: keyed pseudonyms (HMAC-SHA256 with a key id).
//! - [`pii`]: PII and secret detectors with structural validation.
//! - [`redaction`]: the PII redaction filter's behaviour (requests, streams, telemetry).
//! - [`pricing`]: the price table and exact per-request cost in money.
//! - [`label`]: bounded metric labels (allow-lists, per-process caps in shared data).
//! - [`correlation`]: the correlation filter's behaviour.
//! - [`signals`]: application-reported quality signals the correlation filter runs (client
//!   feedback answered by the filter, retrieval diagnostics).
//! - [`evaluation`]: evaluation export: the consent and sampling policy, the record, its OTLP
//!   protobuf encoding and the exporter's bounded batcher.
//! - [`error_normalization`]: one error taxonomy across providers and the gateway, with retry
//!   hints.
//! - [`token_accounting`]: the token-accounting filter's behaviour: providers, usage, finish
//!   reasons, stream outcomes.

pub mod agent;
pub mod baggage;
pub mod build;
pub mod bundle;
pub mod config;
pub mod content;
pub mod correlation;
pub mod error_normalization;
pub mod evaluation;
pub mod filter_state;
pub mod framing;
pub mod host;
pub mod id;
pub mod label;
pub mod metric;
pub mod pii;
pub mod pricing;
pub mod pseudonym;
pub mod redaction;
pub mod response;
pub mod sampling;
pub mod signals;
pub mod token_accounting;
pub mod trace_context;
