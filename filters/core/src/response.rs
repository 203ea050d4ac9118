//! Reading an LLM provider's response once, for every filter that needs it.
//!
//! [`ResponseTracker`] picks a framer from the response headers (SSE, AWS event-stream, a Gemini
//! JSON array, or a whole JSON body), feeds every frame to the provider observer
//! ([`crate::token_accounting::observer::Observation`]), and at the end says how the exchange
//! ended ([`Outcome`]). Token accounting reads usage from it; error normalization reads the
//! error body and in-band error events from it. Each keeps its own tracker, but in the bundle a
//! successful stream, which both read alike ([`ResponseTracker::reads_like`]), is parsed by error
//! normalization's alone and handed to accounting at the end.

use crate::framing::event_stream::EventStreamDecoder;
use crate::framing::json_stream::JsonArraySplitter;
use crate::framing::sse::SseParser;
use crate::framing::Ending;
use crate::host::Host;
use crate::token_accounting::observer::{Frame, Observation};
use crate::token_accounting::provider::Wire;

/// How the exchange ended; the `stream_outcome` label and log field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    ClientCancelled,
    UpstreamCut,
    InBandError,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::ClientCancelled => "client_cancelled",
            Outcome::UpstreamCut => "upstream_cut",
            Outcome::InBandError => "in_band_error",
        }
    }
}

/// How the adapter saw the response end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// End of stream or trailers: the upstream finished the response.
    Complete,
    /// The stream was torn down first (the access-log callback came before the end).
    Aborted,
}

/// Why bytes could not be read; the `reason` label of `llmobs.token_accounting.parse_failures`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParseFailure {
    RequestJson,
    RequestOverLimit,
    ResponseJson,
    ResponseOverLimit,
    Framing,
    Compressed,
}

impl ParseFailure {
    pub fn label(self) -> &'static str {
        match self {
            ParseFailure::RequestJson => "request_json",
            ParseFailure::RequestOverLimit => "request_over_limit",
            ParseFailure::ResponseJson => "response_json",
            ParseFailure::ResponseOverLimit => "response_over_limit",
            ParseFailure::Framing => "framing",
            ParseFailure::Compressed => "compressed",
        }
    }
}

/// Limits for one tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of a non-streaming success body kept for usage; 0: not read at all.
    pub max_body_bytes: usize,
    /// Bytes of an error body kept for classification.
    pub max_error_body_bytes: usize,
    /// The largest single stream frame.
    pub max_frame_bytes: usize,
}

/// Not `Debug`: it holds response bytes.
enum Reader {
    /// Not read: no provider, or a compressed body.
    None,
    Json {
        body: Vec<u8>,
        over_limit: bool,
        limit: usize,
    },
    Sse(SseParser),
    EventStream(EventStreamDecoder),
    JsonArray(JsonArraySplitter),
}

/// Everything read from one response.
pub struct ResponseTracker {
    wire: Option<Wire>,
    pub status: u16,
    pub streaming: bool,
    reader: Reader,
    pub observation: Observation,
    pub first_content_ns: Option<u64>,
    pub failures: Vec<ParseFailure>,
    /// The body of an error response (status >= 400), up to the error-body limit.
    pub error_body: Option<Vec<u8>>,
    closed: Option<bool>,
    /// The frame limit the stream reader was built with (0: no stream reader).
    max_frame_bytes: usize,
}

impl ResponseTracker {
    /// A tracker for a response to a request in `wire` (`None`: not a recognised provider API;
    /// only the status and error body are kept).
    pub fn new(wire: Option<Wire>) -> Self {
        Self {
            wire,
            status: 0,
            streaming: false,
            reader: Reader::None,
            observation: Observation::default(),
            first_content_ns: None,
            failures: Vec::new(),
            error_body: None,
            closed: None,
            max_frame_bytes: 0,
        }
    }

