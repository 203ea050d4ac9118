//! Candidate regexes (one per family of entities) and the context checks around each candidate:
//! word boundaries, "part of a longer number" rules and keywords. The structural decision is
//! [`super::validate`]'s.
//!
//! Every pattern is linear-time (`regex`, Unicode off, ASCII classes) and starts with a byte that
//! cannot occur inside a multi-byte UTF-8 character, so every span is on character boundaries.

use super::national_id;
use super::phone::{self, PhoneRegions};
use super::validate;
use super::Entity;

/// A family of entities sharing one candidate regex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pass {
    /// Prefixed secrets: private key blocks, JWTs and the API key families.
    Tokens,
    Bearer,
    Email,
    Card,
    Ssn,
    /// `+` and a country code.
    PhoneIntl,
    /// A parenthesised area code first: `(415) 555-0132`, `1 (800) 555-0199`.
    PhoneParen,
    /// Digit groups: `415-555-0132`, `020 7946 0958`, `030/1234567`.
    PhoneNational,
    Iban,
    Ipv4,
    Ipv6,
    /// Digit-only national identifiers (NHS, BSN, PESEL, CPF, CNPJ, Aadhaar, SIN, TFN, Medicare,
    /// Steuer-ID, NIR, personnummer).
    NationalId,
    /// National identifiers with letters (NINO, DNI, NIE, codice fiscale, PAN, NRIC, HETU).
    LetterIds,
}

impl Pass {
    pub(super) const ALL: [Pass; 13] = [
        Pass::Tokens,
        Pass::Bearer,
        Pass::Email,
        Pass::Card,
        Pass::Ssn,
        Pass::PhoneIntl,
        Pass::PhoneParen,
        Pass::PhoneNational,
        Pass::Iban,
        Pass::Ipv4,
        Pass::Ipv6,
        Pass::NationalId,
        Pass::LetterIds,
    ];

