import { Tensor } from '../tensor/tensor.js';
import type { DType } from '../tensor/dtype.js';
import { checkedNumel, describeValue, validateShape } from '../tensor/shape.js';
import { defaultGenerator, type Generator } from '../tensor/random.js';

export interface CreateOptions {
  dtype?: DType;
  device?: string;
  requiresGrad?: boolean;
}

function finish(t: Tensor, o: CreateOptions): Tensor {
  if (o.requiresGrad) t.requiresGrad = true;
  return t;
}

/** A tensor from nested arrays or flat values with an explicit shape. */
export function tensor(
  data: number | readonly unknown[] | ArrayLike<number>,
  shape?: readonly number[],
  o: CreateOptions = {},
): Tensor {
  let flat: ArrayLike<number>;
  let inferred: number[];
  if (typeof data === 'number') {
    flat = [data];
    inferred = [];
  } else if (data === null || typeof data !== 'object') {
    throw new TypeError(`tensor: data must be a number, nested arrays or a typed array, got ${describeValue(data)}`);
  } else if (ArrayBuffer.isView(data)) {
    flat = data as unknown as ArrayLike<number>;
    inferred = [flat.length];
  } else {
    inferred = nestedShape(data as readonly unknown[]);
    flat = (data as unknown[]).flat(Infinity) as number[];
    for (let i = 0; i < flat.length; i++) {
      if (typeof flat[i] !== 'number') throw new TypeError(`tensor: element ${i} is ${typeof flat[i]}, not a number`);
    }
  }
  const s = shape ?? inferred;
  validateShape(s, 'tensor');
  return finish(Tensor.fromArray(flat, s, o.dtype ?? 'float32', o.device), o);
}

/** The shape of nested arrays; throws when they are ragged (every sibling must have the same shape). */
function nestedShape(data: readonly unknown[]): number[] {
  const shape: number[] = [];
  for (let level: unknown = data; Array.isArray(level); level = level[0]) shape.push(level.length);
  const check = (node: unknown, depth: number, path: string): void => {
    if (depth === shape.length) {
      if (Array.isArray(node))
        throw new RangeError(`tensor: nested arrays are ragged (${path} is an array, expected a number)`);
      return;
    }
    if (!Array.isArray(node) || node.length !== shape[depth]) {
      throw new RangeError(`tensor: nested arrays are ragged (${path} should be an array of ${shape[depth]})`);
    }
    node.forEach((child, i) => check(child, depth + 1, `${path}[${i}]`));
  };
  check(data, 0, 'data');
  return shape;
}

export function full(shape: readonly number[], value: number, dtype: DType = 'float32', device?: string): Tensor {
  validateShape(shape, 'full');
  const t = Tensor.empty(shape, dtype, device);
  if (t.size > 0) t.engine.fill(t.dense(), t.size, value);
  return t;
}

export function zeros(shape: readonly number[], dtype: DType = 'float32', device?: string): Tensor {
  return full(shape, 0, dtype, device);
}

export function ones(shape: readonly number[], dtype: DType = 'float32', device?: string): Tensor {
  return full(shape, 1, dtype, device);
}

export function scalar(value: number, dtype: DType = 'float32', device?: string): Tensor {
  return full([], value, dtype, device);
}

/** [start, start + step, …) below `end`. */
export function arange(start: number, end: number, step = 1, dtype: DType = 'int32', device?: string): Tensor {
  for (const [name, v] of [
    ['start', start],
    ['end', end],
    ['step', step],
  ] as const) {
    if (typeof v !== 'number' || !Number.isFinite(v))
      throw new RangeError(`arange: ${name} must be a finite number, got ${describeValue(v)}`);
  }
  if (step === 0) throw new RangeError('arange: step must not be 0');
  const n = Math.max(0, Math.ceil((end - start) / step));
  checkedNumel([n], 'arange');
  Tensor.checkAllocation(n, dtype, device, 'arange');
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = start + i * step;
  return Tensor.fromArray(values, [n], dtype, device);
}

export function randn(
  shape: readonly number[],
  o: CreateOptions & { std?: number; mean?: number; generator?: Generator } = {},
): Tensor {
  Tensor.checkAllocation(checkedNumel(shape, 'randn'), o.dtype ?? 'float32', o.device, 'randn');
  const g = o.generator ?? defaultGenerator;
  const std = o.std ?? 1,
    mean = o.mean ?? 0;
  const values = new Float64Array(checkedNumel(shape, 'random'));
  for (let i = 0; i < values.length; i++) values[i] = mean + std * g.normal();
  return finish(Tensor.fromArray(values, shape, o.dtype ?? 'float32', o.device), o);
}

/** Uniform in [low, high). */
export function rand(
  shape: readonly number[],
  o: CreateOptions & { low?: number; high?: number; generator?: Generator } = {},
): Tensor {
  Tensor.checkAllocation(checkedNumel(shape, 'rand'), o.dtype ?? 'float32', o.device, 'rand');
  const g = o.generator ?? defaultGenerator;
  const low = o.low ?? 0,
    high = o.high ?? 1;
  const values = new Float64Array(checkedNumel(shape, 'random'));
  for (let i = 0; i < values.length; i++) values[i] = low + (high - low) * g.uniform();
  return finish(Tensor.fromArray(values, shape, o.dtype ?? 'float32', o.device), o);
}
