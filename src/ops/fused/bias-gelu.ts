// gelu(x + bias) as one op: the feed-forward's first layer computes x·Wᵀ without its bias and adds the
// bias here, so no broadcast copy of the bias precedes the product and the backward pass gets the
// bias gradient in the same pass as the GELU derivative (Engine.biasGelu; native/fused/bias_gelu/).
// `biasGeluComposed` is the add and the GELU as separate ops: the same values.
import { Tensor } from '../../tensor/tensor.js';
import { formatShape } from '../../tensor/shape.js';
import { record } from '../../autograd/tape.js';
import { assertFloat, assertSameDType, assertSameDevice, emptyLike } from '../util.js';
import { add, gelu } from '../elementwise.js';
import { asContiguous, freeIfCopy } from '../norm-record.js';

/** gelu(x + bias) (exact erf GELU) for x [..., n] and bias [n]. */
export function biasGelu(x: Tensor, bias: Tensor): Tensor {
  const op = 'biasGelu';
  assertSameDevice(op, { x, bias });
  assertSameDType(op, { x, bias });
  assertFloat(op, 'x', x);
  const cols = x.shape[x.rank - 1];
  if (cols === undefined || bias.rank !== 1 || bias.shape[0] !== cols) {
    throw new RangeError(
      `${op}: bias ${formatShape(bias.shape)} does not match the last axis of x ${formatShape(x.shape)}`,
    );
  }
  const engine = x.engine;
  const rows = cols === 0 ? 0 : x.size / cols;
  const xc = asContiguous(x),
    bc = asContiguous(bias);
  const out = emptyLike(x);
  if (out.size > 0) engine.biasGelu(xc.dense(op), bc.dense(op), out.dense(), rows, cols);
  return record(out, op, [x, bias], (g) => {
    const gc = asContiguous(g);
    const gx = emptyLike(x);
    const gb = bias.requiresGrad ? emptyLike(bias) : null;
    if (gb && gx.size === 0 && gb.size > 0) engine.fill(gb.dense(), gb.size, 0);
    if (gx.size > 0)
      engine.biasGeluGrad(xc.dense(op), bc.dense(op), gc.dense(), gx.dense(), gb?.dense() ?? null, rows, cols);
    freeIfCopy(gc, g);
    return [gx, gb];
  });
}

/** gelu(x + bias) as two ops (the reference for the fused kernels). */
export function biasGeluComposed(x: Tensor, bias: Tensor): Tensor {
  return gelu(add(x, bias));
}
