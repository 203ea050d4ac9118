//! Framing tests: every framer, every payload, every chunking.
//!
//! Each payload goes through `same_for_every_chunking`, which feeds it whole, split at every
//! byte offset (short payloads) and in 1, 2, 3, 7 and 64-byte chunks, and requires the same
//! outcome (units, counters and ending) from all of them; the tests then assert that outcome.

use llmobs_core::framing::event_stream::{EventStreamDecoder, EventStreamError, HeaderValue, Message};
use llmobs_core::framing::json_stream::{JsonArraySplitter, NdjsonSplitter};
use llmobs_core::framing::sse::{SseEvent, SseParser};
use llmobs_core::framing::Ending;
use llmobs_testkit::chunkings;
use std::fmt::Debug;

/// Runs `run` over every chunking of `payload`, checks they all agree, returns the outcome.
fn same_for_every_chunking<T: PartialEq + Debug>(payload: &[u8], run: impl Fn(&[&[u8]]) -> T) -> T {
    let whole = run(&[payload]);
    for chunks in chunkings(payload) {
        let got = run(&chunks);
        assert_eq!(got, whole, "chunk sizes {:?}", chunks.iter().map(|c| c.len()).collect::<Vec<_>>());
    }
    whole
}

fn utf8(bytes: &[u8]) -> String {
    // Complete units must be valid UTF-8 again even when a character was split across chunks.
    assert!(std::str::from_utf8(bytes).is_ok(), "not UTF-8: {bytes:?}");
    String::from_utf8_lossy(bytes).into_owned()
}

// ---------------------------------------------------------------------------------------------
// SSE
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct Event {
    event: String,
    data: String,
    id: String,
}

fn ev(event: &str, data: &str, id: &str) -> Event {
    Event { event: event.to_string(), data: data.to_string(), id: id.to_string() }
}

/// Events with data only, the common case.
fn data_events(data: &[&str]) -> Vec<Event> {
    data.iter().map(|d| ev("", d, "")).collect()
}

#[derive(Debug, PartialEq, Eq)]
struct SseOutcome {
    events: Vec<Event>,
    ending: Ending,
    oversized: u64,
}

fn parse_sse_chunks(chunks: &[&[u8]], max: usize) -> SseOutcome {
    let mut parser = SseParser::new(max);
    let mut events = Vec::new();
    for chunk in chunks {
        parser.push(chunk, &mut |e: SseEvent<'_>| {
            events.push(Event { event: utf8(e.event), data: utf8(e.data), id: utf8(e.last_event_id) })
        });
        assert!(parser.buffered_bytes() <= max, "{} bytes held over a limit of {max}", parser.buffered_bytes());
    }
    let ending = parser.finish();
    assert_eq!(parser.events(), events.len() as u64);
    SseOutcome { events, ending, oversized: parser.oversized_events() }
}

fn sse(payload: &[u8]) -> SseOutcome {
    sse_with_max(payload, 1 << 20)
}

fn sse_with_max(payload: &[u8], max: usize) -> SseOutcome {
    same_for_every_chunking(payload, |chunks| parse_sse_chunks(chunks, max))
}

fn clean(events: Vec<Event>) -> SseOutcome {
    SseOutcome { events, ending: Ending::Clean, oversized: 0 }
}

#[test]
fn an_event_split_inside_a_crlf_is_dispatched_once() {
    // If the CR ending one chunk and the LF starting the next were two line endings, the LF
    // would be a blank line and dispatch "a" and "b" as two events.
    let chunks: &[&[u8]] = &[b"data: a\r", b"\n", b"data: b\r", b"", b"\n\r", b"\n"];
    assert_eq!(parse_sse_chunks(chunks, 1024), clean(data_events(&["a\nb"])));
    assert_eq!(sse(b"data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n"), clean(data_events(&["a\nb", "c"])));
}

#[test]
fn lines_may_end_in_lf_crlf_or_a_lone_cr() {
    let expected = clean(vec![ev("e", "a\nb", "")]);
    let cases: &[&[u8]] = &[
        b"event: e\ndata: a\ndata: b\n\n",
        b"event: e\r\ndata: a\r\ndata: b\r\n\r\n",
        b"event: e\rdata: a\rdata: b\r\r",
        b"event: e\rdata: a\r\ndata: b\n\r\n",
    ];
    for payload in cases {
        assert_eq!(sse(payload), expected, "{}", String::from_utf8_lossy(payload));
    }
}

#[test]
fn lf_then_cr_is_two_line_endings_and_cr_then_crlf_is_two() {
    assert_eq!(sse(b"data: a\n\rdata: b\n\n"), clean(data_events(&["a", "b"])));
    assert_eq!(sse(b"data: a\r\r\ndata: b\r\r"), clean(data_events(&["a", "b"])));
}

#[test]
fn one_space_after_the_colon_is_stripped_and_only_one() {
    let cases: &[(&[u8], &str)] = &[
        (b"data:x\n\n", "x"),
        (b"data: x\n\n", "x"),
        (b"data:  x\n\n", " x"),
        (b"data:\tx\n\n", "\tx"),
        (b"data: a:b: c\n\n", "a:b: c"),
        (b"data: x \n\n", "x "),
    ];
    for (payload, data) in cases {
        assert_eq!(sse(payload), clean(data_events(&[data])), "{}", String::from_utf8_lossy(payload));
    }
}

#[test]
fn several_data_lines_are_joined_with_lf_and_empty_data_lines_count() {
    let cases: &[(&[u8], &str)] = &[
        (b"data: a\ndata: b\ndata: c\n\n", "a\nb\nc"),
        (b"data: a\ndata:\ndata: b\n\n", "a\n\nb"),
        (b"data\n\n", ""),
        (b"data:\n\n", ""),
        (b"data\ndata\n\n", "\n"),
    ];
    for (payload, data) in cases {
        assert_eq!(sse(payload), clean(data_events(&[data])), "{}", String::from_utf8_lossy(payload));
    }
}

