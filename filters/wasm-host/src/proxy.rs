use crate::abi;
use llmobs_core::config::ConfigError;
use llmobs_core::host::{Environment, Host, HostError, LogLevel, MetricId, QueueError, SharedDataError, Stats};
use std::cell::RefCell;

type Pairs = abi::HeaderPairs;

/// The host for one callback: every call goes to the host for the current context, through
/// [`crate::abi`], so no host status can panic the VM. Each header map is fetched whole, once, in
/// one host call (`proxy_get_header_map_pairs`) and read from that copy. Measured on Envoy 1.40:
/// the four behaviours read 41 header values per request, one host call (and one allocation
/// call back into the VM) each. Make one per callback (`ProxyHost::default()`): the copy then
/// lives for that callback only, so headers changed by other filters between callbacks are read
/// fresh; this host's own writes update it.
#[derive(Default)]
pub struct ProxyHost {
    request: RefCell<Option<Pairs>>,
    response: RefCell<Option<Pairs>>,
}

impl std::fmt::Debug for ProxyHost {
    // The copies hold every header, cookies and credentials included: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyHost").finish_non_exhaustive()
    }
}

fn cached_header(cache: &RefCell<Option<Pairs>>, map: u32, name: &str) -> Option<Vec<u8>> {
    let mut slot = cache.borrow_mut();
    if slot.is_none() {
        match abi::get_header_pairs(map) {
            Ok(pairs) => *slot = Some(pairs),
            // The map is not readable as a whole here: ask for the one value.
            Err(_) => return abi::get_header(map, name).ok().flatten(),
        }
    }
    let pairs = slot.as_ref()?;
    pairs.iter().find(|(key, _)| key.eq_ignore_ascii_case(name.as_bytes())).map(|(_, value)| value.clone())
}

fn forget_header(cache: &RefCell<Option<Pairs>>, name: &str) {
    if let Some(pairs) = cache.borrow_mut().as_mut() {
        pairs.retain(|(key, _)| !key.eq_ignore_ascii_case(name.as_bytes()));
    }
}

fn replace_cached(cache: &RefCell<Option<Pairs>>, name: &str, value: &str) {
    forget_header(cache, name);
    if let Some(pairs) = cache.borrow_mut().as_mut() {
        pairs.push((name.as_bytes().to_vec(), value.as_bytes().to_vec()));
    }
}

fn level(level: LogLevel) -> u32 {
    match level {
        LogLevel::Trace => 0,
        LogLevel::Debug => 1,
        LogLevel::Info => 2,
        LogLevel::Warn => 3,
        LogLevel::Error => 4,
        LogLevel::Critical => 5,
    }
}

/// Writes one line to the proxy's `wasm` log component. A failed log call has nowhere to be
/// reported, so it is dropped.
pub fn log(at: LogLevel, message: &str) {
    let _ = abi::log(level(at), message);
}

/// The plugin configuration bytes (empty when none is set).
pub fn plugin_configuration() -> Vec<u8> {
    abi::get_buffer(abi::BUFFER_PLUGIN_CONFIGURATION, 0, usize::MAX).unwrap_or_default()
}

/// Builds a filter from the plugin configuration. On a bad configuration, logs the one line
/// that names the field (`llmobs <filter>: invalid configuration: field ...`) and returns
/// `None`, so `on_configure` returns false and Envoy rejects the configuration.
pub fn configure<T>(
    filter_name: &str,
    build: impl FnOnce(&[u8], &mut ProxyHost) -> Result<T, ConfigError>,
) -> Option<T> {
    match build(&plugin_configuration(), &mut ProxyHost::default()) {
        Ok(filter) => Some(filter),
        Err(err) => {
            log(LogLevel::Error, &format!("llmobs {filter_name}: {err}"));
            None
        }
    }
}

fn body_buffer(response: bool) -> u32 {
    if response {
        abi::BUFFER_RESPONSE_BODY
    } else {
        abi::BUFFER_REQUEST_BODY
    }
}

/// A slice of the current request or response body buffer.
pub fn body_bytes(response: bool, start: usize, len: usize) -> Option<Vec<u8>> {
    if len == 0 {
        return Some(Vec::new());
    }
    abi::get_buffer(body_buffer(response), start, len).ok()
}

/// Replaces `len` bytes at `start` of the current body buffer with `value`.
pub fn replace_body(response: bool, start: usize, len: usize, value: &[u8]) -> bool {
    abi::set_buffer(body_buffer(response), start, len, value).is_ok()
}

