// Reductions over axes (sum, mean, max, min) with their gradients.
import type { ReduceOp } from '../engine/engine.js';
import { Tensor } from '../tensor/tensor.js';
import { record } from '../autograd/tape.js';
import { emptyLike, normalizeAxes } from './util.js';
import { contiguous, expand, reshape } from './layout.js';
import { binaryRaw, contiguousRaw } from './raw.js';
import { contiguousStrides } from '../tensor/shape.js';

/** Reduces one axis of a contiguous tensor with the engine kernel (no autograd). */
function reduceAxis(op: ReduceOp, x: Tensor, axis: number): Tensor {
  const outer = x.shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const size = x.shape[axis]!;
  const inner = x.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const shape = x.shape.filter((_, i) => i !== axis);
  const out = emptyLike(x, shape);
  if (out.size > 0) {
    if (size === 0) x.engine.fill(out.dense(), out.size, op === 'sum' ? 0 : op === 'max' ? -Infinity : Infinity);
    else x.engine.reduce(op, x.dense(op), out.dense(), outer, size, inner);
  }
  return out;
}

/** Reduces `axes` (all when undefined) without recording; result shape keeps size-1 axes if asked. */
export function reduceRaw(
  op: ReduceOp,
  x: Tensor,
  axes: number | readonly number[] | undefined,
  keepDims: boolean,
): Tensor {
  x.assertAlive(op, 'x');
  const list = normalizeAxes(axes, x.rank, op);
  let current = x.isContiguous() ? x : contiguousRaw(x);
  for (let i = list.length - 1; i >= 0; i--) {
    const next = reduceAxis(op, current, list[i]!);
    if (current !== x) current.dispose();
    current = next;
  }
  const keptShape = x.shape.map((d, i) => (list.includes(i) ? 1 : d));
  const finalShape = keepDims ? keptShape : x.shape.filter((_, i) => !list.includes(i));
  if (current === x) return x.view(x.shape, x.strides, x.offset);
  const out = current.view(finalShape, contiguousStrides(finalShape), current.offset);
  current.dispose();
  return out;
}

/** Broadcasts a reduced gradient back over the reduced axes (a contiguous copy). */
function expandBack(g: Tensor, x: Tensor, axes: number[]): Tensor {
  const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const r = reshape(g, kept);
  const e = expand(r, x.shape);
  const c = contiguous(e);
  r.dispose();
  e.dispose();
  return c;
}

export function sum(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  const list = normalizeAxes(axes, x.rank, 'sum');
  const out = reduceRaw('sum', x, list, keepDims);
  return record(out, 'sum', [x], (g) => [expandBack(g, x, list)]);
}

export function mean(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  const list = normalizeAxes(axes, x.rank, 'mean');
  const count = list.reduce((n, a) => n * x.shape[a]!, 1);
  const s = reduceRaw('sum', x, list, keepDims);
  const out = emptyLike(s);
  if (out.size > 0) x.engine.unary('scale', s.dense(), out.dense(), out.size, 1 / count);
  s.dispose();
  return record(out, 'mean', [x], (g) => {
    const e = expandBack(g, x, list);
    const r = emptyLike(e);
    if (r.size > 0) x.engine.unary('scale', e.dense(), r.dense(), r.size, 1 / count);
    e.dispose();
    return [r];
  });
}

function extremum(
  op: 'max' | 'min',
  x: Tensor,
  axes: number | readonly number[] | undefined,
  keepDims: boolean,
): Tensor {
  const list = normalizeAxes(axes, x.rank, op);
  const out = reduceRaw(op, x, list, keepDims);
  return record(out, op, [x], (g) => {
    // The gradient is shared equally between tied extremal elements.
    const e = expandBack(out, x, list);
    const mask = binaryRaw('eq', x, e);
    const ties = reduceRaw('sum', mask, list, true);
    const share = binaryRaw('div', mask, ties);
    const ge = expandBack(g, x, list);
    const gx = binaryRaw('mul', ge, share);
    e.dispose();
    mask.dispose();
    ties.dispose();
    share.dispose();
    ge.dispose();
    return [gx];
  });
}

export function max(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  return extremum('max', x, axes, keepDims);
}

export function min(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  return extremum('min', x, axes, keepDims);
}
