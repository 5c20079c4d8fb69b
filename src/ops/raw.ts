// Unrecorded engine calls shared by the ops' backward passes.
import type { BinaryOp } from '../backend/backend.js';
import { Tensor } from '../tensor/tensor.js';
import { broadcastShapes } from '../tensor/shape.js';
import { emptyLike } from './util.js';

function broadcastStrides(t: Tensor, shape: readonly number[]): number[] {
  const lead = shape.length - t.rank;
  return shape.map((d, i) => (i < lead || t.shape[i - lead] !== d ? 0 : t.strides[i - lead]!));
}

/** a op b with broadcasting, never recorded for autograd. */
export function binaryRaw(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  const shape = broadcastShapes(a.shape, b.shape, op);
  const out = emptyLike(a, shape);
  if (out.size > 0) {
    a.backend.binary(op, { ...a.strided(op), strides: broadcastStrides(a, shape) }, { ...b.strided(op), strides: broadcastStrides(b, shape) }, out.dense(), shape);
  }
  return out;
}

export { broadcastStrides };

/** A contiguous copy of `x` (or `x` itself when already contiguous is not wanted: always copies). */
export function contiguousRaw(x: Tensor): Tensor {
  const c = emptyLike(x);
  if (c.size > 0) x.backend.copy(x.strided('contiguous'), c.strided(), x.shape);
  return c;
}
