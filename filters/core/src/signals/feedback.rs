//! The client-feedback body (`docs/filters/correlation.md`, "Client feedback"):
//!
//! ```json
//! {"request_id": "req-7", "conversation_id": "c-1", "rating": "down", "kind": "feedback",
//!  "task_completed": false, "ticket_url": "https://support.example/t/42", "locale": "de-CH"}
//! ```
//!
//! Validated strictly: one JSON object, known fields only, each at most once, each of its
//! documented type and form. A body that fails any rule is refused whole with one [`Invalid`]
//! reason; nothing in it is logged, counted by value or forwarded.

use crate::id;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
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
                "ticket_url must be an http(s) URL of printable ASCII, at most 2048 bytes, without user info"
            }
            Invalid::Locale => {
                "locale must be a BCP 47 tag of the form language[-Script][-REGION] (en, de-CH, zh-Hant-TW, es-419)"
            }
        }
    }
}

/// Every member of the object in order, duplicates kept (a map type would keep only the last).
struct Members(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    out.push(entry);
                }
                Ok(Members(out))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

const FIELDS: [&str; 7] = ["request_id", "conversation_id", "rating", "kind", "task_completed", "ticket_url", "locale"];

/// Parses and validates one body.
pub fn parse(body: &[u8]) -> Result<Feedback, Invalid> {
    let Members(members) = serde_json::from_slice(body).map_err(|_| Invalid::Json)?;
    let mut seen = [false; FIELDS.len()];
    for (key, _) in &members {
        let slot = FIELDS.iter().position(|f| f == key).ok_or(Invalid::UnknownField)?;
        match seen.get_mut(slot) {
            Some(true) => return Err(Invalid::DuplicateField),
            Some(flag) => *flag = true,
            None => return Err(Invalid::UnknownField),
        }
    }
    let field = |name: &str| members.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let kind = match field("kind") {
        None => Kind::Feedback,
        Some(Value::String(s)) if s == "feedback" => Kind::Feedback,
        Some(Value::String(s)) if s == "client_error" => Kind::ClientError,
        Some(_) => return Err(Invalid::Kind),
    };
    let request_id = match field("request_id") {
        Some(Value::String(s)) => id::validate(s.as_bytes()).map_err(|_| Invalid::RequestId)?.to_string(),
        _ => return Err(Invalid::RequestId),
    };
    let conversation_id = match field("conversation_id") {
        None => None,
        Some(Value::String(s)) => Some(id::validate(s.as_bytes()).map_err(|_| Invalid::ConversationId)?.to_string()),
        Some(_) => return Err(Invalid::ConversationId),
    };
    let rating = match field("rating") {
        None if kind == Kind::ClientError => None,
        Some(Value::String(s)) if s == "up" => Some(Rating::Up),
        Some(Value::String(s)) if s == "down" => Some(Rating::Down),
        _ => return Err(Invalid::Rating),
    };
    let task_completed = match field("task_completed") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(Invalid::TaskCompleted),
    };
    let ticket_url = match field("ticket_url") {
        None => None,
        Some(Value::String(s)) => Some(ticket_url(s).ok_or(Invalid::TicketUrl)?),
        Some(_) => return Err(Invalid::TicketUrl),
    };
    let locale = match field("locale") {
        None => None,
        Some(Value::String(s)) => Some(locale(s).ok_or(Invalid::Locale)?),
        Some(_) => return Err(Invalid::Locale),
    };
    Ok(Feedback { request_id, conversation_id, rating, kind, task_completed, ticket_url, locale })
}

/// An absolute `http`/`https` URL of printable ASCII with a host and no user info; returned
/// without its query and fragment.
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
    if authority.is_empty() || authority.contains('@') || authority.contains('\\') {
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
