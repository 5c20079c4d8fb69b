// Creating parameter tensors and filling them with the standard initialisations.
import { Tensor } from '../tensor/tensor.js';
import type { DType } from '../tensor/dtype.js';
import { numel } from '../tensor/shape.js';
import { defaultGenerator, type Generator } from '../tensor/random.js';
import { full } from '../ops/creation.js';

export interface ParameterOptions {
  dtype?: DType;
  device?: string;
}

/** A constant-filled tensor for a parameter (modules fill real values with the functions below). */
export function constantTensor(shape: readonly number[], value: number, o: ParameterOptions = {}): Tensor {
  return full(shape, value, o.dtype ?? 'float32', o.device);
}

/** Overwrites `t` with host values (computed in float64, converted to t's dtype). */
export function assignValues(t: Tensor, values: Float64Array): void {
  if (values.length !== t.size) throw new RangeError(`assignValues: ${values.length} values for ${t.name ?? 'a tensor'} of ${t.size} elements`);
  const fresh = Tensor.fromArray(values, t.shape, t.dtype, t.device);
  if (t.size > 0) t.backend.copy(fresh.strided(), t.strided(), t.shape);
  fresh.dispose();
}

export function fillNormal(t: Tensor, std: number, generator: Generator = defaultGenerator): void {
  const values = new Float64Array(numel(t.shape));
  for (let i = 0; i < values.length; i++) values[i] = std * generator.normal();
  assignValues(t, values);
}

export function fillUniform(t: Tensor, bound: number, generator: Generator = defaultGenerator): void {
  const values = new Float64Array(numel(t.shape));
  for (let i = 0; i < values.length; i++) values[i] = (2 * generator.uniform() - 1) * bound;
  assignValues(t, values);
}

export function fillConstant(t: Tensor, value: number): void {
  if (t.size > 0) t.backend.fill(t.dense(), t.size, value);
}

/** Fan-in and fan-out of a [out, in] weight. */
export function fans(t: Tensor): { fanIn: number; fanOut: number } {
  if (t.rank < 2) return { fanIn: t.size, fanOut: t.size };
  return { fanIn: t.shape[1]!, fanOut: t.shape[0]! };
}

/** Xavier (Glorot) normal: std = gain · sqrt(2 / (fanIn + fanOut)). */
export function xavierNormal(t: Tensor, gain = 1, generator?: Generator): void {
  const { fanIn, fanOut } = fans(t);
  fillNormal(t, gain * Math.sqrt(2 / (fanIn + fanOut)), generator);
}

/** Kaiming normal in fan-in mode for ReLU gain: std = sqrt(2 / fanIn), fan-in being the second axis. */
export function kaimingNormal(t: Tensor, generator?: Generator): void {
  fillNormal(t, Math.sqrt(2 / fans(t).fanIn), generator);
}
