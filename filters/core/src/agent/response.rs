//! Which tools a response asks for, and which server-side tools failed inside it.
//!
//! Fed the same documents token accounting's observer reads (a whole body, one stream event, one
//! Bedrock event-stream payload), so it is split-invariant by construction: framing happened
//! before. Each document is parsed only when a quick byte search finds a key it could use, so
//! plain text deltas cost one `memmem` scan. Only tool names are kept, never arguments.
//!
//! | wire | client tool call | server tool call | server tool error |
//! |---|---|---|---|
//! | OpenAI chat | `tool_calls[]` (`function.name`, `custom.name`; a stream's call counted at its first fragment that names it), legacy `function_call` | | |
//! | Responses | `function_call`, `custom_tool_call`, `computer_call`, `local_shell_call`, `shell_call`, `apply_patch_call` items | `web_search_call`, `file_search_call`, `code_interpreter_call`, `image_generation_call`, `mcp_call` (its `name`) | `mcp_call.error`, a built-in call with `status: "failed"` |
//! | Anthropic | `tool_use` | `server_tool_use`, `mcp_tool_use` | a `*_tool_result` block whose content is a `*_tool_result_error`, `mcp_tool_result.is_error` |
//! | Gemini | `functionCall` | `executableCode` (`code_execution`) | `codeExecutionResult.outcome` other than `OUTCOME_OK` |
//! | Bedrock | `toolUse` (`contentBlockStart.start.toolUse` in streams) | | |
//!
//! In a Responses stream the items are read from `response.output_item.done` only (the final
//! `response.completed` repeats them).

use crate::token_accounting::provider::Wire;
use memchr::memmem;
use serde_json::Value;
use std::sync::LazyLock;

/// Names kept per response; further calls are counted without a name.
const MAX_CALLS: usize = 256;

/// Whether the provider or the client runs the tool: the `tool_type` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolType {
    Client,
    Server,
}

impl ToolType {
    pub fn label(self) -> &'static str {
        match self {
            ToolType::Client => "client",
            ToolType::Server => "server",
        }
    }
}

/// What one response has said about tools so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseTools {
    /// Tool calls requested, in order (at most [`MAX_CALLS`]).
    pub calls: Vec<(String, ToolType)>,
    /// Calls past [`MAX_CALLS`].
    pub calls_dropped: u64,
    /// Server-side tools that failed inside the response, by name.
    pub server_errors: Vec<String>,
    /// OpenAI chat streams: (choice, tool index) pairs already counted.
    streamed: Vec<(u64, u64)>,
    /// Anthropic server tool-use ids and names, to name a failed result.
    server_ids: Vec<(String, String)>,
}

