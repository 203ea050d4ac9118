//! The token-accounting filter: which provider, operation and model answered, how many tokens
//! it cost, how it finished, how fast it streamed, and whether the stream completed.
//!
//! Observe-only: it copies request and response bytes into bounded parsers and never pauses or
//! changes a body. Request: provider and operation from the path, model and stream flag from
//! the JSON body. Response: one framer per content type (SSE, AWS event-stream, JSON array, or a
//! whole JSON body) feeding [`observer::Observation`]. At the end of the exchange (end of
//! stream, trailers, or, as the last fallback, the access-log callback) it records metrics and
//! writes the log fields to filter state, once.

pub mod config;
pub mod finish_reason;
pub mod inject;
pub mod observer;
pub mod provider;
pub mod usage;

use crate::config::ConfigError;
use crate::filter_state as fs;
use crate::host::{Host, MetricId, Stats};
use crate::id;
use crate::label::{BoundedLabel, OVERFLOW};
use crate::metric;
pub use crate::response::{End, Outcome, ParseFailure};
use crate::response::{Limits, ResponseTracker};
use config::TokenAccountingConfig;
use provider::{Detected, Wire};
use serde::Deserialize;

/// Everything known about one request/response exchange; owned by the adapter's stream context.
pub struct Exchange {
    detected: Option<Detected>,
    provider: String,
    started_ns: u64,
    tenant: Option<String>,
    request_body: Vec<u8>,
    request_over_limit: bool,
    request_done: bool,
    request_model: Option<String>,
    stream_requested: bool,
    /// Whether `stream_requested` is what the request said: its path decides (Gemini, Bedrock)
    /// or its body was read. Otherwise the log's stream flag falls back to the response framing.
    stream_known: bool,
    response: ResponseTracker,
    /// In the bundle, error normalization's tracker reads this response exactly as `response`
    /// would: it is fed instead, and handed over at the finish (`finish_led`).
    follows: bool,
    /// Request-side parse failures (the response's are in the tracker).
    failures: Vec<ParseFailure>,
    finished: bool,
    buffer_request: bool,
    injected: bool,
    stripper: Option<inject::UsageChunkStripper>,
    agent: crate::agent::AgentExchange,
    /// The bounded `prompt_version` label, decided once when the request was read
    /// ([`TokenAccounting::on_request_read`]), else at the finish.
    prompt_version_label: Option<String>,
}

impl Exchange {
    /// The adapter must buffer the request body (pause until its end) so it can be edited.
    pub fn buffers_request(&self) -> bool {
        self.buffer_request
    }

    /// The adapter must pass every response chunk through `on_response_body_rewrite`.
    pub fn rewrites_response(&self) -> bool {
        self.stripper.is_some()
    }

    /// Whether the request body is still read (the adapter skips the host call otherwise).
    pub fn wants_request_body(&self) -> bool {
        self.detected.is_some() && !self.request_done && !self.request_over_limit
    }

    /// Whether response bytes are still read.
    pub fn wants_response_body(&self) -> bool {
        !self.finished && !self.follows && self.response.wants_body()
    }

    fn wire(&self) -> Option<Wire> {
        self.detected.as_ref().map(|d| d.wire)
    }

