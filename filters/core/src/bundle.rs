//! The bundle: correlation, PII redaction, token accounting and error normalization in one
//! filter, one HTTP context and one crossing into the VM per callback.
//!
//! Four separate filters cost four VM entries per callback, four header-map walks and four
//! copies of each body; most of a small filter's cost is that crossing (issue 6). The bundle
//! runs the same four behaviours (the very types the separate filters run) in the order the
//! separate filters sit in `envoy/demo.yaml`: on the request path correlation, redaction, then
//! accounting; on the response path Envoy's reverse order, error normalization, accounting,
//! then redaction, so each behaviour sees exactly the bytes it would see as a separate filter.
//!
//! Bodies are read from the host once per callback and handed from one behaviour to the next.
//! A behaviour that needs a whole body (redaction in traffic mode, `include_usage` injection,
//! a uniform error body) holds: the callback pauses, Envoy keeps the bytes, and the behaviours
//! after it see nothing until it releases them. The body is written back to the host only when
//! a behaviour changed it, once, at the release.
//!
//! Where two behaviours would parse the same bytes alike, one parse serves both: accounting takes
//! the model and stream flag from redaction's parse of a request it held ([`Span`]), and on a
//! successful stream it follows error normalization's response tracker ([`Lead`]).
//!
//! Configuration: one JSON object with a section per behaviour, each in the schema the separate
//! filter uses (`docs/configuration.md`); a missing section turns that behaviour off.
//!
//! The four separate modules run this same code: [`Bundle`] is generic over its four slots, and
//! a separate module fills three of them with [`Off`], which compiles to nothing, so each
//! module carries only its own behaviour's code while sharing every line of the body flow.

use crate::config::ConfigError;
use crate::correlation::{Correlation, CorrelationExchange};
use crate::error_normalization::{ErrorExchange, ErrorNormalization};
use crate::host::{Environment, Host, LogLevel};
use crate::redaction::{self, PiiRedaction, RequestVerdict};
use crate::response::{End, ResponseTracker};
use crate::token_accounting::{self, TokenAccounting};
use serde_json::{Map, Value};

/// The sections of a bundle configuration, in request-path order.
pub const SECTIONS: [&str; 4] = ["correlation", "pii_redaction", "token_accounting", "error_normalization"];

/// The current body buffer of one callback, as the host holds it: while the filter pauses,
/// Envoy accumulates, and the buffer holds every byte since the last `Continue`.
pub trait BodyBuffer {
    fn read(&self, start: usize, len: usize) -> Option<Vec<u8>>;
    /// Replaces the whole buffer (its first `len` bytes: every byte since the last `Continue`).
    fn replace(&mut self, len: usize, bytes: &[u8]) -> bool;
}

/// What the adapter returns to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Hold the body (a behaviour needs all of it), or stop after a local reply.
    Pause,
}

/// Bytes a behaviour passes on during one callback; `None` while it holds them.
pub type Piece = Option<Vec<u8>>;

/// The response tracker of the behaviour before this one on the response path (error
/// normalization's, for accounting), offered so a behaviour that would read the response
/// exactly alike parses it once instead of twice ([`ResponseTracker::reads_like`]).
pub type Lead<'a> = Option<&'a mut ResponseTracker>;

/// A local reply a behaviour asks for (the upstream is never called).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

/// One body direction's progress within the current hold.
#[derive(Debug, Default)]
pub struct Span {
    /// Bytes in the host's buffer already read (the buffer grows while paused).
    read: usize,
    /// A behaviour changed the bytes: the release writes them back.
    changed: bool,
    /// Redaction changed them: a failed write must refuse, never forward the original.
    redacted: bool,
    /// What redaction's parse of a request it held says accounting needs, so accounting neither
    /// copies nor parses the body again.
    facts: Option<crate::token_accounting::RequestFacts>,
}

