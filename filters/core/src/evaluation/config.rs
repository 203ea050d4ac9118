//! Configuration of evaluation export: the policy (the `evaluation` section of the PII
//! redaction configuration, since the record carries redaction's scrubbed capture) and the
//! exporter module's own configuration. Documented in `docs/filters/evaluation-export.md`.

use super::batcher::Limits;
use crate::config::ConfigError;
use serde::Deserialize;

/// The default consent header and the value that grants consent.
pub const DEFAULT_CONSENT_HEADER: &str = "x-llmobs-consent";
pub const DEFAULT_CONSENT_VALUE: &str = "eval";
/// The default shared queue and the `vm_id` of the exporter that registers it.
pub const DEFAULT_QUEUE: &str = "llmobs.eval";
pub const DEFAULT_EXPORTER_VM_ID: &str = "llmobs_eval_exporter";
/// Tenants in an allow-list, at most.
pub const MAX_TENANTS: usize = 256;

/// Which exchanges become evaluation records. Off by default.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvaluationConfig {
    pub enabled: bool,
    /// A request carrying this header with [`consent_value`](Self::consent_value) consents.
    /// Empty: no per-request consent (tenants only).
    pub consent_header: String,
    pub consent_value: String,
    /// The request header naming the tenant, for [`tenants`](Self::tenants).
    pub tenant_header: String,
    /// Tenants that consented for all their requests.
    pub tenants: Vec<String>,
    /// The share of consented exchanges exported, decided from the request id (independent of
    /// the log sampling rate).
    pub sample_rate: f64,
    /// Entity labels (built-in or custom) whose detection anywhere in the exchange keeps it out.
    pub skip_entities: Vec<String>,
    /// Synthetic probes (the correlation filter's flag) are exported only when set.
    pub include_synthetic: bool,
    /// The `vm_id` of the exporter service and the name of the queue it registers.
    pub exporter_vm_id: String,
    pub queue: String,
}

impl Default for EvaluationConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            consent_header: DEFAULT_CONSENT_HEADER.to_string(),
            consent_value: DEFAULT_CONSENT_VALUE.to_string(),
            tenant_header: String::new(),
            tenants: Vec::new(),
            sample_rate: 1.0,
            skip_entities: Vec::new(),
            include_synthetic: false,
            exporter_vm_id: DEFAULT_EXPORTER_VM_ID.to_string(),
            queue: DEFAULT_QUEUE.to_string(),
        }
    }
}

fn header_name_ok(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn name_ok(name: &str) -> bool {
    (1..=128).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_graphic())
}

impl EvaluationConfig {
    /// Every error, each under `evaluation.<field>`; `defines` says whether an entity label is
    /// one the redaction configuration knows.
    pub fn problems(&self, defines: impl Fn(&str) -> bool) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let mut err = |field: &str, reason: &str| errors.push(ConfigError::new(format!("evaluation.{field}"), reason));
        if !self.consent_header.is_empty() && !header_name_ok(&self.consent_header) {
            err("consent_header", "must be a lower-case header name (a-z, 0-9, '-', '_')");
        }
        if !self.consent_header.is_empty() && !(1..=128).contains(&self.consent_value.len()) {
            err("consent_value", "must be 1-128 bytes");
        }
        if !self.tenant_header.is_empty() && !header_name_ok(&self.tenant_header) {
            err("tenant_header", "must be a lower-case header name (a-z, 0-9, '-', '_')");
        }
        if !self.tenants.is_empty() && self.tenant_header.is_empty() {
            err("tenants", "needs `tenant_header`, the header that names the tenant");
        }
        if self.tenants.len() > MAX_TENANTS {
            err("tenants", "at most 256 tenants");
        }
        if self.tenants.iter().any(|t| !(1..=128).contains(&t.len())) {
            err("tenants", "every tenant must be 1-128 bytes");
        }
        if self.enabled && self.consent_header.is_empty() && self.tenants.is_empty() {
            err("enabled", "needs a consent rule: `consent_header` or `tenants`");
        }
        if !(0.0..=1.0).contains(&self.sample_rate) {
            err("sample_rate", "must be 0 to 1");
        }
        for (i, entity) in self.skip_entities.iter().enumerate() {
            if !defines(entity) {
                err(&format!("skip_entities[{i}]"), "is neither a built-in entity nor a custom rule's entity");
            }
        }
        if !name_ok(&self.exporter_vm_id) {
            err("exporter_vm_id", "must be 1-128 printable ASCII characters");
        }
        if !name_ok(&self.queue) {
            err("queue", "must be 1-128 printable ASCII characters");
        }
        errors
    }
}