#[test]
fn comments_retry_and_unknown_fields_are_ignored() {
    let payload =
        b": ping\n\n: keep-alive\ndata: x\n: a comment with data: inside\nretry: 1000\nfoo: bar\nDATA: no\n\n";
    assert_eq!(sse(payload), clean(data_events(&["x"])));
}

#[test]
fn an_event_without_data_is_not_dispatched_and_its_type_does_not_carry_over() {
    assert_eq!(sse(b"event: ping\n\ndata: x\n\n"), clean(vec![ev("", "x", "")]));
    assert_eq!(sse(b"event: a\nevent: b\ndata: x\n\n"), clean(vec![ev("b", "x", "")]));
    assert_eq!(sse(b"event: ping\n\n\n\n"), clean(vec![]));
}

#[test]
fn the_event_type_defaults_to_message() {
    let mut parser = SseParser::default();
    let mut types = Vec::new();
    parser.push(b"data: x\n\nevent: delta\ndata: y\n\n", &mut |e: SseEvent<'_>| types.push(utf8(e.event_type())));
    assert_eq!(types, ["message", "delta"]);
}

#[test]
fn the_last_event_id_persists_across_events_and_an_id_with_nul_is_ignored() {
    let payload = b"id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid: 7\n\nid: 2\0x\ndata: d\n\n";
    assert_eq!(sse(payload), clean(vec![ev("", "a", "1"), ev("", "b", "1"), ev("", "c", ""), ev("", "d", "7")]));
}

#[test]
fn one_leading_bom_is_skipped_and_no_other() {
    assert_eq!(sse("\u{FEFF}data: a\n\n".as_bytes()), clean(data_events(&["a"])));
    // A second BOM is part of the field name, which is then not `data`.
    assert_eq!(sse("\u{FEFF}\u{FEFF}data: a\n\ndata: b\n\n".as_bytes()), clean(data_events(&["b"])));
    assert_eq!(sse("data: a\n\n\u{FEFF}data: b\n\n".as_bytes()), clean(data_events(&["a"])));
    // The first two bytes of a BOM are not a BOM: they stay in the line.
    assert_eq!(sse(b"\xEF\xBBdata: a\n\ndata: b\n\n"), clean(data_events(&["b"])));
    assert_eq!(sse(b"\xEF\xBB").ending, Ending::Truncated);
}

#[test]
fn multi_byte_characters_split_across_chunks_arrive_whole() {
    let payload = "data: {\"text\":\"café, 日本, 🦀\"}\n\ndata: é\ndata: 🦀\n\n";
    assert_eq!(sse(payload.as_bytes()), clean(data_events(&["{\"text\":\"café, 日本, 🦀\"}", "é\n🦀"])));
}

#[test]
fn finish_reports_a_partial_event_and_dispatches_nothing_partial() {
    let cases: &[(&[u8], &[&str], Ending)] = &[
        (b"", &[], Ending::Clean),
        (b"data: x", &[], Ending::Truncated),
        (b"data: x\n", &[], Ending::Truncated),
        (b"data: x\r", &[], Ending::Truncated),
        (b"event: a\n", &[], Ending::Truncated),
        (b"data: x\n\n", &["x"], Ending::Clean),
        // The CR ends the blank line at once: no wait for a possible LF.
        (b"data: x\r\n\r", &["x"], Ending::Clean),
        (b"data: x\n\nda", &["x"], Ending::Truncated),
        (b": keep-alive", &[], Ending::Clean),
        (b"data: x\n\n: keep-alive\n", &["x"], Ending::Clean),
    ];
    for (payload, data, ending) in cases {
        let expected = SseOutcome { events: data_events(data), ending: *ending, oversized: 0 };
        assert_eq!(sse(payload), expected, "{}", String::from_utf8_lossy(payload));
    }
}

#[test]
fn after_finish_the_parser_starts_a_new_stream() {
    let mut parser = SseParser::default();
    let mut data = Vec::new();
    parser.push(b"id: 1\ndata: cut", &mut |e: SseEvent<'_>| data.push(utf8(e.data)));
    assert_eq!(parser.finish(), Ending::Truncated);
    parser.push("\u{FEFF}data: next\n\n".as_bytes(), &mut |e: SseEvent<'_>| {
        data.push(utf8(e.data));
        assert_eq!(e.last_event_id, b"");
    });
    assert_eq!(parser.finish(), Ending::Clean);
    assert_eq!(data, ["next"]);
}

#[test]
fn an_openai_chat_stream_yields_every_chunk_and_the_done_marker() {
    let chunks = [
        r#"{"id":"chatcmpl-A1","object":"chat.completion.chunk","created":1730000000,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        r#"{"id":"chatcmpl-A1","object":"chat.completion.chunk","created":1730000000,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":"Bonjour, ça va ? 🙂"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        r#"{"id":"chatcmpl-A1","object":"chat.completion.chunk","created":1730000000,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}"#,
        r#"{"id":"chatcmpl-A1","object":"chat.completion.chunk","created":1730000000,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_1","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":6,"total_tokens":18,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}"#,
        "[DONE]",
    ];
    let payload: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    let outcome = sse(payload.as_bytes());
    assert_eq!(outcome, clean(data_events(&chunks)));
    let usage: serde_json::Value = serde_json::from_str(&outcome.events[3].data).unwrap();
    assert_eq!(usage["usage"]["total_tokens"], 18);
}

const ANTHROPIC_STREAM: &str = concat!(
    "event: message_start\n",
    r#"data: {"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"usage":{"input_tokens":25,"cache_read_input_tokens":0,"cache_creation_input_tokens":0,"output_tokens":1}}}"#,
    "\n\n",
    "event: content_block_start\n",
    r#"data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
    "\n\n",
    "event: ping\n",
    r#"data: {"type": "ping"}"#,
    "\n\n",
    "event: content_block_delta\n",
    r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"日本語 ✨ é"}}"#,
    "\n\n",
    "event: content_block_stop\n",
    r#"data: {"type":"content_block_stop","index":0}"#,
    "\n\n",
    "event: message_delta\n",
    r#"data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}"#,
    "\n\n",
    "event: message_stop\n",
    r#"data: {"type":"message_stop"}"#,
    "\n\n",
);

