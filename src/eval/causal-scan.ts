/**
 * A model run over one long sequence in chunks through its KV cache: memory is the cache plus one chunk's
 * activations and logits (the attention kernel itself never stores a [queries, keys] matrix), whatever the
 * sequence's length. Each chunk sees every earlier token, so a chunked run scores exactly what one forward
 * over the whole sequence scores.
 */
import { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { noGrad } from '../autograd/grad-mode.js';
import { crossEntropy } from '../ops/nn.js';
import type { Andromeda } from '../model/andromeda.js';
import type { KVCache } from '../model/kv-cache.js';

/** Default tokens per chunk: long enough to keep the matrix products efficient, short enough for small logits. */
export const DEFAULT_CHUNK = 512;

function checkChunk(chunk: number): void {
  if (!Number.isInteger(chunk) || chunk < 1) throw new RangeError(`chunk must be a positive integer, got ${chunk}`);
}

/**
 * losses[p] = −ln P(tokens[p + 1] | tokens[0..p]) for p < tokens.length − 1, in nats: the next-token loss
 * of every position of one sequence.
 */
export function sequenceLosses(model: Andromeda, tokens: Int32Array, chunk = DEFAULT_CHUNK): Float64Array {
  checkChunk(chunk);
  if (tokens.length < 2) throw new RangeError(`sequenceLosses: need at least 2 tokens, got ${tokens.length}`);
  const predictions = tokens.length - 1;
  const losses = new Float64Array(predictions);
  const cache = model.createKVCache(1, { capacity: tokens.length });
  try {
    for (let start = 0; start < predictions; start += chunk) {
      const n = Math.min(chunk, predictions - start);
      const chunkLosses = noGrad(() =>
        tidy(() => {
          const input = Tensor.fromArray(tokens.slice(start, start + n), [1, n], 'int32', model.device);
          const targets = Tensor.fromArray(tokens.slice(start + 1, start + 1 + n), [1, n], 'int32', model.device);
          const logits = model.forward(input, { kvCache: cache });
          return crossEntropy(logits, targets, { reduction: 'none' }).toArray();
        }),
      );
      losses.set(chunkLosses, start);
    }
  } finally {
    cache.dispose();
  }
  return losses;
}

/** Feeds `tokens` into the cache and returns the logits after the last one, [vocab] on the host. */
function prefill(model: Andromeda, cache: KVCache, tokens: Int32Array, chunk: number): Float32Array {
  let last: Float32Array | null = null;
  for (let start = 0; start < tokens.length; start += chunk) {
    const n = Math.min(chunk, tokens.length - start);
    last = noGrad(() =>
      tidy(() => {
        const input = Tensor.fromArray(tokens.slice(start, start + n), [1, n], 'int32', model.device);
        return Float32Array.from(model.forward(input, { kvCache: cache, logits: 'last' }).toArray());
      }),
    );
  }
  return last!;
}

/** Index of the largest value (the first on ties): greedy decoding's choice. */
export function argmax(values: ArrayLike<number>, limit = values.length): number {
  let best = 0;
  for (let i = 1; i < limit; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

/**
 * Greedy continuation of `prompt`: up to `maxTokens` tokens, stopping after `stopId` (not included).
 * Only ids below `vocabLimit` (the tokenizer's vocabulary, which a padded model may exceed) are chosen.
 */
export function greedyContinuation(
  model: Andromeda,
  prompt: Int32Array,
  o: { maxTokens: number; vocabLimit: number; stopId?: number; chunk?: number },
): Int32Array {
  const chunk = o.chunk ?? DEFAULT_CHUNK;
  checkChunk(chunk);
  if (prompt.length < 1) throw new RangeError('greedyContinuation: the prompt is empty');
  const out: number[] = [];
  const cache = model.createKVCache(1, { capacity: prompt.length + o.maxTokens });
  try {
    let logits = prefill(model, cache, prompt, chunk);
    while (out.length < o.maxTokens) {
      const next = argmax(logits, Math.min(o.vocabLimit, logits.length));
      if (next === o.stopId) break;
      out.push(next);
      if (out.length === o.maxTokens) break;
      logits = prefill(model, cache, Int32Array.of(next), 1);
    }
  } finally {
    cache.dispose();
  }
  return Int32Array.from(out);
}