/// Retries of a failed batch.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    pub max_attempts: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self { initial_backoff_ms: 500, max_backoff_ms: 30_000, max_attempts: 5 }
    }
}

/// The exporter module (`dist/llmobs_eval_exporter.wasm`, a singleton bootstrap service).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExporterConfig {
    /// The Envoy cluster of the OTLP/HTTP receiver (an OpenTelemetry Collector). Required.
    pub cluster: String,
    /// The `:authority` of the export request; the cluster name when empty.
    pub authority: String,
    pub path: String,
    /// The resource's `service.name`.
    pub service_name: String,
    /// The queue it registers (the HTTP filters' `evaluation.queue`).
    pub queue: String,
    pub timeout_ms: u64,
    pub flush_interval_ms: u64,
    pub max_queued_records: usize,
    pub max_queued_bytes: usize,
    pub batch_max_records: usize,
    pub batch_max_bytes: usize,
    pub retry: RetryConfig,
}

impl Default for ExporterConfig {
    fn default() -> Self {
        Self {
            cluster: String::new(),
            authority: String::new(),
            path: "/v1/logs".to_string(),
            service_name: "llmobs".to_string(),
            queue: DEFAULT_QUEUE.to_string(),
            timeout_ms: 5_000,
            flush_interval_ms: 1_000,
            max_queued_records: 2_000,
            max_queued_bytes: 8 * 1024 * 1024,
            batch_max_records: 200,
            batch_max_bytes: 1024 * 1024,
            retry: RetryConfig::default(),
        }
    }
}