/// One behaviour's part in the bundle: the callbacks of a separate filter, with body bytes
/// handed in by the bundle instead of read from the host. Defaults do nothing.
pub trait Behaviour {
    type Exchange;
    fn on_request_headers<H: Host>(&self, host: &mut H) -> Self::Exchange;
    /// Whether the request body is read now (the host call is skipped when no behaviour reads).
    fn reads_request(&self, _ex: &Self::Exchange) -> bool {
        false
    }
    /// New request bytes (after the behaviours before it): passes them on, holds them, or refuses.
    fn on_request_body<H: Host>(
        &self,
        _host: &mut H,
        _ex: &mut Self::Exchange,
        bytes: Vec<u8>,
        _end_of_stream: bool,
        _span: &mut Span,
    ) -> Result<Piece, Reply> {
        Ok(Some(bytes))
    }
    /// Request trailers: the body never saw its end. Returns the bytes it held, passed on as they are.
    fn on_request_trailers<H: Host>(
        &self,
        _host: &mut H,
        _ex: &mut Self::Exchange,
        held: Vec<u8>,
    ) -> Result<Vec<u8>, Reply> {
        Ok(held)
    }
    fn on_response_headers<H: Host>(
        &self,
        _host: &mut H,
        _ex: &mut Self::Exchange,
        _end_of_stream: bool,
        _lead: Lead<'_>,
    ) {
    }
    fn reads_response(&self, _ex: &Self::Exchange) -> bool {
        false
    }
    fn on_response_body<H: Host>(
        &self,
        _host: &mut H,
        _ex: &mut Self::Exchange,
        bytes: Vec<u8>,
        _end_of_stream: bool,
        _span: &mut Span,
        _lead: Lead<'_>,
    ) -> Piece {
        Some(bytes)
    }
    /// The exchange ended (`End::Aborted` from the last callback); runs once per behaviour.
    fn finish<H: Host>(&self, _host: &mut H, _ex: &mut Self::Exchange, _end: End, _lead: Lead<'_>) {}
    /// The tracker this behaviour reads the response with, for the next one to follow.
    fn lead<'a>(&self, _ex: &'a mut Self::Exchange) -> Lead<'a> {
        None
    }
    /// The behaviour answers this request itself (correlation's feedback endpoint): the
    /// request is never forwarded and no other behaviour sees its body, response or end, as a
    /// separate filter after it in the chain would not.
    fn answers(&self, _ex: &Self::Exchange) -> bool {
        false
    }
}

/// An empty slot: a separate module's three other behaviours. It does nothing and, being a
/// unit type with no-op methods, adds no code to the module.
#[derive(Debug, Clone, Copy, Default)]
pub struct Off;

impl Behaviour for Off {
    type Exchange = ();
    fn on_request_headers<H: Host>(&self, _host: &mut H) {}
}

/// A section that may be absent from a bundle configuration.
impl<B: Behaviour> Behaviour for Option<B> {
    type Exchange = Option<B::Exchange>;

    fn on_request_headers<H: Host>(&self, host: &mut H) -> Self::Exchange {
        self.as_ref().map(|b| b.on_request_headers(host))
    }
    fn reads_request(&self, ex: &Self::Exchange) -> bool {
        matches!((self, ex), (Some(b), Some(x)) if b.reads_request(x))
    }
    fn on_request_body<H: Host>(
        &self,
        host: &mut H,
        ex: &mut Self::Exchange,
        bytes: Vec<u8>,
        end_of_stream: bool,
        span: &mut Span,
    ) -> Result<Piece, Reply> {
        match (self, ex) {
            (Some(b), Some(x)) => b.on_request_body(host, x, bytes, end_of_stream, span),
            _ => Ok(Some(bytes)),
        }
    }
    fn on_request_trailers<H: Host>(
        &self,
        host: &mut H,
        ex: &mut Self::Exchange,
        held: Vec<u8>,
    ) -> Result<Vec<u8>, Reply> {
        match (self, ex) {
            (Some(b), Some(x)) => b.on_request_trailers(host, x, held),
            _ => Ok(held),
        }
    }
    fn on_response_headers<H: Host>(&self, host: &mut H, ex: &mut Self::Exchange, end_of_stream: bool, lead: Lead<'_>) {
        if let (Some(b), Some(x)) = (self, ex) {
            b.on_response_headers(host, x, end_of_stream, lead);
        }
    }
    fn reads_response(&self, ex: &Self::Exchange) -> bool {
        matches!((self, ex), (Some(b), Some(x)) if b.reads_response(x))
    }
    fn on_response_body<H: Host>(
        &self,
        host: &mut H,
        ex: &mut Self::Exchange,
        bytes: Vec<u8>,
        end_of_stream: bool,
        span: &mut Span,
        lead: Lead<'_>,
    ) -> Piece {
        match (self, ex) {
            (Some(b), Some(x)) => b.on_response_body(host, x, bytes, end_of_stream, span, lead),
            _ => Some(bytes),
        }
    }
    fn finish<H: Host>(&self, host: &mut H, ex: &mut Self::Exchange, end: End, lead: Lead<'_>) {
        if let (Some(b), Some(x)) = (self, ex) {
            b.finish(host, x, end, lead);
        }
    }
    fn lead<'a>(&self, ex: &'a mut Self::Exchange) -> Lead<'a> {
        match (self, ex) {
            (Some(b), Some(x)) => b.lead(x),
            _ => None,
        }
    }
    fn answers(&self, ex: &Self::Exchange) -> bool {
        matches!((self, ex), (Some(b), Some(x)) if b.answers(x))
    }
}

