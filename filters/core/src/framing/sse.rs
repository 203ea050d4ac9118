//! Incremental Server-Sent Events parser.
//!
//! Follows the WHATWG HTML "event stream interpretation" algorithm
//! (<https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation>),
//! fed with bytes in arbitrary chunks:
//!
//! - lines end in LF, CRLF or a lone CR, and a CRLF may straddle two chunks;
//! - `field:value`, with one (only one) space after the colon stripped; a line without a colon
//!   is a field with an empty value; lines starting with `:` are comments;
//! - `data` lines are joined with LF; `event` sets the event type; `id` sets the last event id,
//!   which persists across events; `retry` and unknown fields are ignored;
//! - a blank line dispatches the event, unless it had no `data` line at all;
//! - one leading UTF-8 byte order mark is skipped;
//! - at the end of the stream an unfinished event is discarded, not dispatched.
//!
//! The spec decodes the stream as UTF-8 before splitting lines. Parsing bytes instead gives the
//! same lines: in UTF-8 the bytes CR, LF and `:` never occur inside a multi-byte character, so a
//! split on them never cuts a character. Data therefore stays bytes, and a character split
//! across chunks is reassembled before anyone decodes it.
//!
//! Memory is bounded by [`SseParser::new`]'s `max_event_bytes`, which counts the pending line
//! plus the event's pending data and event type. An event that grows past it is discarded up to
//! the next blank line and counted in [`SseParser::oversized_events`]. The limit is applied to
//! the same byte counts whatever the chunking, so the outcome does not depend on it either.

use super::Ending;

/// Default for [`SseParser::new`]: 1 MiB, far above any provider's chunk.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;

/// The UTF-8 encoding of U+FEFF, which the spec skips once at the start of the stream.
const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// One dispatched event, borrowed from the parser (or from the chunk) for the callback's
/// duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// The `event` field as sent; empty when the event had none (see [`SseEvent::event_type`]).
    pub event: &'a [u8],
    /// The `data` lines joined with LF, without a trailing LF.
    pub data: &'a [u8],
    /// The last `id` seen in the stream so far (the spec's "last event ID buffer", which is not
    /// reset between events); empty if none.
    pub last_event_id: &'a [u8],
}

impl<'a> SseEvent<'a> {
    /// The event type as the spec dispatches it: `message` when no `event` field was given.
    pub fn event_type(&self) -> &'a [u8] {
        if self.event.is_empty() {
            b"message"
        } else {
            self.event
        }
    }

    /// The data as UTF-8, if it is valid UTF-8 (it is a complete event, so no character is cut).
    pub fn data_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.data).ok()
    }
}

/// What the parser does with the bytes of the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Collect the line and interpret it when it ends.
    Collect,
    /// The line is a comment: drop its bytes without buffering them, however long it is.
    SkipComment,
    /// The event went over the size limit: drop everything up to the next blank line.
    DiscardEvent,
}

/// Where the parser is in matching the optional leading byte order mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bom {
    /// At the start of the stream, with this many BOM bytes matched so far.
    Matching(usize),
    /// Past the start of the stream.
    Done,
}

