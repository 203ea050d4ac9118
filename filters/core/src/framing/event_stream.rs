//! Incremental decoder for AWS `application/vnd.amazon.eventstream`, the binary framing of
//! Bedrock `ConverseStream` (and `InvokeModelWithResponseStream`).
//!
//! A message (AWS "Event Stream Encoding", as implemented by `aws-c-event-stream` and the AWS
//! SDKs' `eventstream` codecs) is, all integers big-endian:
//!
//! ```text
//! [total length u32][headers length u32][prelude CRC32 u32]   <- 12-byte prelude
//! [headers ...][payload ...]
//! [message CRC32 u32]                                         <- CRC of every byte before it
//! ```
//!
//! The prelude CRC covers the first 8 bytes; both are CRC-32 (IEEE), computed with `crc32fast`.
//! A header is `[name length u8][name][type u8][value]`, with the value types 0 bool true,
//! 1 bool false, 2 byte, 3 short, 4 int, 5 long, 6 byte array (u16 length), 7 string (u16
//! length), 8 timestamp (i64 milliseconds), 9 UUID (16 bytes). Bedrock puts `:event-type`
//! (`messageStart`, `contentBlockDelta`, ..., `metadata`), `:message-type` (`event` or
//! `exception`), `:exception-type` and `:content-type` on its messages.
//!
//! Unlike text framings there is no way to resynchronise after a bad byte: lengths come from the
//! bytes themselves. So the first bad CRC, impossible length or malformed header block puts the
//! decoder in a failed state: it stops decoding, keeps the error ([`EventStreamDecoder::failure`])
//! and reports [`Ending::Malformed`]. The prelude is checked as soon as its 12 bytes are in, and
//! the claimed length is compared with the cap before any byte of the body is buffered, so a
//! corrupt or hostile length never makes the decoder wait for, or allocate, gigabytes.
//!
//! A message longer than the cap is the one case that can be passed over: its prelude CRC
//! holds, so its length is the sender's, and the next message starts right after it. Its bytes
//! are skipped as they arrive (never held), counted in
//! [`EventStreamDecoder::oversized_messages`], and decoding goes on with the next message, as
//! the SSE parser skips an oversized event.

use std::fmt;

use super::Ending;

/// Default for [`EventStreamDecoder::new`]: 1 MiB. The format allows up to 16 MiB, but Bedrock
/// stream events are small JSON documents.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1 << 20;

const PRELUDE_LEN: usize = 12;
const CRC_LEN: usize = 4;
/// A prelude and a message CRC with no header and no payload.
const MIN_MESSAGE_LEN: usize = PRELUDE_LEN + CRC_LEN;

/// Why the stream could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventStreamError {
    /// The prelude's CRC does not match its first 8 bytes.
    PreludeCrc { expected: u32, computed: u32 },
    /// The message CRC does not match the message.
    MessageCrc { expected: u32, computed: u32 },
    /// The total length is below the 16 bytes of prelude and message CRC.
    TotalLengthTooSmall { total: u32 },
    /// The headers would not fit in the message.
    HeadersLengthTooLarge { headers: u32, total: u32 },
    /// The total length is above the configured cap.
    TotalLengthOverCap { total: u32, cap: usize },
    /// The header block does not parse into whole headers of known types with valid UTF-8
    /// names and string values.
    MalformedHeaders,
}

impl EventStreamError {
    /// A bounded metric and log label.
    pub fn label(&self) -> &'static str {
        match self {
            EventStreamError::PreludeCrc { .. } => "prelude_crc",
            EventStreamError::MessageCrc { .. } => "message_crc",
            EventStreamError::TotalLengthTooSmall { .. } => "length_too_small",
            EventStreamError::HeadersLengthTooLarge { .. } => "headers_length",
            EventStreamError::TotalLengthOverCap { .. } => "length_over_cap",
            EventStreamError::MalformedHeaders => "malformed_headers",
        }
    }
}

impl fmt::Display for EventStreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventStreamError::PreludeCrc { expected, computed } => {
                write!(f, "prelude CRC mismatch: expected {expected:#010x}, computed {computed:#010x}")
            }
            EventStreamError::MessageCrc { expected, computed } => {
                write!(f, "message CRC mismatch: expected {expected:#010x}, computed {computed:#010x}")
            }
            EventStreamError::TotalLengthTooSmall { total } => {
                write!(f, "total length {total} is below the minimum of {MIN_MESSAGE_LEN}")
            }
            EventStreamError::HeadersLengthTooLarge { headers, total } => {
                write!(f, "headers length {headers} does not fit in a message of {total} bytes")
            }
            EventStreamError::TotalLengthOverCap { total, cap } => {
                write!(f, "total length {total} is over the cap of {cap} bytes")
            }
            EventStreamError::MalformedHeaders => write!(f, "malformed header block"),
        }
    }
}

