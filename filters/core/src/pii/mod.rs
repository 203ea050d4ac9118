//! PII and secret detection (docs/filters/pii-redaction.md, accuracy in docs/pii-accuracy.md).
//!
//! A [`Detector`] is built once from the entities to look for. [`Detector::scan`] finds
//! candidates with a few regexes compiled once (the `regex` crate: linear time, Unicode tables
//! off, one regex per family of entities), confirms each candidate with a structural validator
//! from [`validate`] (Luhn and issuer table, IBAN mod-97, SSN area rules, JWT decoding, ...) plus
//! context checks (word boundaries, "part of a longer number", keywords), and resolves overlaps:
//! the longest match wins, and between equal spans the more specific entity (a JWT or an API key
//! over a generic bearer token).
//!
//! Where the regexes run: the prefixed secrets, bearer tokens and emails over the whole text
//! (their literal prefixes, or `@`, let the engine skip ahead with vectorised search); the
//! digit-based patterns (cards, SSNs, phones, IPv4, IBANs) only inside the digit clusters that
//! could hold one; IPv6 only around colons with hex digits on both sides. The gates skip text
//! where no candidate can start, so results equal whole-text passes (docs/pii-accuracy.md has the
//! throughput).
//!
//! Only the enabled entities are searched, so a disabled entity cannot shadow an enabled one.
//! Nothing here logs or stores matched text: a [`Match`] is an entity and byte offsets.
//!
//! Out of scope: names and street addresses (they need NER, not patterns).

mod anchors;
mod clusters;
mod national_id;
mod patterns;
mod phone;
mod phone_metadata;
pub mod validate;

pub use phone::{PhoneRegions, DEFAULT_PHONE_REGIONS, TRUNK_LED_ALL, TRUNK_LED_EXCEPT};

use std::cmp::Reverse;

use regex::bytes::{Regex, RegexBuilder};

use patterns::{Evidence, Pass};

/// A built-in entity type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Entity {
    Email,
    Phone,
    PaymentCard,
    Iban,
    UsSsn,
    Ipv4,
    Ipv6,
    Jwt,
    OpenAiKey,
    AnthropicKey,
    AwsAccessKey,
    GithubToken,
    SlackToken,
    GoogleApiKey,
    PrivateKey,
    BearerToken,
    UkNhs,
    NlBsn,
    PlPesel,
    BrCpf,
    BrCnpj,
    InAadhaar,
    CaSin,
    AuTfn,
    AuMedicare,
    DeTaxId,
    FrNir,
    SePersonnummer,
    UkNino,
    EsDni,
    EsNie,
    ItFiscalCode,
    InPan,
    SgNric,
    FiHetu,
}

impl Entity {
    /// Every built-in entity.
    pub const ALL: [Entity; 35] = [
        Entity::Email,
        Entity::Phone,
        Entity::PaymentCard,
        Entity::Iban,
        Entity::UsSsn,
        Entity::Ipv4,
        Entity::Ipv6,
        Entity::Jwt,
        Entity::OpenAiKey,
        Entity::AnthropicKey,
        Entity::AwsAccessKey,
        Entity::GithubToken,
        Entity::SlackToken,
        Entity::GoogleApiKey,
        Entity::PrivateKey,
        Entity::BearerToken,
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
        Entity::UkNino,
        Entity::EsDni,
        Entity::EsNie,
        Entity::ItFiscalCode,
        Entity::InPan,
        Entity::SgNric,
        Entity::FiHetu,
    ];

