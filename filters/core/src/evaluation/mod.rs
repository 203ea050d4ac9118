//! Evaluation export (issue 19, part 1): sampled, consented, redacted exchanges sent as
//! OTLP/HTTP logs to a receiver (an OpenTelemetry Collector) for offline labeling and
//! evaluation. Documented in `docs/filters/evaluation-export.md`.
//!
//! - [`config`]: the policy (the PII redaction configuration's `evaluation` section) and the
//!   exporter module's configuration.
//! - [`Policy`]: which exchanges are exported: off by default; consent by a request header or a
//!   tenant allow-list; its own sampling rate from the request id; synthetic probes only when
//!   asked; never an exchange redaction blocked or found a configured entity type in.
//! - [`Record`]: what one exported exchange holds: ids, model, usage, error class, finish
//!   reason, tool names, prompt id and version, the rule set, the consent basis, and the prompt
//!   and completion as redaction's capture check left them (scrubbed, block-listed fields never).
//! - [`otlp`]: the hand-written protobuf encoder for `LogRecord` and `ExportLogsServiceRequest`.
//! - [`batcher`]: the exporter's bounded queue, batches and retries (pure, clock-injected).
//!
//! The HTTP filter (redaction's behaviour, in the separate module and in the bundle) builds and
//! encodes the record at the end of the exchange and enqueues it in a proxy-wasm shared queue;
//! the exporter (`filters/eval-exporter`, a singleton bootstrap service) batches and sends. A
//! request never waits for the exporter and never fails because of it.

pub mod batcher;
pub mod config;
pub mod otlp;

use crate::agent;
use crate::filter_state as fs;
use crate::host::Host;
use crate::sampling;
use config::EvaluationConfig;
use otlp::Value;

/// Why a consented exchange is exported (the record's `llmobs.eval.consent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    /// The request carried the consent header with the consent value.
    Header,
    /// The request's tenant is in the allow-list.
    Tenant,
}

impl Consent {
    pub fn label(self) -> &'static str {
        match self {
            Consent::Header => "header",
            Consent::Tenant => "tenant",
        }
    }
}

/// Why an exchange is not exported (the `result` label of `llmobs.eval_export.exchanges`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    NoConsent,
    Synthetic,
    NotSampled,
    /// Redaction refused the request.
    Blocked,
    /// Redaction found one of `skip_entities`.
    Entity,
    /// Neither a prompt nor a completion passed the capture check (not inspected, or withheld).
    NoContent,
}

impl Skip {
    pub fn label(self) -> &'static str {
        match self {
            Skip::NoConsent => "no_consent",
            Skip::Synthetic => "synthetic",
            Skip::NotSampled => "not_sampled",
            Skip::Blocked => "blocked",
            Skip::Entity => "entity",
            Skip::NoContent => "no_content",
        }
    }
}

/// The configured policy.
#[derive(Debug, Clone)]
pub struct Policy {
    config: EvaluationConfig,
}

/// What the policy reads from a request's headers and the correlation filter's state.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestFacts<'a> {
    pub consent: Option<&'a [u8]>,
    pub tenant: Option<&'a [u8]>,
    pub request_id: Option<&'a str>,
    pub synthetic: bool,
}

impl Policy {
    /// `None` when evaluation export is off.
    pub fn new(config: &EvaluationConfig) -> Option<Self> {
        config.enabled.then(|| Self { config: config.clone() })
    }

    pub fn config(&self) -> &EvaluationConfig {
        &self.config
    }

    /// Reads what [`select`](Self::select) needs from the request.
    pub fn select_request<H: Host>(&self, host: &H) -> Result<Consent, Skip> {
        let consent = (!self.config.consent_header.is_empty())
            .then(|| host.request_header(&self.config.consent_header))
            .flatten();
        let tenant =
            (!self.config.tenant_header.is_empty()).then(|| host.request_header(&self.config.tenant_header)).flatten();
        let id = host.property(&[fs::REQUEST_ID]).or_else(|| host.request_header("x-request-id"));
        let id = id.as_deref().and_then(|v| std::str::from_utf8(v).ok());
        self.select(RequestFacts {
            consent: consent.as_deref(),
            tenant: tenant.as_deref(),
            request_id: id,
            synthetic: fs::synthetic(host),
        })
    }

