//! Security-written patterns: custom entities and fingerprint masks.
//!
//! Engine: the `regex` crate with Unicode tables off. It has no backtracking (every search is
//! linear in the text), refuses look-around and back-references at parse time, and its compiled
//! size is bounded here, so a rule cannot make a request slow or the VM large; the numbers
//! behind the choice (against `regex-lite`, and against a `RegexSet`) are in
//! `docs/benchmarks.md`. All rules run as one alternation, one pass over the text; which rule a
//! match belongs to is found by trying the single rules at the match's start (matches are rare).
//! At one position the first listed rule that matches wins.

use crate::config::ConfigError;
use regex::{Regex, RegexBuilder};

use super::config::{MAX_COMPILED_BYTES, MAX_PATTERN_BYTES};

/// A span found by rule `rule` (its index in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleMatch {
    pub rule: usize,
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone)]
pub struct Rules {
    /// `(?:p0)|(?:p1)|...` over the rules in force: the one pass over the text.
    all: Option<Regex>,
    /// Every rule (its index is the rule's place in the configuration), and whether it is in
    /// force: a rule switched off is still checked at load but never searched, so it cannot
    /// shadow a rule in force at the same position.
    each: Vec<(Regex, bool)>,
}

impl Rules {
    /// Compiles `patterns`, every one in force; an error names `field[i]` and says why, never
    /// quoting the pattern.
    pub fn compile<'a>(field: &str, patterns: impl IntoIterator<Item = &'a str>) -> Result<Self, ConfigError> {
        Self::compile_some(field, patterns.into_iter().map(|p| (p, true)))
    }

    /// [`compile`](Self::compile), with a flag per pattern saying whether it is searched.
    pub fn compile_some<'a>(
        field: &str,
        patterns: impl IntoIterator<Item = (&'a str, bool)>,
    ) -> Result<Self, ConfigError> {
        let patterns: Vec<(&str, bool)> = patterns.into_iter().collect();
        let mut each = Vec::with_capacity(patterns.len());
        // Every pattern is checked, so a rules file shows all its bad patterns at once.
        let mut errors = Vec::new();
        for (i, &(pattern, on)) in patterns.iter().enumerate() {
            match compile_one(pattern) {
                Ok(regex) => each.push((regex, on)),
                Err(reason) => errors.push(ConfigError::new(format!("{field}[{i}]"), reason)),
            }
        }
        ConfigError::collect(errors)?;
        let on: Vec<&str> = patterns.iter().filter(|(_, on)| *on).map(|(p, _)| *p).collect();
        let all = if on.is_empty() {
            None
        } else {
            let joined = on.iter().map(|p| format!("(?:{p})")).collect::<Vec<_>>().join("|");
            Some(
                RegexBuilder::new(&joined)
                    .unicode(false)
                    .size_limit(MAX_COMPILED_BYTES * on.len())
                    .dfa_size_limit(2 * MAX_COMPILED_BYTES)
                    .nest_limit(NEST_LIMIT + 1)
                    .build()
                    .map_err(|e| ConfigError::new(field, describe(&e)))?,
            )
        };
        Ok(Self { all, each })
    }

    /// Whether no rule is in force.
    pub fn is_empty(&self) -> bool {
        self.all.is_none()
    }

    /// Every match of any rule, non-overlapping, in text order.
    pub fn find(&self, text: &str) -> Vec<RuleMatch> {
        let Some(all) = &self.all else { return Vec::new() };
        all.find_iter(text)
            .filter_map(|m| {
                // The alternation matched with its first alternative that matches here.
                let rule = self
                    .each
                    .iter()
                    .position(|(re, on)| *on && re.find_at(text, m.start()).is_some_and(|x| x.start() == m.start()))?;
                Some(RuleMatch { rule, start: m.start(), end: m.end() })
            })
            .collect()
    }

    /// `text` with every match of every rule replaced by `with`.
    pub fn mask(&self, text: &str, with: &str) -> String {
        match &self.all {
            Some(all) => all.replace_all(text, with).into_owned(),
            None => text.to_string(),
        }
    }
}

/// One pattern as every rule is compiled, or why not (never quoting the pattern).
fn compile_one(pattern: &str) -> Result<Regex, String> {
    if pattern.is_empty() || pattern.len() > MAX_PATTERN_BYTES {
        return Err(format!("pattern must be 1-{MAX_PATTERN_BYTES} bytes"));
    }
    // The same parser settings `regex` uses below (Unicode off, nesting 32), so what passes here
    // is what the engine gets; its errors carry a kind and a span, which `regex` flattens into a
    // text quoting the pattern.
    regex_syntax::ParserBuilder::new()
        .unicode(false)
        .nest_limit(NEST_LIMIT)
        .build()
        .parse(pattern)
        .map_err(|e| describe_syntax(&e))?;
    let regex = RegexBuilder::new(pattern)
        .unicode(false)
        .size_limit(MAX_COMPILED_BYTES)
        .dfa_size_limit(2 * MAX_COMPILED_BYTES)
        .nest_limit(NEST_LIMIT)
        .build()
        .map_err(|e| describe(&e))?;
    if regex.is_match("") {
        return Err("pattern matches the empty string".to_string());
    }
    Ok(regex)
}

const NEST_LIMIT: u32 = 32;

