// The fused ops (residual add + norm, bias + GELU, head norm) on the CPU engine: gradients against float64 finite
// differences, and values and gradients equal to their composed forms (src/ops/fused/).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as A from '../../src/index.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import type { DType } from '../../src/tensor/dtype.js';
import { Generator } from '../../src/tensor/random.js';
import { gradcheck, randomValues } from '../helpers/gradcheck.js';

const { tensor, tidy } = A;

interface Variant {
  name: string;
  rms: boolean;
  affine: boolean;
  scale: boolean;
  constant: number;
}

const VARIANTS: Variant[] = [
  { name: 'layer norm, DeepNorm residual (scale and constant)', rms: false, affine: true, scale: true, constant: 2.83 },
  { name: 'layer norm, plain residual', rms: false, affine: true, scale: false, constant: 1 },
  { name: 'layer norm without affine parameters', rms: false, affine: false, scale: true, constant: 0.5 },
  { name: 'RMS norm with scale', rms: true, affine: true, scale: true, constant: 1.7 },
  { name: 'RMS norm, constant only', rms: true, affine: false, scale: false, constant: 3 },
];

/** The inputs of a variant by name (a, b, then the present parameters) with their shapes. */
function inputNames(v: Variant): string[] {
  return [
    'a',
    'b',
    ...(v.scale ? ['scale'] : []),
    ...(v.affine ? ['weight'] : []),
    ...(v.affine && !v.rms ? ['bias'] : []),
  ];
}

function shapesOf(v: Variant, shape: number[]): number[][] {
  const d = shape[shape.length - 1]!;
  return inputNames(v).map((n) => (n === 'a' || n === 'b' ? shape : [d]));
}

function named(v: Variant, xs: Tensor[]): Record<string, Tensor> {
  return Object.fromEntries(inputNames(v).map((n, i) => [n, xs[i]!]));
}

function optionsOf(v: Variant, t: Record<string, Tensor>): A.AddNormOptions {
  return {
    rms: v.rms,
    weight: t.weight ?? null,
    bias: t.bias ?? null,
    residualScale: t.scale ?? null,
    residualConstant: v.constant,
  };
}

function relativeError(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  let num = 0,
    den = 0;
  for (let i = 0; i < ref.length; i++) {
    num += (got[i]! - ref[i]!) ** 2;
    den += ref[i]! ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-300));
}

/** Runs `fn` on fresh leaves built from `values` and returns the output and every input's gradient. */
function valuesAndGrads(
  fn: (xs: Tensor[]) => Tensor,
  values: Float64Array[],
  shapes: number[][],
  dtype: DType,
  weights: Float64Array,
): Float64Array[] {
  return tidy(() => {
    const xs = values.map((v, i) => tensor(v, shapes[i]!, { dtype, requiresGrad: true }));
    const out = fn(xs);
    A.sum(A.mul(out, tensor(weights, out.shape, { dtype }))).backward();
    return [Float64Array.from(out.toArray()), ...xs.map((x) => Float64Array.from(x.grad!.toArray()))];
  });
}