    /// Whether this tracker, fed the same headers and bytes, reads exactly what `other` reads,
    /// so one of them can be fed and read for both (the bundle's error normalization and
    /// accounting): both read a successful stream of the same wire with the same frame limit.
    /// Never for a buffered body, whose limits differ between the two (error normalization does
    /// not read success bodies at all).
    pub fn reads_like(&self, other: &ResponseTracker) -> bool {
        let stream = |t: &ResponseTracker| {
            matches!(t.reader, Reader::Sse(_) | Reader::EventStream(_) | Reader::JsonArray(_)) && t.status < 400
        };
        stream(self)
            && stream(other)
            && self.wire == other.wire
            && self.status == other.status
            && std::mem::discriminant(&self.reader) == std::mem::discriminant(&other.reader)
            && self.max_frame_bytes == other.max_frame_bytes
            && self.closed.is_none()
            && other.closed.is_none()
    }

    pub fn wire(&self) -> Option<Wire> {
        self.wire
    }

    /// Whether body bytes are still wanted (the adapter skips the host call otherwise).
    pub fn wants_body(&self) -> bool {
        self.closed.is_none() && !matches!(self.reader, Reader::None)
    }

    /// Chooses the framer from the response headers. `stream_requested`: the request asked for
    /// a stream (Gemini streams are `application/json` without `alt=sse`).
    pub fn on_headers<H: Host>(&mut self, host: &mut H, stream_requested: bool, limits: Limits) {
        self.status = host
            .response_header(":status")
            .and_then(|s| std::str::from_utf8(&s).ok().and_then(|s| s.parse().ok()))
            .unwrap_or(0);
        let content_type = host.response_header("content-type").unwrap_or_default().to_ascii_lowercase();
        let encoding = host.response_header("content-encoding").unwrap_or_default().to_ascii_lowercase();
        let sse = content_type.starts_with(b"text/event-stream");
        let event_stream = content_type.starts_with(b"application/vnd.amazon.eventstream");
        let error = self.status >= 400;
        self.streaming = sse || event_stream || (self.wire == Some(Wire::Gemini) && stream_requested && !error);
        if !encoding.is_empty() && encoding != b"identity" {
            self.failures.push(ParseFailure::Compressed);
            return;
        }
        let max_frame = limits.max_frame_bytes;
        self.max_frame_bytes = max_frame;
        self.reader = match self.wire {
            _ if error => Reader::Json { body: Vec::new(), over_limit: false, limit: limits.max_error_body_bytes },
            None => Reader::None,
            Some(_) if sse => Reader::Sse(SseParser::new(max_frame)),
            Some(_) if event_stream => Reader::EventStream(EventStreamDecoder::new(max_frame)),
            // Gemini streamGenerateContent without `alt=sse`: one JSON array, element by element.
            Some(_) if self.streaming => Reader::JsonArray(JsonArraySplitter::new(max_frame)),
            Some(_) if limits.max_body_bytes == 0 => Reader::None,
            Some(_) => Reader::Json { body: Vec::new(), over_limit: false, limit: limits.max_body_bytes },
        };
    }

    /// New response body bytes (only the new chunk).
    pub fn on_body(&mut self, chunk: &[u8], now_ns: u64) {
        let obs = &mut self.observation;
        let mut content_seen = false;
        let wire = self.wire.unwrap_or(Wire::OpenAiChat);
        match &mut self.reader {
            Reader::None => {}
            Reader::Json { body, over_limit, limit } => {
                if !*over_limit {
                    if body.len() + chunk.len() > *limit {
                        *over_limit = true;
                        *body = Vec::new();
                    } else {
                        body.extend_from_slice(chunk);
                    }
                }
            }
            Reader::Sse(parser) => parser.push(chunk, &mut |event| {
                content_seen |= obs.on_stream_document(wire, event.data) == Frame::Content;
            }),
            Reader::JsonArray(splitter) => splitter.push(chunk, &mut |element| {
                content_seen |= obs.on_stream_document(wire, element) == Frame::Content;
            }),
            Reader::EventStream(decoder) => {
                // A decoding error is kept by the decoder and reported at the end.
                let _ = decoder.push(chunk, &mut |message| {
                    let frame = obs.on_bedrock_message(
                        message.message_type(),
                        message.event_type().or(message.exception_type()),
                        message.payload(),
                    );
                    content_seen |= frame == Frame::Content;
                });
            }
        }
        if content_seen && self.first_content_ns.is_none() {
            self.first_content_ns = Some(now_ns);
        }
    }

