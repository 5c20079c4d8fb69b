/**
 * Sampling on the device (Engine.sampleTokens): one token per row of logits, with only the ids (and, when asked,
 * log-probabilities) left for the host to read. Everything that changes from step to step lives in device
 * buffers — per-row parameters, seeds, the draw counters, token counts — so a decode step that ends here can be
 * captured once as a graph (Engine.captureGraph) and replayed: every replay advances the counters and draws
 * fresh numbers.
 *
 * Per row, in this order (native/common/sampling_math.h holds the shared arithmetic, in float32):
 * 1. penalties, for each token seen count > 0 times: repetition r as HF/vLLM (logit / r if positive, else
 *    logit · r), then − frequency · count − presence;
 * 2. temperature: scores = logits / temperature; temperature 0 is greedy (the highest score, the lowest id on
 *    ties), whose log-probabilities use temperature 1;
 * 3. log-probabilities of that distribution (before any filter, as vLLM reports them): of the chosen token and
 *    of the `topLogprobs` best tokens (by score, then id);
 * 4. filters, each keeping a prefix of the tokens ordered by score then id: top-k (the k first), top-p (the
 *    shortest prefix of those whose probability reaches p of theirs), min-p (probability ≥ minP · the best's);
 *    a token whose weight exp(s − max) underflows float32 is never kept;
 * 5. the draw: u = the counter-based uniform of (row seed, row step) (native/common/counter_random.h), and the
 *    token is the first kept id, in increasing id order, whose running weight exp(s − max) exceeds u · Σ kept —
 *    the same seed and step give the same token on every engine (to float rounding at exact boundaries).
 * The step counter of every row advances by one per call; counts (when given) by one for the chosen token.
 * A row whose every score is −∞ or NaN gets id −1 (and NaN log-probabilities).
 */
import type { SamplingBuffers } from '../engine/engine.js';
import { validateSampling, type SamplingOptions } from '../inference/sampling.js';
import { Tensor } from '../tensor/tensor.js';
import { formatShape } from '../tensor/shape.js';
import { assertSameDevice, emptyLike } from './util.js';

/** Options of one row: the host sampler's (temperature, topK, topP) plus min-p and the penalties. */
export interface DeviceSamplingOptions extends SamplingOptions {
  /** Keep tokens whose probability is at least minP times the most likely one's (0 or undefined: off). */
  minP?: number;
  /** > 0; 1 or undefined: none. Applied to tokens already seen (count > 0). */
  repetitionPenalty?: number;
  /** Subtracted per occurrence (0 or undefined: none). */
  frequencyPenalty?: number;
  /** Subtracted once from every token seen (0 or undefined: none). */
  presencePenalty?: number;
}

/** The columns of the float32 [rows, SAMPLING_PARAM_COUNT] parameter tensor (native/common/sampling_math.h). */
export const SAMPLING_PARAM_FIELDS = [
  'temperature',
  'topK',
  'topP',
  'minP',
  'repetitionPenalty',
  'frequencyPenalty',
  'presencePenalty',
] as const;
export const SAMPLING_PARAM_COUNT = SAMPLING_PARAM_FIELDS.length;
/** The most top log-probabilities a call may ask for. */
export const MAX_TOP_LOGPROBS = 20;
/** top-k values beyond this are all "every token" (and stay exact in float32). */
const TOP_K_CAP = 2 ** 24;

/** Checks one row's options; the error names the option and the value. */
export function validateDeviceSampling(o: DeviceSamplingOptions, where = 'sampling'): void {
  try {
    validateSampling(o);
  } catch (e) {
    throw new RangeError(`${where}: ${(e as Error).message}`);
  }
  if (o.minP !== undefined && !(o.minP >= 0 && o.minP <= 1))
    throw new RangeError(`${where}: min-p must be in [0, 1], got ${o.minP}`);
  if (o.repetitionPenalty !== undefined && !(o.repetitionPenalty > 0 && Number.isFinite(o.repetitionPenalty)))
    throw new RangeError(`${where}: repetition penalty must be a finite number > 0, got ${o.repetitionPenalty}`);
  for (const name of ['frequencyPenalty', 'presencePenalty'] as const) {
    const v = o[name];
    if (v !== undefined && !Number.isFinite(v)) throw new RangeError(`${where}: ${name} must be finite, got ${v}`);
  }
}

/** The parameter rows for `rows` (validated), as Engine.sampleTokens reads them. */
export function encodeSamplingParams(rows: readonly DeviceSamplingOptions[]): Float32Array {
  const out = new Float32Array(rows.length * SAMPLING_PARAM_COUNT);
  rows.forEach((o, r) => {
    validateDeviceSampling(o, `sampling row ${r}`);
    const values: Record<(typeof SAMPLING_PARAM_FIELDS)[number], number> = {
      temperature: o.temperature ?? 1,
      topK: Math.min(o.topK ?? 0, TOP_K_CAP),
      topP: o.topP ?? 1,
      minP: o.minP ?? 0,
      repetitionPenalty: o.repetitionPenalty ?? 1,
      frequencyPenalty: o.frequencyPenalty ?? 0,
      presencePenalty: o.presencePenalty ?? 0,
    };
    SAMPLING_PARAM_FIELDS.forEach((f, i) => (out[r * SAMPLING_PARAM_COUNT + i] = values[f]));
  });
  return out;
}

/** float32 [rows, SAMPLING_PARAM_COUNT] on `device`: each row's options. */
export function samplingParams(rows: readonly DeviceSamplingOptions[], device?: string): Tensor {
  return Tensor.fromArray(encodeSamplingParams(rows), [rows.length, SAMPLING_PARAM_COUNT], 'float32', device);
}

