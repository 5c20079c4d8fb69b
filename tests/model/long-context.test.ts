import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor } from '../../src/tensor/tensor.js';
import { tidy } from '../../src/tensor/scope.js';
import { noGrad } from '../../src/autograd/grad-mode.js';
import { getEngine } from '../../src/engine/index.js';
import { narrow } from '../../src/ops/layout.js';
import { Andromeda } from '../../src/model/andromeda.js';
import { presetInput } from '../../src/model/presets.js';
import { maxAbsDiff, randomTokens, values } from './helpers.js';

const fusedAvailable = typeof getEngine('cpu').attentionForward === 'function';

// The reference form of xPos (q·ζ^((t−n/2)/B), k·ζ^(−(t−n/2)/B)) overflows float32 past ~70k tokens.
// The relative form must stay finite; this needs the fused kernel (the reference path is O(n²) memory).
test(
  'xPos: tiny-config logits stay finite over 80,000 tokens (fused attention) and match a short run',
  { skip: !fusedAvailable && 'no fused CPU attention kernel in this build' },
  () => {
    const model = new Andromeda(presetInput('tiny'), { seed: 21 });
    try {
      const n = 80_000;
      const ids = randomTokens(n, 257, 23);
      const { finite, head, tail } = tidy(() =>
        noGrad(() => {
          const logits = model.forward(Tensor.fromArray(ids, [1, n], 'int32'), { attentionImplementation: 'fused' });
          const all = logits.toArray();
          return {
            finite: all.every(Number.isFinite),
            head: values(narrow(logits, 1, 0, 64)),
            tail: values(narrow(logits, 1, n - 1, 1)),
          };
        }),
      );
      assert.ok(finite, 'every logit is finite');
      assert.ok(tail.some((v) => v !== 0));
      const short = tidy(() =>
        noGrad(() =>
          values(
            model.forward(Tensor.fromArray(ids.subarray(0, 64), [1, 64], 'int32'), {
              attentionImplementation: 'fused',
            }),
          ),
        ),
      );
      assert.ok(maxAbsDiff(head, short) < 1e-4);
    } finally {
      model.dispose();
    }
  },
);

test('xPos: the reference path stays finite and causal at 4,096 tokens (one xPos anchor for the call)', () => {
  const model = new Andromeda(presetInput('tiny', { depth: 1 }), { seed: 22 });
  try {
    const n = 4096;
    const ids = randomTokens(n, 257, 29);
    const full = tidy(() =>
      noGrad(() =>
        values(model.forward(Tensor.fromArray(ids, [1, n], 'int32'), { attentionImplementation: 'reference' })),
      ),
    );
    assert.ok(full.every(Number.isFinite));
    const prefix = tidy(() =>
      noGrad(() =>
        values(
          model.forward(Tensor.fromArray(ids.subarray(0, 300), [1, 300], 'int32'), {
            attentionImplementation: 'reference',
          }),
        ),
      ),
    );
    assert.ok(maxAbsDiff(prefix, full.subarray(0, prefix.length)) < 1e-5);
  } finally {
    model.dispose();
  }
});
