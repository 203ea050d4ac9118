//! Structural validators: each takes the candidate value alone (no surrounding text) and says
//! whether it is a real instance of its entity. The regexes in [`super::patterns`] only find
//! candidates; these functions decide. All are pure, allocation-free except the JWT decode, and
//! panic-free on any input.

use std::net::Ipv6Addr;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

// ------------------------------------------------------------------------------------------------
// Payment cards

/// The Luhn (mod 10) check over ASCII digits. False for an empty input or any non-digit.
pub fn luhn_valid(digits: &[u8]) -> bool {
    if digits.is_empty() {
        return false;
    }
    let mut sum = 0u32;
    for (i, &c) in digits.iter().rev().enumerate() {
        if !c.is_ascii_digit() {
            return false;
        }
        let mut d = u32::from(c - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum % 10 == 0
}

/// A card network, from the issuer prefix and length table (the networks' published IIN ranges).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardIssuer {
    /// 4; 13, 16 or 19 digits.
    Visa,
    /// 51-55 and 2221-2720; 16 digits.
    Mastercard,
    /// 34, 37; 15 digits.
    Amex,
    /// 6011, 622126-622925, 644-649, 65; 16-19 digits.
    Discover,
    /// 3528-3589; 16-19 digits. The legacy 1800 and 2131 ranges; 15 digits.
    Jcb,
    /// 300-305, 3095, 36, 38-39; 14-19 digits.
    Diners,
    /// 62; 16-19 digits (its newer 81 range is left out: a Luhn-valid 17-19 digit invoice
    /// number from 81 was the one card false positive on the committed corpus).
    UnionPay,
    /// 5018, 5020, 5038, 5893, 6304, 6759, 6761-6763; 12-19 digits.
    Maestro,
    /// 2200-2204; 16-19 digits.
    Mir,
    /// 60, 652, 508, 353, 356, 81, 82; 16 digits.
    RuPay,
    /// Elo's six-digit ranges (401178, 438935, 504175, 506699-506778, 509xxx, 6277, 6362, 650xxx,
    /// 6516, 655xxx); 16 digits.
    Elo,
    /// 606282, 3841; 13-19 digits.
    Hipercard,
    /// 9792; 16 digits.
    Troy,
    /// 506099-506198, 507865-507964, 650002-650027; 16, 18 or 19 digits.
    Verve,
    /// 5019; 16 digits.
    Dankort,
    /// 636 (InterPayment) and 637-639 (InstaPayment); 16-19 digits.
    InstaPayment,
}

/// The numeric value of the first `n` digits, if there are that many and they are digits.
fn prefix(digits: &[u8], n: usize) -> Option<u32> {
    digits.get(..n)?.iter().try_fold(0u32, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0')))
}

/// Elo's six-digit issuer ranges.
const ELO: [(u32, u32); 23] = [
    (401178, 401179),
    (431274, 431274),
    (438935, 438935),
    (451416, 451416),
    (457393, 457393),
    (457631, 457632),
    (504175, 504175),
    (506699, 506778),
    (509000, 509999),
    (627780, 627780),
    (636297, 636297),
    (636368, 636368),
    (650031, 650033),
    (650035, 650051),
    (650405, 650439),
    (650485, 650538),
    (650541, 650598),
    (650700, 650718),
    (650720, 650727),
    (650901, 650978),
    (651652, 651679),
    (655000, 655019),
    (655021, 655058),
];

/// The issuer whose prefix and length both fit these digits (no separators), if any. Where ranges
/// overlap (Elo's 401178 inside Visa's 4, Hipercard's 606282 inside RuPay's 60) the narrower
/// range is reported; only whether some network issues the number matters to the detector.
pub fn card_issuer(digits: &[u8]) -> Option<CardIssuer> {
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let len = digits.len();
    let p1 = prefix(digits, 1)?;
    let p2 = prefix(digits, 2).unwrap_or(0);
    let p3 = prefix(digits, 3).unwrap_or(0);
    let p4 = prefix(digits, 4).unwrap_or(0);
    let p6 = prefix(digits, 6).unwrap_or(0);
    let long = (16..=19).contains(&len);
    let issuers: [(bool, CardIssuer); 16] = [
        (ELO.iter().any(|&(lo, hi)| (lo..=hi).contains(&p6)) && len == 16, CardIssuer::Elo),
        ((p6 == 606282 || p4 == 3841) && (13..=19).contains(&len), CardIssuer::Hipercard),
        (p4 == 9792 && len == 16, CardIssuer::Troy),
        (
            ((506099..=506198).contains(&p6) || (507865..=507964).contains(&p6) || (650002..=650027).contains(&p6))
                && matches!(len, 16 | 18 | 19),
            CardIssuer::Verve,
        ),
        (p1 == 4 && matches!(len, 13 | 16 | 19), CardIssuer::Visa),
        (((51..=55).contains(&p2) || (2221..=2720).contains(&p4)) && len == 16, CardIssuer::Mastercard),
        ((p2 == 34 || p2 == 37) && len == 15, CardIssuer::Amex),
        (
            (p4 == 6011 || (622126..=622925).contains(&p6) || (644..=649).contains(&p3) || p2 == 65) && long,
            CardIssuer::Discover,
        ),
        (((3528..=3589).contains(&p4) && long) || ((p4 == 1800 || p4 == 2131) && len == 15), CardIssuer::Jcb),
        (
            ((300..=305).contains(&p3) || p4 == 3095 || p2 == 36 || p2 == 38 || p2 == 39) && (14..=19).contains(&len),
            CardIssuer::Diners,
        ),
        (p2 == 62 && long, CardIssuer::UnionPay),
        (
            matches!(p4, 5018 | 5020 | 5038 | 5893 | 6304 | 6759 | 6761..=6763) && (12..=19).contains(&len),
            CardIssuer::Maestro,
        ),
        ((2200..=2204).contains(&p4) && long, CardIssuer::Mir),
        (
            (p2 == 60 || p3 == 652 || p3 == 508 || p3 == 353 || p3 == 356 || p2 == 81 || p2 == 82) && len == 16,
            CardIssuer::RuPay,
        ),
        (p4 == 5019 && len == 16, CardIssuer::Dankort),
        ((636..=639).contains(&p3) && long, CardIssuer::InstaPayment),
    ];
    issuers.into_iter().find(|(fits, _)| *fits).map(|(_, issuer)| issuer)
}

/// A payment card number: 12-19 digits with a known issuer prefix and length and a valid Luhn
/// check digit, bare or printed in groups joined by one kind of separator (a single space, dash
/// or dot): the first group 4-6 digits, the middle ones 4-13, the last 1-13 (4-4-4-4, 4-6-5,
/// 4-6-4, 4-4-4-4-3, 6-13, ...).
pub fn payment_card(value: &[u8]) -> bool {
    let mut digits = [0u8; 19];
    let mut n = 0usize;
    let sep = value.iter().copied().find(|b| !b.is_ascii_digit());
    match sep {
        None => {}
        Some(sep @ (b' ' | b'-' | b'.')) => {
            let groups = value.split(|&b| b == sep).count();
            for (i, group) in value.split(|&b| b == sep).enumerate() {
                let ok = match i {
                    0 => (4..=6).contains(&group.len()),
                    _ if i + 1 == groups => (1..=13).contains(&group.len()),
                    _ => (4..=13).contains(&group.len()),
                };
                if !ok {
                    return false;
                }
            }
        }
        Some(_) => return false,
    }
    for &b in value {
        if b.is_ascii_digit() {
            match digits.get_mut(n) {
                Some(slot) => *slot = b,
                None => return false,
            }
            n += 1;
        } else if Some(b) != sep {
            return false;
        }
    }
    let Some(digits) = digits.get(..n) else { return false };
    (12..=19).contains(&n) && card_issuer(digits).is_some() && luhn_valid(digits)
}

// ------------------------------------------------------------------------------------------------
// IBAN

/// The IBAN length of a country: every country of the SWIFT IBAN registry (89).
pub fn iban_length(country: &[u8]) -> Option<usize> {
    let len = match country {
        b"AD" => 24,
        b"AE" => 23,
        b"AL" => 28,
        b"AT" => 20,
        b"AZ" => 28,
        b"BA" => 20,
        b"BE" => 16,
        b"BG" => 22,
        b"BH" => 22,
        b"BI" => 27,
        b"BR" => 29,
        b"BY" => 28,
        b"CH" => 21,
        b"CR" => 22,
        b"CY" => 28,
        b"CZ" => 24,
        b"DE" => 22,
        b"DJ" => 27,
        b"DK" => 18,
        b"DO" => 28,
        b"EE" => 20,
        b"EG" => 29,
        b"ES" => 24,
        b"FI" => 18,
        b"FK" => 18,
        b"FO" => 18,
        b"FR" => 27,
        b"GB" => 22,
        b"GE" => 22,
        b"GI" => 23,
        b"GL" => 18,
        b"GR" => 27,
        b"GT" => 28,
        b"HN" => 28,
        b"HR" => 21,
        b"HU" => 28,
        b"IE" => 22,
        b"IL" => 23,
        b"IQ" => 23,
        b"IS" => 26,
        b"IT" => 27,
        b"JO" => 30,
        b"KW" => 30,
        b"KZ" => 20,
        b"LB" => 28,
        b"LC" => 32,
        b"LI" => 21,
        b"LT" => 20,
        b"LU" => 20,
        b"LV" => 21,
        b"LY" => 25,
        b"MC" => 27,
        b"MD" => 24,
        b"ME" => 22,
        b"MK" => 19,
        b"MN" => 20,
        b"MR" => 27,
        b"MT" => 31,
        b"MU" => 30,
        b"NI" => 28,
        b"NL" => 18,
        b"NO" => 15,
        b"OM" => 23,
        b"PK" => 24,
        b"PL" => 28,
        b"PS" => 29,
        b"PT" => 25,
        b"QA" => 29,
        b"RO" => 24,
        b"RS" => 22,
        b"RU" => 33,
        b"SA" => 24,
        b"SC" => 31,
        b"SD" => 18,
        b"SE" => 24,
        b"SI" => 19,
        b"SK" => 24,
        b"SM" => 27,
        b"SO" => 23,
        b"ST" => 25,
        b"SV" => 28,
        b"TL" => 23,
        b"TN" => 24,
        b"TR" => 26,
        b"UA" => 29,
        b"VA" => 22,
        b"VG" => 24,
        b"XK" => 20,
        b"YE" => 30,
        _ => return None,
    };
    Some(len)
}

/// An IBAN: country code with its length, two check digits, an upper-case alphanumeric BBAN, and
/// mod-97 of the rearranged number equal to 1. Either compact or grouped by single spaces every
/// four characters.
pub fn iban(value: &[u8]) -> bool {
    let mut compact = [0u8; 34];
    let mut n = 0usize;
    for (i, &b) in value.iter().enumerate() {
        if b == b' ' {
            // A space only ever closes a full group of four, and never ends the value.
            if n == 0 || n % 4 != 0 || i + 1 == value.len() || value.get(i + 1) == Some(&b' ') {
                return false;
            }
            continue;
        }
        if !(b.is_ascii_uppercase() || b.is_ascii_digit()) {
            return false;
        }
        match compact.get_mut(n) {
            Some(slot) => *slot = b,
            None => return false,
        }
        n += 1;
    }
    // Grouped values are grouped throughout.
    if value.contains(&b' ') && value.iter().filter(|&&b| b == b' ').count() != (n - 1) / 4 {
        return false;
    }
    let Some(compact) = compact.get(..n) else { return false };
    let (Some(country), Some(check)) = (compact.get(..2), compact.get(2..4)) else { return false };
    if !country.iter().all(u8::is_ascii_uppercase) || !check.iter().all(u8::is_ascii_digit) {
        return false;
    }
    if iban_length(country) != Some(n) {
        return false;
    }
    let (Some(head), Some(bban)) = (compact.get(..4), compact.get(4..)) else { return false };
    let mut rem = 0u32;
    for &b in bban.iter().chain(head) {
        rem = if b.is_ascii_digit() {
            (rem * 10 + u32::from(b - b'0')) % 97
        } else {
            (rem * 100 + u32::from(b - b'A') + 10) % 97
        };
    }
    rem == 1
}

// ------------------------------------------------------------------------------------------------
// US SSN

/// A US social security number: `AAA-GG-SSSS`, `AAA GG SSSS` or nine digits, with no area 000,
/// 666 or 900-999, no group 00 and no serial 0000. (Nine bare digits count only after a keyword;
/// that is the caller's context check.)
pub fn us_ssn(value: &[u8]) -> bool {
    let (area, group, serial) = match value.len() {
        9 => (value.get(..3), value.get(3..5), value.get(5..)),
        11 => {
            let sep = value.get(3).copied();
            if !matches!(sep, Some(b'-' | b' ')) || value.get(6).copied() != sep {
                return false;
            }
            (value.get(..3), value.get(4..6), value.get(7..))
        }
        _ => return false,
    };
    let (Some(area), Some(group), Some(serial)) = (area, group, serial) else { return false };
    let num = |s: &[u8]| prefix(s, s.len());
    let (Some(a), Some(g), Some(s)) = (num(area), num(group), num(serial)) else { return false };
    a != 0 && a != 666 && a < 900 && g != 0 && s != 0
}

// ------------------------------------------------------------------------------------------------
// Phone numbers

#[derive(Debug, Clone, Copy, Default)]
struct Group {
    start: usize,
    end: usize,
    paren: bool,
    /// The separator before this group (0: none).
    sep: u8,
}

impl Group {
    fn len(&self) -> usize {
        self.end - self.start
    }
}

/// Splits a phone candidate into digit groups, each optionally in parentheses, joined by at most
/// one separator (space, dash, dot or slash).
fn phone_groups(v: &[u8]) -> Option<([Group; 8], usize)> {
    let mut out = [Group::default(); 8];
    let mut n = 0usize;
    let mut i = 0usize;
    let mut sep = 0u8;
    while let Some(&b) = v.get(i) {
        if n > 0 && sep == 0 && matches!(b, b' ' | b'-' | b'.' | b'/') {
            sep = b;
            i += 1;
            continue;
        }
        let paren = b == b'(';
        if paren {
            i += 1;
        }
        let start = i;
        while v.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let end = i;
        if end == start {
            return None;
        }
        if paren {
            if v.get(i) != Some(&b')') {
                return None;
            }
            i += 1;
        }
        *out.get_mut(n)? = Group { start, end, paren, sep };
        n += 1;
        sep = 0;
    }
    (sep == 0 && n > 0).then_some((out, n))
}

/// A phone number: E.164 (`+`, country code, 7-15 digits in all, separators space, dash, dot or
/// parentheses) or a common national format: US/NANP `(415) 555-0132`, `415-555-0132`,
/// `415.555.0132`, `1-800-555-0199`; UK `020 7946 0958`, `0161 496 0000`, `07700 900123`; FR
/// `01 23 45 67 89`; DE `030 1234567`, `030/1234567`; JP `03-1234-5678`. A bare digit run is
/// never a phone number unless it starts with `+`.
pub fn phone(value: &[u8]) -> bool {
    match value.strip_prefix(b"+") {
        Some(rest) => e164(rest),
        None => national(value),
    }
}

fn e164(v: &[u8]) -> bool {
    let Some((groups, n)) = phone_groups(v) else { return false };
    let Some(groups) = groups.get(..n) else { return false };
    let Some(first) = groups.first() else { return false };
    if first.paren || v.first().is_none_or(|&b| b == b'0') {
        return false;
    }
    if groups.iter().any(|g| g.sep == b'/') || groups.iter().filter(|g| g.paren).count() > 1 {
        return false;
    }
    let digits: usize = groups.iter().map(Group::len).sum();
    (7..=15).contains(&digits)
}

fn national(v: &[u8]) -> bool {
    let Some((groups, n)) = phone_groups(v) else { return false };
    let Some(groups) = groups.get(..n) else { return false };
    nanp(v, groups) || uk(v, groups) || fr(v, groups) || de(v, groups) || jp(v, groups)
}

fn digits_of<'a>(v: &'a [u8], g: &Group) -> &'a [u8] {
    v.get(g.start..g.end).unwrap_or_default()
}

