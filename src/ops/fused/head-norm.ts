// qk-norm on the attention's head layout: a projection's output x [batch, n, heads, dim] becomes
// y [batch, heads, n, dim] = x / sqrt(‖x‖² + eps²) · weight[head] (L2 over dim; weight [heads, dim] or
// none). Engine.headNorm (native/fused/head_norm/) does the permute, the norm and the per-head scale in
// one pass each way; head dims past HEAD_NORM_MAX_DIM take `headNormComposed` (permute, l2Normalize and mul:
// the same values) on every engine.
import { HEAD_NORM_MAX_DIM, type HeadNormArgs } from '../../engine/engine.js';
import type { Tensor } from '../../tensor/tensor.js';
import { formatShape } from '../../tensor/shape.js';
import { record } from '../../autograd/tape.js';
import { assertFloat, assertSameDType, assertSameDevice, emptyLike } from '../util.js';
import { mul } from '../elementwise.js';
import { permute, reshape } from '../layout.js';
import { l2Normalize } from '../nn.js';
import { asContiguous, freeIfCopy, statsDType } from '../norm-record.js';

/** Checks x [batch, n, heads, dim] and weight [heads, dim] (or none); returns the sizes. */
function validate(op: string, x: Tensor, weight: Tensor | null): [number, number, number, number] {
  assertSameDevice(op, weight ? { x, weight } : { x });
  if (weight) assertSameDType(op, { x, weight });
  assertFloat(op, 'x', x);
  if (x.rank !== 4) throw new RangeError(`${op}: x must be [batch, n, heads, dim], got ${formatShape(x.shape)}`);
  const [batch, n, heads, dim] = x.shape as [number, number, number, number];
  if (weight && (weight.rank !== 2 || weight.shape[0] !== heads || weight.shape[1] !== dim)) {
    throw new RangeError(`${op}: weight ${formatShape(weight.shape)} must be [heads, dim] = [${heads}, ${dim}]`);
  }
  return [batch, n, heads, dim];
}

export function headNorm(x: Tensor, weight: Tensor | null = null, eps = 1e-12): Tensor {
  const op = 'headNorm';
  const [batch, n, heads, dim] = validate(op, x, weight);
  if (dim > HEAD_NORM_MAX_DIM) return headNormComposed(x, weight, eps);
  const engine = x.engine;
  const args: HeadNormArgs = { batch, n, heads, dim, eps };
  const xc = asContiguous(x);
  const out = emptyLike(x, [batch, heads, n, dim]);
  const rstd = emptyLike(x, [batch * n, heads], statsDType(x));
  if (out.size > 0) engine.headNorm(args, xc.dense(op), weight?.dense(op) ?? null, out.dense(), rstd.dense());
  return record(out, op, weight ? [x, weight] : [x], (g) => {
    const gc = asContiguous(g);
    const gx = emptyLike(x);
    const gw = weight?.requiresGrad ? emptyLike(weight) : null;
    if (gx.size > 0 || gw)
      engine.headNormGrad(
        args,
        xc.dense(op),
        weight?.dense(op) ?? null,
        rstd.dense(),
        gc.dense(),
        gx.dense(),
        gw?.dense() ?? null,
      );
    freeIfCopy(gc, g);
    return weight ? [gx, gw] : [gx];
  });
}

/** headNorm composed of permute, l2Normalize and mul (the same values, several passes). */
export function headNormComposed(x: Tensor, weight: Tensor | null = null, eps = 1e-12): Tensor {
  const [, , heads, dim] = validate('headNorm', x, weight);
  const y = l2Normalize(permute(x, [0, 2, 1, 3]), eps);
  return weight ? mul(y, reshape(weight, [1, heads, 1, dim])) : y;
}
