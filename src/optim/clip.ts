import type { Tensor } from '../tensor/tensor.js';

/** The global L2 norm of the parameters' gradients (accumulated in float64). */
export function gradNorm(params: readonly Tensor[]): number {
  let total = 0;
  for (const p of params) {
    if (!p.grad || p.grad.size === 0) continue;
    const g = p.grad.isContiguous() ? p.grad : p.grad.contiguous();
    total += p.backend.sumOfSquares(g.dense('gradNorm'), g.size);
    if (g !== p.grad) g.dispose();
  }
  return Math.sqrt(total);
}

/**
 * Global-norm clipping: returns the norm before clipping and the factor (≤ 1) to multiply the
 * gradients by, which the optimizer applies in its fused step (`step({ gradScale })`).
 */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number): { norm: number; scale: number } {
  const norm = gradNorm(params);
  const scale = Number.isFinite(norm) && norm > maxNorm ? maxNorm / (norm + 1e-6) : 1;
  return { norm, scale };
}
