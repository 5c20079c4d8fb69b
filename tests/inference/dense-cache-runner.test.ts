// The engine over models that left the paged path before stop 17: windowed and soft-capped models, now paged on the
// CPU, and LongRoPE, which keeps a KV cache per sequence (src/inference/dense-cache-runner.ts); each gives the tokens
// of recomputing the whole sequence every step through chunked prefill and preemption, and each per-sequence cache
// goes with its sequence. Dynamic NTK recomputes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getEngine } from '../../src/engine/index.js';
import { andromedaFamily } from '../../src/train/andromeda-adapter.js';
import { InferenceEngine } from '../../src/inference/engine.js';
import { hasPagedForward, kvCacheBytesPerBlock } from '../../src/inference/runners.js';
import type { AndromedaConfigInput } from '../../src/model/config.js';
import { FEATURE_SHAPE, greedy, referenceGreedy, tokenizer } from '../helpers/inference-engine.js';

const rotary = { ...FEATURE_SHAPE.rotary, xpos: false };
const longRope = {
  rotary: {
    ...rotary,
    longRope: { shortFactors: [1, 1, 1, 1], longFactors: [1, 2, 4, 8], originalMaxSeqLen: 12, attentionFactor: 1.1 },
  },
};
// On the CPU engine the windowed and soft-capped models run over the paged pool (its kernel has both; CUDA's has
// neither, and there they take the per-sequence cache); LongRoPE takes the per-sequence cache on every engine.
const CASES: { name: string; shape: Partial<AndromedaConfigInput>; kvCache: 'paged' | 'per-sequence' }[] = [
  { name: 'a sliding window of 6 on every layer', shape: { slidingWindow: 6 }, kvCache: 'paged' },
  {
    name: 'a sliding window on even layers and soft-capped logits',
    shape: { slidingWindow: 5, slidingWindowLayers: 'even', attentionSoftCap: 3 },
    kvCache: 'paged',
  },
  {
    name: 'LongRoPE past 12 positions',
    shape: {
      rotary: {
        ...rotary,
        longRope: {
          shortFactors: [1, 1, 1, 1],
          longFactors: [1, 2, 4, 8],
          originalMaxSeqLen: 12,
          attentionFactor: 1.1,
        },
      },
    },
    kvCache: 'per-sequence',
  },
];

for (const [index, c] of CASES.entries()) {
  test(`${c.name}: the ${c.kvCache} KV cache = uncached greedy, through chunked prefill and preemption`, async () => {
    const config = andromedaFamily.presetConfig('tiny', tokenizer.vocabSize, { ...FEATURE_SHAPE, ...c.shape });
    const model = andromedaFamily.create(config, { seed: 10 + index, device: 'cpu' });
    assert.equal(hasPagedForward(model), c.kvCache === 'paged');
    const cpu = getEngine('cpu');
    const prompts = ['Call me Ishmael.', 'It was', 'A longer prompt, prefilled in chunks of eight.'];
    const maxTokens = 20;
    // Up to 49 + 20 positions each (18 blocks of 4); 30 blocks cannot hold the three at once: one is preempted.
    const engine = new InferenceEngine(model, tokenizer, { blockSize: 4, numBlocks: 30, maxBatch: 3, tokenBudget: 8 });
    try {
      const idle = cpu.memoryStats().allocated;
      const results = await Promise.all(prompts.map((p) => engine.submit(p, greedy(maxTokens)).result));
      results.forEach((r, i) => {
        assert.equal(r.error, undefined);
        assert.deepEqual(r.tokenIds, referenceGreedy(model, prompts[i]!, maxTokens), `prompt ${i}`);
      });
      const stats = engine.stats();
      assert.equal(stats.kvCache, c.kvCache);
      assert.ok(stats.preemptions > 0, 'the pool was too small for the three at once');
      assert.equal(stats.blocks.used, 0);
      if (c.kvCache === 'per-sequence')
        assert.equal(cpu.memoryStats().allocated, idle, 'every sequence cache went with its sequence');
    } finally {
      await engine.close();
      model.dispose();
    }
  });
}