    /// Ends the framer and reads a buffered body, once; false when a stream ended mid-frame or
    /// its framing failed.
    pub fn close(&mut self) -> bool {
        if let Some(clean) = self.closed {
            return clean;
        }
        let wire = self.wire;
        let error = self.status >= 400;
        let (clean, framing_failed) = match std::mem::replace(&mut self.reader, Reader::None) {
            Reader::None => (true, false),
            Reader::Json { body, over_limit, .. } => {
                if error {
                    self.error_body = Some(body);
                } else if over_limit {
                    self.failures.push(ParseFailure::ResponseOverLimit);
                } else if let (Some(wire), false) = (wire, body.is_empty()) {
                    self.observation.on_body(wire, &body);
                }
                (true, false)
            }
            Reader::Sse(mut parser) => (parser.finish().is_clean(), parser.oversized_events() > 0),
            Reader::JsonArray(mut splitter) => {
                let ending = splitter.finish();
                (ending.is_clean(), splitter.oversized_values() > 0 || ending == Ending::Malformed)
            }
            Reader::EventStream(mut decoder) => {
                let failed = decoder.failure().is_some() || decoder.oversized_messages() > 0;
                (decoder.finish().is_clean(), failed)
            }
        };
        if framing_failed {
            self.failures.push(ParseFailure::Framing);
        }
        if self.observation.parse_failures > 0 {
            self.failures.push(ParseFailure::ResponseJson);
        }
        self.closed = Some(clean);
        clean
    }

    /// How the exchange ended. Call after [`ResponseTracker::close`].
    pub fn outcome<H: Host>(&self, host: &H, end: End) -> Outcome {
        if self.observation.in_band_error {
            return Outcome::InBandError;
        }
        if end == End::Aborted && self.streaming && self.observation.terminated {
            // The provider's terminator arrived; a client that hangs up right after `[DONE]`,
            // before the last empty chunk, still got the whole stream.
            return Outcome::Completed;
        }
        if end == End::Aborted {
            // Envoy says who went away first: `downstream_remote_disconnect`, or an upstream
            // reset such as `upstream_reset_after_response_started{remote_reset}`.
            let details = host.property(&["response", "code_details"]).unwrap_or_default();
            let downstream = details.windows(10).any(|w| w == b"downstream");
            return if downstream { Outcome::ClientCancelled } else { Outcome::UpstreamCut };
        }
        if !self.streaming || self.status >= 400 {
            return Outcome::Completed;
        }
        // A stream that is not read (an API the pack does not recognise, or a compressed body)
        // shows no terminator: only a reset, handled above, says that it was cut.
        let unread = self.wire.is_none() || self.failures.contains(&ParseFailure::Compressed);
        let terminated = match self.wire {
            _ if unread => true,
            // Gemini streams have no terminator: a clean end after a finish reason is complete.
            Some(Wire::Gemini) => self.closed == Some(true) && self.observation.finish_raw.is_some(),
            _ => self.observation.terminated,
        };
        if terminated {
            Outcome::Completed
        } else {
            Outcome::UpstreamCut
        }
    }
}

// Hand-written so that no body, prompt or provider message can reach a log through `{:?}`.
impl std::fmt::Debug for ResponseTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseTracker")
            .field("wire", &self.wire)
            .field("status", &self.status)
            .field("streaming", &self.streaming)
            .field("error_body_bytes", &self.error_body.as_ref().map(Vec::len))
            .field("failures", &self.failures)
            .finish_non_exhaustive()
    }
}
