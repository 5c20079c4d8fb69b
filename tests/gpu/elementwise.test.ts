// CUDA engine vs CPU engine: copy, fill, unary, unaryGrad, binary, reduce, sumOfSquares.
import assert from 'node:assert/strict';
import {
  UNARY_CODE,
  UNARY_GRAD_CODE,
  BINARY_CODE,
  type BinaryOp,
  type UnaryGradOp,
  type UnaryOp,
} from '../../src/engine/engine.js';
import type { DType } from '../../src/tensor/dtype.js';
import { FLOAT_DTYPES, Twins, assertClose, cpu, gpu, gpuTest, read, strided, type Twin } from './harness.js';

const contiguous = (shape: readonly number[]): number[] => {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
};

gpuTest('copy: permuted, broadcast and casting copies match the CPU engine', () => {
  const t = new Twins(1);
  try {
    const cases: { from: DType; to: DType; shape: number[]; perm: number[] }[] = [
      { from: 'float32', to: 'float32', shape: [3, 5, 7], perm: [2, 0, 1] },
      { from: 'float32', to: 'bfloat16', shape: [16, 33, 9], perm: [1, 2, 0] },
      { from: 'bfloat16', to: 'float32', shape: [4, 64, 2, 32], perm: [0, 2, 1, 3] },
      { from: 'float64', to: 'float16', shape: [130, 70], perm: [1, 0] },
      { from: 'int32', to: 'float32', shape: [5, 6], perm: [1, 0] },
      { from: 'float32', to: 'int32', shape: [1000], perm: [0] },
      { from: 'bfloat16', to: 'bfloat16', shape: [8, 128, 64], perm: [0, 1, 2] },
    ];
    for (const c of cases) {
      const n = c.shape.reduce((a, b) => a * b, 1);
      const src = c.from === 'int32' ? t.ints(n, -50, 50) : t.random(c.from, n, 10);
      const dst = t.output(c.to, n);
      const srcStrides = contiguous(c.shape);
      const permShape = c.perm.map((p) => c.shape[p]!);
      const permStrides = c.perm.map((p) => srcStrides[p]!);
      const dstStrides = contiguous(permShape);
      cpu().copy(strided(src.cpu, permStrides), strided(dst.cpu, dstStrides), permShape);
      gpu().copy(strided(src.gpu, permStrides), strided(dst.gpu, dstStrides), permShape);
      assertClose(
        `copy ${c.from}→${c.to} ${JSON.stringify(c.shape)} perm ${c.perm}`,
        dst,
        c.to === 'float32' || c.to === 'int32' ? 0 : 1e-2,
      );
    }
    // Broadcast a row over rows (stride 0), into a strided destination (every other column).
    const row = t.random('float32', 50);
    const dst = t.output('float32', 40 * 100);
    cpu().copy(strided(row.cpu, [0, 1]), strided(dst.cpu, [100, 2]), [40, 50]);
    gpu().copy(strided(row.gpu, [0, 1]), strided(dst.gpu, [100, 2]), [40, 50]);
    const { cpu: c, gpu: g } = read(dst);
    for (let i = 0; i < c.length; i++)
      assert.ok(Object.is(c[i], g[i]) || (Number.isNaN(c[i]!) && Number.isNaN(g[i]!)), `broadcast copy element ${i}`);
  } finally {
    t.dispose();
  }
});

gpuTest('fill: every dtype', () => {
  const t = new Twins(2);
  try {
    for (const dtype of ['float32', 'float64', 'bfloat16', 'float16', 'int32'] as DType[]) {
      const out = t.output(dtype, 10007);
      cpu().fill(out.cpu, out.count, 3.14159);
      gpu().fill(out.gpu, out.count, 3.14159);
      assertClose(`fill ${dtype}`, out, 0);
    }
  } finally {
    t.dispose();
  }
});

gpuTest('unary and unaryGrad: every op in float32, bfloat16 and float64', () => {
  const t = new Twins(3);
  try {
    for (const dtype of [...FLOAT_DTYPES, 'float64'] as DType[]) {
      for (const n of [1, 1000, 65537]) {
        const positive = t.random(dtype, n, 1, 3); // log, sqrt, rsqrt, powScalar need x > 0
        const signed = t.random(dtype, n, 2);
        for (const op of Object.keys(UNARY_CODE) as UnaryOp[]) {
          const x = ['log', 'sqrt', 'rsqrt', 'powScalar', 'reciprocal'].includes(op) ? positive : signed;
          const out = t.output(dtype, n);
          const scalar = op === 'powScalar' ? 1.7 : 0.37;
          cpu().unary(op, x.cpu, out.cpu, n, scalar);
          gpu().unary(op, x.gpu, out.gpu, n, scalar);
          assertClose(`unary ${op} n=${n}`, out);
        }
        const gy = t.random(dtype, n);
        for (const op of Object.keys(UNARY_GRAD_CODE) as UnaryGradOp[]) {
          const gx = t.output(dtype, n);
          cpu().unaryGrad(op, signed.cpu, gy.cpu, gx.cpu, n);
          gpu().unaryGrad(op, signed.gpu, gy.gpu, gx.gpu, n);
          assertClose(`unaryGrad ${op} n=${n}`, gx);
        }
      }
    }
  } finally {
    t.dispose();
  }
});

