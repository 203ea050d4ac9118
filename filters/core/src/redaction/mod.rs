//! The PII redaction filter: finds personal data and secrets in LLM requests and responses, and
//! redacts, pseudonymizes, blocks or counts them, so that nothing raw reaches a log sink and,
//! in traffic mode, nothing raw reaches the provider.
//!
//! - Detection: the built-in detectors ([`crate::pii`]) plus security's custom rules
//!   ([`rules`]), longest match first. Only conversation text is scanned, through the typed
//!   per-provider walk ([`crate::content`]); block-listed fields ([`fields`]) are removed or
//!   replaced before anything is scanned.
//! - Requests: in traffic mode the adapter buffers the body (up to `max_inspected_bytes`), this
//!   module rewrites it as a JSON value (so escaping and length are right) or refuses it with a
//!   structured 400; in telemetry mode it reads a copy and never changes a byte.
//! - Responses: SSE streams go through [`stream::StreamRedactor`] (hold-back window, events
//!   rewritten in place); JSON bodies are rewritten whole. After a 200, `block` can only replace
//!   content (`[BLOCKED:EMAIL]`), never the status.
//! - Telemetry: detection counts by entity, action and direction (never the text), a keyed
//!   system-prompt fingerprint, opt-in redacted content capture for sampled requests, and the
//!   active rule set's version and hash (a gauge and a log field).
//! - Trials: entities and rules with a `shadow` action are searched by a scanner of their own and
//!   only counted (`llmobs.pii.shadow_detections`), never mixed with the detections in force.
//!
//! Nothing here logs or stores a matched value: the only per-request copy of an original value is
//! the restore map (pseudonym -> original, traffic mode with `restore_pseudonyms`), which lives in
//! the exchange and is dropped with it.

pub mod config;
pub mod fields;
pub mod rules;
pub mod secrets;
pub mod stream;

use crate::config::ConfigError;
use crate::content::{self, Part};
use crate::evaluation::{Consent, Policy, Record, Skip};
use crate::filter_state as fs;
use crate::host::{Environment, Host, LogLevel, QueueError};
use crate::metric;
use crate::pii::{Detector, Entity};
use crate::pseudonym::Pseudonymizer;
use crate::token_accounting::provider::{self, Wire};
use crate::token_accounting::RequestFacts;
use base64::Engine;
use config::{Action, CapturePart, OverLimit, PiiRedactionConfig};
use fields::FieldPath;
use rules::Rules;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use stream::{Edit, StreamLimits, StreamRedactor};

/// The `kind` of a restore edit in the stream redactor (detections use their entity index).
const RESTORE_KIND: u16 = u16::MAX;
/// Custom rule `i` has kind `CUSTOM_BASE + i`.
const CUSTOM_BASE: u16 = 1000;
/// Captured completions are read this much longer than the cap, scrubbed, then cut, so a value
/// at the cap boundary is scrubbed whole before the cut.
const CAPTURE_SLACK: usize = 256;
/// Base64 characters a private key block needs after its BEGIN line to count as a key (the
/// built-in detector's bar for a closed block).
const MIN_KEY_BODY: usize = 16;
/// Scans of a checked capture after its first scrub before it is withheld.
const CHECK_ROUNDS: usize = 3;

/// What [`PiiRedaction::check_output`] made of a text.
#[derive(Debug)]
enum Checked {
    /// The scrubbed text held nothing more.
    Clean(String),
    /// The check masked what the scrub left (counted).
    Masked(String),
    /// Still not clean after every round: not written (counted).
    Withheld,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Builtin(Entity),
    Custom(usize),
}

impl Kind {
    fn code(self) -> u16 {
        match self {
            Kind::Builtin(e) => Entity::ALL.iter().position(|x| *x == e).map_or(0, |i| i as u16),
            Kind::Custom(i) => CUSTOM_BASE.saturating_add(u16::try_from(i).unwrap_or(0)),
        }
    }

