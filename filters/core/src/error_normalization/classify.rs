//! Provider and gateway errors into one taxonomy: a table of rules, most specific first, one row
//! per known case (each proven by a case in `tests/fixtures/errors/cases.json`).

use super::taxonomy::{ErrorType, Origin};
use crate::token_accounting::provider::Wire;
use serde_json::Value;

/// The fields any provider's error document may carry, read from every known shape: OpenAI and
/// Azure `{"error": {message, type, code, innererror}}`, Anthropic `{"type": "error", "error":
/// {type, message}}`, Gemini `{"error": {code, message, status, details}}`, vLLM `{"object":
/// "error", message, type, code}`, Ollama `{"error": "..."}`, Bedrock `{"message": ...}`, and
/// the Responses API's `response.failed` event (`{"response": {"error": {code, message}}}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorDocument {
    pub message: Option<String>,
    pub kind: Option<String>,
    pub code: Option<String>,
    /// Gemini's `error.status` (`RESOURCE_EXHAUSTED`, ...).
    pub status: Option<String>,
    /// The first `error.details[].reason` (Gemini `API_KEY_INVALID`).
    pub reason: Option<String>,
    /// Azure `error.innererror.code`.
    pub inner_code: Option<String>,
    /// Gemini `google.rpc.RetryInfo.retryDelay`.
    pub retry_delay: Option<String>,
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl ErrorDocument {
    /// Reads what it can; a body that is not JSON (an HTML page, plain text, nothing) gives an
    /// empty document and the status decides.
    pub fn parse(body: &[u8]) -> ErrorDocument {
        let Ok(value) = serde_json::from_slice::<Value>(body) else { return ErrorDocument::default() };
        let error = value.get("error").or_else(|| value.get("response").and_then(|r| r.get("error")));
        let mut doc = ErrorDocument::default();
        match error {
            Some(Value::String(message)) => doc.message = Some(message.clone()),
            Some(e @ Value::Object(_)) => {
                doc.message = text(e.get("message"));
                doc.kind = text(e.get("type"));
                doc.code = text(e.get("code"));
                doc.status = text(e.get("status"));
                doc.inner_code = e.get("innererror").and_then(|i| text(i.get("code")));
                for detail in e.get("details").and_then(Value::as_array).into_iter().flatten() {
                    if doc.reason.is_none() {
                        doc.reason = text(detail.get("reason"));
                    }
                    if doc.retry_delay.is_none() {
                        doc.retry_delay = text(detail.get("retryDelay"));
                    }
                }
            }
            _ => {
                doc.message = text(value.get("message")).or_else(|| text(value.get("Message")));
                doc.kind = text(value.get("type"));
                doc.code = text(value.get("code"));
            }
        }
        doc
    }

    fn message_contains(&self, needle: &str) -> bool {
        self.message.as_deref().is_some_and(|m| m.to_ascii_lowercase().contains(needle))
    }
}

/// What is known about one failed exchange.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// The provider API, when recognised: some error vocabularies only mean something from their
    /// own provider (OpenAI-compatible servers also say `"type": "api_error"`).
    pub wire: Option<Wire>,
    pub status: u16,
    pub document: ErrorDocument,
    /// Bedrock's `x-amzn-ErrorType` header, or the `:exception-type` of an in-stream exception,
    /// without its `:http://...` suffix.
    pub amzn_error_type: Option<String>,
    /// Envoy's `response.code_details`: `via_upstream` when the provider sent the response.
    pub code_details: String,
    /// Envoy marked the reply as overload shedding (`x-envoy-overloaded`).
    pub envoy_overloaded: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classified {
    pub error_type: ErrorType,
    pub origin: Origin,
}

/// One row of the mapping: every condition that is set must hold.
struct Rule {
    wire: Option<Wire>,
    code: Option<&'static str>,
    kind: Option<&'static str>,
    status_name: Option<&'static str>,
    reason: Option<&'static str>,
    inner_code: Option<&'static str>,
    amzn: Option<&'static str>,
    message_contains: &'static [&'static str],
    then: ErrorType,
}

const fn rule(then: ErrorType) -> Rule {
    Rule {
        wire: None,
        code: None,
        kind: None,
        status_name: None,
        reason: None,
        inner_code: None,
        amzn: None,
        message_contains: &[],
        then,
    }
}