    /// The snake_case name used in configuration, metrics and placeholders.
    pub fn label(self) -> &'static str {
        match self {
            Entity::Email => "email",
            Entity::Phone => "phone",
            Entity::PaymentCard => "payment_card",
            Entity::Iban => "iban",
            Entity::UsSsn => "us_ssn",
            Entity::Ipv4 => "ipv4",
            Entity::Ipv6 => "ipv6",
            Entity::Jwt => "jwt",
            Entity::OpenAiKey => "openai_key",
            Entity::AnthropicKey => "anthropic_key",
            Entity::AwsAccessKey => "aws_access_key",
            Entity::GithubToken => "github_token",
            Entity::SlackToken => "slack_token",
            Entity::GoogleApiKey => "google_api_key",
            Entity::PrivateKey => "private_key",
            Entity::BearerToken => "bearer_token",
            Entity::UkNhs => "uk_nhs",
            Entity::NlBsn => "nl_bsn",
            Entity::PlPesel => "pl_pesel",
            Entity::BrCpf => "br_cpf",
            Entity::BrCnpj => "br_cnpj",
            Entity::InAadhaar => "in_aadhaar",
            Entity::CaSin => "ca_sin",
            Entity::AuTfn => "au_tfn",
            Entity::AuMedicare => "au_medicare",
            Entity::DeTaxId => "de_tax_id",
            Entity::FrNir => "fr_nir",
            Entity::SePersonnummer => "se_personnummer",
            Entity::UkNino => "uk_nino",
            Entity::EsDni => "es_dni",
            Entity::EsNie => "es_nie",
            Entity::ItFiscalCode => "it_fiscal_code",
            Entity::InPan => "in_pan",
            Entity::SgNric => "sg_nric",
            Entity::FiHetu => "fi_hetu",
        }
    }

    /// The entity with this [`label`](Entity::label).
    pub fn from_label(label: &str) -> Option<Entity> {
        Entity::ALL.into_iter().find(|e| e.label() == label)
    }

    /// Tie-break between equal spans: lower is more specific.
    fn specificity(self) -> u8 {
        match self {
            Entity::PrivateKey => 0,
            Entity::Jwt => 1,
            Entity::AnthropicKey => 2,
            Entity::OpenAiKey => 3,
            Entity::GithubToken => 4,
            Entity::SlackToken => 5,
            Entity::GoogleApiKey => 6,
            Entity::AwsAccessKey => 7,
            Entity::Iban => 8,
            Entity::Email => 9,
            Entity::PaymentCard => 10,
            Entity::UsSsn => 11,
            Entity::Ipv6 => 12,
            Entity::Ipv4 => 13,
            Entity::Phone => 14,
            Entity::BearerToken => 15,
            // A national id found by its checksum and keyword or printed form is more specific
            // than a card or phone of the same span.
            Entity::UkNhs
            | Entity::NlBsn
            | Entity::PlPesel
            | Entity::BrCpf
            | Entity::BrCnpj
            | Entity::InAadhaar
            | Entity::CaSin
            | Entity::AuTfn
            | Entity::AuMedicare
            | Entity::DeTaxId
            | Entity::FrNir
            | Entity::SePersonnummer
            | Entity::UkNino
            | Entity::EsDni
            | Entity::EsNie
            | Entity::ItFiscalCode
            | Entity::InPan
            | Entity::SgNric
            | Entity::FiHetu => 8,
        }
    }
}

/// One detection: the entity and the byte range `start..end` of the scanned text (always on
/// character boundaries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Match {
    pub entity: Entity,
    pub start: usize,
    pub end: usize,
}

/// The built-in detectors for a set of entities. Build once per configuration (compiling the
/// regexes takes a few milliseconds), scan many times; cheap to clone.
#[derive(Debug, Clone)]
pub struct Detector {
    passes: Vec<(Pass, Regex)>,
    enabled: [bool; Entity::ALL.len()],
    /// Run the secret and bearer passes only at their literal prefixes ([`anchors`]): on wasm32,
    /// where the regex crate has no SIMD prefilter; natively its prefilter is faster.
    anchor_gate: bool,
    /// The regions whose national phone writings are searched.
    phone_regions: PhoneRegions,
}

impl Default for Detector {
    /// Every built-in entity.
    fn default() -> Self {
        Detector::new(&Entity::ALL)
    }
}

/// The position of an entity in [`Entity::ALL`] (declaration order).
fn index(entity: Entity) -> usize {
    entity as usize
}

impl Detector {
    /// A detector for these entities (duplicates ignored). Never fails: the built-in patterns
    /// are fixed and tested to compile.
    pub fn new(entities: &[Entity]) -> Detector {
        let mut enabled = [false; Entity::ALL.len()];
        for &e in entities {
            if let Some(slot) = enabled.get_mut(index(e)) {
                *slot = true;
            }
        }
        let passes = Pass::ALL
            .into_iter()
            .filter(|pass| pass.entities().iter().any(|&e| enabled.get(index(e)).copied().unwrap_or(false)))
            .filter_map(|pass| RegexBuilder::new(pass.pattern()).unicode(false).build().ok().map(|re| (pass, re)))
            .collect();
        Detector { passes, enabled, anchor_gate: cfg!(target_arch = "wasm32"), phone_regions: PhoneRegions::default() }
    }

    /// The same detector searching national phone writings of these regions (international
    /// writings are searched for every region whatever this says).
    pub fn with_phone_regions(mut self, regions: PhoneRegions) -> Detector {
        self.phone_regions = regions;
        self
    }

