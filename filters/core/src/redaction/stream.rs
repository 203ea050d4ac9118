//! Redaction of a streaming model response (SSE) whose PII arrives spread over many events.
//!
//! Providers stream a few characters per event (OpenAI chat chunks, Anthropic `text_delta`s,
//! Responses `output_text.delta`s, Gemini `alt=sse` chunks), so an email or a card number is
//! never whole in one event. [`StreamRedactor`] splits the byte stream into raw SSE events, pulls
//! the model text out of each event's `data:` JSON as *segments* on *channels* (one channel per
//! choice, content block, output item or candidate), and holds events back while the end of a
//! channel's text could still grow into a value. The editor (the PII detector) sees the held
//! text of a channel as one string, plus a little already-released text before it as context;
//! an event is released only when all of its text lies before its channel's release point, and
//! the edits found in released text are written back into the events that carried it (the
//! replacement into the segment where the value starts, the rest of the value removed from the
//! later segments).
//!
//! What is kept:
//! - order: one FIFO of held events for the whole stream; events never reorder, so a channel that
//!   holds back also holds back the events of other channels behind it;
//! - framing: an event that needs no change is forwarded byte for byte; a rewritten event keeps
//!   every non-`data` line (`event:`, `id:`, comments) and the line endings it came with, and its
//!   data becomes one `data:` line of compact JSON (every other field in place, `preserve_order`);
//! - bounds: the hold-back per channel is at most `window_bytes` of text (beyond that release is
//!   forced), the FIFO at most `max_held_events` events and `max_held_bytes` raw bytes (beyond
//!   that events are forced out from the front, edits found so far still applied), and a single
//!   event larger than `max_event_bytes` is forwarded unchanged without being buffered whole;
//! - determinism: decisions are made per complete event, never per chunk, so the output is the
//!   same whatever the chunking.
//!
//! Events that carry a complete copy of text already streamed (Responses `*.done` events,
//! `response.completed`; Anthropic `message_start`) are edited directly when they arrive; their
//! edits are reported only when the item was not streamed as deltas, so each value is counted
//! once.
//!
//! Reading an event: an OpenAI chat chunk into borrowed typed structs, any other event without a
//! complete copy into a [`Borrowed`] document (strings borrowed, no map), both walked as the
//! general path walks a `serde_json::Value`; the `Value` is built only for an event with a copy
//! to edit, or one the cheaper reads decline (a repeated key, an unexpected type), and to write
//! a rewritten event.
//!
//! Bedrock ConverseStream is a binary `application/vnd.amazon.eventstream` (see
//! `framing::event_stream`): for `BedrockConverse` an event is one frame, its data the frame's JSON
//! payload (`contentBlockDelta` text and `toolUse.input`), and a rewritten frame is encoded again
//! with its headers, new lengths and both CRCs. A frame longer than `max_event_bytes` whose
//! prelude CRC holds passes unchanged as it arrives (counted as an oversized event, like an
//! oversized SSE event), and the frames after it are read again: its length is the sender's. A
//! prelude that cannot be read (a bad CRC, an impossible length) leaves no way to find the next
//! frame: what is held goes out, then the rest of the stream passes unchanged (counted once).
//! Gemini's default `streamGenerateContent` (a JSON array, no `alt=sse`) is not SSE: its bytes
//! have no `data:` lines and pass unchanged.
//!
//! Open values: an edit the editor marks with a closing marker ([`Edit::closes_with`]: a private
//! key whose END line has not arrived) runs to the end of the held text. It is held like any
//! value (a release never cuts it) until the caps force a release; then its replacement goes out
//! where it starts, and from then on the channel is *inside* it: everything that arrives is
//! removed, whatever the window, until the closing marker has passed (looked for in the context
//! too, where a forced cut may have left its first bytes) or the channel ends. If the caps cut
//! even the value's first line (a BEGIN line over a few events under tiny caps), the editor still
//! sees it whole in the context, and masking starts from the first byte still held; the same when
//! the rest of the key, END line included, then arrives at once (a closed value with a closing
//! marker). When the release that passes an open value's closing marker also releases the start
//! of another open value (a second key opened right after the first), the channel goes on inside
//! the second one.
//!
//! An event cut by the end of the stream (no blank line) is forwarded unchanged: the SSE spec
//! discards an unfinished event ("If the file ends in the middle of an event ... the incomplete
//! event is not dispatched"), so a compliant client never sees its text.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde_json::Value;

use super::secrets;
use crate::content::{self, Borrowed, Node, Part};
use crate::framing::event_stream;
use crate::token_accounting::provider::Wire;

/// One edit of a text given to the [`Editor`]: bytes `start..end` (on character boundaries).
/// `replacement: None` only counts the value (detection without redaction).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Edit {
    pub start: usize,
    pub end: usize,
    pub replacement: Option<String>,
    /// The caller's code for what was found (reported back in [`Pushed::committed`]).
    pub kind: u16,
    /// The closing marker of a multi-line secret (a private key block's END line). Such a value
    /// is masked from the first byte still held even when a forced release already sent its
    /// first bytes (a BEGIN line cut by the caps). It is *open* when its text does not end with
    /// the marker (the END line has not arrived): the edit runs to the end of the text, and
    /// once its start is released everything after it on its channel is part of it, masked the
    /// same way, until this closing marker has passed or the stream ends, whatever the window
    /// (module docs, "Open values").
    pub closes_with: Option<String>,
}

/// Finds the edits of one text: sorted, non-overlapping, on character boundaries (edits that are
/// not are dropped).
pub type Editor<'a> = dyn FnMut(&str) -> Vec<Edit> + 'a;

/// Bounds of a [`StreamRedactor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// Most text bytes a channel holds back while its end could still grow into a value.
    pub window_bytes: usize,
    /// Most events held at once.
    pub max_held_events: usize,
    /// Most raw event bytes held at once.
    pub max_held_bytes: usize,
    /// A larger event is forwarded unchanged (and not buffered whole).
    pub max_event_bytes: usize,
    /// Bytes of released text kept for [`StreamRedactor::captured`]; 0 keeps none.
    pub capture_bytes: usize,
    /// Bytes of original (unedited) text kept for [`StreamRedactor::originals`], in total; 0
    /// keeps none. Set only when rules are on trial (shadow), which are counted on it.
    pub original_bytes: usize,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            window_bytes: 256,
            max_held_events: 256,
            max_held_bytes: 64 << 10,
            max_event_bytes: crate::framing::sse::DEFAULT_MAX_EVENT_BYTES,
            capture_bytes: 0,
            original_bytes: 0,
        }
    }
}

/// What one [`StreamRedactor::push`] or [`StreamRedactor::finish`] gives back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pushed {
    /// Bytes to forward now.
    pub bytes: Vec<u8>,
    /// The kinds of the edits committed by this call: each edit is reported exactly once, when
    /// the text holding its start is released (or when a complete copy is edited).
    pub committed: Vec<u16>,
}

/// Counters of a stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Complete events seen.
    pub events: u64,
    /// Events forwarded with changed bytes.
    pub events_rewritten: u64,
    /// Releases forced by `window_bytes` or the held-event caps (a value could have been cut).
    pub window_forced: u64,
    /// Events whose data is not JSON (other than `[DONE]`), forwarded unchanged.
    pub unparsed_events: u64,
    /// Events larger than `max_event_bytes`, forwarded unchanged.
    pub oversized_events: u64,
    /// Values found starting in text already released (seen as context), left as they are.
    pub straddled: u64,
}

/// Released text kept before a channel's held text, so the detector sees the characters around
/// a value (word boundaries, "part of a longer number").
const CONTEXT_BYTES: usize = 64;
/// Channels with nothing held are dropped beyond this many (their context is lost, nothing else).
const MAX_IDLE_CHANNELS: usize = 64;
/// Items remembered as streamed (for counting complete copies once).
const MAX_STREAMED_ITEMS: usize = 1024;
const BOM: &[u8] = b"\xEF\xBB\xBF";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Text,
    Refusal,
    Tool,
}

/// Where a segment's text belongs: `a` is the choice, content block, output item or candidate
/// index; `b` the tool call or content part within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct ChannelKey {
    kind: Kind,
    a: u64,
    b: u64,
}

const fn key(kind: Kind, a: u64, b: u64) -> ChannelKey {
    ChannelKey { kind, a, b }
}

/// What an event says has ended.
#[derive(Debug, Clone, Copy)]
enum Finish {
    Key(ChannelKey),
    /// Every channel whose `a` is this index.
    Index(u64),
    All,
}

