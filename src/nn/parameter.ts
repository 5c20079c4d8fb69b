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
  if (values.length !== t.size)
    throw new RangeError(`assignValues: ${values.length} values for ${t.name ?? 'a tensor'} of ${t.size} elements`);
  const fresh = Tensor.fromArray(values, t.shape, t.dtype, t.device);
  if (t.size > 0) t.engine.copy(fresh.strided(), t.strided(), t.shape);
  fresh.dispose();
}

/**
 * Random fills run on the tensor's engine (a counter-based generator: a 2.5B-parameter model is
 * initialised on the GPU in well under a second, with no host pass or upload). The generator supplies
 * one 53-bit stream seed per tensor, so a seed still fixes every value, on either engine.
 */
function engineFill(t: Tensor, distribution: 'normal' | 'uniform', a: number, b: number, generator: Generator): void {
  const seed = generator.nextUint32() * 2 ** 21 + (generator.nextUint32() >>> 11);
  if (t.size === 0) return;
  if (t.isContiguous() && t.dtype !== 'int32') {
    t.engine.randomFill(t.dense(), t.size, distribution, a, b, seed);
    return;
  }
  const scratch = Tensor.empty(t.shape, t.dtype === 'int32' ? 'float64' : t.dtype, t.device);
  scratch.engine.randomFill(scratch.dense(), scratch.size, distribution, a, b, seed);
  t.engine.copy(scratch.strided(), t.strided(), t.shape);
  scratch.dispose();
}

export function fillNormal(t: Tensor, std: number, generator: Generator = defaultGenerator): void {
  engineFill(t, 'normal', 0, std, generator);
}

export function fillUniform(t: Tensor, bound: number, generator: Generator = defaultGenerator): void {
  engineFill(t, 'uniform', -bound, bound, generator);
}

export function fillConstant(t: Tensor, value: number): void {
  if (t.size > 0) t.engine.fill(t.dense(), t.size, value);
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