describe('addNorm: norm(a + b·scale·c) in one op', () => {
  for (const v of VARIANTS) {
    for (const shape of [
      [3, 5],
      [2, 3, 8],
    ]) {
      test(`gradients vs finite differences: ${v.name} ${JSON.stringify(shape)}`, () => {
        gradcheck(
          'addNorm',
          (...xs) => {
            const t = named(v, xs);
            return A.addNorm(t.a!, t.b!, optionsOf(v, t));
          },
          shapesOf(v, shape).map((s) => ({ shape: s })),
        );
      });
      test(`addThenNorm gradients (through the sum and the norm): ${v.name} ${JSON.stringify(shape)}`, () => {
        gradcheck(
          'addThenNorm',
          (...xs) => {
            const t = named(v, xs);
            const { sum, out } = A.addThenNorm(t.a!, t.b!, optionsOf(v, t));
            return A.add(out, A.mul(sum, 0.7));
          },
          shapesOf(v, shape).map((s) => ({ shape: s })),
        );
      });
    }
    for (const dtype of ['float32', 'float64'] as DType[]) {
      test(`equals the unfused add and norm: ${v.name} (${dtype})`, () => {
        const shape = [4, 37];
        const gen = new Generator(5);
        const shapes = shapesOf(v, shape);
        const values = shapes.map((s, i) => randomValues(s, gen, 1, i >= 2 ? 1 : 0));
        const weights = randomValues(shape, gen);
        const tol = dtype === 'float64' ? 1e-12 : 2e-6;
        const fused = valuesAndGrads(
          (xs) => {
            const t = named(v, xs);
            return A.addNorm(t.a!, t.b!, optionsOf(v, t));
          },
          values,
          shapes,
          dtype,
          weights,
        );
        const reference = valuesAndGrads(
          (xs) => {
            const t = named(v, xs);
            return A.addNormComposed(t.a!, t.b!, optionsOf(v, t));
          },
          values,
          shapes,
          dtype,
          weights,
        );
        fused.forEach((got, i) => {
          const err = relativeError(got, reference[i]!);
          assert.ok(
            err < tol,
            `${i === 0 ? 'output' : `gradient of ${inputNames(v)[i - 1]}`}: relative ` +
              `error ${err.toExponential(2)} vs the unfused ops`,
          );
        });
        const withSum = valuesAndGrads(
          (xs) => {
            const t = named(v, xs);
            const r = A.addThenNorm(t.a!, t.b!, optionsOf(v, t));
            return A.add(r.out, r.sum);
          },
          values,
          shapes,
          dtype,
          weights,
        );
        const referenceSum = valuesAndGrads(
          (xs) => {
            const t = named(v, xs);
            const r = A.addThenNormComposed(t.a!, t.b!, optionsOf(v, t));
            return A.add(r.out, r.sum);
          },
          values,
          shapes,
          dtype,
          weights,
        );
        withSum.forEach((got, i) => {
          const err = relativeError(got, referenceSum[i]!);
          assert.ok(
            err < tol,
            `addThenNorm ${i === 0 ? 'output' : `gradient of ${inputNames(v)[i - 1]}`}: relative ` +
              `error ${err.toExponential(2)} vs the unfused ops`,
          );
        });
      });
    }
  }

  test('bfloat16: the fused residual (one rounding) is close to the unfused one', () => {
    const v = VARIANTS[0]!;
    const shape = [6, 64];
    const gen = new Generator(9);
    const shapes = shapesOf(v, shape);
    const values = shapes.map((s, i) => randomValues(s, gen, 1, i >= 2 ? 1 : 0));
    const weights = randomValues(shape, gen);
    const fused = valuesAndGrads(
      (xs) => {
        const t = named(v, xs);
        return A.addNorm(t.a!, t.b!, optionsOf(v, t));
      },
      values,
      shapes,
      'bfloat16',
      weights,
    );
    const reference = valuesAndGrads(
      (xs) => {
        const t = named(v, xs);
        return A.addNormComposed(t.a!, t.b!, optionsOf(v, t));
      },
      values,
      shapes,
      'float64',
      weights,
    );
    fused.forEach((got, i) => {
      const err = relativeError(got, reference[i]!);
      assert.ok(
        err < 3e-2,
        `bf16 ${i === 0 ? 'output' : `gradient ${i}`}: relative error ${err.toExponential(2)} vs float64`,
      );
    });
  });

  test('argument errors name the problem', () => {
    tidy(() => {
      const a = tensor(new Float64Array(6), [2, 3]);
      assert.throws(
        () => A.addNorm(a, tensor(new Float64Array(4), [2, 2])),
        /branch \[2, 3\] and the residual \[2, 2\] differ/,
      );
      assert.throws(
        () => A.addNorm(a, a, { residualScale: tensor([1, 2], [2]) }),
        /residualScale \[2\] does not match the last axis/,
      );
      assert.throws(() => A.addNorm(a, a, { rms: true, bias: tensor([0, 0, 0], [3]) }), /RMS norm has no bias/);
      assert.throws(() => A.addNorm(a, tensor(new Float64Array(6), [2, 3], { dtype: 'float64' })), /dtype mismatch/);
    });
  });
});

