// The child process of native-fuzz.test.ts: drives every kernel of the CPU addon (read from the ABI
// declaration, native/abi/kernels.mjs) and the CPU engine's public methods with random and adversarial
// arguments. A crash ends this process, which the parent reports. Every call must either return or throw a
// JavaScript Error; calls whose arguments break the ABI (wrong types, negative or fractional sizes, freed or
// invented handles, offsets past the end, …) must throw. Guard buffers allocated between the arenas must keep
// their bytes. Prints one JSON line of counts, then exits 0; any violation exits 1 naming the call.
//
//   node native-fuzz-child.js <seed> <calls>
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CpuEngine } from '../../src/engine/cpu.js';
import { requireAddon } from '../../src/engine/native-engine.js';
import { CPU_ISAS } from '../../src/engine/cpu-settings.js';
import type { Dense, Engine } from '../../src/engine/engine.js';

type Fn = (...args: unknown[]) => unknown;
interface Param {
  name: string;
  kind: string;
  optional?: boolean;
  sameLength?: string;
  signed?: boolean;
  max?: number;
  of?: string;
  orNull?: number;
  fields?: Param[];
}
interface Kernel {
  name: string;
  engines: string[];
  params: Param[];
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const { KERNELS, ENUMS } = (await import(pathToFileURL(join(root, 'native', 'abi', 'kernels.mjs')).href)) as {
  KERNELS: Kernel[];
  ENUMS: Record<string, { count: number }>;
};

const seed = Number(process.argv[2] ?? 1);
const calls = Number(process.argv[3] ?? 3000);

// mulberry32: a small deterministic generator, so a failing seed reproduces.
let state = seed >>> 0;
function random(): number {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
const small = (n = 4): number => Math.floor(random() * n);

const addon = requireAddon<Record<string, Fn>>('andromeda_cpu.node').load();
const engine = new CpuEngine();

// Arenas the kernels may touch, with guard buffers allocated between them.
const ARENA_BYTES = 1 << 16;
const GUARD_BYTES = 256;
const guardPattern = new Uint8Array(GUARD_BYTES).map((_, i) => (i * 37 + 11) & 255);
const arenas: number[] = [];
const guards: number[] = [];
for (let i = 0; i < 8; i++) {
  const g = engine.alloc(GUARD_BYTES);
  engine.upload(g, 0, guardPattern);
  guards.push(g);
  const a = engine.alloc(ARENA_BYTES);
  engine.upload(a, 0, new Uint8Array(ARENA_BYTES));
  arenas.push(a);
}
const lastGuard = engine.alloc(GUARD_BYTES);
engine.upload(lastGuard, 0, guardPattern);
guards.push(lastGuard);

// Handles no longer live: freed buffers (their slots get reused under a new generation).
const freed: number[] = [];
for (let i = 0; i < 4; i++) {
  const h = engine.alloc(64);
  engine.free(h);
  freed.push(h);
}
const invented = [0x7ffd12345678, 2 ** 40, 123456789, 16777216 * 5 + 3];

/** Which values break a parameter of this kind, so the binding must refuse them. */
function breaking(kind: string): unknown[] {
  const types: unknown[] = ['3', null, undefined, {}, [], () => 1];
  switch (kind) {
    case 'int':
    case 'enum':
    case 'dtype':
    case 'seed':
    case 'offset':
      return [...types, true, -1, 1.5, -0.5, NaN, Infinity, -Infinity, 2 ** 53, 2 ** 53 + 2, 1e300, -(2 ** 60)];
    case 'signed':
      return [...types, true, 1.5, NaN, Infinity, -Infinity, 2 ** 53 + 2, -(2 ** 54)];
    case 'float':
      return [...types, true, 1n];
    case 'nullableFloat':
      return ['3', {}, [], true, 1n];
    case 'flag':
      return [0, 1, 'true', null, undefined, {}];
    case 'handle':
      return [...types, ...freed, ...invented, -1, 1.5, NaN, Infinity];
    case 'ints':
      return ['x', null, 5, [1.5], [NaN], [Infinity], [2 ** 53 + 2], ['1'], new Array(65).fill(1)];
    case 'f32s':
      return ['x', 5, {}, [1, 2], new Float64Array(8), new Int32Array(8)];
    case 'f64s':
      return ['x', 5, {}, [1, 2], new Float32Array(8), new Int32Array(8)];
    case 'object':
      return [null, 5, 'x', []];
    case 'list':
      return [null, 5, 'x', {}, [null], [5], ['x']];
    default:
      return types;
  }
}

/** Values that are legal for the kind but extreme: the call may throw or run, but must not crash. */
function extreme(kind: string): unknown[] {
  switch (kind) {
    case 'int':
      return [0, 2 ** 31, 2 ** 40, 2 ** 53 - 1, 65536];
    case 'signed':
      return [-(2 ** 53) + 1, 2 ** 53 - 1, -1, 2 ** 31];
    case 'float':
      return [NaN, Infinity, -Infinity, 1e308, -0];
    case 'offset':
      return [0, ARENA_BYTES / 8, ARENA_BYTES / 4 - 1, ARENA_BYTES];
    case 'ints':
      return [[2 ** 40], [-(2 ** 40)], [0, 0, 0], [3, -3, 1]];
    case 'seed':
      return [0, 2 ** 53 - 1];
    default:
      return [];
  }
}

/** A plausible value for one parameter: small sizes, arenas at small offsets. */
function plausible(p: Param, rank: number): unknown {
  switch (p.kind) {
    case 'dtype':
      return random() < 0.8 ? small(4) : 4;
    case 'enum':
      return small(ENUMS[p.of!]!.count);
    case 'int':
      return small(5);
    case 'signed':
      return small(7) - 3;
    case 'float':
      return pick([0, 1, -1, 0.5, 1e-5, 2]);
    case 'seed':
      return small(1000);
    case 'flag':
      return random() < 0.5;
    case 'ints':
      return Array.from({ length: rank }, () => (p.sameLength ? small(9) - (random() < 0.2 ? 4 : 0) : 1 + small(4)));
    case 'f32s':
      return p.optional && random() < 0.3 ? null : new Float32Array(8).map(() => random());
    case 'f64s':
      return p.optional && random() < 0.3 ? null : new Float64Array(8).map(() => random());
    default:
      throw new Error(`plausible: no value for ${p.kind}`);
  }
}

/** One argument slot as JavaScript sees it: where it lives and what kind of value it takes. */
interface Slot {
  get(): unknown;
  set(v: unknown): void;
  kind: string;
  optional: boolean;
  present: () => boolean;
}

function buildCall(k: Kernel): { args: unknown[]; slots: Slot[] } {
  const args: unknown[] = [];
  const slots: Slot[] = [];
  const rank = small(4);
  const fill = (
    params: Param[],
    target: Record<string, unknown> | unknown[],
    key: (name: string) => string | number,
  ) => {
    for (const p of params) {
      const put = (name: string, value: unknown, kind: string, optional: boolean, present: () => boolean) => {
        const index = key(name);
        (target as Record<string | number, unknown>)[index] = value;
        slots.push({
          get: () => (target as Record<string | number, unknown>)[index],
          set: (v) => {
            (target as Record<string | number, unknown>)[index] = v;
          },
          kind,
          optional,
          present,
        });
      };
      if (p.kind === 'derived') continue; // computed by the glue, not passed
      if (p.kind === 'buffer') {
        const none = p.optional && random() < 0.3;
        const handle = none ? 0 : pick(arenas);
        put(p.name, handle, 'handle', !!p.optional, () => handle !== 0);
        put(`${p.name}Offset`, none ? 0 : small(17), 'offset', false, () => handle !== 0);
      } else if (p.kind === 'object') {
        const o: Record<string, unknown> = {};
        fill(p.fields!, o, (n) => n);
        put(p.name, o, 'object', false, () => true);
      } else if (p.kind === 'list') {
        const items = Array.from({ length: small(3) }, () => ({}) as Record<string, unknown>);
        for (const item of items) fill(p.fields!, item, (n) => n);
        put(p.name, items, 'list', false, () => true);
      } else {
        // A float with `orNull` takes null as "the default": null is no breaking value for it.
        const kind = p.kind === 'float' && p.orNull !== undefined ? 'nullableFloat' : p.kind;
        put(p.name, plausible(p, rank), kind, !!p.optional, () => true);
      }
    }
  };
  fill(k.params, args, () => args.length);
  return { args, slots };
}

function guardsIntact(): boolean {
  return guards.every((g) => {
    const bytes = new Uint8Array(engine.download(g, 0, GUARD_BYTES));
    return bytes.every((b, i) => b === guardPattern[i]);
  });
}

const counts = { calls: 0, threw: 0, returned: 0, mustThrow: 0, engineCalls: 0 };
function violation(message: string): never {
  console.error(`native-fuzz (seed ${seed}): ${message}`);
  process.exit(1);
}
const describe = (v: unknown): string =>
  typeof v === 'number' || typeof v === 'bigint'
    ? String(v)
    : Array.isArray(v)
      ? `[${v.length} items]`
      : typeof v === 'function'
        ? 'a function'
        : (JSON.stringify(v) ?? String(v));

/** Calls fn; a throw must be an Error; returns whether it threw. */
const trace = process.env.ANDROMEDA_FUZZ_TRACE === '1';
function attempt(label: string, fn: () => unknown): boolean {
  counts.calls++;
  if (trace) console.error(label);
  try {
    fn();
    counts.returned++;
    return false;
  } catch (e) {
    if (!(e instanceof Error)) violation(`${label} threw a non-Error: ${String(e)}`);
    counts.threw++;
    return true;
  }
}

const cpuKernels = KERNELS.filter((k) => k.engines.includes('cpu'));
for (let i = 0; i < calls; i++) {
  const k = pick(cpuKernels);
  const { args, slots } = buildCall(k);
  const roll = random();
  let mustThrow = false;
  let label = `${k.name} (call ${i})`;
  if (roll < 0.55 && slots.length) {
    // Break one argument: the binding has to refuse the call.
    const s = pick(slots);
    const candidates = breaking(s.kind).filter((v) => !(s.kind === 'handle' && s.optional && v === undefined));
    const value = pick(candidates);
    s.set(value);
    mustThrow = true;
    label += ` with ${describe(value)} for a ${s.kind}`;
  } else if (roll < 0.65) {
    // An offset past the end of its arena.
    const offsets = slots.filter((s) => s.kind === 'offset' && s.present());
    if (offsets.length) {
      const s = pick(offsets);
      s.set(ARENA_BYTES + small(64));
      mustThrow = true;
      label += ' with an offset past the end';
    }
  } else if (roll < 0.72) {
    // One argument too many or too few.
    if (random() < 0.5) args.push(0);
    else args.pop();
    mustThrow = true;
    label += ' with the wrong argument count';
  } else if (roll < 0.9 && slots.length) {
    // A legal but extreme value. The other sizes become non-zero, so that a huge size reaches some buffer's
    // extent (a huge row count over zero columns is a legal, endless loop, not a boundary question).
    const s = pick(slots);
    const values = extreme(s.kind);
    for (const other of slots) if (other !== s && other.kind === 'int' && other.get() === 0) other.set(1);
    if (values.length) {
      const value = pick(values);
      s.set(value);
      label += ` with ${describe(value)} for a ${s.kind}`;
    }
  }
  if (trace)
    console.error(
      JSON.stringify(args, (_, v) =>
        typeof v === 'bigint' || (typeof v === 'number' && !Number.isFinite(v))
          ? String(v)
          : ArrayBuffer.isView(v)
            ? `${v.constructor.name}`
            : v,
      ),
    );
  const threw = attempt(label, () => addon[k.name]!(...args));
  if (mustThrow) {
    counts.mustThrow++;
    if (!threw) violation(`${label} returned instead of throwing`);
  }
  if (i % 50 === 0 && !guardsIntact()) violation(`a guard buffer changed by call ${i} or before (last: ${label})`);
}

// Buffer management and the CPU's own functions. `free` never sees an arena or a guard: only scratch
// buffers, stale and invented handles, and junk.
const junk = (): unknown => (random() < 0.5 ? pick(breaking('int')) : pick([...freed, ...invented, small(300)]));
for (let i = 0; i < calls / 4; i++) {
  const scratch = engine.alloc(64);
  const handle = (): unknown => (random() < 0.5 ? scratch : random() < 0.5 ? pick(arenas) : junk());
  const data = (): unknown => (random() < 0.7 ? new Uint8Array(small(80)) : junk());
  const choice = small(6);
  const [name, args] = (
    [
      ['alloc', [random() < 0.5 ? small(4096) : junk()]],
      ['free', [random() < 0.5 ? scratch : junk()]],
      ['upload', [handle(), random() < 0.7 ? small(96) : junk(), data()]],
      ['download', [handle(), random() < 0.7 ? small(96) : junk(), random() < 0.7 ? small(96) : junk()]],
      ['threads', [random() < 0.3 ? 1 + small(4) : junk()]],
      ['limitIsa', [random() < 0.3 ? pick(CPU_ISAS) : junk()]],
    ] as const
  )[choice]!;
  let freedScratch = false;
  attempt(`${name} (call ${i}) with ${args.map(describe).join(', ')}`, () => {
    const result = addon[name]!(...args);
    if (name === 'alloc') engine.free(result as number);
    if (name === 'free') freedScratch = true;
  });
  if (!freedScratch) engine.free(scratch);
  if (i % 50 === 0 && !guardsIntact()) violation(`a guard buffer changed by ${name} (call ${i}) or before`);
}
addon.limitIsa!(engine.cpuInfo().cpuIsa);

// The public Engine methods, through the same addon: random Dense regions (live, freed, invented handles,
// odd offsets and dtypes) and random or adversarial sizes.
const DTYPES = ['float32', 'float64', 'bfloat16', 'float16', 'int32', 'float8', undefined];
function randomDense(): Dense {
  const handle = random() < 0.8 ? pick(arenas) : pick([...freed, ...invented, -1, NaN, 0]);
  const offset = random() < 0.8 ? small(17) : pick([-1, 0.5, NaN, ARENA_BYTES, 2 ** 53]);
  const dtype = random() < 0.9 ? pick(DTYPES.slice(0, 5)) : pick(DTYPES);
  return { handle, offset, dtype, strides: Array.from({ length: small(4) }, () => small(5) - 1) } as unknown as Dense;
}
function randomArgument(): unknown {
  const r = random();
  if (r < 0.35) return randomDense();
  if (r < 0.65) return small(5);
  if (r < 0.75) return pick(breaking('int'));
  if (r < 0.82) return random() < 0.5;
  if (r < 0.88) return Array.from({ length: small(4) }, () => 1 + small(3));
  if (r < 0.94) {
    // A MatmulArgs / AddNormArgs / config-like object with random members.
    const o: Record<string, unknown> = {};
    for (const name of [
      'a',
      'b',
      'c',
      'm',
      'n',
      'k',
      'lda',
      'ldb',
      'ldc',
      'strideA',
      'strideB',
      'strideC',
      'batch',
      'transA',
      'transB',
      'alpha',
      'beta',
      'rows',
      'cols',
      'rms',
      'eps',
      'weight',
      'bias',
      'scale',
      'heads',
      'queryLen',
      'keyLen',
      'headDim',
      'kvHeads',
    ]) {
      o[name] =
        name.length === 1 && 'abc'.includes(name) ? randomDense() : random() < 0.8 ? small(4) : pick(breaking('int'));
    }
    return o;
  }
  return null;
}
const methods = Object.getOwnPropertyNames(Object.getPrototypeOf(Object.getPrototypeOf(engine)) as object)
  .concat(Object.getOwnPropertyNames(Object.getPrototypeOf(engine) as object))
  .filter(
    (m) =>
      ![
        'constructor',
        'alloc',
        'free',
        'synchronize',
        'probeCpu',
        'limitIsa',
        'threads',
        'memoryStats',
        'resetPeakMemory',
        'cpuInfo',
      ].includes(m),
  );
const target = engine as unknown as Record<string, Fn>;
for (let i = 0; i < calls / 2; i++) {
  const m = pick(methods);
  const fn = target[m];
  if (typeof fn !== 'function') continue;
  const args = Array.from({ length: Math.max(fn.length, 1) + (random() < 0.1 ? 1 : 0) }, randomArgument);
  counts.engineCalls++;
  attempt(`engine.${m} (call ${i})`, () => fn.apply(engine as Engine, args));
  if (i % 50 === 0 && !guardsIntact()) violation(`a guard buffer changed by engine call ${i} or before (last: ${m})`);
}

if (!guardsIntact()) violation('a guard buffer changed');
// The engine still computes after all that: exp of known values in a fresh buffer.
const h = engine.alloc(32);
engine.upload(h, 0, new Float32Array([0, 1, 2, 3]));
engine.unary('exp', { handle: h, offset: 0, dtype: 'float32' }, { handle: h, offset: 4, dtype: 'float32' }, 4, 0);
const out = new Float32Array(engine.download(h, 16, 16));
if (out.some((v, i) => Math.abs(v - Math.exp(i)) > 1e-5 * Math.exp(i)))
  violation(`exp after the fuzz gave ${Array.from(out).join(', ')}`);
console.log(JSON.stringify(counts));
