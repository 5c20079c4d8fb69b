// CUDA engine vs CPU engine: matmul through cuBLASLt in every transpose combination, batched with
// strides (including a broadcast operand), with alpha/beta, at unaligned and tensor-core shapes.
import assert from 'node:assert/strict';
import type { MatmulArgs } from '../../src/engine/engine.js';
import type { DType } from '../../src/tensor/dtype.js';
import { Twins, assertClose, cpu, gpu, gpuTest, linearProductArgs, read, type Twin } from './harness.js';
import { CudaEngine } from '../../src/engine/cuda.js';

interface Case {
  m: number;
  n: number;
  k: number;
  batch: number;
  broadcastB?: boolean;
  alpha?: number;
  beta?: number;
}

function runCase(t: Twins, dtype: DType, c: Case, transA: boolean, transB: boolean, tol: number): void {
  const { m, n, k, batch } = c;
  const a = t.random(dtype, batch * m * k);
  const bBatch = c.broadcastB ? 1 : batch;
  const b = t.random(dtype, bBatch * k * n);
  const beta = c.beta ?? 0;
  const out = beta === 0 ? t.output(dtype, batch * m * n) : t.random(dtype, batch * m * n);
  const args = (side: 'cpu' | 'gpu'): MatmulArgs => ({
    a: a[side],
    b: b[side],
    c: out[side],
    m,
    n,
    k,
    transA,
    transB,
    lda: transA ? m : k,
    ldb: transB ? k : n,
    ldc: n,
    strideA: m * k,
    strideB: c.broadcastB ? 0 : k * n,
    strideC: m * n,
    batch,
    alpha: c.alpha ?? 1,
    beta,
  });
  cpu().matmul(args('cpu'));
  gpu().matmul(args('gpu'));
  assertClose(
    `matmul ${dtype} m=${m} n=${n} k=${k} batch=${batch}${c.broadcastB ? ' (B broadcast)' : ''} transA=${transA}` +
      ` transB=${transB} alpha=${c.alpha ?? 1} beta=${beta}`,
    out,
    tol,
  );
}

gpuTest('matmul: cuBLASLt loads and names its library', () => {
  const lib = (gpu() as CudaEngine).gemmLibrary();
  assert.match(lib, /cuBLASLt \d+/);
  console.log(`# ${(gpu() as CudaEngine).description}; ${lib}`);
});

gpuTest('matmul: float32 (no TF32), bfloat16 and float64 against the CPU engine', () => {
  const t = new Twins(11);
  try {
    const cases: Case[] = [
      { m: 1, n: 1, k: 1, batch: 1 },
      { m: 17, n: 9, k: 33, batch: 1 },
      { m: 64, n: 48, k: 32, batch: 3 },
      { m: 129, n: 65, k: 257, batch: 2, broadcastB: true },
      { m: 100, n: 70, k: 50, batch: 1, alpha: 0.5, beta: 0.75 },
      { m: 256, n: 512, k: 384, batch: 1 },
    ];
    // float32 through cuBLASLt's exact fp32 path: far below TF32's ~1e-3.
    const tol: Record<string, number> = { float32: 1e-5, bfloat16: 1e-2, float64: 1e-12 };
    for (const dtype of ['float32', 'bfloat16', 'float64'] as DType[]) {
      for (const c of cases) {
        for (const [ta, tb] of [
          [false, false],
          [true, false],
          [false, true],
          [true, true],
        ] as [boolean, boolean][]) {
          runCase(t, dtype, c, ta, tb, tol[dtype]!);
        }
      }
    }
  } finally {
    t.dispose();
  }
});

gpuTest('matmul: offset (unaligned) operands', () => {
  const t = new Twins(12);
  try {
    for (const dtype of ['float32', 'bfloat16'] as DType[]) {
      const m = 31,
        n = 45,
        k = 27;
      const a = t.random(dtype, m * k + 3),
        b = t.random(dtype, k * n + 5),
        out = t.output(dtype, m * n + 1);
      const args = (side: 'cpu' | 'gpu'): MatmulArgs => ({
        a: { ...a[side], offset: 3 },
        b: { ...b[side], offset: 5 },
        c: { ...out[side], offset: 1 },
        m,
        n,
        k,
        transA: false,
        transB: false,
        lda: k,
        ldb: n,
        ldc: n,
        strideA: 0,
        strideB: 0,
        strideC: 0,
        batch: 1,
        alpha: 1,
        beta: 0,
      });
      cpu().matmul(args('cpu'));
      gpu().matmul(args('gpu'));
      assertClose(`matmul ${dtype} with odd offsets`, out, dtype === 'float32' ? 1e-5 : 1e-2, m * n + 1);
    }
  } finally {
    t.dispose();
  }
});

