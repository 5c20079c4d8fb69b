// A float64 host reference of device sampling (src/ops/sampling.ts), written from its documentation: the
// counter-based uniform of native/common/counter_random.h (splitmix64 of seed and index, in BigInt), scores with
// each float32 operation of native/common/sampling_math.h rounded by Math.fround, and everything after the
// scores (weights, log-probabilities, the filters, the draw) in float64.
import type { DeviceSamplingOptions } from '../../src/ops/sampling.js';

const MASK = (1n << 64n) - 1n;

/** uniform_from_counter(seed, index): uniform in [0, 1) with 53 bits. */
export function uniformFromCounter(seed: number, index: number): number {
  let z = (BigInt(seed) * 0x9e3779b97f4a7c15n + BigInt(index) + 0x632be59bd9b4e019n) & MASK;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK;
  z ^= z >> 31n;
  return Number(z >> 11n) / 2 ** 53;
}

/** A row's scores: penalties for tokens seen, then the temperature (greedy rows keep temperature 1). */
export function referenceScores(
  logits: ArrayLike<number>,
  counts: ArrayLike<number> | null,
  o: DeviceSamplingOptions,
): Float64Array {
  const f = Math.fround;
  const temperature = f(o.temperature ?? 1);
  const rep = f(o.repetitionPenalty ?? 1),
    freq = f(o.frequencyPenalty ?? 0),
    pres = f(o.presencePenalty ?? 0);
  return Float64Array.from({ length: logits.length }, (_, i) => {
    let z = f(logits[i]!);
    const c = counts ? counts[i]! : 0;
    if (c > 0) {
      z = f(z > 0 ? z / rep : z * rep);
      z = f(z - freq * c);
      z = f(z - pres);
    }
    if (temperature > 0) z = f(z / temperature);
    return Number.isNaN(z) ? -Infinity : z;
  });
}

/** Token ids by score (descending), then id (ascending). */
export function samplingOrder(scores: Float64Array): number[] {
  return Array.from(scores.keys()).sort((a, b) => scores[b]! - scores[a]! || a - b);
}

/** log-softmax of the scores. */
export function referenceLogprobs(scores: Float64Array): Float64Array {
  let max = -Infinity;
  for (const s of scores) max = Math.max(max, s);
  let total = 0;
  for (const s of scores) total += Math.exp(s - max);
  const lse = max + Math.log(total);
  return scores.map((s) => s - lse);
}

/** The kept ids (top-k, top-p over the top-k, min-p) with their probabilities renormalised over the kept. */
export function referenceFiltered(scores: Float64Array, o: DeviceSamplingOptions): Map<number, number> {
  const order = samplingOrder(scores);
  const max = scores[order[0]!]!;
  const weight = (i: number) => (scores[i] === max ? 1 : Math.exp(scores[i]! - max));
  const topK = o.topK ?? 0;
  let kept = topK >= 1 && topK < order.length ? topK : order.length;
  const topP = o.topP ?? 1;
  if (topP < 1) {
    let mass = 0;
    for (let j = 0; j < kept; j++) mass += weight(order[j]!);
    let running = 0;
    let j = 0;
    for (; j < kept - 1; j++) {
      running += weight(order[j]!);
      if (running >= topP * mass) break;
    }
    kept = j + 1;
  }
  const minP = Math.min(o.minP ?? 0, 1);
  // The kernels weigh in float32: a weight that underflows there can never be drawn.
  const ids = order
    .slice(0, kept)
    .filter((i) => (!(minP > 0) || weight(i) >= Math.fround(minP)) && Math.fround(weight(i)) > 0);
  const total = ids.reduce((s, i) => s + weight(i), 0);
  return new Map(ids.map((i) => [i, weight(i) / total]));
}

/** The token the kernels must draw: the first kept id (ascending) whose running weight exceeds u · Σ kept. */
export function referenceDraw(scores: Float64Array, o: DeviceSamplingOptions, u: number): number {
  if ((o.temperature ?? 1) === 0) return samplingOrder(scores)[0]!;
  const kept = referenceFiltered(scores, o);
  const ids = [...kept.keys()].sort((a, b) => a - b);
  let running = 0;
  for (const i of ids) {
    running += kept.get(i)!;
    if (running > u) return i;
  }
  return ids[ids.length - 1]!;
}
