//! Splitting a stream of JSON values into complete top-level values, without parsing them.
//!
//! - [`JsonArraySplitter`]: one JSON array whose elements arrive over time, as Gemini's
//!   `streamGenerateContent` sends it without `alt=sse`: `[{...}\n,\r\n{...}\n]`. Each element's
//!   bytes are handed out as soon as the element closes.
//! - [`NdjsonSplitter`]: newline-delimited JSON (NDJSON / JSON Lines), one value per line, as
//!   Ollama streams. Lines end in LF, optionally preceded by CR; blank lines are ignored.
//!
//! The array splitter tracks just enough of the JSON grammar (RFC 8259) to find element
//! boundaries: nesting depth of `{}`/`[]`, and whether it is inside a string, where brackets,
//! braces and commas are text and `\"` does not end the string (but `\\"` does). It does not
//! validate the elements (a consumer parses each one with a real JSON parser); it does check the
//! punctuation between them, and stops at the first byte that cannot be there
//! ([`Ending::Malformed`]). All the structural bytes are ASCII, which never occurs inside a
//! multi-byte UTF-8 character, so scanning bytes never misreads a split character.
//!
//! Memory is bounded by `max_value_bytes`: a value (an element, or an NDJSON line) longer than
//! that is skipped to its end without being buffered and counted in `oversized_values`.

use super::Ending;

/// Default for the splitters' `new`: 1 MiB.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1 << 20;

/// JSON's insignificant whitespace (RFC 8259, section 2).
fn is_json_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Where the array splitter is in the array's grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArrayState {
    /// Before the opening `[`.
    BeforeArray,
    /// After `[`: a value or `]`.
    FirstValueOrEnd,
    /// After `,`: a value.
    NextValue,
    /// Inside an element.
    InValue,
    /// After an element: `,` or `]`.
    AfterValue,
    /// After the closing `]`: only whitespace may follow.
    Closed,
    /// A byte that cannot be there was met; nothing more is read.
    Malformed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueKind {
    /// An object or array: ends when depth returns to 0.
    Container,
    /// A string: ends at its closing quote.
    String,
    /// A number, `true`, `false` or `null`: ends before the first byte that cannot continue it.
    Scalar,
}

/// What a byte does to the element being scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    More,
    /// The element ends with this byte.
    EndsWith,
    /// The element ended just before this byte, which belongs to what follows.
    EndedBefore,
}

/// The scanning state of one element.
#[derive(Debug, Clone, Copy)]
struct ValueScan {
    kind: ValueKind,
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// The element went over the limit: scan to its end, keep nothing.
    discarding: bool,
}

impl ValueScan {
    /// The scan of an element whose first byte is `b`; `None` if no JSON value starts so.
    fn start(b: u8) -> Option<Self> {
        let (kind, depth, in_string) = match b {
            b'{' | b'[' => (ValueKind::Container, 1, false),
            b'"' => (ValueKind::String, 0, true),
            b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => (ValueKind::Scalar, 0, false),
            _ => return None,
        };
        Some(Self { kind, depth, in_string, escaped: false, discarding: false })
    }

    fn step(&mut self, b: u8) -> Step {
        if self.in_string {
            if self.escaped {
                self.escaped = false;
            } else if b == b'\\' {
                self.escaped = true;
            } else if b == b'"' {
                self.in_string = false;
                if self.kind == ValueKind::String {
                    return Step::EndsWith;
                }
            }
            return Step::More;
        }
        match self.kind {
            ValueKind::Container => match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth = self.depth.saturating_add(1),
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        return Step::EndsWith;
                    }
                }
                _ => {}
            },
            // Number and literal bytes; anything else (whitespace, `,`, `]`) ends the scalar.
            ValueKind::Scalar if !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')) => {
                return Step::EndedBefore;
            }
            ValueKind::Scalar | ValueKind::String => {}
        }
        Step::More
    }
}

/// Splits one streamed JSON array into its elements.
#[derive(Debug)]
pub struct JsonArraySplitter {
    max_value_bytes: usize,
    state: ArrayState,
    scan: ValueScan,
    /// The current element when it spans chunks (elements inside one chunk are never copied).
    buf: Vec<u8>,
    values: u64,
    oversized_values: u64,
}

