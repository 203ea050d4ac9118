//! Where the text is in each provider's request and non-streaming response: the typed walk that
//! PII redaction (rewriting), the system-prompt fingerprint and content capture all use.
//!
//! Only places that carry conversation text are visited, each with its [`Part`]: system prompts
//! and instructions, message content (strings and text parts), tool-call arguments and tool
//! results. Model names, ids, enum fields and image data are never visited. Values are edited in
//! place in a `serde_json::Value`, so a rewritten body is valid JSON with correct escaping, and
//! with `serde_json`'s `preserve_order` every other field keeps its place.
//!
//! The same walk reads a [`Borrowed`] document (any [`Node`]): strings borrowed from the body,
//! no map built, for the common case where the texts are only checked and the body is left as it
//! came (a JSON response without a detection); the caller builds the `Value` only to rewrite.

use crate::token_accounting::provider::Wire;
use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::borrow::Cow;

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

type Visit<'a, T> = dyn FnMut(Part, &mut T) + 'a;

/// A parsed JSON document as the walk reads it: a `serde_json::Value`, whose texts the visitor
/// may edit in place (a rewrite), or a [`Borrowed`] document, read without building a `Value`
/// (a check that usually changes nothing). One walk serves both, so they visit the same texts
/// in the same order.
pub trait Node: Sized {
    /// What the visitor receives for a piece of text.
    type Text: std::ops::Deref<Target = str>;
    /// The member `key` of an object (None for anything else).
    fn get(&self, key: &str) -> Option<&Self>;
    fn get_mut(&mut self, key: &str) -> Option<&mut Self>;
    fn as_str(&self) -> Option<&str>;
    /// A non-negative integer (what `Value::as_u64` reads).
    fn as_u64(&self) -> Option<u64>;
    fn text_mut(&mut self) -> Option<&mut Self::Text>;
    fn items(&self) -> Option<&[Self]>;
    fn items_mut(&mut self) -> Option<&mut [Self]>;
    /// An object's values in document order (nothing for anything else).
    fn values_mut(&mut self) -> impl Iterator<Item = &mut Self>;
}

impl Node for Value {
    type Text = String;
    fn get(&self, key: &str) -> Option<&Self> {
        Value::get(self, key)
    }
    fn get_mut(&mut self, key: &str) -> Option<&mut Self> {
        Value::get_mut(self, key)
    }
    fn as_str(&self) -> Option<&str> {
        Value::as_str(self)
    }
    fn as_u64(&self) -> Option<u64> {
        Value::as_u64(self)
    }
    fn items(&self) -> Option<&[Self]> {
        self.as_array().map(Vec::as_slice)
    }
    fn text_mut(&mut self) -> Option<&mut String> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    fn items_mut(&mut self) -> Option<&mut [Self]> {
        self.as_array_mut().map(Vec::as_mut_slice)
    }
    fn values_mut(&mut self) -> impl Iterator<Item = &mut Self> {
        self.as_object_mut().into_iter().flat_map(|map| map.values_mut())
    }
}

