import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor } from '../../src/tensor/tensor.js';
import { getEngine } from '../../src/engine/index.js';
import { Andromeda } from '../../src/model/andromeda.js';
import type { AndromedaConfigInput } from '../../src/model/config.js';
import { presetInput } from '../../src/model/presets.js';
import { PagedKVCache } from '../../src/model/paged-kv-cache.js';
import { buildPagedStep } from '../../src/model/paged-step.js';
import type { PagedForwardOptions } from '../../src/model/paged-forward.js';
import { maxAbsDiff, randomTokens } from './helpers.js';
import {
  argmax,
  BlockAllocator,
  denseLogits,
  greedyByRecomputation,
  pagedStep,
  testModel,
  type TestSequence,
} from './paged-helpers.js';

const cpu = getEngine('cpu');
const tiny = presetInput('tiny');
const VOCAB = 257;

/** The model variations the paged forward must follow (every block form and attention option). */
const VARIANTS: [string, AndromedaConfigInput][] = [
  ['tiny (pre-norm, MQA, ALiBi + rotary xPos, shift 1)', tiny],
  ['small preset', presetInput('small')],
  ['deepnorm (post-norm)', { ...tiny, deepnorm: true }],
  ['qk-norm + dim scale', { ...tiny, qkNorm: true, qkNormDimScale: true }],
  ['GQA (4 heads over 2 KV heads), parallel blocks', { ...tiny, kvHeads: 2, parallelBlocks: true }],
  ['MHA, token shift 2', { ...tiny, kvHeads: 4, shiftTokens: 2 }],
  ['no rotary, no shift, no ALiBi', { ...tiny, rotary: null, shiftTokens: 0, alibiHeads: 0 }],
  [
    'YaRN rotary (no xPos), SwiGLU, RMSNorm, untied head',
    {
      ...tiny,
      rotary: { xpos: false, yarn: { factor: 4, originalMaxSeqLen: 16 } },
      ffActivation: 'swiglu',
      norm: 'rmsnorm',
      tiedEmbeddings: false,
    },
  ],
  [
    'transformers-style: per-head RMS qk-norm, q/k/v/o biases, unbiased SwiGLU, RMSNorm, Llama 3.1 rotary',
    {
      ...tiny,
      kvHeads: 2,
      shiftTokens: 0,
      alibiHeads: 0,
      norm: 'rmsnorm',
      qkRmsNorm: true,
      qkvBias: true,
      attentionOutputBias: true,
      ffActivation: 'swiglu',
      feedForwardBias: false,
      ffInnerDim: 200,
      rotary: { dim: 32, base: 500000, llama3: { factor: 8, originalMaxSeqLen: 64 } },
    },
  ],
];

/** Runs fn, then checks that every tensor it made (outside the model and the cache) was freed. */
function withoutLeaks<T>(fn: () => T): T {
  const before = cpu.memoryStats().allocated;
  const result = fn();
  assert.equal(cpu.memoryStats().allocated, before, 'tensors leaked');
  return result;
}

const ATTENTION_ROUTES: [string, PagedForwardOptions][] = [
  ['paged kernel', {}],
  ['dense attention for sequences of ≥ 4 query rows', { denseAttentionMinQueries: 4 }],
];

for (const [name, config] of VARIANTS) {
  test(`paged prefill = dense forward: one step, chunks, token by token — ${name}`, () => {
    const model = testModel(config, 3);
    const n = 45;
    const prompt = Array.from(randomTokens(n, model.config.vocabSize, 11));
    const expected = denseLogits(model, prompt);
    for (const [route, options] of ATTENTION_ROUTES) {
      for (const [split, sizes] of [
        ['one step', [n]],
        ['chunks of 5, 11, 1, 20, 8', [5, 11, 1, 20, 8]],
        ['token by token', Array.from({ length: n }, () => 1)],
      ] as const) {
        const cache = model.createPagedKVCache(12, { blockSize: 8 });
        withoutLeaks(() => {
          const allocator = new BlockAllocator(cache.numBlocks, 5);
          const seq: TestSequence = { tokens: prompt, cached: 0, blocks: [] };
          const rows: Float64Array[] = [];
          for (const size of sizes) rows.push(pagedStep(model, cache, allocator, [[seq, size]], 'all', options));
          const got = Float64Array.from(rows.flatMap((r) => Array.from(r)));
          assert.equal(got.length, expected.length);
          const diff = maxAbsDiff(got, expected);
          assert.ok(diff < 1e-5, `${route}, ${split}: max |paged − dense| = ${diff}`);
        });
        cache.dispose();
      }
    }
    model.dispose();
  });
}

