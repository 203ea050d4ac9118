//! The client-feedback body (`docs/filters/correlation.md`, "Client feedback"):
//!
//! ```json
//! {"request_id": "req-7", "conversation_id": "c-1", "rating": "down", "kind": "feedback",
//!  "task_completed": false, "ticket_url": "https://support.example/t/42", "locale": "de-CH"}
//! ```
//!
//! Validated strictly: one JSON object, known fields only, each at most once, each of its
//! documented type and form, read in one pass. A body that fails any rule is refused whole with
//! one [`Invalid`] reason, its first fault; nothing in it is logged, counted by value or
//! forwarded.

use crate::id;
use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, Visitor};
use serde_json::Value;
use std::fmt;

/// The longest `ticket_url` accepted.
pub const MAX_TICKET_URL_BYTES: usize = 2048;
/// The longest `locale` accepted (`language[-Script][-REGION]`: at most 3+5+4).
pub const MAX_LOCALE_BYTES: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rating {
    Up,
    Down,
}

impl Rating {
    pub fn label(self) -> &'static str {
        match self {
            Rating::Up => "up",
            Rating::Down => "down",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A user's rating of an answer.
    Feedback,
    /// The client saw a failure the gateway could not (a render error, a timeout in the app).
    ClientError,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Feedback => "feedback",
            Kind::ClientError => "client_error",
        }
    }
}

/// A valid feedback body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feedback {
    /// The rated request's id (its `x-request-id`, echoed to the client), id rules.
    pub request_id: String,
    pub conversation_id: Option<String>,
    /// Required for `feedback`, optional for `client_error`.
    pub rating: Option<Rating>,
    pub kind: Kind,
    pub task_completed: Option<bool>,
    /// The ticket link without its query string and fragment (queries can carry anything).
    pub ticket_url: Option<String>,
    /// Canonical case: `en`, `de-CH`, `zh-Hant-TW`, `es-419`.
    pub locale: Option<String>,
}

/// Why a body was refused; a bounded metric label and the `reason` of the 400 body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Invalid {
    /// Not one JSON object (or trailing bytes after it).
    Json,
    UnknownField,
    DuplicateField,
    RequestId,
    ConversationId,
    Rating,
    Kind,
    TaskCompleted,
    TicketUrl,
    Locale,
}

impl Invalid {
    pub const ALL: [Invalid; 10] = [
        Invalid::Json,
        Invalid::UnknownField,
        Invalid::DuplicateField,
        Invalid::RequestId,
        Invalid::ConversationId,
        Invalid::Rating,
        Invalid::Kind,
        Invalid::TaskCompleted,
        Invalid::TicketUrl,
        Invalid::Locale,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Invalid::Json => "json",
            Invalid::UnknownField => "unknown_field",
            Invalid::DuplicateField => "duplicate_field",
            Invalid::RequestId => "request_id",
            Invalid::ConversationId => "conversation_id",
            Invalid::Rating => "rating",
            Invalid::Kind => "kind",
            Invalid::TaskCompleted => "task_completed",
            Invalid::TicketUrl => "ticket_url",
            Invalid::Locale => "locale",
        }
    }

    /// The message of the structured 400 (fixed text: never an echo of the input).
    pub fn message(self) -> &'static str {
        match self {
            Invalid::Json => "the body must be one JSON object",
            Invalid::UnknownField => {
                "unknown field; allowed: request_id, conversation_id, rating, kind, task_completed, ticket_url, locale"
            }
            Invalid::DuplicateField => "a field appears more than once",
            Invalid::RequestId => "request_id is required: 1-128 characters of [A-Za-z0-9._:-]",
            Invalid::ConversationId => "conversation_id must be 1-128 characters of [A-Za-z0-9._:-]",
            Invalid::Rating => "rating must be \"up\" or \"down\" (required when kind is \"feedback\")",
            Invalid::Kind => "kind must be \"feedback\" or \"client_error\"",
            Invalid::TaskCompleted => "task_completed must be true or false",
            Invalid::TicketUrl => {
                "ticket_url must be an http(s) URL of printable ASCII, at most 2048 bytes, without `@` before its query"
            }
            Invalid::Locale => {
                "locale must be a BCP 47 tag of the form language[-Script][-REGION] (en, de-CH, zh-Hant-TW, es-419)"
            }
        }
    }
}

const FIELDS: [&str; 7] = ["request_id", "conversation_id", "rating", "kind", "task_completed", "ticket_url", "locale"];

/// The fields read so far: each one validated as it is read.
#[derive(Default)]
struct Fields {
    request_id: Option<String>,
    conversation_id: Option<String>,
    rating: Option<Rating>,
    kind: Option<Kind>,
    task_completed: Option<bool>,
    ticket_url: Option<String>,
    locale: Option<String>,
}

/// Reads the object in one pass, member by member, and stops at the first fault: an unknown
/// key or a repeated one is refused before its value is read, a value is checked as soon as it
/// is read, and nothing after a fault is looked at. `fault` says which rule stopped it (none:
/// the JSON itself was bad). A map type would keep only the last of two equal keys, so the
/// members are never collected into one.
struct Reader<'a> {
    fault: &'a mut Option<Invalid>,
}