    fn from_code(code: u16) -> Option<Kind> {
        if code >= CUSTOM_BASE {
            Some(Kind::Custom(usize::from(code - CUSTOM_BASE)))
        } else {
            Entity::ALL.get(usize::from(code)).copied().map(Kind::Builtin)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Side {
    Request,
    Response,
}

impl Side {
    fn label(self) -> &'static str {
        match self {
            Side::Request => "request",
            Side::Response => "response",
        }
    }
}

/// A detection in one piece of text (offsets only, never the text).
#[derive(Debug, Clone, Copy)]
struct Found {
    kind: Kind,
    start: usize,
    end: usize,
}

/// The configuration as canonical JSON (object keys sorted, no whitespace), what the rule-set
/// hash covers: the same rules hash the same in a separate filter and in a bundle section (which
/// reaches the filter re-serialized), whatever the formatting of the file they came from.
fn canonical_config(config_json: &[u8]) -> Vec<u8> {
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                out.push('{');
                for (i, (key, item)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(key.clone()).to_string());
                    out.push(':');
                    write(item, out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    // An empty configuration means all defaults, the same rules as `{}`.
    let value = serde_json::from_slice::<Value>(config_json).unwrap_or_else(|_| Value::Object(Default::default()));
    let mut out = String::new();
    write(&value, &mut out);
    out.into_bytes()
}

/// What the adapter does with a request body.
#[derive(Debug, PartialEq, Eq)]
pub enum RequestVerdict {
    /// Send it on unchanged.
    Forward,
    /// Send these bytes instead.
    Replace(Vec<u8>),
    /// Answer locally; the upstream is never called.
    Reject { status: u16, body: Vec<u8> },
}

enum ResponsePlan {
    None,
    Stream(Box<StreamRedactor>),
    Json { body: Vec<u8>, over_limit: bool },
}

/// One request/response exchange. Not `Debug`: it holds body bytes and the restore map.
pub struct Exchange {
    wire: Option<Wire>,
    /// Streaming chosen by the path (Gemini `streamGenerateContent`).
    path_stream: bool,
    /// A compressed body held only to be refused (`uninspectable: block`).
    refuse_uninspectable: bool,
    /// A body whose stated length is over the limit, refused at its first callback.
    refuse_over_limit: bool,
    buffer_request: bool,
    observe_request: bool,
    request_body: Vec<u8>,
    request_over_limit: bool,
    request_done: bool,
    response: ResponsePlan,
    rewrite_response: bool,
    /// Pseudonym -> original value, for `restore_pseudonyms`; never logged, dropped with the
    /// exchange.
    restore: HashMap<String, String>,
    detections: BTreeMap<(Side, Kind, Action), u64>,
    /// What the entities and rules on trial would have found (their `shadow` action is looked
    /// up when counted); nothing else in the exchange depends on it.
    shadow: BTreeMap<(Side, Kind), u64>,
    restored: u64,
    /// Stream releases forced by the hold-back caps (a value may have passed unseen).
    window_forced: u64,
    /// Time spent inspecting, per direction, in nanoseconds (the `inspect_us` histogram).
    request_ns: Option<u64>,
    response_ns: Option<u64>,
    blocked: Option<String>,
    changed: bool,
    over_limit: bool,
    skipped: Vec<(Side, &'static str)>,
    sampled: bool,
    /// Evaluation export: the consent an exported exchange has, or why it is not exported.
    eval: Option<Result<Consent, Skip>>,
    fingerprint: Option<String>,
    captures: BTreeMap<CapturePart, String>,
    /// What the last check of each written text did, when it did something: (part, result).
    capture_checks: Vec<(&'static str, &'static str)>,
    /// The model and stream flag of the request as it goes upstream, from this filter's parse
    /// (the bundle hands them to accounting instead of a second parse).
    request_facts: Option<RequestFacts>,
    finished: bool,
}

impl std::fmt::Debug for Exchange {
    // Only what is safe to print: no body bytes, no restore map.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("wire", &self.wire)
            .field("detections", &self.detections.len())
            .field("blocked", &self.blocked.is_some())
            .finish_non_exhaustive()
    }
}

impl Exchange {
    /// The adapter pauses the request until its end and hands the whole body to
    /// [`PiiRedaction::on_request_body`].
    pub fn buffers_request(&self) -> bool {
        self.buffer_request
    }

    /// The adapter copies request chunks into [`PiiRedaction::on_request_chunk`] (telemetry).
    pub fn observes_request(&self) -> bool {
        self.observe_request && !self.request_done && !self.request_over_limit
    }

    /// The adapter pauses the response until its end (a JSON body rewritten whole).
    pub fn buffers_response(&self) -> bool {
        self.rewrite_response && matches!(self.response, ResponsePlan::Json { over_limit: false, .. })
    }

    /// Response chunks go to [`PiiRedaction::on_response_chunk`] (a stream or a copied JSON body).
    pub fn reads_response(&self) -> bool {
        !self.finished && !matches!(self.response, ResponsePlan::None)
    }

    /// The request is over the inspection limit already (its stated length): the adapter asks
    /// [`PiiRedaction::on_request_over_limit`] at the first body callback instead of holding.
    pub fn known_over_limit(&self) -> bool {
        self.refuse_over_limit && self.buffer_request
    }

    /// The request's model and stream flag from the parse this filter made, once.
    pub fn take_request_facts(&mut self) -> Option<RequestFacts> {
        self.request_facts.take()
    }

    /// Whether the adapter replaces response chunks with what `on_response_chunk` returns.
    pub fn rewrites_stream(&self) -> bool {
        self.rewrite_response && matches!(self.response, ResponsePlan::Stream(_))
    }
}

/// The configured filter; one per plugin configuration.
#[derive(Debug)]
pub struct PiiRedaction {
    config: PiiRedactionConfig,
    detector: Detector,
    custom: Rules,
    /// Entities and rules on trial (`shadow`): a scanner of their own, run beside the one in
    /// force and never mixed with it, so a trial cannot change a detection, an overlap, an
    /// edit, a verdict or a capture. `None` when nothing is on trial.
    shadow: Option<Shadow>,
    masks: Rules,
    fields: Vec<FieldPath>,
    pseudonymizer: Option<Pseudonymizer>,
    /// `<version>@<12 hex of the configuration's SHA-256>`.
    rule_set: String,
    handles: metric::Handles,
    /// Evaluation export, when enabled.
    eval: Option<Policy>,
}

/// The `rule_set_hash` label of `llmobs.pii.rule_set` and the log's rule set: 12 hex digits of
/// the SHA-256 of the canonical configuration. `llmobs rules hash` prints this.
pub fn rule_set_hash(config_json: &[u8]) -> String {
    crate::id::hex(Sha256::digest(canonical_config(config_json)).get(..6).unwrap_or_default())
}

/// One detection in [`PiiRedaction::preview_request`]: offsets into the text given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    pub entity: String,
    /// The index in `custom_rules` of the rule that found it; `None` for a built-in detector.
    pub rule: Option<usize>,
    /// The action in force, or for a trial (`shadow`) the action on trial.
    pub action: Action,
    /// Found by an entity or rule on trial: counted only, changes nothing.
    pub shadow: bool,
    pub start: usize,
    pub end: usize,
}

/// The scanner of the entities and rules on trial.
#[derive(Debug)]
struct Shadow {
    detector: Detector,
    rules: Rules,
    private_keys: bool,
}

/// What the filter would do to one request text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    pub text: String,
    pub detections: Vec<Detection>,
    /// The entity a `block` action refuses the request for (traffic or both mode).
    pub refused_for: Option<String>,
}

/// `result`'s value, or `None` with its error kept in `errors`.
fn kept<T>(result: Result<T, ConfigError>, errors: &mut Vec<ConfigError>) -> Option<T> {
    result.map_err(|e| errors.push(e)).ok()
}

/// Envoy's shared-data key remembering the active rule-set gauge, so a reload zeroes the old one.
fn rule_set_key(plugin: &str) -> String {
    format!("llmobs.pii.rule_set.{plugin}")
}

impl PiiRedaction {
    pub fn new<H: Host + Environment>(config_json: &[u8], host: &mut H) -> Result<Self, ConfigError> {
        let config: PiiRedactionConfig = crate::config::parse_json(config_json)?;
        // Everything is checked before anything is refused, so one rollout shows every error.
        let mut errors = config.problems();
        let custom = kept(
            Rules::compile_some(
                "custom_rules",
                config.custom_rules.iter().map(|r| (r.pattern.as_str(), r.live() != Action::Off)),
            )
            .map_err(|e| {
                // A rule is an object: the error is in its `pattern`.
                let all = e.into_all().into_iter().map(|e| ConfigError::new(format!("{}.pattern", e.field), e.reason));
                ConfigError::collect(all.collect()).err().unwrap_or_else(|| ConfigError::new("custom_rules", "invalid"))
            }),
            &mut errors,
        );
        let masks = kept(
            Rules::compile("fingerprint.mask_patterns", config.fingerprint.mask_patterns.iter().map(String::as_str)),
            &mut errors,
        );
        let fields: Vec<Option<FieldPath>> =
            config.blocked_fields.iter().enumerate().map(|(i, f)| kept(FieldPath::parse(i, f), &mut errors)).collect();
        let fields: Option<Vec<FieldPath>> = fields.into_iter().collect();
        let pseudonymizer = match &config.pseudonym_key {
            Some(source) => kept(load_key(host, &source.env, &source.id).map(Some), &mut errors),
            None => Some(None),
        };
        // The trial rules' own alternation (each pattern compiled above already).
        let shadow_rules = if custom.is_some() && config.has_shadow() {
            kept(
                Rules::compile_some(
                    "custom_rules",
                    config.custom_rules.iter().map(|r| (r.pattern.as_str(), r.shadow.is_some())),
                ),
                &mut errors,
            )
        } else {
            None
        };
        ConfigError::collect(errors)?;
        let (Some(custom), Some(masks), Some(fields), Some(pseudonymizer)) = (custom, masks, fields, pseudonymizer)
        else {
            return Err(ConfigError::new(".", "invalid"));
        };
        let shadow = shadow_rules.map(|rules| {
            let on_trial: Vec<Entity> = Entity::ALL.into_iter().filter(|e| config.shadow_for(*e).is_some()).collect();
            Shadow {
                detector: Detector::new(&on_trial).with_phone_regions(config.phone_regions().unwrap_or_default()),
                rules,
                private_keys: config.shadow_for(Entity::PrivateKey).is_some(),
            }
        });
        let enabled: Vec<Entity> = Entity::ALL.into_iter().filter(|e| config.action_for(*e) != Action::Off).collect();
        let hash = rule_set_hash(config_json);
        let rule_set = format!("{}@{}", config.rule_set_version, hash);
        let filter = Self {
            detector: Detector::new(&enabled).with_phone_regions(config.phone_regions().unwrap_or_default()),
            custom,
            shadow,
            masks,
            fields,
            pseudonymizer,
            rule_set,
            handles: metric::Handles::default(),
            eval: Policy::new(&config.evaluation),
            config,
        };
        filter.publish_rule_set(host, &hash)?;
        Ok(filter)
    }

    /// Sets `llmobs.pii.rule_set{plugin,rule_set_version,rule_set_hash}` to 1 and the previous
    /// rule set's gauge (remembered in shared data) to 0, so exactly one series per plugin reads 1.
    fn publish_rule_set<H: Host>(&self, host: &mut H, hash: &str) -> Result<(), ConfigError> {
        let plugin = host.property(&["plugin_name"]).map(|p| String::from_utf8_lossy(&p).into_owned());
        let plugin = metric::label_value(plugin.as_deref().unwrap_or("default"));
        let name = metric::name(
            "llmobs.pii.rule_set",
            &[("plugin", &plugin), ("rule_set_version", &self.config.rule_set_version), ("rule_set_hash", hash)],
        );
        let key = rule_set_key(&plugin);
        if let Some((previous, _)) = host.shared_data(&key) {
            if previous != name.as_bytes() {
                if let Ok(old) = host.define_gauge(&String::from_utf8_lossy(&previous)) {
                    host.set_gauge(old, 0);
                }
            }
        }
        let gauge =
            host.define_gauge(&name).map_err(|e| ConfigError::new(".", format!("cannot define metrics: {e}")))?;
        host.set_gauge(gauge, 1);
        // A lost race means another worker published the same rule set at the same moment.
        let _ = host.set_shared_data(&key, name.as_bytes(), None);
        Ok(())
    }

