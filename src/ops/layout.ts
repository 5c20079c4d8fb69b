// View and layout operations: reshape, transpose, permute, narrow, expand, contiguous, concat,
// split, pad and shift. Views share storage; the others copy through the engine's strided copy.
import { Tensor } from '../tensor/tensor.js';
import {
  checkedNumel,
  contiguousStrides,
  describeValue,
  formatShape,
  normalizeAxis,
  numel,
  shapesEqual,
} from '../tensor/shape.js';
import { record } from '../autograd/tape.js';
import { emptyLike, assertSameDType, assertSameDevice, release } from './util.js';
import { zeros } from './creation.js';

/** Copies `x` into a new contiguous tensor (always a copy). */
export function clone(x: Tensor): Tensor {
  x.assertAlive('clone', 'x');
  const out = emptyLike(x);
  if (x.size > 0) x.engine.copy(x.strided('clone'), out.strided('clone'), x.shape);
  return record(out, 'clone', [x], (g) => [g.view(g.shape, g.strides, g.offset)]);
}

/** `x` itself (a new view) when already contiguous, else a contiguous copy. */
export function contiguous(x: Tensor): Tensor {
  x.assertAlive('contiguous', 'x');
  if (x.isContiguous())
    return record(x.view(x.shape, contiguousStrides(x.shape), x.offset), 'contiguous', [x], (g) => [
      g.view(g.shape, g.strides, g.offset),
    ]);
  return clone(x);
}

/** Strides for viewing a tensor of `shape`/`strides` as `newShape` without copying, or null. */
function viewStrides(
  shape: readonly number[],
  strides: readonly number[],
  newShape: readonly number[],
): number[] | null {
  // Group old dims into contiguous chunks and match them to new dims (as PyTorch's computeStride).
  const newStrides = new Array<number>(newShape.length).fill(0);
  if (numel(shape) === 0) return contiguousStrides(newShape);
  let viewD = newShape.length - 1;
  let chunkBase = strides[strides.length - 1] ?? 1;
  let tensorElems = 1,
    viewElems = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    tensorElems *= shape[d]!;
    if (d === 0 || (shape[d - 1] !== 1 && strides[d - 1] !== tensorElems * chunkBase)) {
      while (viewD >= 0 && (viewElems < tensorElems || newShape[viewD] === 1)) {
        newStrides[viewD] = viewElems * chunkBase;
        viewElems *= newShape[viewD]!;
        viewD--;
      }
      if (viewElems !== tensorElems) return null;
      if (d > 0) {
        chunkBase = strides[d - 1]!;
        tensorElems = 1;
        viewElems = 1;
      }
    }
  }
  if (viewD !== -1) {
    while (viewD >= 0) {
      if (newShape[viewD] !== 1) return null;
      newStrides[viewD] = 1;
      viewD--;
    }
  }
  return newStrides;
}

