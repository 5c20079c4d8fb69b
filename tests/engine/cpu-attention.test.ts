// The CPU engine's fused attention (native/cpu/attention.cc) against the float64 reference the GPU tests share
// (tests/helpers/attention-reference.ts): forward output, lse and every gradient, over head dims, odd lengths,
// MQA/GQA/MHA and each feature on and off (key scale, rotary, xPos, ALiBi, causal with a query offset, segments,
// custom positions), in float64 (rel. error < 1e-10) and float32 (< 1e-5), on every instruction set the
// machine has; plus finite differences, fully masked rows and xPos at 80,000 tokens.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CpuEngine, type CpuAttentionBudgets } from '../../src/engine/cpu.js';
import { cpuIsasOf } from '../../src/engine/cpu-settings.js';
import type { AttentionArgs, Dense } from '../../src/engine/engine.js';
import type { DType } from '../../src/tensor/dtype.js';
import {
  referenceAttention,
  relativeError,
  rng,
  type AttentionInputs,
  type AttentionResult,
} from '../helpers/attention-reference.js';

const engine = new CpuEngine();

// ---------------------------------------------------------------- random data
function randArray(n: number, rand: () => number, lo = -1, hi = 1): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * rand();
  return a;
}

// ---------------------------------------------------------------- device buffers
const live: number[] = [];
function toDevice(data: Float64Array | Int32Array, dtype: DType): Dense {
  let host: ArrayBufferView;
  if (dtype === 'float64') host = data instanceof Float64Array ? data : Float64Array.from(data);
  else if (dtype === 'float32') host = Float32Array.from(data);
  else if (dtype === 'int32') host = data instanceof Int32Array ? data : Int32Array.from(data);
  else {
    const f = Float32Array.from(data);
    const u = new Uint32Array(f.buffer);
    const b = new Uint16Array(f.length);
    for (let i = 0; i < f.length; i++) b[i] = (u[i]! + 0x7fff + ((u[i]! >>> 16) & 1)) >>> 16;
    host = b;
  }
  const handle = engine.alloc(Math.max(host.byteLength, 8));
  engine.upload(handle, 0, host);
  live.push(handle);
  return { handle, offset: 0, dtype };
}
function empty(n: number, dtype: DType, fill = NaN): Dense {
  return toDevice(new Float64Array(n).fill(fill), dtype);
}
function fromDevice(d: Dense, n: number): Float64Array {
  if (d.dtype === 'float64') return new Float64Array(engine.download(d.handle, 0, n * 8));
  if (d.dtype === 'float32') return Float64Array.from(new Float32Array(engine.download(d.handle, 0, n * 4)));
  const b = new Uint16Array(engine.download(d.handle, 0, n * 2));
  const u = new Uint32Array(n);
  for (let i = 0; i < n; i++) u[i] = b[i]! << 16;
  return Float64Array.from(new Float32Array(u.buffer));
}
function freeAll(): void {
  while (live.length) engine.free(live.pop()!);
}
/** Values as the kernel sees them after storage in `dtype`. */
function rounded(a: Float64Array, dtype: DType): Float64Array {
  if (dtype === 'float64') return a;
  if (dtype === 'float32') return Float64Array.from(Float32Array.from(a));
  const f = Float32Array.from(a);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < f.length; i++) u[i] = (((u[i]! + 0x7fff + ((u[i]! >>> 16) & 1)) >>> 16) << 16) >>> 0;
  return Float64Array.from(f);
}

// ---------------------------------------------------------------- problem description
interface Case {
  name: string;
  B: number;
  H: number;
  KVH: number;
  NQ: number;
  NK: number;
  D: number;
  causal?: boolean;
  offset?: number; // queryOffset (defaults to NK − NQ when causal)
  alibi?: boolean; // slopes with some heads 0
  rotary?: number; // rotaryDim
  xpos?: number; // scale base
  keyScale?: boolean;
  positions?: 'custom' | 'reset' | 'jump' | 'shuffled';
  segments?: boolean;
  allMaskedRows?: boolean; // some query segments have no key of their id
  seed?: number;
}

