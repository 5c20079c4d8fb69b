// One-row GEMMs (batch-1 decoding's every linear layer) take their own micro-kernel on the CPU: they must
// match a float64 reference, give the same bits as that row computed inside a larger GEMM, and the same bits
// at any thread count, for every instruction set this machine can run.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, getEngine, CpuEngine, type DType } from '../../src/index.js';
import { cpuIsasOf } from '../../src/engine/cpu-settings.js';
import { xorshift32 } from '../helpers/xorshift.js';

const cpu = getEngine('cpu') as CpuEngine;
const ARCH_ISAS = cpuIsasOf(process.arch);
const BEST = cpu.cpuInfo().cpuIsa;
const ISAS = ARCH_ISAS.slice(0, ARCH_ISAS.indexOf(BEST) + 1);
const THREADS = cpu.threads();
after(() => {
  cpu.limitIsa(BEST);
  cpu.threads(THREADS);
});

function values(count: number, seed: number): Float64Array {
  const uniform = xorshift32(seed);
  return Float64Array.from({ length: count }, () => uniform() * 2 - 1);
}

interface RowCase {
  n: number;
  k: number;
  transB: boolean;
  alpha: number;
  beta: number;
}

/** C (m × n) = alpha · A (m × k) · op(B) + beta · C; returns C as stored after the call. */
function gemm(dtype: DType, a: Float64Array, b: Float64Array, c0: Float64Array, m: number, c: RowCase): number[] {
  const A = Tensor.fromArray(a, [a.length], dtype).keep();
  const B = Tensor.fromArray(b, [b.length], dtype).keep();
  const C = Tensor.fromArray(c0, [c0.length], dtype).keep();
  try {
    cpu.matmul({
      a: A.dense(),
      b: B.dense(),
      c: C.dense(),
      m,
      n: c.n,
      k: c.k,
      transA: false,
      transB: c.transB,
      lda: c.k,
      ldb: c.transB ? c.k : c.n,
      ldc: c.n,
      strideA: 0,
      strideB: 0,
      strideC: 0,
      batch: 1,
      alpha: c.alpha,
      beta: c.beta,
    });
    return Array.from(C.toArray());
  } finally {
    A.dispose();
    B.dispose();
    C.dispose();
  }
}

// k crosses the 256-deep K blocks (later blocks accumulate into C with beta 1); n has full and partial panels.
const CASES: RowCase[] = [
  { n: 1030, k: 600, transB: true, alpha: 1, beta: 0 },
  { n: 1030, k: 600, transB: false, alpha: 1, beta: 0 },
  { n: 77, k: 513, transB: true, alpha: -0.3, beta: 0.75 },
  { n: 40, k: 31, transB: false, alpha: 2, beta: 1 },
];

/** Rows of the larger GEMM: 9 leaves a partial register tile at row 8 for every micro-kernel (MR 4, 6, 8). */
const ROWS = 9;

for (const isa of ISAS) {
  test(`gemm: one-row products match a float64 reference and a row of a larger GEMM bit for bit (${isa})`, () => {
    assert.equal(cpu.limitIsa(isa), isa);
    CASES.forEach((c, index) => {
      const a = Float64Array.from(values(ROWS * c.k, 10 + index), Math.fround);
      const b = Float64Array.from(values(c.n * c.k, 20 + index), Math.fround);
      const c0 = Float64Array.from(values(ROWS * c.n, 30 + index), Math.fround);
      const whole = gemm('float32', a, b, c0, ROWS, c);
      // Fused scaling (full tiles) and scaling then adding (partial tiles) round differently unless alpha is 1
      // or beta 0, so with both only the partial tile's row is compared.
      const rows = c.alpha === 1 || c.beta === 0 ? [0, 3, ROWS - 1] : [ROWS - 1];
      for (const i of rows) {
        const row = gemm('float32', a.subarray(i * c.k, (i + 1) * c.k), b, c0.subarray(i * c.n, (i + 1) * c.n), 1, c);
        for (let j = 0; j < c.n; j++) {
          let dot = 0,
            mag = 0;
          for (let p = 0; p < c.k; p++) {
            const product = a[i * c.k + p]! * b[c.transB ? j * c.k + p : p * c.n + j]!;
            dot += product;
            mag += Math.abs(product);
          }
          const cij = c0[i * c.n + j]!;
          const want = c.alpha * dot + c.beta * cij;
          const tol = (2 * c.k + 4) * 2 ** -24 * (Math.abs(c.alpha) * mag + Math.abs(c.beta * cij)) + 1e-30;
          assert.ok(Math.abs(row[j]! - want) <= tol, `${JSON.stringify(c)} row ${i} [${j}]: ${row[j]} vs ${want}`);
          assert.ok(
            Object.is(row[j], whole[i * c.n + j]),
            `${JSON.stringify(c)} row ${i} [${j}]: alone ${row[j]}, inside ${ROWS} rows ${whole[i * c.n + j]}`,
          );
        }
      }
    });
    cpu.limitIsa(BEST);
  });
}

test('gemm: one-row products give the same bits on 1, 2 and 3 threads, and bfloat16 ones match the reference', () => {
  const c: RowCase = { n: 2100, k: 700, transB: true, alpha: 1, beta: 0 };
  const a = Float64Array.from(values(c.k, 1), Math.fround);
  const b = Float64Array.from(values(c.n * c.k, 2), Math.fround);
  const c0 = new Float64Array(c.n);
  const results = [1, 2, 3].map((threads) => {
    cpu.threads(threads);
    return gemm('float32', a, b, c0, 1, c);
  });
  cpu.threads(THREADS);
  assert.deepEqual(results[1], results[0]);
  assert.deepEqual(results[2], results[0]);

  const A = Tensor.fromArray(a, [c.k], 'bfloat16').keep();
  const B = Tensor.fromArray(b, [b.length], 'bfloat16').keep();
  const [aStored, bStored] = [A.toArray(), B.toArray()];
  A.dispose();
  B.dispose();
  const got = gemm('bfloat16', a, b, c0, 1, c);
  for (let j = 0; j < c.n; j++) {
    let dot = 0,
      mag = 0;
    for (let p = 0; p < c.k; p++) {
      dot += aStored[p]! * bStored[j * c.k + p]!;
      mag += Math.abs(aStored[p]! * bStored[j * c.k + p]!);
    }
    const tol = (2 * c.k + 4) * 2 ** -24 * mag + 2 ** -8 * Math.abs(dot) + 1e-30;
    assert.ok(Math.abs(got[j]! - dot) <= tol, `bfloat16 [${j}]: ${got[j]} vs ${dot}`);
  }
});
