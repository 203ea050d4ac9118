//! The correlation filter: request, conversation and agent ids, W3C trace context, baggage
//! policy, synthetic probes and the one sampling decision, all from request headers.
//!
//! Header-only: it never touches a body. Everything it learns goes to filter state for the
//! access log and the other filters (see [`crate::filter_state`]); invalid inbound ids are
//! replaced, never passed on and never logged.

pub mod config;

use crate::baggage::{self, Limits};
use crate::config::ConfigError;
use crate::filter_state as fs;
use crate::host::{Host, HostError, MetricId, Stats};
use crate::id::{self, Rejection};
use crate::metric;
use crate::sampling;
use crate::signals::{Intake, Signals};
use crate::trace_context;
use config::{CorrelationConfig, IdSource, TraceContextMode};

/// The kinds of id the filter handles; a bounded metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    RequestId,
    ConversationId,
    AgentId,
    ParentAgentId,
    AgentRunId,
    TraceParent,
}

impl IdKind {
    pub const ALL: [IdKind; 6] = [
        IdKind::RequestId,
        IdKind::ConversationId,
        IdKind::AgentId,
        IdKind::ParentAgentId,
        IdKind::AgentRunId,
        IdKind::TraceParent,
    ];

    pub fn label(self) -> &'static str {
        match self {
            IdKind::RequestId => "request_id",
            IdKind::ConversationId => "conversation_id",
            IdKind::AgentId => "agent_id",
            IdKind::ParentAgentId => "parent_agent_id",
            IdKind::AgentRunId => "agent_run_id",
            IdKind::TraceParent => "traceparent",
        }
    }
}

/// Why an id was rejected: the id rules, plus `format` for a malformed `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    Id(Rejection),
    Format,
}

impl RejectReason {
    fn label(self) -> &'static str {
        match self {
            RejectReason::Id(r) => r.label(),
            RejectReason::Format => "format",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Counter {
    Requests,
    Minted(IdKind),
    Rejected(IdKind, RejectReason),
    BaggageStripped(baggage::Drop),
}

/// Counter handles. The request counter, which every request moves (and the synthetic-probe
/// alert reads, so both of its series must exist), is defined at configure time; the others
/// when first counted, so a proxy exports only the id kinds, rejection reasons and baggage drops
/// it has seen, instead of 66 series that stay zero (issue 17).
#[derive(Debug)]
struct Counters {
    /// Organic and synthetic requests.
    requests: MetricId,
    synthetic_requests: MetricId,
    on_first_use: metric::Handles,
}

impl Counters {
    fn define<S: Stats>(stats: &mut S) -> Result<Self, HostError> {
        let requests = |stats: &mut S, synthetic: bool| {
            stats
                .define_counter(&metric::name("llmobs.correlation.requests", &[("synthetic", metric::flag(synthetic))]))
        };
        Ok(Self {
            requests: requests(stats, false)?,
            synthetic_requests: requests(stats, true)?,
            on_first_use: metric::Handles::default(),
        })
    }

    fn add<H: Host>(&self, host: &mut H, counter: Counter, synthetic: bool, delta: u64) {
        if delta == 0 {
            return;
        }
        let s = ("synthetic", metric::flag(synthetic));
        let handles = &self.on_first_use;
        match counter {
            Counter::Requests => {
                let id = if synthetic { self.synthetic_requests } else { self.requests };
                host.increment_counter(id, delta);
            }
            Counter::Minted(kind) => {
                handles.add(host, "llmobs.correlation.ids_minted", &[("id", kind.label()), s], delta)
            }
            Counter::Rejected(kind, reason) => handles.add(
                host,
                "llmobs.correlation.ids_rejected",
                &[("id", kind.label()), ("reason", reason.label()), s],
                delta,
            ),
            Counter::BaggageStripped(reason) => {
                handles.add(
                    host,
                    "llmobs.correlation.baggage_members_stripped",
                    &[("reason", reason.label()), s],
                    delta,
                );
            }
        }
    }
}

/// What the filter decided for one request; kept by the adapter until the response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestIds {
    pub request_id: String,
    pub conversation_id: Option<String>,
    pub agent_id: Option<String>,
    pub parent_agent_id: Option<String>,
    pub agent_run_id: Option<String>,
    pub trace_id: Option<String>,
    pub sampled: bool,
    pub synthetic: bool,
    /// Kinds whose inbound value was invalid and replaced (or, for an observed traceparent,
    /// found invalid).
    pub replaced: Vec<IdKind>,
}

/// The configured filter. Built once per configuration; shared by every request.
#[derive(Debug)]
pub struct Correlation {
    config: CorrelationConfig,
    counters: Counters,
    signals: Signals,
}

/// A request as the correlation filter keeps it: its ids, and the feedback intake when the
/// request is for the feedback endpoint (answered by the filter, never forwarded).
#[derive(Debug, Default)]
pub struct CorrelationExchange {
    pub ids: RequestIds,
    pub intake: Option<Intake>,
}

impl Correlation {
    pub fn new<S: Stats>(config_json: &[u8], stats: &mut S) -> Result<Self, ConfigError> {
        let config = CorrelationConfig::parse(config_json)?;
        let counters =
            Counters::define(stats).map_err(|e| ConfigError::new(".", format!("cannot define metrics: {e}")))?;
        let signals = Signals::new(config.feedback.clone(), config.retrieval.clone(), config.signal_labels.clone());
        Ok(Self { config, counters, signals })
    }

