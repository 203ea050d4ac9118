//! `redaction::stream::StreamRedactor`: values streamed one character per event never reach the
//! client, framing and every other field stay as they were, and the output does not depend on
//! how the stream is chunked.

use llmobs_core::framing::sse::SseParser;
use llmobs_core::pii::{Detector, Entity};
use llmobs_core::redaction::stream::{Edit, Editor, StreamLimits, StreamRedactor};
use llmobs_core::token_accounting::provider::{detect, Wire};
use llmobs_testkit::{chunkings, provider_fixtures};
use serde_json::{json, Value};

const CARD: &str = "4111 1111 1111 1111";
const EMAIL: &str = "jane.doe@example.com";
/// Multi-byte characters on both sides, so one-character events land on every UTF-8 width.
const TEXT: &str = "Sure — card 4111 1111 1111 1111, mail jane.doe@example.com. Merci, 日本 🍷!";
const REDACTED: &str = "Sure — card [PAYMENT_CARD], mail [EMAIL]. Merci, 日本 🍷!";

const ALL_WIRES: [Wire; 5] =
    [Wire::OpenAiChat, Wire::OpenAiResponses, Wire::AnthropicMessages, Wire::Gemini, Wire::BedrockConverse];

fn kind(entity: Entity) -> u16 {
    Entity::ALL.iter().position(|e| *e == entity).unwrap() as u16
}

fn detector_editor(detector: &Detector) -> impl FnMut(&str) -> Vec<Edit> + '_ {
    move |text: &str| {
        detector
            .scan(text)
            .into_iter()
            .map(|m| Edit {
                start: m.start,
                end: m.end,
                replacement: Some(format!("[{}]", m.entity.label().to_uppercase())),
                kind: kind(m.entity),
                closes_with: None,
            })
            .collect()
    }
}

fn no_edits(_: &str) -> Vec<Edit> {
    Vec::new()
}

fn limits() -> StreamLimits {
    StreamLimits { capture_bytes: 4096, ..StreamLimits::default() }
}

struct Run {
    bytes: Vec<u8>,
    committed: Vec<u16>,
    redactor: StreamRedactor,
    max_held_events: usize,
}

fn run(wire: Wire, limits: StreamLimits, chunks: &[&[u8]], editor: &mut Editor<'_>) -> Run {
    let mut redactor = StreamRedactor::new(wire, limits);
    let (mut bytes, mut committed, mut max_held_events) = (Vec::new(), Vec::new(), 0);
    for chunk in chunks {
        let pushed = redactor.push(chunk, editor);
        bytes.extend(pushed.bytes);
        committed.extend(pushed.committed);
        max_held_events = max_held_events.max(redactor.held_events());
    }
    let pushed = redactor.finish(editor);
    bytes.extend(pushed.bytes);
    committed.extend(pushed.committed);
    assert_eq!(redactor.held_events(), 0);
    Run { bytes, committed, redactor, max_held_events }
}

fn redact(wire: Wire, body: &[u8]) -> Run {
    let detector = Detector::new(&Entity::ALL);
    let mut editor = detector_editor(&detector);
    run(wire, limits(), &[body], &mut editor)
}

/// (event type, data) of every event, as a client parses them.
fn events(bytes: &[u8]) -> Vec<(String, Value)> {
    let mut parser = SseParser::default();
    let mut out = Vec::new();
    parser.push(bytes, &mut |e| {
        let data = e.data_str().unwrap();
        let value = if data == "[DONE]" { json!("[DONE]") } else { serde_json::from_str(data).unwrap() };
        out.push((String::from_utf8(e.event.to_vec()).unwrap(), value));
    });
    parser.finish();
    out
}

/// Equal except for the contents of strings.
fn same_shape(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(_), Value::String(_)) => true,
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_shape(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|((kx, vx), (ky, vy))| kx == ky && same_shape(vx, vy))
        }
        _ => a == b,
    }
}