/// An edit in a channel's absolute text offsets.
#[derive(Debug, Clone)]
struct AbsEdit {
    start: usize,
    end: usize,
    replacement: Option<String>,
    kind: u16,
    /// An open value's closing marker ([`Edit::closes_with`]).
    closes_with: Option<String>,
    /// Reported when its start is released; false for the rest of an open value (reported
    /// once, with its start).
    commit: bool,
}

/// A channel inside an open value whose start has been released: every later byte of the
/// channel is part of it until its closing marker has passed.
#[derive(Debug, Clone)]
struct OpenValue {
    closer: String,
    /// The rest is removed (the value's replacement went out with its start); false when the
    /// value is only counted.
    mask: bool,
    kind: u16,
    /// Where the closing marker ends (absolute), once it has arrived.
    closed_at: Option<usize>,
}

#[derive(Debug, Default)]
struct Channel {
    /// The last released (original) text, at most [`CONTEXT_BYTES`].
    context: String,
    /// The original text of this channel's segments in held events.
    held: String,
    /// Absolute offset of `held`'s first byte in the channel's text.
    base: usize,
    finished: bool,
    /// Edits of `held` (absolute offsets), recomputed when the channel changes.
    edits: Option<Vec<AbsEdit>>,
    /// Start of the last straddling value counted, so that it is counted once.
    straddle_at: Option<usize>,
    open: Option<OpenValue>,
}

impl Channel {
    fn end(&self) -> usize {
        self.base.saturating_add(self.held.len())
    }
}

#[derive(Debug)]
struct Seg {
    key: ChannelKey,
    start: usize,
    end: usize,
}

#[derive(Debug)]
struct HeldEvent {
    raw: Vec<u8>,
    segs: Vec<Seg>,
    /// The first event of the stream (a leading BOM is not part of its first line).
    first: bool,
    rewritten: bool,
}

/// Splits bytes into raw events: an event ends with a blank line; lines end in LF, CRLF or CR.
#[derive(Debug, Default)]
struct Splitter {
    buf: Vec<u8>,
    /// Bytes of `buf` already scanned.
    scan: usize,
    /// The line being scanned has bytes (so a line ending does not end the event).
    line_has_bytes: bool,
    /// The current event is too big: forward it as it is scanned, up to its end.
    passthrough: bool,
    /// Bedrock: bytes of a frame too big to hold still to forward unchanged (its prelude checked
    /// out, so its length is trusted and the next frame starts after it).
    frame_passthrough: usize,
}

impl Splitter {
    /// The length of the first complete event in `buf`, if any. A CR that is the last byte is
    /// only a line ending once the next byte is known (an LF after it is part of it), unless the
    /// stream has ended.
    fn next_event_end(&mut self, eof: bool) -> Option<usize> {
        loop {
            let rest = self.buf.get(self.scan..)?;
            let Some(pos) = memchr::memchr2(b'\n', b'\r', rest) else {
                if !rest.is_empty() {
                    self.line_has_bytes = true;
                }
                self.scan = self.buf.len();
                return None;
            };
            if pos > 0 {
                self.line_has_bytes = true;
            }
            let at = self.scan.saturating_add(pos);
            let ending = match (self.buf.get(at), self.buf.get(at.saturating_add(1))) {
                (Some(b'\r'), Some(b'\n')) => 2,
                (Some(b'\r'), None) if !eof => {
                    self.scan = at;
                    return None;
                }
                _ => 1,
            };
            self.scan = at.saturating_add(ending);
            if !self.line_has_bytes {
                let end = self.scan;
                self.scan = 0;
                return Some(end);
            }
            self.line_has_bytes = false;
        }
    }
}

/// Rewrites a streaming response so that the values the editor finds never reach the client,
/// even when spread over many events. One per response stream.
#[derive(Debug)]
pub struct StreamRedactor {
    wire: Wire,
    limits: StreamLimits,
    split: Splitter,
    held: VecDeque<HeldEvent>,
    held_bytes: usize,
    channels: BTreeMap<ChannelKey, Channel>,
    /// Items (Responses output index, Anthropic block index) whose text came as deltas.
    streamed: BTreeSet<u64>,
    stats: StreamStats,
    capture: String,
    capture_key: Option<ChannelKey>,
    capture_full: bool,
    /// The original text released so far, per channel, and the complete copies edited whole
    /// that were not streamed as deltas, up to `original_bytes` in total.
    originals: BTreeMap<ChannelKey, String>,
    original_copies: Vec<String>,
    original_len: usize,
    /// The binary framing could not be read: everything from here on passes unchanged.
    broken: bool,
}

impl StreamRedactor {
    pub fn new(wire: Wire, limits: StreamLimits) -> Self {
        StreamRedactor {
            wire,
            limits,
            split: Splitter::default(),
            held: VecDeque::new(),
            held_bytes: 0,
            channels: BTreeMap::new(),
            streamed: BTreeSet::new(),
            stats: StreamStats::default(),
            capture: String::new(),
            capture_key: None,
            capture_full: false,
            originals: BTreeMap::new(),
            original_copies: Vec::new(),
            original_len: 0,
            broken: false,
        }
    }

    /// The original text of the stream as released (each channel's text whole, and the complete
    /// copies that were not streamed), up to `original_bytes`: what rules on trial are counted on,
    /// once, at the end of the stream.
    pub fn originals(&self) -> impl Iterator<Item = &str> {
        self.originals.values().chain(self.original_copies.iter()).map(String::as_str)
    }

    /// Room left for original text; `text` is kept only whole (a cut value would be half counted).
    fn original_room(&mut self, text: &str) -> bool {
        let room = self.limits.original_bytes.saturating_sub(self.original_len);
        if text.len() > room {
            // Full: nothing more is kept, so no channel's text has a gap joining its two sides.
            self.original_len = self.limits.original_bytes;
            return false;
        }
        self.original_len = self.original_len.saturating_add(text.len());
        true
    }

    /// Bedrock's binary frames instead of SSE events.
    fn binary(&self) -> bool {
        self.wire == Wire::BedrockConverse
    }

    pub fn stats(&self) -> StreamStats {
        self.stats
    }

    /// The edited text of the first text channel released so far, up to `capture_bytes`.
    pub fn captured(&self) -> &str {
        &self.capture
    }

    /// Whether [`captured`](Self::captured) stopped at `capture_bytes` (its end is a cut).
    pub fn capture_truncated(&self) -> bool {
        self.capture_full
    }

    /// Events held right now.
    pub fn held_events(&self) -> usize {
        self.held.len()
    }

    /// Raw bytes held right now (held events plus the unfinished event being read).
    pub fn held_bytes(&self) -> usize {
        self.held_bytes.saturating_add(self.split.buf.len())
    }

    /// Feeds the next chunk of the stream.
    pub fn push(&mut self, chunk: &[u8], editor: &mut Editor<'_>) -> Pushed {
        let mut out = Pushed::default();
        if self.broken {
            out.bytes.extend_from_slice(chunk);
            return out;
        }
        self.split.buf.extend_from_slice(chunk);
        self.drain_events(false, editor, &mut out);
        out
    }

    /// Ends the stream: every held event is released (all channels count as finished) and any
    /// unfinished trailing event is forwarded unchanged.
    pub fn finish(&mut self, editor: &mut Editor<'_>) -> Pushed {
        let mut out = Pushed::default();
        self.drain_events(true, editor, &mut out);
        for channel in self.channels.values_mut() {
            channel.finished = true;
        }
        let all = self.held.len();
        self.release(all, editor, &mut out);
        out.bytes.append(&mut self.split.buf);
        self.split = Splitter::default();
        out
    }

    fn drain_events(&mut self, eof: bool, editor: &mut Editor<'_>, out: &mut Pushed) {
        if self.binary() {
            self.drain_frames(editor, out);
            return;
        }
        loop {
            let end = self.split.next_event_end(eof);
            if self.split.passthrough {
                let upto = end.unwrap_or(self.split.scan);
                out.bytes.extend(self.split.buf.drain(..upto.min(self.split.buf.len())));
                if end.is_none() {
                    self.split.scan = 0;
                    return;
                }
                self.split.passthrough = false;
                continue;
            }
            match end {
                Some(end) => {
                    let raw: Vec<u8> = self.split.buf.drain(..end.min(self.split.buf.len())).collect();
                    self.on_event(raw, editor, out);
                }
                None if self.split.buf.len() > self.limits.max_event_bytes => {
                    // Too big to hold: what is held goes first (order), then this event streams
                    // through as it is read.
                    self.oversized(editor, out);
                    self.split.passthrough = true;
                }
                None => return,
            }
        }
    }