type Inputs = AttentionInputs;

function makeInputs(c: Case): Inputs {
  const rand = rng(c.seed ?? 1234 + c.NQ * 7 + c.NK * 13 + c.D);
  const { B, H, KVH, NQ, NK, D } = c;
  const offset = c.offset ?? (c.causal ? NK - NQ : 0);
  const q = randArray(B * H * NQ * D, rand);
  const k = randArray(B * KVH * NK * D, rand);
  const v = randArray(B * KVH * NK * D, rand);
  const gout = randArray(B * H * NQ * D, rand);
  const ks = c.keyScale ? randArray(H * D, rand, 0.5, 1.5) : null;
  const slopes = c.alibi ? Float32Array.from({ length: H }, (_, h) => (h % 2 === 0 ? 0.25 / (h + 1) : 0)) : null;
  const r = c.rotary ?? 0;
  const invFreq = r > 0 ? Float32Array.from({ length: r / 2 }, (_, i) => 1 / 10000 ** ((2 * i) / r)) : null;
  let kpos: Int32Array | null = null,
    qpos: Int32Array | null = null;
  let kseg: Int32Array | null = null,
    qseg: Int32Array | null = null;
  if (c.positions || c.segments) {
    kpos = new Int32Array(B * NK);
    kseg = new Int32Array(B * NK);
    for (let b = 0; b < B; b++) {
      let doc = 0,
        p = 0;
      for (let j = 0; j < NK; j++) {
        if (c.segments && j > 0 && rand() < 0.08) {
          doc++;
          if (c.positions === 'reset') p = 0;
        }
        kseg[b * NK + j] = doc * 3 + 1;
        if (c.positions === 'custom')
          kpos[b * NK + j] = p + Math.floor(rand() * 3); // non-decreasing with repeats
        else if (c.positions === 'jump')
          kpos[b * NK + j] = j < NK / 2 ? j : j + 250000; // a huge gap mid-tile
        else if (c.positions === 'shuffled')
          kpos[b * NK + j] = Math.floor(rand() * 2 * NK); // no order at all
        else kpos[b * NK + j] = p;
        p = kpos[b * NK + j]! + (c.positions === 'custom' ? 0 : 1);
      }
    }
    qpos = new Int32Array(B * NQ);
    qseg = new Int32Array(B * NQ);
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < NQ; i++) {
        qpos[b * NQ + i] = kpos[b * NK + offset + i]!;
        qseg[b * NQ + i] = kseg[b * NK + offset + i]!;
        if (c.allMaskedRows && i % 5 === 2) qseg[b * NQ + i] = -7; // an id no key has
      }
    }
    if (!c.positions) {
      qpos = null;
      kpos = null;
    }
    if (!c.segments) {
      qseg = null;
      kseg = null;
    }
  }
  return { q, k, v, gout, ks, slopes, invFreq, qpos, kpos, qseg, kseg, offset, scale: 1 / Math.sqrt(D) };
}

function argsFor(
  c: Case,
  inp: Inputs,
  dev: { ks: Dense | null; qpos: Dense | null; kpos: Dense | null; qseg: Dense | null; kseg: Dense | null },
): AttentionArgs {
  return {
    batch: c.B,
    heads: c.H,
    kvHeads: c.KVH,
    queryLen: c.NQ,
    keyLen: c.NK,
    headDim: c.D,
    scale: inp.scale,
    causal: !!c.causal,
    queryOffset: inp.offset,
    alibiSlopes: inp.slopes,
    rotaryDim: c.rotary ?? 0,
    rotaryInvFreq: inp.invFreq,
    xposScaleBase: c.xpos ?? 0,
    keyScale: dev.ks,
    queryPositions: dev.qpos,
    keyPositions: dev.kpos,
    querySegments: dev.qseg,
    keySegments: dev.kseg,
  };
}

// ---------------------------------------------------------------- float64 reference
type Result = AttentionResult;

/**
 * The shared reference; `float32Angles`: rotary angles rounded to float32, as the kernel computes them below float64.
 */
