//! Streaming redaction: never panics on any bytes for any wire, stays within its caps, forwards
//! the input unchanged when the editor finds nothing, and gives the same output whether the input
//! arrives whole or split at any point. And (issue 20) a private key planted anywhere in a reply
//! streamed through the whole filter reaches no sink and, in traffic mode, not the client, on
//! any wire (Bedrock's binary event stream included), in text or a tool call, at any event size,
//! split and caps.
//!
//! Input: byte 0 picks the split point, byte 1 the wire (low 3 bits) and tight or default limits
//! (bit 3; tight limits reach the forced releases and the oversized-event path quickly), and, for
//! the planted key, text or tool call and the event size (bits 4-6); the rest is the stream, and
//! for the planted key the reply's text around it, whose first byte also picks the plant (one
//! key, two keys with a little text between them, a key glued to a junk BEGIN line, half a key),
//! the keys, and how the reply is cut into events (even events, small events up to a point in
//! the key then the rest at once, one line per event, long events). No run of 10 characters of
//! a planted key's body may reach the client or a sink (unless the fuzzed text holds it).
#![no_main]
use libfuzzer_sys::fuzz_target;
use llmobs_core::filter_state as fs;
use llmobs_core::pii::{Detector, Entity};
use llmobs_core::redaction::stream::{Edit, Editor, StreamLimits, StreamRedactor};
use llmobs_core::redaction::PiiRedaction;
use llmobs_core::token_accounting::provider::Wire;
use llmobs_testkit::FakeHost;
use serde_json::{json, Value};
use std::sync::OnceLock;

static DETECTOR: OnceLock<Detector> = OnceLock::new();

const WIRES: [Wire; 5] =
    [Wire::OpenAiChat, Wire::OpenAiResponses, Wire::AnthropicMessages, Wire::Gemini, Wire::BedrockConverse];

/// Test-only keys (tests/fixtures/keys/README.md).
const KEYS: [&str; 3] = [
    include_str!("../../tests/fixtures/keys/test-only-ec-p256.pem"),
    include_str!("../../tests/fixtures/keys/test-only-rsa2048-pkcs8.pem"),
    include_str!("../../tests/fixtures/keys/test-only-ed25519-openssh.pem"),
];

fn run(wire: Wire, limits: StreamLimits, chunks: &[&[u8]], editor: &mut Editor<'_>) -> (Vec<u8>, Vec<u16>) {
    let mut redactor = StreamRedactor::new(wire, limits);
    let (mut bytes, mut committed) = (Vec::new(), Vec::new());
    for chunk in chunks {
        let pushed = redactor.push(chunk, editor);
        bytes.extend(pushed.bytes);
        committed.extend(pushed.committed);
        assert!(redactor.held_events() <= limits.max_held_events);
        assert!(redactor.held_bytes() <= limits.max_held_bytes + limits.max_event_bytes + chunk.len());
    }
    let pushed = redactor.finish(editor);
    bytes.extend(pushed.bytes);
    committed.extend(pushed.committed);
    assert!(redactor.captured().len() <= limits.capture_bytes);
    (bytes, committed)
}

fuzz_target!(|data: &[u8]| {
    let [at, mode, body @ ..] = data else { return };
    let split = usize::from(*at) % (body.len() + 1);
    let (a, b) = body.split_at(split);
    let wire = WIRES[usize::from(mode & 7) % WIRES.len()];
    let tight = mode & 8 != 0;
    let limits = if tight {
        StreamLimits {
            window_bytes: 16,
            max_held_events: 4,
            max_held_bytes: 512,
            max_event_bytes: 256,
            capture_bytes: 7,
            original_bytes: 300,
        }
    } else {
        StreamLimits { capture_bytes: 64, ..StreamLimits::default() }
    };

    let mut none = |_: &str| Vec::new();
    assert_eq!(run(wire, limits, &[body], &mut none).0, body);
    assert_eq!(run(wire, limits, &[a, b], &mut none).0, body);

    let detector = DETECTOR.get_or_init(|| Detector::new(&Entity::ALL));
    let mut redact = |text: &str| -> Vec<Edit> {
        detector
            .scan(text)
            .into_iter()
            .map(|m| Edit {
                start: m.start,
                end: m.end,
                replacement: Some(format!("[{}]", m.entity.label())),
                kind: m.entity as u16,
                closes_with: None,
            })
            .collect()
    };
    assert_eq!(run(wire, limits, &[body], &mut redact), run(wire, limits, &[a, b], &mut redact));

    // The planted key is the slow part (thousands of events through the filter): short inputs
    // only, so the properties above keep their pace on the large recorded streams.
    if body.len() <= 512 {
        planted_key(*at, *mode, body);
    }
});

// ---- a private key planted in a streamed reply, through the whole filter ----------------------

