// The CUDA form of each fused op (native/fused/<op>/cuda.cu) against its CPU form (cpu.cc): residual add + norm
// (forward, the stored sum, backward with every parameter gradient), bias + GELU, token shift, head norm,
// many-tensor AdamW (also: same bits as the one-tensor kernel plus a rounding copy), Σx² over many buffers, the
// unchecked embedding gather and the matrix product's bias epilogue. Shapes cover the 16-byte packed paths, odd
// sizes and offsets (element paths), and column sums that do not fit in shared memory.
import assert from 'node:assert/strict';
import type { AddNormArgs, AdamWItem, Dense } from '../../src/engine/engine.js';
import type { CudaEngine } from '../../src/engine/cuda.js';
import type { DType } from '../../src/tensor/dtype.js';
import { Twins, assertClose, cpu, gpu, gpuTest, linearProductArgs, read, relativeError, type Twin } from './harness.js';
import { adamwTestArgs } from '../helpers/adamw-args.js';

const statDtype = (dtype: DType): DType => (dtype === 'float64' ? 'float64' : 'float32');
/** The twin seen `offset` elements in (an unaligned start for the element paths). */
const shifted = (t: Twin, offset: number): Twin => ({
  ...t,
  count: t.count - offset,
  cpu: { ...t.cpu, offset },
  gpu: { ...t.gpu, offset },
});
const on = (t: Twin | null, side: 'cpu' | 'gpu'): Dense | null => (t ? t[side] : null);

interface NormCase {
  rows: number;
  cols: number;
  rms: boolean;
  residual: boolean;
  scale: boolean;
  affine: boolean;
  sum: boolean;
  offset: number;
}

function normCases(): NormCase[] {
  const out: NormCase[] = [];
  for (const [rows, cols] of [
    [8, 64],
    [300, 1000],
    [4, 4096],
    [1025, 3],
    [96, 2560],
    [40, 5000],
    [2100, 64],
  ] as const) {
    for (const rms of [false, true]) {
      out.push({ rows, cols, rms, residual: true, scale: true, affine: true, sum: false, offset: 0 });
      out.push({ rows, cols, rms, residual: true, scale: false, affine: false, sum: true, offset: 0 });
    }
    out.push({ rows, cols, rms: false, residual: false, scale: false, affine: true, sum: false, offset: 0 });
  }
  out.push({ rows: 33, cols: 256, rms: false, residual: true, scale: true, affine: true, sum: true, offset: 1 });
  return out;
}