impl<'de> DeserializeSeed<'de> for Reader<'_> {
    type Value = Fields;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Fields, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Reader<'_> {
    type Value = Fields;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
        let mut fields = Fields::default();
        let mut seen = [false; FIELDS.len()];
        let fault = self.fault;
        let mut stop = |invalid: Invalid| {
            *fault = Some(invalid);
            A::Error::custom(invalid.label())
        };
        while let Some(key) = map.next_key::<String>()? {
            let Some(slot) = FIELDS.iter().position(|f| *f == key) else { return Err(stop(Invalid::UnknownField)) };
            match seen.get_mut(slot) {
                Some(flag) if !*flag => *flag = true,
                _ => return Err(stop(Invalid::DuplicateField)),
            }
            let value: Value = map.next_value()?;
            let text = match &value {
                Value::String(s) => Some(s.as_str()),
                _ => None,
            };
            let id = || text.and_then(|s| id::validate(s.as_bytes()).ok()).map(str::to_string);
            match slot {
                0 => fields.request_id = Some(id().ok_or_else(|| stop(Invalid::RequestId))?),
                1 => fields.conversation_id = Some(id().ok_or_else(|| stop(Invalid::ConversationId))?),
                2 => {
                    let rating = match text {
                        Some("up") => Rating::Up,
                        Some("down") => Rating::Down,
                        _ => return Err(stop(Invalid::Rating)),
                    };
                    fields.rating = Some(rating);
                }
                3 => {
                    let kind = match text {
                        Some("feedback") => Kind::Feedback,
                        Some("client_error") => Kind::ClientError,
                        _ => return Err(stop(Invalid::Kind)),
                    };
                    fields.kind = Some(kind);
                }
                4 => match value {
                    Value::Bool(b) => fields.task_completed = Some(b),
                    _ => return Err(stop(Invalid::TaskCompleted)),
                },
                5 => fields.ticket_url = Some(text.and_then(ticket_url).ok_or_else(|| stop(Invalid::TicketUrl))?),
                _ => fields.locale = Some(text.and_then(locale).ok_or_else(|| stop(Invalid::Locale))?),
            }
        }
        Ok(fields)
    }
}

/// Parses and validates one body: one pass over it, refused at its first fault (a required
/// field that is missing is known only once the whole object was read).
pub fn parse(body: &[u8]) -> Result<Feedback, Invalid> {
    let mut fault = None;
    let mut de = serde_json::Deserializer::from_slice(body);
    let read = Reader { fault: &mut fault }.deserialize(&mut de).and_then(|fields| de.end().map(|()| fields));
    let fields = match read {
        Ok(fields) => fields,
        Err(_) => return Err(fault.unwrap_or(Invalid::Json)),
    };
    let kind = fields.kind.unwrap_or(Kind::Feedback);
    let request_id = fields.request_id.ok_or(Invalid::RequestId)?;
    if fields.rating.is_none() && kind == Kind::Feedback {
        return Err(Invalid::Rating);
    }
    Ok(Feedback {
        request_id,
        conversation_id: fields.conversation_id,
        rating: fields.rating,
        kind,
        task_completed: fields.task_completed,
        ticket_url: fields.ticket_url,
        locale: fields.locale,
    })
}

/// An absolute `http`/`https` URL of printable ASCII with a host and no `@` (nor `%40`) before
/// its query or fragment; returned without its query and fragment. An `@` there is user info
/// (`https://jane.doe@example.com@host/`) or an address in the path (`https://host/t/jane@x.io`):
/// either would write an address to the log, which keeps the URL up to its query.
fn ticket_url(raw: &str) -> Option<String> {
    if raw.len() > MAX_TICKET_URL_BYTES || !raw.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return None;
    }
    let lower = raw.get(..8).unwrap_or(raw).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        raw.get(8..)?
    } else if lower.starts_with("http://") {
        raw.get(7..)?
    } else {
        return None;
    };
    let cut = rest.find(['?', '#']).unwrap_or(rest.len());
    let rest = rest.get(..cut)?;
    let authority = rest.split('/').next().unwrap_or_default();
    let encoded_at = rest.as_bytes().windows(3).any(|w| w.eq_ignore_ascii_case(b"%40"));
    if authority.is_empty() || rest.contains('@') || encoded_at || authority.contains('\\') {
        return None;
    }
    let prefix = if lower.starts_with("https://") { "https://" } else { "http://" };
    Some(format!("{prefix}{rest}"))
}

/// `language[-Script][-REGION]`: 2-3 letters, then an optional 4-letter script, then an optional
/// 2-letter or 3-digit region, `-` or `_` between them; returned in canonical case (`zh-Hant-TW`).
fn locale(raw: &str) -> Option<String> {
    if raw.is_empty() || raw.len() > MAX_LOCALE_BYTES {
        return None;
    }
    let mut parts = raw.split(['-', '_']);
    let language = parts.next()?;
    if !(2..=3).contains(&language.len()) || !language.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let mut out = language.to_ascii_lowercase();
    let mut script_allowed = true;
    let mut region_seen = false;
    for part in parts {
        let alpha = part.bytes().all(|b| b.is_ascii_alphabetic());
        let digits = part.bytes().all(|b| b.is_ascii_digit());
        if region_seen {
            return None;
        }
        if script_allowed && part.len() == 4 && alpha {
            out.push('-');
            let mut chars = part.chars();
            if let Some(first) = chars.next() {
                out.push(first.to_ascii_uppercase());
            }
            out.push_str(&chars.as_str().to_ascii_lowercase());
            script_allowed = false;
        } else if (part.len() == 2 && alpha) || (part.len() == 3 && digits) {
            out.push('-');
            out.push_str(&part.to_ascii_uppercase());
            region_seen = true;
        } else {
            return None;
        }
    }
    Some(out)
}
