// Deterministic memory: a 1,000-step training loop holds memory flat.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as A from '../../src/index.js';

test('1,000 training steps hold memory flat', () => {
  const backend = A.getBackend('cpu');
  const gen = new A.Generator(7);
  const w1 = A.randn([16, 8], { std: 0.3, generator: gen, requiresGrad: true }).keep();
  const b1 = A.zeros([16]).requireGrad().keep();
  const w2 = A.randn([4, 16], { std: 0.3, generator: gen, requiresGrad: true }).keep();
  const params = [w1, b1, w2];
  const opt = new A.AdamW(params, { lr: 1e-2 });
  const x = A.randn([32, 8], { generator: gen }).keep();
  const y = A.tensor(Array.from({ length: 32 }, (_, i) => i % 4), [32], { dtype: 'int32' }).keep();
  const step = () => A.tidy(() => {
    const h = A.gelu(A.linear(x, w1, b1));
    const loss = A.crossEntropy(A.linear(h, w2), y);
    loss.backward();
    opt.step();
    opt.zeroGrad();
    return loss.item();
  });
  const first = step();
  for (let i = 0; i < 9; i++) step();
  const settled = backend.memoryStats().allocated;
  let last = first;
  for (let i = 0; i < 990; i++) {
    last = step();
    assert.equal(backend.memoryStats().allocated, settled, `memory grew at step ${i + 11}`);
  }
  assert.ok(last < first * 0.5, `loss did not fall: ${first} → ${last}`);
  opt.dispose();
  for (const t of [...params, x, y]) t.dispose();
});