    /// At the request headers: consent first (header, then tenant), then the synthetic rule,
    /// then the sampling decision.
    pub fn select(&self, request: RequestFacts<'_>) -> Result<Consent, Skip> {
        let c = &self.config;
        let trimmed = |v: &[u8]| v.trim_ascii().to_vec();
        let by_header = request.consent.is_some_and(|v| trimmed(v) == c.consent_value.as_bytes());
        let by_tenant = request.tenant.is_some_and(|t| c.tenants.iter().any(|allowed| allowed.as_bytes() == t));
        let consent = match (by_header, by_tenant) {
            (true, _) => Consent::Header,
            (false, true) => Consent::Tenant,
            (false, false) => return Err(Skip::NoConsent),
        };
        if request.synthetic && !c.include_synthetic {
            return Err(Skip::Synthetic);
        }
        // The log sampling hashes the bare request id; a prefix makes this decision independent
        // of it (an exchange logged at 10% is not thereby exported at 10%), still the same for
        // the same id in every filter and on every retry of the decision.
        let sampled = match request.request_id {
            Some(id) => sampling::is_sampled(&format!("llmobs.eval:{id}"), c.sample_rate),
            None => c.sample_rate >= 1.0,
        };
        if !sampled {
            return Err(Skip::NotSampled);
        }
        Ok(consent)
    }

    /// At the end of the exchange: the data classification rule.
    pub fn classify<'a>(&self, blocked: bool, mut entities: impl Iterator<Item = &'a str>) -> Result<(), Skip> {
        if blocked {
            return Err(Skip::Blocked);
        }
        if entities.any(|e| self.config.skip_entities.iter().any(|s| s == e)) {
            return Err(Skip::Entity);
        }
        Ok(())
    }
}

