//! Dev-only helpers for llmobs tests.
//!
//! - [`FakeHost`]: an in-memory implementation of the core `Host` and `Stats` traits, so filter
//!   logic runs natively with inspectable headers, filter state, counters and log lines.
//! - [`chunkings`]: the chunk splits every body test must agree on (design.md, "Bodies and
//!   streams"): every split point for short payloads, and 1, 2, 3, 7 and 64-byte chunks.
//!
//! Tests assert behaviour (what was forwarded, written, counted), not call order or log text.

// Dev-only: a broken fixture must fail the test loudly, and serde_json's `value[key]` indexing
// returns Null rather than panicking.
#![allow(clippy::panic, clippy::expect_used, clippy::indexing_slicing)]

use llmobs_core::host::{Host, HostError, LogLevel, MetricId, QueueError, SharedDataError, Stats};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

/// A local reply the filter sent: status, headers, body.
pub type LocalResponse = (u16, Vec<(String, String)>, Vec<u8>);

#[derive(Debug, Clone)]
pub struct FakeHost {
    /// Request headers in order; names lower-case as Envoy presents them.
    pub request_headers: Vec<(String, Vec<u8>)>,
    pub response_headers: Vec<(String, String)>,
    /// Values recorded per histogram id.
    pub histogram_samples: HashMap<u32, Vec<u64>>,
    pub shared: HashMap<String, (Vec<u8>, u32)>,
    /// The clock `now_nanos` returns; tests move it with `advance_ms`.
    pub now_nanos: u64,
    pub properties: HashMap<Vec<String>, Vec<u8>>,
    pub filter_state: BTreeMap<String, Vec<u8>>,
    /// Defined metrics by id: name and value.
    pub metrics: Vec<(String, u64)>,
    /// Every line the filter logged (`Host::log` takes `&self`, as the proxy's does).
    pub logs: RefCell<Vec<(LogLevel, String)>>,
    pub random_available: bool,
    /// Makes `define_counter` fail, to test configure-time host failures.
    pub refuse_metrics: bool,
    /// The VM environment (`Environment::env_var`).
    pub env: HashMap<String, Vec<u8>>,
    /// The local reply the filter sent, if any: status, headers, body.
    pub local_response: Option<LocalResponse>,
    /// Shared queues registered by (vm_id, name), and what was enqueued in each.
    pub queues: HashMap<(String, String), Vec<Vec<u8>>>,
    rng_state: u64,
}

impl Default for FakeHost {
    fn default() -> Self {
        Self {
            request_headers: Vec::new(),
            response_headers: Vec::new(),
            histogram_samples: HashMap::new(),
            shared: HashMap::new(),
            now_nanos: 1_000_000_000,
            properties: HashMap::new(),
            filter_state: BTreeMap::new(),
            metrics: Vec::new(),
            logs: RefCell::new(Vec::new()),
            random_available: true,
            refuse_metrics: false,
            env: HashMap::new(),
            local_response: None,
            queues: HashMap::new(),
            rng_state: 0x9e37_79b9_7f4a_7c15,
        }
    }
}

impl FakeHost {
    /// A host whose request carries `headers` (names are lower-cased).
    pub fn with_request_headers(headers: &[(&str, &str)]) -> Self {
        let mut host = Self::default();
        for (name, value) in headers {
            host.request_headers.push((name.to_ascii_lowercase(), value.as_bytes().to_vec()));
        }
        host
    }

    /// A host with no random source, as a proxy without WASI `random_get` would be.
    pub fn without_random() -> Self {
        Self { random_available: false, ..Self::default() }
    }

    /// A host whose `define_counter` fails.
    pub fn refusing_metrics() -> Self {
        Self { refuse_metrics: true, ..Self::default() }
    }

    /// Adds a request header with raw bytes (for non-UTF-8 values).
    pub fn add_raw_request_header(&mut self, name: &str, value: &[u8]) {
        self.request_headers.push((name.to_ascii_lowercase(), value.to_vec()));
    }