describe('biasGelu: gelu(x + bias) in one op', () => {
  for (const shape of [[4, 6], [2, 3, 5], [7]]) {
    test(`gradients vs finite differences ${JSON.stringify(shape)}`, () => {
      gradcheck('biasGelu', (x, b) => A.biasGelu(x!, b!), [{ shape }, { shape: [shape[shape.length - 1]!] }]);
    });
  }
  for (const dtype of ['float32', 'float64', 'bfloat16'] as DType[]) {
    test(`equals gelu(add(x, bias)) (${dtype})`, () => {
      const shape = [5, 40];
      const gen = new Generator(3);
      const shapes = [shape, [40]];
      const values = shapes.map((s) => randomValues(s, gen, 2));
      const weights = randomValues(shape, gen);
      const fused = valuesAndGrads((xs) => A.biasGelu(xs[0]!, xs[1]!), values, shapes, dtype, weights);
      const reference = valuesAndGrads(
        (xs) => A.biasGeluComposed(xs[0]!, xs[1]!),
        values,
        shapes,
        dtype === 'bfloat16' ? 'float64' : dtype,
        weights,
      );
      const tol = dtype === 'float64' ? 1e-12 : dtype === 'float32' ? 1e-6 : 2e-2;
      fused.forEach((got, i) => {
        const err = relativeError(got, reference[i]!);
        assert.ok(
          err < tol,
          `${['output', 'gradient of x', 'gradient of bias'][i]}: relative error ${err.toExponential(2)}`,
        );
      });
    });
  }
  test('a bias that does not match the last axis is refused', () => {
    tidy(() =>
      assert.throws(
        () => A.biasGelu(tensor(new Float64Array(6), [2, 3]), tensor([1, 2], [2])),
        /bias \[2\] does not match the last axis of x \[2, 3\]/,
      ),
    );
  });
});

describe('headNorm (qk-norm on the head layout)', () => {
  test('values: x / ‖x‖ · weight[head], moved to [batch, heads, n, dim]', () => {
    const [batch, n, heads, dim] = [2, 3, 4, 5];
    const gen = new Generator(11);
    const xs = randomValues([batch, n, heads, dim], gen),
      ws = randomValues([heads, dim], gen);
    tidy(() => {
      const y = A.headNorm(
        tensor(xs, [batch, n, heads, dim], { dtype: 'float64' }),
        tensor(ws, [heads, dim], { dtype: 'float64' }),
      );
      assert.deepEqual(y.shape, [batch, heads, n, dim]);
      const got = y.toArray();
      for (let b = 0; b < batch; b++)
        for (let t = 0; t < n; t++)
          for (let h = 0; h < heads; h++) {
            const row = ((b * n + t) * heads + h) * dim;
            let ss = 0;
            for (let j = 0; j < dim; j++) ss += xs[row + j]! ** 2;
            for (let j = 0; j < dim; j++) {
              const want = (xs[row + j]! / Math.sqrt(ss + 1e-24)) * ws[h * dim + j]!;
              assert.ok(
                Math.abs(got[((b * heads + h) * n + t) * dim + j]! - want) < 1e-12,
                `element b${b} t${t} h${h} j${j}`,
              );
            }
          }
    });
  });

  test('gradients of x and the per-head weight match finite differences', () => {
    gradcheck('headNorm', (x, w) => A.headNorm(x!, w!), [{ shape: [1, 3, 2, 4] }, { shape: [2, 4] }], { seed: 12 });
  });

  test('rejects a weight that is not [heads, dim] and x that is not 4-d', () => {
    tidy(() => {
      const x = A.zeros([1, 2, 3, 4], 'float32');
      assert.throws(
        () => A.headNorm(x, A.zeros([3, 5], 'float32')),
        /weight \[3, 5\] must be \[heads, dim\] = \[3, 4\]/,
      );
      assert.throws(() => A.headNorm(A.zeros([2, 3, 4], 'float32')), /x must be \[batch, n, heads, dim\]/);
    });
  });
});
