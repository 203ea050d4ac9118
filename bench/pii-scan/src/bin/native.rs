//! The native runner: generates the inputs, writes them (and a manifest) for the V8 runner, checks
//! the match counts, then measures every engine on every input and writes the results as JSON.
//!
//! Usage: native --corpus tests/fixtures/pii/corpus.jsonl --inputs DIR --out FILE [--quick]
//!
//! Method (the same as bench/v8_scan.mjs): warm up, find an iteration count whose run takes at
//! least `min_seconds`, then time `runs` runs of it and report the median.

use std::hint::black_box;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use pii_scan::{custom, inputs};
use serde_json::json;

type ScanFn = unsafe extern "C" fn(*const u8, usize, u32) -> u32;
type CompileFn = extern "C" fn(u32) -> u32;

const ENGINES: [(&str, ScanFn); 4] = [
    ("builtins", pii_scan::scan_builtins),
    ("custom_regex", pii_scan::scan_custom_regex),
    ("custom_regexset", pii_scan::scan_custom_regexset),
    ("custom_regex_lite", pii_scan::scan_custom_regex_lite),
];

const COMPILERS: [(&str, CompileFn); 4] = [
    ("builtins", pii_scan::compile_builtins),
    ("custom_regex", pii_scan::compile_custom_regex),
    ("custom_regexset", pii_scan::compile_custom_regexset),
    ("custom_regex_lite", pii_scan::compile_custom_regex_lite),
];

/// One detector per regex pass of `llmobs_core::pii` (named by an entity it serves, index into
/// `Entity::ALL`), timed alone on the prose input: where the built-in scan spends its time.
pub const PASSES: [(&str, &str, u32); 9] = [
    ("tokens", "openai_key", 8),
    ("bearer", "bearer_token", 15),
    ("email", "email", 0),
    ("ipv6", "ipv6", 6),
    ("card", "payment_card", 2),
    ("ssn", "us_ssn", 4),
    ("phone", "phone", 1),
    ("iban", "iban", 3),
    ("ipv4", "ipv4", 5),
];

/// The input the per-pass breakdown scans.
const BREAKDOWN_INPUT: &str = "prose-16k";

#[derive(Clone, Copy)]
struct Method {
    warm_seconds: f64,
    min_seconds: f64,
    runs: usize,
}

struct Timing {
    /// Median seconds per iteration.
    median: f64,
    per_iteration: Vec<f64>,
    iterations: u32,
}

fn time(f: &dyn Fn(u32) -> u32, n: u32) -> f64 {
    let start = Instant::now();
    black_box(f(black_box(n)));
    start.elapsed().as_secs_f64()
}

