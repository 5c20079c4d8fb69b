// The fuzz loop behind fuzz.test.ts, run in a child process so that a crash (abort, segfault, out of
// memory) fails the test instead of killing the runner. It calls the public tensor API — constructors,
// views, every function exported from src/ops — with random and adversarial arguments, and checks that
// each call either returns valid tensors or throws an Error. Usage:
//   node fuzz-driver.js <seed> <rounds> <log file>
// Before each call it appends the call's description to the log file (synchronously), so the parent can
// name the call that killed the process. On exit it prints one JSON summary line to stdout.
import { closeSync, openSync, writeSync } from 'node:fs';
import * as A from '../../src/index.js';
import { Tensor, getEngine, ops, tidy } from '../../src/index.js';

type Rng = () => number;

/** mulberry32: a small deterministic generator, so a failing seed replays exactly. */
function rngFrom(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const [seedArg = '1', roundsArg = '40', logPath = '/dev/null'] = process.argv.slice(2);
const rand = rngFrom(Number(seedArg));
const rounds = Number(roundsArg);
const int = (n: number): number => Math.floor(rand() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
const chance = (p: number): boolean => rand() < p;

/** Numbers that break naive size, index and offset arithmetic. */
const ADVERSARIAL = [
  -1,
  -2,
  -0,
  0.5,
  1.5,
  -1.5,
  NaN,
  Infinity,
  -Infinity,
  2 ** 31 - 1,
  2 ** 31,
  2 ** 32,
  2 ** 32 + 1,
  2 ** 40,
  2 ** 53,
  2 ** 53 + 2,
  -(2 ** 53),
  1e300,
  Number.MAX_VALUE,
  Number.MIN_VALUE,
  Number.EPSILON,
  -2147483648,
];
const SMALL = [0, 1, 2, 3, 4, -1];
const DTYPES = ['float32', 'float64', 'bfloat16', 'float16', 'int32'] as const;
const STRINGS = [
  ...DTYPES,
  'cpu',
  'cuda',
  'cuda:7',
  'cpu:0',
  'int64',
  '',
  'sum',
  'mean',
  'none',
  'fused',
  'reference',
  'auto',
  'neg',
  'exp',
  'bogus',
];

function number(): number {
  return chance(0.55) ? pick(SMALL) : pick(ADVERSARIAL);
}

function numberArray(): number[] {
  return Array.from({ length: int(5) }, () => (chance(0.7) ? int(5) : number()));
}

/** Tensors of every dtype and layout: contiguous, transposed, narrowed, broadcast, empty, scalar, disposed. */
function makeTensor(): Tensor {
  const dtype = chance(0.6) ? 'float32' : pick(DTYPES);
  const shape = Array.from({ length: int(5) }, () => (chance(0.1) ? 0 : 1 + int(4)));
  const size = shape.reduce((a, b) => a * b, 1);
  const values = Array.from({ length: size }, () =>
    dtype === 'int32' ? int(7) - 1 : chance(0.05) ? pick([NaN, Infinity, -Infinity]) : rand() * 4 - 2,
  );
  let t = A.tensor(values, shape, { dtype });
  const layout = int(8);
  if (layout === 0 && t.rank >= 2) t = t.transpose(0, t.rank - 1);
  else if (layout === 1 && t.rank >= 1 && t.shape[0]! > 1) t = t.narrow(0, 1, t.shape[0]! - 1);
  else if (layout === 2) t = t.expand([2, ...t.shape]);
  else if (layout === 3 && dtype !== 'int32') t.requireGrad();
  else if (layout === 4 && chance(0.3)) t.dispose();
  return t;
}

function tokenIndex(): unknown {
  const n = 1 + int(4);
  const ids = Int32Array.from({ length: n }, () => (chance(0.8) ? int(6) : pick([-1, 2 ** 31 - 1, -2147483648])));
  return pick([
    ids,
    A.tensor(ids, [1, n], { dtype: 'int32' }),
    { host: ids, device: A.tensor(ids, [1, n], { dtype: 'int32' }) },
    makeTensor(),
  ]);
}

/** Option bags for attention, addNorm and crossEntropy, with random subsets of fields. */
function options(): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  const fields: Record<string, () => unknown> = {
    scale: () => (chance(0.5) ? rand() : number()),
    causal: () => pick([true, false, 1, 'yes']),
    queryOffset: number,
    keyScale: () => (chance(0.5) ? null : makeTensor()),
    rotary: () =>
      chance(0.3) ? null : { dim: pick([0, 2, 4, ...ADVERSARIAL]), invFreq: numberArray(), xposScaleBase: number() },
    alibiSlopes: () => (chance(0.3) ? null : numberArray()),
    queryPositions: tokenIndex,
    keyPositions: tokenIndex,
    querySegments: tokenIndex,
    keySegments: tokenIndex,
    implementation: () => pick(['auto', 'fused', 'reference', 'bogus']),
    rms: () => pick([true, false]),
    weight: makeTensor,
    bias: makeTensor,
    eps: number,
    residualConstant: number,
    residualScale: makeTensor,
    ignoreIndex: number,
    reduction: () => pick(['mean', 'sum', 'none', 'bogus']),
  };
  for (const [key, make] of Object.entries(fields)) if (chance(0.25)) o[key] = make();
  return o;
}

function argument(): unknown {
  const r = rand();
  if (r < 0.4) return makeTensor();
  if (r < 0.6) return number();
  if (r < 0.7) return numberArray();
  if (r < 0.78) return pick(STRINGS);
  if (r < 0.86) return options();
  if (r < 0.9) return [makeTensor(), makeTensor()];
  return pick([undefined, null, true, false, {}, [], () => 0, 1n, Symbol('s'), new Float32Array(3), 'x'.repeat(3)]);
}

/** Mostly valid small shapes, sometimes adversarial ones. */
function shapeLike(): number[] {
  return chance(0.6) ? Array.from({ length: int(4) }, () => int(4)) : numberArray();
}

/** Calls whose arguments have the shapes the function expects, so the fuzz also reaches past argument checks. */
function plausibleArgs(name: string): unknown[] {
  const x = makeTensor();
  const like = (t: Tensor): Tensor =>
    t.isDisposed ? t : A.randn([...t.shape], { dtype: t.dtype === 'int32' ? 'float32' : t.dtype });
  switch (name) {
    case 'reshape':
    case 'expand':
    case 'permute':
      return [x, chance(0.5) ? [...x.shape].reverse() : numberArray()];
    case 'narrow':
    case 'pad':
      return [x, int(3) - 1, number(), number()];
    case 'shift':
      return [x, int(3) - 1, chance(0.7) ? int(5) - 2 : number()];
    case 'arange':
      return [int(5), chance(0.7) ? int(10) : number(), chance(0.7) ? 1 + int(3) : number()];
    case 'concat':
      return [[x, like(x), ...(chance(0.3) ? [makeTensor()] : [])], x.rank > 0 ? int(x.rank) : number()];
    case 'dropout':
      return [x, chance(0.7) ? rand() : number(), int(100), chance(0.5)];
    case 'split':
      return [x, numberArray(), int(3)];
    case 'full':
      return [shapeLike(), number(), chance(0.7) ? pick(DTYPES) : argument()];
    case 'zeros':
    case 'ones':
    case 'scalar':
      return [name === 'scalar' ? number() : shapeLike(), chance(0.7) ? pick(DTYPES) : argument()];
    case 'randn':
    case 'rand':
      return [shapeLike(), chance(0.5) ? {} : options()];
    case 'toDevice':
    case 'to':
    case 'cast':
      return [
        x,
        chance(0.7) ? pick(name === 'cast' ? DTYPES : name === 'to' ? [...DTYPES, 'cpu'] : ['cpu']) : argument(),
      ];
    case 'reduceRaw':
      return [pick(['sum', 'max', 'mean']), x, chance(0.7) ? undefined : int(3) - 1, chance(0.5)];
    case 'headNorm':
    case 'headNormComposed':
      return [x, chance(0.7) ? null : argument(), chance(0.7) ? 1e-6 : number()];
    case 'squeeze':
    case 'unsqueeze':
      return [x, chance(0.8) ? int(x.rank + 1) - 1 : number()];
    case 'matmul':
    case 'linear':
    case 'matmulRaw':
      return [x, x.rank >= 1 ? A.randn([x.shape[x.rank - 1] ?? 1, 1 + int(3)]) : x];
    case 'linearBiasGelu': {
      const out = 1 + int(3);
      return [x, A.randn([out, x.rank >= 1 ? (x.shape[x.rank - 1] ?? 1) : 1]), chance(0.8) ? A.randn([out]) : x];
    }
    case 'linearSharedInput': {
      const inF = x.rank >= 1 ? (x.shape[x.rank - 1] ?? 1) : 1;
      return [x, Array.from({ length: int(4) }, () => A.randn([1 + int(3), chance(0.9) ? inF : int(4)]))];
    }
    case 'attention': {
      const q = A.randn([1, 1 + int(2), 1 + int(3), pick([2, 4])]);
      return [q, like(q), like(q), { scale: 0.5, ...options() }];
    }
    case 'embedding':
      return [A.randn([4, 3]), tokenIndex()];
    case 'crossEntropy':
      return [A.randn([2, 5]), A.tensor([int(7) - 1, int(5)], [2], { dtype: 'int32' }), options()];
    case 'addNorm':
    case 'addThenNorm':
      return [x, like(x), options()];
    default:
      return [x, chance(0.5) ? like(x) : argument(), argument(), argument()];
  }
}

/** Host reference for a strided view: the elements `t` shows, read from its storage through its strides. */
function viewThroughStrides(t: Tensor, storageValues: ArrayLike<number>): number[] {
  const out: number[] = [];
  const index = new Array<number>(t.rank).fill(0);
  for (let n = 0; n < t.size; n++) {
    let at = t.offset;
    for (let i = 0; i < t.rank; i++) at += index[i]! * t.strides[i]!;
    out.push(storageValues[at]!);
    for (let i = t.rank - 1; i >= 0; i--) {
      if (++index[i]! < t.shape[i]!) break;
      index[i] = 0;
    }
  }
  return out;
}

const problems: string[] = [];
let calls = 0,
  threw = 0,
  returned = 0;
/** How many calls of each op returned a result (the rest threw): an op never reached past its checks is not fuzzed. */
const returnedBy: Record<string, number> = {};
const log = openSync(logPath, 'w');

function describe(v: unknown): string {
  if (v instanceof Tensor)
    return v.isDisposed
      ? 'Tensor(disposed)'
      : `Tensor(${JSON.stringify(v.shape)}, ${v.dtype}, strides ${JSON.stringify(v.strides)})`;
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v);
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'symbol' || typeof v === 'function') return typeof v;
  if (Array.isArray(v)) return `[${v.map(describe).join(', ')}]`;
  if (v && typeof v === 'object')
    return ArrayBuffer.isView(v)
      ? v.constructor.name
      : `{${Object.entries(v)
          .map(([k, x]) => `${k}: ${describe(x)}`)
          .join(', ')}}`;
  return JSON.stringify(v) ?? String(v);
}