/// One exported exchange. Every text field is either a bounded id or label the other filters
/// validated, or redaction's checked capture.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    pub time_unix_nano: u64,
    /// `(attribute, filter-state value)` for each id, model and class the exchange has.
    pub fields: Vec<(&'static str, String)>,
    /// `(attribute, tokens)`.
    pub usage: Vec<(&'static str, i64)>,
    pub tool_names: Vec<String>,
    pub trace_id: Option<[u8; 16]>,
    pub rule_set: String,
    pub consent: Option<Consent>,
    pub prompt: Option<String>,
    pub completion: Option<String>,
}

/// Filter-state keys read into a record's string attributes.
const STRING_FIELDS: [(&str, &str); 12] = [
    ("llmobs.request_id", fs::REQUEST_ID),
    ("gen_ai.conversation.id", fs::CONVERSATION_ID),
    ("llmobs.agent_run_id", fs::AGENT_RUN_ID),
    ("gen_ai.provider.name", fs::PROVIDER),
    ("gen_ai.operation.name", fs::OPERATION),
    ("gen_ai.request.model", fs::REQUEST_MODEL),
    ("gen_ai.response.model", fs::RESPONSE_MODEL),
    ("error.type", fs::ERROR_TYPE),
    ("gen_ai.response.finish_reason", fs::FINISH_REASON),
    ("llmobs.prompt.id", agent::PROMPT_ID),
    ("llmobs.prompt.version", agent::PROMPT_VERSION),
    ("llmobs.tenant", fs::TENANT),
];

const USAGE_FIELDS: [(&str, &str); 6] = [
    ("gen_ai.usage.input_tokens", fs::USAGE_INPUT),
    ("gen_ai.usage.output_tokens", fs::USAGE_OUTPUT),
    ("gen_ai.usage.cache_read_tokens", fs::USAGE_CACHE_READ),
    ("gen_ai.usage.cache_creation_tokens", fs::USAGE_CACHE_CREATION),
    ("gen_ai.usage.reasoning_tokens", fs::USAGE_REASONING),
    ("gen_ai.usage.total_tokens", fs::USAGE_TOTAL),
];

/// The event name every record carries (`event.name`).
pub const EVENT_NAME: &str = "llmobs.eval.exchange";

fn hex16(s: &str) -> Option<[u8; 16]> {
    if s.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    (out != [0; 16]).then_some(out)
}

impl Record {
    /// The facts the other behaviours wrote to filter state (they finish before redaction, in
    /// the bundle and in Envoy's response-path order alike).
    pub fn read<H: Host>(host: &H) -> Self {
        let read = |key: &str| {
            host.property(&[key]).and_then(|v| String::from_utf8(v).ok()).filter(|v| !v.is_empty() && v.len() <= 512)
        };
        let fields = STRING_FIELDS.iter().filter_map(|(attr, key)| read(key).map(|v| (*attr, v))).collect();
        let usage =
            USAGE_FIELDS.iter().filter_map(|(attr, key)| read(key)?.parse::<i64>().ok().map(|n| (*attr, n))).collect();
        let tool_names = read(agent::TOOL_CALLS)
            .map(|v| v.split(',').filter_map(|entry| entry.split('=').next()).map(str::to_string).collect())
            .unwrap_or_default();
        Self {
            time_unix_nano: host.now_nanos(),
            fields,
            usage,
            tool_names,
            trace_id: read(fs::TRACE_ID).and_then(|t| hex16(&t)),
            ..Self::default()
        }
    }

    /// The encoded OTLP `LogRecord`: the prompt and completion in the body (a map), everything
    /// else as attributes.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        if let Some(prompt) = &self.prompt {
            body.push(("prompt".to_string(), Value::Str(prompt.clone())));
        }
        if let Some(completion) = &self.completion {
            body.push(("completion".to_string(), Value::Str(completion.clone())));
        }
        let mut attributes: Vec<(&str, Value)> = vec![("event.name", Value::Str(EVENT_NAME.to_string()))];
        attributes.extend(self.fields.iter().map(|(k, v)| (*k, Value::Str(v.clone()))));
        attributes.extend(self.usage.iter().map(|(k, n)| (*k, Value::Int(*n))));
        if !self.tool_names.is_empty() {
            attributes.push(("gen_ai.tool.names", Value::Strings(self.tool_names.clone())));
        }
        attributes.push(("llmobs.pii.rule_set", Value::Str(self.rule_set.clone())));
        if let Some(consent) = self.consent {
            attributes.push(("llmobs.eval.consent", Value::Str(consent.label().to_string())));
        }
        otlp::log_record(self.time_unix_nano, &Value::Map(body), &attributes, self.trace_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(json: &str) -> Policy {
        let config: EvaluationConfig = crate::config::parse_json(json.as_bytes()).expect("valid");
        Policy::new(&config).expect("enabled")
    }

    fn facts<'a>(consent: Option<&'a str>, tenant: Option<&'a str>, id: &'a str) -> RequestFacts<'a> {
        RequestFacts {
            consent: consent.map(str::as_bytes),
            tenant: tenant.map(str::as_bytes),
            request_id: Some(id),
            synthetic: false,
        }
    }

    #[test]
    fn export_is_off_unless_enabled() {
        assert!(Policy::new(&EvaluationConfig::default()).is_none());
    }

    #[test]
    fn only_the_consent_value_in_the_consent_header_consents() {
        let p = policy(r#"{"enabled": true}"#);
        assert_eq!(p.select(facts(Some("eval"), None, "r1")), Ok(Consent::Header));
        assert_eq!(p.select(facts(Some(" eval "), None, "r1")), Ok(Consent::Header));
        assert_eq!(p.select(facts(Some("no"), None, "r1")), Err(Skip::NoConsent));
        assert_eq!(p.select(facts(Some("evaluation"), None, "r1")), Err(Skip::NoConsent));
        assert_eq!(p.select(facts(None, None, "r1")), Err(Skip::NoConsent));
    }

    #[test]
    fn an_allow_listed_tenant_consents_for_every_request() {
        let p = policy(r#"{"enabled": true, "tenant_header": "x-tenant", "tenants": ["acme"]}"#);
        assert_eq!(p.select(facts(None, Some("acme"), "r1")), Ok(Consent::Tenant));
        assert_eq!(p.select(facts(None, Some("globex"), "r1")), Err(Skip::NoConsent));
        assert_eq!(p.select(facts(Some("eval"), Some("acme"), "r1")), Ok(Consent::Header));
    }

    #[test]
    fn synthetic_probes_are_excluded_unless_included() {
        let mut f = facts(Some("eval"), None, "r1");
        f.synthetic = true;
        assert_eq!(policy(r#"{"enabled": true}"#).select(f), Err(Skip::Synthetic));
        assert_eq!(policy(r#"{"enabled": true, "include_synthetic": true}"#).select(f), Ok(Consent::Header));
    }

    #[test]
    fn sampling_is_decided_by_the_request_id_independently_of_log_sampling() {
        let p = policy(r#"{"enabled": true, "sample_rate": 0.5}"#);
        let ids: Vec<String> = (0..2000).map(|i| format!("req-{i}")).collect();
        let picked: Vec<bool> = ids.iter().map(|id| p.select(facts(Some("eval"), None, id)).is_ok()).collect();
        let again: Vec<bool> = ids.iter().map(|id| p.select(facts(Some("eval"), None, id)).is_ok()).collect();
        assert_eq!(picked, again, "the same id, the same decision");
        let n = picked.iter().filter(|p| **p).count();
        assert!((900..=1100).contains(&n), "{n}");
        // Not the log decision at the same rate: the two sets differ.
        let logged: Vec<bool> = ids.iter().map(|id| sampling::is_sampled(id, 0.5)).collect();
        assert_ne!(picked, logged);
        let none = policy(r#"{"enabled": true, "sample_rate": 0}"#);
        assert_eq!(none.select(facts(Some("eval"), None, "r1")), Err(Skip::NotSampled));
    }

    #[test]
    fn blocked_exchanges_and_configured_entities_are_never_exported() {
        let p = policy(r#"{"enabled": true, "skip_entities": ["us_ssn", "employee_id"]}"#);
        assert_eq!(p.classify(true, std::iter::empty()), Err(Skip::Blocked));
        assert_eq!(p.classify(false, ["email", "employee_id"].into_iter()), Err(Skip::Entity));
        assert_eq!(p.classify(false, ["email"].into_iter()), Ok(()));
    }

    #[test]
    fn a_record_reads_the_other_filters_state_and_skips_what_is_absent_or_malformed() {
        let mut host = llmobs_fake::Host::default();
        host.set(fs::REQUEST_ID, "req-1");
        host.set(fs::REQUEST_MODEL, "gpt-4o");
        host.set(fs::USAGE_INPUT, "12");
        host.set(fs::USAGE_OUTPUT, "not a number");
        host.set(agent::TOOL_CALLS, "get_weather=2,lookup=1");
        host.set(fs::TRACE_ID, "4bf92f3577b34da6a3ce929d0e0e4736");
        let r = Record::read(&host);
        assert_eq!(
            r.fields,
            vec![("llmobs.request_id", "req-1".to_string()), ("gen_ai.request.model", "gpt-4o".to_string())]
        );
        assert_eq!(r.usage, vec![("gen_ai.usage.input_tokens", 12)]);
        assert_eq!(r.tool_names, ["get_weather", "lookup"]);
        assert_eq!(r.trace_id.map(|t| t[0]), Some(0x4b));
    }

    #[test]
    fn an_encoded_record_carries_the_texts_in_its_body_and_the_consent_basis() {
        let record = Record {
            time_unix_nano: 5,
            fields: vec![("llmobs.request_id", "req-1".into())],
            rule_set: "v1@abc".into(),
            consent: Some(Consent::Tenant),
            prompt: Some("my mail is [EMAIL]".into()),
            completion: Some("noted".into()),
            ..Record::default()
        };
        let bytes = record.encode();
        let text = String::from_utf8_lossy(&bytes);
        for expected in ["my mail is [EMAIL]", "noted", "completion", "req-1", "v1@abc", "tenant", EVENT_NAME] {
            assert!(text.contains(expected), "{expected}");
        }
    }

    /// The smallest host for reading filter state (the testkit depends on this crate, so it
    /// cannot be used here).
    mod llmobs_fake {
        use crate::host::{HostError, LogLevel, MetricId, SharedDataError, Stats};
        use std::collections::HashMap;

        #[derive(Default)]
        pub struct Host(HashMap<String, Vec<u8>>);

        impl Host {
            pub fn set(&mut self, key: &str, value: &str) {
                self.0.insert(key.to_string(), value.as_bytes().to_vec());
            }
        }

        impl Stats for Host {
            fn define_counter(&mut self, _: &str) -> Result<MetricId, HostError> {
                Ok(MetricId(0))
            }
            fn define_histogram(&mut self, _: &str) -> Result<MetricId, HostError> {
                Ok(MetricId(0))
            }
            fn define_gauge(&mut self, _: &str) -> Result<MetricId, HostError> {
                Ok(MetricId(0))
            }
            fn set_gauge(&mut self, _: MetricId, _: u64) {}
        }

        impl crate::host::Host for Host {
            fn request_header(&self, _: &str) -> Option<Vec<u8>> {
                None
            }
            fn set_request_header(&mut self, _: &str, _: &str) {}
            fn remove_request_header(&mut self, _: &str) {}
            fn set_response_header(&mut self, _: &str, _: &str) {}
            fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
                self.0.get(path.first()?.to_owned()).cloned()
            }
            fn set_filter_state(&mut self, key: &str, value: &[u8]) {
                self.0.insert(key.to_string(), value.to_vec());
            }
            fn increment_counter(&mut self, _: MetricId, _: u64) {}
            fn record_histogram(&mut self, _: MetricId, _: u64) {}
            fn response_header(&self, _: &str) -> Option<Vec<u8>> {
                None
            }
            fn remove_response_header(&mut self, _: &str) {}
            fn now_nanos(&self) -> u64 {
                7
            }
            fn shared_data(&self, _: &str) -> Option<(Vec<u8>, u32)> {
                None
            }
            fn set_shared_data(&mut self, _: &str, _: &[u8], _: Option<u32>) -> Result<(), SharedDataError> {
                Ok(())
            }
            fn log(&self, _: LogLevel, _: &str) {}
            fn fill_random(&mut self, _: &mut [u8]) -> bool {
                false
            }
            fn send_local_response(&mut self, _: u16, _: &str, _: &[(&str, &str)], _: &[u8]) -> bool {
                false
            }
        }
    }
}