#[test]
fn an_anthropic_stream_yields_named_events_with_their_json() {
    let outcome = sse(ANTHROPIC_STREAM.as_bytes());
    assert_eq!(outcome.ending, Ending::Clean);
    let names: Vec<&str> = outcome.events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    for e in &outcome.events {
        let value: serde_json::Value = serde_json::from_str(&e.data).unwrap();
        assert_eq!(value["type"], e.event.as_str());
    }
    let delta: serde_json::Value = serde_json::from_str(&outcome.events[3].data).unwrap();
    assert_eq!(delta["delta"]["text"], "日本語 ✨ é");
}

#[test]
fn the_same_stream_with_any_line_ending_gives_the_same_events() {
    let lf = sse(ANTHROPIC_STREAM.as_bytes());
    assert_eq!(sse(ANTHROPIC_STREAM.replace('\n', "\r\n").as_bytes()), lf);
    assert_eq!(sse(ANTHROPIC_STREAM.replace('\n', "\r").as_bytes()), lf);
}

/// One row of a table of payloads with their expected data, ending and oversized count.
struct OversizeCase {
    name: &'static str,
    payload: &'static [u8],
    max: usize,
    data: &'static [&'static str],
    ending: Ending,
    oversized: u64,
}

#[test]
fn an_oversized_event_is_discarded_up_to_the_next_blank_line_and_counted() {
    let case =
        |name, payload, max, data, ending, oversized| OversizeCase { name, payload, max, data, ending, oversized };
    let cases = [
        case(
            "one long data line",
            b"data: short\n\ndata: 0123456789abcdefghij\ndata: more\n\ndata: ok\n\n",
            16,
            &["short", "ok"],
            Ending::Clean,
            1,
        ),
        case(
            "data lines that add up",
            b"data: 0123456\ndata: 0123456\ndata: 0123456\n\ndata: ok\n\n",
            16,
            &["ok"],
            Ending::Clean,
            1,
        ),
        case(
            "two oversized events",
            b"data: 0123456789abcdefghij\n\ndata: x\ndata: 0123456789abcdefghij\n\n",
            16,
            &[],
            Ending::Clean,
            2,
        ),
        case("at the limit", b"data: abc\n\n", 9, &["abc"], Ending::Clean, 0),
        case("one byte over the limit", b"data: abc\n\n", 8, &[], Ending::Clean, 1),
        case("cut while oversized", b"data: ok\n\ndata: 0123456789abcdefghij", 16, &["ok"], Ending::Truncated, 1),
        case("oversized, not yet ended", b"data: 0123456789abcdefghij\n", 16, &[], Ending::Truncated, 1),
        case(
            "an event type counts",
            b"event: 0123456789\ndata: 0123456\n\ndata: ok\n\n",
            20,
            &["ok"],
            Ending::Clean,
            1,
        ),
    ];
    for c in cases {
        let expected = SseOutcome { events: data_events(c.data), ending: c.ending, oversized: c.oversized };
        assert_eq!(sse_with_max(c.payload, c.max), expected, "{}", c.name);
    }
}

#[test]
fn a_long_comment_is_skipped_without_counting_as_oversized() {
    let payload = format!(": {}\ndata: ok\n\n", "x".repeat(100));
    assert_eq!(sse_with_max(payload.as_bytes(), 16), clean(data_events(&["ok"])));
}

#[test]
fn a_huge_line_never_grows_the_buffer_past_the_limit() {
    // `parse_sse_chunks` checks the held bytes after every chunk.
    let payload = format!("data: ok\n\ndata: {}\n\ndata: after\n\n", "y".repeat(64 * 1024));
    let expected = SseOutcome { events: data_events(&["ok", "after"]), ending: Ending::Clean, oversized: 1 };
    assert_eq!(sse_with_max(payload.as_bytes(), 1024), expected);
}

// ---------------------------------------------------------------------------------------------
// AWS event-stream
// ---------------------------------------------------------------------------------------------