gpuTest('addNorm / addNormGrad: residual add + layer/RMS norm, stored sum, every gradient', () => {
  const t = new Twins(41);
  try {
    for (const dtype of ['float32', 'bfloat16', 'float64'] as DType[]) {
      for (const k of normCases()) {
        const n = k.rows * k.cols;
        const pad = k.offset;
        const a = shifted(t.random(dtype, n + pad, 1, 0.3), pad);
        const b = shifted(t.random(dtype, n + pad, 1), pad);
        const scale = k.scale ? t.random(dtype, k.cols, 0.3, 1) : null;
        const weight = k.affine ? t.random(dtype, k.cols, 0.5, 1) : null;
        const bias = k.affine && !k.rms ? t.random(dtype, k.cols, 0.5) : null;
        const out = shifted(t.output(dtype, n + pad), pad);
        const sum = k.sum ? shifted(t.output(dtype, n + pad), pad) : null;
        const stats = t.output(statDtype(dtype), 2 * k.rows);
        const args = (side: 'cpu' | 'gpu'): AddNormArgs => ({
          rms: k.rms,
          a: a[side],
          b: k.residual ? b[side] : null,
          scale: on(scale, side),
          c: 2.83,
          weight: on(weight, side),
          bias: on(bias, side),
          rows: k.rows,
          cols: k.cols,
          eps: 1e-5,
        });
        const label = `addNorm ${dtype} [${k.rows}, ${k.cols}] ${k.rms ? 'rms' : 'layer'}${
          k.residual ? '' : ' (no residual)'
        }${k.scale ? ' scale' : ''}${k.affine ? ' affine' : ''}${k.sum ? ' +sum' : ''}${pad ? ' offset' : ''}`;
        cpu().addNorm!(args('cpu'), out.cpu, on(sum, 'cpu'), stats.cpu);
        gpu().addNorm!(args('gpu'), out.gpu, on(sum, 'gpu'), stats.gpu);
        assertClose(label, out);
        const statsTolerance = dtype === 'float64' ? 1e-12 : dtype === 'bfloat16' ? 1e-4 : 1e-5;
        if (sum) {
          assertClose(`${label} sum`, sum, dtype === 'bfloat16' ? 1e-2 : undefined);
          // With a stored sum the norm reads the rounded s. An FMA on one engine and a multiply-add on the
          // other can round an element of s differently (one ulp; in a 3-column row that moves the stats
          // ~1e-3), so the GPU's stats are checked against the CPU's norm of the GPU's own stored sum.
          const rounded = t.from(dtype, read(sum).gpu);
          const refStats = t.output(statDtype(dtype), 2 * k.rows),
            refOut = t.output(dtype, n);
          cpu().addNorm!({ ...args('cpu'), a: rounded.cpu, b: null, scale: null }, refOut.cpu, null, refStats.cpu);
          const err = relativeError(read(refStats).cpu, read(stats).gpu);
          assert.ok(
            err <= statsTolerance,
            `${label} stats: relative error ${err.toExponential(2)} against the norm of the stored sum`,
          );
        } else {
          assertClose(`${label} stats`, stats, statsTolerance);
        }
        if (k.sum) continue; // the backward pass is defined for the forward without a stored sum
        // Backward from the CPU's statistics on both engines.
        const s = t.from(statDtype(dtype), read(stats).cpu);
        const gy = t.random(dtype, n);
        const ga = t.output(dtype, n);
        const gb = k.residual ? t.output(dtype, n) : null;
        const gs = scale ? t.output(dtype, k.cols) : null;
        const gw = weight ? t.output(dtype, k.cols) : null;
        const gbias = bias ? t.output(dtype, k.cols) : null;
        for (const side of ['cpu', 'gpu'] as const) {
          const engine = side === 'cpu' ? cpu() : gpu();
          engine.addNormGrad!(args(side), s[side], gy[side], {
            a: ga[side],
            b: on(gb, side),
            scale: on(gs, side),
            weight: on(gw, side),
            bias: on(gbias, side),
          });
        }
        // rows of 3 columns cancel heavily in bf16 (x̂ sums to ~0): compare them in float32/float64 only.
        if (dtype !== 'bfloat16' || k.cols > 3) {
          assertClose(`${label} gradA`, ga);
          if (gb) assertClose(`${label} gradB`, gb);
        }
        const sums = dtype === 'float32' ? 1e-5 : undefined;
        if (gs) assertClose(`${label} gradScale`, gs, sums);
        if (gw) assertClose(`${label} gradWeight`, gw, sums);
        if (gbias) assertClose(`${label} gradBias`, gbias, sums);
      }
    }
  } finally {
    t.dispose();
  }
});

gpuTest('biasGelu / biasGeluGrad: gelu(x + bias) and its gradients, packed and element paths', () => {
  const t = new Twins(42);
  try {
    for (const dtype of ['float32', 'bfloat16', 'float64'] as DType[]) {
      for (const [rows, cols, offset] of [
        [16, 40, 0],
        [300, 10240, 0],
        [7, 13, 0],
        [1, 8, 0],
        [65, 24, 1],
        [2048, 1024, 0],
      ] as const) {
        const n = rows * cols;
        const x = shifted(t.random(dtype, n + offset, 2), offset);
        const bias = t.random(dtype, cols, 1);
        const out = shifted(t.output(dtype, n + offset), offset);
        cpu().biasGelu!(x.cpu, bias.cpu, out.cpu, rows, cols);
        gpu().biasGelu!(x.gpu, bias.gpu, out.gpu, rows, cols);
        const label = `biasGelu ${dtype} [${rows}, ${cols}]${offset ? ' offset' : ''}`;
        assertClose(label, out);
        const gy = shifted(t.random(dtype, n + offset), offset);
        const gx = shifted(t.output(dtype, n + offset), offset);
        const gb = t.output(dtype, cols);
        cpu().biasGeluGrad!(x.cpu, bias.cpu, gy.cpu, gx.cpu, gb.cpu, rows, cols);
        gpu().biasGeluGrad!(x.gpu, bias.gpu, gy.gpu, gx.gpu, gb.gpu, rows, cols);
        assertClose(`${label} gradIn`, gx);
        assertClose(`${label} gradBias`, gb, dtype === 'float32' ? 1e-5 : undefined);
        // Without a bias gradient the input gradient is the same.
        const gx2 = shifted(t.output(dtype, n + offset), offset);
        gpu().biasGeluGrad!(x.gpu, bias.gpu, gy.gpu, gx2.gpu, null, rows, cols);
        assert.deepEqual(read(gx2).gpu, read(gx).gpu, `${label}: gradIn without gradBias`);
      }
    }
  } finally {
    t.dispose();
  }
});

