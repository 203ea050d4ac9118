//! Application-reported quality signals, run by the correlation filter: client feedback
//! answered by the filter itself, and retrieval diagnostics read from a request header.
//!
//! Both belong to the correlation filter because both are about joining: feedback names the
//! request it rates by the request id the correlation filter validated and echoed, and both
//! are header-level facts the first filter of the chain sees before anything else. Being
//! first also means a feedback request is answered before the other filters (or the bundle's
//! other behaviours) spend anything on it, and the retrieval header is gone before any other
//! filter or the provider sees it. (`docs/filters/correlation.md`, "Client feedback" and
//! "Retrieval diagnostics".)
//!
//! Everything recorded is a bounded label, a number, an id that passed the id rules, or a
//! validated URL without its query: never free text from the body or a header.

pub mod config;
pub mod feedback;
pub mod retrieval;

use crate::filter_state as fs;
use crate::host::{Host, LogLevel};
use crate::id;
use crate::label::{BoundedLabel, UNKNOWN};
use crate::metric;
use config::{FeedbackConfig, RetrievalConfig, SignalLabels};
use feedback::Feedback;
use retrieval::Retrieval;

// Filter-state keys (the access-log fields are in docs/log-schema.json).
pub const FS_FEEDBACK_KIND: &str = "llmobs.feedback.kind";
pub const FS_FEEDBACK_RATING: &str = "llmobs.feedback.rating";
pub const FS_FEEDBACK_REQUEST_ID: &str = "llmobs.feedback.request_id";
pub const FS_FEEDBACK_CONVERSATION_ID: &str = "llmobs.feedback.conversation_id";
pub const FS_FEEDBACK_TASK_COMPLETED: &str = "llmobs.feedback.task_completed";
pub const FS_FEEDBACK_TICKET_URL: &str = "llmobs.feedback.ticket_url";
pub const FS_FEEDBACK_LOCALE: &str = "llmobs.feedback.locale";
pub const FS_FEEDBACK_PROMPT_VERSION: &str = "llmobs.feedback.prompt_version";
pub const FS_FEEDBACK_REJECTED: &str = "llmobs.feedback.rejected";
pub const FS_RETRIEVAL_CHUNKS: &str = "llmobs.retrieval.chunks";
pub const FS_RETRIEVAL_DROPPED: &str = "llmobs.retrieval.dropped";
pub const FS_RETRIEVAL_TOP_SCORE: &str = "llmobs.retrieval.top_score";
pub const FS_RETRIEVAL_SPARSE_SKIPPED: &str = "llmobs.retrieval.sparse_skipped";
pub const FS_RETRIEVAL_EMPTY: &str = "llmobs.retrieval.empty";
pub const FS_RETRIEVAL_INVALID: &str = "llmobs.retrieval.invalid";

/// Why a feedback request was refused: the request's shape, or its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Not `POST` (405).
    Method,
    /// Not `application/json` (415).
    ContentType,
    /// Over `max_body_bytes`, stated or read (413).
    TooLarge,
    /// The body broke a rule (400).
    Body(feedback::Invalid),
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Method => "method",
            Refusal::ContentType => "content_type",
            Refusal::TooLarge => "too_large",
            Refusal::Body(invalid) => invalid.label(),
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Refusal::Method => 405,
            Refusal::ContentType => 415,
            Refusal::TooLarge => 413,
            Refusal::Body(_) => 400,
        }
    }

    fn message(self) -> &'static str {
        match self {
            Refusal::Method => "use POST",
            Refusal::ContentType => "the body must be application/json",
            Refusal::TooLarge => "the body is over the configured limit",
            Refusal::Body(invalid) => invalid.message(),
        }
    }
}

/// One feedback request being read. The filter answers it itself: it is never forwarded.
#[derive(Debug, Default)]
pub struct Intake {
    body: Vec<u8>,
    synthetic: bool,
    /// The reply was sent; anything after it is Envoy's.
    answered: bool,
}

impl Intake {
    pub fn answered(&self) -> bool {
        self.answered
    }
}

/// The configured signals of one correlation filter.
#[derive(Debug)]
pub struct Signals {
    feedback: FeedbackConfig,
    retrieval: RetrievalConfig,
    labels: SignalLabels,
    tenants: BoundedLabel,
    prompt_versions: BoundedLabel,
    locales: BoundedLabel,
    routes: BoundedLabel,
    handles: metric::Handles,
}

impl Signals {
    pub fn new(feedback: FeedbackConfig, retrieval: RetrievalConfig, labels: SignalLabels) -> Self {
        let bounded = |key: &str, policy: &crate::token_accounting::config::LabelPolicy| {
            BoundedLabel::new(key, &policy.allow, policy.max_distinct)
        };
        Self {
            tenants: bounded("llmobs.correlation.tenants", &labels.tenant_label),
            prompt_versions: bounded("llmobs.correlation.prompt_versions", &labels.prompt_version_label),
            locales: bounded("llmobs.correlation.locales", &feedback.locale_label),
            routes: bounded("llmobs.correlation.routes", &retrieval.route_label),
            handles: metric::Handles::default(),
            feedback,
            retrieval,
            labels,
        }
    }

