//! Stream framing shared by every filter: SSE, AWS event-stream, JSON-array and NDJSON.
//!
//! Response bodies reach a filter in arbitrary pieces: a body callback may end in the middle of a
//! line, of a CRLF, of a multi-byte UTF-8 character or of a binary frame (design.md, "Bodies and
//! streams"). Every framer here therefore follows the same contract:
//!
//! - bytes in (`push`), complete units out through a callback; partial units are carried over to
//!   the next `push`, so the result never depends on where the chunks were split;
//! - nothing is decoded as UTF-8 here: units stay bytes and the consumer decodes complete ones;
//! - memory is bounded by a configurable maximum unit size: a unit over it is skipped and
//!   counted, never buffered whole, and never a panic;
//! - a complete unit that lies inside one chunk is handed out as a slice of that chunk, without
//!   a copy; only units split across chunks are assembled in a buffer that is reused;
//! - `finish` reports how the stream ended ([`Ending`]) and dispatches nothing partial (NDJSON is
//!   the one exception, see [`json_stream::NdjsonSplitter::finish`]).
//!
//! Modules:
//! - [`sse`]: Server-Sent Events (OpenAI, Anthropic, Gemini with `alt=sse`, vLLM, ...).
//! - [`event_stream`]: AWS `application/vnd.amazon.eventstream` (Bedrock ConverseStream).
//! - [`json_stream`]: a JSON array of values (Gemini without `alt=sse`) and NDJSON (Ollama).

pub mod event_stream;
pub mod json_stream;
pub mod sse;

/// How a stream ended, as reported by a framer's `finish`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ending {
    /// The stream ended on a unit boundary: nothing was left pending.
    Clean,
    /// The stream ended inside a unit (a partial event, frame, line or an unclosed array): it was
    /// cut, or the producer never finished it.
    Truncated,
    /// The framer met bytes it cannot frame (a bad CRC, an impossible length, a syntax error
    /// between JSON values) and stopped decoding there.
    Malformed,
}

impl Ending {
    /// A bounded metric and log label.
    pub fn label(self) -> &'static str {
        match self {
            Ending::Clean => "clean",
            Ending::Truncated => "truncated",
            Ending::Malformed => "malformed",
        }
    }

    pub fn is_clean(self) -> bool {
        self == Ending::Clean
    }
}