    /// Bedrock: one event per complete frame, its length read from its checked prelude.
    fn drain_frames(&mut self, editor: &mut Editor<'_>, out: &mut Pushed) {
        loop {
            if self.broken {
                out.bytes.append(&mut self.split.buf);
                return;
            }
            if self.split.frame_passthrough > 0 {
                let n = self.split.frame_passthrough.min(self.split.buf.len());
                out.bytes.extend(self.split.buf.drain(..n));
                self.split.frame_passthrough -= n;
                if self.split.frame_passthrough > 0 {
                    return;
                }
                continue;
            }
            let Some(prelude) = self.split.buf.get(..12) else { return };
            match event_stream::check_prelude(prelude, self.limits.max_event_bytes) {
                Ok(total) if self.split.buf.len() >= total => {
                    let raw: Vec<u8> = self.split.buf.drain(..total).collect();
                    self.on_event(raw, editor, out);
                }
                Ok(_) => return,
                Err(event_stream::EventStreamError::TotalLengthOverCap { total, .. })
                    if usize::try_from(total).is_ok() =>
                {
                    // Too big to hold, but its prelude CRC holds, so its length is the sender's:
                    // what is held goes first (order), then this frame as it arrives, unchanged
                    // and counted, then the frames after it are read again (as an oversized SSE
                    // event is).
                    self.oversized(editor, out);
                    self.split.frame_passthrough = usize::try_from(total).unwrap_or_default();
                }
                Err(_) => {
                    // No way to find the next frame: what is held goes first (order), then the
                    // rest as it comes.
                    self.oversized(editor, out);
                    self.broken = true;
                }
            }
        }
    }

    fn oversized(&mut self, editor: &mut Editor<'_>, out: &mut Pushed) {
        self.stats.events = self.stats.events.saturating_add(1);
        self.stats.oversized_events = self.stats.oversized_events.saturating_add(1);
        let all = self.held.len();
        self.release(all, editor, out);
    }

    fn on_event(&mut self, raw: Vec<u8>, editor: &mut Editor<'_>, out: &mut Pushed) {
        if raw.len() > self.limits.max_event_bytes {
            self.oversized(editor, out);
            out.bytes.extend_from_slice(&raw);
            return;
        }
        let first = self.stats.events == 0;
        self.stats.events = self.stats.events.saturating_add(1);
        let mut event = HeldEvent { raw, segs: Vec::new(), first, rewritten: false };
        let mut texts: Vec<(ChannelKey, String)> = Vec::new();
        let mut finishes: Vec<Finish> = Vec::new();
        match event_data(self.wire, &event.raw, first) {
            None => {}
            Some(data) if data.trim_ascii() == b"[DONE]" => finishes.push(Finish::All),
            Some(data) if self.wire == Wire::OpenAiChat && chat_chunk_text(&data, &mut texts, &mut finishes) => {}
            Some(data) if borrowed_text(self.wire, &data, &mut texts, &mut finishes) => {}
            Some(data) => match serde_json::from_slice::<Value>(&data) {
                Err(_) => self.stats.unparsed_events = self.stats.unparsed_events.saturating_add(1),
                Ok(mut value) => {
                    if self.edit_copies(&mut value, editor, out) {
                        event.raw = rebuild(self.wire, &event.raw, first, &value);
                        event.rewritten = true;
                        self.stats.events_rewritten = self.stats.events_rewritten.saturating_add(1);
                    }
                    segments(self.wire, &mut value, &mut |k, s| texts.push((k, s.clone())));
                    finishes = finishes_of(self.wire, &value);
                }
            },
        }
        let tracks_items = matches!(self.wire, Wire::OpenAiResponses | Wire::AnthropicMessages);
        for (k, text) in texts {
            let channel = self.channels.entry(k).or_default();
            // Text after a finish means it was not the end after all.
            channel.finished = false;
            let start = channel.end();
            channel.held.push_str(&text);
            channel.edits = None;
            event.segs.push(Seg { key: k, start, end: channel.end() });
            if tracks_items && self.streamed.len() < MAX_STREAMED_ITEMS {
                self.streamed.insert(k.a);
            }
        }
        for finish in finishes {
            for (k, channel) in self.channels.iter_mut() {
                let hit = match finish {
                    Finish::Key(f) => f == *k,
                    Finish::Index(a) => k.a == a,
                    Finish::All => true,
                };
                if hit {
                    channel.finished = true;
                }
            }
        }
        self.held_bytes = self.held_bytes.saturating_add(event.raw.len());
        self.held.push_back(event);
        let n_min = self.forced_by_caps();
        self.release(n_min, editor, out);
    }

    /// Edits the complete copies of text in an event. Returns whether anything changed.
    fn edit_copies(&mut self, value: &mut Value, editor: &mut Editor<'_>, out: &mut Pushed) -> bool {
        let streamed = &self.streamed;
        let mut changed = false;
        let keep = self.limits.original_bytes > 0;
        let mut kept = Vec::new();
        copies(self.wire, value, &mut |item, s| {
            let counted = item.is_none_or(|i| !streamed.contains(&i));
            if counted && keep {
                kept.push(s.clone());
            }
            changed |= edit_whole(s, editor, counted.then_some(&mut out.committed));
        });
        for text in kept {
            if self.original_room(&text) {
                self.original_copies.push(text);
            }
        }
        changed
    }

    /// How many events must leave the front for the FIFO to be within its caps.
    fn forced_by_caps(&self) -> usize {
        let (mut count, mut bytes, mut n) = (self.held.len(), self.held_bytes, 0usize);
        for event in &self.held {
            if count <= self.limits.max_held_events && bytes <= self.limits.max_held_bytes {
                break;
            }
            count = count.saturating_sub(1);
            bytes = bytes.saturating_sub(event.raw.len());
            n = n.saturating_add(1);
        }
        n
    }

    /// Releases what can go: at least the first `n_min` events.
    fn release(&mut self, n_min: usize, editor: &mut Editor<'_>, out: &mut Pushed) {
        if self.held.is_empty() {
            return;
        }
        let window = self.limits.window_bytes;
        let mut limits: BTreeMap<ChannelKey, usize> = BTreeMap::new();
        let mut window_hit = false;
        for (k, channel) in self.channels.iter_mut() {
            ensure_edits(channel, editor, &mut self.stats);
            let release_to = if channel.finished {
                channel.held.len()
            } else {
                let tail = tail_len(&channel.held);
                let to = if tail > window {
                    window_hit = true;
                    floor_boundary(&channel.held, channel.held.len().saturating_sub(window))
                } else {
                    channel.held.len().saturating_sub(tail)
                };
                // A BEGIN line still arriving is never cut, whatever the window: once cut, the
                // key after it could not be recognised as one.
                secrets::pending_begin(&channel.held).map_or(to, |at| to.min(at))
            };
            limits.insert(*k, channel.base.saturating_add(release_to));
        }

        // Natural release: as far as the limits allow, then back off before any value that the
        // release point would cut (its events stay held until the value is whole).
        let mut n = self.natural(&limits);
        loop {
            let mut moved = false;
            for (k, r) in self.aligned(n) {
                if let Some(e) = self.straddling(k, r, false) {
                    if let Some(limit) = limits.get_mut(&k) {
                        if e.0 < *limit {
                            *limit = e.0;
                            moved = true;
                        }
                    }
                }
            }
            if !moved {
                break;
            }
            n = self.natural(&limits);
        }

        // Forced release: the caps win, and a value the cut would split goes out whole with it.
        let forced = n < n_min;
        if forced {
            n = n_min.min(self.held.len());
            loop {
                let mut need = n;
                for (k, r) in self.aligned(n) {
                    if let Some((_, end)) = self.straddling(k, r, true) {
                        need = need.max(self.event_covering(k, end, n));
                    }
                }
                if need <= n {
                    break;
                }
                n = need;
            }
        }
        if n == 0 {
            return;
        }
        if forced || window_hit {
            self.stats.window_forced = self.stats.window_forced.saturating_add(1);
        }
        let aligned = self.aligned(n);
        for _ in 0..n {
            let Some(event) = self.held.pop_front() else { break };
            self.held_bytes = self.held_bytes.saturating_sub(event.raw.len());
            let bytes = self.emit(event, out);
            out.bytes.extend_from_slice(&bytes);
        }
        for (k, r) in aligned {
            if let Some(channel) = self.channels.get_mut(&k) {
                // An open value whose start goes out: the rest of the channel belongs to it. It
                // is looked for before the cut (the edits are of the text still held), and taken
                // also when the open value the channel was inside closes in this release: a second
                // key may open in the same released text, after the first one's closing marker.
                let opened = channel.edits.as_deref().unwrap_or_default().iter().find_map(|e| {
                    let closer = e.closes_with.as_ref().filter(|_| e.start < r)?;
                    Some(OpenValue {
                        closer: closer.clone(),
                        mask: e.replacement.is_some(),
                        kind: e.kind,
                        closed_at: None,
                    })
                });
                let cut = floor_boundary(&channel.held, r.saturating_sub(channel.base));
                let mut context = std::mem::take(&mut channel.context);
                context.extend(channel.held.drain(..cut));
                let from = ceil_boundary(&context, context.len().saturating_sub(CONTEXT_BYTES));
                channel.context = context.get(from..).unwrap_or_default().to_string();
                channel.base = channel.base.saturating_add(cut);
                if cut > 0 {
                    channel.edits = None;
                }
                let base = channel.base;
                if channel.open.as_ref().is_some_and(|o| o.closed_at.is_some_and(|at| base >= at)) {
                    channel.open = None;
                }
                if channel.open.is_none() {
                    channel.open = opened;
                }
            }
        }
        self.channels.retain(|_, c| !c.held.is_empty() || !c.finished);
        if self.channels.len() > MAX_IDLE_CHANNELS {
            // A channel inside an open value keeps its state (its next text is masked), up to
            // a bound on channels a stream may open; beyond it that state goes too, counted.
            self.channels.retain(|_, c| !c.held.is_empty() || c.open.is_some());
            if self.channels.len() > MAX_IDLE_CHANNELS.saturating_mul(4) {
                let before = self.channels.len();
                self.channels.retain(|_, c| !c.held.is_empty());
                if self.channels.len() < before {
                    self.stats.window_forced = self.stats.window_forced.saturating_add(1);
                }
            }
        }
    }

