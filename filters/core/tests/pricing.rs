//! The shipped price table (envoy/prices/default.json) as token accounting loads it, and the
//! exact cost of every recorded provider fixture against it.

use llmobs_core::filter_state as fs;
use llmobs_core::pricing::PriceTable;
use llmobs_core::token_accounting::config::TokenAccountingConfig;
use llmobs_core::token_accounting::TokenAccounting;
use llmobs_testkit::{chunkings, provider_fixtures, FakeHost, ProviderFixture};

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

/// A rate as the test reads it, independently of the filter: micro-units per million tokens.
fn rate(entry: &serde_json::Value, key: &str) -> Option<u128> {
    let text = entry.get(key)?.as_str()?;
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let frac = format!("{frac:0<6}");
    Some(whole.parse::<u128>().unwrap() * 1_000_000 + frac.parse::<u128>().unwrap())
}

/// The table's entry for a model, found the way docs/pricing.md says: exact, else longest prefix.
fn entry_for<'a>(table: &'a serde_json::Value, provider: &str, model: &str) -> Option<&'a serde_json::Value> {
    let rows = table["models"].as_array().unwrap().iter().filter(|e| e["provider"] == provider);
    let exact = rows.clone().find(|e| e["model"] == model);
    exact.or_else(|| {
        rows.filter_map(|e| e["model"].as_str().unwrap().strip_suffix('*').map(|p| (p, e)))
            .filter(|(p, _)| model.starts_with(p))
            .max_by_key(|(p, _)| p.len())
            .map(|(_, e)| e)
    })
}

/// Each fixture's expected usage priced by hand from the shipped table: uncached input (input
/// minus cache reads and writes, as every provider's input is normalized to include them) at
/// `input`, cache reads and writes at theirs, output (reasoning inside) at `output`.
#[test]
fn every_recorded_fixture_costs_exactly_what_the_shipped_table_says() {
    let (priced, unpriced) = check_fixtures(DEFAULT_TABLE);
    assert!(priced.len() >= 20 && unpriced.len() >= 3, "priced {priced:?}, unpriced {unpriced:?}");
}

/// The shipped table leaves Claude 3.5 Sonnet on Bedrock out (its sources disagree); with a row
/// for it, the Bedrock fixtures (cache reads and writes, Converse and its stream) are priced too.
#[test]
fn the_bedrock_fixtures_cost_exactly_what_a_table_with_their_model_says() {
    let mut table: serde_json::Value = serde_json::from_str(DEFAULT_TABLE).unwrap();
    table["models"].as_array_mut().unwrap().push(serde_json::json!(
        {"provider": "aws.bedrock", "model": "anthropic.claude-3-5-sonnet*", "input": "3", "cache_read": "0.3",
         "cache_write": "3.75", "output": "15"}));
    let (priced, _) = check_fixtures(&table.to_string());
    assert_eq!(priced.iter().filter(|n| n.starts_with("bedrock-converse-")).count(), 2, "{priced:?}");
}

