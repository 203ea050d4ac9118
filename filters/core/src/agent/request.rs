//! What a request's conversation history says about its agent run: how many assistant turns it
//! holds (the iteration), which tool results the client added since the last assistant turn and
//! whether they failed, whether earlier results failed, and the prompt id and version the body
//! names.
//!
//! Stateless by design: every LLM call of an agent loop resends the whole history, so one
//! request tells where it sits in its run. Only the results after the last real assistant turn
//! are new; the earlier ones were counted by the request that first carried them.
//!
//! The reader is wire-agnostic: each provider's history has its own shape (OpenAI chat and
//! Anthropic and Bedrock `messages`, Gemini `contents`, Responses `input` items) and its blocks
//! are named apart (`tool_result`, `toolResult`, `functionResponse`, `function_call_output`,
//! role `tool`), so one walk over the parsed document reads all of them, and the bundle can
//! read the document redaction already parsed. Nothing of a message's text is kept except, for
//! tool outputs that carry no error flag on the wire (OpenAI chat and Responses), their first
//! 64 bytes until the operator's markers are compared at the end of the exchange.

use super::config::{AgentConfig, MAX_PREFIX_BYTES};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// How one tool result says whether the tool failed.
#[derive(Clone, PartialEq, Eq)]
enum Verdict {
    /// A flag on the provider's wire: Anthropic `tool_result.is_error`, Bedrock
    /// `toolResult.status`, Gemini `functionResponse.response.error`.
    Flag(bool),
    /// An output with no flag (OpenAI chat and Responses): decided by the convention.
    Untyped {
        /// A JSON object output with a top-level `error` key (not null or false).
        json_error: bool,
        /// An MCP `CallToolResult` output with `isError: true`.
        mcp_error: bool,
        /// The output's first bytes after leading whitespace, for the operator's prefixes.
        head: String,
    },
}

/// Where a tool error was read from: the `error_source` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorSource {
    /// The provider's wire flag.
    Flag,
    /// An MCP result's `isError` inside an output.
    Mcp,
    /// The configured convention for outputs with no flag (`json_error_key`, prefixes).
    Convention,
}

impl ErrorSource {
    pub fn label(self) -> &'static str {
        match self {
            ErrorSource::Flag => "flag",
            ErrorSource::Mcp => "mcp",
            ErrorSource::Convention => "convention",
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
struct ToolResult {
    /// The tool's name, from the result itself (Gemini, legacy `function`) or from the
    /// assistant tool call it answers.
    name: Option<String>,
    /// Added since the last real assistant turn.
    new: bool,
    verdict: Verdict,
}

impl ToolResult {
    fn error(&self, config: &AgentConfig) -> Option<ErrorSource> {
        match &self.verdict {
            Verdict::Flag(true) => Some(ErrorSource::Flag),
            Verdict::Flag(false) => None,
            Verdict::Untyped { mcp_error: true, .. } => Some(ErrorSource::Mcp),
            Verdict::Untyped { json_error, head, .. } => ((config.json_error_key && *json_error)
                || config.tool_error_prefixes.iter().any(|p| head.starts_with(p.trim_start())))
            .then_some(ErrorSource::Convention),
        }
    }
}

/// One request's reading. `Default` is an empty history (a request that was not read).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AgentRequest {
    /// Real assistant turns in the history (filler turns excluded).
    pub assistant_turns: u32,
    /// Any assistant turn at all, filler included.
    any_assistant: bool,
    /// The history lives at the provider (Responses `previous_response_id` or `conversation`):
    /// the request may continue a session without showing it.
    continues_stored: bool,
    results: Vec<ToolResult>,
    pub prompt_id: Option<String>,
    pub prompt_version: Option<String>,
}

/// A new tool result's outcome, for the metrics and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewResult<'a> {
    pub name: Option<&'a str>,
    pub error: Option<ErrorSource>,
}

impl AgentRequest {
    /// Reads a parsed request document (any provider's shape; anything else reads as empty).
    pub fn read(doc: &Value) -> Self {
        let mut reader = Reader::default();
        if let Some(obj) = doc.as_object() {
            reader.prompt(obj);
            if let Some(messages) = obj.get("messages").and_then(Value::as_array) {
                for m in messages {
                    reader.message(m);
                }
            } else if let Some(contents) = obj.get("contents").and_then(Value::as_array) {
                for c in contents {
                    reader.gemini_content(c);
                }
            } else if let Some(items) = obj.get("input").and_then(Value::as_array) {
                for item in items {
                    reader.responses_item(item);
                }
            }
            reader.out.continues_stored =
                ["previous_response_id", "conversation"].iter().any(|k| obj.get(*k).is_some_and(|v| !v.is_null()));
        }
        reader.finish()
    }

    /// The iteration of this request within its agent run: assistant turns in its history + 1.
    pub fn iteration(&self) -> u32 {
        self.assistant_turns.saturating_add(1)
    }

    /// The request opens a session: no assistant turn, no tool result, no stored history.
    pub fn starts_session(&self) -> bool {
        !self.any_assistant && self.results.is_empty() && !self.continues_stored
    }

