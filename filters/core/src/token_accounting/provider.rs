//! Which provider API a request speaks, from its path (and headers), before any body is seen.
//!
//! The wire format decides how usage is read; the provider name is the `gen_ai.provider.name`
//! label (OpenTelemetry well-known values where one exists). OpenAI-compatible servers (vLLM,
//! Ollama, llama.cpp) speak the OpenAI wire format on the same paths, so they are told apart only
//! by configuration (per cluster or path prefix): see [`super::config::ProviderOverride`].

use crate::config::ConfigError;
use crate::host::Host;
use serde::Deserialize;

/// A configured provider name for OpenAI-compatible servers and custom routes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderOverride {
    pub cluster: Option<String>,
    pub path_prefix: Option<String>,
    /// The `gen_ai.provider.name` to report, e.g. `vllm` or `ollama`.
    pub provider: String,
}

pub fn validate_overrides(overrides: &[ProviderOverride]) -> Result<(), ConfigError> {
    for (i, p) in overrides.iter().enumerate() {
        let field = format!("providers[{i}]");
        let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
        if set(&p.cluster) == set(&p.path_prefix) {
            return Err(ConfigError::new(field, "set exactly one of `cluster` and `path_prefix`"));
        }
        let valid = !p.provider.is_empty()
            && p.provider.len() <= 64
            && p.provider.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if !valid {
            return Err(ConfigError::new(
                format!("{field}.provider"),
                "must be 1-64 characters of a-z, 0-9, '.', '_', '-'",
            ));
        }
    }
    Ok(())
}

/// The `gen_ai.provider.name` for a request: the first override matching the request's cluster
/// or path prefix, else the detected provider.
pub fn provider_name<H: Host>(host: &H, path: &str, detected: &str, overrides: &[ProviderOverride]) -> String {
    // One host call per request only where an override matches on the cluster.
    let cluster =
        overrides.iter().any(|o| o.cluster.is_some()).then(|| host.property(&["xds", "cluster_name"])).flatten();
    for o in overrides {
        let by_cluster = o.cluster.as_deref().is_some_and(|c| cluster.as_deref() == Some(c.as_bytes()));
        let by_prefix = o.path_prefix.as_deref().is_some_and(|p| path.starts_with(p));
        if by_cluster || by_prefix {
            return o.provider.clone();
        }
    }
    detected.to_string()
}

/// The request's `:path` (lossily decoded; empty when absent).
pub fn request_path<H: Host>(host: &H) -> String {
    host.request_header(":path").map(|p| String::from_utf8_lossy(&p).into_owned()).unwrap_or_default()
}

/// The request's path, provider API and provider name, from its headers.
pub fn request_route<H: Host>(host: &H, overrides: &[ProviderOverride]) -> (String, Option<Detected>, String) {
    let path = request_path(host);
    let detected = if path.contains("/openai/v1/") { detect_with(&path, azure_evidence(host)) } else { detect(&path) };
    let name = match &detected {
        Some(d) => provider_name(host, &path, d.provider, overrides),
        None => crate::label::OVERFLOW.to_string(),
    };
    (path, detected, name)
}

/// The wire format family; decides how requests and responses are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wire {
    /// OpenAI Chat Completions, Azure OpenAI and OpenAI-compatible servers.
    OpenAiChat,
    OpenAiResponses,
    AnthropicMessages,
    Gemini,
    BedrockConverse,
}

/// `gen_ai.operation.name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Chat,
    Responses,
    GenerateContent,
}

impl Operation {
    pub fn label(self) -> &'static str {
        match self {
            Operation::Chat => "chat",
            Operation::Responses => "responses",
            Operation::GenerateContent => "generate_content",
        }
    }
}

/// What the path says about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub wire: Wire,
    pub operation: Operation,
    /// `gen_ai.provider.name` before any configured override.
    pub provider: &'static str,
    /// The model when the path carries it (Gemini, Bedrock, an Azure deployment).
    pub path_model: Option<String>,
    /// The path alone says the response streams (Gemini `streamGenerateContent`, Bedrock
    /// `converse-stream`); other APIs say so in the request body.
    pub path_stream: bool,
}