    /// The longest prefix of held events whose segments all end at or before their channel's
    /// limit.
    fn natural(&self, limits: &BTreeMap<ChannelKey, usize>) -> usize {
        self.held
            .iter()
            .take_while(|event| event.segs.iter().all(|seg| limits.get(&seg.key).is_none_or(|&limit| seg.end <= limit)))
            .count()
    }

    /// Each channel's release point when the first `n` events are released: the start of its
    /// first segment still held, or the end of its text.
    fn aligned(&self, n: usize) -> Vec<(ChannelKey, usize)> {
        let mut points: BTreeMap<ChannelKey, usize> = self.channels.iter().map(|(k, c)| (*k, c.end())).collect();
        for event in self.held.iter().skip(n).rev() {
            for seg in event.segs.iter().rev() {
                points.insert(seg.key, seg.start);
            }
        }
        points.into_iter().collect()
    }

    /// An edit of channel `k` that starts before `r` and ends after it, and that a release at
    /// `r` must not cut. The rest of an open value may be cut anywhere (it is only removed), and
    /// so may an open value itself when the caps force a release (`forced`): it runs to the end
    /// of what is held, and the channel goes on masking after the cut.
    fn straddling(&self, k: ChannelKey, r: usize, forced: bool) -> Option<(usize, usize)> {
        let edits = self.channels.get(&k)?.edits.as_ref()?;
        edits
            .iter()
            .filter(|e| e.commit && !(forced && e.closes_with.is_some()))
            .find(|e| e.start < r && r < e.end)
            .map(|e| (e.start, e.end))
    }

    /// How many events must be released for channel `k`'s text up to `end` to be released.
    fn event_covering(&self, k: ChannelKey, end: usize, from: usize) -> usize {
        for (i, event) in self.held.iter().enumerate().skip(from) {
            if event.segs.iter().any(|seg| seg.key == k && seg.end >= end) {
                return i.saturating_add(1);
            }
        }
        self.held.len()
    }

    /// The bytes of a released event, with the edits of its segments applied.
    fn emit(&mut self, event: HeldEvent, out: &mut Pushed) -> Vec<u8> {
        let mut new_texts: Vec<Option<String>> = Vec::with_capacity(event.segs.len());
        for seg in &event.segs {
            let Some(channel) = self.channels.get(&seg.key) else {
                new_texts.push(None);
                continue;
            };
            let from = seg.start.saturating_sub(channel.base);
            let to = seg.end.saturating_sub(channel.base);
            let original = channel.held.get(from..to).unwrap_or_default();
            let edits = channel.edits.as_deref().unwrap_or_default();
            let edited = apply_segment(original, seg.start, seg.end, edits, &mut out.committed);
            let kept = (self.limits.original_bytes > 0).then(|| original.to_string());
            if seg.key.kind == Kind::Text {
                let text = edited.as_deref().unwrap_or(original).to_string();
                self.capture_text(seg.key, &text);
            }
            if let Some(original) = kept {
                if self.original_room(&original) {
                    self.originals.entry(seg.key).or_default().push_str(&original);
                }
            }
            new_texts.push(edited);
        }
        if new_texts.iter().all(Option::is_none) {
            return event.raw;
        }
        match rewrite_segments(self.wire, &event.raw, event.first, &new_texts) {
            Some(bytes) => {
                if !event.rewritten {
                    self.stats.events_rewritten = self.stats.events_rewritten.saturating_add(1);
                }
                bytes
            }
            None => event.raw,
        }
    }

    fn capture_text(&mut self, k: ChannelKey, text: &str) {
        if self.capture_full || self.limits.capture_bytes == 0 || text.is_empty() {
            return;
        }
        if *self.capture_key.get_or_insert(k) != k {
            return;
        }
        let room = self.limits.capture_bytes.saturating_sub(self.capture.len());
        if text.len() > room {
            self.capture.push_str(text.get(..floor_boundary(text, room)).unwrap_or_default());
            self.capture_full = true;
        } else {
            self.capture.push_str(text);
        }
    }
}

/// Runs the editor over a channel's context and held text, if the channel changed since.
fn ensure_edits(channel: &mut Channel, editor: &mut Editor<'_>, stats: &mut StreamStats) {
    if channel.edits.is_some() {
        return;
    }
    if channel.held.is_empty() {
        channel.edits = Some(Vec::new());
        return;
    }
    let mut text = String::with_capacity(channel.context.len().saturating_add(channel.held.len()));
    text.push_str(&channel.context);
    text.push_str(&channel.held);
    let offset = channel.context.len();
    let origin = channel.base.saturating_sub(offset);
    if let Some(open) = channel.open.as_mut() {
        channel.edits = Some(open_edits(open, &text, offset, origin, editor));
        return;
    }
    let mut edits = Vec::new();
    for e in sanitize(editor(&text), &text) {
        if e.start < offset && e.end > offset && e.closes_with.is_some() {
            // A private key whose first bytes went out before it could be recognised (caps
            // forced a release inside its BEGIN line; the context still holds them): masked
            // from the first byte still held, its replacement there, whether its END line has
            // arrived (the rest of the key came at once) or not (open).
            let mut edit = abs_edit(e, &text, origin);
            edit.start = channel.base;
            edits.push(edit);
            continue;
        }
        if e.start < offset {
            // A value that began in text already forwarded: too late to replace its start.
            let at = origin.saturating_add(e.start);
            if e.end > offset && channel.straddle_at != Some(at) {
                channel.straddle_at = Some(at);
                stats.straddled = stats.straddled.saturating_add(1);
            }
            continue;
        }
        edits.push(abs_edit(e, &text, origin));
    }
    channel.edits = Some(edits);
}

/// The edits of a channel inside an open value: its held text up to the end of the closing
/// marker (or all of it) is the rest of the value; the editor sees what follows the marker.
/// `text` is the channel's context and held text; the marker may have begun in the context (a
/// forced cut inside it), so it is looked for there too, ending in the held text.
fn open_edits(open: &mut OpenValue, text: &str, offset: usize, origin: usize, editor: &mut Editor<'_>) -> Vec<AbsEdit> {
    let closer = open.closer.as_bytes();
    let close_end = memchr::memmem::find_iter(text.as_bytes(), closer)
        .map(|at| at.saturating_add(closer.len()))
        .find(|&end| end > offset);
    let value_end = close_end.unwrap_or(text.len());
    open.closed_at = close_end.map(|end| origin.saturating_add(end));
    let mut edits = Vec::new();
    if value_end > offset {
        edits.push(AbsEdit {
            start: origin.saturating_add(offset),
            end: origin.saturating_add(value_end),
            replacement: open.mask.then(String::new),
            kind: open.kind,
            closes_with: None,
            commit: false,
        });
    }
    // The marker is ASCII, so its end is a character boundary.
    let rest = text.get(value_end..).unwrap_or_default();
    if !rest.is_empty() {
        for e in sanitize(editor(rest), rest) {
            edits.push(abs_edit(e, rest, origin.saturating_add(value_end)));
        }
    }
    edits
}