impl std::error::Error for EventStreamError {}

/// A header value, borrowed from the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderValue<'a> {
    /// Types 0 (true) and 1 (false).
    Bool(bool),
    Byte(i8),
    Short(i16),
    Int(i32),
    Long(i64),
    Bytes(&'a [u8]),
    String(&'a str),
    /// Milliseconds since the Unix epoch.
    Timestamp(i64),
    Uuid([u8; 16]),
}

/// One header of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    pub name: &'a str,
    pub value: HeaderValue<'a>,
}

/// One decoded message, borrowed from the decoder (or from the chunk) for the callback's
/// duration. Both CRCs have been checked and the header block has been validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    headers: &'a [u8],
    payload: &'a [u8],
}

impl<'a> Message<'a> {
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// The same message with another payload, encoded (lengths and both CRCs computed): what
    /// the PII redactor sends when it rewrites a Bedrock stream event.
    pub fn with_payload(&self, payload: &[u8]) -> Vec<u8> {
        let total = PRELUDE_LEN + self.headers.len() + payload.len() + CRC_LEN;
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&u32::try_from(total).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(&u32::try_from(self.headers.len()).unwrap_or(u32::MAX).to_be_bytes());
        let prelude_crc = crc32fast::hash(&out);
        out.extend_from_slice(&prelude_crc.to_be_bytes());
        out.extend_from_slice(self.headers);
        out.extend_from_slice(payload);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// The headers in wire order.
    pub fn headers(&self) -> Headers<'a> {
        Headers { rest: self.headers }
    }

    /// The first header with this name.
    pub fn header(&self, name: &str) -> Option<HeaderValue<'a>> {
        self.headers().find(|h| h.name == name).map(|h| h.value)
    }

    /// The first header with this name, if it is a string.
    pub fn string_header(&self, name: &str) -> Option<&'a str> {
        match self.header(name)? {
            HeaderValue::String(value) => Some(value),
            _ => None,
        }
    }

    /// `:event-type`, for example `contentBlockDelta` or `metadata`.
    pub fn event_type(&self) -> Option<&'a str> {
        self.string_header(":event-type")
    }

    /// `:message-type`: `event`, `exception` or `error`.
    pub fn message_type(&self) -> Option<&'a str> {
        self.string_header(":message-type")
    }

    /// `:exception-type`, for example `modelStreamErrorException`.
    pub fn exception_type(&self) -> Option<&'a str> {
        self.string_header(":exception-type")
    }

    /// `:content-type`, usually `application/json`.
    pub fn content_type(&self) -> Option<&'a str> {
        self.string_header(":content-type")
    }
}

/// Iterator over a validated header block.
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Headers<'a> {
    type Item = Header<'a>;

    fn next(&mut self) -> Option<Header<'a>> {
        // The block was validated when the message was decoded, so this only stops at its end;
        // it would also stop, rather than misread, on a malformed block.
        let (header, rest) = parse_header(self.rest)?;
        self.rest = rest;
        Some(header)
    }
}

/// Splits `n` bytes off the front of `input`.
fn take(input: &[u8], n: usize) -> Option<(&[u8], &[u8])> {
    input.split_at_checked(n)
}

fn take_array<const N: usize>(input: &[u8]) -> Option<([u8; N], &[u8])> {
    let (head, rest) = take(input, N)?;
    Some((<[u8; N]>::try_from(head).ok()?, rest))
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(<[u8; 4]>::try_from(word).ok()?))
}

/// Parses one header off the front of `input`.
fn parse_header(input: &[u8]) -> Option<(Header<'_>, &[u8])> {
    let (&name_len, rest) = input.split_first()?;
    let (name, rest) = take(rest, usize::from(name_len))?;
    let name = std::str::from_utf8(name).ok()?;
    let (&kind, rest) = rest.split_first()?;
    let (value, rest) = match kind {
        0 => (HeaderValue::Bool(true), rest),
        1 => (HeaderValue::Bool(false), rest),
        2 => {
            let (v, rest) = take_array::<1>(rest)?;
            (HeaderValue::Byte(i8::from_be_bytes(v)), rest)
        }
        3 => {
            let (v, rest) = take_array::<2>(rest)?;
            (HeaderValue::Short(i16::from_be_bytes(v)), rest)
        }
        4 => {
            let (v, rest) = take_array::<4>(rest)?;
            (HeaderValue::Int(i32::from_be_bytes(v)), rest)
        }
        5 => {
            let (v, rest) = take_array::<8>(rest)?;
            (HeaderValue::Long(i64::from_be_bytes(v)), rest)
        }
        6 | 7 => {
            let (len, rest) = take_array::<2>(rest)?;
            let (bytes, rest) = take(rest, usize::from(u16::from_be_bytes(len)))?;
            if kind == 6 {
                (HeaderValue::Bytes(bytes), rest)
            } else {
                (HeaderValue::String(std::str::from_utf8(bytes).ok()?), rest)
            }
        }
        8 => {
            let (v, rest) = take_array::<8>(rest)?;
            (HeaderValue::Timestamp(i64::from_be_bytes(v)), rest)
        }
        9 => {
            let (v, rest) = take_array::<16>(rest)?;
            (HeaderValue::Uuid(v), rest)
        }
        _ => return None,
    };
    Some((Header { name, value }, rest))
}