    pub fn rule_set(&self) -> &str {
        &self.rule_set
    }

    /// Whether `entity` is a built-in entity's label or a custom rule's entity.
    pub fn defines(&self, entity: &str) -> bool {
        Entity::from_label(entity).is_some() || self.config.custom_rules.iter().any(|r| r.entity == entity)
    }

    /// Whether request bodies are rewritten (mode traffic or both, requests inspected).
    pub fn rewrites_requests(&self) -> bool {
        self.config.mode.rewrites() && self.config.direction.requests()
    }

    pub fn max_inspected_bytes(&self) -> usize {
        self.config.max_inspected_bytes
    }

    pub fn on_request_headers<H: Host>(&self, host: &mut H) -> Exchange {
        // Only the wire format matters here (provider names are token accounting's business).
        let detected = provider::detect(&provider::request_path(host));
        let wire = detected.as_ref().map(|d| d.wire);
        let mut ex = Exchange {
            wire,
            path_stream: detected.as_ref().is_some_and(|d| d.path_stream),
            refuse_uninspectable: false,
            refuse_over_limit: false,
            buffer_request: false,
            observe_request: false,
            request_body: Vec::new(),
            request_over_limit: false,
            request_done: false,
            response: ResponsePlan::None,
            rewrite_response: false,
            restore: HashMap::new(),
            detections: BTreeMap::new(),
            shadow: BTreeMap::new(),
            restored: 0,
            window_forced: 0,
            request_ns: None,
            response_ns: None,
            blocked: None,
            changed: false,
            over_limit: false,
            skipped: Vec::new(),
            // Read only where a capture could use it: one host call fewer per request.
            sampled: !self.config.capture.parts.is_empty()
                && host.property(&[fs::SAMPLED]).is_some_and(|v| v == b"true"),
            eval: None,
            fingerprint: None,
            captures: BTreeMap::new(),
            capture_checks: Vec::new(),
            request_facts: None,
            finished: false,
        };
        if let (Some(policy), Some(_)) = (&self.eval, wire) {
            ex.eval = Some(policy.select_request(host));
        }
        if wire.is_none() || !self.config.direction.requests() {
            return ex;
        }
        if host.request_header("content-encoding").is_some_and(|v| !v.eq_ignore_ascii_case(b"identity")) {
            ex.skipped.push((Side::Request, "compressed"));
            if self.config.mode.rewrites() && self.config.uninspectable == OverLimit::Block {
                // Refused at the end of the body (a reply from the headers callback would race
                // the router); the body is held, never forwarded.
                ex.buffer_request = true;
                ex.refuse_uninspectable = true;
            }
            return ex;
        }
        // A SigV4 signature covers the body: editing it breaks the request, unless Envoy's
        // aws_request_signing filter signs after this one (docs/filters/pii-redaction.md).
        let signed = host.request_header("authorization").is_some_and(|a| a.starts_with(b"AWS4-HMAC-SHA256"));
        let may_edit = !signed || self.config.signed_after_filter;
        if self.config.mode.rewrites() && may_edit {
            // A stated length over the limit is decided now. Holding such a body until it grows
            // past the limit lets one large read reach Envoy's own buffer limit first (seen with
            // a 10 MB request: Envoy reset the connection), which is Envoy's outcome, not the
            // policy's. (A chunked body of unknown length is still decided as it grows.)
            if stated_length(host.request_header("content-length")).is_some_and(|n| n > self.config.max_inspected_bytes)
            {
                match self.config.over_limit {
                    OverLimit::Pass => {
                        let _ = self.on_request_over_limit(host, &mut ex);
                    }
                    // Refused at the first body callback, before Envoy holds much of it.
                    OverLimit::Block => {
                        ex.buffer_request = true;
                        ex.refuse_over_limit = true;
                    }
                }
                return ex;
            }
            ex.buffer_request = true;
            host.remove_request_header("content-length");
        } else {
            if signed && self.config.mode.rewrites() {
                ex.skipped.push((Side::Request, "signed"));
            }
            ex.observe_request = true;
        }
        ex
    }

    /// Telemetry mode: a copy of the next request chunk.
    pub fn on_request_chunk(&self, ex: &mut Exchange, chunk: &[u8]) {
        if ex.request_body.len() + chunk.len() > self.config.max_inspected_bytes {
            ex.request_over_limit = true;
            ex.over_limit = true;
            ex.skipped.push((Side::Request, "over_limit"));
            ex.request_body = Vec::new();
            return;
        }
        ex.request_body.extend_from_slice(chunk);
    }

    /// Telemetry mode: the request ended; scans the copy.
    pub fn on_request_end<H: Host>(&self, host: &mut H, ex: &mut Exchange) {
        if ex.request_done || !ex.observe_request || ex.request_over_limit {
            return;
        }
        let body = std::mem::take(&mut ex.request_body);
        let _ = self.on_request_body(host, ex, &body);
    }

    /// Request trailers arrived while the body was held for rewriting: the body callbacks never
    /// saw its end (HTTP/2 requests with trailers, which no LLM SDK sends), so it was never
    /// scanned. It is uninspectable: refused under `uninspectable: block`, else passed and counted.
    pub fn on_request_trailers<H: Host>(&self, host: &mut H, ex: &mut Exchange) -> RequestVerdict {
        if !ex.buffer_request {
            self.on_request_end(host, ex);
            return RequestVerdict::Forward;
        }
        ex.buffer_request = false;
        ex.request_done = true;
        ex.skipped.push((Side::Request, "trailers"));
        self.refuse_uninspectable(ex).unwrap_or(RequestVerdict::Forward)
    }

    /// The 415 for a body the filter cannot read, when `uninspectable: block` (traffic mode).
    fn refuse_uninspectable(&self, ex: &mut Exchange) -> Option<RequestVerdict> {
        if !(self.config.mode.rewrites() && self.config.uninspectable == OverLimit::Block) {
            return None;
        }
        ex.blocked = Some("uninspectable".to_string());
        let message = "The gateway's data-protection policy cannot inspect this request body (compressed, not JSON, or with trailers), so it was not sent.";
        Some(RequestVerdict::Reject { status: 415, body: error_body(ex.wire, 415, "unsupported_body", message, None) })
    }

    /// The buffered request grew past `max_inspected_bytes`: the named policy decides.
    pub fn on_request_over_limit<H: Host>(&self, host: &mut H, ex: &mut Exchange) -> RequestVerdict {
        host.log(LogLevel::Debug, "llmobs pii_redaction: a request is over the inspection limit");
        ex.buffer_request = false;
        ex.request_done = true;
        ex.over_limit = true;
        ex.skipped.push((Side::Request, "over_limit"));
        match self.config.over_limit {
            OverLimit::Pass => RequestVerdict::Forward,
            OverLimit::Block => {
                ex.blocked = Some("over_limit".to_string());
                let message = format!(
                    "The request body is larger than the {} bytes the gateway's data-protection policy can inspect.",
                    self.config.max_inspected_bytes
                );
                RequestVerdict::Reject {
                    status: 413,
                    body: error_body(ex.wire, 413, "request_too_large", &message, None),
                }
            }
        }
    }

    /// The whole request body (traffic mode) or its copy (telemetry): scans, rewrites or refuses.
    pub fn on_request_body<H: Host>(&self, host: &mut H, ex: &mut Exchange, body: &[u8]) -> RequestVerdict {
        let started = host.now_nanos();
        let verdict = self.inspect_request(host, ex, body);
        *ex.request_ns.get_or_insert(0) += host.now_nanos().saturating_sub(started);
        verdict
    }