/// An edit of `text` (whose first byte is at `origin` in the channel) in absolute offsets. Its
/// closing marker is kept only while the value is open: a value whose text ends with its marker
/// is closed, an ordinary edit from then on.
fn abs_edit(e: Edit, text: &str, origin: usize) -> AbsEdit {
    let value = text.get(e.start..e.end).unwrap_or_default();
    let closes_with = e.closes_with.filter(|closer| !value.ends_with(closer.as_str()));
    AbsEdit {
        start: origin.saturating_add(e.start),
        end: origin.saturating_add(e.end),
        replacement: e.replacement,
        kind: e.kind,
        closes_with,
        commit: true,
    }
}

/// Keeps the edits that are in range, on character boundaries and non-overlapping, sorted.
fn sanitize(mut edits: Vec<Edit>, text: &str) -> Vec<Edit> {
    edits.sort_by_key(|e| (e.start, e.end));
    let mut last_end = 0;
    edits.retain(|e| {
        let ok = e.start < e.end
            && e.start >= last_end
            && e.end <= text.len()
            && text.is_char_boundary(e.start)
            && text.is_char_boundary(e.end);
        if ok {
            last_end = e.end;
        }
        ok
    });
    edits
}

/// Applies the editor to a complete string. `committed`: where to report the edits (None when
/// the same text was already reported as streamed deltas).
fn edit_whole(text: &mut String, editor: &mut Editor<'_>, mut committed: Option<&mut Vec<u16>>) -> bool {
    let edits = sanitize(editor(text), text);
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let mut changed = false;
    for e in &edits {
        if let Some(c) = committed.as_deref_mut() {
            c.push(e.kind);
        }
        if let Some(replacement) = &e.replacement {
            out.push_str(text.get(last..e.start).unwrap_or_default());
            out.push_str(replacement);
            last = e.end;
            changed = true;
        }
    }
    if changed {
        out.push_str(text.get(last..).unwrap_or_default());
        *text = out;
    }
    changed
}

/// The text of a released segment `start..end` (absolute) with the edits that touch it: a
/// replacement goes where its value starts; the parts of a value in later segments are removed.
/// None when nothing changes. Every edit starting here is reported.
fn apply_segment(
    original: &str,
    start: usize,
    end: usize,
    edits: &[AbsEdit],
    committed: &mut Vec<u16>,
) -> Option<String> {
    let mut out = String::new();
    let mut pos = start;
    let mut changed = false;
    for e in edits.iter().filter(|e| e.start < end && e.end > start) {
        let starts_here = e.start >= start;
        if starts_here && e.commit {
            committed.push(e.kind);
        }
        let Some(replacement) = &e.replacement else { continue };
        let from = e.start.max(start);
        out.push_str(original.get(pos.saturating_sub(start)..from.saturating_sub(start)).unwrap_or_default());
        if starts_here {
            out.push_str(replacement);
        }
        pos = e.end.min(end);
        changed = true;
    }
    if !changed {
        return None;
    }
    out.push_str(original.get(pos.saturating_sub(start)..).unwrap_or_default());
    Some(out)
}

/// How many bytes at the end of `text` must stay held because they could still grow into (or
/// be the start of) a value: the unfinished last word, and before it every word that could be
/// part of a multi-word value (card and IBAN groups, phone parts, `Bearer <token>`, PEM
/// headers), as long as only ASCII whitespace separates them.
///
/// Words are runs of ASCII graphic characters: every built-in pattern is ASCII (the detector
/// runs with Unicode off), so a non-ASCII character ends a value, and text in scripts without
/// spaces is not held back as one endless word.
pub(crate) fn tail_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    let is_word = |b: u8| b.is_ascii_graphic();
    let mut start = bytes.len();
    while start > 0 && bytes.get(start - 1).is_some_and(|&b| is_word(b)) {
        start -= 1;
    }
    loop {
        let mut sep = start;
        while sep > 0 && bytes.get(sep - 1).is_some_and(|b| b.is_ascii_whitespace()) {
            sep -= 1;
        }
        if sep == start {
            break;
        }
        let mut word = sep;
        while word > 0 && bytes.get(word - 1).is_some_and(|&b| is_word(b)) {
            word -= 1;
        }
        if word == sep || !chainable(bytes.get(word..sep).unwrap_or_default()) {
            break;
        }
        start = word;
    }
    bytes.len().saturating_sub(start)
}

/// Whether a complete word could be the first part of a value that continues after whitespace.
fn chainable(word: &[u8]) -> bool {
    const PEM_WORDS: [&[u8]; 8] = [b"RSA", b"EC", b"DSA", b"OPENSSH", b"ENCRYPTED", b"PRIVATE", b"KEY", b"PGP"];
    word.iter().any(u8::is_ascii_digit)
        || word.eq_ignore_ascii_case(b"bearer")
        || word.starts_with(b"+")
        || word.starts_with(b"(")
        || word.starts_with(b"-----")
        || word.ends_with(b"-----")
        || PEM_WORDS.contains(&word)
}

fn floor_boundary(s: &str, mut at: usize) -> usize {
    at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at = at.saturating_sub(1);
    }
    at
}

fn ceil_boundary(s: &str, mut at: usize) -> usize {
    while at < s.len() && !s.is_char_boundary(at) {
        at = at.saturating_add(1);
    }
    at.min(s.len())
}

// ---- SSE event lines ----------------------------------------------------------------------

/// One line of a raw event: `content` is `start..content_end`, the ending `content_end..end`.
#[derive(Debug, Clone, Copy)]
struct Line {
    start: usize,
    content_end: usize,
    end: usize,
}

fn lines(raw: &[u8]) -> Vec<Line> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < raw.len() {
        let rest = raw.get(start..).unwrap_or_default();
        let line = match memchr::memchr2(b'\n', b'\r', rest) {
            Some(pos) => {
                let content_end = start.saturating_add(pos);
                let crlf =
                    raw.get(content_end) == Some(&b'\r') && raw.get(content_end.saturating_add(1)) == Some(&b'\n');
                Line { start, content_end, end: content_end.saturating_add(if crlf { 2 } else { 1 }) }
            }
            None => Line { start, content_end: raw.len(), end: raw.len() },
        };
        out.push(line);
        start = line.end;
    }
    out
}

/// A line's content, without the stream's leading BOM (which the SSE parser skips).
fn line_content(raw: &[u8], line: Line, first: bool) -> &[u8] {
    let c = raw.get(line.start..line.content_end).unwrap_or_default();
    if first && line.start == 0 {
        c.strip_prefix(BOM).unwrap_or(c)
    } else {
        c
    }
}

/// The field value of a `data` line (one leading space stripped, as the spec says), and how
/// many bytes of the line come before it; None for other lines.
fn data_field(c: &[u8]) -> Option<(usize, &[u8])> {
    let rest = c.strip_prefix(b"data")?;
    if rest.is_empty() {
        return Some((c.len(), rest));
    }
    let value = rest.strip_prefix(b":")?;
    match value.strip_prefix(b" ") {
        Some(v) => Some((c.len().saturating_sub(v.len()), v)),
        None => Some((c.len().saturating_sub(value.len()), value)),
    }
}

/// The event's data: an SSE event's data lines joined with LF (None when it has none); a
/// Bedrock frame's payload when it is an event (exceptions are left as they are).
fn event_data(wire: Wire, raw: &[u8], first: bool) -> Option<Vec<u8>> {
    if wire == Wire::BedrockConverse {
        let message = event_stream::decode_message(raw).ok()?;
        return (message.message_type() == Some("event")).then(|| message.payload().to_vec());
    }
    sse_data(raw, first)
}

/// The event with its data replaced by `value` (see [`rebuild_sse`]; a Bedrock frame is encoded
/// again around the new payload).
fn rebuild(wire: Wire, raw: &[u8], first: bool, value: &Value) -> Vec<u8> {
    if wire == Wire::BedrockConverse {
        let json = serde_json::to_vec(value).unwrap_or_default();
        return match event_stream::decode_message(raw) {
            Ok(message) => message.with_payload(&json),
            Err(_) => raw.to_vec(),
        };
    }
    rebuild_sse(raw, first, value)
}