/// Starts with 0 then 1-9 (a national trunk prefix then an area code).
fn trunk(v: &[u8], g: &Group) -> bool {
    let d = digits_of(v, g);
    d.first() == Some(&b'0') && d.get(1).is_some_and(|&b| (b'1'..=b'9').contains(&b))
}

fn lens(groups: &[Group]) -> ([usize; 8], usize) {
    let mut out = [0usize; 8];
    for (slot, g) in out.iter_mut().zip(groups) {
        *slot = g.len();
    }
    (out, groups.len())
}

fn nanp(v: &[u8], groups: &[Group]) -> bool {
    let mut groups = groups;
    if groups.len() == 4 {
        let Some((first, rest)) = groups.split_first() else { return false };
        if first.paren || digits_of(v, first) != b"1" {
            return false;
        }
        groups = rest;
    }
    let [area, exchange, line] = groups else { return false };
    let area_ok = area.len() == 3 && digits_of(v, area).first().is_some_and(|&b| b >= b'2');
    let exchange_ok = exchange.len() == 3 && digits_of(v, exchange).first().is_some_and(|&b| b >= b'2');
    if !area_ok || !exchange_ok || line.len() != 4 || exchange.paren || line.paren {
        return false;
    }
    if area.paren {
        matches!(exchange.sep, 0 | b' ') && matches!(line.sep, b'-' | b' ' | b'.')
    } else {
        matches!(exchange.sep, b' ' | b'-' | b'.') && line.sep == exchange.sep
    }
}