    /// The tool results added since the last real assistant turn, with their outcomes.
    pub fn new_results<'a>(&'a self, config: &AgentConfig) -> Vec<NewResult<'a>> {
        self.results
            .iter()
            .filter(|r| r.new)
            .map(|r| NewResult { name: r.name.as_deref(), error: r.error(config) })
            .collect()
    }

    /// Whether a result before the last real assistant turn failed.
    pub fn history_has_error(&self, config: &AgentConfig) -> bool {
        self.results.iter().any(|r| !r.new && r.error(config).is_some())
    }

    /// The session's first tool error: a new result failed and no earlier one did.
    pub fn first_tool_error(&self, config: &AgentConfig) -> bool {
        self.new_results(config).iter().any(|r| r.error.is_some()) && !self.history_has_error(config)
    }
}

/// One step of the history, in order.
enum Step {
    Assistant { real: bool },
    Result { call_id: Option<String>, name: Option<String>, verdict: Verdict },
    Other,
}

#[derive(Default)]
struct Reader {
    steps: Vec<Step>,
    /// Tool-call id -> tool name, from every assistant tool call.
    calls: HashMap<String, String>,
    out: AgentRequest,
}

fn text(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str)
}

fn non_blank(v: Option<&Value>) -> bool {
    text(v).is_some_and(|s| !s.trim().is_empty())
}

impl Reader {
    fn prompt(&mut self, obj: &Map<String, Value>) {
        // OpenAI Responses: `prompt: {id, version, variables}`; then the request `metadata`.
        let sources = [obj.get("prompt"), obj.get("metadata")];
        for (field, keys) in [("id", ["id", "prompt_id"]), ("version", ["version", "prompt_version"])] {
            let found = sources
                .iter()
                .zip(keys)
                .find_map(|(source, key)| text(source.and_then(|s| s.as_object()).and_then(|s| s.get(key))));
            let slot = if field == "id" { &mut self.out.prompt_id } else { &mut self.out.prompt_version };
            *slot = found.map(str::to_string);
        }
    }

    fn call(&mut self, id: Option<&Value>, name: Option<&Value>) {
        if let (Some(id), Some(name)) = (text(id), text(name)) {
            self.calls.insert(id.to_string(), name.to_string());
        }
    }

    /// The assistant step just pushed, extended by another item of the same turn (Responses
    /// output items follow each other), or a new one.
    fn assistant(&mut self, real: bool, merge: bool) {
        if let (true, Some(Step::Assistant { real: prev })) = (merge, self.steps.last_mut()) {
            *prev |= real;
            return;
        }
        self.steps.push(Step::Assistant { real });
    }