    /// Registers the shared queue `name` as the VM `vm_id` would (the evaluation exporter).
    pub fn register_queue(&mut self, vm_id: &str, name: &str) {
        self.queues.insert((vm_id.to_string(), name.to_string()), Vec::new());
    }

    /// What was enqueued in a registered queue.
    pub fn queued(&self, vm_id: &str, name: &str) -> Vec<Vec<u8>> {
        self.queues.get(&(vm_id.to_string(), name.to_string())).cloned().unwrap_or_default()
    }

    pub fn set_property(&mut self, path: &[&str], value: &[u8]) {
        self.properties.insert(path.iter().map(|s| (*s).to_string()).collect(), value.to_vec());
    }

    /// Starts a new request on the same host: headers, filter state and logs are cleared;
    /// metric definitions and values persist, as they do in a VM.
    pub fn next_request(&mut self, headers: &[(&str, &str)]) {
        let fresh = Self::with_request_headers(headers);
        self.request_headers = fresh.request_headers;
        self.response_headers.clear();
        self.filter_state.clear();
        self.logs.borrow_mut().clear();
    }

    pub fn advance_ms(&mut self, ms: u64) {
        self.now_nanos += ms * 1_000_000;
    }

    /// Sets a response header as the upstream sent it.
    pub fn add_response_header(&mut self, name: &str, value: &str) {
        self.response_headers.push((name.to_ascii_lowercase(), value.to_string()));
    }

    /// The samples recorded in the histogram with exactly this encoded name.
    pub fn histogram(&self, name: &str) -> Vec<u64> {
        let Some(i) = self.metrics.iter().position(|(n, _)| n == name) else { return Vec::new() };
        self.histogram_samples.get(&u32::try_from(i).unwrap_or(u32::MAX)).cloned().unwrap_or_default()
    }

    /// Names of every defined metric that starts with `prefix`.
    pub fn metric_names(&self, prefix: &str) -> Vec<String> {
        self.metrics.iter().filter(|(n, _)| n.starts_with(prefix)).map(|(n, _)| n.clone()).collect()
    }

