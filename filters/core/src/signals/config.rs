//! Configuration of the application-reported signals (part of the correlation filter's
//! configuration, documented in `docs/configuration.md`).

use crate::config::{check_header_name, ConfigError};
use crate::token_accounting::config::LabelPolicy;
use serde::Deserialize;

/// The largest feedback body the filter holds.
pub const MAX_FEEDBACK_BODY_BYTES: usize = 65536;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedbackConfig {
    /// The path the filter answers itself (query string ignored). Empty: off, every path
    /// passes through (the application's own feedback route, say).
    pub path: String,
    /// Bodies over this are refused with 413 (at most 64 KiB).
    pub max_body_bytes: usize,
    /// The `locale` label's policy (default: 50 distinct values per process).
    pub locale_label: LabelPolicy,
}

impl Default for FeedbackConfig {
    fn default() -> Self {
        Self {
            path: String::new(),
            max_body_bytes: 4096,
            locale_label: LabelPolicy { allow: Vec::new(), max_distinct: 50 },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrievalConfig {
    /// The request header the application reports retrieval diagnostics in; removed before
    /// the request goes upstream. Empty: off (the header then passes untouched).
    pub header: String,
    /// The `route` label's policy (route names come from Envoy's configuration; capped anyway).
    pub route_label: LabelPolicy,
}

impl Default for RetrievalConfig {
    fn default() -> Self {
        Self { header: "x-llmobs-retrieval".into(), route_label: LabelPolicy { allow: Vec::new(), max_distinct: 100 } }
    }
}

/// Where the `tenant` and `prompt_version` labels of these signals come from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignalLabels {
    /// A request header naming the tenant (id rules); empty: every value is `unknown`.
    pub tenant_header: String,
    pub tenant_label: LabelPolicy,
    /// The prompt version the application used (id rules); an absent or invalid value is
    /// `unknown`.
    pub prompt_version_header: String,
    pub prompt_version_label: LabelPolicy,
}

impl Default for SignalLabels {
    fn default() -> Self {
        Self {
            tenant_header: String::new(),
            tenant_label: LabelPolicy { allow: Vec::new(), max_distinct: 50 },
            prompt_version_header: "x-llmobs-prompt-version".into(),
            prompt_version_label: LabelPolicy { allow: Vec::new(), max_distinct: 50 },
        }
    }
}

/// Every error of the three sections, not only the first; `field` names are as the
/// correlation filter's configuration spells them (`feedback.path`, `signal_labels.tenant_header`).
pub fn problems(feedback: &FeedbackConfig, retrieval: &RetrievalConfig, labels: &SignalLabels) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    if !feedback.path.is_empty() {
        let path = &feedback.path;
        let well_formed = path.starts_with('/')
            && path.len() <= 256
            && path.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-._~".contains(&b));
        if !well_formed {
            errors.push(ConfigError::new(
                "feedback.path",
                "must start with `/` and use only letters, digits and `/-._~` (at most 256 bytes)",
            ));
        }
    }
    if feedback.max_body_bytes == 0 || feedback.max_body_bytes > MAX_FEEDBACK_BODY_BYTES {
        errors.push(ConfigError::new("feedback.max_body_bytes", "must be from 1 to 65536"));
    }
    for (field, header) in [
        ("retrieval.header", &retrieval.header),
        ("signal_labels.tenant_header", &labels.tenant_header),
        ("signal_labels.prompt_version_header", &labels.prompt_version_header),
    ] {
        // Empty turns the signal (or the label's source) off.
        if !header.is_empty() {
            errors.extend(check_header_name(field, header).err());
        }
    }
    for (field, policy) in [
        ("feedback.locale_label", &feedback.locale_label),
        ("retrieval.route_label", &retrieval.route_label),
        ("signal_labels.tenant_label", &labels.tenant_label),
        ("signal_labels.prompt_version_label", &labels.prompt_version_label),
    ] {
        if policy.allow.is_empty() && !(1..=10_000).contains(&policy.max_distinct) {
            errors.push(ConfigError::new(format!("{field}.max_distinct"), "must be from 1 to 10000"));
        }
    }
    errors
}
