/**
 * Per-request sampling on the host: penalties, temperature, top-k / top-p / min-p filtering and a
 * seeded draw, with the log-probabilities a request may ask for. The semantics are those of the
 * inference contract's device sampler: penalties apply to the counts of the tokens this request has
 * generated (repetition: positive logits divided by the penalty, negative ones multiplied; frequency:
 * minus penalty × count; presence: minus penalty once seen); log-probabilities are of the distribution
 * after penalties and temperature (temperature 0 reports them at temperature 1), before filtering.
 */
import { Generator } from '../tensor/random.js';
import { argmax } from './sampling.js';
import type { SampledToken } from './scheduler.js';

export interface SamplingParams {
  /** 0 = greedy. Default 1. */
  temperature?: number;
  /** Keep the k most likely tokens; 0 = all. Default 0. */
  topK?: number;
  /** Keep the most likely tokens holding probability p; 1 = all. Default 1. */
  topP?: number;
  /** Drop tokens less likely than minP × the most likely one's probability; 0 = none. Default 0. */
  minP?: number;
  /** > 1 discourages tokens already generated; 1 = none. Default 1. */
  repetitionPenalty?: number;
  /** Subtracted from a logit once per time its token was generated. Default 0. */
  frequencyPenalty?: number;
  /** Subtracted from a logit once its token was generated. Default 0. */
  presencePenalty?: number;
  /** Seed of the request's random draws: the same seed gives the same tokens. Default 0. */
  seed?: number;
  /** Report the chosen token's log-probability. Default false. */
  logprobs?: boolean;
  /** Also report this many most likely tokens with their log-probabilities (implies logprobs). Default 0. */
  topLogprobs?: number;
}

/** Most top log-probabilities a request may ask for. */
export const MAX_TOP_LOGPROBS = 20;

/** Throws a RangeError naming the first parameter out of range. */
export function validateSamplingParams(p: SamplingParams): void {
  const check = (ok: boolean, name: string, what: string, value: unknown): void => {
    if (!ok) throw new RangeError(`${name} must be ${what}, got ${String(value)}`);
  };
  const { temperature, topK, topP, minP, repetitionPenalty, frequencyPenalty, presencePenalty, seed } = p;
  if (temperature !== undefined)
    check(Number.isFinite(temperature) && temperature >= 0, 'temperature', 'a finite number ≥ 0', temperature);
  if (topK !== undefined) check(Number.isInteger(topK) && topK >= 0, 'topK', 'an integer ≥ 0', topK);
  if (topP !== undefined) check(topP > 0 && topP <= 1, 'topP', 'in (0, 1]', topP);
  if (minP !== undefined) check(minP >= 0 && minP <= 1, 'minP', 'in [0, 1]', minP);
  if (repetitionPenalty !== undefined)
    check(
      Number.isFinite(repetitionPenalty) && repetitionPenalty > 0,
      'repetitionPenalty',
      'a finite number > 0',
      repetitionPenalty,
    );
  if (frequencyPenalty !== undefined)
    check(Number.isFinite(frequencyPenalty), 'frequencyPenalty', 'a finite number', frequencyPenalty);
  if (presencePenalty !== undefined)
    check(Number.isFinite(presencePenalty), 'presencePenalty', 'a finite number', presencePenalty);
  if (seed !== undefined) check(Number.isInteger(seed), 'seed', 'an integer', seed);
  if (p.topLogprobs !== undefined)
    check(
      Number.isInteger(p.topLogprobs) && p.topLogprobs >= 0 && p.topLogprobs <= MAX_TOP_LOGPROBS,
      'topLogprobs',
      `an integer from 0 to ${MAX_TOP_LOGPROBS}`,
      p.topLogprobs,
    );
}

/** The sampler of one request: its generator and the counts of the tokens it generated. */
export class RequestSampler {
  private readonly generator: Generator;
  private readonly counts = new Map<number, number>();

