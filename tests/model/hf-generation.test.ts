// Greedy generation from the transformers parity fixtures (tests/fixtures/hf): the inference engine (the paged
// forward where the family's attention has one, the dense KV-cache path otherwise) and the cached single-request
// path must pick the tokens the reference path picks by recomputing the whole sequence at every step. The
// fixtures' logits are checked against transformers in hf-import.test.ts; this checks that every decoding path
// computes the same function (LongRoPE switching frequencies as the sequence outgrows the original length, the
// sliding window, Gemma's embedding scale and offset norms in the paged forward, Gemma 2's soft-caps, four norms
// and windows on alternate layers in the cached path).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import '../../src/engine/index.js';
import { importHuggingFace } from '../../src/model/hf-import.js';
import { AndromedaLM, andromedaFamily } from '../../src/train/andromeda-adapter.js';
import { generate } from '../../src/inference/generate.js';
import { InferenceEngine } from '../../src/inference/engine.js';
import { hasPagedForward } from '../../src/inference/runners.js';
import { ByteTokenizer } from '../../src/data/tokenizer/byte.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { tidy } from '../../src/tensor/scope.js';
import { noGrad } from '../../src/autograd/grad-mode.js';
import type { Andromeda } from '../../src/model/andromeda.js';
import { values } from './helpers.js';

const HF_FIXTURES = fileURLToPath(new URL('../../../tests/fixtures/hf/', import.meta.url));
const manifest = existsSync(join(HF_FIXTURES, 'manifest.json'))
  ? (JSON.parse(readFileSync(join(HF_FIXTURES, 'manifest.json'), 'utf8')) as {
      cases: Record<string, { architecture: string }>;
    })
  : { cases: {} };

const tokenizer = new ByteTokenizer();
// 16 to 27 prompt tokens plus 20 generated: the LongRoPE fixture (original length 32) decodes across the switch
// to its long factors, the sliding-window ones (window 12) past their window.
const PROMPTS = ['Once upon a time', 'The quick brown fox jumps', 'Hello'.repeat(3) + ' world'];
const MAX_TOKENS = 20;
const TOP = 5;

/**
 * The Phi-3 and Gemma fixtures, and whether the engine runs them over the paged cache on the CPU: its paged kernel
 * has the sliding window and Gemma 2's attention soft-cap; LongRoPE's length-dependent frequencies take a KV cache
 * per sequence.
 */
const PAGED: Record<string, boolean> = {
  phi3: true,
  'phi3-longrope': false,
  'phi3-partial-longrope': false,
  gemma: true,
  gemma2: true,
};
const CASES = Object.keys(PAGED);

/** log-softmax over the tokenizer's columns of the last position's logits, recomputing the whole context. */
function referenceLogprobs(model: Andromeda, context: readonly number[]): Float64Array {
  const logits = noGrad(() =>
    tidy(() => values(model.forward(Tensor.fromArray(context, [1, context.length], 'int32'), { logits: 'last' }))),
  ).subarray(0, tokenizer.vocabSize);
  const max = logits.reduce((m, v) => Math.max(m, v), -Infinity);
  const logSum = Math.log(logits.reduce((sum, v) => sum + Math.exp(v - max), 0)) + max;
  return logits.map((v) => v - logSum);
}

for (const name of CASES) {
  test(`greedy generation from the ${name} fixture: engine and cached decoding = recomputing every step`, async (t) => {
    if (!manifest.cases[name]) return t.skip(`tests/fixtures/hf/${name} is not committed`);
    const { model: andromeda } = importHuggingFace(join(HF_FIXTURES, name));
    const model = new AndromedaLM(andromeda);
    const engine = new InferenceEngine(model, tokenizer, { blockSize: 8, numBlocks: 32, maxBatch: 3 });
    try {
      assert.equal(hasPagedForward(model), PAGED[name]);
      const greedy = (prompt: string, cache: boolean) =>
        generate(model, andromedaFamily, tokenizer, prompt, {
          temperature: 0,
          maxTokens: MAX_TOKENS,
          stopAtEos: false,
          cache,
        }).ids;
      const streams = PROMPTS.map((p) =>
        engine.submit(p, { temperature: 0, maxTokens: MAX_TOKENS, ignoreEos: true, topLogprobs: TOP }),
      );
      // Every step's most likely tokens and their log-probabilities, against the whole context recomputed: a
      // copying continuation (tied embeddings favour one) still checks the logits of each step.
      const events = await Promise.all(
        streams.map(async (stream) => {
          const seen = [];
          for await (const event of stream) seen.push(event);
          return seen;
        }),
      );
      assert.equal(engine.stats().paged, PAGED[name], 'the engine took the path the model has');
      PROMPTS.forEach((prompt, i) => {
        const reference = greedy(prompt, false);
        assert.equal(reference.length, MAX_TOKENS);
        assert.deepEqual(greedy(prompt, true), reference, `${name}: cached decoding of prompt ${i}`);
        assert.deepEqual(
          events[i]!.map((e) => e.tokenId),
          reference,
          `${name}: the engine's tokens for prompt ${i}`,
        );
        const context = [tokenizer.eosId, ...tokenizer.encode(prompt)];
        events[i]!.forEach((event, step) => {
          const expected = referenceLogprobs(andromeda, [...context, ...reference.slice(0, step)]);
          for (const { tokenId, logprob } of event.topLogprobs!)
            assert.ok(
              Math.abs(logprob - expected[tokenId]!) < 1e-4,
              `${name}, prompt ${i}, step ${step}: log p(${tokenId}) ${logprob} vs ${expected[tokenId]} recomputed`,
            );
        });
      });
    } finally {
      await engine.close();
      andromeda.dispose();
    }
  });
}

test('the fixtures this file checks are recorded in the manifest', () => {
  for (const name of CASES) assert.ok(manifest.cases[name], `tests/fixtures/hf/manifest.json has no ${name}`);
});