impl Stats for ProxyHost {
    fn define_counter(&mut self, name: &str) -> Result<MetricId, HostError> {
        abi::define_metric(abi::METRIC_COUNTER, name).map(MetricId).map_err(|_| HostError { call: "define_metric" })
    }

    fn define_histogram(&mut self, name: &str) -> Result<MetricId, HostError> {
        abi::define_metric(abi::METRIC_HISTOGRAM, name).map(MetricId).map_err(|_| HostError { call: "define_metric" })
    }

    fn define_gauge(&mut self, name: &str) -> Result<MetricId, HostError> {
        abi::define_metric(abi::METRIC_GAUGE, name).map(MetricId).map_err(|_| HostError { call: "define_metric" })
    }

    fn set_gauge(&mut self, metric: MetricId, value: u64) {
        let _ = abi::record_metric(metric.0, value);
    }
}

impl Environment for ProxyHost {
    // wasm32-wasip1's std reads the environment through WASI `environ_get`, which Envoy serves
    // from `vm_config.environment_variables` (and nothing else of the host's).
    fn env_var(&self, name: &str) -> Option<Vec<u8>> {
        std::env::var_os(name).map(|v| v.into_encoded_bytes())
    }
}

impl Host for ProxyHost {
    fn request_header(&self, name: &str) -> Option<Vec<u8>> {
        cached_header(&self.request, abi::MAP_REQUEST_HEADERS, name)
    }

    fn set_request_header(&mut self, name: &str, value: &str) {
        let _ = abi::replace_header(abi::MAP_REQUEST_HEADERS, name, value);
        replace_cached(&self.request, name, value);
    }

    fn remove_request_header(&mut self, name: &str) {
        let _ = abi::remove_header(abi::MAP_REQUEST_HEADERS, name);
        forget_header(&self.request, name);
    }

    fn set_response_header(&mut self, name: &str, value: &str) {
        let _ = abi::replace_header(abi::MAP_RESPONSE_HEADERS, name, value);
        replace_cached(&self.response, name, value);
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        abi::get_property(path).ok().flatten()
    }

    fn set_filter_state(&mut self, key: &str, value: &[u8]) {
        let _ = abi::set_property(&[key], value);
    }

    fn increment_counter(&mut self, metric: MetricId, delta: u64) {
        let _ = abi::increment_metric(metric.0, i64::try_from(delta).unwrap_or(i64::MAX));
    }

    fn record_histogram(&mut self, metric: MetricId, value: u64) {
        let _ = abi::record_metric(metric.0, value);
    }

    fn response_header(&self, name: &str) -> Option<Vec<u8>> {
        cached_header(&self.response, abi::MAP_RESPONSE_HEADERS, name)
    }

    fn remove_response_header(&mut self, name: &str) {
        let _ = abi::remove_header(abi::MAP_RESPONSE_HEADERS, name);
        forget_header(&self.response, name);
    }

    fn now_nanos(&self) -> u64 {
        abi::now_nanos().unwrap_or(0)
    }

    fn shared_data(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        abi::get_shared_data(key).ok().flatten()
    }

    fn set_shared_data(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SharedDataError> {
        match abi::set_shared_data(key, value, cas.unwrap_or(0)) {
            Ok(()) => Ok(()),
            Err(abi::CAS_MISMATCH) => Err(SharedDataError::CasMismatch),
            Err(_) => Err(SharedDataError::Failed),
        }
    }

    fn log(&self, at: LogLevel, message: &str) {
        log(at, message);
    }

    fn fill_random(&mut self, buf: &mut [u8]) -> bool {
        // WASI `random_get`, which Envoy implements from its own CSPRNG.
        getrandom::fill(buf).is_ok()
    }

    fn send_local_response(&mut self, status: u16, details: &str, headers: &[(&str, &str)], body: &[u8]) -> bool {
        abi::send_local_response(u32::from(status), details, body, headers).is_ok()
    }

    // Resolved per record (only exchanges selected for evaluation get here): an exporter that
    // restarted registers its queue again, possibly under a new id.
    fn enqueue_shared(&mut self, vm_id: &str, queue: &str, value: &[u8]) -> Result<(), QueueError> {
        match abi::resolve_shared_queue(vm_id, queue) {
            Ok(Some(id)) => abi::enqueue_shared_queue(id, value).map_err(|status| {
                if status == abi::NOT_FOUND {
                    QueueError::NotFound
                } else {
                    QueueError::Failed
                }
            }),
            Ok(None) => Err(QueueError::NotFound),
            Err(_) => Err(QueueError::Failed),
        }
    }
}
