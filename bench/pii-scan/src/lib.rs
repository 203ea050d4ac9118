//! The PII-scan benchmark (docs/benchmarks.md): the same scanning code run natively (the `native`
//! binary calls these functions through the rlib) and inside V8 (`bench/v8_scan.mjs` loads the
//! cdylib built for wasm32-wasip1 and calls the exports below).
//!
//! Engines:
//! - `builtins`: `llmobs_core::pii::Detector::new(&Entity::ALL)` then `scan`, the built-in detectors.
//! - `custom_regex`: the custom rules of [`custom`] as one alternation, `regex::bytes` with Unicode
//!   off, every match found (`find_iter`).
//! - `custom_regexset`: the same rules as one `regex::bytes::RegexSet` (Unicode off): which rules
//!   fire, no positions.
//! - `custom_regex_lite`: the same alternation with `regex-lite` (`find_iter`).
//!
//! Every `scan_*` export scans the text `iterations` times and returns what one scan found (matches,
//! or rules that fired for the set), so native and V8 results can be compared. Every `compile_*`
//! export builds its engine `iterations` times.
//!
//! Unsafe code is allowed here (raw pointers from the Wasm host), never in the filters.

pub mod custom;
pub mod inputs;

use std::hint::black_box;
use std::sync::OnceLock;

use llmobs_core::pii::{Detector, Entity};

/// The built-in detectors for every entity, built on first use.
pub fn detector() -> &'static Detector {
    static DETECTOR: OnceLock<Detector> = OnceLock::new();
    DETECTOR.get_or_init(|| Detector::new(&Entity::ALL))
}

fn custom_regex() -> &'static regex::bytes::Regex {
    static RE: OnceLock<regex::bytes::Regex> = OnceLock::new();
    RE.get_or_init(|| custom::compile_regex().unwrap_or_else(|e| abort(&e.to_string())))
}

fn custom_regexset() -> &'static regex::bytes::RegexSet {
    static SET: OnceLock<regex::bytes::RegexSet> = OnceLock::new();
    SET.get_or_init(|| custom::compile_regexset().unwrap_or_else(|e| abort(&e.to_string())))
}

fn custom_regex_lite() -> &'static regex_lite::Regex {
    static RE: OnceLock<regex_lite::Regex> = OnceLock::new();
    RE.get_or_init(|| custom::compile_regex_lite().unwrap_or_else(|e| abort(&e.to_string())))
}

fn abort(why: &str) -> ! {
    // No panic machinery in the Wasm build (panic = "abort"): a pattern that does not compile is a
    // bug in this crate, caught by the native run first.
    eprintln!("pii-scan: {why}");
    std::process::abort()
}

/// The text at `ptr..ptr + len`, or "" if it is not UTF-8 (every generated input is).
///
/// # Safety
/// `ptr..ptr + len` must be readable and stay unchanged while the returned text is used.
unsafe fn text<'a>(ptr: *const u8, len: usize) -> &'a str {
    if ptr.is_null() || len == 0 {
        return "";
    }
    std::str::from_utf8(std::slice::from_raw_parts(ptr, len)).unwrap_or("")
}

/// `len` writable bytes for the host to copy an input into (never freed: the benchmark allocates
/// one buffer per input).
#[no_mangle]
pub extern "C" fn alloc(len: usize) -> *mut u8 {
    let mut buf = Vec::<u8>::with_capacity(len.max(1));
    let ptr = buf.as_mut_ptr();
    std::mem::forget(buf);
    ptr
}

fn repeat(iterations: u32, mut once: impl FnMut() -> usize) -> u32 {
    let mut last = 0;
    for _ in 0..iterations.max(1) {
        last = black_box(once());
    }
    u32::try_from(last).unwrap_or(u32::MAX)
}

/// Scans the text with the built-in detectors (all 16 entities); returns the matches of one scan.
///
/// # Safety
/// `ptr..ptr + len` must be a readable buffer, such as one from [`alloc`].
#[no_mangle]
pub unsafe extern "C" fn scan_builtins(ptr: *const u8, len: usize, iterations: u32) -> u32 {
    let text = text(ptr, len);
    let detector = detector();
    repeat(iterations, || detector.scan(black_box(text)).len())
}

/// Scans the text with a detector for one entity only (`entity` indexes `Entity::ALL`); returns the
/// matches of one scan, or `u32::MAX` for an unknown index. Entities of one pass (the eight
/// prefixed secrets share the `Tokens` regex) cost the same: this measures each regex pass alone.
///
/// # Safety
/// As [`scan_builtins`].
#[no_mangle]
pub unsafe extern "C" fn scan_entity(ptr: *const u8, len: usize, iterations: u32, entity: u32) -> u32 {
    static ONE: OnceLock<Vec<Detector>> = OnceLock::new();
    let detectors = ONE.get_or_init(|| Entity::ALL.iter().map(|&e| Detector::new(&[e])).collect());
    let Some(detector) = detectors.get(entity as usize) else { return u32::MAX };
    let text = text(ptr, len);
    repeat(iterations, || detector.scan(black_box(text)).len())
}

