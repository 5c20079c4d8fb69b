/**
 * The sampling parameters of one request, as the device sampler (src/ops/sampling.ts) applies them:
 * penalties on the counts of the tokens this request has generated (repetition: positive logits divided
 * by the penalty, negative ones multiplied; frequency: minus penalty × count; presence: minus penalty
 * once seen), then temperature, then top-k / top-p / min-p, then a draw from a counter-based generator
 * keyed by the seed and the number of tokens drawn so far. Log-probabilities are of the distribution
 * after penalties and temperature (temperature 0 reports them at temperature 1), before the filters.
 */
import { MAX_TOP_LOGPROBS } from '../ops/sampling.js';

export { MAX_TOP_LOGPROBS };

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
  /** Seed of the request's draws, an integer in [0, 2^53): the same seed gives the same tokens. Default 0. */
  seed?: number;
  /** Report the chosen token's log-probability. Default false. */
  logprobs?: boolean;
  /** Also report this many most likely tokens with their log-probabilities (implies logprobs). Default 0. */
  topLogprobs?: number;
}

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
  if (seed !== undefined) check(Number.isSafeInteger(seed) && seed >= 0, 'seed', 'an integer in [0, 2^53)', seed);
  if (p.topLogprobs !== undefined)
    check(
      Number.isInteger(p.topLogprobs) && p.topLogprobs >= 0 && p.topLogprobs <= MAX_TOP_LOGPROBS,
      'topLogprobs',
      `an integer from 0 to ${MAX_TOP_LOGPROBS}`,
      p.topLogprobs,
    );
}