    pub fn request_header_str(&self, name: &str) -> Option<String> {
        self.request_header(name).map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    pub fn response_header_str(&self, name: &str) -> Option<&str> {
        self.response_headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn filter_state_str(&self, key: &str) -> Option<String> {
        self.filter_state.get(key).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// The value of the counter with exactly this encoded name; `None` if never defined.
    pub fn counter(&self, name: &str) -> Option<u64> {
        self.metrics.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    /// Sum of every defined counter whose name starts with `prefix`.
    pub fn counter_sum(&self, prefix: &str) -> u64 {
        self.metrics.iter().filter(|(n, _)| n.starts_with(prefix)).map(|(_, v)| v).sum()
    }

    /// Everything the filter could have leaked: logs, filter state, metric names, and response
    /// headers, as one string to search for canaries.
    pub fn all_sinks(&self) -> String {
        let mut out = String::new();
        for (_, line) in self.logs.borrow().iter() {
            out.push_str(line);
            out.push('\n');
        }
        for (k, v) in &self.filter_state {
            out.push_str(k);
            out.push('=');
            out.push_str(&String::from_utf8_lossy(v));
            out.push('\n');
        }
        for (name, _) in &self.metrics {
            out.push_str(name);
            out.push('\n');
        }
        for (name, value) in &self.response_headers {
            out.push_str(name);
            out.push('=');
            out.push_str(value);
            out.push('\n');
        }
        if let Some((_, headers, body)) = &self.local_response {
            for (name, value) in headers {
                out.push_str(&format!("{name}={value}\n"));
            }
            out.push_str(&String::from_utf8_lossy(body));
        }
        // Evaluation records leave through a shared queue: a sink like the others.
        for items in self.queues.values() {
            for item in items {
                out.push_str(&String::from_utf8_lossy(item));
                out.push('\n');
            }
        }
        out
    }

    fn next_random(&mut self) -> u64 {
        // splitmix64: deterministic, so test failures reproduce.
        self.rng_state = self.rng_state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng_state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl Stats for FakeHost {
    fn define_histogram(&mut self, name: &str) -> Result<MetricId, HostError> {
        self.define_counter(name)
    }

    fn define_gauge(&mut self, name: &str) -> Result<MetricId, HostError> {
        self.define_counter(name)
    }

    fn set_gauge(&mut self, metric: MetricId, value: u64) {
        if let Some((_, current)) = self.metrics.get_mut(metric.0 as usize) {
            *current = value;
        }
    }

    fn define_counter(&mut self, name: &str) -> Result<MetricId, HostError> {
        if self.refuse_metrics {
            return Err(HostError { call: "define_metric" });
        }
        if let Some(i) = self.metrics.iter().position(|(n, _)| n == name) {
            return Ok(MetricId(u32::try_from(i).unwrap_or(u32::MAX)));
        }
        self.metrics.push((name.to_string(), 0));
        Ok(MetricId(u32::try_from(self.metrics.len() - 1).unwrap_or(u32::MAX)))
    }
}

impl llmobs_core::host::Environment for FakeHost {
    fn env_var(&self, name: &str) -> Option<Vec<u8>> {
        self.env.get(name).cloned()
    }
}

impl Host for FakeHost {
    fn request_header(&self, name: &str) -> Option<Vec<u8>> {
        self.request_headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    }

    fn set_request_header(&mut self, name: &str, value: &str) {
        self.remove_request_header(name);
        self.request_headers.push((name.to_string(), value.as_bytes().to_vec()));
    }

    fn remove_request_header(&mut self, name: &str) {
        self.request_headers.retain(|(n, _)| n != name);
    }

    fn set_response_header(&mut self, name: &str, value: &str) {
        self.response_headers.retain(|(n, _)| n != name);
        self.response_headers.push((name.to_string(), value.to_string()));
    }

    // As in Envoy, a one-segment path that is no property of its own reads the filter state a
    // filter wrote under that key (`set_property(["llmobs.x"])` is readable as `["llmobs.x"]`).
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        let key: Vec<String> = path.iter().map(|s| (*s).to_string()).collect();
        self.properties.get(&key).cloned().or_else(|| {
            if let [one] = path {
                self.filter_state.get(*one).cloned()
            } else {
                None
            }
        })
    }

    fn set_filter_state(&mut self, key: &str, value: &[u8]) {
        self.filter_state.insert(key.to_string(), value.to_vec());
    }

    fn increment_counter(&mut self, metric: MetricId, delta: u64) {
        if let Some((_, value)) = self.metrics.get_mut(metric.0 as usize) {
            *value += delta;
        }
    }

    fn record_histogram(&mut self, metric: MetricId, value: u64) {
        if let Some((_, count)) = self.metrics.get_mut(metric.0 as usize) {
            *count += 1;
            self.histogram_samples.entry(metric.0).or_default().push(value);
        }
    }

    fn response_header(&self, name: &str) -> Option<Vec<u8>> {
        self.response_headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_bytes().to_vec())
    }

    fn remove_response_header(&mut self, name: &str) {
        self.response_headers.retain(|(n, _)| n != name);
    }

    fn now_nanos(&self) -> u64 {
        self.now_nanos
    }

    fn shared_data(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.shared.get(key).cloned()
    }

    fn set_shared_data(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SharedDataError> {
        let current = self.shared.get(key).map(|(_, c)| *c);
        if let (Some(expected), Some(actual)) = (cas, current) {
            if expected != actual {
                return Err(SharedDataError::CasMismatch);
            }
        }
        let next = current.unwrap_or(0) + 1;
        self.shared.insert(key.to_string(), (value.to_vec(), next));
        Ok(())
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.logs.borrow_mut().push((level, message.to_string()));
    }

    fn fill_random(&mut self, buf: &mut [u8]) -> bool {
        if !self.random_available {
            return false;
        }
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_random().to_le_bytes();
            for (dst, src) in chunk.iter_mut().zip(bytes) {
                *dst = src;
            }
        }
        true
    }

    fn send_local_response(&mut self, status: u16, _details: &str, headers: &[(&str, &str)], body: &[u8]) -> bool {
        let headers = headers.iter().map(|(n, v)| ((*n).to_string(), (*v).to_string())).collect();
        self.local_response = Some((status, headers, body.to_vec()));
        true
    }

    fn enqueue_shared(&mut self, vm_id: &str, queue: &str, value: &[u8]) -> Result<(), QueueError> {
        match self.queues.get_mut(&(vm_id.to_string(), queue.to_string())) {
            Some(items) => {
                items.push(value.to_vec());
                Ok(())
            }
            None => Err(QueueError::NotFound),
        }
    }
}

/// Every way a body test must split `payload`: for payloads up to 512 bytes, every single split
/// point (two chunks); always 1, 2, 3, 7 and 64-byte chunks; and the whole payload at once.
pub fn chunkings(payload: &[u8]) -> Vec<Vec<&[u8]>> {
    let mut out = vec![vec![payload]];
    if payload.len() <= 512 {
        for at in 1..payload.len() {
            let (a, b) = payload.split_at(at);
            out.push(vec![a, b]);
        }
    }
    for size in [1usize, 2, 3, 7, 64] {
        out.push(payload.chunks(size).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunkings_reassemble_to_the_payload() {
        let payload = b"data: {\"x\": \"\xc3\xa9\"}\r\n\r\n";
        for chunks in chunkings(payload) {
            assert_eq!(chunks.concat(), payload);
        }
        assert!(chunkings(payload).len() > payload.len());
    }

    #[test]
    fn random_bytes_are_deterministic_per_host_and_differ_between_calls() {
        let mut a = FakeHost::default();
        let mut b = FakeHost::default();
        let (mut x, mut y) = ([0u8; 16], [0u8; 16]);
        a.fill_random(&mut x);
        b.fill_random(&mut y);
        assert_eq!(x, y);
        a.fill_random(&mut y);
        assert_ne!(x, y);
    }
}

/// One recorded provider exchange from `tests/fixtures/providers/<name>/` (format in that
/// folder's README): the request as the client sent it and the response bytes as the provider
/// answered, with the values the filters must extract.
#[derive(Debug, Clone)]
pub struct ProviderFixture {
    pub name: String,
    pub meta: serde_json::Value,
    pub path: String,
    pub request_headers: Vec<(String, String)>,
    pub request_body: Vec<u8>,
    pub status: u16,
    pub response_headers: Vec<(String, String)>,
    pub response_body: Vec<u8>,
}

impl ProviderFixture {
    /// `expected.<key>` from meta.json.
    pub fn expected(&self, key: &str) -> &serde_json::Value {
        &self.meta["expected"][key]
    }
}

/// Every provider fixture, sorted by name. Panics with the offending file on a malformed
/// fixture: fixtures are test inputs, and a broken one must fail loudly.
pub fn provider_fixtures() -> Vec<ProviderFixture> {
    fixtures_in("providers")
}

/// Responses that ask for tools, in the provider fixtures' format, from
/// `tests/fixtures/agent/responses/` (their `expected` holds only `tool_calls` and
/// `server_tool_errors`).
pub fn agent_response_fixtures() -> Vec<ProviderFixture> {
    fixtures_in("agent/responses")
}

fn fixtures_in(folder: &str) -> Vec<ProviderFixture> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(folder);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("dir entry").path();
        let meta_path = path.join("meta.json");
        if !meta_path.exists() {
            continue;
        }
        let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta_path).expect("meta.json"))
            .unwrap_or_else(|e| panic!("{}: {e}", meta_path.display()));
        let headers = |key: &str| -> Vec<(String, String)> {
            meta[key]
                .as_object()
                .map(|m| {
                    m.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap_or("").to_string())).collect()
                })
                .unwrap_or_default()
        };
        let read = |key: &str| -> Vec<u8> {
            meta[key].as_str().map(|f| std::fs::read(path.join(f)).expect("fixture file")).unwrap_or_default()
        };
        out.push(ProviderFixture {
            name: path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string(),
            path: meta["path"].as_str().unwrap_or("/").to_string(),
            request_headers: headers("request_headers"),
            request_body: read("request_file"),
            status: u16::try_from(meta["status"].as_u64().unwrap_or(200)).unwrap_or(200),
            response_headers: headers("response_headers"),
            response_body: read("response_file"),
            meta,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Envoy's body buffer for one filter and direction, as a filter sees it: it grows while the
/// filter pauses and is forwarded (and emptied) when the filter continues.
#[derive(Debug, Default)]
pub struct EnvoyBody {
    pub bytes: Vec<u8>,
}

impl llmobs_core::bundle::BodyBuffer for EnvoyBody {
    fn read(&self, start: usize, len: usize) -> Option<Vec<u8>> {
        self.bytes.get(start..start.checked_add(len)?).map(<[u8]>::to_vec)
    }

    fn replace(&mut self, len: usize, bytes: &[u8]) -> bool {
        if len > self.bytes.len() {
            return false;
        }
        self.bytes.splice(..len, bytes.iter().copied());
        true
    }
}

/// A body's chunks as body callbacks (bytes, end of stream); `ends`: the last carries end of
/// stream (false: the stream is torn down after it).
pub fn body_pieces(chunks: &[&[u8]], ends: bool) -> Vec<(Vec<u8>, bool)> {
    let last = chunks.len().saturating_sub(1);
    chunks.iter().enumerate().map(|(i, c)| (c.to_vec(), ends && i == last)).collect()
}

/// Drives `pieces` (bytes, end of stream) through one filter's body callback as Envoy does;
/// returns what the filter forwarded, one entry per callback that continued.
pub fn drive_body(
    pieces: &[(Vec<u8>, bool)],
    mut call: impl FnMut(&mut EnvoyBody, usize, bool) -> llmobs_core::bundle::Flow,
) -> Vec<(Vec<u8>, bool)> {
    let mut buffer = EnvoyBody::default();
    let mut out = Vec::new();
    for (piece, end) in pieces {
        buffer.bytes.extend_from_slice(piece);
        let size = buffer.bytes.len();
        if call(&mut buffer, size, *end) == llmobs_core::bundle::Flow::Continue {
            out.push((std::mem::take(&mut buffer.bytes), *end));
        }
    }
    out
}

/// One agent-signal case from `tests/fixtures/agent/<name>.json`: a request whose history the
/// agent reader reads (tool results, errors, prompt ids), its `expected` reading, and the
/// `agent` configuration section it runs with (`config`, default when absent).
#[derive(Debug, Clone)]
pub struct AgentFixture {
    pub name: String,
    pub path: String,
    pub request_headers: Vec<(String, String)>,
    pub request_body: Vec<u8>,
    pub config: serde_json::Value,
    pub expected: serde_json::Value,
}

/// Every agent fixture, sorted by name; panics on a malformed one.
pub fn agent_fixtures() -> Vec<AgentFixture> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/agent");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let case: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).expect("fixture"))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        out.push(AgentFixture {
            name: path.file_stem().and_then(|n| n.to_str()).unwrap_or("").to_string(),
            path: case["path"].as_str().unwrap_or("/").to_string(),
            request_headers: case["request_headers"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string())).collect())
                .unwrap_or_default(),
            request_body: case["body"].to_string().into_bytes(),
            config: case.get("config").cloned().unwrap_or_else(|| serde_json::json!({})),
            expected: case["expected"].clone(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}
