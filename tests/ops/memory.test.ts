// Deterministic memory: a 1,000-step training loop holds memory flat.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as A from '../../src/index.js';

test('1,000 training steps hold memory flat', () => {
  const engine = A.getEngine('cpu');
  const gen = new A.Generator(7);
  const w1 = A.randn([16, 8], { std: 0.3, generator: gen, requiresGrad: true }).keep();
  const b1 = A.zeros([16]).requireGrad().keep();
  const w2 = A.randn([4, 16], { std: 0.3, generator: gen, requiresGrad: true }).keep();
  const params = [w1, b1, w2];
  const opt = new A.AdamW(params, { lr: 1e-2 });
  const x = A.randn([32, 8], { generator: gen }).keep();
  const y = A.tensor(
    Array.from({ length: 32 }, (_, i) => i % 4),
    [32],
    { dtype: 'int32' },
  ).keep();
  const step = () =>
    A.tidy(() => {
      const h = A.gelu(A.linear(x, w1, b1));
      const loss = A.crossEntropy(A.linear(h, w2), y);
      loss.backward();
      opt.step();
      opt.zeroGrad();
      return loss.item();
    });
  const first = step();
  for (let i = 0; i < 9; i++) step();
  const settled = engine.memoryStats().allocated;
  let last = first;
  for (let i = 0; i < 990; i++) {
    last = step();
    assert.equal(engine.memoryStats().allocated, settled, `memory grew at step ${i + 11}`);
  }
  assert.ok(last < first * 0.5, `loss did not fall: ${first} → ${last}`);
  opt.dispose();
  for (const t of [...params, x, y]) t.dispose();
});

test('a leaf adopts a gradient buffer nothing else holds (no copy), and copies shared ones', () => {
  const engine = A.getEngine('cpu');
  const x = A.randn([256, 64], { requiresGrad: true }).keep();
  const bytes = 256 * 64 * 4;
  A.tidy(() => {
    // mul by a constant: the backward's result is a fresh buffer the tape frees next — adopted.
    const before = engine.memoryStats().allocated;
    A.sum(A.mul(x, 3)).backward();
    assert.deepEqual(Array.from(x.grad!.toArray().slice(0, 3)), [3, 3, 3]);
    // What stays: the gradient (one buffer), plus the forward's product and its sum (freed at the tidy end).
    assert.ok(engine.memoryStats().allocated - before <= 2 * bytes + 128, 'no second gradient-sized buffer is held');
  });
  x.grad!.dispose();
  x.grad = null;
  A.tidy(() => {
    // x + x: both inputs get views of one gradient; the leaf must not alias it twice.
    A.sum(A.add(x, x)).backward();
    assert.deepEqual(Array.from(x.grad!.toArray().slice(0, 3)), [2, 2, 2]);
    // Accumulation into an adopted gradient changes only this leaf's gradient.
    const y = A.randn([256, 64], { requiresGrad: true }).keep();
    A.sum(A.mul(A.add(x, y), 1)).backward();
    assert.deepEqual(Array.from(x.grad!.toArray().slice(0, 3)), [3, 3, 3]);
    assert.deepEqual(Array.from(y.grad!.toArray().slice(0, 3)), [1, 1, 1]);
    y.dispose();
  });
  x.dispose();
});

test('backward frees each intermediate gradient once it has been propagated', () => {
  const engine = A.getEngine('cpu');
  const x = A.randn([256, 64], { requiresGrad: true }).keep();
  const bytes = 256 * 64 * 4;
  A.tidy(() => {
    let y = x;
    for (let i = 0; i < 10; i++) y = A.mul(y, 1.5);
    const loss = A.sum(y);
    const afterForward = engine.memoryStats().allocated;
    loss.backward();
    // The ten activations stay until the scope ends; of the gradients only x.grad remains.
    assert.ok(
      engine.memoryStats().allocated - afterForward <= bytes + 128,
      `backward left ${(engine.memoryStats().allocated - afterForward) / bytes} gradient-sized buffers`,
    );
    assert.ok(Math.abs(x.grad!.toArray()[0]! - 1.5 ** 10) < 1e-3);
  });
  x.dispose();
});