/// Finders for the quick byte searches, built once per VM: `memmem::find` builds one per call,
/// which on a short stream event cost about as much as the search itself.
type Needles<const N: usize> = LazyLock<[memmem::Finder<'static>; N]>;
static CHAT_TOOLS: Needles<2> = LazyLock::new(|| finders([b"tool_calls", b"function_call"]));
static RESPONSES_ITEM_DONE: Needles<1> = LazyLock::new(|| finders([b"response.output_item.done"]));
static ANTHROPIC_BLOCK_START: Needles<1> = LazyLock::new(|| finders([b"content_block_start"]));
static GEMINI_TOOLS: Needles<3> =
    LazyLock::new(|| finders([b"functionCall", b"executableCode", b"codeExecutionResult"]));

fn finders<const N: usize>(needles: [&'static [u8]; N]) -> [memmem::Finder<'static>; N] {
    needles.map(memmem::Finder::new)
}

/// Whether `data` holds any of `needles`: for a whole body, read once per response.
fn has(data: &[u8], needles: &[&[u8]]) -> bool {
    needles.iter().any(|n| memmem::find(data, n).is_some())
}

/// [`has`] with finders built once: for stream events, searched once per event.
fn has_any(data: &[u8], needles: &[memmem::Finder<'static>]) -> bool {
    needles.iter().any(|n| n.find(data).is_some())
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn items(v: Option<&Value>) -> impl Iterator<Item = &Value> {
    v.and_then(Value::as_array).into_iter().flatten()
}

impl ResponseTools {
    fn call(&mut self, name: &str, kind: ToolType) {
        if self.calls.len() < MAX_CALLS {
            self.calls.push((name.to_string(), kind));
        } else {
            self.calls_dropped += 1;
        }
    }

    fn server_error(&mut self, name: &str) {
        if self.server_errors.len() < MAX_CALLS {
            self.server_errors.push(name.to_string());
        }
    }

    fn parse(data: &[u8]) -> Option<Value> {
        serde_json::from_slice(data).ok()
    }

    /// A whole non-streaming body.
    pub fn on_body(&mut self, wire: Wire, body: &[u8]) {
        match wire {
            Wire::OpenAiChat if has(body, &[b"tool_calls", b"function_call"]) => {
                if let Some(doc) = Self::parse(body) {
                    self.chat(&doc, false);
                }
            }
            Wire::OpenAiResponses if has(body, &[b"_call"]) => {
                if let Some(doc) = Self::parse(body) {
                    for item in items(doc.get("output")) {
                        self.responses_item(item);
                    }
                }
            }
            Wire::AnthropicMessages if has(body, &[b"tool_"]) => {
                if let Some(doc) = Self::parse(body) {
                    for block in items(doc.get("content")) {
                        self.anthropic_block(block);
                    }
                }
            }
            Wire::Gemini => self.on_gemini(body),
            Wire::BedrockConverse if has(body, &[b"toolUse"]) => {
                if let Some(doc) = Self::parse(body) {
                    let content = doc.get("output").and_then(|o| o.get("message")).and_then(|m| m.get("content"));
                    for block in items(content) {
                        if let Some(name) = block.get("toolUse").and_then(|t| text(t, "name")) {
                            self.call(name, ToolType::Client);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// One streamed JSON document (SSE `data` or JSON-array element).
    pub fn on_stream_document(&mut self, wire: Wire, data: &[u8]) {
        match wire {
            Wire::OpenAiChat if has_any(data, &*CHAT_TOOLS) => {
                if let Some(doc) = Self::parse(data) {
                    self.chat(&doc, true);
                }
            }
            Wire::OpenAiResponses if has_any(data, &*RESPONSES_ITEM_DONE) => {
                if let Some(doc) = Self::parse(data) {
                    if text(&doc, "type") == Some("response.output_item.done") {
                        if let Some(item) = doc.get("item") {
                            self.responses_item(item);
                        }
                    }
                }
            }
            Wire::AnthropicMessages if has_any(data, &*ANTHROPIC_BLOCK_START) => {
                if let Some(doc) = Self::parse(data) {
                    if text(&doc, "type") == Some("content_block_start") {
                        if let Some(block) = doc.get("content_block") {
                            self.anthropic_block(block);
                        }
                    }
                }
            }
            Wire::Gemini => self.on_gemini(data),
            _ => {}
        }
    }

    /// One Bedrock ConverseStream event's payload.
    pub fn on_bedrock_event(&mut self, event_type: Option<&str>, payload: &[u8]) {
        if event_type != Some("contentBlockStart") || !has(payload, &[b"toolUse"]) {
            return;
        }
        if let Some(doc) = Self::parse(payload) {
            if let Some(name) = doc.get("start").and_then(|s| s.get("toolUse")).and_then(|t| text(t, "name")) {
                self.call(name, ToolType::Client);
            }
        }
    }

    fn chat(&mut self, doc: &Value, stream: bool) {
        for (position, choice) in items(doc.get("choices")).enumerate() {
            let choice_index = choice.get("index").and_then(Value::as_u64).unwrap_or(position as u64);
            let Some(message) = choice.get(if stream { "delta" } else { "message" }) else { continue };
            for (position, call) in items(message.get("tool_calls")).enumerate() {
                let name = call.get("function").or_else(|| call.get("custom")).and_then(|f| text(f, "name"));
                let Some(name) = name.filter(|n| !n.is_empty()) else { continue };
                if stream {
                    let index = call.get("index").and_then(Value::as_u64).unwrap_or(position as u64);
                    if self.streamed.contains(&(choice_index, index)) {
                        continue;
                    }
                    self.streamed.push((choice_index, index));
                }
                self.call(name, ToolType::Client);
            }
            if let Some(name) = message.get("function_call").and_then(|f| text(f, "name")).filter(|n| !n.is_empty()) {
                if stream {
                    if self.streamed.contains(&(choice_index, u64::MAX)) {
                        continue;
                    }
                    self.streamed.push((choice_index, u64::MAX));
                }
                self.call(name, ToolType::Client);
            }
        }
    }

    fn responses_item(&mut self, item: &Value) {
        let Some(kind) = text(item, "type") else { return };
        match kind {
            "function_call" | "custom_tool_call" => {
                if let Some(name) = text(item, "name") {
                    self.call(name, ToolType::Client);
                }
            }
            "computer_call" | "local_shell_call" | "shell_call" | "apply_patch_call" => {
                self.call(kind.trim_end_matches("_call"), ToolType::Client);
            }
            _ if kind.ends_with("_call") => {
                let name = if kind == "mcp_call" {
                    text(item, "name").unwrap_or("mcp")
                } else {
                    kind.trim_end_matches("_call")
                };
                self.call(name, ToolType::Server);
                let error = item.get("error").is_some_and(|e| !e.is_null()) || text(item, "status") == Some("failed");
                if error {
                    self.server_error(name);
                }
            }
            _ => {}
        }
    }

    fn anthropic_block(&mut self, block: &Value) {
        let Some(kind) = text(block, "type") else { return };
        match kind {
            "tool_use" => {
                if let Some(name) = text(block, "name") {
                    self.call(name, ToolType::Client);
                }
            }
            "server_tool_use" | "mcp_tool_use" => {
                if let Some(name) = text(block, "name") {
                    self.call(name, ToolType::Server);
                    if let Some(id) = text(block, "id") {
                        self.server_ids.push((id.to_string(), name.to_string()));
                    }
                }
            }
            "mcp_tool_result" if block.get("is_error") == Some(&Value::Bool(true)) => {
                let name = self.server_name(block).unwrap_or_else(|| "mcp".to_string());
                self.server_error(&name);
            }
            "mcp_tool_result" => {}
            _ if kind.ends_with("_tool_result") => {
                let failed = block.get("content").and_then(|c| text(c, "type")).is_some_and(|t| t.ends_with("_error"));
                if failed {
                    let name =
                        self.server_name(block).unwrap_or_else(|| kind.trim_end_matches("_tool_result").to_string());
                    self.server_error(&name);
                }
            }
            _ => {}
        }
    }

    fn server_name(&self, block: &Value) -> Option<String> {
        let id = text(block, "tool_use_id")?;
        self.server_ids.iter().find(|(known, _)| known == id).map(|(_, name)| name.clone())
    }

    fn on_gemini(&mut self, data: &[u8]) {
        if !has_any(data, &*GEMINI_TOOLS) {
            return;
        }
        let Some(doc) = Self::parse(data) else { return };
        for candidate in items(doc.get("candidates")) {
            for part in items(candidate.get("content").and_then(|c| c.get("parts"))) {
                if let Some(name) = part.get("functionCall").and_then(|f| text(f, "name")) {
                    self.call(name, ToolType::Client);
                } else if part.get("executableCode").is_some() {
                    self.call("code_execution", ToolType::Server);
                } else if let Some(result) = part.get("codeExecutionResult") {
                    if text(result, "outcome").is_some_and(|o| o != "OUTCOME_OK") {
                        self.server_error("code_execution");
                    }
                }
            }
        }
    }
}
