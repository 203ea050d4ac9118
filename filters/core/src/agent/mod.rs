//! Agent, tool and prompt signals (issue 16): where a request sits in its agent run, which tool
//! results it adds and whether they failed, whether it opens a session or carries the session's
//! first tool error, and which prompt id and version it runs.
//!
//! Pure logic behind small hooks in token accounting (its request reading and its finish): the
//! same reading serves the separate filter and the bundle. Only names, counts and flags leave
//! this module; never a prompt, a tool argument or a tool output.

pub mod config;
pub mod request;
pub mod response;

use crate::filter_state as fs;
use crate::host::Host;
use crate::id;
use crate::label::BoundedLabel;
use crate::metric;
use config::AgentConfig;
use request::AgentRequest;
use response::ResponseTools;

// Filter-state keys (the log fields `llmobs.agent.iteration`, ...; docs/log-schema.json).
pub const ITERATION: &str = "llmobs.agent.iteration";
pub const TOOL_RESULTS: &str = "llmobs.tool_results";
pub const TOOL_ERRORS: &str = "llmobs.tool_errors";
pub const TOOL_ERROR_NAMES: &str = "llmobs.tool_error_names";
pub const PROMPT_ID: &str = "llmobs.prompt.id";
pub const PROMPT_VERSION: &str = "llmobs.prompt.version";
pub const TOOL_CALLS: &str = "llmobs.tool_calls";
pub const SERVER_TOOL_ERRORS: &str = "llmobs.server_tool_errors";
/// `true` or `false` when `span_cap` is set: whether this iteration's span is kept.
pub const SPAN_KEEP: &str = "llmobs.span.keep";

/// The `depth` label: an agent run's iteration in powers of two, a fixed set of 8 values.
pub fn depth_label(iteration: u32) -> &'static str {
    match iteration {
        0 | 1 => "1",
        2 => "2",
        3..=4 => "3-4",
        5..=8 => "5-8",
        9..=16 => "9-16",
        17..=32 => "17-32",
        33..=64 => "33-64",
        _ => "65+",
    }
}

/// Tool names are cut to this many bytes before they become a label (OpenAI and Anthropic
/// allow at most 64 characters; longer ones are not a provider's).
const MAX_TOOL_NAME: usize = 64;
/// The log lists at most this many distinct names.
const MAX_LOGGED_NAMES: usize = 64;

/// A tool name masked by [`mask_loose`](crate::redaction::secrets::mask_loose) and cut to
/// [`MAX_TOOL_NAME`] characters. Masked before the cut, so a key or an address across the cut
/// leaves no fragment; the masking reads at most four times the cut (its work stays bounded
/// whatever the name's length).
fn masked_tool_name(name: &str) -> String {
    let cut = |s: &str, n: usize| s.char_indices().nth(n).and_then(|(i, _)| s.get(..i)).map_or(s.len(), str::len);
    let head = name.get(..cut(name, 4 * MAX_TOOL_NAME)).unwrap_or(name);
    let mut masked = crate::redaction::secrets::mask_loose(head);
    masked.truncate(cut(&masked, MAX_TOOL_NAME));
    masked
}

/// The configured signals; one per plugin configuration.
#[derive(Debug)]
pub struct AgentSignals {
    config: AgentConfig,
    prompt_versions: BoundedLabel,
    tool_names: BoundedLabel,
    handles: metric::Handles,
}

/// One exchange's signals: the prompt headers, then the request's reading.
#[derive(Debug, Default)]
pub struct AgentExchange {
    header_prompt_id: Option<String>,
    header_prompt_version: Option<String>,
    request: Option<AgentRequest>,
}

impl AgentExchange {
    /// The request body was read (`None`: over the limit, not JSON, not a provider API).
    pub fn on_request(&mut self, reading: AgentRequest) {
        self.request = Some(reading);
    }

    /// The prompt id: the header first, then the Responses `prompt`, then `metadata`; only a
    /// value valid as an id.
    pub fn prompt_id(&self) -> Option<&str> {
        valid(self.header_prompt_id.as_deref().or(self.request.as_ref().and_then(|r| r.prompt_id.as_deref())))
    }

    pub fn prompt_version(&self) -> Option<&str> {
        valid(self.header_prompt_version.as_deref().or(self.request.as_ref().and_then(|r| r.prompt_version.as_deref())))
    }
}

fn valid(raw: Option<&str>) -> Option<&str> {
    raw.and_then(|v| id::validate(v.as_bytes()).ok())
}

