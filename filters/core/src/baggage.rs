//! W3C `baggage` (https://www.w3.org/TR/baggage/) with limits and a per-destination allow-list.
//!
//! Baggage is how tenant and user identifiers travel between services, and exactly what must
//! not leak to a third-party LLM provider. The correlation filter parses the inbound header with
//! the spec's limits (at most 180 members, 8192 bytes; excess dropped), keeps only the members
//! whose key the destination's policy allows, and strips the rest before egress.

/// Why a member was dropped; a bounded metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Drop {
    /// The destination's policy does not allow the key.
    Policy,
    /// Beyond the member or byte limit.
    OverLimit,
    /// Not a valid list member (bad key, bad value, not UTF-8 / not ASCII).
    Malformed,
}

impl Drop {
    pub const ALL: [Drop; 3] = [Drop::Policy, Drop::OverLimit, Drop::Malformed];

    pub fn label(self) -> &'static str {
        match self {
            Drop::Policy => "policy",
            Drop::OverLimit => "over_limit",
            Drop::Malformed => "malformed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_members: usize,
    pub max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // The W3C baggage limits (section 3.3.2).
        Self { max_members: 180, max_bytes: 8192 }
    }
}

/// The outcome of filtering one header: the value to send upstream (`None`: remove the header)
/// and how many members were dropped for each reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filtered {
    pub value: Option<String>,
    pub kept: usize,
    pub dropped_policy: u64,
    pub dropped_over_limit: u64,
    pub dropped_malformed: u64,
}

impl Filtered {
    pub fn dropped(&self, reason: Drop) -> u64 {
        match reason {
            Drop::Policy => self.dropped_policy,
            Drop::OverLimit => self.dropped_over_limit,
            Drop::Malformed => self.dropped_malformed,
        }
    }

    fn count(&mut self, reason: Drop) {
        match reason {
            Drop::Policy => self.dropped_policy += 1,
            Drop::OverLimit => self.dropped_over_limit += 1,
            Drop::Malformed => self.dropped_malformed += 1,
        }
    }
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_ows(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_ows(b)).map_or(start, |e| e + 1);
    s.get(start..end).unwrap_or_default()
}

