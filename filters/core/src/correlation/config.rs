//! The correlation filter's plugin configuration (documented in `docs/configuration.md`).

use crate::baggage::Limits;
use crate::config::{check_header_name, check_rate, parse_json, ConfigError};
use crate::signals::config::{self as signals, FeedbackConfig, RetrievalConfig, SignalLabels};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorrelationConfig {
    /// The request-id header. Envoy's connection manager sets it before any filter runs.
    pub request_id_header: String,
    pub conversation_id: IdSource,
    pub agent_id: IdSource,
    pub parent_agent_id: IdSource,
    pub agent_run_id: IdSource,
    pub trace_context: TraceContextMode,
    /// Fraction of successful requests logged in full; errors are always logged.
    pub sample_rate: f64,
    pub synthetic: SyntheticConfig,
    pub echo: EchoConfig,
    pub baggage: BaggageConfig,
    /// The client-feedback endpoint the filter answers itself (off unless `path` is set).
    pub feedback: FeedbackConfig,
    /// The retrieval-diagnostics header (read, recorded and removed).
    pub retrieval: RetrievalConfig,
    /// Where the tenant and prompt-version labels of feedback and retrieval come from.
    pub signal_labels: SignalLabels,
}

impl Default for CorrelationConfig {
    fn default() -> Self {
        Self {
            request_id_header: "x-request-id".into(),
            // Agent and session headers seen in the wild (providers.md): generic, Claude Code,
            // Codex, OpenCode.
            conversation_id: IdSource::from_headers(&[
                "x-conversation-id",
                "x-claude-code-session-id",
                "session-id",
                "x-session-id",
            ]),
            agent_id: IdSource::from_headers(&["x-agent-id", "x-claude-code-agent-id"]),
            parent_agent_id: IdSource::from_headers(&[
                "x-parent-agent-id",
                "x-claude-code-parent-agent-id",
                "x-parent-session-id",
            ]),
            agent_run_id: IdSource::from_headers(&["x-agent-run-id"]),
            trace_context: TraceContextMode::Manage,
            sample_rate: 1.0,
            synthetic: SyntheticConfig::default(),
            echo: EchoConfig::default(),
            baggage: BaggageConfig::default(),
            feedback: FeedbackConfig::default(),
            retrieval: RetrievalConfig::default(),
            signal_labels: SignalLabels::default(),
        }
    }
}

/// Where one kind of id comes from: headers in priority order (the first present wins).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdSource {
    pub headers: Vec<String>,
    /// Mint an id when no header carries one, and send it upstream in the first header.
    pub mint_when_absent: bool,
}

