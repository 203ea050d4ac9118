//! The error-normalization filter's plugin configuration (docs/filters/error-normalization.md).

use crate::config::{check_header_name, parse_json, ConfigError};
use crate::token_accounting::provider::{validate_overrides, ProviderOverride};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ErrorNormalizationConfig {
    /// Provider names for OpenAI-compatible servers and custom routes (as in token accounting).
    pub providers: Vec<ProviderOverride>,
    /// Response headers that tell clients the class; an empty name turns one off (default: all
    /// off). For a non-streaming error the filter holds the response headers until the
    /// (size-capped) error body is read, so the headers reflect the body.
    pub response_headers: ResponseHeaders,
    /// Route names (Envoy `route.name`) whose error bodies are rewritten into the uniform shape,
    /// and whose gateway failures get a structured degraded-mode reply; `"*"` for every route.
    pub uniform_error_body_routes: Vec<String>,
    /// Bytes of an error body read for classification (and held, when headers or the body are
    /// rewritten). A larger body is classified by its status and passed on unchanged.
    pub max_error_body_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseHeaders {
    pub error_type: String,
    pub retryable: String,
    pub retry_after_ms: String,
}

impl ResponseHeaders {
    pub fn any(&self) -> bool {
        !(self.error_type.is_empty() && self.retryable.is_empty() && self.retry_after_ms.is_empty())
    }
}

impl Default for ErrorNormalizationConfig {
    fn default() -> Self {
        Self {
            providers: Vec::new(),
            response_headers: ResponseHeaders::default(),
            uniform_error_body_routes: Vec::new(),
            max_error_body_bytes: 64 << 10,
        }
    }
}

impl ErrorNormalizationConfig {
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        let config: Self = parse_json(bytes)?;
        // Every value error, not only the first.
        let mut errors = Vec::new();
        errors.extend(validate_overrides(&config.providers).err());
        let h = &config.response_headers;
        for (field, name) in [
            ("response_headers.error_type", &h.error_type),
            ("response_headers.retryable", &h.retryable),
            ("response_headers.retry_after_ms", &h.retry_after_ms),
        ] {
            if !name.is_empty() {
                errors.extend(check_header_name(field, name).err());
            }
        }
        if config.max_error_body_bytes == 0 || config.max_error_body_bytes > 1 << 20 {
            errors.push(ConfigError::new("max_error_body_bytes", "must be from 1 to 1048576"));
        }
        ConfigError::collect(errors)?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_observe_only() {
        let c = ErrorNormalizationConfig::parse(b"").unwrap();
        assert!(!c.response_headers.any());
        assert!(c.uniform_error_body_routes.is_empty());
        assert_eq!(c.max_error_body_bytes, 65536);
    }

    #[test]
    fn bad_configurations_name_their_field() {
        for (json, field) in [
            (r#"{"response_headers": {"error_type": "X-Error"}}"#, "response_headers.error_type"),
            (r#"{"max_error_body_bytes": 0}"#, "max_error_body_bytes"),
            (r#"{"providers": [{"provider": "x"}]}"#, "providers[0]"),
            (r#"{"uniform_body": true}"#, "uniform_body"),
        ] {
            assert_eq!(ErrorNormalizationConfig::parse(json.as_bytes()).unwrap_err().field, field, "{json}");
        }
    }
}
