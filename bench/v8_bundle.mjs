// The bundle module itself inside V8 (Node's WebAssembly, the engine Envoy embeds), driven through
// its proxy-wasm ABI by a small host written here: the in-Envoy benchmark's workloads (written by
// bench/profile_inputs.py), callback by callback, as Envoy calls them. What it gives that the
// native profile (filters/core/examples/bundle_profile.rs) cannot: the module's own time in V8,
// with the ABI crossings (every header, body, property and metric call copies through linear
// memory), and with --profile, V8's CPU profile of the module by function.
//
//   .venv/bin/python bench/profile_inputs.py run/bench/profile
//   node --no-liftoff bench/v8_bundle.mjs --wasm dist/llmobs_bundle.wasm --inputs run/bench/profile \
//        [--rounds N] [--reps N] [--only WORKLOAD] [--profile [--top N]]
//
// --no-liftoff: TurboFan up front, as proxy-wasm-cpp-host sets V8 up for Envoy. Per workload it
// prints the best of --reps rounds (default 5) of --rounds exchanges (default 500): µs per
// exchange per callback. With --profile it samples V8's CPU profiler over the rounds and prints
// the functions with the most self time and the share by part (llmobs behaviour, regex, JSON,
// allocation, host calls). Function names need a module that keeps its name section: the
// shipped one is stripped (Cargo.toml), so build one for profiling with
//   CARGO_PROFILE_RELEASE_STRIP=none CARGO_TARGET_DIR=target/named \
//     cargo build --release -p llmobs-bundle --target wasm32-wasip1
// The host side here is JavaScript, not Envoy's C++: compare these times with each other, and
// with Envoy's (bench/envoy_pack.py) only as a share.
import { readFileSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { Session } from 'node:inspector/promises';

const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const arg = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const inputs = arg('--inputs');
const rounds = Number(arg('--rounds', 500));
const reps = Number(arg('--reps', 5));
const only = arg('--only', null);
const top = Number(arg('--top', 25));
if (!arg('--wasm') || !inputs) {
  console.error('usage: node --no-liftoff bench/v8_bundle.mjs --wasm FILE --inputs DIR [--rounds N] [--reps N] [--only W] [--profile]');
  process.exit(2);
}

// The pseudonym key the bundle reads from its environment (Envoy: the VM's environment_variables),
// the same test key as bundle_profile.rs.
const ENV = { LLMOBS_PII_KEY: 'MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=' };
const OK = 0, NOT_FOUND = 1, BAD_ARGUMENT = 2, UNIMPLEMENTED = 12;
const REQUEST_HEADERS = 0, RESPONSE_HEADERS = 2;
const REQUEST_BODY = 0, RESPONSE_BODY = 1, PLUGIN_CONFIGURATION = 7;
const PHASES = ['request headers', 'request body', 'response headers', 'response body', 'log'];

const enc = new TextEncoder();
const dec = new TextDecoder();
let wasm;
const mem = () => new Uint8Array(wasm.memory.buffer);
const view = () => new DataView(wasm.memory.buffer);
const str = (ptr, len) => dec.decode(mem().subarray(ptr, ptr + len));
const bytes = (ptr, len) => mem().slice(ptr, ptr + len);

// What the host holds for the exchange in flight.
const state = {
  config: new Uint8Array(0),
  maps: { [REQUEST_HEADERS]: [], 1: [], [RESPONSE_HEADERS]: [], 3: [] },
  buffers: { [REQUEST_BODY]: new Uint8Array(0), [RESPONSE_BODY]: new Uint8Array(0) },
  properties: new Map(),
  metrics: [],
  queues: new Map(),
};

// Copies `data` into memory the module allocated and writes its address and size where asked.
function give(data, retPtr, retSize) {
  const ptr = data.length ? wasm.proxy_on_memory_allocate(data.length) : 0;
  if (data.length) mem().set(data, ptr);
  const v = view();
  v.setUint32(retPtr, ptr, true);
  v.setUint32(retSize, data.length, true);
  return OK;
}

function serializePairs(pairs) {
  const parts = pairs.map(([k, v]) => [enc.encode(k), enc.encode(v)]);
  let size = 4 + parts.length * 8;
  for (const [k, v] of parts) size += k.length + v.length + 2;
  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  v.setUint32(0, parts.length, true);
  let at = 4;
  for (const [k, val] of parts) {
    v.setUint32(at, k.length, true);
    v.setUint32(at + 4, val.length, true);
    at += 8;
  }
  for (const [k, val] of parts) {
    out.set(k, at); at += k.length + 1;
    out.set(val, at); at += val.length + 1;
  }
  return out;
}

function parsePairs(data) {
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const n = v.getUint32(0, true);
  const sizes = [];
  let at = 4;
  for (let i = 0; i < n; i++, at += 8) sizes.push([v.getUint32(at, true), v.getUint32(at + 4, true)]);
  const out = [];
  for (const [kl, vl] of sizes) {
    const k = dec.decode(data.subarray(at, at + kl)); at += kl + 1;
    const val = dec.decode(data.subarray(at, at + vl)); at += vl + 1;
    out.push([k, val]);
  }
  return out;
}

const env = {
  // Warnings and errors to stderr (levels: 0 trace .. 3 warn, 4 error, 5 critical).
  proxy_log: (level, ptr, len) => { if (level >= 3) console.error(`module log ${level}: ${str(ptr, len)}`); return OK; },
  proxy_get_current_time_nanoseconds: (ret) => { view().setBigUint64(ret, process.hrtime.bigint(), true); return OK; },
  proxy_set_effective_context: () => OK,
  // Sizes are wasm32 usize: the module asks for "everything" with usize::MAX, -1 as an i32.
  proxy_get_buffer_bytes: (type, start, max, retPtr, retSize) => {
    start >>>= 0; max >>>= 0;
    const buf = type === PLUGIN_CONFIGURATION ? state.config : state.buffers[type];
    if (!buf) return NOT_FOUND;
    return give(buf.subarray(start, start + max), retPtr, retSize);
  },
  proxy_set_buffer_bytes: (type, start, size, ptr, len) => {
    start >>>= 0; size >>>= 0;
    const buf = state.buffers[type];
    if (!buf) return NOT_FOUND;
    const data = bytes(ptr, len);
    const out = new Uint8Array(buf.length - Math.min(size, buf.length - start) + data.length);
    out.set(buf.subarray(0, start));
    out.set(data, start);
    out.set(buf.subarray(start + size), start + data.length);
    state.buffers[type] = out;
    return OK;
  },
  proxy_get_header_map_pairs: (type, retPtr, retSize) => give(serializePairs(state.maps[type] ?? []), retPtr, retSize),
  proxy_set_header_map_pairs: (type, ptr, len) => { state.maps[type] = parsePairs(bytes(ptr, len)); return OK; },
  proxy_get_header_map_value: (type, kp, kl, retPtr, retSize) => {
    const key = str(kp, kl);
    const hit = (state.maps[type] ?? []).find(([k]) => k === key);
    return hit ? give(enc.encode(hit[1]), retPtr, retSize) : NOT_FOUND;
  },
  proxy_replace_header_map_value: (type, kp, kl, vp, vl) => {
    const key = str(kp, kl), value = str(vp, vl);
    const map = state.maps[type] = (state.maps[type] ?? []).filter(([k]) => k !== key);
    map.push([key, value]);
    return OK;
  },
  proxy_add_header_map_value: (type, kp, kl, vp, vl) => { (state.maps[type] ??= []).push([str(kp, kl), str(vp, vl)]); return OK; },
  proxy_remove_header_map_value: (type, kp, kl) => {
    const key = str(kp, kl);
    state.maps[type] = (state.maps[type] ?? []).filter(([k]) => k !== key);
    return OK;
  },
  proxy_get_property: (pp, pl, retPtr, retSize) => {
    const value = state.properties.get(str(pp, pl));
    return value === undefined ? NOT_FOUND : give(value, retPtr, retSize);
  },
  proxy_set_property: (pp, pl, vp, vl) => { state.properties.set(str(pp, pl), bytes(vp, vl)); return OK; },
  proxy_define_metric: (type, np, nl, ret) => { view().setUint32(ret, state.metrics.push(str(np, nl)), true); return OK; },
  proxy_increment_metric: () => OK,
  proxy_record_metric: () => OK,
  proxy_get_shared_data: () => NOT_FOUND,
  proxy_set_shared_data: () => OK,
  proxy_register_shared_queue: (np, nl, ret) => { view().setUint32(ret, 1, true); return OK; },
  proxy_resolve_shared_queue: () => NOT_FOUND,
  proxy_enqueue_shared_queue: () => OK,
  proxy_dequeue_shared_queue: () => 7, // Empty
  proxy_send_local_response: () => OK,
  proxy_continue_stream: () => OK,
  proxy_close_stream: () => OK,
  proxy_done: () => OK,
  proxy_get_status: () => UNIMPLEMENTED,
  proxy_set_tick_period_milliseconds: () => OK,
  proxy_http_call: () => BAD_ARGUMENT,
  proxy_grpc_call: () => UNIMPLEMENTED,
  proxy_grpc_stream: () => UNIMPLEMENTED,
  proxy_grpc_send: () => UNIMPLEMENTED,
  proxy_grpc_cancel: () => UNIMPLEMENTED,
  proxy_grpc_close: () => UNIMPLEMENTED,
  proxy_call_foreign_function: () => UNIMPLEMENTED,
};

const environ = Object.entries(ENV).map(([k, v]) => enc.encode(`${k}=${v}\0`));
const wasi = {
  random_get: (ptr, len) => { randomFillSync(mem(), ptr, len); return 0; },
  environ_sizes_get: (count, size) => {
    view().setUint32(count, environ.length, true);
    view().setUint32(size, environ.reduce((n, e) => n + e.length, 0), true);
    return 0;
  },
  environ_get: (ptrs, buf) => {
    let at = buf;
    environ.forEach((e, i) => { view().setUint32(ptrs + 4 * i, at, true); mem().set(e, at); at += e.length; });
    return 0;
  },
  fd_write: (fd, iovs, n, written) => {
    let total = 0;
    for (let i = 0; i < n; i++) total += view().getUint32(iovs + 8 * i + 4, true);
    view().setUint32(written, total, true);
    return 0;
  },
  proc_exit: (code) => { throw new Error(`module exited with ${code}`); },
};

const module = await WebAssembly.compile(readFileSync(arg('--wasm')));
const instance = await WebAssembly.instantiate(module, { env, wasi_snapshot_preview1: wasi });
wasm = instance.exports;
wasm._initialize?.();

const config = readFileSync(`${inputs}/config.json`);
state.config = new Uint8Array(config);
state.properties.set('plugin_name', enc.encode('llmobs'));
state.properties.set('response\0code_details', enc.encode('via_upstream'));
const ROOT = 1;
wasm.proxy_on_context_create(ROOT, 0);
if (!wasm.proxy_on_vm_start(ROOT, 0)) throw new Error('proxy_on_vm_start refused');
if (!wasm.proxy_on_configure(ROOT, state.config.length)) throw new Error('proxy_on_configure refused the configuration');

const manifest = JSON.parse(readFileSync(`${inputs}/workloads.json`, 'utf8'));
const workloads = Object.entries(manifest).map(([name, w]) => ({
  name,
  requestHeaders: w.request_headers,
  request: new Uint8Array(readFileSync(`${inputs}/${w.request}`)),
  responseHeaders: w.response_headers,
  response: w.response.map((f) => new Uint8Array(readFileSync(`${inputs}/${f}`))),
}));

let nextContext = 2;
const now = () => process.hrtime.bigint();
const concat = (a, b) => { const out = new Uint8Array(a.length + b.length); out.set(a); out.set(b, a.length); return out; };

// One exchange, as Envoy drives one HTTP filter; each phase's ns added to `spent`. A body callback
// that does not continue (1: StopIterationAndBuffer) gets the next piece appended to what it held.
function exchange(w, spent, forwarded = null) {
  const id = nextContext++;
  state.maps[REQUEST_HEADERS] = w.requestHeaders.map(([k, v]) => [k, v]);
  state.maps[RESPONSE_HEADERS] = [];
  wasm.proxy_on_context_create(id, ROOT);
  let t = now();
  wasm.proxy_on_request_headers(id, state.maps[REQUEST_HEADERS].length, 0);
  spent[0] += now() - t;
  state.buffers[REQUEST_BODY] = w.request;
  t = now();
  wasm.proxy_on_request_body(id, w.request.length, 1);
  spent[1] += now() - t;
  state.maps[RESPONSE_HEADERS] = w.responseHeaders.map(([k, v]) => [k, v]);
  t = now();
  wasm.proxy_on_response_headers(id, state.maps[RESPONSE_HEADERS].length, 0);
  spent[2] += now() - t;
  state.buffers[RESPONSE_BODY] = new Uint8Array(0);
  const last = w.response.length - 1;
  w.response.forEach((piece, i) => {
    state.buffers[RESPONSE_BODY] = concat(state.buffers[RESPONSE_BODY], piece);
    t = now();
    const action = wasm.proxy_on_response_body(id, state.buffers[RESPONSE_BODY].length, i === last ? 1 : 0);
    spent[3] += now() - t;
    if (action === 0) {
      forwarded?.push(state.buffers[RESPONSE_BODY]);
      state.buffers[RESPONSE_BODY] = new Uint8Array(0);
    }
  });
  t = now();
  wasm.proxy_on_log(id);
  spent[4] += now() - t;
  wasm.proxy_on_done(id);
  wasm.proxy_on_delete(id);
  // Filter state lives per request in Envoy.
  for (const key of [...state.properties.keys()]) {
    if (key !== 'plugin_name' && key !== 'response\0code_details') state.properties.delete(key);
  }
}

// The workloads' responses carry no personal data: the module must forward them byte for byte, and
// the pii16k request must come out changed (its planted values redacted). Checked once per
// workload before timing, so a host that misdrives the module cannot pass for a fast one.
function check(w) {
  const forwarded = [];
  exchange(w, [0n, 0n, 0n, 0n, 0n], forwarded);
  const redacted = !Buffer.from(state.buffers[REQUEST_BODY]).equals(Buffer.from(w.request));
  if (redacted !== (w.name === 'pii16k')) {
    console.error(`v8_bundle: ${w.name}: the request was ${redacted ? '' : 'not '}rewritten`);
    process.exit(1);
  }
  const out = Buffer.concat(forwarded.map((b) => Buffer.from(b)));
  const expected = Buffer.concat(w.response.map((b) => Buffer.from(b)));
  if (!out.equals(expected)) {
    console.error(`v8_bundle: ${w.name}: the response did not pass byte for byte (${out.length} of ${expected.length} bytes)`);
    process.exit(1);
  }
}

function measure(w) {
  check(w);
  for (let i = 0; i < Math.max(10, rounds / 10); i++) exchange(w, [0n, 0n, 0n, 0n, 0n]);
  let best = null;
  for (let r = 0; r < reps; r++) {
    const spent = [0n, 0n, 0n, 0n, 0n];
    for (let i = 0; i < rounds; i++) exchange(w, spent);
    const total = spent.reduce((a, b) => a + b, 0n);
    if (best === null || total < best.reduce((a, b) => a + b, 0n)) best = spent;
  }
  return best.map((ns) => Number(ns) / 1000 / rounds);
}

const session = flag('--profile') ? new Session() : null;
if (session) {
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 50 });
  await session.post('Profiler.start');
}
console.log(`| workload | ${PHASES.join(' µs | ')} µs | total µs | response body µs per event |`);
console.log(`|---|${'---:|'.repeat(PHASES.length + 2)}`);
for (const w of workloads) {
  if (only && w.name !== only) continue;
  const us = measure(w);
  const total = us.reduce((a, b) => a + b, 0);
  const perEvent = w.name === 'sse' ? (us[3] / 200).toFixed(3) : '-';
  console.log(`| ${w.name} | ${us.map((x) => x.toFixed(2)).join(' | ')} | ${total.toFixed(2)} | ${perEvent} |`);
}
if (session) {
  const { profile } = await session.post('Profiler.stop');
  report(profile);
}