fn measure(f: &dyn Fn(u32) -> u32, method: Method) -> Timing {
    let warm = Instant::now();
    while warm.elapsed().as_secs_f64() < method.warm_seconds {
        black_box(f(1));
    }
    let mut n: u32 = 1;
    let mut t = time(f, n);
    while t < method.min_seconds / 8.0 && n < (1 << 30) {
        n *= 2;
        t = time(f, n);
    }
    let iterations = ((n as f64) * method.min_seconds / t.max(1e-9)).ceil().clamp(1.0, u32::MAX as f64) as u32;
    let mut per_iteration: Vec<f64> = (0..method.runs).map(|_| time(f, iterations) / iterations as f64).collect();
    let mut sorted = per_iteration.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN);
    per_iteration.iter_mut().for_each(|s| *s = (*s * 1e12).round() / 1e12);
    Timing { median, per_iteration, iterations }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("native: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let corpus = arg(&args, "--corpus").ok_or("--corpus PATH is required")?;
    let dir = PathBuf::from(arg(&args, "--inputs").ok_or("--inputs DIR is required")?);
    let out = PathBuf::from(arg(&args, "--out").ok_or("--out FILE is required")?);
    let method = if quick {
        Method { warm_seconds: 0.02, min_seconds: 0.05, runs: 1 }
    } else {
        Method { warm_seconds: 0.3, min_seconds: 0.5, runs: 5 }
    };

    let corpus = std::fs::read_to_string(&corpus).map_err(|e| format!("{corpus}: {e}"))?;
    let inputs = inputs::all(&corpus)?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut manifest = Vec::new();
    for input in &inputs {
        let file = format!("{}.txt", input.name);
        std::fs::write(dir.join(&file), &input.text).map_err(|e| format!("{file}: {e}"))?;
        manifest.push(json!({
            "name": input.name,
            "description": input.description,
            "file": file,
            "bytes": input.text.len(),
            "digits_percent": (input.text.bytes().filter(u8::is_ascii_digit).count() as f64 * 1000.0
                / input.text.len() as f64).round() / 10.0,
        }));
    }
    let manifest_text = serde_json::to_string_pretty(&manifest).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("manifest.json"), manifest_text).map_err(|e| format!("manifest: {e}"))?;

    // Correctness first: what each engine finds must be what the inputs were built to hold.
    let count = |engine: ScanFn, text: &str| unsafe { engine(text.as_ptr(), text.len(), 1) };
    for input in &inputs {
        let text = input.text.as_str();
        let (builtins, re, lite) = (
            count(pii_scan::scan_builtins, text),
            count(pii_scan::scan_custom_regex, text),
            count(pii_scan::scan_custom_regex_lite, text),
        );
        if re != lite {
            return Err(format!("{}: regex found {re} custom matches, regex-lite {lite}", input.name));
        }
        let expected = match input.name {
            "prose-16k" | "chat-json-16k" => Some((0, 0)),
            "prose-pii-16k" => Some((inputs::PLANTED_BUILTIN.len() as u32, inputs::PLANTED_CUSTOM.len() as u32)),
            _ => None,
        };
        if let Some((want_builtins, want_custom)) = expected {
            if (builtins, re) != (want_builtins, want_custom) {
                let found: Vec<String> = pii_scan::detector()
                    .scan(text)
                    .iter()
                    .map(|m| format!("{}={:?}", m.entity.label(), text.get(m.start..m.end)))
                    .collect();
                return Err(format!(
                    "{}: expected {want_builtins} built-in and {want_custom} custom matches, found {builtins} and {re}: {found:?}",
                    input.name
                ));
            }
        }
    }

    let mut results = Vec::new();
    for input in &inputs {
        let text = input.text.as_str();
        for (engine, scan) in ENGINES {
            let f = |n: u32| unsafe { scan(text.as_ptr(), text.len(), n) };
            let matches = f(1);
            let t = measure(&f, method);
            let mbps = text.len() as f64 / t.median / 1e6;
            eprintln!(
                "native  {:<14} {:<18} {:>9.1} MB/s  {:>9.1} us/scan  ({} matches)",
                input.name,
                engine,
                mbps,
                t.median * 1e6,
                matches
            );
            results.push(json!({
                "input": input.name,
                "engine": engine,
                "bytes": text.len(),
                "matches": matches,
                "iterations": t.iterations,
                "seconds_per_scan": t.median,
                "mb_per_s": mbps,
                "runs_seconds_per_scan": t.per_iteration,
            }));
        }
    }
    let mut passes = Vec::new();
    if let Some(input) = inputs.iter().find(|i| i.name == BREAKDOWN_INPUT) {
        let text = input.text.as_str();
        for (pass, entity, index) in PASSES {
            let f = |n: u32| unsafe { pii_scan::scan_entity(text.as_ptr(), text.len(), n, index) };
            let t = measure(&f, method);
            eprintln!(
                "native  pass           {:<18} {:>9.1} MB/s  {:>9.1} us/scan",
                pass,
                text.len() as f64 / t.median / 1e6,
                t.median * 1e6
            );
            passes.push(json!({
                "input": input.name,
                "pass": pass,
                "entity": entity,
                "entity_index": index,
                "seconds_per_scan": t.median,
                "mb_per_s": text.len() as f64 / t.median / 1e6,
            }));
        }
    }
    let mut compile = Vec::new();
    for (engine, build) in COMPILERS {
        let f = |n: u32| build(n);
        if f(1) == 0 {
            return Err(format!("{engine}: did not compile"));
        }
        let t = measure(&f, method);
        eprintln!("native  compile        {:<18} {:>9.1} us", engine, t.median * 1e6);
        compile.push(json!({ "engine": engine, "seconds": t.median, "iterations": t.iterations }));
    }

    let report = json!({
        "runtime": "native",
        "quick": quick,
        "method": { "warm_seconds": method.warm_seconds, "min_seconds": method.min_seconds, "runs": method.runs },
        "custom_rules": custom::RULES.iter().map(|(name, pattern)| json!({"name": name, "pattern": pattern})).collect::<Vec<_>>(),
        "results": results,
        "passes": passes,
        "compile": compile,
    });
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&out, text).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(())
}