    /// The response as read so far (shared with error normalization in the bundle).
    pub fn response(&self) -> &ResponseTracker {
        &self.response
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct RequestDoc {
    model: Option<String>,
    stream: Option<bool>,
}

/// An object whose repeated key counts once, the last (as the providers' JSON parsers read it,
/// and as a parsed `serde_json::Value` holds it: the bundle reads redaction's parse, which must
/// agree); a derived `Deserialize` would refuse the repeat and call the request malformed.
impl<'de> Deserialize<'de> for RequestDoc {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = RequestDoc;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a request object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<RequestDoc, M::Error> {
                let mut doc = RequestDoc { model: None, stream: None };
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match key.as_ref() {
                        "model" => doc.model = map.next_value()?,
                        "stream" => doc.stream = map.next_value()?,
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(doc)
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

/// What accounting reads from a request body, the model and the stream flag (`None`: the body
/// is malformed: not an object, a non-string model, a non-boolean stream). Read from the body
/// by accounting itself, or, in the bundle, from the document redaction already parsed
/// ([`RequestFacts::of`]), so a request redaction holds is neither copied nor parsed twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFacts(Option<RequestDoc>, Option<crate::agent::request::AgentRequest>);

impl RequestFacts {
    /// From a parsed document, with the same typing as a parse of the body.
    pub fn of(doc: &serde_json::Value) -> Self {
        RequestFacts(RequestDoc::deserialize(doc).ok(), Some(crate::agent::request::AgentRequest::read(doc)))
    }

    /// The typed read (which skips what it does not name, so a deep or not-UTF-8 field elsewhere
    /// does not stop it), and the agent reading from a parsed document, as [`Self::of`] reads
    /// it, so the separate filter and the bundle agree on the agent signals too.
    fn parse(body: &[u8]) -> Self {
        let agent = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .map(|doc| crate::agent::request::AgentRequest::read(&doc));
        RequestFacts(serde_json::from_slice(body).ok(), agent)
    }

    fn apply(&self, ex: &mut Exchange) {
        match &self.0 {
            Some(doc) => {
                if let Some(model) = doc.model.as_ref().filter(|m| !m.is_empty()) {
                    ex.request_model = Some(model.clone());
                }
                ex.stream_requested |= doc.stream.unwrap_or(false);
                ex.stream_known = true;
                if let Some(reading) = &self.1 {
                    ex.agent.on_request(reading.clone());
                }
            }
            None => ex.failures.push(ParseFailure::RequestJson),
        }
    }
}

/// The configured filter; one per plugin configuration, shared by every request in the VM.
#[derive(Debug)]
pub struct TokenAccounting {
    config: TokenAccountingConfig,
    models: BoundedLabel,
    tenants: BoundedLabel,
    overflow_model: MetricId,
    overflow_tenant: MetricId,
    handles: metric::Handles,
    agent: crate::agent::AgentSignals,
}

impl TokenAccounting {
    pub fn new<S: Stats>(config_json: &[u8], stats: &mut S) -> Result<Self, ConfigError> {
        let config = TokenAccountingConfig::parse(config_json)?;
        if let Some(prices) = &config.prices {
            crate::pricing::publish(stats, prices)?;
        }
        let define = |stats: &mut S, label: &str| {
            stats
                .define_counter(&metric::name("llmobs.label_overflow", &[("label", label)]))
                .map_err(|e| ConfigError::new(".", format!("cannot define metrics: {e}")))
        };
        let overflow_model = define(stats, "gen_ai.request.model")?;
        let overflow_tenant = define(stats, "tenant")?;
        Ok(Self {
            models: BoundedLabel::new(
                "llmobs.token_accounting.models",
                &config.model_label.allow,
                config.model_label.max_distinct,
            ),
            tenants: BoundedLabel::new(
                "llmobs.token_accounting.tenants",
                &config.tenant_label.allow,
                config.tenant_label.max_distinct,
            ),
            agent: crate::agent::AgentSignals::new(config.agent.clone()),
            config,
            overflow_model,
            overflow_tenant,
            handles: metric::Handles::default(),
        })
    }

    pub fn max_request_body_bytes(&self) -> usize {
        self.config.max_request_body_bytes
    }

    pub fn on_request_headers<H: Host>(&self, host: &mut H) -> Exchange {
        let (_, detected, provider) = provider::request_route(host, &self.config.providers);
        if detected.is_some() && self.config.request_identity_encoding {
            // Keep provider responses uncompressed so usage can be read (design.md, "Bodies").
            host.remove_request_header("accept-encoding");
        }
        let tenant = (!self.config.tenant_header.is_empty())
            .then(|| host.request_header(&self.config.tenant_header))
            .flatten()
            .and_then(|raw| id::validate(&raw).ok().map(str::to_string));
        let stream_from_path = detected.as_ref().is_some_and(|d| d.path_stream);
        let detected_wire = detected.as_ref().map(|d| d.wire);
        // Gemini and Bedrock name a stream in the path (`streamGenerateContent`, `converse-stream`).
        let path_decides = matches!(detected_wire, Some(Wire::Gemini | Wire::BedrockConverse));
        let mut ex = Exchange {
            request_model: detected.as_ref().and_then(|d| d.path_model.clone()),
            detected,
            provider,
            started_ns: host.now_nanos(),
            tenant,
            request_body: Vec::new(),
            request_over_limit: false,
            request_done: false,
            stream_requested: stream_from_path,
            stream_known: path_decides,
            response: ResponseTracker::new(detected_wire),
            follows: false,
            failures: Vec::new(),
            finished: false,
            buffer_request: false,
            injected: false,
            stripper: None,
            agent: self.agent.on_request_headers(host),
            prompt_version_label: None,
        };
        // A SigV4-signed request (Bedrock through a signing client) must never be edited: the
        // signature covers the body. Only OpenAI-style chat bodies are ever edited.
        let signed = host.request_header("authorization").is_some_and(|a| a.starts_with(b"AWS4-HMAC-SHA256"));
        if self.config.inject_stream_usage && ex.wire() == Some(Wire::OpenAiChat) && !signed {
            ex.buffer_request = true;
            host.remove_request_header("content-length");
        }
        ex
    }

    /// The whole request body, buffered because [`Exchange::buffers_request`]: observes it and
    /// returns the edited body when `include_usage` was added.
    pub fn on_buffered_request<H: Host>(&self, host: &mut H, ex: &mut Exchange, body: &[u8]) -> Option<Vec<u8>> {
        ex.buffer_request = false;
        let asked = inject::asks_for_usage(body);
        self.on_request_body(ex, body, true);
        if asked || body.len() > self.config.max_request_body_bytes {
            return None;
        }
        let edited = inject::add_include_usage(body)?;
        ex.injected = true;
        self.handles.add(host, "llmobs.token_accounting.usage_injected", &[("gen_ai.provider.name", &ex.provider)], 1);
        Some(edited)
    }

    /// The request body grew past the limit while buffered: stop buffering and observe what
    /// arrived (Envoy forwards the buffered bytes unchanged when the adapter continues).
    pub fn stop_buffering_request(&self, ex: &mut Exchange, body_so_far: &[u8]) {
        ex.buffer_request = false;
        self.on_request_body(ex, body_so_far, false);
    }

    /// A response chunk of a stream whose usage chunk must be removed: observes the chunk and
    /// returns the bytes to send to the client instead.
    pub fn on_response_body_rewrite<H: Host>(
        &self,
        host: &mut H,
        ex: &mut Exchange,
        chunk: &[u8],
        end_of_stream: bool,
        lead: Option<&mut ResponseTracker>,
    ) -> Vec<u8> {
        let out = match &mut ex.stripper {
            Some(stripper) => stripper.push(chunk, end_of_stream),
            None => chunk.to_vec(),
        };
        self.on_response_body_led(host, ex, chunk, end_of_stream, lead);
        out
    }

    /// New request body bytes (only the new chunk; the adapter keeps the read offset).
    pub fn on_request_body(&self, ex: &mut Exchange, chunk: &[u8], end_of_stream: bool) {
        if ex.detected.is_none() || ex.request_done {
            return;
        }
        if !ex.request_over_limit {
            if ex.request_body.len() + chunk.len() > self.config.max_request_body_bytes {
                ex.request_over_limit = true;
                ex.request_body = Vec::new();
                ex.failures.push(ParseFailure::RequestOverLimit);
            } else {
                ex.request_body.extend_from_slice(chunk);
            }
        }
        if end_of_stream {
            self.on_request_end(ex);
        }
    }

    /// The whole request body, already parsed by another behaviour (see [`RequestFacts`]): the
    /// same result as [`Self::on_request_body`] with the body and its end, without a copy.
    /// `body_len` keeps the over-limit rule. False (nothing done) when the general path must
    /// decide: part of the body was already read, or it is over the limit.
    pub fn on_request_facts(&self, ex: &mut Exchange, facts: &RequestFacts, body_len: usize) -> bool {
        if ex.detected.is_none() || ex.request_done {
            return true;
        }
        if !ex.request_body.is_empty() || ex.request_over_limit || body_len > self.config.max_request_body_bytes {
            return false;
        }
        ex.request_done = true;
        facts.apply(ex);
        true
    }

    /// The request is complete (end of stream or trailers).
    pub fn on_request_end(&self, ex: &mut Exchange) {
        if ex.detected.is_none() || ex.request_done {
            return;
        }
        ex.request_done = true;
        if ex.request_over_limit || ex.request_body.is_empty() {
            return;
        }
        RequestFacts::parse(&ex.request_body).apply(ex);
        ex.request_body = Vec::new();
    }

    /// After each request callback: once the request is read, decides the exchange's bounded
    /// `prompt_version` label and writes it to filter state ([`fs::PROMPT_VERSION_LABEL`]), so
    /// error normalization, which finishes before accounting (it is later in the chain, and
    /// Envoy runs response filters in reverse), labels `llmobs.errors` with the same value.
    pub fn on_request_read<H: Host>(&self, host: &mut H, ex: &mut Exchange) {
        if !ex.request_done || ex.prompt_version_label.is_some() {
            return;
        }
        let label = self.agent.prompt_version_label(host, &ex.agent);
        host.set_filter_state(fs::PROMPT_VERSION_LABEL, label.as_bytes());
        ex.prompt_version_label = Some(label);
    }

    fn limits(&self) -> Limits {
        Limits {
            max_body_bytes: self.config.max_response_body_bytes,
            max_error_body_bytes: 64 << 10,
            max_frame_bytes: self.config.max_frame_bytes,
        }
    }

    pub fn on_response_headers<H: Host>(&self, host: &mut H, ex: &mut Exchange, end_of_stream: bool) {
        self.on_response_headers_led(host, ex, end_of_stream, None);
    }

    /// Response headers after another reader of the same response (the bundle's error
    /// normalization, which sees every chunk first): when its tracker reads this response
    /// exactly as this one would ([`ResponseTracker::reads_like`]), accounting follows it
    /// instead of parsing every stream event a second time.
    pub fn on_response_headers_led<H: Host>(
        &self,
        host: &mut H,
        ex: &mut Exchange,
        end_of_stream: bool,
        lead: Option<&mut ResponseTracker>,
    ) {
        ex.response.on_headers(host, ex.stream_requested, self.limits());
        ex.follows = lead.as_deref().is_some_and(|l| l.reads_like(&ex.response));
        if ex.injected && ex.response.streaming && ex.wire() == Some(Wire::OpenAiChat) {
            ex.stripper = Some(inject::UsageChunkStripper::new(self.config.max_frame_bytes));
            host.remove_response_header("content-length");
        }
        if end_of_stream {
            self.finish_led(host, ex, End::Complete, lead);
        }
    }

    /// New response body bytes (only the new chunk).
    pub fn on_response_body<H: Host>(&self, host: &mut H, ex: &mut Exchange, chunk: &[u8], end_of_stream: bool) {
        self.on_response_body_led(host, ex, chunk, end_of_stream, None);
    }

    /// New response body bytes, with the leading tracker when following one.
    pub fn on_response_body_led<H: Host>(
        &self,
        host: &mut H,
        ex: &mut Exchange,
        chunk: &[u8],
        end_of_stream: bool,
        lead: Option<&mut ResponseTracker>,
    ) {
        if ex.finished {
            return;
        }
        if !ex.follows && ex.response.wants_body() {
            ex.response.on_body(chunk, host.now_nanos());
        }
        // Finish at the stream's end marker, as error normalization does (it finished first
        // when this follows it): Envoy may end the span before the last callback.
        let read = if ex.follows { lead.as_deref() } else { Some(&ex.response) };
        let marker = read.is_some_and(|r| r.streaming && r.observation.terminated);
        if end_of_stream || marker {
            self.finish_led(host, ex, End::Complete, lead);
        }
    }

    /// Finishes the exchange once: records metrics and writes the log fields. Later calls do
    /// nothing, so the adapter may call it from every place an exchange can end.
    pub fn finish<H: Host>(&self, host: &mut H, ex: &mut Exchange, end: End) {
        self.finish_led(host, ex, end, None);
    }

    /// Finishes with the leading tracker when following one. The leader has finished first
    /// (error normalization precedes accounting at every end of an exchange in the bundle), so
    /// its tracker, fed every byte, is taken over whole and accounting's own, never fed, is
    /// left in its place.
    pub fn finish_led<H: Host>(&self, host: &mut H, ex: &mut Exchange, end: End, lead: Option<&mut ResponseTracker>) {
        if ex.finished {
            return;
        }
        if let (true, Some(lead)) = (ex.follows, lead) {
            std::mem::swap(&mut ex.response, lead);
        }
        ex.finished = true;
        self.on_request_end(ex);
        let ended_ns = host.now_nanos();
        ex.response.close();
        let synthetic = fs::synthetic(host);
        let synthetic_label = metric::flag(synthetic);
        let outcome = ex.response.outcome(host, end);
        let obs = &ex.response.observation;
        let usage = ex.wire().map(|w| obs.usage.normalize(w)).unwrap_or_default();
        let usage_source = if obs.usage.is_empty() { "missing" } else { "provider" };
        let operation = ex.detected.as_ref().map_or(OVERFLOW, |d| d.operation.label());
        let provider = ex.provider.clone();

        let status = ex.response.status;
        let error_type = self.error_type(host, status, outcome);
        // Bounded like the model: ties a regression to a prompt deploy (agent-signals.md).
        let prompt_version = match ex.prompt_version_label.take() {
            Some(label) => label,
            None => self.agent.prompt_version_label(host, &ex.agent),
        };
        self.handles.add(
            host,
            "llmobs.token_accounting.requests",
            &[
                ("gen_ai.provider.name", &provider),
                ("gen_ai.operation.name", operation),
                ("usage_source", usage_source),
                ("stream_outcome", outcome.label()),
                ("synthetic", synthetic_label),
                ("prompt_version", &prompt_version),
            ],
            1,
        );
        let failures: Vec<ParseFailure> = ex.failures.iter().chain(&ex.response.failures).copied().collect();
        for failure in failures {
            self.handles.add(
                host,
                "llmobs.token_accounting.parse_failures",
                &[("gen_ai.provider.name", &provider), ("reason", failure.label())],
                1,
            );
        }
        if ex.detected.is_none() {
            write_outcome_state(host, ex, outcome, usage_source);
            return;
        }
        if usage_source == "missing" && (200..300).contains(&status) {
            self.handles.add(
                host,
                "llmobs.token_accounting.usage_missing",
                &[
                    ("gen_ai.provider.name", &provider),
                    ("gen_ai.operation.name", operation),
                    ("synthetic", synthetic_label),
                ],
                1,
            );
        }

        let model = ex.request_model.clone().or_else(|| ex.response.observation.response_model.clone());
        // Masked like the log field (`model_of`): a label is written to every stats sink.
        let model = model.map(|m| crate::redaction::secrets::mask_loose(&m));
        let model_label = self.models.admit(host, model.as_deref());
        if model_label.overflowed {
            host.increment_counter(self.overflow_model, 1);
        }
        let tenant_label = self.tenants.admit(host, ex.tenant.as_deref());
        if tenant_label.overflowed {
            host.increment_counter(self.overflow_tenant, 1);
        }
        let base = [
            ("gen_ai.operation.name", operation),
            ("gen_ai.provider.name", provider.as_str()),
            ("gen_ai.request.model", model_label.value.as_str()),
            ("synthetic", synthetic_label),
            ("tenant", tenant_label.value.as_str()),
            ("prompt_version", prompt_version.as_str()),
        ];
        let [operation_l, provider_l, model_l, synthetic_l, tenant_l, prompt_version_l] = base;
        for (token_type, count) in usage.by_type() {
            // Arrays, not vectors: a repeat update allocates nothing (`metric::Handles`).
            let labels = [
                ("gen_ai.token.type", token_type),
                operation_l,
                provider_l,
                model_l,
                synthetic_l,
                tenant_l,
                prompt_version_l,
            ];
            self.handles.observe(host, "gen_ai.client.token.usage", &labels, count);
            // Envoy's histogram `_sum` is approximate (log-linear buckets); cost dashboards need
            // exact totals, so every count also goes to a counter.
            self.handles.add(host, "llmobs.token_accounting.tokens", &labels, count);
        }
        if let (Some(table), "provider") = (&self.config.prices, usage_source) {
            // Priced by the model that answered (a dated id; Azure's path names a deployment).
            let answered = ex.response.observation.response_model.as_deref().or(ex.request_model.as_deref());
            crate::pricing::record(table, &self.handles, host, &provider, answered, &usage, &base);
        }
        // Refusals and content filtering inside a 200 (Anthropic `refusal`, Gemini `SAFETY`,
        // OpenAI `content_filter`) show only here, not as errors: the refusal-rate alert's series.
        let finish =
            ex.response.observation.finish_raw.as_deref().map(|raw| finish_reason::normalize(self.wire_of(ex), raw));
        if let Some(reason) = finish {
            let labels = [
                ("gen_ai.provider.name", provider.as_str()),
                ("gen_ai.request.model", model_label.value.as_str()),
                ("finish_reason", reason),
                ("synthetic", synthetic_label),
                ("prompt_version", prompt_version.as_str()),
            ];
            self.handles.add(host, "llmobs.token_accounting.finish_reasons", &labels, 1);
        }
        let duration_ms = ended_ns.saturating_sub(ex.started_ns) / 1_000_000;
        let labels = [
            operation_l,
            provider_l,
            model_l,
            synthetic_l,
            tenant_l,
            prompt_version_l,
            ("error.type", error_type.as_str()),
        ];
        self.handles.observe(host, "gen_ai.client.operation.duration_ms", &labels, duration_ms);
        let first_content_ns = ex.response.first_content_ns;
        let ttfc_ms = first_content_ns.map(|t| t.saturating_sub(ex.started_ns) / 1_000_000);
        if ex.response.streaming {
            if let Some(ttfc) = ttfc_ms {
                self.handles.observe(host, "gen_ai.client.operation.time_to_first_chunk_ms", &base, ttfc);
            }
            if let (Some(first), chunks @ 2..) = (first_content_ns, ex.response.observation.content_chunks) {
                let per_chunk = ended_ns.saturating_sub(first) / 1_000_000 / (chunks - 1);
                self.handles.observe(host, "gen_ai.client.operation.time_per_output_chunk_ms", &base, per_chunk);
            }
        }

        write_outcome_state(host, ex, outcome, usage_source);
        let agent_labels = crate::agent::Labels {
            provider: &provider,
            model: &model_label.value,
            tenant: &tenant_label.value,
            synthetic: synthetic_label,
            status,
            input_tokens: usage.input,
            output_tokens: usage.output,
        };
        self.agent.finish(host, &ex.agent, agent_labels, &prompt_version, &ex.response.observation.tools);
        let obs = &ex.response.observation;
        let optional: [(&str, Option<String>); 13] = [
            (fs::REQUEST_MODEL, model_of(&ex.request_model)),
            (fs::RESPONSE_MODEL, model_of(&obs.response_model)),
            (
                fs::RESPONSE_ID,
                obs.response_id.as_deref().and_then(|v| id::validate(v.as_bytes()).ok()).map(str::to_string),
            ),
            (fs::USAGE_INPUT, usage.input.map(|v| v.to_string())),
            (fs::USAGE_OUTPUT, usage.output.map(|v| v.to_string())),
            (fs::USAGE_CACHE_READ, usage.cache_read.map(|v| v.to_string())),
            (fs::USAGE_CACHE_CREATION, usage.cache_creation.map(|v| v.to_string())),
            (fs::USAGE_REASONING, usage.reasoning.map(|v| v.to_string())),
            (fs::USAGE_TOTAL, usage.total.map(|v| v.to_string())),
            (fs::FINISH_REASON_RAW, obs.finish_raw.as_deref().map(metric::label_value)),
            (fs::FINISH_REASON, finish.map(str::to_string)),
            (fs::TIME_TO_FIRST_CHUNK_MS, ttfc_ms.map(|v| v.to_string())),
            (
                fs::OUTPUT_TOKENS_PER_SECOND,
                output_rate(usage.output, first_content_ns.unwrap_or(ex.started_ns), ended_ns),
            ),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                host.set_filter_state(key, value.as_bytes());
            }
        }
        // What the request asked (a stream answered with a JSON error is still a stream request);
        // the response's framing decides the stream outcome and the chunk timings above, and
        // stands in here only when the request could not be read.
        let stream = if ex.stream_known { ex.stream_requested } else { ex.response.streaming };
        host.set_filter_state(fs::STREAM, fs::flag(stream));
        // `unknown` without a valid tenant, as the metrics' label says, so log and metrics group
        // alike; a tenant the metrics fold into `_OTHER` keeps its name here.
        let tenant = ex.tenant.as_deref().unwrap_or(crate::label::UNKNOWN);
        host.set_filter_state(fs::TENANT, tenant.as_bytes());
    }

    fn wire_of(&self, ex: &Exchange) -> Wire {
        ex.wire().unwrap_or(Wire::OpenAiChat)
    }

    /// `error.type`: the error-normalization filter's class when it ran in the same chain;
    /// otherwise the status code for HTTP errors, or the stream outcome; empty on success.
    fn error_type<H: Host>(&self, host: &H, status: u16, outcome: Outcome) -> String {
        if let Some(class) = host.property(&[fs::ERROR_TYPE]).filter(|v| !v.is_empty()) {
            return metric::label_value(&String::from_utf8_lossy(&class));
        }
        match (status, outcome) {
            (400.., _) => status.to_string(),
            (_, Outcome::Completed) => String::new(),
            (_, other) => other.label().to_string(),
        }
    }
}

/// A model name for the log: at most 128 characters of `[A-Za-z0-9._:/@+-]` (model ids carry
/// `:` and `/`, as in `llama3:8b` or `meta-llama/Llama-3-8B`); anything else becomes `_`, so
/// the value cannot break the log line.
fn model_of(model: &Option<String>) -> Option<String> {
    model.as_deref().map(|m| {
        let cut: String = m.chars().take(128).collect();
        // A model name never holds an address or a key; a client that sends one there (a
        // mistake, or a probe) must not have it written raw to the log (issue 20's audit).
        let masked = crate::redaction::secrets::mask_loose(&cut);
        masked.chars().map(|c| if c.is_ascii_alphanumeric() || "._:/@+-".contains(c) { c } else { '_' }).collect()
    })
}

fn output_rate(output: Option<u64>, from_ns: u64, to_ns: u64) -> Option<String> {
    let output = output?;
    let seconds = to_ns.checked_sub(from_ns)? as f64 / 1e9;
    if seconds <= 0.0 {
        return None;
    }
    Some(format!("{:.1}", output as f64 / seconds))
}

fn write_outcome_state<H: Host>(host: &mut H, ex: &Exchange, outcome: Outcome, usage_source: &str) {
    if let Some(d) = &ex.detected {
        host.set_filter_state(fs::PROVIDER, ex.provider.as_bytes());
        host.set_filter_state(fs::OPERATION, d.operation.label().as_bytes());
    }
    host.set_filter_state(fs::USAGE_SOURCE, usage_source.as_bytes());
    host.set_filter_state(fs::STREAM_OUTCOME, outcome.label().as_bytes());
    if outcome != Outcome::Completed {
        // A failure the status code may not show (a cut or failed stream after a 200): the
        // access log keeps every request with this flag.
        host.set_filter_state(fs::ERROR, b"true");
    }
}

// Hand-written so that no body, prompt or provider message can reach a log through `{:?}`.
impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("provider", &self.provider)
            .field("request_body_bytes", &self.request_body.len())
            .field("response", &self.response)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}
