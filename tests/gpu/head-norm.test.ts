// The fused qk-norm on the head layout (CUDA headNorm kernels) against the composed ops in float64 on
// the CPU engine (permute, L2 normalise, per-head scale): outputs and the gradients of x and the scale.
import assert from 'node:assert/strict';
import { Tensor } from '../../src/tensor/tensor.js';
import { headNorm } from '../../src/ops/fused/head-norm.js';
import { mul } from '../../src/ops/elementwise.js';
import { sum } from '../../src/ops/reduce.js';
import { Generator } from '../../src/tensor/random.js';
import type { DType } from '../../src/tensor/dtype.js';
import { gpu, gpuTest, relativeError } from './harness.js';
import { HEAD_ROWS_CASES, runHeadRowsCase } from '../helpers/head-rows-cases.js';

interface Result {
  y: ArrayLike<number>;
  gx: ArrayLike<number>;
  gw: ArrayLike<number> | null;
}

function run(
  device: string,
  dtype: DType,
  shape: number[],
  xs: Float64Array,
  ws: Float64Array | null,
  gys: Float64Array,
): Result {
  const [batch, n, heads, dim] = shape as [number, number, number, number];
  const x = Tensor.fromArray(xs, shape, dtype, device).requireGrad(true);
  const w = ws ? Tensor.fromArray(ws, [heads, dim], dtype, device).requireGrad(true) : null;
  const gy = Tensor.fromArray(gys, [batch, heads, n, dim], dtype, device);
  const y = headNorm(x, w);
  assert.deepEqual(y.shape, [batch, heads, n, dim]);
  const loss = sum(mul(y, gy));
  loss.backward();
  const out = { y: y.toArray(), gx: x.grad!.toArray(), gw: w ? w.grad!.toArray() : null };
  for (const t of [x, w, gy, y, loss]) t?.dispose();
  return out;
}

gpuTest('headNorm: fused permute + L2 norm + per-head scale, forward and gradients, against float64 on the CPU', () => {
  const gen = new Generator(7);
  const random = (count: number, scale = 1, offset = 0) =>
    Float64Array.from({ length: count }, () => offset + scale * gen.normal());
  for (const shape of [
    [1, 130, 24, 128],
    [2, 67, 3, 64],
    [1, 33, 1, 32],
    [2, 5, 2, 80],
    [1, 9, 4, 256],
  ]) {
    const [batch, n, heads, dim] = shape as [number, number, number, number];
    const count = batch * n * heads * dim;
    const xs = random(count, 2),
      gys = random(count);
    xs.fill(0, 0, dim); // an all-zero row: eps keeps it finite
    for (const weighted of [true, false]) {
      const ws = weighted ? random(heads * dim, 0.3, 1) : null;
      const ref = run('cpu', 'float64', shape, xs, ws, gys);
      for (const [dtype, tol] of [
        ['float64', 1e-12],
        ['float32', 1e-5],
        ['bfloat16', 1e-2],
      ] as [DType, number][]) {
        const got = run('cuda', dtype, shape, xs, ws, gys);
        const label = `headNorm [${shape}] ${dtype}${weighted ? ' weighted' : ''}`;
        for (const key of ['y', 'gx', 'gw'] as const) {
          if (!ref[key]) continue;
          const err = relativeError(ref[key]!, got[key]!);
          assert.ok(err <= tol, `${label} ${key}: relative error ${err.toExponential(2)} > ${tol}`);
        }
      }
    }
  }
});

gpuTest('writeHeadRows on CUDA: the bits of headNorm + scatterRows on CUDA, and the CPU engine’s values', () => {
  for (const [i, c] of HEAD_ROWS_CASES.entries())
    for (const [dtype, tol] of [
      ['float64', 1e-12],
      ['float32', 1e-5],
      ['bfloat16', 1e-2],
    ] as const) {
      const what = `case ${i} (${JSON.stringify(c)}) in ${dtype}`;
      const { fused, composed } = runHeadRowsCase(c, dtype, 'cuda', 11 + i);
      assert.deepEqual(fused.q, composed.q, `${what}: queries`);
      assert.deepEqual(fused.keys, composed.keys, `${what}: key pool`);
      assert.deepEqual(fused.values, composed.values, `${what}: value pool`);
      const reference = runHeadRowsCase(c, dtype, 'cpu', 11 + i).fused;
      for (const part of ['q', 'keys', 'values'] as const) {
        const error = relativeError(reference[part], fused[part]);
        assert.ok(error <= tol, `${what}: ${part} differs from the CPU engine's by ${error}`);
      }
    }
});
