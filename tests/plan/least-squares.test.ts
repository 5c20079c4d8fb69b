import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fitLeastSquares } from '../../src/plan/least-squares.js';

test('fitLeastSquares recovers the coefficients of exact data, whatever the columns’ scales', () => {
  // Seconds per step as the calibration sees them: a fixed part, per layer, per request, per weight byte.
  const truth = [1.1e-3, 4.6e-4, 1.9e-5, 1 / 5.6e9];
  const rows: number[][] = [];
  // Weight bytes of a model `width` wide: not a combination of the other columns, as in the calibration.
  for (const width of [64, 256])
    for (const depth of [2, 4, 8, 16])
      for (const batch of [1, 4, 16]) rows.push([1, depth, batch, 4 * (12 * depth * width ** 2 + 512 * width)]);
  const b = rows.map((r) => r.reduce((s, x, j) => s + x * truth[j]!, 0));
  const fitted = fitLeastSquares(rows, b);
  fitted.forEach((x, j) => assert.ok(Math.abs(x / truth[j]! - 1) < 1e-6, `coefficient ${j}: ${x} for ${truth[j]}`));
});

test('fitLeastSquares averages noise out: the residual is orthogonal to every column', () => {
  const rows = [1, 2, 3, 4, 5, 6].map((x) => [1, x]);
  const b = [2.1, 3.9, 6.2, 7.8, 10.1, 12.0];
  const [c, m] = fitLeastSquares(rows, b);
  const residual = rows.map((r, i) => b[i]! - c! - m! * r[1]!);
  assert.ok(Math.abs(residual.reduce((s, e) => s + e, 0)) < 1e-9);
  assert.ok(Math.abs(residual.reduce((s, e, i) => s + e * rows[i]![1]!, 0)) < 1e-9);
});

test('fitLeastSquares names what it cannot solve', () => {
  assert.throws(() => fitLeastSquares([[1, 2]], [1]), /1 measurements cannot determine 2 unknowns/);
  assert.throws(() => fitLeastSquares([[1], [2]], [1]), /2 rows but 1 right-hand sides/);
  // Two columns that are the same measurement twice.
  assert.throws(
    () =>
      fitLeastSquares(
        [
          [1, 2],
          [2, 4],
          [3, 6],
        ],
        [1, 2, 3],
      ),
    /do not separate unknown 1/,
  );
});
