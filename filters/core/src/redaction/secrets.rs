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
            // From the dashes that close this label: they may also open the next BEGIN line
            // (`-----BEGIN X---------BEGIN EC PRIVATE KEY-----`, a fuzz finding).
            from = label_start.saturating_add(label.len());
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

fn local_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._%+'-".contains(&b)
}

fn host_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

fn token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._~+/=-".contains(&b)
}

/// Prefixes of secret families (case-sensitive), then `bearer` (any case) with blanks after it.
const SECRET_PREFIXES: [&[u8]; 14] = [
    b"sk-",
    b"AKIA",
    b"ASIA",
    b"ghp_",
    b"gho_",
    b"ghu_",
    b"ghs_",
    b"ghr_",
    b"github_pat_",
    b"xoxa-",
    b"xoxb-",
    b"xoxp-",
    b"AIza",
    b"eyJ",
];
const MORE_SECRET_PREFIXES: [&[u8]; 2] = [b"xoxr-", b"xoxs-"];
/// Token characters a prefixed secret needs after its prefix to be masked.
const MIN_TOKEN: usize = 8;

/// The end of an address whose `@` is at `at` (`local@host.label...`), if it is one.
fn email_end(bytes: &[u8], at: usize) -> Option<usize> {
    let mut end = at.saturating_add(1);
    let label = |from: usize| bytes.get(from..).unwrap_or_default().iter().take_while(|&&b| host_char(b)).count();
    let first = label(end);
    if first == 0 {
        return None;
    }
    end = end.saturating_add(first);
    let mut labels = 1;
    while bytes.get(end) == Some(&b'.') {
        let n = label(end.saturating_add(1));
        if n == 0 {
            break;
        }
        end = end.saturating_add(1).saturating_add(n);
        labels += 1;
    }
    (labels >= 2).then_some(end)
}

/// Which bytes can start a prefixed secret: the first byte of each prefix, and `b`/`B` for
/// `bearer`. Built from the prefix lists, so they stay the one source.
// Indexing in a constant's initializer is evaluated at build time: out of range fails the build.
#[allow(clippy::indexing_slicing)]
const SECRET_FIRST_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let lists: [&[&[u8]]; 3] = [&SECRET_PREFIXES, &MORE_SECRET_PREFIXES, &[b"bearer", b"Bearer"]];
    let mut l = 0;
    while l < lists.len() {
        let mut i = 0;
        while i < lists[l].len() {
            table[lists[l][i][0] as usize] = true;
            i += 1;
        }
        l += 1;
    }
    table
};

/// Whether a prefixed secret can start with `b`. Most positions cannot: one table lookup instead
/// of 16 prefix comparisons and the `bearer` check at every byte (they were 40% of the bundle's
/// native time on a small chat request, run over the captured prompt and completion).
fn may_start_secret(b: u8) -> bool {
    SECRET_FIRST_BYTES.get(usize::from(b)).copied().unwrap_or(false)
}

/// The end of a prefixed secret starting at `at`, if one does.
fn secret_end(bytes: &[u8], at: usize) -> Option<usize> {
    let rest = bytes.get(at..)?;
    let prefix = SECRET_PREFIXES
        .iter()
        .chain(MORE_SECRET_PREFIXES.iter())
        .find(|p| p.first() == rest.first() && rest.starts_with(p))
        .map(|p| p.len());
    let prefix = prefix.or_else(|| {
        let word = rest.get(..6)?;
        let blanks = rest.get(6..)?.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
        (word.eq_ignore_ascii_case(b"bearer") && blanks > 0).then_some(6 + blanks)
    })?;
    let token = rest.get(prefix..)?.iter().take_while(|&&b| token_char(b)).count();
    (token >= MIN_TOKEN).then_some(at.saturating_add(prefix).saturating_add(token))
}