test('dynamic NTK recomputes every step: a cache would go stale past the original length', async () => {
  const shape = { ...FEATURE_SHAPE, rotary: { ...rotary, dynamicNtk: { factor: 2, originalMaxSeqLen: 12 } } };
  const model = andromedaFamily.create(andromedaFamily.presetConfig('tiny', tokenizer.vocabSize, shape), {
    seed: 9,
    device: 'cpu',
  });
  const engine = new InferenceEngine(model, tokenizer, { blockSize: 4, numBlocks: 64, maxBatch: 2, tokenBudget: 8 });
  try {
    const prompt = 'A longer prompt, prefilled in chunks of eight.';
    const result = await engine.submit(prompt, greedy(16)).result;
    assert.equal(engine.stats().kvCache, 'none');
    assert.deepEqual(result.tokenIds, referenceGreedy(model, prompt, 16));
  } finally {
    await engine.close();
    model.dispose();
  }
});

test('the caches count each position twice against memoryBytes (they grow by doubling); too little is refused', () => {
  const config = andromedaFamily.presetConfig('tiny', tokenizer.vocabSize, { ...FEATURE_SHAPE, ...longRope });
  const model = andromedaFamily.create(config, { seed: 3, device: 'cpu' });
  try {
    // A block of 4 positions: K and V (2 layers × 2 × 2 KV heads × 16 features × 4 bytes × 4) 2,048 bytes, and the
    // token shift's tails (2 layers × 2 sub-layers × 2 slots × 64 features × 4 bytes) 2,048; counted twice.
    const engine = new InferenceEngine(model, tokenizer, { blockSize: 4, memoryBytes: 40_960 });
    assert.equal(engine.stats().blocks.total, 5);
    void engine.close();
    assert.throws(
      () => new InferenceEngine(model, tokenizer, { blockSize: 4, memoryBytes: 4000 }),
      /holds not one block of 4 positions/,
    );
  } finally {
    model.dispose();
  }
});

test('kvCacheBytesPerBlock: a paged block, twice that for a cache per sequence, null when nothing is cached', () => {
  const build = (extra: Partial<AndromedaConfigInput>) =>
    andromedaFamily.create(andromedaFamily.presetConfig('tiny', tokenizer.vocabSize, { ...FEATURE_SHAPE, ...extra }), {
      seed: 5,
      device: 'cpu',
    });
  const paged = build({});
  const perSequence = build(longRope);
  const ntk = build({ rotary: { ...rotary, dynamicNtk: { factor: 2, originalMaxSeqLen: 12 } } });
  try {
    const block = kvCacheBytesPerBlock(paged, 4)!;
    assert.equal(block, 4096, 'K/V 2,048 + tails 2,048 (see the memoryBytes test)');
    assert.equal(kvCacheBytesPerBlock(perSequence, 4), 2 * block);
    assert.equal(kvCacheBytesPerBlock(ntk, 4), null);
  } finally {
    for (const m of [paged, perSequence, ntk]) m.dispose();
  }
});

test('a cancelled request lets its cache go at once', async () => {
  const config = andromedaFamily.presetConfig('tiny', tokenizer.vocabSize, { ...FEATURE_SHAPE, ...longRope });
  const model = andromedaFamily.create(config, { seed: 4, device: 'cpu' });
  const cpu = getEngine('cpu');
  const engine = new InferenceEngine(model, tokenizer, { blockSize: 4, numBlocks: 64 });
  try {
    const idle = cpu.memoryStats().allocated;
    const controller = new AbortController();
    const stream = engine.submit('Call me Ishmael.', { ...greedy(200), signal: controller.signal });
    let tokens = 0;
    for await (const _event of stream) if (++tokens === 3) controller.abort();
    const result = await stream.result;
    assert.equal(result.finishReason, 'cancelled');
    assert.equal(cpu.memoryStats().allocated, idle);
  } finally {
    await engine.close();
    model.dispose();
  }
});