fn no_parens(groups: &[Group]) -> bool {
    groups.iter().all(|g| !g.paren)
}

fn same_sep(groups: &[Group], allowed: &[u8]) -> bool {
    let mut seps = groups.iter().skip(1).map(|g| g.sep);
    match seps.next() {
        Some(first) => allowed.contains(&first) && seps.all(|s| s == first),
        None => false,
    }
}

fn uk(v: &[u8], groups: &[Group]) -> bool {
    let Some(first) = groups.first() else { return false };
    let (l, n) = lens(groups);
    let shape = matches!((n, l), (3, [3, 4, 4, ..]) | (3, [4, 3, 4, ..]) | (2, [5, 6, ..]));
    shape && no_parens(groups) && trunk(v, first) && same_sep(groups, b" ")
}

fn fr(v: &[u8], groups: &[Group]) -> bool {
    let Some(first) = groups.first() else { return false };
    groups.len() == 5
        && groups.iter().all(|g| g.len() == 2)
        && no_parens(groups)
        && trunk(v, first)
        && same_sep(groups, b" .-")
}

fn de(v: &[u8], groups: &[Group]) -> bool {
    let [area, number] = groups else { return false };
    (3..=6).contains(&area.len())
        && (5..=8).contains(&number.len())
        && (10..=12).contains(&(area.len() + number.len()))
        && no_parens(groups)
        && trunk(v, area)
        && matches!(number.sep, b' ' | b'/' | b'-')
}