fn host(path: &str) -> FakeHost {
    let mut host = FakeHost::with_request_headers(&[(":path", path), ("content-type", "application/json")]);
    host.env.insert("K".into(), b"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_vec());
    host.set_property(&[fs::SAMPLED], b"true");
    host
}

fn make_filter(stream: Value) -> Option<PiiRedaction> {
    let config = json!({"mode": "both", "entities": {"private_key": "block", "email": "pseudonymize"},
        "pseudonym_key": {"env": "K", "id": "k1"},
        "capture": {"parts": ["completion"], "max_bytes": 256}, "stream": stream});
    PiiRedaction::new(config.to_string().as_bytes(), &mut host("/")).ok()
}

thread_local! {
    // Compiled once, as in a VM: default caps, and caps of three events (forced releases).
    static FILTERS: [Option<PiiRedaction>; 2] = [
        make_filter(json!({})),
        make_filter(json!({"window_bytes": 64, "max_held_events": 3, "max_held_bytes": 2048})),
    ];
}

/// `text` without whitespace and JSON line-break escapes, so a key's lines join.
fn joined(text: &str) -> String {
    text.replace("\\n", "").chars().filter(|c| !c.is_whitespace()).collect()
}

fn sse(events: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        out.extend_from_slice(format!("data: {e}\n\n").as_bytes());
    }
    out
}

/// How a reply is cut into events.
#[derive(Clone, Copy)]
enum Layout {
    /// `size` characters per event.
    Even(usize),
    /// `size` characters per event up to character `at`, then the rest in one event (a BEGIN
    /// line cut by the caps, then the rest of the key at once).
    SmallThenRest(usize, usize),
    /// One line per event (each event ends with a line break, so all of it is released at
    /// once: an END line, text and the next BEGIN line together).
    Lines,
}

fn cut(streamed: &str, layout: Layout) -> Vec<String> {
    let chars: Vec<char> = streamed.chars().collect();
    match layout {
        Layout::Even(size) => chars.chunks(size.max(1)).map(|c| c.iter().collect()).collect(),
        Layout::SmallThenRest(size, at) => {
            let at = at.min(chars.len());
            let mut parts: Vec<String> = chars[..at].chunks(size.max(1)).map(|c| c.iter().collect()).collect();
            parts.push(chars[at..].iter().collect());
            parts
        }
        Layout::Lines => streamed.split_inclusive(['\n']).map(str::to_string).collect(),
    }
}

/// The reply streamed the way `wire` streams it, cut into events by `layout`.
fn stream(wire: usize, reply: &str, tool: bool, layout: Layout) -> (&'static str, Vec<u8>) {
    let args = json!({"pem": reply}).to_string();
    let streamed = if tool { args.as_str() } else { reply };
    let parts = cut(streamed, layout);
    let mut events = Vec::new();
    match wire {
        0 => {
            for p in &parts {
                let delta = if tool {
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": p}}]})
                } else {
                    json!({"content": p})
                };
                events.push(json!({"choices": [{"index": 0, "delta": delta}]}));
            }
            events.push(json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}));
            ("/v1/chat/completions", sse(&events))
        }
        1 => {
            let (kind, done, field) = if tool {
                ("response.function_call_arguments.delta", "response.function_call_arguments.done", "arguments")
            } else {
                ("response.output_text.delta", "response.output_text.done", "text")
            };
            for p in &parts {
                events.push(json!({"type": kind, "output_index": 0, "content_index": 0, "delta": p}));
            }
            events.push(json!({"type": done, "output_index": 0, "content_index": 0, field: streamed}));
            ("/v1/responses", sse(&events))
        }
        2 => {
            for p in &parts {
                let delta = if tool {
                    json!({"type": "input_json_delta", "partial_json": p})
                } else {
                    json!({"type": "text_delta", "text": p})
                };
                events.push(json!({"type": "content_block_delta", "index": 0, "delta": delta}));
            }
            events.push(json!({"type": "message_stop"}));
            ("/v1/messages", sse(&events))
        }
        3 => {
            for p in &parts {
                events.push(json!({"candidates": [{"index": 0, "content": {"parts": [{"text": p}]}}]}));
            }
            ("/v1beta/models/g:streamGenerateContent?alt=sse", sse(&events))
        }
        _ => {
            let mut out = Vec::new();
            for p in &parts {
                let delta = if tool { json!({"toolUse": {"input": p}}) } else { json!({"text": p}) };
                out.extend(frame("contentBlockDelta", &json!({"contentBlockIndex": 0, "delta": delta})));
            }
            out.extend(frame("messageStop", &json!({"stopReason": "end_turn"})));
            ("/model/m/converse-stream", out)
        }
    }
}