    fn inspect_request<H: Host>(&self, host: &mut H, ex: &mut Exchange, body: &[u8]) -> RequestVerdict {
        ex.buffer_request = false;
        ex.request_done = true;
        let Some(wire) = ex.wire else { return RequestVerdict::Forward };
        let parsed = if ex.refuse_uninspectable { None } else { serde_json::from_slice::<Value>(body).ok() };
        let Some(mut doc) = parsed else {
            if !ex.refuse_uninspectable {
                ex.skipped.push((Side::Request, "not_json"));
            }
            return self.refuse_uninspectable(ex).unwrap_or(RequestVerdict::Forward);
        };
        let facts = RequestFacts::of(&doc);
        let mut fields_changed = 0;
        for field in &self.fields {
            fields_changed += field.apply(&mut doc);
        }
        // Upstream gets the edited document only in traffic mode; text edits never touch the
        // model or the stream flag, a block-listed field may.
        let rewrites_fields = self.config.mode.rewrites() && fields_changed > 0;
        ex.request_facts = Some(if rewrites_fields { RequestFacts::of(&doc) } else { facts });
        let mut texts_changed = false;
        let mut system = Vec::new();
        let mut system_typed = Vec::new();
        let mut last_user = None;
        let mut found_total = Vec::new();
        // The scrubbed copies are made only when a capture or the fingerprint will read them.
        let wants_system = self.captures(ex, CapturePart::System);
        let wants_user = self.captures(ex, CapturePart::LastUser);
        content::visit_request(wire, &mut doc, &mut |part, text| {
            self.count_shadow(text, Side::Request, ex);
            let found = self.scan(text);
            if part == Part::System && wants_system {
                system.push(self.scrub(text, &found));
            }
            if part == Part::System && self.config.fingerprint.enabled {
                // Typed placeholders, never pseudonyms: one prompt version, one fingerprint,
                // whoever's email the prompt carries.
                system_typed.push(self.scrub_with(text, &found, false));
            }
            if part == Part::User && wants_user {
                last_user = Some(self.scrub(text, &found));
            }
            if found.is_empty() {
                return;
            }
            let wire_text = self.apply(text, &found, Side::Request, ex);
            found_total.extend(found.iter().map(|f| f.kind));
            if wire_text != *text {
                *text = wire_text;
                texts_changed = true;
            }
        });
        for kind in found_total {
            *ex.detections.entry((Side::Request, kind, self.action(kind))).or_default() += 1;
        }
        if fields_changed > 0 {
            self.handles.add(host, "llmobs.pii.fields_removed", &[], fields_changed);
        }
        self.record_prompt(ex, &system, &system_typed, last_user);
        if !self.config.mode.rewrites() {
            return RequestVerdict::Forward;
        }
        if let Some(entity) = &ex.blocked {
            let message = format!(
                "The request was refused by the gateway's data-protection policy: it contains a value of type {entity}."
            );
            return RequestVerdict::Reject {
                status: 400,
                body: error_body(ex.wire, 400, "pii_blocked", &message, Some(entity)),
            };
        }
        if !texts_changed && fields_changed == 0 {
            return RequestVerdict::Forward;
        }
        match serde_json::to_vec(&doc) {
            Ok(bytes) => {
                ex.changed = true;
                RequestVerdict::Replace(bytes)
            }
            Err(_) => RequestVerdict::Forward,
        }
    }

    /// Whether `part` is captured for this exchange (a capturing mode, and configured for a
    /// sampled request, or the prompt and completion of an exchange selected for evaluation).
    fn captures(&self, ex: &Exchange, part: CapturePart) -> bool {
        self.config.mode.captures()
            && (self.logs_capture(ex, part) || (matches!(ex.eval, Some(Ok(_))) && part != CapturePart::System))
    }

    /// Whether `part`'s capture goes to the log (filter state).
    fn logs_capture(&self, ex: &Exchange, part: CapturePart) -> bool {
        ex.sampled && self.config.capture.parts.contains(&part)
    }

    fn record_prompt(&self, ex: &mut Exchange, system: &[String], system_typed: &[String], last_user: Option<String>) {
        if self.config.fingerprint.enabled && !system_typed.is_empty() {
            if let Some(p) = &self.pseudonymizer {
                // Hashed, never written; checked like a capture all the same, so that a value
                // the detectors missed neither varies the fingerprint per user nor feeds it.
                let input = match self.check_output(&system_typed.join("\n"), false, usize::MAX, false) {
                    Checked::Clean(text) => Some(text),
                    Checked::Masked(text) => {
                        ex.capture_checks.push(("fingerprint", "masked"));
                        Some(text)
                    }
                    Checked::Withheld => {
                        ex.capture_checks.push(("fingerprint", "withheld"));
                        None
                    }
                };
                if let Some(input) = input {
                    let masked = self.masks.mask(&input, "\u{0}");
                    let normalized = masked.split_whitespace().collect::<Vec<_>>().join(" ");
                    ex.fingerprint = Some(p.fingerprint(&normalized));
                }
            }
        }
        for part in [CapturePart::System, CapturePart::LastUser] {
            if !self.captures(ex, part) {
                continue;
            }
            let text = match part {
                CapturePart::System if !system.is_empty() => system.join("\n"),
                CapturePart::LastUser => match &last_user {
                    Some(t) => t.clone(),
                    None => continue,
                },
                _ => continue,
            };
            self.store_capture(ex, part, &text, false);
        }
    }

    /// Writes a capture after [`check_output`](Self::check_output); what the check did is
    /// counted (`llmobs.pii.capture_checked`).
    fn store_capture(&self, ex: &mut Exchange, part: CapturePart, text: &str, cut_before: bool) {
        let label = match part {
            CapturePart::LastUser => "last_user",
            CapturePart::System => "system",
            CapturePart::Completion => "completion",
        };
        match self.check_output(text, cut_before, self.config.capture.max_bytes, true) {
            Checked::Clean(text) => {
                ex.captures.insert(part, text);
            }
            Checked::Masked(text) => {
                ex.capture_checks.push((label, "masked"));
                ex.captures.insert(part, text);
            }
            Checked::Withheld => {
                ex.capture_checks.push((label, "withheld"));
                ex.captures.remove(&part);
            }
        }
    }

