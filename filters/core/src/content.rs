//! Where the text is in each provider's request and non-streaming response: the typed walk that
//! PII redaction (rewriting), the system-prompt fingerprint and content capture all use.
//!
//! Only places that carry conversation text are visited, each with its [`Part`]: system prompts
//! and instructions, message content (strings and text parts), tool-call arguments and tool
//! results. Model names, ids, enum fields and image data are never visited. Values are edited in
//! place in a `serde_json::Value`, so a rewritten body is valid JSON with correct escaping, and
//! with `serde_json`'s `preserve_order` every other field keeps its place.

use crate::token_accounting::provider::Wire;
use serde_json::Value;

/// What a piece of text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    System,
    User,
    Assistant,
    ToolArguments,
    ToolResult,
}

impl Part {
    pub fn label(self) -> &'static str {
        match self {
            Part::System => "system",
            Part::User => "user",
            Part::Assistant => "assistant",
            Part::ToolArguments => "tool_arguments",
            Part::ToolResult => "tool_result",
        }
    }
}

type Visit<'a> = dyn FnMut(Part, &mut String) + 'a;

/// Visits every piece of conversation text in a request body of `wire`.
pub fn visit_request(wire: Wire, root: &mut Value, f: &mut Visit<'_>) {
    match wire {
        Wire::OpenAiChat => openai_chat(root, f),
        Wire::OpenAiResponses => responses(root, f),
        Wire::AnthropicMessages => anthropic(root, f),
        Wire::Gemini => gemini(root, f),
        Wire::BedrockConverse => bedrock(root, f),
    }
}

/// Visits every piece of model-generated text in a non-streaming response body of `wire`.
///
/// Anthropic `thinking` blocks are not visited: they carry a `signature` over their text that the
/// API verifies when the block is sent back in the next turn (Anthropic "extended thinking" docs),
/// so an edited block would break the conversation. Responses `reasoning` items are left alone
/// for the same reason (their summaries travel with `encrypted_content`). Gemini thought-summary
/// parts are plain `text` parts (the `thoughtSignature` is a separate field) and are visited.
pub fn visit_response(wire: Wire, root: &mut Value, f: &mut Visit<'_>) {
    match wire {
        Wire::OpenAiChat => openai_chat_response(root, f),
        Wire::OpenAiResponses => visit_responses_object(root, f),
        Wire::AnthropicMessages => anthropic_response(root, f),
        // `streamGenerateContent` without `alt=sse` answers with a JSON array of responses.
        Wire::Gemini => match root {
            Value::Array(items) => items.iter_mut().for_each(|item| gemini_response(item, f)),
            _ => gemini_response(root, f),
        },
        Wire::BedrockConverse => bedrock_response(root, f),
    }
}

/// The model text of an OpenAI Responses object: the body of a non-streaming response, and the
/// `response` member of the `response.created` / `response.completed` / `response.incomplete` /
/// `response.failed` stream events.
pub fn visit_responses_object(root: &mut Value, f: &mut Visit<'_>) {
    for item in each(root, "output") {
        visit_responses_item(item, f);
    }
}

/// One item of a Responses `output[]`: also what `response.output_item.done` carries as `item`.
pub fn visit_responses_item(item: &mut Value, f: &mut Visit<'_>) {
    match item.get("type").and_then(Value::as_str) {
        Some("function_call") => {
            if let Some(Value::String(args)) = item.get_mut("arguments") {
                f(Part::ToolArguments, args);
            }
        }
        // Custom (free-form) tools receive one raw string instead of JSON arguments.
        Some("custom_tool_call") => {
            if let Some(Value::String(input)) = item.get_mut("input") {
                f(Part::ToolArguments, input);
            }
        }
        Some("message") => {
            for content in each(item, "content") {
                visit_responses_content(content, f);
            }
        }
        _ => {}
    }
}

/// One content part of a Responses message (`response.content_part.done` carries it as `part`):
/// `output_text` has `text`, `refusal` has `refusal`.
pub fn visit_responses_content(content: &mut Value, f: &mut Visit<'_>) {
    for key in ["text", "refusal"] {
        if let Some(Value::String(s)) = content.get_mut(key) {
            f(Part::Assistant, s);
        }
    }
}