/// The labels accounting already decided for the exchange.
#[derive(Debug, Clone, Copy)]
pub struct Labels<'a> {
    pub provider: &'a str,
    pub model: &'a str,
    pub tenant: &'a str,
    pub synthetic: &'a str,
    /// The response status: agent metrics count answered requests only (2xx), so a client's
    /// retry of a failed call does not count its session or its tool results twice.
    pub status: u16,
    /// The exchange's input and output tokens, for the counters by depth.
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
}

impl AgentSignals {
    pub fn new(config: AgentConfig) -> Self {
        Self {
            prompt_versions: BoundedLabel::new(
                "llmobs.agent.prompt_versions",
                &config.prompt_version_label.allow,
                config.prompt_version_label.max_distinct,
            ),
            tool_names: BoundedLabel::new(
                "llmobs.agent.tool_names",
                &config.tool_name_label.allow,
                config.tool_name_label.max_distinct,
            ),
            config,
            handles: metric::Handles::default(),
        }
    }

    pub fn on_request_headers<H: Host>(&self, host: &H) -> AgentExchange {
        let header = |name: &str| {
            (!name.is_empty())
                .then(|| host.request_header(name))
                .flatten()
                .and_then(|raw| id::validate(&raw).ok().map(str::to_string))
        };
        AgentExchange {
            header_prompt_id: header(&self.config.prompt_id_header),
            header_prompt_version: header(&self.config.prompt_version_header),
            request: None,
        }
    }

    /// A bounded label value, counting an overflow in `llmobs.label_overflow`.
    fn bounded<H: Host>(&self, host: &mut H, label: &BoundedLabel, key: &str, raw: Option<&str>) -> String {
        let admitted = label.admit(host, raw);
        if admitted.overflowed {
            self.handles.add(host, "llmobs.label_overflow", &[("label", key)], 1);
        }
        admitted.value
    }

    /// The bounded `prompt_version` label of an exchange.
    pub fn prompt_version_label<H: Host>(&self, host: &mut H, ax: &AgentExchange) -> String {
        self.bounded(host, &self.prompt_versions, "prompt_version", ax.prompt_version())
    }

    /// Records the metrics and writes the log fields, once, at the end of the exchange.
    pub fn finish<H: Host>(
        &self,
        host: &mut H,
        ax: &AgentExchange,
        labels: Labels<'_>,
        prompt_version: &str,
        tools: &ResponseTools,
    ) {
        self.record_tool_calls(host, labels, prompt_version, tools);
        if let Some(v) = ax.prompt_id() {
            host.set_filter_state(PROMPT_ID, v.as_bytes());
        }
        if let Some(v) = ax.prompt_version() {
            host.set_filter_state(PROMPT_VERSION, v.as_bytes());
        }
        let Some(request) = &ax.request else { return };
        let results = request.new_results(&self.config);
        let mut error_names: Vec<String> = Vec::new();
        let mut errors = 0u64;
        let answered = (200..300).contains(&labels.status);
        for result in &results {
            let tool = self.tool_label(host, result.name);
            if answered {
                self.handles.add(
                    host,
                    "llmobs.agent.tool_results",
                    &[
                        ("gen_ai.provider.name", labels.provider),
                        ("gen_ai.tool.name", &tool),
                        ("prompt_version", prompt_version),
                        ("synthetic", labels.synthetic),
                    ],
                    1,
                );
            }
            let Some(source) = result.error else { continue };
            errors += 1;
            if answered {
                self.handles.add(
                    host,
                    "llmobs.agent.tool_errors",
                    &[
                        ("gen_ai.provider.name", labels.provider),
                        ("gen_ai.tool.name", &tool),
                        ("error_source", source.label()),
                        ("prompt_version", prompt_version),
                        ("synthetic", labels.synthetic),
                    ],
                    1,
                );
            }
            if !error_names.contains(&tool) && error_names.len() < MAX_LOGGED_NAMES {
                error_names.push(tool);
            }
        }
        let iteration = request.iteration();
        if answered {
            let session = [
                ("gen_ai.provider.name", labels.provider),
                ("gen_ai.request.model", labels.model),
                ("prompt_version", prompt_version),
                ("synthetic", labels.synthetic),
                ("tenant", labels.tenant),
            ];
            if request.starts_session() {
                self.handles.add(host, "llmobs.agent.sessions_started", &session, 1);
            }
            if errors > 0 && !request.history_has_error(&self.config) {
                self.handles.add(host, "llmobs.agent.sessions_first_tool_error", &session, 1);
            }
            let depth = [
                ("gen_ai.provider.name", labels.provider),
                ("prompt_version", prompt_version),
                ("synthetic", labels.synthetic),
                ("tenant", labels.tenant),
            ];
            self.handles.observe(host, "llmobs.agent.iteration", &depth, u64::from(iteration));
            self.record_depth(host, labels, iteration, tools);
        }
        if let Some(cap) = self.config.span_cap {
            host.set_filter_state(SPAN_KEEP, fs::flag(cap.keeps(iteration)));
        }
        host.set_filter_state(ITERATION, iteration.to_string().as_bytes());
        host.set_filter_state(TOOL_RESULTS, results.len().to_string().as_bytes());
        host.set_filter_state(TOOL_ERRORS, errors.to_string().as_bytes());
        if !error_names.is_empty() {
            host.set_filter_state(TOOL_ERROR_NAMES, error_names.join(",").as_bytes());
        }
    }