    pub fn signals(&self) -> &Signals {
        &self.signals
    }

    /// The ids ([`Self::on_request_headers`]), then the application's signals: a feedback
    /// request starts an intake; any other has its retrieval header read and removed.
    pub fn on_request<H: Host>(&self, host: &mut H) -> CorrelationExchange {
        let ids = self.on_request_headers(host);
        let intake = self.signals.on_request_headers(host, ids.synthetic);
        CorrelationExchange { ids, intake }
    }

    pub fn config(&self) -> &CorrelationConfig {
        &self.config
    }

    pub fn on_request_headers<H: Host>(&self, host: &mut H) -> RequestIds {
        let mut ids = RequestIds { synthetic: self.is_synthetic(host), ..RequestIds::default() };
        self.counters.add(host, Counter::Requests, ids.synthetic, 1);

        ids.request_id = self.request_id(host, &mut ids);
        ids.sampled = sampling::is_sampled(&ids.request_id, self.config.sample_rate);
        ids.conversation_id = self.optional_id(host, IdKind::ConversationId, &self.config.conversation_id, &mut ids);
        ids.agent_id = self.optional_id(host, IdKind::AgentId, &self.config.agent_id, &mut ids);
        ids.parent_agent_id = self.optional_id(host, IdKind::ParentAgentId, &self.config.parent_agent_id, &mut ids);
        ids.agent_run_id = self.optional_id(host, IdKind::AgentRunId, &self.config.agent_run_id, &mut ids);
        ids.trace_id = self.trace_context(host, &mut ids);
        self.baggage(host, ids.synthetic);
        write_filter_state(host, &ids);
        ids
    }

    pub fn on_response_headers<H: Host>(&self, host: &mut H, ids: &RequestIds) {
        let echo = &self.config.echo;
        let pairs = [
            (&echo.request_id, Some(&ids.request_id)),
            (&echo.conversation_id, ids.conversation_id.as_ref()),
            (&echo.agent_run_id, ids.agent_run_id.as_ref()),
            (&echo.trace_id, ids.trace_id.as_ref()),
        ];
        for (header, value) in pairs {
            if let (false, Some(value)) = (header.is_empty(), value) {
                host.set_response_header(header, value);
            }
        }
    }

    fn is_synthetic<H: Host>(&self, host: &H) -> bool {
        host.request_header(&self.config.synthetic.header).is_some_and(|v| v.eq_ignore_ascii_case(b"true") || v == b"1")
    }

    fn reject<H: Host>(&self, host: &mut H, kind: IdKind, reason: RejectReason, ids: &mut RequestIds) {
        self.counters.add(host, Counter::Rejected(kind, reason), ids.synthetic, 1);
        if !ids.replaced.contains(&kind) {
            ids.replaced.push(kind);
        }
    }

    fn mint<H: Host>(&self, host: &mut H, kind: IdKind, synthetic: bool) -> String {
        self.counters.add(host, Counter::Minted(kind), synthetic, 1);
        id::mint(host)
    }

    fn request_id<H: Host>(&self, host: &mut H, ids: &mut RequestIds) -> String {
        let header = self.config.request_id_header.as_str();
        match host.request_header(header) {
            Some(raw) => match id::validate(&raw) {
                Ok(valid) => valid.to_string(),
                Err(reason) => {
                    self.reject(host, IdKind::RequestId, RejectReason::Id(reason), ids);
                    let fresh = self.mint(host, IdKind::RequestId, ids.synthetic);
                    host.set_request_header(header, &fresh);
                    fresh
                }
            },
            // Envoy's connection manager normally sets the header before any filter runs; it is
            // absent only when `generate_request_id` is off.
            None => {
                let fresh = self.mint(host, IdKind::RequestId, ids.synthetic);
                host.set_request_header(header, &fresh);
                fresh
            }
        }
    }

    /// The first present header of `source` gives the id. An invalid value there is replaced by
    /// a minted id (in the same header); invalid values in lower-priority headers are removed.
    fn optional_id<H: Host>(
        &self,
        host: &mut H,
        kind: IdKind,
        source: &IdSource,
        ids: &mut RequestIds,
    ) -> Option<String> {
        let mut chosen: Option<String> = None;
        for header in &source.headers {
            let Some(raw) = host.request_header(header) else { continue };
            match id::validate(&raw) {
                Ok(valid) => {
                    if chosen.is_none() {
                        chosen = Some(valid.to_string());
                    }
                }
                Err(reason) => {
                    self.reject(host, kind, RejectReason::Id(reason), ids);
                    if chosen.is_none() {
                        let fresh = self.mint(host, kind, ids.synthetic);
                        host.set_request_header(header, &fresh);
                        chosen = Some(fresh);
                    } else {
                        host.remove_request_header(header);
                    }
                }
            }
        }
        if chosen.is_none() && source.mint_when_absent {
            if let Some(first) = source.headers.first() {
                let fresh = self.mint(host, kind, ids.synthetic);
                host.set_request_header(first, &fresh);
                chosen = Some(fresh);
            }
        }
        chosen
    }

