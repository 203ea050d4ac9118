//! The field block-list: JSON paths removed or replaced before anything is scanned, so the
//! values never reach a detector, a capture or a log.
//!
//! Syntax: `$` then `.key` or `[*]` (every array element) steps, e.g. `$.user`,
//! `$.metadata.user_id`, `$.messages[*].name`. Keys are 1-64 of `A-Za-z0-9_-`.

use super::config::{BlockedField, FieldAction};
use crate::config::ConfigError;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Every,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    steps: Vec<Step>,
    action: FieldAction,
}

pub const REPLACED: &str = "[REMOVED]";

impl FieldPath {
    pub fn parse(index: usize, field: &BlockedField) -> Result<Self, ConfigError> {
        let err =
            || ConfigError::new(format!("blocked_fields[{index}].path"), "must look like $.key, $.a.b or $.a[*].b");
        let mut rest = field.path.strip_prefix('$').ok_or_else(err)?;
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("[*]") {
                steps.push(Step::Every);
                rest = after;
            } else if let Some(after) = rest.strip_prefix('.') {
                let len = after.find(['.', '[']).unwrap_or(after.len());
                let key = after.get(..len).ok_or_else(err)?;
                let ok = (1..=64).contains(&key.len())
                    && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if !ok {
                    return Err(err());
                }
                steps.push(Step::Key(key.to_string()));
                rest = after.get(len..).ok_or_else(err)?;
            } else {
                return Err(err());
            }
        }
        if !matches!(steps.last(), Some(Step::Key(_))) {
            return Err(err());
        }
        Ok(Self { steps, action: field.action })
    }

    /// Removes or replaces every value at this path; returns how many.
    pub fn apply(&self, root: &mut Value) -> u64 {
        apply(root, &self.steps, self.action)
    }
}

fn apply(value: &mut Value, steps: &[Step], action: FieldAction) -> u64 {
    match steps {
        [] => 0,
        [Step::Key(key)] => {
            let Some(map) = value.as_object_mut() else { return 0 };
            match action {
                FieldAction::Remove => u64::from(map.shift_remove(key).is_some()),
                FieldAction::Replace => match map.get_mut(key) {
                    Some(v) => {
                        *v = Value::String(REPLACED.to_string());
                        1
                    }
                    None => 0,
                },
            }
        }
        [Step::Key(key), rest @ ..] => value.get_mut(key.as_str()).map_or(0, |v| apply(v, rest, action)),
        [Step::Every, rest @ ..] => match value.as_array_mut() {
            Some(items) => items.iter_mut().map(|v| apply(v, rest, action)).sum(),
            None => 0,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(p: &str, action: FieldAction) -> FieldPath {
        FieldPath::parse(0, &BlockedField { path: p.to_string(), action }).unwrap()
    }

    #[test]
    fn fields_are_removed_or_replaced_at_every_matching_place() {
        let mut body = json!({"user": "u-1", "metadata": {"user_id": "x"}, "messages": [{"name": "a", "content": "hi"}, {"content": "yo"}]});
        assert_eq!(path("$.user", FieldAction::Remove).apply(&mut body), 1);
        assert_eq!(path("$.metadata.user_id", FieldAction::Replace).apply(&mut body), 1);
        assert_eq!(path("$.messages[*].name", FieldAction::Remove).apply(&mut body), 1);
        assert_eq!(
            body,
            json!({"metadata": {"user_id": "[REMOVED]"}, "messages": [{"content": "hi"}, {"content": "yo"}]})
        );
    }

    #[test]
    fn malformed_paths_are_refused() {
        for bad in ["user", "$", "$.", "$.a..b", "$.a[0]", "$.a[*]", "$.a b"] {
            let field = BlockedField { path: bad.to_string(), action: FieldAction::Remove };
            assert!(FieldPath::parse(0, &field).is_err(), "{bad}");
        }
    }
}
