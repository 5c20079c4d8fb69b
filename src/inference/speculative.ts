/**
 * Speculative decoding of one sequence (Leviathan et al. 2023; Chen et al. 2023): a small draft model proposes
 * k tokens one at a time, the target model scores all k + 1 positions in one paged step, and the proposals are
 * accepted (./speculative-acceptance.ts) so that the output is distributed exactly as the target's own
 * sampling would be. Every step yields between 1 and k + 1 tokens. The inference engine does the same for
 * every sequence of a continuous batch (./speculative-decoder.ts).
 *
 * Each model keeps its own paged cache. Keys and values of rejected positions simply stay past the context
 * length and are overwritten when those positions are computed again. Token-shift tails use ring = shifts + k,
 * so the rejected positions written in a step never land on a tail slot the next step still reads.
 */
import { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Andromeda } from '../model/andromeda.js';
import type { PagedKVCache } from '../model/paged-kv-cache.js';
import { buildPagedStep } from '../model/paged-step.js';
import { argmax, validateSampling, type SamplingOptions } from './sampling.js';
import { acceptGreedy, acceptSampled, denseDistribution, sampleFrom } from './speculative-acceptance.js';

export interface SpeculativeOptions extends SamplingOptions {
  /** Tokens the draft proposes per step (k ≥ 1). */
  draftTokens: number;
  /** Tokens to generate at most. */
  maxTokens: number;
  /** Seed of the sampling (ignored when greedy). Default 0. */
  seed?: number;
  /** Generation stops after any of these token ids (which is kept in the output). */
  stopIds?: readonly number[];
  /** Positions per cache block. Default 32. */
  blockSize?: number;
  /**
   * Token ids that may be generated: 0 .. vocab − 1 (a tokenizer smaller than the model's embedding leaves the
   * columns past it unsampled). Default: the model's whole vocabulary.
   */
  vocab?: number;
}

export interface SpeculativeResult {
  /** The generated tokens (the prompt excluded). */
  tokens: Int32Array;
  finishReason: 'stop' | 'length';
  /** Target verification passes. */
  steps: number;
  /** Draft tokens proposed and accepted: the acceptance rate is accepted / proposed. */
  proposed: number;
  accepted: number;
}

/** One model's side of the decoding: its cache and how many of the sequence's positions it holds. */
class ModelSide {
  readonly cache: PagedKVCache;
  readonly blockTable: Int32Array;
  /** Positions 0 .. cached − 1 of the sequence are in the cache. */
  cached = 0;

  constructor(
    readonly model: Andromeda,
    positions: number,
    blockSize: number,
    draftTokens: number,
    private readonly sampledVocab: number,
  ) {
    const blocks = Math.ceil(positions / blockSize);
    this.cache = model.createPagedKVCache(blocks, {
      blockSize,
      ring: model.config.shiftTokens > 0 ? model.config.shiftTokens + draftTokens : undefined,
    });
    this.blockTable = Int32Array.from({ length: blocks }, (_, i) => i);
  }

  /** Runs `tokens` at positions cached .. cached + n − 1; returns logits of the last row or all rows (host). */
  run(tokens: readonly number[], logits: 'last' | 'all'): Float32Array[] {
    const n = tokens.length;
    const tableLength = Math.ceil((this.cached + n) / this.cache.blockSize);
    const step = buildPagedStep(
      [{ tokens, cached: this.cached, blockTable: this.blockTable.subarray(0, tableLength) }],
      { blockSize: this.cache.blockSize, device: this.model.device, logits },
    );
    let out: Tensor | null = null;
    try {
      out = this.model.forwardPaged(step, this.cache);
      this.cached += n;
      const all = out.toArray() as Float32Array;
      const vocab = this.model.config.vocabSize;
      return Array.from({ length: all.length / vocab }, (_, r) =>
        all.subarray(r * vocab, r * vocab + this.sampledVocab),
      );
    } finally {
      out?.dispose();
      step.dispose();
    }
  }

  dispose(): void {
    this.cache.dispose();
  }
}

/**
 * Generates up to `o.maxTokens` tokens after `prompt` with the target model, the draft proposing
 * `o.draftTokens` tokens per step. Greedy output is identical to the target decoding alone; sampled output has
 * the target's distribution.
 */
