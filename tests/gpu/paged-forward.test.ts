// The paged forward on the CUDA engine: prefill in one step, in chunks and token by token equals the dense
// forward on both attention routes (the paged kernel, and the dense attention for many-query sequences); 64
// greedy tokens through the paged cache equal full recomputation in float32, alone and 4 sequences batched
// (the "cached = uncached" on CUDA); bfloat16 within its rounding; speculative greedy = the target alone.
// float32 references are the same weights on the CPU engine: the CUDA engine's dense attention narrows float32
// to bfloat16 for its tensor cores (native/cuda/attention/NOTES.md), so only the paged kernel route is float32
// throughout, and only it is held to float32's bound.
import assert from 'node:assert/strict';
import type { DType } from '../../src/tensor/dtype.js';
import { Andromeda } from '../../src/model/andromeda.js';
import type { AndromedaConfigInput } from '../../src/model/config.js';
import { presetInput } from '../../src/model/presets.js';
import type { PagedForwardOptions } from '../../src/model/paged-forward.js';
import { speculativeGenerate } from '../../src/inference/speculative.js';
import { maxAbsDiff, randomTokens, relativeError } from '../model/helpers.js';
import {
  argmax,
  BlockAllocator,
  denseLogits,
  greedyByRecomputation,
  pagedStep,
  testModel,
  type TestSequence,
} from '../model/paged-helpers.js';
import { gpuTest } from './harness.js';

const tiny = presetInput('tiny');
const VARIANTS: [string, AndromedaConfigInput][] = [
  ['tiny (MQA, ALiBi + rotary xPos, shift 1)', tiny],
  ['deepnorm, qk-norm + dim scale', { ...tiny, deepnorm: true, qkNorm: true, qkNormDimScale: true }],
  ['GQA, parallel blocks, shift 2', { ...tiny, kvHeads: 2, parallelBlocks: true, shiftTokens: 2 }],
  ['head dim 128 (the 3B shape), no rotary', { ...tiny, headDim: 128, heads: 2, rotary: null }],
];
const ROUTES: [string, PagedForwardOptions][] = [
  ['paged kernel', { denseAttentionMinQueries: Infinity }],
  ['default routes', {}],
  ['dense attention for ≥ 4 query rows', { denseAttentionMinQueries: 4 }],
];
const BOUNDS: Record<string, { maxAbs?: number; relative?: number }> = {
  float32: { maxAbs: 1e-4 },
  bfloat16: { relative: 3e-2 },
  /** float32 through the dense attention's bfloat16 tensor cores. */
  float32ViaBf16Attention: { relative: 1e-2 },
};
const PAGED_KERNEL_ONLY: PagedForwardOptions = { denseAttentionMinQueries: Infinity };

/** The model's weights on the CPU engine (float32), for references computed in float32 throughout. */
function cpuTwin(model: Andromeda): Andromeda {
  const twin = new Andromeda(model.config, { seed: 0, device: 'cpu' });
  twin.loadStateDict(new Map(model.namedParameters()));
  return twin;
}

for (const dtype of ['float32', 'bfloat16'] as DType[]) {
  for (const [name, config] of VARIANTS) {
    gpuTest(`cuda ${dtype}: paged prefill (one step, chunks, token by token) = dense forward — ${name}`, () => {
      const model = testModel(config, 3, { device: 'cuda', dtype });
      const n = 150;
      const prompt = Array.from(randomTokens(n, model.config.vocabSize, 11));
      const reference = dtype === 'float32' ? cpuTwin(model) : model;
      const expected = denseLogits(reference, prompt);
      if (reference !== model) reference.dispose();
      try {
        for (const [route, options] of ROUTES) {
          for (const [split, sizes] of [
            ['one step', [n]],
            ['chunks of 70, 1, 9, 70', [70, 1, 9, 70]],
            ['token by token', Array.from({ length: n }, () => 1)],
          ] as const) {
            const cache = model.createPagedKVCache(24, { blockSize: 16 });
            const allocator = new BlockAllocator(cache.numBlocks, 5);
            const seq: TestSequence = { tokens: prompt, cached: 0, blocks: [] };
            const rows = sizes.map((size) => pagedStep(model, cache, allocator, [[seq, size]], 'all', options));
            cache.dispose();
            const got = Float64Array.from(rows.flatMap((r) => Array.from(r)));
            const viaBf16 = dtype === 'float32' && options.denseAttentionMinQueries !== Infinity;
            const b = BOUNDS[viaBf16 ? 'float32ViaBf16Attention' : dtype]!;
            if (b.maxAbs !== undefined) {
              const diff = maxAbsDiff(got, expected);
              assert.ok(diff < b.maxAbs, `${route}, ${split}: max |paged − dense| = ${diff}`);
            } else {
              const error = relativeError(got, expected);
              assert.ok(error < b.relative!, `${route}, ${split}: relative error ${error}`);
            }
          }
        }
      } finally {
        model.dispose();
      }
    });
  }
}

gpuTest('cuda float32: cached = uncached, 64 greedy tokens through the paged cache, alone and 4 batched', () => {
  const model = testModel({ ...tiny, qkNorm: true, qkNormDimScale: true, shiftTokens: 2 }, 6, { device: 'cuda' });
  const vocab = model.config.vocabSize;
  const steps = 64;
  const lengths = [7, 100, 1, 33];
  const prompts = lengths.map((n, i) => Array.from(randomTokens(n, vocab, 40 + i)));
  try {
    const twin = cpuTwin(model);
    const expected = prompts.map((p) => greedyByRecomputation(twin, p, steps));
    twin.dispose();
    for (const batched of [false, true]) {
      const cache = model.createPagedKVCache(64, { blockSize: 16 });
      const allocator = new BlockAllocator(cache.numBlocks, 13);
      const groups = batched ? [prompts.map((_, i) => i)] : prompts.map((_, i) => [i]);
      for (const group of groups) {
        const seqs = group.map((i): TestSequence => ({ tokens: [...prompts[i]!], cached: 0, blocks: [] }));
        let last = pagedStep(
          model,
          cache,
          allocator,
          seqs.map((s) => [s, s.tokens.length]),
          'last',
          PAGED_KERNEL_ONLY,
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
              PAGED_KERNEL_ONLY,
            );
        }
        group.forEach((i, j) =>
          assert.deepEqual(seqs[j]!.tokens.slice(prompts[i]!.length), expected[i], `sequence ${i}, batched ${batched}`),
        );
      }
      cache.dispose();
    }
  } finally {
    model.dispose();
  }
});

gpuTest('cuda float32: speculative greedy = the target alone (64 tokens, k = 2 and 4)', () => {
  const target = testModel(tiny, 1, { device: 'cuda' });
  const draft = testModel({ ...tiny, depth: 1 }, 2, { device: 'cuda' });
  const prompt = [10, 200, 33, 4, 87];
  try {
    const twin = cpuTwin(target);
    const expected = greedyByRecomputation(twin, prompt, 64);
    twin.dispose();
    for (const k of [2, 4]) {
      const out = speculativeGenerate(target, draft, prompt, { draftTokens: k, maxTokens: 64, temperature: 0 });
      assert.deepEqual(Array.from(out.tokens), expected, `k = ${k}`);
      const self = speculativeGenerate(target, target, prompt, { draftTokens: k, maxTokens: 64, temperature: 0 });
      assert.deepEqual(Array.from(self.tokens), expected, `k = ${k}, the target as its own draft`);
    }
  } finally {
    target.dispose();
    draft.dispose();
  }
});
