// Shared pieces of the inference-engine tests: a small model with every feature the paged cache carries, a smaller
// draft of another shape (speculative decoding), greedy parameters, and a set of requests run through one engine.
import assert from 'node:assert/strict';
import '../../src/engine/index.js';
import { andromedaFamily } from '../../src/train/andromeda-adapter.js';
import { generate } from '../../src/inference/generate.js';
import {
  InferenceEngine,
  type GenerationParams,
  type GenerationResult,
  type InferenceEngineOptions,
} from '../../src/inference/engine.js';
import { ByteTokenizer } from '../../src/data/tokenizer/byte.js';
import type { LanguageModel } from '../../src/train/model.js';

export const tokenizer = new ByteTokenizer();

/** A small shape with every feature the paged cache carries: ALiBi, rotary + xPos, GQA, qk-norm, token shift 2. */
export const FEATURE_SHAPE = {
  dim: 64,
  depth: 2,
  heads: 4,
  headDim: 16,
  kvHeads: 2,
  alibiHeads: 1,
  shiftTokens: 2,
  qkNorm: true,
  rotary: { xpos: true, dim: 8 },
};

/** FEATURE_SHAPE over the byte vocabulary, on the CPU. */
export function featureModel(seed: number): LanguageModel {
  const config = andromedaFamily.presetConfig('tiny', tokenizer.vocabSize, FEATURE_SHAPE);
  return andromedaFamily.create(config, { seed, device: 'cpu' });
}

/** A smaller draft with another shape and token shift 1 (its own ring), on the CPU. */
export function draftModel(seed: number): LanguageModel {
  const config = andromedaFamily.presetConfig('tiny', tokenizer.vocabSize, {
    dim: 32,
    depth: 1,
    heads: 2,
    headDim: 16,
    shiftTokens: 1,
    rotary: { dim: 8 },
  });
  return andromedaFamily.create(config, { seed, device: 'cpu' });
}

export const greedy = (maxTokens: number): GenerationParams => ({ temperature: 0, maxTokens, ignoreEos: true });

/** Greedy tokens by recomputing the whole sequence every step (the reference path). */
export function referenceGreedy(model: LanguageModel, prompt: string, maxTokens: number): number[] {
  return generate(model, andromedaFamily, tokenizer, prompt, {
    temperature: 0,
    maxTokens,
    stopAtEos: false,
    cache: false,
  }).ids;
}

export interface Submission {
  prompt: string;
  params: GenerationParams;
  /** Submitted after this many milliseconds (joining the running batch mid-stream). */
  delayMs?: number;
}

/**
 * Runs the submissions through one engine over `target` and closes it; fails on a request's error and unless
 * every cache block is released once every request has ended.
 */
export async function runAll(
  target: LanguageModel,
  submissions: readonly Submission[],
  options: InferenceEngineOptions,
): Promise<{ results: GenerationResult[]; stats: ReturnType<InferenceEngine['stats']> }> {
  const engine = new InferenceEngine(target, tokenizer, options);
  try {
    const results = await Promise.all(
      submissions.map(async ({ prompt, params, delayMs }) => {
        if (delayMs) await new Promise((resolve) => setTimeout(resolve, delayMs));
        return engine.submit(prompt, params).result;
      }),
    );
    for (const r of results) if (r.error) throw r.error;
    const stats = engine.stats();
    assert.equal(stats.blocks.used, 0, 'every block is released when every request has ended');
    return { results, stats };
  } finally {
    await engine.close();
  }
}