/// Finds every custom-rule match with `regex` (one alternation, Unicode off).
///
/// # Safety
/// As [`scan_builtins`].
#[no_mangle]
pub unsafe extern "C" fn scan_custom_regex(ptr: *const u8, len: usize, iterations: u32) -> u32 {
    let text = text(ptr, len);
    let re = custom_regex();
    repeat(iterations, || custom::count_regex(re, black_box(text)))
}

/// Which custom rules fire, with a `regex` RegexSet (Unicode off).
///
/// # Safety
/// As [`scan_builtins`].
#[no_mangle]
pub unsafe extern "C" fn scan_custom_regexset(ptr: *const u8, len: usize, iterations: u32) -> u32 {
    let text = text(ptr, len);
    let set = custom_regexset();
    repeat(iterations, || custom::count_regexset(set, black_box(text)))
}

/// Finds every custom-rule match with `regex-lite` (one alternation).
///
/// # Safety
/// As [`scan_builtins`].
#[no_mangle]
pub unsafe extern "C" fn scan_custom_regex_lite(ptr: *const u8, len: usize, iterations: u32) -> u32 {
    let text = text(ptr, len);
    let re = custom_regex_lite();
    repeat(iterations, || custom::count_regex_lite(re, black_box(text)))
}

/// Builds `Detector::new(&Entity::ALL)` `iterations` times; returns the number of entities.
#[no_mangle]
pub extern "C" fn compile_builtins(iterations: u32) -> u32 {
    repeat(iterations, || black_box(Detector::new(black_box(&Entity::ALL))).entities().len())
}

/// Compiles the custom rules with `regex` (alternation) `iterations` times; returns the number of
/// rules (0 if they did not compile).
#[no_mangle]
pub extern "C" fn compile_custom_regex(iterations: u32) -> u32 {
    repeat(iterations, || black_box(custom::compile_regex()).map_or(0, |_| custom::RULES.len()))
}

/// Compiles the custom rules as a `regex` RegexSet `iterations` times.
#[no_mangle]
pub extern "C" fn compile_custom_regexset(iterations: u32) -> u32 {
    repeat(iterations, || black_box(custom::compile_regexset()).map_or(0, |s| s.len()))
}

/// Compiles the custom rules with `regex-lite` `iterations` times.
#[no_mangle]
pub extern "C" fn compile_custom_regex_lite(iterations: u32) -> u32 {
    repeat(iterations, || black_box(custom::compile_regex_lite()).map_or(0, |_| custom::RULES.len()))
}

/// Parses the body as a JSON value, as the PII filter does first; returns its top-level length.
///
/// # Safety
/// As [`scan_builtins`].
#[no_mangle]
pub unsafe extern "C" fn parse_json(ptr: *const u8, len: usize, iterations: u32) -> u32 {
    let body = text(ptr, len).as_bytes();
    repeat(iterations, || {
        serde_json::from_slice::<serde_json::Value>(black_box(body)).map_or(0, |v| v.as_object().map_or(0, |o| o.len()))
    })
}

/// The PII filter's whole request path in traffic mode (parse, typed walk, scan, rewrite,
/// serialize) on an OpenAI chat body; returns the rewritten body's length (0: unchanged).
///
/// # Safety
/// As [`scan_builtins`].
#[no_mangle]
pub unsafe extern "C" fn redact_request(ptr: *const u8, len: usize, iterations: u32) -> u32 {
    use llmobs_core::redaction::{PiiRedaction, RequestVerdict};
    use llmobs_testkit::FakeHost;
    thread_local! {
        // Not Sync (it caches metric handles in a RefCell), as in a VM: one per thread.
        static HOST: std::cell::RefCell<FakeHost> =
            std::cell::RefCell::new(FakeHost::with_request_headers(&[(":path", "/v1/chat/completions")]));
        static FILTER: PiiRedaction = HOST.with_borrow_mut(|host| {
            PiiRedaction::new(br#"{"mode": "traffic"}"#, host).unwrap_or_else(|e| abort(&e.to_string()))
        });
    }
    let body = text(ptr, len).as_bytes();
    FILTER.with(|filter| {
        HOST.with_borrow_mut(|host| {
            repeat(iterations, || {
                let mut ex = filter.on_request_headers(host);
                match filter.on_request_body(host, &mut ex, black_box(body)) {
                    RequestVerdict::Replace(out) => out.len(),
                    _ => 0,
                }
            })
        })
    })
}
