//! Token usage as providers report it, and as llmobs reports it.
//!
//! Providers disagree on what "input" means. llmobs follows the OpenTelemetry GenAI semantic
//! conventions: `input` counts every input token, cached ones included, and the cache read and
//! creation counts are reported separately as well. Conversions (docs/filters/token-accounting.md):
//! - OpenAI, Azure, OpenAI-compatible: `prompt_tokens` already includes cached tokens;
//!   `completion_tokens` includes reasoning, except where the provider's total shows it does not
//!   (xAI: total = prompt + completion + reasoning): then output = completion + reasoning.
//! - Anthropic: `input_tokens` excludes cache reads and writes, so
//!   input = input_tokens + cache_read_input_tokens + cache_creation_input_tokens.
//! - Gemini: `promptTokenCount` includes cached content; tool-use prompt tokens are added;
//!   output = candidatesTokenCount + thoughtsTokenCount (OpenAI's completion count includes
//!   reasoning, so this keeps `output` the same quantity across providers).
//! - Bedrock Converse: input = inputTokens + cacheReadInputTokens + cacheWriteInputTokens.
//!
//! The provider's own total is reported as is (it is what is billed, and for some reasoning
//! models it is not input + output); missing usage stays missing, never estimated.

use super::provider::Wire;

/// Fields exactly as the provider reported them; a later report overwrites an earlier one
/// field by field (streams repeat cumulative counts: the last value is the right one, never a sum).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reported {
    /// OpenAI `prompt_tokens`, Responses/Anthropic `input_tokens`, Gemini `promptTokenCount`,
    /// Bedrock `inputTokens`.
    pub input: Option<u64>,
    /// Gemini `toolUsePromptTokenCount`.
    pub tool_use_input: Option<u64>,
    /// OpenAI `completion_tokens`, `output_tokens`, Gemini `candidatesTokenCount`, Bedrock
    /// `outputTokens`.
    pub output: Option<u64>,
    pub cache_read: Option<u64>,
    pub cache_creation: Option<u64>,
    /// OpenAI/Responses reasoning tokens, Gemini `thoughtsTokenCount`.
    pub reasoning: Option<u64>,
    pub total: Option<u64>,
}

impl Reported {
    /// Field-by-field: a reported value replaces the previous one; an absent one keeps it.
    pub fn merge(&mut self, later: Reported) {
        fn take(slot: &mut Option<u64>, value: Option<u64>) {
            if value.is_some() {
                *slot = value;
            }
        }
        take(&mut self.input, later.input);
        take(&mut self.tool_use_input, later.tool_use_input);
        take(&mut self.output, later.output);
        take(&mut self.cache_read, later.cache_read);
        take(&mut self.cache_creation, later.cache_creation);
        take(&mut self.reasoning, later.reasoning);
        take(&mut self.total, later.total);
    }

    pub fn is_empty(&self) -> bool {
        *self == Reported::default()
    }

    /// The semconv view of these fields for `wire`.
    pub fn normalize(&self, wire: Wire) -> Usage {
        let add = |a: Option<u64>, extra: &[Option<u64>]| {
            a.map(|a| extra.iter().fold(a, |sum, e| sum.saturating_add(e.unwrap_or(0))))
        };
        let (input, output) = match wire {
            Wire::OpenAiChat => (self.input, self.chat_output()),
            Wire::OpenAiResponses => (self.input, self.output),
            Wire::AnthropicMessages | Wire::BedrockConverse => {
                (add(self.input, &[self.cache_read, self.cache_creation]), self.output)
            }
            Wire::Gemini => {
                let output = match (self.output, self.reasoning) {
                    (None, None) => None,
                    (o, r) => Some(o.unwrap_or(0).saturating_add(r.unwrap_or(0))),
                };
                (add(self.input, &[self.tool_use_input]), output)
            }
        };
        Usage {
            input,
            output,
            cache_read: self.cache_read,
            cache_creation: self.cache_creation,
            reasoning: self.reasoning,
            total: self.total,
        }
    }
}

impl Reported {
    /// OpenAI's `completion_tokens` includes the reasoning tokens; xAI's does not (Google Cloud,
    /// "Grok reasoning": "the reasoning token count is outputted in the reasoning_tokens field,
    /// separated from the completion_tokens", total = prompt + completion + reasoning). The
    /// provider's own total tells the two apart without naming the provider: when it equals
    /// prompt + completion + reasoning (reasoning > 0), output is completion + reasoning.
    fn chat_output(&self) -> Option<u64> {
        match (self.input, self.output, self.reasoning, self.total) {
            (Some(i), Some(o), Some(r), Some(t))
                if r > 0 && i.checked_add(o).and_then(|s| s.checked_add(r)) == Some(t) =>
            {
                Some(o + r)
            }
            _ => self.output,
        }
    }
}