function reference(c: Case, inp: Inputs, float32Angles: boolean): Result {
  return referenceAttention(c, inp, { float32Angles });
}

// ---------------------------------------------------------------- running the kernel
function runKernel(
  c: Case,
  inp: Inputs,
  dtype: DType,
  backwardToo = true,
  lseType: DType = dtype === 'float64' ? 'float64' : 'float32',
  budgets: CpuAttentionBudgets = {},
): Result {
  const ksType: DType = dtype === 'float64' ? 'float64' : 'float32';
  const { B, H, KVH, NQ, NK, D } = c;
  const q = toDevice(inp.q, dtype),
    k = toDevice(inp.k, dtype),
    v = toDevice(inp.v, dtype);
  const dev = {
    ks: inp.ks ? toDevice(inp.ks, ksType) : null,
    qpos: inp.qpos ? toDevice(inp.qpos, 'int32') : null,
    kpos: inp.kpos ? toDevice(inp.kpos, 'int32') : null,
    qseg: inp.qseg ? toDevice(inp.qseg, 'int32') : null,
    kseg: inp.kseg ? toDevice(inp.kseg, 'int32') : null,
  };
  const args = argsFor(c, inp, dev);
  const out = empty(B * H * NQ * D, dtype),
    lse = empty(B * H * NQ, lseType);
  engine.attentionForward(q, k, v, out, lse, args, budgets);
  const res: Result = {
    out: fromDevice(out, B * H * NQ * D),
    lse: fromDevice(lse, B * H * NQ),
    dq: new Float64Array(0),
    dk: new Float64Array(0),
    dv: new Float64Array(0),
    dks: null,
  };
  if (backwardToo) {
    const gout = toDevice(inp.gout, dtype);
    const dq = empty(B * H * NQ * D, dtype),
      dk = empty(B * KVH * NK * D, dtype),
      dv = empty(B * KVH * NK * D, dtype);
    const dks = inp.ks ? empty(H * D, ksType) : null;
    engine.attentionBackward(q, k, v, out, lse, gout, dq, dk, dv, dks, args, budgets);
    res.dq = fromDevice(dq, B * H * NQ * D);
    res.dk = fromDevice(dk, B * KVH * NK * D);
    res.dv = fromDevice(dv, B * KVH * NK * D);
    res.dks = dks ? fromDevice(dks, H * D) : null;
  }
  freeAll();
  return res;
}

/** Relative error (∞ where −∞ does not match or a value is not finite, which fails every tolerance). */
function relErr(got: Float64Array, ref: Float64Array): number {
  assert.equal(got.length, ref.length);
  return relativeError(got, ref);
}

function roundedInputs(inp: Inputs, dtype: DType): Inputs {
  return {
    ...inp,
    q: rounded(inp.q, dtype),
    k: rounded(inp.k, dtype),
    v: rounded(inp.v, dtype),
    gout: rounded(inp.gout, dtype),
    ks: inp.ks ? rounded(inp.ks, dtype === 'bfloat16' ? 'float32' : dtype) : null,
  };
}

function check(c: Case, dtype: DType, tol: number, budgets: CpuAttentionBudgets = {}): void {
  const inp = roundedInputs(makeInputs(c), dtype);
  const ref = reference(c, inp, dtype !== 'float64');
  const got = runKernel(c, inp, dtype, true, dtype === 'float64' ? 'float64' : 'float32', budgets);
  const errs: Record<string, number> = {
    out: relErr(got.out, ref.out),
    lse: relErr(got.lse, ref.lse),
    dq: relErr(got.dq, ref.dq),
    dk: relErr(got.dk, ref.dk),
    dv: relErr(got.dv, ref.dv),
  };
  if (ref.dks) errs.dks = relErr(got.dks!, ref.dks);
  for (const [name, e] of Object.entries(errs)) {
    assert.ok(e < tol, `${c.name} [${dtype}]: ${name} relative error ${e.toExponential(2)} ≥ ${tol}`);
  }
}