impl Default for JsonArraySplitter {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_VALUE_BYTES)
    }
}

impl JsonArraySplitter {
    /// A splitter that skips elements longer than `max_value_bytes`.
    pub fn new(max_value_bytes: usize) -> Self {
        Self {
            max_value_bytes,
            state: ArrayState::BeforeArray,
            scan: ValueScan {
                kind: ValueKind::Container,
                depth: 0,
                in_string: false,
                escaped: false,
                discarding: false,
            },
            buf: Vec::new(),
            values: 0,
            oversized_values: 0,
        }
    }

    /// Elements handed out so far.
    pub fn values(&self) -> u64 {
        self.values
    }

    /// Elements skipped because they went over the size limit.
    pub fn oversized_values(&self) -> u64 {
        self.oversized_values
    }

    /// Bytes currently held for an element split across chunks; never more than the limit.
    pub fn buffered_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Feeds the next chunk; every element it completes goes to `on_value`, as the element's
    /// bytes without surrounding whitespace or commas.
    pub fn push(&mut self, chunk: &[u8], on_value: &mut impl FnMut(&[u8])) {
        // Where the current element's bytes start in this chunk: an element carried over from
        // the previous chunk goes on from byte 0.
        let mut start = 0;
        let mut pos = 0;
        while let Some(&b) = chunk.get(pos) {
            match self.state {
                ArrayState::BeforeArray | ArrayState::Closed if is_json_whitespace(b) => pos += 1,
                ArrayState::BeforeArray if b == b'[' => {
                    self.state = ArrayState::FirstValueOrEnd;
                    pos += 1;
                }
                ArrayState::FirstValueOrEnd | ArrayState::NextValue | ArrayState::AfterValue
                    if is_json_whitespace(b) =>
                {
                    pos += 1;
                }
                ArrayState::FirstValueOrEnd | ArrayState::AfterValue if b == b']' => {
                    self.state = ArrayState::Closed;
                    pos += 1;
                }
                ArrayState::AfterValue if b == b',' => {
                    self.state = ArrayState::NextValue;
                    pos += 1;
                }
                ArrayState::FirstValueOrEnd | ArrayState::NextValue => match ValueScan::start(b) {
                    Some(scan) => {
                        self.scan = scan;
                        self.state = ArrayState::InValue;
                        start = pos;
                        pos += 1;
                    }
                    None => self.state = ArrayState::Malformed,
                },
                ArrayState::InValue => match self.scan.step(b) {
                    Step::More => pos += 1,
                    Step::EndsWith => {
                        pos += 1;
                        self.complete(chunk.get(start..pos).unwrap_or_default(), on_value);
                    }
                    // `pos` stays: the byte is read again in `AfterValue`.
                    Step::EndedBefore => self.complete(chunk.get(start..pos).unwrap_or_default(), on_value),
                },
                ArrayState::Malformed => return,
                ArrayState::BeforeArray | ArrayState::AfterValue | ArrayState::Closed => {
                    self.state = ArrayState::Malformed;
                }
            }
        }
        if self.state == ArrayState::InValue {
            self.hold(chunk.get(start..).unwrap_or_default());
        }
    }

    /// Ends the stream: [`Ending::Clean`] only if the array was closed (an empty body never
    /// opened one and is [`Ending::Truncated`]). A partial element is dropped. The splitter is
    /// then ready for a new stream; the counters are kept.
    pub fn finish(&mut self) -> Ending {
        let ending = match self.state {
            ArrayState::Closed => Ending::Clean,
            ArrayState::Malformed => Ending::Malformed,
            _ => Ending::Truncated,
        };
        self.state = ArrayState::BeforeArray;
        self.buf.clear();
        ending
    }

    /// The element ends with `tail` (the whole element if nothing was held).
    fn complete(&mut self, tail: &[u8], on_value: &mut impl FnMut(&[u8])) {
        self.state = ArrayState::AfterValue;
        if self.scan.discarding {
            return;
        }
        if self.buf.len().saturating_add(tail.len()) > self.max_value_bytes {
            self.oversized_values = self.oversized_values.saturating_add(1);
            self.buf.clear();
            return;
        }
        if self.buf.is_empty() {
            on_value(tail);
        } else {
            self.buf.extend_from_slice(tail);
            on_value(&self.buf);
            self.buf.clear();
        }
        self.values = self.values.saturating_add(1);
    }