impl Behaviour for Correlation {
    type Exchange = CorrelationExchange;

    fn on_request_headers<H: Host>(&self, host: &mut H) -> CorrelationExchange {
        Correlation::on_request(self, host)
    }
    fn reads_request(&self, ex: &CorrelationExchange) -> bool {
        ex.intake.as_ref().is_some_and(|i| !i.answered())
    }
    /// A feedback body is held here until its end, then answered; nothing is passed on.
    fn on_request_body<H: Host>(
        &self,
        host: &mut H,
        ex: &mut CorrelationExchange,
        bytes: Vec<u8>,
        end_of_stream: bool,
        _span: &mut Span,
    ) -> Result<Piece, Reply> {
        match &mut ex.intake {
            Some(intake) => {
                self.signals().on_feedback_body(host, intake, &bytes, end_of_stream);
                Ok(None)
            }
            None => Ok(Some(bytes)),
        }
    }
    /// Trailers end a feedback body (HTTP/2): answered with what was read.
    fn on_request_trailers<H: Host>(
        &self,
        host: &mut H,
        ex: &mut CorrelationExchange,
        held: Vec<u8>,
    ) -> Result<Vec<u8>, Reply> {
        if let Some(intake) = &mut ex.intake {
            self.signals().on_feedback_body(host, intake, &held, true);
            return Ok(Vec::new());
        }
        Ok(held)
    }
    fn on_response_headers<H: Host>(
        &self,
        host: &mut H,
        ex: &mut CorrelationExchange,
        _end_of_stream: bool,
        _lead: Lead<'_>,
    ) {
        Correlation::on_response_headers(self, host, &ex.ids);
    }
    fn answers(&self, ex: &CorrelationExchange) -> bool {
        ex.intake.is_some()
    }
}

/// Redaction's exchange and the bodies it holds (bounded by `max_inspected_bytes`).
pub struct RedactionExchange {
    inner: redaction::Exchange,
    request: Vec<u8>,
    response: Vec<u8>,
}

impl std::fmt::Debug for RedactionExchange {
    // Held bodies are never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedactionExchange").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl Behaviour for PiiRedaction {
    type Exchange = RedactionExchange;

