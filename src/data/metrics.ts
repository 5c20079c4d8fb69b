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
 * Cross-entropy, in nats per token, of `heldOutTokens` under the unigram distribution of
 * `trainTokens` with add-one (Laplace) smoothing over a vocabulary of `vocabSize` ids:
 * p(t) = (count(t) + 1) / (N + vocabSize). A model's held-out loss should beat this.
 */
export function unigramCrossEntropy(trainTokens: Tokens, heldOutTokens: Tokens, vocabSize: number): number {
  if (!Number.isInteger(vocabSize) || vocabSize < 1) throw new RangeError(`vocabSize must be a positive integer, got ${vocabSize}`);
  const counts = new Float64Array(vocabSize);
  let n = 0;
  forEachToken(trainTokens, (t) => {
    if (t < 0 || t >= vocabSize) throw new RangeError(`training token ${t} is outside the vocabulary [0, ${vocabSize})`);
    counts[t]++;
    n++;
  });
  const logDenominator = Math.log(n + vocabSize);
  let total = 0;
  let m = 0;
  forEachToken(heldOutTokens, (t) => {
    if (t < 0 || t >= vocabSize) throw new RangeError(`held-out token ${t} is outside the vocabulary [0, ${vocabSize})`);
    total += logDenominator - Math.log(counts[t] + 1);
    m++;
  });
  if (m === 0) throw new RangeError('unigramCrossEntropy needs at least one held-out token');
  return total / m;
}

function forEachToken(tokens: Tokens, visit: (t: number) => void): void {
  if (isTokenSource(tokens)) {
    const chunk = 1 << 20;
    for (let start = 0; start < tokens.length; start += chunk) {
      const part = tokens.read(start, Math.min(chunk, tokens.length - start));
      for (let i = 0; i < part.length; i++) visit(part[i]);
    }
  } else {
    for (let i = 0; i < tokens.length; i++) visit(tokens[i]);
  }
}

function isTokenSource(tokens: Tokens): tokens is TokenSource {
  return typeof (tokens as TokenSource).read === 'function';
}