    /// The entities this pass can report.
    pub(super) fn entities(self) -> &'static [Entity] {
        match self {
            Pass::Tokens => &[
                Entity::PrivateKey,
                Entity::Jwt,
                Entity::OpenAiKey,
                Entity::AnthropicKey,
                Entity::AwsAccessKey,
                Entity::GithubToken,
                Entity::SlackToken,
                Entity::GoogleApiKey,
            ],
            Pass::Bearer => &[Entity::BearerToken],
            Pass::Email => &[Entity::Email],
            Pass::Card => &[Entity::PaymentCard],
            Pass::Ssn => &[Entity::UsSsn],
            Pass::PhoneIntl | Pass::PhoneParen | Pass::PhoneNational => &[Entity::Phone],
            Pass::Iban => &[Entity::Iban],
            Pass::Ipv4 => &[Entity::Ipv4],
            Pass::Ipv6 => &[Entity::Ipv6],
            Pass::NationalId => &[
                Entity::UkNhs,
                Entity::NlBsn,
                Entity::PlPesel,
                Entity::BrCpf,
                Entity::BrCnpj,
                Entity::InAadhaar,
                Entity::CaSin,
                Entity::AuTfn,
                Entity::AuMedicare,
                Entity::DeTaxId,
                Entity::FrNir,
                Entity::SePersonnummer,
                Entity::FiHetu,
            ],
            Pass::LetterIds => &[
                Entity::UkNino,
                Entity::EsDni,
                Entity::EsNie,
                Entity::ItFiscalCode,
                Entity::InPan,
                Entity::SgNric,
                Entity::FiHetu,
            ],
        }
    }

    /// The candidate regex (compiled with Unicode mode off).
    ///
    /// The digit-based patterns start with a digit (never an optional literal or a keyword) so
    /// that the engine can skip text without digits with its vectorised prefilter; keywords
    /// (`SSN`) and country codes (IBAN) are checked around the candidate instead.
    pub(super) fn pattern(self) -> &'static str {
        match self {
            Pass::Tokens => concat!(
                r"-----BEGIN (?:RSA |EC |OPENSSH |DSA |ENCRYPTED )?PRIVATE KEY-----",
                r"|(?:eyJ|eyA|ewo|ew0)[A-Za-z0-9_-]*\.(?:eyJ|eyA|ewo|ew0)[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*",
                r"|sk-[A-Za-z0-9_-]+",
                r"|A[KS]IA[A-Z0-9]+",
                r"|gh[pousr]_[A-Za-z0-9]+|github_pat_[A-Za-z0-9_]+",
                r"|xox[abprs]-[A-Za-z0-9-]+",
                r"|AIza[A-Za-z0-9_-]+",
            ),
            Pass::Bearer => r"(?i:bearer)[ \t]+[A-Za-z0-9._~+/-]+=*",
            Pass::Email => concat!(
                r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*@",
                r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,63}",
            ),
            // Bare, or groups joined by one kind of separator; the validator checks the layout.
            Pass::Card => concat!(
                r"[0-9]{12,19}|[0-9]{4,6}(?: [0-9]{1,13}){1,5}|[0-9]{4,6}(?:-[0-9]{1,13}){1,5}",
                r"|[0-9]{4,6}(?:\.[0-9]{1,13}){1,5}",
            ),
            Pass::Ssn => r"[0-9]{3}-[0-9]{2}-[0-9]{4}|[0-9]{3} [0-9]{2} [0-9]{4}|[0-9]{9}",
            // `+` or an exit code (`00`, `011`, `001`) and the country code.
            Pass::PhoneIntl => concat!(
                r"\+[0-9]{1,3}(?:[ .-]?(?:\([0-9]{1,5}\)|[0-9]{1,8})){0,8}",
                r"|0(?:0|11)[ .-]?[1-9][0-9]{0,3}(?:[ .-]?(?:\([0-9]{1,5}\)|[0-9]{1,8})){1,8}",
            ),
            // The parentheses may hold the trunk and the area code apart: `(06 1) 234 5678`.
            Pass::PhoneParen => {
                r"(?:[0-9][ .-])?\([0-9]{1,5}(?:[ -][0-9]{1,4})?\)[ -]?(?:[0-9]{2,8}[ ./-]){0,4}[0-9]{2,10}"
            }
            // A bare run counts only after a word naming a phone (checked in `confirm`). Inner
            // groups may be one digit (`0800 1 23 45`, `21 23 4 56789`).
            Pass::PhoneNational => r"[0-9]{1,6}[ ./-](?:[0-9]{1,10}[ ./-]){0,4}[0-9]{2,10}|[0-9]{5,15}",
            // Check digits first; the country code is the two letters before.
            Pass::Iban => r"[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?",
            Pass::Ipv4 => r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}",
            Pass::Ipv6 => r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,8}(?:\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})?",
            // Digit groups; the layout and the check digits are [`national_id`]'s to decide.
            Pass::NationalId => r"[0-9]{1,15}(?:[ ./+-][0-9]{1,12}){0,6}",
            Pass::LetterIds => national_id::LETTER_ID_PATTERN,
        }
    }

    /// Whether this pass runs only inside digit clusters ([`super::clusters`]) rather than over
    /// the whole text.
    pub(super) fn gated(self) -> bool {
        matches!(
            self,
            Pass::Card
                | Pass::Ssn
                | Pass::PhoneIntl
                | Pass::PhoneParen
                | Pass::PhoneNational
                | Pass::Iban
                | Pass::Ipv4
                | Pass::NationalId
        )
    }

    /// Whether this pass runs only at the literal prefixes found by [`super::anchors`].
    pub(super) fn anchored(self) -> bool {
        matches!(self, Pass::Tokens | Pass::Bearer)
    }

    /// Whether this pass runs only around digit runs next to a capital letter.
    pub(super) fn letter_gated(self) -> bool {
        self == Pass::LetterIds
    }

    /// Whether this pass runs only around colons that may belong to an IPv6 address.
    pub(super) fn colon_gated(self) -> bool {
        self == Pass::Ipv6
    }

    /// Whether a candidate of this pass can start in `cluster` (a cheap necessary condition).
    pub(super) fn may_match(self, text: &[u8], c: &super::clusters::Cluster) -> bool {
        let body = text.get(c.start..c.end).unwrap_or_default();
        // Every candidate needs a clear left edge. In a cluster glued to a word on the left
        // (capitals before its digits: `LZ4 536-22-8714`, `DE89 3704 0044`), no candidate starts
        // in the first digit run, and one may start after it (a run glued to letters heads no
        // number), so only the rest of the cluster counts below (IPv4 and IBANs excepted: they
        // have their own left edges). Phones also need a clear right edge and reject a space,
        // dot, dash or slash and a digit after them, so a cluster glued on the right holds none.
        // A bare run is one candidate or none. Parentheses and `+` inside make no such promise.
        let plain = !body.iter().any(|b| matches!(b, b'(' | b')' | b'+'));
        let glued_left = plain && before(text, c.start).is_some_and(is_word);
        let glued_right = plain && at(text, c.end).is_some_and(is_word);
        let (digits, joined) = if glued_left {
            // One joiner separates digit groups in a plain cluster.
            let head = body.iter().take_while(|b| b.is_ascii_digit()).count();
            let rest = body.get(head + 1..).unwrap_or_default();
            (c.digits.saturating_sub(head), rest.iter().any(|b| !b.is_ascii_digit()))
        } else {
            (c.digits, c.joined)
        };
        match self {
            Pass::Iban => {
                let country = c.start.checked_sub(2).and_then(|i| text.get(i..c.start)).unwrap_or_default();
                country.len() == 2
                    && country.iter().all(u8::is_ascii_uppercase)
                    && body.get(..2).is_some_and(|d| d.iter().all(u8::is_ascii_digit))
            }
            Pass::Ipv4 => c.dots >= 3 && c.digits >= 4,
            Pass::Card => {
                if joined {
                    digits >= 12
                } else {
                    (12..=19).contains(&digits) && !glued_right
                }
            }
            Pass::Ssn => {
                if joined {
                    digits >= 9
                } else {
                    digits == 9 && !glued_right
                }
            }
            // An extension glued on the right (`555.555.5555x123`) belongs to the number.
            Pass::NationalId if glued_right => false,
            _ if glued_right && phone::extension_end(text, c.end).is_none() => false,
            Pass::PhoneIntl => {
                (digits >= 7 || (digits >= phone::SHORT_PHONE_DIGITS && phone::context_before(text, c.start)))
                    && (body.contains(&b'+')
                        || body.windows(2).any(|w| w == b"00")
                        || body.windows(3).any(|w| w == b"011"))
            }
            Pass::PhoneParen => digits >= 7 && body.contains(&b'('),
            Pass::NationalId => digits >= 9,
            Pass::PhoneNational => {
                (digits >= 7 && joined)
                    || (!joined && (9..=11).contains(&digits))
                    || ((phone::SHORT_PHONE_DIGITS..=15).contains(&digits) && phone::context_before(text, c.start))
            }
            Pass::Tokens | Pass::Bearer | Pass::Email | Pass::Ipv6 | Pass::LetterIds => false,
        }
    }

    /// How far past the cluster start a candidate of this pass may reach (IBANs run on through
    /// letters, which end a cluster).
    pub(super) fn window_end(self, text_len: usize, c: &super::clusters::Cluster) -> usize {
        match self {
            Pass::Iban => (c.start + 48).min(text_len),
            _ => c.end,
        }
    }

    /// Where to look next after a rejected candidate at `start..end`: past it, or (for short
    /// patterns whose rejected candidate may hide a real one starting inside it) one byte on.
    /// A candidate starting with the digits of a word (`B2 415-555-0132`, `_1 (709) 667-7016`)
    /// is rejected for its left edge, and the value after the word's digits may stand alone:
    /// look again right after them.
    pub(super) fn resume_after_reject(self, text: &[u8], start: usize, end: usize) -> usize {
        match self {
            Pass::Ipv6 | Pass::Iban | Pass::LetterIds => start + 1,
            Pass::Card | Pass::Ssn | Pass::PhoneParen | Pass::PhoneNational
                if before(text, start).is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                    && digit_run(text, start) > 0 =>
            {
                start + digit_run(text, start)
            }
            // A trunk digit before parentheses (`8 (912) 345-67-89`) that is the tail of a word
            // or number: the writing from the parenthesis on may stand alone.
            Pass::PhoneParen
                if is_digit(at(text, start))
                    && matches!(at(text, start + 1), Some(b' ' | b'.' | b'-'))
                    && at(text, start + 2) == Some(b'(') =>
            {
                start + 2
            }
            // A card's groups may follow another number (`ref 12 4111 1111 1111 1111`): look
            // again at the next group.
            Pass::Card if matches!(at(text, start + digit_run(text, start)), Some(b' ' | b'-' | b'.')) => {
                (start + digit_run(text, start) + 1).min(end.max(start + 1))
            }
            _ => end.max(start + 1),
        }
    }
}

