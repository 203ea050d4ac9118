//! `llmobs`: the pack's offline tool for security and platform teams. It checks, tests and
//! hashes PII rule sets and checks any filter's configuration with the filters' own core code
//! (`llmobs-core`), so what it accepts the filters accept, with the same messages. Usage and
//! exit codes: `llmobs help`, and docs/filters/pii-redaction.md ("Testing rules before rollout").

mod host;
mod load;
mod locate;

use host::{CliHost, Keys};
use llmobs_core::bundle::{AccountingFilter, CorrelationFilter, ErrorsFilter, FullBundle, RedactionFilter};
use llmobs_core::config::ConfigError;
use llmobs_core::redaction::{rule_set_hash, PiiRedaction};
use load::{Filter, Found};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::ExitCode;

const USAGE: &str = "usage:
  llmobs rules check FILE            every error in a PII rule set, with its position
  llmobs rules test FILE CASES.yaml  per entity, must_match / must_not_match samples
  llmobs rules hash FILE             the rule_set_hash the llmobs.pii.rule_set gauge shows
  llmobs redact --config FILE        stdin to stdout as the filter rewrites a request text;
                                     each detection (entity, rule, action) on stderr
  llmobs config check FILE [--filter NAME]
                                     every error in any filter's or the bundle's configuration
  llmobs version
FILE: the filter's JSON (or the same as YAML), an ECDS or Envoy bootstrap file, an Istio
WasmPlugin or an Envoy Gateway EnvoyExtensionPolicy.
exit: 0 ok, 1 invalid configuration or a failed case, 2 usage or unreadable input";

/// What a verb ends with: exit 1 for a finding in the input, 2 for a usage problem.
enum Failure {
    Invalid,
    Usage(String),
}