    fn on_request_headers<H: Host>(&self, host: &mut H) -> RedactionExchange {
        RedactionExchange {
            inner: PiiRedaction::on_request_headers(self, host),
            request: Vec::new(),
            response: Vec::new(),
        }
    }
    fn reads_request(&self, ex: &RedactionExchange) -> bool {
        ex.inner.buffers_request() || ex.inner.observes_request()
    }
    /// Holds the whole body in traffic mode (to its limit); reads a copy in telemetry mode.
    fn on_request_body<H: Host>(
        &self,
        host: &mut H,
        ex: &mut RedactionExchange,
        bytes: Vec<u8>,
        end_of_stream: bool,
        span: &mut Span,
    ) -> Result<Piece, Reply> {
        let rx = &mut ex.inner;
        if !rx.buffers_request() {
            if rx.observes_request() {
                self.on_request_chunk(rx, &bytes);
            }
            if end_of_stream {
                self.on_request_end(host, rx);
            }
            return Ok(Some(bytes));
        }
        ex.request.extend_from_slice(&bytes);
        // The limit stays under Envoy's own buffer limit, so Envoy never answers 413 itself.
        let verdict = if rx.known_over_limit() || ex.request.len() > self.max_inspected_bytes() {
            self.on_request_over_limit(host, rx)
        } else if !end_of_stream {
            return Ok(None);
        } else {
            PiiRedaction::on_request_body(self, host, rx, &ex.request)
        };
        let held = std::mem::take(&mut ex.request);
        span.facts = rx.take_request_facts();
        match verdict {
            RequestVerdict::Forward => Ok(Some(held)),
            RequestVerdict::Replace(body) => {
                span.changed = true;
                span.redacted = true;
                Ok(Some(body))
            }
            RequestVerdict::Reject { status, body } => Err(Reply { status, body }),
        }
    }
    fn on_request_trailers<H: Host>(
        &self,
        host: &mut H,
        ex: &mut RedactionExchange,
        held: Vec<u8>,
    ) -> Result<Vec<u8>, Reply> {
        match PiiRedaction::on_request_trailers(self, host, &mut ex.inner) {
            RequestVerdict::Reject { status, body } => Err(Reply { status, body }),
            // Bytes held for scanning go on unscanned (counted as `trailers`).
            _ => {
                let mut out = std::mem::take(&mut ex.request);
                out.extend_from_slice(&held);
                Ok(out)
            }
        }
    }
    fn on_response_headers<H: Host>(
        &self,
        host: &mut H,
        ex: &mut RedactionExchange,
        _end_of_stream: bool,
        _lead: Lead<'_>,
    ) {
        PiiRedaction::on_response_headers(self, host, &mut ex.inner);
    }
    fn reads_response(&self, ex: &RedactionExchange) -> bool {
        ex.inner.buffers_response() || ex.inner.reads_response()
    }
    /// Holds a JSON body to rewrite it whole; rewrites stream chunks as they pass.
    fn on_response_body<H: Host>(
        &self,
        host: &mut H,
        ex: &mut RedactionExchange,
        bytes: Vec<u8>,
        end_of_stream: bool,
        span: &mut Span,
        _lead: Lead<'_>,
    ) -> Piece {
        let rx = &mut ex.inner;
        if rx.buffers_response() {
            ex.response.extend_from_slice(&bytes);
            if ex.response.len() > self.max_inspected_bytes() {
                self.on_response_over_limit(rx);
                return Some(std::mem::take(&mut ex.response));
            }
            if !end_of_stream {
                return None;
            }
            let held = std::mem::take(&mut ex.response);
            return match PiiRedaction::on_response_body(self, host, rx, &held) {
                Some(out) => {
                    span.changed = true;
                    Some(out)
                }
                None => Some(held),
            };
        }
        if rx.reads_response() {
            if let Some(out) = self.on_response_chunk(host, rx, &bytes, end_of_stream) {
                span.changed |= out != bytes;
                return Some(out);
            }
        }
        Some(bytes)
    }
    fn finish<H: Host>(&self, host: &mut H, ex: &mut RedactionExchange, _end: End, _lead: Lead<'_>) {
        PiiRedaction::finish(self, host, &mut ex.inner);
    }
}

/// Accounting's exchange and the request it holds for the opt-in `include_usage` edit.
pub struct AccountingExchange {
    inner: token_accounting::Exchange,
    request: Vec<u8>,
}

impl std::fmt::Debug for AccountingExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountingExchange").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl Behaviour for TokenAccounting {
    type Exchange = AccountingExchange;

    fn on_request_headers<H: Host>(&self, host: &mut H) -> AccountingExchange {
        AccountingExchange { inner: TokenAccounting::on_request_headers(self, host), request: Vec::new() }
    }
    fn reads_request(&self, ex: &AccountingExchange) -> bool {
        ex.inner.buffers_request() || ex.inner.wants_request_body()
    }
    fn on_request_body<H: Host>(
        &self,
        host: &mut H,
        ex: &mut AccountingExchange,
        bytes: Vec<u8>,
        end_of_stream: bool,
        span: &mut Span,
    ) -> Result<Piece, Reply> {
        let ax = &mut ex.inner;
        if !ax.buffers_request() {
            let read = match span.facts.take() {
                Some(facts) if end_of_stream => self.on_request_facts(ax, &facts, bytes.len()),
                _ => false,
            };
            if !read && ax.wants_request_body() {
                TokenAccounting::on_request_body(self, ax, &bytes, end_of_stream);
            }
            self.on_request_read(host, ax);
            return Ok(Some(bytes));
        }
        ex.request.extend_from_slice(&bytes);
        if !end_of_stream {
            if ex.request.len() <= self.max_request_body_bytes() {
                return Ok(None);
            }
            self.stop_buffering_request(ax, &ex.request);
            return Ok(Some(std::mem::take(&mut ex.request)));
        }
        let edited = self.on_buffered_request(host, ax, &ex.request);
        self.on_request_read(host, ax);
        let held = std::mem::take(&mut ex.request);
        Ok(Some(match edited {
            Some(body) => {
                span.changed = true;
                body
            }
            None => held,
        }))
    }
    fn on_request_trailers<H: Host>(
        &self,
        host: &mut H,
        ex: &mut AccountingExchange,
        held: Vec<u8>,
    ) -> Result<Vec<u8>, Reply> {
        let ax = &mut ex.inner;
        if ax.buffers_request() {
            self.stop_buffering_request(ax, &ex.request);
        }
        if ax.wants_request_body() {
            TokenAccounting::on_request_body(self, ax, &held, false);
        }
        self.on_request_end(ax);
        self.on_request_read(host, ax);
        let mut out = std::mem::take(&mut ex.request);
        out.extend_from_slice(&held);
        Ok(out)
    }
    fn on_response_headers<H: Host>(
        &self,
        host: &mut H,
        ex: &mut AccountingExchange,
        end_of_stream: bool,
        lead: Lead<'_>,
    ) {
        self.on_response_headers_led(host, &mut ex.inner, end_of_stream, lead);
    }
    fn reads_response(&self, ex: &AccountingExchange) -> bool {
        ex.inner.rewrites_response() || ex.inner.wants_response_body()
    }
    fn on_response_body<H: Host>(
        &self,
        host: &mut H,
        ex: &mut AccountingExchange,
        bytes: Vec<u8>,
        end_of_stream: bool,
        span: &mut Span,
        lead: Lead<'_>,
    ) -> Piece {
        let ax = &mut ex.inner;
        if ax.rewrites_response() {
            let out = self.on_response_body_rewrite(host, ax, &bytes, end_of_stream, lead);
            span.changed |= out != bytes;
            return Some(out);
        }
        self.on_response_body_led(host, ax, &bytes, end_of_stream, lead);
        Some(bytes)
    }
    fn finish<H: Host>(&self, host: &mut H, ex: &mut AccountingExchange, end: End, lead: Lead<'_>) {
        self.finish_led(host, &mut ex.inner, end, lead);
    }
}