// ---------------------------------------------------------------- the cases
const CASES: Case[] = [
  { name: 'plain MHA d32 n7', B: 2, H: 4, KVH: 4, NQ: 7, NK: 7, D: 32 },
  { name: 'plain MHA d64 n1', B: 1, H: 4, KVH: 4, NQ: 1, NK: 1, D: 64 },
  { name: 'causal MQA d64 n33', B: 2, H: 4, KVH: 1, NQ: 33, NK: 33, D: 64, causal: true },
  { name: 'causal GQA d32 n100 alibi', B: 1, H: 4, KVH: 2, NQ: 100, NK: 100, D: 32, causal: true, alibi: true },
  { name: 'keyScale MQA d32 n33', B: 2, H: 4, KVH: 1, NQ: 33, NK: 33, D: 32, keyScale: true },
  { name: 'keyScale MHA d64 causal', B: 1, H: 4, KVH: 4, NQ: 33, NK: 33, D: 64, keyScale: true, causal: true },
  { name: 'rotary r32<d64 causal GQA', B: 1, H: 4, KVH: 2, NQ: 100, NK: 100, D: 64, rotary: 32, causal: true },
  { name: 'rotary+xpos d32 full', B: 2, H: 4, KVH: 1, NQ: 33, NK: 33, D: 32, rotary: 32, xpos: 512, causal: true },
  {
    name: 'xpos base 8 (strong decay) d64 r32',
    B: 1,
    H: 4,
    KVH: 4,
    NQ: 100,
    NK: 100,
    D: 64,
    rotary: 32,
    xpos: 8,
    causal: true,
  },
  {
    name: 'offset n1 vs 7 keys',
    B: 2,
    H: 4,
    KVH: 1,
    NQ: 1,
    NK: 7,
    D: 32,
    causal: true,
    rotary: 16,
    xpos: 512,
    alibi: true,
  },
  {
    name: 'offset 33 vs 100 all features',
    B: 1,
    H: 4,
    KVH: 2,
    NQ: 33,
    NK: 100,
    D: 64,
    causal: true,
    rotary: 32,
    xpos: 512,
    alibi: true,
    keyScale: true,
  },
  {
    name: 'non-causal alibi+rotary d64',
    B: 1,
    H: 4,
    KVH: 1,
    NQ: 33,
    NK: 100,
    D: 64,
    rotary: 32,
    alibi: true,
    keyScale: true,
  },
  { name: 'segments causal MQA', B: 2, H: 4, KVH: 1, NQ: 100, NK: 100, D: 32, causal: true, segments: true },
  {
    name: 'packed docs: segments + reset positions + all',
    B: 2,
    H: 4,
    KVH: 1,
    NQ: 100,
    NK: 100,
    D: 64,
    causal: true,
    segments: true,
    positions: 'reset',
    rotary: 32,
    xpos: 512,
    alibi: true,
    keyScale: true,
  },
  {
    name: 'custom positions non-causal',
    B: 1,
    H: 4,
    KVH: 2,
    NQ: 33,
    NK: 33,
    D: 32,
    positions: 'custom',
    rotary: 32,
    alibi: true,
  },
  {
    name: 'custom positions causal offset',
    B: 2,
    H: 4,
    KVH: 4,
    NQ: 7,
    NK: 33,
    D: 64,
    causal: true,
    positions: 'custom',
    rotary: 16,
    xpos: 256,
    alibi: true,
    keyScale: true,
  },
  {
    name: 'fully masked rows',
    B: 1,
    H: 4,
    KVH: 1,
    NQ: 33,
    NK: 33,
    D: 32,
    segments: true,
    allMaskedRows: true,
    rotary: 32,
    xpos: 512,
  },
  {
    name: 'causal with unordered positions (ALiBi per element)',
    B: 2,
    H: 4,
    KVH: 2,
    NQ: 33,
    NK: 100,
    D: 32,
    causal: true,
    positions: 'shuffled',
    rotary: 32,
    alibi: true,
    keyScale: true,
  },
  {
    name: 'odd head dim 40, rotary 20, GQA',
    B: 2,
    H: 4,
    KVH: 2,
    NQ: 33,
    NK: 100,
    D: 40,
    causal: true,
    rotary: 20,
    xpos: 512,
    alibi: true,
  },
  {
    name: 'head dim 128 MQA keyScale',
    B: 1,
    H: 4,
    KVH: 1,
    NQ: 33,
    NK: 33,
    D: 128,
    causal: true,
    rotary: 64,
    xpos: 512,
    keyScale: true,
  },
  {
    name: 'position gap of 250k inside a tile (xPos sub-tiles)',
    B: 1,
    H: 4,
    KVH: 1,
    NQ: 100,
    NK: 100,
    D: 32,
    causal: true,
    positions: 'jump',
    rotary: 16,
    xpos: 512,
  },
];

