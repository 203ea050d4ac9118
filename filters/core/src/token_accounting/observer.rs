//! Reads usage, model, id and finish reason out of each provider's response frames.
//!
//! Framing (SSE, AWS event-stream, JSON array) happens before this module: each function here
//! takes one complete JSON document (a whole non-streaming body, one SSE `data`, one JSON-array
//! element, one event-stream payload) and folds what it says into an [`Observation`]. Documents
//! are parsed with small serde structs that name only the fields read; everything else is
//! skipped. A document that does not parse is counted, never guessed at.

use super::provider::Wire;
use super::usage::Reported;
use serde::Deserialize;
use std::borrow::Cow;

/// What one response has said so far.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Observation {
    pub response_model: Option<String>,
    pub response_id: Option<String>,
    pub usage: Reported,
    pub finish_raw: Option<String>,
    /// An error reported inside a response that started as a success.
    pub in_band_error: bool,
    /// The provider's end-of-stream marker was seen (`[DONE]`, `message_stop`, ...).
    pub terminated: bool,
    /// Frames that carried generated content (text, tool-call arguments, thinking).
    pub content_chunks: u64,
    /// Documents that did not parse as the provider's JSON.
    pub parse_failures: u64,
    /// The first in-band error document (at most 8 KiB), for error classification.
    pub error_document: Option<Vec<u8>>,
    /// A Bedrock in-stream exception's `:exception-type` (or `:event-type`).
    pub exception_type: Option<String>,
    bedrock_stop_seen: bool,
    bedrock_metadata_seen: bool,
    /// Tool calls and server tool errors (`crate::agent::response`), fed the same documents.
    pub tools: crate::agent::response::ResponseTools,
}

/// Whether a frame carried generated content (the time of the first one is the time to first
/// chunk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    Content,
    Other,
}

const MAX_ERROR_DOCUMENT: usize = 8 << 10;

impl Observation {
    fn in_band_error(&mut self, document: &[u8]) {
        self.in_band_error = true;
        if self.error_document.is_none() {
            self.error_document = Some(document.get(..MAX_ERROR_DOCUMENT).unwrap_or(document).to_vec());
        }
    }

    fn set_first<T: Into<String>>(slot: &mut Option<String>, value: Option<T>) {
        if slot.is_none() {
            if let Some(v) = value {
                let v: String = v.into();
                if !v.is_empty() {
                    *slot = Some(v);
                }
            }
        }
    }

    fn finish(&mut self, raw: Option<Cow<'_, str>>) {
        if let Some(raw) = raw {
            if !raw.is_empty() {
                self.finish_raw = Some(raw.into_owned());
            }
        }
    }

    /// A whole non-streaming JSON body.
    pub fn on_body(&mut self, wire: Wire, body: &[u8]) {
        self.tools.on_body(wire, body);
        match wire {
            Wire::OpenAiChat => {
                self.on_openai_chat(body, false);
            }
            Wire::OpenAiResponses => self.on_responses_body(body),
            Wire::AnthropicMessages => self.on_anthropic_body(body),
            Wire::Gemini => {
                self.on_gemini(body);
            }
            Wire::BedrockConverse => self.on_bedrock_body(body),
        }
    }

    /// One streamed JSON document (an SSE `data` or a JSON-array element). `data` may be the
    /// OpenAI terminator `[DONE]`.
    pub fn on_stream_document(&mut self, wire: Wire, data: &[u8]) -> Frame {
        self.tools.on_stream_document(wire, data);
        match self.stream_document(wire, data) {
            Frame::Content => self.content(),
            Frame::Other => Frame::Other,
        }
    }

    /// Counts a content frame, in the one place that does.
    fn content(&mut self) -> Frame {
        self.content_chunks += 1;
        Frame::Content
    }

    fn stream_document(&mut self, wire: Wire, data: &[u8]) -> Frame {
        match wire {
            Wire::OpenAiChat => {
                if data.trim_ascii() == b"[DONE]" {
                    self.terminated = true;
                    return Frame::Other;
                }
                self.on_openai_chat(data, true)
            }
            Wire::OpenAiResponses => self.on_responses_event(data),
            Wire::AnthropicMessages => self.on_anthropic_event(data),
            Wire::Gemini => self.on_gemini(data),
            // Bedrock streams arrive as event-stream messages: see `on_bedrock_message`.
            Wire::BedrockConverse => Frame::Other,
        }
    }

