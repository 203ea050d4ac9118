//! The error-normalization filter: every failure, from any provider or from the gateway itself,
//! as one `error.type` from one documented taxonomy, with `retryable`, `retry_after_ms` and
//! `error.origin`.
//!
//! Observe-only by default: the response reaches the client unchanged. Two opt-ins change it:
//! response headers that carry the class, and, per route, a uniform error body in the shape
//! OpenAI-style clients parse, with a structured degraded-mode reply for gateway failures.
//!
//! Envoy converts a Wasm filter's `StopIteration` on response headers into
//! `StopAllIterationAndWatermark` (source/extensions/common/wasm/context.cc,
//! `convertVmCallResultToFilterHeadersStatus`): body callbacks stop too, so a Wasm filter cannot
//! hold headers while it reads the body (checked on 1.40: the stream hangs until its idle
//! timeout). The class headers are therefore set from what the status and headers alone prove
//! (see [`ErrorNormalization::on_response_headers`]); the uniform body, written after the whole
//! error body is read, always carries the exact class. Failures inside a stream that already
//! started are never rewritten: they are logged and counted only.

pub mod classify;
pub mod config;
pub mod retry_after;
pub mod taxonomy;

use crate::config::ConfigError;
use crate::filter_state as fs;
use crate::host::{Host, Stats};
use crate::metric;
use crate::response::{End, Limits, Outcome, ResponseTracker};
use crate::token_accounting::provider::{self, Detected};
use classify::{amzn_error_type, classify, in_band_status, provider_code, Classified, ErrorDocument, Evidence};
use config::ErrorNormalizationConfig;
use taxonomy::{ErrorType, Origin};

/// What the filter concluded about one exchange.
#[derive(Clone, PartialEq, Eq)]
pub struct Verdict {
    pub error_type: ErrorType,
    pub origin: Origin,
    pub retryable: bool,
    pub retry_after_ms: Option<u64>,
    pub provider_code: Option<String>,
    pub message: Option<String>,
    /// The failure came after a success status (in-band error, cut stream).
    pub after_success: bool,
}

/// Per-request state, owned by the adapter's stream context.
pub struct ErrorExchange {
    detected: Option<Detected>,
    provider: String,
    route_rewrites: bool,
    response: ResponseTracker,
    /// The response headers classification reads, captured in the headers callback: after it,
    /// Envoy may refuse header-map access, and proxy-wasm's hostcalls panic on such a status.
    headers: Vec<(&'static str, String)>,
    rewriting: bool,
    finished: bool,
    verdict: Option<Verdict>,
}

impl ErrorExchange {
    /// The adapter buffers the error body until its end, then replaces it with the uniform one.
    pub fn rewriting(&self) -> bool {
        self.rewriting
    }

    pub fn wants_body(&self) -> bool {
        !self.finished && self.response.wants_body()
    }

    /// The response tracker, which the bundle's accounting follows when it reads alike.
    pub fn response_mut(&mut self) -> &mut ResponseTracker {
        &mut self.response
    }

    pub fn verdict(&self) -> Option<&Verdict> {
        self.verdict.as_ref()
    }
}

#[derive(Debug)]
pub struct ErrorNormalization {
    config: ErrorNormalizationConfig,
    handles: metric::Handles,
}

impl ErrorNormalization {
    pub fn new<S: Stats>(config_json: &[u8], _stats: &mut S) -> Result<Self, ConfigError> {
        Ok(Self { config: ErrorNormalizationConfig::parse(config_json)?, handles: metric::Handles::default() })
    }

    pub fn max_error_body_bytes(&self) -> usize {
        self.config.max_error_body_bytes
    }

    pub fn on_request_headers<H: Host>(&self, host: &mut H) -> ErrorExchange {
        let (_, detected, provider) = provider::request_route(host, &self.config.providers);
        let routes = &self.config.uniform_error_body_routes;
        let route_rewrites = !routes.is_empty() && {
            let route = host.property(&["xds", "route_name"]).unwrap_or_default();
            routes.iter().any(|r| r == "*" || r.as_bytes() == route.as_slice())
        };
        ErrorExchange {
            response: ResponseTracker::new(detected.as_ref().map(|d| d.wire)),
            detected,
            provider,
            route_rewrites,
            headers: Vec::new(),
            rewriting: false,
            finished: false,
            verdict: None,
        }
    }

    fn limits(&self) -> Limits {
        Limits { max_body_bytes: 0, max_error_body_bytes: self.config.max_error_body_bytes, max_frame_bytes: 1 << 20 }
    }