  constructor(
    private readonly params: SamplingParams,
    /** Tokens that may be chosen: ids [0, vocab) of the row (the tokenizer's, which may be below the model's). */
    private readonly vocab: number,
  ) {
    validateSamplingParams(params);
    this.generator = new Generator(params.seed ?? 0);
  }

  /** Picks the next token from one row of logits (at least `vocab` long). */
  sample(row: ArrayLike<number>): SampledToken {
    const p = this.params;
    const logits = Float64Array.from({ length: this.vocab }, (_, i) => row[i]!);
    this.applyPenalties(logits);
    const temperature = p.temperature ?? 1;
    const tokenId = temperature === 0 ? argmax(logits) : this.draw(logits, temperature);
    this.counts.set(tokenId, (this.counts.get(tokenId) ?? 0) + 1);
    const wantTop = p.topLogprobs ?? 0;
    if (!p.logprobs && wantTop === 0) return { tokenId };
    const logprobs = logSoftmax(logits, temperature === 0 ? 1 : temperature);
    const sampled: SampledToken = { tokenId, logprob: logprobs[tokenId]! };
    if (wantTop > 0)
      sampled.topLogprobs = descendingOrder(logprobs)
        .slice(0, wantTop)
        .map((id) => ({ tokenId: id, logprob: logprobs[id]! }));
    return sampled;
  }

  private applyPenalties(logits: Float64Array): void {
    const repetition = this.params.repetitionPenalty ?? 1;
    const frequency = this.params.frequencyPenalty ?? 0;
    const presence = this.params.presencePenalty ?? 0;
    for (const [id, count] of this.counts) {
      let l = logits[id]!;
      if (repetition !== 1) l = l > 0 ? l / repetition : l * repetition;
      logits[id] = l - frequency * count - presence;
    }
  }

  /** A draw from softmax(logits / temperature) restricted by top-k, top-p and min-p. */
  private draw(logits: Float64Array, temperature: number): number {
    const order = descendingOrder(logits);
    if (order.length === 0) throw new RangeError('sampling: no token has a finite logit');
    let keep = order.length;
    const topK = this.params.topK ?? 0;
    if (topK > 0) keep = Math.min(keep, topK);
    const max = logits[order[0]!]!;
    const weights = new Float64Array(keep);
    let total = 0;
    for (let r = 0; r < keep; r++) total += weights[r] = Math.exp((logits[order[r]!]! - max) / temperature);
    const minP = this.params.minP ?? 0;
    if (minP > 0) {
      // weights[0] is the most likely token's; probabilities share the total, so compare weights.
      while (keep > 1 && weights[keep - 1]! < minP * weights[0]!) total -= weights[--keep]!;
    }
    const topP = this.params.topP ?? 1;
    if (topP < 1) {
      let cumulative = 0;
      for (let r = 0; r < keep; r++) {
        cumulative += weights[r]!;
        if (cumulative >= topP * total) {
          keep = r + 1;
          total = cumulative;
          break;
        }
      }
    }
    const u = this.generator.uniform() * total;
    let cumulative = 0;
    for (let r = 0; r < keep; r++) {
      cumulative += weights[r]!;
      if (u < cumulative) return order[r]!;
    }
    return order[keep - 1]!;
  }
}

/** Ids of the finite logits, most likely first (ties: lower id first). */
function descendingOrder(values: Float64Array): number[] {
  const order: number[] = [];
  for (let i = 0; i < values.length; i++) if (values[i]! > -Infinity) order.push(i);
  return order.sort((a, b) => values[b]! - values[a]! || a - b);
}

function logSoftmax(logits: Float64Array, temperature: number): Float64Array {
  let max = -Infinity;
  for (const l of logits) if (l > max) max = l;
  let sum = 0;
  for (const l of logits) sum += Math.exp((l - max) / temperature);
  const logZ = Math.log(sum);
  return logits.map((l) => (l - max) / temperature - logZ);
}
