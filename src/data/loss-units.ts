/** Tokenizer-independent loss units and a trivial baseline for judging a language model's loss. */
import type { TokenSource } from './token-source.js';

/**
 * Converts a mean loss in nats per token into bits per UTF-8 byte of the underlying text:
 * total nats = meanLossNats × tokens, spread over `bytes` bytes, divided by ln 2.
 */
export function bitsPerByte(meanLossNats: number, tokens: number, bytes: number): number {
  if (!(bytes > 0)) throw new RangeError(`bitsPerByte needs a positive byte count, got ${bytes}`);
  return (meanLossNats * tokens) / (bytes * Math.LN2);
}

type Tokens = ArrayLike<number> | TokenSource;

/**
 * The unigram baseline as a cost table: −ln p(t) for every id t under the add-one (Laplace)
 * smoothed unigram distribution of the training tokens, p(t) = (count(t) + 1) / (N + vocabSize).
 * A table (rather than one number) lets an evaluation score exactly the targets the model is
 * scored on. `trainTokens` may be several streams; at most `maxTokensPerStream` of each are read
 * (a sample is enough for a baseline over a very large corpus).
 */
export function unigramCosts(
  trainTokens: Tokens | readonly Tokens[],
  vocabSize: number,
  maxTokensPerStream = Infinity,
): Float64Array {
  if (!Number.isInteger(vocabSize) || vocabSize < 1)
    throw new RangeError(`vocabSize must be a positive integer, got ${vocabSize}`);
  const streams = isStreamList(trainTokens) ? trainTokens : [trainTokens];
  const counts = new Float64Array(vocabSize);
  let n = 0;
  for (const stream of streams) {
    forEachToken(stream, maxTokensPerStream, (t) => {
      if (t < 0 || t >= vocabSize)
        throw new RangeError(`training token ${t} is outside the vocabulary [0, ${vocabSize})`);
      counts[t]++;
      n++;
    });
  }
  const costs = new Float64Array(vocabSize);
  const logDenominator = Math.log(n + vocabSize);
  for (let t = 0; t < vocabSize; t++) costs[t] = logDenominator - Math.log(counts[t] + 1);
  return costs;
}

/** Total cost of `tokens` under a unigram cost table, and how many tokens were scored. */
export function unigramTotal(costs: Float64Array, tokens: Tokens): { nats: number; tokens: number } {
  let nats = 0;
  let count = 0;
  forEachToken(tokens, Infinity, (t) => {
    if (t < 0 || t >= costs.length)
      throw new RangeError(`held-out token ${t} is outside the vocabulary [0, ${costs.length})`);
    nats += costs[t];
    count++;
  });
  return { nats, tokens: count };
}

/**
 * Cross-entropy, in nats per token, of `heldOutTokens` under the add-one smoothed unigram
 * distribution of `trainTokens` (see unigramCosts). A model's held-out loss should beat this.
 */
export function unigramCrossEntropy(trainTokens: Tokens, heldOutTokens: Tokens, vocabSize: number): number {
  const { nats, tokens } = unigramTotal(unigramCosts(trainTokens, vocabSize), heldOutTokens);
  if (tokens === 0) throw new RangeError('unigramCrossEntropy needs at least one held-out token');
  return nats / tokens;
}

function forEachToken(tokens: Tokens, limit: number, visit: (t: number) => void): void {
  const end = Math.min(tokens.length, limit);
  if (isTokenSource(tokens)) {
    const chunk = 1 << 20;
    for (let start = 0; start < end; start += chunk) {
      const part = tokens.read(start, Math.min(chunk, end - start));
      for (let i = 0; i < part.length; i++) visit(part[i]);
    }
  } else {
    for (let i = 0; i < end; i++) visit(tokens[i]);
  }
}

function isTokenSource(tokens: Tokens): tokens is TokenSource {
  return typeof (tokens as TokenSource).read === 'function';
}

function isStreamList(tokens: Tokens | readonly Tokens[]): tokens is readonly Tokens[] {
  return Array.isArray(tokens) && (tokens.length === 0 ? false : typeof tokens[0] !== 'number');
}
