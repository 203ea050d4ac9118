//! Money from tokens: the price table and exact per-request cost (docs/pricing.md).
//!
//! The table is configuration (token accounting's `prices`, the bundle's
//! `token_accounting.prices`), never compiled in: `envoy/prices/default.json` is the documented
//! default, served by ECDS so prices change without a rebuild or a restart.
//!
//! Exactness. A price is a decimal string per million tokens with at most 6 decimals, held as
//! an integer count of 10^-6 currency units per million tokens, which is 10^-12 currency units
//! (one "pico-unit") per token. A request's cost is therefore an integer number of pico-units,
//! `sum(tokens_of_kind * rate_of_kind)`, computed in `u128` without any rounding; the log field
//! carries that exact value. The counter, which only holds integers, adds the cost in
//! micro-units (10^-6 currency) rounded once per request, half up: each request's counted cost
//! is within half a micro-unit of the exact one.
//!
//! Which tokens get which rate (usage is llmobs's normalized [`Usage`], see
//! `token_accounting::usage`, where every provider's input already includes its cache reads and
//! writes and every output includes its reasoning):
//! - cache reads at `cache_read`, cache writes at `cache_write`, the rest of the input at `input`;
//! - reasoning tokens at `reasoning` when the entry prices them apart, the rest of the output
//!   (all of it when it does not) at `output`.
//!
//! Nothing is guessed: a model without an entry, or tokens of a kind whose rate the entry lacks
//! (cache writes without `cache_write`), or counts that contradict each other (more cache reads
//! than input) make the request unpriced, counted apart with the reason.

use crate::config::ConfigError;
use crate::filter_state as fs;
use crate::host::{Host, Stats};
use crate::metric;
use crate::token_accounting::usage::Usage;
use serde::Deserialize;

/// Pico-units (10^-12 currency) per micro-unit (10^-6 currency).
const PICOS_PER_MICRO: u128 = 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTable {
    /// ISO 4217 code, three upper-case letters (`USD`).
    pub currency: String,
    /// The day these prices took effect, `YYYY-MM-DD`.
    pub effective_date: String,
    /// Where the prices come from (documentation only).
    #[serde(default)]
    pub sources: Vec<String>,
    /// Free text for people (documentation only).
    #[serde(default)]
    pub notes: Vec<String>,
    pub models: Vec<ModelPrice>,
}

/// One provider's model (or family of models) and its rates per million tokens.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// `gen_ai.provider.name` as token accounting reports it (`openai`, `anthropic`,
    /// `gcp.gemini`, `aws.bedrock`, `azure.ai.openai`, or a configured override).
    pub provider: String,
    /// The model id, exact, or a prefix ending in `*` (`gpt-4o-mini*` matches
    /// `gpt-4o-mini-2024-07-18`). An exact entry wins over a prefix; a longer prefix over a
    /// shorter one.
    pub model: String,
    pub input: Rate,
    #[serde(default)]
    pub cache_read: Option<Rate>,
    #[serde(default)]
    pub cache_write: Option<Rate>,
    pub output: Rate,
    /// Only for models that price reasoning tokens apart from the rest of the output.
    #[serde(default)]
    pub reasoning: Option<Rate>,
    /// Where this entry's prices were read, and whether they were confirmed (documentation).
    #[serde(default)]
    pub source: Option<String>,
}

/// A price per million tokens, in 10^-6 currency units (so `"0.075"` is 75,000): a decimal
/// string in the configuration, so that no binary float ever stands between the table and the
/// bill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate(pub u64);

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Rate::parse(&text).map(Rate).map_err(serde::de::Error::custom)
    }
}

impl Rate {
    /// `"12.5"` -> 12,500,000. At most 6 integer digits and 6 decimals, no sign, no exponent.
    fn parse(text: &str) -> Result<u64, &'static str> {
        const SHAPE: &str = "must be a decimal string like \"2.50\" (at most 6 digits before and 6 after the point)";
        let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || whole.len() > 6 || frac.len() > 6 || !digits(whole) || !digits(frac) {
            return Err(SHAPE);
        }
        if text.ends_with('.') {
            return Err(SHAPE);
        }
        let whole: u64 = whole.parse().map_err(|_| SHAPE)?;
        let mut micros: u64 = 0;
        for b in frac.bytes().chain(std::iter::repeat(b'0')).take(6) {
            micros = micros * 10 + u64::from(b - b'0');
        }
        Ok(whole * 1_000_000 + micros)
    }
}