// Products of 1–8 rows (decode) run the streaming kernel (native/cuda/gemv.cu) when they are A·Bᵀ in bf16 / f16
// with 16-byte rows; the others stay with cuBLASLt. Shapes cover the split-k form (few B rows), the row-per-warp
// form, k not a multiple of the unrolled step, strided rows of A, a bias, alpha, and products the kernel must leave
// to cuBLASLt (k not a multiple of 8, an operand off 16-byte alignment).
gpuTest('matmul: few-row products (the decode kernel) against the CPU engine, with bias and alpha', () => {
  const t = new Twins(13);
  try {
    // The k splits 2, 1, 1, 1, 1, 4 and 8 (gemv_split in native/cuda/gemv_kernel.cuh, 132 multiprocessors).
    const shapes = [
      { n: 128, k: 2560 },
      { n: 3000, k: 1032 },
      { n: 2200, k: 264 },
      { n: 9, k: 72 },
      { n: 40, k: 27 },
      { n: 6000, k: 4104 },
      { n: 2560, k: 10240 },
    ];
    for (const dtype of ['bfloat16', 'float16'] as DType[]) {
      for (const { n, k } of shapes) {
        // One A (room for 8 strided rows and an offset), one B and one bias per shape: making their values costs
        // more than the products.
        const a = t.random(dtype, 8 * (k + 8) + 1);
        const b = t.random(dtype, n * k + 1, 0.1);
        const bias = t.random(dtype, n);
        for (const m of [1, 2, 3, 5, 8]) {
          for (const variant of ['plain', 'bias', 'strided', 'offset'] as const) {
            const lda = variant === 'strided' ? k + 8 : k;
            const offset = variant === 'offset' ? 1 : 0;
            const out = t.output(dtype, m * n);
            const alpha = variant === 'strided' ? 0.5 : 1;
            const args = (side: 'cpu' | 'gpu'): MatmulArgs =>
              linearProductArgs({
                a: { ...a[side], offset },
                b: { ...b[side], offset },
                c: out[side],
                m,
                n,
                k,
                lda,
                alpha,
              });
            if (variant === 'bias') {
              cpu().matmulBias(args('cpu'), bias.cpu);
              gpu().matmulBias(args('gpu'), bias.gpu);
            } else {
              cpu().matmul(args('cpu'));
              gpu().matmul(args('gpu'));
            }
            assertClose(`${dtype} m=${m} n=${n} k=${k} ${variant}`, out, 1e-2);
          }
        }
      }
    }
  } finally {
    t.dispose();
  }
});

gpuTest('matmul: a few-row product gives each row the bits it gets alone', () => {
  const t = new Twins(14);
  try {
    for (const { n, k } of [
      { n: 128, k: 2560 },
      { n: 3000, k: 1032 },
    ]) {
      const m = 6;
      const a = t.random('bfloat16', m * k);
      const b = t.random('bfloat16', n * k, 0.1);
      const together = t.output('bfloat16', m * n);
      const alone = t.output('bfloat16', m * n);
      const args = (rows: number, row: number, c: Twin): MatmulArgs =>
        linearProductArgs({
          a: { ...a.gpu, offset: row * k },
          b: b.gpu,
          c: { ...c.gpu, offset: row * n },
          m: rows,
          n,
          k,
        });
      gpu().matmul(args(m, 0, together));
      for (let row = 0; row < m; row++) gpu().matmul(args(1, row, alone));
      assert.deepEqual(read(alone).gpu, read(together).gpu, `n=${n} k=${k}: rows alone vs ${m} together`);
    }
  } finally {
    t.dispose();
  }
});

// One input through several weights (a decode step's query, key and value projections): up to three parts of a
// few bf16 / f16 rows share one launch of the decode kernel, more parts take several, and other products (float32,
// more than eight rows, an input off 16-byte alignment) go to matmul part by part. Each part against the CPU's.
gpuTest('matmulSharedInput: every part against the CPU engine (one launch, several, and the fallbacks)', () => {
  const t = new Twins(15);
  try {
    const cases = [
      { k: 2560, ns: [3072, 128, 128] },
      { k: 1032, ns: [100, 7] },
      { k: 264, ns: [64, 8, 16, 40] },
      { k: 72, ns: [9] },
    ];
    for (const dtype of ['bfloat16', 'float16', 'float32'] as DType[])
      for (const { k, ns } of cases) {
        // One input and one set of weights per case (their values cost more to make than the products).
        const a = t.random(dtype, 9 * k + 1);
        const bs = ns.map((n) => t.random(dtype, n * k, 0.1));
        for (const m of [1, 3, 8, 9])
          for (const offset of [0, 1]) {
            const outs = ns.map((n) => t.output(dtype, m * n));
            for (const side of ['cpu', 'gpu'] as const)
              (side === 'cpu' ? cpu() : gpu()).matmulSharedInput(
                { ...a[side], offset },
                m,
                k,
                ns.map((n, i) => ({ b: bs[i]![side], c: outs[i]![side], n })),
              );
            outs.forEach((out, i) =>
              assertClose(`${dtype} m=${m} k=${k} parts ${ns} offset ${offset}: part ${i}`, out, 1e-2),
            );
          }
      }
  } finally {
    t.dispose();
  }
});

// A feed-forward's first layer at inference: the GELU in the decode kernel's epilogue (bf16 / f16, up to 8 rows,
// aligned rows), else the product then biasGelu. Against the CPU engine (which rounds the product before the GELU).
gpuTest('matmulBiasGelu: against the CPU engine, in the decode kernel and in the fallback', () => {
  const t = new Twins(16);
  try {
    for (const dtype of ['bfloat16', 'float16', 'float32'] as DType[])
      for (const { n, k } of [
        { n: 10240, k: 2560 },
        { n: 300, k: 264 },
        { n: 40, k: 27 },
      ]) {
        const a = t.random(dtype, 64 * k);
        const b = t.random(dtype, n * k, 0.1);
        const bias = t.random(dtype, n);
        // 64 rows (cuBLASLt, then biasGelu) on the smaller weights: the CPU's float16 product is slow.
        for (const m of n > 1000 ? [1, 4, 8, 9] : [1, 4, 8, 9, 64]) {
          const out = t.output(dtype, m * n);
          cpu().matmulBiasGelu(a.cpu, b.cpu, bias.cpu, out.cpu, m, n, k);
          gpu().matmulBiasGelu(a.gpu, b.gpu, bias.gpu, out.gpu, m, n, k);
          assertClose(`${dtype} m=${m} n=${n} k=${k}`, out, 1e-2);
        }
      }
  } finally {
    t.dispose();
  }
});