    /// A feedback request starts an [`Intake`] (and may be answered at once, for a wrong method,
    /// content type or stated length); any other request has its retrieval header read and
    /// removed.
    pub fn on_request_headers<H: Host>(&self, host: &mut H, synthetic: bool) -> Option<Intake> {
        if self.is_feedback_path(host) {
            let mut intake = Intake { synthetic, ..Intake::default() };
            let method = host.request_header(":method");
            let json = host.request_header("content-type").is_some_and(|v| is_json(&v));
            let stated = host.request_header("content-length").and_then(|v| parse_length(&v));
            if method.as_deref() != Some(b"POST") {
                self.refuse(host, &mut intake, Refusal::Method);
            } else if !json {
                self.refuse(host, &mut intake, Refusal::ContentType);
            } else if stated.is_some_and(|n| n > self.feedback.max_body_bytes as u64) {
                self.refuse(host, &mut intake, Refusal::TooLarge);
            }
            return Some(intake);
        }
        self.on_retrieval_header(host, synthetic);
        None
    }

    /// Feedback body bytes; at the end of the stream the body is validated and answered.
    pub fn on_feedback_body<H: Host>(&self, host: &mut H, intake: &mut Intake, bytes: &[u8], end_of_stream: bool) {
        if intake.answered {
            return;
        }
        if intake.body.len() + bytes.len() > self.feedback.max_body_bytes {
            intake.body = Vec::new();
            self.refuse(host, intake, Refusal::TooLarge);
            return;
        }
        intake.body.extend_from_slice(bytes);
        if !end_of_stream {
            return;
        }
        let body = std::mem::take(&mut intake.body);
        match feedback::parse(&body) {
            Ok(fb) => self.accept(host, intake, &fb),
            Err(invalid) => self.refuse(host, intake, Refusal::Body(invalid)),
        }
    }

    fn is_feedback_path<H: Host>(&self, host: &H) -> bool {
        if self.feedback.path.is_empty() {
            return false;
        }
        let Some(path) = host.request_header(":path") else { return false };
        let end = path.iter().position(|&b| b == b'?' || b == b'#').unwrap_or(path.len());
        path.get(..end) == Some(self.feedback.path.as_bytes())
    }

