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
import { linear } from '../matmul.js';
import { isGradEnabled } from '../../autograd/grad-mode.js';

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

/**
 * gelu(x · weightᵀ + bias) for x [..., in], weight [out, in], bias [out]: biasGelu(linear(x, weight), bias) in one
 * engine call when nothing records gradients (on CUDA the GELU joins the few-row product's epilogue at decode);
 * otherwise those two ops, so gradients are as they always are.
 */
export function linearBiasGelu(x: Tensor, weight: Tensor, bias: Tensor): Tensor {
  const op = 'linearBiasGelu';
  const inF = x.shape[x.rank - 1]!;
  const grads = isGradEnabled() && [x, weight, bias].some((t) => t.requiresGrad);
  if (grads || inF === 0) return biasGelu(linear(x, weight), bias);
  assertSameDevice(op, { x, weight, bias });
  assertSameDType(op, { x, weight, bias });
  assertFloat(op, 'x', x);
  const outF = weight.shape[0]!;
  if (weight.rank !== 2 || weight.shape[1] !== inF)
    throw new RangeError(`${op}: input ${formatShape(x.shape)} does not match weight ${formatShape(weight.shape)}`);
  if (bias.rank !== 1 || bias.shape[0] !== outF)
    throw new RangeError(`${op}: bias ${formatShape(bias.shape)} does not match weight ${formatShape(weight.shape)}`);
  const rows = x.size / inF;
  const xc = asContiguous(x),
    wc = asContiguous(weight),
    bc = asContiguous(bias);
  const out = emptyLike(x, [...x.shape.slice(0, -1), outF]);
  try {
    if (out.size > 0) x.engine.matmulBiasGelu(xc.dense(op), wc.dense(op), bc.dense(op), out.dense(), rows, outF, inF);
  } catch (e) {
    out.dispose();
    throw e;
  } finally {
    freeIfCopy(xc, x);
    freeIfCopy(wc, weight);
    freeIfCopy(bc, bias);
  }
  return out;
}

/** gelu(x + bias) as two ops (the reference for the fused kernels). */
export function biasGeluComposed(x: Tensor, bias: Tensor): Tensor {
  return gelu(add(x, bias));
}