/// Why a request with usage has no cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unpriced {
    /// No entry for this provider and model.
    NoPrice,
    /// The entry lacks the rate for a kind of token the request used.
    NoRate,
    /// The usage counts contradict each other (cache reads above input, reasoning above output).
    Inconsistent,
}

impl Unpriced {
    pub fn label(self) -> &'static str {
        match self {
            Unpriced::NoPrice => "no_price",
            Unpriced::NoRate => "no_rate",
            Unpriced::Inconsistent => "inconsistent_usage",
        }
    }
}

/// An exact cost in pico-units (10^-12 of the table's currency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cost(pub u128);

impl Cost {
    /// Micro-units, rounded half up (the counter's unit).
    pub fn micros(self) -> u64 {
        u64::try_from((self.0 + PICOS_PER_MICRO / 2) / PICOS_PER_MICRO).unwrap_or(u64::MAX)
    }

    /// The exact amount in currency units as a decimal (`0.000075`, `12`), trailing zeros cut.
    pub fn decimal(self) -> String {
        // Printed through u64s: u128's formatting alone adds kilobytes to the module.
        let whole = u64::try_from(self.0 / 1_000_000_000_000).unwrap_or(u64::MAX);
        let frac = u64::try_from(self.0 % 1_000_000_000_000).unwrap_or(0);
        if frac == 0 {
            return whole.to_string();
        }
        let frac = format!("{frac:012}");
        format!("{whole}.{}", frac.trim_end_matches('0'))
    }
}

impl PriceTable {
    /// Checks every field, naming it under `prefix` (`prices`).
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ConfigError::new(format!("{prefix}.currency"), "must be an ISO 4217 code like USD"));
        }
        if !valid_date(&self.effective_date) {
            return Err(ConfigError::new(format!("{prefix}.effective_date"), "must be a date YYYY-MM-DD"));
        }
        if self.models.len() > 10_000 {
            return Err(ConfigError::new(format!("{prefix}.models"), "at most 10000 entries"));
        }
        for (i, entry) in self.models.iter().enumerate() {
            let field = format!("{prefix}.models[{i}]");
            let provider_ok = (1..=64).contains(&entry.provider.len())
                && entry.provider.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
            if !provider_ok {
                return Err(ConfigError::new(
                    format!("{field}.provider"),
                    "must be 1-64 characters of a-z, 0-9, '.', '_', '-'",
                ));
            }
            let stem = entry.model.strip_suffix('*').unwrap_or(&entry.model);
            let model_ok = entry.model.len() <= 128
                && (stem.len() < entry.model.len() || !stem.is_empty())
                && stem.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:/@+-".contains(&b));
            if !model_ok {
                return Err(ConfigError::new(
                    format!("{field}.model"),
                    "must be a model id of A-Z a-z 0-9 . _ : / @ + - (at most 128), optionally ending in '*'",
                ));
            }
            let earlier =
                self.models.iter().take(i).position(|e| e.provider == entry.provider && e.model == entry.model);
            if let Some(j) = earlier {
                return Err(ConfigError::new(
                    format!("{field}.model"),
                    format!("the same provider and model as {prefix}.models[{j}]"),
                ));
            }
        }
        Ok(())
    }

    /// The entry for `model` of `provider`: an exact one, else the longest matching prefix.
    pub fn lookup(&self, provider: &str, model: &str) -> Option<&ModelPrice> {
        let mut best: Option<(&ModelPrice, usize)> = None;
        for entry in self.models.iter().filter(|e| e.provider == provider) {
            let rank = match entry.model.strip_suffix('*') {
                None if entry.model == model => usize::MAX,
                Some(prefix) if model.starts_with(prefix) => prefix.len(),
                _ => continue,
            };
            if best.is_none_or(|(_, r)| rank > r) {
                best = Some((entry, rank));
            }
        }
        best.map(|(e, _)| e)
    }

    /// The exact cost of `usage` for `model` of `provider`.
    pub fn price(&self, provider: &str, model: Option<&str>, usage: &Usage) -> Result<Cost, Unpriced> {
        let entry = model.and_then(|m| self.lookup(provider, m)).ok_or(Unpriced::NoPrice)?;
        entry.cost(usage)
    }
}