    /// Sets the class headers when configured and the status and headers alone decide the
    /// class: a gateway reply, a Bedrock `x-amzn-ErrorType`, or a 5xx. A 4xx body can change the
    /// class (OpenAI's 429 is a rate limit or an exhausted quota), and so can the body of an
    /// error the headers call `upstream_unavailable` or `internal` (its message may say the
    /// provider is overloaded): for those only the retry-after header is set, unless there is no
    /// body; the uniform body, when on, carries the exact class.
    pub fn on_response_headers<H: Host>(&self, host: &mut H, ex: &mut ErrorExchange, end_of_stream: bool) {
        let stream_from_path = ex.detected.as_ref().is_some_and(|d| d.path_stream);
        ex.response.on_headers(host, stream_from_path, self.limits());
        let status = ex.response.status;
        ex.headers = CAPTURED
            .iter()
            .filter_map(|name| host.response_header(name).map(|v| (*name, String::from_utf8_lossy(&v).into_owned())))
            .collect();
        if status < 400 {
            return;
        }
        if self.config.response_headers.any() {
            let verdict = self.verdict(host, ex, Outcome::Completed, status);
            if let Some(v) = verdict {
                let body_may_refine = v.origin == Origin::Upstream
                    && matches!(v.error_type, ErrorType::UpstreamUnavailable | ErrorType::Internal);
                let conclusive = end_of_stream
                    || (!body_may_refine
                        && (v.origin == Origin::Gateway || ex.header("x-amzn-errortype").is_some() || status >= 500));
                self.set_headers(host, &v, conclusive);
            }
        }
        if ex.route_rewrites && !end_of_stream {
            ex.rewriting = true;
            host.set_response_header("content-type", "application/json");
            host.remove_response_header("content-length");
        }
        if end_of_stream {
            self.finish(host, ex, End::Complete);
        }
    }

    /// At the end of the body, returns the replacement body when the route asks for the
    /// uniform shape.
    pub fn on_response_body<H: Host>(
        &self,
        host: &mut H,
        ex: &mut ErrorExchange,
        chunk: &[u8],
        end_of_stream: bool,
    ) -> Option<Vec<u8>> {
        if ex.finished {
            return None;
        }
        if ex.response.wants_body() {
            ex.response.on_body(chunk, host.now_nanos());
        }
        // A stream ends at its provider's end marker ([DONE], message_stop, ...): finish there,
        // not at the end of the body, because a client that leaves right after the marker
        // turns the end into Envoy's last callback, after Envoy has already ended the request's
        // span (docs/tracing.md).
        if end_of_stream || (ex.response.streaming && ex.response.observation.terminated) {
            return self.finish(host, ex, End::Complete);
        }
        None
    }

    /// The error body grew past the limit while buffered: pass it on unchanged (it is still
    /// classified, by what was read).
    pub fn release(&self, ex: &mut ErrorExchange) {
        ex.rewriting = false;
    }

    /// Classifies once, writes filter state and counts; later calls do nothing. Returns the
    /// replacement body when the route asks for the uniform shape (only for responses still
    /// held: a stream that already started is never rewritten).
    pub fn finish<H: Host>(&self, host: &mut H, ex: &mut ErrorExchange, end: End) -> Option<Vec<u8>> {
        if ex.finished {
            return None;
        }
        ex.finished = true;
        ex.response.close();
        let outcome = ex.response.outcome(host, end);
        let status = ex.response.status;
        let verdict = self.verdict(host, ex, outcome, status)?;
        self.record(host, &verdict, &ex.provider);
        let rewriting = std::mem::replace(&mut ex.rewriting, false);
        let body = rewriting.then(|| uniform_body(host, &verdict, &ex.provider));
        ex.verdict = Some(verdict);
        body
    }

    fn verdict<H: Host>(&self, host: &H, ex: &ErrorExchange, outcome: Outcome, status: u16) -> Option<Verdict> {
        let code_details = host
            .property(&["response", "code_details"])
            .map(|d| String::from_utf8_lossy(&d).into_owned())
            .unwrap_or_default();
        let header = |name: &str| ex.header(name).map(str::to_string);
        let obs = &ex.response.observation;
        let (document, amzn, after_success) = if status >= 400 {
            let body = ex.response.error_body.as_deref().unwrap_or_default();
            (ErrorDocument::parse(body), header("x-amzn-errortype").map(|h| amzn_error_type(&h)), false)
        } else {
            match outcome {
                Outcome::Completed | Outcome::ClientCancelled => return None,
                Outcome::InBandError => {
                    let doc = obs.error_document.as_deref().map(ErrorDocument::parse).unwrap_or_default();
                    (doc, obs.exception_type.clone(), true)
                }
                Outcome::UpstreamCut => (ErrorDocument::default(), None, true),
            }
        };
        let classified = if status < 400 && outcome == Outcome::UpstreamCut {
            // A stream that stopped without its terminator. Envoy cut it when its details name a
            // timeout (route or idle timeout): then the gateway is the origin.
            if code_details.contains("timeout") {
                Classified { error_type: ErrorType::Timeout, origin: Origin::Gateway }
            } else {
                Classified { error_type: ErrorType::StreamInterrupted, origin: Origin::Upstream }
            }
        } else {
            let evidence = Evidence {
                wire: ex.response.wire(),
                // An error inside a 200 stream is classified by its own code and type.
                status: if after_success { in_band_status(&document) } else { status },
                document: document.clone(),
                amzn_error_type: amzn.clone(),
                code_details: if after_success { String::new() } else { code_details },
                envoy_overloaded: header("x-envoy-overloaded").is_some(),
            };
            classify(&evidence)
        };
        let retry_after_ms = retry_after::retry_after_ms(ex, document.retry_delay.as_deref(), host.now_nanos());
        let provider_code = provider_code(&document, amzn.as_deref());
        Some(Verdict {
            error_type: classified.error_type,
            origin: classified.origin,
            retryable: classified.error_type.retryable(),
            retry_after_ms,
            provider_code: provider_code.map(|c| metric::label_value(&c).chars().take(64).collect()),
            message: document.message,
            after_success,
        })
    }

