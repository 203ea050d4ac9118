//! Every filter's configuration parser: arbitrary bytes give a config or a named error, never a
//! panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use llmobs_core::correlation::config::CorrelationConfig;
use llmobs_core::error_normalization::config::ErrorNormalizationConfig;
use llmobs_core::evaluation::config::{EvaluationConfig, ExporterConfig};
use llmobs_core::token_accounting::config::TokenAccountingConfig;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = CorrelationConfig::parse(data) {
        assert!(!e.field.is_empty());
    }
    let _ = TokenAccountingConfig::parse(data);
    let _ = ErrorNormalizationConfig::parse(data);
    if let Err(e) = ExporterConfig::parse(data) {
        assert!(!e.field.is_empty());
    }
    // The evaluation policy: every error named under `evaluation.`.
    if let Ok(policy) = llmobs_core::config::parse_json::<EvaluationConfig>(data) {
        for e in policy.problems(|entity| entity == "email") {
            assert!(e.field.starts_with("evaluation."));
        }
    }
});