type Outcome = Result<(), Failure>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Invalid) => ExitCode::from(1),
        Err(Failure::Usage(message)) => {
            eprintln!("llmobs: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[&str]) -> Outcome {
    match args {
        ["rules", "check", file] => rules_check(file),
        ["rules", "test", file, cases] => rules_test(file, cases),
        ["rules", "hash", file] => rules_hash(file),
        ["redact", "--config", file] => redact(file),
        ["config", "check", file] => config_check(file, None),
        ["config", "check", file, "--filter", name] | ["config", "check", "--filter", name, file] => {
            let filter = Filter::from_name(name)
                .ok_or_else(|| Failure::Usage(format!("unknown filter; expected one of {}", Filter::NAMES)))?;
            config_check(file, Some(filter))
        }
        ["version" | "--version"] => {
            println!("llmobs {} ({})", env!("CARGO_PKG_VERSION"), llmobs_core::build::REVISION);
            Ok(())
        }
        ["help" | "--help" | "-h"] => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(Failure::Usage(format!("unknown command\n{USAGE}"))),
    }
}

fn load_all(file: &str) -> Result<Vec<Found>, Failure> {
    load::load(file).map_err(|message| {
        eprintln!("{message}");
        Failure::Invalid
    })
}

/// One line per error: `LABEL:LINE:COLUMN: field `F`: reason` (no position when the
/// configuration was not written as JSON text in the file).
fn report(found: &Found, err: ConfigError) -> usize {
    let all = err.into_all();
    for e in &all {
        let at = if found.as_written { locate::locate(&found.json, &e.field) } else { None };
        match at {
            Some((line, column)) => eprintln!("{}:{line}:{column}: field `{}`: {}", found.label, e.field, e.reason),
            None => eprintln!("{}: field `{}`: {}", found.label, e.field, e.reason),
        }
    }
    all.len()
}

/// The PII configuration in `found`: itself, or a bundle's `pii_redaction` section.
fn pii_json(found: &Found) -> Result<Option<String>, Failure> {
    let bundle = match found.filter {
        Some(Filter::Bundle) => true,
        Some(Filter::PiiRedaction) => false,
        Some(_) => return Ok(None),
        None => looks_like_bundle(&found.json),
    };
    if !bundle {
        return Ok(Some(found.json.clone()));
    }
    let doc: serde_json::Value = serde_json::from_str(&found.json).map_err(|e| {
        eprintln!("{}: not JSON: {e}", found.label);
        Failure::Invalid
    })?;
    Ok(doc.get("pii_redaction").map(|section| section.to_string()))
}

fn looks_like_bundle(json: &str) -> bool {
    let Ok(serde_json::Value::Object(doc)) = serde_json::from_str::<serde_json::Value>(json) else { return false };
    // No filter's own schema has a field named like a section, so one such key means a bundle.
    let sections = ["correlation", "pii_redaction", "token_accounting", "error_normalization"];
    doc.keys().any(|k| sections.contains(&k.as_str()))
}

/// A rule set as the filter configured it, with its configuration text.
type Configured = Result<(PiiRedaction, String), ConfigError>;

/// Every PII rule set in `file`, configured as the filter configures it; the flag says whether
/// a throwaway pseudonym key was used.
fn rule_sets(file: &str, keys: Keys) -> Result<Vec<(Found, Configured, bool)>, Failure> {
    let mut sets = Vec::new();
    for found in load_all(file)? {
        let Some(json) = pii_json(&found)? else { continue };
        let mut host = CliHost::new(keys);
        let configured = PiiRedaction::new(json.as_bytes(), &mut host).map(|pii| (pii, json));
        sets.push((found, configured, host.used_throwaway_key.get()));
    }
    if sets.is_empty() {
        eprintln!("{file}: no PII redaction configuration found");
        return Err(Failure::Invalid);
    }
    Ok(sets)
}

fn rules_check(file: &str) -> Outcome {
    let mut errors = 0;
    for (found, configured, _) in rule_sets(file, Keys::Throwaway)? {
        match configured {
            Ok((pii, _)) => println!("ok: {}: rule set {}", found.label, pii.rule_set()),
            Err(err) => errors += report(&found, err),
        }
    }
    if errors > 0 {
        eprintln!("{errors} error(s)");
        return Err(Failure::Invalid);
    }
    Ok(())
}

fn rules_hash(file: &str) -> Outcome {
    let sets = rule_sets(file, Keys::Throwaway)?;
    let many = sets.len() > 1;
    let mut failed = false;
    for (found, configured, _) in sets {
        match configured {
            // The hash is only shown by a filter that accepted the rules, so only then here.
            Ok((_, json)) if many => println!("{} {}", found.label, rule_set_hash(json.as_bytes())),
            Ok((_, json)) => println!("{}", rule_set_hash(json.as_bytes())),
            Err(err) => {
                report(&found, err);
                failed = true;
            }
        }
    }
    if failed {
        Err(Failure::Invalid)
    } else {
        Ok(())
    }
}

/// CASES.yaml: per entity, samples that must and must not be detected as that entity.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cases {
    #[serde(default)]
    must_match: Vec<String>,
    #[serde(default)]
    must_not_match: Vec<String>,
}

fn rules_test(file: &str, cases_file: &str) -> Outcome {
    let text =
        std::fs::read_to_string(cases_file).map_err(|e| Failure::Usage(format!("cannot read {cases_file}: {e}")))?;
    let cases: BTreeMap<String, Cases> = serde_yaml_ng::from_str(&text).map_err(|e| {
        eprintln!("{cases_file}: not a cases file (entity: {{must_match: [...], must_not_match: [...]}}): {e}");
        Failure::Invalid
    })?;
    let mut sets = rule_sets(file, Keys::Throwaway)?;
    if sets.len() != 1 {
        eprintln!("{file}: {} PII configurations; test one at a time", sets.len());
        return Err(Failure::Invalid);
    }
    let Some((found, configured, _)) = sets.pop() else { return Err(Failure::Invalid) };
    let (pii, _) = configured.map_err(|err| {
        report(&found, err);
        Failure::Invalid
    })?;
    let mut host = CliHost::new(Keys::Throwaway);
    let (mut run, mut failed) = (0, 0);
    for (entity, case) in &cases {
        if !pii.defines(entity) {
            eprintln!("FAIL {entity}: no built-in entity or custom rule of that name in {}", found.label);
            failed += 1;
            continue;
        }
        let samples = case.must_match.iter().map(|s| (s, true)).chain(case.must_not_match.iter().map(|s| (s, false)));
        for (i, (sample, must)) in samples.enumerate() {
            run += 1;
            let preview = pii.preview_request(&mut host, sample);
            let hit = preview.detections.iter().find(|d| &d.entity == entity);
            let list = if must { "must_match" } else { "must_not_match" };
            let index = if must { i } else { i - case.must_match.len() };
            match (must, hit) {
                (true, None) => {
                    let other: Vec<&str> = preview.detections.iter().map(|d| d.entity.as_str()).collect();
                    let other =
                        if other.is_empty() { String::new() } else { format!(" (found: {})", other.join(", ")) };
                    eprintln!("FAIL {entity} {list}[{index}] {sample:?}: not detected{other}");
                    failed += 1;
                }
                (false, Some(d)) => {
                    let matched = sample.get(d.start..d.end).unwrap_or_default();
                    eprintln!(
                        "FAIL {entity} {list}[{index}] {sample:?}: detected {matched:?} by {}",
                        rule_name(d.rule)
                    );
                    failed += 1;
                }
                _ => {}
            }
        }
    }
    println!("{}: {run} samples, {failed} failed", found.label);
    if failed > 0 {
        return Err(Failure::Invalid);
    }
    Ok(())
}