    pub fn on_response_headers<H: Host>(&self, host: &mut H, ex: &mut Exchange) {
        let Some(wire) = ex.wire else { return };
        if !self.config.direction.responses() || ex.blocked.is_some() {
            return;
        }
        let status = host
            .response_header(":status")
            .and_then(|s| std::str::from_utf8(&s).ok().and_then(|s| s.parse::<u16>().ok()))
            .unwrap_or(0);
        if !(200..300).contains(&status) {
            return;
        }
        if host.response_header("content-encoding").is_some_and(|v| !v.eq_ignore_ascii_case(b"identity")) {
            ex.skipped.push((Side::Response, "compressed"));
            return;
        }
        let content_type = host.response_header("content-type").unwrap_or_default().to_ascii_lowercase();
        let rewrite = self.config.mode.rewrites();
        let event_stream =
            wire == Wire::BedrockConverse && content_type.starts_with(b"application/vnd.amazon.eventstream");
        if content_type.starts_with(b"text/event-stream") || event_stream {
            let s = &self.config.stream;
            let wants_completion = self.captures(ex, CapturePart::Completion);
            let limits = StreamLimits {
                window_bytes: s.window_bytes,
                max_held_events: s.max_held_events,
                max_held_bytes: s.max_held_bytes,
                max_event_bytes: self.config.max_inspected_bytes,
                capture_bytes: if wants_completion { self.config.capture.max_bytes + CAPTURE_SLACK } else { 0 },
                // Trials are counted on the stream's original text at its end.
                original_bytes: if self.shadow.is_some() { self.config.max_inspected_bytes } else { 0 },
            };
            let redactor = StreamRedactor::new(wire, limits);
            ex.response = ResponsePlan::Stream(Box::new(redactor));
            ex.rewrite_response = rewrite;
            if rewrite {
                // Rare on a stream, but a stated length would no longer be true.
                host.remove_response_header("content-length");
            }
        } else if content_type.starts_with(b"application/json") && ex.path_stream {
            // Gemini's streamGenerateContent without alt=sse: a JSON array sent element by
            // element; buffering it whole would stop the stream, so it passes (alt=sse is
            // rewritten as SSE).
            ex.skipped.push((Side::Response, "unsupported_stream"));
        } else if content_type.starts_with(b"application/json") {
            if stated_length(host.response_header("content-length"))
                .is_some_and(|n| n > self.config.max_inspected_bytes)
            {
                // Known too large: never held at all. Holding it until the limit would let one
                // large data frame push Envoy past its own buffer limit, and Envoy would reset
                // the response (seen with a 10 MB body).
                self.on_response_over_limit(ex);
                return;
            }
            ex.response = ResponsePlan::Json { body: Vec::new(), over_limit: false };
            ex.rewrite_response = rewrite;
            if rewrite {
                host.remove_response_header("content-length");
            }
        } else if content_type.starts_with(b"application/vnd.amazon.eventstream") {
            // An event stream on another wire (InvokeModelWithResponseStream): not inspected.
            ex.skipped.push((Side::Response, "unsupported_stream"));
        }
    }

    /// The next response chunk. For a stream: the bytes to send instead (held-back events are
    /// released later); `None` when the adapter forwards the chunk unchanged (telemetry, JSON).
    pub fn on_response_chunk<H: Host>(
        &self,
        host: &mut H,
        ex: &mut Exchange,
        chunk: &[u8],
        end_of_stream: bool,
    ) -> Option<Vec<u8>> {
        let started = host.now_nanos();
        let out = self.inspect_response_chunk(ex, chunk, end_of_stream);
        *ex.response_ns.get_or_insert(0) += host.now_nanos().saturating_sub(started);
        out
    }

    fn inspect_response_chunk(&self, ex: &mut Exchange, chunk: &[u8], end_of_stream: bool) -> Option<Vec<u8>> {
        match &mut ex.response {
            ResponsePlan::None => None,
            ResponsePlan::Json { body, over_limit } => {
                if !*over_limit {
                    if body.len() + chunk.len() > self.config.max_inspected_bytes {
                        *over_limit = true;
                        *body = Vec::new();
                        ex.over_limit = true;
                        ex.skipped.push((Side::Response, "over_limit"));
                    } else {
                        body.extend_from_slice(chunk);
                    }
                }
                if end_of_stream && !ex.rewrite_response {
                    let body = self.take_json(ex);
                    let _ = self.rewrite_json_response(ex, &body);
                }
                None
            }
            ResponsePlan::Stream(_) => {
                let out = self.stream_step(ex, Some(chunk), end_of_stream);
                ex.rewrite_response.then_some(out)
            }
        }
    }

    fn take_json(&self, ex: &mut Exchange) -> Vec<u8> {
        match &mut ex.response {
            ResponsePlan::Json { body, over_limit: false } => std::mem::take(body),
            _ => Vec::new(),
        }
    }

    /// The whole buffered JSON response (traffic mode): the bytes to send instead, if changed.
    pub fn on_response_body<H: Host>(&self, host: &mut H, ex: &mut Exchange, body: &[u8]) -> Option<Vec<u8>> {
        let started = host.now_nanos();
        ex.response = ResponsePlan::None;
        let out = self.rewrite_json_response(ex, body);
        *ex.response_ns.get_or_insert(0) += host.now_nanos().saturating_sub(started);
        out
    }

    /// The buffered JSON response grew past the limit: it passes unchanged (its status is
    /// already on its way), flagged and counted.
    pub fn on_response_over_limit(&self, ex: &mut Exchange) {
        ex.response = ResponsePlan::None;
        ex.over_limit = true;
        ex.skipped.push((Side::Response, "over_limit"));
    }

    fn rewrite_json_response(&self, ex: &mut Exchange, body: &[u8]) -> Option<Vec<u8>> {
        let wire = ex.wire?;
        // Most responses hold nothing to change: read borrowed, checked, done. Only a response
        // with a text to change, or one the borrowed read declines, is parsed into a `Value`
        // (which, with `preserve_order`, cost two thirds of this function on a plain chat).
        if let Ok(mut doc) = serde_json::from_slice::<content::Borrowed<'_>>(body) {
            if self.response_unchanged(wire, &mut doc, ex) {
                return None;
            }
        }
        let Ok(mut doc) = serde_json::from_slice::<Value>(body) else {
            if !body.is_empty() {
                ex.skipped.push((Side::Response, "not_json"));
            }
            return None;
        };
        let mut changed = false;
        let mut completion = None;
        let mut kinds = Vec::new();
        let wants_completion = self.captures(ex, CapturePart::Completion);
        content::visit_response(wire, &mut doc, &mut |part, text| {
            self.count_shadow(text, Side::Response, ex);
            let restores = self.restore_edits(text, ex);
            let found = self.scan(text);
            if wants_completion && completion.is_none() && part == Part::Assistant {
                // The text as the provider sent it, every detection replaced.
                completion = Some(self.scrub(text, &found));
            }
            if found.is_empty() && restores.is_empty() {
                return;
            }
            kinds.extend(found.iter().map(|f| f.kind));
            let mut edits: Vec<Edit> = self.edits(text, &found, Side::Response, ex);
            ex.restored += restores.len() as u64;
            edits.extend(restores);
            let new = apply_edits(text, &mut edits);
            if new != *text {
                *text = new;
                changed = true;
            }
        });
        for kind in kinds {
            *ex.detections.entry((Side::Response, kind, self.action(kind))).or_default() += 1;
        }
        if let Some(text) = completion {
            // Scanned again after the first replacements: a value the detector turned down in
            // context (a number right after a token ending in a digit, `Lz4 536-22-8714`, reads
            // as the tail of a longer number) is caught once its neighbour became a placeholder.
            // The detector's context rule is the real fix (closing note, follow-up).
            self.capture_completion(ex, &text, false);
        }
        if !(changed && ex.rewrite_response) {
            return None;
        }
        ex.changed = true;
        serde_json::to_vec(&doc).ok()
    }

    /// A response read borrowed: when none of its texts holds a detection or a pseudonym to
    /// restore, does what [`rewrite_json_response`](Self::rewrite_json_response)'s visit does
    /// with such texts (the trials' detections counted, the completion captured) and returns
    /// true; otherwise it changes nothing and returns false, for the rewrite to run.
    fn response_unchanged(&self, wire: Wire, doc: &mut content::Borrowed<'_>, ex: &mut Exchange) -> bool {
        let mut clean = true;
        let mut shadow = Vec::new();
        let mut completion = None;
        let wants_completion = self.captures(ex, CapturePart::Completion);
        content::visit_response(wire, doc, &mut |part, text| {
            if !clean || !self.scan(text).is_empty() || !self.restore_edits(text, ex).is_empty() {
                clean = false;
                return;
            }
            shadow.extend(self.shadow_scan(text).into_iter().map(|f| f.kind));
            if wants_completion && completion.is_none() && part == Part::Assistant {
                completion = Some(text.to_string());
            }
        });
        if !clean {
            return false;
        }
        for kind in shadow {
            *ex.shadow.entry((Side::Response, kind)).or_default() += 1;
        }
        if let Some(text) = completion {
            self.capture_completion(ex, &text, false);
        }
        true
    }

    /// A captured completion, scrubbed (again) and checked: a stream's is the text as sent to
    /// the client, which may hold restored originals or counted-only values, and which ends in
    /// a cut when the stream was longer than the capture (`cut_before`).
    fn capture_completion(&self, ex: &mut Exchange, text: &str, cut_before: bool) {
        if self.captures(ex, CapturePart::Completion) {
            self.store_capture(ex, CapturePart::Completion, text, cut_before);
        }
    }