    fn parse<'a, T: Deserialize<'a>>(&mut self, data: &'a [u8]) -> Option<T> {
        match serde_json::from_slice::<T>(data) {
            Ok(v) => Some(v),
            Err(_) => {
                self.parse_failures += 1;
                None
            }
        }
    }

    fn on_openai_chat(&mut self, data: &[u8], stream: bool) -> Frame {
        let Some(doc) = self.parse::<ChatDoc>(data) else { return Frame::Other };
        if doc.error.is_some() {
            // Not a return: the chunk that carries the error may carry the usage billed so far
            // too (OpenRouter ends a failed stream with `{"error": {...}, "usage": {...}}`).
            self.in_band_error(data);
        }
        Self::set_first(&mut self.response_id, doc.id);
        Self::set_first(&mut self.response_model, doc.model);
        let mut frame = Frame::Other;
        for choice in doc.choices.unwrap_or_default() {
            if self.finish_raw.is_none() {
                self.finish(choice.finish_reason);
            }
            let delta = if stream { choice.delta } else { None };
            if delta.is_some_and(|d| d.has_content()) {
                frame = Frame::Content;
            }
        }
        // Groq streams carry usage only in `x_groq.usage` (the same fields); `usage` wins when a
        // chunk has both.
        if let Some(u) = doc.usage.or(doc.x_groq.and_then(|x| x.usage)) {
            self.usage.merge(u.reported());
        }
        frame
    }

    fn on_responses_body(&mut self, data: &[u8]) {
        if let Some(r) = self.parse::<ResponseObject>(data) {
            self.fold_response_object(r);
        }
    }

    fn fold_response_object(&mut self, r: ResponseObject<'_>) {
        Self::set_first(&mut self.response_id, r.id);
        Self::set_first(&mut self.response_model, r.model);
        match r.status.as_deref() {
            Some("incomplete") => {
                let reason = r.incomplete_details.and_then(|d| d.reason).unwrap_or(Cow::Borrowed("incomplete"));
                self.finish(Some(reason));
            }
            Some("in_progress") | Some("queued") | None => {}
            status => self.finish(status.map(Cow::Borrowed)),
        }
        if let Some(u) = r.usage {
            self.usage.merge(u.reported());
        }
    }

    fn on_responses_event(&mut self, data: &[u8]) -> Frame {
        let Some(event) = self.parse::<ResponsesEvent>(data) else { return Frame::Other };
        let kind = event.kind.as_deref().unwrap_or_default();
        match kind {
            "response.completed" | "response.incomplete" => self.terminated = true,
            "response.failed" | "error" => {
                self.terminated = true;
                self.in_band_error(data);
            }
            _ => {}
        }
        if let Some(r) = event.response {
            self.fold_response_object(r);
        }
        if kind.ends_with(".delta") {
            return Frame::Content;
        }
        Frame::Other
    }

    fn on_anthropic_body(&mut self, data: &[u8]) {
        let Some(m) = self.parse::<AnthropicMessage>(data) else { return };
        Self::set_first(&mut self.response_id, m.id);
        Self::set_first(&mut self.response_model, m.model);
        self.finish(m.stop_reason);
        if let Some(u) = m.usage {
            self.usage.merge(u.reported());
        }
    }

    fn on_anthropic_event(&mut self, data: &[u8]) -> Frame {
        let Some(event) = self.parse::<AnthropicEvent>(data) else { return Frame::Other };
        match event.kind.as_deref().unwrap_or_default() {
            "message_start" => {
                if let Some(m) = event.message {
                    Self::set_first(&mut self.response_id, m.id);
                    Self::set_first(&mut self.response_model, m.model);
                    if let Some(u) = m.usage {
                        self.usage.merge(u.reported());
                    }
                }
            }
            "content_block_delta" => return Frame::Content,
            "message_delta" => {
                if let Some(d) = event.delta {
                    self.finish(d.stop_reason);
                }
                // Cumulative, not incremental (providers.md): merging replaces, never adds.
                if let Some(u) = event.usage {
                    self.usage.merge(u.reported());
                }
            }
            "message_stop" => self.terminated = true,
            "error" => {
                self.in_band_error(data);
                self.terminated = true;
            }
            _ => {}
        }
        Frame::Other
    }