test('batched prefill: sequences of different lengths in one step, routes mixed, equal the dense forward', () => {
  const model = testModel({ ...tiny, qkNorm: true, qkNormDimScale: true, shiftTokens: 2 }, 4);
  const lengths = [3, 17, 1, 30];
  const prompts = lengths.map((n, i) => Array.from(randomTokens(n, VOCAB, 20 + i)));
  const expected = prompts.map((p) => denseLogits(model, p));
  for (const [route, options] of [
    ...ATTENTION_ROUTES,
    ['dense attention for all', { denseAttentionMinQueries: 1 }],
  ] as const) {
    const cache = model.createPagedKVCache(16, { blockSize: 8 });
    withoutLeaks(() => {
      const allocator = new BlockAllocator(cache.numBlocks, 9);
      const seqs = prompts.map((tokens): TestSequence => ({ tokens, cached: 0, blocks: [] }));
      const got = pagedStep(
        model,
        cache,
        allocator,
        seqs.map((s, i) => [s, lengths[i]!]),
        'all',
        options,
      );
      let offset = 0;
      prompts.forEach((p, i) => {
        const rows = got.subarray(offset, offset + p.length * VOCAB);
        offset += p.length * VOCAB;
        const diff = maxAbsDiff(rows, expected[i]!);
        assert.ok(diff < 1e-5, `${route}, sequence ${i}: max |paged − dense| = ${diff}`);
      });
    });
    cache.dispose();
  }
  model.dispose();
});

for (const [name, config] of [VARIANTS[0]!, VARIANTS[1]!, VARIANTS[3]!, VARIANTS[5]!]) {
  test(`cached = uncached: 64 greedy tokens through the paged cache, alone and 4 sequences batched — ${name}`, () => {
    const model = testModel(config, 6);
    const vocab = model.config.vocabSize;
    const steps = 64;
    const lengths = [7, 20, 1, 13];
    const prompts = lengths.map((n, i) => Array.from(randomTokens(n, vocab, 40 + i)));
    const expected = prompts.map((p) => greedyByRecomputation(model, p, steps));
    for (const batched of [false, true]) {
      const cache = model.createPagedKVCache(64, { blockSize: 8 });
      withoutLeaks(() => {
        const allocator = new BlockAllocator(cache.numBlocks, 13);
        const groups = batched ? [prompts.map((_, i) => i)] : prompts.map((_, i) => [i]);
        for (const group of groups) {
          const seqs = group.map((i): TestSequence => ({ tokens: [...prompts[i]!], cached: 0, blocks: [] }));
          // Prefill (each sequence's whole prompt in one step), then one token per sequence per step.
          let last = pagedStep(
            model,
            cache,
            allocator,
            seqs.map((s) => [s, s.tokens.length]),
            'last',
          );
          for (let step = 0; step < steps; step++) {
            seqs.forEach((s, j) => s.tokens.push(argmax(last.subarray(j * vocab, (j + 1) * vocab))));
            if (step < steps - 1)
              last = pagedStep(
                model,
                cache,
                allocator,
                seqs.map((s) => [s, 1]),
                'last',
              );
          }
          group.forEach((i, j) =>
            assert.deepEqual(
              seqs[j]!.tokens.slice(prompts[i]!.length),
              expected[i],
              `sequence ${i} (${batched ? 'batched' : 'alone'})`,
            ),
          );
        }
      });
      cache.dispose();
    }
    model.dispose();
  });
}

for (const [name, config] of [VARIANTS[0]!, VARIANTS[5]!]) {
  test(`shared prefix: a sequence on another's full prefix blocks gives the unshared logits — ${name}`, () => {
    const model = testModel(config, 8);
    const blockSize = 8;
    const prefix = Array.from(randomTokens(2 * blockSize, VOCAB, 60));
    const first = [...prefix, ...randomTokens(5, VOCAB, 61)];
    const second = [...prefix, ...randomTokens(11, VOCAB, 62)];
    const unshared = denseLogits(model, second).subarray(prefix.length * VOCAB);
    const cache = model.createPagedKVCache(16, { blockSize });
    withoutLeaks(() => {
      const allocator = new BlockAllocator(cache.numBlocks, 17);
      const a: TestSequence = { tokens: first, cached: 0, blocks: [] };
      pagedStep(model, cache, allocator, [[a, first.length]], 'last');
      // b starts with a's two full prefix blocks: only its own tokens are computed.
      const b: TestSequence = { tokens: second, cached: prefix.length, blocks: a.blocks.slice(0, 2) };
      const shared = pagedStep(model, cache, allocator, [[b, second.length - prefix.length]], 'all');
      const diff = maxAbsDiff(shared, unshared);
      assert.ok(diff < 1e-5, `shared prefix: max |shared − unshared| = ${diff}`);
      // And a, continuing beside b in one step, is unaffected by b's writes.
      a.tokens.push(3);
      const continued = pagedStep(model, cache, allocator, [[a, 1]], 'last');
      const expected = denseLogits(model, a.tokens).subarray((a.tokens.length - 1) * VOCAB);
      assert.ok(maxAbsDiff(continued, expected) < 1e-5);
    });
    cache.dispose();
    model.dispose();
  });
}