/// Checks a 12-byte prelude and returns the message's total length.
pub(crate) fn check_prelude(prelude: &[u8], cap: usize) -> Result<usize, EventStreamError> {
    let (Some(total), Some(headers), Some(expected)) = (be_u32(prelude, 0), be_u32(prelude, 4), be_u32(prelude, 8))
    else {
        // Callers pass exactly 12 bytes; treat anything else as a corrupt prelude.
        return Err(EventStreamError::TotalLengthTooSmall { total: 0 });
    };
    let computed = crc32fast::hash(prelude.get(..8).unwrap_or_default());
    // The CRC first: if it fails, the lengths are noise and not worth reporting.
    if computed != expected {
        return Err(EventStreamError::PreludeCrc { expected, computed });
    }
    let total_len = usize::try_from(total).map_err(|_| EventStreamError::TotalLengthOverCap { total, cap })?;
    if total_len < MIN_MESSAGE_LEN {
        return Err(EventStreamError::TotalLengthTooSmall { total });
    }
    let headers_len =
        usize::try_from(headers).map_err(|_| EventStreamError::HeadersLengthTooLarge { headers, total })?;
    if headers_len > total_len - MIN_MESSAGE_LEN {
        return Err(EventStreamError::HeadersLengthTooLarge { headers, total });
    }
    if total_len > cap {
        return Err(EventStreamError::TotalLengthOverCap { total, cap });
    }
    Ok(total_len)
}

/// Checks and splits one whole message whose prelude was already checked.
pub(crate) fn decode_message(frame: &[u8]) -> Result<Message<'_>, EventStreamError> {
    let body_len = frame.len().saturating_sub(CRC_LEN);
    let (body, crc) = take(frame, body_len).ok_or(EventStreamError::MalformedHeaders)?;
    let expected = be_u32(crc, 0).ok_or(EventStreamError::MalformedHeaders)?;
    let computed = crc32fast::hash(body);
    if computed != expected {
        return Err(EventStreamError::MessageCrc { expected, computed });
    }
    let headers_len =
        be_u32(body, 4).and_then(|n| usize::try_from(n).ok()).ok_or(EventStreamError::MalformedHeaders)?;
    let after_prelude = body.get(PRELUDE_LEN..).ok_or(EventStreamError::MalformedHeaders)?;
    let (headers, payload) = take(after_prelude, headers_len).ok_or(EventStreamError::MalformedHeaders)?;
    let mut rest = headers;
    while !rest.is_empty() {
        let (_, after) = parse_header(rest).ok_or(EventStreamError::MalformedHeaders)?;
        rest = after;
    }
    Ok(Message { headers, payload })
}

/// The incremental decoder. One per response stream.
#[derive(Debug)]
pub struct EventStreamDecoder {
    max_message_bytes: usize,
    /// The current message when it spans chunks (messages inside one chunk are never copied).
    /// Once it holds 12 bytes their prelude has been checked, so it never exceeds the cap.
    buf: Vec<u8>,
    failure: Option<EventStreamError>,
    messages: u64,
    /// Bytes of an oversized message still to pass over.
    skipping: usize,
    oversized: u64,
}

impl Default for EventStreamDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_MESSAGE_BYTES)
    }
}

impl EventStreamDecoder {
    /// A decoder that fails on any message whose total length is above `max_message_bytes`.
    pub fn new(max_message_bytes: usize) -> Self {
        Self { max_message_bytes, buf: Vec::new(), failure: None, messages: 0, skipping: 0, oversized: 0 }
    }

    /// Messages decoded so far.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// Messages over the cap passed over (their bytes never held); decoding went on after each.
    pub fn oversized_messages(&self) -> u64 {
        self.oversized
    }

    /// The error that stopped decoding, if any. A stream fails at most once.
    pub fn failure(&self) -> Option<EventStreamError> {
        self.failure
    }