/// Runs every fixture with usage against `table_json` and checks each cost by hand; returns the
/// names of the priced and the unpriced ones.
fn check_fixtures(table_json: &str) -> (Vec<String>, Vec<String>) {
    let table: serde_json::Value = serde_json::from_str(table_json).unwrap();
    let config = format!(r#"{{"prices": {table_json}}}"#);
    let (mut priced, mut unpriced) = (Vec::new(), Vec::new());
    for fixture in provider_fixtures() {
        if fixture.expected("usage_source") != "provider" {
            continue;
        }
        let host = run_fixture(&fixture, &config);
        // The same cost for the response split at every offset the testkit chooses.
        for chunks in chunkings(&fixture.response_body) {
            let split = run_fixture_split(&fixture, &config, &chunks);
            assert_eq!(split.filter_state_str(fs::COST), host.filter_state_str(fs::COST), "{}", fixture.name);
        }
        let provider = fixture.expected("provider").as_str().unwrap();
        let model = fixture.expected("response_model").as_str().or(fixture.expected("request_model").as_str()).unwrap();
        let usage = fixture.expected("usage");
        let count = |k: &str| u128::from(usage[k].as_u64().unwrap_or(0));
        let cost_counter = host.counter_sum("llmobs.token_accounting.cost_micros");
        match entry_for(&table, provider, model) {
            Some(entry) => {
                let plain_input = count("input") - count("cache_read") - count("cache_creation");
                let picos = plain_input * rate(entry, "input").unwrap()
                    + count("cache_read") * rate(entry, "cache_read").unwrap_or(0)
                    + count("cache_creation") * rate(entry, "cache_write").unwrap_or(0)
                    + count("output") * rate(entry, "output").unwrap();
                let exact = format!("{}.{:012}", picos / 1_000_000_000_000, picos % 1_000_000_000_000);
                let exact = exact.trim_end_matches('0').trim_end_matches('.');
                assert_eq!(host.filter_state_str(fs::COST).as_deref(), Some(exact), "{}", fixture.name);
                assert_eq!(u128::from(cost_counter), (picos + 500_000) / 1_000_000, "{}", fixture.name);
                assert!(picos > 0, "{}", fixture.name);
                priced.push(fixture.name.clone());
            }
            None => {
                assert_eq!(host.filter_state_str(fs::COST), None, "{}", fixture.name);
                assert_eq!(cost_counter, 0, "{}", fixture.name);
                let unpriced_name = host.metric_names("llmobs.token_accounting.unpriced");
                assert_eq!(unpriced_name.len(), 1, "{}", fixture.name);
                assert!(unpriced_name[0].contains(".reason=no_price;"), "{}", fixture.name);
                assert_eq!(host.counter(&unpriced_name[0]), Some(1));
                unpriced.push(fixture.name.clone());
            }
        }
    }
    (priced, unpriced)
}

#[test]
fn cost_carries_the_token_labels_and_the_currency() {
    let fixture = provider_fixtures().into_iter().find(|f| f.name == "anthropic-messages-stream").unwrap();
    let host = run_fixture(&fixture, &format!(r#"{{"tenant_header": "x-tenant", "prices": {DEFAULT_TABLE}}}"#));
    let names = host.metric_names("llmobs.token_accounting.cost_micros");
    assert_eq!(
        names,
        vec![
            "llmobs.token_accounting.cost_micros.gen_ai.operation.name=chat;.gen_ai.provider.name=anthropic;\
             .gen_ai.request.model=claude-3-7-sonnet-20250219;.synthetic=false;.tenant=unknown;.prompt_version=unknown;\
             .currency=USD;"
        ]
    );
    // 472 uncached input at 3, 2048 cache reads at 0.30, 31 output at 15 (USD per million):
    // 1416 + 614.4 + 465 = 2495.4 micro-dollars
    assert_eq!(host.filter_state_str(fs::COST).as_deref(), Some("0.0024954"));
    assert_eq!(host.counter(&names[0]), Some(2495), "2495.4 micro-dollars round to 2495");
    let date: u64 = default_table().effective_date.replace('-', "").parse().unwrap();
    assert_eq!(host.counter("llmobs.token_accounting.price_table_date.currency=USD;"), Some(date));
}

#[test]
fn without_a_price_table_nothing_is_priced_or_counted_unpriced() {
    for fixture in provider_fixtures() {
        let host = run_fixture(&fixture, "");
        assert_eq!(host.filter_state_str(fs::COST), None, "{}", fixture.name);
        assert!(host.metric_names("llmobs.token_accounting.cost").is_empty(), "{}", fixture.name);
        assert!(host.metric_names("llmobs.token_accounting.unpriced").is_empty(), "{}", fixture.name);
        assert!(host.metric_names("llmobs.token_accounting.price_table").is_empty(), "{}", fixture.name);
    }
}

fn run_fixture(fixture: &ProviderFixture, config: &str) -> FakeHost {
    run_fixture_split(fixture, config, &fixture.response_body.chunks(97).collect::<Vec<_>>())
}

fn run_fixture_split(fixture: &ProviderFixture, config: &str, chunks: &[&[u8]]) -> FakeHost {
    let mut host = FakeHost::default();
    let mut headers: Vec<(&str, &str)> = vec![(":path", &fixture.path), (":method", "POST")];
    headers.extend(fixture.request_headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    host.next_request(&headers);
    let config = match fixture.meta.get("provider_override").and_then(|v| v.as_str()) {
        Some(p) if !config.is_empty() => {
            host.set_property(&["xds", "cluster_name"], b"override");
            config.replacen('{', &format!(r#"{{"providers": [{{"cluster": "override", "provider": "{p}"}}], "#), 1)
        }
        _ => config.to_string(),
    };
    let filter = TokenAccounting::new(config.as_bytes(), &mut host).unwrap();
    let mut ex = filter.on_request_headers(&mut host);
    filter.on_request_body(&mut ex, &fixture.request_body, true);
    host.add_response_header(":status", &fixture.status.to_string());
    for (k, v) in &fixture.response_headers {
        host.add_response_header(k, v);
    }
    filter.on_response_headers(&mut host, &mut ex, false);
    for chunk in chunks {
        filter.on_response_body(&mut host, &mut ex, chunk, false);
    }
    filter.on_response_body(&mut host, &mut ex, b"", true);
    host
}
