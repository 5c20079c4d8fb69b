/**
 * Next-byte probabilities as integer frequencies for the range coder. The model's logits for the
 * 256 byte tokens (special tokens are never coded: the header carries the length) become a
 * softmax in float64 and then integers: every byte gets at least 1 (so any byte can be coded,
 * costing at most 16 bits), the rest of the 2^16 total is shared in proportion to the
 * probabilities, rounded down. Encoder and decoder feed identical float32 logits through the same
 * float64 operations, so they derive identical integers.
 */
import { MAX_TOTAL } from './range-coder.js';

export const BYTE_SYMBOLS = 256;
const SHARED = MAX_TOTAL - BYTE_SYMBOLS;

/** Cumulative frequencies: byte b occupies [cumulative[b], cumulative[b + 1]); cumulative[256] is the total. */
export type Cumulative = Uint32Array;

/**
 * exp(logit − max logit) of the 256 byte logits at `logits[offset ..]`, in float64, into `into[at .. at + 256)`;
 * returns their sum (taken in byte order). Both forms of the distribution start from these values.
 */
function shiftedExponentials(logits: Float32Array, offset: number, into: Float64Array, at: number): number {
  let max = -Infinity;
  for (let b = 0; b < BYTE_SYMBOLS; b++) max = Math.max(max, logits[offset + b]!);
  if (!Number.isFinite(max)) throw new Error(`the model produced a non-finite logit (${max}): cannot code with it`);
  let sum = 0;
  for (let b = 0; b < BYTE_SYMBOLS; b++) {
    const w = Math.exp(logits[offset + b]! - max);
    into[at + b] = w;
    sum += w;
  }
  if (!Number.isFinite(sum)) throw new Error('the model produced non-finite logits: cannot code with them');
  return sum;
}

/** Scratch for quantizedCumulative: it runs once per coded byte, so it allocates nothing. */
const weights = new Float64Array(BYTE_SYMBOLS);

/** Fills `into` (length 257) from the logits of one position (`logits[offset .. offset + 256)`). */
export function quantizedCumulative(logits: Float32Array, offset: number, into: Cumulative): Cumulative {
  const sum = shiftedExponentials(logits, offset, weights, 0);
  into[0] = 0;
  for (let b = 0; b < BYTE_SYMBOLS; b++) into[b + 1] = into[b]! + 1 + Math.floor((weights[b]! / sum) * SHARED);
  return into;
}

/** The byte whose interval contains `target` (binary search over the cumulative frequencies). */
export function byteAt(cumulative: Cumulative, target: number): number {
  let lo = 0;
  let hi = BYTE_SYMBOLS - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (cumulative[mid]! <= target) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * The model's byte probabilities as a binary tree for bitwise coding: `into[256 + b]` is P(b) and
 * `into[n] = into[2n] + into[2n + 1]`, so a byte's bits so far behind a leading 1 (`partial`, 1..255)
 * name a node and P(next bit = 1) is into[2·partial + 1] / into[partial]. The leaves are the same
 * float64 values `quantizedCumulative` starts from.
 */
export function probabilityTree(logits: Float32Array, offset: number, into: Float64Array): Float64Array {
  shiftedExponentials(logits, offset, into, BYTE_SYMBOLS);
  for (let n = BYTE_SYMBOLS - 1; n >= 1; n--) into[n] = into[2 * n]! + into[2 * n + 1]!;
  return into;
}