    /// Bytes currently held for a message split across chunks; never more than the cap.
    pub fn buffered_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Feeds the next chunk; every message it completes goes to `on_message`. On the first
    /// error the decoder fails: that call and every later one return the error and decode
    /// nothing more (messages completed earlier in the same chunk were already delivered).
    pub fn push(&mut self, chunk: &[u8], on_message: &mut impl FnMut(Message<'_>)) -> Result<(), EventStreamError> {
        if let Some(error) = self.failure {
            return Err(error);
        }
        let result = self.decode(chunk, on_message);
        if let Err(error) = result {
            self.failure = Some(error);
            self.buf.clear();
        }
        result
    }

    /// Ends the stream: [`Ending::Malformed`] after a failure, [`Ending::Truncated`] if it
    /// stopped inside a message (an oversized one included). The partial message is dropped; the
    /// failure and counters are kept.
    pub fn finish(&mut self) -> Ending {
        let ending = if self.failure.is_some() {
            Ending::Malformed
        } else if !self.buf.is_empty() || self.skipping > 0 {
            Ending::Truncated
        } else {
            Ending::Clean
        };
        self.buf.clear();
        self.skipping = 0;
        ending
    }

    fn decode(&mut self, chunk: &[u8], on_message: &mut impl FnMut(Message<'_>)) -> Result<(), EventStreamError> {
        let mut input = self.pass_over(chunk);
        if !self.buf.is_empty() {
            input = self.complete_buffered(input, on_message)?;
            if !self.buf.is_empty() {
                return Ok(());
            }
            input = self.pass_over(input);
        }
        // Whole messages inside the chunk are decoded in place.
        while let Some(prelude) = input.get(..PRELUDE_LEN) {
            let total = match check_prelude(prelude, self.max_message_bytes) {
                Ok(total) => total,
                Err(EventStreamError::TotalLengthOverCap { total, cap }) => {
                    self.start_oversized(total, cap, 0)?;
                    input = self.pass_over(input);
                    continue;
                }
                Err(error) => return Err(error),
            };
            let Some((frame, rest)) = take(input, total) else {
                break;
            };
            self.deliver(frame, on_message)?;
            input = rest;
        }
        // Less than one message is left (none while passing over one), and if it has a prelude,
        // that prelude was checked.
        self.buf.extend_from_slice(input);
        Ok(())
    }

    /// An oversized message whose prelude checked out: `held` of its bytes are already consumed;
    /// the rest is passed over as it arrives.
    fn start_oversized(&mut self, total: u32, cap: usize, held: usize) -> Result<(), EventStreamError> {
        let total_len = usize::try_from(total).map_err(|_| EventStreamError::TotalLengthOverCap { total, cap })?;
        self.skipping = total_len.saturating_sub(held);
        self.oversized = self.oversized.saturating_add(1);
        Ok(())
    }

    /// Drops the bytes of the oversized message being passed over; returns what follows it.
    fn pass_over<'c>(&mut self, input: &'c [u8]) -> &'c [u8] {
        if self.skipping == 0 {
            return input;
        }
        let n = self.skipping.min(input.len());
        self.skipping -= n;
        input.get(n..).unwrap_or_default()
    }

    /// Moves bytes from `input` into the buffered message; decodes it once whole. Returns the
    /// input left over.
    fn complete_buffered<'c>(
        &mut self,
        input: &'c [u8],
        on_message: &mut impl FnMut(Message<'_>),
    ) -> Result<&'c [u8], EventStreamError> {
        let mut input = input;
        if self.buf.len() < PRELUDE_LEN {
            let (head, rest) = take(input, PRELUDE_LEN - self.buf.len()).unwrap_or((input, &[]));
            self.buf.extend_from_slice(head);
            input = rest;
            if self.buf.len() < PRELUDE_LEN {
                return Ok(input);
            }
        }
        let total = match check_prelude(self.buf.get(..PRELUDE_LEN).unwrap_or_default(), self.max_message_bytes) {
            Ok(total) => total,
            Err(EventStreamError::TotalLengthOverCap { total, cap }) => {
                self.start_oversized(total, cap, self.buf.len())?;
                self.buf.clear();
                return Ok(input);
            }
            Err(error) => return Err(error),
        };
        let missing = total.saturating_sub(self.buf.len());
        // Bounded by the cap: the length was checked just above.
        self.buf.reserve(missing);
        let (head, rest) = take(input, missing).unwrap_or((input, &[]));
        self.buf.extend_from_slice(head);
        if self.buf.len() < total {
            return Ok(rest);
        }
        let frame = std::mem::take(&mut self.buf);
        let delivered = self.deliver(&frame, on_message);
        self.buf = frame;
        self.buf.clear();
        delivered.map(|()| rest)
    }

    fn deliver(&mut self, frame: &[u8], on_message: &mut impl FnMut(Message<'_>)) -> Result<(), EventStreamError> {
        let message = decode_message(frame)?;
        on_message(message);
        self.messages = self.messages.saturating_add(1);
        Ok(())
    }
}