impl ModelPrice {
    pub fn cost(&self, usage: &Usage) -> Result<Cost, Unpriced> {
        let cache_read = usage.cache_read.unwrap_or(0);
        let cache_write = usage.cache_creation.unwrap_or(0);
        let input = usage.input.unwrap_or(0);
        let plain_input = input.checked_sub(cache_read).and_then(|v| v.checked_sub(cache_write));
        let plain_input = plain_input.ok_or(Unpriced::Inconsistent)?;
        let output = usage.output.unwrap_or(0);
        let reasoning = usage.reasoning.unwrap_or(0);
        let (plain_output, reasoning) = match self.reasoning {
            Some(_) => (output.checked_sub(reasoning).ok_or(Unpriced::Inconsistent)?, reasoning),
            None => (output, 0),
        };
        let rated = |tokens: u64, rate: Option<Rate>| -> Result<u128, Unpriced> {
            match (tokens, rate) {
                (0, _) => Ok(0),
                (_, None) => Err(Unpriced::NoRate),
                (t, Some(Rate(r))) => Ok(u128::from(t) * u128::from(r)),
            }
        };
        let total = rated(plain_input, Some(self.input))?
            + rated(cache_read, self.cache_read)?
            + rated(cache_write, self.cache_write)?
            + rated(plain_output, Some(self.output))?
            + rated(reasoning, self.reasoning)?;
        Ok(Cost(total))
    }
}

/// Prices one finished exchange that reported usage and records it: the exact cost in the log
/// field `llmobs.cost`, micro-units on `llmobs.token_accounting.cost_micros`, or one count on
/// `llmobs.token_accounting.unpriced` with the reason. `labels` are the exchange's token labels
/// (operation, provider, model label, synthetic, tenant, and whatever token accounting adds to
/// them, such as a prompt version), so spend joins token use label for label.
pub fn record<H: Host>(
    table: &PriceTable,
    handles: &metric::Handles,
    host: &mut H,
    provider: &str,
    model: Option<&str>,
    usage: &Usage,
    labels: &[(&str, &str)],
) {
    let mut labels = labels.to_vec();
    match table.price(provider, model, usage) {
        Ok(cost) => {
            labels.push(("currency", &table.currency));
            handles.add(host, "llmobs.token_accounting.cost_micros", &labels, cost.micros());
            host.set_filter_state(fs::COST, cost.decimal().as_bytes());
        }
        Err(why) => {
            labels.push(("reason", why.label()));
            handles.add(host, "llmobs.token_accounting.unpriced", &labels, 1);
        }
    }
}

/// Sets `llmobs.token_accounting.price_table_date{currency}` to the table's effective date as
/// the number YYYYMMDD (20261204), at every configuration (ECDS update included): the monthly
/// report reads which tables were in force during a month from it.
pub fn publish<S: Stats>(stats: &mut S, table: &PriceTable) -> Result<(), ConfigError> {
    let name = metric::name("llmobs.token_accounting.price_table_date", &[("currency", &table.currency)]);
    let gauge = stats.define_gauge(&name).map_err(|e| ConfigError::new(".", format!("cannot define metrics: {e}")))?;
    let date: u64 =
        table.effective_date.bytes().filter(u8::is_ascii_digit).fold(0, |n, b| n * 10 + u64::from(b - b'0'));
    stats.set_gauge(gauge, date);
    Ok(())
}