/** Reshape; one dimension may be -1. Views when the layout allows, copies otherwise. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  x.assertAlive('reshape', 'x');
  if (!Array.isArray(shape as unknown))
    throw new TypeError(`reshape: shape must be an array of dimensions, got ${describeValue(shape)}`);
  const target = [...shape];
  const inferred = target.indexOf(-1);
  if (inferred !== target.lastIndexOf(-1))
    throw new RangeError(`reshape: only one dimension may be -1 in ${formatShape(shape)}`);
  if (inferred >= 0) {
    const known = target.reduce((p, d, i) => (i === inferred ? p : p * d), 1);
    if (known === 0 || x.size % known !== 0)
      throw new RangeError(
        `reshape: cannot reshape ${formatShape(x.shape)} (${x.size} elements) into ${formatShape(shape)}`,
      );
    target[inferred] = x.size / known;
  }
  if (target.some((d) => !Number.isInteger(d) || d < 0) || numel(target) !== x.size) {
    throw new RangeError(
      `reshape: cannot reshape ${formatShape(x.shape)} (${x.size} elements) into ${formatShape(shape)}`,
    );
  }
  const strides = viewStrides(x.shape, x.strides, target);
  const from = x.shape;
  if (strides) return record(x.view(target, strides, x.offset), 'reshape', [x], (g) => [reshape(g, from)]);
  const c = clone(x);
  const out = c.view(target, contiguousStrides(target), c.offset);
  c.dispose();
  return record(out, 'reshape', [x], (g) => [reshape(g, from)]);
}

export function permute(x: Tensor, order: readonly number[]): Tensor {
  x.assertAlive('permute', 'x');
  if (!Array.isArray(order as unknown))
    throw new TypeError(`permute: order must be an array of axes, got ${describeValue(order)}`);
  const axes = order.map((a) => normalizeAxis(a, x.rank, 'permute'));
  if (axes.length !== x.rank || new Set(axes).size !== x.rank) {
    throw new RangeError(
      `permute: ${formatShape(order)} is not a permutation of the ${x.rank} axes of ${formatShape(x.shape)}`,
    );
  }
  const out = x.view(
    axes.map((a) => x.shape[a]!),
    axes.map((a) => x.strides[a]!),
    x.offset,
  );
  const inverse = new Array<number>(axes.length);
  axes.forEach((a, i) => (inverse[a] = i));
  return record(out, 'permute', [x], (g) => [permute(g, inverse)]);
}

export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  const order = [...Array(x.rank).keys()];
  const i = normalizeAxis(a, x.rank, 'transpose'),
    j = normalizeAxis(b, x.rank, 'transpose');
  [order[i], order[j]] = [order[j]!, order[i]!];
  return permute(x, order);
}

/** Elements [start, start + length) along `axis`, as a view. */
export function narrow(x: Tensor, axis: number, start: number, length: number): Tensor {
  x.assertAlive('narrow', 'x');
  const ax = normalizeAxis(axis, x.rank, 'narrow');
  const dim = x.shape[ax]!;
  if (!Number.isInteger(start) || !Number.isInteger(length) || start < 0 || length < 0 || start + length > dim) {
    throw new RangeError(
      `narrow: range [${start}, ${start + length}) is outside ` +
        `axis ${axis} of size ${dim} (shape ${formatShape(x.shape)})`,
    );
  }
  const shape = [...x.shape];
  shape[ax] = length;
  const out = x.view(shape, x.strides, x.offset + start * x.strides[ax]!);
  const full = x.shape;
  return record(out, 'narrow', [x], (g) => {
    const gx = zeros(full, g.dtype, g.device);
    const dst = narrowView(gx, ax, start, length);
    g.engine.copy(g.strided(), dst.strided(), g.shape);
    dst.dispose();
    return [gx];
  });
}

function narrowView(x: Tensor, ax: number, start: number, length: number): Tensor {
  const shape = [...x.shape];
  shape[ax] = length;
  return x.view(shape, x.strides, x.offset + start * x.strides[ax]!);
}

/** Broadcasts size-1 axes (and new leading axes) to `shape` without copying. */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  x.assertAlive('expand', 'x');
  checkedNumel(shape, 'expand');
  if (shape.length < x.rank)
    throw new RangeError(`expand: cannot expand ${formatShape(x.shape)} to fewer dimensions ${formatShape(shape)}`);
  const lead = shape.length - x.rank;
  const strides = shape.map((d, i) => {
    if (i < lead) return 0;
    const src = x.shape[i - lead]!;
    if (src === d) return x.strides[i - lead]!;
    if (src === 1) return 0;
    throw new RangeError(
      `expand: cannot expand ${formatShape(x.shape)} to ${formatShape(shape)} (axis ${i}: ${src} → ${d})`,
    );
  });
  const from = x.shape;
  return record(x.view([...shape], strides, x.offset), 'expand', [x], (g) => [sumTo(g, from)]);
}

/** Sums a broadcast gradient back down to `shape` (the inverse of broadcasting). */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (shapesEqual(g.shape, shape)) return g.view(g.shape, g.strides, g.offset);
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  return reshapeResult(g.sum(axes, false), shape);
}

function reshapeResult(t: Tensor, shape: readonly number[]): Tensor {
  if (shapesEqual(t.shape, shape)) return t;
  const r = reshape(t, shape);
  t.dispose();
  return r;
}

export function unsqueeze(x: Tensor, axis: number): Tensor {
  const ax = normalizeAxis(axis, x.rank + 1, 'unsqueeze');
  const shape = [...x.shape];
  shape.splice(ax, 0, 1);
  return reshape(x, shape);
}

export function squeeze(x: Tensor, axis: number): Tensor {
  const ax = normalizeAxis(axis, x.rank, 'squeeze');
  if (x.shape[ax] !== 1)
    throw new RangeError(`squeeze: axis ${axis} of ${formatShape(x.shape)} has size ${x.shape[ax]}, not 1`);
  return reshape(
    x,
    x.shape.filter((_, i) => i !== ax),
  );
}

