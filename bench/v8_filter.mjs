// The PII filter's request path inside V8 (Node's WebAssembly, the engine Envoy embeds), on the
// two 16 KiB OpenAI chat bodies of bench/envoy_pii.py: JSON parse alone, then the whole path
// (parse, typed walk, scan, rewrite, serialize). Median of 5 runs of >= 0.5 s (one with --quick).
//
// Usage: node --no-liftoff bench/v8_filter.mjs --wasm FILE --bodies DIR [--quick] [--out FILE]
import { readFileSync, writeFileSync } from 'node:fs';
import { WASI } from 'node:wasi';

const args = process.argv.slice(2);
const arg = (name) => args[args.indexOf(name) + 1];
const quick = args.includes('--quick');
const wasi = new WASI({ version: 'preview1', args: [], env: {}, returnOnExit: true });
const module = await WebAssembly.compile(readFileSync(arg('--wasm')));
const instance = await WebAssembly.instantiate(module, { wasi_snapshot_preview1: wasi.wasiImport });
wasi.initialize(instance);
const wasm = instance.exports;

function measure(fn) {
  const runs = quick ? 1 : 5;
  const minNs = (quick ? 0.1 : 0.5) * 1e9;
  const results = [];
  fn(50);
  for (let r = 0; r < runs; r++) {
    let n = 10;
    for (;;) {
      const t = process.hrtime.bigint();
      fn(n);
      const ns = Number(process.hrtime.bigint() - t);
      if (ns >= minNs) { results.push(ns / n / 1000); break; }
      n *= 4;
    }
  }
  results.sort((a, b) => a - b);
  return results[Math.floor(results.length / 2)];
}

const rows = [];
for (const name of ['clean', 'pii']) {
  const body = readFileSync(`${arg('--bodies')}/chat-16k-${name}.json`);
  const ptr = wasm.alloc(body.length);
  new Uint8Array(wasm.memory.buffer, ptr, body.length).set(body);
  const changed = wasm.redact_request(ptr, body.length, 1);
  rows.push({
    body: name, bytes: body.length, rewritten: changed > 0,
    parse_us: measure((n) => wasm.parse_json(ptr, body.length, n)),
    scan_us: measure((n) => wasm.scan_builtins(ptr, body.length, n)),
    filter_us: measure((n) => wasm.redact_request(ptr, body.length, n)),
  });
}
console.log('PII filter request path in V8 (us per 16 KiB chat body; scan = built-ins over the raw body):');
console.log('| body  | rewritten | JSON parse | scan | whole filter path |');
console.log('|-------|-----------|-----------:|-----:|------------------:|');
for (const r of rows) {
  console.log(`| ${r.body.padEnd(5)} | ${String(r.rewritten).padEnd(9)} | ${r.parse_us.toFixed(1).padStart(10)} | ${r.scan_us.toFixed(1).padStart(4)} | ${r.filter_us.toFixed(1).padStart(17)} |`);
}
if (args.includes('--out')) writeFileSync(arg('--out'), JSON.stringify({ quick, rows }, null, 2) + '\n');
if (!rows[1].rewritten || rows[0].rewritten) { console.error('v8_filter: the PII body was not rewritten, or the clean one was'); process.exit(1); }
