import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tidy } from '../../src/tensor/scope.js';
import { Generator } from '../../src/tensor/random.js';
import { randn } from '../../src/ops/creation.js';
import { mul } from '../../src/ops/elementwise.js';
import { sum } from '../../src/ops/reduce.js';
import { shiftTokens } from '../../src/ops/fused/token-shift.js';
import { values } from './helpers.js';

/** out[b, t, f] for chunk k = f / chunk (k ≤ shifts): x[b, t − k, f] if t − k ≥ 0 and in the same document. */
function expected(
  x: Float64Array,
  batch: number,
  n: number,
  dim: number,
  shifts: number,
  segments: Int32Array | null,
): Float64Array {
  const chunk = Math.floor(dim / (shifts + 1));
  const out = new Float64Array(x.length);
  for (let b = 0; b < batch; b++)
    for (let t = 0; t < n; t++)
      for (let f = 0; f < dim; f++) {
        const k = f < chunk * (shifts + 1) ? Math.floor(f / chunk) : 0;
        const s = t - k;
        const visible = s >= 0 && (!segments || segments[b * n + s] === segments[b * n + t]);
        out[(b * n + t) * dim + f] = visible ? x[(b * n + s) * dim + f]! : 0;
      }
  return out;
}

for (const [shifts, dim, segmented] of [
  [1, 8, false],
  [2, 7, false],
  [1, 6, true],
  [3, 9, true],
  [2, 6, false],
] as const) {
  test(
    `token shift ${shifts} over ${dim} features${segmented ? ' with document boundaries' : ''}: values and ` +
      `gradient`,
    () => {
      tidy(() => {
        const batch = 2,
          n = shifts === 2 && dim === 6 ? 1 : 5;
        const g = new Generator(shifts * 10 + dim);
        const x = randn([batch, n, dim], { generator: g, dtype: 'float64', requiresGrad: true });
        const segments = segmented ? Int32Array.from({ length: batch * n }, (_, i) => (i % n < 2 ? 0 : 1)) : null;
        const out = shiftTokens(x, shifts, segments);
        assert.deepEqual(values(out), expected(values(x), batch, n, dim, shifts, segments));
        // The gradient is the transpose of the same linear map: <shift(x), w> = <x, shiftᵀ(w)>.
        const w = randn([batch, n, dim], { generator: g, dtype: 'float64' });
        sum(mul(out, w)).backward();
        const gx = values(x.grad!),
          wv = values(w),
          xv = values(x);
        for (let i = 0; i < xv.length; i++) {
          const e = new Float64Array(xv.length);
          e[i] = 1;
          const column = expected(e, batch, n, dim, shifts, segments);
          assert.ok(Math.abs(column.reduce((s, c, j) => s + c * wv[j]!, 0) - gx[i]!) < 1e-12, `gradient ${i}`);
        }
      });
    },
  );
}