fn openai_chat_response(root: &mut Value, f: &mut Visit<'_>) {
    for choice in each(root, "choices") {
        let Some(message) = choice.get_mut("message") else {
            continue;
        };
        if let Some(content) = message.get_mut("content") {
            text_or_parts(content, Part::Assistant, f);
        }
        if let Some(Value::String(s)) = message.get_mut("refusal") {
            f(Part::Assistant, s);
        }
        for call in each(message, "tool_calls") {
            if let Some(Value::String(args)) = call.get_mut("function").and_then(|fun| fun.get_mut("arguments")) {
                f(Part::ToolArguments, args);
            }
        }
        // The deprecated single `function_call` that older models and compatible servers return.
        if let Some(Value::String(args)) = message.get_mut("function_call").and_then(|fun| fun.get_mut("arguments")) {
            f(Part::ToolArguments, args);
        }
    }
}

fn anthropic_response(root: &mut Value, f: &mut Visit<'_>) {
    for block in each(root, "content") {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                if let Some(Value::String(s)) = block.get_mut("text") {
                    f(Part::Assistant, s);
                }
            }
            Some("tool_use") => {
                if let Some(input) = block.get_mut("input") {
                    all_strings(input, Part::ToolArguments, f);
                }
            }
            _ => {}
        }
    }
}

fn gemini_response(root: &mut Value, f: &mut Visit<'_>) {
    for candidate in each(root, "candidates") {
        if let Some(content) = candidate.get_mut("content") {
            gemini_parts(content, Part::Assistant, f);
        }
    }
}

fn bedrock_response(root: &mut Value, f: &mut Visit<'_>) {
    let Some(message) = root.get_mut("output").and_then(|o| o.get_mut("message")) else {
        return;
    };
    for block in each(message, "content") {
        if let Some(Value::String(s)) = block.get_mut("text") {
            f(Part::Assistant, s);
        }
        if let Some(input) = block.get_mut("toolUse").and_then(|t| t.get_mut("input")) {
            all_strings(input, Part::ToolArguments, f);
        }
    }
}

fn role_part(role: Option<&str>) -> Part {
    match role {
        Some("system" | "developer") => Part::System,
        Some("assistant" | "model") => Part::Assistant,
        Some("tool" | "function") => Part::ToolResult,
        _ => Part::User,
    }
}

/// A string, or an array of text parts (`{"type": "text"|"input_text"|..., "text": "..."}`).
fn text_or_parts(value: &mut Value, part: Part, f: &mut Visit<'_>) {
    match value {
        Value::String(s) => f(part, s),
        Value::Array(items) => {
            for item in items {
                if let Some(Value::String(s)) = item.get_mut("text") {
                    f(part, s);
                }
            }
        }
        _ => {}
    }
}

/// Every string inside a JSON value (tool inputs and results given as objects).
pub(crate) fn all_strings(value: &mut Value, part: Part, f: &mut Visit<'_>) {
    match value {
        Value::String(s) => f(part, s),
        Value::Array(items) => items.iter_mut().for_each(|v| all_strings(v, part, f)),
        Value::Object(map) => map.values_mut().for_each(|v| all_strings(v, part, f)),
        _ => {}
    }
}

fn each<'v>(root: &'v mut Value, key: &str) -> impl Iterator<Item = &'v mut Value> {
    root.get_mut(key).and_then(Value::as_array_mut).into_iter().flatten()
}

fn openai_chat(root: &mut Value, f: &mut Visit<'_>) {
    for message in each(root, "messages") {
        let part = role_part(message.get("role").and_then(Value::as_str));
        if let Some(content) = message.get_mut("content") {
            text_or_parts(content, part, f);
        }
        for call in each(message, "tool_calls") {
            if let Some(Value::String(args)) = call.get_mut("function").and_then(|fun| fun.get_mut("arguments")) {
                f(Part::ToolArguments, args);
            }
        }
        if let Some(Value::String(args)) = message.get_mut("function_call").and_then(|fun| fun.get_mut("arguments")) {
            f(Part::ToolArguments, args);
        }
    }
}

