//! The seam between filter logic and the proxy.
//!
//! Filter logic takes the host as a generic parameter on every callback
//! (`fn on_request_headers<H: Host>(&self, host: &mut H)`), so unit tests pass the testkit's
//! `FakeHost` and the filter crates pass a small adapter over `proxy_wasm::hostcalls`. Host calls
//! that can fail report it as a value; logic decides what a failure means, never the adapter.

use std::fmt;

/// Severity for [`Host::log`], mirroring proxy-wasm's levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Critical,
}

/// A metric handle returned by [`Stats::define_counter`] and friends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MetricId(pub u32);

/// A host call that did not succeed; carries the call name for the one log line it deserves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostError {
    pub call: &'static str,
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "host call {} failed", self.call)
    }
}

/// Metric definition: at configure time, or once on first use of a new label set (never per
/// request by name).
pub trait Stats {
    fn define_counter(&mut self, name: &str) -> Result<MetricId, HostError>;
    /// Envoy histograms hold integers: record milliseconds or tokens, with the unit in the name.
    fn define_histogram(&mut self, name: &str) -> Result<MetricId, HostError>;
    fn define_gauge(&mut self, name: &str) -> Result<MetricId, HostError>;
    /// Sets a gauge; the only metric a root context writes (the active rule set, for one).
    fn set_gauge(&mut self, metric: MetricId, value: u64);
}

/// The VM's environment variables: Envoy passes only the host variables named in
/// `vm_config.environment_variables.host_env_keys` (and literal `key_values`) to the module,
/// through WASI `environ_get`. Secrets come from here, never from plugin configuration, which
/// Envoy prints in `/config_dump`.
pub trait Environment {
    fn env_var(&self, name: &str) -> Option<Vec<u8>>;
}

/// A compare-and-swap write to shared data lost a race; read again and retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedDataError {
    CasMismatch,
    Failed,
}

/// A record could not be handed to a shared queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// No VM registered the queue (the exporter service is not configured or not running).
    NotFound,
    Failed,
}

/// What a filter may do during one HTTP stream.
pub trait Host: Stats {
    /// A request header's raw value. Values are bytes: HTTP allows obs-text (0x80-0xFF), and a
    /// non-UTF-8 value must be handled (replaced), not unwrapped.
    fn request_header(&self, name: &str) -> Option<Vec<u8>>;
    /// Replaces (or adds) a request header before the request goes upstream.
    fn set_request_header(&mut self, name: &str, value: &str);
    fn remove_request_header(&mut self, name: &str);
    fn set_response_header(&mut self, name: &str, value: &str);
    /// A host property such as `["xds", "cluster_name"]`.
    fn property(&self, path: &[&str]) -> Option<Vec<u8>>;
    /// Writes a filter-state value. Envoy stores `key` under `wasm.<key>`, where the access log
    /// reads it with `%FILTER_STATE(wasm.<key>:PLAIN)%`.
    fn set_filter_state(&mut self, key: &str, value: &[u8]);
    fn increment_counter(&mut self, metric: MetricId, delta: u64);
    fn record_histogram(&mut self, metric: MetricId, value: u64);
    fn response_header(&self, name: &str) -> Option<Vec<u8>>;
    fn remove_response_header(&mut self, name: &str);
    /// The host clock in nanoseconds (wall clock; only differences are used).
    fn now_nanos(&self) -> u64;
    /// Process-wide data shared by every VM with the same `vm_id` (Envoy worker threads), with
    /// its compare-and-swap token.
    fn shared_data(&self, key: &str) -> Option<(Vec<u8>, u32)>;
    fn set_shared_data(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SharedDataError>;
    /// Never pass a header value, body text or matched value here: the wasm log is a sink.
    fn log(&self, level: LogLevel, message: &str);
    /// Fills `buf` from the host's CSPRNG; false when none is available.
    fn fill_random(&mut self, buf: &mut [u8]) -> bool;
    /// Answers the request locally (the upstream is never called); false when the host refused.
    /// `details` becomes Envoy's `%RESPONSE_CODE_DETAILS%` (no spaces).
    fn send_local_response(&mut self, status: u16, details: &str, headers: &[(&str, &str)], body: &[u8]) -> bool;
    /// Hands `value` to the proxy-wasm shared queue `queue` that the VM `vm_id` registered (the
    /// evaluation exporter). Never blocks: the queue's owner is woken on its own thread. Hosts
    /// without shared queues (the CLI) have none to find.
    fn enqueue_shared(&mut self, _vm_id: &str, _queue: &str, _value: &[u8]) -> Result<(), QueueError> {
        Err(QueueError::NotFound)
    }
}
