//! The agent-signal settings: a section of the token-accounting configuration (`agent`), and of
//! the bundle's accounting section (docs/filters/token-accounting.md, "Agent, tool and prompt
//! signals").

use crate::config::{check_header_name, ConfigError};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Request header carrying the prompt id (validated like an id). Empty: not read.
    pub prompt_id_header: String,
    /// Request header carrying the prompt version (validated like an id). Empty: not read.
    pub prompt_version_header: String,
    /// Bounds the `prompt_version` label (allow-list, else the first `max_distinct` seen).
    pub prompt_version_label: BoundedNames,
    /// Bounds the `gen_ai_tool_name` label and the tool names in the log.
    pub tool_name_label: BoundedNames,
    /// OpenAI chat and Responses tool outputs carry no error flag on the wire: an output that is
    /// a JSON object with a top-level `error` key counts as a failed tool (the convention; off
    /// with `false`). An MCP result's `isError: true` always counts.
    pub json_error_key: bool,
    /// Operator markers for the same outputs: an output whose text (leading whitespace skipped)
    /// starts with one of these counts as a failed tool. At most 16, each 1 to 64 bytes.
    pub tool_error_prefixes: Vec<String>,
    /// Trace-size control for deep agent loops: when set, `llmobs.span.keep` says whether the
    /// request's span belongs to the kept ones (the first `first` iterations, then every
    /// `every`th), decided from the iteration alone so every proxy decides alike.
    pub span_cap: Option<SpanCap>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpanCap {
    pub first: u32,
    pub every: u32,
}

impl SpanCap {
    /// Whether the span of this iteration (1-based) is kept.
    pub fn keeps(&self, iteration: u32) -> bool {
        iteration <= self.first || (self.every > 0 && (iteration - self.first) % self.every == 0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BoundedNames {
    /// When set, only these values are reported; others become `_OTHER`.
    pub allow: Vec<String>,
    /// Without an allow-list: distinct values per Envoy process (and VM id) before `_OTHER`.
    pub max_distinct: usize,
}

impl Default for BoundedNames {
    fn default() -> Self {
        Self { allow: Vec::new(), max_distinct: 50 }
    }
}

/// Longest operator marker: outputs are compared on their first bytes only.
pub const MAX_PREFIX_BYTES: usize = 64;

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            prompt_id_header: "x-llmobs-prompt-id".to_string(),
            prompt_version_header: "x-llmobs-prompt-version".to_string(),
            prompt_version_label: BoundedNames::default(),
            tool_name_label: BoundedNames::default(),
            json_error_key: true,
            tool_error_prefixes: Vec::new(),
            span_cap: None,
        }
    }
}

impl AgentConfig {
    /// Checks the section; `parent` prefixes field names in errors (`agent`).
    pub fn validate(&self, parent: &str) -> Result<(), ConfigError> {
        for (field, header) in
            [("prompt_id_header", &self.prompt_id_header), ("prompt_version_header", &self.prompt_version_header)]
        {
            if !header.is_empty() {
                check_header_name(&format!("{parent}.{field}"), header)?;
            }
        }
        for (field, policy) in
            [("prompt_version_label", &self.prompt_version_label), ("tool_name_label", &self.tool_name_label)]
        {
            if policy.allow.is_empty() && !(1..=1_000).contains(&policy.max_distinct) {
                return Err(ConfigError::new(format!("{parent}.{field}.max_distinct"), "must be from 1 to 1000"));
            }
        }
        if self.tool_error_prefixes.len() > 16 {
            return Err(ConfigError::new(format!("{parent}.tool_error_prefixes"), "at most 16 markers"));
        }
        for (i, prefix) in self.tool_error_prefixes.iter().enumerate() {
            if prefix.trim_start().is_empty() || prefix.len() > MAX_PREFIX_BYTES {
                return Err(ConfigError::new(
                    format!("{parent}.tool_error_prefixes[{i}]"),
                    "must be 1 to 64 bytes, not only whitespace",
                ));
            }
        }
        if let Some(cap) = self.span_cap {
            if cap.every == 0 || cap.every > 10_000 || cap.first > 10_000 {
                return Err(ConfigError::new(
                    format!("{parent}.span_cap"),
                    "every must be 1 to 10000, first 0 to 10000",
                ));
            }
        }
        Ok(())
    }
}