fn rule_name(rule: Option<usize>) -> String {
    rule.map_or_else(|| "the built-in detector".to_string(), |i| format!("custom_rules[{i}]"))
}

fn redact(file: &str) -> Outcome {
    let mut sets = rule_sets(file, Keys::Process)?;
    if sets.len() != 1 {
        eprintln!("{file}: {} PII configurations; give one", sets.len());
        return Err(Failure::Invalid);
    }
    let Some((found, configured, throwaway_key)) = sets.pop() else { return Err(Failure::Invalid) };
    let (pii, _) = configured.map_err(|err| {
        report(&found, err);
        Failure::Invalid
    })?;
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input).map_err(|e| Failure::Usage(format!("cannot read stdin: {e}")))?;
    let text = String::from_utf8(input).map_err(|_| Failure::Usage("stdin is not UTF-8 text".to_string()))?;
    let mut host = CliHost::new(Keys::Process);
    let preview = pii.preview_request(&mut host, &text);
    let mut out = std::io::stdout();
    out.write_all(preview.text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Failure::Usage(format!("cannot write stdout: {e}")))?;
    for d in &preview.detections {
        // A trial changes nothing: its line says what it would do.
        let trial = if d.shadow { " (shadow: would, changes nothing)" } else { "" };
        eprintln!("{} by {}: {}{trial} at bytes {}..{}", d.entity, rule_name(d.rule), d.action.label(), d.start, d.end);
    }
    if let Some(entity) = preview.refused_for {
        eprintln!("the filter refuses this request: 400 pii_blocked, entity {entity}");
    }
    if !pii.rewrites_requests() {
        eprintln!("note: this configuration does not rewrite requests (mode telemetry or direction response); the text goes upstream unchanged");
    }
    if throwaway_key {
        eprintln!("note: the pseudonym key variable is not set here; pseudonyms use a throwaway key");
    }
    Ok(())
}

fn config_check(file: &str, filter: Option<Filter>) -> Outcome {
    let mut errors = 0;
    for found in load_all(file)? {
        let filter = filter.or(found.filter).or_else(|| looks_like_bundle(&found.json).then_some(Filter::Bundle));
        let Some(filter) = filter else {
            return Err(Failure::Usage(format!(
                "{}: say which filter this configuration is for: --filter {}",
                found.label,
                Filter::NAMES.replace(", ", "|")
            )));
        };
        let mut host = CliHost::new(Keys::Throwaway);
        let json = found.json.as_bytes();
        let result = match filter {
            Filter::Correlation => CorrelationFilter::new(json, &mut host).map(drop),
            Filter::PiiRedaction => RedactionFilter::new(json, &mut host).map(drop),
            Filter::TokenAccounting => AccountingFilter::new(json, &mut host).map(drop),
            Filter::ErrorNormalization => ErrorsFilter::new(json, &mut host).map(drop),
            Filter::Bundle => FullBundle::new(json, &mut host).map(drop),
            Filter::EvalExporter => llmobs_core::evaluation::config::ExporterConfig::parse(json).map(drop),
        };
        match result {
            Ok(()) => println!("ok: {} ({filter:?})", found.label),
            Err(err) => errors += report(&found, err),
        }
    }
    if errors > 0 {
        eprintln!("{errors} error(s)");
        return Err(Failure::Invalid);
    }
    Ok(())
}
