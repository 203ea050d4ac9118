// The V8 runner of the PII-scan benchmark (docs/benchmarks.md, run by scripts/bench).
//
// Loads bench/pii-scan built for wasm32-wasip1 (release profile: opt-level "s", LTO,
// panic = "abort", as the filters are built) into Node's WebAssembly, i.e. V8, the runtime Envoy
// embeds. Node runs with --no-liftoff (scripts/bench passes it), as proxy-wasm-cpp-host configures
// V8 for Envoy: every function is compiled by TurboFan up front, no baseline tier.
//
// For each input written by the native runner (manifest.json in --inputs) and each engine: copies
// the input into Wasm memory once, warms up, finds an iteration count whose run takes at least
// min_seconds, then times `runs` runs and reports the median. The same method as
// bench/pii-scan/src/bin/native.rs.
//
// Usage: node --no-liftoff bench/v8_scan.mjs --wasm FILE --inputs DIR --native FILE --out FILE [--quick]
// (--native: the native runner's JSON, for the list of passes to time)

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WASI } from 'node:wasi';

const args = process.argv.slice(2);
const arg = (name) => {
  const i = args.indexOf(name);
  if (i < 0 || i + 1 >= args.length) throw new Error(`${name} is required`);
  return args[i + 1];
};
const quick = args.includes('--quick');
const wasmPath = arg('--wasm');
const dir = arg('--inputs');
const outPath = arg('--out');
const method = quick
  ? { warm_seconds: 0.02, min_seconds: 0.05, runs: 1 }
  : { warm_seconds: 0.3, min_seconds: 0.5, runs: 5 };

const ENGINES = ['builtins', 'custom_regex', 'custom_regexset', 'custom_regex_lite'];

// The module is a wasm32-wasip1 cdylib: it imports a few WASI functions (stderr for the abort
// message, the environment); Node's WASI provides them. Nothing here reads files from Wasm.
const wasi = new WASI({ version: 'preview1', args: [], env: {}, returnOnExit: true });
const module = new WebAssembly.Module(readFileSync(wasmPath));
const instance = new WebAssembly.Instance(module, wasi.getImportObject());
wasi.initialize(instance);
const wasm = instance.exports;

const now = () => Number(process.hrtime.bigint()) / 1e9;

function time(f, n) {
  const start = now();
  f(n);
  return now() - start;
}

function measure(f) {
  const warm = now();
  while (now() - warm < method.warm_seconds) f(1);
  let n = 1;
  let t = time(f, n);
  while (t < method.min_seconds / 8 && n < 2 ** 30) {
    n *= 2;
    t = time(f, n);
  }
  const iterations = Math.max(1, Math.min(2 ** 32 - 1, Math.ceil((n * method.min_seconds) / Math.max(t, 1e-9))));
  const perIteration = [];
  for (let r = 0; r < method.runs; r++) perIteration.push(time(f, iterations) / iterations);
  const sorted = [...perIteration].sort((a, b) => a - b);
  return { median: sorted[Math.floor(sorted.length / 2)], perIteration, iterations };
}

const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
const results = [];
for (const input of manifest) {
  const bytes = readFileSync(join(dir, input.file));
  if (bytes.length !== input.bytes) throw new Error(`${input.file}: ${bytes.length} bytes, manifest says ${input.bytes}`);
  const ptr = wasm.alloc(bytes.length);
  // After alloc: the memory may have grown, which detaches earlier views of it.
  new Uint8Array(wasm.memory.buffer, ptr, bytes.length).set(bytes);
  for (const engine of ENGINES) {
    const scan = wasm[`scan_${engine}`];
    const f = (n) => scan(ptr, bytes.length, n);
    const matches = f(1);
    const t = measure(f);
    const mbps = bytes.length / t.median / 1e6;
    process.stderr.write(
      `v8      ${input.name.padEnd(14)} ${engine.padEnd(18)} ${mbps.toFixed(1).padStart(9)} MB/s  ` +
        `${(t.median * 1e6).toFixed(1).padStart(9)} us/scan  (${matches} matches)\n`,
    );
    results.push({
      input: input.name,
      engine,
      bytes: bytes.length,
      matches,
      iterations: t.iterations,
      seconds_per_scan: t.median,
      mb_per_s: mbps,
      runs_seconds_per_scan: t.perIteration,
    });
  }
}
// One detector per regex pass, alone, on the prose input (the list is the native runner's, in
// its JSON output).
const native = JSON.parse(readFileSync(arg('--native'), 'utf8'));
const passes = [];
for (const p of native.passes) {
  const input = manifest.find((i) => i.name === p.input);
  const bytes = readFileSync(join(dir, input.file));
  const ptr = wasm.alloc(bytes.length);
  new Uint8Array(wasm.memory.buffer, ptr, bytes.length).set(bytes);
  const t = measure((n) => wasm.scan_entity(ptr, bytes.length, n, p.entity_index));
  const mbps = bytes.length / t.median / 1e6;
  process.stderr.write(
    `v8      pass           ${p.pass.padEnd(18)} ${mbps.toFixed(1).padStart(9)} MB/s  ${(t.median * 1e6).toFixed(1).padStart(9)} us/scan\n`,
  );
  passes.push({ ...p, seconds_per_scan: t.median, mb_per_s: mbps });
}

const compile = [];
for (const engine of ENGINES) {
  const build = wasm[`compile_${engine}`];
  if (build(1) === 0) throw new Error(`${engine}: did not compile`);
  const t = measure((n) => build(n));
  process.stderr.write(`v8      compile        ${engine.padEnd(18)} ${(t.median * 1e6).toFixed(1).padStart(9)} us\n`);
  compile.push({ engine, seconds: t.median, iterations: t.iterations });
}

writeFileSync(
  outPath,
  JSON.stringify(
    {
      runtime: 'v8',
      node: process.version,
      v8: process.versions.v8,
      node_flags: process.execArgv,
      wasm_bytes: readFileSync(wasmPath).length,
      quick,
      method,
      results,
      passes,
      compile,
    },
    null,
    2,
  ),
);
