/**
 * Sampling a step's logit rows on the device, each row with its request's parameters (src/ops/sampling.ts
 * does the work; only token ids and, when asked, log-probabilities come back to the host).
 *
 * A request's draws are keyed by its seed and the number of tokens it has drawn so far, both kept here on
 * the host and uploaded with the step, so a request draws the same tokens whatever else shares its
 * steps, and again after it was preempted and recomputed. The counts the penalties need are kept here
 * too and uploaded only for steps in which some row uses a penalty.
 */
import { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { narrow } from '../ops/layout.js';
import {
  SAMPLING_PARAM_COUNT,
  sampleTokens,
  samplingSeeds,
  encodeSamplingParams,
  type DeviceSamplingOptions,
} from '../ops/sampling.js';
import type { SamplingParams } from './sampling-params.js';
import type { SampledToken } from './scheduler.js';

/** The sampling state of one request. */
export class RequestSampling {
  readonly options: DeviceSamplingOptions;
  readonly seed: number;
  readonly logprobs: boolean;
  readonly topLogprobs: number;
  /** Whether a penalty is on (then the counts are uploaded with each of its steps). */
  readonly penalized: boolean;
  /** Tokens drawn so far: the draw counter of the next one. */
  draws = 0;
  /** Generated token id → times generated (kept only when penalized). */
  readonly counts = new Map<number, number>();

  constructor(params: SamplingParams) {
    this.options = {
      temperature: params.temperature ?? 1,
      topK: params.topK ?? 0,
      topP: params.topP ?? 1,
      minP: params.minP ?? 0,
      repetitionPenalty: params.repetitionPenalty ?? 1,
      frequencyPenalty: params.frequencyPenalty ?? 0,
      presencePenalty: params.presencePenalty ?? 0,
    };
    this.seed = params.seed ?? 0;
    this.topLogprobs = params.topLogprobs ?? 0;
    this.logprobs = (params.logprobs ?? false) || this.topLogprobs > 0;
    this.penalized =
      this.options.repetitionPenalty !== 1 || this.options.frequencyPenalty !== 0 || this.options.presencePenalty !== 0;
    // Refuses what the device sampler would (once, at submit).
    encodeSamplingParams([this.options]);
  }

  /** Records a drawn token. */
  accept(tokenId: number): void {
    this.draws++;
    if (this.penalized) this.counts.set(tokenId, (this.counts.get(tokenId) ?? 0) + 1);
  }
}

/** Whether a step's rows need only token ids (no log-probabilities, no penalty counts). */
export function idsOnly(rows: readonly RequestSampling[]): boolean {
  return rows.every((r) => !r.logprobs && !r.penalized);
}

/**
 * Logits [rows, ≥ vocab] restricted to the first `vocab` columns (the tokenizer's; a model may have more),
 * contiguous as the sampler wants them.
 */
export function samplingLogits(logits: Tensor, vocab: number): Tensor {
  const width = logits.shape[1]!;
  return width === vocab ? logits : narrow(logits, 1, 0, vocab).contiguous();
}

/** Host inputs of a sampling call for `rows`: parameters, seeds and draw counters. */
export function samplingInputs(rows: readonly RequestSampling[]): {
  params: Float32Array;
  seeds: number[];
  steps: Int32Array;
} {
  return {
    params: encodeSamplingParams(rows.map((r) => r.options)),
    seeds: rows.map((r) => r.seed),
    steps: Int32Array.from(rows, (r) => r.draws),
  };
}

/** Draws one token per row of `logits` [rows.length, ≥ vocab] with each row's request parameters. */
export function sampleRows(logits: Tensor, rows: readonly RequestSampling[], vocab: number): SampledToken[] {
  if (rows.length === 0) return [];
  const device = logits.device;
  return tidy(() => {
    const inputs = samplingInputs(rows);
    const penalized = rows.some((r) => r.penalized);
    let counts: Tensor | null = null;
    if (penalized) {
      const host = new Int32Array(rows.length * vocab);
      rows.forEach((r, i) => {
        for (const [id, n] of r.counts) host[i * vocab + id] = n;
      });
      counts = Tensor.fromArray(host, [rows.length, vocab], 'int32', device);
    }
    const topN = Math.max(0, ...rows.map((r) => r.topLogprobs));
    const sampled = sampleTokens(samplingLogits(logits, vocab), {
      params: Tensor.fromArray(inputs.params, [rows.length, SAMPLING_PARAM_COUNT], 'float32', device),
      seeds: samplingSeeds(inputs.seeds, device),
      steps: Tensor.fromArray(inputs.steps, [rows.length], 'int32', device),
      counts,
      logprobs: rows.some((r) => r.logprobs),
      topLogprobs: topN,
    });
    const ids = sampled.ids.toArray();
    const logprobs = sampled.logprobs?.toArray() ?? null;
    const topIds = sampled.topIds?.toArray() ?? null;
    const topLogprobs = sampled.topLogprobs?.toArray() ?? null;
    return rows.map((r, i) => {
      const token: SampledToken = { tokenId: ids[i]! };
      if (r.logprobs && logprobs) token.logprob = logprobs[i]!;
      if (r.topLogprobs > 0 && topIds && topLogprobs)
        token.topLogprobs = Array.from({ length: r.topLogprobs }, (_, k) => ({
          tokenId: topIds[i * topN + k]!,
          logprob: topLogprobs[i * topN + k]!,
        }));
      return token;
    });
  });
}
