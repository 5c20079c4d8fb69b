// Token shift while decoding with a cache; the op itself is src/ops/fused/token-shift.ts.
import type { Tensor } from '../tensor/tensor.js';
import { concat, narrow } from '../ops/layout.js';
import { shiftTokens } from '../ops/fused/token-shift.js';

/**
 * `history` [batch, shifts, dim] holds the inputs of the previous `shifts` positions (zeros before the
 * start). Returns the shifted x and the new history.
 */
export function shiftTokensWithHistory(
  x: Tensor,
  shifts: number,
  history: Tensor,
): { shifted: Tensor; history: Tensor } {
  const n = x.shape[1]!;
  const extended = concat([history, x], 1);
  const shiftedAll = shiftTokens(extended, shifts);
  const shifted = narrow(shiftedAll, 1, shifts, n);
  const next = narrow(extended, 1, n, shifts).contiguous();
  return { shifted, history: next };
}