/// A confirmed candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Found {
    pub entity: Entity,
    pub start: usize,
    pub end: usize,
    /// What the detection rests on, which ranks it against another of the same span.
    pub evidence: Evidence,
}

/// What a detection rests on, from the strongest: between equal spans a stronger one wins
/// whatever the entities' specificity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Evidence {
    /// Its writing, keyword or prefix (every entity's usual case).
    Written,
    /// A national id accepted without its keyword or printed form (a checksum and a date or
    /// digit rule): it yields to a phone or card of the same span.
    BareId,
    /// A bare run of digits that is a valid national phone number of a listed region: most
    /// numbers of its length are, so a bare id (two check digits, a date) of the same span wins.
    BarePhone,
}

fn at(text: &[u8], i: usize) -> Option<u8> {
    text.get(i).copied()
}

/// The byte before `i`, or a space where an escape sequence (`\n`, `\t`, `\u00a0`, ...) ends
/// there: the escape is a boundary, not a letter glued to the value.
fn before(text: &[u8], i: usize) -> Option<u8> {
    if super::clusters::escape_ends_at(text, i) {
        return Some(b' ');
    }
    i.checked_sub(1).and_then(|j| text.get(j).copied())
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn is_digit(b: Option<u8>) -> bool {
    b.is_some_and(|b| b.is_ascii_digit())
}

/// Not glued to a letter, digit or underscore on the left, and not the tail of a longer number.
///
/// A digit and a separator (space, dot, dash or slash) right before the candidate make it such a
/// tail only when that digit's run is a number the candidate's format would join:
/// - A run glued to letters ends a word and heads no number (`token Lz4 536-22-8714`,
///   `abc9 4111 1111 1111 1111`), except an IBAN's country code and check digits (`DE89 3704 …`)
///   before a spaced format: those groups belong to the IBAN, not to a card or phone inside it.
/// - A dot, dash or slash always joins, whatever the format: `0.4111111111111111` is a decimal,
///   `12-536-22-8714` an id, `1/415-555-0132` a fraction or a path.
/// - A space joins when the candidate's own format groups digits with spaces (`spaced_format`):
///   spaced cards and SSNs (`1234 4111 1111 1111 1111`, `12 536 22 8714`), and every phone, whose
///   formats mix separators (`1 415-555-0132`), so `Room 12 415-555-0132` stays unreported. A
///   format that never holds a space is a number of its own after one: `12 536-22-8714` is
///   reported as an SSN and `ref 12 4111-1111-1111-1111` as a card (a value that reads as
///   sensitive on its own; the redactor errs towards finding it).
fn clear_left_of_number(text: &[u8], start: usize, spaced_format: bool) -> bool {
    match before(text, start) {
        None => true,
        Some(b) if is_word(b) => false,
        Some(sep @ (b' ' | b'.' | b'-' | b'/')) => {
            let head_end = start - 1;
            let head = text.get(..head_end).unwrap_or_default().iter().rev().take_while(|b| b.is_ascii_digit()).count();
            if head == 0 {
                return true;
            }
            let head_start = head_end - head;
            if before(text, head_start).is_some_and(|b| b.is_ascii_alphabetic() || b == b'_') {
                return !(sep == b' ' && spaced_format && iban_head(text, head_start, head));
            }
            sep == b' ' && !spaced_format
        }
        Some(_) => true,
    }
}

/// Whether the `len` digits at `digits_start` read as an IBAN's check digits: exactly two, after
/// a word of two capitals (`DE89`; the country is not checked: `US36 4220 3336 4241 0352 46` is a
/// malformed IBAN, not a card after a word).
fn iban_head(text: &[u8], digits_start: usize, len: usize) -> bool {
    let Some(country_start) = digits_start.checked_sub(2) else { return false };
    len == 2
        && text.get(country_start..digits_start).is_some_and(|cc| cc.iter().all(u8::is_ascii_uppercase))
        && !before(text, country_start).is_some_and(is_word)
}

/// Not glued to a letter, digit or underscore on the right.
fn clear_right_of_word(text: &[u8], end: usize) -> bool {
    at(text, end).is_none_or(|b| !is_word(b))
}

/// Whether `text[end..]` starts with `sep` and then a digit.
fn continues_with(text: &[u8], end: usize, seps: &[u8]) -> bool {
    at(text, end).is_some_and(|b| seps.contains(&b)) && is_digit(at(text, end + 1))
}

/// Confirms the regex candidate `start..end` of `pass`, possibly narrowing or widening it.
pub(super) fn confirm(
    pass: Pass,
    text: &[u8],
    start: usize,
    end: usize,
    regions: &PhoneRegions,
    enabled: impl Fn(Entity) -> bool,
) -> Option<Found> {
    let value = text.get(start..end)?;
    let found = |entity| Some(Found { entity, start, end, evidence: Evidence::Written });
    match pass {
        Pass::Tokens => confirm_token(text, start, end, value),
        Pass::Bearer => confirm_bearer(text, start, value),
        Pass::Email => confirm_email(text, start, end, value),
        Pass::Card => confirm_card(text, start, end),
        Pass::Ssn => confirm_ssn(text, start, end, value),
        Pass::PhoneIntl | Pass::PhoneParen | Pass::PhoneNational => confirm_phone(pass, text, start, end, regions),
        Pass::Iban => confirm_iban(text, start, value),
        Pass::Ipv4 => {
            let left_ok = match before(text, start) {
                None => true,
                Some(b) if is_word(b) => false,
                Some(b'.') => !before(text, start - 1).is_some_and(|b| b.is_ascii_alphanumeric()),
                // A product token in a user agent: `Chrome/120.0.0.0`.
                Some(b'/') => !before(text, start - 1).is_some_and(|b| b.is_ascii_alphabetic()),
                Some(_) => true,
            };
            let right_ok = clear_right_of_word(text, end)
                && !(at(text, end) == Some(b'.') && at(text, end + 1).is_some_and(is_word));
            (left_ok && right_ok && !after_version_word(text, start) && validate::ipv4(value)).then_some(())?;
            found(Entity::Ipv4)
        }
        Pass::Ipv6 => confirm_ipv6(text, start, end, value),
        Pass::LetterIds => {
            if before(text, start).is_some_and(is_word) || !clear_right_of_word(text, end) {
                return None;
            }
            national_id::classify_letters(text, start, value, enabled).map(|entity| Found {
                entity,
                start,
                end,
                evidence: Evidence::Written,
            })
        }
        Pass::NationalId => {
            let right_ok = clear_right_of_word(text, end) && !continues_with(text, end, b" .-/+");
            if !(right_ok && clear_left_of_number(text, start, true) && before(text, start) != Some(b'+')) {
                return None;
            }
            national_id::classify(text, start, value, enabled).map(|(entity, weak)| Found {
                entity,
                start,
                end,
                evidence: if weak { Evidence::BareId } else { Evidence::Written },
            })
        }
    }
}

/// A phone: `+` and the country code (any 7-15 digits, or valid by the metadata), an exit code
/// (`00`, `011`, `001`) and a valid international number, or a national writing (the fixed
/// formats of [`validate::phone`], or a valid number of a `phone_regions` region,
/// [`phone::national_valid`]). An extension after it (`x123`, ` ext. 12`) belongs to it.
fn confirm_phone(pass: Pass, text: &[u8], start: usize, end: usize, regions: &PhoneRegions) -> Option<Found> {
    let value = text.get(start..end)?;
    let plus = value.first() == Some(&b'+');
    let left_ok = if plus {
        before(text, start).is_none_or(|b| !(is_word(b) || b == b'+'))
    } else if pass == Pass::PhoneIntl {
        // An exit-code writing glued to an id (`xoxc-002544862555-...`) is part of it.
        clear_left_of_number(text, start, true) && !matches!(before(text, start), Some(b'+' | b'-' | b'/' | b'.'))
    } else {
        // A national number right after `+` is the tail of an international one.
        clear_left_of_number(text, start, true) && before(text, start) != Some(b'+')
    };
    let full_end = phone::extension_end(text, end).unwrap_or(end);
    let right_ok = clear_right_of_word(text, full_end) && !continues_with(text, full_end, b" .-/");
    if !(left_ok && right_ok) {
        return None;
    }
    // The digit groups, a `(0)` trunk dropped (`+41 (0)44 668 18 00`).
    let mut groups: [&[u8]; 8] = [&[]; 8];
    let mut n = 0usize;
    let mut rest = value;
    while !rest.is_empty() {
        let skip = rest.iter().take_while(|b| !b.is_ascii_digit()).count();
        let paren = skip > 0 && rest.get(skip - 1) == Some(&b'(');
        rest = rest.get(skip..).unwrap_or_default();
        let len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let (group, tail) = rest.split_at(len.min(rest.len()));
        rest = tail;
        if group.is_empty() || (paren && group == b"0" && n > 0) {
            continue;
        }
        *groups.get_mut(n)? = group;
        n += 1;
    }
    let groups = groups.get(..n)?;
    // Under seven digits only after a word naming a phone, in every writing (the cluster gate
    // lets no shorter candidate through elsewhere), and not right after a verb (`reach 100000
    // users`).
    let digit_count = groups.iter().map(|g| g.len()).sum::<usize>();
    if digit_count < 7 && !phone::short_context_before(text, start) {
        return None;
    }
    let mut evidence = Evidence::Written;
    let ok = if plus {
        validate::phone(value) || international(groups, b"")
    } else if pass == Pass::PhoneIntl {
        [&b"011"[..], b"001", b"00"].iter().any(|exit| international(groups, exit)) || exit_and_country(groups)
    } else {
        // A new national writing glued to an id (`INV-1990-004717`, `-102.543860`) or followed by
        // decimals (`359 220 167,00 €`) is not a phone.
        let glued_id = matches!(before(text, start), Some(b'-' | b'/' | b'.'))
            || (before(text, start) == Some(b' ')
                && start.checked_sub(1).is_some_and(|i| before(text, i) == Some(b')')));
        let decimals = continues_with(text, full_end, b",");
        let writing = national_writing(value, groups);
        // Without a phone word: no dots (`0.207.513.191`, an address), and dashes only on ten
        // digits or more (`02073-1088` is a ZIP+4, `010-981-361` an id) or in the Swedish
        // writing (`08-28 52 31`).
        // A trunk-led dotted writing of ten digits or more (`0436.398.320`, `06.12.34.56.78`) is
        // no version, and no IPv4 address unless it has four groups of up to three digits
        // (`068.153.79.25`, zero-padded).
        let ipv4_shape = groups.len() == 4 && groups.iter().all(|g| g.len() <= 3);
        let dotted_trunk = digit_count >= 10
            && groups.len() >= 3
            && !ipv4_shape
            && groups.first().is_some_and(|g| g.len() >= 2 && g.first() == Some(&b'0') && g.get(1) != Some(&b'0'))
            && value.iter().all(|&b| b.is_ascii_digit() || b == b'.');
        let loose = (value.contains(&b'.') && !dotted_trunk)
            || (value.contains(&b'-')
                && digit_count < 10
                && !matches!(writing, phone::Writing::AreaDash | phone::Writing::Dashed));
        // The phone word is looked for only when the writing alone does not do.
        validate::phone(value)
            || (pass == Pass::PhoneParen && country_in_parens(value, groups))
            || (!glued_id
                && !decimals
                && ((!loose && phone::national_valid(groups, regions, false, writing))
                    || (phone::context_before(text, start) && phone::national_valid(groups, regions, true, writing))
                    || (groups.len() == 1
                        && value.iter().all(u8::is_ascii_digit)
                        && phone::bare_valid(value, regions)
                        && !national_id::after_other_number_word(text, start)
                        && {
                            evidence = Evidence::BarePhone;
                            true
                        })))
    };
    ok.then_some(Found { entity: Entity::Phone, start, end: full_end, evidence })
}

/// A country code in parentheses, then a valid number of that country: `(351) 939 310 499`
/// (Faker's Portuguese writing).
fn country_in_parens(value: &[u8], groups: &[&[u8]]) -> bool {
    let (Some(cc), Some(rest)) = (groups.first(), groups.get(1..)) else { return false };
    let Some((nsn, n)) = concat_digits(rest) else { return false };
    value.starts_with(b"(")
        && value.get(cc.len() + 1) == Some(&b')')
        && (1..=3).contains(&cc.len())
        && cc.first() != Some(&b'0')
        && n >= 8
        && phone::country_valid(cc, nsn.get(..n).unwrap_or_default())
}

/// The digits of `groups`, at most 20.
fn concat_digits(groups: &[&[u8]]) -> Option<([u8; 20], usize)> {
    let mut out = [0u8; 20];
    let mut n = 0usize;
    for &b in groups.iter().flat_map(|g| g.iter()) {
        *out.get_mut(n)? = b;
        n += 1;
    }
    Some((out, n))
}

/// How a national candidate joins its digit `groups` ([`phone::Writing`]).
fn national_writing(value: &[u8], groups: &[&[u8]]) -> phone::Writing {
    use phone::Writing;
    // The separators between the groups, in order (a `(0)` dropped from `groups` is rare in a
    // national writing and makes the candidate `Other`).
    let mut seps = [&b""[..]; 8];
    let mut k = 0usize;
    let mut rest = value.get(value.iter().take_while(|b| !b.is_ascii_digit()).count()..).unwrap_or_default();
    loop {
        rest = rest.get(rest.iter().take_while(|b| b.is_ascii_digit()).count()..).unwrap_or_default();
        let sep_len = rest.iter().take_while(|b| !b.is_ascii_digit()).count();
        if sep_len == 0 || sep_len == rest.len() {
            break;
        }
        let Some(slot) = seps.get_mut(k) else { return Writing::Other };
        *slot = rest.get(..sep_len).unwrap_or_default();
        k += 1;
        rest = rest.get(sep_len..).unwrap_or_default();
    }
    let seps = seps.get(..k).unwrap_or_default();
    if k + 1 != groups.len() || k == 0 {
        return Writing::Other;
    }
    let last = groups.last().map_or(0, |g| g.len());
    let spaces = |s: &[&[u8]]| s.iter().all(|s| *s == b" ");
    if value.first() == Some(&b'(') {
        let rest_ok = seps.iter().skip(1).all(|s| *s == b" " || *s == b"-");
        let first_ok = seps.first().is_some_and(|s| matches!(*s, b")" | b") " | b")-"));
        return if first_ok && rest_ok { Writing::ParenArea } else { Writing::Other };
    }
    let (init, tail) = seps.split_at(k - 1);
    if spaces(seps) || (k >= 2 && spaces(init) && tail == [&b"-"[..]] && last == 4) {
        return Writing::Spaced;
    }
    if k >= 3 && seps.iter().all(|s| *s == b"-") {
        return Writing::Dashed;
    }
    if k >= 2
        && seps.first() == Some(&&b"-"[..])
        && spaces(seps.get(1..).unwrap_or_default())
        && value.first() == Some(&b'0')
    {
        return Writing::AreaDash;
    }
    Writing::Other
}

/// The groups' digits, after the `exit` prefix they must start with, as an international number
/// (with an exit code, at least ten digits after it: `00 49 85 32 55` reads as a list of pairs).
fn international(groups: &[&[u8]], exit: &[u8]) -> bool {
    let mut digits = [0u8; 24];
    let mut n = 0usize;
    for &b in groups.iter().flat_map(|g| g.iter()) {
        let Some(slot) = digits.get_mut(n) else { return false };
        *slot = b;
        n += 1;
    }
    let digits = digits.get(..n).unwrap_or_default();
    digits
        .strip_prefix(exit)
        .is_some_and(|rest| (exit.is_empty() || rest.len() >= 10) && phone::international_valid(rest))
}

/// `00` glued to the country code as the first group, then a valid number of that country:
/// `00298 20 12 34`, `00247 62889` (the small territories' numbers are under ten digits, which
/// [`international`] asks of an exit code written apart).
fn exit_and_country(groups: &[&[u8]]) -> bool {
    let (Some(first), Some(rest)) = (groups.first(), groups.get(1..)) else { return false };
    let Some(cc) = first.strip_prefix(b"00") else { return false };
    let Some((nsn, n)) = concat_digits(rest) else { return false };
    (1..=3).contains(&cc.len()) && n >= 4 && phone::country_valid(cc, nsn.get(..n).unwrap_or_default())
}

/// The candidate, or (when it fails) the candidate less its trailing groups, down to 12 digits:
/// the regex takes every group it can, and a card may be followed by more numbers (`4111 1111
/// 1111 1111 123` with its security code).
fn confirm_card(text: &[u8], start: usize, end: usize) -> Option<Found> {
    let value = text.get(start..end)?;
    let sep = value.iter().copied().find(|b| !b.is_ascii_digit());
    if !clear_left_of_number(text, start, sep == Some(b' ')) {
        return None;
    }
    let mut end = end;
    loop {
        let value = text.get(start..end)?;
        let right_ok = clear_right_of_word(text, end)
            && !continues_with(text, end, b".-")
            && !sep.is_some_and(|s| at(text, end) == Some(s) && digit_run(text, end + 1) >= 4);
        if right_ok && validate::payment_card(value) {
            return Some(Found { entity: Entity::PaymentCard, start, end, evidence: Evidence::Written });
        }
        let sep = sep?;
        let last = value.iter().rposition(|&b| b == sep)?;
        if value.get(..last)?.iter().filter(|b| b.is_ascii_digit()).count() < 12 {
            return None;
        }
        end = start + last;
    }
}

/// The regex cannot start inside a local part, and it ends the domain on the last label's run
/// of letters. A host label may go on with digits and hyphens (`example.com65r` is a valid host
/// name), so such a glued run is the rest of the last label and the address is taken whole
/// (`alice@example.com65r`, issue 20); the letters before it are validated as the TLD (a
/// hyphen the label would end on is not part of it). What follows must not be more domain
/// (`.c0m`), more word or another `@`.
fn confirm_email(text: &[u8], start: usize, end: usize, value: &[u8]) -> Option<Found> {
    let rest = text.get(end..).unwrap_or_default();
    let glued = rest.iter().take_while(|&&b| b.is_ascii_alphanumeric() || b == b'-').count();
    let glued = glued - rest.get(..glued).unwrap_or_default().iter().rev().take_while(|&&b| b == b'-').count();
    let full_end = end + glued;
    let right_ok = at(text, full_end).is_none_or(|b| !(is_word(b) || b == b'@'))
        && !(at(text, full_end) == Some(b'.') && at(text, full_end + 1).is_some_and(is_word));
    (right_ok && validate::email(value)).then_some(())?;
    Some(Found { entity: Entity::Email, start, end: full_end, evidence: Evidence::Written })
}

fn digit_run(text: &[u8], from: usize) -> usize {
    text.get(from..).unwrap_or_default().iter().take_while(|b| b.is_ascii_digit()).count()
}

/// `version 1.2.3.4`, `release: 1.2.3.4`, `build=1.2.3.4`, `rev 1.2.3.4`.
fn after_version_word(text: &[u8], start: usize) -> bool {
    let head = text.get(..start).unwrap_or_default();
    let trimmed = head.len() - head.iter().rev().take_while(|b| matches!(b, b' ' | b'\t' | b':' | b'=')).count();
    let head = head.get(..trimmed).unwrap_or_default();
    let word_len = head.iter().rev().take_while(|b| b.is_ascii_alphabetic()).count();
    let word = head.get(trimmed - word_len..).unwrap_or_default();
    [&b"version"[..], b"ver", b"release", b"build", b"rev", b"revision", b"firmware"]
        .iter()
        .any(|w| w.eq_ignore_ascii_case(word))
}

fn b64_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn confirm_token(text: &[u8], start: usize, end: usize, value: &[u8]) -> Option<Found> {
    let left = before(text, start);
    // Glued to a character of its own kind on the left, or the tail of a dotted token.
    let dotted = left == Some(b'.') && before(text, start - 1).is_some_and(b64_word);
    let glued = |ok: fn(u8) -> bool| dotted || left.is_some_and(ok);
    let found = |entity| Some(Found { entity, start, end, evidence: Evidence::Written });
    if value.starts_with(b"-----BEGIN ") {
        return confirm_private_key(text, start, end);
    }
    if value.starts_with(b"sk-") {
        if glued(b64_word) {
            return None;
        }
        if value.starts_with(b"sk-ant-") {
            return validate::anthropic_key(value).then_some(()).and(found(Entity::AnthropicKey));
        }
        return validate::openai_key(value).then_some(()).and(found(Entity::OpenAiKey));
    }
    if value.starts_with(b"AKIA") || value.starts_with(b"ASIA") {
        let ok = !glued(|b| b.is_ascii_alphanumeric()) && validate::aws_access_key(value);
        return ok.then_some(()).and(found(Entity::AwsAccessKey));
    }
    if value.starts_with(b"gh") || value.starts_with(b"github_pat_") {
        let ok = !glued(is_word) && clear_right_of_word(text, end) && validate::github_token(value);
        return ok.then_some(()).and(found(Entity::GithubToken));
    }
    if value.starts_with(b"xox") {
        let ok = !glued(b64_word) && validate::slack_token(value);
        return ok.then_some(()).and(found(Entity::SlackToken));
    }
    if value.starts_with(b"AIza") {
        let ok = !glued(b64_word) && validate::google_api_key(value);
        return ok.then_some(()).and(found(Entity::GoogleApiKey));
    }
    // JWT: not glued on the left, and not followed by a fourth segment (JWE or something else).
    let more = at(text, end) == Some(b'.') && at(text, end + 1).is_some_and(b64_word);
    let ok = !glued(|b| b64_word(b) || b == b'.') && !more && validate::jwt(value);
    ok.then_some(()).and(found(Entity::Jwt))
}

/// A BEGIN line: the block runs to the first `-----` marker after it, which must be the matching
/// END line.
fn confirm_private_key(text: &[u8], start: usize, begin_end: usize) -> Option<Found> {
    let rest = text.get(begin_end..)?;
    let marker = rest.windows(5).position(|w| w == b"-----")?;
    let begin = text.get(start..begin_end)?;
    let kind = begin.strip_prefix(b"-----BEGIN ")?.strip_suffix(b"PRIVATE KEY-----")?;
    let end_line_len = "-----END ".len() + kind.len() + "PRIVATE KEY-----".len();
    let end = begin_end + marker + end_line_len;
    let block = text.get(start..end)?;
    validate::private_key_block(block).then_some(Found {
        entity: Entity::PrivateKey,
        start,
        end,
        evidence: Evidence::Written,
    })
}

fn confirm_bearer(text: &[u8], start: usize, value: &[u8]) -> Option<Found> {
    if before(text, start).is_some_and(is_word) {
        return None;
    }
    let scheme_and_space = 6 + value.get(6..)?.iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
    let token = value.get(scheme_and_space..)?;
    // A sentence may end right after the token.
    let token_len = token.len() - token.iter().rev().take_while(|&&b| b == b'.').count();
    let token = token.get(..token_len)?;
    let token_start = start + scheme_and_space;
    validate::bearer_token(token).then_some(Found {
        entity: Entity::BearerToken,
        start: token_start,
        end: token_start + token_len,
        evidence: Evidence::Written,
    })
}

fn confirm_ssn(text: &[u8], start: usize, end: usize, value: &[u8]) -> Option<Found> {
    let right_ok = clear_right_of_word(text, end) && !continues_with(text, end, b".-/");
    let spaced_tail = value.get(3) == Some(&b' ') && continues_with(text, end, b" ");
    // Nine bare digits are an SSN only right after a keyword.
    let keyword_ok = value.len() != 9 || ssn_keyword_before(text, start);
    (right_ok
        && !spaced_tail
        && keyword_ok
        && clear_left_of_number(text, start, value.contains(&b' '))
        && validate::us_ssn(value))
    .then_some(Found { entity: Entity::UsSsn, start, end, evidence: Evidence::Written })
}

/// The word (ASCII letters) ending at `end`, and where it starts.
fn word_before(text: &[u8], end: usize) -> (&[u8], usize) {
    let head = text.get(..end).unwrap_or_default();
    let len = head.iter().rev().take_while(|b| b.is_ascii_alphabetic()).count();
    (head.get(end - len..).unwrap_or_default(), end - len)
}

/// Back over at most `max` bytes of punctuation or blanks (not letters, digits or line breaks).
fn skip_punctuation_back(text: &[u8], end: usize, max: usize) -> usize {
    let head = text.get(..end).unwrap_or_default();
    end - head.iter().rev().take(max).take_while(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'\n' | b'\r'))).count()
}