fn valid_date(date: &str) -> bool {
    let mut parts = date.split('-');
    let num = |s: Option<&str>, len: usize| {
        s.filter(|s| s.len() == len && s.bytes().all(|c| c.is_ascii_digit())).and_then(|s| s.parse::<u32>().ok())
    };
    let (y, m, d) = (num(parts.next(), 4), num(parts.next(), 2), num(parts.next(), 2));
    if parts.next().is_some() {
        return false;
    }
    match (y, m, d) {
        (Some(y), Some(m), Some(d)) => (2000..=2999).contains(&y) && (1..=12).contains(&m) && (1..=31).contains(&d),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(json: &str) -> Result<PriceTable, ConfigError> {
        let config = crate::token_accounting::config::TokenAccountingConfig::parse(
            format!(r#"{{"prices": {json}}}"#).as_bytes(),
        )?;
        Ok(config.prices.expect("a table"))
    }

    const SMALL: &str = r#"{"currency": "USD", "effective_date": "2026-12-01", "models": [
        {"provider": "openai", "model": "gpt-4o*", "input": "2.50", "cache_read": "1.25", "output": "10"},
        {"provider": "openai", "model": "gpt-4o-mini*", "input": "0.15", "cache_read": "0.075", "output": "0.60"},
        {"provider": "openai", "model": "o3", "input": "2", "cache_read": "0.5", "output": "8", "reasoning": "8"},
        {"provider": "anthropic", "model": "claude-sonnet-4*", "input": "3", "cache_read": "0.30", "cache_write": "3.75", "output": "15"}
    ]}"#;

    #[test]
    fn rates_are_read_as_exact_decimals() {
        assert_eq!(Rate::parse("0.075"), Ok(75_000));
        assert_eq!(Rate::parse("10"), Ok(10_000_000));
        assert_eq!(Rate::parse("0.000001"), Ok(1));
        assert_eq!(Rate::parse("999999.999999"), Ok(999_999_999_999));
        for bad in ["", ".5", "5.", "-1", "1e3", "0.0000001", "1234567", " 1", "1,5", "0x10"] {
            assert!(Rate::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_longest_matching_pattern_wins_whatever_the_order() {
        let t = table(SMALL).unwrap();
        assert_eq!(t.lookup("openai", "gpt-4o-mini-2024-07-18").unwrap().model, "gpt-4o-mini*");
        assert_eq!(t.lookup("openai", "gpt-4o-2024-08-06").unwrap().model, "gpt-4o*");
        assert_eq!(t.lookup("openai", "o3").unwrap().model, "o3");
        assert!(t.lookup("openai", "o3-mini").is_none(), "an exact entry is not a prefix");
        assert!(t.lookup("azure.ai.openai", "gpt-4o").is_none(), "providers never share entries");
    }

    #[test]
    fn openai_cached_tokens_are_taken_out_of_the_input_and_priced_at_the_cache_rate() {
        let t = table(SMALL).unwrap();
        // prompt_tokens 1200 of which 1000 cached, completion 50: 200*0.15 + 1000*0.075 + 50*0.6
        let usage = Usage { input: Some(1200), cache_read: Some(1000), output: Some(50), ..Usage::default() };
        let cost = t.price("openai", Some("gpt-4o-mini"), &usage).unwrap();
        assert_eq!(cost, Cost((200 * 150_000 + 1000 * 75_000 + 50 * 600_000) as u128));
        assert_eq!(cost.decimal(), "0.000135");
        assert_eq!(cost.micros(), 135);
    }

    #[test]
    fn anthropic_cache_reads_and_writes_each_have_their_rate() {
        let t = table(SMALL).unwrap();
        // normalized input = input_tokens 20 + cache read 100 + cache write 30
        let usage = Usage {
            input: Some(150),
            cache_read: Some(100),
            cache_creation: Some(30),
            output: Some(7),
            ..Usage::default()
        };
        let cost = t.price("anthropic", Some("claude-sonnet-4-5-20250929"), &usage).unwrap();
        assert_eq!(cost.0, 20 * 3_000_000 + 100 * 300_000 + 30 * 3_750_000 + 7 * 15_000_000);
        assert_eq!(cost.decimal(), "0.0003075");
        assert_eq!(cost.micros(), 308, "307.5 rounds half up");
    }

    #[test]
    fn reasoning_is_priced_apart_only_where_the_entry_says_so() {
        let t = table(SMALL).unwrap();
        let usage = Usage { input: Some(10), output: Some(300), reasoning: Some(256), ..Usage::default() };
        let o3 = t.price("openai", Some("o3"), &usage).unwrap();
        assert_eq!(o3.0, 10 * 2_000_000 + 44 * 8_000_000 + 256 * 8_000_000);
        let gpt = t.price("openai", Some("gpt-4o"), &usage).unwrap();
        assert_eq!(gpt.0, 10 * 2_500_000 + 300 * 10_000_000, "reasoning inside output at the output rate");
    }

    #[test]
    fn nothing_is_guessed() {
        let t = table(SMALL).unwrap();
        let usage = Usage { input: Some(10), output: Some(1), ..Usage::default() };
        assert_eq!(t.price("openai", Some("gpt-5"), &usage), Err(Unpriced::NoPrice));
        assert_eq!(t.price("openai", None, &usage), Err(Unpriced::NoPrice));
        let writes = Usage { input: Some(10), cache_creation: Some(5), output: Some(1), ..Usage::default() };
        assert_eq!(t.price("openai", Some("gpt-4o"), &writes), Err(Unpriced::NoRate));
        let odd = Usage { input: Some(10), cache_read: Some(11), output: Some(1), ..Usage::default() };
        assert_eq!(t.price("openai", Some("gpt-4o"), &odd), Err(Unpriced::Inconsistent));
        let odd = Usage { input: Some(10), output: Some(1), reasoning: Some(2), ..Usage::default() };
        assert_eq!(t.price("openai", Some("o3"), &odd), Err(Unpriced::Inconsistent));
    }

    #[test]
    fn a_huge_request_neither_overflows_nor_loses_a_digit() {
        let t = table(SMALL).unwrap();
        let usage = Usage { input: Some(u64::MAX), output: Some(u64::MAX), ..Usage::default() };
        let cost = t.price("openai", Some("gpt-4o"), &usage).unwrap();
        assert_eq!(cost.0, u128::from(u64::MAX) * 12_500_000);
        assert_eq!(cost.micros(), u64::MAX, "the counter saturates");
    }

    #[test]
    fn costs_print_exactly() {
        assert_eq!(Cost(0).decimal(), "0");
        assert_eq!(Cost(12_000_000_000_000).decimal(), "12");
        assert_eq!(Cost(1).decimal(), "0.000000000001");
        assert_eq!(Cost(1_500_000_000_001).decimal(), "1.500000000001");
        assert_eq!(Cost(499_999).micros(), 0);
        assert_eq!(Cost(500_000).micros(), 1);
    }

    #[test]
    fn every_bad_table_names_its_field() {
        let entry = r#"{"provider": "openai", "model": "gpt-4o", "input": "1", "output": "2"}"#;
        let doc = |currency: &str, date: &str, models: &str| {
            format!(r#"{{"currency": "{currency}", "effective_date": "{date}", "models": [{models}]}}"#)
        };
        let cases = [
            (doc("usd", "2026-12-01", entry), "prices.currency", "ISO 4217"),
            (doc("USD", "2026-13-01", entry), "prices.effective_date", "YYYY-MM-DD"),
            (doc("USD", "01.12.2026", entry), "prices.effective_date", "YYYY-MM-DD"),
            (doc("USD", "2026-12-01", &entry.replace("\"2\"", "\"2.1234567\"")), "models[0].output", "decimal"),
            (doc("USD", "2026-12-01", &entry.replace("\"1\"", "1")), "models[0].input", "invalid type"),
            (doc("USD", "2026-12-01", &entry.replace("openai", "Open AI")), "prices.models[0].provider", "a-z"),
            (doc("USD", "2026-12-01", &entry.replace("gpt-4o", "gpt 4o")), "prices.models[0].model", "model id"),
            (doc("USD", "2026-12-01", &entry.replace("gpt-4o", "g*t")), "prices.models[0].model", "model id"),
            (doc("USD", "2026-12-01", &format!("{entry}, {entry}")), "prices.models[1].model", "models[0]"),
            (doc("USD", "2026-12-01", &entry.replace("\"input\"", "\"inputs\"")), "models[0].inputs", "unknown field"),
            (doc("USD", "2026-12-01", &entry.replace(", \"output\": \"2\"", "")), "models[0]", "missing field"),
        ];
        for (json, field, reason) in cases {
            let err = table(&json).unwrap_err();
            assert!(err.field.ends_with(field), "{json}: {err}");
            assert!(err.reason.contains(reason), "{json}: {err}");
        }
    }
}