for (const dtype of ['float64', 'float32'] as const) {
  test(`fused attention matches the float64 reference (${dtype})`, () => {
    for (const c of CASES) check(c, dtype, dtype === 'float64' ? 1e-10 : 1e-5);
  });
}

test('every instruction-set path of the kernel agrees with the reference', (t) => {
  const saved = engine.cpuInfo().isa;
  const c = CASES.find((x) => x.name.startsWith('packed docs'))!;
  const c2 = CASES.find((x) => x.name.startsWith('offset 33'))!;
  try {
    for (const isa of cpuIsasOf(process.arch)) {
      engine.limitIsa(isa);
      for (const cc of [c, c2]) {
        check(cc, 'float64', 1e-10);
        check(cc, 'float32', 1e-5);
      }
    }
    t.diagnostic(
      `${cpuIsasOf(process.arch).join(', ')} paths checked (those above the CPU fall back to the best it has)`,
    );
  } finally {
    engine.limitIsa(saved);
  }
});

test('backward split into passes (small dQ accumulator budget) gives the same gradients', () => {
  const c: Case = {
    name: 'passes',
    B: 3,
    H: 4,
    KVH: 2,
    NQ: 200,
    NK: 200,
    D: 32,
    causal: true,
    rotary: 32,
    xpos: 512,
    alibi: true,
    segments: true,
    positions: 'reset',
  };
  // 200 kB: several (batch, KV head) groups per pass; 2 kB: one group and one 64-row query chunk per pass.
  for (const dqAccumulatorBytes of [200_000, 2000]) {
    check(c, 'float64', 1e-10, { dqAccumulatorBytes });
    check(c, 'float32', 1e-5, { dqAccumulatorBytes });
  }
});

test('forward without the shared key cache (keys prepared per tile pair) gives the same results', () => {
  for (const c of CASES.filter((x) => x.rotary || x.keyScale || x.alibi)) {
    check(c, 'float64', 1e-10, { keyCacheBytes: 0 });
    check(c, 'float32', 1e-5, { keyCacheBytes: 0 });
  }
});

test('scratch budgets must be finite byte counts', () => {
  const c = CASES[0]!;
  const inp = makeInputs(c);
  for (const budgets of [{ keyCacheBytes: -1 }, { dqAccumulatorBytes: Number.NaN }, { keyCacheBytes: Infinity }]) {
    assert.throws(
      () => runKernel(c, inp, 'float32', true, 'float32', budgets),
      /attention: (keyCacheBytes|dqAccumulatorBytes) must be a finite number of bytes/,
    );
    freeAll();
  }
});

test('results are bit-identical with 1, 2 and 3 threads, and run to run', () => {
  // Several key tiles per (batch, KV head) group (dQ slots), a key scale (its gradient is summed over
  // groups and slots), passes, and every positional feature.
  const c: Case = {
    name: 'threads',
    B: 2,
    H: 4,
    KVH: 2,
    NQ: 300,
    NK: 300,
    D: 32,
    causal: true,
    keyScale: true,
    rotary: 16,
    xpos: 512,
    alibi: true,
    segments: true,
    positions: 'reset',
  };
  const inp = makeInputs(c);
  const saved = engine.threads();
  try {
    for (const dtype of ['float32', 'float64', 'bfloat16'] as const) {
      for (const budgets of [{}, { dqAccumulatorBytes: 20_000 }]) {
        engine.threads(1);
        const base = runKernel(c, inp, dtype, true, undefined, budgets);
        for (const threads of [2, 3, 3, 2]) {
          engine.threads(threads);
          const got = runKernel(c, inp, dtype, true, undefined, budgets);
          for (const key of ['out', 'lse', 'dq', 'dk', 'dv', 'dks'] as const) {
            assert.deepStrictEqual(
              got[key],
              base[key],
              `${dtype} ${JSON.stringify(budgets)}: ${key} with ${threads} threads differs from 1 thread`,
            );
          }
        }
      }
    }
  } finally {
    engine.threads(saved);
  }
});

