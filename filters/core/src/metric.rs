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
use std::hash::{BuildHasherDefault, Hash, Hasher};

/// Metric handles for label sets known only at request time (a model, a provider, an error
/// class), defined with the host once on first use and then found in this VM-local map, so no
/// request asks the host for a metric by name twice.
///
/// The map is keyed by the metric's base name and its label pairs as the caller passes them,
/// not by the encoded name: a repeat update hashes the parts and compares them with the entry's,
/// with no string built and nothing allocated (the name is encoded, and the parts copied, only
/// on first use). It holds one entry per distinct (metric, label values) the VM has updated, so
/// it is bounded as the series are: every label value comes from an enum, a flag, or a
/// [`crate::label::BoundedLabel`] (an allow-list or a cap on distinct values, then `_OTHER`).
#[derive(Debug, Default)]
pub struct Handles(RefCell<HashMap<u64, Vec<Entry>, BuildHasherDefault<Fx>>>);

/// One cached handle and the parts it was defined from (compared on lookup, so two label sets
/// with the same hash never share a handle).
#[derive(Debug)]
struct Entry {
    base: Box<str>,
    labels: Box<[(Box<str>, Box<str>)]>,
    histogram: bool,
    id: MetricId,
}

impl Entry {
    fn is(&self, base: &str, labels: &[(&str, &str)], histogram: bool) -> bool {
        self.histogram == histogram
            && *self.base == *base
            && self.labels.len() == labels.len()
            && self.labels.iter().zip(labels).all(|((k, v), (key, value))| **k == **key && **v == **value)
    }
}

/// The key of a (metric, labels) pair: FxHash's word-at-a-time mix (rustc's), not SipHash. The
/// keys are the filters' own metric names and bounded label values, so there is nothing for a
/// request to flood, and the hash is most of what a repeat update costs.
#[derive(Debug, Default, Clone, Copy)]
struct Fx(u64);

impl Fx {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            self.add(u64::from_le_bytes(w));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w.iter_mut().zip(rest).for_each(|(w, b)| *w = *b);
            self.add(u64::from_le_bytes(w));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Hashes the base and the label values only: a call site's label keys are fixed for its base,
/// so hashing them (the longer half of the bytes) would separate nothing. [`Entry::is`] still
/// compares the keys, so two label sets that differ only in a key get handles of their own.
fn key(base: &str, labels: &[(&str, &str)]) -> u64 {
    let mut hasher = Fx::default();
    base.hash(&mut hasher);
    labels.len().hash(&mut hasher);
    for (_, value) in labels {
        value.hash(&mut hasher);
    }
    hasher.finish()
}

impl Handles {
    fn get<H: Host>(&self, host: &mut H, base: &str, labels: &[(&str, &str)], histogram: bool) -> Option<MetricId> {
        let key = key(base, labels);
        if let Some(entry) = self.0.borrow().get(&key).and_then(|b| b.iter().find(|e| e.is(base, labels, histogram))) {
            return Some(entry.id);
        }
        let name = name(base, labels);
        let id = if histogram { host.define_histogram(&name) } else { host.define_counter(&name) }.ok()?;
        let entry = Entry {
            base: base.into(),
            labels: labels.iter().map(|(k, v)| (Box::from(*k), Box::from(*v))).collect(),
            histogram,
            id,
        };
        self.0.borrow_mut().entry(key).or_default().push(entry);
        Some(id)
    }

    /// Adds `delta` to the counter `base` with `labels` (encoded by [`name`] on first use).
    pub fn add<H: Host>(&self, host: &mut H, base: &str, labels: &[(&str, &str)], delta: u64) {
        if let Some(id) = self.get(host, base, labels, false) {
            host.increment_counter(id, delta);
        }
    }

    /// Records `value` in the histogram `base` with `labels`.
    pub fn observe<H: Host>(&self, host: &mut H, base: &str, labels: &[(&str, &str)], value: u64) {
        if let Some(id) = self.get(host, base, labels, true) {
            host.record_histogram(id, value);
        }
    }

    /// Adds `delta` to the counter `name`, an already encoded name from [`name`] (for a caller
    /// that builds it anyway; [`Handles::add`] spares a repeat update the building).
    pub fn count<H: Host>(&self, host: &mut H, name: String, delta: u64) {
        self.add(host, &name, &[], delta);
    }

    /// The number of handles held (one per distinct metric and label values used).
    pub fn len(&self) -> usize {
        self.0.borrow().values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