/// Encodes a message with the given header block, computing both CRCs.
fn raw_message(header_block: &[u8], payload: &[u8]) -> Vec<u8> {
    let total = (12 + header_block.len() + payload.len() + 4) as u32;
    let mut out = prelude(total, header_block.len() as u32);
    out.extend_from_slice(header_block);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// A 12-byte prelude with a correct prelude CRC.
fn prelude(total: u32, headers_len: u32) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&headers_len.to_be_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// The test's own encoder, written from the format description, not from the decoder.
fn encode_headers(headers: &[(&str, HeaderValue<'_>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in headers {
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        match value {
            HeaderValue::Bool(true) => out.push(0),
            HeaderValue::Bool(false) => out.push(1),
            HeaderValue::Byte(v) => {
                out.push(2);
                out.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Short(v) => {
                out.push(3);
                out.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Int(v) => {
                out.push(4);
                out.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Long(v) => {
                out.push(5);
                out.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Bytes(v) => {
                out.push(6);
                out.extend_from_slice(&(v.len() as u16).to_be_bytes());
                out.extend_from_slice(v);
            }
            HeaderValue::String(v) => {
                out.push(7);
                out.extend_from_slice(&(v.len() as u16).to_be_bytes());
                out.extend_from_slice(v.as_bytes());
            }
            HeaderValue::Timestamp(v) => {
                out.push(8);
                out.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Uuid(v) => {
                out.push(9);
                out.extend_from_slice(v);
            }
        }
    }
    out
}

fn message(headers: &[(&str, HeaderValue<'_>)], payload: &[u8]) -> Vec<u8> {
    raw_message(&encode_headers(headers), payload)
}

/// A Bedrock ConverseStream event, with the headers Bedrock sends.
fn bedrock_event(event_type: &str, payload: &str) -> Vec<u8> {
    message(
        &[
            (":event-type", HeaderValue::String(event_type)),
            (":content-type", HeaderValue::String("application/json")),
            (":message-type", HeaderValue::String("event")),
        ],
        payload.as_bytes(),
    )
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Decoded {
    event_type: Option<String>,
    message_type: Option<String>,
    exception_type: Option<String>,
    content_type: Option<String>,
    /// Every header, as `name=value` with the value's debug form.
    headers: Vec<String>,
    payload: Vec<u8>,
}

impl Decoded {
    fn of(m: Message<'_>) -> Self {
        Self {
            event_type: m.event_type().map(str::to_string),
            message_type: m.message_type().map(str::to_string),
            exception_type: m.exception_type().map(str::to_string),
            content_type: m.content_type().map(str::to_string),
            headers: m.headers().map(|h| format!("{}={:?}", h.name, h.value)).collect(),
            payload: m.payload().to_vec(),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
struct EsOutcome {
    messages: Vec<Decoded>,
    failure: Option<EventStreamError>,
    oversized: u64,
    ending: Ending,
}

fn decode_chunks(chunks: &[&[u8]], cap: usize) -> EsOutcome {
    let mut decoder = EventStreamDecoder::new(cap);
    let mut messages = Vec::new();
    let mut first_error = None;
    for chunk in chunks {
        if let Err(error) = decoder.push(chunk, &mut |m: Message<'_>| messages.push(Decoded::of(m))) {
            // A failed decoder keeps reporting the same error.
            assert!(first_error.is_none() || first_error == Some(error));
            first_error = Some(error);
        }
        assert!(decoder.buffered_bytes() <= cap.max(11), "{} bytes held over a cap of {cap}", decoder.buffered_bytes());
    }
    assert_eq!(decoder.failure(), first_error);
    assert_eq!(decoder.messages(), messages.len() as u64);
    EsOutcome { messages, failure: first_error, oversized: decoder.oversized_messages(), ending: decoder.finish() }
}

fn decode(payload: &[u8]) -> EsOutcome {
    decode_with_cap(payload, 1 << 20)
}

fn decode_with_cap(payload: &[u8], cap: usize) -> EsOutcome {
    same_for_every_chunking(payload, |chunks| decode_chunks(chunks, cap))
}

#[test]
fn a_hand_checked_frame_decodes() {
    // 67 bytes: total 0x43, headers 0x1a (26), prelude CRC 0x8713048a; one header
    // `:event-type` (name length 0x0b, type 7 string, value length 0x000b) = "messageStop";
    // payload {"stopReason":"end_turn"}; message CRC 0x28775f45. CRCs computed independently
    // with Python's zlib.crc32.
    let frame: &[u8] = &[
        0x00, 0x00, 0x00, 0x43, 0x00, 0x00, 0x00, 0x1a, 0x87, 0x13, 0x04, 0x8a, // prelude
        0x0b, b':', b'e', b'v', b'e', b'n', b't', b'-', b't', b'y', b'p', b'e', // name
        0x07, 0x00, 0x0b, b'm', b'e', b's', b's', b'a', b'g', b'e', b'S', b't', b'o', b'p', // value
        b'{', b'"', b's', b't', b'o', b'p', b'R', b'e', b'a', b's', b'o', b'n', b'"', b':', // payload
        b'"', b'e', b'n', b'd', b'_', b't', b'u', b'r', b'n', b'"', b'}', //
        0x28, 0x77, 0x5f, 0x45, // message CRC
    ];
    assert_eq!(frame, message(&[(":event-type", HeaderValue::String("messageStop"))], br#"{"stopReason":"end_turn"}"#));
    let outcome = decode(frame);
    assert_eq!(outcome.failure, None);
    assert_eq!(outcome.ending, Ending::Clean);
    assert_eq!(outcome.messages.len(), 1);
    assert_eq!(outcome.messages[0].event_type.as_deref(), Some("messageStop"));
    assert_eq!(outcome.messages[0].payload, br#"{"stopReason":"end_turn"}"#);
}

#[test]
fn the_empty_message_test_vector_decodes() {
    // The "empty_message" vector of the AWS event-stream test suite: no header, no payload.
    let frame: &[u8] = &[0, 0, 0, 0x10, 0, 0, 0, 0, 0x05, 0xc2, 0x48, 0xeb, 0x7d, 0x98, 0xc8, 0xff];
    let outcome = decode(frame);
    assert_eq!(outcome.failure, None);
    assert_eq!(outcome.messages.len(), 1);
    assert!(outcome.messages[0].headers.is_empty());
    assert!(outcome.messages[0].payload.is_empty());
}

#[test]
fn a_bedrock_converse_stream_yields_each_event_with_its_type_and_payload() {
    let events = [
        ("messageStart", r#"{"p":"abcdefghijklmnopqrstuvwxyzABCDEFGHIJ","role":"assistant"}"#),
        ("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":"Hola, ¿qué tal? 日本 🦀"},"p":"abcdef"}"#),
        ("contentBlockStop", r#"{"contentBlockIndex":0,"p":"abcdefghijklmnopq"}"#),
        ("messageStop", r#"{"p":"abcdefghijklmnopqrstuvwxyzAB","stopReason":"end_turn"}"#),
        (
            "metadata",
            r#"{"metrics":{"latencyMs":612},"p":"abc","usage":{"inputTokens":12,"outputTokens":9,"totalTokens":21}}"#,
        ),
    ];
    let stream: Vec<u8> = events.iter().flat_map(|(t, p)| bedrock_event(t, p)).collect();
    let outcome = decode(&stream);
    assert_eq!(outcome.failure, None);
    assert_eq!(outcome.ending, Ending::Clean);
    assert_eq!(outcome.messages.len(), events.len());
    for (got, (event_type, payload)) in outcome.messages.iter().zip(events) {
        assert_eq!(got.event_type.as_deref(), Some(event_type));
        assert_eq!(got.message_type.as_deref(), Some("event"));
        assert_eq!(got.content_type.as_deref(), Some("application/json"));
        assert_eq!(got.exception_type, None);
        assert_eq!(utf8(&got.payload), payload);
    }
    let metadata: serde_json::Value = serde_json::from_slice(&outcome.messages[4].payload).unwrap();
    assert_eq!(metadata["usage"]["totalTokens"], 21);
}

#[test]
fn an_exception_message_exposes_its_exception_type() {
    let mut stream = bedrock_event("messageStart", r#"{"role":"assistant"}"#);
    stream.extend(message(
        &[
            (":exception-type", HeaderValue::String("modelStreamErrorException")),
            (":content-type", HeaderValue::String("application/json")),
            (":message-type", HeaderValue::String("exception")),
        ],
        br#"{"message":"Model stream error","originalStatusCode":503}"#,
    ));
    let outcome = decode(&stream);
    assert_eq!(outcome.failure, None);
    assert_eq!(outcome.messages.len(), 2);
    assert_eq!(outcome.messages[1].message_type.as_deref(), Some("exception"));
    assert_eq!(outcome.messages[1].exception_type.as_deref(), Some("modelStreamErrorException"));
    assert_eq!(outcome.messages[1].event_type, None);
}

#[test]
fn every_header_type_is_decoded() {
    let headers = [
        ("t", HeaderValue::Bool(true)),
        ("f", HeaderValue::Bool(false)),
        ("byte", HeaderValue::Byte(-7)),
        ("short", HeaderValue::Short(-300)),
        ("int", HeaderValue::Int(-70_000)),
        ("long", HeaderValue::Long(-5_000_000_000)),
        ("bytes", HeaderValue::Bytes(&[0, 0xff, 0x10])),
        ("string", HeaderValue::String("日本 🦀")),
        ("time", HeaderValue::Timestamp(1_730_000_000_123)),
        ("uuid", HeaderValue::Uuid([0x12; 16])),
        ("empty", HeaderValue::String("")),
    ];
    let frame = message(&headers, b"payload");
    let mut decoder = EventStreamDecoder::default();
    let mut seen = 0;
    decoder
        .push(&frame, &mut |m: Message<'_>| {
            let got: Vec<(&str, HeaderValue<'_>)> = m.headers().map(|h| (h.name, h.value)).collect();
            assert_eq!(got, headers);
            assert_eq!(m.header("long"), Some(HeaderValue::Long(-5_000_000_000)));
            assert_eq!(m.string_header("string"), Some("日本 🦀"));
            assert_eq!(m.string_header("t"), None, "a bool header is not a string");
            assert_eq!(m.header("missing"), None);
            assert_eq!(m.payload(), b"payload");
            seen += 1;
        })
        .unwrap();
    assert_eq!(seen, 1);
    // And the same through every chunking.
    let outcome = decode(&frame);
    assert_eq!(outcome.messages.len(), 1);
    assert_eq!(outcome.messages[0].headers.len(), headers.len());
}

#[test]
fn a_corrupted_byte_fails_the_stream_at_that_message_and_stops_decoding() {
    let first = bedrock_event("messageStart", r#"{"role":"assistant"}"#);
    let second = bedrock_event("contentBlockDelta", r#"{"delta":{"text":"hi"}}"#);
    let third = bedrock_event("messageStop", r#"{"stopReason":"end_turn"}"#);
    let payload_at = second.len() - 10;
    let crc_at = second.len() - 1;
    // Which CRC catches the flipped byte: the prelude's for the first 12 bytes, else the message's.
    let cases = [
        ("total length", 3, "prelude_crc"),
        ("headers length", 7, "prelude_crc"),
        ("prelude CRC", 9, "prelude_crc"),
        ("a header byte", 20, "message_crc"),
        ("a payload byte", payload_at, "message_crc"),
        ("message CRC", crc_at, "message_crc"),
    ];
    for (name, at, label) in cases {
        let mut bad = second.clone();
        bad[at] ^= 0x01;
        let stream = [first.clone(), bad, third.clone()].concat();
        let outcome = decode(&stream);
        assert_eq!(outcome.messages.len(), 1, "{name}");
        assert_eq!(outcome.failure.map(|e| e.label()), Some(label), "{name}: {:?}", outcome.failure);
        assert_eq!(outcome.ending, Ending::Malformed, "{name}");
    }
}

#[test]
fn a_failed_decoder_decodes_nothing_more() {
    let mut bad = bedrock_event("messageStart", "{}");
    bad[3] ^= 0x01;
    let mut decoder = EventStreamDecoder::default();
    let mut count = 0;
    let error = decoder.push(&bad, &mut |_: Message<'_>| count += 1).unwrap_err();
    let good = bedrock_event("messageStop", "{}");
    assert_eq!(decoder.push(&good, &mut |_: Message<'_>| count += 1), Err(error));
    assert_eq!(count, 0);
    assert_eq!(decoder.buffered_bytes(), 0);
    assert_eq!(decoder.finish(), Ending::Malformed);
    assert_eq!(error.label(), "prelude_crc");
}

#[test]
fn impossible_lengths_fail_as_soon_as_the_prelude_is_in() {
    let cap = 1024;
    let cases: &[(&str, u32, u32, EventStreamError)] = &[
        ("total below 16", 8, 0, EventStreamError::TotalLengthTooSmall { total: 8 }),
        ("total of 15", 15, 0, EventStreamError::TotalLengthTooSmall { total: 15 }),
        ("headers beyond the message", 20, 5, EventStreamError::HeadersLengthTooLarge { headers: 5, total: 20 }),
        ("headers of 4 GiB", 20, u32::MAX, EventStreamError::HeadersLengthTooLarge { headers: u32::MAX, total: 20 }),
    ];
    for (name, total, headers, expected) in cases {
        // Only the prelude: the error must not wait for the claimed length to arrive.
        let mut decoder = EventStreamDecoder::new(cap);
        let result = decoder.push(&prelude(*total, *headers), &mut |_: Message<'_>| {});
        assert_eq!(result, Err(*expected), "{name}");
        assert_eq!(decoder.buffered_bytes(), 0, "{name}");
        // The same with a valid message before it and garbage after it, in every chunking.
        let stream = [bedrock_event("messageStart", "{}"), prelude(*total, *headers), vec![0xab; 40]].concat();
        let outcome = decode_with_cap(&stream, cap);
        assert_eq!(outcome.messages.len(), 1, "{name}");
        assert_eq!(outcome.failure, Some(*expected), "{name}");
        assert_eq!(outcome.ending, Ending::Malformed, "{name}");
    }
}

#[test]
fn a_message_exactly_at_the_cap_is_decoded_and_one_byte_over_is_passed_over() {
    let frame = message(&[(":event-type", HeaderValue::String("metadata"))], &[b'x'; 100]);
    let at_cap = decode_with_cap(&frame, frame.len());
    assert_eq!((at_cap.messages.len(), at_cap.failure, at_cap.oversized), (1, None, 0));
    let below = decode_with_cap(&frame, frame.len() - 1);
    assert_eq!((below.messages.len(), below.failure, below.oversized), (0, None, 1));
    assert_eq!(below.ending, Ending::Clean);
}

#[test]
fn a_message_over_the_cap_is_passed_over_and_the_messages_after_it_are_decoded() {
    // Its prelude CRC holds, so its length is trusted: the next message starts right after it.
    // The big delta is never held (the cap bounds what is buffered, checked in decode_chunks).
    let cap = 256;
    let big = bedrock_event("contentBlockDelta", &format!(r#"{{"delta":{{"text":"{}"}}}}"#, "a".repeat(4000)));
    assert!(big.len() > cap);
    let stream = [
        bedrock_event("messageStart", r#"{"role":"assistant"}"#),
        big.clone(),
        bedrock_event("contentBlockDelta", r#"{"delta":{"text":"after"}}"#),
        big,
        bedrock_event("metadata", r#"{"usage":{"inputTokens":3,"outputTokens":5}}"#),
    ]
    .concat();
    let outcome = decode_with_cap(&stream, cap);
    let types: Vec<_> = outcome.messages.iter().map(|m| m.event_type.clone().unwrap_or_default()).collect();
    assert_eq!(types, ["messageStart", "contentBlockDelta", "metadata"]);
    assert_eq!((outcome.failure, outcome.oversized, outcome.ending), (None, 2, Ending::Clean));
}

#[test]
fn a_stream_that_ends_inside_an_oversized_message_is_truncated_and_a_4_gib_length_holds_nothing() {
    let cap = 1024;
    for (name, total) in [("total of 4 GiB", u32::MAX), ("total one over the cap", 1025)] {
        // Only the prelude: nothing is waited for or held.
        let mut decoder = EventStreamDecoder::new(cap);
        assert_eq!(decoder.push(&prelude(total, 0), &mut |_: Message<'_>| {}), Ok(()), "{name}");
        assert_eq!((decoder.buffered_bytes(), decoder.oversized_messages()), (0, 1), "{name}");
        assert_eq!(decoder.finish(), Ending::Truncated, "{name}");
        // After a valid message, with 40 bytes of its body: in every chunking.
        let stream = [bedrock_event("messageStart", "{}"), prelude(total, 0), vec![0xab; 40]].concat();
        let outcome = decode_with_cap(&stream, cap);
        assert_eq!((outcome.messages.len(), outcome.failure, outcome.oversized), (1, None, 1), "{name}");
        assert_eq!(outcome.ending, Ending::Truncated, "{name}");
    }
}

#[test]
fn a_malformed_header_block_fails_the_stream() {
    let cases: &[(&str, &[u8])] = &[
        ("unknown type 10", b"\x01a\x0a"),
        ("string longer than the block", b"\x01a\x07\x00\x09abc"),
        ("name longer than the block", b"\x09ab"),
        ("int cut short", b"\x01a\x04\x00\x00"),
        ("name not UTF-8", b"\x01\xff\x00"),
        ("string not UTF-8", b"\x01a\x07\x00\x02\xc3\x28"),
        ("type missing", b"\x01a"),
    ];
    for (name, block) in cases {
        let stream = [bedrock_event("messageStart", "{}"), raw_message(block, b"{}")].concat();
        let outcome = decode(&stream);
        assert_eq!(outcome.messages.len(), 1, "{name}");
        assert_eq!(outcome.failure, Some(EventStreamError::MalformedHeaders), "{name}");
        assert_eq!(outcome.ending, Ending::Malformed, "{name}");
    }
}

#[test]
fn a_stream_cut_inside_a_message_finishes_truncated() {
    let first = bedrock_event("messageStart", r#"{"role":"assistant"}"#);
    let second = bedrock_event("contentBlockDelta", r#"{"delta":{"text":"日本"}}"#);
    for cut in [1, 11, 12, 13, second.len() - 1] {
        let stream = [first.as_slice(), &second[..cut]].concat();
        let outcome = decode(&stream);
        assert_eq!(outcome.messages.len(), 1, "cut at {cut}");
        assert_eq!(outcome.failure, None, "cut at {cut}");
        assert_eq!(outcome.ending, Ending::Truncated, "cut at {cut}");
    }
    assert_eq!(decode(b"").ending, Ending::Clean);
}

// ---------------------------------------------------------------------------------------------
// JSON array stream and NDJSON
// ---------------------------------------------------------------------------------------------

#[derive(Debug, PartialEq, Eq)]
struct Split {
    values: Vec<String>,
    ending: Ending,
    oversized: u64,
}

fn split_array_chunks(chunks: &[&[u8]], max: usize) -> Split {
    let mut splitter = JsonArraySplitter::new(max);
    let mut values = Vec::new();
    for chunk in chunks {
        splitter.push(chunk, &mut |v: &[u8]| values.push(utf8(v)));
        assert!(splitter.buffered_bytes() <= max, "{} bytes held over a limit of {max}", splitter.buffered_bytes());
    }
    assert_eq!(splitter.values(), values.len() as u64);
    Split { values, ending: splitter.finish(), oversized: splitter.oversized_values() }
}

fn split_array(payload: &[u8], max: usize) -> Split {
    same_for_every_chunking(payload, |chunks| split_array_chunks(chunks, max))
}

fn split_ndjson_chunks(chunks: &[&[u8]], max: usize) -> Split {
    let mut splitter = NdjsonSplitter::new(max);
    let mut values = Vec::new();
    for chunk in chunks {
        splitter.push(chunk, &mut |v: &[u8]| values.push(utf8(v)));
        assert!(splitter.buffered_bytes() <= max, "{} bytes held over a limit of {max}", splitter.buffered_bytes());
    }
    let ending = splitter.finish(&mut |v: &[u8]| values.push(utf8(v)));
    assert_eq!(splitter.values(), values.len() as u64);
    Split { values, ending, oversized: splitter.oversized_values() }
}

fn split_ndjson(payload: &[u8], max: usize) -> Split {
    same_for_every_chunking(payload, |chunks| split_ndjson_chunks(chunks, max))
}

fn split(values: &[&str], ending: Ending, oversized: u64) -> Split {
    Split { values: values.iter().map(|v| v.to_string()).collect(), ending, oversized }
}

const MAX: usize = 1 << 20;

#[test]
fn a_gemini_array_stream_yields_each_element_whatever_its_strings_contain() {
    let elements = [
        concat!(
            "{\n  \"candidates\": [\n    {\n      \"content\": {\n        \"parts\": [\n          {\n",
            "            \"text\": \"Brackets ] and } and [{ and a quote \\\" and a backslash \\\\\"\n",
            "          }\n        ],\n        \"role\": \"model\"\n      },\n      \"index\": 0\n    }\n  ],\n",
            "  \"usageMetadata\": {\n    \"promptTokenCount\": 9,\n    \"candidatesTokenCount\": 12,\n",
            "    \"totalTokenCount\": 21\n  },\n  \"modelVersion\": \"gemini-2.5-flash\"\n}"
        ),
        concat!(
            "{\n  \"candidates\": [\n    {\n      \"content\": {\n        \"parts\": [\n          {\n",
            "            \"text\": \" 日本語, é, 🦀 \\\\\\\"]}\"\n",
            "          }\n        ],\n        \"role\": \"model\"\n      },\n      \"finishReason\": \"STOP\",\n",
            "      \"index\": 0\n    }\n  ],\n  \"usageMetadata\": {\n    \"promptTokenCount\": 9,\n",
            "    \"candidatesTokenCount\": 20,\n    \"totalTokenCount\": 29,\n",
            "    \"promptTokensDetails\": [{\"modality\": \"TEXT\", \"tokenCount\": 9}]\n  },\n",
            "  \"modelVersion\": \"gemini-2.5-flash\"\n}"
        ),
    ];
    // Gemini's framing: `[` before the first element, `,\r\n` between elements, `]` at the end.
    let payload = format!("[{}\n,\r\n{}\n]", elements[0], elements[1]);
    let outcome = split_array(payload.as_bytes(), MAX);
    assert_eq!(outcome, split(&elements, Ending::Clean, 0));
    let first: serde_json::Value = serde_json::from_str(&outcome.values[0]).unwrap();
    assert_eq!(
        first["candidates"][0]["content"]["parts"][0]["text"],
        "Brackets ] and } and [{ and a quote \" and a backslash \\"
    );
    let last: serde_json::Value = serde_json::from_str(&outcome.values[1]).unwrap();
    assert_eq!(last["usageMetadata"]["totalTokenCount"], 29);
    assert_eq!(last["candidates"][0]["content"]["parts"][0]["text"], " 日本語, é, 🦀 \\\"]}");
}

#[test]
fn array_elements_of_every_kind_are_split_at_their_top_level_commas() {
    let cases: &[(&str, &[&str])] = &[
        ("[]", &[]),
        (" \r\n[ \t]\n ", &[]),
        (
            r#"[1,-2.5e3, true,false ,null,"s]",[1,[2]],{},{"a":[]}]"#,
            &["1", "-2.5e3", "true", "false", "null", r#""s]""#, "[1,[2]]", "{}", r#"{"a":[]}"#],
        ),
        (r#"[{"a":"\\"},{"b":"\"}"}]"#, &[r#"{"a":"\\"}"#, r#"{"b":"\"}"}"#]),
        (r#"["\\\"]",{"k":"\\\\"}]"#, &[r#""\\\"]""#, r#"{"k":"\\\\"}"#]),
        (r#"[{"k":"a,b"},"c,d"]"#, &[r#"{"k":"a,b"}"#, r#""c,d""#]),
        ("[\"é\",{\"k\":\"日本🦀\"}]", &["\"é\"", "{\"k\":\"日本🦀\"}"]),
    ];
    for (payload, values) in cases {
        assert_eq!(split_array(payload.as_bytes(), MAX), split(values, Ending::Clean, 0), "{payload}");
    }
}

#[test]
fn an_unfinished_array_finishes_truncated_and_keeps_only_whole_elements() {
    let cases: &[(&str, &[&str])] = &[
        ("", &[]),
        ("  ", &[]),
        ("[", &[]),
        (r#"[{"a":1}"#, &[r#"{"a":1}"#]),
        (r#"[{"a":1},"#, &[r#"{"a":1}"#]),
        (r#"[{"a":1},{"b":"#, &[r#"{"a":1}"#]),
        (r#"[{"a":"]}"#, &[]),
        ("[12", &[]),
    ];
    for (payload, values) in cases {
        assert_eq!(split_array(payload.as_bytes(), MAX), split(values, Ending::Truncated, 0), "{payload}");
    }
}

#[test]
fn bytes_that_cannot_be_between_elements_make_the_stream_malformed() {
    let cases: &[(&str, &[&str])] = &[
        (r#"{"error":{"code":429}}"#, &[]),
        ("[1 2]", &["1"]),
        ("[{} {}]", &["{}"]),
        ("[,1]", &[]),
        ("[1,]", &["1"]),
        ("[1,,2]", &["1"]),
        ("[]x", &[]),
        ("[][]", &[]),
        (r#"[{"a":1}:2]"#, &[r#"{"a":1}"#]),
    ];
    for (payload, values) in cases {
        assert_eq!(split_array(payload.as_bytes(), MAX), split(values, Ending::Malformed, 0), "{payload}");
    }
}

#[test]
fn an_oversized_element_is_skipped_and_counted() {
    let payload = br#"[{"a":1},{"b":"0123456789"},{"c":3},"0123456789"]"#;
    assert_eq!(split_array(payload, 10), split(&[r#"{"a":1}"#, r#"{"c":3}"#], Ending::Clean, 2));
    // An element of exactly the limit is kept; one byte more is not.
    assert_eq!(split_array(br#"[{"b":"12"}]"#, 10), split(&[r#"{"b":"12"}"#], Ending::Clean, 0));
    assert_eq!(split_array(br#"[{"b":"12"}]"#, 9), split(&[], Ending::Clean, 1));
    // Cut while skipping.
    assert_eq!(split_array(br#"[{"a":1},{"b":"0123456789"#, 10), split(&[r#"{"a":1}"#], Ending::Truncated, 1));
    // Skipping still tracks strings and depth: the `]` and `,` inside do not end it.
    assert_eq!(split_array(br#"[{"b":"],[,]]]"},{"c":3}]"#, 10), split(&[r#"{"c":3}"#], Ending::Clean, 1));
}

#[test]
fn a_huge_element_never_grows_the_buffer_past_the_limit() {
    // `split_array_chunks` checks the held bytes after every chunk.
    let payload = format!("[{{\"a\":1}},{{\"big\":\"{}\"}},{{\"c\":3}}]", "z".repeat(64 * 1024));
    assert_eq!(split_array(payload.as_bytes(), 1024), split(&[r#"{"a":1}"#, r#"{"c":3}"#], Ending::Clean, 1));
}

#[test]
fn ndjson_lines_are_values_with_lf_or_crlf_and_blank_lines_are_ignored() {
    let expected = split(&[r#"{"a":1}"#, r#"{"b":"日本 🦀"}"#], Ending::Clean, 0);
    let cases: &[&str] = &[
        "{\"a\":1}\n{\"b\":\"日本 🦀\"}\n",
        "{\"a\":1}\r\n{\"b\":\"日本 🦀\"}\r\n",
        "\n\n{\"a\":1}\n   \n\r\n{\"b\":\"日本 🦀\"}\n\n",
        "  {\"a\":1}  \n\t{\"b\":\"日本 🦀\"}\r\n  ",
    ];
    for payload in cases {
        assert_eq!(split_ndjson(payload.as_bytes(), MAX), expected, "{payload:?}");
    }
}

#[test]
fn a_lone_cr_does_not_end_an_ndjson_line() {
    assert_eq!(split_ndjson(b"{\"a\":1}\r{\"b\":2}\n", MAX), split(&["{\"a\":1}\r{\"b\":2}"], Ending::Clean, 0));
}

#[test]
fn an_unterminated_last_ndjson_line_is_handed_over_and_reported_truncated() {
    assert_eq!(split_ndjson(b"{\"a\":1}\n{\"b\":2}", MAX), split(&[r#"{"a":1}"#, r#"{"b":2}"#], Ending::Truncated, 0));
    assert_eq!(split_ndjson(b"{\"a\":1}\n{\"b\":", MAX), split(&[r#"{"a":1}"#, r#"{"b":"#], Ending::Truncated, 0));
    assert_eq!(split_ndjson(b"", MAX), split(&[], Ending::Clean, 0));
}

#[test]
fn an_ollama_ndjson_stream_yields_every_line() {
    let lines = [
        r#"{"model":"llama3.2","created_at":"2025-01-01T00:00:00.1Z","message":{"role":"assistant","content":"Sí, "},"done":false}"#,
        r#"{"model":"llama3.2","created_at":"2025-01-01T00:00:00.2Z","message":{"role":"assistant","content":"日本 🦀"},"done":false}"#,
        r#"{"model":"llama3.2","created_at":"2025-01-01T00:00:00.3Z","message":{"role":"assistant","content":""},"done_reason":"stop","done":true,"prompt_eval_count":26,"eval_count":12}"#,
    ];
    let payload: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let outcome = split_ndjson(payload.as_bytes(), MAX);
    assert_eq!(outcome, split(&lines, Ending::Clean, 0));
    let last: serde_json::Value = serde_json::from_str(&outcome.values[2]).unwrap();
    assert_eq!(last["eval_count"], 12);
}

#[test]
fn an_oversized_ndjson_line_is_skipped_and_counted() {
    let payload = b"{\"a\":1}\n{\"b\":\"0123456789\"}\n{\"c\":3}\n";
    assert_eq!(split_ndjson(payload, 10), split(&[r#"{"a":1}"#, r#"{"c":3}"#], Ending::Clean, 1));
    assert_eq!(split_ndjson(b"{\"a\":1}\n{\"b\":\"0123456789\"", 10), split(&[r#"{"a":1}"#], Ending::Truncated, 1));
    let big = format!("{{\"a\":1}}\n{{\"big\":\"{}\"}}\n{{\"c\":3}}\n", "z".repeat(64 * 1024));
    assert_eq!(split_ndjson(big.as_bytes(), 1024), split(&[r#"{"a":1}"#, r#"{"c":3}"#], Ending::Clean, 1));
}
