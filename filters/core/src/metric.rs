//! Metric names with labels encoded for Envoy `stats_tags`.
//!
//! proxy-wasm has no label API, so a label travels inside the stat name as `.<key>=<value>;`
//! and the pack's `stats_tags` (`envoy/stats-config.yaml`) pull it back out with one regex per
//! key, `(\.<key>=([^;]*);)`. For example
//! `llmobs.correlation.ids_rejected.id=request_id;.reason=charset;.synthetic=false;`
//! shows in `/stats/prometheus` as
//! `llmobs_correlation_ids_rejected{id="request_id",reason="charset",synthetic="false"} 1`.
//!
//! Label values must come from a bounded set (an enum or an allow-list with an overflow value),
//! never from free text; [`label_value`] makes sure a value cannot break the encoding.

use crate::host::{Host, MetricId};
use std::cell::RefCell;
use std::collections::HashMap;

/// Metric handles for label sets known only at request time (a model, a provider, an error
/// class), defined with the host once on first use and then found in this VM-local map, so no
/// request asks the host for a metric by name twice.
#[derive(Debug, Default)]
pub struct Handles(RefCell<HashMap<String, MetricId>>);

impl Handles {
    fn get<H: Host>(&self, host: &mut H, name: String, histogram: bool) -> Option<MetricId> {
        if let Some(id) = self.0.borrow().get(&name) {
            return Some(*id);
        }
        let id = if histogram { host.define_histogram(&name) } else { host.define_counter(&name) }.ok()?;
        self.0.borrow_mut().insert(name, id);
        Some(id)
    }

    /// Adds `delta` to the counter `name` (an encoded name from [`name`]).
    pub fn count<H: Host>(&self, host: &mut H, name: String, delta: u64) {
        if let Some(id) = self.get(host, name, false) {
            host.increment_counter(id, delta);
        }
    }

    /// Records `value` in the histogram `name`.
    pub fn record<H: Host>(&self, host: &mut H, name: String, value: u64) {
        if let Some(id) = self.get(host, name, true) {
            host.record_histogram(id, value);
        }
    }
}

/// Builds `<base>.<k1>=<v1>;.<k2>=<v2>;...`.
pub fn name(base: &str, labels: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(base.len() + labels.len() * 24);
    out.push_str(base);
    for (key, value) in labels {
        out.push('.');
        out.push_str(key);
        out.push('=');
        push_label_value(&mut out, value);
        out.push(';');
    }
    out
}

/// A value safe inside the encoding: anything outside `[A-Za-z0-9._-]` (so `;` and `=` too)
/// becomes `_`, so a value can neither end its own tag early nor start another. Dots stay:
/// model names such as `claude-3.5-sonnet` keep their shape.
pub fn label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    push_label_value(&mut out, value);
    out
}

fn label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'
}

/// Appends [`label_value`]`(value)` to `out`. Names are built for every metric update of every
/// request, and almost every value is already safe: copied whole then, without a character walk
/// or a string of its own.
fn push_label_value(out: &mut String, value: &str) {
    if value.bytes().all(|b| label_char(char::from(b))) {
        out.push_str(value);
    } else {
        out.extend(value.chars().map(|c| if label_char(c) { c } else { '_' }));
    }
}

/// The label for a boolean flag.
pub fn flag(value: bool) -> &'static str {
    if value {
        "true"
    } else {
        "false"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_encoded_in_order() {
        assert_eq!(
            name("llmobs.correlation.ids_rejected", &[("id", "request_id"), ("reason", "charset")]),
            "llmobs.correlation.ids_rejected.id=request_id;.reason=charset;"
        );
    }

    #[test]
    fn a_value_cannot_inject_another_tag() {
        assert_eq!(name("m", &[("k", "a;.x=y")]), "m.k=a_.x_y;");
        assert_eq!(name("m", &[("model", "claude-3.5")]), "m.model=claude-3.5;");
    }

    #[test]
    fn every_character_outside_the_safe_set_becomes_one_underscore() {
        // One `_` per character, not per byte: `é` is two bytes.
        assert_eq!(label_value("gpt-4o é/mini 🙂"), "gpt-4o___mini__");
        assert_eq!(name("m", &[("a", "x y"), ("b", "ok.1_-")]), "m.a=x_y;.b=ok.1_-;");
        assert_eq!(label_value(""), "");
    }

    #[test]
    fn names_without_labels_are_the_base() {
        assert_eq!(name("llmobs.x", &[]), "llmobs.x");
    }
}
