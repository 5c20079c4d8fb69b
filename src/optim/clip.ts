import type { Tensor } from '../tensor/tensor.js';

/** The global L2 norm of the parameters' gradients (accumulated in float64). */
export function gradNorm(params: readonly Tensor[]): number {
  const withGrad = params.filter((p) => p.grad && p.grad.size > 0);
  const grads = withGrad.map((p) => (p.grad!.isContiguous() ? p.grad! : p.grad!.contiguous()));
  try {
    let total = 0;
    // One call per engine, so an asynchronous engine waits once rather than once per parameter.
    for (const engine of new Set(grads.map((g) => g.engine))) {
      const mine = grads.filter((g) => g.engine === engine);
      total += engine.sumOfSquaresMany(mine.map((g) => ({ x: g.dense('gradNorm'), count: g.size })));
    }
    return Math.sqrt(total);
  } finally {
    grads.forEach((g, i) => {
      if (g !== withGrad[i]!.grad) g.dispose();
    });
  }
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