/** Checks everything a call returned: each tensor's elements can be read and their count matches its shape. */
function checkResult(call: string, result: unknown): void {
  const seen: Tensor[] = [];
  const collect = (v: unknown): void => {
    if (v instanceof Tensor) seen.push(v);
    else if (Array.isArray(v)) v.forEach(collect);
    else if (v && typeof v === 'object' && !ArrayBuffer.isView(v)) Object.values(v).forEach(collect);
  };
  collect(result);
  for (const t of seen) {
    if (t.isDisposed) continue;
    const values = t.toArray();
    if (values.length !== t.size)
      problems.push(`${call}: returned ${t} whose toArray has ${values.length} elements, not ${t.size}`);
  }
}

const engine = getEngine('cpu');
const heldBefore = engine.memoryStats().allocated;

function run(call: string, fn: () => unknown): void {
  calls++;
  writeSync(log, call + '\n');
  try {
    tidy(() => checkResult(call, fn()));
    returned++;
    const name = call.slice(0, call.indexOf('('));
    if (name.startsWith('ops.')) returnedBy[name.slice(4)] = (returnedBy[name.slice(4)] ?? 0) + 1;
  } catch (e) {
    threw++;
    if (!(e instanceof Error)) problems.push(`${call}: threw a non-Error ${describe(e)}`);
    else if (!e.message) problems.push(`${call}: threw ${e.name} with an empty message`);
  }
}
const opNames = Object.keys(ops)
  .filter((k) => typeof (ops as Record<string, unknown>)[k] === 'function')
  .sort();

