//! A realistic set of custom rules a security team would add next to the built-ins: internal
//! identifiers with a fixed shape. Written in the common subset of `regex` (Unicode off) and
//! `regex-lite` (ASCII only), so both engines give the same matches (the native runner checks).

/// `(name, pattern)`. Every `\b` is an ASCII word boundary in both engines (Unicode off).
pub const RULES: [(&str, &str); 10] = [
    ("employee_id", r"\bEMP-[0-9]{6}\b"),
    ("internal_host", r"\b[a-z0-9-]+\.corp\.example\.com\b"),
    ("ticket", r"\b(?:SEC|OPS|INC|CHG)-[0-9]{3,7}\b"),
    ("customer_number", r"\bCUST-?[0-9]{8}\b"),
    ("passport_like", r"\b[A-Z]{2}[0-9]{7}\b"),
    ("cost_center", r"\bCC-[0-9]{4}-[0-9]{3}\b"),
    ("contract", r"\bCTR/[0-9]{4}/[0-9]{5}\b"),
    ("s3_bucket", r"\bs3://acme-[a-z0-9.-]{3,60}"),
    ("codename", r"\b(?:BLUEFIN|NIGHTJAR|KESTREL|OSPREY)\b"),
    ("classification", r"(?i:\b(?:confidential|internal[ -]only|do not distribute)\b)"),
];

/// The rules as one leftmost-first alternation.
pub fn alternation() -> String {
    RULES.iter().map(|(_, p)| format!("(?:{p})")).collect::<Vec<_>>().join("|")
}

/// `regex` with Unicode off (like `llmobs_core::pii`): `\b`, `[0-9]` and `(?i)` are ASCII.
pub fn compile_regex() -> Result<regex::bytes::Regex, regex::Error> {
    regex::bytes::RegexBuilder::new(&alternation()).unicode(false).build()
}

pub fn compile_regexset() -> Result<regex::bytes::RegexSet, regex::Error> {
    regex::bytes::RegexSetBuilder::new(RULES.iter().map(|(_, p)| *p)).unicode(false).build()
}

pub fn compile_regex_lite() -> Result<regex_lite::Regex, regex_lite::Error> {
    regex_lite::Regex::new(&alternation())
}

pub fn count_regex(re: &regex::bytes::Regex, text: &str) -> usize {
    re.find_iter(text.as_bytes()).count()
}

/// How many rules fire somewhere in the text.
pub fn count_regexset(set: &regex::bytes::RegexSet, text: &str) -> usize {
    set.matches(text.as_bytes()).iter().count()
}

pub fn count_regex_lite(re: &regex_lite::Regex, text: &str) -> usize {
    re.find_iter(text).count()
}