/** int32 [rows, 2] on `device`: each row's seed (an integer in [0, 2^53)) as its low and high 32-bit words. */
export function samplingSeeds(seeds: readonly number[], device?: string): Tensor {
  const words = new Int32Array(seeds.length * 2);
  seeds.forEach((seed, r) => {
    if (!Number.isSafeInteger(seed) || seed < 0)
      throw new RangeError(`sampling seeds: seed ${r} must be an integer in [0, 2^53), got ${seed}`);
    words[2 * r] = (seed % 2 ** 32) | 0;
    words[2 * r + 1] = Math.floor(seed / 2 ** 32) | 0;
  });
  return Tensor.fromArray(words, [seeds.length, 2], 'int32', device);
}

export interface SampleTokensOptions {
  /** float32 [rows, SAMPLING_PARAM_COUNT] (samplingParams). */
  params: Tensor;
  /** int32 [rows, 2] (samplingSeeds). */
  seeds: Tensor;
  /** int32 [rows]: draw counters, advanced by one per call (start them at 0 for a new sequence). */
  steps: Tensor;
  /** int32 [rows, vocab]: tokens seen per row, for the penalties; the chosen token's count is incremented. */
  counts?: Tensor | null;
  /** Return the chosen tokens' log-probabilities. */
  logprobs?: boolean;
  /** How many of the most likely tokens to return with their log-probabilities (0 to 20). */
  topLogprobs?: number;
}

export interface SampledTokens {
  /** int32 [rows]. */
  ids: Tensor;
  /** float32 [rows], when asked. */
  logprobs: Tensor | null;
  /** int32 and float32 [rows, topLogprobs], when asked: best first. */
  topIds: Tensor | null;
  topLogprobs: Tensor | null;
}

function checkInts(name: string, t: Tensor, shape: readonly number[]): void {
  if (t.dtype !== 'int32' || !t.isContiguous() || formatShape(t.shape) !== formatShape(shape)) {
    throw new TypeError(
      `sampleTokens: ${name} must be a contiguous int32 tensor of shape ${formatShape(shape)}, got ${t.dtype} ` +
        `${formatShape(t.shape)}${t.isContiguous() ? '' : ' (not contiguous)'}`,
    );
  }
}

/** Draws one token per row of `logits` (float32 or bfloat16 [rows, vocab]) on its device; see the file's header. */
export function sampleTokens(logits: Tensor, o: SampleTokensOptions): SampledTokens {
  const op = 'sampleTokens';
  const counts = o.counts ?? null;
  assertSameDevice(op, { logits, params: o.params, seeds: o.seeds, steps: o.steps, ...(counts ? { counts } : {}) });
  if (logits.rank !== 2) throw new RangeError(`${op}: logits must be [rows, vocab], got ${formatShape(logits.shape)}`);
  if (logits.dtype !== 'float32' && logits.dtype !== 'bfloat16')
    throw new TypeError(`${op}: logits must be float32 or bfloat16, got ${logits.dtype}`);
  if (!logits.isContiguous()) throw new TypeError(`${op}: logits must be contiguous`);
  const [rows, vocab] = logits.shape as [number, number];
  if (vocab < 1) throw new RangeError(`${op}: logits have no vocabulary (shape ${formatShape(logits.shape)})`);
  if (vocab > 2 ** 31 - 1) throw new RangeError(`${op}: a vocabulary of ${vocab} does not fit int32 ids`);
  if (
    o.params.dtype !== 'float32' ||
    !o.params.isContiguous() ||
    formatShape(o.params.shape) !== formatShape([rows, SAMPLING_PARAM_COUNT])
  ) {
    throw new TypeError(
      `${op}: params must be a contiguous float32 tensor of shape ${formatShape([rows, SAMPLING_PARAM_COUNT])} ` +
        `(samplingParams), got ${o.params.dtype} ${formatShape(o.params.shape)}`,
    );
  }
  checkInts('seeds', o.seeds, [rows, 2]);
  checkInts('steps', o.steps, [rows]);
  if (counts) checkInts('counts', counts, [rows, vocab]);
  const topN = o.topLogprobs ?? 0;
  if (!Number.isInteger(topN) || topN < 0 || topN > Math.min(MAX_TOP_LOGPROBS, vocab))
    throw new RangeError(
      `${op}: topLogprobs must be an integer from 0 to ${Math.min(MAX_TOP_LOGPROBS, vocab)}, got ${topN}`,
    );

  const ids = emptyLike(logits, [rows], 'int32', op);
  const logprobs = o.logprobs ? emptyLike(logits, [rows], 'float32', op) : null;
  const topIds = topN > 0 ? emptyLike(logits, [rows, topN], 'int32', op) : null;
  const topLogprobs = topN > 0 ? emptyLike(logits, [rows, topN], 'float32', op) : null;
  if (rows > 0) {
    const buffers: SamplingBuffers = {
      params: o.params.dense(op),
      seeds: o.seeds.dense(op),
      steps: o.steps.dense(op),
      counts: counts ? counts.dense(op) : null,
      ids: ids.dense(op),
      logprobs: logprobs ? logprobs.dense(op) : null,
      topIds: topIds ? topIds.dense(op) : null,
      topLogprobs: topLogprobs ? topLogprobs.dense(op) : null,
    };
    logits.engine.sampleTokens(logits.dense(op), buffers, rows, vocab, topN);
  }
  return { ids, logprobs, topIds, topLogprobs };
}
