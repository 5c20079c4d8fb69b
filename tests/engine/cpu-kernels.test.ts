// CPU engine kernels against plain references: the blocked GEMM (every micro-kernel this machine can
// run: generic, AVX2, AVX-512) over odd shapes, transposes, leading dimensions, batches and
// alpha/beta for float32, float64, bfloat16 and float16; and the vectorised elementwise and
// row-wise kernels against scalar float64 loops.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, getBackend, CpuBackend, type DType } from '../../src/index.js';
import type { CpuIsa } from '../../src/backend/cpu.js';

const cpu = getBackend('cpu') as CpuBackend;
const ISAS: CpuIsa[] = (['generic', 'avx2', 'avx512'] as const).filter(
  (isa) => ({ generic: 0, avx2: 1, avx512: 2 })[isa] <= ({ generic: 0, avx2: 1, avx512: 2 })[cpu.cpuInfo().cpuIsa],
);
after(() => cpu.limitIsa('avx512'));

/** Deterministic uniform values in [-1, 1). */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return (s / 4294967296) * 2 - 1;
  };
}

/** A tensor holding `values` in `dtype`, and the values as actually stored (rounded to the dtype). */
function upload(values: Float64Array, dtype: DType): { t: Tensor; stored: Float64Array } {
  const t = Tensor.fromArray(values, [values.length], dtype).keep();
  return { t, stored: Float64Array.from(t.toArray()) };
}

interface GemmCase {
  m: number; n: number; k: number;
  transA: boolean; transB: boolean;
  batch?: number;
  /** Broadcast A or B over the batch (batch stride 0). */
  broadcastA?: boolean; broadcastB?: boolean;
  /** Extra columns of padding in each stored row (leading dimension larger than the width). */
  padA?: number; padB?: number; padC?: number;
  alpha?: number; beta?: number;
}

const EPS: Record<string, number> = { float32: 2 ** -24, float64: 2 ** -53, bfloat16: 2 ** -8, float16: 2 ** -11 };

function checkGemm(dtype: DType, c: GemmCase, seed: number): void {
  const { m, n, k, transA, transB } = c;
  const batch = c.batch ?? 1, alpha = c.alpha ?? 1, beta = c.beta ?? 0;
  const padA = c.padA ?? 0, padB = c.padB ?? 0, padC = c.padC ?? 0;
  const rowsA = transA ? k : m, colsA = transA ? m : k, lda = colsA + padA;
  const rowsB = transB ? n : k, colsB = transB ? k : n, ldb = colsB + padB;
  const ldc = n + padC;
  const strideA = c.broadcastA ? 0 : rowsA * lda, strideB = c.broadcastB ? 0 : rowsB * ldb, strideC = m * ldc;
  const r = rng(seed);
  const fill = (count: number) => Float64Array.from({ length: count }, r);
  const A = upload(fill(Math.max(1, (c.broadcastA ? 1 : batch) * rowsA * lda)), dtype);
  const B = upload(fill(Math.max(1, (c.broadcastB ? 1 : batch) * rowsB * ldb)), dtype);
  const C = upload(fill(batch * m * ldc), dtype);
  try {
    cpu.matmul({
      a: A.t.dense(), b: B.t.dense(), c: C.t.dense(), m, n, k, transA, transB, lda, ldb, ldc,
      strideA, strideB, strideC, batch, alpha, beta,
    });
    const got = C.t.toArray();
    const eps = EPS[dtype]!;
    // Accumulation error (float32 accumulators for the half types) plus one rounding of the output.
    const accEps = dtype === 'float64' ? 2 ** -53 : 2 ** -24;
    for (let bi = 0; bi < batch; bi++) {
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < ldc; j++) {
          const idx = bi * strideC + i * ldc + j;
          const c0 = C.stored[idx]!;
          if (j >= n) {  // padding past the width is never written
            assert.equal(got[idx], c0, `${dtype} gemm wrote C padding at [${bi}, ${i}, ${j}]`);
            continue;
          }
          let dot = 0, mag = 0;
          for (let p = 0; p < k; p++) {
            const a = A.stored[bi * strideA + (transA ? p * lda + i : i * lda + p)]!;
            const b = B.stored[bi * strideB + (transB ? j * ldb + p : p * ldb + j)]!;
            dot += a * b;
            mag += Math.abs(a * b);
          }
          const want = alpha * dot + (beta === 0 ? 0 : beta * c0);
          const scale = Math.abs(alpha) * mag + Math.abs(beta * c0);
          const tol = (2 * k + 4) * accEps * scale + eps * Math.abs(want) + 1e-30;
          const err = Math.abs(got[idx]! - want);
          if (!(err <= tol)) {
            assert.fail(`${dtype} gemm ${JSON.stringify(c)} [${bi}, ${i}, ${j}]: got ${got[idx]}, want ${want} (error ${err.toExponential(2)} > ${tol.toExponential(2)})`);
          }
        }
      }
    }
  } finally {
    A.t.dispose(); B.t.dispose(); C.t.dispose();
  }
}