const CONTEXT_MESSAGES: &[&str] = &[
    "maximum context length",               // OpenAI, vLLM and OpenAI-compatible servers
    "prompt is too long",                   // Anthropic (an invalid_request_error)
    "exceeds the maximum number of tokens", // Gemini (an INVALID_ARGUMENT)
    "input is too long",                    // Bedrock (a ValidationException)
    "too many input tokens",                // Bedrock
    "token limit reached",                  // OpenRouter, in a stream's final error chunk (issue 14)
];

const ANTHROPIC: Option<Wire> = Some(Wire::AnthropicMessages);
const GEMINI: Option<Wire> = Some(Wire::Gemini);

/// Most specific first; the first rule that matches decides.
const RULES: &[Rule] = &[
    // OpenAI / Azure error codes.
    Rule { code: Some("insufficient_quota"), ..rule(ErrorType::QuotaExhausted) },
    Rule { code: Some("context_length_exceeded"), ..rule(ErrorType::ContextLengthExceeded) },
    Rule { code: Some("content_filter"), ..rule(ErrorType::ContentFilter) },
    Rule { inner_code: Some("ResponsibleAIPolicyViolation"), ..rule(ErrorType::ContentFilter) },
    Rule { code: Some("invalid_api_key"), ..rule(ErrorType::InvalidApiKey) },
    Rule { code: Some("model_not_found"), ..rule(ErrorType::ModelNotFound) },
    Rule { code: Some("rate_limit_exceeded"), ..rule(ErrorType::RateLimit) },
    // Groq: the model produced a tool call it could not parse (HTTP 400, or inside a stream).
    Rule { code: Some("tool_use_failed"), ..rule(ErrorType::BadRequest) },
    // Context overflow told only in the message (OpenAI-compatible, Anthropic, Gemini, Bedrock).
    Rule { message_contains: CONTEXT_MESSAGES, ..rule(ErrorType::ContextLengthExceeded) },
    // Gemini: a bad key is a 400 INVALID_ARGUMENT with this reason.
    Rule { reason: Some("API_KEY_INVALID"), ..rule(ErrorType::InvalidApiKey) },
    // Anthropic error types.
    Rule { wire: ANTHROPIC, kind: Some("authentication_error"), ..rule(ErrorType::InvalidApiKey) },
    Rule { wire: ANTHROPIC, kind: Some("billing_error"), ..rule(ErrorType::QuotaExhausted) },
    Rule { wire: ANTHROPIC, kind: Some("permission_error"), ..rule(ErrorType::PermissionDenied) },
    Rule { wire: ANTHROPIC, kind: Some("not_found_error"), ..rule(ErrorType::ModelNotFound) },
    Rule { wire: ANTHROPIC, kind: Some("request_too_large"), ..rule(ErrorType::RequestTooLarge) },
    Rule { wire: ANTHROPIC, kind: Some("rate_limit_error"), ..rule(ErrorType::RateLimit) },
    // 529, and mid-stream: an overload is not a rate limit.
    Rule { wire: ANTHROPIC, kind: Some("overloaded_error"), ..rule(ErrorType::Overloaded) },
    Rule { wire: ANTHROPIC, kind: Some("timeout_error"), ..rule(ErrorType::Timeout) },
    Rule { wire: ANTHROPIC, kind: Some("api_error"), ..rule(ErrorType::Internal) },
    Rule { wire: ANTHROPIC, kind: Some("invalid_request_error"), ..rule(ErrorType::BadRequest) },
    // Gemini statuses.
    Rule { wire: GEMINI, status_name: Some("RESOURCE_EXHAUSTED"), ..rule(ErrorType::RateLimit) },
    Rule { wire: GEMINI, status_name: Some("UNAUTHENTICATED"), ..rule(ErrorType::InvalidApiKey) },
    Rule { wire: GEMINI, status_name: Some("PERMISSION_DENIED"), ..rule(ErrorType::PermissionDenied) },
    Rule { wire: GEMINI, status_name: Some("NOT_FOUND"), ..rule(ErrorType::ModelNotFound) },
    Rule { wire: GEMINI, status_name: Some("UNAVAILABLE"), ..rule(ErrorType::UpstreamUnavailable) },
    Rule { wire: GEMINI, status_name: Some("DEADLINE_EXCEEDED"), ..rule(ErrorType::Timeout) },
    Rule { wire: GEMINI, status_name: Some("INTERNAL"), ..rule(ErrorType::Internal) },
    Rule { wire: GEMINI, status_name: Some("INVALID_ARGUMENT"), ..rule(ErrorType::BadRequest) },
    // Bedrock exceptions (header `x-amzn-ErrorType`, or `:exception-type` in a stream).
    Rule { amzn: Some("ThrottlingException"), ..rule(ErrorType::RateLimit) },
    Rule { amzn: Some("ServiceQuotaExceededException"), ..rule(ErrorType::QuotaExhausted) },
    Rule { amzn: Some("ValidationException"), ..rule(ErrorType::BadRequest) },
    Rule { amzn: Some("AccessDeniedException"), ..rule(ErrorType::PermissionDenied) },
    Rule { amzn: Some("UnrecognizedClientException"), ..rule(ErrorType::InvalidApiKey) },
    Rule { amzn: Some("ResourceNotFoundException"), ..rule(ErrorType::ModelNotFound) },
    Rule { amzn: Some("ModelTimeoutException"), ..rule(ErrorType::Timeout) },
    Rule { amzn: Some("ServiceUnavailableException"), ..rule(ErrorType::UpstreamUnavailable) },
    Rule { amzn: Some("ModelNotReadyException"), ..rule(ErrorType::UpstreamUnavailable) },
    Rule { amzn: Some("InternalServerException"), ..rule(ErrorType::Internal) },
    Rule { amzn: Some("ModelErrorException"), ..rule(ErrorType::Internal) },
    Rule { amzn: Some("ModelStreamErrorException"), ..rule(ErrorType::Internal) },
];

