/**
 * Choosing the next token from a row of logits: greedy (temperature 0), or sampling with
 * temperature, top-k and top-p (nucleus) filtering, driven by a seeded Generator so a seed
 * reproduces a generation exactly. Works on host arrays (one row of vocabulary logits).
 */
import { Generator } from '../tensor/random.js';

export interface SamplingOptions {
  /** 0 means greedy decoding. Default 1. */
  temperature?: number;
  /** Keep only the k most likely tokens (0 or undefined: all). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (1 or undefined: all). */
  topP?: number;
}

export function validateSampling(o: SamplingOptions): void {
  if (o.temperature !== undefined && !(o.temperature >= 0 && Number.isFinite(o.temperature)))
    throw new RangeError(`temperature must be a finite number ≥ 0, got ${o.temperature}`);
  if (o.topK !== undefined && !(Number.isInteger(o.topK) && o.topK >= 0))
    throw new RangeError(`top-k must be an integer ≥ 0, got ${o.topK}`);
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1))
    throw new RangeError(`top-p must be in (0, 1], got ${o.topP}`);
}

/** Index of the largest logit (the first one on ties); NaNs are never chosen. */
export function argmax(logits: ArrayLike<number>): number {
  let best = -1;
  let bestValue = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i];
    if (v > bestValue || (best < 0 && v === -Infinity)) {
      best = i;
      bestValue = v;
    }
  }
  if (best < 0) throw new RangeError('argmax: every logit is NaN');
  return best;
}

/**
 * The distribution that sampling draws from, after temperature, top-k and top-p: token ids in
 * decreasing probability and their (renormalised) probabilities.
 */
export function filteredDistribution(
  logits: ArrayLike<number>,
  o: SamplingOptions = {},
): { ids: Int32Array; probs: Float64Array } {
  validateSampling(o);
  const temperature = o.temperature ?? 1;
  const n = logits.length;
  if (temperature === 0) {
    return { ids: Int32Array.of(argmax(logits)), probs: Float64Array.of(1) };
  }
  const order: number[] = [];
  for (let i = 0; i < n; i++) if (!Number.isNaN(logits[i]) && logits[i] !== -Infinity) order.push(i);
  if (order.length === 0) throw new RangeError('sampling: no token has a finite logit');
  // Decreasing logit, ties by lower id (stable and deterministic).
  order.sort((a, b) => logits[b] - logits[a] || a - b);
  let keep = order.length;
  if (o.topK && o.topK > 0) keep = Math.min(keep, o.topK);
  const max = logits[order[0]];
  const weights = new Float64Array(keep);
  let total = 0;
  for (let r = 0; r < keep; r++) {
    const w = Math.exp((logits[order[r]] - max) / temperature);
    weights[r] = w;
    total += w;
  }
  const topP = o.topP ?? 1;
  if (topP < 1) {
    let cumulative = 0;
    let cut = keep;
    for (let r = 0; r < keep; r++) {
      cumulative += weights[r] / total;
      if (cumulative >= topP) {
        cut = r + 1;
        break;
      }
    }
    keep = cut;
    total = 0;
    for (let r = 0; r < keep; r++) total += weights[r];
  }
  const ids = new Int32Array(keep);
  const probs = new Float64Array(keep);
  for (let r = 0; r < keep; r++) {
    ids[r] = order[r];
    probs[r] = weights[r] / total;
  }
  return { ids, probs };
}

/** Draws the next token id. */
export function sampleToken(logits: ArrayLike<number>, o: SamplingOptions, generator: Generator): number {
  if ((o.temperature ?? 1) === 0) return argmax(logits);
  const { ids, probs } = filteredDistribution(logits, o);
  const u = generator.uniform();
  let cumulative = 0;
  for (let r = 0; r < ids.length; r++) {
    cumulative += probs[r];
    if (u < cumulative) return ids[r];
  }
  return ids[ids.length - 1];
}
