//! Secrets whose start is recognisable before their end, and the last check of every text the
//! filter writes to a log sink.
//!
//! - Private key blocks: a PEM `-----BEGIN <label>-----` line whose label names a private key
//!   (`PRIVATE KEY`, `RSA PRIVATE KEY`, `OPENSSH PRIVATE KEY`, `ENCRYPTED PRIVATE KEY`,
//!   `PGP PRIVATE KEY BLOCK`, ...) opens a block that runs to the matching `-----END <label>-----`
//!   line. A block whose END has not arrived (a stream still running, a capture cut at its size
//!   limit, a reply cut by `max_tokens`) is *open*: everything after its BEGIN line is part of it.
//!   Certificates (`BEGIN CERTIFICATE`) and public keys are not secrets and are left alone.
//! - The capture check ([`loose_spans`]): patterns looser than the detectors, for text that only
//!   goes to a log. The detectors are tuned not to change traffic that holds no PII (an address
//!   glued to the next word, a token shorter than its family's length, a number glued to a
//!   letter are turned down); a capture can afford to mask such look-alikes.
//!
//! Nothing here stores or logs text: results are byte offsets.

use regex::bytes::Regex;
use std::sync::OnceLock;

/// A private key block in a text: `start..end`, with `end` the end of the text when `open`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyBlock {
    pub start: usize,
    pub end: usize,
    /// The END line has not been seen: the block runs to the end of the text.
    pub open: bool,
    /// The line that closes the block (`-----END <label>-----`).
    pub closer: String,
    /// Base64 characters after the BEGIN line (within the block).
    pub body_chars: usize,
}

/// Longest label read after `-----BEGIN ` (the longest real one, `ENCRYPTED PRIVATE KEY`, is 21).
const MAX_LABEL: usize = 64;
const BEGIN: &[u8] = b"-----BEGIN ";

/// Every private key block of `text`, in order, open or closed.
pub fn private_key_blocks(text: &str) -> Vec<KeyBlock> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = bytes.get(from..).and_then(|rest| memchr::memmem::find(rest, BEGIN)) {
        let start = from.saturating_add(at);
        let label_start = start.saturating_add(BEGIN.len());
        let Some((label, begin_end)) = label_at(bytes, label_start) else {
            from = label_start;
            continue;
        };
        if !is_private_key_label(label) {
            from = begin_end;
            continue;
        }
        let mut closer = Vec::with_capacity(label.len().saturating_add(14));
        closer.extend_from_slice(b"-----END ");
        closer.extend_from_slice(label);
        closer.extend_from_slice(b"-----");
        let rest = bytes.get(begin_end..).unwrap_or_default();
        let (end, open) = match memchr::memmem::find(rest, &closer) {
            Some(pos) => (begin_end.saturating_add(pos).saturating_add(closer.len()), false),
            None => (bytes.len(), true),
        };
        let body = bytes.get(begin_end..end).unwrap_or_default();
        let body_chars = body.iter().filter(|&&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/').count();
        out.push(KeyBlock { start, end, open, closer: String::from_utf8_lossy(&closer).into_owned(), body_chars });
        from = end.max(start.saturating_add(1));
    }
    out
}

/// The label of a BEGIN line (`RSA PRIVATE KEY`) and where the line's closing `-----` ends.
fn label_at(bytes: &[u8], from: usize) -> Option<(&[u8], usize)> {
    let rest = bytes.get(from..)?;
    let len =
        rest.iter().take(MAX_LABEL).take_while(|&&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ').count();
    let label = rest.get(..len)?;
    rest.get(len..)?.starts_with(b"-----").then_some((label, from.saturating_add(len).saturating_add(5)))
}

fn is_private_key_label(label: &[u8]) -> bool {
    memchr::memmem::find(label, b"PRIVATE KEY").is_some()
}

/// Where a BEGIN line that is still arriving starts at the end of `text`: a prefix of
/// `-----BEGIN `, or a `-----BEGIN ` whose label has not reached its closing `-----` yet.
pub fn pending_begin(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let from = bytes.len().saturating_sub(BEGIN.len().saturating_add(MAX_LABEL).saturating_add(5));
    let tail = bytes.get(from..).unwrap_or_default();
    if let Some(at) = memchr::memmem::rfind(tail, BEGIN) {
        let at = from.saturating_add(at);
        let after = bytes.get(at.saturating_add(BEGIN.len())..).unwrap_or_default();
        let label = after.iter().take_while(|&&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ').count();
        let rest = after.get(label..).unwrap_or_default();
        // The line may still become `... PRIVATE KEY-----`: only dashes (fewer than five) follow.
        if label <= MAX_LABEL && rest.len() < 5 && rest.iter().all(|&b| b == b'-') {
            return Some(at);
        }
    }
    // A start of `-----BEGIN ` at the very end; dashes right after a capital letter close a
    // label (`KEY-----`) rather than open a line.
    let k = (1..BEGIN.len()).rev().find(|&k| BEGIN.get(..k).is_some_and(|p| bytes.ends_with(p)))?;
    let at = bytes.len() - k;
    let closes_label = at.checked_sub(1).and_then(|i| bytes.get(i)).is_some_and(u8::is_ascii_uppercase)
        && bytes.get(at..).is_some_and(|r| r.iter().all(|&b| b == b'-'));
    (!closes_label).then_some(at)
}

/// What the capture check masks beyond the detectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loose {
    /// Something `@` a host name, whatever is glued to either side.
    Email,
    /// A known secret prefix followed by token characters, whatever its length.
    Secret,
}

impl Loose {
    pub fn placeholder(self) -> &'static str {
        match self {
            Loose::Email => "[EMAIL]",
            Loose::Secret => "[SECRET]",
        }
    }
}