/**
 * One fuzzed call in its own scope: `make` builds the arguments and returns the call's description and
 * thunk. Memory still held once the scope has ended leaked on the path the call took.
 */
function fuzz(make: () => [string, () => unknown]): void {
  const held = engine.memoryStats().allocated;
  let call = '';
  tidy(() => {
    const [description, fn] = make();
    call = description;
    run(call, fn);
  });
  const leaked = engine.memoryStats().allocated - held;
  if (leaked !== 0)
    problems.push(
      `${call}: ${
        leaked > 0
          ? `${leaked} bytes of tensor memory still held`
          : `${-leaked} bytes freed that other tensors still use`
      } once its scope ended`,
    );
}

for (let round = 0; round < rounds; round++) {
  for (const name of opNames) {
    const fn = (ops as unknown as Record<string, (...a: unknown[]) => unknown>)[name]!;
    fuzz(() => {
      const args = chance(0.5) ? plausibleArgs(name) : Array.from({ length: int(6) }, argument);
      return [`ops.${name}(${args.map(describe).join(', ')})`, () => fn(...args)];
    });
  }
  // The Tensor class itself: constructors, raw views and the method shorthands.
  const dtypeArg = (): unknown => (chance(0.7) ? 'float32' : pick([...DTYPES, 'bogus', 7]));
  const shapeArg = (): number[] => (chance(0.5) ? numberArray() : [1 + int(3), 1 + int(3)]);
  fuzz(() => {
    const shape = shapeArg(),
      dtype = dtypeArg();
    return [`Tensor.empty(${describe(shape)}, ${describe(dtype)})`, () => Tensor.empty(shape, dtype as A.DType)];
  });
  fuzz(() => {
    const shape = shapeArg(),
      dtype = dtypeArg();
    const values = chance(0.5) ? numberArray() : new Float32Array(int(5));
    return [
      `Tensor.fromArray(${describe(values)}, ${describe(shape)}, ${describe(dtype)})`,
      () => Tensor.fromArray(values, shape, dtype as A.DType),
    ];
  });
  const viewArgs = (base: Tensor): [number[], number[], number] => {
    const viewShape = chance(0.5) ? numberArray() : [...base.shape];
    const strides = chance(0.5) ? numberArray() : viewShape.map(() => int(3));
    return [viewShape, strides, chance(0.6) ? int(4) : number()];
  };
  fuzz(() => {
    const base = makeTensor();
    const [viewShape, strides, offset] = viewArgs(base);
    return [
      `${describe(base)}.view(${describe(viewShape)}, ${describe(strides)}, ${describe(offset)})`,
      () => {
        const v = base.view(viewShape, strides, offset);
        // A view the library accepted must show exactly the storage elements its strides name.
        if (!base.isDisposed && base.size > 0 && v.size <= 4096) {
          const whole = base.view([base.storage.bytes / A.DTYPE_BYTES[base.dtype]], [1], 0);
          const expected = viewThroughStrides(v, whole.toArray());
          const actual = Array.from(v.toArray());
          if (actual.some((x, i) => !Object.is(x, expected[i])))
            problems.push(`view ${describe(v)}: elements differ from the strided reading of its storage`);
        }
        return v;
      },
    ];
  });
  fuzz(() => {
    const base = makeTensor();
    const [viewShape, strides, offset] = viewArgs(base);
    return [
      `new Tensor(storage of ${describe(base)}, ${describe(viewShape)}, strides ${describe(strides)}, offset ` +
        `${describe(offset)})`,
      () => new Tensor(base.storage, viewShape, base.dtype, strides, offset),
    ];
  });
  fuzz(() => {
    const base = makeTensor();
    const method = pick([
      'reshape',
      'transpose',
      'permute',
      'narrow',
      'expand',
      'sum',
      'mean',
      'max',
      'to',
      'item',
      'matmul',
      'add',
      'contiguous',
      'detach',
      'backward',
    ] as const);
    const args = Array.from({ length: int(4) }, argument);
    return [
      `${describe(base)}.${method}(${args.map(describe).join(', ')})`,
      () => (base[method] as (...a: unknown[]) => unknown).apply(base, args),
    ];
  });
}
closeSync(log);

const leaked = engine.memoryStats().allocated - heldBefore;
if (leaked !== 0) problems.push(`${leaked} bytes of tensor memory were still held after the last call`);
const neverReturned = opNames.filter((name) => !returnedBy[name]);
console.log(JSON.stringify({ calls, threw, returned, neverReturned, problems }));
