//! The retrieval-diagnostics header an application reports with each model request
//! (`docs/filters/correlation.md`, "Retrieval diagnostics"):
//!
//! ```text
//! x-llmobs-retrieval: chunks=12; dropped=3; top_score=0.82; sparse_skipped=1; empty=0
//! ```
//!
//! Parsed strictly: the value is at most [`MAX_VALUE_BYTES`] of ASCII, members are `key=value`
//! separated by `;` (spaces or tabs allowed around a member, none around `=`), every key is one
//! of the five below and appears at most once, and the numbers agree with each other. Anything
//! else is rejected whole with one [`Invalid`] reason: a diagnostic that is half right would put
//! wrong numbers on a dashboard. The header is removed before the provider either way.

/// The longest value read; a longer one is rejected as `too_long` without being scanned.
pub const MAX_VALUE_BYTES: usize = 256;
/// The largest chunk count accepted (`chunks`, `dropped`).
pub const MAX_CHUNKS: u32 = 100_000;

/// A valid report. Every member is optional, but at least one is present.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retrieval {
    /// Chunks retrieval returned (before packing).
    pub chunks: Option<u32>,
    /// Chunks the packer dropped (context budget); never more than `chunks`.
    pub dropped: Option<u32>,
    /// The best retrieval score, normalized to `[0, 1]`, in thousandths (truncated).
    pub top_score_milli: Option<u16>,
    /// The sparse (keyword) search was skipped, typically on a timeout.
    pub sparse_skipped: Option<bool>,
    /// Retrieval returned nothing.
    pub empty: Option<bool>,
}

impl Retrieval {
    /// Whether retrieval came back empty: `empty=1`, or `chunks=0` when `empty` is absent.
    pub fn is_empty(&self) -> bool {
        self.empty.unwrap_or(self.chunks == Some(0))
    }
}

/// Why a header was rejected; a bounded metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Invalid {
    /// Longer than [`MAX_VALUE_BYTES`].
    TooLong,
    /// Not `key=value` members separated by `;` (an empty member, a missing `=`, non-ASCII).
    Syntax,
    /// A key outside the five documented ones.
    UnknownKey,
    /// A key given twice.
    Duplicate,
    /// A value out of its documented form or range.
    Value,
    /// Members that contradict each other (`dropped` above `chunks`, `empty=1` with chunks).
    Inconsistent,
}

impl Invalid {
    pub const ALL: [Invalid; 6] = [
        Invalid::TooLong,
        Invalid::Syntax,
        Invalid::UnknownKey,
        Invalid::Duplicate,
        Invalid::Value,
        Invalid::Inconsistent,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Invalid::TooLong => "too_long",
            Invalid::Syntax => "syntax",
            Invalid::UnknownKey => "unknown_key",
            Invalid::Duplicate => "duplicate",
            Invalid::Value => "value",
            Invalid::Inconsistent => "inconsistent",
        }
    }
}

/// Parses one header value.
pub fn parse(raw: &[u8]) -> Result<Retrieval, Invalid> {
    if raw.len() > MAX_VALUE_BYTES {
        return Err(Invalid::TooLong);
    }
    let text = std::str::from_utf8(raw).map_err(|_| Invalid::Syntax)?;
    if !text.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)) {
        return Err(Invalid::Syntax);
    }
    let mut out = Retrieval::default();
    for member in text.split(';') {
        let member = member.trim_matches(|c| c == ' ' || c == '\t');
        let (key, value) = member.split_once('=').ok_or(Invalid::Syntax)?;
        if key.is_empty() || value.is_empty() || value.contains('=') {
            return Err(Invalid::Syntax);
        }
        match key {
            "chunks" => set(&mut out.chunks, count(value)?)?,
            "dropped" => set(&mut out.dropped, count(value)?)?,
            "top_score" => set(&mut out.top_score_milli, score_milli(value)?)?,
            "sparse_skipped" => set(&mut out.sparse_skipped, flag(value)?)?,
            "empty" => set(&mut out.empty, flag(value)?)?,
            _ if key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => return Err(Invalid::UnknownKey),
            _ => return Err(Invalid::Syntax),
        }
    }
    check_consistent(&out)?;
    Ok(out)
}

fn set<T>(slot: &mut Option<T>, value: T) -> Result<(), Invalid> {
    if slot.is_some() {
        return Err(Invalid::Duplicate);
    }
    *slot = Some(value);
    Ok(())
}

/// A decimal count, `0` to [`MAX_CHUNKS`], digits only (no sign, no leading zeros).
fn count(value: &str) -> Result<u32, Invalid> {
    let digits_only = value.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || value.len() > 6 || (value.len() > 1 && value.starts_with('0')) {
        return Err(Invalid::Value);
    }
    match value.parse::<u32>() {
        Ok(n) if n <= MAX_CHUNKS => Ok(n),
        _ => Err(Invalid::Value),
    }
}

/// `0` or `1`.
fn flag(value: &str) -> Result<bool, Invalid> {
    match value {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err(Invalid::Value),
    }
}

/// A score in `[0, 1]`: `0`, `1`, or `0.` / `1.` with one to six fraction digits (`1.0...` only
/// with zeros). Returned in thousandths, truncated, so `0.8239` is 823.
fn score_milli(value: &str) -> Result<u16, Invalid> {
    let (int, frac) = match value.split_once('.') {
        Some((int, frac)) if !frac.is_empty() && frac.len() <= 6 => (int, frac),
        Some(_) => return Err(Invalid::Value),
        None => (value, ""),
    };
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Invalid::Value);
    }
    let milli_of_frac = |frac: &str| -> u16 {
        frac.bytes().chain(std::iter::repeat(b'0')).take(3).fold(0u16, |acc, b| acc * 10 + u16::from(b - b'0'))
    };
    match int {
        "0" => Ok(milli_of_frac(frac)),
        "1" if frac.bytes().all(|b| b == b'0') => Ok(1000),
        _ => Err(Invalid::Value),
    }
}

fn check_consistent(r: &Retrieval) -> Result<(), Invalid> {
    if let (Some(chunks), Some(dropped)) = (r.chunks, r.dropped) {
        if dropped > chunks {
            return Err(Invalid::Inconsistent);
        }
    }
    if r.empty == Some(true)
        && (r.chunks.is_some_and(|c| c > 0) || r.dropped.is_some_and(|d| d > 0) || r.top_score_milli.is_some())
    {
        return Err(Invalid::Inconsistent);
    }
    if r.chunks == Some(0) && r.top_score_milli.is_some() {
        return Err(Invalid::Inconsistent);
    }
    if r.empty == Some(false) && r.chunks == Some(0) {
        return Err(Invalid::Inconsistent);
    }
    Ok(())
}