/// The event's data lines joined with LF; None when it has none.
fn sse_data(raw: &[u8], first: bool) -> Option<Vec<u8>> {
    let mut data: Option<Vec<u8>> = None;
    for line in lines(raw) {
        if let Some((_, value)) = data_field(line_content(raw, line, first)) {
            match data.as_mut() {
                Some(d) => {
                    d.push(b'\n');
                    d.extend_from_slice(value);
                }
                None => data = Some(value.to_vec()),
            }
        }
    }
    data
}

/// The event with its data replaced by `value` as one `data:` line where the first one was
/// (same prefix, same line ending); every other line is kept as it was.
fn rebuild_sse(raw: &[u8], first: bool, value: &Value) -> Vec<u8> {
    let json = serde_json::to_vec(value).unwrap_or_default();
    let mut out = Vec::with_capacity(raw.len().saturating_add(json.len()));
    let mut wrote = false;
    for line in lines(raw) {
        let c = line_content(raw, line, first);
        let Some((prefix_len, _)) = data_field(c) else {
            out.extend_from_slice(raw.get(line.start..line.end).unwrap_or_default());
            continue;
        };
        if wrote {
            continue;
        }
        wrote = true;
        // The prefix counted from the raw line start, so a leading BOM is kept.
        let bom = c.len() < line.content_end.saturating_sub(line.start);
        let prefix_end = line.start.saturating_add(prefix_len).saturating_add(if bom { BOM.len() } else { 0 });
        out.extend_from_slice(raw.get(line.start..prefix_end).unwrap_or_default());
        out.extend_from_slice(&json);
        out.extend_from_slice(raw.get(line.content_end..line.end).unwrap_or_default());
    }
    out
}

/// Re-parses a held event and sets the segments that changed.
fn rewrite_segments(wire: Wire, raw: &[u8], first: bool, new_texts: &[Option<String>]) -> Option<Vec<u8>> {
    let data = event_data(wire, raw, first)?;
    let mut value: Value = serde_json::from_slice(&data).ok()?;
    let mut i = 0usize;
    segments(wire, &mut value, &mut |_, s| {
        if let Some(Some(text)) = new_texts.get(i) {
            s.clone_from(text);
        }
        i = i.saturating_add(1);
    });
    (i == new_texts.len()).then(|| rebuild(wire, raw, first, &value))
}

// ---- Where the text is in each provider's stream events ----------------------------------

type SegVisit<'a, T> = dyn FnMut(ChannelKey, &mut T) + 'a;
type CopyVisit<'a, T> = dyn FnMut(Option<u64>, &mut T) + 'a;

fn each_mut<'v, N: Node>(root: &'v mut N, k: &str) -> impl Iterator<Item = &'v mut N> {
    root.get_mut(k).and_then(N::items_mut).into_iter().flatten()
}

fn each<'v, N: Node>(root: &'v N, k: &str) -> impl Iterator<Item = &'v N> {
    root.get(k).and_then(N::items).into_iter().flatten()
}

fn string_at<'v, N: Node>(root: &'v mut N, path: &[&str]) -> Option<&'v mut N::Text> {
    let mut cur = root;
    for k in path {
        cur = cur.get_mut(k)?;
    }
    cur.text_mut()
}

/// `index` when present (OpenAI and Gemini number choices explicitly; with `n > 1` they
/// interleave), else the position.
fn index_of<N: Node>(v: &N, field: &str, position: usize) -> u64 {
    v.get(field).and_then(N::as_u64).unwrap_or(u64::try_from(position).unwrap_or(u64::MAX))
}

fn event_type<N: Node>(v: &N) -> &str {
    v.get("type").and_then(N::as_str).unwrap_or_default()
}

/// Visits the streamed text of one event, always in the same order (a rewrite visits again and
/// matches the strings by position).
fn segments<N: Node>(wire: Wire, root: &mut N, f: &mut SegVisit<'_, N::Text>) {
    match wire {
        Wire::OpenAiChat => {
            for (position, choice) in each_mut(root, "choices").enumerate() {
                let c = index_of(choice, "index", position);
                let Some(delta) = choice.get_mut("delta") else { continue };
                if let Some(s) = string_at(delta, &["content"]) {
                    f(key(Kind::Text, c, 0), s);
                }
                if let Some(s) = string_at(delta, &["refusal"]) {
                    f(key(Kind::Refusal, c, 0), s);
                }
                for (position, call) in each_mut(delta, "tool_calls").enumerate() {
                    let t = index_of(call, "index", position);
                    if let Some(s) = string_at(call, &["function", "arguments"]) {
                        f(key(Kind::Tool, c, t), s);
                    }
                }
                // The deprecated `function_call` delta (older models, compatible servers).
                if let Some(s) = string_at(delta, &["function_call", "arguments"]) {
                    f(key(Kind::Tool, c, u64::MAX), s);
                }
            }
        }
        Wire::AnthropicMessages => {
            let i = index_of(root, "index", 0);
            match event_type(root) {
                "content_block_delta" => {
                    // `thinking_delta`s are signed (see content::visit_response) and left alone.
                    let kind = match root.get("delta").map(event_type) {
                        Some("text_delta") => (Kind::Text, "text"),
                        Some("input_json_delta") => (Kind::Tool, "partial_json"),
                        _ => return,
                    };
                    if let Some(s) = string_at(root, &["delta", kind.1]) {
                        f(key(kind.0, i, 0), s);
                    }
                }
                "content_block_start" => {
                    if let Some(block) = root.get_mut("content_block").filter(|b| event_type(&**b) == "text") {
                        if let Some(s) = string_at(block, &["text"]).filter(|s| !s.is_empty()) {
                            f(key(Kind::Text, i, 0), s);
                        }
                    }
                }
                _ => {}
            }
        }
        Wire::OpenAiResponses => {
            let o = index_of(root, "output_index", 0);
            let c = index_of(root, "content_index", 0);
            let k = match event_type(root) {
                "response.output_text.delta" => key(Kind::Text, o, c),
                "response.refusal.delta" => key(Kind::Refusal, o, c),
                "response.function_call_arguments.delta" | "response.custom_tool_call_input.delta" => {
                    key(Kind::Tool, o, 0)
                }
                _ => return,
            };
            if let Some(s) = string_at(root, &["delta"]) {
                f(k, s);
            }
        }
        Wire::Gemini => {
            for (position, candidate) in each_mut(root, "candidates").enumerate() {
                let c = index_of(candidate, "index", position);
                let Some(content) = candidate.get_mut("content") else { continue };
                for part in each_mut(content, "parts") {
                    if let Some(s) = string_at(part, &["text"]) {
                        f(key(Kind::Text, c, 0), s);
                    }
                }
            }
        }
        // `contentBlockDelta` (the event type is a frame header; the payload's shape says it).
        Wire::BedrockConverse => {
            let i = index_of(root, "contentBlockIndex", 0);
            let Some(delta) = root.get_mut("delta") else { return };
            if let Some(s) = string_at(delta, &["text"]) {
                f(key(Kind::Text, i, 0), s);
            }
            if let Some(s) = string_at(delta, &["toolUse", "input"]) {
                f(key(Kind::Tool, i, 0), s);
            }
        }
    }
}