    fn accept<H: Host>(&self, host: &mut H, intake: &mut Intake, fb: &Feedback) {
        let tenant = self.tenant(host);
        let prompt_version = self.prompt_version(host);
        let locale = self.admit(host, &self.locales, fb.locale.as_deref(), "locale");
        let rating = fb.rating.map_or("none", |r| r.label());
        self.handles.add(
            host,
            "llmobs.feedback.received",
            &[
                ("kind", fb.kind.label()),
                ("rating", rating),
                ("tenant", &tenant.label),
                ("prompt_version", &prompt_version.label),
                ("locale", &locale),
                ("synthetic", metric::flag(intake.synthetic)),
            ],
            1,
        );

        host.set_filter_state(FS_FEEDBACK_KIND, fb.kind.label().as_bytes());
        host.set_filter_state(FS_FEEDBACK_REQUEST_ID, fb.request_id.as_bytes());
        if let Some(rating) = fb.rating {
            host.set_filter_state(FS_FEEDBACK_RATING, rating.label().as_bytes());
        }
        let optional = [
            (FS_FEEDBACK_CONVERSATION_ID, fb.conversation_id.as_deref()),
            (FS_FEEDBACK_TASK_COMPLETED, fb.task_completed.map(|b| if b { "true" } else { "false" })),
            (FS_FEEDBACK_TICKET_URL, fb.ticket_url.as_deref()),
            (FS_FEEDBACK_LOCALE, fb.locale.as_deref()),
            (FS_FEEDBACK_PROMPT_VERSION, prompt_version.value.as_deref()),
            // The feedback request never reaches token accounting, which writes the tenant for
            // every other request: the feedback line carries it from here.
            (fs::TENANT, tenant.value.as_deref()),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                host.set_filter_state(key, value.as_bytes());
            }
        }
        intake.answered = true;
        if !host.send_local_response(204, "llmobs_feedback_accepted", &[], b"") {
            host.log(LogLevel::Warn, "llmobs: the host refused the feedback reply");
        }
    }

    fn refuse<H: Host>(&self, host: &mut H, intake: &mut Intake, refusal: Refusal) {
        self.handles.add(
            host,
            "llmobs.feedback.rejected",
            &[("reason", refusal.label()), ("synthetic", metric::flag(intake.synthetic))],
            1,
        );
        host.set_filter_state(FS_FEEDBACK_REJECTED, refusal.label().as_bytes());
        let body = serde_json::json!({
            "error": {"type": "invalid_feedback", "reason": refusal.label(), "message": refusal.message()}
        });
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let mut headers = vec![("content-type", "application/json")];
        if refusal == Refusal::Method {
            headers.push(("allow", "POST"));
        }
        intake.answered = true;
        if !host.send_local_response(refusal.status(), "llmobs_feedback_rejected", &headers, &body) {
            host.log(LogLevel::Warn, "llmobs: the host refused the feedback reply");
        }
    }

    fn on_retrieval_header<H: Host>(&self, host: &mut H, synthetic: bool) {
        if self.retrieval.header.is_empty() {
            return;
        }
        let Some(raw) = host.request_header(&self.retrieval.header) else { return };
        // Removed whatever its content: it is for this gateway, never for the provider.
        host.remove_request_header(&self.retrieval.header);
        let report = match retrieval::parse(&raw) {
            Ok(report) => report,
            Err(invalid) => {
                self.handles.add(
                    host,
                    "llmobs.retrieval.invalid",
                    &[("reason", invalid.label()), ("synthetic", metric::flag(synthetic))],
                    1,
                );
                host.set_filter_state(FS_RETRIEVAL_INVALID, invalid.label().as_bytes());
                return;
            }
        };
        self.record_retrieval(host, &report, synthetic);
    }

    fn record_retrieval<H: Host>(&self, host: &mut H, report: &Retrieval, synthetic: bool) {
        let route_raw = host.property(&["xds", "route_name"]).map(|r| String::from_utf8_lossy(&r).into_owned());
        let route = self.admit(host, &self.routes, route_raw.as_deref(), "route");
        let tenant = self.tenant(host);
        let prompt_version = self.prompt_version(host);
        let labels = [
            ("route", route.as_str()),
            ("tenant", tenant.label.as_str()),
            ("prompt_version", prompt_version.label.as_str()),
            ("synthetic", metric::flag(synthetic)),
        ];
        let count = |host: &mut H, base: &str, delta: u64| self.handles.add(host, base, &labels, delta);
        let record = |host: &mut H, base: &str, value: u64| self.handles.observe(host, base, &labels, value);
        count(host, "llmobs.retrieval.requests", 1);
        if report.is_empty() {
            count(host, "llmobs.retrieval.empty", 1);
        }
        if report.sparse_skipped == Some(true) {
            count(host, "llmobs.retrieval.sparse_skipped", 1);
        }
        if let Some(chunks) = report.chunks {
            record(host, "llmobs.retrieval.chunks", u64::from(chunks));
        }
        if let Some(dropped) = report.dropped {
            record(host, "llmobs.retrieval.dropped_chunks", u64::from(dropped));
            // Envoy's histogram sums are approximate; the alert on dropped chunks reads this.
            count(host, "llmobs.retrieval.chunks_dropped", u64::from(dropped));
        }
        if let Some(score) = report.top_score_milli {
            record(host, "llmobs.retrieval.top_score_milli", u64::from(score));
        }

        let flag = |b: bool| if b { "1" } else { "0" };
        let fields = [
            (FS_RETRIEVAL_CHUNKS, report.chunks.map(|n| n.to_string())),
            (FS_RETRIEVAL_DROPPED, report.dropped.map(|n| n.to_string())),
            (FS_RETRIEVAL_TOP_SCORE, report.top_score_milli.map(|m| format!("{}.{:03}", m / 1000, m % 1000))),
            (FS_RETRIEVAL_SPARSE_SKIPPED, report.sparse_skipped.map(|b| flag(b).to_string())),
            (FS_RETRIEVAL_EMPTY, Some(flag(report.is_empty()).to_string())),
        ];
        for (key, value) in fields {
            if let Some(value) = value {
                host.set_filter_state(key, value.as_bytes());
            }
        }
    }

    fn tenant<H: Host>(&self, host: &mut H) -> Resolved {
        self.resolve(host, &self.labels.tenant_header, &self.tenants, "tenant")
    }

    fn prompt_version<H: Host>(&self, host: &mut H) -> Resolved {
        self.resolve(host, &self.labels.prompt_version_header, &self.prompt_versions, "prompt_version")
    }

    /// A header value that passes the id rules, and its bounded label (`unknown` when absent or
    /// invalid).
    fn resolve<H: Host>(&self, host: &mut H, header: &str, bound: &BoundedLabel, label: &str) -> Resolved {
        let value = (!header.is_empty())
            .then(|| host.request_header(header))
            .flatten()
            .and_then(|raw| id::validate(&raw).ok().map(str::to_string));
        let label = self.admit(host, bound, value.as_deref(), label);
        Resolved { value, label }
    }

    fn admit<H: Host>(&self, host: &mut H, bound: &BoundedLabel, value: Option<&str>, label: &str) -> String {
        let admitted = bound.admit(host, value);
        if admitted.overflowed {
            self.handles.add(host, "llmobs.label_overflow", &[("label", label)], 1);
        }
        if admitted.value.is_empty() {
            UNKNOWN.to_string()
        } else {
            admitted.value
        }
    }
}

/// A label source read from a request: its valid value (for the log) and its metric label.
#[derive(Debug)]
struct Resolved {
    value: Option<String>,
    label: String,
}

/// `application/json`, with or without parameters (`; charset=utf-8`), any case.
fn is_json(value: &[u8]) -> bool {
    let media = value.split(|&b| b == b';').next().unwrap_or_default();
    media.trim_ascii().eq_ignore_ascii_case(b"application/json")
}

fn parse_length(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}
