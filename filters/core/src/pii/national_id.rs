//! National identifiers made only of digits, each with its public check algorithm: UK NHS number,
//! Dutch BSN, Polish PESEL, Brazilian CPF and CNPJ, Indian Aadhaar (Verhoeff), Canadian SIN,
//! Australian TFN and Medicare number, German tax id (Steuer-ID), French NIR, Swedish
//! personnummer.
//!
//! A checksum alone passes one random number in ten or eleven, and nine to twelve digits are
//! everywhere (order numbers, ids, phones), so NHS, BSN, Aadhaar, SIN, TFN and Medicare numbers
//! count only after their keyword (`NHS number`, `BSN`, `Aadhaar`, `SIN`, `TFN`, ...) in the 48
//! bytes before, on the same line. Those with more structure stand alone: CPF and CNPJ in their
//! printed form (`187.244.670-14`, `24.422.242/0001-31`: two check digits and a fixed
//! punctuation), the French NIR (15 digits, sex, month, a mod-97 key), and in their own writing
//! the ids of [`classify_bare`] (a date or a digit rule on top of the check digit, measured on
//! random numbers of each shape in tests/pii_independent.rs): eleven bare digits that are a
//! Steuer-ID, a CPF or a PESEL, a dashed personnummer or HETU. Those yield an equal span to any
//! other entity and are refused after a word naming another number (`order no. 290591-3329`).

use super::Entity;

/// The digits of `value` and the lengths of its digit groups, if it holds only digits and the
/// separators space, dot, dash, slash or plus.
/// A check algorithm over a value (digits, or the written identifier with letters).
type Check = fn(&[u8]) -> bool;

fn digits_and_groups(value: &[u8]) -> Option<([u8; 20], usize, [usize; 8], usize)> {
    let mut digits = [0u8; 20];
    let mut n = 0usize;
    let mut groups = [0usize; 8];
    let mut k = 0usize;
    let mut in_group = false;
    for &b in value {
        if b.is_ascii_digit() {
            *digits.get_mut(n)? = b - b'0';
            n += 1;
            if !in_group {
                k += 1;
                in_group = true;
            }
            *groups.get_mut(k - 1)? += 1;
        } else if matches!(b, b' ' | b'.' | b'-' | b'/' | b'+') {
            in_group = false;
        } else {
            return None;
        }
    }
    Some((digits, n, groups, k))
}

fn weighted(digits: &[u8], weights: &[u32]) -> u32 {
    digits.iter().zip(weights).map(|(&d, &w)| u32::from(d) * w).sum()
}

fn nhs(d: &[u8]) -> bool {
    let [body @ .., check] = d else { return false };
    if d.len() != 10 {
        return false;
    }
    let sum = weighted(body, &[10, 9, 8, 7, 6, 5, 4, 3, 2]);
    let c = (11 - sum % 11) % 11;
    c != 10 && u32::from(*check) == c
}

fn bsn(d: &[u8]) -> bool {
    let [body @ .., check] = d else { return false };
    d.len() == 9 && (weighted(body, &[9, 8, 7, 6, 5, 4, 3, 2]) + 1100 - u32::from(*check)) % 11 == 0
}

fn pesel(d: &[u8]) -> bool {
    let [body @ .., check] = d else { return false };
    let month = d.get(2..4).map_or(0, |m| m.iter().fold(0u32, |a, &x| a * 10 + u32::from(x)));
    let day = d.get(4..6).map_or(0, |m| m.iter().fold(0u32, |a, &x| a * 10 + u32::from(x)));
    d.len() == 11
        && (1..=12).contains(&(month % 20))
        && (1..=31).contains(&day)
        && (10 - weighted(body, &[1, 3, 7, 9, 1, 3, 7, 9, 1, 3]) % 10) % 10 == u32::from(*check)
}

fn cpf(d: &[u8]) -> bool {
    if d.len() != 11 || d.iter().all(|&x| Some(&x) == d.first()) {
        return false;
    }
    let check = |len: usize| {
        let sum: u32 = d.iter().take(len).enumerate().map(|(i, &x)| u32::from(x) * (len as u32 + 1 - i as u32)).sum();
        (sum * 10 % 11) % 10
    };
    d.get(9).map(|&x| u32::from(x)) == Some(check(9)) && d.get(10).map(|&x| u32::from(x)) == Some(check(10))
}