test('PagedKVCache: pools shaped per the contract, memory in blocks, bad layouts rejected before allocating', () => {
  const model = new Andromeda({ ...tiny, kvHeads: 2, shiftTokens: 2 }, { seed: 1 });
  const c = model.config;
  const cache = model.createPagedKVCache(5, { blockSize: 16, ring: 3 });
  const layer = cache.layer(1);
  assert.deepEqual(layer.keys.shape, [5, 16, 2, c.headDim]);
  assert.deepEqual(layer.values.shape, [5, 16, 2, c.headDim]);
  assert.deepEqual(layer.tails?.attention.shape, [5, 3, c.dim]);
  assert.deepEqual(layer.tails?.feedForward.shape, [5, 3, c.dim]);
  const perBlock = c.depth * (2 * 16 * 2 * c.headDim + 2 * 3 * c.dim) * 4;
  assert.equal(cache.bytesPerBlock, perBlock);
  assert.equal(PagedKVCache.bytesPerBlock(c, { blockSize: 16, ring: 3 }), perBlock);
  assert.equal(PagedKVCache.blocksForBudget(c, 10 * perBlock + perBlock - 1, { blockSize: 16, ring: 3 }), 10);
  cache.dispose();
  assert.ok(cache.isDisposed);
  assert.throws(() => cache.layer(0), /disposed/);
  const wideRing = new PagedKVCache(model.config, 2, { blockSize: 4, ring: 9 });
  assert.deepEqual(wideRing.layer(0).tails?.attention.shape, [2, 9, c.dim]);
  wideRing.dispose();
  const before = cpu.memoryStats().allocated;
  assert.throws(() => model.createPagedKVCache(4, { blockSize: 12 }), /blockSize 12 must be a power of two/);
  assert.throws(() => model.createPagedKVCache(4, { blockSize: 512 }), /blockSize 512/);
  assert.throws(
    () => model.createPagedKVCache(4, { ring: 1 }),
    /ring 1 must be an integer ≥ the model's shiftTokens 2/,
  );
  assert.throws(() => model.createPagedKVCache(0), /numBlocks 0 must be a positive integer/);
  assert.equal(cpu.memoryStats().allocated, before);
  model.dispose();
  const unshifted = new Andromeda({ ...tiny, shiftTokens: 0 }, { seed: 1 });
  const plain = unshifted.createPagedKVCache(2);
  assert.equal(plain.layer(0).tails, null);
  assert.equal(plain.ring, 0);
  plain.dispose();
  unshifted.dispose();
});

test('forwardPaged: a step or cache that does not fit the model is refused with the reason', () => {
  const model = new Andromeda(tiny, { seed: 1 });
  const other = new Andromeda({ ...tiny, kvHeads: 2 }, { seed: 1 });
  const cache = model.createPagedKVCache(4, { blockSize: 8 });
  const wrongCache = other.createPagedKVCache(4, { blockSize: 8 });
  const step = buildPagedStep([{ tokens: [1, 2, 3], cached: 0, blockTable: [2] }], { blockSize: 8 });
  assert.throws(() => model.forwardPaged(step, wrongCache), /the cache has 2 KV heads, the model 1/);
  const floatTokens = { ...step, tokens: Tensor.fromArray([1, 2, 3], [3]) };
  assert.throws(() => model.forwardPaged(floatTokens, cache), /tokens must be int32/);
  const shortSlots = { ...step, slots: Tensor.fromArray([0, 1], [2], 'int32') };
  assert.throws(() => model.forwardPaged(shortSlots, cache), /2 slots for the step's 3 tokens/);
  const wrongCount = { ...step, batch: { ...step.batch, numSeqs: 2 } };
  assert.throws(() => model.forwardPaged(wrongCount, cache), /batch.numSeqs 2 differs from the 1 of its tensors/);
  const badBounds = { ...step, batch: { ...step.batch, maxQueryLen: 2 } };
  assert.throws(() => model.forwardPaged(badBounds, cache), /sequence 0 has 3 query rows/);
  assert.throws(
    () => buildPagedStep([{ tokens: [1, 2, 3], cached: 7, blockTable: [2] }], { blockSize: 8 }),
    /sequence 0 has 1 blocks for 10 positions of 8 \(needs 2/,
  );
  for (const t of [floatTokens.tokens, shortSlots.slots]) t.dispose();
  step.dispose();
  cache.dispose();
  wrongCache.dispose();
  model.dispose();
  other.dispose();
});
