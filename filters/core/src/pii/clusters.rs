//! The gate in front of the digit-based patterns (cards, SSNs, phones, IPv4, IBANs).
//!
//! Running each of those regexes over the whole text costs a pass per pattern, and their
//! prefilter stops at every digit: fine on prose, slow on JSON and logs full of numbers. Instead,
//! one pass finds the clusters of digits (digit groups joined by spaces, dots, dashes, slashes,
//! parentheses or `+`), skipping eight bytes at a time where there are no digits, and the regexes
//! run only inside the few clusters that could hold an entity (enough digits, or the dots of an
//! IPv4 address, or two capital letters before them for an IBAN). The regexes still find the
//! candidates and the validators still decide; the gate only skips text where no candidate of
//! these patterns can start, so the results are the same as whole-text passes.

/// A run of digit groups and joiners, trimmed of trailing joiners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Cluster {
    pub start: usize,
    pub end: usize,
    pub digits: usize,
    pub dots: usize,
    /// Any joiner (a pure digit run has none).
    pub joined: bool,
}

const ONES: u64 = 0x0101_0101_0101_0101;

/// Whether any of the eight bytes is an ASCII digit (the "has between" bit trick, exact per
/// byte: no carry crosses byte lanes).
fn has_digit(x: u64) -> bool {
    let low7 = x & (ONES * 0x7F);
    let below_colon = (ONES * (0x7F + b':' as u64)).wrapping_sub(low7);
    let above_slash = low7 + ONES * (0x7F - b'/' as u64);
    below_colon & !x & above_slash & (ONES * 0x80) != 0
}

/// Whether any of the eight bytes is a colon.
fn has_colon(x: u64) -> bool {
    let y = x ^ (ONES * u64::from(b':'));
    y.wrapping_sub(ONES) & !y & (ONES * 0x80) != 0
}

/// The offset of the next byte at or after `from` that `is` accepts, skipping eight bytes at a
/// time while `any` says none of them can be one.
fn next_byte(text: &[u8], from: usize, any: fn(u64) -> bool, is: fn(&u8) -> bool) -> Option<usize> {
    let rest = text.get(from..)?;
    let mut offset = 0usize;
    let mut chunks = rest.chunks_exact(8);
    for chunk in chunks.by_ref() {
        let word = <[u8; 8]>::try_from(chunk).map(u64::from_le_bytes).unwrap_or(u64::MAX);
        if any(word) {
            if let Some(p) = chunk.iter().position(is) {
                return Some(from + offset + p);
            }
        }
        offset += 8;
    }
    chunks.remainder().iter().position(is).map(|p| from + offset + p)
}

fn next_digit(text: &[u8], from: usize) -> Option<usize> {
    next_byte(text, from, has_digit, u8::is_ascii_digit)
}

/// Whether `text[..i]` ends with an escape sequence as JSON and C strings write it: `\n`, `\t`,
/// `\r`, `\b`, `\f` or `\uXXXX`. Text that went through one JSON decode (tool results, logs,
/// code pasted as an escaped string) still holds them as two or six characters; the escape is a
/// line break or a space, so a value right after it stands alone (`\n+44 7700 900123`).
pub(super) fn escape_ends_at(text: &[u8], i: usize) -> bool {
    match text.get(..i).unwrap_or_default() {
        [.., b'\\', b'n' | b't' | b'r' | b'b' | b'f'] => true,
        [.., b'\\', b'u', a, b, c, d] => [a, b, c, d].iter().all(|x| x.is_ascii_hexdigit()),
        _ => false,
    }
}

/// Where the `\uXXXX` escape whose hex digits start at `i` ends, if one does.
fn unicode_escape_end(text: &[u8], i: usize) -> Option<usize> {
    let head = i.checked_sub(2).and_then(|h| text.get(h..i))?;
    let hex = text.get(i..i + 4)?;
    (head == b"\\u" && hex.iter().all(u8::is_ascii_hexdigit)).then_some(i + 4)
}

fn is_hex_or_colon(b: Option<&u8>) -> bool {
    b.is_some_and(|&b| b.is_ascii_hexdigit() || b == b':')
}