/// Visits the complete strings of one event, with the item they belong to when the same text
/// may also have come as deltas.
fn copies<N: Node>(wire: Wire, root: &mut N, f: &mut CopyVisit<'_, N::Text>) {
    match wire {
        Wire::OpenAiChat | Wire::BedrockConverse => {}
        Wire::AnthropicMessages => {
            let i = index_of(root, "index", 0);
            match event_type(root) {
                // Normally empty; a relay that replays a finished message puts it all here.
                "message_start" => {
                    if let Some(message) = root.get_mut("message") {
                        content::visit_response(Wire::AnthropicMessages, message, &mut |_, s| f(None, s));
                    }
                }
                // Anthropic sends `input: {}` and streams the JSON; compatible servers may not.
                "content_block_start" => {
                    if let Some(block) = root.get_mut("content_block").filter(|b| event_type(&**b) == "tool_use") {
                        if let Some(input) = block.get_mut("input") {
                            content::all_strings(input, Part::ToolArguments, &mut |_, s| f(Some(i), s));
                        }
                    }
                }
                _ => {}
            }
        }
        Wire::OpenAiResponses => {
            let o = index_of(root, "output_index", 0);
            let field = match event_type(root) {
                "response.output_text.done" => Some("text"),
                "response.refusal.done" => Some("refusal"),
                "response.function_call_arguments.done" => Some("arguments"),
                "response.custom_tool_call_input.done" => Some("input"),
                _ => None,
            };
            if let Some(s) = field.and_then(|field| string_at(root, &[field])) {
                f(Some(o), s);
            }
            if let Some(part) = root.get_mut("part") {
                content::visit_responses_content(part, &mut |_, s| f(Some(o), s));
            }
            if let Some(item) = root.get_mut("item") {
                content::visit_responses_item(item, &mut |_, s| f(Some(o), s));
            }
            // `response.created` / `in_progress` / `completed` / `incomplete` / `failed`.
            if let Some(response) = root.get_mut("response") {
                for (position, item) in each_mut(response, "output").enumerate() {
                    let o = u64::try_from(position).unwrap_or(u64::MAX);
                    content::visit_responses_item(item, &mut |_, s| f(Some(o), s));
                }
            }
        }
        // Gemini sends each function call whole in one chunk.
        Wire::Gemini => {
            for candidate in each_mut(root, "candidates") {
                let Some(content) = candidate.get_mut("content") else { continue };
                for part in each_mut(content, "parts") {
                    if let Some(args) = part.get_mut("functionCall").and_then(|c| c.get_mut("args")) {
                        content::all_strings(args, Part::ToolArguments, &mut |_, s| f(None, s));
                    }
                }
            }
        }
    }
}

/// The text and finishes of an OpenAI chat chunk read into borrowed structs: the same result as
/// [`segments`] and [`finishes_of`] on a parsed `Value` for that wire, without building a map
/// of every field of every event (a third of the redactor's time on chat streams, measured).
/// Chat chunks carry no complete copies to edit. Returns false, having added nothing, when the
/// chunk does not fit the expected types (duplicate keys, a non-string content, a string
/// index...): the caller then takes the general `Value` path, so nothing is decided here that
/// the general path would decide differently.
fn chat_chunk_text(data: &[u8], texts: &mut Vec<(ChannelKey, String)>, finishes: &mut Vec<Finish>) -> bool {
    use serde::Deserialize;
    use std::borrow::Cow;

    #[derive(Deserialize)]
    struct Chunk<'a> {
        #[serde(borrow)]
        choices: Option<Vec<Choice<'a>>>,
    }
    #[derive(Deserialize)]
    struct Choice<'a> {
        index: Option<u64>,
        #[serde(borrow)]
        delta: Option<Delta<'a>>,
        #[serde(borrow)]
        finish_reason: Option<Cow<'a, str>>,
    }
    #[derive(Deserialize)]
    struct Delta<'a> {
        #[serde(borrow)]
        content: Option<Cow<'a, str>>,
        #[serde(borrow)]
        refusal: Option<Cow<'a, str>>,
        #[serde(borrow)]
        tool_calls: Option<Vec<ToolCall<'a>>>,
        #[serde(borrow)]
        function_call: Option<Arguments<'a>>,
    }
    #[derive(Deserialize)]
    struct ToolCall<'a> {
        index: Option<u64>,
        #[serde(borrow)]
        function: Option<Arguments<'a>>,
    }
    #[derive(Deserialize)]
    struct Arguments<'a> {
        #[serde(borrow)]
        arguments: Option<Cow<'a, str>>,
    }

    let Ok(chunk) = serde_json::from_slice::<Chunk<'_>>(data) else { return false };
    for (position, choice) in chunk.choices.unwrap_or_default().into_iter().enumerate() {
        let c = choice.index.unwrap_or(position as u64);
        if let Some(delta) = choice.delta {
            if let Some(s) = delta.content {
                texts.push((key(Kind::Text, c, 0), s.into_owned()));
            }
            if let Some(s) = delta.refusal {
                texts.push((key(Kind::Refusal, c, 0), s.into_owned()));
            }
            for (position, call) in delta.tool_calls.unwrap_or_default().into_iter().enumerate() {
                let t = call.index.unwrap_or(position as u64);
                if let Some(s) = call.function.and_then(|f| f.arguments) {
                    texts.push((key(Kind::Tool, c, t), s.into_owned()));
                }
            }
            if let Some(s) = delta.function_call.and_then(|f| f.arguments) {
                texts.push((key(Kind::Tool, c, u64::MAX), s.into_owned()));
            }
        }
        if choice.finish_reason.is_some() {
            finishes.push(Finish::Index(c));
        }
    }
    true
}

/// The text and finishes of an event that carries no complete copy to edit (every event but
/// Anthropic's `message_start` and a tool block's start with its input, and Responses' `.done`
/// and item events), read as a [`Borrowed`] document: the same walk and the same result as the
/// general path's `Value`, without building one (an index map and a `String` per key and per
/// string, for every event). Returns false, having added nothing, when the event has a copy or
/// the borrowed read declines (not JSON, a repeated key): the caller then takes the general path.
fn borrowed_text(wire: Wire, data: &[u8], texts: &mut Vec<(ChannelKey, String)>, finishes: &mut Vec<Finish>) -> bool {
    let Ok(mut doc) = serde_json::from_slice::<Borrowed<'_>>(data) else { return false };
    let mut has_copy = false;
    copies(wire, &mut doc, &mut |_, _| has_copy = true);
    if has_copy {
        return false;
    }
    segments(wire, &mut doc, &mut |k, s| texts.push((k, s.to_string())));
    *finishes = finishes_of(wire, &doc);
    true
}

