use llmobs_core::host::{Host, HostError, LogLevel, MetricId, SharedDataError, Stats};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel as ProxyLevel, MapType, MetricType, Status};
use std::time::UNIX_EPOCH;

/// Stateless: every call goes straight to the host for the current context.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProxyHost;

fn proxy_level(level: LogLevel) -> ProxyLevel {
    match level {
        LogLevel::Trace => ProxyLevel::Trace,
        LogLevel::Debug => ProxyLevel::Debug,
        LogLevel::Info => ProxyLevel::Info,
        LogLevel::Warn => ProxyLevel::Warn,
        LogLevel::Error => ProxyLevel::Error,
        LogLevel::Critical => ProxyLevel::Critical,
    }
}

/// Writes one line to the proxy's `wasm` log component. A failed log call has nowhere to be
/// reported, so it is dropped.
pub fn log(level: LogLevel, message: &str) {
    let _ = hostcalls::log(proxy_level(level), message);
}

/// The plugin configuration bytes (empty when none is set).
pub fn plugin_configuration() -> Vec<u8> {
    hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX).ok().flatten().unwrap_or_default()
}

/// Builds a filter from the plugin configuration. On a bad configuration, logs the one line
/// that names the field (`llmobs <filter>: invalid configuration: field ...`) and returns
/// `None`, so `on_configure` returns false and Envoy rejects the configuration.
pub fn configure<T>(
    filter_name: &str,
    build: impl FnOnce(&[u8], &mut ProxyHost) -> Result<T, llmobs_core::config::ConfigError>,
) -> Option<T> {
    match build(&plugin_configuration(), &mut ProxyHost) {
        Ok(filter) => Some(filter),
        Err(err) => {
            log(LogLevel::Error, &format!("llmobs {filter_name}: {err}"));
            None
        }
    }
}

/// A slice of the current request or response body buffer, read without unwrapping.
pub fn body_bytes(response: bool, start: usize, len: usize) -> Option<Vec<u8>> {
    let buffer = if response { BufferType::HttpResponseBody } else { BufferType::HttpRequestBody };
    hostcalls::get_buffer(buffer, start, len).ok().flatten()
}

/// Replaces `len` bytes at `start` of the current body buffer with `value`.
pub fn replace_body(response: bool, start: usize, len: usize, value: &[u8]) -> bool {
    let buffer = if response { BufferType::HttpResponseBody } else { BufferType::HttpRequestBody };
    hostcalls::set_buffer(buffer, start, len, value).is_ok()
}

impl Stats for ProxyHost {
    fn define_counter(&mut self, name: &str) -> Result<MetricId, HostError> {
        hostcalls::define_metric(MetricType::Counter, name)
            .map(MetricId)
            .map_err(|_| HostError { call: "define_metric" })
    }

    fn define_histogram(&mut self, name: &str) -> Result<MetricId, HostError> {
        hostcalls::define_metric(MetricType::Histogram, name)
            .map(MetricId)
            .map_err(|_| HostError { call: "define_metric" })
    }
}

impl Host for ProxyHost {
    fn request_header(&self, name: &str) -> Option<Vec<u8>> {
        hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, name).ok().flatten()
    }

    fn set_request_header(&mut self, name: &str, value: &str) {
        let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value));
    }

    fn remove_request_header(&mut self, name: &str) {
        let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, None);
    }

    fn set_response_header(&mut self, name: &str, value: &str) {
        let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, name, Some(value));
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        hostcalls::get_property(path.to_vec()).ok().flatten()
    }

    fn set_filter_state(&mut self, key: &str, value: &[u8]) {
        let _ = hostcalls::set_property(vec![key], Some(value));
    }

    fn increment_counter(&mut self, metric: MetricId, delta: u64) {
        let delta = i64::try_from(delta).unwrap_or(i64::MAX);
        let _ = hostcalls::increment_metric(metric.0, delta);
    }

    fn record_histogram(&mut self, metric: MetricId, value: u64) {
        let _ = hostcalls::record_metric(metric.0, value);
    }

    fn response_header(&self, name: &str) -> Option<Vec<u8>> {
        hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, name).ok().flatten()
    }

    fn remove_response_header(&mut self, name: &str) {
        let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, name, None);
    }

    fn now_nanos(&self) -> u64 {
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    fn shared_data(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        match hostcalls::get_shared_data(key) {
            Ok((Some(value), Some(cas))) => Some((value, cas)),
            _ => None,
        }
    }

    fn set_shared_data(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SharedDataError> {
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(()),
            Err(Status::CasMismatch) => Err(SharedDataError::CasMismatch),
            Err(_) => Err(SharedDataError::Failed),
        }
    }

    fn log(&self, level: LogLevel, message: &str) {
        log(level, message);
    }

    fn fill_random(&mut self, buf: &mut [u8]) -> bool {
        // WASI `random_get`, which Envoy implements from its own CSPRNG.
        getrandom::fill(buf).is_ok()
    }
}