    fn trace_context<H: Host>(&self, host: &mut H, ids: &mut RequestIds) -> Option<String> {
        let inbound = host.request_header("traceparent");
        let parsed = inbound.as_deref().and_then(trace_context::parse);
        if inbound.is_some() && parsed.is_none() {
            self.reject(host, IdKind::TraceParent, RejectReason::Format, ids);
        }
        match (self.config.trace_context, parsed) {
            (_, Some(valid)) => Some(valid.trace_id),
            (TraceContextMode::Observe, None) => {
                // Envoy's tracer (checked with the OpenTelemetry tracer on 1.40) does not start a
                // span for an unparsable traceparent and forwards it untouched; an invalid id must
                // never be passed on, so remove it. The tracer still owns every valid one.
                if inbound.is_some() {
                    host.remove_request_header("traceparent");
                    host.remove_request_header("tracestate");
                }
                None
            }
            (TraceContextMode::Manage, None) => {
                self.counters.add(host, Counter::Minted(IdKind::TraceParent), ids.synthetic, 1);
                let fresh = trace_context::mint(host, ids.sampled);
                host.set_request_header("traceparent", &fresh.header_value());
                // W3C Trace Context 3.3: with a new traceparent the old tracestate is meaningless.
                host.remove_request_header("tracestate");
                Some(fresh.trace_id)
            }
        }
    }

    fn baggage<H: Host>(&self, host: &mut H, synthetic: bool) {
        let Some(raw) = host.request_header("baggage") else { return };
        let allow = self.allowed_keys(host);
        let cfg = &self.config.baggage;
        let limits = Limits { max_members: cfg.max_members, max_bytes: cfg.max_bytes };
        let filtered = baggage::filter(&raw, limits, &|key| allow.iter().any(|k| k == key));
        for reason in baggage::Drop::ALL {
            self.counters.add(host, Counter::BaggageStripped(reason), synthetic, filtered.dropped(reason));
        }
        match filtered.value {
            Some(value) if value.as_bytes() != raw.as_slice() => host.set_request_header("baggage", &value),
            Some(_) => {}
            None => host.remove_request_header("baggage"),
        }
    }

    /// The allow-list of the first destination that matches this request's cluster or authority.
    fn allowed_keys<H: Host>(&self, host: &H) -> &[String] {
        let cfg = &self.config.baggage;
        if cfg.destinations.is_empty() {
            return &cfg.default_allow_keys;
        }
        let cluster = host.property(&["xds", "cluster_name"]);
        let authority = host.request_header(":authority").map(|a| a.to_ascii_lowercase());
        let host_only = authority.as_deref().map(strip_port);
        for d in &cfg.destinations {
            let by_cluster = d.cluster.as_deref().is_some_and(|c| cluster.as_deref() == Some(c.as_bytes()));
            let by_authority = d.authority.as_deref().is_some_and(|a| {
                let a = a.to_ascii_lowercase();
                authority.as_deref() == Some(a.as_bytes()) || host_only == Some(a.as_bytes())
            });
            if by_cluster || by_authority {
                return &d.allow_keys;
            }
        }
        &cfg.default_allow_keys
    }
}

fn strip_port(authority: &[u8]) -> &[u8] {
    // `[v6]:port` or `host:port`; a bare IPv6 literal in brackets keeps its colons.
    match authority.iter().rposition(|&b| b == b':') {
        Some(colon) if !authority.get(colon..).unwrap_or_default().contains(&b']') => {
            authority.get(..colon).unwrap_or(authority)
        }
        _ => authority,
    }
}

fn write_filter_state<H: Host>(host: &mut H, ids: &RequestIds) {
    host.set_filter_state(fs::REQUEST_ID, ids.request_id.as_bytes());
    let optional = [
        (fs::CONVERSATION_ID, &ids.conversation_id),
        (fs::AGENT_ID, &ids.agent_id),
        (fs::PARENT_AGENT_ID, &ids.parent_agent_id),
        (fs::AGENT_RUN_ID, &ids.agent_run_id),
        (fs::TRACE_ID, &ids.trace_id),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            host.set_filter_state(key, value.as_bytes());
        }
    }
    host.set_filter_state(fs::SAMPLED, fs::flag(ids.sampled));
    host.set_filter_state(fs::SYNTHETIC, fs::flag(ids.synthetic));
    if !ids.replaced.is_empty() {
        let kinds: Vec<&str> = ids.replaced.iter().map(|k| k.label()).collect();
        host.set_filter_state(fs::IDS_REPLACED, kinds.join(",").as_bytes());
    }
}