/// `SSN`, `SSN:`, `ssn#`, `SSN is`, `social security number:`, `Social Security No.`,
/// `social-security #` right before `start`.
fn ssn_keyword_before(text: &[u8], start: usize) -> bool {
    let mut i = skip_punctuation_back(text, start, 4);
    let (mut word, mut word_start) = word_before(text, i);
    if word.eq_ignore_ascii_case(b"is") && word_start < i && skip_punctuation_back(text, word_start, 3) < word_start {
        i = skip_punctuation_back(text, word_start, 3);
        (word, word_start) = word_before(text, i);
    }
    let keyword_start = if word.eq_ignore_ascii_case(b"ssn") {
        Some(word_start)
    } else {
        let (mut w, mut ws) = (word, word_start);
        if [&b"number"[..], b"no", b"num"].iter().any(|k| k.eq_ignore_ascii_case(w)) {
            (w, ws) = joined_word_before(text, ws);
        }
        if w.eq_ignore_ascii_case(b"security") {
            let (social, social_start) = joined_word_before(text, ws);
            social.eq_ignore_ascii_case(b"social").then_some(social_start)
        } else {
            None
        }
    };
    keyword_start.is_some_and(|k| !before(text, k).is_some_and(|b| b.is_ascii_alphanumeric()))
}

