import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as A from '../../src/index.js';

/** Reference AdamW on plain numbers (PyTorch's formulation). */
function adamwReference(
  p: number[],
  grads: number[][],
  h: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number },
): number[] {
  const m = p.map(() => 0),
    v = p.map(() => 0);
  const out = [...p];
  grads.forEach((g, step) => {
    const t = step + 1;
    for (let i = 0; i < out.length; i++) {
      out[i]! *= 1 - h.lr * h.weightDecay;
      m[i] = h.beta1 * m[i]! + (1 - h.beta1) * g[i]!;
      v[i] = h.beta2 * v[i]! + (1 - h.beta2) * g[i]! ** 2;
      const mhat = m[i]! / (1 - h.beta1 ** t),
        vhat = v[i]! / (1 - h.beta2 ** t);
      out[i]! -= (h.lr * mhat) / (Math.sqrt(vhat) + h.eps);
    }
  });
  return out;
}

describe('optimizers', () => {
  test('AdamW matches the reference update over several steps', () => {
    const h = { lr: 0.05, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
    const init = [0.5, -1, 2, 0.25];
    const grads = [
      [0.1, -0.2, 0.3, 0],
      [0.5, 0.1, -0.4, 0.2],
      [-0.3, 0.3, 0.1, -0.1],
    ];
    const p = A.tensor(init, [4], { requiresGrad: true }).keep();
    const opt = new A.AdamW([p], h);
    for (const g of grads) {
      p.grad = A.tensor(g, [4]).keep();
      opt.step();
      opt.zeroGrad();
    }
    const expected = adamwReference(init, grads, h);
    [...p.toArray()].forEach((v, i) =>
      assert.ok(Math.abs(v - expected[i]!) < 1e-6, `param ${i}: ${v} vs ${expected[i]}`),
    );
    opt.dispose();
    p.dispose();
  });

  test('AdamW parameter groups: no decay for one group', () => {
    const a = A.tensor([1, 1], [2], { requiresGrad: true }).keep();
    const b = A.tensor([1, 1], [2], { requiresGrad: true }).keep();
    const opt = new A.AdamW(
      [
        { params: [a], hyper: { weightDecay: 0.5 } },
        { params: [b], hyper: { weightDecay: 0 } },
      ],
      { lr: 0.1 },
    );
    a.grad = A.zeros([2]).keep();
    b.grad = A.zeros([2]).keep();
    opt.step();
    assert.ok(Math.abs(a.toArray()[0]! - 0.95) < 1e-6);
    assert.equal(b.toArray()[0], 1);
    opt.dispose();
    a.dispose();
    b.dispose();
  });

  test('AdamW state saves and loads: resumed steps equal uninterrupted ones', () => {
    const run = (split: boolean): number[] => {
      const p = A.tensor([0.3, -0.7, 1.1], [3], { requiresGrad: true }).keep();
      let opt = new A.AdamW([p], { lr: 0.01 });
      const grads = [
        [1, 2, 3],
        [-1, 0.5, 0.2],
        [0.3, -0.3, 0.9],
        [0.1, 0.1, -2],
      ];
      grads.forEach((g, i) => {
        if (split && i === 2) {
          const state = JSON.parse(
            JSON.stringify(opt.stateDict(), (_k, v) => (v instanceof Float32Array ? [...v] : v)),
          );
          opt.dispose();
          opt = new A.AdamW([p], { lr: 123 });
          opt.loadStateDict(state);
        }
        p.grad = A.tensor(g, [3]).keep();
        opt.step();
        opt.zeroGrad();
      });
      const out = [...p.toArray()];
      opt.dispose();
      p.dispose();
      return out;
    };
    assert.deepEqual(run(true), run(false));
  });

  test(
    'AdamW shadows: each step writes the updated weights into their bfloat16 copies; bfloat16 gradients step ' +
      'like their float32 values',
    () => {
      const h = { lr: 0.05, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
      const init = [0.5, -1, 2, 0.25, 1.5, -0.75];
      const grads = [
        [0.125, -0.25, 0.375, 0, 1, -1],
        [0.5, 0.0625, -0.4375, 0.1875, 0.25, 0.5],
      ]; // exact in bfloat16
      const withCopy = A.tensor(init, [2, 3], { requiresGrad: true }).keep();
      const plain = A.tensor(init, [2, 3], { requiresGrad: true }).keep();
      const copy = A.tensor(new Array(6).fill(0), [2, 3], { dtype: 'bfloat16' }).keep();
      const a = new A.AdamW([withCopy], h),
        b = new A.AdamW([plain], h);
      a.setShadows(new Map([[withCopy, copy]]));
      for (const g of grads) {
        withCopy.grad = A.tensor(g, [2, 3], { dtype: 'bfloat16' }).keep();
        plain.grad = A.tensor(g, [2, 3]).keep();
        a.step();
        b.step();
        a.zeroGrad();
        b.zeroGrad();
        // Same arithmetic; the CPU's vectorised float32 kernel may round differently from its element loop.
        const [x, y] = [withCopy.toArray(), plain.toArray()];
        for (let i = 0; i < x.length; i++)
          assert.ok(
            Math.abs(x[i]! - y[i]!) <= 1e-6 * Math.abs(y[i]!),
            `bfloat16 gradients give the float32 step: ${x[i]} vs ${y[i]}`,
          );
        const rounded = A.tidy(() => Array.from(A.cast(withCopy, 'bfloat16').toArray()));
        assert.deepEqual(Array.from(copy.toArray()), rounded, 'the copy holds the rounded weights');
      }
      const other = A.tensor([1], [1], { requiresGrad: true }).keep();
      assert.throws(() => a.setShadows(new Map([[other, copy]])), /is not a parameter of this optimizer/);
      assert.throws(
        () => a.setShadows(new Map([[withCopy, A.tensor([0, 0], [2]).keep()]])),
        /the copy of .* is \[2\] on cpu, the parameter \[2, 3\]/,
      );
      for (const t of [withCopy, plain, copy, other]) t.dispose();
      a.dispose();
      b.dispose();
    },
  );

  test('AdamW rejects bad hyperparameters and mismatched state', () => {
    const p = A.tensor([1], [1], { requiresGrad: true }).keep();
    assert.throws(() => new A.AdamW([p], { lr: -1 }), /AdamW: learning rate -1 must be ≥ 0/);
    assert.throws(() => new A.AdamW([p], { beta2: 1 }), /beta2 1 must be in \[0, 1\)/);
    const opt = new A.AdamW([p]);
    assert.throws(() => opt.loadStateDict({ kind: 'sgd', step: 0, groups: [], slots: [] }), /state is for 'sgd'/);
    assert.throws(
      () => opt.loadStateDict({ kind: 'adamw', step: 0, groups: [{}], slots: [{}, {}] }),
      /state has 2 parameters/,
    );
    opt.dispose();
    p.dispose();
  });

  test('SGD with momentum and weight decay matches torch.optim.SGD', () => {
    const p = A.tensor([1, -2], [2], { requiresGrad: true }).keep();
    const opt = new A.SGD([p], { lr: 0.1, momentum: 0.9, weightDecay: 0.01 });
    const ref = [1, -2],
      buf = [0, 0];
    const grads = [
      [0.5, -0.5],
      [0.2, 0.1],
      [-0.4, 0.3],
    ];
    grads.forEach((g, step) => {
      p.grad = A.tensor(g, [2]).keep();
      opt.step();
      opt.zeroGrad();
      for (let i = 0; i < 2; i++) {
        const d = g[i]! + 0.01 * ref[i]!;
        buf[i] = step === 0 ? d : 0.9 * buf[i]! + d;
        ref[i]! -= 0.1 * buf[i]!;
      }
    });
    [...p.toArray()].forEach((v, i) => assert.ok(Math.abs(v - ref[i]!) < 1e-6, `${v} vs ${ref[i]}`));
    opt.dispose();
    p.dispose();
  });

  test('global-norm clipping scales the step', () => {
    const p = A.tensor([0, 0], [2], { requiresGrad: true }).keep();
    p.grad = A.tensor([3, 4], [2]).keep();
    const { norm, scale } = A.clipGradNorm([p], 1);
    assert.ok(Math.abs(norm - 5) < 1e-9);
    assert.ok(Math.abs(scale - 0.2) < 1e-6);
    const opt = new A.SGD([p], { lr: 1 });
    opt.step({ gradScale: scale });
    assert.ok(Math.abs(p.toArray()[0]! + 0.6) < 1e-5);
    opt.dispose();
    p.dispose();
  });
});
