//! The token-accounting filter's plugin configuration (docs/filters/token-accounting.md).

pub use super::provider::ProviderOverride;
use crate::config::{check_header_name, parse_json, ConfigError};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenAccountingConfig {
    /// Provider names for OpenAI-compatible servers and custom routes, by cluster or path prefix.
    pub providers: Vec<ProviderOverride>,
    /// A request header whose value becomes the `tenant` label (validated like an id, bounded).
    /// Empty: no tenant label.
    pub tenant_header: String,
    pub model_label: LabelPolicy,
    pub tenant_label: LabelPolicy,
    /// Request bytes read to find the model and the stream flag; beyond it the request is
    /// counted as over the limit and passed on untouched.
    pub max_request_body_bytes: usize,
    /// Bytes of a non-streaming response body read for usage.
    pub max_response_body_bytes: usize,
    /// The largest single stream frame (SSE event, JSON element, event-stream message).
    pub max_frame_bytes: usize,
    /// Remove `accept-encoding` from requests to recognised providers so responses come back
    /// uncompressed and readable. Off: compressed responses are detected, counted and skipped.
    pub request_identity_encoding: bool,
    /// Add `stream_options.include_usage` to OpenAI-style streaming requests that lack it, and
    /// remove the extra usage chunk before the client sees it. Buffers those request bodies (up
    /// to `max_request_body_bytes`, which must fit Envoy's buffer limit).
    pub inject_stream_usage: bool,
    /// Prices per provider and model (`envoy/prices/default.json`, docs/pricing.md). Unset: no
    /// cost is computed and nothing is counted as unpriced.
    pub prices: Option<crate::pricing::PriceTable>,
    /// Agent, tool and prompt signals (`crate::agent`).
    pub agent: crate::agent::config::AgentConfig,
}

impl Default for TokenAccountingConfig {
    fn default() -> Self {
        Self {
            providers: Vec::new(),
            tenant_header: String::new(),
            model_label: LabelPolicy { allow: Vec::new(), max_distinct: 100 },
            tenant_label: LabelPolicy { allow: Vec::new(), max_distinct: 50 },
            max_request_body_bytes: 4 << 20,
            max_response_body_bytes: 4 << 20,
            max_frame_bytes: 1 << 20,
            request_identity_encoding: true,
            inject_stream_usage: false,
            prices: None,
            agent: Default::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LabelPolicy {
    /// When set, only these values are reported; others become `_OTHER`.
    pub allow: Vec<String>,
    /// Without an allow-list: distinct values per Envoy process (and VM id) before `_OTHER`.
    pub max_distinct: usize,
}

impl TokenAccountingConfig {
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        let config: Self = parse_json(bytes)?;
        config.validate()?;
        Ok(config)
    }

    /// Every value error, not only the first.
    fn validate(&self) -> Result<(), ConfigError> {
        let mut errors = Vec::new();
        errors.extend(super::provider::validate_overrides(&self.providers).err());
        errors.extend(self.agent.validate("agent").err());
        if !self.tenant_header.is_empty() {
            errors.extend(check_header_name("tenant_header", &self.tenant_header).err());
        }
        for (field, policy) in [("model_label", &self.model_label), ("tenant_label", &self.tenant_label)] {
            if policy.allow.is_empty() && !(1..=10_000).contains(&policy.max_distinct) {
                errors.push(ConfigError::new(format!("{field}.max_distinct"), "must be from 1 to 10000"));
            }
        }
        for (field, value, max) in [
            ("max_request_body_bytes", self.max_request_body_bytes, 64 << 20),
            ("max_response_body_bytes", self.max_response_body_bytes, 64 << 20),
            ("max_frame_bytes", self.max_frame_bytes, 16 << 20),
        ] {
            if value == 0 || value > max {
                errors.push(ConfigError::new(field, format!("must be from 1 to {max}")));
            }
        }
        if let Some(prices) = &self.prices {
            if let Err(e) = prices.validate("prices") {
                errors.push(e);
            }
        }
        ConfigError::collect(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_configuration_gives_the_documented_defaults() {
        let c = TokenAccountingConfig::parse(b"").unwrap();
        assert_eq!(c, TokenAccountingConfig::default());
        assert_eq!(c.model_label.max_distinct, 100);
        assert!(c.request_identity_encoding);
    }

    #[test]
    fn every_bad_configuration_names_its_field() {
        let cases: &[(&str, &str, &str)] = &[
            (r#"{"provider": []}"#, "provider", "unknown field"),
            (r#"{"providers": [{"provider": "vllm"}]}"#, "providers[0]", "exactly one"),
            (
                r#"{"providers": [{"cluster": "a", "path_prefix": "/b", "provider": "x"}]}"#,
                "providers[0]",
                "exactly one",
            ),
            (r#"{"providers": [{"cluster": "a", "provider": "Bad Name"}]}"#, "providers[0].provider", "a-z"),
            (r#"{"tenant_header": "X-Tenant"}"#, "tenant_header", "lower-case"),
            (r#"{"model_label": {"max_distinct": 0}}"#, "model_label.max_distinct", "from 1"),
            (r#"{"max_frame_bytes": 0}"#, "max_frame_bytes", "from 1"),
            (r#"{"max_response_body_bytes": -1}"#, "max_response_body_bytes", "invalid value"),
        ];
        for (json, field, reason) in cases {
            let err = TokenAccountingConfig::parse(json.as_bytes()).unwrap_err();
            assert_eq!(err.field, *field, "{json}: {err}");
            assert!(err.reason.contains(reason), "{json}: {err}");
        }
    }
}