gpuTest('binary: every op, dense and broadcast, float32/bfloat16/int32', () => {
  const t = new Twins(4);
  try {
    const layouts: {
      shape: number[];
      a: (s: number[]) => number[];
      b: (s: number[]) => number[];
      aCount: number;
      bCount: number;
    }[] = [
      { shape: [37, 129], a: contiguous, b: contiguous, aCount: 37 * 129, bCount: 37 * 129 },
      { shape: [64, 300], a: contiguous, b: () => [0, 1], aCount: 64 * 300, bCount: 300 }, // bias
      { shape: [64, 300], a: contiguous, b: () => [1, 0], aCount: 64 * 300, bCount: 64 }, // per-row
      // transposed a
      { shape: [8, 16, 24], a: () => [1, 8, 128], b: () => [0, 24, 1], aCount: 8 * 16 * 24, bCount: 16 * 24 },
    ];
    for (const dtype of [...FLOAT_DTYPES, 'int32'] as DType[]) {
      for (const l of layouts) {
        const n = l.shape.reduce((x, y) => x * y, 1);
        const a = dtype === 'int32' ? t.ints(l.aCount, -20, 20) : t.random(dtype, l.aCount, 2);
        const b = dtype === 'int32' ? t.ints(l.bCount, 1, 9) : t.random(dtype, l.bCount, 1, 2.5);
        for (const op of Object.keys(BINARY_CODE) as BinaryOp[]) {
          if (dtype === 'int32' && op === 'pow') continue;
          const out = t.output(dtype, n);
          const sa = l.a(l.shape),
            sb = l.b(l.shape);
          cpu().binary(op, strided(a.cpu, sa), strided(b.cpu, sb), out.cpu, l.shape);
          gpu().binary(op, strided(a.gpu, sa), strided(b.gpu, sb), out.gpu, l.shape);
          assertClose(`binary ${op} ${JSON.stringify(l.shape)} a${JSON.stringify(sa)} b${JSON.stringify(sb)}`, out);
        }
      }
    }
  } finally {
    t.dispose();
  }
});

/** The twin seen `offset` elements in (a start that is not 16-byte aligned takes the element path). */
const shifted = (x: Twin, offset: number): Twin => ({
  ...x,
  count: x.count - offset,
  cpu: { ...x.cpu, offset },
  gpu: { ...x.gpu, offset },
});

