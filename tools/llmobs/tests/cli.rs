//! The built `llmobs` binary, run as security's CI would run it: exit codes, messages, and what
//! it accepts matching what the filters accept.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn llmobs(args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_llmobs"))
        .args(args)
        .current_dir(root())
        .env_remove("LLMOBS_PII_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A run that refuses its configuration exits before reading stdin: the write then meets a
    // closed pipe (EPIPE), which says nothing about the run; its exit code and output do.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let out = child.wait_with_output().unwrap();
    let run = Run {
        code: out.status.code().expect("exited, not killed by a signal"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    };
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    run
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// A file under the test's scratch folder with `text`; returns its absolute path.
fn file(name: &str, text: &str) -> String {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("llmobs-cli").join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

const SAMPLE_RULES: &str = "docs/examples/pii-rules/rules.json";
const SAMPLE_CASES: &str = "docs/examples/pii-rules/cases.yaml";

// ---- rules check ----

#[test]
fn a_good_rule_set_passes_and_names_its_version_and_hash() {
    let run = llmobs(&["rules", "check", SAMPLE_RULES], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let hash = llmobs(&["rules", "hash", SAMPLE_RULES], b"").stdout;
    assert_eq!(run.stdout, format!("ok: {SAMPLE_RULES}: rule set 2026-12-04@{}", hash));
}

#[test]
fn every_error_in_a_rule_set_is_reported_with_its_line_column_and_own_cause() {
    let bad = file(
        "bad-rules.json",
        r#"{
  "entities": {"emial": "redact"},
  "custom_rules": [
    {"entity": "ticket", "pattern": "TKT-[0-9{6}", "action": "redact"},
    {"entity": "email", "pattern": "x@corp", "action": "redact"},
    {"entity": "after_emp", "pattern": "(?<=EMP-)[0-9]{6}", "action": "redact"},
    {"entity": "Bad Name", "pattern": "(a)\\1", "action": "redact"}
  ]
}"#,
    );
    let run = llmobs(&["rules", "check", &bad], b"");
    assert_eq!(run.code, 1);
    let lines: Vec<&str> = run.stderr.lines().collect();
    let expected = [
        "2:25: field `entities.emial`: is not a built-in entity",
        "5:16: field `custom_rules[1].entity`: is a built-in entity's name",
        "7:16: field `custom_rules[3].entity`: must be 1-32 characters of a-z, 0-9, '_'",
        "4:37: field `custom_rules[0].pattern`: regex syntax error at character 5 (byte 4) of the pattern: unclosed character class",
        "6:40: field `custom_rules[2].pattern`: not a linear-time construct at character 1 (byte 0) of the pattern: look-around",
        "7:39: field `custom_rules[3].pattern`: not a linear-time construct at character 4 (byte 3) of the pattern: a back-reference",
    ];
    assert_eq!(lines.len(), expected.len() + 1, "{}", run.stderr);
    for (line, want) in lines.iter().zip(expected) {
        assert!(line.starts_with(&format!("{bad}:{want}")), "{line}\nwanted {want}");
    }
    assert_eq!(lines.last(), Some(&"6 error(s)"));
    assert!(!run.stderr.contains("TKT-[0-9{6}"), "patterns are never quoted back");
}

#[test]
fn a_file_that_is_neither_json_nor_yaml_is_refused_without_a_panic() {
    for (name, text) in [("broken.json", "{\"custom_rules\": [}"), ("broken.yaml", "a: [b\n  c: {"), ("empty.yaml", "")]
    {
        let run = llmobs(&["rules", "check", &file(name, text)], b"");
        assert_eq!(run.code, 1, "{name}: {}", run.stderr);
        assert!(!run.stderr.is_empty(), "{name}");
    }
    let run =
        llmobs(&["rules", "check", &file("broken2.json", "{\"mode\": \"traffic\",\n  \"custom_rules\": 3 x}")], b"");
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("not valid JSON") && run.stderr.contains("line 2 column"), "{}", run.stderr);
}

#[test]
fn a_missing_file_or_unknown_verb_is_a_usage_error() {
    let run = llmobs(&["rules", "check", "/nonexistent/rules.json"], b"");
    assert_eq!((run.code, run.stderr.contains("cannot read /nonexistent/rules.json")), (1, true), "{}", run.stderr);
    for args in
        [&["rules"][..], &["rules", "lint", "x"], &[], &["redact"], &["config", "check", "x", "--filter", "nope"]]
    {
        let run = llmobs(args, b"");
        assert_eq!(run.code, 2, "{args:?}");
        assert!(run.stderr.starts_with("llmobs: "), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn the_shipped_ecds_and_istio_rule_sets_pass() {
    for path in ["envoy/ecds/pii-redaction-rules.yaml", "envoy/istio/wasmplugin-pii-redaction.yaml"] {
        let run = llmobs(&["rules", "check", path], b"");
        assert_eq!(run.code, 0, "{path}: {}", run.stderr);
        assert!(run.stdout.starts_with(&format!("ok: {path}#")), "{}", run.stdout);
    }
}

#[test]
fn an_error_inside_an_ecds_file_points_into_its_embedded_configuration() {
    let ecds = std::fs::read_to_string(root().join("envoy/ecds/pii-redaction-rules.yaml")).unwrap();
    let broken = ecds.replace(r#""pattern": "\\bEMP-[0-9]{6}\\b""#, r#""pattern": "EMP-[0-9{6}""#);
    assert_ne!(broken, ecds);
    let run = llmobs(&["rules", "check", &file("ecds.yaml", &broken)], b"");
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("ecds.yaml#llmobs_pii_redaction:8:"), "{}", run.stderr);
    assert!(run.stderr.contains("regex syntax error at character 5"), "{}", run.stderr);
}

// ---- rules test ----

#[test]
fn the_sample_rules_repository_passes_its_cases() {
    let run = llmobs(&["rules", "test", SAMPLE_RULES, SAMPLE_CASES], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.trim(), format!("{SAMPLE_RULES}: 13 samples, 0 failed"));
}

#[test]
fn an_unanchored_pattern_fails_the_case_that_shows_why_boundaries_matter() {
    let rules = file(
        "unanchored.json",
        r#"{"custom_rules": [{"entity": "employee_id", "pattern": "EMP-[0-9]{6}", "action": "redact"}]}"#,
    );
    let run = llmobs(&["rules", "test", &rules, SAMPLE_CASES], b"");
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains(r#"FAIL employee_id must_not_match[0] "EMP-1234567": detected "EMP-123456" by custom_rules[0]"#),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("FAIL employee_id must_not_match[2] \"XEMP-123456\""), "{}", run.stderr);
    assert!(run.stderr.contains("FAIL internal_host: no built-in entity or custom rule"), "{}", run.stderr);
}

#[test]
fn a_must_match_sample_that_is_missed_names_what_was_found_instead() {
    let cases = file("cases-missed.yaml", "employee_id:\n  must_match: [\"EMP-12 and ana@example.org\"]\n");
    let run = llmobs(&["rules", "test", SAMPLE_RULES, &cases], b"");
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("must_match[0] \"EMP-12 and ana@example.org\": not detected (found: email)"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("1 samples, 1 failed"), "{}", run.stdout);
}

#[test]
fn a_bad_cases_file_or_bad_rules_fail_the_test_run() {
    let cases = file("cases-bad.yaml", "employee_id:\n  must_macth: [\"x\"]\n");
    let run = llmobs(&["rules", "test", SAMPLE_RULES, &cases], b"");
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("not a cases file"), "{}", run.stderr);
    let rules =
        file("rules-bad-for-test.json", r#"{"custom_rules": [{"entity": "x", "pattern": "(", "action": "redact"}]}"#);
    let run = llmobs(&["rules", "test", &rules, SAMPLE_CASES], b"");
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("regex syntax error"), "{}", run.stderr);
}

// ---- rules hash ----

#[test]
fn the_hash_is_the_one_the_filter_puts_on_its_rule_set_gauge() {
    let json = std::fs::read(root().join(SAMPLE_RULES)).unwrap();
    let mut host = llmobs_testkit::FakeHost::default();
    host.env.insert("LLMOBS_PII_KEY".into(), b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_vec());
    llmobs_core::redaction::PiiRedaction::new(&json, &mut host).unwrap();
    let gauge = host.metric_names("llmobs.pii.rule_set").into_iter().next().unwrap();
    let run = llmobs(&["rules", "hash", SAMPLE_RULES], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let hash = run.stdout.trim();
    assert_eq!(hash.len(), 12);
    assert!(gauge.ends_with(&format!(".rule_set_hash={hash};")), "{gauge} vs {hash}");
    // The same rules reformatted (YAML, keys reordered) hash the same.
    let yaml = file(
        "rules.yaml",
        "custom_rules:\n- {action: redact, entity: employee_id, pattern: '\\bEMP-[0-9]{6}\\b'}\n- {entity: internal_host, pattern: '\\b[a-z0-9-]+\\.corp\\.example\\.com\\b', action: redact}\n- {entity: ticket_id, pattern: '\\bTKT-[0-9]{6}\\b', action: count}\nrule_set_version: 2026-12-04\nmode: traffic\ndefault_action: redact\nentities: {email: pseudonymize, private_key: block}\npseudonym_key: {env: LLMOBS_PII_KEY, id: k1}\n",
    );
    assert_eq!(llmobs(&["rules", "hash", &yaml], b"").stdout.trim(), hash);
}

#[test]
fn a_rule_set_the_filter_refuses_has_no_hash() {
    let rules =
        file("rules-bad-hash.json", r#"{"custom_rules": [{"entity": "x", "pattern": "(?=a)", "action": "redact"}]}"#);
    let run = llmobs(&["rules", "hash", &rules], b"");
    assert_eq!((run.code, run.stdout.as_str()), (1, ""));
    assert!(run.stderr.contains("not a linear-time construct"), "{}", run.stderr);
}

// ---- redact ----

#[test]
fn redact_rewrites_stdin_as_the_filter_would_and_names_entity_rule_and_action() {
    let text = "I am EMP-004211 on db-7.corp.example.com, card 4111 1111 1111 1111, TKT-000042.";
    let run = llmobs(&["redact", "--config", SAMPLE_RULES], text.as_bytes());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "I am [EMPLOYEE_ID] on [INTERNAL_HOST], card [PAYMENT_CARD], TKT-000042.");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(
        &lines[..4],
        [
            "employee_id by custom_rules[0]: redact at bytes 5..15",
            "internal_host by custom_rules[1]: redact at bytes 19..40",
            "payment_card by the built-in detector: redact at bytes 47..66",
            "ticket_id by custom_rules[2]: count at bytes 68..78",
        ]
    );
    assert!(run.stderr.contains("pseudonyms use a throwaway key"), "{}", run.stderr);
}

#[test]
fn redact_pseudonymizes_with_the_real_key_and_reports_a_block() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_llmobs"))
        .args(["redact", "--config", SAMPLE_RULES])
        .current_dir(root())
        .env("LLMOBS_PII_KEY", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"mail ana@example.org").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("mail EMAIL_k1_") && !stdout.contains("ana@"), "{stdout}");
    assert!(!String::from_utf8(out.stderr).unwrap().contains("throwaway"));
    let rules = file("block.json", r#"{"mode": "traffic", "entities": {"email": "block"}}"#);
    let run = llmobs(&["redact", "--config", &rules], b"mail ana@example.org");
    assert_eq!(run.stdout, "mail [BLOCKED:EMAIL]");
    assert!(run.stderr.contains("the filter refuses this request: 400 pii_blocked, entity email"), "{}", run.stderr);
}

#[test]
fn redact_in_telemetry_mode_leaves_the_text_and_says_so() {
    let rules = file("telemetry.json", r#"{"mode": "telemetry"}"#);
    let run = llmobs(&["redact", "--config", &rules], b"mail ana@example.org");
    assert_eq!((run.code, run.stdout.as_str()), (0, "mail ana@example.org"));
    assert!(run.stderr.contains("email by the built-in detector: redact"), "{}", run.stderr);
    assert!(run.stderr.contains("does not rewrite requests"), "{}", run.stderr);
}

#[test]
fn redact_refuses_binary_input_and_a_bad_configuration() {
    let run = llmobs(&["redact", "--config", SAMPLE_RULES], &[0xff, 0xfe, b'a']);
    assert_eq!((run.code, run.stdout.as_str()), (2, ""));
    assert!(run.stderr.contains("stdin is not UTF-8"), "{}", run.stderr);
    let rules = file("redact-bad.json", r#"{"mode": "loud"}"#);
    let run = llmobs(&["redact", "--config", &rules], b"x");
    assert_eq!((run.code, run.stdout.as_str()), (1, ""));
    assert!(run.stderr.contains("field `mode`: unknown variant"), "{}", run.stderr);
}

#[test]
fn a_rule_on_trial_is_listed_as_shadow_and_neither_changes_nor_refuses_the_text() {
    let rules = file(
        "shadow.json",
        r#"{"mode": "traffic", "entities": {"email": {"action": "redact", "shadow": "block"}},
            "custom_rules": [{"entity": "ticket", "pattern": "\\bTKT-[0-9]{6}\\b", "shadow": "block"}]}"#,
    );
    let run = llmobs(&["redact", "--config", &rules], b"mail ana@example.org re TKT-123456");
    assert_eq!((run.code, run.stdout.as_str()), (0, "mail [EMAIL] re TKT-123456"), "{}", run.stderr);
    assert!(run.stderr.contains("email by the built-in detector: redact at bytes 5..20"), "{}", run.stderr);
    assert!(
        run.stderr.contains("email by the built-in detector: block (shadow: would, changes nothing) at bytes 5..20"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("ticket by custom_rules[0]: block (shadow: would, changes nothing)"), "{}", run.stderr);
    assert!(!run.stderr.contains("refuses"), "a block on trial refuses nothing: {}", run.stderr);
    // Security tests a rule on trial with its cases before it goes in force.
    let cases =
        file("shadow-cases.yaml", "ticket:\n  must_match: [\"re TKT-123456\"]\n  must_not_match: [\"TKT-1234567\"]\n");
    let run = llmobs(&["rules", "test", &rules, &cases], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.trim_end().rsplit(": ").next(), Some("2 samples, 0 failed"));
}

#[test]
fn a_rule_without_an_action_or_a_trial_and_a_trial_of_off_are_refused_with_their_positions() {
    let rules = file(
        "shadow-bad.json",
        r#"{"custom_rules": [{"entity": "ticket", "pattern": "TKT-[0-9]+"}],
 "entities": {"email": {"shadow": "off"}}}"#,
    );
    let run = llmobs(&["rules", "check", &rules], b"");
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("field `custom_rules[0].action`: is required (or `shadow` alone"), "{}", run.stderr);
    assert!(run.stderr.contains(":2:"), "{}", run.stderr);
    assert!(run.stderr.contains("field `entities.email.shadow`: `off` has nothing to trial"), "{}", run.stderr);
}

// ---- config check ----

#[test]
fn every_shipped_configuration_passes_config_check() {
    let mut checked = 0;
    for dir in ["envoy", "envoy/filters", "envoy/ecds", "envoy/istio", "envoy/istio/egress-gateway", "envoy/gateway"] {
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let relevant = path.extension().is_some_and(|e| e == "yaml")
                && (text.contains("configuration:")
                    || text.contains("pluginConfig:")
                    || text.contains("kind: EnvoyExtensionPolicy"))
                && text.contains("llmobs");
            if !relevant {
                continue;
            }
            let rel = path.strip_prefix(root()).unwrap().to_string_lossy().into_owned();
            let run = llmobs(&["config", "check", &rel], b"");
            assert_eq!(run.code, 0, "{rel}: {}{}", run.stdout, run.stderr);
            assert!(run.stdout.lines().all(|l| l.starts_with("ok: ")), "{}", run.stdout);
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} files checked");
}

#[test]
fn config_check_reports_every_error_of_every_bundle_section() {
    let bundle = file(
        "bundle.json",
        r#"{"correlation": {"sample_rate": 2},
 "pii_redaction": {"custom_rules": [{"entity": "a", "pattern": "(", "action": "redact"}, {"entity": "b", "pattern": "[", "action": "redact"}]},
 "token_acounting": {}}"#,
    );
    let run = llmobs(&["config", "check", &bundle], b"");
    assert_eq!(run.code, 1);
    for want in [
        ":3:21: field `token_acounting`: unknown section",
        ":1:33: field `correlation.sample_rate`: must be a number from 0 to 1",
        ":2:64: field `pii_redaction.custom_rules[0].pattern`: regex syntax error at character 1 (byte 0) of the pattern: unclosed group",
        ":2:117: field `pii_redaction.custom_rules[1].pattern`: regex syntax error at character 1 (byte 0) of the pattern: unclosed character class",
    ] {
        assert!(run.stderr.contains(&format!("{bundle}{want}")), "{want}\n{}", run.stderr);
    }
    assert!(run.stderr.ends_with("4 error(s)\n"), "{}", run.stderr);
}

#[test]
fn config_check_needs_the_filter_named_for_a_bare_configuration() {
    let config = file("correlation.json", r#"{"sample_rate": 0.5, "unknown": 1}"#);
    let run = llmobs(&["config", "check", &config], b"");
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("say which filter"), "{}", run.stderr);
    let run = llmobs(&["config", "check", &config, "--filter", "correlation"], b"");
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("field `unknown`: unknown field"), "{}", run.stderr);
    let run = llmobs(&["config", "check", "--filter", "token-accounting", &file("ta.json", "{}")], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn config_check_reports_every_value_error_of_each_filter() {
    let cases = [
        ("correlation", r#"{"sample_rate": 2, "request_id_header": "X Bad", "baggage": {"max_members": 0}}"#, 3),
        ("token_accounting", r#"{"tenant_header": "Bad Header", "max_frame_bytes": 0}"#, 2),
        ("error_normalization", r#"{"max_error_body_bytes": 0, "response_headers": {"retryable": "No Good"}}"#, 2),
        ("eval_exporter", r#"{"path": "v1/logs", "retry": {"max_attempts": 0}}"#, 3),
        ("pii_redaction", r#"{"mode": "traffic", "evaluation": {"enabled": true, "sample_rate": 2}}"#, 2),
    ];
    for (filter, json, errors) in cases {
        let run = llmobs(&["config", "check", &file(&format!("{filter}-many.json"), json), "--filter", filter], b"");
        assert_eq!(run.code, 1, "{filter}");
        assert!(run.stderr.ends_with(&format!("{errors} error(s)\n")), "{filter}: {}", run.stderr);
    }
}

#[test]
fn version_names_the_release() {
    let run = llmobs(&["version"], b"");
    assert_eq!(run.code, 0);
    assert!(run.stdout.starts_with(&format!("llmobs {} (", env!("CARGO_PKG_VERSION"))), "{}", run.stdout);
}

// ---- the docs ----

/// Every custom rule written out in the docs (`{"entity": …, "pattern": …, "action": …}`, or with
/// `"shadow"` for a rule on trial) loads,
/// and every employee_id example passes the sample repository's employee_id cases (the doc once
/// showed `EMP-[0-9]{6}`, which turns `EMP-1234567` into `[EMPLOYEE_ID]7`).
#[test]
fn every_rule_example_in_the_docs_passes_the_cli() {
    let example = regex::Regex::new(
        r#"\{"entity":[ \n]*"[a-z0-9_]+",[ \n]*"pattern":[ \n]*"(?:[^"\\]|\\.)*"(?:,[ \n]*"(?:action|shadow)":[ \n]*"[a-z]+")+\}"#,
    )
    .unwrap();
    let cases = std::fs::read_to_string(root().join(SAMPLE_CASES)).unwrap();
    let employee_cases: String = cases
        .lines()
        .skip_while(|l| !l.starts_with("employee_id:"))
        .take_while(|l| !l.starts_with("internal_host:"))
        .collect::<Vec<_>>()
        .join("\n");
    let employee_cases = file("employee-cases.yaml", &employee_cases);
    let mut found = 0;
    let mut docs: Vec<PathBuf> = vec![root().join("README.md")];
    for dir in ["docs", "docs/filters"] {
        docs.extend(
            std::fs::read_dir(root().join(dir))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "md")),
        );
    }
    for doc in docs {
        let text = std::fs::read_to_string(&doc).unwrap();
        for m in example.find_iter(&text) {
            found += 1;
            let rules = file(&format!("doc-rule-{found}.json"), &format!(r#"{{"custom_rules": [{}]}}"#, m.as_str()));
            let run = llmobs(&["rules", "check", &rules], b"");
            assert_eq!(run.code, 0, "{}: {}: {}", doc.display(), m.as_str(), run.stderr);
            if m.as_str().contains("\"employee_id\"") {
                let run = llmobs(&["rules", "test", &rules, &employee_cases], b"");
                assert_eq!(run.code, 0, "{}: {}: {}", doc.display(), m.as_str(), run.stderr);
            }
        }
    }
    assert!(found >= 1, "the docs show at least the employee_id rule");
}
