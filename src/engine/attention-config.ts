// The fused-attention arguments as both native addons read them (native/cpu/binding.cc and
// native/abi/generated/kernel_bindings.inc): sizes, flags, host arrays, and buffers as (handle, element offset).
import { DTYPE_CODE } from '../tensor/dtype.js';
import type { AttentionArgs, Dense } from './engine.js';
import { handleOrNone, offsetOrNone } from './native-engine.js';
import type { CpuAttentionConfig, CudaAttentionConfig } from './native-abi.js';

/** The config both addons read: the CPU's fields and the CUDA's (each binding reads only its own); the CPU
 *  engine adds its scratch budgets. */
export type NativeAttentionConfig = Omit<CpuAttentionConfig, 'keyCacheBytes' | 'dqAccumulatorBytes'> &
  CudaAttentionConfig;

/**
 * Checks what every engine needs (operands share q's dtype, index tensors are int32, enough slopes and
 * inverse frequencies) and builds the config; `label` prefixes the errors ("attention (cuda)").
 * Engine-specific dtype rules stay with each engine.
 */
export function nativeAttentionConfig(
  label: string,
  q: Dense,
  operands: readonly [string, Dense][],
  lse: Dense,
  a: AttentionArgs,
): NativeAttentionConfig {
  const fail = (m: string): never => {
    throw new Error(`${label}: ${m}`);
  };
  for (const [name, d] of operands) if (d.dtype !== q.dtype) fail(`${name} is ${d.dtype} but q is ${q.dtype}`);
  for (const [name, d] of [
    ['queryPositions', a.queryPositions],
    ['keyPositions', a.keyPositions],
    ['querySegments', a.querySegments],
    ['keySegments', a.keySegments],
  ] as const) {
    if (d && d.dtype !== 'int32') fail(`${name} must be int32, got ${d.dtype}`);
  }
  if (a.alibiSlopes && a.alibiSlopes.length < a.heads)
    fail(`alibiSlopes has ${a.alibiSlopes.length} entries for ${a.heads} heads`);
  if (a.rotaryDim > 0 && (!a.rotaryInvFreq || a.rotaryInvFreq.length < a.rotaryDim / 2)) {
    fail(`rotaryDim ${a.rotaryDim} needs ${a.rotaryDim / 2} inverse frequencies`);
  }
  return {
    dtype: DTYPE_CODE[q.dtype],
    lseDtype: DTYPE_CODE[lse.dtype],
    keyScaleDtype: a.keyScale ? DTYPE_CODE[a.keyScale.dtype] : DTYPE_CODE.float32,
    batch: a.batch,
    heads: a.heads,
    kvHeads: a.kvHeads,
    queryLen: a.queryLen,
    keyLen: a.keyLen,
    headDim: a.headDim,
    scale: a.scale,
    causal: a.causal,
    queryOffset: a.queryOffset,
    alibiSlopes: a.alibiSlopes,
    rotaryDim: a.rotaryDim,
    rotaryInvFreq: a.rotaryInvFreq,
    xposScaleBase: a.xposScaleBase,
    keyScale: handleOrNone(a.keyScale),
    keyScaleOffset: offsetOrNone(a.keyScale),
    queryPositions: handleOrNone(a.queryPositions),
    queryPositionsOffset: offsetOrNone(a.queryPositions),
    keyPositions: handleOrNone(a.keyPositions),
    keyPositionsOffset: offsetOrNone(a.keyPositions),
    querySegments: handleOrNone(a.querySegments),
    querySegmentsOffset: offsetOrNone(a.querySegments),
    keySegments: handleOrNone(a.keySegments),
    keySegmentsOffset: offsetOrNone(a.keySegments),
    positionMin: a.positionRange ? a.positionRange.min : null,
    positionMax: a.positionRange ? a.positionRange.max : null,
  };
}
