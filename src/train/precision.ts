/**
 * Mixed precision: the parameters (master weights) and optimizer state are always float32; the
 * forward/backward activations run in the compute dtype. "auto" picks bfloat16 on CUDA when the
 * model supports it there, float32 elsewhere. Casting each weight to the compute dtype happens
 * inside the model (ForwardOptions.computeDType): the cast's gradient brings the update back to
 * float32, so AdamW always steps float32 masters.
 */
import type { DType } from '../tensor/dtype.js';
import type { ModelFamily } from './model.js';

export interface Precision {
  /** Dtype of activations. */
  compute: DType;
  /** Dtype of parameters and optimizer state. */
  master: 'float32';
}

export function resolvePrecision(requested: string, device: string, family: ModelFamily<any>): Precision {
  const supports = (dtype: DType) => dtype === 'float32' || (family.supportsComputeDType?.(dtype, device) ?? false);
  if (requested === 'auto') {
    return { compute: device.startsWith('cuda') && supports('bfloat16') ? 'bfloat16' : 'float32', master: 'float32' };
  }
  if (requested !== 'float32' && requested !== 'bfloat16') throw new Error(`--dtype must be auto, float32 or bfloat16, got "${requested}"`);
  if (!supports(requested)) {
    throw new Error(`--dtype ${requested}: this model cannot compute in ${requested} on ${device}; use --dtype float32${device === 'cpu' ? ' (bfloat16 compute is meant for the CUDA engine)' : ''}`);
  }
  return { compute: requested, master: 'float32' };
}
