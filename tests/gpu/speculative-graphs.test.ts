// Speculative decoding in the inference engine on CUDA with graphs (src/inference/speculative-graphs.ts): greedy
// steps replay the target's verification and the draft's catch-up as captured CUDA graphs, and the outputs are
// those of the eager path and of the target alone. float32 weights, so that rounding does not flip an argmax.
import assert from 'node:assert/strict';
import { andromedaFamily } from '../../src/train/andromeda-adapter.js';
import { InferenceEngine, type InferenceEngineOptions } from '../../src/inference/engine.js';
import { ByteTokenizer } from '../../src/data/tokenizer/byte.js';
import type { LanguageModel } from '../../src/train/model.js';
import { gpuTest } from './harness.js';

const tokenizer = new ByteTokenizer();

function model(seed: number, shape: { dim: number; depth: number; heads: number; shiftTokens: number }): LanguageModel {
  const config = andromedaFamily.presetConfig('tiny', tokenizer.vocabSize, {
    ...shape,
    headDim: 32, // the smallest head the CUDA paged kernels take
    rotary: { dim: 16 },
  });
  return andromedaFamily.create(config, { seed, device: 'cuda' });
}

const PROMPTS = [
  'Call me Ishmael.',
  '',
  'It was the best of times, it was the worst of times, it was',
  'x',
  'Some years',
];

async function generate(
  target: LanguageModel,
  options: InferenceEngineOptions,
): Promise<{ tokens: number[][]; stats: ReturnType<InferenceEngine['stats']> }> {
  const engine = new InferenceEngine(target, tokenizer, { blockSize: 16, numBlocks: 256, maxBatch: 4, ...options });
  try {
    const results = await Promise.all(
      PROMPTS.map((p, i) => engine.submit(p, { temperature: 0, maxTokens: 20 + 9 * i, ignoreEos: true }).result),
    );
    for (const r of results) if (r.error) throw r.error;
    return { tokens: results.map((r) => r.tokenIds), stats: engine.stats() };
  } finally {
    await engine.close();
  }
}

gpuTest('cuda: speculative steps replayed as graphs give the eager path’s and the target’s tokens', async () => {
  const target = model(1, { dim: 64, depth: 2, heads: 4, shiftTokens: 2 });
  const draft = model(2, { dim: 32, depth: 1, heads: 2, shiftTokens: 1 });
  const warnings: string[] = [];
  const onWarning = (w: Error & { code?: string }): void => {
    if (w.code === 'ANDROMEDA_GRAPH_CAPTURE') warnings.push(w.message);
  };
  process.on('warning', onWarning);
  try {
    const alone = await generate(target, { cudaGraphs: false });
    assert.equal(alone.stats.paged, true, 'the target decodes over the paged cache');
    for (const k of [1, 2, 4]) {
      const eager = await generate(target, { cudaGraphs: false, draft: { model: draft, tokens: k } });
      const graphed = await generate(target, { draft: { model: draft, tokens: k } });
      graphed.tokens.forEach((t, i) => {
        assert.deepEqual(t, alone.tokens[i], `k = ${k}, prompt ${i}: the target alone's tokens`);
        assert.deepEqual(t, eager.tokens[i], `k = ${k}, prompt ${i}: the eager path's tokens`);
      });
      const s = graphed.stats.speculative!;
      assert.ok(s.graphVerifications > 0 && s.graphCatchUps > 0, `k = ${k}: graphs replayed: ${JSON.stringify(s)}`);
      assert.equal(eager.stats.speculative!.graphVerifications, 0);
    }
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(warnings, [], 'no capture was refused');
  } finally {
    process.off('warning', onWarning);
    target.dispose();
    draft.dispose();
  }
});
