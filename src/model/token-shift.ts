/**
 * Token shift (spec "Token shift"): the features are split into shifts + 1 chunks of
 * floor(dim / (shifts + 1)); chunk k at position t comes from position t − k (zeros before the
 * start, and — for packed sequences — zeros when t − k lies in another document). The remainder
 * features are left as they are.
 */
import { Tensor } from '../tensor/tensor.js';
import { concat, narrow, shift } from '../ops/layout.js';
import { mul } from '../ops/elementwise.js';
import { release } from '../ops/util.js';

/** x [batch, n, dim]; `segments` (host, [batch, n]) stops shifts across document boundaries. */
export function shiftTokens(x: Tensor, shifts: number, segments: Int32Array | null = null): Tensor {
  if (shifts === 0) return x;
  const [batch, n, dim] = x.shape as [number, number, number];
  const chunk = Math.floor(dim / (shifts + 1));
  const parts: Tensor[] = [];
  for (let k = 0; k <= shifts; k++) {
    const features = narrow(x, 2, k * chunk, chunk);
    if (k === 0) {
      parts.push(features);
      continue;
    }
    let moved = shift(features, 1, k);
    release(features);
    if (segments) {
      const mask = sameDocumentMask(segments, batch, n, k, x);
      const masked = mul(moved, mask);
      release(moved);
      moved = masked;
    }
    parts.push(moved);
  }
  const rest = dim - (shifts + 1) * chunk;
  if (rest > 0) parts.push(narrow(x, 2, (shifts + 1) * chunk, rest));
  const out = concat(parts, 2);
  for (const p of parts) release(p);
  return out;
}

/** [batch, n, 1]: 1 where position t − k exists and is in the same document as t. */
function sameDocumentMask(segments: Int32Array, batch: number, n: number, k: number, like: Tensor): Tensor {
  const values = new Float64Array(batch * n);
  for (let b = 0; b < batch; b++) {
    for (let t = k; t < n; t++) values[b * n + t] = segments[b * n + t] === segments[b * n + t - k] ? 1 : 0;
  }
  return Tensor.fromArray(values, [batch, n, 1], like.dtype, like.device);
}

/**
 * Token shift while decoding with a cache: `history` [batch, shifts, dim] holds the inputs of the
 * previous `shifts` positions (zeros before the start). Returns the shifted x and the new history.
 */
export function shiftTokensWithHistory(x: Tensor, shifts: number, history: Tensor): { shifted: Tensor; history: Tensor } {
  const n = x.shape[1]!;
  const extended = concat([history, x], 1);
  const shiftedAll = shiftTokens(extended, shifts);
  const shifted = narrow(shiftedAll, 1, shifts, n);
  const next = narrow(extended, 1, n, shifts).contiguous();
  return { shifted, history: next };
}
