//! Where the bundle's own time goes, natively: the in-Envoy benchmark's workloads (written by
//! `bench/profile_inputs.py`) driven through the same core code the modules run, callback by
//! callback, on the testkit's in-memory host. The host's side costs nothing like Envoy's (no VM
//! crossing, no copy), so these times are the behaviours' own work. docs/benchmarks.md,
//! "Where the bundle's time goes".
//!
//!     .venv/bin/python bench/profile_inputs.py run/bench/profile
//!     cargo run --release -p llmobs-core --example bundle_profile -- run/bench/profile [ROUNDS [REPS]]
//!
//! Per workload it prints the best of REPS rounds (default 5) of ROUNDS exchanges (default 2,000),
//! per callback and per behaviour (each behaviour run alone as its separate filter, on the same
//! host).
//! Under `perf record` it gives the function-level picture; `BUNDLE_PROFILE_ONLY=sse` (a workload
//! name) runs the bundle alone on that one workload.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing, clippy::print_stdout)]

use llmobs_core::bundle::{
    AccountingFilter, Behaviour, Bundle, CorrelationFilter, ErrorsFilter, FullBundle, RedactionFilter,
};
use llmobs_testkit::{EnvoyBody, FakeHost};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const KEY_B64: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const PHASES: [&str; 5] = ["request headers", "request body", "response headers", "response body", "log"];

struct Workload {
    name: String,
    request_headers: Vec<(String, String)>,
    request: Vec<u8>,
    response_headers: Vec<(String, String)>,
    response: Vec<Vec<u8>>,
}

fn pairs(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap().to_string(), p[1].as_str().unwrap().to_string()))
        .collect()
}

fn workloads(dir: &Path) -> Vec<Workload> {
    let manifest: serde_json::Map<String, Value> =
        serde_json::from_slice(&std::fs::read(dir.join("workloads.json")).expect("workloads.json")).unwrap();
    manifest
        .iter()
        .map(|(name, w)| Workload {
            name: name.clone(),
            request_headers: pairs(&w["request_headers"]),
            request: std::fs::read(dir.join(w["request"].as_str().unwrap())).unwrap(),
            response_headers: pairs(&w["response_headers"]),
            response: w["response"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| std::fs::read(dir.join(f.as_str().unwrap())).unwrap())
                .collect(),
        })
        .collect()
}

fn new_host() -> FakeHost {
    let mut host = FakeHost::default();
    host.env.insert("LLMOBS_PII_KEY".into(), KEY_B64.as_bytes().to_vec());
    host.set_property(&["plugin_name"], b"llmobs");
    host.set_property(&["response", "code_details"], b"via_upstream");
    host
}

/// One exchange through `filter`, as Envoy drives one filter: each phase's time added to `spent`.
fn exchange<C: Behaviour, R: Behaviour, A: Behaviour, E: Behaviour>(
    filter: &Bundle<C, R, A, E>,
    host: &mut FakeHost,
    w: &Workload,
    spent: &mut [Duration; 5],
) {
    let headers: Vec<(&str, &str)> = w.request_headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    host.next_request(&headers);
    let t = Instant::now();
    let mut ex = filter.on_request_headers(host);
    let _ = filter.request_headers_flow(host, &mut ex, false);
    spent[0] += t.elapsed();

    let mut body = EnvoyBody { bytes: w.request.clone() };
    let t = Instant::now();
    let size = body.bytes.len();
    let _ = filter.on_request_body(host, &mut ex, &mut body, size, true);
    spent[1] += t.elapsed();

    for (k, v) in &w.response_headers {
        host.add_response_header(k, v);
    }
    let t = Instant::now();
    filter.on_response_headers(host, &mut ex, false);
    spent[2] += t.elapsed();

    let mut body = EnvoyBody::default();
    let last = w.response.len() - 1;
    for (i, piece) in w.response.iter().enumerate() {
        body.bytes.extend_from_slice(piece);
        let size = body.bytes.len();
        let t = Instant::now();
        let flow = filter.on_response_body(host, &mut ex, &mut body, size, i == last);
        spent[3] += t.elapsed();
        if flow == llmobs_core::bundle::Flow::Continue {
            body.bytes.clear();
        }
    }
    let t = Instant::now();
    filter.on_log(host, &mut ex);
    spent[4] += t.elapsed();
}

/// Best of `reps` rounds of `rounds` exchanges: µs per exchange, per phase.
fn measure<C: Behaviour, R: Behaviour, A: Behaviour, E: Behaviour>(
    filter: &Bundle<C, R, A, E>,
    host: &mut FakeHost,
    w: &Workload,
    rounds: u32,
    reps: u32,
) -> [f64; 5] {
    for _ in 0..rounds / 10 {
        exchange(filter, host, w, &mut [Duration::ZERO; 5]);
    }
    let mut best: Option<[Duration; 5]> = None;
    for _ in 0..reps {
        let mut spent = [Duration::ZERO; 5];
        for _ in 0..rounds {
            exchange(filter, host, w, &mut spent);
        }
        let total: Duration = spent.iter().sum();
        if best.is_none_or(|b| total < b.iter().sum()) {
            best = Some(spent);
        }
    }
    best.unwrap().map(|d| d.as_secs_f64() * 1e6 / f64::from(rounds))
}

fn row(label: &str, w: &Workload, us: [f64; 5]) {
    let total: f64 = us.iter().sum();
    let cells: Vec<String> = us.iter().map(|x| format!("{x:.2}")).collect();
    let per_event = if w.name.starts_with("sse") { format!("{:.3}", us[3] / 200.0) } else { "-".into() };
    println!("| {} | {label} | {} | {total:.2} | {per_event} |", w.name, cells.join(" | "));
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().expect("usage: bundle_profile INPUT_DIR [ROUNDS [REPS]]"));
    let rounds: u32 = args.next().map_or(2000, |r| r.parse().expect("ROUNDS"));
    let reps: u32 = args.next().map_or(5, |r| r.parse().expect("REPS"));
    let only = std::env::var("BUNDLE_PROFILE_ONLY").ok();
    let config: serde_json::Map<String, Value> =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).expect("config.json")).unwrap();
    let section = |name: &str| serde_json::to_vec(&config[name]).unwrap();
    println!("| workload | filter | {} | total µs | response body µs per event |", PHASES.join(" µs | "));
    println!("|---|---|{}", "---:|".repeat(PHASES.len() + 2));
    for w in workloads(&dir) {
        if only.as_ref().is_some_and(|o| *o != w.name) {
            continue;
        }
        let mut host = new_host();
        let bundle = FullBundle::new(&std::fs::read(dir.join("config.json")).unwrap(), &mut host).unwrap();
        row("bundle", &w, measure(&bundle, &mut host, &w, rounds, reps));
        if only.is_some() {
            continue;
        }
        let mut host = new_host();
        let f = CorrelationFilter::new(&section("correlation"), &mut host).unwrap();
        row("correlation", &w, measure(&f, &mut host, &w, rounds, reps));
        let mut host = new_host();
        let f = RedactionFilter::new(&section("pii_redaction"), &mut host).unwrap();
        row("pii_redaction", &w, measure(&f, &mut host, &w, rounds, reps));
        let mut host = new_host();
        let f = AccountingFilter::new(&section("token_accounting"), &mut host).unwrap();
        row("token_accounting", &w, measure(&f, &mut host, &w, rounds, reps));
        let mut host = new_host();
        let f = ErrorsFilter::new(&section("error_normalization"), &mut host).unwrap();
        row("error_normalization", &w, measure(&f, &mut host, &w, rounds, reps));
    }
}
