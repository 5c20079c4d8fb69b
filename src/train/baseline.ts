/**
 * The unigram baseline the model must beat: add-one-smoothed token frequencies of the training
 * streams (as src/data/metrics.ts's unigramCrossEntropy), kept as a per-id cost table so the
 * evaluation can score exactly the held-out targets the model is scored on.
 */
import type { TokenSource } from '../data/token-source.js';

/** −ln p(t) for every id t, with p(t) = (count(t) + 1) / (N + vocab). Reads at most `maxTokens` per source. */
export function unigramCosts(sources: readonly TokenSource[], vocabSize: number, maxTokens = 200_000_000): Float64Array {
  const counts = new Float64Array(vocabSize);
  let n = 0;
  const chunk = 1 << 20;
  for (const s of sources) {
    const end = Math.min(s.length, maxTokens);
    for (let start = 0; start < end; start += chunk) {
      const part = s.read(start, Math.min(chunk, end - start));
      for (let i = 0; i < part.length; i++) {
        const t = part[i];
        if (t >= 0 && t < vocabSize) counts[t]++;
      }
      n += part.length;
    }
  }
  const costs = new Float64Array(vocabSize);
  const logDenominator = Math.log(n + vocabSize);
  for (let t = 0; t < vocabSize; t++) costs[t] = logDenominator - Math.log(counts[t] + 1);
  return costs;
}