    /// OpenAI chat, Anthropic and Bedrock messages.
    fn message(&mut self, m: &Value) {
        let Some(m) = m.as_object() else { return };
        let role = text(m.get("role")).unwrap_or_default();
        let content = m.get("content");
        match role {
            "assistant" => {
                let mut real = non_blank(content) || non_blank(m.get("refusal")) || m.get("audio").is_some();
                for call in m.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                    let name = call.get("function").or_else(|| call.get("custom")).and_then(|f| f.get("name"));
                    self.call(call.get("id"), name);
                    real = true;
                }
                if let Some(f) = m.get("function_call") {
                    real |= f.get("name").is_some();
                }
                for part in content.and_then(Value::as_array).into_iter().flatten() {
                    real |= self.assistant_part(part);
                }
                self.assistant(real, false);
            }
            "tool" => self.steps.push(Step::Result {
                call_id: text(m.get("tool_call_id")).map(str::to_string),
                name: None,
                verdict: untyped(content),
            }),
            "function" => self.steps.push(Step::Result {
                call_id: None,
                name: text(m.get("name")).map(str::to_string),
                verdict: untyped(content),
            }),
            _ => {
                let mut any = false;
                for part in content.and_then(Value::as_array).into_iter().flatten() {
                    if part.get("type").and_then(Value::as_str) == Some("tool_result") {
                        any = true;
                        let error = part.get("is_error").and_then(Value::as_bool).unwrap_or(false);
                        self.steps.push(Step::Result {
                            call_id: text(part.get("tool_use_id")).map(str::to_string),
                            name: None,
                            verdict: Verdict::Flag(error),
                        });
                    } else if let Some(r) = part.get("toolResult") {
                        any = true;
                        self.steps.push(Step::Result {
                            call_id: text(r.get("toolUseId")).map(str::to_string),
                            name: None,
                            verdict: Verdict::Flag(text(r.get("status")) == Some("error")),
                        });
                    }
                }
                if !any {
                    self.steps.push(Step::Other);
                }
            }
        }
    }

    /// One block of an assistant message: records tool calls; true when it is real content.
    fn assistant_part(&mut self, part: &Value) -> bool {
        if let Some(tool_use) = part.get("toolUse") {
            self.call(tool_use.get("toolUseId"), tool_use.get("name"));
            return true;
        }
        match text(part.get("type")) {
            Some("tool_use" | "server_tool_use" | "mcp_tool_use") => {
                self.call(part.get("id"), part.get("name"));
                true
            }
            Some("text" | "output_text") | None => {
                non_blank(part.get("text")) || part.get("reasoningContent").is_some() || part.get("image").is_some()
            }
            Some("refusal") => true,
            // Thinking, server-tool results, images: output of the model, not filler.
            Some(_) => true,
        }
    }

    /// Gemini `contents[]`.
    fn gemini_content(&mut self, c: &Value) {
        let parts = c.get("parts").and_then(Value::as_array);
        if text(c.get("role")) == Some("model") {
            let mut real = false;
            for part in parts.into_iter().flatten() {
                if let Some(call) = part.get("functionCall") {
                    self.call(call.get("id"), call.get("name"));
                    real = true;
                } else {
                    real |= non_blank(part.get("text"))
                        || part.get("executableCode").is_some()
                        || part.get("codeExecutionResult").is_some()
                        || part.get("inlineData").is_some();
                }
            }
            self.assistant(real, false);
            return;
        }
        let mut any = false;
        for part in parts.into_iter().flatten() {
            if let Some(r) = part.get("functionResponse") {
                any = true;
                // Gemini's documented shape: `response` holds `output` on success, `error` on
                // failure (ai.google.dev, function calling).
                let error = r.get("response").and_then(Value::as_object).is_some_and(has_error_key);
                self.steps.push(Step::Result {
                    call_id: text(r.get("id")).map(str::to_string),
                    name: text(r.get("name")).map(str::to_string),
                    verdict: Verdict::Flag(error),
                });
            }
        }
        if !any {
            self.steps.push(Step::Other);
        }
    }

    /// OpenAI Responses `input[]` items.
    fn responses_item(&mut self, item: &Value) {
        let kind = text(item.get("type"));
        let role = text(item.get("role"));
        match (kind, role) {
            (Some("message") | None, Some("assistant")) => {
                let content = item.get("content");
                let mut real = non_blank(content);
                for part in content.and_then(Value::as_array).into_iter().flatten() {
                    real |= non_blank(part.get("text")) || text(part.get("type")) == Some("refusal");
                }
                self.assistant(real, true);
            }
            (Some("function_call" | "custom_tool_call"), _) => {
                self.call(item.get("call_id"), item.get("name"));
                self.assistant(true, true);
            }
            (Some(k), _) if k.ends_with("_output") => self.steps.push(Step::Result {
                call_id: text(item.get("call_id")).map(str::to_string),
                name: None,
                verdict: untyped(item.get("output")),
            }),
            // Built-in tool calls and reasoning: the model's own output items.
            (Some(k), _) if k.ends_with("_call") || k == "reasoning" => self.assistant(true, true),
            _ => self.steps.push(Step::Other),
        }
    }

    fn finish(mut self) -> AgentRequest {
        let last_real = self.steps.iter().rposition(|s| matches!(s, Step::Assistant { real: true }));
        for (i, step) in self.steps.into_iter().enumerate() {
            match step {
                Step::Assistant { real } => {
                    self.out.any_assistant = true;
                    self.out.assistant_turns += u32::from(real);
                }
                Step::Result { call_id, name, verdict } => {
                    let name = name.or_else(|| call_id.and_then(|id| self.calls.get(&id).cloned()));
                    self.out.results.push(ToolResult { name, new: last_real.is_none_or(|l| i > l), verdict });
                }
                Step::Other => {}
            }
        }
        self.out
    }
}

fn has_error_key(o: &Map<String, Value>) -> bool {
    o.get("error").is_some_and(|e| !e.is_null() && *e != Value::Bool(false))
}

/// An output with no error flag on the wire: a string, or an array of text parts.
fn untyped(output: Option<&Value>) -> Verdict {
    let mut joined = String::new();
    let whole: &str = match output {
        Some(Value::String(s)) => s,
        Some(Value::Array(parts)) => {
            for part in parts {
                if let Some(t) = text(part.get("text")) {
                    joined.push_str(t);
                }
            }
            &joined
        }
        _ => "",
    };
    let trimmed = whole.trim_start();
    let (mut json_error, mut mcp_error) = (false, false);
    // Parsed only when one of the two keys can be in it: most outputs are not errors, and a
    // parse of every output costs more than the rest of the history's reading.
    if trimmed.starts_with('{') && (trimmed.contains("\"error\"") || trimmed.contains("\"isError\"")) {
        if let Ok(Value::Object(o)) = serde_json::from_str::<Value>(trimmed) {
            json_error = has_error_key(&o);
            mcp_error = o.get("isError") == Some(&Value::Bool(true));
        }
    }
    let mut end = trimmed.len().min(MAX_PREFIX_BYTES);
    while !trimmed.is_char_boundary(end) {
        end -= 1;
    }
    Verdict::Untyped { json_error, mcp_error, head: trimmed[..end].to_string() }
}

// Hand-written: an output's first bytes must never reach a log through `{:?}`.
impl std::fmt::Debug for AgentRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentRequest")
            .field("assistant_turns", &self.assistant_turns)
            .field("tool_results", &self.results.len())
            .finish_non_exhaustive()
    }
}
