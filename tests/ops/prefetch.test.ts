// prefetchToCache (src/ops/prefetch.ts): a cache hint that changes nothing. On the CPU engine it does nothing; on
// any engine it refuses a disposed tensor (naming it) before reaching the engine, and leaves out views that are not
// one contiguous extent. The CUDA form is tests/gpu/prefetch.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../src/index.js'; // registers the engines
import { Tensor } from '../../src/tensor/tensor.js';
import { permute } from '../../src/ops/layout.js';
import { prefetchToCache } from '../../src/ops/prefetch.js';

test('prefetchToCache on the CPU leaves values as they were, strided views included', () => {
  const values = Float64Array.from({ length: 24 }, (_, i) => i - 11.5);
  const t = Tensor.fromArray(values, [4, 6], 'float32');
  const transposed = permute(t, [1, 0]);
  prefetchToCache([t, transposed]);
  prefetchToCache([]);
  assert.deepEqual(Float64Array.from(t.toArray()), values);
  transposed.dispose();
  t.dispose();
});

test('prefetchToCache refuses a disposed tensor, naming it', () => {
  const live = Tensor.fromArray([1, 2, 3], [3], 'float32');
  const gone = Tensor.fromArray([4, 5], [2], 'float32');
  gone.dispose();
  assert.throws(() => prefetchToCache([live, gone]), /prefetchToCache.*tensors\[1\].*disposed/);
  live.dispose();
});
