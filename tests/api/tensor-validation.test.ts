// The shapes, strides and offsets every tensor is checked against (issue #13's reproductions first: each
// of them used to abort the process, segfault, or read memory outside the tensor).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as A from '../../src/index.js';

const { Tensor, ops, tidy } = A;

describe('tensor shapes and views', () => {
  test('the reproductions from the issue are errors naming the problem', () => {
    tidy(() => {
      assert.throws(() => ops.expand(A.ones([1, 3]), [-4, 3]), /expand: invalid shape \[-4, 3\]: dimension 0 is -4/);
      assert.throws(() => Tensor.empty([-1, 5]), /empty: invalid shape \[-1, 5\]: dimension 0 is -1/);
      assert.throws(() => Tensor.empty([1.5, 2]), /empty: invalid shape \[1.5, 2\]: dimension 0 is 1.5/);
      assert.throws(
        () => A.ones([4]).view([4], [1], 1e11),
        /view: .* reaches element 100000000003, outside its buffer of 4 elements/,
      );
      assert.throws(
        () => A.ones([4]).view([4096], [1], 0),
        /view: .* reaches element 4095, outside its buffer of 4 elements/,
      );
    });
  });

  test('dimensions must be non-negative safe integers whose product is a safe integer', () => {
    tidy(() => {
      for (const bad of [NaN, Infinity, -Infinity, -1, 0.5, 2 ** 53, 2 ** 53 + 2, '3', null]) {
        assert.throws(
          () => Tensor.empty([2, bad as number]),
          /empty: invalid shape .*dimension 1 is/,
          `dimension ${String(bad)}`,
        );
        assert.throws(() => A.zeros([bad as number]), /full: invalid shape/);
        assert.throws(() => A.randn([bad as number]), /randn: invalid shape/);
      }
      assert.throws(
        () => Tensor.empty([2 ** 30, 2 ** 30, 2 ** 30]),
        /empty: shape \[1073741824, 1073741824, 1073741824\] has more elements than can be addressed/,
      );
      assert.throws(() => Tensor.empty(5 as unknown as number[]), /empty: shape must be an array of dimensions, got 5/);
      assert.throws(() => Tensor.empty([2], 'int64' as A.DType), /empty: unknown dtype 'int64'/);
      assert.deepEqual(Tensor.empty([0, 3]).shape, [0, 3]);
    });
  });

  test("a CPU tensor larger than the machine's memory is refused before anything is allocated", () => {
    tidy(() => {
      const before = A.getEngine('cpu').memoryStats().allocated;
      assert.throws(
        () => A.zeros([2 ** 20, 2 ** 20]),
        /a tensor of 4096\.0 GiB does not fit in this machine's .* of memory/,
      );
      assert.throws(() => A.randn([2 ** 20, 2 ** 20]), /randn: a tensor of 4096\.0 GiB does not fit/);
      assert.throws(
        () => A.zeros([2 ** 26, 2 ** 26]),
        /a tensor of 16777216\.0 GiB is more memory than can be addressed/,
      );
      assert.throws(() => A.arange(0, 2 ** 50), /arange: a tensor of .* GiB does not fit/);
      assert.equal(A.getEngine('cpu').memoryStats().allocated, before);
    });
  });

  test('views are checked against their storage, and accepted views read exactly the elements they name', () => {
    tidy(() => {
      const t = A.tensor([0, 1, 2, 3, 4, 5]);
      assert.deepEqual(Array.from(t.view([2, 2], [2, 1], 2).toArray()), [2, 3, 4, 5]);
      assert.deepEqual(Array.from(t.view([3, 2], [0, 5], 0).toArray()), [0, 5, 0, 5, 0, 5]);
      assert.deepEqual(Array.from(t.view([0, 9], [100, 100], 3).toArray()), []);
      const holders = t.storage.holders;
      assert.throws(() => t.view([2, 2], [2, 1], 3), /reaches element 6, outside its buffer of 6 elements/);
      assert.throws(() => t.view([2], [-1], 1), /view: stride 0 is -1 \(strides must be non-negative integers\)/);
      assert.throws(() => t.view([2], [0.5], 0), /view: stride 0 is 0.5/);
      assert.throws(() => t.view([2], [1], -1), /view: offset -1 must be a non-negative integer/);
      assert.throws(() => t.view([2], [1], NaN), /view: offset NaN must be a non-negative integer/);
      assert.throws(() => t.view([2, 2], [1], 0), /view: strides must be an array of 2 integers/);
      assert.throws(() => t.view([2], [2 ** 53], 0), /view: stride 0 is 9007199254740992/);
      assert.throws(() => t.view([2], [2 ** 52], 1), /reaches element 4503599627370497, outside its buffer/);
      // A rejected view takes no reference to the storage: disposing the tensor frees it.
      assert.equal(t.storage.holders, holders);
      // Views of a float32 buffer as float64 see half as many elements.
      assert.throws(
        () => new Tensor(t.storage, [4], 'float64'),
        /tensor: view \[4\] .* outside its buffer of 3 elements/,
      );
    });
  });

  test("a tensor built on another tensor's storage shares it: the buffer lives until both are disposed", () => {
    const a = A.tensor([1, 2, 3]).keep();
    const b = new Tensor(a.storage, [3], 'float32').keep();
    a.dispose();
    assert.deepEqual(Array.from(b.toArray()), [1, 2, 3]);
    b.dispose();
    assert.equal(b.storage.alive, false);
    assert.throws(() => new Tensor(b.storage, [3], 'float32'), /tensor: its storage was already freed/);
  });

  test("shape and stride arrays are copied and frozen: changing the caller's array cannot move a checked view", () => {
    tidy(() => {
      const shape = [2];
      const strides = [1];
      const v = A.tensor([1, 2, 3]).view(shape, strides, 0);
      shape[0] = 1000;
      strides[0] = 1000;
      assert.deepEqual(v.shape, [2]);
      assert.deepEqual(v.strides, [1]);
      assert.throws(() => (v.shape as number[]).push(5), TypeError);
    });
  });

  test('creation ops reject ragged or non-numeric data and bad ranges', () => {
    tidy(() => {
      assert.throws(
        () =>
          A.tensor([
            [1, 2],
            [3, [4]],
          ]),
        /tensor: nested arrays are ragged \(data\[1\]\[1\] is an array, expected a number\)/,
      );
      assert.throws(
        () => A.tensor([[1, 2], [3]]),
        /tensor: nested arrays are ragged \(data\[1\] should be an array of 2\)/,
      );
      assert.throws(
        () => A.tensor('abc' as unknown as number[]),
        /tensor: data must be a number, nested arrays or a typed array, got 'abc'/,
      );
      assert.throws(() => A.tensor([1, 'x' as unknown as number]), /tensor: element 1 is string, not a number/);
      assert.throws(
        () => Tensor.fromArray(null as unknown as number[], [1]),
        /tensor: values must be an array or typed array/,
      );
      assert.throws(() => Tensor.fromArray([1, '2' as unknown as number], [2]), /tensor: value 1 is '2', not a number/);
      assert.throws(() => A.arange(0, 10, 0), /arange: step must not be 0/);
      assert.throws(() => A.arange(0, NaN), /arange: end must be a finite number, got NaN/);
      assert.deepEqual(Array.from(A.arange(0, 10, 3).toArray()), [0, 3, 6, 9]);
    });
  });

  test('layout ops reject bad arguments before making a view', () => {
    tidy(() => {
      const x = A.zeros([2, 3]);
      assert.throws(
        () => ops.reshape(x, 6 as unknown as number[]),
        /reshape: shape must be an array of dimensions, got 6/,
      );
      assert.throws(() => ops.reshape(x, [2, NaN]), /reshape: cannot reshape \[2, 3\]/);
      assert.throws(() => ops.permute(x, 'ab' as unknown as number[]), /permute: order must be an array of axes/);
      assert.throws(() => ops.split(x, 3 as unknown as number[], 0), /split: sizes must be an array/);
      assert.throws(() => ops.concat(x as unknown as A.Tensor[], 0), /concat: expects an array of tensors/);
      assert.throws(() => ops.expand(x, [2, 2 ** 53]), /expand: invalid shape/);
      assert.throws(
        () => ops.pad(x, 0, 2 ** 52, 0),
        /pad: shape \[4503599627370498, 3\] has more elements than can be addressed/,
      );
      // Found by the fuzz: a huge shift count looped over every (empty) chunk.
      const shifted = A.randn([1, 2, 3]);
      assert.throws(
        () => ops.shiftTokensComposed(shifted, 1e300),
        /shiftTokens: shifts must be an integer ≥ 0, got 1e\+300 \(at most 2\^31 − 1/,
      );
      assert.deepEqual(
        Array.from(ops.shiftTokensComposed(shifted, 2 ** 31 - 1).toArray()),
        Array.from(shifted.toArray()),
      );
      assert.throws(
        () => ops.accumulateInto(A.zeros([4, 4]), A.zeros([1])),
        /accumulateInto: gradient \[1\] on cpu does not match leaf \[4, 4\]/,
      );
    });
  });
});
