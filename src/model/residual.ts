/**
 * The residual connection around a sub-layer (shared/spec/andromeda-model.md, "The layer stack"):
 *
 *   x ← branch + x · s · c
 *
 * s: the block's learned per-feature scale (only with scaleResidual), c: the residual constant
 * (DeepNorm's (2·depth)^¼, else 1). Where the new stream meets a norm, the add and the norm run as one
 * fused op (addNorm / addThenNorm, through the norm's forwardResidual*): these helpers name the math,
 * the norm does the fusion.
 */
import type { Tensor } from '../tensor/tensor.js';
import { add, mul } from '../ops/elementwise.js';
import type { ResidualInput } from '../nn/layer-norm.js';
import type { Norm } from './norm.js';

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
): { stream: Tensor; normed: Tensor } {
  const { sum, out } = norm.forwardResidualWithSum(branch, x, residual);
  return { stream: sum, normed: out };
}

/** norm(branch + x·s·c) in one pass — post-norm: only the normed sum carries on. */
export function addResidualNorm(x: Tensor, branch: Tensor, residual: ResidualInput, norm: Norm): Tensor {
  return norm.forwardResidual(branch, x, residual);
}