    /// A tool name as its bounded label, which is also what the log lists. A key or an address
    /// in the name (a client's mistake, or a probe) becomes its placeholder (`[SECRET]`, as a
    /// label `_SECRET_`) before it is admitted: the label set, the metric and the log never see
    /// it.
    fn tool_label<H: Host>(&self, host: &mut H, name: Option<&str>) -> String {
        let name = name.map(masked_tool_name);
        self.bounded(host, &self.tool_names, "gen_ai.tool.name", name.as_deref())
    }

    /// The tools the response asked for, and its server tools that failed.
    fn record_tool_calls<H: Host>(
        &self,
        host: &mut H,
        labels: Labels<'_>,
        prompt_version: &str,
        tools: &ResponseTools,
    ) {
        let answered = (200..300).contains(&labels.status);
        let mut by_name: Vec<(String, u64)> = Vec::new();
        for (name, kind) in &tools.calls {
            let tool = self.tool_label(host, Some(name));
            if answered {
                self.handles.add(
                    host,
                    "llmobs.agent.tool_calls",
                    &[
                        ("gen_ai.provider.name", labels.provider),
                        ("gen_ai.tool.name", &tool),
                        ("tool_type", kind.label()),
                        ("prompt_version", prompt_version),
                        ("synthetic", labels.synthetic),
                    ],
                    1,
                );
            }
            if let Some((_, count)) = by_name.iter_mut().find(|(n, _)| *n == tool) {
                *count += 1;
            } else if by_name.len() < MAX_LOGGED_NAMES {
                by_name.push((tool, 1));
            }
        }
        for name in &tools.server_errors {
            let tool = self.tool_label(host, Some(name));
            if answered {
                self.handles.add(
                    host,
                    "llmobs.agent.server_tool_errors",
                    &[
                        ("gen_ai.provider.name", labels.provider),
                        ("gen_ai.tool.name", &tool),
                        ("prompt_version", prompt_version),
                        ("synthetic", labels.synthetic),
                    ],
                    1,
                );
            }
        }
        if !by_name.is_empty() {
            let field: Vec<String> = by_name.iter().map(|(name, count)| format!("{name}={count}")).collect();
            host.set_filter_state(TOOL_CALLS, field.join(",").as_bytes());
        }
        if !tools.server_errors.is_empty() {
            host.set_filter_state(SERVER_TOOL_ERRORS, tools.server_errors.len().to_string().as_bytes());
        }
    }

    /// Requests, tool calls and tokens by agent-run depth: a runaway loop shows in a few
    /// counters without a span per iteration.
    fn record_depth<H: Host>(&self, host: &mut H, labels: Labels<'_>, iteration: u32, tools: &ResponseTools) {
        let depth = depth_label(iteration);
        let base = [("depth", depth), ("gen_ai.provider.name", labels.provider), ("synthetic", labels.synthetic)];
        self.handles.add(host, "llmobs.agent.depth.requests", &base, 1);
        let calls = tools.calls.len() as u64 + tools.calls_dropped;
        if calls > 0 {
            self.handles.add(host, "llmobs.agent.depth.tool_calls", &base, calls);
        }
        let [depth_l, provider_l, synthetic_l] = base;
        for (token_type, count) in [("input", labels.input_tokens), ("output", labels.output_tokens)] {
            if let Some(count) = count.filter(|c| *c > 0) {
                let with_type = [depth_l, ("gen_ai.token.type", token_type), provider_l, synthetic_l];
                self.handles.add(host, "llmobs.agent.depth.tokens", &with_type, count);
            }
        }
    }
}