/// Whether the run of hex digits, colons and dots around `colon` has two colons and is not glued
/// to a word on its right (a candidate inside a run glued to a word on the right is always
/// rejected: `T12:34:56.789Z`).
pub(super) fn ipv6_run_is_clear(text: &[u8], colon: usize) -> bool {
    let in_run = |b: &u8| b.is_ascii_hexdigit() || *b == b':' || *b == b'.';
    let head = text.get(colon.saturating_sub(48)..colon).unwrap_or_default();
    let tail = text.get(colon..(colon + 60).min(text.len())).unwrap_or_default();
    let left = head.iter().rev().take_while(|b| in_run(b)).count();
    let right = tail.iter().take_while(|b| in_run(b)).count();
    let (start, end) = (colon - left, colon + right);
    let glued = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
    let run = text.get(start..end).unwrap_or_default();
    let colons = run.iter().filter(|&&b| b == b':').count();
    // A run ending in `:` or `.` may be followed by punctuation-like text (`fe80::1: x`). A run
    // glued to a word on its left may still hold an address after a colon (`ip:fe80::1`,
    // `value:3bc2:...`, `time:fe80::1`: the word is a label), so the left is not checked here;
    // `confirm_ipv6` decides.
    let glued_right = !matches!(run.last(), Some(b':' | b'.')) && glued(text.get(end));
    colons >= 2 && !glued_right
}

/// Calls `f` with every colon that has a hex digit or a colon on both sides: every IPv6 address
/// (two colons at least, a hex digit somewhere) has one, and JSON's `":"` or prose's `Note: `
/// do not.
pub(super) fn for_each_ipv6_colon(text: &[u8], mut f: impl FnMut(usize) -> usize) {
    let mut pos = 0usize;
    while let Some(i) = next_byte(text, pos, has_colon, |&b| b == b':') {
        let around = i.checked_sub(1).and_then(|j| text.get(j));
        pos = if is_hex_or_colon(around) && is_hex_or_colon(text.get(i + 1)) { f(i).max(i + 1) } else { i + 1 };
    }
}

/// Calls `f` with every run of digits that has a capital letter right before or after it, or
/// a capital and a space before it (`AB 12 34 56 C`): every identifier with letters holds one.
pub(super) fn for_each_letter_digit_run(text: &[u8], mut f: impl FnMut(usize, usize)) {
    let mut pos = 0usize;
    while let Some(start) = next_digit(text, pos) {
        let len = text.get(start..).unwrap_or_default().iter().take_while(|b| b.is_ascii_digit()).count();
        let end = start + len;
        let capital = |i: Option<usize>| i.and_then(|i| text.get(i)).is_some_and(u8::is_ascii_uppercase);
        let before = start.checked_sub(1);
        let spaced = before.and_then(|i| text.get(i)) == Some(&b' ') && capital(start.checked_sub(2));
        if capital(before) || capital(Some(end)) || spaced {
            f(start, end);
        }
        pos = end.max(start + 1);
    }
}

fn is_joiner(b: u8) -> bool {
    matches!(b, b' ' | b'.' | b'-' | b'/' | b'(' | b')' | b'+')
}

/// Whether a cluster could hold any digit-based entity: seven digits (the shortest phone
/// number; five after a word naming a phone), the three dots of an IPv4 address, or two capital letters right before it (an IBAN's
/// country code before its check digits).
fn worth_a_look(text: &[u8], c: &Cluster) -> bool {
    c.digits >= 7
        || (c.digits >= super::phone::SHORT_PHONE_DIGITS && super::phone::context_before(text, c.start))
        || (c.dots >= 3 && c.digits >= 4)
        || (c.digits >= 2
            && c.start
                .checked_sub(2)
                .and_then(|i| text.get(i..c.start))
                .is_some_and(|cc| cc.iter().all(u8::is_ascii_uppercase)))
}