/// RFC 7230 token characters.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `baggage-octet` from the spec: printable ASCII except space, `"`, `,`, `;` and `\`.
fn is_value_byte(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

/// A valid member in canonical form: `key=value;prop;prop=x`, whitespace around the parts
/// removed (the spec allows it; forwarding it would carry tabs upstream). `None` when malformed.
struct Member {
    key: String,
    canonical: Vec<u8>,
}

fn parse_member(member: &[u8]) -> Option<Member> {
    let eq = member.iter().position(|&b| b == b'=')?;
    let key = trim_ows(member.get(..eq)?);
    let after = member.get(eq + 1..)?;
    let mut parts = after.split(|&b| b == b';');
    let value = trim_ows(parts.next()?);
    if key.is_empty() || !key.iter().copied().all(is_token_byte) {
        return None;
    }
    if !value.iter().copied().all(is_value_byte) {
        return None;
    }
    let mut canonical = Vec::with_capacity(member.len());
    canonical.extend_from_slice(key);
    canonical.push(b'=');
    canonical.extend_from_slice(value);
    // Properties: `key` or `key=value`, each trimmed; anything else is malformed.
    for property in parts {
        let property = trim_ows(property);
        if property.is_empty() || !property.iter().all(|&b| b == b'=' || is_token_byte(b) || is_value_byte(b)) {
            return None;
        }
        canonical.push(b';');
        canonical.extend_from_slice(property);
    }
    Some(Member { key: std::str::from_utf8(key).ok()?.to_string(), canonical })
}

/// Filters an inbound `baggage` header for one destination.
pub fn filter(raw: &[u8], limits: Limits, allowed: &dyn Fn(&str) -> bool) -> Filtered {
    let mut out = Filtered::default();
    let mut kept: Vec<Vec<u8>> = Vec::new();
    let mut seen = 0usize;
    let mut bytes = 0usize;
    for member in raw.split(|&b| b == b',') {
        let member = trim_ows(member);
        if member.is_empty() {
            continue;
        }
        seen += 1;
        let separator = usize::from(seen > 1);
        if seen > limits.max_members || bytes + separator + member.len() > limits.max_bytes {
            out.count(Drop::OverLimit);
            continue;
        }
        bytes += separator + member.len();
        match parse_member(member) {
            None => out.count(Drop::Malformed),
            Some(m) if allowed(&m.key) => kept.push(m.canonical),
            Some(_) => out.count(Drop::Policy),
        }
    }
    out.kept = kept.len();
    if !kept.is_empty() {
        let joined = kept.join(&b","[..]);
        // Every kept byte passed the ASCII checks above.
        out.value = String::from_utf8(joined).ok();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(keys: &'static [&'static str]) -> impl Fn(&str) -> bool {
        move |k| keys.contains(&k)
    }

    #[test]
    fn allowed_keys_pass_and_others_are_stripped() {
        let f = filter(b"tenant=acme, user.id=42;p=1, env=prod", Limits::default(), &allow(&["tenant", "env"]));
        assert_eq!(f.value.as_deref(), Some("tenant=acme,env=prod"));
        assert_eq!(f.dropped_policy, 1);
    }

    #[test]
    fn nothing_allowed_removes_the_header() {
        let f = filter(b"tenant=acme,user=bob", Limits::default(), &allow(&[]));
        assert_eq!(f.value, None);
        assert_eq!(f.dropped_policy, 2);
    }

    #[test]
    fn properties_are_kept_with_their_member() {
        let f = filter(b"k=v;prop1;prop2=x", Limits::default(), &allow(&["k"]));
        assert_eq!(f.value.as_deref(), Some("k=v;prop1;prop2=x"));
    }

    #[test]
    fn members_beyond_180_are_dropped_as_over_limit() {
        let header: Vec<String> = (0..200).map(|i| format!("k{i}=v")).collect();
        let f = filter(header.join(",").as_bytes(), Limits::default(), &|_| true);
        assert_eq!(f.kept, 180);
        assert_eq!(f.dropped_over_limit, 20);
    }

    #[test]
    fn bytes_beyond_8192_are_dropped_as_over_limit() {
        let big = format!("a={}", "x".repeat(8000));
        let header = format!("{big},b={}", "y".repeat(500));
        let f = filter(header.as_bytes(), Limits::default(), &|_| true);
        assert_eq!(f.kept, 1);
        assert_eq!(f.dropped_over_limit, 1);
        assert!(f.value.unwrap().len() <= 8192);
    }

    #[test]
    fn malformed_members_are_dropped_and_counted() {
        let f = filter(b"novalue, =x, k=v w, ok=1, bad key=1, k2=\"q\"", Limits::default(), &|_| true);
        assert_eq!(f.value.as_deref(), Some("ok=1"));
        assert_eq!(f.dropped_malformed, 5);
    }

    #[test]
    fn non_ascii_and_control_bytes_are_malformed() {
        let f = filter(b"a=\xff, b=\r, c=ok", Limits::default(), &|_| true);
        assert_eq!(f.value.as_deref(), Some("c=ok"));
        assert_eq!(f.dropped_malformed, 2);
    }

    /// Found by the `ids_and_context` fuzz target: OWS around `=` was forwarded as is.
    #[test]
    fn a_member_with_whitespace_around_the_equals_sign_is_forwarded_without_it() {
        let f = filter(b"daan\t=att ;\tp=1 , k = v", Limits::default(), &|_| true);
        assert_eq!(f.value.as_deref(), Some("daan=att;p=1,k=v"));
    }

    #[test]
    fn empty_list_members_are_ignored() {
        let f = filter(b" , a=1 ,, ", Limits::default(), &|_| true);
        assert_eq!(f.value.as_deref(), Some("a=1"));
        assert_eq!(f.dropped_malformed, 0);
    }

    #[test]
    fn percent_encoded_values_are_kept_verbatim() {
        let f = filter(b"k=caf%C3%A9%20x", Limits::default(), &|_| true);
        assert_eq!(f.value.as_deref(), Some("k=caf%C3%A9%20x"));
    }
}