/// The keys of the string leaves that differ between two values of the same shape.
fn changed_keys(a: &Value, b: &Value, key: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::String(x), Value::String(y)) if x != y => out.push(key.to_string()),
        (Value::Array(x), Value::Array(y)) => x.iter().zip(y).for_each(|(x, y)| changed_keys(x, y, key, out)),
        (Value::Object(x), Value::Object(y)) => x.iter().zip(y).for_each(|((k, x), (_, y))| changed_keys(x, y, k, out)),
        _ => {}
    }
}

/// The streamed text of a client's view of the stream, per wire.
fn streamed_text(wire: Wire, bytes: &[u8]) -> String {
    let mut text = String::new();
    for (_, v) in events(bytes) {
        let piece = match wire {
            Wire::OpenAiChat => v["choices"][0]["delta"]["content"].as_str(),
            Wire::AnthropicMessages => v["delta"]["text"].as_str(),
            Wire::OpenAiResponses if v["type"] == "response.output_text.delta" => v["delta"].as_str(),
            Wire::Gemini => v["candidates"][0]["content"]["parts"][0]["text"].as_str(),
            _ => None,
        };
        text.push_str(piece.unwrap_or(""));
    }
    text
}

fn sse(event: Option<&str>, data: &Value, ending: &str) -> String {
    let head = event.map(|e| format!("event: {e}{ending}")).unwrap_or_default();
    format!("{head}data: {data}{ending}{ending}")
}

/// `text` one character per event, in each provider's shape (with the events around the deltas
/// that each provider sends).
fn one_char_stream(wire: Wire, text: &str) -> Vec<u8> {
    let chars: Vec<String> = text.chars().map(String::from).collect();
    let mut out = String::new();
    match wire {
        Wire::OpenAiChat => {
            let chunk = |delta: Value, finish: Value| {
                json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-4o",
                       "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}], "usage": null})
            };
            out += &sse(None, &chunk(json!({"role": "assistant", "content": ""}), Value::Null), "\n");
            for c in &chars {
                out += &sse(None, &chunk(json!({"content": c}), Value::Null), "\n");
            }
            out += &sse(None, &chunk(json!({}), json!("stop")), "\n");
            out += &sse(None, &json!({"id": "chatcmpl-1", "choices": [], "usage": {"total_tokens": 9}}), "\n");
            out += "data: [DONE]\n\n";
        }
        Wire::AnthropicMessages => {
            let start = json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                "model": "claude-sonnet-4", "content": [], "stop_reason": null, "usage": {"input_tokens": 5, "output_tokens": 1}}});
            out += &sse(Some("message_start"), &start, "\n");
            let block =
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}});
            out += &sse(Some("content_block_start"), &block, "\n");
            for (i, c) in chars.iter().enumerate() {
                let delta =
                    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": c}});
                out += &sse(Some("content_block_delta"), &delta, "\n");
                if i % 10 == 0 {
                    out += &sse(Some("ping"), &json!({"type": "ping"}), "\n");
                }
            }
            out += &sse(Some("content_block_stop"), &json!({"type": "content_block_stop", "index": 0}), "\n");
            let delta = json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                "usage": {"output_tokens": 40}});
            out += &sse(Some("message_delta"), &delta, "\n");
            out += &sse(Some("message_stop"), &json!({"type": "message_stop"}), "\n");
        }
        Wire::OpenAiResponses => {
            let mut seq = 0;
            let mut ev = |out: &mut String, mut v: Value| {
                v["sequence_number"] = json!(seq);
                seq += 1;
                let t = v["type"].as_str().unwrap().to_string();
                *out += &sse(Some(&t), &v, "\n");
            };
            let message = |text: &str, status: &str| {
                json!({"id": "msg_1", "type": "message", "status": status, "role": "assistant",
                       "content": [{"type": "output_text", "annotations": [], "text": text}]})
            };
            let response = |status: &str, output: Value| json!({"id": "resp_1", "object": "response", "status": status, "model": "gpt-5", "output": output, "usage": null});
            ev(&mut out, json!({"type": "response.created", "response": response("in_progress", json!([]))}));
            let added =
                json!({"id": "msg_1", "type": "message", "status": "in_progress", "role": "assistant", "content": []});
            ev(&mut out, json!({"type": "response.output_item.added", "output_index": 0, "item": added}));
            ev(
                &mut out,
                json!({"type": "response.content_part.added", "item_id": "msg_1", "output_index": 0, "content_index": 0,
                       "part": {"type": "output_text", "annotations": [], "text": ""}}),
            );
            for c in &chars {
                ev(
                    &mut out,
                    json!({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0,
                           "delta": c, "logprobs": []}),
                );
            }
            ev(
                &mut out,
                json!({"type": "response.output_text.done", "item_id": "msg_1", "output_index": 0, "content_index": 0,
                       "text": text, "logprobs": []}),
            );
            ev(
                &mut out,
                json!({"type": "response.content_part.done", "item_id": "msg_1", "output_index": 0, "content_index": 0,
                       "part": {"type": "output_text", "annotations": [], "text": text}}),
            );
            ev(
                &mut out,
                json!({"type": "response.output_item.done", "output_index": 0, "item": message(text, "completed")}),
            );
            ev(
                &mut out,
                json!({"type": "response.completed", "response": response("completed", json!([message(text, "completed")]))}),
            );
        }
        Wire::Gemini => {
            let n = chars.len();
            for (i, c) in chars.iter().enumerate() {
                let mut candidate = json!({"content": {"parts": [{"text": c}], "role": "model"}, "index": 0});
                if i + 1 == n {
                    candidate["finishReason"] = json!("STOP");
                }
                let chunk = json!({"candidates": [candidate], "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9 + i},
                                   "modelVersion": "gemini-2.5-flash", "responseId": "r1"});
                out += &sse(None, &chunk, "\r\n");
            }
        }
        Wire::BedrockConverse => unreachable!("not SSE"),
    }
    out.into_bytes()
}

