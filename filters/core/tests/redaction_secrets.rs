//! Issue 20: a private key streamed by the model reached the access log through the completion
//! capture (and the client, past the stream window). Multi-line secrets in streams are masked
//! from their BEGIN line to their END line or the end of the stream, whatever the window, in
//! text and in streamed tool-call arguments, on every wire the redactor rewrites; every text the
//! filter writes (captures) or hashes (the fingerprint input) is checked after assembly.
//!
//! The keys are test-only keys generated with openssl and ssh-keygen
//! (tests/fixtures/keys/README.md); they protect nothing.

use llmobs_core::filter_state as fs;
use llmobs_core::redaction::PiiRedaction;
use llmobs_testkit::{chunkings, FakeHost};
use serde_json::{json, Value};

const KEY_B64: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

fn fixture_key(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/keys").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// RSA-2048 (PKCS#8, the issue's key), RSA-4096 (PKCS#1), EC P-256, OpenSSH ed25519.
const KEYS: [&str; 4] = [
    "test-only-rsa2048-pkcs8.pem",
    "test-only-rsa4096-pkcs1.pem",
    "test-only-ec-p256.pem",
    "test-only-ed25519-openssh.pem",
];

/// Pieces of a key's body that must not appear anywhere: every 16-character window of its
/// base64 (line breaks removed), stepping by 8, so that any leaked run of 24 or more base64
/// characters of it is found however it was cut or split into lines.
fn key_fragments(pem: &str) -> Vec<String> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let chars: Vec<char> = body.chars().collect();
    chars.windows(16).step_by(8).map(|w| w.iter().collect()).collect()
}

/// `text` with JSON escapes of line breaks and all whitespace removed, so a key's lines join.
fn joined(text: &str) -> String {
    text.replace("\\n", "").chars().filter(|c| !c.is_whitespace()).collect()
}

fn assert_no_key(pem: &str, haystack: &str, what: &str) {
    let hay = joined(haystack);
    for fragment in key_fragments(pem) {
        assert!(!hay.contains(&fragment), "{what}: the key's `{fragment}` leaked");
    }
}

fn host(path: &str) -> FakeHost {
    let mut host = FakeHost::with_request_headers(&[(":path", path), ("content-type", "application/json")]);
    host.env.insert("LLMOBS_PII_KEY".into(), KEY_B64.as_bytes().to_vec());
    host.set_property(&["plugin_name"], b"pii");
    host.set_property(&[fs::SAMPLED], b"true");
    host
}

/// The demo's choices for this issue: `both` mode, private keys blocked, capture on.
fn config(stream: Value) -> Value {
    json!({"mode": "both", "entities": {"private_key": "block", "email": "pseudonymize"},
           "pseudonym_key": {"env": "LLMOBS_PII_KEY", "id": "k1"},
           "capture": {"parts": ["last_user", "system", "completion"], "max_bytes": 512},
           "stream": stream})
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    Chat,
    Responses,
    Anthropic,
    Gemini,
    Bedrock,
}

impl Wire {
    fn path(self) -> &'static str {
        match self {
            Wire::Chat => "/v1/chat/completions",
            Wire::Responses => "/v1/responses",
            Wire::Anthropic => "/v1/messages",
            Wire::Gemini => "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            Wire::Bedrock => "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Wire::Bedrock => "application/vnd.amazon.eventstream",
            _ => "text/event-stream",
        }
    }
}

/// One AWS event-stream frame (the layout tests/fixtures/providers/make_eventstream.py writes).
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

/// The JSON payload of every frame of a Bedrock stream, each checked (both CRCs) by the decoder.
fn frame_payloads(bytes: &[u8]) -> Vec<Value> {
    let mut decoder = llmobs_core::framing::event_stream::EventStreamDecoder::new(1 << 20);
    let mut out = Vec::new();
    decoder
        .push(bytes, &mut |m| out.push(serde_json::from_slice(m.payload()).unwrap()))
        .unwrap_or_else(|e| panic!("the rewritten stream does not decode: {e}"));
    out
}

fn sse(events: &[(Option<&str>, Value)], done: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in events {
        if let Some(name) = name {
            out.extend_from_slice(format!("event: {name}\n").as_bytes());
        }
        out.extend_from_slice(format!("data: {data}\n\n").as_bytes());
    }
    if done {
        out.extend_from_slice(b"data: [DONE]\n\n");
    }
    out
}

