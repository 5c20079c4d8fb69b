// Unrecorded engine calls shared by the ops' backward passes.
import type { BinaryOp } from '../engine/engine.js';
import { Tensor } from '../tensor/tensor.js';
import type { DType } from '../tensor/dtype.js';
import { broadcastShapes } from '../tensor/shape.js';
import { emptyLike } from './util.js';

function broadcastStrides(t: Tensor, shape: readonly number[]): number[] {
  const lead = shape.length - t.rank;
  return shape.map((d, i) => (i < lead || t.shape[i - lead] !== d ? 0 : t.strides[i - lead]!));
}

/** a op b with broadcasting, never recorded for autograd; `name` is the op named in errors. */
export function binaryRaw(op: BinaryOp, a: Tensor, b: Tensor, name: string = op): Tensor {
  const shape = broadcastShapes(a.shape, b.shape, name);
  const out = emptyLike(a, shape);
  if (out.size > 0) {
    a.engine.binary(
      op,
      { ...a.strided(name), strides: broadcastStrides(a, shape) },
      { ...b.strided(name), strides: broadcastStrides(b, shape) },
      out.dense(),
      shape,
    );
  }
  return out;
}

/** A contiguous copy of `x` (always a copy), converted to `dtype`; never recorded for autograd. */
export function contiguousRaw(x: Tensor, dtype: DType = x.dtype): Tensor {
  const c = emptyLike(x, x.shape, dtype);
  if (c.size > 0) x.engine.copy(x.strided('contiguous'), c.strided(), x.shape);
  return c;
}