const SSE_WIRES: [Wire; 4] = [Wire::OpenAiChat, Wire::AnthropicMessages, Wire::OpenAiResponses, Wire::Gemini];

#[test]
fn one_char_per_event_card_and_email_never_reach_the_client() {
    for wire in SSE_WIRES {
        let input = one_char_stream(wire, TEXT);
        let out = redact(wire, &input);
        let text = streamed_text(wire, &out.bytes);
        assert_eq!(text, REDACTED, "{wire:?}");
        let raw = String::from_utf8(out.bytes.clone()).unwrap();
        assert!(!raw.contains(CARD) && !raw.contains(EMAIL), "{wire:?}: a complete copy leaked");
        // Every event parses, in the same order, with the same fields.
        let (before, after) = (events(&input), events(&out.bytes));
        assert_eq!(before.len(), after.len(), "{wire:?}");
        for ((te, ve), (ta, va)) in before.iter().zip(&after) {
            assert_eq!(te, ta, "{wire:?}");
            assert!(same_shape(ve, va), "{wire:?}: {ve} became {va}");
            let mut keys = Vec::new();
            changed_keys(ve, va, "", &mut keys);
            assert!(keys.iter().all(|k| ["content", "text", "delta"].contains(&k.as_str())), "{wire:?}: {keys:?}");
        }
        // One card and one email: each counted once, complete copies included.
        let mut committed = out.committed.clone();
        committed.sort_unstable();
        let mut expected = vec![kind(Entity::PaymentCard), kind(Entity::Email)];
        expected.sort_unstable();
        assert_eq!(committed, expected, "{wire:?}");
        let stats = out.redactor.stats();
        assert_eq!(stats.window_forced, 0, "{wire:?}");
        assert_eq!(stats.straddled, 0, "{wire:?}");
        assert_eq!(stats.unparsed_events, 0, "{wire:?}");
        assert!(stats.events_rewritten > 0, "{wire:?}");
        assert_eq!(out.redactor.captured(), REDACTED, "{wire:?}");
    }
}

