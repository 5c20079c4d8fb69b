import type { Tensor } from '../tensor/tensor.js';
import { Tensor as TensorClass } from '../tensor/tensor.js';
import type { DType } from '../tensor/dtype.js';
import { checkedNumel, formatShape } from '../tensor/shape.js';

/** A new contiguous tensor on the same device as `like`; `op` names the caller if the shape is refused. */
export function emptyLike(
  like: Tensor,
  shape: readonly number[] = like.shape,
  dtype: DType = like.dtype,
  op?: string,
): Tensor {
  if (op !== undefined) TensorClass.checkAllocation(checkedNumel(shape, op), dtype, like.device, op);
  return TensorClass.empty(shape, dtype, like.device);
}

export function assertSameDevice(op: string, tensors: Record<string, Tensor>): void {
  const entries = Object.entries(tensors);
  const [firstName, first] = entries[0]!;
  for (const [name, t] of entries) {
    t.assertAlive(op, name);
    if (t.device !== first.device) {
      throw new Error(
        `${op}: '${firstName}' is on ${first.device} but '${name}' is on ${t.device} (move one with .to())`,
      );
    }
  }
}

export function assertSameDType(op: string, tensors: Record<string, Tensor>): void {
  const entries = Object.entries(tensors);
  const [firstName, first] = entries[0]!;
  for (const [name, t] of entries) {
    if (t.dtype !== first.dtype) {
      throw new TypeError(
        `${op}: dtype mismatch: '${firstName}' is ${first.dtype} ${formatShape(first.shape)} but '${name}' is ` +
          `${t.dtype} ${formatShape(t.shape)} (cast one with .to(dtype))`,
      );
    }
  }
}

export function assertFloat(op: string, name: string, t: Tensor): void {
  if (t.dtype === 'int32')
    throw new TypeError(`${op}: '${name}' must be a floating-point tensor, got int32 ${formatShape(t.shape)}`);
}

export function assertDType(op: string, name: string, t: Tensor, dtype: DType): void {
  if (t.dtype !== dtype)
    throw new TypeError(`${op}: '${name}' must be ${dtype}, got ${t.dtype} ${formatShape(t.shape)}`);
}

export function assertRank(op: string, name: string, t: Tensor, rank: number): void {
  if (t.rank !== rank)
    throw new RangeError(`${op}: '${name}' must have rank ${rank}, got shape ${formatShape(t.shape)}`);
}

/** Normalises an axis list (undefined = all axes), sorted and deduplicated. */
export function normalizeAxes(axes: number | readonly number[] | undefined, rank: number, op: string): number[] {
  const list = axes === undefined ? [...Array(rank).keys()] : typeof axes === 'number' ? [axes] : [...axes];
  const out = list.map((a) => {
    const n = a < 0 ? a + rank : a;
    if (!Number.isInteger(a) || n < 0 || n >= rank)
      throw new RangeError(`${op}: axis ${a} is out of range for rank ${rank}`);
    return n;
  });
  return [...new Set(out)].sort((x, y) => x - y);
}

/**
 * Frees an intermediate of a composite op unless autograd still needs it (it then lives until the
 * enclosing scope ends, as every recorded tensor does).
 */
export function release(t: Tensor): void {
  if (!t.gradFn) t.dispose();
}