/// Error normalization's exchange and the error body it holds for the uniform shape.
pub struct ErrorsExchange {
    inner: ErrorExchange,
    response: Vec<u8>,
}

impl std::fmt::Debug for ErrorsExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErrorsExchange").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl Behaviour for ErrorNormalization {
    type Exchange = ErrorsExchange;

    fn on_request_headers<H: Host>(&self, host: &mut H) -> ErrorsExchange {
        ErrorsExchange { inner: ErrorNormalization::on_request_headers(self, host), response: Vec::new() }
    }
    fn on_response_headers<H: Host>(
        &self,
        host: &mut H,
        ex: &mut ErrorsExchange,
        end_of_stream: bool,
        _lead: Lead<'_>,
    ) {
        ErrorNormalization::on_response_headers(self, host, &mut ex.inner, end_of_stream);
    }
    fn reads_response(&self, ex: &ErrorsExchange) -> bool {
        ex.inner.rewriting() || ex.inner.wants_body()
    }
    /// Observes, or holds an error body to replace it with the uniform one.
    fn on_response_body<H: Host>(
        &self,
        host: &mut H,
        ex: &mut ErrorsExchange,
        bytes: Vec<u8>,
        end_of_stream: bool,
        span: &mut Span,
        _lead: Lead<'_>,
    ) -> Piece {
        let x = &mut ex.inner;
        if !x.rewriting() {
            ErrorNormalization::on_response_body(self, host, x, &bytes, end_of_stream);
            return Some(bytes);
        }
        ex.response.extend_from_slice(&bytes);
        if !end_of_stream && ex.response.len() > self.max_error_body_bytes() {
            // Too large to rewrite: classified by what was read, passed on unchanged.
            ErrorNormalization::on_response_body(self, host, x, &bytes, false);
            self.release(x);
            return Some(std::mem::take(&mut ex.response));
        }
        let uniform = ErrorNormalization::on_response_body(self, host, x, &bytes, end_of_stream);
        if !end_of_stream {
            return None;
        }
        let held = std::mem::take(&mut ex.response);
        Some(match uniform {
            Some(body) => {
                span.changed = true;
                body
            }
            None => held,
        })
    }
    fn finish<H: Host>(&self, host: &mut H, ex: &mut ErrorsExchange, end: End, _lead: Lead<'_>) {
        ErrorNormalization::finish(self, host, &mut ex.inner, end);
    }
    fn lead<'a>(&self, ex: &'a mut ErrorsExchange) -> Lead<'a> {
        Some(ex.inner.response_mut())
    }
}

/// The four behaviours in one filter. `Bundle` (the default parameters) is the bundle module,
/// any section optional; a separate module is, e.g., `Bundle<Correlation, Off, Off, Off>`.
#[derive(Debug)]
pub struct Bundle<
    C = Option<Correlation>,
    R = Option<PiiRedaction>,
    A = Option<TokenAccounting>,
    E = Option<ErrorNormalization>,