#[test]
fn the_new_card_and_phone_writings_are_caught_one_character_per_event_and_for_every_chunking() {
    // Issue 13's writings: a 19-digit Maestro 4-4-4-4-3, Mir with dots, a Swiss national number,
    // a glued extension, a `(0)` trunk, and a number after an escaped line break.
    let text = "Ruf an: 044 668 18 00 or 555.555.5555x123, +41 (0)44 668 18 01. \\n+44 7700 900123; \
                card 6759 1234 5678 9012 342, Mir 2200.1234.5678.9019 ok";
    let redacted = "Ruf an: [PHONE] or [PHONE], [PHONE]. \\n[PHONE]; card [PAYMENT_CARD], Mir [PAYMENT_CARD] ok";
    let detector = Detector::new(&Entity::ALL);
    for wire in SSE_WIRES {
        let input = one_char_stream(wire, text);
        let whole = run(wire, limits(), &[&input], &mut detector_editor(&detector));
        assert_eq!(streamed_text(wire, &whole.bytes), redacted, "{wire:?}");
        let raw = String::from_utf8(whole.bytes.clone()).unwrap();
        for value in ["044 668 18 00", "5555x123", "668 18 01", "900123", "9012 342", "5678.9019"] {
            assert!(!raw.contains(value), "{wire:?}: {value} leaked");
        }
        for chunks in chunkings(&input) {
            let out = run(wire, limits(), &chunks, &mut detector_editor(&detector));
            assert_eq!(out.bytes, whole.bytes, "{wire:?}");
        }
    }
}

#[test]
fn responses_complete_copies_are_redacted() {
    let out = redact(Wire::OpenAiResponses, &one_char_stream(Wire::OpenAiResponses, TEXT));
    let evs = events(&out.bytes);
    let done = evs.iter().find(|(t, _)| t == "response.output_text.done").unwrap();
    assert_eq!(done.1["text"], REDACTED);
    let completed = evs.iter().find(|(t, _)| t == "response.completed").unwrap();
    assert_eq!(completed.1["response"]["output"][0]["content"][0]["text"], REDACTED);
    assert_eq!(completed.1["response"]["status"], "completed");
}

#[test]
fn output_is_the_same_for_every_chunking() {
    let detector = Detector::new(&Entity::ALL);
    for wire in SSE_WIRES {
        let input = one_char_stream(wire, TEXT);
        let whole = run(wire, limits(), &[&input], &mut detector_editor(&detector));
        for chunks in chunkings(&input) {
            let out = run(wire, limits(), &chunks, &mut detector_editor(&detector));
            assert_eq!(out.bytes, whole.bytes, "{wire:?}");
            assert_eq!(out.committed, whole.committed, "{wire:?}");
            assert_eq!(out.redactor.stats(), whole.redactor.stats(), "{wire:?}");
        }
    }
    // A short stream, so that every single split point is tried (`chunkings` does that up to 512
    // bytes): CRLF framing, the email split four bytes per event.
    let mut input = String::new();
    let text = "mail jane.doe@example.com ok";
    for piece in text.as_bytes().chunks(4) {
        let piece = std::str::from_utf8(piece).unwrap();
        input += &sse(None, &json!({"choices": [{"delta": {"content": piece}}]}), "\r\n");
    }
    let input = input.into_bytes();
    assert!(input.len() <= 512);
    let whole = run(Wire::OpenAiChat, limits(), &[&input], &mut detector_editor(&detector));
    assert_eq!(streamed_text(Wire::OpenAiChat, &whole.bytes), "mail [EMAIL] ok");
    for chunks in chunkings(&input) {
        let out = run(Wire::OpenAiChat, limits(), &chunks, &mut detector_editor(&detector));
        assert_eq!(out.bytes, whole.bytes);
    }
}

