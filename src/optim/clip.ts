import { Tensor } from '../tensor/tensor.js';
import type { Optimizer } from './optimizer.js';

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

/**
 * Global-norm clipping and the optimizer step without a wait between them: Σg² goes into a float64 on the
 * parameters' engine (Engine.sumOfSquaresManyTo), the fused AdamW step reads it there and clips (or skips the update
 * where the norm is not finite: native/fused/adamw/clip.h), and only then is the norm read back — so on CUDA the
 * step is enqueued while the sum is still running. The same bits as `clipGradNorm` followed by `step({ gradScale })`,
 * which is what optimizers without device clipping, and parameters spread over several engines, get instead.
 * Returns the norm before clipping, the factor applied, and whether the update was taken (a norm that is not
 * finite skips it, and the optimizer's step count is left as it was).
 */
export function clipAndStep(
  optimizer: Optimizer<object>,
  params: readonly Tensor[],
  maxNorm: number,
): { norm: number; scale: number; stepped: boolean } {
  if (!(maxNorm > 0)) throw new RangeError(`clipAndStep: the norm to clip to must be positive, got ${maxNorm}`);
  const scaleFor = (norm: number) => (norm > maxNorm ? maxNorm / (norm + 1e-6) : 1);
  const withGrad = params.filter((p) => p.grad && p.grad.size > 0);
  const engines = new Set(withGrad.map((p) => p.engine));
  if (!optimizer.clipsOnDevice || engines.size !== 1) {
    const norm = gradNorm(params);
    if (!Number.isFinite(norm)) return { norm, scale: 1, stepped: false };
    const scale = scaleFor(norm);
    optimizer.step({ gradScale: scale });
    return { norm, scale, stepped: true };
  }
  const grads = withGrad.map((p) => (p.grad!.isContiguous() ? p.grad! : p.grad!.contiguous()));
  const sumOfSquares = Tensor.empty([1], 'float64', withGrad[0]!.device);
  try {
    const engine = [...engines][0]!;
    engine.sumOfSquaresManyTo(
      grads.map((g) => ({ x: g.dense('clipAndStep'), count: g.size })),
      sumOfSquares.dense('clipAndStep'),
    );
    optimizer.step({ clip: { sumOfSquares, maxNorm } });
    const norm = Math.sqrt(sumOfSquares.toArray()[0]!);
    if (!Number.isFinite(norm)) {
      optimizer.forgetSkippedStep();
      return { norm, scale: 1, stepped: false };
    }
    return { norm, scale: scaleFor(norm), stepped: true };
  } finally {
    sumOfSquares.dispose();
    grads.forEach((g, i) => {
      if (g !== withGrad[i]!.grad) g.dispose();
    });
  }
}