/// Calls `f` with every cluster of `text` that is [worth a look](worth_a_look), in order.
pub(super) fn for_each(text: &[u8], mut f: impl FnMut(Cluster)) {
    let mut pos = 0usize;
    while let Some(first) = next_digit(text, pos) {
        // A digit inside a word (`8f3a92`, `v1`, `gpt-4o`): every candidate needs a clear left
        // edge, so nothing starts before the end of the word, unless two capitals stand before
        // the digits (an IBAN's country code).
        let glued =
            first.checked_sub(1).and_then(|i| text.get(i)).is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'_')
                && !escape_ends_at(text, first);
        // The hex digits of a `\u00a0` escape head no number; what follows them may.
        if let Some(escape_end) = unicode_escape_end(text, first) {
            pos = escape_end;
            continue;
        }
        let capitals = first
            .checked_sub(2)
            .and_then(|i| text.get(i..first))
            .is_some_and(|cc| cc.iter().all(u8::is_ascii_uppercase));
        if glued && !capitals {
            let rest = text.get(first..).unwrap_or_default();
            pos = first + rest.iter().take_while(|&&b| b.is_ascii_alphanumeric() || b == b'_').count();
            continue;
        }
        // A leading `+` (E.164) or `(` (area code) belongs to the cluster.
        let start = match first.checked_sub(1).and_then(|i| text.get(i)) {
            Some(b'+' | b'(') => first - 1,
            _ => first,
        };
        let mut cluster = Cluster { start, end: first, digits: 0, dots: 0, joined: start != first };
        let mut previous = 0u8;
        let mut pending_dot = false;
        let mut i = first;
        while let Some(&b) = text.get(i) {
            if b.is_ascii_digit() {
                cluster.digits += 1;
                cluster.end = i + 1;
                cluster.dots += usize::from(pending_dot);
                pending_dot = false;
            } else if is_joiner(b) && (previous.is_ascii_digit() || matches!((previous, b), (b')', _) | (_, b'('))) {
                // One joiner between digit groups, or a parenthesis next to one: `(415) 555`,
                // `+44 (0)20`. Two others (`. `, ` - `) end the cluster.
                cluster.joined = true;
                pending_dot = b == b'.';
                if b == b')' {
                    cluster.end = i + 1;
                }
            } else {
                break;
            }
            previous = b;
            i += 1;
        }
        if worth_a_look(text, &cluster) {
            f(cluster);
        }
        pos = i.max(first + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digit_bit_trick_agrees_with_the_plain_test_on_every_byte() {
        for b in 0..=255u8 {
            for lane in 0..8 {
                let word = (u64::from(b) << (8 * lane)) | ((ONES * u64::from(b'a')) & !(0xFF << (8 * lane)));
                assert_eq!(has_digit(word), b.is_ascii_digit(), "byte {b} in lane {lane}");
            }
        }
    }

    #[test]
    fn the_colon_bit_trick_agrees_with_the_plain_test_on_every_byte() {
        for b in 0..=255u8 {
            for lane in 0..8 {
                let word = (u64::from(b) << (8 * lane)) | ((ONES * u64::from(b'a')) & !(0xFF << (8 * lane)));
                assert_eq!(has_colon(word), b == b':', "byte {b} in lane {lane}");
            }
        }
    }

    #[test]
    fn only_colons_between_hex_digits_or_colons_are_ipv6_triggers() {
        let text = br#"{"a":"b"} Note: at 12:30 see fe80::1 and ::1"#;
        let mut seen = Vec::new();
        for_each_ipv6_colon(text, |i| {
            seen.push(i);
            i + 1
        });
        let colons: Vec<usize> = text.iter().enumerate().filter(|(_, &b)| b == b':').map(|(i, _)| i).collect();
        assert_eq!(seen, [colons[2], colons[3], colons[4], colons[6]]);
    }

    #[test]
    fn clusters_join_digit_groups_and_trim_trailing_joiners() {
        let text = b"call +1 (415) 555-0132, then 10.0.0.1. 2025-11-26T x 42 - y";
        let mut seen = Vec::new();
        for_each(text, |c| seen.push((std::str::from_utf8(&text[c.start..c.end]).unwrap_or("?"), c.digits, c.dots)));
        assert_eq!(seen, [("+1 (415) 555-0132", 11, 0), ("10.0.0.1", 5, 3), ("2025-11-26", 8, 0)]);
    }
}