#[test]
fn without_edits_output_is_input_for_every_chunking() {
    let mut inputs: Vec<(Wire, Vec<u8>)> = SSE_WIRES.iter().map(|&w| (w, one_char_stream(w, TEXT))).collect();
    inputs.push((Wire::OpenAiChat, b"\xEF\xBB\xBFdata: {}\r\r: c\rdata: x\n\ndata: [DONE]\r\n\r\npartial".to_vec()));
    for (wire, input) in inputs {
        for chunks in chunkings(&input) {
            assert_eq!(run(wire, limits(), &chunks, &mut no_edits).bytes, input, "{wire:?}");
        }
    }
}

#[test]
fn provider_fixtures_pass_unchanged_without_edits_and_chunk_independently_with_the_detector() {
    let detector = Detector::new(&Entity::ALL);
    let mut seen = 0;
    for fixture in provider_fixtures() {
        let Some(detected) = detect(&fixture.path) else { continue };
        let body = &fixture.response_body;
        let is_stream =
            fixture.meta["response_file"].as_str().is_some_and(|f| f.ends_with(".sse") || f.ends_with(".bin"));
        if !is_stream {
            continue;
        }
        seen += 1;
        for chunks in chunkings(body) {
            let out = run(detected.wire, limits(), &chunks, &mut no_edits);
            assert_eq!(&out.bytes, body, "{}", fixture.name);
        }
        let whole = run(detected.wire, limits(), &[body], &mut detector_editor(&detector));
        for chunks in chunkings(body) {
            assert_eq!(run(detected.wire, limits(), &chunks, &mut detector_editor(&detector)).bytes, whole.bytes);
        }
        if fixture.name.contains("-pii-") {
            // Planted PII (a card and an email, one character per event): two values, rewritten.
            assert_ne!(&whole.bytes, body, "{}", fixture.name);
            assert_eq!(whole.committed.len(), 2, "{}", fixture.name);
        } else {
            // The other fixtures hold no PII: the detector changes nothing, and every event is JSON.
            assert_eq!(&whole.bytes, body, "{}", fixture.name);
            assert!(whole.committed.is_empty(), "{}", fixture.name);
            assert!(whole.redactor.stats().events > 0, "{}", fixture.name);
        }
    }
    assert!(seen >= 15, "only {seen} streaming fixtures");
}

#[test]
fn interleaved_choices_never_reorder_and_each_is_redacted() {
    // n=2: choice 0 streams the card, choice 1 plain text, alternating one character per event.
    let a: Vec<char> = "pay 4111 1111 1111 1111 now".chars().collect();
    let b: Vec<char> = "nothing to see here at all".chars().collect();
    let mut input = String::new();
    let mut seq = 0;
    for i in 0..a.len().max(b.len()) {
        for (choice, text) in [(0, &a), (1, &b)] {
            if let Some(c) = text.get(i) {
                let data = json!({"seq": seq, "choices": [{"index": choice, "delta": {"content": c.to_string()}}]});
                input += &sse(None, &data, "\n");
                seq += 1;
            }
        }
    }
    input += "data: [DONE]\n\n";
    let out = redact(Wire::OpenAiChat, input.as_bytes());
    let evs = events(&out.bytes);
    let seqs: Vec<u64> = evs.iter().filter_map(|(_, v)| v["seq"].as_u64()).collect();
    assert_eq!(seqs, (0..seq).collect::<Vec<_>>());
    let mut texts = [String::new(), String::new()];
    for (_, v) in &evs {
        if let (Some(i), Some(t)) = (v["choices"][0]["index"].as_u64(), v["choices"][0]["delta"]["content"].as_str()) {
            texts[i as usize].push_str(t);
        }
    }
    assert_eq!(texts, ["pay [PAYMENT_CARD] now".to_string(), "nothing to see here at all".to_string()]);
    assert_eq!(out.committed, vec![kind(Entity::PaymentCard)]);
}