fn cnpj(d: &[u8]) -> bool {
    if d.len() != 14 || d.iter().all(|&x| Some(&x) == d.first()) {
        return false;
    }
    let check = |weights: &[u32]| {
        let r = weighted(d, weights) % 11;
        if r < 2 {
            0
        } else {
            11 - r
        }
    };
    d.get(12).map(|&x| u32::from(x)) == Some(check(&[5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]))
        && d.get(13).map(|&x| u32::from(x)) == Some(check(&[6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]))
}

/// The Verhoeff check (Aadhaar).
fn verhoeff(d: &[u8]) -> bool {
    const MUL: [[u8; 10]; 10] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
        [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
        [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
        [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
        [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
        [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
        [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
        [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
        [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
    ];
    const PERM: [[u8; 10]; 8] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
        [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
        [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
        [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
        [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
        [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
        [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
    ];
    let mut c = 0u8;
    for (i, &x) in d.iter().rev().enumerate() {
        let p = PERM.get(i % 8).and_then(|row| row.get(usize::from(x))).copied().unwrap_or(0);
        c = MUL.get(usize::from(c)).and_then(|row| row.get(usize::from(p))).copied().unwrap_or(0);
    }
    c == 0
}

fn aadhaar(d: &[u8]) -> bool {
    d.len() == 12 && d.first().is_some_and(|&x| x >= 2) && verhoeff(d)
}

fn luhn(d: &[u8]) -> bool {
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            let x = u32::from(x) * if i % 2 == 1 { 2 } else { 1 };
            if x > 9 {
                x - 9
            } else {
                x
            }
        })
        .sum();
    sum % 10 == 0
}

fn sin(d: &[u8]) -> bool {
    d.len() == 9 && d.first().is_some_and(|&x| x != 0 && x != 8) && luhn(d)
}

fn tfn(d: &[u8]) -> bool {
    d.len() == 9 && weighted(d, &[1, 4, 3, 7, 5, 8, 6, 9, 10]) % 11 == 0
}

fn medicare(d: &[u8]) -> bool {
    (10..=11).contains(&d.len())
        && d.first().is_some_and(|&x| (2..=6).contains(&x))
        && d.get(..8).map(|b| weighted(b, &[1, 3, 7, 9, 1, 3, 7, 9]) % 10) == d.get(8).map(|&x| u32::from(x))
        && d.get(9).is_some_and(|&x| x != 0)
}

fn de_tax_id(d: &[u8]) -> bool {
    if d.len() != 11 || d.first() == Some(&0) {
        return false;
    }
    let mut counts = [0u8; 10];
    for &x in d.iter().take(10) {
        if let Some(c) = counts.get_mut(usize::from(x)) {
            *c += 1;
        }
    }
    let repeated = counts.iter().filter(|&&c| c > 1).count();
    if repeated != 1 || !counts.iter().any(|&c| c == 2 || c == 3) {
        return false;
    }
    let mut product = 10u32;
    for &x in d.iter().take(10) {
        let mut sum = (u32::from(x) + product) % 10;
        if sum == 0 {
            sum = 10;
        }
        product = (sum * 2) % 11;
    }
    d.get(10).map(|&x| u32::from(x)) == Some((11 - product) % 10)
}

fn nir(d: &[u8]) -> bool {
    if d.len() != 15 || !d.first().is_some_and(|&x| matches!(x, 1 | 2 | 3 | 4 | 7 | 8)) {
        return false;
    }
    let month = d.get(3..5).map_or(0, |m| m.iter().fold(0u32, |a, &x| a * 10 + u32::from(x)));
    let body = d.get(..13).map_or(0u64, |b| b.iter().fold(0u64, |a, &x| a * 10 + u64::from(x)));
    let key = d.get(13..).map_or(0u64, |b| b.iter().fold(0u64, |a, &x| a * 10 + u64::from(x)));
    ((1..=12).contains(&month) || (20..=42).contains(&month) || (50..=99).contains(&month)) && 97 - body % 97 == key
}

fn personnummer(d: &[u8]) -> bool {
    // YYMMDDNNNC (the century dropped when 12 digits are written).
    let d = if d.len() == 12 { d.get(2..).unwrap_or_default() } else { d };
    let num = |r: std::ops::Range<usize>| d.get(r).map_or(0, |m| m.iter().fold(0u32, |a, &x| a * 10 + u32::from(x)));
    let (month, day) = (num(2..4), num(4..6));
    // Coordination numbers add 60 to the day.
    d.len() == 10 && (1..=12).contains(&month) && ((1..=31).contains(&day) || (61..=91).contains(&day)) && luhn(d)
}

fn number(d: &[u8]) -> u32 {
    d.iter().fold(0u32, |a, &x| a * 10 + u32::from(x))
}

/// Whether `day` exists in `month` of `year` (Gregorian; a two-digit year without its century
/// is passed as is, so `00` counts as a leap year, as 2000 was).
fn calendar_date(year: u32, month: u32, day: u32) -> bool {
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// A PESEL without its keyword: eleven bare digits, a real birth date of 1900-2099 (the month
/// carries the century: 01-12 for the 1900s, 21-32 for the 2000s) and its check digit.
fn pesel_bare(d: &[u8]) -> bool {
    let (Some(yy), Some(mm), Some(dd)) = (d.get(..2), d.get(2..4), d.get(4..6)) else { return false };
    let (yy, mm, dd) = (number(yy), number(mm), number(dd));
    let (year, month) = if mm > 20 { (2000 + yy, mm - 20) } else { (1900 + yy, mm) };
    pesel(d) && calendar_date(year, month, dd)
}

/// A personnummer without its keyword: `YYMMDD-NNNC` (a `+` for the over hundreds), a real
/// date (a coordination number adds 60 to the day) and its Luhn digit. The twelve-digit
/// `YYYYMMDD-NNNC` needs its keyword: date-stamped ids are written so (`20230801-7470`: 29 of the
/// committed corpus' look-alikes pass).
fn personnummer_bare(d: &[u8], groups: &[usize]) -> bool {
    let num = |r: std::ops::Range<usize>| d.get(r).map_or(0, number);
    let day = num(4..6);
    let day = if day > 60 { day - 60 } else { day };
    groups == [6, 4] && personnummer(d) && calendar_date(num(0..2), num(2..4), day)
}

/// Words naming another kind of number (`order no. 290591-3329`, `id 98116476238`): a value
/// right after one (and `no.`, `nr`, `#`, `:`) is not taken for an id without its keyword.
const OTHER_NUMBER_WORDS: &[&str] = &[
    "id",
    "ref",
    "reference",
    "order",
    "ord",
    "invoice",
    "inv",
    "ticket",
    "case",
    "tracking",
    "transaction",
    "txn",
    "booking",
    "account",
    "customer",
    "serial",
    "sku",
    "item",
    "build",
    "version",
    "bestellung",
    "bestellnummer",
    "rechnung",
    "rechnungsnummer",
    "auftrag",
    "kundennummer",
    "commande",
    "facture",
    "pedido",
    "factura",
    "ordine",
    "fattura",
    "bestelling",
    "factuur",
    "encomenda",
    "fatura",
    // Other people's numbers: a US SSN (also one that fails its own rules), a user or member id,
    // a postal code.
    "ssn",
    "security",
    "user",
    "uid",
    "userid",
    "member",
    "zip",
    "postcode",
    "plz",
];

/// "is" between such a word and the value, in the corpus' languages.
const IS_WORDS: &[&str] = &["is", "was", "ist", "est", "es", "è", "é", "lautet"];

/// Abbreviations of "number" between such a word and the value.
const NUMBER_WORDS: &[&str] = &["no", "nr", "n°", "num", "number", "nummer", "numéro", "numero", "número"];

/// Whether the value at `start` follows a word naming another kind of number on its line, or is
/// glued to what comes before it by a dash, slash, `#`, `_` or dot (`ORD-480613-3619`).
pub(super) fn after_other_number_word(text: &[u8], start: usize) -> bool {
    if start > 0 && matches!(text.get(start - 1), Some(b'-' | b'/' | b'#' | b'_' | b'.')) {
        return true;
    }
    let from = start.saturating_sub(40);
    let Some(window) = text.get(from..start) else { return false };
    let line_start = window.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut rest = window.get(line_start..).unwrap_or_default();
    let is_sep = |b: &u8| matches!(b, b' ' | b':' | b'#' | b'.' | b'=' | b'"' | b'\'');
    let last_word = |r: &[u8]| -> (usize, usize) {
        let end = r.len() - r.iter().rev().take_while(|b| is_sep(b)).count();
        let begin = r
            .get(..end)
            .map_or(0, |w| end - w.iter().rev().take_while(|b| b.is_ascii_alphabetic() || **b >= 0x80).count());
        (begin, end)
    };
    // A word glued to non-ASCII text (`日本語：order`, `連絡先はid`) is read by its ASCII tail too.
    let word_is = |r: &[u8], (b, e): (usize, usize), list: &[&str]| {
        let Some(w) = r.get(b..e) else { return false };
        let tail =
            w.get(w.len() - w.iter().rev().take_while(|c| c.is_ascii_alphabetic()).count()..).unwrap_or_default();
        list.iter().any(|x| w.eq_ignore_ascii_case(x.as_bytes()) || tail.eq_ignore_ascii_case(x.as_bytes()))
    };
    // `SSN is`, `order number is`, `Rechnung Nr. ist`: up to two of the words that may stand
    // between the word and the value.
    for _ in 0..2 {
        let span = last_word(rest);
        if word_is(rest, span, NUMBER_WORDS) || word_is(rest, span, IS_WORDS) {
            rest = rest.get(..span.0).unwrap_or_default();
        }
    }
    let span = last_word(rest);
    word_is(rest, span, OTHER_NUMBER_WORDS)
}

/// Keywords per identifier, lower case; a keyword counts at a word start (the ones marked
/// `true` also only as a whole word: `sin` is not `single`).
const KEYWORDS: &[(Entity, &[(&str, bool)])] = &[
    (Entity::UkNhs, &[("nhs", true)]),
    (Entity::NlBsn, &[("bsn", true), ("burgerservicenummer", false), ("sofinummer", false), ("sofi", true)]),
    (Entity::PlPesel, &[("pesel", false)]),
    (Entity::BrCpf, &[("cpf", true), ("cadastro de pessoa", false)]),
    (Entity::BrCnpj, &[("cnpj", true)]),
    (Entity::InAadhaar, &[("aadhaar", false), ("aadhar", false), ("uidai", false), ("आधार", false)]),
    (Entity::CaSin, &[("sin", true), ("social insurance", false), ("nas", true), ("assurance sociale", false)]),
    (Entity::AuTfn, &[("tfn", true), ("tax file", false)]),
    (Entity::AuMedicare, &[("medicare", false)]),
    (
        Entity::DeTaxId,
        &[
            ("steuer-id", false),
            ("steuerid", false),
            ("steueridentifikationsnummer", false),
            ("idnr", true),
            ("tax id", false),
            // `Steuer-Identifikationsnummer`, `persönliche Identifikationsnummer`, the EU's TIN.
            ("identifikationsnummer", false),
            ("tin", true),
            ("identification fiscale", false),
            ("identificación fiscal", false),
            ("identificazione fiscale", false),
            ("identificação fiscal", false),
        ],
    ),
    (Entity::FrNir, &[("nir", true), ("sécurité sociale", false), ("securite sociale", false), ("insee", false)]),
    (
        Entity::SePersonnummer,
        &[
            ("personnummer", false),
            ("personnr", false),
            ("personnumret", false),
            ("samordningsnummer", false),
            ("personal identity number", false),
        ],
    ),
    (Entity::FiHetu, &[("hetu", true), ("henkilötunnus", false), ("henkilotunnus", false), ("sotu", true)]),
    (Entity::InPan, &[("pan", true), ("permanent account", false), ("income tax", false)]),
];

/// Whether a keyword of `entity` stands in the 48 bytes before `start`, on the same line.
fn keyword_before(text: &[u8], start: usize, entity: Entity) -> bool {
    let Some((_, words)) = KEYWORDS.iter().find(|(e, _)| *e == entity) else { return false };
    let from = start.saturating_sub(48);
    let Some(window) = text.get(from..start) else { return false };
    let line_start = window.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let window = window.get(line_start..).unwrap_or_default();
    let mut lower = [0u8; 48];
    let Some(lower) = lower.get_mut(..window.len()) else { return false };
    for (d, s) in lower.iter_mut().zip(window) {
        *d = s.to_ascii_lowercase();
    }
    let is_letter = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphabetic() || *b >= 0x80);
    words.iter().any(|(word, whole)| {
        let w = word.as_bytes();
        lower.windows(w.len()).enumerate().any(|(i, candidate)| {
            candidate == w
                && !is_letter(i.checked_sub(1).and_then(|j| lower.get(j)))
                && !(*whole && is_letter(lower.get(i + w.len())))
        })
    })
}

/// The identifier `value` (digits and separators, its edges already checked) is, if any, and
/// whether it was accepted without its keyword or printed form (weak: see [`classify_bare`]).
pub(super) fn classify(
    text: &[u8],
    start: usize,
    value: &[u8],
    enabled: impl Fn(Entity) -> bool,
) -> Option<(Entity, bool)> {
    let (buf, n, group_buf, k) = digits_and_groups(value)?;
    let written = Written { value, d: buf.get(..n)?, groups: group_buf.get(..k)? };
    if let Some(e) = classify_strong(text, start, &written, &enabled) {
        return Some((e, false));
    }
    // Only ten and eleven digits have a writing accepted bare.
    if !(10..=11).contains(&n) {
        return None;
    }
    classify_bare(text, start, &written, &enabled).map(|e| (e, true))
}

/// A candidate as written, its digits and the lengths of its digit groups.
struct Written<'a> {
    value: &'a [u8],
    d: &'a [u8],
    groups: &'a [usize],
}

/// The identifier `value` is by its keyword or printed form, if any.
fn classify_strong(text: &[u8], start: usize, w: &Written, enabled: &impl Fn(Entity) -> bool) -> Option<Entity> {
    let Written { value, d, groups } = *w;
    let sep = value.iter().copied().find(|b| !b.is_ascii_digit());
    let one_sep = |s: u8| value.iter().all(|&b| b.is_ascii_digit() || b == s);
    let kw = |e: Entity| enabled(e) && keyword_before(text, start, e);
    let layout = |want: &[usize]| groups == want;
    // Standing alone: printed CPF and CNPJ, the NIR.
    if enabled(Entity::BrCpf) && cpf(d) && (value.get(3) == Some(&b'.') && layout(&[3, 3, 3, 2]) || kw(Entity::BrCpf)) {
        return Some(Entity::BrCpf);
    }
    if enabled(Entity::BrCnpj) && cnpj(d) && (layout(&[2, 3, 3, 4, 2]) || kw(Entity::BrCnpj)) {
        return Some(Entity::BrCnpj);
    }
    if enabled(Entity::FrNir) && nir(d) && (sep.is_none() || one_sep(b' ')) {
        return Some(Entity::FrNir);
    }
    // A HETU whose check character is a digit has no capital for the letter pass to gate on
    // (`131052-3140`): after its keyword. Alone it reads as a date and four digits.
    if enabled(Entity::FiHetu) && (one_sep(b'-') || one_sep(b'+')) && hetu(value) && kw(Entity::FiHetu) {
        return Some(Entity::FiHetu);
    }
    // A dashed personnummer alone was measured at precision 0.95 (`order no. 290591-3329` is a
    // date and a Luhn digit too): only after its keyword.
    if personnummer(d) && kw(Entity::SePersonnummer) && (sep.is_none() || matches!(sep, Some(b'-' | b'+'))) {
        return Some(Entity::SePersonnummer);
    }
    // After their keyword.
    let candidates: [(Entity, Check); 8] = [
        (Entity::UkNhs, nhs),
        (Entity::NlBsn, bsn),
        (Entity::PlPesel, pesel),
        (Entity::InAadhaar, aadhaar),
        (Entity::CaSin, sin),
        (Entity::AuTfn, tfn),
        (Entity::AuMedicare, medicare),
        (Entity::DeTaxId, de_tax_id),
    ];
    candidates.into_iter().find(|(e, check)| check(d) && kw(*e)).map(|(e, _)| e)
}

/// The identifiers accepted without a keyword, in the writings whose random look-alikes rarely
/// pass (measured in tests/pii_independent.rs on 5,000 random numbers of each shape in the
/// corpus' templates; docs/pii-accuracy.md): a HETU with a digit check character (a date and a
/// check over 31), a dashed personnummer (a real date and Luhn), and eleven bare digits that are
/// a Steuer-ID (a digit-count rule and a check digit), a CPF (two check digits) or a PESEL (a real
/// date of 1900-2099 and a check digit). NHS, BSN, SIN, TFN, Medicare and Aadhaar numbers carry
/// one check digit and no other structure: one random number of their shape in eleven to twenty
/// passes, so they stay behind their keyword.
fn classify_bare(text: &[u8], start: usize, w: &Written, enabled: &impl Fn(Entity) -> bool) -> Option<Entity> {
    let Written { value, d, groups } = *w;
    let dashed =
        value.iter().any(|&b| b == b'-' || b == b'+') && value.iter().filter(|b| !b.is_ascii_digit()).count() == 1;
    let bare = groups.len() == 1;
    let spaced_tax_id = groups == [2, 3, 3, 3] && value.iter().all(|&b| b.is_ascii_digit() || b == b' ');
    let entity = if enabled(Entity::FiHetu) && dashed && hetu(value) {
        Entity::FiHetu
    } else if enabled(Entity::SePersonnummer) && dashed && personnummer_bare(d, groups) {
        Entity::SePersonnummer
    } else if enabled(Entity::DeTaxId) && (bare || spaced_tax_id) && de_tax_id(d) {
        Entity::DeTaxId
    } else if enabled(Entity::BrCpf) && bare && cpf(d) {
        Entity::BrCpf
    } else if enabled(Entity::PlPesel) && bare && pesel_bare(d) {
        Entity::PlPesel
    } else {
        return None;
    };
    // The words before are read only for a value that passed (most digit runs do not).
    (!after_other_number_word(text, start)).then_some(entity)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits(s: &str) -> Vec<u8> {
        s.bytes().filter(u8::is_ascii_digit).map(|b| b - b'0').collect()
    }

    #[test]
    fn each_check_algorithm_accepts_a_published_example_and_not_a_changed_digit() {
        let cases: [(Check, &str, &str); 12] = [
            (nhs, "943 476 5919", "943 476 5918"),
            (bsn, "111222333", "111222334"),
            (pesel, "44051401359", "44051401358"),
            (cpf, "529.982.247-25", "529.982.247-24"),
            (cnpj, "11.222.333/0001-81", "11.222.333/0001-82"),
            (aadhaar, "2341 2341 2346", "2341 2341 2345"),
            (sin, "130 692 544", "130 692 545"),
            (tfn, "123 456 782", "123 456 783"),
            (medicare, "2123 45670 1", "2123 45678 1"),
            (de_tax_id, "86095742719", "86095742718"),
            (nir, "2 55 08 14 168 025 38", "2 55 08 14 168 025 39"),
            (personnummer, "811218-9876", "811218-9875"),
        ];
        for (check, good, bad) in cases {
            assert!(check(&digits(good)), "{good}");
            assert!(!check(&digits(bad)), "{bad}");
        }
    }

    #[test]
    fn bare_dates_must_exist_in_the_calendar() {
        assert!(calendar_date(2000, 2, 29));
        assert!(calendar_date(1996, 2, 29));
        assert!(!calendar_date(1900, 2, 29), "1900 was not a leap year");
        assert!(!calendar_date(1997, 2, 29));
        assert!(!calendar_date(1990, 4, 31));
        assert!(!calendar_date(1990, 13, 1));
        assert!(!calendar_date(1990, 1, 0));
        // A PESEL born 29 February 2000 (month 22) stands alone; 29 February 1900 does not.
        let with_check =
            |body: &str| (0..10u8).map(|c| format!("{body}{c}")).find(|s| pesel(&digits(s))).expect("a check digit");
        assert!(pesel_bare(&digits(&with_check("0022291234"))));
        assert!(!pesel_bare(&digits(&with_check("0002291234"))));
        assert!(!pesel_bare(&digits(&with_check("9085140000"))), "the 1800s");
    }

    #[test]
    fn words_naming_another_number_hold_a_bare_id_back() {
        let before = |s: &str| after_other_number_word(s.as_bytes(), s.len());
        for text in [
            "order no. ",
            "Order #",
            "Rechnung Nr. ",
            "id ",
            "INVOICE: ",
            "ORD-",
            "ticket=",
            "facture n° ",
            "日本語：order ",
            "{\"user_id\": \"",
            "Social Security Number: ",
            "SSN is ",
            "order number is ",
        ] {
            assert!(before(text), "{text:?}");
        }
        for text in ["", "my order, ", "Noted ", "Value: ", "identity ", "Customer wrote: 'see "] {
            assert!(!before(text), "{text:?}");
        }
    }

    #[test]
    fn keywords_count_at_word_starts_on_the_same_line() {
        let text = b"My NHS number: ";
        assert!(keyword_before(text, text.len(), Entity::UkNhs));
        let text = b"single value ";
        assert!(!keyword_before(text, text.len(), Entity::CaSin));
        let text = b"SIN\nvalue ";
        assert!(!keyword_before(text, text.len(), Entity::CaSin));
    }
}

// ------------------------------------------------------------------------------------------------
// Identifiers with letters: UK NINO, Spanish DNI and NIE, Italian codice fiscale, Indian PAN,
// Singapore NRIC/FIN, Finnish HETU. Their candidates come from [`LETTER_ID_PATTERN`] around digit
// runs next to a capital letter (`super::clusters::for_each_letter_digit_run`).

/// Candidates of the identifiers with letters.
pub(super) const LETTER_ID_PATTERN: &str = concat!(
    r"[A-Z]{2} ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]",
    r"|[0-9]{8}-?[A-Z]|[XYZ]-?[0-9]{7}-?[A-Z]",
    r"|[A-Z]{6}[0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z]",
    r"|[A-Z]{5}[0-9]{4}[A-Z]|[STFGM][0-9]{7}[A-Z]",
    r"|[0-9]{6}[-+A-FU-Y][0-9]{3}[0-9A-Y]",
);

fn nino(v: &[u8]) -> bool {
    let compact: Vec<u8> = v.iter().copied().filter(|&b| b != b' ').collect();
    let spaced_ok = v.len() == 9 || v.len() == 13;
    let (Some(&a), Some(&b)) = (compact.first(), compact.get(1)) else { return false };
    let prefix_ok = !b"DFIQUV".contains(&a)
        && !b"DFIOQUV".contains(&b)
        && ![&b"BG"[..], b"GB", b"NK", b"KN", b"TN", b"NT", b"ZZ"].contains(&compact.get(..2).unwrap_or_default());
    let shape_ok = compact.get(..2).is_some_and(|p| p.iter().all(u8::is_ascii_uppercase))
        && compact.get(2..8).is_some_and(|d| d.iter().all(u8::is_ascii_digit))
        && compact.get(8).is_some_and(|s| (b'A'..=b'D').contains(s));
    spaced_ok && compact.len() == 9 && shape_ok && prefix_ok
}

const DNI_LETTERS: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";

fn dni_letter_ok(number: u32, letter: u8) -> bool {
    DNI_LETTERS.get((number % 23) as usize) == Some(&letter)
}

fn digits_value(v: &[u8]) -> u32 {
    v.iter().filter(|b| b.is_ascii_digit()).fold(0u32, |a, &b| a.wrapping_mul(10).wrapping_add(u32::from(b - b'0')))
}

fn dni(v: &[u8]) -> bool {
    let Some(&letter) = v.last() else { return false };
    let body = v.get(..v.len() - 1).unwrap_or_default();
    body.iter().filter(|b| b.is_ascii_digit()).count() == 8
        && body.iter().all(|b| b.is_ascii_digit() || *b == b'-')
        && letter.is_ascii_uppercase()
        && dni_letter_ok(digits_value(v), letter)
}

fn nie(v: &[u8]) -> bool {
    let (Some(&first), Some(&letter)) = (v.first(), v.last()) else { return false };
    let lead = match first {
        b'X' => 0,
        b'Y' => 1,
        b'Z' => 2,
        _ => return false,
    };
    let middle = v.get(1..v.len() - 1).unwrap_or_default();
    if middle.iter().filter(|b| b.is_ascii_digit()).count() != 7
        || !middle.iter().all(|b| b.is_ascii_digit() || *b == b'-')
    {
        return false;
    }
    dni_letter_ok(lead * 10_000_000 + digits_value(v.get(1..).unwrap_or_default()), letter)
}

fn fiscal_code(v: &[u8]) -> bool {
    const ODD: [u32; 26] =
        [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23];
    if v.len() != 16 || !v.iter().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
        return false;
    }
    let mut sum = 0u32;
    for (i, &c) in v.iter().take(15).enumerate() {
        let index = if c.is_ascii_digit() { usize::from(c - b'0') } else { usize::from(c.wrapping_sub(b'A')) };
        sum += if i % 2 == 0 { ODD.get(index).copied().unwrap_or(0) } else { index as u32 };
    }
    v.get(15).copied() == Some(b'A' + (sum % 26) as u8)
}

fn pan(v: &[u8]) -> bool {
    v.len() == 10
        && v.get(..5).is_some_and(|l| l.iter().all(u8::is_ascii_uppercase))
        && v.get(5..9).is_some_and(|d| d.iter().all(u8::is_ascii_digit))
        && v.get(9).is_some_and(u8::is_ascii_uppercase)
        && v.get(3).is_some_and(|b| b"PCHFATBLJG".contains(b))
}

fn nric(v: &[u8]) -> bool {
    let (Some(&first), Some(&check)) = (v.first(), v.last()) else { return false };
    let digits = v.get(1..8).unwrap_or_default();
    if v.len() != 9 || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let mut sum: u32 = digits.iter().zip([2u32, 7, 6, 5, 4, 3, 2]).map(|(&d, w)| u32::from(d - b'0') * w).sum();
    if matches!(first, b'T' | b'G') {
        sum += 4;
    }
    if first == b'M' {
        sum += 3;
    }
    let table: &[u8; 11] = match first {
        b'S' | b'T' => b"JZIHGFEDCBA",
        b'F' | b'G' => b"XWUTRQPNMLK",
        b'M' => b"KLJNPQRTUWX",
        _ => return false,
    };
    table.get((sum % 11) as usize) == Some(&check)
}

fn hetu(v: &[u8]) -> bool {
    const CHECKS: &[u8; 31] = b"0123456789ABCDEFHJKLMNPRSTUVWXY";
    let shape_ok = v.get(..6).is_some_and(|d| d.iter().all(u8::is_ascii_digit))
        && v.get(7..10).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if v.len() != 11 || !shape_ok {
        return false;
    }
    let num = |r: std::ops::Range<usize>| digits_value(v.get(r).unwrap_or_default());
    let (day, month) = (num(0..2), num(2..4));
    let n = num(0..6) * 1000 + num(7..10);
    (1..=31).contains(&day) && (1..=12).contains(&month) && CHECKS.get((n % 31) as usize) == v.get(10)
}

/// The identifier with letters `value` is, if any (edges already checked). PAN has no check
/// character: only after its keyword.
pub(super) fn classify_letters(
    text: &[u8],
    start: usize,
    value: &[u8],
    enabled: impl Fn(Entity) -> bool,
) -> Option<Entity> {
    let checks: [(Entity, Check, bool); 7] = [
        (Entity::ItFiscalCode, fiscal_code, false),
        (Entity::FiHetu, hetu, false),
        (Entity::EsDni, dni, false),
        (Entity::EsNie, nie, false),
        (Entity::SgNric, nric, false),
        (Entity::UkNino, nino, false),
        (Entity::InPan, pan, true),
    ];
    checks
        .into_iter()
        .find(|(e, check, keyword)| enabled(*e) && check(value) && (!keyword || keyword_before(text, start, *e)))
        .map(|(e, _, _)| e)
}

#[cfg(test)]
mod letter_tests {
    use super::*;

    #[test]
    fn each_identifier_with_letters_accepts_a_valid_example_and_not_a_changed_check() {
        let cases: [(Check, &str, &str); 7] = [
            (nino, "AB 12 34 56 C", "QQ 12 34 56 C"),
            (dni, "12345678Z", "12345678A"),
            (nie, "X1234567L", "X1234567M"),
            (fiscal_code, "RSSMRA85T10A562S", "RSSMRA85T10A562T"),
            (pan, "ABCPE1234F", "ABCXE1234F"),
            (nric, "S1234567D", "S1234567E"),
            (hetu, "131052-308T", "131052-308U"),
        ];
        for (check, good, bad) in cases {
            assert!(check(good.as_bytes()), "{good}");
            assert!(!check(bad.as_bytes()), "{bad}");
        }
    }
}
