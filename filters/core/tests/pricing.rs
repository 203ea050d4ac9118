//! The shipped price table (envoy/prices/default.json) as token accounting loads it, and the
//! exact cost of every recorded provider fixture against it.

use llmobs_core::pricing::PriceTable;
use llmobs_core::token_accounting::config::TokenAccountingConfig;

const DEFAULT_TABLE: &str = include_str!("../../../envoy/prices/default.json");

fn default_table() -> PriceTable {
    let config = TokenAccountingConfig::parse(format!(r#"{{"prices": {DEFAULT_TABLE}}}"#).as_bytes())
        .expect("the shipped price table is a valid configuration");
    config.prices.expect("prices")
}

#[test]
fn the_shipped_table_is_valid_dated_and_covers_every_provider() {
    let table = default_table();
    assert_eq!(table.currency, "USD");
    assert!(!table.effective_date.is_empty());
    for provider in ["openai", "anthropic", "gcp.gemini", "aws.bedrock", "azure.ai.openai"] {
        assert!(table.models.iter().any(|m| m.provider == provider), "{provider}");
    }
    assert!(
        table.models.iter().all(|m| m.source.as_deref().is_some_and(|s| !s.is_empty())),
        "every entry says its source"
    );
}

#[test]
fn the_shipped_table_prices_the_models_the_suite_uses() {
    let table = default_table();
    for (provider, model, input, output) in [
        ("openai", "gpt-4o-mini-2024-07-18", 150_000, 600_000),
        ("openai", "gpt-4o-2024-08-06", 2_500_000, 10_000_000),
        ("openai", "gpt-4.1-mini-2025-04-14", 400_000, 1_600_000),
        ("openai", "gpt-5-mini-2025-08-07", 250_000, 2_000_000),
        ("openai", "o4-mini-2025-04-16", 1_100_000, 4_400_000),
        ("anthropic", "claude-sonnet-4-20250514", 3_000_000, 15_000_000),
        ("anthropic", "claude-3-5-haiku-latest", 800_000, 4_000_000),
        ("gcp.gemini", "gemini-2.5-flash", 300_000, 2_500_000),
        ("gcp.gemini", "gemini-2.5-flash-lite", 100_000, 400_000),
        ("aws.bedrock", "anthropic.claude-3-5-haiku-20241022-v1:0", 800_000, 4_000_000),
        ("aws.bedrock", "global.anthropic.claude-sonnet-4-5-20250929-v1:0", 3_000_000, 15_000_000),
        ("aws.bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", 3_300_000, 16_500_000),
    ] {
        let entry = table.lookup(provider, model).unwrap_or_else(|| panic!("{provider} {model}"));
        assert_eq!((entry.input.0, entry.output.0), (input, output), "{provider} {model}");
    }
    assert!(table.lookup("openai", "meta-llama/Llama-3.1-8B-Instruct").is_none());
}
