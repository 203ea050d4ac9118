//! Strict JSON configuration parsing.
//!
//! Every filter parses its plugin configuration with serde (`deny_unknown_fields`), then
//! validates and compiles it once in `on_configure`. A bad configuration becomes one
//! [`ConfigError`] that names the field and the reason, with every other error found in the same
//! pass in [`ConfigError::more`] (so a rollout shows all its mistakes at once, not one per try);
//! the adapter logs it as one line and returns `false`, so Envoy rejects the configuration
//! instead of half-applying it. `llmobs config check` prints the same errors, one a line.

use serde::de::DeserializeOwned;
use std::fmt;

/// Why a configuration was rejected. `field` is a dotted path (`baggage.max_members`), or `.`
/// for the document itself. The message never quotes a configured value: configuration can
/// hold rule patterns that security treats as sensitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub reason: String,
    /// The other errors found in the same configuration, in the order found (never nested).
    pub more: Vec<ConfigError>,
}

/// At most this many errors are kept per configuration: enough for any real mistake, bounded
/// for a hostile one.
pub const MAX_ERRORS: usize = 64;

impl ConfigError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { field: field.into(), reason: reason.into(), more: Vec::new() }
    }

    /// `Ok` when `errors` is empty, else one error carrying all of them (the first in front).
    pub fn collect(errors: Vec<ConfigError>) -> Result<(), ConfigError> {
        let mut all = errors.into_iter().flat_map(ConfigError::into_all);
        match all.next() {
            None => Ok(()),
            Some(mut first) => {
                first.more = all.take(MAX_ERRORS - 1).collect();
                Err(first)
            }
        }
    }

    /// This error and every one in [`more`](Self::more), each on its own.
    pub fn into_all(mut self) -> Vec<ConfigError> {
        let more = std::mem::take(&mut self.more);
        let mut all = vec![self];
        all.extend(more.into_iter().flat_map(ConfigError::into_all));
        all
    }

    /// The same errors with every field put under `section` (`pii_redaction.custom_rules[0]`).
    pub fn within(self, section: &str) -> ConfigError {
        let moved = self
            .into_all()
            .into_iter()
            .map(|e| {
                let field = if e.field == "." { section.to_string() } else { format!("{section}.{}", e.field) };
                ConfigError::new(field, e.reason)
            })
            .collect();
        ConfigError::collect(moved).err().unwrap_or_else(|| ConfigError::new(section, "invalid"))
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The line starts the same with one error or many, so a log search for "invalid
        // configuration: field" finds both; the count closes it.
        write!(f, "invalid configuration: field `{}`: {}", self.field, self.reason)?;
        for e in &self.more {
            write!(f, "; field `{}`: {}", e.field, e.reason)?;
        }
        if !self.more.is_empty() {
            write!(f, " ({} errors)", self.more.len() + 1)?;
        }
        Ok(())
    }
}

/// Parses `bytes` as `T`. An empty configuration means "all defaults" (Envoy passes an empty
/// buffer when `configuration` is unset).
///
/// Every structural error is reported, not only the first: serde stops at the first, so the
/// field it names is taken out and the document parsed again, until it parses or the error is
/// not a field that can be taken out (an array element, a missing field's parent is kept). A
/// JSON syntax error keeps its line and column, the only position there is.
pub fn parse_json<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ConfigError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let mut value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|err| ConfigError::new(".", format!("not valid JSON: {}", without_values(&err.to_string()))))?;
    let mut errors = Vec::new();
    loop {
        match serde_path_to_error::deserialize::<_, T>(&value) {
            Ok(parsed) if errors.is_empty() => return Ok(parsed),
            Ok(_) => break,
            Err(err) => {
                let path = err.path().clone();
                let field = match path.to_string() {
                    p if p.is_empty() || p == "?" => ".".to_string(),
                    p => p,
                };
                errors.push(ConfigError::new(field, strip_position(&err.into_inner().to_string())));
                if errors.len() >= MAX_ERRORS || !take_out(&mut value, &path) {
                    break;
                }
            }
        }
    }
    ConfigError::collect(errors)?;
    Err(ConfigError::new(".", "invalid"))
}

/// Removes the object member `path` ends with; false when it does not end with one.
fn take_out(value: &mut serde_json::Value, path: &serde_path_to_error::Path) -> bool {
    use serde_path_to_error::Segment;
    let segments: Vec<&Segment> = path.iter().collect();
    let Some((Segment::Map { key }, parents)) = segments.split_last() else { return false };
    let mut at = value;
    for segment in parents {
        let next = match segment {
            Segment::Map { key } => at.get_mut(key.as_str()),
            Segment::Seq { index } => at.get_mut(*index),
            _ => None,
        };
        match next {
            Some(next) => at = next,
            None => return false,
        }
    }
    at.as_object_mut().and_then(|o| o.shift_remove(key.as_str())).is_some()
}

