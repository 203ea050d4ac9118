//! Finish reasons: the provider's raw value, and one normalized value across providers.
//!
//! Normalized values: `stop`, `length`, `tool_calls`, `content_filter`, `error`, `other`.
//! Refusals and content filtering both map to `content_filter`, which is what a "refusal rate"
//! alert watches; the raw value is always logged beside it.

use super::provider::Wire;

pub fn normalize(wire: Wire, raw: &str) -> &'static str {
    match wire {
        Wire::OpenAiChat => match raw {
            "stop" => "stop",
            "length" => "length",
            "tool_calls" | "function_call" => "tool_calls",
            "content_filter" => "content_filter",
            // OpenRouter ends a stream that failed mid-generation with `finish_reason: "error"`.
            "error" => "error",
            _ => "other",
        },
        // The Responses API has a status, and a reason when incomplete.
        Wire::OpenAiResponses => match raw {
            "completed" => "stop",
            "max_output_tokens" => "length",
            "content_filter" => "content_filter",
            "failed" => "error",
            _ => "other",
        },
        Wire::AnthropicMessages => match raw {
            "end_turn" | "stop_sequence" => "stop",
            "max_tokens" | "model_context_window_exceeded" => "length",
            "tool_use" => "tool_calls",
            "refusal" => "content_filter",
            _ => "other",
        },
        Wire::Gemini => match raw {
            "STOP" => "stop",
            "MAX_TOKENS" => "length",
            "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => "content_filter",
            "MALFORMED_FUNCTION_CALL" => "error",
            _ => "other",
        },
        Wire::BedrockConverse => match raw {
            "end_turn" | "stop_sequence" => "stop",
            "max_tokens" => "length",
            "tool_use" => "tool_calls",
            "guardrail_intervened" | "content_filtered" => "content_filter",
            _ => "other",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_raw_value_has_its_normalized_value() {
        let cases = [
            (Wire::OpenAiChat, "stop", "stop"),
            (Wire::OpenAiChat, "length", "length"),
            (Wire::OpenAiChat, "tool_calls", "tool_calls"),
            (Wire::OpenAiChat, "function_call", "tool_calls"),
            (Wire::OpenAiChat, "content_filter", "content_filter"),
            (Wire::OpenAiResponses, "completed", "stop"),
            (Wire::OpenAiResponses, "max_output_tokens", "length"),
            (Wire::OpenAiResponses, "failed", "error"),
            (Wire::AnthropicMessages, "end_turn", "stop"),
            (Wire::AnthropicMessages, "max_tokens", "length"),
            (Wire::AnthropicMessages, "stop_sequence", "stop"),
            (Wire::AnthropicMessages, "tool_use", "tool_calls"),
            (Wire::AnthropicMessages, "pause_turn", "other"),
            (Wire::AnthropicMessages, "refusal", "content_filter"),
            (Wire::Gemini, "STOP", "stop"),
            (Wire::Gemini, "MAX_TOKENS", "length"),
            (Wire::Gemini, "SAFETY", "content_filter"),
            (Wire::Gemini, "RECITATION", "content_filter"),
            (Wire::Gemini, "OTHER", "other"),
            (Wire::BedrockConverse, "end_turn", "stop"),
            (Wire::BedrockConverse, "max_tokens", "length"),
            (Wire::BedrockConverse, "tool_use", "tool_calls"),
            (Wire::BedrockConverse, "guardrail_intervened", "content_filter"),
            (Wire::BedrockConverse, "content_filtered", "content_filter"),
        ];
        for (wire, raw, normalized) in cases {
            assert_eq!(normalize(wire, raw), normalized, "{wire:?} {raw}");
        }
    }

    #[test]
    fn unknown_values_are_other() {
        assert_eq!(normalize(Wire::OpenAiChat, "something_new"), "other");
        assert_eq!(normalize(Wire::Gemini, ""), "other");
    }
}