gpuTest(
  'adamwMany: one launch over many tensors gives the bits of the one-tensor kernel, with and without weight copies',
  () => {
    const t = new Twins(43);
    const g = gpu() as CudaEngine;
    try {
      for (const gradDtype of ['bfloat16', 'float32', 'float64'] as DType[]) {
        for (const withShadow of [false, true]) {
          const sizes = [1, 3, 4, 1000, 65536, 65537, 200003, 5, 131079, 70001, 12];
          // Start offsets pick the access width: 8-element packs where every pointer is 16-byte aligned (0, 8),
          // 4-element packs where only the float32 ones are (4: bf16 at 8 bytes), else one element (1, 2, 3).
          const offsets = [0, 0, 1, 0, 0, 3, 0, 2, 4, 8, 4];
          const one = sizes.map((size, i) => {
            const off = offsets[i]!;
            return {
              param: shifted(t.random('float32', size + off), off),
              m: shifted(t.random('float32', size + off, 0.01), off),
              v: shifted(
                t.from(
                  'float32',
                  Array.from({ length: size + off }, () => 1e-4 * t.gen.uniform()),
                ),
                off,
              ),
              grad: shifted(t.random(gradDtype, size + off, 0.1), off),
              shadow: withShadow ? shifted(t.output('bfloat16', size + off), off) : null,
            };
          });
          const many = one.map((o) => ({
            param: t.from('float32', read(o.param).gpu),
            m: t.from('float32', read(o.m).gpu),
            v: t.from('float32', read(o.v).gpu),
            grad: o.grad,
            shadow: withShadow ? t.output('bfloat16', o.param.count) : null,
          }));
          for (let step = 1; step <= 2; step++) {
            const args = adamwTestArgs(step, 0.7);
            for (const o of one) {
              // The composed form: the one-tensor step, then a rounding copy into the weight copy.
              g.adamw(o.param.gpu, o.grad.gpu, o.m.gpu, o.v.gpu, o.param.count, args);
              if (o.shadow)
                g.copy({ ...o.param.gpu, strides: [1] }, { ...o.shadow.gpu, strides: [1] }, [o.param.count]);
            }
            const items: AdamWItem[] = many.map((o) => ({
              param: o.param.gpu,
              m: o.m.gpu,
              v: o.v.gpu,
              grad: o.grad.gpu,
              count: o.param.count,
              shadow: o.shadow?.gpu ?? null,
            }));
            g.adamwMany(items, args);
          }
          one.forEach((o, i) => {
            const label =
              `adamwMany (grad ${gradDtype}${withShadow ? ', bf16 copy' : ''}) ` + `tensor ${i} of ${o.param.count}`;
            assert.deepEqual(read(many[i]!.param).gpu, read(o.param).gpu, `${label}: weights`);
            assert.deepEqual(read(many[i]!.m).gpu, read(o.m).gpu, `${label}: m`);
            assert.deepEqual(read(many[i]!.v).gpu, read(o.v).gpu, `${label}: v`);
            if (o.shadow) assert.deepEqual(read(many[i]!.shadow!).gpu, read(o.shadow).gpu, `${label}: bf16 copy`);
          });
        }
      }
    } finally {
      t.dispose();
    }
  },
);

gpuTest('embeddingUnchecked gathers the rows embedding gathers, without the id check', () => {
  const t = new Twins(44);
  const g = gpu() as CudaEngine;
  try {
    for (const dtype of ['float32', 'bfloat16'] as DType[]) {
      const [count, dim, vocab] = [2048, 256, 5000];
      const table = t.random(dtype, vocab * dim);
      const ids = t.ints(count, 0, vocab);
      const checked = t.output(dtype, count * dim),
        unchecked = t.output(dtype, count * dim);
      assert.equal(g.embedding(table.gpu, ids.gpu, checked.gpu, count, dim, vocab), -1);
      g.embeddingUnchecked(table.gpu, ids.gpu, unchecked.gpu, count, dim, vocab);
      assert.deepEqual(read(unchecked).gpu, read(checked).gpu, `embeddingUnchecked ${dtype}`);
    }
  } finally {
    t.dispose();
  }
});