/// The incremental parser. One per response stream.
#[derive(Debug)]
pub struct SseParser {
    max_event_bytes: usize,
    /// The current line when it spans chunks (lines inside one chunk are never copied here).
    line: Vec<u8>,
    data: Vec<u8>,
    event: Vec<u8>,
    last_event_id: Vec<u8>,
    /// Whether the event had a `data` line: a lone `data:` gives empty data but is dispatched.
    has_data: bool,
    /// Whether a field line (or an oversized event) was seen since the last blank line.
    event_pending: bool,
    mode: Mode,
    /// In `DiscardEvent` mode: whether the current line has any byte (a blank line ends it).
    discard_line_has_bytes: bool,
    /// The last byte seen was a CR ending a line: an LF first in the next chunk belongs to it.
    after_cr: bool,
    bom: Bom,
    events: u64,
    oversized_events: u64,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl SseParser {
    /// A parser that discards events larger than `max_event_bytes` (pending line plus pending
    /// data and event type).
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            max_event_bytes,
            line: Vec::new(),
            data: Vec::new(),
            event: Vec::new(),
            last_event_id: Vec::new(),
            has_data: false,
            event_pending: false,
            mode: Mode::Collect,
            discard_line_has_bytes: false,
            after_cr: false,
            bom: Bom::Matching(0),
            events: 0,
            oversized_events: 0,
        }
    }

    /// Events dispatched so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Events discarded because they went over the size limit.
    pub fn oversized_events(&self) -> u64 {
        self.oversized_events
    }

    /// Bytes currently held for the pending event (line, data and event type); never more than
    /// the size limit.
    pub fn buffered_bytes(&self) -> usize {
        self.line.len().saturating_add(self.data.len()).saturating_add(self.event.len())
    }

    /// Feeds the next chunk of the stream; every event it completes goes to `on_event`.
    pub fn push(&mut self, chunk: &[u8], on_event: &mut impl FnMut(SseEvent<'_>)) {
        let rest = self.skip_bom(chunk);
        self.feed(rest, on_event);
    }

    /// Ends the stream. An unfinished event is discarded, as the spec says ("If the file ends in
    /// the middle of an event, before the final empty line, the incomplete event is not
    /// dispatched"), and reported as [`Ending::Truncated`]; a trailing unterminated comment is
    /// not an event and leaves the stream [`Ending::Clean`]. The parser is then ready for a new
    /// stream; the counters are kept.
    pub fn finish(&mut self) -> Ending {
        let bom_prefix_pending = matches!(self.bom, Bom::Matching(n) if n > 0);
        let ending = if self.event_pending || !self.line.is_empty() || bom_prefix_pending {
            Ending::Truncated
        } else {
            Ending::Clean
        };
        self.line.clear();
        self.data.clear();
        self.event.clear();
        self.last_event_id.clear();
        self.has_data = false;
        self.event_pending = false;
        self.mode = Mode::Collect;
        self.discard_line_has_bytes = false;
        self.after_cr = false;
        self.bom = Bom::Matching(0);
        ending
    }

    /// Skips a leading BOM, which may itself be split across chunks. Bytes that looked like the
    /// start of a BOM but were not one are content and are fed as such.
    fn skip_bom<'c>(&mut self, chunk: &'c [u8]) -> &'c [u8] {
        let mut rest = chunk;
        while let Bom::Matching(matched) = self.bom {
            let Some((&byte, tail)) = rest.split_first() else {
                return rest;
            };
            if BOM.get(matched) == Some(&byte) {
                rest = tail;
                self.bom = if matched + 1 == BOM.len() { Bom::Done } else { Bom::Matching(matched + 1) };
            } else {
                self.bom = Bom::Done;
                // Not CR or LF, so they can only be the start of a line.
                self.absorb_partial_line(BOM.get(..matched).unwrap_or_default());
            }
        }
        rest
    }

    fn feed(&mut self, chunk: &[u8], on_event: &mut impl FnMut(SseEvent<'_>)) {
        let mut input = chunk;
        if self.after_cr && !input.is_empty() {
            self.after_cr = false;
            // The CR that ended the previous chunk and this LF are one CRLF line ending.
            if let Some(rest) = input.strip_prefix(b"\n") {
                input = rest;
            }
        }
        while let Some(pos) = memchr::memchr2(b'\n', b'\r', input) {
            let content = input.get(..pos).unwrap_or_default();
            let mut rest = input.get(pos + 1..).unwrap_or_default();
            if input.get(pos) == Some(&b'\r') {
                match rest.strip_prefix(b"\n") {
                    Some(after_lf) => rest = after_lf,
                    None if rest.is_empty() => self.after_cr = true,
                    None => {}
                }
            }
            self.end_line(content, on_event);
            input = rest;
        }
        self.absorb_partial_line(input);
    }

    fn pending_size(&self, line_len: usize) -> usize {
        line_len.saturating_add(self.data.len()).saturating_add(self.event.len())
    }

    /// Takes the start of a line whose end is in a later chunk.
    fn absorb_partial_line(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        match self.mode {
            Mode::Collect => {
                if self.line.is_empty() && bytes.first() == Some(&b':') {
                    self.mode = Mode::SkipComment;
                } else if self.pending_size(self.line.len().saturating_add(bytes.len())) > self.max_event_bytes {
                    self.start_discard(true);
                } else {
                    self.line.extend_from_slice(bytes);
                }
            }
            Mode::SkipComment => {}
            Mode::DiscardEvent => self.discard_line_has_bytes = true,
        }
    }

    /// Handles the end of a line whose last bytes (possibly all of them) are `tail`.
    fn end_line(&mut self, tail: &[u8], on_event: &mut impl FnMut(SseEvent<'_>)) {
        match self.mode {
            Mode::SkipComment => self.mode = Mode::Collect,
            Mode::DiscardEvent => {
                if self.discard_line_has_bytes || !tail.is_empty() {
                    self.discard_line_has_bytes = false;
                } else {
                    // The blank line that ends the oversized event: nothing is dispatched.
                    self.mode = Mode::Collect;
                    self.event_pending = false;
                }
            }
            Mode::Collect if self.line.is_empty() => self.process_line(tail, on_event),
            Mode::Collect => {
                // Check before copying, so that the buffer never grows past the limit.
                if self.pending_size(self.line.len().saturating_add(tail.len())) > self.max_event_bytes {
                    self.line.clear();
                    self.start_discard(false);
                    return;
                }
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(tail);
                self.process_line(&line, on_event);
                line.clear();
                self.line = line;
            }
        }
    }

    /// Interprets one complete line (spec: "process the line").
    fn process_line(&mut self, line: &[u8], on_event: &mut impl FnMut(SseEvent<'_>)) {
        if line.is_empty() {
            self.dispatch(on_event);
            return;
        }
        if line.first() == Some(&b':') {
            return;
        }
        if self.pending_size(line.len()) > self.max_event_bytes {
            self.start_discard(false);
            return;
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = line.get(colon + 1..).unwrap_or_default();
                // Only one space is stripped: "data:  x" has the value " x".
                (line.get(..colon).unwrap_or_default(), value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        self.event_pending = true;
        match name {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => {
                self.event.clear();
                self.event.extend_from_slice(value);
            }
            // The spec ignores an id containing NULL.
            b"id" if !value.contains(&0) => {
                self.last_event_id.clear();
                self.last_event_id.extend_from_slice(value);
            }
            // `retry` sets a reconnection delay, which means nothing to a proxy; unknown fields
            // are ignored by the spec.
            _ => {}
        }
    }

    /// Spec: "dispatch the event" on a blank line.
    fn dispatch(&mut self, on_event: &mut impl FnMut(SseEvent<'_>)) {
        self.event_pending = false;
        if self.has_data {
            on_event(SseEvent { event: &self.event, data: &self.data, last_event_id: &self.last_event_id });
            self.events = self.events.saturating_add(1);
        }
        // An event without data is not dispatched, and its type does not leak into the next.
        self.data.clear();
        self.event.clear();
        self.has_data = false;
    }

    /// Drops the pending event and ignores the rest of it. `mid_line`: the current line goes on.
    fn start_discard(&mut self, mid_line: bool) {
        self.oversized_events = self.oversized_events.saturating_add(1);
        self.line.clear();
        self.data.clear();
        self.event.clear();
        self.has_data = false;
        self.event_pending = true;
        self.mode = Mode::DiscardEvent;
        self.discard_line_has_bytes = mid_line;
    }
}