/// The two fixed patterns, compiled once per VM (`None` never happens: a test holds them to
/// compiling; [`loose_spans`] then reports the whole text, so a capture would be withheld).
fn loose_patterns() -> Option<&'static (Regex, Regex)> {
    static RE: OnceLock<Option<(Regex, Regex)>> = OnceLock::new();
    RE.get_or_init(|| {
        let email = Regex::new(r"(?-u)[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+").ok()?;
        let secret = Regex::new(concat!(
            r"(?-u)(?:sk-|A[KS]IA|gh[pousr]_|github_pat_|xox[abprs]-|AIza|eyJ|(?i:bearer)[ \t]+)",
            r"[A-Za-z0-9._~+/=-]{8,}",
        ))
        .ok()?;
        Some((email, secret))
    })
    .as_ref()
}

/// Spans of `text` the capture check masks: loose emails and prefixed secrets (a prefixed secret
/// must not be glued to a letter or digit on its left: `task-list` is not a key).
pub fn loose_spans(text: &str) -> Vec<(usize, usize, Loose)> {
    let bytes = text.as_bytes();
    let Some((email, secret)) = loose_patterns() else {
        return vec![(0, text.len(), Loose::Secret)];
    };
    let mut out: Vec<(usize, usize, Loose)> = Vec::new();
    for m in email.find_iter(bytes) {
        out.push((m.start(), m.end(), Loose::Email));
    }
    for m in secret.find_iter(bytes) {
        let glued = m.start().checked_sub(1).and_then(|i| bytes.get(i)).is_some_and(u8::is_ascii_alphanumeric);
        if !glued {
            out.push((m.start(), m.end(), Loose::Secret));
        }
    }
    out.sort_by_key(|&(start, end, _)| (start, std::cmp::Reverse(end)));
    let mut kept: Vec<(usize, usize, Loose)> = Vec::with_capacity(out.len());
    for span in out {
        if kept.last().is_none_or(|last| span.0 >= last.1) {
            kept.push(span);
        }
    }
    // Regex spans end on ASCII bytes, so they are on character boundaries.
    kept.retain(|&(s, e, _)| text.is_char_boundary(s) && text.is_char_boundary(e));
    kept
}

/// `text` with its [`loose_spans`] replaced by their placeholders: for free text another filter
/// writes to the log (a model name), which no detector configuration covers.
pub fn mask_loose(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end, loose) in loose_spans(text) {
        out.push_str(text.get(at..start).unwrap_or_default());
        out.push_str(loose.placeholder());
        at = end;
    }
    out.push_str(text.get(at..).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_is_closed_by_its_own_end_line_or_runs_to_the_end_of_the_text() {
        let text = "key: -----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY----- done";
        let blocks = private_key_blocks(text);
        assert_eq!(blocks.len(), 1);
        assert!(!blocks[0].open);
        assert_eq!(&text[blocks[0].start..blocks[0].end], &text[5..text.len() - 5]);
        let cut = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA";
        let blocks = private_key_blocks(cut);
        assert!(blocks[0].open && blocks[0].end == cut.len());
        assert_eq!(blocks[0].closer, "-----END OPENSSH PRIVATE KEY-----");
        assert!(private_key_blocks("-----BEGIN CERTIFICATE-----\nMIIB\n").is_empty());
        assert!(private_key_blocks("-----BEGIN PUBLIC KEY-----\nMIIB").is_empty());
        let pgp = private_key_blocks("-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQOY");
        assert_eq!(pgp[0].closer, "-----END PGP PRIVATE KEY BLOCK-----");
        // A different END does not close it.
        assert!(private_key_blocks("-----BEGIN EC PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----")[0].open);
    }

    #[test]
    fn a_begin_line_still_arriving_is_pending_until_its_dashes_close_it() {
        assert_eq!(pending_begin("text ---"), Some(5));
        assert_eq!(pending_begin("text -----BEGIN RSA PRIV"), Some(5));
        assert_eq!(pending_begin("text -----BEGIN RSA PRIVATE KEY---"), Some(5));
        assert_eq!(pending_begin("text -----BEGIN RSA PRIVATE KEY-----"), None);
        assert_eq!(pending_begin("text -----BEGIN RSA PRIVATE KEY-----\nMII"), None);
        assert_eq!(pending_begin("plain text"), None);
    }

    #[test]
    fn loose_spans_take_glued_addresses_and_short_tokens_but_not_words_with_a_prefix_inside() {
        let text = "alice@example.com65r ommelier, sk-abc12345 and task-list12345678, AKIA1234";
        let spans: Vec<&str> = loose_spans(text).iter().map(|&(s, e, _)| &text[s..e]).collect();
        assert_eq!(spans, ["alice@example.com65r", "sk-abc12345"]);
    }
}