// Rust's legacy symbol mangling (`_ZN` + length-prefixed parts + `E`), enough to read and group
// the names; v0 names (`_R...`) are left as they are.
function demangle(name) {
  const m = /^_ZN(.*)E$/.exec(name);
  if (!m) return name;
  const parts = [];
  let rest = m[1];
  while (rest.length) {
    const n = /^(\d+)/.exec(rest);
    if (!n) return name;
    const len = Number(n[1]);
    parts.push(rest.slice(n[1].length, n[1].length + len));
    rest = rest.slice(n[1].length + len);
  }
  if (/^h[0-9a-f]{16}$/.test(parts.at(-1))) parts.pop();
  const escapes = { LT: '<', GT: '>', RF: '&', BP: '*', C: ',', SP: '@', u20: ' ', u27: "'", u5b: '[', u5d: ']', u7b: '{', u7d: '}', u3b: ';', u7e: '~' };
  return parts.map((p) => p.replace(/\$([A-Za-z0-9]+)\$/g, (all, e) => escapes[e] ?? all).replace(/\.\./g, '::')
    .replace(/^_(?=[<&*])/, '')).join('::');
}

// Self time by function and by part, from the sampled profile (samples in wasm functions only).
function report(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  let total = 0;
  const dt = profile.timeDeltas;
  profile.samples.forEach((id, i) => {
    const node = byId.get(id);
    const name = demangle(node.callFrame.functionName) || `(${node.callFrame.url || 'anonymous'})`;
    const us = dt[i + 1] ?? 0;
    self.set(name, (self.get(name) ?? 0) + us);
    total += us;
  });
  const parts = [
    ['llmobs redaction', /llmobs_core::redaction/], ['llmobs PII detectors', /llmobs_core::pii/],
    ['llmobs token accounting', /llmobs_core::(token_accounting|pricing)/],
    ['llmobs error normalization', /llmobs_core::error_normalization/], ['llmobs agent and signals', /llmobs_core::(agent|signals)/],
    ['llmobs other', /llmobs_(core|bundle|wasm_host)/], ['regex engines', /regex|aho_corasick|memchr/],
    ['JSON (serde)', /serde/], ['allocation', /dlmalloc|alloc::|__rust_(alloc|dealloc|realloc)|memcpy|memmove|memset/],
    ['V8 (garbage collector, program)', /^\((garbage collector|program|idle|root)\)$/],
    ['this JavaScript host (header, body and property copies)', /^[a-z][A-Za-z_]*$/], ['other wasm (standard library)', /./],
  ];
  const share = new Map();
  for (const [name, us] of self) {
    const part = parts.find(([, re]) => re.test(name))?.[0] ?? 'other';
    share.set(part, (share.get(part) ?? 0) + us);
  }
  console.log(`\nV8 CPU profile: ${(total / 1000).toFixed(0)} ms sampled. Self time by part:`);
  for (const [part, us] of [...share].sort((a, b) => b[1] - a[1])) console.log(`  ${(100 * us / total).toFixed(1).padStart(5)}%  ${part}`);
  console.log(`\nTop ${top} functions by self time:`);
  for (const [name, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`  ${(100 * us / total).toFixed(1).padStart(5)}%  ${name.replace(/::h[0-9a-f]{16}$/, '').slice(0, 150)}`);
  }
}