/// The word before `start` when exactly one space or dash separates them.
fn joined_word_before(text: &[u8], start: usize) -> (&[u8], usize) {
    match before(text, start) {
        Some(b' ' | b'-') => word_before(text, start - 1),
        _ => (&[], start),
    }
}

/// The candidate may run past the IBAN (`BE68 5390 0754 7034 FROM`): cut it at the country's
/// length, then validate.
fn confirm_iban(text: &[u8], digits_start: usize, value: &[u8]) -> Option<Found> {
    let start = digits_start.checked_sub(2)?;
    let country = text.get(start..digits_start)?;
    if !country.iter().all(u8::is_ascii_uppercase) || before(text, start).is_some_and(is_word) {
        return None;
    }
    let want = validate::iban_length(country)?.checked_sub(2)?;
    let mut seen = 0usize;
    let mut len = 0usize;
    for &b in value {
        len += 1;
        if b != b' ' {
            seen += 1;
            if seen == want {
                break;
            }
        }
    }
    // What the cut left over may be a word (`FROM`), not more digits of a longer number.
    if seen != want || value.get(len..).unwrap_or_default().iter().any(u8::is_ascii_digit) {
        return None;
    }
    let end = digits_start + len;
    (clear_right_of_word(text, end) && validate::iban(text.get(start..end)?)).then_some(Found {
        entity: Entity::Iban,
        start,
        end,
        evidence: Evidence::Written,
    })
}

