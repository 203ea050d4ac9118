//! The benchmark's reference (`bench/envoy_pack.py`): the work a filter doing what the llmobs
//! bundle does cannot avoid inside Envoy, and nothing else (issue 15). Per request it
//!
//! - reads each header map once, whole (`proxy_get_header_map_pairs`), and looks up the headers
//!   the behaviours read (path, content type, tenant, traceparent, request id, ...) in that copy;
//! - writes the request headers the bundle writes (a minted request id and `traceparent`) and
//!   echoes the ids on the response (`x-request-id`, `x-trace-id`);
//! - holds and reads each body once (the bundle holds both in the demo's "both" redaction mode);
//!   on a stream it reads every chunk once as it passes and holds nothing;
//! - parses two JSON documents into borrowed structs: the request, and the response (on a
//!   stream: the last event carrying data, where the usage is; the other events are not parsed);
//! - writes 20 filter-state values (the access-log fields) and makes 8 metric updates with
//!   metric ids defined once at start;
//! - reads the clock three times (start, first response byte, end).
//!
//! What it leaves out is the bundle's own work: id validation, sampling, PII scanning and
//! rewriting, per-event accounting and error detection, pricing, label building. The bench report
//! gives every configuration's added CPU against this one.

use std::borrow::Cow;
use std::time::UNIX_EPOCH;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, MetricType};
use serde::Deserialize;

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// Metric ids, defined once in `on_configure` (as the bundle caches its handles).
#[derive(Default, Clone, Copy)]
struct Metrics {
    requests: u32,
    input_tokens: u32,
    output_tokens: u32,
    detections: u32,
    duration: u32,
    ttfb: u32,
    tokens_per_request: u32,
    body_bytes: u32,
}

#[derive(Default)]
struct Root {
    metrics: Metrics,
    minted: u64,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let define = |kind, name| hostcalls::define_metric(kind, name).unwrap_or(0);
        self.metrics = Metrics {
            requests: define(MetricType::Counter, "llmobs_reference_requests"),
            input_tokens: define(MetricType::Counter, "llmobs_reference_input_tokens"),
            output_tokens: define(MetricType::Counter, "llmobs_reference_output_tokens"),
            detections: define(MetricType::Counter, "llmobs_reference_detections"),
            duration: define(MetricType::Histogram, "llmobs_reference_duration_ms"),
            ttfb: define(MetricType::Histogram, "llmobs_reference_ttfb_ms"),
            tokens_per_request: define(MetricType::Histogram, "llmobs_reference_tokens"),
            body_bytes: define(MetricType::Histogram, "llmobs_reference_body_bytes"),
        };
        true
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream { metrics: self.metrics, seq: self.minted ^ u64::from(context_id), ..Stream::default() }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

#[derive(Deserialize)]
struct ChatRequest<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    stream: bool,
    #[serde(borrow, default)]
    messages: Vec<Message<'a>>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ChatResponse<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    choices: Vec<Choice<'a>>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    total_tokens: u64,
}

#[derive(Default)]
struct Stream {
    metrics: Metrics,
    seq: u64,
    started_ms: u64,
    request_id: String,
    trace_id: String,
    tenant: Vec<u8>,
    request_model: String,
    streaming: bool,
    sse: bool,
    first_byte: bool,
    /// The last SSE event with data seen so far (the usage event, at the end of a stream).
    last_event: Vec<u8>,
    body_len: usize,
}

fn now_ms() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}

fn header<'a>(pairs: &'a [(String, proxy_wasm::types::Bytes)], name: &str) -> Option<&'a [u8]> {
    pairs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
}

fn hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
}

/// Where the last `data: {` line of an SSE chunk starts (the JSON after `data: `), if any.
fn last_data_event(chunk: &[u8]) -> Option<&[u8]> {
    let start = chunk.windows(7).rposition(|w| w == b"data: {")? + 6;
    let rest = &chunk[start..];
    let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    Some(&rest[..end])
}

impl Stream {
    fn put(&self, key: &str, value: &[u8]) {
        let _ = hostcalls::set_property(vec![key], Some(value));
    }
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        self.started_ms = now_ms();
        let pairs = self.get_http_request_headers_bytes();
        // The headers the behaviours read: the route, the body's type, ids and trace context.
        let _path = header(&pairs, ":path");
        let _content_type = header(&pairs, "content-type");
        let _inbound_id = header(&pairs, "x-request-id");
        let _conversation = header(&pairs, "x-conversation-id");
        let _agent = header(&pairs, "x-agent-run-id");
        let _baggage = header(&pairs, "baggage");
        self.tenant = header(&pairs, "x-llmobs-tenant").unwrap_or(b"unknown").to_vec();
        let inbound_trace = header(&pairs, "traceparent").map(<[u8]>::to_vec);