#[test]
fn tool_call_arguments_are_redacted_across_events() {
    let args = r#"{"email":"jane.doe@example.com","card":"4111 1111 1111 1111"}"#;
    let mut input = String::new();
    for c in args.chars() {
        let data = json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": c.to_string()}}]}}]});
        input += &sse(None, &data, "\n");
    }
    input += &sse(None, &json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}), "\n");
    let out = redact(Wire::OpenAiChat, input.as_bytes());
    let mut joined = String::new();
    for (_, v) in events(&out.bytes) {
        joined.push_str(v["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str().unwrap_or(""));
    }
    assert_eq!(joined, r#"{"email":"[EMAIL]","card":"[PAYMENT_CARD]"}"#);
    assert_eq!(out.committed.len(), 2);
    // Tool arguments are not the captured text channel.
    assert_eq!(out.redactor.captured(), "");

    let mut input = String::new();
    for c in args.chars() {
        let data = json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": c.to_string()}});
        input += &sse(Some("content_block_delta"), &data, "\n");
    }
    input += &sse(Some("content_block_stop"), &json!({"type": "content_block_stop", "index": 1}), "\n");
    let out = redact(Wire::AnthropicMessages, input.as_bytes());
    let joined: String =
        events(&out.bytes).iter().filter_map(|(_, v)| v["delta"]["partial_json"].as_str().map(String::from)).collect();
    assert_eq!(joined, r#"{"email":"[EMAIL]","card":"[PAYMENT_CARD]"}"#);
}

#[test]
fn count_only_edits_change_nothing_and_are_committed_once() {
    let mut count_only = {
        let detector = Detector::new(&Entity::ALL);
        move |text: &str| -> Vec<Edit> {
            detector
                .scan(text)
                .into_iter()
                .map(|m| Edit {
                    start: m.start,
                    end: m.end,
                    replacement: None,
                    kind: kind(m.entity),
                    closes_with: None,
                })
                .collect()
        }
    };
    for wire in SSE_WIRES {
        let input = one_char_stream(wire, TEXT);
        let out = run(wire, limits(), &[&input], &mut count_only);
        assert_eq!(out.bytes, input, "{wire:?}");
        assert_eq!(out.committed.len(), 2, "{wire:?}");
        assert_eq!(out.redactor.stats().events_rewritten, 0);
    }
}

#[test]
fn caps_bound_what_is_held() {
    // Digits separated by spaces chain forever: without caps this would all be held.
    let text = "1 ".repeat(400);
    let input = one_char_stream(Wire::OpenAiChat, &text);
    let detector = Detector::new(&Entity::ALL);
    let small = StreamLimits { max_held_events: 16, ..limits() };
    let out = run(Wire::OpenAiChat, small, &[&input], &mut detector_editor(&detector));
    assert!(out.max_held_events <= 16, "{}", out.max_held_events);
    assert!(out.redactor.stats().window_forced > 0);
    assert_eq!(streamed_text(Wire::OpenAiChat, &out.bytes), text);

    let by_bytes = StreamLimits { max_held_bytes: 2048, ..limits() };
    let mut redactor = StreamRedactor::new(Wire::OpenAiChat, by_bytes);
    for chunk in input.chunks(7) {
        redactor.push(chunk, &mut detector_editor(&detector));
        assert!(redactor.held_bytes() <= 2048 + 7 + 256, "{}", redactor.held_bytes());
    }

    // The window: a long run without whitespace is released `window_bytes` behind the end.
    let text = "x".repeat(1000);
    let input = one_char_stream(Wire::OpenAiChat, &text);
    let narrow = StreamLimits { window_bytes: 32, ..limits() };
    let out = run(Wire::OpenAiChat, narrow, &[&input], &mut detector_editor(&detector));
    assert!(out.max_held_events <= 34, "{}", out.max_held_events);
    assert!(out.redactor.stats().window_forced > 0);
    assert_eq!(out.bytes, input);
}

#[test]
fn a_value_cut_by_a_forced_release_goes_out_whole_with_it() {
    // A value that is whole in held text but sits where the caps cut is released with the cut
    // (redacted) rather than split.
    let mut editor = |text: &str| -> Vec<Edit> {
        text.match_indices("SECRET")
            .map(|(at, s)| Edit {
                start: at,
                end: at + s.len(),
                replacement: Some("[S]".into()),
                kind: 7,
                closes_with: None,
            })
            .collect()
    };
    let text = format!("ok SECRET{}", "z".repeat(40));
    let input = one_char_stream(Wire::OpenAiChat, &text);
    let tight = StreamLimits { max_held_events: 8, ..limits() };
    for chunks in chunkings(&input) {
        let out = run(Wire::OpenAiChat, tight, &chunks, &mut editor);
        assert_eq!(streamed_text(Wire::OpenAiChat, &out.bytes), format!("ok [S]{}", "z".repeat(40)));
        assert_eq!(out.committed, vec![7]);
        assert!(out.redactor.stats().window_forced > 0);
        assert!(out.max_held_events <= 8);
    }
}

#[test]
fn a_value_longer_than_the_window_is_counted_as_straddled_once() {
    // With an 8-byte window the start of the email is forced out before it is whole: it leaks
    // (the window is the bound on hold-back), and the stats say so.
    let detector = Detector::new(&Entity::ALL);
    let input = one_char_stream(Wire::OpenAiChat, "abc jane.doe@example.com ok");
    let narrow = StreamLimits { window_bytes: 8, ..limits() };
    let out = run(Wire::OpenAiChat, narrow, &[&input], &mut detector_editor(&detector));
    let stats = out.redactor.stats();
    assert!(stats.window_forced > 0);
    assert_eq!(stats.straddled, 1);
    assert!(out.committed.is_empty());
}

#[test]
fn unparsed_and_oversized_events_pass_unchanged_and_are_counted() {
    let detector = Detector::new(&Entity::ALL);
    let big = format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{}\"}}}}]}}\n\n", "a".repeat(300));
    let input = format!(
        "data: not json {EMAIL}\n\n{big}data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"x\"}}}}]}}\n\n"
    );
    let small = StreamLimits { max_event_bytes: 200, ..limits() };
    let whole = run(Wire::OpenAiChat, small, &[input.as_bytes()], &mut detector_editor(&detector));
    assert_eq!(whole.bytes, input.as_bytes());
    assert_eq!(whole.redactor.stats().unparsed_events, 1);
    assert_eq!(whole.redactor.stats().oversized_events, 1);
    assert_eq!(whole.redactor.stats().events, 3);
    for chunks in chunkings(input.as_bytes()) {
        let mut redactor = StreamRedactor::new(Wire::OpenAiChat, small);
        let mut bytes = Vec::new();
        for chunk in chunks {
            bytes.extend(redactor.push(chunk, &mut detector_editor(&detector)).bytes);
            assert!(redactor.held_bytes() <= 200 + 64 + 128);
        }
        bytes.extend(redactor.finish(&mut detector_editor(&detector)).bytes);
        assert_eq!(bytes, input.as_bytes());
        assert_eq!(redactor.stats(), whole.redactor.stats());
    }
}

#[test]
fn a_bedrock_stream_whose_framing_cannot_be_read_passes_unchanged_and_counted() {
    let detector = Detector::new(&Entity::ALL);
    let body = format!("not an event stream, with {EMAIL} and {CARD} in it");
    for chunks in chunkings(body.as_bytes()) {
        let out = run(Wire::BedrockConverse, limits(), &chunks, &mut detector_editor(&detector));
        assert_eq!(out.bytes, body.as_bytes());
        assert!(out.committed.is_empty());
        assert_eq!(out.redactor.stats().oversized_events, 1, "the unreadable prelude is counted once");
    }
}

#[test]
fn a_bedrock_frame_too_big_to_hold_passes_unchanged_and_the_frames_after_it_are_still_redacted() {
    // Its prelude CRC holds, so its length is the sender's and the next frame starts after it:
    // the frames after it are read and redacted again (before, the rest of the stream passed).
    use llmobs_core::framing::event_stream::EventStreamDecoder;
    let detector = Detector::new(&Entity::ALL);
    let fixture = provider_fixtures().into_iter().find(|f| f.name == "bedrock-converse-stream").expect("fixture");
    let delta = |text: &str| json!({"contentBlockIndex": 0, "delta": {"text": text}}).to_string();
    let (mut stream, mut big, mut inserted) = (Vec::new(), Vec::new(), false);
    EventStreamDecoder::default()
        .push(&fixture.response_body, &mut |m| {
            stream.extend(m.with_payload(m.payload()));
            if !inserted && m.event_type() == Some("contentBlockDelta") {
                big = m.with_payload(delta(&"a".repeat(2000)).as_bytes());
                stream.extend(&big);
                stream.extend(m.with_payload(delta(&format!(" write to {EMAIL} now.")).as_bytes()));
                inserted = true;
            }
        })
        .unwrap();
    assert!(inserted);
    let small = StreamLimits { max_event_bytes: 1024, ..limits() };
    for chunks in chunkings(&stream) {
        let out = run(Wire::BedrockConverse, small, &chunks, &mut detector_editor(&detector));
        assert!(!contains(&out.bytes, EMAIL.as_bytes()), "the email after the big frame reached the client");
        assert!(contains(&out.bytes, &big), "the big frame is forwarded unchanged");
        assert_eq!(out.committed, [kind(Entity::Email)]);
        assert_eq!(out.redactor.stats().oversized_events, 1);
        // The output is still a valid event stream of as many frames (the rewritten one re-encoded).
        let count = |bytes: &[u8]| {
            let mut frames = 0;
            EventStreamDecoder::new(1 << 20).push(bytes, &mut |_| frames += 1).expect("a valid event stream");
            frames
        };
        assert_eq!(count(&out.bytes), count(&stream));
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn the_end_of_the_stream_releases_everything_and_keeps_a_partial_event() {
    let detector = Detector::new(&Entity::ALL);
    // The last delta ends with the email and no finish: only the end of stream releases it.
    let mut input = Vec::new();
    for c in "write to jane.doe@example.com".chars() {
        let chunk =
            json!({"candidates": [{"content": {"parts": [{"text": c.to_string()}], "role": "model"}, "index": 0}]});
        input.extend_from_slice(sse(None, &chunk, "\r\n").as_bytes());
    }
    let cut = b"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"jane.doe@ex";
    input.extend_from_slice(cut);
    let mut redactor = StreamRedactor::new(Wire::Gemini, limits());
    let mut editor = detector_editor(&detector);
    let pushed = redactor.push(&input, &mut editor);
    assert!(redactor.held_events() > 0);
    let mut bytes = pushed.bytes;
    bytes.extend(redactor.finish(&mut editor).bytes);
    assert!(bytes.ends_with(cut));
    assert_eq!(streamed_text(Wire::Gemini, &bytes), "write to [EMAIL]");
}

#[test]
fn every_wire_survives_garbage_and_every_split() {
    let detector = Detector::new(&Entity::ALL);
    let inputs: [&[u8]; 4] = [
        b"data: {\"choices\": 5}\n\ndata: {\"choices\": [{\"index\": \"x\", \"delta\": {\"content\": 7}}]}\n\n",
        b"data: {\"type\": \"content_block_delta\", \"delta\": {\"type\": \"text_delta\", \"text\": 1}}\n\n\n\n",
        b"\r\r\r\n\n: only comments\n\nevent: x\n\n",
        b"data: \xff\xfe\n\ndata: {\"candidates\": [null, {\"content\": {\"parts\": [{\"text\": \"a@b.co\"}]}}]}\n\n",
    ];
    for wire in ALL_WIRES {
        for input in inputs {
            for chunks in chunkings(input) {
                assert_eq!(run(wire, limits(), &chunks, &mut no_edits).bytes, input);
                let _ = run(wire, limits(), &chunks, &mut detector_editor(&detector));
            }
        }
    }
}
