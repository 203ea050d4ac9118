//! The two reads of a JSON body the typed walk runs on (`content`): any bytes that read as a
//! `content::Borrowed` document also read as a `serde_json::Value`, and the walk visits the same
//! texts in the same order in both, requests and responses, every wire. Redaction relies on it
//! to leave a response it only checked borrowed exactly as its `Value` rewrite would (issue 15).
#![no_main]
use libfuzzer_sys::fuzz_target;
use llmobs_core::content::{self, Borrowed, Node, Part};
use llmobs_core::token_accounting::provider::Wire;
use serde_json::Value;

const WIRES: [Wire; 5] =
    [Wire::OpenAiChat, Wire::OpenAiResponses, Wire::AnthropicMessages, Wire::Gemini, Wire::BedrockConverse];

fn texts<N: Node>(mut doc: N, wire: Wire, response: bool, text: fn(&N::Text) -> String) -> Vec<(Part, String)> {
    let mut out = Vec::new();
    let mut f = |part, s: &mut N::Text| out.push((part, text(s)));
    if response {
        content::visit_response(wire, &mut doc, &mut f);
    } else {
        content::visit_request(wire, &mut doc, &mut f);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(borrowed) = serde_json::from_slice::<Borrowed<'_>>(data) else { return };
    let value: Value = serde_json::from_slice(data).expect("read borrowed, so it reads as a Value");
    drop(borrowed);
    for wire in WIRES {
        for response in [false, true] {
            let b = texts(serde_json::from_slice::<Borrowed<'_>>(data).unwrap(), wire, response, |s| s.to_string());
            let v = texts(value.clone(), wire, response, String::clone);
            assert_eq!(b, v, "{wire:?} response={response}");
        }
    }
});