> {
    correlation: C,
    redaction: R,
    accounting: A,
    errors: E,
}

/// The bundle module: every section optional.
pub type FullBundle = Bundle;

/// The separate modules: one behaviour each, configured with that filter's own schema.
pub type CorrelationFilter = Bundle<Correlation, Off, Off, Off>;
pub type RedactionFilter = Bundle<Off, PiiRedaction, Off, Off>;
pub type AccountingFilter = Bundle<Off, Off, TokenAccounting, Off>;
pub type ErrorsFilter = Bundle<Off, Off, Off, ErrorNormalization>;

impl CorrelationFilter {
    pub fn new<H: Host>(config_json: &[u8], host: &mut H) -> Result<Self, ConfigError> {
        Ok(Bundle { correlation: Correlation::new(config_json, host)?, redaction: Off, accounting: Off, errors: Off })
    }
}

impl RedactionFilter {
    pub fn new<H: Host + Environment>(config_json: &[u8], host: &mut H) -> Result<Self, ConfigError> {
        Ok(Bundle { correlation: Off, redaction: PiiRedaction::new(config_json, host)?, accounting: Off, errors: Off })
    }
}

impl AccountingFilter {
    pub fn new<H: Host>(config_json: &[u8], host: &mut H) -> Result<Self, ConfigError> {
        Ok(Bundle {
            correlation: Off,
            redaction: Off,
            accounting: TokenAccounting::new(config_json, host)?,
            errors: Off,
        })
    }
}

impl ErrorsFilter {
    pub fn new<H: Host>(config_json: &[u8], host: &mut H) -> Result<Self, ConfigError> {
        Ok(Bundle {
            correlation: Off,
            redaction: Off,
            accounting: Off,
            errors: ErrorNormalization::new(config_json, host)?,
        })
    }
}

impl Bundle {
    /// Parses a bundle configuration: an object whose keys are [`SECTIONS`].
    pub fn new<H: Host + Environment>(config_json: &[u8], host: &mut H) -> Result<Self, ConfigError> {
        let doc: Map<String, Value> = serde_json::from_slice(config_json)
            .map_err(|_| ConfigError::new(".", "the bundle configuration must be a JSON object of sections"))?;
        // Every section is configured even after one fails, so one rollout shows all errors.
        let mut errors: Vec<ConfigError> = Vec::new();
        let expected = SECTIONS.join("`, `");
        for unknown in doc.keys().filter(|k| !SECTIONS.contains(&k.as_str())) {
            errors.push(ConfigError::new(
                crate::metric::label_value(unknown),
                format!("unknown section, expected one of `{expected}`"),
            ));
        }
        if doc.is_empty() {
            return Err(ConfigError::new(".", "configure at least one section"));
        }
        let section = |name: &'static str| doc.get(name).map(|v| serde_json::to_vec(v).unwrap_or_default());
        let correlation = section("correlation").map(|json| Correlation::new(&json, host));
        let correlation = keep_section("correlation", correlation, &mut errors);
        let redaction = section("pii_redaction").map(|json| PiiRedaction::new(&json, host));
        let redaction = keep_section("pii_redaction", redaction, &mut errors);
        let accounting = section("token_accounting").map(|json| TokenAccounting::new(&json, host));
        let accounting = keep_section("token_accounting", accounting, &mut errors);
        let errors_section = section("error_normalization").map(|json| ErrorNormalization::new(&json, host));
        let errors_section = keep_section("error_normalization", errors_section, &mut errors);
        ConfigError::collect(errors)?;
        match (correlation, redaction, accounting, errors_section) {
            (Some(correlation), Some(redaction), Some(accounting), Some(errors)) => {
                Ok(Bundle { correlation, redaction, accounting, errors })
            }
            _ => Err(ConfigError::new(".", "invalid")),
        }
    }
}

/// A configured section (`Some(None)` when absent), or `None` with its errors kept under `name`.
fn keep_section<T>(
    name: &str,
    result: Option<Result<T, ConfigError>>,
    errors: &mut Vec<ConfigError>,
) -> Option<Option<T>> {
    match result {
        Some(Err(e)) => {
            errors.push(e.within(name));
            None
        }
        Some(Ok(behaviour)) => Some(Some(behaviour)),
        None => Some(None),
    }
}

