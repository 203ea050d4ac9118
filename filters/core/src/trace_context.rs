//! W3C Trace Context `traceparent` (https://www.w3.org/TR/trace-context/#traceparent-header).
//!
//! `version-traceid-parentid-flags`, lower-case hex: `00-<32>-<16>-<2>`. Version `ff` is
//! invalid; all-zero trace or parent ids are invalid. A later version may append fields after
//! a `-`, which version-00 parsers must accept and ignore (spec section 4.3).

use crate::host::Host;
use crate::id::hex;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: String,
    pub parent_id: String,
    pub flags: u8,
}

impl TraceParent {
    pub fn sampled(&self) -> bool {
        self.flags & 0x01 == 0x01
    }

    /// The version-00 header value.
    pub fn header_value(&self) -> String {
        format!("00-{}-{}-{:02x}", self.trace_id, self.parent_id, self.flags)
    }
}

fn is_lower_hex(s: &[u8]) -> bool {
    s.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

fn all_zero(s: &[u8]) -> bool {
    s.iter().all(|&b| b == b'0')
}

/// Parses a raw header value; `None` when it is not a valid traceparent.
pub fn parse(raw: &[u8]) -> Option<TraceParent> {
    let version = raw.get(0..2)?;
    let trace_id = raw.get(3..35)?;
    let parent_id = raw.get(36..52)?;
    let flags = raw.get(53..55)?;
    let dashes = [raw.get(2), raw.get(35), raw.get(52)];
    if dashes.iter().any(|d| *d != Some(&b'-')) {
        return None;
    }
    if !is_lower_hex(version) || version == b"ff" {
        return None;
    }
    let rest = raw.get(55..).unwrap_or_default();
    let exact_length_required = version == b"00";
    if exact_length_required && !rest.is_empty() {
        return None;
    }
    if !rest.is_empty() && rest.first() != Some(&b'-') {
        return None;
    }
    if !is_lower_hex(trace_id) || !is_lower_hex(parent_id) || !is_lower_hex(flags) {
        return None;
    }
    if all_zero(trace_id) || all_zero(parent_id) {
        return None;
    }
    let flags = u8::from_str_radix(std::str::from_utf8(flags).ok()?, 16).ok()?;
    Some(TraceParent {
        trace_id: std::str::from_utf8(trace_id).ok()?.to_string(),
        parent_id: std::str::from_utf8(parent_id).ok()?.to_string(),
        flags,
    })
}

/// A new root traceparent with random ids; `sampled` sets the sampled flag.
pub fn mint<H: Host>(host: &mut H, sampled: bool) -> TraceParent {
    let mut bytes = [0u8; 24];
    if !host.fill_random(&mut bytes) {
        // Keep the ids valid (non-zero) even without a random source.
        bytes = [1u8; 24];
    }
    let (trace, parent) = bytes.split_at(16);
    TraceParent { trace_id: hex(trace), parent_id: hex(parent), flags: u8::from(sampled) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_spec_example_parses() {
        let tp = parse(VALID.as_bytes()).unwrap();
        assert_eq!(tp.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.parent_id, "00f067aa0ba902b7");
        assert!(tp.sampled());
        assert_eq!(tp.header_value(), VALID);
    }

    #[test]
    fn invalid_traceparents_are_rejected() {
        for bad in [
            "",
            "00",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        ] {
            assert_eq!(parse(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn a_future_version_may_carry_extra_fields() {
        let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-anything";
        let tp = parse(future.as_bytes()).unwrap();
        assert!(!tp.sampled());
        assert_eq!(tp.header_value(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
    }

    #[test]
    fn every_truncation_of_a_valid_header_is_rejected_without_panicking() {
        for end in 0..VALID.len() {
            assert_eq!(parse(&VALID.as_bytes()[..end]), None);
        }
    }
}