    fn stream_step(&self, ex: &mut Exchange, chunk: Option<&[u8]>, end: bool) -> Vec<u8> {
        let ResponsePlan::Stream(mut redactor) = std::mem::replace(&mut ex.response, ResponsePlan::None) else {
            return chunk.map(<[u8]>::to_vec).unwrap_or_default();
        };
        let mut out = Vec::new();
        let mut committed = Vec::new();
        {
            let mut editor = |text: &str| -> Vec<Edit> {
                let found = self.scan(text);
                let mut edits = self.edits(text, &found, Side::Response, ex);
                self.key_edits(text, &mut edits);
                edits.extend(self.restore_edits(text, ex));
                normalize(&mut edits);
                edits
            };
            if let Some(chunk) = chunk {
                let pushed = redactor.push(chunk, &mut editor);
                out.extend_from_slice(&pushed.bytes);
                committed.extend(pushed.committed);
            }
            if end {
                let pushed = redactor.finish(&mut editor);
                out.extend_from_slice(&pushed.bytes);
                committed.extend(pushed.committed);
            }
        }
        for code in committed {
            if code == RESTORE_KIND {
                ex.restored += 1;
            } else if let Some(kind) = Kind::from_code(code) {
                *ex.detections.entry((Side::Response, kind, self.action(kind))).or_default() += 1;
                if ex.rewrite_response && self.action(kind) != Action::Count {
                    ex.changed = true;
                }
            }
        }
        if end {
            if self.shadow.is_some() {
                let originals: Vec<String> = redactor.originals().map(str::to_string).collect();
                for text in &originals {
                    self.count_shadow(text, Side::Response, ex);
                }
            }
            let captured = redactor.captured().to_string();
            if !captured.is_empty() {
                self.capture_completion(ex, &captured, redactor.capture_truncated());
            }
            ex.response = ResponsePlan::None;
            ex.window_forced += redactor.stats().window_forced;
            // Events too big to hold (or a binary stream whose framing broke) passed unscanned.
            if redactor.stats().oversized_events > 0 {
                ex.skipped.push((Side::Response, "oversized_event"));
            }
        } else {
            ex.response = ResponsePlan::Stream(redactor);
        }
        out
    }

    /// Writes the log fields and counts detections, once per exchange.
    pub fn finish<H: Host>(&self, host: &mut H, ex: &mut Exchange) {
        if ex.finished {
            return;
        }
        // A stream torn down early still reports what it committed.
        if matches!(ex.response, ResponsePlan::Stream(_)) {
            let _ = self.stream_step(ex, None, true);
        }
        ex.finished = true;
        host.set_filter_state(fs::PII_RULE_SET, self.rule_set.as_bytes());
        if ex.wire.is_none() {
            return;
        }
        let mut per_entity: BTreeMap<(Side, String), u64> = BTreeMap::new();
        for ((side, kind, action), n) in &ex.detections {
            let entity = self.entity_label(*kind);
            self.handles.add(
                host,
                "llmobs.pii.detections",
                &[("entity", entity), ("action", action.label()), ("direction", side.label())],
                *n,
            );
            *per_entity.entry((*side, entity.to_string())).or_default() += n;
        }
        // Trials have a counter of their own: a `shadow` label on `llmobs.pii.detections` would
        // add them into every sum of that counter (dashboards, alerts) that does not filter it.
        for ((side, kind), n) in &ex.shadow {
            let Some(action) = self.shadow_action(*kind) else { continue };
            self.handles.add(
                host,
                "llmobs.pii.shadow_detections",
                &[("entity", self.entity_label(*kind)), ("action", action.label()), ("direction", side.label())],
                *n,
            );
        }
        for (side, reason) in &ex.skipped {
            self.handles.add(host, "llmobs.pii.skipped", &[("direction", side.label()), ("reason", reason)], 1);
        }
        for (side, ns) in [(Side::Request, ex.request_ns), (Side::Response, ex.response_ns)] {
            if let Some(ns) = ns {
                self.handles.observe(host, "llmobs.pii.inspect_us", &[("direction", side.label())], ns.div_ceil(1000));
            }
        }
        if ex.window_forced > 0 {
            self.handles.add(host, "llmobs.pii.stream_window_forced", &[], ex.window_forced);
        }
        if ex.restored > 0 {
            self.handles.add(host, "llmobs.pii.restored", &[], ex.restored);
        }
        for (part, result) in &ex.capture_checks {
            self.handles.add(host, "llmobs.pii.capture_checked", &[("part", part), ("result", result)], 1);
        }
        if let Some(reason) = &ex.blocked {
            let reason = match reason.as_str() {
                "over_limit" | "uninspectable" => reason.as_str(),
                _ => "entity",
            };
            self.handles.add(host, "llmobs.pii.blocked", &[("reason", reason)], 1);
        }
        let summary: Vec<String> =
            per_entity.iter().map(|((side, entity), n)| format!("{}:{entity}={n}", side.label())).collect();
        if !summary.is_empty() {
            host.set_filter_state(fs::PII_DETECTIONS, summary.join(",").as_bytes());
        }
        let outcome = if ex.blocked.is_some() {
            "blocked"
        } else if ex.changed {
            "redacted"
        } else if !ex.detections.is_empty() {
            "detected"
        } else if ex.over_limit {
            "over_limit"
        } else if !ex.skipped.is_empty() {
            "skipped"
        } else {
            "clean"
        };
        host.set_filter_state(fs::PII_OUTCOME, outcome.as_bytes());
        if let Some(fp) = &ex.fingerprint {
            host.set_filter_state(fs::PROMPT_FINGERPRINT, fp.as_bytes());
        }
        self.export(host, ex);
        for (part, text) in &ex.captures {
            if !self.logs_capture(ex, *part) {
                continue;
            }
            let key = match part {
                CapturePart::LastUser => fs::CAPTURE_LAST_USER,
                CapturePart::System => fs::CAPTURE_SYSTEM,
                CapturePart::Completion => fs::CAPTURE_COMPLETION,
            };
            host.set_filter_state(key, text.as_bytes());
        }
    }

    /// Evaluation export at the end of the exchange: the classification rule, then the record
    /// (the other behaviours' facts from filter state, this exchange's checked captures)
    /// encoded and handed to the exporter's queue. Counted either way; never fails the request.
    fn export<H: Host>(&self, host: &mut H, ex: &Exchange) {
        let (Some(policy), Some(decision)) = (&self.eval, ex.eval) else { return };
        let entities = ex.detections.keys().map(|(_, kind, _)| self.entity_label(*kind));
        let decision = decision.and_then(|consent| policy.classify(ex.blocked.is_some(), entities).map(|()| consent));
        let prompt = ex.captures.get(&CapturePart::LastUser);
        let completion = ex.captures.get(&CapturePart::Completion);
        let decision =
            decision.and_then(|c| if prompt.or(completion).is_some() { Ok(c) } else { Err(Skip::NoContent) });
        let consent = match decision {
            Ok(consent) => consent,
            Err(skip) => {
                self.handles.add(host, "llmobs.eval_export.exchanges", &[("result", skip.label())], 1);
                return;
            }
        };
        let record = Record {
            rule_set: self.rule_set.clone(),
            consent: Some(consent),
            prompt: prompt.cloned(),
            completion: completion.cloned(),
            ..Record::read(host)
        };
        let c = policy.config();
        let (result, dropped) = match host.enqueue_shared(&c.exporter_vm_id, &c.queue, &record.encode()) {
            Ok(()) => ("enqueued", None),
            Err(QueueError::NotFound) => ("dropped", Some("no_exporter")),
            Err(QueueError::Failed) => ("dropped", Some("enqueue_failed")),
        };
        self.handles.add(host, "llmobs.eval_export.exchanges", &[("result", result)], 1);
        if let Some(reason) = dropped {
            self.handles.add(host, "llmobs.eval_export.records_dropped", &[("reason", reason)], 1);
        }
    }

