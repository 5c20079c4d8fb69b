/**
 * ALiBi slopes (Press et al.), exactly as x-transformers 1.20 computes them: for m a power of two,
 * start = 2^(−2^(−(log2 m − 3))) and slope_h = start^(h+1); otherwise, with p = 2^floor(log2 m), the
 * p slopes for p followed by every other slope of the list for 2p until there are m.
 */
export function alibiSlopes(m: number): number[] {
  if (!Number.isInteger(m) || m < 0)
    throw new RangeError(`alibiSlopes: head count ${m} must be a non-negative integer`);
  if (m === 0) return [];
  if (Number.isInteger(Math.log2(m))) return powerOfTwoSlopes(m);
  const p = 2 ** Math.floor(Math.log2(m));
  const extra = powerOfTwoSlopes(2 * p)
    .filter((_, i) => i % 2 === 0)
    .slice(0, m - p);
  return [...powerOfTwoSlopes(p), ...extra];
}

function powerOfTwoSlopes(n: number): number[] {
  const start = 2 ** -(2 ** -(Math.log2(n) - 3));
  return Array.from({ length: n }, (_, i) => start ** (i + 1));
}

/** One slope per head: the first `alibiHeads` heads get slopes, the rest 0 (no bias). */
export function headSlopes(heads: number, alibiHeads: number): Float64Array {
  if (alibiHeads > heads) throw new RangeError(`headSlopes: ${alibiHeads} ALiBi heads exceed ${heads} heads`);
  const out = new Float64Array(heads);
  alibiSlopes(alibiHeads).forEach((s, h) => (out[h] = s));
  return out;
}
