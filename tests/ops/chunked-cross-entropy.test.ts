// The chunked linear cross-entropy against finite differences and against the unchunked head
// (linear → crossEntropy), for every block size from one row to all rows.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as A from '../../src/index.js';
import { chunkedLinearCrossEntropy } from '../../src/ops/chunked-cross-entropy.js';
import { gradcheck, randomValues } from '../helpers/gradcheck.js';

const { tensor, tidy, Generator } = A;

const rows = 7,
  dim = 5,
  vocab = 11;
// Row 2 and row 5 are masked, as the packer masks document boundaries.
const targetValues = [3, 0, -100, 10, 7, -100, 1];

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

describe('chunkedLinearCrossEntropy', () => {
  for (const chunkRows of [1, 3, 7, 64]) {
    test(`float64 gradients match finite differences (blocks of ${chunkRows} rows, with bias)`, () => {
      const targets = tensor(targetValues, [rows], { dtype: 'int32' });
      gradcheck('chunked CE mean', (h, w, b) => chunkedLinearCrossEntropy(h!, w!, b!, targets, { chunkRows }), [
        { shape: [rows, dim] },
        { shape: [vocab, dim] },
        { shape: [vocab] },
      ]);
      gradcheck(
        'chunked CE sum, no bias',
        (h, w) => chunkedLinearCrossEntropy(h!, w!, null, targets, { chunkRows, reduction: 'sum' }),
        [{ shape: [rows, dim] }, { shape: [vocab, dim] }],
      );
      targets.dispose();
    });
  }

  for (const dtype of ['float32', 'bfloat16'] as const) {
    test(`${dtype}: loss and gradients equal the unchunked linear → crossEntropy`, () => {
      const gen = new Generator(7);
      const h0 = randomValues([rows, dim], gen);
      const w0 = randomValues([vocab, dim], gen, 0.5);
      const b0 = randomValues([vocab], gen, 0.1);
      const run = (chunked: boolean) =>
        tidy(() => {
          const h = tensor(h0, [rows, dim], { dtype, requiresGrad: true });
          const w = tensor(w0, [vocab, dim], { dtype, requiresGrad: true });
          const b = tensor(b0, [vocab], { dtype, requiresGrad: true });
          const targets = tensor(targetValues, [rows], { dtype: 'int32' });
          const loss = chunked
            ? chunkedLinearCrossEntropy(h, w, b, targets, { chunkRows: 3 })
            : A.crossEntropy(A.linear(h, w, b), targets);
          loss.backward();
          return [loss.toArray(), h.grad!.toArray(), w.grad!.toArray(), b.grad!.toArray()];
        });
      const full = run(false);
      const chunked = run(true);
      // Same kernels on the same values: float32 agrees to rounding; bfloat16 blocks round the same products.
      const tolerance = dtype === 'float32' ? 1e-5 : 2e-2;
      for (const [i, name] of ['loss', 'd hidden', 'd weight', 'd bias'].entries())
        assert.ok(
          maxAbsDiff(chunked[i]!, full[i]!) <= tolerance,
          `${name}: chunked ${Array.from(chunked[i]!).slice(0, 4)} vs full ${Array.from(full[i]!).slice(0, 4)}`,
        );
      assert.ok(Number.isFinite(full[0]![0]!) && full[0]![0]! > 0);
    });
  }

  test('a weight that already holds a gradient (tied embedding) gets the head gradient added', () => {
    const gen = new Generator(3);
    const h0 = randomValues([rows, dim], gen);
    const w0 = randomValues([vocab, dim], gen);
    const ids = [1, 4, 4, 9];
    const run = (chunked: boolean) =>
      tidy(() => {
        const w = tensor(w0, [vocab, dim], { dtype: 'float64', requiresGrad: true });
        const h = A.add(
          tensor(h0, [rows, dim], { dtype: 'float64' }),
          A.sum(A.embedding(w, tensor(ids, [4], { dtype: 'int32' }))),
        );
        const targets = tensor(targetValues, [rows], { dtype: 'int32' });
        const loss = chunked
          ? chunkedLinearCrossEntropy(h, w, null, targets, { chunkRows: 2 })
          : A.crossEntropy(A.linear(h, w), targets);
        loss.backward();
        return w.grad!.toArray();
      });
    assert.ok(maxAbsDiff(run(true), run(false)) < 1e-12);
  });

  test('every row ignored: loss 0, zero gradients', () => {
    tidy(() => {
      const h = tensor(randomValues([3, dim], new Generator(1)), [3, dim], { dtype: 'float64', requiresGrad: true });
      const w = tensor(randomValues([vocab, dim], new Generator(2)), [vocab, dim], {
        dtype: 'float64',
        requiresGrad: true,
      });
      const loss = chunkedLinearCrossEntropy(h, w, null, tensor([-100, -100, -100], [3], { dtype: 'int32' }), {
        chunkRows: 2,
      });
      assert.equal(loss.item(), 0);
      loss.backward();
      assert.ok(Array.from(h.grad!.toArray()).every((v) => v === 0));
      assert.ok(Array.from(w.grad!.toArray()).every((v) => v === 0));
    });
  });

  test('bad input is refused with the problem named', () => {
    tidy(() => {
      const h = tensor(new Float64Array(rows * dim), [rows, dim], { dtype: 'float64' });
      const w = tensor(new Float64Array(vocab * dim), [vocab, dim], { dtype: 'float64' });
      const t = tensor(targetValues, [rows], { dtype: 'int32' });
      assert.throws(
        () => chunkedLinearCrossEntropy(h, w, null, tensor([1, 2, 3, 4, 5, 6, 11], [rows], { dtype: 'int32' })),
        /target 11 at position 6 is out of range \[0, 11\)/,
      );
      assert.throws(() => chunkedLinearCrossEntropy(h, w, null, t, { chunkRows: 0 }), /chunkRows must be a positive/);
      assert.throws(
        () =>
          chunkedLinearCrossEntropy(h, tensor(new Float64Array(vocab * 4), [vocab, 4], { dtype: 'float64' }), null, t),
        /hidden must be \[rows, dim\] and weight \[vocab, dim\]/,
      );
      assert.throws(
        () => chunkedLinearCrossEntropy(h, w, null, tensor([1, 2], [2], { dtype: 'int32' })),
        /targets \[2\] do not match hidden \[7, 5\]/,
      );
    });
  });
});