/// Spans of `text` the capture check masks: anything `@` a host name (`[EMAIL]`), and a known
/// secret prefix followed by 8 or more token characters (`[SECRET]`), which must not be glued to
/// a letter or digit on its left (`task-list12345678` is not a key). Left to right, never
/// overlapping; hand-written rather than regexes, so that token accounting (which masks model
/// names with it) does not carry a regex engine.
pub fn loose_spans(text: &str) -> Vec<(usize, usize, Loose)> {
    let bytes = text.as_bytes();
    let mut out: Vec<(usize, usize, Loose)> = Vec::new();
    let mut covered = 0usize;
    let mut i = 0usize;
    while i < bytes.len() {
        let b = bytes.get(i).copied().unwrap_or_default();
        if b == b'@' {
            if let Some(end) = email_end(bytes, i) {
                let head = bytes.get(covered..i).unwrap_or_default();
                let local = head.iter().rev().take_while(|&&c| local_char(c)).count();
                if local > 0 {
                    // A secret found earlier inside this address's local part is part of it.
                    let start = i - local;
                    while out.last().is_some_and(|last| last.1 > start) {
                        out.pop();
                    }
                    out.push((start, end, Loose::Email));
                    covered = end;
                    i = end;
                    continue;
                }
            }
        }
        // The cheap tests first: most bytes start no secret.
        let glued = || i.checked_sub(1).and_then(|j| bytes.get(j)).is_some_and(u8::is_ascii_alphanumeric);
        if may_start_secret(b) && i >= covered && !glued() {
            if let Some(end) = secret_end(bytes, i) {
                out.push((i, end, Loose::Secret));
                covered = end;
                i = end;
                continue;
            }
        }
        i += 1;
    }
    // Spans end on ASCII bytes, so they are on character boundaries.
    out.retain(|&(s, e, _)| text.is_char_boundary(s) && text.is_char_boundary(e));
    out
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
    fn a_key_begin_line_glued_to_a_junk_begin_line_is_found() {
        // Fuzz finding: the junk line's closing dashes are also the first of the key's.
        let text = "-----BEGIN X---------BEGIN EC PRIVATE KEY-----\nMHcCAQEEIG69\n-----END EC PRIVATE KEY-----";
        let blocks = private_key_blocks(text);
        assert_eq!(blocks.len(), 1, "{blocks:?}");
        assert_eq!((blocks[0].start, blocks[0].end, blocks[0].open), (16, text.len(), false));
        let open = "-----BEGIN X---------BEGIN EC PRIVATE KEY-----\nMHcCAQEEIG69";
        assert_eq!(private_key_blocks(open).first().map(|b| (b.start, b.open)), Some((16, true)));
        // And a junk line with no dashes shared.
        let text = "-----BEGIN X----------BEGIN RSA PRIVATE KEY-----\nMIIE";
        assert_eq!(private_key_blocks(text).first().map(|b| b.start), Some(17));
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
    fn every_secret_prefix_still_starts_a_span_behind_the_first_byte_gate() {
        let bearers: [&[u8]; 2] = [b"bearer ", b"BEARER\t"];
        let prefixes = SECRET_PREFIXES.iter().chain(MORE_SECRET_PREFIXES.iter()).chain(bearers.iter());
        for prefix in prefixes {
            let text = format!("key {}abcd1234 end", String::from_utf8_lossy(prefix));
            let spans: Vec<&str> = loose_spans(&text).iter().map(|&(s, e, _)| &text[s..e]).collect();
            assert_eq!(spans, [&text[4..text.len() - 4]], "{text}");
        }
        // A byte that starts no prefix is never a secret's start, however long the token after it.
        assert!(loose_spans("key zk-abcd1234abcd1234 end").is_empty());
    }

    #[test]
    fn loose_spans_take_glued_addresses_and_short_tokens_but_not_words_with_a_prefix_inside() {
        let text = "alice@example.com65r ommelier, sk-abc12345 and task-list12345678, AKIA1234";
        let spans: Vec<&str> = loose_spans(text).iter().map(|&(s, e, _)| &text[s..e]).collect();
        assert_eq!(spans, ["alice@example.com65r", "sk-abc12345"]);
    }
}
