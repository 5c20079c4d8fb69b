/**
 * Which of a draft model's proposals the target accepts, so that speculative decoding yields exactly the
 * target's own output (Leviathan et al. 2023; Chen et al. 2023). Used by the batch-1 `speculativeGenerate`
 * (./speculative.ts) and by the inference engine's speculative steps (./speculative-decoder.ts).
 *
 *   greedy    accept while the draft token is the target's argmax; then the target's token
 *   sampling  accept draft token d with probability min(1, p(d) / q(d)); at the first rejection draw from
 *             norm(max(0, p − q)); if all are accepted draw one more from p
 *
 * (p: the target's distribution at that position, q: the draft's, both after the same temperature, top-k and
 * top-p.) A verification of k proposals yields between 1 and k + 1 tokens.
 */
import type { Generator } from '../tensor/random.js';
import { filteredDistribution, type SamplingOptions } from './sampling.js';

/** The outcome of verifying one sequence's proposals. */
export interface Acceptance {
  /** Leading proposals accepted (0 to proposals.length). */
  accepted: number;
  /** The target's token after them: a correction at a rejection, else one more token. */
  next: number;
}

/**
 * Greedy: `targetChoices[i]` is the target's argmax after the sequence extended by proposals 0 .. i − 1
 * (proposals.length + 1 entries).
 */
export function acceptGreedy(proposals: readonly number[], targetChoices: ArrayLike<number>): Acceptance {
  let accepted = 0;
  while (accepted < proposals.length && proposals[accepted] === targetChoices[accepted]) accepted++;
  return { accepted, next: targetChoices[accepted]! };
}

/**
 * Sampling: `draftDistributions[i]` is q, the distribution proposal i was drawn from; `targetDistribution(i)`
 * is p at the same position (i from 0 to proposals.length, the last one after every proposal; asked for only
 * as far as the verification gets). Draws from `generator`: one uniform per proposal examined, one more for
 * the final token.
 */
export function acceptSampled(
  proposals: readonly number[],
  draftDistributions: readonly Float64Array[],
  targetDistribution: (i: number) => Float64Array,
  generator: Generator,
): Acceptance {
  for (let i = 0; i < proposals.length; i++) {
    const d = proposals[i]!;
    const p = targetDistribution(i),
      q = draftDistributions[i]!;
    if (generator.uniform() * q[d]! < p[d]!) continue;
    return { accepted: i, next: sampleFrom(residual(p, q), generator) };
  }
  return { accepted: proposals.length, next: sampleFrom(targetDistribution(proposals.length), generator) };
}

/** The sampling distribution of a row of logits as probabilities over token ids 0 .. vocab − 1. */
export function denseDistribution(logits: ArrayLike<number>, o: SamplingOptions, vocab: number): Float64Array {
  const { ids, probs } = filteredDistribution(logits, o);
  const dense = new Float64Array(vocab);
  ids.forEach((id, r) => (dense[id] = probs[r]!));
  return dense;
}

/** norm(max(0, p − q)): what is left of the target's distribution where the draft under-proposed. */
export function residual(p: Float64Array, q: Float64Array): Float64Array {
  const out = p.map((pi, i) => Math.max(0, pi - q[i]!));
  const total = out.reduce((a, b) => a + b, 0);
  // No mass left means p = q, where a proposal is always accepted: only rounding gets here, and p is then right.
  return total > 0 ? out.map((x) => x / total) : p;
}

/** Draws a token id from probabilities over the vocabulary (one uniform from `generator`). */
export function sampleFrom(probs: Float64Array, generator: Generator): number {
  const u = generator.uniform();
  let cumulative = 0,
    last = 0;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i]! <= 0) continue;
    cumulative += probs[i]!;
    last = i;
    if (u < cumulative) return i;
  }
  return last;
}