impl IdSource {
    fn from_headers(headers: &[&str]) -> Self {
        Self { headers: headers.iter().map(|h| (*h).to_string()).collect(), mint_when_absent: false }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceContextMode {
    /// The filter keeps a valid `traceparent`, replaces an invalid one and mints one when absent.
    Manage,
    /// Envoy's own tracer owns `traceparent`: the filter only validates and records it, and
    /// removes an invalid one (which the tracer would otherwise forward untouched).
    Observe,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyntheticConfig {
    /// A request carrying this header with value `true` or `1` is a synthetic probe.
    pub header: String,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self { header: "x-llmobs-synthetic".into() }
    }
}

/// Response headers that echo ids to the client; an empty name turns one off.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EchoConfig {
    pub request_id: String,
    pub conversation_id: String,
    pub agent_run_id: String,
    pub trace_id: String,
}

impl Default for EchoConfig {
    fn default() -> Self {
        Self {
            request_id: "x-request-id".into(),
            conversation_id: "x-conversation-id".into(),
            agent_run_id: "x-agent-run-id".into(),
            trace_id: "x-trace-id".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BaggageConfig {
    pub max_members: usize,
    pub max_bytes: usize,
    /// Keys that may leave toward a destination not listed in `destinations`. Default: none,
    /// so all baggage is stripped toward unknown destinations.
    pub default_allow_keys: Vec<String>,
    pub destinations: Vec<Destination>,
}

impl Default for BaggageConfig {
    fn default() -> Self {
        let limits = Limits::default();
        Self {
            max_members: limits.max_members,
            max_bytes: limits.max_bytes,
            default_allow_keys: Vec::new(),
            destinations: Vec::new(),
        }
    }
}

/// A destination, matched by Envoy cluster name or by `:authority` (with or without port).
/// Exactly one of `cluster` and `authority` is set.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Destination {
    pub cluster: Option<String>,
    pub authority: Option<String>,
    pub allow_keys: Vec<String>,
}

impl CorrelationConfig {
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        let config: Self = parse_json(bytes)?;
        config.validate()?;
        Ok(config)
    }

    /// Every value error, not only the first.
    fn validate(&self) -> Result<(), ConfigError> {
        let mut errors = Vec::new();
        errors.extend(check_header_name("request_id_header", &self.request_id_header).err());
        for (field, source) in [
            ("conversation_id", &self.conversation_id),
            ("agent_id", &self.agent_id),
            ("parent_agent_id", &self.parent_agent_id),
            ("agent_run_id", &self.agent_run_id),
        ] {
            for (i, header) in source.headers.iter().enumerate() {
                errors.extend(check_header_name(&format!("{field}.headers[{i}]"), header).err());
            }
            if source.mint_when_absent && source.headers.is_empty() {
                errors.push(ConfigError::new(
                    format!("{field}.mint_when_absent"),
                    "needs at least one header to send the minted id in",
                ));
            }
        }
        errors.extend(check_rate("sample_rate", self.sample_rate).err());
        errors.extend(check_header_name("synthetic.header", &self.synthetic.header).err());
        for (field, name) in [
            ("echo.request_id", &self.echo.request_id),
            ("echo.conversation_id", &self.echo.conversation_id),
            ("echo.agent_run_id", &self.echo.agent_run_id),
            ("echo.trace_id", &self.echo.trace_id),
        ] {
            if !name.is_empty() {
                errors.extend(check_header_name(field, name).err());
            }
        }
        let limits = Limits::default();
        if self.baggage.max_members == 0 || self.baggage.max_members > limits.max_members {
            errors.push(ConfigError::new("baggage.max_members", "must be from 1 to 180 (the W3C limit)"));
        }
        if self.baggage.max_bytes == 0 || self.baggage.max_bytes > limits.max_bytes {
            errors.push(ConfigError::new("baggage.max_bytes", "must be from 1 to 8192 (the W3C limit)"));
        }
        for (i, d) in self.baggage.destinations.iter().enumerate() {
            let blank = |v: &Option<String>| v.as_deref().is_none_or(str::is_empty);
            if blank(&d.cluster) == blank(&d.authority) {
                errors.push(ConfigError::new(
                    format!("baggage.destinations[{i}]"),
                    "set exactly one of `cluster` and `authority`",
                ));
            }
        }
        errors.extend(signals::problems(&self.feedback, &self.retrieval, &self.signal_labels));
        ConfigError::collect(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_configuration_gives_the_documented_defaults() {
        let config = CorrelationConfig::parse(b"").unwrap();
        assert_eq!(config, CorrelationConfig::default());
        assert_eq!(config.sample_rate, 1.0);
        assert_eq!(config.trace_context, TraceContextMode::Manage);
        assert!(config.conversation_id.headers.contains(&"x-claude-code-session-id".to_string()));
        assert!(config.baggage.destinations.is_empty());
    }

    #[test]
    fn every_bad_configuration_names_its_field() {
        let cases: &[(&str, &str, &str)] = &[
            (r#"{"sample_rat": 1}"#, "sample_rat", "unknown field"),
            (r#"{"sample_rate": 2}"#, "sample_rate", "from 0 to 1"),
            (r#"{"sample_rate": "all"}"#, "sample_rate", "invalid type"),
            (r#"{"request_id_header": "X-Id"}"#, "request_id_header", "lower-case"),
            (r#"{"conversation_id": {"headers": ["ok", "bad header"]}}"#, "conversation_id.headers[1]", "lower-case"),
            (
                r#"{"agent_run_id": {"headers": [], "mint_when_absent": true}}"#,
                "agent_run_id.mint_when_absent",
                "at least one header",
            ),
            (r#"{"trace_context": "own"}"#, "trace_context", "unknown variant"),
            (r#"{"echo": {"trace_id": "X"}}"#, "echo.trace_id", "lower-case"),
            (r#"{"baggage": {"max_members": 500}}"#, "baggage.max_members", "W3C"),
            (r#"{"baggage": {"max_bytes": 0}}"#, "baggage.max_bytes", "W3C"),
            (r#"{"baggage": {"destinations": [{"allow_keys": []}]}}"#, "baggage.destinations[0]", "exactly one"),
            (
                r#"{"baggage": {"destinations": [{"cluster": "a", "authority": "b"}]}}"#,
                "baggage.destinations[0]",
                "exactly one",
            ),
            (r#"{"feedback": {"path": "feedback"}}"#, "feedback.path", "start with `/`"),
            (r#"{"feedback": {"path": "/f?x=1"}}"#, "feedback.path", "letters, digits"),
            (r#"{"feedback": {"max_body_bytes": 100000}}"#, "feedback.max_body_bytes", "1 to 65536"),
            (
                r#"{"feedback": {"locale_label": {"max_distinct": 0}}}"#,
                "feedback.locale_label.max_distinct",
                "1 to 10000",
            ),
            (r#"{"feedback": {"pth": "/f"}}"#, "feedback.pth", "unknown field"),
            (r#"{"retrieval": {"header": "X-R"}}"#, "retrieval.header", "lower-case"),
            (r#"{"signal_labels": {"tenant_header": "bad header"}}"#, "signal_labels.tenant_header", "lower-case"),
            (
                r#"{"signal_labels": {"prompt_version_label": {"max_distinct": 20000}}}"#,
                "signal_labels.prompt_version_label.max_distinct",
                "1 to 10000",
            ),
            (r#""all""#, ".", "invalid type"),
            (r#"{"sample_rate": 1"#, ".", "EOF"),
        ];
        for (json, field, reason) in cases {
            let err = CorrelationConfig::parse(json.as_bytes()).unwrap_err();
            assert_eq!(err.field, *field, "{json}: {err}");
            assert!(err.reason.contains(reason), "{json}: {err}");
        }
    }

    #[test]
    fn every_signals_error_is_reported_not_only_the_first() {
        let json = r#"{"feedback": {"path": "fb", "max_body_bytes": 0, "locale_label": {"max_distinct": 0}},
            "retrieval": {"header": "X-R", "route_label": {"max_distinct": 0}},
            "signal_labels": {"tenant_header": "a b", "prompt_version_header": "P", "tenant_label": {"max_distinct": 0},
                              "prompt_version_label": {"max_distinct": 0}}}"#;
        let err = CorrelationConfig::parse(json.as_bytes()).unwrap_err();
        let fields: Vec<String> = err.into_all().into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "feedback.path",
                "feedback.max_body_bytes",
                "retrieval.header",
                "signal_labels.tenant_header",
                "signal_labels.prompt_version_header",
                "feedback.locale_label.max_distinct",
                "retrieval.route_label.max_distinct",
                "signal_labels.tenant_label.max_distinct",
                "signal_labels.prompt_version_label.max_distinct",
            ]
        );
    }

    #[test]
    fn an_empty_echo_header_turns_that_echo_off() {
        let config = CorrelationConfig::parse(br#"{"echo": {"trace_id": ""}}"#).unwrap();
        assert_eq!(config.echo.trace_id, "");
        assert_eq!(config.echo.request_id, "x-request-id");
    }
}
