// The paged KV cache ops on the CPU engine (src/ops/paged.ts; native/cpu/paged_*): pagedAttention against the
// float64 reference attention of each sequence (tests/helpers/attention-reference.ts) over ragged batches that mix
// a 1-token decode, a 5-token verify and 70-token prefill chunks with contexts from 1 to several hundred, block
// sizes 1, 16 and 32, shuffled and non-contiguous block tables with junk past each context, MQA / GQA / MHA, ALiBi
// on some heads, partial rotary with xPos and the key scale, on every instruction-set path; pagedTokenShift +
// pagedTailWrite against the dense token shift of whole sequences fed in pieces; scatterRows; corrupted metadata
// (bad block ids, lengths, query ranges), which the kernels must skip; and the ops' argument checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../src/index.js'; // registers the engines
import { Tensor } from '../../src/tensor/tensor.js';
import type { DType } from '../../src/tensor/dtype.js';
import { getEngine } from '../../src/engine/registry.js';
import type { CpuEngine } from '../../src/engine/cpu.js';
import { cpuIsasOf } from '../../src/engine/cpu-settings.js';
import { noGrad } from '../../src/autograd/grad-mode.js';
import { shiftTokens } from '../../src/ops/fused/token-shift.js';
import { attention } from '../../src/ops/attention.js';
import {
  pagedAttention,
  pagedTailWrite,
  pagedTokenShiftAndTailWrite,
  pagedTokenShift,
  scatterRows,
  type PagedAttentionOptions,
  type PagedBatch,
} from '../../src/ops/paged.js';
import { referenceAttention, relativeError, rng } from '../helpers/attention-reference.js';

const engine = getEngine('cpu') as CpuEngine;

function randArray(n: number, rand: () => number, lo = -1, hi = 1): Float64Array {
  return Float64Array.from({ length: n }, () => lo + (hi - lo) * rand());
}

/** Values as a tensor of `dtype` holds them. */
function stored(values: Float64Array, dtype: DType): Float64Array {
  if (dtype === 'float64') return values;
  const t = Tensor.fromArray(values, [values.length], dtype, 'cpu');
  try {
    return Float64Array.from(t.toArray());
  } finally {
    t.dispose();
  }
}