pub const OPENAI: &str = "openai";
pub const AZURE_OPENAI: &str = "azure.ai.openai";
pub const ANTHROPIC: &str = "anthropic";
pub const GEMINI: &str = "gcp.gemini";
pub const BEDROCK: &str = "aws.bedrock";

/// Whether a request under `/openai/v1/` goes to Azure OpenAI: Azure's v1 API
/// (`https://{resource}.openai.azure.com/openai/v1/...`, Microsoft Learn "Azure OpenAI API version
/// lifecycle") has the same path as Groq's OpenAI-compatible API
/// (`https://api.groq.com/openai/v1/...`), so the host or Azure's `api-key` header decides.
fn azure_evidence<H: Host>(host: &H) -> bool {
    const AZURE_HOSTS: [&[u8]; 3] = [b".openai.azure.com", b".cognitiveservices.azure.com", b".services.ai.azure.com"];
    let authority = host.request_header(":authority").unwrap_or_default().to_ascii_lowercase();
    let name = authority.split(|b| *b == b':').next().unwrap_or_default();
    AZURE_HOSTS.iter().any(|suffix| name.ends_with(suffix)) || host.request_header("api-key").is_some()
}

/// Detects the API from the request path (query string ignored). An `/openai/v1/` path is read as
/// OpenAI's; see [`detect_with`].
pub fn detect(path: &str) -> Option<Detected> {
    detect_with(path, false)
}

/// Detects the API from the request path; `azure`: the request goes to Azure OpenAI (its host
/// or `api-key` header says so), which makes the v1 API's `/openai/v1/...` paths Azure's.
pub fn detect_with(path: &str, azure: bool) -> Option<Detected> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let path = path.trim_end_matches('/');
    if let Some(rest) = path.split_once("/openai/deployments/").map(|(_, r)| r) {
        let (deployment, tail) = rest.split_once('/')?;
        let model = Some(percent_decode(deployment));
        return match tail {
            "chat/completions" => Some(detected(Wire::OpenAiChat, Operation::Chat, AZURE_OPENAI, model, false)),
            "responses" => Some(detected(Wire::OpenAiResponses, Operation::Responses, AZURE_OPENAI, model, false)),
            _ => None,
        };
    }
    let azure_v1 = azure && path.contains("/openai/v1/");
    if path.ends_with("/chat/completions") {
        let provider = if azure_v1 { AZURE_OPENAI } else { OPENAI };
        return Some(detected(Wire::OpenAiChat, Operation::Chat, provider, None, false));
    }
    if path.ends_with("/openai/responses") || (azure_v1 && path.ends_with("/responses")) {
        return Some(detected(Wire::OpenAiResponses, Operation::Responses, AZURE_OPENAI, None, false));
    }
    if path.ends_with("/responses") {
        return Some(detected(Wire::OpenAiResponses, Operation::Responses, OPENAI, None, false));
    }
    if path.ends_with("/v1/messages") {
        return Some(detected(Wire::AnthropicMessages, Operation::Chat, ANTHROPIC, None, false));
    }
    if let Some((_, rest)) = path.rsplit_once("/models/") {
        let (model, method) = rest.rsplit_once(':')?;
        let stream = match method {
            "generateContent" => false,
            "streamGenerateContent" => true,
            _ => return None,
        };
        return Some(detected(Wire::Gemini, Operation::GenerateContent, GEMINI, Some(percent_decode(model)), stream));
    }
    if let Some((_, rest)) = path.rsplit_once("/model/") {
        let (model, method) = rest.rsplit_once('/')?;
        let stream = match method {
            "converse" => false,
            "converse-stream" => true,
            _ => return None,
        };
        return Some(detected(Wire::BedrockConverse, Operation::Chat, BEDROCK, Some(percent_decode(model)), stream));
    }
    None
}

