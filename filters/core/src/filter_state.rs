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

/// Renders a boolean the way the access-log CEL filter compares it (`b'true'`).
pub fn flag(value: bool) -> &'static [u8] {
    if value {
        b"true"
    } else {
        b"false"
    }
}