/// Whether the word ending at `colon` (letters, digits, `_`) holds a character that is not a hex
/// digit: a label such as `value` before `value:3bc2:...`, not a group of an address.
fn label_before(text: &[u8], colon: usize) -> bool {
    let head = text.get(colon.saturating_sub(64)..colon).unwrap_or_default();
    head.iter().rev().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_').any(|b| !b.is_ascii_hexdigit())
}

fn confirm_ipv6(text: &[u8], start: usize, end: usize, value: &[u8]) -> Option<Found> {
    let hexish = |b: u8| b.is_ascii_hexdigit() || b == b':';
    let left_ok = match before(text, start) {
        None => true,
        Some(b) if is_word(b) => false,
        // `1:2:3:4:5:6:7:8:9` must not yield `2:3:4:5:6:7:8:9`; `host:fe80::1` is fine, and so is
        // `value:3bc2:...`: a word with a letter past `f` is a label, not a hex group.
        Some(b':') => !before(text, start - 1).is_some_and(hexish) || label_before(text, start - 1),
        Some(b'.') => !before(text, start - 1).is_some_and(|b| b.is_ascii_alphanumeric()),
        Some(_) => true,
    };
    if !left_ok {
        return None;
    }
    // `fe80::1: unreachable`: a single trailing colon is punctuation.
    let (value, end) = match value.strip_suffix(b":") {
        Some(v) if !v.ends_with(b":") && !validate::ipv6(value) => (v, end - 1),
        _ => (value, end),
    };
    let right_ok = match at(text, end) {
        None => true,
        Some(b) if is_word(b) => false,
        Some(b':') => !at(text, end + 1).is_some_and(|b| b.is_ascii_hexdigit() || b == b':'),
        Some(b'.') => !at(text, end + 1).is_some_and(|b| b.is_ascii_digit()),
        Some(_) => true,
    };
    if !(right_ok && validate::ipv6(value)) {
        return None;
    }
    // A zone id belongs to the address: `fe80::1%eth0`.
    let zone = if at(text, end) == Some(b'%') {
        let name = text.get(end + 1..).unwrap_or_default();
        let len =
            name.iter().take(16).take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')).count();
        // A sentence may end right after it.
        let len = name.get(..len).unwrap_or_default().iter().rposition(u8::is_ascii_alphanumeric).map_or(0, |i| i + 1);
        let glued = name.get(len).is_some_and(|&b| is_word(b));
        if len > 0 && !glued {
            len + 1
        } else {
            0
        }
    } else {
        0
    };
    Some(Found { entity: Entity::Ipv6, start, end: end + zone, evidence: Evidence::Written })
}
