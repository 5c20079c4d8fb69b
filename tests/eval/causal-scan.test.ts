import '../../src/engine/index.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor } from '../../src/tensor/tensor.js';
import { tidy } from '../../src/tensor/scope.js';
import { noGrad } from '../../src/autograd/grad-mode.js';
import { crossEntropy } from '../../src/ops/nn.js';
import { Andromeda } from '../../src/model/andromeda.js';
import { argmax, greedyContinuation, sequenceLosses } from '../../src/eval/causal-scan.js';

const config = {
  vocabSize: 40,
  dim: 32,
  depth: 2,
  heads: 4,
  headDim: 8,
  kvHeads: 2,
  alibiHeads: 2,
  rotary: { dim: 8, xpos: true },
  shiftTokens: 1,
};

function tokens(n: number, seed: number): Int32Array {
  let s = seed;
  return Int32Array.from({ length: n }, () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) % 40);
}

/** The per-position losses of one forward over the whole sequence. */
function fullForwardLosses(model: Andromeda, ids: Int32Array): Float32Array {
  return noGrad(() =>
    tidy(() => {
      const n = ids.length - 1;
      const logits = model.forward(Tensor.fromArray(ids.slice(0, n), [1, n], 'int32'));
      const targets = Tensor.fromArray(ids.slice(1), [1, n], 'int32');
      return crossEntropy(logits, targets, { reduction: 'none' }).toArray() as Float32Array;
    }),
  );
}

test('chunked losses through the KV cache equal one forward over the whole sequence', () => {
  const model = new Andromeda(config, { seed: 3 });
  try {
    const ids = tokens(23, 1);
    const expected = fullForwardLosses(model, ids);
    for (const chunk of [1, 5, 22, 64]) {
      const got = sequenceLosses(model, ids, chunk);
      assert.equal(got.length, 22);
      got.forEach((v, i) =>
        assert.ok(Math.abs(v - expected[i]!) < 1e-4, `chunk ${chunk}, position ${i}: ${v} vs ${expected[i]}`),
      );
    }
    assert.throws(() => sequenceLosses(model, ids, 0), /chunk must be a positive integer/);
    assert.throws(() => sequenceLosses(model, Int32Array.of(1), 4), /at least 2 tokens/);
  } finally {
    model.dispose();
  }
});

test('greedy continuation picks the argmax of a full forward at every step', () => {
  const model = new Andromeda(config, { seed: 4 });
  try {
    const prompt = tokens(11, 2);
    const got = greedyContinuation(model, prompt, { maxTokens: 6, vocabLimit: 40, chunk: 4 });
    const sequence = Array.from(prompt);
    for (let i = 0; i < 6; i++) {
      const last = noGrad(() =>
        tidy(() =>
          model
            .forward(Tensor.fromArray(Int32Array.from(sequence), [1, sequence.length], 'int32'), { logits: 'last' })
            .toArray(),
        ),
      );
      sequence.push(argmax(last));
    }
    assert.deepEqual(Array.from(got), sequence.slice(prompt.length));
    // A stop id ends the continuation before it; a vocabulary limit keeps ids below it.
    const stopped = greedyContinuation(model, prompt, {
      maxTokens: 6,
      vocabLimit: 40,
      stopId: sequence[prompt.length + 2],
    });
    assert.deepEqual(Array.from(stopped), sequence.slice(prompt.length, prompt.length + 2));
    const limited = greedyContinuation(model, prompt, { maxTokens: 6, vocabLimit: 3 });
    assert.ok(limited.every((t) => t < 3));
  } finally {
    model.dispose();
  }
});

test('argmax takes the first of equal values and respects the limit', () => {
  assert.equal(argmax([1, 5, 5, 2]), 1);
  assert.equal(argmax([1, 2, 9], 2), 1);
});