/// One AWS event-stream frame (tests/fixtures/providers/make_eventstream.py's layout).
fn frame(event_type: &str, payload: &Value) -> Vec<u8> {
    let mut headers = Vec::new();
    for (name, value) in
        [(":event-type", event_type), (":content-type", "application/json"), (":message-type", "event")]
    {
        headers.push(name.len() as u8);
        headers.extend_from_slice(name.as_bytes());
        headers.push(7);
        headers.extend_from_slice(&(value.len() as u16).to_be_bytes());
        headers.extend_from_slice(value.as_bytes());
    }
    let body = payload.to_string().into_bytes();
    let total = 12 + headers.len() + body.len() + 4;
    let mut out = Vec::new();
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&headers);
    out.extend_from_slice(&body);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Every string of every event the client receives (a Bedrock stream's frames must decode).
fn client_strings(bedrock: bool, bytes: &[u8]) -> String {
    fn walk(v: &Value, out: &mut String) {
        match v {
            Value::String(s) => out.push_str(s),
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            Value::Object(map) => map.values().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = String::new();
    if bedrock {
        let mut decoder = llmobs_core::framing::event_stream::EventStreamDecoder::new(1 << 20);
        let decoded = decoder.push(bytes, &mut |m| {
            if let Ok(v) = serde_json::from_slice::<Value>(m.payload()) {
                walk(&v, &mut out);
                out.push('\n');
            }
        });
        assert!(decoded.is_ok(), "a rewritten Bedrock stream does not decode");
        return out;
    }
    for line in String::from_utf8_lossy(bytes).lines() {
        if let Some(Ok(v)) = line.strip_prefix("data: ").map(serde_json::from_str::<Value>) {
            walk(&v, &mut out);
            out.push('\n');
        }
    }
    out
}

fn planted_key(at: u8, mode: u8, body: &[u8]) {
    let shape = body.first().copied().unwrap_or_default();
    let text = String::from_utf8_lossy(body).into_owned();
    let boundary = |mut i: usize| {
        i = i.min(text.len());
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let cut_at = boundary(usize::from(at));
    let (pre, rest) = text.split_at(cut_at);
    let (mid, post) = rest.split_at(boundary(cut_at + 12) - cut_at);
    let first = usize::from(shape >> 2) % KEYS.len();
    let (a, b) = (KEYS[first], KEYS[(first + 1) % KEYS.len()]);
    let (reply, keys): (String, Vec<&str>) = match shape & 3 {
        0 => (format!("{pre}{a}{rest}"), vec![a]),
        // The second key opens a few characters after the first one's END line.
        1 => (format!("{pre}{a}{mid}{b}{post}"), vec![a, b]),
        // The junk line's closing dashes are also the first of the key's BEGIN line.
        2 => (format!("{pre}-----BEGIN X----{a}{rest}"), vec![a]),
        // Cut by max_tokens: the block never closes.
        _ => (format!("{pre}{}", &a[..a.len() / 2]), vec![a]),
    };
    let tool = mode & 0x40 != 0;
    let size = 3 + usize::from((mode >> 4) & 3) * 5;
    let layout = match (shape >> 4) & 3 {
        0 => Layout::Even(size),
        // Up to somewhere in the first key's BEGIN line or just after it.
        1 => Layout::SmallThenRest(size, pre.chars().count() + usize::from(at) % 48),
        2 => Layout::Lines,
        _ => Layout::Even(40 + usize::from(at) % 61),
    };
    let (path, stream) = stream(usize::from(mode & 7) % 5, &reply, tool, layout);
    FILTERS.with(|filters| {
        let filter =
            filters[usize::from(mode & 8 != 0)].as_ref().unwrap_or_else(|| panic!("the fuzz configuration is refused"));
        through_filter(filter, path, &stream, at, &keys, &text);
    });
}

fn through_filter(filter: &PiiRedaction, path: &str, stream: &[u8], at: u8, keys: &[&str], text: &str) {
    let mut host = host(path);
    let mut ex = filter.on_request_headers(&mut host);
    filter.on_request_body(&mut host, &mut ex, br#"{"model":"m","messages":[{"role":"user","content":"key?"}]}"#);
    host.add_response_header(":status", "200");
    let binary = path.starts_with("/model/");
    host.add_response_header(
        "content-type",
        if binary { "application/vnd.amazon.eventstream" } else { "text/event-stream" },
    );
    filter.on_response_headers(&mut host, &mut ex);
    let split = (usize::from(at) * 7) % (stream.len() + 1);
    let (a, b) = stream.split_at(split);
    let mut out = filter.on_response_chunk(&mut host, &mut ex, a, false).unwrap_or_default();
    out.extend(filter.on_response_chunk(&mut host, &mut ex, b, true).unwrap_or_default());
    filter.finish(&mut host, &mut ex);

    // Every run of 10 characters of a key's body (line breaks removed, so a run across lines
    // counts) that the fuzzed text does not hold itself.
    let own = joined(text);
    let client = joined(&client_strings(path.starts_with("/model/"), &out));
    let sinks = joined(&host.all_sinks());
    for key in keys {
        let key_body: Vec<char> = key.lines().filter(|l| !l.starts_with("-----")).collect::<String>().chars().collect();
        for window in key_body.windows(10) {
            let fragment: String = window.iter().collect();
            if own.contains(&fragment) {
                continue;
            }
            assert!(!client.contains(&fragment), "the planted key reached the client: {fragment}");
            assert!(!sinks.contains(&fragment), "the planted key reached a sink: {fragment}");
        }
    }
}