    /// Keeps the start of an element whose end is in a later chunk, within the limit.
    fn hold(&mut self, part: &[u8]) {
        if self.scan.discarding {
            return;
        }
        if self.buf.len().saturating_add(part.len()) > self.max_value_bytes {
            self.oversized_values = self.oversized_values.saturating_add(1);
            self.scan.discarding = true;
            self.buf.clear();
        } else {
            self.buf.extend_from_slice(part);
        }
    }
}

/// Splits newline-delimited JSON into lines, one value each.
#[derive(Debug)]
pub struct NdjsonSplitter {
    max_value_bytes: usize,
    /// The current line when it spans chunks (lines inside one chunk are never copied).
    line: Vec<u8>,
    /// The current line went over the limit: skip to its LF.
    discarding: bool,
    values: u64,
    oversized_values: u64,
}

impl Default for NdjsonSplitter {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_VALUE_BYTES)
    }
}

impl NdjsonSplitter {
    /// A splitter that skips lines longer than `max_value_bytes` (counting the line's bytes
    /// before its LF, whitespace and CR included).
    pub fn new(max_value_bytes: usize) -> Self {
        Self { max_value_bytes, line: Vec::new(), discarding: false, values: 0, oversized_values: 0 }
    }

    /// Values handed out so far.
    pub fn values(&self) -> u64 {
        self.values
    }

    /// Lines skipped because they went over the size limit.
    pub fn oversized_values(&self) -> u64 {
        self.oversized_values
    }

    /// Bytes currently held for a line split across chunks; never more than the limit.
    pub fn buffered_bytes(&self) -> usize {
        self.line.len()
    }

    /// Feeds the next chunk; every non-blank line it completes goes to `on_value`, trimmed of
    /// surrounding whitespace (so a CRLF's CR is not part of the value).
    pub fn push(&mut self, chunk: &[u8], on_value: &mut impl FnMut(&[u8])) {
        let mut input = chunk;
        while let Some(pos) = memchr::memchr(b'\n', input) {
            self.end_line(input.get(..pos).unwrap_or_default(), on_value);
            input = input.get(pos + 1..).unwrap_or_default();
        }
        self.hold(input);
    }

    /// Ends the stream. JSON Lines lets a producer omit the last newline, so a non-blank
    /// unterminated last line is still handed to `on_value` (whether it is a whole value is for
    /// the consumer's JSON parser to say), but the stream is reported [`Ending::Truncated`]: it
    /// did not end on a line boundary, and a cut stream looks exactly like that. The splitter
    /// is then ready for a new stream; the counters are kept.
    pub fn finish(&mut self, on_value: &mut impl FnMut(&[u8])) -> Ending {
        let ending = if self.discarding {
            Ending::Truncated
        } else {
            let value = self.line.trim_ascii();
            if value.is_empty() {
                Ending::Clean
            } else {
                on_value(value);
                self.values = self.values.saturating_add(1);
                Ending::Truncated
            }
        };
        self.line.clear();
        self.discarding = false;
        ending
    }

    fn end_line(&mut self, tail: &[u8], on_value: &mut impl FnMut(&[u8])) {
        if self.discarding {
            self.discarding = false;
            return;
        }
        if self.line.len().saturating_add(tail.len()) > self.max_value_bytes {
            self.oversized_values = self.oversized_values.saturating_add(1);
            self.line.clear();
            return;
        }
        let line = if self.line.is_empty() {
            tail
        } else {
            self.line.extend_from_slice(tail);
            &self.line
        };
        let value = line.trim_ascii();
        if !value.is_empty() {
            on_value(value);
            self.values = self.values.saturating_add(1);
        }
        self.line.clear();
    }

    fn hold(&mut self, part: &[u8]) {
        if self.discarding || part.is_empty() {
            return;
        }
        if self.line.len().saturating_add(part.len()) > self.max_value_bytes {
            self.oversized_values = self.oversized_values.saturating_add(1);
            self.discarding = true;
            self.line.clear();
        } else {
            self.line.extend_from_slice(part);
        }
    }
}