gpuTest('packed (16-byte) and element paths: aligned and offset operands, tails, every dtype', () => {
  const t = new Twins(6);
  try {
    for (const dtype of ['float32', 'bfloat16', 'float16', 'float64'] as DType[]) {
      for (const n of [8, 9, 4099, 100003]) {
        for (const offset of [0, 1, 2]) {
          const x = shifted(t.random(dtype, n + offset, 2), offset),
            y = shifted(t.random(dtype, n + offset, 1, 2.5), offset);
          const label = `${dtype} n=${n} offset ${offset}`;
          for (const op of ['scale', 'addScalar', 'gelu', 'exp'] as UnaryOp[]) {
            const out = shifted(t.output(dtype, n + offset), offset);
            cpu().unary(op, x.cpu, out.cpu, n, 0.37);
            gpu().unary(op, x.gpu, out.gpu, n, 0.37);
            assertClose(`unary ${op} ${label}`, out);
          }
          const gx = shifted(t.output(dtype, n + offset), offset);
          cpu().unaryGrad('gelu', x.cpu, y.cpu, gx.cpu, n);
          gpu().unaryGrad('gelu', x.gpu, y.gpu, gx.gpu, n);
          assertClose(`unaryGrad gelu ${label}`, gx);
          for (const op of ['add', 'mul', 'div'] as BinaryOp[]) {
            const out = shifted(t.output(dtype, n + offset), offset);
            cpu().binary(op, strided(x.cpu, [1]), strided(y.cpu, [1]), out.cpu, [n]);
            gpu().binary(op, strided(x.gpu, [1]), strided(y.gpu, [1]), out.gpu, [n]);
            assertClose(`binary ${op} ${label}`, out);
          }
          for (const to of ['float32', 'bfloat16'] as DType[]) {
            const out = shifted(t.output(to, n + offset), offset);
            cpu().copy(strided(x.cpu, [1]), strided(out.cpu, [1]), [n]);
            gpu().copy(strided(x.gpu, [1]), strided(out.gpu, [1]), [n]);
            assertClose(`cast copy → ${to} ${label}`, out, to === 'float32' ? 0 : 1e-2);
          }
          const filled = shifted(t.output(dtype, n + offset), offset);
          cpu().fill(filled.cpu, n, -1.5);
          gpu().fill(filled.gpu, n, -1.5);
          assertClose(`fill ${label}`, filled, 0);
        }
      }
    }
    // Strided copies whose innermost axis is contiguous (token-shift windows, bias broadcasts): packed moves.
    for (const dtype of ['bfloat16', 'float32', 'int32'] as DType[]) {
      const [batch, n, dim] = [2, 37, 1280];
      const src = dtype === 'int32' ? t.ints(batch * n * dim, -9, 9) : t.random(dtype, batch * n * dim);
      for (const [shape, srcOffset, dstOffset, srcStrides] of [
        [[batch, n - 1, 640], 640, 640 + dim, [n * dim, dim, 1]], // a shifted window of half the features
        [[batch, n, 640], 0, 0, [n * dim, dim, 1]], // the unshifted half
        [[batch, n - 1, 637], 643, 3, [n * dim, dim, 1]], // odd width and offsets: element path
        [[batch, n, dim], 0, 0, [0, 0, 1]], // one row broadcast everywhere
      ] as [number[], number, number, number[]][]) {
        const dst = t.output(dtype, batch * n * dim);
        const dstStrides = [n * dim, dim, 1];
        const s = { ...src, cpu: { ...src.cpu, offset: srcOffset }, gpu: { ...src.gpu, offset: srcOffset } };
        const d = { ...dst, cpu: { ...dst.cpu, offset: dstOffset }, gpu: { ...dst.gpu, offset: dstOffset } };
        cpu().copy(strided(s.cpu, srcStrides), strided(d.cpu, dstStrides), shape);
        gpu().copy(strided(s.gpu, srcStrides), strided(d.gpu, dstStrides), shape);
        const { cpu: c, gpu: g } = read(dst);
        for (let i = 0; i < c.length; i++) {
          assert.ok(
            Object.is(c[i], g[i]) || (Number.isNaN(c[i]!) && Number.isNaN(g[i]!)),
            `strided copy ${dtype} ${JSON.stringify(shape)} from +${srcOffset}: element ${i} cpu ${c[i]} gpu ${g[i]}`,
          );
        }
      }
    }
  } finally {
    t.dispose();
  }
});

gpuTest('reduce: sum/max/min over rows, long rows and middle axes', () => {
  const t = new Twins(5);
  try {
    const shapes = [
      [1, 7, 1],
      [300, 50, 1],
      [3, 100000, 1],
      [4, 33, 70],
      [1, 5000, 3000],
      [2, 1, 9],
    ];
    for (const dtype of [...FLOAT_DTYPES, 'int32'] as DType[]) {
      for (const [outer, size, inner] of shapes as [number, number, number][]) {
        const x =
          dtype === 'int32' ? t.ints(outer * size * inner, -1000, 1000) : t.random(dtype, outer * size * inner, 1, 0.1);
        for (const op of ['sum', 'max', 'min'] as const) {
          const out = t.output(dtype, outer * inner);
          cpu().reduce(op, x.cpu, out.cpu, outer, size, inner);
          gpu().reduce(op, x.gpu, out.gpu, outer, size, inner);
          // bf16 sums round differently in the last bit of a float accumulation; max/min are exact.
          assertClose(
            `reduce ${op} [${outer}, ${size}, ${inner}]`,
            out,
            op === 'sum' ? (dtype === 'float32' ? 1e-5 : dtype === 'int32' ? 0 : 1e-2) : 0,
          );
        }
      }
    }
  } finally {
    t.dispose();
  }
});

gpuTest('sumOfSquares: float64 accumulation of float32 and bfloat16 buffers', () => {
  const t = new Twins(6);
  try {
    for (const dtype of FLOAT_DTYPES) {
      for (const n of [1, 4097, 3_000_001]) {
        const x = t.random(dtype, n);
        const c = cpu().sumOfSquares(x.cpu, n),
          g = gpu().sumOfSquares(x.gpu, n);
        // The CPU squares float32 values in float (its SIMD path), the GPU in double: agree to ~1e-7.
        assert.ok(Math.abs(c - g) <= 1e-6 * c, `sumOfSquares ${dtype} n=${n}: cpu ${c} gpu ${g}`);
      }
    }
  } finally {
    t.dispose();
  }
});