fn jp(v: &[u8], groups: &[Group]) -> bool {
    let [area, exchange, line] = groups else { return false };
    let total = area.len() + exchange.len() + line.len();
    (2..=5).contains(&area.len())
        && (1..=4).contains(&exchange.len())
        && line.len() == 4
        && (10..=11).contains(&total)
        && no_parens(groups)
        && trunk(v, area)
        && same_sep(groups, b"-")
}

// ------------------------------------------------------------------------------------------------
// Email

/// File extensions that look like top-level domains in asset names such as `icon@2x.png`.
const FILE_EXTENSIONS: &[&[u8]] =
    &[b"png", b"jpg", b"jpeg", b"gif", b"svg", b"webp", b"bmp", b"ico", b"tif", b"tiff", b"heic", b"avif"];

/// An email address: a dot-atom local part of at most 64 characters (letters, digits, `_ % + -`,
/// dots between atoms), `@`, and a domain of at most 253 characters with at least two labels of
/// letters, digits and inner hyphens, the last one a top-level domain of 2-63 letters (image file
/// extensions excluded).
pub fn email(value: &[u8]) -> bool {
    let mut parts = value.splitn(2, |&b| b == b'@');
    let (Some(local), Some(domain)) = (parts.next(), parts.next()) else { return false };
    if local.is_empty() || local.len() > 64 || domain.len() > 253 {
        return false;
    }
    let local_ok = local
        .split(|&b| b == b'.')
        .all(|atom| !atom.is_empty() && atom.iter().all(|&b| b.is_ascii_alphanumeric() || b"_%+-".contains(&b)));
    if !local_ok {
        return false;
    }
    let mut labels = 0usize;
    let mut last: &[u8] = &[];
    for label in domain.split(|&b| b == b'.') {
        let ok = (1..=63).contains(&label.len())
            && label.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-')
            && label.first() != Some(&b'-')
            && label.last() != Some(&b'-');
        if !ok {
            return false;
        }
        labels += 1;
        last = label;
    }
    labels >= 2
        && (2..=63).contains(&last.len())
        && last.iter().all(u8::is_ascii_alphabetic)
        && !FILE_EXTENSIONS.iter().any(|ext| ext.eq_ignore_ascii_case(last))
}

