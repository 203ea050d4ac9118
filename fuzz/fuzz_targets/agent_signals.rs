//! The agent-signal readers: any bytes as a request document (history, tool results, prompt
//! ids) and as a response document of every wire (tool calls, server tool errors) never panic,
//! and what they report is consistent: an iteration of at least 1, a session's first tool error
//! only with a failed new result, a session start only without assistant turns or results,
//! tool names bounded per response.
#![no_main]
use libfuzzer_sys::fuzz_target;
use llmobs_core::agent::config::AgentConfig;
use llmobs_core::agent::request::AgentRequest;
use llmobs_core::agent::response::ResponseTools;
use llmobs_core::token_accounting::provider::Wire;

const WIRES: [Wire; 5] =
    [Wire::OpenAiChat, Wire::OpenAiResponses, Wire::AnthropicMessages, Wire::Gemini, Wire::BedrockConverse];

fuzz_target!(|data: &[u8]| {
    if let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) {
        let reading = AgentRequest::read(&doc);
        let config = AgentConfig { tool_error_prefixes: vec!["Error:".into()], ..AgentConfig::default() };
        let new = reading.new_results(&config);
        assert!(reading.iteration() >= 1);
        if reading.first_tool_error(&config) {
            assert!(new.iter().any(|r| r.error.is_some()));
            assert!(!reading.history_has_error(&config));
        }
        if reading.starts_session() {
            assert!(new.is_empty() && reading.assistant_turns == 0);
        }
    }
    for wire in WIRES {
        let mut tools = ResponseTools::default();
        tools.on_body(wire, data);
        tools.on_stream_document(wire, data);
        tools.on_bedrock_event(Some("contentBlockStart"), data);
        assert!(tools.calls.len() <= 256 && tools.server_errors.len() <= 256);
    }
});