/// What an event ends.
fn finishes_of<N: Node>(wire: Wire, root: &N) -> Vec<Finish> {
    let mut out = Vec::new();
    match wire {
        Wire::OpenAiChat => {
            for (position, choice) in each(root, "choices").enumerate() {
                if choice.get("finish_reason").and_then(N::as_str).is_some() {
                    out.push(Finish::Index(index_of(choice, "index", position)));
                }
            }
        }
        Wire::AnthropicMessages => match event_type(root) {
            "content_block_stop" => out.push(Finish::Index(index_of(root, "index", 0))),
            "message_stop" | "error" => out.push(Finish::All),
            "message_delta" if root.get("delta").and_then(|d| d.get("stop_reason")).and_then(N::as_str).is_some() => {
                out.push(Finish::All);
            }
            _ => {}
        },
        Wire::OpenAiResponses => {
            let o = index_of(root, "output_index", 0);
            let c = index_of(root, "content_index", 0);
            match event_type(root) {
                "response.output_text.done" => out.push(Finish::Key(key(Kind::Text, o, c))),
                "response.refusal.done" => out.push(Finish::Key(key(Kind::Refusal, o, c))),
                "response.content_part.done" => {
                    out.push(Finish::Key(key(Kind::Text, o, c)));
                    out.push(Finish::Key(key(Kind::Refusal, o, c)));
                }
                "response.function_call_arguments.done" | "response.custom_tool_call_input.done" => {
                    out.push(Finish::Key(key(Kind::Tool, o, 0)));
                }
                "response.output_item.done" => out.push(Finish::Index(o)),
                "response.completed" | "response.incomplete" | "response.failed" | "error" => {
                    out.push(Finish::All);
                }
                _ => {}
            }
        }
        Wire::Gemini => {
            for (position, candidate) in each(root, "candidates").enumerate() {
                if candidate.get("finishReason").and_then(N::as_str).is_some() {
                    out.push(Finish::Index(index_of(candidate, "index", position)));
                }
            }
        }
        // `messageStop` carries the stop reason; `contentBlockStop` only the block's index.
        Wire::BedrockConverse => {
            if root.get("stopReason").is_some() {
                out.push(Finish::All);
            } else if root.get("contentBlockIndex").is_some()
                && root.get("delta").is_none()
                && root.get("start").is_none()
            {
                out.push(Finish::Index(index_of(root, "contentBlockIndex", 0)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Finish` has no equality; compare what it says.
    fn finish_label(f: &Finish) -> String {
        format!("{f:?}")
    }

    #[test]
    fn the_chat_fast_path_reads_what_the_general_path_reads_or_declines() {
        let mut cases: Vec<Vec<u8>> = vec![
            br#"{"choices":[{"index":0,"delta":{"content":"a@b"},"finish_reason":null}]}"#.to_vec(),
            br#"{"choices":[{"delta":{"content":"x","refusal":"no"}},{"delta":{"content":"y"},"finish_reason":"stop"}]}"#.to_vec(),
            br#"{"choices":[{"index":2,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{\"a\""}},{"function":{"arguments":":1}"}}]}}]}"#.to_vec(),
            br#"{"choices":[{"index":0,"delta":{"function_call":{"arguments":"{}"}},"finish_reason":"function_call"}]}"#.to_vec(),
            br#"{"choices":[{"index":0,"delta":null,"finish_reason":"length"}],"usage":{"total_tokens":3}}"#.to_vec(),
            br#"{"choices":[],"usage":null}"#.to_vec(),
            br#"{"id":"x","choices":null}"#.to_vec(),
            br#"{"choices":[{"index":"0","delta":{"content":"s"}}]}"#.to_vec(),
            br#"{"choices":[{"index":0,"delta":{"content":5}}]}"#.to_vec(),
            br#"{"choices":[{"index":0,"delta":{"content":"a","content":"b"}}]}"#.to_vec(),
            br#"{"choices":{"index":0}}"#.to_vec(),
            br#"{"choices":[{"index":0,"delta":{"content":"caf\u00e9 \"q\""},"finish_reason":7}]}"#.to_vec(),
            br#"[1,2]"#.to_vec(),
            br#"{"choices":[{"index":0,"delta":{"content":"cut"#.to_vec(),
        ];
        // And every event of the recorded OpenAI-style chat streams.
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/providers");
        for dir in
            ["openai-chat-stream-usage", "openai-chat-tool-calls-stream", "openai-chat-stream-n2", "azure-chat-stream"]
        {
            let raw = std::fs::read(fixtures.join(dir).join("response.sse")).unwrap_or_default();
            for line in raw.split(|&b| b == b'\n') {
                if let Some(data) = line.strip_prefix(b"data: ") {
                    cases.push(data.to_vec());
                }
            }
        }
        assert!(cases.len() > 30, "the fixtures were not found");
        let mut fast_taken = 0;
        for data in &cases {
            let (mut texts, mut finishes) = (Vec::new(), Vec::new());
            let fast = chat_chunk_text(data, &mut texts, &mut finishes);
            let Ok(mut value) = serde_json::from_slice::<Value>(data) else {
                assert!(!fast, "{}", String::from_utf8_lossy(data));
                continue;
            };
            if !fast {
                assert!(texts.is_empty() && finishes.is_empty());
                continue;
            }
            fast_taken += 1;
            let mut general = Vec::new();
            segments(Wire::OpenAiChat, &mut value, &mut |k, s| general.push((k, s.clone())));
            assert_eq!(texts, general, "{}", String::from_utf8_lossy(data));
            let general_finishes: Vec<String> =
                finishes_of(Wire::OpenAiChat, &value).iter().map(finish_label).collect();
            assert_eq!(finishes.iter().map(finish_label).collect::<Vec<_>>(), general_finishes);
        }
        assert!(fast_taken > 25, "the fast path declined too often: {fast_taken}");
    }

    #[test]
    fn the_borrowed_read_of_an_event_reads_what_the_general_path_reads_or_declines() {
        let mut cases: Vec<Vec<u8>> = [
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"caf\u00e9"}}"#,
            r#"{"type":"content_block_delta","index":-1,"delta":{"type":"input_json_delta","partial_json":"{\"a\""}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":"hi"}}"#,
            r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","input":{"q":"x"}}}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":3}}"#,
            r#"{"type":"response.output_text.delta","output_index":1,"content_index":2.0,"delta":"t"}"#,
            r#"{"type":"response.output_text.done","output_index":1,"content_index":0,"text":"whole"}"#,
            r#"{"candidates":[{"index":1,"content":{"parts":[{"text":"g"},{"functionCall":{"args":{"a":"b"}}}]},"finishReason":"STOP"}]}"#,
            r#"{"contentBlockIndex":18446744073709551615,"delta":{"text":"b","toolUse":{"input":"{}"}}}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"a","content":"b"}}]}"#,
            r#"{"choices":[{"index":"0","delta":{"content":"s"},"finish_reason":"stop"}]}"#,
            r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":"cut"#,
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        // And every event of every recorded SSE stream.
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/providers");
        for dir in std::fs::read_dir(&fixtures).unwrap().flatten() {
            let raw = std::fs::read(dir.path().join("response.sse")).unwrap_or_default();
            for line in raw.split(|&b| b == b'\n') {
                if let Some(data) = line.strip_prefix(b"data:") {
                    cases.push(data.trim_ascii().to_vec());
                }
            }
        }
        assert!(cases.len() > 300, "the fixtures were not found: {}", cases.len());
        let mut borrowed_taken = 0;
        for wire in
            [Wire::OpenAiChat, Wire::OpenAiResponses, Wire::AnthropicMessages, Wire::Gemini, Wire::BedrockConverse]
        {
            for data in &cases {
                let shown = String::from_utf8_lossy(data);
                let (mut texts, mut finishes) = (Vec::new(), Vec::new());
                let borrowed = borrowed_text(wire, data, &mut texts, &mut finishes);
                let Ok(mut value) = serde_json::from_slice::<Value>(data) else {
                    assert!(!borrowed, "{wire:?} {shown}");
                    continue;
                };
                let mut copied = 0;
                copies(wire, &mut value, &mut |_, _| copied += 1);
                if !borrowed {
                    assert!(texts.is_empty() && finishes.is_empty());
                    continue;
                }
                borrowed_taken += 1;
                assert_eq!(copied, 0, "{wire:?} {shown}");
                let mut general = Vec::new();
                segments(wire, &mut value, &mut |k, s| general.push((k, s.clone())));
                assert_eq!(texts, general, "{wire:?} {shown}");
                let general_finishes: Vec<String> = finishes_of(wire, &value).iter().map(finish_label).collect();
                assert_eq!(finishes.iter().map(finish_label).collect::<Vec<_>>(), general_finishes, "{wire:?} {shown}");
            }
        }
        assert!(borrowed_taken > 1000, "the borrowed read declined too often: {borrowed_taken}");
    }

    #[test]
    fn tail_holds_the_unfinished_word_and_chained_value_words() {
        assert_eq!(tail_len("hello wor"), 3);
        assert_eq!(tail_len("hello world "), 0);
        assert_eq!(tail_len("card 4111 1111 "), "4111 1111 ".len());
        assert_eq!(tail_len("card 4111 1111 1111 1111 t"), "4111 1111 1111 1111 t".len());
        assert_eq!(tail_len("card 4111 1111 1111 1111 to "), 0);
        assert_eq!(tail_len("use Bearer abc"), "Bearer abc".len());
        assert_eq!(tail_len("call +1 (555) 12"), "+1 (555) 12".len());
        assert_eq!(tail_len("日本4111"), 4);
        assert_eq!(tail_len(""), 0);
    }

    #[test]
    fn splitter_waits_for_the_byte_after_a_final_cr() {
        let mut s = Splitter { buf: b"data: x\r\r".to_vec(), ..Splitter::default() };
        assert_eq!(s.next_event_end(false), None);
        s.buf.push(b'\n');
        assert_eq!(s.next_event_end(false), Some(10));
        let mut s = Splitter { buf: b"data: x\r\r".to_vec(), ..Splitter::default() };
        assert_eq!(s.next_event_end(true), Some(9));
    }

    #[test]
    fn rebuild_keeps_other_lines_and_endings() {
        let raw = b"\xEF\xBB\xBFevent: e\r\n: c\r\ndata:{\"a\":\r\ndata: 1}\r\n\r\n";
        let value = serde_json::json!({"a": 2});
        assert_eq!(sse_data(raw, true).unwrap(), b"{\"a\":\n1}");
        assert_eq!(rebuild_sse(raw, true, &value), b"\xEF\xBB\xBFevent: e\r\n: c\r\ndata:{\"a\":2}\r\n\r\n".to_vec());
        let raw = b"\xEF\xBB\xBFdata: {}\n\n";
        assert_eq!(rebuild_sse(raw, true, &value), b"\xEF\xBB\xBFdata: {\"a\":2}\n\n".to_vec());
    }

    #[test]
    fn segment_edits_put_the_replacement_where_the_value_starts() {
        let edits = vec![AbsEdit {
            start: 2,
            end: 7,
            replacement: Some("[X]".into()),
            kind: 1,
            closes_with: None,
            commit: true,
        }];
        let mut committed = Vec::new();
        assert_eq!(apply_segment("ab", 0, 2, &edits, &mut committed), None);
        assert_eq!(apply_segment("cde", 2, 5, &edits, &mut committed).as_deref(), Some("[X]"));
        assert_eq!(apply_segment("fgh", 5, 8, &edits, &mut committed).as_deref(), Some("h"));
        assert_eq!(committed, vec![1]);
    }
}