function shuffled(n: number, rand: () => number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/** Block tables over a shuffled pool: sequence s gets blocks for `lengths[s]` positions, junk in the rest. */
function blockTables(
  lengths: readonly number[],
  blockSize: number,
  spare: number,
  rand: () => number,
): { table: Int32Array; width: number; numBlocks: number } {
  const needed = lengths.map((l) => Math.ceil(l / blockSize));
  const numBlocks = needed.reduce((a, b) => a + b, 0) + spare;
  const width = Math.max(1, ...needed) + 2;
  const order = shuffled(numBlocks, rand);
  const junk = [-1, numBlocks, numBlocks + 7, -2147483648, 2147483647];
  const table = new Int32Array(lengths.length * width);
  let next = 0;
  lengths.forEach((_, s) => {
    for (let i = 0; i < width; i++)
      table[s * width + i] = i < needed[s]! ? order[next++]! : junk[(s + i) % junk.length]!;
  });
  return { table, width, numBlocks };
}

function batchOf(
  queryStart: number[],
  contextLens: number[],
  table: Int32Array,
  width: number,
  blockSize: number,
  bounds: { maxQueryLen?: number; maxContextLen?: number } = {},
): PagedBatch {
  const n = contextLens.length;
  const qLens = contextLens.map((_, s) => queryStart[s + 1]! - queryStart[s]!);
  return {
    queryStart: Tensor.fromArray(queryStart, [n + 1], 'int32', 'cpu'),
    contextLens: Tensor.fromArray(contextLens, [n], 'int32', 'cpu'),
    blockTables: Tensor.fromArray(table, [n, width], 'int32', 'cpu'),
    blockSize,
    maxQueryLen: bounds.maxQueryLen ?? Math.max(0, ...qLens),
    maxContextLen: bounds.maxContextLen ?? Math.max(0, ...contextLens) + 3,
  };
}

function disposeBatch(b: PagedBatch): void {
  b.queryStart.dispose();
  b.contextLens.dispose();
  b.blockTables.dispose();
}

// ---------------------------------------------------------------- pagedAttention against the reference

interface Sequence {
  queries: number;
  context: number;
}
interface AttentionCase {
  name: string;
  seqs: Sequence[];
  H: number;
  KVH: number;
  D: number;
  blockSize: number;
  rotary?: number;
  xpos?: number;
  alibi?: boolean;
  keyScale?: boolean;
}

/** One case's inputs on the host (as stored in `dtype`) and in tensors. */
interface Built {
  q: Tensor;
  keyPool: Tensor;
  valuePool: Tensor;
  batch: PagedBatch;
  options: PagedAttentionOptions;
  keyScale: Tensor | null;
  /** Per sequence: q [H, qLen, D], k / v [KVH, L, D]. */
  host: { q: Float64Array; k: Float64Array; v: Float64Array }[];
  queryStart: number[];
  table: Int32Array;
  width: number;
  numBlocks: number;
  ks: Float64Array | null;
  slopes: Float32Array | null;
  invFreq: Float32Array | null;
}

function build(c: AttentionCase, dtype: DType, seed: number): Built {
  const rand = rng(seed);
  const { H, KVH, D, blockSize } = c;
  const lengths = c.seqs.map((s) => s.context);
  const { table, width, numBlocks } = blockTables(lengths, blockSize, 3, rand);
  const queryStart = [0];
  for (const s of c.seqs) queryStart.push(queryStart.at(-1)! + s.queries);
  const T = queryStart.at(-1)!;
  // Pool rows no sequence owns hold large values: a read of the wrong row shows in the result.
  const kPool = randArray(numBlocks * blockSize * KVH * D, rand, 40, 60);
  const vPool = randArray(numBlocks * blockSize * KVH * D, rand, 40, 60);
  const qAll = new Float64Array(T * H * D);
  const host = c.seqs.map((s, si) => {
    const q = stored(randArray(H * s.queries * D, rand), dtype);
    const k = stored(randArray(KVH * s.context * D, rand), dtype);
    const v = stored(randArray(KVH * s.context * D, rand), dtype);
    for (let g = 0; g < KVH; g++) {
      for (let j = 0; j < s.context; j++) {
        const row = table[si * width + Math.floor(j / blockSize)]! * blockSize + (j % blockSize);
        for (let d = 0; d < D; d++) {
          kPool[(row * KVH + g) * D + d] = k[(g * s.context + j) * D + d]!;
          vPool[(row * KVH + g) * D + d] = v[(g * s.context + j) * D + d]!;
        }
      }
    }
    for (let h = 0; h < H; h++)
      for (let i = 0; i < s.queries; i++)
        for (let d = 0; d < D; d++) qAll[((queryStart[si]! + i) * H + h) * D + d] = q[(h * s.queries + i) * D + d]!;
    return { q, k, v };
  });
  const ks = c.keyScale ? Float64Array.from(randArray(H * D, rand, 0.5, 1.5), Math.fround) : null;
  const slopes = c.alibi ? Float32Array.from({ length: H }, (_, h) => (h % 2 === 0 ? 0 : 2 ** -(h + 1))) : null;
  const invFreq = c.rotary
    ? Float32Array.from({ length: c.rotary / 2 }, (_, i) => 10000 ** ((-2 * i) / c.rotary!))
    : null;
  const keyScale = ks ? Tensor.fromArray(ks, [H, D], 'float32', 'cpu') : null;
  return {
    q: Tensor.fromArray(qAll, [T, H, D], dtype, 'cpu'),
    keyPool: Tensor.fromArray(kPool, [numBlocks, blockSize, KVH, D], dtype, 'cpu'),
    valuePool: Tensor.fromArray(vPool, [numBlocks, blockSize, KVH, D], dtype, 'cpu'),
    batch: batchOf(queryStart, lengths, table, width, blockSize),
    options: {
      scale: 1 / Math.sqrt(D),
      keyScale,
      rotary: c.rotary ? { dim: c.rotary, invFreq: invFreq!, xposScaleBase: c.xpos ?? 0 } : null,
      alibiSlopes: slopes,
    },
    keyScale,
    host,
    queryStart,
    table,
    width,
    numBlocks,
    ks,
    slopes,
    invFreq,
  };
}

function disposeBuilt(b: Built): void {
  for (const t of [b.q, b.keyPool, b.valuePool, b.keyScale]) t?.dispose();
  disposeBatch(b.batch);
}

/**
 * The reference output of sequence s ([qLen, H, D] rows, as pagedAttention lays them out); keys for which `hidden`
 * is true are masked (they stand for keys the kernel must skip).
 */
function referenceRows(c: AttentionCase, b: Built, s: number, dtype: DType, hidden?: (j: number) => boolean) {
  const { H, KVH, D } = c;
  const { queries: NQ, context: NK } = c.seqs[s]!;
  const r = referenceAttention(
    { B: 1, H, KVH, NQ, NK, D, causal: true, rotary: c.rotary ?? 0, xpos: c.xpos ?? 0 },
    {
      ...b.host[s]!,
      gout: new Float64Array(H * NQ * D),
      ks: b.ks,
      slopes: b.slopes,
      invFreq: b.invFreq,
      qpos: null,
      kpos: null,
      qseg: hidden ? new Int32Array(NQ) : null,
      kseg: hidden ? Int32Array.from({ length: NK }, (_, j) => (hidden(j) ? 1 : 0)) : null,
      offset: NK - NQ,
      scale: b.options.scale,
    },
    { float32Angles: dtype !== 'float64' },
  );
  const rows = new Float64Array(NQ * H * D);
  for (let i = 0; i < NQ; i++)
    for (let h = 0; h < H; h++) for (let d = 0; d < D; d++) rows[(i * H + h) * D + d] = r.out[(h * NQ + i) * D + d]!;
  return rows;
}

function referenceAll(c: AttentionCase, b: Built, dtype: DType): Float64Array {
  const out = new Float64Array(b.q.size);
  c.seqs.forEach((_, s) => out.set(referenceRows(c, b, s, dtype), b.queryStart[s]! * c.H * c.D));
  return out;
}

function run(b: Built): Float64Array {
  const out = noGrad(() => pagedAttention(b.q, b.keyPool, b.valuePool, b.batch, b.options));
  try {
    return Float64Array.from(out.toArray());
  } finally {
    out.dispose();
  }
}

const CASES: AttentionCase[] = [
  {
    name: 'decode + verify + prefill chunks, MHA, block 16',
    seqs: [
      { queries: 1, context: 300 },
      { queries: 5, context: 37 },
      { queries: 70, context: 70 },
      { queries: 70, context: 451 },
    ],
    H: 4,
    KVH: 4,
    D: 32,
    blockSize: 16,
  },
  {
    name: 'MQA, block 1, partial rotary with xPos, key scale',
    seqs: [
      { queries: 1, context: 1 },
      { queries: 5, context: 5 },
      { queries: 70, context: 203 },
      { queries: 1, context: 96 },
    ],
    H: 4,
    KVH: 1,
    D: 16,
    blockSize: 1,
    rotary: 8,
    xpos: 512,
    keyScale: true,
  },
  {
    name: 'GQA, block 32, ALiBi on some heads, full rotary, head dim 24',
    seqs: [
      { queries: 1, context: 513 },
      { queries: 70, context: 140 },
      { queries: 5, context: 33 },
    ],
    H: 8,
    KVH: 2,
    D: 24,
    blockSize: 32,
    rotary: 24,
    alibi: true,
  },
  {
    name: 'GQA with key scale, ALiBi, rotary and a small xPos base (query chunks cut short)',
    seqs: [
      { queries: 70, context: 300 },
      { queries: 0, context: 12 },
      { queries: 5, context: 9 },
      { queries: 1, context: 700 },
    ],
    H: 6,
    KVH: 3,
    D: 20,
    blockSize: 16,
    rotary: 12,
    xpos: 2,
    alibi: true,
    keyScale: true,
  },
];

const TOLERANCE: Record<string, number> = { float64: 1e-12, float32: 1e-5, bfloat16: 1e-2 };

for (const dtype of ['float64', 'float32', 'bfloat16'] as const) {
  test(`pagedAttention matches the float64 reference per sequence (${dtype}, every instruction set)`, (t) => {
    const saved = engine.cpuInfo().isa;
    let worst = 0;
    try {
      CASES.forEach((c, ci) => {
        const b = build(c, dtype, 100 + ci);
        try {
          const ref = referenceAll(c, b, dtype);
          for (const isa of cpuIsasOf(process.arch)) {
            engine.limitIsa(isa);
            const err = relativeError(run(b), ref);
            assert.ok(err < TOLERANCE[dtype]!, `${c.name}, ${dtype}, ${engine.cpuInfo().isa}: relative error ${err}`);
            worst = Math.max(worst, err);
          }
        } finally {
          disposeBuilt(b);
        }
      });
      t.diagnostic(`largest relative error ${worst.toExponential(2)}; paths up to ${engine.cpuInfo().cpuIsa} checked`);
    } finally {
      engine.limitIsa(saved);
    }
  });
}

// A sliding window and the logit soft-cap against the dense `attention` op (its reference composition: a −∞ window
// mask and cap · tanh(score / cap) before ALiBi), per sequence, in float64, under every instruction set.
test('pagedAttention with a sliding window and a logit soft-cap matches the dense attention op', () => {
  const saved = engine.cpuInfo().isa;
  try {
    CASES.forEach((c, ci) => {
      const b = build(c, 'float64', 200 + ci);
      try {
        for (const [window, softCap] of [
          [1, null],
          [5, null],
          [70, 2.5],
          [null, 0.7],
          [1000, null],
        ] as [number | null, number | null][]) {
          // The dense op takes a key scale with one KV head or one per query head only.
          const keyScale = c.KVH === 1 || c.KVH === c.H ? b.keyScale : null;
          const want = new Float64Array(b.q.size);
          c.seqs.forEach((seq, s) => {
            if (seq.queries === 0) return;
            const host = b.host[s]!;
            const out = noGrad(() =>
              attention(
                Tensor.fromArray(host.q, [1, c.H, seq.queries, c.D], 'float64', 'cpu'),
                Tensor.fromArray(host.k, [1, c.KVH, seq.context, c.D], 'float64', 'cpu'),
                Tensor.fromArray(host.v, [1, c.KVH, seq.context, c.D], 'float64', 'cpu'),
                {
                  scale: b.options.scale,
                  causal: true,
                  queryOffset: seq.context - seq.queries,
                  keyScale: keyScale ? keyScale.to('float64') : null,
                  rotary: b.options.rotary,
                  alibiSlopes: b.slopes,
                  window,
                  softCap,
                },
              ),
            );
            const rows = out.toArray();
            for (let i = 0; i < seq.queries; i++)
              for (let h = 0; h < c.H; h++)
                for (let d = 0; d < c.D; d++)
                  want[((b.queryStart[s]! + i) * c.H + h) * c.D + d] = rows[(h * seq.queries + i) * c.D + d]!;
            out.dispose();
          });
          for (const isa of cpuIsasOf(process.arch)) {
            engine.limitIsa(isa);
            const got = noGrad(() =>
              pagedAttention(b.q, b.keyPool, b.valuePool, b.batch, { ...b.options, keyScale, window, softCap }),
            );
            const err = relativeError(Float64Array.from(got.toArray()), want);
            got.dispose();
            assert.ok(err < 1e-10, `${c.name}, window ${window}, soft-cap ${softCap}, ${isa}: relative error ${err}`);
          }
        }
      } finally {
        disposeBuilt(b);
      }
    });
  } finally {
    engine.limitIsa(saved);
  }
});

test('pagedAttention gives the same bits with 1, 2 and 3 threads', () => {
  const before = engine.threads();
  const b = build(CASES[3]!, 'float32', 7);
  try {
    const runs = [1, 2, 3].map((n) => {
      engine.threads(n);
      return run(b);
    });
    assert.deepEqual(runs[1], runs[0]);
    assert.deepEqual(runs[2], runs[0]);
  } finally {
    engine.threads(before);
    disposeBuilt(b);
  }
});

test('pagedAttention reads a key scale kept in bfloat16 as the same values in float32: the same bits', () => {
  // The keyScale case; its scale rounded to bf16 first, so both forms hold the same numbers.
  const c = CASES.find((x) => x.keyScale)!;
  const b = build(c, 'bfloat16', 11);
  const inBf16 = b.keyScale!.to('bfloat16');
  const inFloat32 = inBf16.to('float32');
  try {
    const withBf16 = noGrad(() =>
      pagedAttention(b.q, b.keyPool, b.valuePool, b.batch, { ...b.options, keyScale: inBf16 }),
    );
    const withF32 = noGrad(() =>
      pagedAttention(b.q, b.keyPool, b.valuePool, b.batch, { ...b.options, keyScale: inFloat32 }),
    );
    assert.deepEqual(Array.from(withBf16.toArray()), Array.from(withF32.toArray()));
    for (const t of [withBf16, withF32]) t.dispose();
  } finally {
    for (const t of [inBf16, inFloat32]) t.dispose();
    disposeBuilt(b);
  }
});

test('pagedAttention stays finite with xPos at 20,000 positions (relative factors)', () => {
  const c: AttentionCase = {
    name: 'long xPos',
    seqs: [
      { queries: 1, context: 20000 },
      { queries: 3, context: 4000 },
    ],
    H: 2,
    KVH: 1,
    D: 16,
    blockSize: 32,
    rotary: 16,
    xpos: 512,
  };
  for (const dtype of ['float32', 'float64'] as const) {
    const b = build(c, dtype, 11);
    try {
      const err = relativeError(run(b), referenceAll(c, b, dtype));
      assert.ok(err < TOLERANCE[dtype]!, `${dtype}: relative error ${err}`);
    } finally {
      disposeBuilt(b);
    }
  }
});

// ---------------------------------------------------------------- corrupted metadata

test('pagedAttention skips block ids outside the pool and sequences whose metadata is unusable', () => {
  const c: AttentionCase = {
    name: 'corrupted',
    seqs: [
      { queries: 5, context: 60 },
      { queries: 1, context: 20 },
      { queries: 3, context: 30 },
      { queries: 2, context: 10 },
      { queries: 4, context: 40 },
    ],
    H: 2,
    KVH: 1,
    D: 16,
    blockSize: 16,
    rotary: 8,
    xpos: 512,
    alibi: true,
  };
  for (const dtype of ['float64', 'float32'] as const) {
    const b = build(c, dtype, 21);
    const { width, numBlocks, table, queryStart } = b;
    // Sequence 0: its second and fourth blocks point outside the pool (their keys are skipped).
    const bad = Int32Array.from(table);
    bad[1] = numBlocks;
    bad[3] = -7;
    // Sequence 1: a context longer than its table row; 2: longer than maxContextLen (60); 3: usable; 4: query
    // rows past the end of q.
    const contexts = [60, width * 16 + 1, 61, 10, 40];
    const starts = [...queryStart];
    starts[5] = b.q.shape[0]! + 3;
    const batch = batchOf(starts, contexts, bad, width, 16, { maxQueryLen: 5, maxContextLen: 60 });
    const slice = (out: Float64Array, s: number) =>
      out.subarray(queryStart[s]! * c.H * c.D, queryStart[s + 1]! * c.H * c.D);
    try {
      const got = run({ ...b, batch });
      const skipped = (j: number) => Math.floor(j / 16) === 1 || Math.floor(j / 16) === 3;
      const err0 = relativeError(slice(got, 0), referenceRows(c, b, 0, dtype, skipped));
      assert.ok(err0 < TOLERANCE[dtype]!, `${dtype}: sequence 0 with two blocks outside the pool: error ${err0}`);
      for (const s of [1, 2, 4])
        assert.ok(
          slice(got, s).every((v) => v === 0),
          `${dtype}: sequence ${s} must be skipped`,
        );
      const err3 = relativeError(slice(got, 3), referenceRows(c, b, 3, dtype));
      assert.ok(err3 < TOLERANCE[dtype]!, `${dtype}: sequence 3: error ${err3}`);
      // everyRowOwned (an engine step's promise) skips the zeroing: the usable sequences' rows are the same bits;
      // the skipped ones' rows are unspecified (here: whatever the allocator's block held).
      const owned = run({ ...b, batch, options: { ...b.options, everyRowOwned: true } });
      for (const s of [0, 3])
        assert.deepEqual(slice(owned, s), slice(got, s), `${dtype}: everyRowOwned, sequence ${s}`);

      // maxQueryLen 2 leaves out sequence 0's 5 rows and keeps sequence 3's 2; a negative context leaves out 3.
      const tight = run({ ...b, batch: { ...batch, maxQueryLen: 2 } });
      assert.ok(
        slice(tight, 0).every((v) => v === 0),
        `${dtype}: 5 rows over maxQueryLen 2 must be skipped`,
      );
      assert.ok(relativeError(slice(tight, 3), referenceRows(c, b, 3, dtype)) < TOLERANCE[dtype]!);
      const negative = batchOf(starts, [60, 1, 1, -4, 40], bad, width, 16);
      try {
        assert.ok(
          slice(run({ ...b, batch: negative }), 3).every((v) => v === 0),
          'a negative context is skipped',
        );
      } finally {
        disposeBatch(negative);
      }

      // On the engine, rows of skipped sequences are left as they were.
      const out = Tensor.fromArray(new Float64Array(b.q.size).fill(7), b.q.shape, dtype, 'cpu');
      try {
        const args = {
          numSeqs: 5,
          blockSize: 16,
          numBlocks,
          maxBlocksPerSeq: width,
          maxQueryLen: 5,
          maxContextLen: 60,
          queryStart: batch.queryStart.dense(),
          contextLens: batch.contextLens.dense(),
          blockTables: batch.blockTables.dense(),
          heads: c.H,
          kvHeads: c.KVH,
          headDim: c.D,
          scale: b.options.scale,
          alibiSlopes: b.slopes,
          rotaryDim: 8,
          rotaryInvFreq: b.invFreq,
          xposScaleBase: 512,
          keyScale: null,
          window: 0,
          softCap: 0,
        };
        engine.pagedAttention(b.q.dense(), b.keyPool.dense(), b.valuePool.dense(), out.dense(), b.q.shape[0]!, args);
        const raw = Float64Array.from(out.toArray());
        for (const s of [1, 2, 4])
          assert.ok(
            slice(raw, s).every((v) => v === 7),
            `${dtype}: sequence ${s} untouched`,
          );
        assert.ok(relativeError(slice(raw, 3), referenceRows(c, b, 3, dtype)) < TOLERANCE[dtype]!);
      } finally {
        out.dispose();
      }
    } finally {
      disposeBatch(batch);
      disposeBuilt(b);
    }
  }
});

// ---------------------------------------------------------------- token shift through the tails

/**
 * Feeds sequences to pagedTokenShift + pagedTailWrite (or, `fused`, pagedTokenShiftAndTailWrite) in pieces
 * (pieces[s]: the sizes of sequence s's steps; a sequence sits out the steps after its last piece) and compares
 * every shifted row with `shiftTokens` of the whole sequence.
 */
function checkTokenShift(
  dtype: DType,
  shifts: number,
  ring: number,
  blockSize: number,
  pieces: number[][],
  dim: number,
  seed: number,
  fused = false,
): void {
  const rand = rng(seed);
  const lengths = pieces.map((p) => p.reduce((a, b) => a + b, 0));
  const { table, width, numBlocks } = blockTables(lengths, blockSize, 2, rand);
  const whole = lengths.map((n) => stored(randArray(n * dim, rand), dtype));
  const expected = whole.map((x, s) => {
    const t = Tensor.fromArray(x, [1, lengths[s]!, dim], dtype, 'cpu');
    const shifted = shiftTokens(t, shifts);
    try {
      return Float64Array.from(shifted.toArray());
    } finally {
      if (shifted !== t) shifted.dispose();
      t.dispose();
    }
  });
  // Tail slots never written hold large values: a read of one shows in the result.
  const tails = Tensor.fromArray(
    randArray(numBlocks * ring * dim, rand, 1e3, 2e3),
    [numBlocks, ring, dim],
    dtype,
    'cpu',
  );
  const done = lengths.map(() => 0);
  try {
    for (let step = 0; pieces.some((p) => step < p.length); step++) {
      const queryStart = [0];
      const contexts: number[] = [];
      const rows: number[] = [];
      pieces.forEach((p, s) => {
        const n = step < p.length ? p[step]! : 0;
        for (let i = 0; i < n; i++) rows.push(...whole[s]!.subarray((done[s]! + i) * dim, (done[s]! + i + 1) * dim));
        queryStart.push(queryStart.at(-1)! + n);
        contexts.push(done[s]! + n);
      });
      const T = queryStart.at(-1)!;
      const x = Tensor.fromArray(rows, [T, dim], dtype, 'cpu');
      const batch = batchOf(queryStart, contexts, table, width, blockSize);
      try {
        const out = noGrad(() =>
          fused ? pagedTokenShiftAndTailWrite(x, tails, batch, shifts) : pagedTokenShift(x, tails, batch, shifts),
        );
        const got = Float64Array.from(out.toArray());
        out.dispose();
        pieces.forEach((_, s) => {
          const n = queryStart[s + 1]! - queryStart[s]!;
          const want = expected[s]!.subarray(done[s]! * dim, (done[s]! + n) * dim);
          const have = got.subarray(queryStart[s]! * dim, queryStart[s + 1]! * dim);
          assert.deepEqual(
            Array.from(have),
            Array.from(want),
            `${dtype}, shifts ${shifts}, ring ${ring}, block ${blockSize}: sequence ${s} at step ${step}`,
          );
        });
        if (!fused) pagedTailWrite(x, tails, batch);
      } finally {
        x.dispose();
        disposeBatch(batch);
      }
      pieces.forEach((p, s) => (done[s]! += step < p.length ? p[step]! : 0));
    }
  } finally {
    tails.dispose();
  }
}

const PIECES = [[5, 1, 1, 1, 7, 8, 1], [1, 1, 16, 3, 1, 1, 1, 1, 9, 6], [9], [2, 40, 1]];

for (const dtype of ['float64', 'float32', 'bfloat16'] as const) {
  test(`pagedTokenShift + pagedTailWrite give the dense token shift of sequences fed in pieces (${dtype})`, () => {
    let seed = 300;
    for (const shifts of [1, 2])
      for (const extra of [0, 2])
        for (const blockSize of [1, 4, 16])
          checkTokenShift(dtype, shifts, shifts + extra, blockSize, PIECES, 11, seed++);
  });
}

test('pagedTokenShiftAndTailWrite gives the same token shift, decode steps included; it refuses ring 0', () => {
  let seed = 400;
  const decodeSteps = [
    [4, 1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 1, 1, 1],
    [9, 1, 1],
  ];
  for (const pieces of [PIECES, decodeSteps])
    for (const shifts of [1, 2])
      for (const extra of [0, 1])
        for (const blockSize of [1, 4])
          checkTokenShift('float32', shifts, shifts + extra, blockSize, pieces, 11, seed++, true);
  const x = Tensor.fromArray(new Float32Array(4), [1, 4], 'float32', 'cpu');
  const tails = Tensor.fromArray(new Float32Array(0), [1, 0, 4], 'float32', 'cpu');
  const batch = batchOf([0, 1], [1], Int32Array.from([0]), 1, 4);
  try {
    assert.throws(
      () => pagedTokenShiftAndTailWrite(x, tails, batch, 0),
      /must keep at least one row per block, got ring 0/,
    );
  } finally {
    for (const t of [x, tails]) t.dispose();
    disposeBatch(batch);
  }
});

test('pagedTokenShift with shifts 0 copies x; a tail block outside the pool gives zeros', () => {
  checkTokenShift('float32', 0, 1, 4, [[3, 2]], 6, 1);
  const dim = 4;
  const x = Tensor.fromArray([1, 2, 3, 4, 5, 6, 7, 8], [2, dim], 'float32', 'cpu');
  const tails = Tensor.fromArray(new Float32Array(2 * 2 * dim).fill(9), [2, 2, dim], 'float32', 'cpu');
  // One sequence at positions 4, 5 (block size 4): position 3 lies in block table entry 0, which is outside the pool.
  const batch = batchOf([0, 2], [6], Int32Array.from([5, 1]), 2, 4);
  try {
    const out = noGrad(() => pagedTokenShift(x, tails, batch, 1));
    assert.deepEqual(Array.from(out.toArray()), [1, 2, 0, 0, 5, 6, 3, 4]);
    out.dispose();
    // The tails of block 1 receive positions 4 and 5 (ring 2: slots 0 and 1); block table entry 0 is never written.
    pagedTailWrite(x, tails, batch);
    assert.deepEqual(Array.from(tails.toArray()), [9, 9, 9, 9, 9, 9, 9, 9, 1, 2, 3, 4, 5, 6, 7, 8]);
  } finally {
    for (const t of [x, tails]) t.dispose();
    disposeBatch(batch);
  }
});

test('pagedTailWrite keeps the latest position where rows of a step share a slot', () => {
  const dim = 2;
  // Positions 0..4 in one block of 8, ring 2: slot 0 ends with position 4, slot 1 with position 3.
  const x = Tensor.fromArray([0, 0, 1, 1, 2, 2, 3, 3, 4, 4], [5, dim], 'float64', 'cpu');
  const tails = Tensor.fromArray(new Float64Array(2 * dim).fill(-1), [1, 2, dim], 'float64', 'cpu');
  const batch = batchOf([0, 5], [5], Int32Array.from([0]), 1, 8);
  try {
    pagedTailWrite(x, tails, batch);
    assert.deepEqual(Array.from(tails.toArray()), [4, 4, 3, 3]);
  } finally {
    for (const t of [x, tails]) t.dispose();
    disposeBatch(batch);
  }
});

// ---------------------------------------------------------------- scatterRows

test('scatterRows writes rows at their indices and skips indices outside dst', () => {
  for (const dtype of ['float32', 'float64', 'bfloat16'] as const) {
    const src = Tensor.fromArray(
      Array.from({ length: 5 * 6 }, (_, i) => i + 1),
      [5, 2, 3],
      dtype,
      'cpu',
    );
    const index = Tensor.fromArray([3, -1, 6, 0, 2147483647], [5], 'int32', 'cpu');
    // dst as a pool [numBlocks 3, blockSize 2, 2, 3]: six rows of six.
    const dst = Tensor.fromArray(new Array(36).fill(-5), [3, 2, 2, 3], dtype, 'cpu');
    try {
      scatterRows(src, index, dst);
      const want = new Array(36).fill(-5);
      for (let c = 0; c < 6; c++) {
        want[3 * 6 + c] = 1 + c; // src row 0 → dst row 3
        want[0 * 6 + c] = 19 + c; // src row 3 → dst row 0
      }
      assert.deepEqual(Array.from(dst.toArray()), want, dtype);
    } finally {
      for (const t of [src, index, dst]) t.dispose();
    }
  }
});

test('scatterRows with a repeated index leaves the last source row on the CPU', () => {
  const src = Tensor.fromArray([1, 1, 2, 2, 3, 3], [3, 2], 'float32', 'cpu');
  const index = Tensor.fromArray([1, 1, 0], [3], 'int32', 'cpu');
  const dst = Tensor.fromArray([0, 0, 0, 0], [2, 2], 'float32', 'cpu');
  try {
    scatterRows(src, index, dst);
    assert.deepEqual(Array.from(dst.toArray()), [3, 3, 2, 2]);
  } finally {
    for (const t of [src, index, dst]) t.dispose();
  }
});

// ---------------------------------------------------------------- argument checks

test('the paged ops refuse bad arguments before running, naming them', () => {
  const b = build(CASES[0]!, 'float32', 5);
  const x = Tensor.fromArray(new Float32Array(b.q.shape[0]! * 8), [b.q.shape[0]!, 8], 'float32', 'cpu');
  const tails = Tensor.fromArray(new Float32Array(b.numBlocks * 2 * 8), [b.numBlocks, 2, 8], 'float32', 'cpu');
  const q64 = b.q.to('float64');
  const floatStarts = Tensor.fromArray([0, 1, 6, 76, 146], [5], 'float32', 'cpu');
  try {
    const attend = (over: Partial<Parameters<typeof pagedAttention>>) => () =>
      noGrad(() =>
        pagedAttention(
          over[0] ?? b.q,
          over[1] ?? b.keyPool,
          over[2] ?? b.valuePool,
          over[3] ?? b.batch,
          over[4] ?? b.options,
        ),
      );
    assert.throws(attend([b.q.reshape([b.q.size])]), /q must be \[T, heads, headDim\]/);
    assert.throws(attend([q64]), /dtype mismatch: 'q' is float64/);
    assert.throws(attend([undefined, b.keyPool.reshape([b.numBlocks, 16, 4 * 32])]), /keyPool must be/);
    assert.throws(attend([undefined, undefined, b.keyPool.narrow(0, 0, 1)]), /valuePool .* must match keyPool/);
    assert.throws(attend([undefined, undefined, undefined, { ...b.batch, blockSize: 32 }]), /batch.blockSize 32/);
    assert.throws(attend([undefined, undefined, undefined, { ...b.batch, blockSize: 12 }]), /batch.blockSize/);
    assert.throws(
      attend([undefined, undefined, undefined, { ...b.batch, queryStart: floatStarts }]),
      /batch.queryStart must be int32/,
    );
    assert.throws(
      attend([undefined, undefined, undefined, { ...b.batch, contextLens: b.batch.queryStart }]),
      /batch.contextLens must be \[4\]/,
    );
    assert.throws(attend([undefined, undefined, undefined, { ...b.batch, maxQueryLen: -1 }]), /batch.maxQueryLen/);
    assert.throws(attend([undefined, undefined, undefined, undefined, { scale: NaN }]), /scale NaN/);
    assert.throws(
      attend([undefined, undefined, undefined, undefined, { scale: 1, alibiSlopes: [1, 2] }]),
      /2 ALiBi slopes for 4 heads/,
    );
    assert.throws(
      attend([undefined, undefined, undefined, undefined, { scale: 1, rotary: { dim: 6, invFreq: [1, 2] } }]),
      /rotary needs 3 inverse frequencies/,
    );
    assert.throws(
      attend([undefined, undefined, undefined, undefined, { scale: 1, keyScale: tails }]),
      /keyScale must be \[4, 32\]/,
    );
    // Gradients: refused while enabled on an input that requires them.
    b.q.requiresGrad = true;
    assert.throws(() => pagedAttention(b.q, b.keyPool, b.valuePool, b.batch, b.options), /'q' requires grad/);
    b.q.requiresGrad = false;

    assert.throws(() => pagedTokenShift(x, tails, b.batch, 3), /keep 2 rows per block, fewer than shifts 3/);
    assert.throws(() => pagedTokenShift(x, tails.narrow(2, 0, 4), b.batch, 1), /tails must be \[numBlocks, ring, 8\]/);
    assert.throws(() => pagedTokenShift(x, tails, b.batch, 1.5), /shifts must be an integer/);
    assert.throws(() => pagedTailWrite(x.reshape([x.size]), tails, b.batch), /x must be \[T, dim\]/);
    assert.throws(() => scatterRows(x, b.batch.contextLens, tails), /index has 4 values for the 146 rows/);
    const index = Tensor.fromArray(new Int32Array(146), [146], 'int32', 'cpu');
    try {
      assert.throws(() => scatterRows(x, index, b.q), /rows of 8 elements/);
      assert.throws(() => scatterRows(x, index, q64), /dtype mismatch/);
    } finally {
      index.dispose();
    }
  } finally {
    for (const t of [x, tails, q64, floatStarts]) t.dispose();
    disposeBuilt(b);
  }
});

// ---------------------------------------------------------------- hostile metadata, checked value by value

interface Usable {
  s: number;
  start: number;
  queries: number;
  context: number;
}

/** The sequences the CPU kernels use (Engine.pagedAttention's rules, and no row claimed twice). */
function usableSequences(
  queryStart: Int32Array,
  contextLens: Int32Array,
  rows: number,
  maxQueryLen: number,
  maxContextLen: number,
  tablePositions: number,
): Usable[] {
  const out: Usable[] = [];
  let claimed = 0;
  for (let s = 0; s < contextLens.length; s++) {
    const start = queryStart[s]!,
      end = queryStart[s + 1]!,
      context = contextLens[s]!;
    if (start < claimed || end < start || end > rows) continue;
    const queries = end - start;
    if (queries > maxQueryLen || queries > context || context > maxContextLen || context > tablePositions) continue;
    out.push({ s, start, queries, context });
    claimed = end;
  }
  return out;
}

test('random hostile metadata: the kernels compute exactly what the guards promise and touch nothing else', (t) => {
  const rand = rng(77);
  const seen = { usable: 0, left: 0, skippedKeys: 0, keys: 0 };
  const int = (n: number) => Math.floor(rand() * n);
  const junk = () => [-1, -2147483648, 2147483647, 1 << 20, -(1 << 20)][int(5)]!;
  for (let iteration = 0; iteration < 100; iteration++) {
    const numSeqs = 1 + int(4),
      blockSize = [1, 2, 4, 8][int(4)]!,
      numBlocks = int(7),
      width = int(5);
    const H = [1, 2, 4][int(3)]!,
      KVH = [1, H][int(2)]!,
      D = 1 + int(9),
      dim = 1 + int(7),
      shifts = int(3),
      ring = shifts + int(2) + 1;
    const rotary = D >= 2 && rand() < 0.5 ? 2 * (1 + int(Math.floor(D / 2))) : 0;
    // Mostly plausible values, some of them corrupted.
    const maybe = (v: number) => (rand() < 0.15 ? junk() : v);
    const queryStart = new Int32Array(numSeqs + 1);
    for (let s = 1; s <= numSeqs; s++) queryStart[s] = maybe(queryStart[s - 1]! + int(4));
    const T = Math.max(0, ...Array.from(queryStart).filter((v) => Math.abs(v) < 1000)) + int(2);
    const contextLens = Int32Array.from({ length: numSeqs }, () => maybe(int(3 + blockSize * width)));
    const table = Int32Array.from({ length: numSeqs * width }, () => (rand() < 0.15 ? junk() : int(numBlocks + 1)));
    const maxQueryLen = 1 + int(5),
      maxContextLen = 8 + int(40);
    const usable = usableSequences(queryStart, contextLens, T, maxQueryLen, maxContextLen, width * blockSize);
    const blockOf = (s: number, p: number) => {
      const b = table[s * width + Math.floor(p / blockSize)]!;
      return b >= 0 && b < numBlocks ? b : -1;
    };
    seen.usable += usable.length;
    seen.left += numSeqs - usable.length;
    for (const u of usable)
      for (let j = 0; j < u.context; j++) {
        seen.keys++;
        if (blockOf(u.s, j) < 0) seen.skippedKeys++;
      }

    const qHost = randArray(T * H * D, rand);
    const kHost = randArray(numBlocks * blockSize * KVH * D, rand);
    const vHost = randArray(numBlocks * blockSize * KVH * D, rand);
    const xHost = randArray(T * dim, rand);
    const tailsHost = randArray(numBlocks * ring * dim, rand);
    const invFreq = rotary ? Float32Array.from({ length: rotary / 2 }, (_, i) => 0.5 ** i) : null;
    const slopes = Float32Array.from({ length: H }, (_, h) => (h % 2 ? 0.25 : 0));
    const tensors = {
      q: Tensor.fromArray(qHost, [T, H, D], 'float64', 'cpu'),
      k: Tensor.fromArray(kHost, [numBlocks * blockSize * KVH * D], 'float64', 'cpu'),
      v: Tensor.fromArray(vHost, [numBlocks * blockSize * KVH * D], 'float64', 'cpu'),
      out: Tensor.fromArray(new Float64Array(T * H * D).fill(7), [T * H * D], 'float64', 'cpu'),
      x: Tensor.fromArray(xHost, [T * dim], 'float64', 'cpu'),
      shifted: Tensor.fromArray(new Float64Array(T * dim).fill(7), [T * dim], 'float64', 'cpu'),
      tails: Tensor.fromArray(tailsHost, [numBlocks * ring * dim], 'float64', 'cpu'),
      queryStart: Tensor.fromArray(queryStart, [numSeqs + 1], 'int32', 'cpu'),
      contextLens: Tensor.fromArray(contextLens, [numSeqs], 'int32', 'cpu'),
      blockTables: Tensor.fromArray(table, [numSeqs * width], 'int32', 'cpu'),
    };
    const label = `iteration ${iteration}`;
    try {
      const batch = {
        numSeqs,
        blockSize,
        numBlocks,
        maxBlocksPerSeq: width,
        maxQueryLen,
        maxContextLen,
        queryStart: tensors.queryStart.dense(),
        contextLens: tensors.contextLens.dense(),
        blockTables: tensors.blockTables.dense(),
      };
      engine.pagedAttention(tensors.q.dense(), tensors.k.dense(), tensors.v.dense(), tensors.out.dense(), T, {
        ...batch,
        heads: H,
        kvHeads: KVH,
        headDim: D,
        scale: 0.5,
        alibiSlopes: slopes,
        rotaryDim: rotary,
        rotaryInvFreq: invFreq,
        xposScaleBase: rotary ? 64 : 0,
        keyScale: null,
        window: 0,
        softCap: 0,
      });
      // Odd iterations take the two ops in one call: the same results.
      const shiftArgs = [tensors.x.dense(), tensors.tails.dense(), tensors.shifted.dense(), T, dim, shifts] as const;
      if (iteration % 2) engine.pagedTokenShiftAndTailWrite(...shiftArgs, ring, batch);
      else {
        engine.pagedTokenShift(...shiftArgs, ring, batch);
        engine.pagedTailWrite(tensors.x.dense(), tensors.tails.dense(), T, dim, ring, batch);
      }

      // Attention: the usable sequences' rows as the reference with the skipped keys hidden, the rest untouched.
      const want = new Float64Array(T * H * D).fill(7);
      for (const u of usable) {
        const kS = new Float64Array(KVH * u.context * D),
          vS = new Float64Array(KVH * u.context * D),
          qS = new Float64Array(H * u.queries * D);
        for (let j = 0; j < u.context; j++) {
          const b = blockOf(u.s, j);
          if (b < 0) continue;
          const row = b * blockSize + (j % blockSize);
          for (let g = 0; g < KVH; g++)
            for (let d = 0; d < D; d++) {
              kS[(g * u.context + j) * D + d] = kHost[(row * KVH + g) * D + d]!;
              vS[(g * u.context + j) * D + d] = vHost[(row * KVH + g) * D + d]!;
            }
        }
        for (let i = 0; i < u.queries; i++)
          for (let h = 0; h < H; h++)
            for (let d = 0; d < D; d++) qS[(h * u.queries + i) * D + d] = qHost[((u.start + i) * H + h) * D + d]!;
        const r = referenceAttention(
          { B: 1, H, KVH, NQ: u.queries, NK: u.context, D, causal: true, rotary, xpos: rotary ? 64 : 0 },
          {
            q: qS,
            k: kS,
            v: vS,
            gout: new Float64Array(qS.length),
            ks: null,
            slopes,
            invFreq,
            qpos: null,
            kpos: null,
            qseg: new Int32Array(u.queries),
            kseg: Int32Array.from({ length: u.context }, (_, j) => (blockOf(u.s, j) < 0 ? 1 : 0)),
            offset: u.context - u.queries,
            scale: 0.5,
          },
        );
        for (let i = 0; i < u.queries; i++)
          for (let h = 0; h < H; h++)
            for (let d = 0; d < D; d++) want[((u.start + i) * H + h) * D + d] = r.out[(h * u.queries + i) * D + d]!;
      }
      const got = Float64Array.from(tensors.out.toArray());
      assert.ok(relativeError(got, want) < 1e-12, `${label}: pagedAttention`);
      assert.ok(
        got.every((v, i) => (want[i] === 7) === (v === 7)),
        `${label}: rows outside usable sequences changed`,
      );

      // Token shift and tail writes, by the documented rules.
      const chunk = Math.floor(dim / (shifts + 1));
      const shifted = new Float64Array(T * dim).fill(7);
      const tails = Float64Array.from(tailsHost);
      for (const u of usable) {
        const first = u.context - u.queries;
        for (let i = 0; i < u.queries; i++) {
          const t = u.start + i,
            p = first + i;
          for (let f = 0; f < dim; f++) {
            const k = f < (shifts + 1) * chunk ? Math.floor(f / chunk) : 0;
            const source = p - k;
            let value = 0;
            if (source >= first) value = xHost[(t - k) * dim + f]!;
            else if (source >= 0 && blockOf(u.s, source) >= 0)
              value = tailsHost[(blockOf(u.s, source) * ring + (source % ring)) * dim + f]!;
            shifted[t * dim + f] = value;
          }
        }
      }
      for (const u of usable)
        for (let i = 0; i < u.queries; i++) {
          const p = u.context - u.queries + i,
            b = blockOf(u.s, p);
          if (b >= 0)
            tails.set(xHost.subarray((u.start + i) * dim, (u.start + i + 1) * dim), (b * ring + (p % ring)) * dim);
        }
      assert.deepEqual(Array.from(tensors.shifted.toArray()), Array.from(shifted), `${label}: pagedTokenShift`);
      assert.deepEqual(Array.from(tensors.tails.toArray()), Array.from(tails), `${label}: pagedTailWrite`);
      // Nothing the kernels only read changed.
      assert.deepEqual(Array.from(tensors.k.toArray()), Array.from(kHost), `${label}: keyPool`);
      assert.deepEqual(Array.from(tensors.q.toArray()), Array.from(qHost), `${label}: q`);
    } finally {
      for (const t of Object.values(tensors)) t.dispose();
    }
  }
  t.diagnostic(JSON.stringify(seen));
  // Both sides were exercised: sequences used and left out, keys read and skipped.
  assert.ok(seen.usable >= 30 && seen.left >= 30 && seen.skippedKeys >= 30 && seen.keys - seen.skippedKeys >= 100);
});
