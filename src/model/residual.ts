/**
 * The residual connection around a sub-layer (shared/spec/andromeda-model.md, "The layer stack"):
 *
 *   x ← branch + x · s · c
 *
 * s: the block's learned per-feature scale (only with scaleResidual), c: the residual constant
 * (DeepNorm's (2·depth)^¼, else 1). Where the new stream meets a norm, the add and the norm run as one
 * fused op (addNorm / addThenNorm with the norm's options, or a runner that also token-shifts the output for a
 * paged step's next sub-layer): these helpers name the math, the ops do the fusion.
 */
import type { Tensor } from '../tensor/tensor.js';
import { add, mul } from '../ops/elementwise.js';
import { addNorm, addThenNorm, type AddNormOptions } from '../ops/fused/add-norm.js';
import type { ResidualInput } from '../nn/layer-norm.js';
import type { Norm } from './norm.js';

/**
 * How an add + norm runs: the fused op (`fusedAddNorm`), or — in a paged decode step, where the norm's output is
 * the next sub-layer's input — one that also token-shifts that output in its pass (PagedLayer.addNormFor).
 * `x` is the residual stream, `branch` the sub-layer's output; the sum comes back only with `keepSum`.
 */
export type AddNormRunner = (
  branch: Tensor,
  x: Tensor,
  options: AddNormOptions,
  keepSum: boolean,
) => { out: Tensor; sum: Tensor | null };

export const fusedAddNorm: AddNormRunner = (branch, x, options, keepSum) => {
  if (!keepSum) return { out: addNorm(branch, x, options), sum: null };
  const { sum, out } = addThenNorm(branch, x, options);
  return { out, sum };
};

/** branch + x·s·c. */
export function addResidual(x: Tensor, branch: Tensor, residual: ResidualInput): Tensor {
  let scaled = x;
  if (residual.scale) scaled = mul(scaled, residual.scale);
  if (residual.constant !== 1) scaled = mul(scaled, residual.constant);
  return add(branch, scaled);
}

/**
 * { stream: branch + x·s·c, normed: norm(stream) } in one pass — pre-norm: the stream carries on
 * and its norm is the next sub-layer's input.
 */
export function addResidualThenNorm(
  x: Tensor,
  branch: Tensor,
  residual: ResidualInput,
  norm: Norm,
  run: AddNormRunner = fusedAddNorm,
): { stream: Tensor; normed: Tensor } {
  const { sum, out } = run(branch, x, norm.residualOptions(residual), true);
  return { stream: sum!, normed: out };
}

/** norm(branch + x·s·c) in one pass — post-norm: only the normed sum carries on. */
export function addResidualNorm(
  x: Tensor,
  branch: Tensor,
  residual: ResidualInput,
  norm: Norm,
  run: AddNormRunner = fusedAddNorm,
): Tensor {
  return run(branch, x, norm.residualOptions(residual), false).out;
}