/// A JSON document read without copying its strings (a string with an escape is the only one
/// copied): what the walk needs to find the texts when nothing will be written back. A `Value`
/// with `preserve_order` builds an index map and a `String` for every key and every string.
///
/// It accepts exactly what `Value` accepts, or less: every value is read through serde_json's
/// `deserialize_any`, as `Value` is, so numbers (range included), escapes, UTF-8, nesting depth
/// and trailing bytes are checked the same way. An object with a repeated key is refused: in a
/// `Value` the last one wins, in its first one's place, and a caller that is refused takes the
/// `Value` path, which then decides as it always did.
#[derive(Debug, PartialEq)]
pub enum Borrowed<'a> {
    Text(Cow<'a, str>),
    Array(Vec<Borrowed<'a>>),
    Object(Vec<(Cow<'a, str>, Borrowed<'a>)>),
    /// A non-negative integer that fits a `u64` (what `Value::as_u64` reads).
    Unsigned(u64),
    /// Any other number, a boolean or null.
    Other,
}

impl<'a> Node for Borrowed<'a> {
    type Text = Cow<'a, str>;
    fn get(&self, key: &str) -> Option<&Self> {
        match self {
            Borrowed::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    fn get_mut(&mut self, key: &str) -> Option<&mut Self> {
        match self {
            Borrowed::Object(members) => members.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    fn as_str(&self) -> Option<&str> {
        match self {
            Borrowed::Text(s) => Some(s),
            _ => None,
        }
    }
    fn as_u64(&self) -> Option<u64> {
        match self {
            Borrowed::Unsigned(n) => Some(*n),
            _ => None,
        }
    }
    fn items(&self) -> Option<&[Self]> {
        match self {
            Borrowed::Array(items) => Some(items),
            _ => None,
        }
    }
    fn text_mut(&mut self) -> Option<&mut Cow<'a, str>> {
        match self {
            Borrowed::Text(s) => Some(s),
            _ => None,
        }
    }
    fn items_mut(&mut self) -> Option<&mut [Self]> {
        match self {
            Borrowed::Array(items) => Some(items),
            _ => None,
        }
    }
    fn values_mut(&mut self) -> impl Iterator<Item = &mut Self> {
        let members = match self {
            Borrowed::Object(members) => members.as_mut_slice(),
            _ => &mut [],
        };
        members.iter_mut().map(|(_, v)| v)
    }
}

impl<'de> Deserialize<'de> for Borrowed<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(BorrowedVisitor)
    }
}

struct BorrowedVisitor;

impl<'de> Visitor<'de> for BorrowedVisitor {
    type Value = Borrowed<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Borrowed::Other)
    }
    fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
        // As `Value` stores it: a non-negative one is a `u64`.
        Ok(u64::try_from(n).map_or(Borrowed::Other, Borrowed::Unsigned))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
        Ok(Borrowed::Unsigned(n))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Borrowed::Other)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Borrowed::Other)
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Borrowed::Text(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Borrowed::Text(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
        Ok(Borrowed::Text(Cow::Owned(s)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Borrowed::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members: Vec<(Cow<'de, str>, Borrowed<'de>)> = Vec::new();
        while let Some(key) = map.next_key()? {
            // JSON keys are strings; anything else is not JSON this type reads.
            let Borrowed::Text(key) = key else { return Err(A::Error::custom("a key that is not a string")) };
            members.push((key, map.next_value()?));
        }
        if repeats_a_key(&members) {
            return Err(A::Error::custom("repeated key"));
        }
        Ok(Borrowed::Object(members))
    }
}

/// Whether two members have the same key (pairwise for small objects, else sorted).
fn repeats_a_key(members: &[(Cow<'_, str>, Borrowed<'_>)]) -> bool {
    if members.len() <= 16 {
        return members.iter().enumerate().any(|(i, (k, _))| members.iter().take(i).any(|(j, _)| j == k));
    }
    let mut keys: Vec<&str> = members.iter().map(|(k, _)| k.as_ref()).collect();
    keys.sort_unstable();
    keys.windows(2).any(|w| w.first() == w.get(1))
}

/// Visits every piece of conversation text in a request body of `wire`.
pub fn visit_request<N: Node>(wire: Wire, root: &mut N, f: &mut Visit<'_, N::Text>) {
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
pub fn visit_response<N: Node>(wire: Wire, root: &mut N, f: &mut Visit<'_, N::Text>) {
    match wire {
        Wire::OpenAiChat => openai_chat_response(root, f),
        Wire::OpenAiResponses => visit_responses_object(root, f),
        Wire::AnthropicMessages => anthropic_response(root, f),
        // `streamGenerateContent` without `alt=sse` answers with a JSON array of responses.
        Wire::Gemini => match root.items_mut() {
            Some(items) => items.iter_mut().for_each(|item| gemini_response(item, f)),
            None => gemini_response(root, f),
        },
        Wire::BedrockConverse => bedrock_response(root, f),
    }
}

/// The model text of an OpenAI Responses object: the body of a non-streaming response, and the
/// `response` member of the `response.created` / `response.completed` / `response.incomplete` /
/// `response.failed` stream events.
pub fn visit_responses_object<N: Node>(root: &mut N, f: &mut Visit<'_, N::Text>) {
    for item in each(root, "output") {
        visit_responses_item(item, f);
    }
}

/// One item of a Responses `output[]`: also what `response.output_item.done` carries as `item`.
pub fn visit_responses_item<N: Node>(item: &mut N, f: &mut Visit<'_, N::Text>) {
    match item.get("type").and_then(N::as_str) {
        Some("function_call") => {
            if let Some(args) = item.get_mut("arguments").and_then(N::text_mut) {
                f(Part::ToolArguments, args);
            }
        }
        // Custom (free-form) tools receive one raw string instead of JSON arguments.
        Some("custom_tool_call") => {
            if let Some(input) = item.get_mut("input").and_then(N::text_mut) {
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
pub fn visit_responses_content<N: Node>(content: &mut N, f: &mut Visit<'_, N::Text>) {
    for key in ["text", "refusal"] {
        if let Some(s) = content.get_mut(key).and_then(N::text_mut) {
            f(Part::Assistant, s);
        }
    }
}

fn openai_chat_response<N: Node>(root: &mut N, f: &mut Visit<'_, N::Text>) {
    for choice in each(root, "choices") {
        let Some(message) = choice.get_mut("message") else {
            continue;
        };
        if let Some(content) = message.get_mut("content") {
            text_or_parts(content, Part::Assistant, f);
        }
        if let Some(s) = message.get_mut("refusal").and_then(N::text_mut) {
            f(Part::Assistant, s);
        }
        for call in each(message, "tool_calls") {
            if let Some(args) = call.get_mut("function").and_then(|fun| fun.get_mut("arguments")).and_then(N::text_mut)
            {
                f(Part::ToolArguments, args);
            }
        }
        // The deprecated single `function_call` that older models and compatible servers return.
        if let Some(args) =
            message.get_mut("function_call").and_then(|fun| fun.get_mut("arguments")).and_then(N::text_mut)
        {
            f(Part::ToolArguments, args);
        }
    }
}

fn anthropic_response<N: Node>(root: &mut N, f: &mut Visit<'_, N::Text>) {
    for block in each(root, "content") {
        match block.get("type").and_then(N::as_str) {
            Some("text") => {
                if let Some(s) = block.get_mut("text").and_then(N::text_mut) {
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

fn gemini_response<N: Node>(root: &mut N, f: &mut Visit<'_, N::Text>) {
    for candidate in each(root, "candidates") {
        if let Some(content) = candidate.get_mut("content") {
            gemini_parts(content, Part::Assistant, f);
        }
    }
}

fn bedrock_response<N: Node>(root: &mut N, f: &mut Visit<'_, N::Text>) {
    let Some(message) = root.get_mut("output").and_then(|o| o.get_mut("message")) else {
        return;
    };
    for block in each(message, "content") {
        if let Some(s) = block.get_mut("text").and_then(N::text_mut) {
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
fn text_or_parts<N: Node>(value: &mut N, part: Part, f: &mut Visit<'_, N::Text>) {
    if let Some(s) = value.text_mut() {
        return f(part, s);
    }
    for item in value.items_mut().into_iter().flatten() {
        if let Some(s) = item.get_mut("text").and_then(N::text_mut) {
            f(part, s);
        }
    }
}

/// Every string inside a JSON value (tool inputs and results given as objects).
pub(crate) fn all_strings<N: Node>(value: &mut N, part: Part, f: &mut Visit<'_, N::Text>) {
    if let Some(s) = value.text_mut() {
        return f(part, s);
    }
    if let Some(items) = value.items_mut() {
        return items.iter_mut().for_each(|v| all_strings(v, part, f));
    }
    value.values_mut().for_each(|v| all_strings(v, part, f));
}

fn each<'v, N: Node>(root: &'v mut N, key: &str) -> impl Iterator<Item = &'v mut N> {
    root.get_mut(key).and_then(N::items_mut).into_iter().flatten()
}

fn openai_chat<N: Node>(root: &mut N, f: &mut Visit<'_, N::Text>) {
    for message in each(root, "messages") {
        let part = role_part(message.get("role").and_then(N::as_str));
        if let Some(content) = message.get_mut("content") {
            text_or_parts(content, part, f);
        }
        for call in each(message, "tool_calls") {
            if let Some(args) = call.get_mut("function").and_then(|fun| fun.get_mut("arguments")).and_then(N::text_mut)
            {
                f(Part::ToolArguments, args);
            }
        }
        if let Some(args) =
            message.get_mut("function_call").and_then(|fun| fun.get_mut("arguments")).and_then(N::text_mut)
        {
            f(Part::ToolArguments, args);
        }
    }
}

fn responses<N: Node>(root: &mut N, f: &mut Visit<'_, N::Text>) {
    if let Some(s) = root.get_mut("instructions").and_then(N::text_mut) {
        f(Part::System, s);
    }
    let Some(input) = root.get_mut("input") else { return };
    if let Some(s) = input.text_mut() {
        return f(Part::User, s);
    }
    for item in input.items_mut().into_iter().flatten() {
        match item.get("type").and_then(N::as_str) {
            Some("function_call") => {
                if let Some(args) = item.get_mut("arguments").and_then(N::text_mut) {
                    f(Part::ToolArguments, args);
                }
            }
            Some("function_call_output") => {
                if let Some(output) = item.get_mut("output") {
                    text_or_parts(output, Part::ToolResult, f);
                }
            }
            _ => {
                let part = role_part(item.get("role").and_then(N::as_str));
                if let Some(content) = item.get_mut("content") {
                    text_or_parts(content, part, f);
                }
            }
        }
    }
}

fn anthropic<N: Node>(root: &mut N, f: &mut Visit<'_, N::Text>) {
    if let Some(system) = root.get_mut("system") {
        text_or_parts(system, Part::System, f);
    }
    for message in each(root, "messages") {
        let part = role_part(message.get("role").and_then(N::as_str));
        let Some(content) = message.get_mut("content") else { continue };
        if let Some(s) = content.text_mut() {
            f(part, s);
            continue;
        }
        for block in content.items_mut().into_iter().flatten() {
            match block.get("type").and_then(N::as_str) {
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
                    if let Some(s) = block.get_mut("text").and_then(N::text_mut) {
                        f(part, s);
                    }
                }
            }
        }
    }
}

fn gemini_parts<N: Node>(content: &mut N, part: Part, f: &mut Visit<'_, N::Text>) {
    for p in each(content, "parts") {
        if let Some(s) = p.get_mut("text").and_then(N::text_mut) {
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

fn gemini<N: Node>(root: &mut N, f: &mut Visit<'_, N::Text>) {
    for key in ["systemInstruction", "system_instruction"] {
        if let Some(system) = root.get_mut(key) {
            gemini_parts(system, Part::System, f);
        }
    }
    for content in each(root, "contents") {
        let part = role_part(content.get("role").and_then(N::as_str));
        gemini_parts(content, part, f);
    }
}

fn bedrock<N: Node>(root: &mut N, f: &mut Visit<'_, N::Text>) {
    for block in each(root, "system") {
        if let Some(s) = block.get_mut("text").and_then(N::text_mut) {
            f(Part::System, s);
        }
    }
    for message in each(root, "messages") {
        let part = role_part(message.get("role").and_then(N::as_str));
        for block in each(message, "content") {
            if let Some(s) = block.get_mut("text").and_then(N::text_mut) {
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

    /// Every text the walk visits in `raw` read as `N`, requests and responses, every wire; None
    /// when `raw` does not read as `N`.
    fn walk<'a, N: Node + serde::Deserialize<'a>>(raw: &'a [u8]) -> Option<Vec<(bool, Wire, Part, String)>>
    where
        N::Text: std::ops::Deref<Target = str>,
    {
        let doc: N = serde_json::from_slice(raw).ok()?;
        let mut out = Vec::new();
        for wire in
            [Wire::OpenAiChat, Wire::OpenAiResponses, Wire::AnthropicMessages, Wire::Gemini, Wire::BedrockConverse]
        {
            for response in [false, true] {
                let mut doc = serde_json::from_slice::<N>(raw).ok()?;
                let mut f = |part, s: &mut N::Text| out.push((response, wire, part, s.to_string()));
                if response {
                    visit_response(wire, &mut doc, &mut f);
                } else {
                    visit_request(wire, &mut doc, &mut f);
                }
            }
        }
        drop(doc);
        Some(out)
    }

    #[test]
    fn a_borrowed_read_visits_what_a_value_visits_or_declines() {
        // Hand-made edge cases, then every recorded provider request and response.
        let mut cases: Vec<Vec<u8>> = [
            r#"{"choices":[{"message":{"content":"caf\u00e9 \"q\" \ud83d\ude00","refusal":"no"}}]}"#,
            r#"{"content":[{"type":"text","text":"a"},{"type":"tool_use","input":{"b":"x","a":["y",{"c":"z"}],"n":1e300}}]}"#,
            r#"{"candidates":[{"content":{"parts":[{"text":"t"}]}}]}"#,
            r#"[{"candidates":[{"content":{"parts":[{"text":"t1"}]}}]},{"candidates":[{"content":{"parts":[{"text":"t2"}]}}]}]"#,
            r#"{"output":[{"type":"message","content":[{"type":"output_text","text":"o"}]},{"type":"function_call","arguments":"{}"}]}"#,
            r#"{"input":[{"role":"user","content":"u"},{"type":"function_call_output","output":[{"text":"r"}]}],"instructions":"i"}"#,
            r#"{"messages":[{"role":"user","content":[{"text":"b"},{"toolResult":{"content":[{"text":"r"}]}}]}]}"#,
            r#"{"k\u0065y":"escaped key","messages":[{"role":"system","content":"s"}],"n":-0.0,"big":123456789012345678901234567890}"#,
            // Not JSON, or not JSON serde_json reads: both must decline.
            r#"{"messages":[{"role":"user","content":"a"}],}"#,
            r#"{"n":1e400}"#,
            r#"{"s":"\ud800"}"#,
            r#"{"s":"a"} x"#,
            r#"{"s":"unterminated"#,
            "",
            // A repeated key: the borrowed read declines; the `Value` takes the last one.
            r#"{"choices":[{"message":{"content":"first","content":"last"}}]}"#,
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        cases.push(b"{\"s\":\"\xff\"}".to_vec());
        cases.push(format!("{}{}", "[".repeat(200), "]".repeat(200)).into_bytes());
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/providers");
        for dir in std::fs::read_dir(&fixtures).unwrap().flatten() {
            for file in ["request.json", "response.json"] {
                if let Ok(raw) = std::fs::read(dir.path().join(file)) {
                    cases.push(raw);
                }
            }
        }
        assert!(cases.len() > 60, "the fixtures were not found");
        let (mut read, mut declined) = (0, 0);
        for raw in &cases {
            let shown = String::from_utf8_lossy(raw);
            match (walk::<Borrowed<'_>>(raw), walk::<Value>(raw)) {
                (Some(borrowed), Some(value)) => {
                    assert_eq!(borrowed, value, "{shown}");
                    read += 1;
                }
                (Some(_), None) => panic!("read borrowed, not as a Value: {shown}"),
                (None, Some(_)) => {
                    assert!(shown.contains(r#""content":"first","content":"last""#), "declined: {shown}");
                    declined += 1;
                }
                (None, None) => {}
            }
        }
        assert_eq!(declined, 1);
        assert!(read > 60, "{read}");
    }

    #[test]
    fn a_borrowed_read_copies_only_strings_with_an_escape() {
        let raw = br#"{"plain":"abc","escaped":"a\nb","list":["x",1,null,true]}"#;
        let doc: Borrowed<'_> = serde_json::from_slice(raw).unwrap();
        assert!(matches!(doc.get("plain"), Some(Borrowed::Text(Cow::Borrowed("abc")))));
        assert!(matches!(doc.get("escaped"), Some(Borrowed::Text(Cow::Owned(s))) if s == "a\nb"));
        let Some(Borrowed::Array(items)) = doc.get("list") else { panic!("{doc:?}") };
        assert_eq!(items.len(), 4);
        assert_eq!(items.get(1), Some(&Borrowed::Unsigned(1)));
        assert_eq!(items.get(2), Some(&Borrowed::Other));
    }

    #[test]
    fn a_borrowed_number_reads_as_a_value_number_does() {
        let raw = b"[0, 7, -1, -0, 1.0, 1e2, 18446744073709551615, 18446744073709551616, -9223372036854775808]";
        let value: Value = serde_json::from_slice(raw).unwrap();
        let borrowed: Borrowed<'_> = serde_json::from_slice(raw).unwrap();
        let from_value: Vec<Option<u64>> = value.as_array().unwrap().iter().map(Value::as_u64).collect();
        let from_borrowed: Vec<Option<u64>> = borrowed.items().unwrap().iter().map(Node::as_u64).collect();
        assert_eq!(from_borrowed, from_value);
        assert_eq!(from_value.iter().flatten().count(), 3, "{from_value:?}");
    }

    #[test]
    fn repeated_keys_are_found_in_small_and_large_objects() {
        let small = br#"{"a":1,"b":2,"a":3}"#;
        assert!(serde_json::from_slice::<Borrowed<'_>>(small).is_err());
        let keys: Vec<String> = (0..40).map(|i| format!("\"k{i}\":{i}")).collect();
        let large = format!("{{{}}}", keys.join(","));
        assert!(serde_json::from_slice::<Borrowed<'_>>(large.as_bytes()).is_ok());
        let repeated = format!("{{{},\"k7\":0}}", keys.join(","));
        assert!(serde_json::from_slice::<Borrowed<'_>>(repeated.as_bytes()).is_err());
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