gpuTest("matmulBias: cuBLASLt's bias epilogue equals the CPU form (bias rows, then C += A·Bᵀ)", () => {
  const t = new Twins(45);
  const g = gpu() as CudaEngine;
  try {
    for (const dtype of ['float32', 'bfloat16', 'float64'] as DType[]) {
      for (const [m, n, k] of [
        [64, 96, 32],
        [2048, 640, 256],
        [5, 7, 3],
        [1, 10240, 64],
      ] as const) {
        const a = t.random(dtype, m * k),
          b = t.random(dtype, n * k),
          bias = t.random(dtype, n);
        const c = t.output(dtype, m * n);
        const args = (side: 'cpu' | 'gpu') => linearProductArgs({ a: a[side], b: b[side], c: c[side], m, n, k });
        cpu().matmulBias(args('cpu'), bias.cpu);
        g.matmulBias(args('gpu'), bias.gpu);
        assertClose(
          `matmulBias ${dtype} m${m} n${n} k${k}`,
          c,
          dtype === 'bfloat16' ? 2e-2 : dtype === 'float32' ? 1e-5 : 1e-12,
        );
      }
    }
    const a = t.random('float32', 4),
      bias = t.random('float32', 2),
      c = t.output('float32', 4);
    assert.throws(
      () =>
        g.matmulBias({ ...linearProductArgs({ a: a.gpu, b: a.gpu, c: c.gpu, m: 2, n: 2, k: 2 }), beta: 1 }, bias.gpu),
      /bias needs beta = 0/,
    );
  } finally {
    t.dispose();
  }
});

gpuTest('embeddingUnchecked: the CUDA and CPU forms give the same rows, zero rows for ids out of range', () => {
  const t = new Twins(46);
  try {
    for (const dtype of ['float32', 'bfloat16', 'float64'] as DType[]) {
      const [count, dim, vocab] = [777, 96, 300];
      const table = t.random(dtype, vocab * dim);
      const ids = t.from(
        'int32',
        Int32Array.from({ length: count }, (_, i) => (i % 97 === 0 ? -3 : i % 89 === 0 ? vocab : (i * 7) % vocab)),
      );
      const out = t.output(dtype, count * dim);
      cpu().embeddingUnchecked(table.cpu, ids.cpu, out.cpu, count, dim, vocab);
      gpu().embeddingUnchecked(table.gpu, ids.gpu, out.gpu, count, dim, vocab);
      const both = read(out);
      assert.deepEqual(both.gpu, both.cpu, `embeddingUnchecked ${dtype}`);
      assert.ok(
        both.cpu.slice(0, dim).every((v) => v === 0),
        'id −3 gives a zero row',
      );
    }
  } finally {
    t.dispose();
  }
});

gpuTest('tokenShift: the CUDA and CPU forms give the same bits each way, with documents and accumulation', () => {
  const t = new Twins(47);
  try {
    for (const dtype of ['float32', 'bfloat16', 'float64'] as DType[]) {
      for (const [batch, n, dim, shifts] of [
        [2, 37, 2560, 1],
        [2, 9, 64, 2],
        [1, 5, 30, 3],
        [3, 2, 7, 1],
      ] as const) {
        const count = batch * n * dim;
        const x = t.random(dtype, count);
        const segments = t.from(
          'int32',
          Int32Array.from({ length: batch * n }, (_, i) => Math.floor((i % n) / 4)),
        );
        for (const backward of [false, true]) {
          for (const accumulate of [false, true]) {
            for (const withSegments of [false, true]) {
              const out = t.random(dtype, count);
              const ids = withSegments ? segments : null;
              cpu().tokenShift(x.cpu, out.cpu, batch, n, dim, shifts, backward, accumulate, ids?.cpu ?? null);
              gpu().tokenShift(x.gpu, out.gpu, batch, n, dim, shifts, backward, accumulate, ids?.gpu ?? null);
              const both = read(out);
              assert.deepEqual(
                both.gpu,
                both.cpu,
                `tokenShift ${dtype} [${batch}, ${n}, ${dim}] shifts ${shifts}${backward ? ' backward' : ''}` +
                  `${accumulate ? ' accumulate' : ''}${withSegments ? ' documents' : ''}`,
              );
            }
          }
        }
      }
    }
  } finally {
    t.dispose();
  }
});