/// One request/response exchange.
#[derive(Debug)]
pub struct BundleExchange<C: Behaviour, R: Behaviour, A: Behaviour, E: Behaviour> {
    correlation: C::Exchange,
    redaction: R::Exchange,
    accounting: A::Exchange,
    errors: E::Exchange,
    request: Span,
    response: Span,
    /// A local reply was sent: the rest of the exchange is Envoy's.
    replied: bool,
}

impl<C: Behaviour, R: Behaviour, A: Behaviour, E: Behaviour> Bundle<C, R, A, E> {
    pub fn on_request_headers<H: Host>(&self, host: &mut H) -> BundleExchange<C, R, A, E> {
        BundleExchange {
            correlation: self.correlation.on_request_headers(host),
            redaction: self.redaction.on_request_headers(host),
            accounting: self.accounting.on_request_headers(host),
            errors: self.errors.on_request_headers(host),
            request: Span::default(),
            response: Span::default(),
            replied: false,
        }
    }

    /// After the request headers: whether they go on. A request the correlation behaviour
    /// answers itself (the feedback endpoint) stops here, so the router never opens an
    /// upstream request for it; one without a body is answered now.
    pub fn request_headers_flow<H: Host>(
        &self,
        host: &mut H,
        ex: &mut BundleExchange<C, R, A, E>,
        end_of_stream: bool,
    ) -> Flow {
        if !self.correlation.answers(&ex.correlation) {
            return Flow::Continue;
        }
        if end_of_stream {
            let _ = self.correlation.on_request_body(host, &mut ex.correlation, Vec::new(), true, &mut ex.request);
        }
        Flow::Pause
    }

    /// A request body callback: `body_size` bytes are in the host's buffer. Request order:
    /// redaction, then accounting (error normalization reads no request body; correlation only
    /// the body of a request it answers itself).
    pub fn on_request_body<H: Host, B: BodyBuffer>(
        &self,
        host: &mut H,
        ex: &mut BundleExchange<C, R, A, E>,
        buffer: &mut B,
        body_size: usize,
        end_of_stream: bool,
    ) -> Flow {
        if self.correlation.answers(&ex.correlation) {
            if self.correlation.reads_request(&ex.correlation) {
                let new = buffer.read(ex.request.read, body_size.saturating_sub(ex.request.read)).unwrap_or_default();
                ex.request.read = body_size;
                let _ =
                    self.correlation.on_request_body(host, &mut ex.correlation, new, end_of_stream, &mut ex.request);
            }
            return Flow::Pause;
        }
        let reads = self.redaction.reads_request(&ex.redaction) || self.accounting.reads_request(&ex.accounting);
        if ex.replied || !reads {
            ex.request = Span::default();
            return Flow::Continue;
        }
        let new = buffer.read(ex.request.read, body_size.saturating_sub(ex.request.read)).unwrap_or_default();
        ex.request.read = body_size;
        let span = &mut ex.request;
        let piece =
            self.redaction.on_request_body(host, &mut ex.redaction, new, end_of_stream, span).and_then(|piece| {
                match piece {
                    Some(bytes) => {
                        self.accounting.on_request_body(host, &mut ex.accounting, bytes, end_of_stream, span)
                    }
                    None => Ok(None),
                }
            });
        let out = match piece {
            Err(reply) => return self.reply(host, ex, reply),
            Ok(None) => return Flow::Pause,
            Ok(Some(out)) => out,
        };
        let span = std::mem::take(&mut ex.request);
        if span.changed && !buffer.replace(body_size, &out) {
            if span.redacted {
                // Forwarding the original would send unredacted data upstream: refuse instead.
                host.log(LogLevel::Error, "llmobs: could not replace a redacted request body; refused");
                host.send_local_response(500, "llmobs_pii_rewrite_failed", &[], b"");
                ex.replied = true;
                return Flow::Pause;
            }
            host.log(LogLevel::Warn, "llmobs: could not replace a request body; sent unchanged");
        }
        Flow::Continue
    }

    /// Request trailers: the body callbacks never saw an end of stream (HTTP/2 with trailers).
    pub fn on_request_trailers<H: Host>(&self, host: &mut H, ex: &mut BundleExchange<C, R, A, E>) -> Flow {
        if self.correlation.answers(&ex.correlation) {
            if self.correlation.reads_request(&ex.correlation) {
                let _ = self.correlation.on_request_trailers(host, &mut ex.correlation, Vec::new());
            }
            return Flow::Pause;
        }
        if ex.replied {
            return Flow::Pause;
        }
        ex.request = Span::default();
        let passed = self
            .redaction
            .on_request_trailers(host, &mut ex.redaction, Vec::new())
            .and_then(|held| self.accounting.on_request_trailers(host, &mut ex.accounting, held));
        match passed {
            Err(reply) => self.reply(host, ex, reply),
            Ok(_) => Flow::Continue,
        }
    }

