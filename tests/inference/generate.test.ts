import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../src/engine/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { andromedaFamily } from '../../src/train/andromeda-adapter.js';
import { generate } from '../../src/inference/generate.js';
import { ByteTokenizer } from '../../src/data/tokenizer/byte.js';
import type { LanguageModel, ModelFamily } from '../../src/train/model.js';

const tokenizer = new ByteTokenizer();

function tinyAndromeda(seed: number) {
  const config = andromedaFamily.presetConfig('tiny', tokenizer.vocabSize, {
    dim: 64,
    depth: 2,
    heads: 4,
    headDim: 32,
    alibiHeads: 2,
  });
  return andromedaFamily.create(config, { seed, device: 'cpu' });
}

test('greedy decoding with the KV cache gives the same tokens as recomputing the whole sequence', () => {
  for (const seed of [1, 2]) {
    const model = tinyAndromeda(seed);
    try {
      const opts = { temperature: 0, maxTokens: 40, stopAtEos: false };
      const cached = generate(model, andromedaFamily, tokenizer, 'Call me Ishmael. ', { ...opts, cache: true });
      const uncached = generate(model, andromedaFamily, tokenizer, 'Call me Ishmael. ', { ...opts, cache: false });
      assert.equal(cached.usedCache, true);
      assert.equal(uncached.usedCache, false);
      assert.equal(cached.ids.length, 40);
      assert.deepEqual(cached.ids, uncached.ids, `seed ${seed}`);
      assert.equal(cached.text, uncached.text);
    } finally {
      model.dispose();
    }
  }
});

test('cached and uncached sampling with one seed agree too; another seed differs', () => {
  const model = tinyAndromeda(3);
  try {
    const opts = { temperature: 1.2, topK: 50, topP: 0.95, maxTokens: 32, seed: 7, stopAtEos: false };
    const a = generate(model, andromedaFamily, tokenizer, '', { ...opts, cache: true });
    const b = generate(model, andromedaFamily, tokenizer, '', { ...opts, cache: false });
    assert.deepEqual(a.ids, b.ids);
    const c = generate(model, andromedaFamily, tokenizer, '', { ...opts, seed: 8 });
    assert.notDeepEqual(a.ids, c.ids);
  } finally {
    model.dispose();
  }
});

/** A fake model that predicts 'a', 'b', 'c', … by position and the end of the document at `eosAt`. */
function scriptedModel(eosAt: number): LanguageModel {
  const vocab = tokenizer.vocabSize;
  return {
    vocabSize: vocab,
    namedParameters: () => [],
    stateDict: () => new Map(),
    loadStateDict: () => {},
    forward(tokens: Tensor) {
      const n = tokens.shape[1]!;
      const logits = new Float32Array(n * vocab).fill(-10);
      for (let t = 0; t < n; t++) logits[t * vocab + (t + 1 >= eosAt ? tokenizer.eosId : 97 + (t % 26))] = 10;
      return Tensor.fromArray(logits, [1, n, vocab]);
    },
    train: () => {},
    eval: () => {},
    dispose: () => {},
  };
}
const noCacheFamily = {} as ModelFamily<never>;

test('generation stops at the end-of-document token, or at the token budget, and streams the text', () => {
  const streamed: string[] = [];
  const r = generate(scriptedModel(6), noCacheFamily, tokenizer, '', {
    temperature: 0,
    maxTokens: 100,
    onText: (t) => streamed.push(t),
  });
  assert.equal(r.stoppedBy, 'eos');
  assert.equal(r.text, 'abcde'); // predicted at positions 0..4 (the leading end-of-document token is position 0)
  assert.equal(streamed.join(''), 'abcde');
  const budget = generate(scriptedModel(1000), noCacheFamily, tokenizer, '', { temperature: 0, maxTokens: 4 });
  assert.equal(budget.stoppedBy, 'max-tokens');
  assert.equal(budget.ids.length, 4);
  const past = generate(scriptedModel(3), noCacheFamily, tokenizer, '', {
    temperature: 0,
    maxTokens: 5,
    stopAtEos: false,
  });
  assert.equal(past.ids.length, 5);
  assert.throws(() => generate(scriptedModel(3), noCacheFamily, tokenizer, '', { maxTokens: -1 }), /max tokens/);
});
