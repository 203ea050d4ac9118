//! The host the CLI gives the filters' core: in memory, nothing sent anywhere. Metrics and
//! shared data are kept so configuring runs exactly as in Envoy (the rule-set gauge is defined);
//! there is no request, so every header and property is absent.

use base64::Engine;
use llmobs_core::host::{Environment, Host, HostError, LogLevel, MetricId, SharedDataError, Stats};
use std::collections::HashMap;

/// Where the pseudonym key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    /// A throwaway key for every variable: checking a configuration checks the file, not the
    /// machine it is checked on (the key lives in the proxy's environment, never in CI).
    Throwaway,
    /// The process environment, else a throwaway key (`redact`, where a real key gives the
    /// real pseudonyms).
    Process,
}

#[derive(Debug)]
pub struct CliHost {
    keys: Keys,
    metrics: Vec<String>,
    shared: HashMap<String, (Vec<u8>, u32)>,
    /// Whether `env_var` had to make up a key.
    pub used_throwaway_key: std::cell::Cell<bool>,
}

impl CliHost {
    pub fn new(keys: Keys) -> Self {
        Self { keys, metrics: Vec::new(), shared: HashMap::new(), used_throwaway_key: std::cell::Cell::new(false) }
    }

    fn define(&mut self, name: &str) -> Result<MetricId, HostError> {
        self.metrics.push(name.to_string());
        u32::try_from(self.metrics.len()).map(MetricId).map_err(|_| HostError { call: "define_metric" })
    }
}

impl Stats for CliHost {
    fn define_counter(&mut self, name: &str) -> Result<MetricId, HostError> {
        self.define(name)
    }
    fn define_histogram(&mut self, name: &str) -> Result<MetricId, HostError> {
        self.define(name)
    }
    fn define_gauge(&mut self, name: &str) -> Result<MetricId, HostError> {
        self.define(name)
    }
    fn set_gauge(&mut self, _metric: MetricId, _value: u64) {}
}

impl Environment for CliHost {
    fn env_var(&self, name: &str) -> Option<Vec<u8>> {
        if self.keys == Keys::Process {
            if let Some(value) = std::env::var_os(name) {
                return Some(value.into_encoded_bytes());
            }
        }
        self.used_throwaway_key.set(true);
        Some(base64::engine::general_purpose::STANDARD.encode([7u8; 32]).into_bytes())
    }
}

impl Host for CliHost {
    fn request_header(&self, _name: &str) -> Option<Vec<u8>> {
        None
    }
    fn set_request_header(&mut self, _name: &str, _value: &str) {}
    fn remove_request_header(&mut self, _name: &str) {}
    fn set_response_header(&mut self, _name: &str, _value: &str) {}
    fn property(&self, _path: &[&str]) -> Option<Vec<u8>> {
        None
    }
    fn set_filter_state(&mut self, _key: &str, _value: &[u8]) {}
    fn increment_counter(&mut self, _metric: MetricId, _delta: u64) {}
    fn record_histogram(&mut self, _metric: MetricId, _value: u64) {}
    fn response_header(&self, _name: &str) -> Option<Vec<u8>> {
        None
    }
    fn remove_response_header(&mut self, _name: &str) {}
    fn now_nanos(&self) -> u64 {
        0
    }
    fn shared_data(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.shared.get(key).cloned()
    }
    fn set_shared_data(&mut self, key: &str, value: &[u8], _cas: Option<u32>) -> Result<(), SharedDataError> {
        let cas = self.shared.get(key).map_or(1, |(_, c)| c.wrapping_add(1));
        self.shared.insert(key.to_string(), (value.to_vec(), cas));
        Ok(())
    }
    fn log(&self, _level: LogLevel, _message: &str) {}
    fn fill_random(&mut self, buf: &mut [u8]) -> bool {
        // Only correlation ids use randomness, and the CLI mints none; zeros are enough.
        buf.fill(0);
        true
    }
    fn send_local_response(&mut self, _status: u16, _details: &str, _headers: &[(&str, &str)], _body: &[u8]) -> bool {
        false
    }
}
