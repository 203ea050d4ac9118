// Merges the native and V8 results of the PII-scan benchmark into one table (stdout) and one JSON
// file. Fails if the two runtimes found different match counts (same code, same bytes).
//
// Usage: node bench/report.mjs --inputs DIR --native FILE --v8 FILE --out FILE

import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';

const args = process.argv.slice(2);
const arg = (name) => {
  const i = args.indexOf(name);
  if (i < 0 || i + 1 >= args.length) throw new Error(`${name} is required`);
  return args[i + 1];
};
const manifest = JSON.parse(readFileSync(join(arg('--inputs'), 'manifest.json'), 'utf8'));
const native = JSON.parse(readFileSync(arg('--native'), 'utf8'));
const v8 = JSON.parse(readFileSync(arg('--v8'), 'utf8'));

const REQUEST = 16 * 1024;
// Issue targets: the built-ins at >= 300 MB/s inside the VM, a 16 KiB request in < 100 us.
const TARGET_MBPS = 300;
const TARGET_US = 100;

const key = (r) => `${r.input}/${r.engine}`;
const v8By = new Map(v8.results.map((r) => [key(r), r]));
const rows = [];
const mismatches = [];
for (const n of native.results) {
  const v = v8By.get(key(n));
  if (!v) throw new Error(`no V8 result for ${key(n)}`);
  if (v.matches !== n.matches) mismatches.push(`${key(n)}: native ${n.matches}, V8 ${v.matches}`);
  const request = n.bytes === REQUEST;
  rows.push({
    input: n.input,
    engine: n.engine,
    bytes: n.bytes,
    matches: n.matches,
    native_mb_per_s: n.mb_per_s,
    v8_mb_per_s: v.mb_per_s,
    v8_over_native: v.mb_per_s / n.mb_per_s,
    native_us_per_16k: request ? n.seconds_per_scan * 1e6 : null,
    v8_us_per_16k: request ? v.seconds_per_scan * 1e6 : null,
  });
}

const f1 = (x) => (x === null ? '-' : x.toFixed(1));
const f0 = (x) => (x === null ? '-' : x >= 100 ? x.toFixed(0) : x.toFixed(1));
function table(head, body) {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => String(r[i]).length)));
  const line = (cells) => '| ' + cells.map((c, i) => (i < 2 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join(' | ') + ' |';
  return [line(head), '|' + widths.map((w, i) => (i < 2 ? '-'.repeat(w + 1) + '-' : '-'.repeat(w + 1) + ':')).join('|') + '|', ...body.map(line)].join('\n');
}

const cpu = cpus();
const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
console.log(
  `PII scan benchmark, ${date}: ${cpu.length} cores (${cpu[0]?.model ?? '?'}), node ${v8.node} (V8 ${v8.v8}, ${v8.node_flags.join(' ') || 'no flags'}), ` +
    `${v8.wasm_bytes} bytes of Wasm, ${native.quick ? 'QUICK run (1 short run per cell)' : `median of ${native.method.runs} runs of >= ${native.method.min_seconds} s`}\n`,
);
console.log(
  table(
    ['input', 'engine', 'matches', 'native MB/s', 'V8 MB/s', 'V8/native', 'native us/16 KiB', 'V8 us/16 KiB'],
    rows.map((r) => [r.input, r.engine, r.matches, f0(r.native_mb_per_s), f0(r.v8_mb_per_s), r.v8_over_native.toFixed(2), f1(r.native_us_per_16k), f1(r.v8_us_per_16k)]),
  ),
);

const v8Pass = new Map((v8.passes ?? []).map((p) => [p.pass, p]));
const passes = (native.passes ?? []).map((p) => ({
  input: p.input,
  pass: p.pass,
  entity: p.entity,
  native_us: p.seconds_per_scan * 1e6,
  v8_us: (v8Pass.get(p.pass)?.seconds_per_scan ?? NaN) * 1e6,
}));
if (passes.length) {
  console.log(`\nOne detector per regex pass, alone, on ${passes[0].input} (us per scan):\n`);
  console.log(
    table(
      ['pass', 'entity', 'native us', 'V8 us', 'V8/native'],
      passes.map((p) => [p.pass, p.entity, f1(p.native_us), f1(p.v8_us), (p.native_us / p.v8_us).toFixed(2)]),
    ),
  );
}

const v8Compile = new Map(v8.compile.map((c) => [c.engine, c]));
const compile = native.compile.map((c) => ({ engine: c.engine, native_us: c.seconds * 1e6, v8_us: v8Compile.get(c.engine).seconds * 1e6 }));
console.log('\nBuilding the engine once (us):\n');
console.log(table(['engine', 'build', 'native us', 'V8 us'], compile.map((c) => [c.engine, c.engine === 'builtins' ? 'Detector::new(ALL)' : '10 custom rules', f0(c.native_us), f0(c.v8_us)])));

const builtins = rows.filter((r) => r.engine === 'builtins');
const targets = [];
for (const r of builtins) {
  targets.push({
    input: r.input,
    v8_mb_per_s: r.v8_mb_per_s,
    throughput_met: r.v8_mb_per_s >= TARGET_MBPS,
    v8_us_per_16k: r.v8_us_per_16k,
    request_met: r.v8_us_per_16k === null ? null : r.v8_us_per_16k < TARGET_US,
  });
}
console.log(`\nTargets for the built-ins inside V8 (>= ${TARGET_MBPS} MB/s, a 16 KiB request in < ${TARGET_US} us):`);
for (const t of targets) {
  const req = t.v8_us_per_16k === null ? '' : `, ${t.v8_us_per_16k.toFixed(1)} us per 16 KiB: ${t.request_met ? 'met' : 'NOT met'}`;
  console.log(`  ${t.input.padEnd(14)} ${t.v8_mb_per_s.toFixed(1)} MB/s: ${t.throughput_met ? 'met' : 'NOT met'}${req}`);
}

const out = {
  date,
  machine: { cores: cpu.length, cpu: cpu[0]?.model ?? null },
  node: v8.node,
  v8: v8.v8,
  node_flags: v8.node_flags,
  wasm_bytes: v8.wasm_bytes,
  quick: native.quick,
  method: native.method,
  inputs: manifest,
  custom_rules: native.custom_rules,
  rows,
  passes,
  compile,
  targets,
  native_raw: native,
  v8_raw: v8,
};
writeFileSync(arg('--out'), JSON.stringify(out, null, 2) + '\n');
console.log(`\nwrote ${arg('--out')}`);
if (mismatches.length) {
  console.error(`native and V8 found different match counts:\n  ${mismatches.join('\n  ')}`);
  process.exit(1);
}