fn strip_position(message: &str) -> String {
    let message = match message.rfind(" at line ") {
        Some(at) => message.get(..at).unwrap_or(message),
        None => message,
    };
    without_values(message)
}

/// serde quotes the offending value (`invalid type: string "…", expected f64`, ``unknown variant
/// `…` ``); configuration can hold patterns or names security treats as sensitive, so the value
/// is cut out and only its kind stays.
fn without_values(message: &str) -> String {
    for (open, close, kind) in [("string \"", "\", ", "string"), ("variant `", "`, ", "variant")] {
        if let Some(start) = message.find(open) {
            if let Some(len) = message.get(start + open.len()..).and_then(|rest| rest.find(close)) {
                let before = message.get(..start).unwrap_or_default();
                let after = message.get(start + open.len() + len + close.len() - 2..).unwrap_or_default();
                return format!("{before}{kind}{after}");
            }
        }
    }
    message.to_string()
}

/// A rate in `[0, 1]`.
pub fn check_rate(field: &str, value: f64) -> Result<(), ConfigError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::new(field, "must be a number from 0 to 1"))
    }
}

/// An HTTP header name as Envoy accepts it in configuration: lower-case token characters.
pub fn check_header_name(field: &str, name: &str) -> Result<(), ConfigError> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(ConfigError::new(field, "must be a lower-case header name (a-z, 0-9, '-', '_'), at most 128 characters"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Inner {
        size: u32,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Outer {
        rate: f64,
        inner: Inner,
    }

    #[test]
    fn empty_configuration_means_defaults() {
        let parsed: Outer = parse_json(b"  ").unwrap();
        assert_eq!(parsed.inner.size, 0);
    }

    #[test]
    fn unknown_field_names_the_field_and_its_parent() {
        let err = parse_json::<Outer>(br#"{"inner": {"sise": 3}}"#).unwrap_err();
        assert_eq!(err.field, "inner.sise");
        assert!(err.reason.starts_with("unknown field `sise`"), "{}", err.reason);
        assert!(!err.reason.contains("line"), "{}", err.reason);
    }

    #[test]
    fn wrong_type_names_the_nested_field() {
        let err = parse_json::<Outer>(br#"{"inner": {"size": "big"}}"#).unwrap_err();
        assert_eq!(err.field, "inner.size");
        assert!(err.reason.contains("invalid type"), "{}", err.reason);
    }

    #[test]
    fn errors_never_quote_the_configured_value() {
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        struct Modes {
            rate: f64,
            mode: Option<Mode>,
        }
        #[derive(Debug, Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum Mode {
            Manage,
        }
        let err = parse_json::<Modes>(br#"{"rate": "sk-secret-value"}"#).unwrap_err();
        assert_eq!(err.reason, "invalid type: string, expected f64");
        let err = parse_json::<Modes>(br#"{"mode": "sk-secret-value"}"#).unwrap_err();
        assert_eq!(err.reason, "unknown variant, expected `manage`");
    }

    #[test]
    fn trailing_garbage_is_rejected() {
        let err = parse_json::<Outer>(br#"{"rate": 1} x"#).unwrap_err();
        assert_eq!(err.field, ".");
    }

    #[test]
    fn display_is_one_line_naming_field_and_reason() {
        let err = ConfigError::new("sample_rate", "must be a number from 0 to 1");
        assert_eq!(err.to_string(), "invalid configuration: field `sample_rate`: must be a number from 0 to 1");
    }

    #[test]
    fn several_errors_are_one_line_that_starts_like_a_single_one_and_ends_with_the_count() {
        let err = ConfigError::collect(vec![ConfigError::new("a", "x"), ConfigError::new("b", "y")]).unwrap_err();
        assert_eq!(err.to_string(), "invalid configuration: field `a`: x; field `b`: y (2 errors)");
        assert_eq!(err.into_all().len(), 2);
        assert!(ConfigError::collect(Vec::new()).is_ok());
    }

    #[test]
    fn every_type_error_is_reported_not_only_the_first() {
        let err = parse_json::<Outer>(br#"{"rate": "x", "inner": {"size": -1, "sise": 2}, "extra": 1}"#).unwrap_err();
        let fields: Vec<String> = err.into_all().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["rate", "inner.size", "inner.sise", "extra"]);
    }

    #[test]
    fn rates_outside_the_unit_interval_are_rejected() {
        assert!(check_rate("r", 0.0).is_ok());
        assert!(check_rate("r", 1.0).is_ok());
        assert!(check_rate("r", 1.5).is_err());
        assert!(check_rate("r", f64::NAN).is_err());
    }

    #[test]
    fn header_names_must_be_lower_case_tokens() {
        assert!(check_header_name("h", "x-request-id").is_ok());
        assert!(check_header_name("h", "X-Request-Id").is_err());
        assert!(check_header_name("h", "").is_err());
        assert!(check_header_name("h", "a b").is_err());
    }
}
