import assert from 'node:assert/strict';
import { Tensor, tensor, tidy, noGrad, Generator } from '../../src/index.js';
import { numel } from '../../src/tensor/shape.js';

/** Random float64 values from a seeded generator (never zeros, never ties in practice). */
export function randomValues(shape: readonly number[], gen: Generator, scale = 1, offset = 0): Float64Array {
  const out = new Float64Array(numel(shape));
  for (let i = 0; i < out.length; i++) out[i] = offset + scale * gen.normal();
  return out;
}

export interface GradInput {
  shape: number[];
  values?: Float64Array;
  /** Inputs that are not differentiated (e.g. int32 ids) are passed as ready tensors. */
  fixed?: Tensor;
}

function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0,
    den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-300);
}

/**
 * Checks the analytic gradients of `fn` against central finite differences in float64. The scalar
 * checked is sum(fn(inputs) · R) for a fixed random R, so every output element contributes.
 */
export function gradcheck(
  name: string,
  fn: (...xs: Tensor[]) => Tensor,
  inputs: GradInput[],
  {
    seed = 1,
    eps = 1e-6,
    tolerance = 1e-6,
    scale = 1,
    offset = 0,
  }: { seed?: number; eps?: number; tolerance?: number; scale?: number; offset?: number } = {},
): void {
  const gen = new Generator(seed);
  const values = inputs.map((inp) => (inp.fixed ? null : (inp.values ?? randomValues(inp.shape, gen, scale, offset))));
  const outShape = noGrad(() =>
    tidy(() => {
      const xs = inputs.map((inp, i) => inp.fixed ?? tensor(values[i]!, inp.shape, { dtype: 'float64' }));
      return [...fn(...xs).shape];
    }),
  );
  const weights = randomValues(outShape, gen);

  const objective = (vals: (Float64Array | null)[]): number =>
    noGrad(() =>
      tidy(() => {
        const xs = inputs.map((inp, i) => inp.fixed ?? tensor(vals[i]!, inp.shape, { dtype: 'float64' }));
        const out = fn(...xs).toArray();
        let s = 0;
        for (let i = 0; i < out.length; i++) s += out[i]! * weights[i]!;
        return s;
      }),
    );

  const analytic = tidy(() => {
    const xs = inputs.map(
      (inp, i) => inp.fixed ?? tensor(values[i]!, inp.shape, { dtype: 'float64', requiresGrad: true }),
    );
    const out = fn(...xs);
    assert.equal(out.requiresGrad, true, `${name}: output does not require grad`);
    const r = tensor(weights, out.shape, { dtype: 'float64' });
    out.mul(r).sum().backward();
    return xs.map((x, i) => {
      if (inputs[i]!.fixed) return null;
      assert.ok(x.grad, `${name}: input ${i} received no gradient`);
      return x.grad.toArray();
    });
  });

  values.forEach((v, i) => {
    if (!v) return;
    const numeric = new Float64Array(v.length);
    for (let j = 0; j < v.length; j++) {
      const orig = v[j]!;
      v[j] = orig + eps;
      const up = objective(values);
      v[j] = orig - eps;
      const down = objective(values);
      v[j] = orig;
      numeric[j] = (up - down) / (2 * eps);
    }
    const err = relError(analytic[i]!, numeric);
    assert.ok(
      err < tolerance,
      `${name}: gradient of input ${i} ${JSON.stringify(inputs[i]!.shape)} differs from finite differences ` +
        `(relative error ${err.toExponential(2)} ≥ ${tolerance})`,
    );
  });
}