// ------------------------------------------------------------------------------------------------
// IP addresses

/// A dotted-quad IPv4 address: four decimal octets 0-255, no leading zeros (a lone `0` is fine).
pub fn ipv4(value: &[u8]) -> bool {
    let mut count = 0usize;
    for part in value.split(|&b| b == b'.') {
        count += 1;
        let ok = (1..=3).contains(&part.len())
            && part.iter().all(u8::is_ascii_digit)
            && !(part.len() > 1 && part.first() == Some(&b'0'))
            && prefix(part, part.len()).is_some_and(|n| n <= 255);
        if !ok || count > 4 {
            return false;
        }
    }
    count == 4
}

/// An IPv6 address, full or `::`-compressed (an embedded dotted IPv4 tail allowed), as
/// `std::net::Ipv6Addr` parses it, with at least two colons and one hex digit (so `12:30:45`, a
/// MAC address or `::` alone are not).
pub fn ipv6(value: &[u8]) -> bool {
    let colons = value.iter().filter(|&&b| b == b':').count();
    if colons < 2 || !value.iter().any(u8::is_ascii_hexdigit) {
        return false;
    }
    std::str::from_utf8(value).is_ok_and(|s| s.parse::<Ipv6Addr>().is_ok())
}

// ------------------------------------------------------------------------------------------------
// JWT

