//! Bounded metric labels.
//!
//! A label from request data (a model name, a tenant) must not grow the number of series without
//! bound. Each such label has a policy: an allow-list (anything else becomes [`OVERFLOW`]), or a
//! cap on distinct values. The cap is held per Envoy process and VM id: the admitted values live
//! in proxy shared data, which every worker thread's VM with the same `vm_id` sees, updated with
//! compare-and-swap. Each VM also keeps its own copy of what it has seen admitted, so a known
//! value costs no host call. Values past the cap, or outside the allow-list, are reported as
//! `_OTHER` and counted in `llmobs.label_overflow`.

use crate::host::{Host, SharedDataError};
use crate::metric;
use std::cell::RefCell;
use std::collections::HashSet;

pub const OVERFLOW: &str = "_OTHER";
/// The label value when the request did not carry one.
pub const UNKNOWN: &str = "unknown";

#[derive(Debug)]
pub struct BoundedLabel {
    shared_key: String,
    allow: HashSet<String>,
    max_distinct: usize,
    admitted: RefCell<HashSet<String>>,
}

/// The label to use, and whether the value overflowed its policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub value: String,
    pub overflowed: bool,
}

impl BoundedLabel {
    /// `shared_key` names the shared-data entry (one per label and filter).
    pub fn new(shared_key: &str, allow: &[String], max_distinct: usize) -> Self {
        Self {
            shared_key: shared_key.to_string(),
            allow: allow.iter().map(|v| metric::label_value(v)).collect(),
            max_distinct,
            admitted: RefCell::new(HashSet::new()),
        }
    }

    pub fn admit<H: Host>(&self, host: &mut H, raw: Option<&str>) -> Admitted {
        let value = match raw.map(metric::label_value) {
            Some(v) if !v.is_empty() => v,
            _ => return Admitted { value: UNKNOWN.to_string(), overflowed: false },
        };
        if !self.allow.is_empty() {
            return if self.allow.contains(&value) {
                Admitted { value, overflowed: false }
            } else {
                Admitted { value: OVERFLOW.to_string(), overflowed: true }
            };
        }
        if self.admitted.borrow().contains(&value) {
            return Admitted { value, overflowed: false };
        }
        if self.admit_shared(host, &value) {
            self.admitted.borrow_mut().insert(value.clone());
            Admitted { value, overflowed: false }
        } else {
            Admitted { value: OVERFLOW.to_string(), overflowed: true }
        }
    }

    /// Adds `value` to the process-wide set unless the set is full. Retries a lost
    /// compare-and-swap a few times; after that the value overflows rather than loop.
    fn admit_shared<H: Host>(&self, host: &mut H, value: &str) -> bool {
        for _ in 0..8 {
            let (current, cas) = match host.shared_data(&self.shared_key) {
                Some((bytes, cas)) => (String::from_utf8(bytes).unwrap_or_default(), Some(cas)),
                None => (String::new(), None),
            };
            let known: Vec<&str> = current.split('\n').filter(|v| !v.is_empty()).collect();
            if known.contains(&value) {
                return true;
            }
            if known.len() >= self.max_distinct {
                return false;
            }
            let mut next = current.clone();
            next.push_str(value);
            next.push('\n');
            match host.set_shared_data(&self.shared_key, next.as_bytes(), cas) {
                Ok(()) => return true,
                Err(SharedDataError::CasMismatch) => continue,
                Err(SharedDataError::Failed) => return false,
            }
        }
        false
    }
}