/// `text` cut into pieces of `size` characters.
fn pieces(text: &str, size: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// A stream that sends `text` as the model's reply (or, with `tool`, as a tool call's JSON
/// arguments `{"pem": text}`), `size` characters per event, the way each provider streams.
fn stream(wire: Wire, text: &str, tool: bool, size: usize) -> Vec<u8> {
    let args = json!({"pem": text}).to_string();
    let streamed = if tool { args.as_str() } else { text };
    stream_parts(wire, text, tool, &pieces(streamed, size))
}

/// [`stream`] with the streamed text (the reply, or the tool call's JSON arguments) already cut
/// into the events' pieces.
fn stream_parts(wire: Wire, text: &str, tool: bool, parts: &[String]) -> Vec<u8> {
    let streamed: String = parts.concat();
    let mut events: Vec<(Option<&str>, Value)> = Vec::new();
    match wire {
        Wire::Chat => {
            events.push((None, json!({"id": "c", "choices": [{"index": 0, "delta": {"role": "assistant"}}]})));
            for p in parts {
                let delta = if tool {
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": p}}]})
                } else {
                    json!({"content": p})
                };
                events.push((None, json!({"id": "c", "choices": [{"index": 0, "delta": delta}]})));
            }
            let reason = if tool { "tool_calls" } else { "stop" };
            events.push((None, json!({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]})));
            return sse(&events, true);
        }
        Wire::Responses => {
            let (delta, done, field) = if tool {
                ("response.function_call_arguments.delta", "response.function_call_arguments.done", "arguments")
            } else {
                ("response.output_text.delta", "response.output_text.done", "text")
            };
            for p in parts {
                events.push((Some(delta), json!({"type": delta, "output_index": 0, "content_index": 0, "delta": p})));
            }
            events.push((
                Some(done),
                json!({"type": done, "output_index": 0, "content_index": 0, field: streamed.as_str()}),
            ));
            let item = if tool {
                json!({"type": "function_call", "name": "save", "arguments": streamed.as_str()})
            } else {
                json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": streamed.as_str()}]})
            };
            events.push((
                Some("response.completed"),
                json!({"type": "response.completed", "response": {"status": "completed", "output": [item]}}),
            ));
        }
        Wire::Anthropic => {
            events.push((Some("message_start"), json!({"type": "message_start", "message": {"content": []}})));
            let block = if tool {
                json!({"type": "tool_use", "id": "t", "name": "save", "input": {}})
            } else {
                json!({"type": "text", "text": ""})
            };
            events.push((
                Some("content_block_start"),
                json!({"type": "content_block_start", "index": 0, "content_block": block}),
            ));
            for p in parts {
                let delta = if tool {
                    json!({"type": "input_json_delta", "partial_json": p})
                } else {
                    json!({"type": "text_delta", "text": p})
                };
                events.push((
                    Some("content_block_delta"),
                    json!({"type": "content_block_delta", "index": 0, "delta": delta}),
                ));
            }
            events.push((Some("content_block_stop"), json!({"type": "content_block_stop", "index": 0})));
            events
                .push((Some("message_delta"), json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}})));
            events.push((Some("message_stop"), json!({"type": "message_stop"})));
        }
        Wire::Bedrock => {
            let mut out = frame("messageStart", &json!({"role": "assistant"}));
            if tool {
                let start = json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "t", "name": "save"}}});
                out.extend(frame("contentBlockStart", &start));
            }
            for p in parts {
                let delta = if tool { json!({"toolUse": {"input": p}}) } else { json!({"text": p}) };
                out.extend(frame("contentBlockDelta", &json!({"contentBlockIndex": 0, "delta": delta, "p": "abc"})));
            }
            out.extend(frame("contentBlockStop", &json!({"contentBlockIndex": 0})));
            out.extend(frame("messageStop", &json!({"stopReason": if tool { "tool_use" } else { "end_turn" }})));
            out.extend(frame("metadata", &json!({"usage": {"inputTokens": 5, "outputTokens": 9, "totalTokens": 14}})));
            return out;
        }
        Wire::Gemini => {
            if tool {
                // Gemini sends a function call whole, in one chunk.
                let call = json!({"functionCall": {"name": "save", "args": {"pem": text}}});
                events.push((
                    None,
                    json!({"candidates": [{"index": 0, "content": {"role": "model", "parts": [call]}, "finishReason": "STOP"}]}),
                ));
            } else {
                for p in parts {
                    events.push((
                        None,
                        json!({"candidates": [{"index": 0, "content": {"role": "model", "parts": [{"text": p}]}}]}),
                    ));
                }
                events.push((
                    None,
                    json!({"candidates": [{"index": 0, "content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP"}]}),
                ));
            }
        }
    }
    sse(&events, false)
}