fn detected(
    wire: Wire,
    operation: Operation,
    provider: &'static str,
    path_model: Option<String>,
    path_stream: bool,
) -> Detected {
    Detected { wire, operation, provider, path_model, path_stream }
}

/// Decodes `%XX` escapes (Bedrock model ids carry `%3A`); invalid escapes stay as they are.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// path, wire, operation, provider, model from the path, stream from the path.
    type Case = (&'static str, Wire, Operation, &'static str, Option<&'static str>, bool);

    #[test]
    fn paths_map_to_wire_operation_and_provider() {
        let cases: &[Case] = &[
            ("/v1/chat/completions", Wire::OpenAiChat, Operation::Chat, OPENAI, None, false),
            ("/groq/openai/v1/chat/completions", Wire::OpenAiChat, Operation::Chat, OPENAI, None, false),
            ("/v1/responses", Wire::OpenAiResponses, Operation::Responses, OPENAI, None, false),
            (
                "/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21",
                Wire::OpenAiChat,
                Operation::Chat,
                AZURE_OPENAI,
                Some("my-gpt4o"),
                false,
            ),
            ("/anthropic/v1/messages", Wire::AnthropicMessages, Operation::Chat, ANTHROPIC, None, false),
            (
                "/gemini/v1beta/models/gemini-2.5-flash:generateContent?key=x",
                Wire::Gemini,
                Operation::GenerateContent,
                GEMINI,
                Some("gemini-2.5-flash"),
                false,
            ),
            (
                "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
                Wire::Gemini,
                Operation::GenerateContent,
                GEMINI,
                Some("gemini-2.5-flash"),
                true,
            ),
            (
                "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse",
                Wire::BedrockConverse,
                Operation::Chat,
                BEDROCK,
                Some("anthropic.claude-3-5-sonnet-20240620-v1:0"),
                false,
            ),
            (
                "/model/amazon.nova-pro-v1:0/converse-stream",
                Wire::BedrockConverse,
                Operation::Chat,
                BEDROCK,
                Some("amazon.nova-pro-v1:0"),
                true,
            ),
        ];
        for (path, wire, op, provider, model, stream) in cases {
            let d = detect(path).unwrap_or_else(|| panic!("{path}"));
            assert_eq!(d.wire, *wire, "{path}");
            assert_eq!(d.operation, *op, "{path}");
            assert_eq!(d.provider, *provider, "{path}");
            assert_eq!(d.path_model.as_deref(), *model, "{path}");
            assert_eq!(d.path_stream, *stream, "{path}");
        }
    }

    #[test]
    fn openai_v1_paths_are_azure_only_with_azure_evidence() {
        // The same path is Azure's v1 API and Groq's OpenAI-compatible API.
        for (path, wire) in
            [("/openai/v1/chat/completions", Wire::OpenAiChat), ("/openai/v1/responses", Wire::OpenAiResponses)]
        {
            let azure = detect_with(path, true).unwrap();
            assert_eq!((azure.wire, azure.provider, azure.path_model), (wire, AZURE_OPENAI, None), "{path}");
            let other = detect_with(path, false).unwrap();
            assert_eq!((other.wire, other.provider), (wire, OPENAI), "{path}");
        }
        // Evidence alone does not make OpenAI's own paths Azure's.
        assert_eq!(detect_with("/v1/chat/completions", true).unwrap().provider, OPENAI);
    }

    #[test]
    fn unknown_paths_are_not_detected() {
        for path in ["/", "/v1/models", "/v1/embeddings", "/health", "/v1beta/models/x:countTokens", "/model/x/invoke"]
        {
            assert_eq!(detect(path), None, "{path}");
        }
    }

    #[test]
    fn bad_percent_escapes_are_kept_verbatim() {
        assert_eq!(percent_decode("a%zzb%4"), "a%zzb%4");
        assert_eq!(percent_decode("v1%3A0"), "v1:0");
    }
}
