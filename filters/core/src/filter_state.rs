//! Filter-state keys the filters write and the access log reads.
//!
//! A filter calls `set_property(["llmobs.request_id"], ..)`; Envoy stores it under
//! `wasm.llmobs.request_id`, and `envoy/demo.yaml`'s access log reads it with
//! `%FILTER_STATE(wasm.llmobs.request_id:PLAIN)%`. The log field each key feeds is documented in
//! `docs/log-schema.json`; filters cooperate only through these keys, never through globals.

pub const REQUEST_ID: &str = "llmobs.request_id";
pub const CONVERSATION_ID: &str = "llmobs.conversation_id";
pub const AGENT_ID: &str = "llmobs.agent_id";
pub const PARENT_AGENT_ID: &str = "llmobs.parent_agent_id";
pub const AGENT_RUN_ID: &str = "llmobs.agent_run_id";
pub const TRACE_ID: &str = "llmobs.trace_id";
/// Which inbound ids were replaced, comma-separated kinds (`request_id,traceparent`).
pub const IDS_REPLACED: &str = "llmobs.ids_replaced";
/// `true` or `false`: the request's one sampling decision.
pub const SAMPLED: &str = "llmobs.sampled";
/// `true` or `false`: a synthetic probe, counted apart from organic traffic.
pub const SYNTHETIC: &str = "llmobs.synthetic";
/// `true` when a filter saw a failure the status code does not show (an in-band stream error,
/// a cut stream). The access log keeps every request with this flag.
pub const ERROR: &str = "llmobs.error";

/// Whether the correlation filter marked this request as a synthetic probe (false when it is
/// not in the chain).
pub fn synthetic<H: crate::host::Host>(host: &H) -> bool {
    host.property(&[SYNTHETIC]).is_some_and(|v| v == b"true")
}

/// Renders a boolean the way the access-log CEL filter compares it (`b'true'`).
pub fn flag(value: bool) -> &'static [u8] {
    if value {
        b"true"
    } else {
        b"false"
    }
}

// Token accounting (docs/filters/token-accounting.md). Numbers are decimal strings: Envoy's
// `%FILTER_STATE(..:PLAIN)%` renders every wasm value as a string.
pub const PROVIDER: &str = "llmobs.provider";
pub const OPERATION: &str = "llmobs.operation";
pub const REQUEST_MODEL: &str = "llmobs.request_model";
pub const RESPONSE_MODEL: &str = "llmobs.response_model";
pub const RESPONSE_ID: &str = "llmobs.response_id";
pub const STREAM: &str = "llmobs.stream";
pub const USAGE_INPUT: &str = "llmobs.usage.input_tokens";
pub const USAGE_OUTPUT: &str = "llmobs.usage.output_tokens";
pub const USAGE_CACHE_READ: &str = "llmobs.usage.cache_read_tokens";
pub const USAGE_CACHE_CREATION: &str = "llmobs.usage.cache_creation_tokens";
pub const USAGE_REASONING: &str = "llmobs.usage.reasoning_tokens";
pub const USAGE_TOTAL: &str = "llmobs.usage.total_tokens";
pub const FINISH_REASON_RAW: &str = "llmobs.finish_reason_raw";
pub const FINISH_REASON: &str = "llmobs.finish_reason";
pub const TIME_TO_FIRST_CHUNK_MS: &str = "llmobs.time_to_first_chunk_ms";
pub const OUTPUT_TOKENS_PER_SECOND: &str = "llmobs.output_tokens_per_second";
/// `provider` or `missing`.
pub const USAGE_SOURCE: &str = "llmobs.usage_source";
/// `completed`, `client_cancelled`, `upstream_cut` or `in_band_error`.
pub const STREAM_OUTCOME: &str = "llmobs.stream_outcome";
pub const TENANT: &str = "llmobs.tenant";
/// The request's exact cost in the price table's currency, a decimal (`0.000135`); absent when
/// the filter has no price table or the request could not be priced (docs/pricing.md).
pub const COST: &str = "llmobs.cost";
/// The exchange's bounded `prompt_version` metric label (an allow-listed or admitted id,
/// `_OTHER` or `unknown`), written by token accounting once the request is read and read by
/// error normalization for `llmobs.errors`. A label, not a log field.
pub const PROMPT_VERSION_LABEL: &str = "llmobs.label.prompt_version";
/// The error class from the error-normalization filter (one documented taxonomy).
pub const ERROR_TYPE: &str = "llmobs.error_type";

// Error normalization (docs/filters/error-normalization.md).
/// `true` or `false`: whether the same request may succeed if retried.
pub const ERROR_RETRYABLE: &str = "llmobs.error_retryable";
/// Milliseconds until a retry makes sense, when the provider said.
pub const RETRY_AFTER_MS: &str = "llmobs.retry_after_ms";
/// `upstream` or `gateway`.
pub const ERROR_ORIGIN: &str = "llmobs.error_origin";
/// The provider's own error code or type (label-safe, at most 64 characters).
pub const ERROR_PROVIDER_CODE: &str = "llmobs.error_provider_code";

// PII redaction (docs/filters/pii-redaction.md). Never a matched value: counts, labels, hashes,
// and captured text only after it was scrubbed.
/// The active rule set, `<version>@<12 hex of the configuration's SHA-256>`.
pub const PII_RULE_SET: &str = "llmobs.pii.rule_set";
/// Detections by direction and entity, `request:email=2,response:payment_card=1`.
pub const PII_DETECTIONS: &str = "llmobs.pii.detections";
/// `clean`, `detected`, `redacted`, `blocked`, `over_limit` or `skipped`.
pub const PII_OUTCOME: &str = "llmobs.pii.outcome";
/// A keyed hash of the whitespace-normalized, masked system prompt, `<key id>:<16 hex>`.
pub const PROMPT_FINGERPRINT: &str = "llmobs.prompt_fingerprint";
/// Opt-in content capture (sampled requests only, scrubbed, size-capped).
pub const CAPTURE_LAST_USER: &str = "llmobs.capture.last_user";
pub const CAPTURE_SYSTEM: &str = "llmobs.capture.system";
pub const CAPTURE_COMPLETION: &str = "llmobs.capture.completion";