fn responses(root: &mut Value, f: &mut Visit<'_>) {
    if let Some(Value::String(s)) = root.get_mut("instructions") {
        f(Part::System, s);
    }
    match root.get_mut("input") {
        Some(Value::String(s)) => f(Part::User, s),
        Some(Value::Array(items)) => {
            for item in items {
                match item.get("type").and_then(Value::as_str) {
                    Some("function_call") => {
                        if let Some(Value::String(args)) = item.get_mut("arguments") {
                            f(Part::ToolArguments, args);
                        }
                    }
                    Some("function_call_output") => {
                        if let Some(output) = item.get_mut("output") {
                            text_or_parts(output, Part::ToolResult, f);
                        }
                    }
                    _ => {
                        let part = role_part(item.get("role").and_then(Value::as_str));
                        if let Some(content) = item.get_mut("content") {
                            text_or_parts(content, part, f);
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

fn anthropic(root: &mut Value, f: &mut Visit<'_>) {
    if let Some(system) = root.get_mut("system") {
        text_or_parts(system, Part::System, f);
    }
    for message in each(root, "messages") {
        let part = role_part(message.get("role").and_then(Value::as_str));
        match message.get_mut("content") {
            Some(Value::String(s)) => f(part, s),
            Some(Value::Array(blocks)) => {
                for block in blocks {
                    match block.get("type").and_then(Value::as_str) {
                        Some("tool_use") => {
                            if let Some(input) = block.get_mut("input") {
                                all_strings(input, Part::ToolArguments, f);
                            }
                        }
                        Some("tool_result") => {
                            if let Some(content) = block.get_mut("content") {
                                text_or_parts(content, Part::ToolResult, f);
                            }
                        }
                        _ => {
                            if let Some(Value::String(s)) = block.get_mut("text") {
                                f(part, s);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

fn gemini_parts(content: &mut Value, part: Part, f: &mut Visit<'_>) {
    for p in each(content, "parts") {
        if let Some(Value::String(s)) = p.get_mut("text") {
            f(part, s);
        }
        if let Some(args) = p.get_mut("functionCall").and_then(|c| c.get_mut("args")) {
            all_strings(args, Part::ToolArguments, f);
        }
        if let Some(response) = p.get_mut("functionResponse").and_then(|c| c.get_mut("response")) {
            all_strings(response, Part::ToolResult, f);
        }
    }
}

fn gemini(root: &mut Value, f: &mut Visit<'_>) {
    for key in ["systemInstruction", "system_instruction"] {
        if let Some(system) = root.get_mut(key) {
            gemini_parts(system, Part::System, f);
        }
    }
    for content in each(root, "contents") {
        let part = role_part(content.get("role").and_then(Value::as_str));
        gemini_parts(content, part, f);
    }
}

fn bedrock(root: &mut Value, f: &mut Visit<'_>) {
    for block in each(root, "system") {
        if let Some(Value::String(s)) = block.get_mut("text") {
            f(Part::System, s);
        }
    }
    for message in each(root, "messages") {
        let part = role_part(message.get("role").and_then(Value::as_str));
        for block in each(message, "content") {
            if let Some(Value::String(s)) = block.get_mut("text") {
                f(part, s);
            }
            if let Some(input) = block.get_mut("toolUse").and_then(|t| t.get_mut("input")) {
                all_strings(input, Part::ToolArguments, f);
            }
            if let Some(content) = block.get_mut("toolResult").and_then(|t| t.get_mut("content")) {
                all_strings(content, Part::ToolResult, f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn texts(wire: Wire, mut body: Value) -> Vec<(Part, String)> {
        let mut out = Vec::new();
        visit_request(wire, &mut body, &mut |part, s| out.push((part, s.clone())));
        out
    }

    #[test]
    fn openai_chat_messages_parts_and_tool_arguments_are_visited() {
        let body = json!({"model": "gpt-4o", "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "data:x"}}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"q\":1}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "result"}
        ]});
        assert_eq!(
            texts(Wire::OpenAiChat, body),
            vec![
                (Part::System, "sys".into()),
                (Part::User, "hi".into()),
                (Part::ToolArguments, "{\"q\":1}".into()),
                (Part::ToolResult, "result".into()),
            ]
        );
    }

    #[test]
    fn responses_instructions_input_and_function_items_are_visited() {
        let body = json!({"model": "gpt-4.1", "instructions": "be brief", "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "q"}]},
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c", "output": "out"}
        ]});
        assert_eq!(
            texts(Wire::OpenAiResponses, body),
            vec![
                (Part::System, "be brief".into()),
                (Part::User, "q".into()),
                (Part::ToolArguments, "{}".into()),
                (Part::ToolResult, "out".into()),
            ]
        );
        assert_eq!(texts(Wire::OpenAiResponses, json!({"input": "plain"})), vec![(Part::User, "plain".into())]);
    }

    #[test]
    fn anthropic_system_blocks_tool_use_and_results_are_visited() {
        let body = json!({"system": [{"type": "text", "text": "s"}], "messages": [
            {"role": "user", "content": "u"},
            {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "tool_use", "id": "t", "name": "n", "input": {"city": "Paris", "n": 3}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "r"}]}
        ]});
        assert_eq!(
            texts(Wire::AnthropicMessages, body),
            vec![
                (Part::System, "s".into()),
                (Part::User, "u".into()),
                (Part::Assistant, "a".into()),
                (Part::ToolArguments, "Paris".into()),
                (Part::ToolResult, "r".into()),
            ]
        );
    }

    #[test]
    fn gemini_and_bedrock_parts_are_visited() {
        let gemini_body = json!({"systemInstruction": {"parts": [{"text": "s"}]}, "contents": [
            {"role": "user", "parts": [{"text": "u"}, {"inlineData": {"data": "AAAA"}}]},
            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"q": "x"}}}]}
        ]});
        assert_eq!(
            texts(Wire::Gemini, gemini_body),
            vec![(Part::System, "s".into()), (Part::User, "u".into()), (Part::ToolArguments, "x".into()),]
        );
        let bedrock_body = json!({"system": [{"text": "s"}], "messages": [
            {"role": "user", "content": [{"text": "u"}, {"toolResult": {"toolUseId": "t", "content": [{"text": "r"}]}}]}
        ]});
        assert_eq!(
            texts(Wire::BedrockConverse, bedrock_body),
            vec![(Part::System, "s".into()), (Part::User, "u".into()), (Part::ToolResult, "r".into()),]
        );
    }

    #[test]
    fn an_edited_body_stays_valid_json_with_fields_in_place() {
        let raw = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"mail \"a@b.co\" now"}],"stream":true}"#;
        let mut body: Value = serde_json::from_str(raw).unwrap();
        visit_request(Wire::OpenAiChat, &mut body, &mut |_, s| *s = s.replace("a@b.co", "EMAIL_k1_0011223344556677"));
        let out = serde_json::to_string(&body).unwrap();
        assert_eq!(
            out,
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"mail \"EMAIL_k1_0011223344556677\" now"}],"stream":true}"#
        );
    }

    fn response_texts(wire: Wire, mut body: Value) -> Vec<(Part, String)> {
        let mut out = Vec::new();
        visit_response(wire, &mut body, &mut |part, s| out.push((part, s.clone())));
        out
    }

    #[test]
    fn openai_chat_response_content_refusal_and_tool_arguments_are_visited() {
        let body = json!({"id": "chatcmpl-1", "model": "gpt-4o", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hello", "refusal": null}, "finish_reason": "stop"},
            {"index": 1, "message": {"role": "assistant", "content": [{"type": "text", "text": "part"}], "refusal": "no",
             "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"q\":1}"}}],
             "function_call": {"name": "g", "arguments": "{}"}}}
        ], "usage": {"total_tokens": 3}});
        assert_eq!(
            response_texts(Wire::OpenAiChat, body),
            vec![
                (Part::Assistant, "hello".into()),
                (Part::Assistant, "part".into()),
                (Part::Assistant, "no".into()),
                (Part::ToolArguments, "{\"q\":1}".into()),
                (Part::ToolArguments, "{}".into()),
            ]
        );
    }

    #[test]
    fn responses_output_items_are_visited_and_reasoning_is_not() {
        let body = json!({"id": "resp_1", "instructions": "not output", "output": [
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "thinking"}]},
            {"type": "message", "role": "assistant", "content": [
                {"type": "output_text", "annotations": [], "text": "answer"},
                {"type": "refusal", "refusal": "declined"}
            ]},
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{\"a\":2}"}
        ]});
        let expected = vec![
            (Part::Assistant, "answer".to_string()),
            (Part::Assistant, "declined".to_string()),
            (Part::ToolArguments, "{\"a\":2}".to_string()),
        ];
        assert_eq!(response_texts(Wire::OpenAiResponses, body.clone()), expected);
        // The same object nested in a stream event (`response.completed`).
        let mut event = json!({"type": "response.completed", "sequence_number": 9, "response": body});
        let mut seen = Vec::new();
        visit_responses_object(&mut event["response"], &mut |part, s| seen.push((part, s.clone())));
        assert_eq!(seen, expected);
    }

    #[test]
    fn anthropic_response_text_and_tool_input_are_visited_and_thinking_is_not() {
        let body = json!({"id": "msg_1", "type": "message", "role": "assistant", "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "text", "text": "a"},
            {"type": "tool_use", "id": "t", "name": "n", "input": {"to": "x@y.co", "cc": ["z"], "n": 1}}
        ], "stop_reason": "tool_use"});
        assert_eq!(
            response_texts(Wire::AnthropicMessages, body),
            vec![
                (Part::Assistant, "a".into()),
                (Part::ToolArguments, "x@y.co".into()),
                (Part::ToolArguments, "z".into())
            ]
        );
    }

    #[test]
    fn gemini_and_bedrock_response_parts_are_visited() {
        let candidate = json!({"candidates": [{"content": {"role": "model", "parts": [
            {"text": "t"}, {"functionCall": {"name": "f", "args": {"q": "x"}}}
        ]}, "finishReason": "STOP", "index": 0}], "modelVersion": "gemini-2.5-flash"});
        let expected = vec![(Part::Assistant, "t".to_string()), (Part::ToolArguments, "x".to_string())];
        assert_eq!(response_texts(Wire::Gemini, candidate.clone()), expected);
        // `streamGenerateContent` without `alt=sse`: an array of the same objects.
        assert_eq!(response_texts(Wire::Gemini, json!([candidate.clone(), candidate])).len(), 4);
        let bedrock = json!({"output": {"message": {"role": "assistant", "content": [
            {"text": "b"}, {"toolUse": {"toolUseId": "t", "name": "f", "input": {"city": "Paris"}}}
        ]}}, "stopReason": "tool_use", "usage": {"inputTokens": 1}});
        assert_eq!(
            response_texts(Wire::BedrockConverse, bedrock),
            vec![(Part::Assistant, "b".into()), (Part::ToolArguments, "Paris".into())]
        );
    }

    #[test]
    fn unexpected_shapes_are_skipped_not_a_panic() {
        for body in [
            json!(null),
            json!([1, 2]),
            json!({"messages": "x"}),
            json!({"messages": [1, null, {"content": 5}]}),
            json!({"choices": [1, {"message": 5}], "output": [null, {"type": "message", "content": 3}]}),
            json!({"content": [null, {"type": "tool_use"}], "candidates": [{"content": 1}], "output": {"message": 2}}),
        ] {
            for wire in
                [Wire::OpenAiChat, Wire::OpenAiResponses, Wire::AnthropicMessages, Wire::Gemini, Wire::BedrockConverse]
            {
                assert!(texts(wire, body.clone()).is_empty());
                assert!(response_texts(wire, body.clone()).is_empty());
            }
        }
    }
}