    fn on_gemini(&mut self, data: &[u8]) -> Frame {
        let Some(chunk) = self.parse::<GeminiChunk>(data) else { return Frame::Other };
        if chunk.error.is_some() {
            self.in_band_error(data);
            return Frame::Other;
        }
        Self::set_first(&mut self.response_id, chunk.response_id);
        Self::set_first(&mut self.response_model, chunk.model_version);
        let mut frame = Frame::Other;
        for candidate in chunk.candidates.unwrap_or_default() {
            if candidate.content.is_some_and(|c| c.parts.is_some_and(|p| !p.is_empty())) {
                frame = Frame::Content;
            }
            if self.finish_raw.is_none() {
                self.finish(candidate.finish_reason);
            }
        }
        if let Some(u) = chunk.usage_metadata {
            // Every chunk may carry cumulative usage: the last one wins.
            self.usage.merge(u.reported());
        }
        frame
    }

    fn on_bedrock_body(&mut self, data: &[u8]) {
        let Some(r) = self.parse::<BedrockConverse>(data) else { return };
        self.finish(r.stop_reason);
        if let Some(u) = r.usage {
            self.usage.merge(u.reported());
        }
    }

    /// One AWS event-stream message of a ConverseStream response.
    pub fn on_bedrock_message(
        &mut self,
        message_type: Option<&str>,
        event_type: Option<&str>,
        payload: &[u8],
    ) -> Frame {
        if message_type != Some("event") {
            // `exception` (modelStreamErrorException, throttlingException, ...) or `error`.
            self.in_band_error(payload);
            self.exception_type = event_type.map(str::to_string);
            self.terminated = true;
            return Frame::Other;
        }
        self.tools.on_bedrock_event(event_type, payload);
        match event_type.unwrap_or_default() {
            "contentBlockDelta" => return self.content(),
            "messageStop" => {
                if let Some(stop) = self.parse::<BedrockStop>(payload) {
                    self.finish(stop.stop_reason);
                }
                self.bedrock_stop_seen = true;
            }
            "metadata" => {
                if let Some(meta) = self.parse::<BedrockConverse>(payload) {
                    if let Some(u) = meta.usage {
                        self.usage.merge(u.reported());
                    }
                }
                self.bedrock_metadata_seen = true;
            }
            _ => {}
        }
        self.terminated = self.bedrock_stop_seen && self.bedrock_metadata_seen;
        Frame::Other
    }
}

// --- provider documents: only the fields read ---

#[derive(Deserialize)]
struct ChatDoc<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    choices: Option<Vec<ChatChoice<'a>>>,
    usage: Option<OpenAiUsage>,
    x_groq: Option<GroqExtension>,
    error: Option<serde::de::IgnoredAny>,
}

/// Groq's `x_groq` object on chat chunks: its `usage` has OpenAI's fields.
#[derive(Deserialize)]
struct GroqExtension {
    usage: Option<OpenAiUsage>,
}

#[derive(Deserialize)]
struct ChatChoice<'a> {
    #[serde(borrow)]
    finish_reason: Option<Cow<'a, str>>,
    #[serde(borrow)]
    delta: Option<ChatDelta<'a>>,
}

#[derive(Deserialize)]
struct ChatDelta<'a> {
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    reasoning_content: Option<Cow<'a, str>>,
    tool_calls: Option<serde::de::IgnoredAny>,
    function_call: Option<serde::de::IgnoredAny>,
}

impl ChatDelta<'_> {
    fn has_content(&self) -> bool {
        self.content.as_ref().is_some_and(|c| !c.is_empty())
            || self.reasoning_content.as_ref().is_some_and(|c| !c.is_empty())
            || self.tool_calls.is_some()
            || self.function_call.is_some()
    }
}

#[derive(Deserialize)]
struct OpenAiUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    total_tokens: Option<u64>,
    prompt_tokens_details: Option<CachedDetails>,
    completion_tokens_details: Option<ReasoningDetails>,
    /// DeepSeek's cache read count (its context-caching guide); `prompt_tokens` includes it.
    prompt_cache_hit_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct CachedDetails {
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct ReasoningDetails {
    reasoning_tokens: Option<u64>,
}

impl OpenAiUsage {
    fn reported(self) -> Reported {
        Reported {
            input: self.prompt_tokens,
            output: self.completion_tokens,
            total: self.total_tokens,
            cache_read: self.prompt_tokens_details.and_then(|d| d.cached_tokens).or(self.prompt_cache_hit_tokens),
            reasoning: self.completion_tokens_details.and_then(|d| d.reasoning_tokens),
            ..Reported::default()
        }
    }
}

#[derive(Deserialize)]
struct ResponsesEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    response: Option<ResponseObject<'a>>,
}