    /// The same detector with the anchor gate forced on or off, so native tests and fuzzing
    /// cover the path the Wasm build takes. Results never depend on it.
    #[doc(hidden)]
    pub fn with_anchor_gate(mut self, on: bool) -> Detector {
        self.anchor_gate = on;
        self
    }

    /// The entities this detector reports.
    pub fn entities(&self) -> Vec<Entity> {
        Entity::ALL.into_iter().filter(|&e| self.is_enabled(e)).collect()
    }

    fn is_enabled(&self, entity: Entity) -> bool {
        self.enabled.get(index(entity)).copied().unwrap_or(false)
    }

    /// Whether every pattern compiled (always true for the built-ins; a test holds it to that).
    pub fn is_complete(&self) -> bool {
        Pass::ALL.iter().all(|pass| {
            !pass.entities().iter().any(|&e| self.is_enabled(e)) || self.passes.iter().any(|(p, _)| p == pass)
        })
    }

    /// Every detection in `text`, ordered by start, non-overlapping.
    pub fn scan(&self, text: &str) -> Vec<Match> {
        let bytes = text.as_bytes();
        let mut found = Vec::new();
        let anchored = |pass: &Pass| self.anchor_gate && pass.anchored();
        for (pass, re) in self
            .passes
            .iter()
            .filter(|(pass, _)| !pass.gated() && !pass.colon_gated() && !pass.letter_gated() && !anchored(pass))
        {
            self.run(*pass, re, bytes, Window { from: 0, to: bytes.len(), last_start: None }, &mut found);
        }
        if self.passes.iter().any(|(pass, _)| anchored(pass)) {
            let (tokens, bearer) = anchors::starts(bytes);
            for (pass, re) in self.passes.iter().filter(|(pass, _)| anchored(pass)) {
                let starts = if *pass == Pass::Bearer { &bearer } else { &tokens };
                // A candidate consumes its span, as in a whole-text pass: starts inside it are
                // not tried.
                let mut covered = 0usize;
                for &start in starts {
                    if start < covered {
                        continue;
                    }
                    let window = Window { from: start, to: anchors::run_end(bytes, start), last_start: Some(start) };
                    let (last_end, resume) = self.run_to(*pass, re, bytes, window, &mut found);
                    if last_end > start {
                        covered = resume;
                    }
                }
            }
        }
        if let Some((pass, re)) = self.passes.iter().find(|(pass, _)| pass.colon_gated()) {
            // An address holding this colon starts at most 45 bytes before it and ends at most
            // 56 after it. Candidates up to the colon are tried (not before what earlier colons
            // covered), then the scan goes on after them.
            let mut covered = 0usize;
            clusters::for_each_ipv6_colon(bytes, |colon| {
                if colon < covered || !clusters::ipv6_run_is_clear(bytes, colon) {
                    return colon + 1;
                }
                let to = (colon + 57).min(bytes.len());
                let from = colon.saturating_sub(45).max(covered);
                // Where a whole-text pass would search next: one byte past a rejected candidate
                // (`e:fe80::1` in `time:fe80::1` hides `fe80::1`), past an accepted one.
                covered = self
                    .run_to(*pass, re, bytes, Window { from, to, last_start: Some(colon) }, &mut found)
                    .1
                    .max(colon + 1);
                covered
            });
        }
        if let Some((pass, re)) = self.passes.iter().find(|(pass, _)| pass.letter_gated()) {
            // Identifiers with letters hold a digit run next to a capital (`AB123456C`,
            // `12345678Z`, `RSSMRA85T10A562S`); a candidate starts at most 16 bytes before it
            // and ends at most 24 after it. Candidates up to the run's end are tried (not before
            // what earlier runs covered), as a whole-text pass would.
            let mut covered = 0usize;
            clusters::for_each_letter_digit_run(bytes, |run_start, run_end| {
                if run_end < covered {
                    return;
                }
                let from = run_start.saturating_sub(16).max(covered);
                let to = (run_end + 24).min(bytes.len());
                let window = Window { from, to, last_start: Some(run_end) };
                covered = self.run_to(*pass, re, bytes, window, &mut found).1.max(covered);
            });
        }
        let gated: Vec<&(Pass, Regex)> = self.passes.iter().filter(|(pass, _)| pass.gated()).collect();
        if !gated.is_empty() {
            clusters::for_each(bytes, |cluster| {
                for (pass, re) in &gated {
                    if pass.may_match(bytes, &cluster) {
                        let end = pass.window_end(bytes.len(), &cluster);
                        let window = Window { from: cluster.start, to: end, last_start: None };
                        self.run(*pass, re, bytes, window, &mut found);
                    }
                }
            });
        }
        resolve(found)
    }