/// base64url, padding optional, non-canonical trailing bits tolerated.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn json_object(segment: &[u8]) -> Option<serde_json::Map<String, serde_json::Value>> {
    let bytes = B64URL.decode(segment).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A JSON Web Token (JWS compact form): three base64url segments; the first two decode to JSON
/// objects and the header has an `"alg"` string; the signature is valid base64url, and empty only
/// for `"alg": "none"`.
pub fn jwt(value: &[u8]) -> bool {
    let mut parts = value.split(|&b| b == b'.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    if header.is_empty()
        || payload.is_empty()
        || ![header, payload, signature].iter().all(|s| s.iter().all(|&b| is_b64url(b)))
    {
        return false;
    }
    if signature.len() % 4 == 1 || (!signature.is_empty() && B64URL.decode(signature).is_err()) {
        return false;
    }
    // An empty signature only goes with `"alg": "none"` (an unsecured JWT).
    let header_ok = json_object(header).is_some_and(|h| match h.get("alg").and_then(serde_json::Value::as_str) {
        Some(alg) => !signature.is_empty() || alg.eq_ignore_ascii_case("none"),
        None => false,
    });
    header_ok && json_object(payload).is_some()
}

// ------------------------------------------------------------------------------------------------
// Secrets and API keys

/// Whether a secret body looks randomly generated rather than a placeholder: at least six distinct
/// characters and no character making up much more than a third of it (`xxxx…`, `AAAA…`).
pub fn looks_random(body: &[u8]) -> bool {
    let mut counts = [0u16; 256];
    for &b in body {
        if let Some(c) = counts.get_mut(usize::from(b)) {
            *c = c.saturating_add(1);
        }
    }
    let distinct = counts.iter().filter(|&&c| c > 0).count();
    let max = usize::from(counts.iter().copied().max().unwrap_or(0));
    distinct >= body.len().min(6) && max * 3 <= body.len() + 6
}

/// How many of lower-case letters, upper-case letters and digits occur.
pub fn char_classes(body: &[u8]) -> usize {
    [u8::is_ascii_lowercase, u8::is_ascii_uppercase, u8::is_ascii_digit]
        .iter()
        .filter(|class| body.iter().any(**class))
        .count()
}

fn all_in(body: &[u8], ok: fn(u8) -> bool) -> bool {
    body.iter().all(|&b| ok(b))
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// An OpenAI API key: `sk-` (also `sk-proj-`, `sk-svcacct-`, ...) and at least 20 more characters
/// of letters, digits, `-` and `_`, random-looking, mixing at least two of lower case, upper case
/// and digits; never `sk-ant-` (Anthropic).
pub fn openai_key(value: &[u8]) -> bool {
    let Some(body) = value.strip_prefix(b"sk-") else { return false };
    !value.starts_with(b"sk-ant-")
        && body.len() >= 20
        && all_in(body, is_b64url)
        && looks_random(body)
        && char_classes(body) >= 2
}

/// An Anthropic API key: `sk-ant-` (`api03-`, `admin01-`, ...) and at least 80 more characters of
/// letters, digits, `-` and `_`, random-looking.
pub fn anthropic_key(value: &[u8]) -> bool {
    let Some(body) = value.strip_prefix(b"sk-ant-") else { return false };
    body.len() >= 80 && all_in(body, is_b64url) && looks_random(body) && char_classes(body) >= 2
}

/// An AWS access key id: `AKIA` (long-term) or `ASIA` (temporary) and 16 upper-case base32
/// characters (`A-Z`, `2-7`), not a placeholder.
pub fn aws_access_key(value: &[u8]) -> bool {
    let body = match value.get(..4) {
        Some(b"AKIA" | b"ASIA") => value.get(4..).unwrap_or_default(),
        _ => return false,
    };
    body.len() == 16 && all_in(body, |b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)) && looks_random(body)
}

/// A GitHub token: `ghp_`, `gho_`, `ghu_`, `ghs_` or `ghr_` and 36 letters or digits, or a
/// fine-grained `github_pat_` with 22 and 59 of them joined by `_`.
pub fn github_token(value: &[u8]) -> bool {
    if let Some(rest) = value.strip_prefix(b"github_pat_") {
        let (Some(a), Some(sep), Some(b)) = (rest.get(..22), rest.get(22), rest.get(23..)) else { return false };
        return *sep == b'_' && b.len() == 59 && all_in(a, is_alnum) && all_in(b, is_alnum) && looks_random(rest);
    }
    let kind_ok = matches!(value.get(..4), Some(b"ghp_" | b"gho_" | b"ghu_" | b"ghs_" | b"ghr_"));
    let body = value.get(4..).unwrap_or_default();
    kind_ok && body.len() == 36 && all_in(body, is_alnum) && looks_random(body)
}

/// A Slack token: `xoxa-`, `xoxb-`, `xoxp-`, `xoxr-` or `xoxs-` and at least 20 characters of
/// dash-joined segments of letters and digits, with at least two segments and some digits.
pub fn slack_token(value: &[u8]) -> bool {
    let kind_ok = matches!(value.get(..5), Some(b"xoxa-" | b"xoxb-" | b"xoxp-" | b"xoxr-" | b"xoxs-"));
    let body = value.get(5..).unwrap_or_default();
    kind_ok
        && body.len() >= 20
        && body.split(|&b| b == b'-').all(|seg| !seg.is_empty() && all_in(seg, is_alnum))
        && body.contains(&b'-')
        && body.iter().any(u8::is_ascii_digit)
        && looks_random(body)
}

/// A Google API key: `AIza` and 35 characters of letters, digits, `-` and `_`.
pub fn google_api_key(value: &[u8]) -> bool {
    let Some(body) = value.strip_prefix(b"AIza") else { return false };
    body.len() == 35 && all_in(body, is_b64url) && looks_random(body)
}

/// The token of an `Authorization: Bearer` credential: at least 20 characters of the RFC 6750
/// `b64token` alphabet (letters, digits, `- . _ ~ + /`, trailing `=`), random-looking and mixing
/// at least two of lower case, upper case and digits (so `YOUR_ACCESS_TOKEN_HERE` is not one).
pub fn bearer_token(token: &[u8]) -> bool {
    let body = match token.iter().position(|&b| b == b'=') {
        Some(i) => {
            if !token.get(i..).unwrap_or_default().iter().all(|&b| b == b'=') {
                return false;
            }
            token.get(..i).unwrap_or_default()
        }
        None => token,
    };
    token.len() >= 20
        && all_in(body, |b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
        && looks_random(body)
        && char_classes(body) >= 2
}

/// The PEM kinds of private key block recognised.
pub const PRIVATE_KEY_KINDS: [&str; 6] = ["", "RSA ", "EC ", "OPENSSH ", "DSA ", "ENCRYPTED "];

/// A PEM private key block: `-----BEGIN <kind>PRIVATE KEY-----`, a body with at least 16 base64
/// characters and no other `-----` marker, and the matching `-----END <kind>PRIVATE KEY-----`.
pub fn private_key_block(value: &[u8]) -> bool {
    let Some(rest) = value.strip_prefix(b"-----BEGIN ") else { return false };
    let Some(kind) = PRIVATE_KEY_KINDS.iter().find(|k| {
        rest.starts_with(k.as_bytes()) && rest.get(k.len()..).is_some_and(|r| r.starts_with(b"PRIVATE KEY-----"))
    }) else {
        return false;
    };
    let begin_len = "-----BEGIN ".len() + kind.len() + "PRIVATE KEY-----".len();
    let end_len = "-----END ".len() + kind.len() + "PRIVATE KEY-----".len();
    let Some(end_marker) = value.len().checked_sub(end_len).and_then(|i| value.get(i..)) else { return false };
    let end_ok = end_marker.strip_prefix(b"-----END ").and_then(|r| r.strip_prefix(kind.as_bytes()))
        == Some(b"PRIVATE KEY-----");
    let Some(body) = value.get(begin_len..value.len().saturating_sub(end_len)) else { return false };
    end_ok && !body.windows(5).any(|w| w == b"-----") && pem_body_ok(body)
}

/// At least 16 base64 characters (line breaks, JSON `\n` escapes and PEM headers allowed).
fn pem_body_ok(body: &[u8]) -> bool {
    body.iter().filter(|&&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/').count() >= 16
}
