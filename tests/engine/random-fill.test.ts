// Parameter initialisation through the engines' counter-based random fills: distribution moments,
// determinism per seed, independence of streams, and the same values for every float dtype.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, getEngine } from '../../src/index.js';
import { Generator } from '../../src/tensor/random.js';
import { fillNormal, fillUniform } from '../../src/nn/parameter.js';
import { transpose } from '../../src/ops/layout.js';

const cpu = getEngine('cpu');

function fill(
  distribution: 'normal' | 'uniform',
  a: number,
  b: number,
  seed: number,
  n: number,
  dtype: 'float32' | 'float64' = 'float64',
): Float64Array {
  const t = Tensor.empty([n], dtype);
  cpu.randomFill(t.dense(), n, distribution, a, b, seed);
  const values = Float64Array.from(t.toArray());
  t.dispose();
  return values;
}

function moments(v: Float64Array): { mean: number; std: number; min: number; max: number } {
  let s = 0,
    ss = 0,
    min = Infinity,
    max = -Infinity;
  for (const x of v) {
    s += x;
    ss += x * x;
    min = Math.min(min, x);
    max = Math.max(max, x);
  }
  const mean = s / v.length;
  return { mean, std: Math.sqrt(ss / v.length - mean * mean), min, max };
}

test('normal fill: mean a, standard deviation b, Gaussian tails; uniform fill covers [a, b)', () => {
  const n = 400_000;
  const normal = moments(fill('normal', 1.5, 0.25, 7, n));
  assert.ok(Math.abs(normal.mean - 1.5) < 0.0015, `mean ${normal.mean}`);
  assert.ok(Math.abs(normal.std - 0.25) < 0.0015, `std ${normal.std}`);
  assert.ok(normal.min < 1.5 - 4 * 0.25 && normal.max > 1.5 + 4 * 0.25, 'tails beyond 4σ are reached');
  const values = fill('normal', 0, 1, 7, n);
  const beyond2 = values.filter((x) => Math.abs(x) > 2).length / n;
  assert.ok(Math.abs(beyond2 - 0.0455) < 0.002, `P(|z| > 2) = ${beyond2}`);
  const uniform = moments(fill('uniform', -0.5, 1.5, 8, n));
  assert.ok(uniform.min >= -0.5 && uniform.max < 1.5, `range [${uniform.min}, ${uniform.max}]`);
  assert.ok(Math.abs(uniform.mean - 0.5) < 0.005 && Math.abs(uniform.std - 2 / Math.sqrt(12)) < 0.005);
});

test(
  'random fills are a function of (seed, index): same seed same values, other seed other values, every dtype ' +
    'alike',
  () => {
    const a = fill('normal', 0, 1, 99, 1001),
      b = fill('normal', 0, 1, 99, 1001),
      c = fill('normal', 0, 1, 100, 1001);
    assert.deepEqual(a, b);
    assert.ok(a.some((x, i) => x !== c[i]));
    // A longer fill extends a shorter one: element i never depends on the count.
    assert.deepEqual(fill('normal', 0, 1, 99, 3001).subarray(0, 1001), a);
    const f32 = fill('normal', 0, 1, 99, 1001, 'float32');
    for (let i = 0; i < a.length; i++) assert.equal(f32[i], Math.fround(a[i]!));
    // Neighbouring elements are uncorrelated (Box–Muller pairs included).
    let lag = 0;
    const long = fill('normal', 0, 1, 5, 200_000);
    for (let i = 0; i + 1 < long.length; i++) lag += long[i]! * long[i + 1]!;
    assert.ok(Math.abs(lag / long.length) < 0.01, `lag-1 correlation ${lag / long.length}`);
  },
);

test('fillNormal / fillUniform: seeded by the generator, also into strided views', () => {
  const make = (seed: number): Float64Array => {
    const t = Tensor.empty([64, 32], 'float32');
    fillNormal(t, 0.02, new Generator(seed));
    const v = Float64Array.from(t.toArray());
    t.dispose();
    return v;
  };
  assert.deepEqual(make(3), make(3));
  assert.ok(make(3).some((x, i) => x !== make(4)[i]));
  const base = Tensor.empty([16, 8], 'float64');
  const view = transpose(base);
  fillUniform(view, 0.1, new Generator(1));
  const values = Float64Array.from(base.toArray());
  assert.ok(values.every((x) => x >= -0.1 && x < 0.1) && new Set(values).size === values.length);
  base.dispose();
});