/// Every string in every event the client receives, in order, one per line.
fn client_strings(wire: Wire, bytes: &[u8]) -> String {
    fn walk(v: &Value, out: &mut String) {
        match v {
            Value::String(s) => {
                out.push_str(s);
                out.push('\n');
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            Value::Object(map) => map.values().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = String::new();
    for v in events_of(wire, bytes) {
        walk(&v, &mut out);
    }
    out
}

/// The data of every event the client receives.
fn events_of(wire: Wire, bytes: &[u8]) -> Vec<Value> {
    if wire == Wire::Bedrock {
        return frame_payloads(bytes);
    }
    String::from_utf8_lossy(bytes)
        .lines()
        .filter_map(|line| line.strip_prefix("data: ").and_then(|d| serde_json::from_str::<Value>(d).ok()))
        .collect()
}

/// The streamed channel's text as the client reassembles it from the deltas.
fn streamed_text(wire: Wire, tool: bool, bytes: &[u8]) -> String {
    let mut text = String::new();
    for v in events_of(wire, bytes) {
        let piece = match (wire, tool) {
            (Wire::Bedrock, false) => v["delta"]["text"].as_str(),
            (Wire::Bedrock, true) => v["delta"]["toolUse"]["input"].as_str(),
            (Wire::Chat, false) => v["choices"][0]["delta"]["content"].as_str(),
            (Wire::Chat, true) => v["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str(),
            (Wire::Responses, _) if v["type"].as_str().is_some_and(|t| t.ends_with(".delta")) => v["delta"].as_str(),
            (Wire::Anthropic, false) => v["delta"]["text"].as_str(),
            (Wire::Anthropic, true) => v["delta"]["partial_json"].as_str(),
            (Wire::Gemini, false) => v["candidates"][0]["content"]["parts"][0]["text"].as_str(),
            (Wire::Gemini, true) => {
                text.push_str(&v["candidates"][0]["content"]["parts"][0]["functionCall"]["args"].to_string());
                None
            }
            _ => None,
        };
        text.push_str(piece.unwrap_or_default());
    }
    text
}

struct Outcome {
    out: Vec<u8>,
    sinks: String,
    detections: Option<String>,
    outcome: Option<String>,
    capture: Option<String>,
}

/// One exchange: a request, then `body` as the streamed response in `chunks`.
fn exchange(filter: &PiiRedaction, host: &mut FakeHost, wire: Wire, chunks: &[&[u8]]) -> Outcome {
    host.next_request(&[(":path", wire.path()), ("content-type", "application/json")]);
    let mut ex = filter.on_request_headers(host);
    let request = json!({"model": "m", "messages": [{"role": "user", "content": "show me the deploy key"}]});
    filter.on_request_body(host, &mut ex, request.to_string().as_bytes());
    host.add_response_header(":status", "200");
    host.add_response_header("content-type", wire.content_type());
    filter.on_response_headers(host, &mut ex);
    assert!(ex.rewrites_stream(), "{wire:?}");
    let mut out = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        out.extend(filter.on_response_chunk(host, &mut ex, chunk, i + 1 == chunks.len()).unwrap_or_default());
    }
    filter.finish(host, &mut ex);
    Outcome {
        out,
        sinks: host.all_sinks(),
        detections: host.filter_state_str(fs::PII_DETECTIONS),
        outcome: host.filter_state_str(fs::PII_OUTCOME),
        capture: host.filter_state_str(fs::CAPTURE_COMPLETION),
    }
}

const WIRES: [Wire; 5] = [Wire::Chat, Wire::Responses, Wire::Anthropic, Wire::Gemini, Wire::Bedrock];

/// Default limits (the key longer than the 256-byte window, more events than the 256 held),
/// tight ones (window 64, 8 events), and roomy ones that hold a whole key.
fn stream_limits() -> [Value; 3] {
    [
        json!({}),
        json!({"window_bytes": 64, "max_held_events": 8, "max_held_bytes": 4096}),
        json!({"window_bytes": 64, "max_held_events": 100000, "max_held_bytes": 1048576}),
    ]
}

#[test]
fn a_streamed_private_key_reaches_neither_the_client_nor_any_sink_on_any_wire_split_or_window() {
    for key_name in KEYS {
        let pem = fixture_key(key_name);
        let reply = format!("Here is the key you asked for:\n{pem}\nKeep it safe. Mail ops@example.com if lost.");
        for limits in stream_limits() {
            let mut host = host("/");
            let filter = PiiRedaction::new(config(limits.clone()).to_string().as_bytes(), &mut host).unwrap();
            for wire in WIRES {
                for tool in [false, true] {
                    let body = stream(wire, &reply, tool, 4);
                    let mut first: Option<Vec<u8>> = None;
                    for chunks in chunkings(&body) {
                        let what = format!("{key_name} {wire:?} tool={tool} {limits}");
                        let o = exchange(&filter, &mut host, wire, &chunks);
                        assert_no_key(&pem, &client_strings(wire, &o.out), &format!("{what}: client"));
                        assert_no_key(&pem, &o.sinks, &format!("{what}: sinks"));
                        assert!(!o.sinks.contains("PRIVATE KEY-----"), "{what}: a BEGIN line in a sink");
                        assert_eq!(o.detections.as_deref(), Some("response:email=1,response:private_key=1"), "{what}");
                        assert_eq!(o.outcome.as_deref(), Some("redacted"), "{what}");
                        let text = streamed_text(wire, tool, &o.out);
                        assert!(text.contains("[BLOCKED:PRIVATE_KEY]"), "{what}: {text}");
                        assert!(text.contains("Keep it safe."), "{what}: the text after the key arrives: {text}");
                        if tool {
                            let args: Value =
                                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: {e}: {text}"));
                            assert!(args["pem"].as_str().unwrap().contains("[BLOCKED:PRIVATE_KEY]"), "{what}");
                        } else {
                            let capture = o.capture.clone().unwrap_or_default();
                            // The stream's capture is its text as sent: the block's placeholder.
                            assert!(capture.contains("[BLOCKED:PRIVATE_KEY]"), "{what}: {capture}");
                            assert!(capture.len() <= 512);
                        }
                        match &first {
                            None => first = Some(o.out),
                            Some(f) => assert_eq!(f, &o.out, "{what}: every chunk split gives the same bytes"),
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn a_streamed_key_is_masked_at_every_single_split_point() {
    // The shortest key, in 3-character events under the tight limits: every split point of the
    // whole stream, both text and tool call, OpenAI chat, Anthropic and Bedrock.
    let pem = fixture_key("test-only-ec-p256.pem");
    let reply = format!("key:\n{pem}\ndone");
    let mut host = host("/");
    let limits = json!({"window_bytes": 64, "max_held_events": 8, "max_held_bytes": 4096});
    let filter = PiiRedaction::new(config(limits).to_string().as_bytes(), &mut host).unwrap();
    for wire in [Wire::Chat, Wire::Anthropic, Wire::Bedrock] {
        for tool in [false, true] {
            let body = stream(wire, &reply, tool, 3);
            let whole = exchange(&filter, &mut host, wire, &[&body]).out;
            assert_no_key(&pem, &client_strings(wire, &whole), "whole");
            // Bedrock's frames are long and a split inside one only waits for the rest: every
            // seventh point there.
            let step = if wire == Wire::Bedrock { 7 } else { 1 };
            for at in (1..body.len()).step_by(step) {
                let (a, b) = body.split_at(at);
                let o = exchange(&filter, &mut host, wire, &[a, b]);
                assert_eq!(o.out, whole, "{wire:?} tool={tool} split at {at}");
                assert_eq!(o.detections.as_deref(), Some("response:private_key=1"));
            }
        }
    }
}

#[test]
fn a_streamed_key_that_never_ends_is_masked_to_the_end_of_the_stream() {
    let pem = fixture_key("test-only-rsa2048-pkcs8.pem");
    // Cut by max_tokens halfway through the key.
    let reply = format!("Here:\n{}", &pem[..pem.len() / 2]);
    let mut host = host("/");
    let filter = PiiRedaction::new(config(json!({})).to_string().as_bytes(), &mut host).unwrap();
    for wire in WIRES {
        let body = stream(wire, &reply, false, 5);
        let o = exchange(&filter, &mut host, wire, &[&body]);
        assert_no_key(&pem, &client_strings(wire, &o.out), "client");
        assert_no_key(&pem, &o.sinks, "sinks");
        assert_eq!(streamed_text(wire, false, &o.out), "Here:\n[BLOCKED:PRIVATE_KEY]", "{wire:?}");
        assert_eq!(o.capture.as_deref(), Some("Here:\n[BLOCKED:PRIVATE_KEY]"), "{wire:?}");
        assert_eq!(o.detections.as_deref(), Some("response:private_key=1"));
    }
}

#[test]
fn a_certificate_is_left_alone_and_text_after_a_closed_key_flows_again() {
    let cert = fixture_key("test-only-certificate.pem").trim_end().to_string();
    let pem = fixture_key("test-only-ec-p256.pem").trim_end().to_string();
    let reply = format!("cert:\n{cert}\nkey:\n{pem}\nafter the key, {cert}");
    let mut host = host("/");
    let filter = PiiRedaction::new(config(json!({})).to_string().as_bytes(), &mut host).unwrap();
    let o = exchange(&filter, &mut host, Wire::Chat, &[&stream(Wire::Chat, &reply, false, 4)]);
    assert_eq!(
        streamed_text(Wire::Chat, false, &o.out),
        format!("cert:\n{cert}\nkey:\n[BLOCKED:PRIVATE_KEY]\nafter the key, {cert}")
    );
}

#[test]
fn the_fuzz_finding_a_glued_address_in_responses_instructions_never_reaches_the_system_capture() {
    // fuzz/request_redaction's finding (issue 20): `alice@example.com65r` in `instructions`.
    use base64::Engine;
    let input = base64::engine::general_purpose::STANDARD.decode("AXsKICAibW9kZWwiOiAibzQtbWluaSIsCiAgInJlYXNvbmluZyI6IHsKICAgICJlZmZvcnQiOiAibG93IgogIH0sCiAgImluc3RydWN0aW9ucyI6ICJhbGljZUBleGFtcGxlLmNvbTY1ciBvbW1lbGllciB3aG8ga25vcmUgYSBjb25jaXNlIHQgdHJhdmVZb3UgYSxlIGFhcmFpcz8iCn0K").unwrap();
    let body = &input[1..];
    let config = json!({"mode": "both", "default_action": "redact", "entities": {"email": "pseudonymize"},
        "pseudonym_key": {"env": "LLMOBS_PII_KEY", "id": "k1"}, "fingerprint": {"enabled": true},
        "capture": {"parts": ["last_user", "system"], "max_bytes": 64}});
    let mut host = host("/v1/responses");
    let filter = PiiRedaction::new(config.to_string().as_bytes(), &mut host).unwrap();
    let mut ex = filter.on_request_headers(&mut host);
    let verdict = filter.on_request_body(&mut host, &mut ex, body);
    filter.finish(&mut host, &mut ex);
    assert!(!host.all_sinks().contains("alice@example.com"));
    // The detector takes the glued address whole: the provider gets its pseudonym.
    let llmobs_core::redaction::RequestVerdict::Replace(sent) = verdict else { panic!("not rewritten") };
    let sent: Value = serde_json::from_slice(&sent).unwrap();
    let instructions = sent["instructions"].as_str().unwrap();
    assert!(instructions.starts_with("EMAIL_k1_") && instructions.contains(" ommelier"), "{instructions}");
    let capture = host.filter_state_str(fs::CAPTURE_SYSTEM).unwrap();
    assert!(capture.starts_with("EMAIL_k1_"), "{capture}");
    assert_eq!(host.filter_state_str(fs::PII_DETECTIONS).as_deref(), Some("request:email=1"));
}

/// One request through the filter; returns the host.
fn request(config: &Value, path: &str, body: &Value) -> FakeHost {
    let mut host = host(path);
    let filter = PiiRedaction::new(config.to_string().as_bytes(), &mut host).unwrap();
    let mut ex = filter.on_request_headers(&mut host);
    if ex.buffers_request() {
        filter.on_request_body(&mut host, &mut ex, body.to_string().as_bytes());
    } else {
        filter.on_request_chunk(&mut ex, body.to_string().as_bytes());
        filter.on_request_end(&mut host, &mut ex);
    }
    filter.finish(&mut host, &mut ex);
    host
}

#[test]
fn the_capture_check_masks_what_the_detectors_turn_down_and_counts_it() {
    // Count-only on the wire, so the captures show what the check itself did.
    for mode in ["telemetry", "both"] {
        let config = json!({"mode": mode, "default_action": "count",
            "capture": {"parts": ["last_user", "system"], "max_bytes": 4096}});
        let text = "write to bob@mail.example.net_old or use sk-short1234 \
                    -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC";
        let body =
            json!({"model": "m", "messages": [{"role": "system", "content": text}, {"role": "user", "content": text}]});
        let host = request(&config, "/v1/chat/completions", &body);
        for key in [fs::CAPTURE_LAST_USER, fs::CAPTURE_SYSTEM] {
            let capture = host.filter_state_str(key).unwrap();
            assert_eq!(capture, "write to [EMAIL]_old or use [SECRET] [PRIVATE_KEY]", "{mode}");
        }
        assert_eq!(host.counter("llmobs.pii.capture_checked.part=last_user;.result=masked;"), Some(1), "{mode}");
        assert_eq!(host.counter("llmobs.pii.capture_checked.part=system;.result=masked;"), Some(1), "{mode}");
        // The truncated key is a detection in its own right (a key missing its END line).
        assert_eq!(host.filter_state_str(fs::PII_DETECTIONS).as_deref(), Some("request:private_key=2"), "{mode}");
    }
}

#[test]
fn a_capture_cut_inside_a_value_drops_the_words_the_value_could_continue_into() {
    let config = json!({"mode": "telemetry", "capture": {"parts": ["last_user"], "max_bytes": 40}});
    // Past the cut: the bare BEGIN line of a key whose body lies beyond the capture.
    let text = format!("please rotate this now: -----BEGIN RSA PRIVATE KEY-----\n{}", "A1b2".repeat(40));
    let body = json!({"model": "m", "messages": [{"role": "user", "content": text}]});
    let host = request(&config, "/v1/chat/completions", &body);
    let capture = host.filter_state_str(fs::CAPTURE_LAST_USER).unwrap();
    assert!(!capture.contains("---") && !capture.contains("A1b2"), "{capture}");
    assert!(capture.starts_with("please rotate this now:"), "{capture}");
}

#[test]
fn a_capture_that_stays_dirty_is_withheld_and_counted() {
    // A custom rule that matches its own placeholder: no scrub can ever make the text clean.
    let config = json!({"mode": "telemetry",
        "custom_rules": [{"entity": "ticket", "pattern": "\\[?TICKET\\]?", "action": "redact"}],
        "capture": {"parts": ["last_user"], "max_bytes": 512}});
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "see TICKET please"}]});
    let host = request(&config, "/v1/chat/completions", &body);
    assert_eq!(host.filter_state_str(fs::CAPTURE_LAST_USER), None);
    assert_eq!(host.counter("llmobs.pii.capture_checked.part=last_user;.result=withheld;"), Some(1));
}

#[test]
fn the_fingerprint_input_is_checked_so_a_missed_address_does_not_vary_it() {
    let config = json!({"mode": "telemetry", "pseudonym_key": {"env": "LLMOBS_PII_KEY", "id": "k1"},
        "fingerprint": {"enabled": true}});
    let print = |who: &str| {
        let body = json!({"model": "m", "messages": [
            {"role": "system", "content": format!("You help {who}_old with billing.")},
            {"role": "user", "content": "hi"}]});
        request(&config, "/v1/chat/completions", &body).filter_state_str(fs::PROMPT_FINGERPRINT).unwrap()
    };
    assert_eq!(print("ann@example.com"), print("bob@example.org"));
    assert_ne!(print("ann@example.com"), print("nobody"));
}

#[test]
fn an_address_glued_to_digits_is_taken_whole_as_its_host_name_goes_on() {
    use llmobs_core::pii::{Detector, Entity};
    let d = Detector::new(&Entity::ALL);
    let spans = |text: &str| -> Vec<(Entity, String)> {
        d.scan(text).iter().map(|m| (m.entity, text[m.start..m.end].to_string())).collect()
    };
    // `example.com65r` is a valid host name: the address is `alice@example.com65r`.
    assert_eq!(spans("alice@example.com65r ommelier"), [(Entity::Email, "alice@example.com65r".into())]);
    assert_eq!(spans("mail bob@mx.example.org-7 now"), [(Entity::Email, "bob@mx.example.org-7".into())]);
    // A host label never ends in a hyphen: the hyphen after the address is punctuation.
    assert_eq!(spans("bob@example.org- then"), [(Entity::Email, "bob@example.org".into())]);
    // Still not an address: more domain after it, another `@`, or a glued underscore.
    assert!(spans("bob@example.com65r.c0m").is_empty());
    assert!(spans("bob@example.com65r@x").is_empty());
    assert!(spans("bob@example.com_backup").is_empty());
}

#[test]
fn a_model_name_holding_an_address_or_a_key_is_not_written_raw_by_token_accounting() {
    use llmobs_core::token_accounting::TokenAccounting;
    for (model, logged) in [
        ("alice@example.com", "_EMAIL_"),
        ("gpt-4o sk-proj-Zq8x2Lw9Rt4Yv7Bn3Mk6", "gpt-4o__SECRET_"),
        ("anthropic.claude-3-5-sonnet-20240620-v1:0", "anthropic.claude-3-5-sonnet-20240620-v1:0"),
    ] {
        let mut host = FakeHost::with_request_headers(&[(":path", "/v1/chat/completions"), (":method", "POST")]);
        let filter = TokenAccounting::new(b"", &mut host).unwrap();
        let mut ex = filter.on_request_headers(&mut host);
        let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}).to_string();
        filter.on_request_body(&mut ex, body.as_bytes(), true);
        host.add_response_header(":status", "200");
        host.add_response_header("content-type", "application/json");
        filter.on_response_headers(&mut host, &mut ex, false);
        let reply =
            json!({"id": "r", "model": model, "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}});
        filter.on_response_body(&mut host, &mut ex, reply.to_string().as_bytes(), true);
        assert_eq!(host.filter_state_str(fs::REQUEST_MODEL).as_deref(), Some(logged), "{model}");
        assert_eq!(host.filter_state_str(fs::RESPONSE_MODEL).as_deref(), Some(logged), "{model}");
        let sinks = host.all_sinks();
        assert!(!sinks.contains("alice") && !sinks.contains("sk-proj"), "{model}: {sinks}");
    }
}

#[test]
fn the_audited_entities_streamed_one_character_per_event_reach_neither_the_client_nor_a_capture() {
    // Issue 20's audit: the families the sweep did not plant (phones, IPs, IBAN, AWS, GitHub,
    // Slack, Google, JWT, a custom rule), streamed one character per event through a chat stream
    // with every capture part on, in both mode.
    use llmobs_core::pii::Detector;
    let values = [
        "+1 415 555 0132",
        "203.0.113.77",
        "2001:db8::1",
        "GB82 WEST 1234 5698 7654 32",
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_R2d4T6y8U0i2O4p6A8s0D2f4G6h8J0k2L4z6",
        "xoxb-2048163264-1024517203-Zx8Qw7Er6Ty5Ui4Op3As2Df1",
        "AIzaSyB1c2D3e4F5g6H7i8J9k0L1m2N3o4P5q6R",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.",
        "EMP-004211",
    ];
    let detector = Detector::default();
    for v in &values[..values.len() - 1] {
        let found = detector.scan(v);
        assert!(found.len() == 1 && found[0].start == 0 && found[0].end == v.len(), "{v} is not a whole detection");
    }
    let config = json!({"mode": "both", "default_action": "redact",
        "custom_rules": [{"entity": "employee_id", "pattern": "EMP-[0-9]{6}", "action": "redact"}],
        "capture": {"parts": ["last_user", "system", "completion"], "max_bytes": 4096}});
    let mut host = host("/");
    let filter = PiiRedaction::new(config.to_string().as_bytes(), &mut host).unwrap();
    let reply = values.join(" then ");
    let body = stream(Wire::Chat, &reply, false, 1);
    for chunks in chunkings(&body).into_iter().step_by(3) {
        let o = exchange(&filter, &mut host, Wire::Chat, &chunks);
        let client = client_strings(Wire::Chat, &o.out);
        let joined: String = client.lines().collect();
        for v in values {
            assert!(!joined.contains(v), "{v} reached the client: {joined}");
            assert!(!o.sinks.contains(v), "{v} reached a sink");
        }
        assert!(
            o.capture.as_deref().is_some_and(|c| c.contains("[PHONE]") && c.contains("[EMPLOYEE_ID]")),
            "{:?}",
            o.capture
        );
    }
}

// ---- the second review of streamed keys: a key opened where another closes, a BEGIN line cut
// ---- by the caps before the rest of its key arrives in one event, glued BEGIN markers

/// Every run of base64 characters (letters, digits, `+`, `/`, `=`) in `streamed`, once its
/// placeholders are removed, must be a word of the text around the keys (`around`) or a prefix of
/// a PEM marker word (a BEGIN line cut by the caps goes out up to the cut): any other run is a
/// piece of a key's body, however short.
fn assert_no_key_body(streamed: &str, around: &str, what: &str) {
    const PEM_WORDS: [&str; 8] = ["BEGIN", "END", "RSA", "EC", "OPENSSH", "PRIVATE", "KEY", "X"];
    fn runs(text: &str) -> Vec<&str> {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || "+/=".contains(c))).filter(|r| !r.is_empty()).collect()
    }
    let words = runs(around);
    let masked = streamed.replace("[BLOCKED:PRIVATE_KEY]", " ");
    for run in runs(&masked) {
        let ok = words.contains(&run) || PEM_WORDS.iter().any(|w| w.starts_with(run));
        assert!(ok, "{what}: `{run}` of a key's body was released: {streamed:?}");
    }
}

/// `text` cut at `cuts` (char offsets, ascending) into events.
fn cut_at(text: &str, cuts: &[usize]) -> Vec<String> {
    let mut out = Vec::new();
    let mut from = 0;
    for &at in cuts.iter().chain(std::iter::once(&text.len())) {
        if at > from {
            out.push(text[from..at].to_string());
            from = at;
        }
    }
    out
}

/// Streams `parts` as a reply on `wire`, whole and split at every byte offset of the stream
/// when `every_byte`, and checks each client text with [`assert_no_key_body`]. Returns the text
/// the client reassembles (the same for every split).
fn masked_everywhere(
    filter: &PiiRedaction,
    host: &mut FakeHost,
    wire: Wire,
    parts: &[String],
    around: &str,
    every_byte: bool,
    what: &str,
) -> String {
    let text: String = parts.concat();
    let body = stream_parts(wire, &text, false, parts);
    let whole = exchange(filter, host, wire, &[&body]);
    let streamed = streamed_text(wire, false, &whole.out);
    assert_no_key_body(&streamed, around, what);
    assert!(!whole.sinks.contains("PRIVATE KEY-----"), "{what}: a BEGIN line in a sink");
    if every_byte {
        for at in 1..body.len() {
            let (a, b) = body.split_at(at);
            let o = exchange(filter, host, wire, &[a, b]);
            assert_eq!(o.out, whole.out, "{what}: split at byte {at}");
        }
    }
    streamed
}

#[test]
fn a_second_key_opened_in_the_text_that_closes_the_first_is_masked_from_its_begin_line() {
    // The first key is open (its start released) when an event brings its END line, some text
    // and the next key's BEGIN line and first body line, up to a line end, so that all of it is
    // released at once; the second key goes on in later events.
    let first = fixture_key("test-only-ed25519-openssh.pem");
    let second = fixture_key("test-only-ec-p256.pem");
    let around = "first:\n text \nend.";
    let reply = format!("first:\n{first} text {second}\nend.");
    // The first event ends after the first key's first body line: its start goes out with it.
    let a = "first:\n".len() + first.find('\n').unwrap() + 1 + 71;
    assert_eq!(&reply[a - 1..a], "\n");
    for limits in stream_limits() {
        let mut host = host("/");
        let filter = PiiRedaction::new(config(limits.clone()).to_string().as_bytes(), &mut host).unwrap();
        for wire in [Wire::Chat, Wire::Anthropic] {
            for b in a + 1..reply.len() {
                // Small events before and after the one that closes the first key (tight caps
                // force the first key's start out before that event arrives), or the rest whole.
                let mut small: Vec<usize> = (7..a).step_by(7).collect();
                small.extend([a, b]);
                small.extend((b + 7..reply.len()).step_by(7));
                for cuts in [vec![a, b], small] {
                    let what = format!("{wire:?} {limits} cuts at {a}, {b}");
                    let parts = cut_at(&reply, &cuts);
                    let streamed = masked_everywhere(&filter, &mut host, wire, &parts, around, false, &what);
                    assert!(streamed.ends_with("\nend."), "{what}: {streamed:?}");
                }
            }
        }
    }
    // The brief's own case under tight caps: the first key's start forced out, then one event
    // with its END line, text and the second key's BEGIN line and first body line (past the
    // context kept before held text), then the rest in small events; at every byte split.
    let mut host = host("/");
    let filter = PiiRedaction::new(config(stream_limits()[1].clone()).to_string().as_bytes(), &mut host).unwrap();
    let b = reply.find("-----BEGIN EC").unwrap() + second.find('\n').unwrap() + 1 + 65;
    assert_eq!(&reply[b - 1..b], "\n");
    let mut cuts: Vec<usize> = (7..a).step_by(7).collect();
    cuts.extend([a, b]);
    cuts.extend((b + 7..reply.len()).step_by(7));
    for wire in [Wire::Chat, Wire::Anthropic] {
        let parts = cut_at(&reply, &cuts);
        let streamed = masked_everywhere(&filter, &mut host, wire, &parts, around, true, &format!("{wire:?}"));
        assert_eq!(streamed, "first:\n[BLOCKED:PRIVATE_KEY]\n text [BLOCKED:PRIVATE_KEY]\n\nend.", "{wire:?}");
    }
}

#[test]
fn a_begin_line_cut_by_the_caps_before_the_rest_of_its_key_arrives_at_once_is_still_masked() {
    // Small events while the BEGIN line arrives (the caps force part of it out), then the rest
    // of the key, END line included, in one event: the key must not go out because its start
    // was already released.
    let pem = fixture_key("test-only-ec-p256.pem");
    let around = "Here is the key:\ndone";
    let reply = format!("Here is the key:\n{pem}done");
    let begin = reply.find("-----BEGIN").unwrap();
    for limits in stream_limits() {
        let mut host = host("/");
        let filter = PiiRedaction::new(config(limits.clone()).to_string().as_bytes(), &mut host).unwrap();
        for wire in [Wire::Chat, Wire::Anthropic] {
            for at in 1..reply.len() {
                let mut parts = pieces(&reply[..at], 3);
                parts.push(reply[at..].to_string());
                let what = format!("{wire:?} {limits} small events up to {at}");
                let every_byte = at == begin + "-----BEGIN EC PRIV".len();
                let streamed = masked_everywhere(&filter, &mut host, wire, &parts, around, every_byte, &what);
                assert!(streamed.ends_with("done"), "{what}: {streamed:?}");
            }
        }
    }
}

#[test]
fn a_key_glued_to_a_junk_begin_line_is_found_and_masked_in_a_stream() {
    let pem = fixture_key("test-only-ec-p256.pem");
    // `-----BEGIN X----` + `-----BEGIN EC ...`: the junk line's closing dashes run into the key's.
    let closed = format!("see -----BEGIN X----{pem}done");
    let open = format!("see -----BEGIN X----{}", &pem[..pem.len() / 2]);
    assert!(closed.contains("-----BEGIN X---------BEGIN EC PRIVATE KEY-----\nMHcC"));
    for reply in [&closed, &open] {
        let around = "see done";
        for limits in stream_limits() {
            let mut host = host("/");
            let filter = PiiRedaction::new(config(limits.clone()).to_string().as_bytes(), &mut host).unwrap();
            for wire in [Wire::Chat, Wire::Anthropic] {
                for at in 1..reply.len() {
                    for parts in [cut_at(reply, &[at]), {
                        let mut p = vec![reply[..at].to_string()];
                        p.extend(pieces(&reply[at..], 5));
                        p
                    }] {
                        let what = format!("{wire:?} {limits} cut at {at}");
                        masked_everywhere(&filter, &mut host, wire, &parts, around, false, &what);
                    }
                }
                let parts = pieces(reply, 4);
                let streamed = masked_everywhere(&filter, &mut host, wire, &parts, around, true, &format!("{wire:?}"));
                assert!(streamed.contains("[BLOCKED:PRIVATE_KEY]"), "{streamed:?}");
            }
        }
    }
}