        // A minted request id and trace id (a per-context sequence and the clock: minting is
        // not host I/O), then the two request headers the bundle writes.
        self.seq = self.seq.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(self.started_ms);
        let mut id = String::with_capacity(32);
        hex(&mut id, &self.seq.to_le_bytes());
        hex(&mut id, &self.started_ms.to_le_bytes());
        self.request_id = id.clone();
        self.trace_id = id;
        if let Some(t) = inbound_trace.as_deref().and_then(|t| t.get(3..35)) {
            self.trace_id = String::from_utf8_lossy(t).into_owned();
        }
        self.set_http_request_header("x-request-id", Some(&self.request_id));
        let traceparent = format!("00-{}-{}-01", self.trace_id, &self.request_id[..16]);
        self.set_http_request_header("traceparent", Some(&traceparent));
        self.put("llmobs.request_id", self.request_id.as_bytes());
        self.put("llmobs.trace_id", self.trace_id.as_bytes());
        self.put("llmobs.sampled", b"true");
        self.put("llmobs.synthetic", b"false");
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        let Some(body) = self.get_http_request_body(0, body_size) else { return Action::Continue };
        self.body_len = body.len();
        if let Ok(request) = serde_json::from_slice::<ChatRequest>(&body) {
            self.request_model = request.model.as_deref().unwrap_or("").to_owned();
            self.streaming = request.stream;
            let users = request.messages.iter().filter(|m| m.role == "user" && m.content.is_some()).count();
            let _ = users;
        }
        self.put("llmobs.provider", b"openai");
        self.put("llmobs.operation", b"chat");
        self.put("llmobs.request_model", self.request_model.as_bytes());
        self.put("llmobs.stream", if self.streaming { b"true" } else { b"false" });
        self.put("llmobs.tenant", &self.tenant);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let pairs = self.get_http_response_headers_bytes();
        let _status = header(&pairs, ":status");
        let _retry_after = header(&pairs, "retry-after");
        self.sse = header(&pairs, "content-type").is_some_and(|v| v.starts_with(b"text/event-stream"));
        self.set_http_response_header("x-request-id", Some(&self.request_id));
        self.set_http_response_header("x-trace-id", Some(&self.trace_id));
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.first_byte {
            self.first_byte = true;
            let ttfb = now_ms().saturating_sub(self.started_ms);
            let _ = hostcalls::record_metric(self.metrics.ttfb, ttfb);
        }
        if self.sse {
            // Every chunk read once as it passes; only the last event with data is kept.
            if let Some(chunk) = self.get_http_response_body(0, body_size) {
                if let Some(event) = last_data_event(&chunk) {
                    self.last_event.clear();
                    self.last_event.extend_from_slice(event);
                }
            }
            if !end_of_stream {
                return Action::Continue;
            }
            let event = std::mem::take(&mut self.last_event);
            self.finish(&event);
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let body = self.get_http_response_body(0, body_size).unwrap_or_default();
        self.finish(&body);
        Action::Continue
    }
}

impl Stream {
    /// The response's one parse and the writes and metric updates that follow from it.
    fn finish(&self, json: &[u8]) {
        let response = serde_json::from_slice::<ChatResponse>(json).ok();
        let usage = response.as_ref().and_then(|r| r.usage.as_ref());
        let (input, output, total) =
            usage.map_or((0, 0, 0), |u| (u.prompt_tokens, u.completion_tokens, u.total_tokens));
        let model = response.as_ref().and_then(|r| r.model.as_deref()).unwrap_or("");
        let id = response.as_ref().and_then(|r| r.id.as_deref()).unwrap_or("");
        let finish = response.as_ref().and_then(|r| r.choices.first()).and_then(|c| c.finish_reason.as_deref());
        self.put("llmobs.response_model", model.as_bytes());
        self.put("llmobs.response_id", id.as_bytes());
        self.put("llmobs.usage.input_tokens", input.to_string().as_bytes());
        self.put("llmobs.usage.output_tokens", output.to_string().as_bytes());
        self.put("llmobs.usage.total_tokens", total.to_string().as_bytes());
        self.put("llmobs.finish_reason_raw", finish.unwrap_or("").as_bytes());
        self.put("llmobs.finish_reason", finish.unwrap_or("unknown").as_bytes());
        self.put("llmobs.usage_source", if usage.is_some() { b"provider" } else { b"missing" });
        self.put("llmobs.stream_outcome", b"completed");
        self.put("llmobs.error", b"false");
        self.put("llmobs.pii_detections", b"0");
        let m = self.metrics;
        let _ = hostcalls::increment_metric(m.requests, 1);
        let _ = hostcalls::increment_metric(m.input_tokens, input as i64);
        let _ = hostcalls::increment_metric(m.output_tokens, output as i64);
        let _ = hostcalls::increment_metric(m.detections, 0);
        let _ = hostcalls::record_metric(m.duration, now_ms().saturating_sub(self.started_ms));
        let _ = hostcalls::record_metric(m.tokens_per_request, total);
        let _ = hostcalls::record_metric(m.body_bytes, self.body_len as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::last_data_event;

    #[test]
    fn the_last_data_event_of_a_chunk_is_the_json_after_its_data_prefix() {
        let chunk = b"data: {\"a\":1}\n\ndata: {\"usage\":{}}\n\ndata: [DONE]\n\n";
        assert_eq!(last_data_event(chunk), Some(&b"{\"usage\":{}}"[..]));
        assert_eq!(last_data_event(b"data: [DONE]\n\n"), None);
    }
}
