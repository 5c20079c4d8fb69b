import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as A from '../../src/index.js';

const { tensor, tidy, zeros, getEngine } = A;
const cpu = () => getEngine('cpu');

describe('tensors', () => {
  test('views share storage: reshape, transpose, narrow, expand make no copies', () => {
    tidy(() => {
      const x = tensor([
        [1, 2, 3],
        [4, 5, 6],
      ]);
      const before = cpu().memoryStats().allocated;
      const views = [
        A.reshape(x, [3, 2]),
        A.transpose(x),
        A.narrow(x, 1, 1, 2),
        A.expand(A.reshape(x, [1, 2, 3]), [4, 2, 3]),
      ];
      assert.equal(cpu().memoryStats().allocated, before, 'views allocated memory');
      for (const v of views) assert.equal(v.storage, x.storage);
      assert.deepEqual([...A.transpose(x).toArray()], [1, 4, 2, 5, 3, 6]);
      assert.deepEqual([...A.narrow(x, 1, 1, 2).toArray()], [2, 3, 5, 6]);
      assert.deepEqual([...views[3]!.toArray()].slice(6, 12), [1, 2, 3, 4, 5, 6]);
      // Reshaping a transposed view needs a copy, and gives row-major order of the view.
      assert.deepEqual([...A.reshape(A.transpose(x), [6]).toArray()], [1, 4, 2, 5, 3, 6]);
    });
  });

  test('dtypes round-trip through every engine dtype', () => {
    tidy(() => {
      const values = [0, 1, -2.5, 3.25, 1e-3, -65504];
      for (const dtype of ['float32', 'float64', 'bfloat16', 'float16'] as const) {
        const t = tensor(values, [6], { dtype });
        const back = [...t.toArray()];
        const tol = dtype === 'bfloat16' ? 1e-2 : dtype === 'float16' ? 1e-3 : 1e-7;
        back.forEach((v, i) =>
          assert.ok(
            Math.abs(v - values[i]!) <= tol * Math.max(1, Math.abs(values[i]!)),
            `${dtype}: ${v} vs ${values[i]}`,
          ),
        );
      }
      const ints = tensor([1, -2, 2147483647], [3], { dtype: 'int32' });
      assert.deepEqual([...ints.toArray()], [1, -2, 2147483647]);
      const f = tensor([1.5, 2.25], [2]);
      assert.deepEqual([...A.cast(A.cast(f, 'float64'), 'bfloat16').toArray()], [1.5, 2.25]);
      assert.equal(A.cast(f, 'float16').dtype, 'float16');
    });
  });

  test('bfloat16 and float16 rounding match IEEE round-to-nearest-even', () => {
    assert.equal(A.floatToBf16Bits(1), 0x3f80);
    assert.equal(A.bf16BitsToFloat(A.floatToBf16Bits(1 + 2 ** -8)), 1); // tie rounds to even
    assert.equal(A.bf16BitsToFloat(A.floatToBf16Bits(1 + 3 * 2 ** -8)), 1 + 2 ** -6);
    assert.ok(Number.isNaN(A.bf16BitsToFloat(A.floatToBf16Bits(NaN))));
    assert.equal(A.f16BitsToFloat(A.floatToF16Bits(65504)), 65504);
    assert.equal(A.f16BitsToFloat(A.floatToF16Bits(1e6)), Infinity);
    assert.equal(A.f16BitsToFloat(A.floatToF16Bits(2 ** -24)), 2 ** -24); // smallest subnormal
    // Native conversion agrees with the host one.
    tidy(() => {
      const gen = new A.Generator(3);
      const vals = Array.from({ length: 257 }, () => gen.normal() * 100);
      for (const dtype of ['bfloat16', 'float16'] as const) {
        const viaHost = tensor(vals, [vals.length], { dtype }).toArray();
        const viaNative = A.cast(tensor(vals, [vals.length]), dtype).toArray();
        assert.deepEqual([...viaNative], [...viaHost]);
      }
    });
  });

  test('tidy disposes everything but its result; keep opts out', () => {
    const start = cpu().memoryStats().allocated;
    let kept!: A.Tensor;
    const result = tidy(() => {
      const a = zeros([100]);
      const b = A.add(a, 1);
      kept = A.mul(b, 2).keep();
      return { out: A.exp(b), list: [A.neg(b)] };
    });
    assert.equal(result.out.isDisposed, false);
    assert.equal(result.list[0]!.isDisposed, false);
    assert.equal(kept.isDisposed, false);
    result.out.dispose();
    result.list[0]!.dispose();
    kept.dispose();
    assert.equal(cpu().memoryStats().allocated, start);
  });

  test('tidy disposes on throw and nested scopes move results outward', () => {
    const start = cpu().memoryStats().allocated;
    assert.throws(
      () =>
        tidy(() => {
          zeros([1000]);
          throw new Error('boom');
        }),
      /boom/,
    );
    assert.equal(cpu().memoryStats().allocated, start);
    const outer = tidy(() => {
      const inner = tidy(() => A.add(zeros([10]), 1));
      return A.mul(inner, 3);
    });
    assert.deepEqual([...outer.toArray()].slice(0, 2), [3, 3]);
    outer.dispose();
    assert.equal(cpu().memoryStats().allocated, start);
  });

  test('noGrad records nothing; gradients accumulate into leaves', () => {
    tidy(() => {
      const x = tensor([1, 2], [2], { requiresGrad: true });
      const y = A.noGrad(() => A.mul(x, 3));
      assert.equal(y.requiresGrad, false);
      A.sum(A.mul(x, x)).backward();
      A.sum(A.mul(x, x)).backward();
      assert.deepEqual([...x.grad!.toArray()], [4, 8]);
      assert.throws(() => A.sum(y).backward(), /does not require a gradient/);
    });
  });

  test('a tensor used twice gets both gradient contributions', () => {
    tidy(() => {
      const x = tensor([1, 2, 3], [3], { requiresGrad: true });
      const y = A.add(x, x); // both inputs are the same leaf
      A.sum(A.mul(y, x)).backward(); // d/dx (2x·x) = 4x
      assert.deepEqual([...x.grad!.toArray()], [4, 8, 12]);
    });
  });
});