test('float64 gradients keep full precision when the saved lse is float32', () => {
  const c = CASES.find((x) => x.name.startsWith('packed docs'))!;
  const inp = makeInputs(c);
  const ref = reference(c, inp, false);
  const got = runKernel(c, inp, 'float64', true, 'float32');
  for (const [name, a, b] of [
    ['dq', got.dq, ref.dq],
    ['dk', got.dk, ref.dk],
    ['dv', got.dv, ref.dv],
    ['dks', got.dks!, ref.dks!],
  ] as const) {
    const e = relErr(a, b);
    assert.ok(e < 1e-10, `${name}: ${e}`);
  }
});

test('bfloat16 inputs follow the float64 reference within bf16 rounding', () => {
  const c = CASES.find((x) => x.name.startsWith('offset 33'))!;
  const inp = roundedInputs(makeInputs(c), 'bfloat16');
  const ref = reference(c, inp, true);
  const got = runKernel(c, inp, 'bfloat16');
  for (const [name, a, b] of [
    ['out', got.out, ref.out],
    ['dq', got.dq, ref.dq],
    ['dk', got.dk, ref.dk],
    ['dv', got.dv, ref.dv],
  ] as const) {
    const e = relErr(a, b);
    assert.ok(e < 1e-2, `bf16 ${name}: ${e}`);
  }
});

test('gradients match central finite differences of the kernel itself (float64)', () => {
  const c: Case = {
    name: 'fd',
    B: 1,
    H: 2,
    KVH: 1,
    NQ: 5,
    NK: 9,
    D: 32,
    causal: true,
    rotary: 16,
    xpos: 64,
    alibi: true,
    keyScale: true,
  };
  const inp = makeInputs(c);
  const g = runKernel(c, inp, 'float64');
  const loss = (x: Inputs): number => {
    const o = runKernel(c, x, 'float64', false).out;
    let s = 0;
    for (let i = 0; i < o.length; i++) s += o[i]! * inp.gout[i]!;
    return s;
  };
  const rand = rng(99);
  const eps = 1e-5;
  for (const key of ['q', 'k', 'v', 'ks'] as const) {
    const base = inp[key]!;
    const dir = randArray(base.length, rand);
    const plus = Float64Array.from(base, (x, i) => x + eps * dir[i]!);
    const minus = Float64Array.from(base, (x, i) => x - eps * dir[i]!);
    const fd = (loss({ ...inp, [key]: plus }) - loss({ ...inp, [key]: minus })) / (2 * eps);
    const grad = { q: g.dq, k: g.dk, v: g.dv, ks: g.dks! }[key];
    let an = 0;
    for (let i = 0; i < base.length; i++) an += grad[i]! * dir[i]!;
    assert.ok(
      Math.abs(fd - an) <= 1e-7 * Math.max(1, Math.abs(an)),
      `${key}: finite difference ${fd} vs gradient ${an}`,
    );
  }
});

test('fully masked rows give output 0, lse −inf and no NaN anywhere', () => {
  const c = CASES.find((x) => x.name === 'fully masked rows')!;
  const inp = makeInputs(c);
  const got = runKernel(c, inp, 'float32');
  for (let h = 0; h < c.H; h++) {
    for (let i = 2; i < c.NQ; i += 5) {
      assert.equal(got.lse[h * c.NQ + i], -Infinity);
      for (let d = 0; d < c.D; d++) assert.equal(got.out[(h * c.NQ + i) * c.D + d], 0);
    }
  }
  for (const a of [got.out, got.dq, got.dk, got.dv]) for (const x of a) assert.ok(!Number.isNaN(x));
});