#[derive(Deserialize)]
struct ResponseObject<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow)]
    incomplete_details: Option<IncompleteDetails<'a>>,
    usage: Option<ResponsesUsage>,
}

#[derive(Deserialize)]
struct IncompleteDetails<'a> {
    #[serde(borrow)]
    reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ResponsesUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    total_tokens: Option<u64>,
    input_tokens_details: Option<CachedDetails>,
    output_tokens_details: Option<ReasoningDetails>,
}

impl ResponsesUsage {
    fn reported(self) -> Reported {
        Reported {
            input: self.input_tokens,
            output: self.output_tokens,
            total: self.total_tokens,
            cache_read: self.input_tokens_details.and_then(|d| d.cached_tokens),
            reasoning: self.output_tokens_details.and_then(|d| d.reasoning_tokens),
            ..Reported::default()
        }
    }
}

#[derive(Deserialize)]
struct AnthropicMessage<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    stop_reason: Option<Cow<'a, str>>,
    usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
struct AnthropicEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    message: Option<AnthropicMessage<'a>>,
    #[serde(borrow)]
    delta: Option<AnthropicDelta<'a>>,
    usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
struct AnthropicDelta<'a> {
    #[serde(borrow)]
    stop_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct AnthropicUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
}

impl AnthropicUsage {
    fn reported(self) -> Reported {
        Reported {
            input: self.input_tokens,
            output: self.output_tokens,
            cache_read: self.cache_read_input_tokens,
            cache_creation: self.cache_creation_input_tokens,
            ..Reported::default()
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiChunk<'a> {
    #[serde(borrow)]
    candidates: Option<Vec<GeminiCandidate<'a>>>,
    usage_metadata: Option<GeminiUsage>,
    #[serde(borrow)]
    model_version: Option<Cow<'a, str>>,
    #[serde(borrow)]
    response_id: Option<Cow<'a, str>>,
    error: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiCandidate<'a> {
    content: Option<GeminiContent>,
    #[serde(borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct GeminiContent {
    parts: Option<Vec<serde::de::IgnoredAny>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiUsage {
    prompt_token_count: Option<u64>,
    candidates_token_count: Option<u64>,
    total_token_count: Option<u64>,
    thoughts_token_count: Option<u64>,
    cached_content_token_count: Option<u64>,
    tool_use_prompt_token_count: Option<u64>,
}

impl GeminiUsage {
    fn reported(self) -> Reported {
        // Gemini omits zero counts (a response blocked for safety has no candidatesTokenCount):
        // once it reports usage at all, an absent candidate count is zero.
        let any = self.prompt_token_count.is_some() || self.total_token_count.is_some();
        Reported {
            input: self.prompt_token_count,
            tool_use_input: self.tool_use_prompt_token_count,
            output: self.candidates_token_count.or(any.then_some(0)),
            reasoning: self.thoughts_token_count,
            cache_read: self.cached_content_token_count,
            total: self.total_token_count,
            ..Reported::default()
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BedrockConverse<'a> {
    #[serde(borrow)]
    stop_reason: Option<Cow<'a, str>>,
    usage: Option<BedrockUsage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BedrockStop<'a> {
    #[serde(borrow)]
    stop_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BedrockUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    total_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_write_input_tokens: Option<u64>,
}

impl BedrockUsage {
    fn reported(self) -> Reported {
        Reported {
            input: self.input_tokens,
            output: self.output_tokens,
            total: self.total_tokens,
            cache_read: self.cache_read_input_tokens,
            cache_creation: self.cache_write_input_tokens,
            ..Reported::default()
        }
    }
}

// Hand-written so that no body, prompt or provider message can reach a log through `{:?}`.
impl std::fmt::Debug for Observation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observation")
            .field("usage", &self.usage)
            .field("finish_raw", &self.finish_raw)
            .field("in_band_error", &self.in_band_error)
            .field("terminated", &self.terminated)
            .field("content_chunks", &self.content_chunks)
            .finish_non_exhaustive()
    }
}
