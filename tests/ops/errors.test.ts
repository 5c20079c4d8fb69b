// Bad input gives an error naming the op, the argument and the shapes — never a crash.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as A from '../../src/index.js';

const { tensor, zeros, tidy } = A;

describe('errors', () => {
  test('shape mismatches name the op and both shapes', () => {
    tidy(() => {
      assert.throws(() => A.add(zeros([2, 3]), zeros([4])), /add: shapes \[2, 3\] and \[4\] cannot be broadcast/);
      assert.throws(
        () => A.matmul(zeros([2, 3]), zeros([4, 5])),
        /matmul: inner dimensions differ: a is \[2, 3\], b is \[4, 5\]/,
      );
      assert.throws(
        () => A.linear(zeros([2, 3]), zeros([4, 5])),
        /linear: input \[2, 3\] does not match weight \[4, 5\]/,
      );
      assert.throws(
        () => A.reshape(zeros([2, 3]), [4, 2]),
        /reshape: cannot reshape \[2, 3\] \(6 elements\) into \[4, 2\]/,
      );
      assert.throws(() => A.concat([zeros([2, 3]), zeros([3, 3])], 1), /concat: tensors\[1\] has shape \[3, 3\]/);
      assert.throws(
        () => A.layerNorm(zeros([2, 3]), zeros([4]), null),
        /layerNorm: weight \[4\] does not match the last axis of x \[2, 3\]/,
      );
      assert.throws(() => A.narrow(zeros([2, 3]), 1, 2, 2), /narrow: range \[2, 4\) is outside axis 1 of size 3/);
      assert.throws(() => A.sum(zeros([2, 3]), 2), /sum: axis 2 is out of range for rank 2/);
      assert.throws(() => A.expand(zeros([2, 3]), [2, 4]), /expand: cannot expand \[2, 3\] to \[2, 4\]/);
      assert.throws(() => tensor([1, 2, 3], [2, 2]), /3 values do not fill shape \[2, 2\]/);
    });
  });

  test('dtype mismatches name both arguments', () => {
    tidy(() => {
      assert.throws(
        () => A.add(zeros([2]), zeros([2], 'float64')),
        /add: dtype mismatch: 'a' is float32 \[2\] but 'b' is float64 \[2\]/,
      );
      assert.throws(() => A.matmul(zeros([2, 2]), zeros([2, 2], 'bfloat16')), /matmul: dtype mismatch/);
      assert.throws(() => A.embedding(zeros([4, 2]), zeros([3])), /embedding: 'ids' must be int32, got float32 \[3\]/);
      assert.throws(() => A.exp(zeros([2], 'int32')), /exp: 'x' must be a floating-point tensor/);
    });
  });

  test('out-of-range indices report the value and position', () => {
    tidy(() => {
      const table = zeros([4, 2]);
      assert.throws(
        () => A.embedding(table, tensor([0, 3, 4], [3], { dtype: 'int32' })),
        /embedding: token id 4 at position 2 of ids \[3\] is out of range \[0, 4\)/,
      );
      assert.throws(() => A.embedding(table, tensor([-1], [1], { dtype: 'int32' })), /token id -1 at position 0/);
      assert.throws(
        () => A.crossEntropy(zeros([2, 5]), tensor([1, 7], [2], { dtype: 'int32' })),
        /crossEntropy: target 7 at position 1 is out of range \[0, 5\)/,
      );
      assert.throws(
        () => A.crossEntropy(zeros([2, 5]), tensor([1], [1], { dtype: 'int32' })),
        /crossEntropy: targets \[1\] do not match logits \[2, 5\]/,
      );
      assert.throws(() => tensor([1.5], [1], { dtype: 'int32' }), /value 1.5 at index 0 is not a 32-bit integer/);
      // Ids without a host copy (the result of an op) are checked by the engine, with the same message.
      const computed = A.narrow(tensor([9, 0, 3, 4], [4], { dtype: 'int32' }), 0, 1, 3).contiguous();
      assert.throws(
        () => A.embedding(table, computed),
        /embedding: token id 4 at position 2 of ids \[3\] is out of range \[0, 4\)/,
      );
      assert.throws(
        () => A.crossEntropy(zeros([3, 4]), computed),
        /crossEntropy: target 4 at position 2 is out of range \[0, 4\)/,
      );
    });
  });

  test('host-checked and engine-checked ids give the same rows and losses', () => {
    tidy(() => {
      const table = A.randn([6, 3]);
      const host = tensor([5, 0, 2, 2], [4], { dtype: 'int32' });
      const computed = A.narrow(tensor([1, 5, 0, 2, 2], [5], { dtype: 'int32' }), 0, 1, 4).contiguous();
      assert.deepEqual(
        Array.from(A.embedding(table, host).toArray()),
        Array.from(A.embedding(table, computed).toArray()),
      );
      const logits = A.randn([4, 6]);
      assert.equal(A.crossEntropy(logits, host).item(), A.crossEntropy(logits, computed).item());
      // A host copy is a copy: changing the caller's array after the upload changes nothing.
      const values = new Int32Array([1, 2]);
      const ids = tensor(values, [2], { dtype: 'int32' });
      values[0] = 99;
      assert.deepEqual(Array.from(A.embedding(table, ids).toArray()), Array.from(table.toArray().slice(3, 9)));
    });
  });

  test('use of a disposed tensor names the op and argument', () => {
    const a = zeros([2, 2]);
    const b = zeros([2, 2]);
    b.dispose();
    assert.throws(() => A.add(a, b), /add: argument 'b' of shape \[2, 2\] was already disposed/);
    assert.throws(() => b.toArray(), /toArray: argument 'input' of shape \[2, 2\] was already disposed/);
    assert.throws(() => A.matmul(b, a), /matmul: argument 'a' of shape \[2, 2\] was already disposed/);
    a.dispose();
    a.dispose(); // disposing twice is harmless
  });

  test('backward on a saved tensor that was disposed fails clearly', () => {
    const x = tensor([1, 2, 3], [3], { requiresGrad: true });
    const y = A.exp(x);
    const s = A.sum(y);
    y.dispose();
    assert.throws(() => s.backward(), /was already disposed/);
    s.dispose();
    x.dispose();
  });

  test('bad devices and dtypes', () => {
    assert.throws(() => zeros([2], 'float32', 'tpu'), /unknown device 'tpu'/);
    assert.throws(() => A.assertDType('float8', 'load'), /load: unknown dtype 'float8'/);
    assert.throws(() => A.dropout(zeros([2]), 1.5, 0), /dropout: probability 1.5 must be in \[0, 1\)/);
  });
});