    fn record<H: Host>(&self, host: &mut H, v: &Verdict, provider: &str) {
        host.set_filter_state(fs::ERROR_TYPE, v.error_type.label().as_bytes());
        host.set_filter_state(fs::ERROR_RETRYABLE, fs::flag(v.retryable));
        host.set_filter_state(fs::ERROR_ORIGIN, v.origin.label().as_bytes());
        if let Some(ms) = v.retry_after_ms {
            host.set_filter_state(fs::RETRY_AFTER_MS, ms.to_string().as_bytes());
        }
        if let Some(code) = &v.provider_code {
            host.set_filter_state(fs::ERROR_PROVIDER_CODE, code.as_bytes());
        }
        if v.after_success {
            host.set_filter_state(fs::ERROR, b"true");
        }
        let synthetic = fs::synthetic(host);
        // Token accounting's bounded label when it is in the chain (it decides the label when
        // the request is read, before any response); `unknown` without it.
        let prompt_version = host
            .property(&[fs::PROMPT_VERSION_LABEL])
            .filter(|v| !v.is_empty())
            .map_or_else(|| crate::label::UNKNOWN.to_string(), |v| metric::label_value(&String::from_utf8_lossy(&v)));
        self.handles.add(
            host,
            "llmobs.errors",
            &[
                ("error.type", v.error_type.label()),
                ("gen_ai.provider.name", provider),
                ("origin", v.origin.label()),
                ("retryable", metric::flag(v.retryable)),
                ("synthetic", metric::flag(synthetic)),
                ("prompt_version", &prompt_version),
            ],
            1,
        );
    }

    fn set_headers<H: Host>(&self, host: &mut H, v: &Verdict, class_known: bool) {
        let h = &self.config.response_headers;
        if class_known && !h.error_type.is_empty() {
            host.set_response_header(&h.error_type, v.error_type.label());
        }
        if class_known && !h.retryable.is_empty() {
            host.set_response_header(&h.retryable, metric::flag(v.retryable));
        }
        if let (false, Some(ms)) = (h.retry_after_ms.is_empty(), v.retry_after_ms) {
            host.set_response_header(&h.retry_after_ms, &ms.to_string());
        }
    }
}

/// Response headers that carry retry hints or error classes.
const CAPTURED: [&str; 10] = [
    "retry-after",
    "retry-after-ms",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-reset",
    "anthropic-ratelimit-input-tokens-reset",
    "anthropic-ratelimit-output-tokens-reset",
    "x-amzn-errortype",
    "x-envoy-overloaded",
];

impl ErrorExchange {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }
}

impl retry_after::Headers for ErrorExchange {
    fn get(&self, name: &str) -> Option<String> {
        self.header(name).map(str::to_string)
    }
}

/// The uniform error body: the shape OpenAI-style clients parse (`error.message`, `type`,
/// `code`, `param`), keeping the provider's message, with the class and hints added.
fn uniform_body<H: Host>(host: &H, v: &Verdict, provider: &str) -> Vec<u8> {
    let request_id = host.property(&[fs::REQUEST_ID]).map(|r| String::from_utf8_lossy(&r).into_owned());
    let message = v.message.clone().unwrap_or_else(|| match v.origin {
        Origin::Gateway => format!("the gateway could not complete the request ({})", v.error_type.label()),
        Origin::Upstream => format!("the provider returned an error ({})", v.error_type.label()),
    });
    let body = serde_json::json!({
        "error": {
            "message": message,
            "type": v.error_type.label(),
            "code": v.provider_code,
            "param": null,
            "retryable": v.retryable,
            "retry_after_ms": v.retry_after_ms,
            "provider": provider,
            "origin": v.origin.label(),
            "request_id": request_id,
        }
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

// Hand-written so that no body, prompt or provider message can reach a log through `{:?}`.
impl std::fmt::Debug for ErrorExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErrorExchange")
            .field("provider", &self.provider)
            .field("response", &self.response)
            .field("verdict", &self.verdict)
            .finish_non_exhaustive()
    }
}

// Hand-written so that no body, prompt or provider message can reach a log through `{:?}`.
impl std::fmt::Debug for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verdict")
            .field("error_type", &self.error_type)
            .field("origin", &self.origin)
            .field("retryable", &self.retryable)
            .field("retry_after_ms", &self.retry_after_ms)
            .field("provider_code", &self.provider_code)
            .finish_non_exhaustive()
    }
}
