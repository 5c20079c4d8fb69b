/**
 * Autoregressive generation: the prompt is fed once, then one token at a time, through the
 * model's KV cache (or, with `cache: false` or a model without one, by recomputing the whole
 * sequence each step). Tokens are chosen by ./sampling.ts and decoded text is streamed as it
 * completes (./text-stream.ts). Generation stops at the end-of-document token or the token budget.
 */
import { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { noGrad } from '../autograd/grad-mode.js';
import { narrow } from '../ops/layout.js';
import { Generator } from '../tensor/random.js';
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import type { LanguageModel, ModelFamily } from '../train/model.js';
import { sampleToken, validateSampling, type SamplingOptions } from './sampling.js';
import { TokenTextStream } from './text-stream.js';

/** Positions are int32 on every engine, so a context holds at most this many tokens. */
export const MAX_CONTEXT_TOKENS = 2 ** 31 - 1;

/**
 * Bytes of the KV cache a decoding session of `positions` tokens allocates up front for a model with this
 * config (Andromeda's: per layer a float32 key and value of [kvHeads, positions, headDim]), or null when
 * the config does not say (another model family).
 */
export function kvCacheBytes(config: Record<string, unknown>, positions: number): number | null {
  const { depth, kvHeads, heads, headDim } = config as {
    depth?: unknown;
    kvHeads?: unknown;
    heads?: unknown;
    headDim?: unknown;
  };
  const kv = kvHeads ?? heads;
  if (typeof depth !== 'number' || typeof kv !== 'number' || typeof headDim !== 'number') return null;
  return depth * 2 * kv * headDim * Math.max(16, positions) * 4;
}

export interface GenerateOptions extends SamplingOptions {
  /** Most tokens to generate. Default 200. */
  maxTokens?: number;
  /** Seed of the sampling generator. Default 0. */
  seed?: number;
  /** Stop when the model emits the end-of-document token. Default true. */
  stopAtEos?: boolean;
  /** Use the KV cache (when the model family has one). Default true. */
  cache?: boolean;
  /** Start the context with the end-of-document token, as documents start in training. Default true. */
  startWithEos?: boolean;
  /** Receives decoded text as soon as it is complete (whole UTF-8 characters). */
  onText?: (text: string) => void;
  /** Receives every generated token id. */
  onToken?: (id: number) => void;
}

export interface GenerateResult {
  /** Generated ids (the end-of-document token, when reached, is not included). */
  ids: number[];
  text: string;
  stoppedBy: 'eos' | 'max-tokens';
  promptTokens: number;
  usedCache: boolean;
  seconds: number;
}

/** Logits [vocab] of the last position of `ids`, by a full forward pass. */
function lastLogitsUncached(model: LanguageModel, ids: readonly number[], device: string): Float32Array {
  return tidy(() =>
    noGrad(() => {
      const input = Tensor.fromArray(Int32Array.from(ids), [1, ids.length], 'int32', device);
      // Families that ignore logits: 'last' return every position.
      const logits = model.forward(input, { logits: 'last' });
      const n = logits.shape[1]!;
      return Float32Array.from((n === 1 ? logits : narrow(logits, 1, n - 1, 1)).toArray());
    }),
  );
}

export function generate(
  model: LanguageModel,
  family: ModelFamily<any>,
  tokenizer: Tokenizer,
  prompt: string | Int32Array,
  options: GenerateOptions = {},
): GenerateResult {
  validateSampling(options);
  const maxTokens = options.maxTokens ?? 200;
  if (!Number.isInteger(maxTokens) || maxTokens < 0 || maxTokens >= MAX_CONTEXT_TOKENS) {
    throw new RangeError(`max tokens must be an integer from 0 to ${MAX_CONTEXT_TOKENS - 1}, got ${maxTokens}`);
  }
  const started = Date.now();
  const promptIds = typeof prompt === 'string' ? tokenizer.encode(prompt) : prompt;
  const context: number[] = [...((options.startWithEos ?? true) ? [tokenizer.eosId] : []), ...promptIds];
  if (context.length === 0) context.push(tokenizer.eosId);
  const device = model.namedParameters()[0]?.[1].device ?? 'cpu';
  const generator = new Generator(options.seed ?? 0);
  const stream = new TokenTextStream(tokenizer, options.onText);
  const session =
    (options.cache ?? true) ? (family.createDecodingSession?.(model, context.length + maxTokens) ?? null) : null;
  model.eval();
  const ids: number[] = [];
  let stoppedBy: GenerateResult['stoppedBy'] = 'max-tokens';
  try {
    let logits = session ? session.step(Int32Array.from(context)) : lastLogitsUncached(model, context, device);
    while (ids.length < maxTokens) {
      const next = sampleToken(logits.subarray(0, tokenizer.vocabSize), options, generator);
      if (next === tokenizer.eosId && (options.stopAtEos ?? true)) {
        stoppedBy = 'eos';
        break;
      }
      ids.push(next);
      options.onToken?.(next);
      stream.push(next);
      if (ids.length >= maxTokens) break;
      context.push(next);
      logits = session ? session.step(Int32Array.of(next)) : lastLogitsUncached(model, context, device);
    }
    stream.flush();
  } finally {
    session?.dispose();
    model.train();
  }
  return {
    ids,
    text: stream.value,
    stoppedBy,
    promptTokens: promptIds.length,
    usedCache: session !== null,
    seconds: (Date.now() - started) / 1000,
  };
}