    /// [`scan`](Detector::scan) with every pass run over the whole text, no gates: slower, same
    /// results (a test holds the gates to that).
    #[doc(hidden)]
    pub fn scan_without_gates(&self, text: &str) -> Vec<Match> {
        let bytes = text.as_bytes();
        let mut found = Vec::new();
        for (pass, re) in &self.passes {
            self.run(*pass, re, bytes, Window { from: 0, to: bytes.len(), last_start: None }, &mut found);
        }
        resolve(found)
    }

    /// Runs one pass over the candidates of `window`. Returns the end of the last candidate tried.
    fn run(&self, pass: Pass, re: &Regex, text: &[u8], window: Window, found: &mut Vec<Ranked>) -> usize {
        self.run_to(pass, re, text, window, found).0
    }

    /// [`run`](Detector::run), also returning where a whole-text pass would search next.
    fn run_to(&self, pass: Pass, re: &Regex, text: &[u8], window: Window, found: &mut Vec<Ranked>) -> (usize, usize) {
        let Window { from, to, last_start } = window;
        let Some(haystack) = text.get(..to) else { return (from, from) };
        let mut pos = from;
        let mut last_end = from;
        while pos <= haystack.len() {
            let Some(m) = re.find_at(haystack, pos) else { break };
            if last_start.is_some_and(|last| m.start() > last) {
                break;
            }
            last_end = m.end();
            match patterns::confirm(pass, text, m.start(), m.end(), &self.phone_regions, |e| self.is_enabled(e)) {
                Some(f) => {
                    if self.is_enabled(f.entity) {
                        let rank = match f.evidence {
                            Evidence::Written => f.entity.specificity(),
                            Evidence::BareId => BARE_ID_RANK,
                            Evidence::BarePhone => BARE_PHONE_RANK,
                        };
                        found.push((Match { entity: f.entity, start: f.start, end: f.end }, rank));
                    }
                    pos = m.end().max(f.end).max(m.start() + 1);
                }
                None => pos = pass.resume_after_reject(text, m.start(), m.end()),
            }
        }
        (last_end, pos)
    }
}

/// Where a pass looks: candidates starting in `from..to` and ending by `to`, or only those
/// starting up to `last_start`.
#[derive(Debug, Clone, Copy)]
struct Window {
    from: usize,
    to: usize,
    last_start: Option<usize>,
}

/// A detection and its rank between equal spans (lower wins): the entity's
/// [`specificity`](Entity::specificity), or the rank of its [`Evidence`].
type Ranked = (Match, u8);

/// The rank of a national id accepted without its keyword or printed form (a checksum and a
/// date or digit rule): below every entity found by its writing, so a phone or card of the same
/// span keeps it.
const BARE_ID_RANK: u8 = 20;

/// The rank of a bare run taken as a phone for being a valid national number: below a bare id.
const BARE_PHONE_RANK: u8 = 21;

/// Overlapping detections: the longest wins, then the best rank, then the earliest.
fn resolve(mut found: Vec<Ranked>) -> Vec<Match> {
    if found.len() < 2 {
        return found.into_iter().map(|(m, _)| m).collect();
    }
    found.sort_by_key(|(m, rank)| (m.start, Reverse(m.end), *rank));
    found.dedup_by_key(|(m, _)| *m);
    let mut out = Vec::with_capacity(found.len());
    let mut rest = found.as_slice();
    while let Some(first) = rest.first() {
        // The cluster of detections chained by overlap with the first one.
        let mut end = first.0.end;
        let mut n = 1;
        while let Some(next) = rest.get(n) {
            if next.0.start >= end {
                break;
            }
            end = end.max(next.0.end);
            n += 1;
        }
        let (cluster, tail) = rest.split_at(n.min(rest.len()));
        if let [single] = cluster {
            out.push(single.0);
        } else {
            let mut by_rank = cluster.to_vec();
            by_rank.sort_by_key(|(m, rank)| (Reverse(m.end - m.start), *rank, m.start));
            let mut kept: Vec<Match> = Vec::new();
            for (m, _) in by_rank {
                if kept.iter().all(|k| k.end <= m.start || m.end <= k.start) {
                    kept.push(m);
                }
            }
            kept.sort_by_key(|m| m.start);
            out.extend(kept);
        }
        rest = tail;
    }
    out
}