/// Usage as llmobs reports it (semconv meanings; see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: Option<u64>,
    pub output: Option<u64>,
    pub cache_read: Option<u64>,
    pub cache_creation: Option<u64>,
    pub reasoning: Option<u64>,
    pub total: Option<u64>,
}

/// `gen_ai.token.type` values, in the order they are recorded.
pub const TOKEN_TYPES: [&str; 5] = ["input", "output", "cache_read", "cache_creation", "reasoning"];

impl Usage {
    /// `(gen_ai.token.type, count)` for every reported count.
    pub fn by_type(&self) -> impl Iterator<Item = (&'static str, u64)> {
        [self.input, self.output, self.cache_read, self.cache_creation, self.reasoning]
            .into_iter()
            .zip(TOKEN_TYPES)
            .filter_map(|(v, t)| v.map(|v| (t, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_report_replaces_fields_it_carries_and_keeps_the_rest() {
        let mut r = Reported { input: Some(10), cache_read: Some(4), ..Reported::default() };
        r.merge(Reported { output: Some(3), ..Reported::default() });
        r.merge(Reported { output: Some(7), ..Reported::default() });
        assert_eq!(r, Reported { input: Some(10), cache_read: Some(4), output: Some(7), ..Reported::default() });
    }

    #[test]
    fn anthropic_input_adds_cache_reads_and_writes() {
        let r = Reported {
            input: Some(20),
            cache_read: Some(100),
            cache_creation: Some(30),
            output: Some(5),
            ..Reported::default()
        };
        let u = r.normalize(Wire::AnthropicMessages);
        assert_eq!(u.input, Some(150));
        assert_eq!(u.cache_read, Some(100));
        assert_eq!(u.cache_creation, Some(30));
        assert_eq!(u.total, None);
    }

    #[test]
    fn openai_prompt_tokens_already_include_the_cache() {
        let r = Reported {
            input: Some(120),
            cache_read: Some(100),
            output: Some(9),
            total: Some(129),
            ..Default::default()
        };
        let u = r.normalize(Wire::OpenAiChat);
        assert_eq!((u.input, u.output, u.total), (Some(120), Some(9), Some(129)));
    }

    #[test]
    fn a_completion_count_without_its_reasoning_tokens_gets_them_added_when_the_total_says_so() {
        // xAI: total = prompt + completion + reasoning.
        let xai = Reported {
            input: Some(663),
            output: Some(50),
            reasoning: Some(124),
            total: Some(837),
            ..Default::default()
        };
        assert_eq!(xai.normalize(Wire::OpenAiChat).output, Some(174));
        // OpenAI (and OpenRouter's Grok): completion already includes reasoning.
        let openai = Reported {
            input: Some(163),
            output: Some(241),
            reasoning: Some(204),
            total: Some(404),
            ..Default::default()
        };
        assert_eq!(openai.normalize(Wire::OpenAiChat).output, Some(241));
        // No total, or no reasoning: the completion count as reported.
        let bare = Reported { input: Some(1), output: Some(2), reasoning: Some(3), ..Default::default() };
        assert_eq!(bare.normalize(Wire::OpenAiChat).output, Some(2));
        let zero =
            Reported { input: Some(1), output: Some(2), reasoning: Some(0), total: Some(3), ..Default::default() };
        assert_eq!(zero.normalize(Wire::OpenAiChat).output, Some(2));
    }

    #[test]
    fn gemini_output_includes_thoughts_and_input_includes_tool_prompts() {
        let r = Reported {
            input: Some(50),
            tool_use_input: Some(5),
            output: Some(10),
            reasoning: Some(40),
            total: Some(105),
            ..Default::default()
        };
        let u = r.normalize(Wire::Gemini);
        assert_eq!((u.input, u.output, u.reasoning, u.total), (Some(55), Some(50), Some(40), Some(105)));
    }

    #[test]
    fn missing_usage_stays_missing() {
        let u = Reported::default().normalize(Wire::Gemini);
        assert_eq!(u, Usage::default());
        assert_eq!(u.by_type().count(), 0);
    }

    #[test]
    fn token_types_are_listed_only_when_reported() {
        let u = Usage { input: Some(3), reasoning: Some(1), ..Usage::default() };
        assert_eq!(u.by_type().collect::<Vec<_>>(), vec![("input", 3), ("reasoning", 1)]);
    }
}