gpuTest('headNorm / headNormGrad: the CUDA and CPU forms, packed and strided lanes, with and without a weight', () => {
  const t = new Twins(48);
  try {
    for (const [dtype, tol] of [
      ['float32', 1e-5],
      ['bfloat16', 2e-2],
      ['float64', 1e-12],
    ] as [DType, number][]) {
      for (const [batch, n, heads, dim] of [
        [2, 67, 3, 64],
        [1, 130, 8, 128],
        [1, 9, 4, 256],
        [2, 5, 2, 80],
        [1, 3, 1, 7],
      ] as const) {
        for (const weighted of [true, false]) {
          const rows = batch * n * heads * dim;
          const x = t.random(dtype, rows, 2),
            weight = weighted ? t.random(dtype, heads * dim, 0.3, 1) : null,
            gy = t.random(dtype, rows);
          const y = t.output(dtype, rows),
            rstd = t.output(statDtype(dtype), batch * n * heads);
          const gx = t.output(dtype, rows),
            gw = weighted ? t.output(dtype, heads * dim) : null;
          const args = { batch, n, heads, dim, eps: 1e-6 };
          for (const side of ['cpu', 'gpu'] as const) {
            const engine = side === 'cpu' ? cpu() : gpu();
            engine.headNorm(args, x[side], on(weight, side), y[side], rstd[side]);
            engine.headNormGrad(args, x[side], on(weight, side), rstd[side], gy[side], gx[side], on(gw, side));
          }
          const label = `headNorm ${dtype} [${batch}, ${n}, ${heads}, ${dim}]${weighted ? ' weighted' : ''}`;
          for (const [name, twin] of [
            ['y', y],
            ['rstd', rstd],
            ['gx', gx],
            ['gw', gw],
          ] as const) {
            if (twin) assertClose(`${label} ${name}`, twin, tol);
          }
        }
      }
    }
  } finally {
    t.dispose();
  }
});

gpuTest('adamwMany and sumOfSquaresMany: the CUDA and CPU forms agree', () => {
  const t = new Twins(49);
  try {
    for (const [gradDtype, copyDtype] of [
      ['bfloat16', 'bfloat16'],
      ['float32', null],
      ['float16', 'float16'],
    ] as [DType, DType | null][]) {
      const tensors = [1, 4099, 70001, 1 << 17].map((size) => ({
        param: t.random('float32', size),
        m: t.random('float32', size, 0.01),
        v: t.from(
          'float32',
          Array.from({ length: size }, () => 1e-4 * (1 + t.gen.uniform())),
        ),
        grad: t.random(gradDtype, size, 0.1),
        copy: copyDtype ? t.output(copyDtype, size) : null,
        count: size,
      }));
      const args = {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weightDecay: 0.1,
        biasCorrection1: 0.1,
        biasCorrection2: 0.05,
        gradScale: 0.5,
      };
      for (const side of ['cpu', 'gpu'] as const) {
        const items: AdamWItem[] = tensors.map((x) => ({
          param: x.param[side],
          m: x.m[side],
          v: x.v[side],
          grad: x.grad[side],
          count: x.count,
          shadow: on(x.copy, side),
        }));
        (side === 'cpu' ? cpu() : gpu()).adamwMany(items, args);
      }
      tensors.forEach((x, i) => {
        const label = `adamwMany grad ${gradDtype}${copyDtype ? `, ${copyDtype} copy` : ''} tensor ${i}`;
        assertClose(`${label} weights`, x.param, 1e-6);
        assertClose(`${label} m`, x.m, 1e-6);
        assertClose(`${label} v`, x.v, 1e-6);
        if (x.copy) assertClose(`${label} copy`, x.copy, 1e-2);
      });
      const squares = tensors.map((x) => x.grad);
      const onCpu = cpu().sumOfSquaresMany(squares.map((x) => ({ x: x.cpu, count: x.count })));
      const onGpu = gpu().sumOfSquaresMany(squares.map((x) => ({ x: x.gpu, count: x.count })));
      assert.ok(
        Math.abs(onGpu - onCpu) <= 1e-12 * onCpu,
        `sumOfSquaresMany ${gradDtype}: ${onGpu} (CUDA) vs ${onCpu} (CPU)`,
      );
    }
  } finally {
    t.dispose();
  }
});