impl ExporterConfig {
    /// Parses and validates; every error at once.
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        let config: Self = crate::config::parse_json(bytes)?;
        ConfigError::collect(config.problems())?;
        Ok(config)
    }

    pub fn problems(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let mut err = |field: &str, reason: &str| errors.push(ConfigError::new(field, reason));
        if !name_ok(&self.cluster) {
            err("cluster", "is required: the Envoy cluster of the OTLP/HTTP receiver (1-128 printable ASCII)");
        }
        if !self.authority.is_empty() && !name_ok(&self.authority) {
            err("authority", "must be 1-128 printable ASCII characters");
        }
        if !self.path.starts_with('/') || !name_ok(&self.path) {
            err("path", "must start with '/' (1-128 printable ASCII characters)");
        }
        if !name_ok(&self.service_name) {
            err("service_name", "must be 1-128 printable ASCII characters");
        }
        if !name_ok(&self.queue) {
            err("queue", "must be 1-128 printable ASCII characters");
        }
        if !(100..=60_000).contains(&self.timeout_ms) {
            err("timeout_ms", "must be 100 to 60000");
        }
        if !(10..=60_000).contains(&self.flush_interval_ms) {
            err("flush_interval_ms", "must be 10 to 60000");
        }
        if !(1..=100_000).contains(&self.max_queued_records) {
            err("max_queued_records", "must be 1 to 100000");
        }
        if !(1..=10_000).contains(&self.batch_max_records) || self.batch_max_records > self.max_queued_records {
            err("batch_max_records", "must be 1 to 10000 and at most max_queued_records");
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.max_queued_bytes) {
            err("max_queued_bytes", "must be 1 KiB to 64 MiB");
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.batch_max_bytes) || self.batch_max_bytes > self.max_queued_bytes {
            err("batch_max_bytes", "must be 1 KiB to 16 MiB and at most max_queued_bytes");
        }
        let r = &self.retry;
        if !(1..=20).contains(&r.max_attempts) {
            err("retry.max_attempts", "must be 1 to 20");
        }
        if r.initial_backoff_ms == 0 || r.initial_backoff_ms > r.max_backoff_ms || r.max_backoff_ms > 3_600_000 {
            err("retry", "initial_backoff_ms must be >= 1 and <= max_backoff_ms, max_backoff_ms at most 3600000");
        }
        errors
    }

    /// The `:authority` sent.
    pub fn authority(&self) -> &str {
        if self.authority.is_empty() {
            &self.cluster
        } else {
            &self.authority
        }
    }

    pub fn limits(&self) -> Limits {
        Limits {
            max_queued_records: self.max_queued_records,
            max_queued_bytes: self.max_queued_bytes,
            batch_max_records: self.batch_max_records,
            batch_max_bytes: self.batch_max_bytes,
            flush_interval_ms: self.flush_interval_ms,
            initial_backoff_ms: self.retry.initial_backoff_ms,
            max_backoff_ms: self.retry.max_backoff_ms,
            max_attempts: self.retry.max_attempts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(err: ConfigError) -> Vec<String> {
        err.into_all().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn evaluation_is_off_by_default_with_the_documented_consent_header() {
        let c = EvaluationConfig::default();
        assert!(!c.enabled);
        assert_eq!((c.consent_header.as_str(), c.consent_value.as_str()), ("x-llmobs-consent", "eval"));
        assert!(c.problems(|_| true).is_empty());
    }

    #[test]
    fn every_policy_error_is_reported_under_evaluation() {
        let c = EvaluationConfig {
            enabled: true,
            consent_header: "X-Consent".into(),
            tenants: vec!["acme".into()],
            sample_rate: 1.5,
            skip_entities: vec!["email".into(), "shoe_size".into()],
            queue: String::new(),
            ..EvaluationConfig::default()
        };
        let fields: Vec<String> = c.problems(|e| e == "email").into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "evaluation.consent_header",
                "evaluation.tenants",
                "evaluation.sample_rate",
                "evaluation.skip_entities[1]",
                "evaluation.queue"
            ]
        );
    }

    #[test]
    fn enabling_without_any_consent_rule_is_refused() {
        let c = EvaluationConfig { enabled: true, consent_header: String::new(), ..EvaluationConfig::default() };
        assert_eq!(c.problems(|_| true)[0].field, "evaluation.enabled");
    }

    #[test]
    fn the_exporter_needs_a_cluster_and_reports_every_bad_limit() {
        let err = ExporterConfig::parse(br#"{}"#).expect_err("no cluster");
        assert_eq!(fields(err), ["cluster"]);
        let err = ExporterConfig::parse(
            br#"{"cluster": "otel", "path": "v1/logs", "batch_max_records": 10, "max_queued_records": 5,
                 "retry": {"max_attempts": 0, "initial_backoff_ms": 10, "max_backoff_ms": 5}}"#,
        )
        .expect_err("bad limits");
        assert_eq!(fields(err), ["path", "batch_max_records", "retry.max_attempts", "retry"]);
        let err = ExporterConfig::parse(br#"{"cluster": "otel", "colour": 1}"#).expect_err("unknown field");
        assert_eq!(fields(err), ["colour"]);
    }

    #[test]
    fn a_minimal_exporter_configuration_takes_the_documented_defaults() {
        let c = ExporterConfig::parse(br#"{"cluster": "otel_collector"}"#).expect("valid");
        assert_eq!((c.path.as_str(), c.authority(), c.queue.as_str()), ("/v1/logs", "otel_collector", "llmobs.eval"));
        assert_eq!(c.limits().max_attempts, 5);
    }
}