export function speculativeGenerate(
  target: Andromeda,
  draft: Andromeda,
  prompt: ArrayLike<number>,
  o: SpeculativeOptions,
): SpeculativeResult {
  checkInputs(target, draft, prompt, o);
  const k = o.draftTokens;
  const greedy = (o.temperature ?? 1) === 0;
  const generator = new Generator(o.seed ?? 0);
  const stops = new Set(o.stopIds ?? []);
  const vocab = o.vocab ?? target.config.vocabSize;
  const distribution = (logits: Float32Array): Float64Array => denseDistribution(logits, o, vocab);
  const blockSize = o.blockSize ?? 32;
  // The last step may verify k positions past the final token.
  const positions = prompt.length + o.maxTokens + k;
  const sequence = Array.from(prompt);
  const sides = [
    new ModelSide(target, positions, blockSize, k, vocab),
    new ModelSide(draft, positions, blockSize, k, vocab),
  ];
  const [verifier, proposer] = sides as [ModelSide, ModelSide];
  const result: SpeculativeResult = {
    tokens: new Int32Array(0),
    finishReason: 'length',
    steps: 0,
    proposed: 0,
    accepted: 0,
  };
  try {
    // Both caches hold every position but the last; the last token is fed by the next step.
    if (sequence.length > 1) for (const side of sides) side.run(sequence.slice(0, -1), 'last');
    let generated = 0;
    while (generated < o.maxTokens) {
      const m = sequence.length;
      // A step yields at most proposals + 1 tokens: never more than are left to generate.
      const proposals = Math.min(k, o.maxTokens - generated - 1);
      const drafted: number[] = [];
      const draftProbs: Float64Array[] = [];
      let feed = sequence.slice(proposer.cached);
      for (let i = 0; i < proposals; i++) {
        const [logits] = proposer.run(feed, 'last');
        let token: number;
        if (greedy) token = argmax(logits!);
        else {
          const q = distribution(logits!);
          draftProbs.push(q);
          token = sampleFrom(q, generator);
        }
        drafted.push(token);
        feed = [token];
      }
      const scored = verifier.run([sequence[m - 1]!, ...drafted], 'all');
      result.steps++;
      result.proposed += proposals;
      const { accepted, next } = greedy
        ? acceptGreedy(
            drafted,
            scored.map((row) => argmax(row)),
          )
        : acceptSampled(drafted, draftProbs, (i) => distribution(scored[i]!), generator);
      result.accepted += accepted;
      // Positions m − 1 .. m − 1 + accepted now hold accepted tokens in the target's cache; the draft holds
      // what it computed of them (it never ran its last proposal).
      verifier.cached = m + accepted;
      proposer.cached = Math.min(proposer.cached, m + accepted);
      const produced = [...drafted.slice(0, accepted), next];
      const stopAt = produced.findIndex((t) => stops.has(t));
      sequence.push(...(stopAt >= 0 ? produced.slice(0, stopAt + 1) : produced));
      generated += stopAt >= 0 ? stopAt + 1 : produced.length;
      if (stopAt >= 0) {
        result.finishReason = 'stop';
        break;
      }
    }
    result.tokens = Int32Array.from(sequence.slice(prompt.length));
    return result;
  } finally {
    for (const side of sides) side.dispose();
  }
}

function checkInputs(target: Andromeda, draft: Andromeda, prompt: ArrayLike<number>, o: SpeculativeOptions): void {
  const what = 'speculativeGenerate';
  validateSampling(o);
  if (!Number.isInteger(o.draftTokens) || o.draftTokens < 1)
    throw new RangeError(`${what}: draftTokens ${o.draftTokens} must be an integer ≥ 1`);
  if (!Number.isInteger(o.maxTokens) || o.maxTokens < 1)
    throw new RangeError(`${what}: maxTokens ${o.maxTokens} must be an integer ≥ 1`);
  if (target.config.vocabSize !== draft.config.vocabSize)
    throw new RangeError(
      `${what}: the draft's vocabulary (${draft.config.vocabSize}) differs from the target's ` +
        `(${target.config.vocabSize})`,
    );
  if (target.device !== draft.device)
    throw new RangeError(`${what}: the draft is on ${draft.device}, the target on ${target.device}`);
  if (prompt.length < 1) throw new RangeError(`${what}: the prompt is empty`);
  const vocab = target.config.vocabSize;
  if (o.vocab !== undefined && !(Number.isInteger(o.vocab) && o.vocab >= 1 && o.vocab <= vocab))
    throw new RangeError(`${what}: vocab ${o.vocab} must be an integer from 1 to the model's ${vocab}`);
  for (let i = 0; i < prompt.length; i++) {
    const t = prompt[i]!;
    if (!Number.isInteger(t) || t < 0 || t >= vocab)
      throw new RangeError(`${what}: prompt token ${i} is ${t}, outside the vocabulary [0, ${vocab})`);
  }
}