    /// What the filter does to one piece of request text (`llmobs redact`): the same scan,
    /// overlap rule and replacements as a request body. The text is what the provider would
    /// receive (unchanged in telemetry mode or when requests are not inspected); each detection
    /// names its entity, the custom rule that found it and its action.
    pub fn preview_request<H: Host>(&self, host: &mut H, text: &str) -> Preview {
        let mut ex = self.on_request_headers(host);
        let found = if self.config.direction.requests() { self.scan(text) } else { Vec::new() };
        let detections = found
            .iter()
            .map(|f| Detection {
                entity: self.entity_label(f.kind).to_string(),
                rule: match f.kind {
                    Kind::Custom(i) => Some(i),
                    Kind::Builtin(_) => None,
                },
                action: self.action(f.kind),
                shadow: false,
                start: f.start,
                end: f.end,
            })
            .chain(self.shadow_scan(text).into_iter().filter_map(|f| {
                Some(Detection {
                    entity: self.entity_label(f.kind).to_string(),
                    rule: match f.kind {
                        Kind::Custom(i) => Some(i),
                        Kind::Builtin(_) => None,
                    },
                    action: self.shadow_action(f.kind)?,
                    shadow: true,
                    start: f.start,
                    end: f.end,
                })
            }))
            .collect();
        let text = if self.config.mode.rewrites() {
            self.apply(text, &found, Side::Request, &mut ex)
        } else {
            text.to_string()
        };
        Preview { text, detections, refused_for: ex.blocked.take() }
    }

    // ---- detection and replacement ----

    fn action(&self, kind: Kind) -> Action {
        match kind {
            Kind::Builtin(e) => self.config.action_for(e),
            Kind::Custom(i) => self.config.custom_rules.get(i).map_or(Action::Count, |r| r.live()),
        }
    }

    /// The action on trial for what `kind` found, if it is on trial.
    fn shadow_action(&self, kind: Kind) -> Option<Action> {
        match kind {
            Kind::Builtin(e) => self.config.shadow_for(e),
            Kind::Custom(i) => self.config.custom_rules.get(i).and_then(|r| r.shadow),
        }
    }

    /// What the entities and rules on trial find in `text`, without overlaps among themselves
    /// (the same rule as [`scan`](Self::scan)); empty when nothing is on trial.
    fn shadow_scan(&self, text: &str) -> Vec<Found> {
        match &self.shadow {
            Some(s) => scan_with(&s.detector, &s.rules, s.private_keys, text),
            None => Vec::new(),
        }
    }

    /// Counts the trials' detections in `text`: the only thing a trial does.
    fn count_shadow(&self, text: &str, side: Side, ex: &mut Exchange) {
        for f in self.shadow_scan(text) {
            *ex.shadow.entry((side, f.kind)).or_default() += 1;
        }
    }

    fn entity_label(&self, kind: Kind) -> &str {
        match kind {
            Kind::Builtin(e) => e.label(),
            Kind::Custom(i) => self.config.custom_rules.get(i).map_or("custom", |r| r.entity.as_str()),
        }
    }

    /// Built-in and custom detections, without overlaps: the earliest start wins, then the
    /// longest span (a custom rule inside an email is part of the email).
    fn scan(&self, text: &str) -> Vec<Found> {
        scan_with(&self.detector, &self.custom, self.private_keys_on(), text)
    }

    fn private_keys_on(&self) -> bool {
        self.config.action_for(Entity::PrivateKey) != Action::Off
    }

    /// The private key blocks of a stream's text tell the stream redactor their closing marker,
    /// so that a key whose BEGIN line the caps cut is still masked from the first byte held
    /// (stream module docs, [`Edit::closes_with`]). A closed block's detection gets its marker;
    /// an open block (its END not arrived yet) gets an edit that runs to the end of the text, so
    /// that the rest of the key is masked whatever the window ("Open values"), replacing any
    /// edit inside the block. Pseudonymizing a partial key means nothing: a typed placeholder
    /// stands for it.
    fn key_edits(&self, text: &str, edits: &mut Vec<Edit>) {
        if !self.private_keys_on() || !text.contains("-----BEGIN ") {
            return;
        }
        let kind = Kind::Builtin(Entity::PrivateKey);
        for block in secrets::private_key_blocks(text) {
            if !block.open {
                if let Some(e) = edits.iter_mut().find(|e| e.kind == kind.code() && e.start == block.start) {
                    e.closes_with = Some(block.closer);
                }
                continue;
            }
            let replacement = match self.action(kind) {
                Action::Count | Action::Off => None,
                Action::Block => Some(format!("[BLOCKED:{}]", self.entity_label(kind).to_ascii_uppercase())),
                Action::Redact | Action::Pseudonymize => Some(self.placeholder(kind)),
            };
            edits.retain(|e| e.end <= block.start);
            edits.push(Edit {
                start: block.start,
                end: text.len(),
                replacement,
                kind: kind.code(),
                closes_with: Some(block.closer),
            });
        }
    }

    /// The last check of a text before it is written to a log sink (a capture) or hashed (the
    /// fingerprint input), after assembly and after the cut: the detections replaced, then what
    /// the detectors turned down but a log must not hold anyway (an open private key block, even
    /// a bare BEGIN line; a glued address; a prefixed token of the wrong length), then the cut
    /// at `max` bytes, where the words a value could still continue into are dropped (also when
    /// the text came cut: `cut_before`). What remains is scanned again; text that is still not
    /// clean after a few rounds is withheld.
    fn check_output(&self, text: &str, cut_before: bool, max: usize, pseudonyms: bool) -> Checked {
        let mut out = self.scrub_with(text, &self.scan(text), pseudonyms);
        let mut masked = self.mask_loose(&mut out);
        let mut cut_here = cut_before;
        if out.len() > max {
            out = cut(&out, max).to_string();
            cut_here = true;
        }
        if cut_here {
            let keep = out.len().saturating_sub(stream::tail_len(&out));
            out.truncate(keep);
        }
        for _ in 0..CHECK_ROUNDS {
            let found = self.scan(&out);
            if found.is_empty() {
                let mut again = out.clone();
                if !self.mask_loose(&mut again) {
                    // A later round's pseudonym may be longer than what it replaced.
                    if out.len() > max {
                        out = cut(&out, max).to_string();
                        out.truncate(out.len().saturating_sub(stream::tail_len(&out)));
                    }
                    return if masked { Checked::Masked(out) } else { Checked::Clean(out) };
                }
                out = again;
            } else {
                out = self.scrub_with(&out, &found, pseudonyms);
                self.mask_loose(&mut out);
            }
            masked = true;
        }
        Checked::Withheld
    }

    /// Masks open private key blocks (from the BEGIN line on) and the loose look-alikes of
    /// [`secrets::loose_spans`]. Returns whether anything changed.
    fn mask_loose(&self, text: &mut String) -> bool {
        let mut edits: Vec<Edit> = secrets::loose_spans(text)
            .into_iter()
            .map(|(start, end, loose)| Edit {
                start,
                end,
                replacement: Some(loose.placeholder().to_string()),
                ..Edit::default()
            })
            .collect();
        if let Some(block) = secrets::private_key_blocks(text).into_iter().find(|b| b.open) {
            edits.retain(|e| e.end <= block.start);
            let placeholder = self.placeholder(Kind::Builtin(Entity::PrivateKey));
            edits.push(Edit { start: block.start, end: text.len(), replacement: Some(placeholder), ..Edit::default() });
        }
        if edits.is_empty() {
            return false;
        }
        *text = apply_edits(text, &mut edits);
        true
    }

    fn placeholder(&self, kind: Kind) -> String {
        format!("[{}]", self.entity_label(kind).to_ascii_uppercase())
    }