impl Rule {
    fn matches(&self, e: &Evidence) -> bool {
        let d = &e.document;
        let eq = |want: Option<&str>, got: &Option<String>| want.is_none_or(|w| got.as_deref() == Some(w));
        let amzn_ok = self.amzn.is_none_or(|w| e.amzn_error_type.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(w)));
        let message_ok =
            self.message_contains.is_empty() || self.message_contains.iter().any(|m| d.message_contains(m));
        self.wire.is_none_or(|w| e.wire == Some(w))
            && eq(self.code, &d.code)
            && eq(self.kind, &d.kind)
            && eq(self.status_name, &d.status)
            && eq(self.reason, &d.reason)
            && eq(self.inner_code, &d.inner_code)
            && amzn_ok
            && message_ok
    }
}

/// Classifies a failed exchange: Envoy's own replies first (the gateway made them), then the
/// provider's rules, then the status alone.
pub fn classify(e: &Evidence) -> Classified {
    if !e.code_details.is_empty() && e.code_details != "via_upstream" {
        let d = e.code_details.as_str();
        // Checked on Envoy 1.40: a route timeout is `response_timeout` (older releases:
        // `upstream_response_timeout`); overload shedding is `overload`; a circuit-breaker
        // overflow is `upstream_reset_before_response_started{overflow}` with x-envoy-overloaded.
        let error_type = if d.contains("timeout") {
            ErrorType::Timeout
        } else if d.contains("overload") || d.contains("overflow") || e.envoy_overloaded {
            ErrorType::Overloaded
        } else if d == "no_healthy_upstream" || d.starts_with("upstream_reset_before_response_started") {
            ErrorType::UpstreamUnavailable
        } else if d == "request_payload_too_large" || d.contains("too_large") {
            ErrorType::RequestTooLarge
        } else if d.contains("rate_limited") {
            ErrorType::RateLimit
        } else {
            ErrorType::from_status(e.status)
        };
        return Classified { error_type, origin: Origin::Gateway };
    }
    if e.envoy_overloaded {
        return Classified { error_type: ErrorType::Overloaded, origin: Origin::Gateway };
    }
    let error_type = RULES.iter().find(|r| r.matches(e)).map_or_else(|| ErrorType::from_status(e.status), |r| r.then);
    Classified { error_type: refine_overloaded(error_type, &e.document), origin: Origin::Upstream }
}

/// Capacity told apart from an outage: a provider error whose code or status says only that
/// the service is unavailable or failed (`upstream_unavailable`, `internal`) is `overloaded`
/// when its message says so. OpenAI answers a 503 "The engine is currently overloaded, please
/// try again later"; Gemini a 503 `UNAVAILABLE` "The model is overloaded. Please try again
/// later.". A code that says more (a rate limit, a quota) is kept.
fn refine_overloaded(error_type: ErrorType, document: &ErrorDocument) -> ErrorType {
    match error_type {
        ErrorType::UpstreamUnavailable | ErrorType::Internal if document.message_contains("overload") => {
            ErrorType::Overloaded
        }
        other => other,
    }
}

