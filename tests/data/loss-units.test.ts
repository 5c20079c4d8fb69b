import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bitsPerByte, unigramCrossEntropy } from '../../src/data/loss-units.js';
import { ArrayTokenSource } from '../../src/data/token-source.js';

test('bitsPerByte converts nats per token to bits per byte', () => {
  assert.equal(bitsPerByte(Math.LN2, 100, 100), 1);
  assert.ok(Math.abs(bitsPerByte(2, 250, 1000) - 0.5 / Math.LN2) < 1e-12);
  assert.throws(() => bitsPerByte(1, 1, 0), /positive byte count/);
});

test('unigramCrossEntropy uses add-one smoothing over the vocabulary', () => {
  const train = [0, 0, 0, 1];
  const heldOut = [0, 1, 2];
  // p = (3+1)/7, (1+1)/7, (0+1)/7
  const expected = -(Math.log(4 / 7) + Math.log(2 / 7) + Math.log(1 / 7)) / 3;
  assert.ok(Math.abs(unigramCrossEntropy(train, heldOut, 3) - expected) < 1e-12);
  assert.equal(
    unigramCrossEntropy(new ArrayTokenSource(Int32Array.from(train)), Int32Array.from(heldOut), 3),
    unigramCrossEntropy(train, heldOut, 3),
  );
  // With no training data the baseline is the uniform distribution.
  assert.ok(Math.abs(unigramCrossEntropy([], [5, 6], 10) - Math.log(10)) < 1e-12);
  assert.throws(() => unigramCrossEntropy([0], [3], 3), /held-out token 3 is outside the vocabulary/);
});