test('xPos + rotary at 80,000 tokens stays finite and exact (2 heads × 32, forward)', (t) => {
  const n = 80000,
    H = 2,
    D = 32;
  const c: Case = { name: 'long', B: 1, H, KVH: H, NQ: n, NK: n, D, causal: true, rotary: 32, xpos: 512 };
  const rand = rng(7);
  const inp: Inputs = {
    q: randArray(H * n * D, rand),
    k: randArray(H * n * D, rand),
    v: randArray(H * n * D, rand),
    gout: new Float64Array(0),
    ks: null,
    slopes: null,
    invFreq: Float32Array.from({ length: 16 }, (_, i) => 1 / 10000 ** ((2 * i) / 32)),
    qpos: null,
    kpos: null,
    qseg: null,
    kseg: null,
    offset: 0,
    scale: 1 / Math.sqrt(D),
  };
  const q = toDevice(inp.q, 'float32'),
    k = toDevice(inp.k, 'float32'),
    v = toDevice(inp.v, 'float32');
  const out = empty(H * n * D, 'float32'),
    lse = empty(H * n, 'float32');
  const args = argsFor(c, inp, { ks: null, qpos: null, kpos: null, qseg: null, kseg: null });
  const t0 = performance.now();
  engine.attentionForward(q, k, v, out, lse, args);
  const ms = performance.now() - t0;
  const o = fromDevice(out, H * n * D),
    l = fromDevice(lse, H * n);
  freeAll();
  t.diagnostic(`forward at ${n} tokens: ${(ms / 1000).toFixed(2)} s on ${engine.threads()} threads`);
  for (const x of o) assert.ok(Number.isFinite(x));
  for (const x of l) assert.ok(Number.isFinite(x));
  // A few rows against the float64 reference (one row is O(n·D)).
  const q32 = rounded(inp.q, 'float32'),
    k32 = rounded(inp.k, 'float32'),
    v32 = rounded(inp.v, 'float32');
  const zeta = Array.from({ length: 16 }, (_, i) => (2 * i + 0.4 * 32) / (1.4 * 32));
  const rot = (x: Float64Array, p: number) => {
    const y = Float64Array.from(x);
    for (let i = 0; i < 16; i++) {
      const a = Math.fround(p * inp.invFreq![i]!),
        co = Math.cos(a),
        si = Math.sin(a);
      y[i] = x[i]! * co - x[i + 16]! * si;
      y[i + 16] = x[i + 16]! * co + x[i]! * si;
    }
    return y;
  };
  for (const [h, i] of [
    [0, 0],
    [1, 777],
    [0, 40001],
    [1, n - 1],
  ] as const) {
    const qr = rot(q32.slice((h * n + i) * D, (h * n + i + 1) * D), i);
    const s = new Float64Array(i + 1);
    let m = -Infinity;
    for (let j = 0; j <= i; j++) {
      const kr = rot(k32.slice((h * n + j) * D, (h * n + j + 1) * D), j);
      let dot = 0;
      for (let d = 0; d < D; d++) dot += qr[d]! * kr[d]! * Math.pow(zeta[d % 16]!, (i - j) / 512);
      s[j] = dot / Math.sqrt(D);
      m = Math.max(m, s[j]!);
    }
    let sum = 0;
    const ref = new Float64Array(D);
    for (let j = 0; j <= i; j++) {
      const p = Math.exp(s[j]! - m);
      sum += p;
      for (let d = 0; d < D; d++) ref[d] += p * v32[(h * n + j) * D + d]!;
    }
    for (let d = 0; d < D; d++) ref[d] /= sum;
    const e = relErr(o.slice((h * n + i) * D, (h * n + i + 1) * D), ref);
    assert.ok(e < 1e-4, `row ${i} of head ${h}: relative error ${e}`);
    assert.ok(Math.abs(l[h * n + i]! - (m + Math.log(sum))) < 1e-4, `lse of row ${i}`);
  }
});