export function concat(tensors: readonly Tensor[], axis: number): Tensor {
  if (!Array.isArray(tensors as unknown))
    throw new TypeError(`concat: expects an array of tensors, got ${describeValue(tensors)}`);
  if (tensors.length === 0) throw new RangeError('concat: needs at least one tensor');
  const first = tensors[0]!;
  const named = Object.fromEntries(tensors.map((t, i) => [`tensors[${i}]`, t]));
  assertSameDevice('concat', named);
  assertSameDType('concat', named);
  const ax = normalizeAxis(axis, first.rank, 'concat');
  for (const [i, t] of tensors.entries()) {
    if (t.rank !== first.rank || t.shape.some((d, j) => j !== ax && d !== first.shape[j])) {
      throw new RangeError(
        `concat: tensors[${i}] has shape ${formatShape(t.shape)}, incompatible ` +
          `with ${formatShape(first.shape)} along axis ${axis}`,
      );
    }
  }
  const shape = [...first.shape];
  shape[ax] = tensors.reduce((s, t) => s + t.shape[ax]!, 0);
  const out = emptyLike(first, shape, first.dtype, 'concat');
  let start = 0;
  const sizes: number[] = [];
  for (const t of tensors) {
    const len = t.shape[ax]!;
    sizes.push(len);
    if (t.size > 0) {
      const dst = narrowView(out, ax, start, len);
      t.engine.copy(t.strided('concat'), dst.strided(), t.shape);
      dst.dispose();
    }
    start += len;
  }
  return record(out, 'concat', tensors, (g) => {
    let s = 0;
    return sizes.map((len) => {
      const part = contiguousNarrow(g, ax, s, len);
      s += len;
      return part;
    });
  });
}

function contiguousNarrow(g: Tensor, ax: number, start: number, len: number): Tensor {
  const v = narrowView(g, ax, start, len);
  const c = emptyLike(g, v.shape);
  if (v.size > 0) g.engine.copy(v.strided(), c.strided(), v.shape);
  v.dispose();
  return c;
}

/** Splits along `axis` into parts of the given sizes (views). */
export function split(x: Tensor, sizes: readonly number[], axis: number): Tensor[] {
  x.assertAlive('split', 'x');
  if (!Array.isArray(sizes as unknown))
    throw new TypeError(`split: sizes must be an array of lengths, got ${describeValue(sizes)}`);
  const ax = normalizeAxis(axis, x.rank, 'split');
  const total = sizes.reduce((a, b) => a + b, 0);
  if (total !== x.shape[ax])
    throw new RangeError(
      `split: sizes ${formatShape(sizes)} sum to ${total}, but axis ${axis} of ${formatShape(x.shape)} has ` +
        `${x.shape[ax]}`,
    );
  let start = 0;
  return sizes.map((len) => {
    const part = narrow(x, ax, start, len);
    start += len;
    return part;
  });
}

/** Pads `axis` with `before` and `after` elements of `value`. */
export function pad(x: Tensor, axis: number, before: number, after: number, value = 0): Tensor {
  x.assertAlive('pad', 'x');
  const ax = normalizeAxis(axis, x.rank, 'pad');
  if (!Number.isInteger(before) || !Number.isInteger(after) || before < 0 || after < 0) {
    throw new RangeError(`pad: padding (${before}, ${after}) must be non-negative integers`);
  }
  const shape = [...x.shape];
  shape[ax] = x.shape[ax]! + before + after;
  const out = emptyLike(x, shape, x.dtype, 'pad');
  out.engine.fill(out.dense(), out.size, value);
  if (x.size > 0) {
    const dst = narrowView(out, ax, before, x.shape[ax]!);
    x.engine.copy(x.strided('pad'), dst.strided(), x.shape);
    dst.dispose();
  }
  const len = x.shape[ax]!;
  return record(out, 'pad', [x], (g) => [contiguousNarrow(g, ax, before, len)]);
}

/**
 * Shifts along `axis` by `amount` positions (positive: element t takes element t − amount),
 * filling with zeros; the size of the axis is unchanged.
 */
export function shift(x: Tensor, axis: number, amount: number): Tensor {
  const ax = normalizeAxis(axis, x.rank, 'shift');
  const n = x.shape[ax]!;
  if (!Number.isInteger(amount)) throw new RangeError(`shift: amount ${amount} must be an integer`);
  const k = Math.min(Math.abs(amount), n);
  if (amount >= 0) {
    const kept = narrow(x, ax, 0, n - k);
    const out = pad(kept, ax, k, 0);
    release(kept);
    return out;
  }
  const kept = narrow(x, ax, k, n - k);
  const out = pad(kept, ax, 0, k);
  release(kept);
  return out;
}

export function flatten(x: Tensor): Tensor {
  return reshape(x, [x.size]);
}