/// A parse error as `<cause> at character C of the pattern: <what>`; the cause is either a
/// syntax error or a construct that needs backtracking (look-around, back-references), which
/// the linear-time engine refuses by design.
fn describe_syntax(err: &regex_syntax::Error) -> String {
    use regex_syntax::ast::ErrorKind as Ast;
    let (what, span, nonlinear) = match err {
        regex_syntax::Error::Parse(e) => {
            let nonlinear = matches!(e.kind(), Ast::UnsupportedLookAround | Ast::UnsupportedBackreference);
            let what = match e.kind() {
                Ast::UnsupportedLookAround => "look-around ((?=, (?!, (?<=, (?<!) needs backtracking".to_string(),
                Ast::UnsupportedBackreference => "a back-reference (\\1) needs backtracking".to_string(),
                kind => kind.to_string(),
            };
            (what, *e.span(), nonlinear)
        }
        regex_syntax::Error::Translate(e) => (e.kind().to_string(), *e.span(), false),
        _ => return "regex syntax error: invalid pattern".to_string(),
    };
    // The span's column counts characters from 1; a byte offset is given too for editors.
    let at = format!("character {} (byte {}) of the pattern", span.start.column, span.start.offset);
    if nonlinear {
        format!("not a linear-time construct at {at}: {what}; the engine has no backtracking, so look-around and back-references are refused")
    } else {
        format!("regex syntax error at {at}: {what}")
    }
}

/// The regex crate's error without the pattern text it echoes.
fn describe(err: &regex::Error) -> String {
    match err {
        regex::Error::CompiledTooBig(limit) => format!("pattern compiles to more than {limit} bytes"),
        regex::Error::Syntax(text) => {
            // The syntax error's first line quotes the pattern; keep only the reason line.
            let reason = text.lines().rev().find(|l| l.starts_with("error:")).unwrap_or("invalid syntax");
            format!("invalid pattern ({reason})")
        }
        _ => "invalid pattern".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_find_every_match_with_its_rule() {
        let rules = Rules::compile("custom_rules", ["EMP-[0-9]{6}", "[a-z]+\\.corp\\.example\\.com"]).unwrap();
        let text = "ask EMP-123456 on db.corp.example.com or EMP-654321";
        let found = rules.find(text);
        let spans: Vec<(usize, &str)> = found.iter().map(|m| (m.rule, &text[m.start..m.end])).collect();
        assert_eq!(spans, [(0, "EMP-123456"), (1, "db.corp.example.com"), (0, "EMP-654321")]);
    }

    #[test]
    fn backtracking_constructs_are_refused_without_quoting_the_pattern() {
        let err = Rules::compile("custom_rules", ["(a)\\1-secret"]).unwrap_err();
        assert_eq!(err.field, "custom_rules[0]");
        assert!(!err.reason.contains("secret"), "{}", err.reason);
        assert!(Rules::compile("custom_rules", ["(?=x)y"]).is_err());
    }

    #[test]
    fn a_syntax_error_is_told_apart_from_a_non_linear_construct_with_its_position() {
        let err = Rules::compile("custom_rules", ["TKT-[0-9{6}"]).unwrap_err();
        assert_eq!(err.reason, "regex syntax error at character 5 (byte 4) of the pattern: unclosed character class");
        let err = Rules::compile("custom_rules", ["ab(?=x)"]).unwrap_err();
        assert!(err.reason.starts_with("not a linear-time construct at character 3 (byte 2)"), "{}", err.reason);
        assert!(err.reason.contains("look-around"), "{}", err.reason);
        let err = Rules::compile("custom_rules", ["(a)\\1"]).unwrap_err();
        assert!(err.reason.starts_with("not a linear-time construct at character 4"), "{}", err.reason);
        assert!(err.reason.contains("back-reference"), "{}", err.reason);
    }

    #[test]
    fn every_bad_pattern_is_reported_not_only_the_first() {
        let err = Rules::compile("custom_rules", ["ok", "TKT-[0-9{6}", "fine", "(?=x)"]).unwrap_err();
        let fields: Vec<String> = err.into_all().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["custom_rules[1]", "custom_rules[3]"]);
    }

    #[test]
    fn oversized_and_empty_matching_patterns_are_refused_at_load() {
        assert!(Rules::compile("r", ["(?:[a-z0-9]{1000}){50}"]).is_err());
        assert!(Rules::compile("r", ["x*"]).is_err());
        assert!(Rules::compile("r", [""]).is_err());
    }

    #[test]
    fn rules_switched_off_are_checked_at_load_but_never_searched() {
        let rules = Rules::compile_some("custom_rules", [("EMP-[0-9]+", false), ("EMP-[0-9]{6}", true)]).unwrap();
        let found = rules.find("ask EMP-123456");
        assert_eq!(found, [RuleMatch { rule: 1, start: 4, end: 14 }], "the rule in force is reported, not shadowed");
        assert!(Rules::compile_some("custom_rules", [("EMP-[0-9]+", true), ("(?=x)", false)]).is_err());
        assert!(Rules::compile_some("custom_rules", [("x", false)]).unwrap().is_empty());
    }

    #[test]
    fn masks_replace_dynamic_parts() {
        let rules = Rules::compile("m", ["[0-9]{4}-[0-9]{2}-[0-9]{2}"]).unwrap();
        assert_eq!(rules.mask("Today is 2026-11-27.", "#"), "Today is #.");
    }
}