/// The status an error inside a 200 stream would have had as a response of its own, so it is
/// classified like any error body: the document's own HTTP code when it carries one (OpenRouter
/// `{"error": {"code": 400, ...}}`, Gemini `{"error": {"code": 429, ...}}`), else what its type
/// says in OpenAI's and Anthropic's vocabularies, else 500 (`internal`).
pub fn in_band_status(document: &ErrorDocument) -> u16 {
    if let Some(status) =
        document.code.as_deref().and_then(|c| c.parse::<u16>().ok()).filter(|s| (400..600).contains(s))
    {
        return status;
    }
    match document.kind.as_deref() {
        Some("invalid_request_error") => 400,
        Some("authentication_error") => 401,
        Some("permission_error") => 403,
        Some("not_found_error") => 404,
        Some("rate_limit_error" | "tokens" | "requests") => 429,
        Some("overloaded_error") => 529,
        _ => 500,
    }
}

/// The provider's own code for the log (`llmobs.error.provider_code`): a named code before a
/// number. Gemini's `status` (`RESOURCE_EXHAUSTED`) rather than its HTTP number; OpenAI's
/// `code`; Anthropic's and OpenAI's `type` when there is no code; Bedrock's exception
/// (`x-amzn-ErrorType`, or an in-stream `:exception-type`); a numeric code or status last
/// (OpenRouter's `code: 400`; Azure also sends `"status": 400` beside its named code).
pub fn provider_code(document: &ErrorDocument, amzn_error_type: Option<&str>) -> Option<String> {
    let named = |c: &Option<String>| c.clone().filter(|c| !c.bytes().all(|b| b.is_ascii_digit()));
    named(&document.status)
        .or_else(|| named(&document.code))
        .or_else(|| document.kind.clone())
        .or_else(|| amzn_error_type.filter(|a| !a.is_empty()).map(str::to_string))
        .or_else(|| document.code.clone())
        .or_else(|| document.status.clone())
}

/// `x-amzn-ErrorType: ThrottlingException:http://internal.amazon.com/coral/...` names the
/// exception before the first `:`.
pub fn amzn_error_type(header: &str) -> String {
    header.split(':').next().unwrap_or_default().trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_of_every_shape_are_read() {
        let openai = ErrorDocument::parse(
            br#"{"error":{"message":"m","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#,
        );
        assert_eq!(openai.code.as_deref(), Some("insufficient_quota"));
        let anthropic =
            ErrorDocument::parse(br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#);
        assert_eq!(anthropic.kind.as_deref(), Some("overloaded_error"));
        let gemini = ErrorDocument::parse(
            br#"{"error":{"code":429,"message":"m","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"30s"}]}}"#,
        );
        assert_eq!((gemini.status.as_deref(), gemini.code.as_deref()), (Some("RESOURCE_EXHAUSTED"), Some("429")));
        assert_eq!(gemini.retry_delay.as_deref(), Some("30s"));
        let ollama = ErrorDocument::parse(br#"{"error":"model 'x' not found"}"#);
        assert_eq!(ollama.message.as_deref(), Some("model 'x' not found"));
        let bedrock = ErrorDocument::parse(br#"{"message":"Too many requests"}"#);
        assert_eq!(bedrock.message.as_deref(), Some("Too many requests"));
        assert_eq!(ErrorDocument::parse(b"<html>502</html>"), ErrorDocument::default());
    }

    #[test]
    fn a_gateway_reply_is_classified_by_envoys_details() {
        let e = Evidence { status: 504, code_details: "upstream_response_timeout".into(), ..Evidence::default() };
        assert_eq!(classify(&e), Classified { error_type: ErrorType::Timeout, origin: Origin::Gateway });
        let e = Evidence { status: 503, code_details: "no_healthy_upstream".into(), ..Evidence::default() };
        assert_eq!(classify(&e).error_type, ErrorType::UpstreamUnavailable);
    }

    #[test]
    fn the_bedrock_header_names_the_exception_before_the_colon() {
        assert_eq!(
            amzn_error_type("ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
            "ThrottlingException"
        );
        assert_eq!(amzn_error_type("ValidationException"), "ValidationException");
    }
}