/** Shapes covering edge tiles of every micro-kernel (MR ∈ {4, 6, 8, 12}, NR ∈ {4, 8, 16, 32}), K and N
 *  blocking (kc 128/256, nc 256/1024), and the model's shapes scaled down. */
function gemmCases(small: boolean): GemmCase[] {
  const cases: GemmCase[] = [];
  const shapes: [number, number, number][] = small
    ? [[1, 1, 1], [7, 5, 3], [13, 33, 17], [9, 31, 64], [33, 17, 40]]
    : [[1, 1, 1], [1, 37, 5], [29, 1, 7], [7, 5, 3], [13, 33, 17], [65, 31, 129], [17, 70, 300], [130, 40, 24], [5, 1030, 9], [48, 64, 33]];
  let t = 0;
  for (const [m, n, k] of shapes) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        t++;
        cases.push({ m, n, k, transA, transB, padA: t % 3, padB: (t + 1) % 4, padC: t % 2 ? 3 : 0, alpha: t % 4 === 0 ? -0.5 : 1, beta: t % 3 === 0 ? 0.75 : 0 });
      }
    }
  }
  cases.push({ m: 19, n: 23, k: 11, transA: false, transB: true, batch: 3 });
  cases.push({ m: 9, n: 40, k: 21, transA: true, transB: false, batch: 4, broadcastB: true, beta: 1 });
  cases.push({ m: 33, n: 8, k: 16, transA: false, transB: false, batch: 5, broadcastA: true, alpha: 2 });
  cases.push({ m: 3, n: 3, k: 0, transA: false, transB: false, beta: 0.5 });
  cases.push({ m: 3, n: 3, k: 0, transA: false, transB: false, beta: 0 });
  return cases;
}

for (const isa of ISAS) {
  test(`gemm float32 matches a float64 reference (${isa} micro-kernel)`, () => {
    assert.equal(cpu.limitIsa(isa), isa);
    gemmCases(false).forEach((c, i) => checkGemm('float32', c, 100 + i));
  });
  test(`gemm float64 matches a float64 reference (${isa} micro-kernel)`, () => {
    cpu.limitIsa(isa);
    gemmCases(false).forEach((c, i) => checkGemm('float64', c, 200 + i));
  });
  test(`gemm bfloat16 and float16 match a float64 reference (${isa} micro-kernel)`, () => {
    cpu.limitIsa(isa);
    gemmCases(true).forEach((c, i) => checkGemm('bfloat16', c, 300 + i));
    gemmCases(true).forEach((c, i) => checkGemm('float16', c, 400 + i));
    cpu.limitIsa('avx512');
  });
}

test('gemm: large multithreaded shapes (model-sized, team and batch splits) match the reference', () => {
  cpu.limitIsa('avx512');
  // One GEMM split across threads (rows), one split by columns (few rows), a batch that divides
  // evenly and one that does not, and K > kc with beta accumulation.
  checkGemm('float32', { m: 300, n: 96, k: 70, transA: false, transB: true }, 7);
  checkGemm('float32', { m: 6, n: 700, k: 50, transA: false, transB: false }, 8);
  checkGemm('float32', { m: 40, n: 64, k: 32, transA: false, transB: true, batch: 4 }, 9);
  checkGemm('float32', { m: 40, n: 64, k: 32, transA: true, transB: false, batch: 3, beta: 0.5 }, 10);
  checkGemm('float32', { m: 64, n: 48, k: 600, transA: true, transB: false, beta: 1, alpha: 0.25 }, 11);
  checkGemm('bfloat16', { m: 70, n: 50, k: 400, transA: false, transB: true }, 12);
});
