export type Shape = readonly number[];

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function contiguousStrides(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i]!;
  }
  return strides;
}

export function formatShape(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

export function shapesEqual(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Resolves a possibly negative axis; `op` names the caller in the error. */
export function normalizeAxis(axis: number, rank: number, op: string): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(axis) || a < 0 || a >= rank) {
    throw new RangeError(`${op}: axis ${axis} is out of range for a tensor of rank ${rank}`);
  }
  return a;
}

/** Numpy broadcasting of two shapes; throws naming the op and both shapes. */
export function broadcastShapes(a: Shape, b: Shape, op: string): number[] {
  const rank = Math.max(a.length, b.length);
  const out = new Array<number>(rank);
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new RangeError(
        `${op}: shapes ${formatShape(a)} and ${formatShape(b)} cannot be broadcast together ` +
          `(axis ${i}: ${da} vs ${db})`,
      );
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** A dimension, stride or offset: a non-negative integer that a double holds exactly. */
export function isIndex(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Shows a user-supplied value in an error: numbers as written, anything else by its type. */
export function describeValue(v: unknown): string {
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v);
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'string' ? `'${v.slice(0, 40)}'` : typeof v;
}

/**
 * Checks that `shape` is an array of non-negative safe integers whose product (the element count) is a
 * safe integer too, and returns that count; `op` names the caller in the error. Every tensor passes this,
 * so no engine ever sees a negative, fractional or overflowing size.
 */
export function checkedNumel(shape: unknown, op: string): number {
  if (!Array.isArray(shape))
    throw new TypeError(`${op}: shape must be an array of dimensions, got ${describeValue(shape)}`);
  let n = 1;
  for (let i = 0; i < shape.length; i++) {
    const d: unknown = shape[i];
    if (!isIndex(d)) {
      throw new RangeError(
        `${op}: invalid shape [${shape.map(describeValue).join(', ')}]: dimension ${i} is ${describeValue(d)}` +
          ` (dimensions must be non-negative integers)`,
      );
    }
    n *= d;
  }
  if (!Number.isSafeInteger(n))
    throw new RangeError(
      `${op}: shape ${formatShape(shape as number[])} has more elements than can be addressed (${n})`,
    );
  return n;
}

export function validateShape(shape: Shape, op: string): void {
  checkedNumel(shape, op);
}

/**
 * Checks a strided view (shape, element strides, element offset) against a buffer of `capacity` elements:
 * strides are non-negative safe integers, one per axis, and every element the view can reach lies inside the
 * buffer. Empty views reach nothing, so only their offset's type is checked.
 */
export function checkView(shape: Shape, strides: unknown, offset: unknown, capacity: number, op: string): void {
  const n = checkedNumel(shape, op);
  if (!Array.isArray(strides) || strides.length !== shape.length) {
    throw new RangeError(
      `${op}: strides must be an array of ${shape.length} integers (one per ` +
        `axis of ${formatShape(shape)}), got ${
          Array.isArray(strides) ? `[${strides.map(describeValue).join(', ')}]` : describeValue(strides)
        }`,
    );
  }
  for (let i = 0; i < strides.length; i++) {
    const s: unknown = strides[i];
    if (!isIndex(s))
      throw new RangeError(`${op}: stride ${i} is ${describeValue(s)} (strides must be non-negative integers)`);
  }
  if (!isIndex(offset)) throw new RangeError(`${op}: offset ${describeValue(offset)} must be a non-negative integer`);
  if (n === 0) return;
  let last = offset;
  for (let i = 0; i < shape.length; i++) last += (shape[i]! - 1) * (strides[i] as number);
  if (!Number.isSafeInteger(last) || last >= capacity) {
    throw new RangeError(
      `${op}: view ${formatShape(shape)} with strides ${formatShape(strides as number[])} and offset ${offset}` +
        ` reaches element ${last}, outside its buffer of ${capacity} elements`,
    );
  }
}