    /// The text as the pack may record it: every detection replaced (pseudonyms where the action
    /// pseudonymizes, typed placeholders otherwise, counted-only values included).
    fn scrub(&self, text: &str, found: &[Found]) -> String {
        self.scrub_with(text, found, true)
    }

    /// [`scrub`](Self::scrub), with typed placeholders everywhere when `pseudonyms` is false.
    fn scrub_with(&self, text: &str, found: &[Found], pseudonyms: bool) -> String {
        let mut edits: Vec<Edit> = found
            .iter()
            .map(|f| {
                let replacement = match (self.action(f.kind), &self.pseudonymizer) {
                    (Action::Pseudonymize, Some(p)) if pseudonyms => {
                        p.pseudonym(self.entity_label(f.kind), text.get(f.start..f.end).unwrap_or_default())
                    }
                    _ => self.placeholder(f.kind),
                };
                Edit {
                    start: f.start,
                    end: f.end,
                    replacement: Some(replacement),
                    kind: f.kind.code(),
                    closes_with: None,
                }
            })
            .collect();
        apply_edits(text, &mut edits)
    }

    /// The edits the configured actions make on the wire.
    fn edits(&self, text: &str, found: &[Found], side: Side, ex: &mut Exchange) -> Vec<Edit> {
        let mut edits = Vec::with_capacity(found.len());
        for f in found {
            let value = text.get(f.start..f.end).unwrap_or_default();
            let replacement = match self.action(f.kind) {
                Action::Redact => Some(self.placeholder(f.kind)),
                Action::Pseudonymize => self.pseudonymizer.as_ref().map(|p| {
                    let pseudonym = p.pseudonym(self.entity_label(f.kind), value);
                    if side == Side::Request && self.config.restore_pseudonyms {
                        ex.restore.insert(pseudonym.clone(), value.to_string());
                    }
                    pseudonym
                }),
                Action::Block => {
                    // Telemetry mode never refuses a request; the detection is still counted.
                    if side == Side::Request && self.config.mode.rewrites() && ex.blocked.is_none() {
                        ex.blocked = Some(self.entity_label(f.kind).to_string());
                    }
                    Some(format!("[BLOCKED:{}]", self.entity_label(f.kind).to_ascii_uppercase()))
                }
                Action::Count | Action::Off => None,
            };
            edits.push(Edit { start: f.start, end: f.end, replacement, kind: f.kind.code(), closes_with: None });
        }
        edits
    }

    fn apply(&self, text: &str, found: &[Found], side: Side, ex: &mut Exchange) -> String {
        let mut edits = self.edits(text, found, side, ex);
        apply_edits(text, &mut edits)
    }

    /// Pseudonyms of this exchange's request that the model echoed back, mapped to the originals.
    fn restore_edits(&self, text: &str, ex: &Exchange) -> Vec<Edit> {
        if ex.restore.is_empty() || !self.config.restore_pseudonyms {
            return Vec::new();
        }
        let mut edits = Vec::new();
        for (pseudonym, original) in &ex.restore {
            let mut from = 0;
            while let Some(at) = text.get(from..).and_then(|t| t.find(pseudonym.as_str())) {
                let start = from + at;
                let end = start + pseudonym.len();
                edits.push(Edit {
                    start,
                    end,
                    replacement: Some(original.clone()),
                    kind: RESTORE_KIND,
                    closes_with: None,
                });
                from = end;
            }
        }
        edits
    }
}

/// Detections of `detector` and `custom` (and, with `private_keys`, the key blocks the detector
/// leaves) in `text`, without overlaps: the earliest start wins, then the longest span.
fn scan_with(detector: &Detector, custom: &Rules, private_keys: bool, text: &str) -> Vec<Found> {
    let mut found: Vec<Found> = detector
        .scan(text)
        .into_iter()
        .map(|m| Found { kind: Kind::Builtin(m.entity), start: m.start, end: m.end })
        .collect();
    let mut merge = false;
    if !custom.is_empty() {
        found.extend(custom.find(text).into_iter().map(|m| Found {
            kind: Kind::Custom(m.rule),
            start: m.start,
            end: m.end,
        }));
        merge = true;
    }
    if private_keys && text.contains("-----BEGIN ") {
        // Blocks the built-in detector leaves: labels beyond its list (`PGP PRIVATE KEY
        // BLOCK`) and blocks whose END is missing (cut by `max_tokens` or by the sender),
        // which run to the end of the text. A bare BEGIN line with no key after it is not one.
        for block in secrets::private_key_blocks(text) {
            if block.body_chars >= MIN_KEY_BODY {
                found.push(Found { kind: Kind::Builtin(Entity::PrivateKey), start: block.start, end: block.end });
                merge = true;
            }
        }
    }
    if merge {
        found.sort_by_key(|f| (f.start, std::cmp::Reverse(f.end)));
        let mut kept: Vec<Found> = Vec::with_capacity(found.len());
        for f in found {
            if kept.last().is_none_or(|last| f.start >= last.end) {
                kept.push(f);
            }
        }
        found = kept;
    }
    found
}

/// Sorts edits and drops any that overlap an earlier one (restores and detections never should).
fn normalize(edits: &mut Vec<Edit>) {
    edits.sort_by_key(|e| (e.start, std::cmp::Reverse(e.end)));
    let mut end = 0;
    edits.retain(|e| {
        let keep = e.start >= end;
        if keep {
            end = e.end;
        }
        keep
    });
}

/// `text` with `edits` applied (count-only edits leave their span as it is).
fn apply_edits(text: &str, edits: &mut Vec<Edit>) -> String {
    normalize(edits);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for e in edits.iter() {
        let Some(replacement) = &e.replacement else { continue };
        out.push_str(text.get(at..e.start).unwrap_or_default());
        out.push_str(replacement);
        at = e.end;
    }
    out.push_str(text.get(at..).unwrap_or_default());
    out
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// Reads and decodes the pseudonym key from the VM environment. Errors name the variable, never
/// its value.
fn load_key<E: Environment>(env: &E, var: &str, id: &str) -> Result<Pseudonymizer, ConfigError> {
    let raw = env.env_var(var).ok_or_else(|| {
        ConfigError::new(
            "pseudonym_key.env",
            "the VM environment has no such variable (list it in vm_config.environment_variables.host_env_keys)",
        )
    })?;
    let trimmed: Vec<u8> = raw.into_iter().filter(|b| !b.is_ascii_whitespace()).collect();
    let key = base64::engine::general_purpose::STANDARD
        .decode(&trimmed)
        .map_err(|_| ConfigError::new("pseudonym_key.env", "the variable is not base64 (standard alphabet)"))?;
    Pseudonymizer::new(id, &key)
        .map_err(|e| ConfigError::new(format!("pseudonym_key.{}", e.field.trim_start_matches("pseudonym.")), e.reason))
}

/// A structured error in the shape the provider's SDK parses, naming the entity type (never the
/// value).
fn error_body(wire: Option<Wire>, status: u16, code: &str, message: &str, entity: Option<&str>) -> Vec<u8> {
    let kind = match status {
        413 => "request_too_large",
        415 => "unsupported_body",
        _ => "invalid_request_error",
    };
    let detail = serde_json::json!({"policy": "pii_redaction", "entity": entity});
    let body = match wire {
        Some(Wire::AnthropicMessages) => {
            serde_json::json!({"type": "error", "error": {"type": kind, "message": message}, "llmobs": detail})
        }
        Some(Wire::Gemini) => serde_json::json!({
            "error": {"code": status, "message": message, "status": "INVALID_ARGUMENT"}, "llmobs": detail
        }),
        _ => serde_json::json!({
            "error": {"message": message, "type": kind, "code": code, "param": null}, "llmobs": detail
        }),
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// A body's length as its `content-length` header states it (`None`: absent or unreadable).
fn stated_length(header: Option<Vec<u8>>) -> Option<usize> {
    std::str::from_utf8(&header?).ok()?.trim().parse().ok()
}
