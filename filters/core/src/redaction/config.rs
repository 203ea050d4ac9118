//! The PII redaction filter's configuration: what security owns (entities, actions, custom
//! rules, blocked fields, the rule-set version) and what operators tune (mode, direction,
//! limits, capture). Documented field by field in `docs/configuration.md`.

use crate::config::{parse_json, ConfigError};
use crate::pii::Entity;
use serde::de::{self, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

/// Whether the filter scrubs what the pack records, what goes over the wire, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Bodies are untouched; detections are counted and captured content is redacted.
    #[default]
    Telemetry,
    /// The request sent upstream and the response sent to the client are rewritten.
    Traffic,
    Both,
}

impl Mode {
    pub fn rewrites(self) -> bool {
        matches!(self, Mode::Traffic | Mode::Both)
    }

    pub fn captures(self) -> bool {
        matches!(self, Mode::Telemetry | Mode::Both)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Request,
    Response,
    #[default]
    Both,
}

impl Direction {
    pub fn requests(self) -> bool {
        matches!(self, Direction::Request | Direction::Both)
    }

    pub fn responses(self) -> bool {
        matches!(self, Direction::Response | Direction::Both)
    }
}

/// What happens to a detected value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Replaced by a typed placeholder, `[EMAIL]`.
    Redact,
    /// Replaced by a keyed pseudonym, `EMAIL_k1_5f2b0c9ad1e84c73`.
    Pseudonymize,
    /// The request is refused with a structured 400 naming the entity type. In a response (after
    /// the status was sent) it can only replace the content: `[BLOCKED:EMAIL]`.
    Block,
    /// Counted, never changed.
    Count,
    /// Not searched at all.
    Off,
}

impl Action {
    pub fn label(self) -> &'static str {
        match self {
            Action::Redact => "redact",
            Action::Pseudonymize => "pseudonymize",
            Action::Block => "block",
            Action::Count => "count",
            Action::Off => "off",
        }
    }
}

/// A security-owned pattern: linear-time regex (the `regex` crate has no backtracking), size
/// limits checked at load.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomRule {
    /// The entity label it reports (`employee_id`): 1-32 of `a-z`, `0-9`, `_`.
    pub entity: String,
    pub pattern: String,
    /// The action in force. Required, unless `shadow` is given: a rule with only `shadow` is on
    /// trial and not in force at all.
    #[serde(default)]
    pub action: Option<Action>,
    /// Trial: what the rule would do (counted in `llmobs.pii.shadow_detections` with this action
    /// as its label); it changes nothing, not the body, the verdict or a capture.
    #[serde(default)]
    pub shadow: Option<Action>,
}

impl CustomRule {
    /// The action in force (`off` for a rule only on trial).
    pub fn live(&self) -> Action {
        self.action.unwrap_or(Action::Off)
    }
}

/// A built-in entity's entry in `entities`: an action (`"email": "redact"`), or
/// `{"action": ..., "shadow": ...}` to trial another action while `action` (default:
/// `default_action`) stays in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EntitySetting {
    pub action: Option<Action>,
    pub shadow: Option<Action>,
}

impl From<Action> for EntitySetting {
    fn from(action: Action) -> Self {
        Self { action: Some(action), shadow: None }
    }
}