    /// Response headers, in Envoy's encoder order (the reverse of the request path).
    pub fn on_response_headers<H: Host>(&self, host: &mut H, ex: &mut BundleExchange<C, R, A, E>, end_of_stream: bool) {
        if self.correlation.answers(&ex.correlation) {
            self.correlation.on_response_headers(host, &mut ex.correlation, end_of_stream, None);
            return;
        }
        self.errors.on_response_headers(host, &mut ex.errors, end_of_stream, None);
        let lead = self.errors.lead(&mut ex.errors);
        self.accounting.on_response_headers(host, &mut ex.accounting, end_of_stream, lead);
        self.redaction.on_response_headers(host, &mut ex.redaction, end_of_stream, None);
        self.correlation.on_response_headers(host, &mut ex.correlation, end_of_stream, None);
    }

    /// A response body callback. Order: error normalization, accounting, redaction, so the
    /// client gets what redaction releases and accounting counts what the provider sent.
    pub fn on_response_body<H: Host, B: BodyBuffer>(
        &self,
        host: &mut H,
        ex: &mut BundleExchange<C, R, A, E>,
        buffer: &mut B,
        body_size: usize,
        end_of_stream: bool,
    ) -> Flow {
        if self.correlation.answers(&ex.correlation) {
            return Flow::Continue;
        }
        let reads = self.errors.reads_response(&ex.errors)
            || self.accounting.reads_response(&ex.accounting)
            || self.redaction.reads_response(&ex.redaction);
        let new = if reads {
            buffer.read(ex.response.read, body_size.saturating_sub(ex.response.read)).unwrap_or_default()
        } else if end_of_stream {
            // Nobody reads the bytes, but the end of the stream still finishes each behaviour.
            Vec::new()
        } else {
            ex.response = Span::default();
            return Flow::Continue;
        };
        ex.response.read = body_size;
        let span = &mut ex.response;
        let piece = self
            .errors
            .on_response_body(host, &mut ex.errors, new, end_of_stream, span, None)
            .and_then(|bytes| {
                let lead = self.errors.lead(&mut ex.errors);
                self.accounting.on_response_body(host, &mut ex.accounting, bytes, end_of_stream, span, lead)
            })
            .and_then(|bytes| {
                self.redaction.on_response_body(host, &mut ex.redaction, bytes, end_of_stream, span, None)
            });
        let Some(out) = piece else { return Flow::Pause };
        let span = std::mem::take(&mut ex.response);
        if span.changed && !buffer.replace(body_size, &out) {
            host.log(LogLevel::Error, "llmobs: could not replace a response body");
        }
        Flow::Continue
    }

    /// Response trailers (HTTP/2 responses with trailers never set end of stream on the last
    /// data frame).
    pub fn on_response_trailers<H: Host>(&self, host: &mut H, ex: &mut BundleExchange<C, R, A, E>) {
        self.finish(host, ex, End::Complete);
    }

    /// The last callback; also the end of a stream torn down early (client gone, upstream reset).
    pub fn on_log<H: Host>(&self, host: &mut H, ex: &mut BundleExchange<C, R, A, E>) {
        self.finish(host, ex, End::Aborted);
    }

    fn finish<H: Host>(&self, host: &mut H, ex: &mut BundleExchange<C, R, A, E>, end: End) {
        if self.correlation.answers(&ex.correlation) {
            return;
        }
        // Error normalization first: accounting reads its class, and may take over its tracker.
        self.errors.finish(host, &mut ex.errors, end, None);
        let lead = self.errors.lead(&mut ex.errors);
        self.accounting.finish(host, &mut ex.accounting, end, lead);
        self.redaction.finish(host, &mut ex.redaction, end, None);
    }

    /// A structured refusal in the provider's error shape (built by the redaction behaviour).
    fn reply<H: Host>(&self, host: &mut H, ex: &mut BundleExchange<C, R, A, E>, reply: Reply) -> Flow {
        let details = match reply.status {
            413 => "llmobs_pii_over_limit",
            415 => "llmobs_pii_uninspectable",
            _ => "llmobs_pii_blocked",
        };
        let headers = [("content-type", "application/json"), ("x-llmobs-blocked", "pii")];
        host.send_local_response(reply.status, details, &headers, &reply.body);
        ex.replied = true;
        Flow::Pause
    }
}
