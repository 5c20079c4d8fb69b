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
import { noGrad } from '../../src/autograd/grad-mode.js';
import { shiftTokens } from '../../src/ops/fused/token-shift.js';
import {
  pagedAttention,
  pagedTailWrite,
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

/** Block tables over a shuffled pool: sequence s gets blocks for `lengths[s]` positions, junk in the rest of its row. */
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
          for (const isa of ['generic', 'avx2', 'avx512'] as const) {
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