impl<'de> Deserialize<'de> for EntitySetting {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Trial {
            #[serde(default)]
            action: Option<Action>,
            #[serde(default)]
            shadow: Option<Action>,
        }
        struct Setting;
        impl<'de> Visitor<'de> for Setting {
            type Value = EntitySetting;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an action (redact, pseudonymize, block, count, off) or {\"action\": ..., \"shadow\": ...}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EntitySetting, E> {
                Action::deserialize(v.into_deserializer()).map(EntitySetting::from)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<EntitySetting, A::Error> {
                let trial = Trial::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(EntitySetting { action: trial.action, shadow: trial.shadow })
            }
        }
        deserializer.deserialize_any(Setting)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FieldAction {
    /// The field is deleted from the body.
    #[default]
    Remove,
    /// The field's value becomes the string `[REMOVED]`.
    Replace,
}

/// A JSON path removed or replaced entirely, never scanned, never captured: `$.user`,
/// `$.metadata.user_id`, `$.messages[*].name`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockedField {
    pub path: String,
    #[serde(default)]
    pub action: FieldAction,
}

/// Where the pseudonym key comes from: an environment variable of the VM, never this file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySource {
    /// The VM environment variable holding the key, base64 (standard alphabet), >= 32 bytes
    /// decoded. Listed in `vm_config.environment_variables.host_env_keys`.
    pub env: String,
    /// Written into every pseudonym and fingerprint, so keys can rotate: 1-16 of `a-z0-9`.
    pub id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OverLimit {
    /// Forwarded unchanged and uninspected, flagged in the log and counted.
    #[default]
    Pass,
    /// Refused with a structured 413 (requests only: a response's status is already sent).
    Block,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    /// The longest value that can still be caught when spread over events; text this far back
    /// from the newest byte is released even mid-word.
    pub window_bytes: usize,
    pub max_held_events: usize,
    pub max_held_bytes: usize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self { window_bytes: 256, max_held_events: 256, max_held_bytes: 64 * 1024 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapturePart {
    LastUser,
    System,
    Completion,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    pub parts: Vec<CapturePart>,
    /// Per part, after redaction; cut on a character boundary.
    pub max_bytes: usize,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        Self { parts: Vec::new(), max_bytes: 1024 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct FingerprintConfig {
    pub enabled: bool,
    /// Dynamic parts of a system prompt (dates, user names) masked before hashing, so one
    /// prompt version keeps one fingerprint. Same engine and limits as custom rules.
    pub mask_patterns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PiiRedactionConfig {
    pub mode: Mode,
    pub direction: Direction,
    /// The action for every built-in entity not named in `entities`.
    pub default_action: Action,
    /// Per built-in entity label (`email`, `payment_card`, ...): its action, and optionally a
    /// `shadow` action on trial.
    pub entities: BTreeMap<String, EntitySetting>,
    /// The regions (ISO 3166 codes, or `"*"` for all 245) whose national phone writings are
    /// searched (`044 668 18 00`); international writings are searched for every region.
    pub phone_regions: Vec<String>,
    /// Whether a bare run of nine to eleven digits (`0328690788`, `8637734591`) counts as a
    /// phone when it is a valid national number of a `phone_regions` region and no word naming
    /// another number (`order`, `id`, `invoice`, ...) stands before it.
    pub phone_bare_runs: bool,
    pub custom_rules: Vec<CustomRule>,
    pub blocked_fields: Vec<BlockedField>,
    pub pseudonym_key: Option<KeySource>,
    /// Map pseudonyms the model echoes back to the original values, for the client only
    /// (traffic mode, requests pseudonymized in the same exchange).
    pub restore_pseudonyms: bool,
    /// The largest body inspected; keep it under Envoy's buffer limit (1 MiB by default), or
    /// Envoy answers 413/500 itself.
    pub max_inspected_bytes: usize,
    pub over_limit: OverLimit,
    /// Traffic mode, a request body the filter cannot read (compressed, or not JSON): `pass`
    /// (forwarded unscanned, counted) or `block` (refused with a structured 415).
    pub uninspectable: OverLimit,
    /// Edit requests to Bedrock even when SigV4-signed: only when Envoy's
    /// `aws_request_signing` filter signs after this one.
    pub signed_after_filter: bool,
    pub stream: StreamConfig,
    pub capture: CaptureConfig,
    pub fingerprint: FingerprintConfig,
    /// Evaluation export (docs/filters/evaluation-export.md): off by default.
    pub evaluation: crate::evaluation::config::EvaluationConfig,
    /// Security's name for this rule set, shown with its hash in the log and a gauge.
    pub rule_set_version: String,
}

impl Default for PiiRedactionConfig {
    fn default() -> Self {
        Self {
            mode: Mode::default(),
            direction: Direction::default(),
            default_action: Action::Redact,
            entities: BTreeMap::new(),
            phone_regions: crate::pii::DEFAULT_PHONE_REGIONS.iter().map(|r| r.to_string()).collect(),
            phone_bare_runs: true,
            custom_rules: Vec::new(),
            blocked_fields: Vec::new(),
            pseudonym_key: None,
            restore_pseudonyms: false,
            max_inspected_bytes: 512 * 1024,
            over_limit: OverLimit::default(),
            uninspectable: OverLimit::default(),
            signed_after_filter: false,
            stream: StreamConfig::default(),
            capture: CaptureConfig::default(),
            fingerprint: FingerprintConfig::default(),
            evaluation: crate::evaluation::config::EvaluationConfig::default(),
            rule_set_version: "unversioned".to_string(),
        }
    }
}

pub const MAX_CUSTOM_RULES: usize = 64;
const SHADOW_OFF: &str = "`off` has nothing to trial; shadow takes redact, pseudonymize, block or count";
pub const MAX_PATTERN_BYTES: usize = 1024;
/// Compiled-program limit per pattern; a pattern over it is refused at load, not at traffic.
pub const MAX_COMPILED_BYTES: usize = 256 * 1024;

fn valid_label(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl PiiRedactionConfig {
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        let config: Self = parse_json(bytes)?;
        ConfigError::collect(config.problems())?;
        Ok(config)
    }

    /// Every error in an otherwise well-typed configuration (patterns are compiled elsewhere).
    pub fn problems(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        for (label, setting) in &self.entities {
            let field = format!("entities.{}", crate::metric::label_value(label));
            if setting.action.is_none() && setting.shadow.is_none() {
                errors.push(ConfigError::new(&field, "needs `action`, `shadow` (an action on trial) or both"));
            }
            if setting.shadow == Some(Action::Off) {
                errors.push(ConfigError::new(format!("{field}.shadow"), SHADOW_OFF));
            }
            if Entity::from_label(label).is_none() {
                let field = format!("entities.{}", crate::metric::label_value(label));
                let reason = if self.custom_rules.iter().any(|r| &r.entity == label) {
                    "is a custom rule's entity; its action is set in that rule, `entities` lists built-in entities only"
                } else {
                    "is not a built-in entity (see docs/filters/pii-redaction.md); custom entities are defined in `custom_rules`"
                };
                errors.push(ConfigError::new(field, reason));
            }
        }
        if let Err(unknown) = self.phone_regions() {
            errors.push(ConfigError::new(
                "phone_regions",
                format!("{unknown:?} is not a region libphonenumber knows (ISO 3166 alpha-2, or \"*\")"),
            ));
        }
        if self.custom_rules.len() > MAX_CUSTOM_RULES {
            errors.push(ConfigError::new("custom_rules", format!("at most {MAX_CUSTOM_RULES} rules")));
        }
        for (i, rule) in self.custom_rules.iter().enumerate() {
            let field = format!("custom_rules[{i}].entity");
            if Entity::from_label(&rule.entity).is_some() {
                errors.push(ConfigError::new(
                    field,
                    "is a built-in entity's name; give the custom entity its own name, or set the built-in's action in `entities`",
                ));
            } else if !valid_label(&rule.entity, 32) {
                errors.push(ConfigError::new(field, "must be 1-32 characters of a-z, 0-9, '_'"));
            }
            if rule.action.is_none() && rule.shadow.is_none() {
                errors.push(ConfigError::new(
                    format!("custom_rules[{i}].action"),
                    "is required (or `shadow` alone, to trial the rule without it being in force)",
                ));
            }
            if rule.shadow == Some(Action::Off) {
                errors.push(ConfigError::new(format!("custom_rules[{i}].shadow"), SHADOW_OFF));
            }
        }
        if !valid_label(&self.rule_set_version.replace(['.', '-'], "_"), 64) {
            errors.push(ConfigError::new("rule_set_version", "must be 1-64 characters of a-z, 0-9, '.', '-', '_'"));
        }
        let uses_key = self.actions().any(|a| a == Action::Pseudonymize) || self.fingerprint.enabled;
        if uses_key && self.pseudonym_key.is_none() {
            errors.push(ConfigError::new(
                "pseudonym_key",
                "is required when an action is pseudonymize or the fingerprint is enabled",
            ));
        }
        if self.restore_pseudonyms && !self.mode.rewrites() {
            errors.push(ConfigError::new("restore_pseudonyms", "needs mode traffic or both"));
        }
        if self.max_inspected_bytes == 0 || self.max_inspected_bytes > 64 * 1024 * 1024 {
            errors.push(ConfigError::new("max_inspected_bytes", "must be 1 byte to 64 MiB"));
        }
        let s = &self.stream;
        if s.window_bytes < 64 || s.max_held_events == 0 || s.max_held_bytes < s.window_bytes {
            errors.push(ConfigError::new(
                "stream",
                "window_bytes must be >= 64, max_held_events >= 1, max_held_bytes >= window_bytes",
            ));
        }
        if self.capture.max_bytes > 16 * 1024 {
            errors.push(ConfigError::new("capture.max_bytes", "must be at most 16384"));
        }
        let defines = |e: &str| Entity::from_label(e).is_some() || self.custom_rules.iter().any(|r| r.entity == e);
        errors.extend(self.evaluation.problems(defines));
        if self.evaluation.enabled && !self.mode.captures() {
            errors.push(ConfigError::new(
                "evaluation.enabled",
                "needs mode telemetry or both: a record's texts are the scrubbed capture",
            ));
        }
        errors
    }

    /// Every action in force (built-in default, per-entity, custom); trials are not in force.
    pub fn actions(&self) -> impl Iterator<Item = Action> + '_ {
        std::iter::once(self.default_action)
            .chain(self.entities.values().filter_map(|s| s.action))
            .chain(self.custom_rules.iter().map(CustomRule::live))
    }

    /// The parsed `phone_regions` (an unknown code is refused at load).
    pub fn phone_regions(&self) -> Result<crate::pii::PhoneRegions, String> {
        crate::pii::PhoneRegions::from_codes(self.phone_regions.iter().map(String::as_str))
            .map(|r| r.with_bare_runs(self.phone_bare_runs))
    }

    pub fn action_for(&self, entity: Entity) -> Action {
        self.entities.get(entity.label()).and_then(|s| s.action).unwrap_or(self.default_action)
    }

    /// The action on trial for a built-in entity (`entities.<label>.shadow`), if any.
    pub fn shadow_for(&self, entity: Entity) -> Option<Action> {
        self.entities.get(entity.label()).and_then(|s| s.shadow)
    }

    /// Whether any entity or rule is on trial.
    pub fn has_shadow(&self) -> bool {
        self.entities.values().any(|s| s.shadow.is_some()) || self.custom_rules.iter().any(|r| r.shadow.is_some())
    }
}
