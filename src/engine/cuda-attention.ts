// The CUDA engine's fused attention (native/cuda/attention): argument checks and the configuration
// object its binding reads (native/cuda/attention/binding_attention.cc). Kernels take bfloat16 q/k/v
// (float32 is narrowed to bf16 on the device), float32 lse, and a float32 key scale.
import type { AttentionArgs, Dense } from './engine.js';
import { handleOrNone, offsetOrNone } from './native-engine.js';
import type { CudaKernels } from './native-abi.js';
import { nativeAttentionConfig, type NativeAttentionConfig } from './attention-config.js';

/** Which forward kernel: the tiled tensor-core kernel, the split-KV decode kernel, or the engine's choice. */
export type CudaAttentionPath = 'auto' | 'tiled' | 'decode';
const PATH_CODE: Record<CudaAttentionPath, number> = { auto: 0, tiled: 1, decode: 2 };

/** The config the CUDA binding reads (it ignores lseDtype/keyScaleDtype: both are float32 there). */
export type CudaAttentionConfig = NativeAttentionConfig;

/** The addon's attention functions (native/abi/kernels.mjs). */
export type CudaAttentionAddon = Pick<CudaKernels, 'attentionForward' | 'attentionBackward' | 'attentionTransformPlan'>;

function config(q: Dense, operands: readonly [string, Dense][], lse: Dense, a: AttentionArgs): CudaAttentionConfig {
  const fail = (m: string): never => { throw new Error(`attention (cuda): ${m}`); };
  if (q.dtype !== 'bfloat16' && q.dtype !== 'float32') fail(`q is ${q.dtype}; the CUDA kernels take bfloat16 (or float32, computed in bf16)`);
  if (lse.dtype !== 'float32') fail(`lse must be float32, got ${lse.dtype}`);
  if (a.keyScale && a.keyScale.dtype !== 'float32') fail(`keyScale must be float32, got ${a.keyScale.dtype}`);
  return nativeAttentionConfig('attention (cuda)', q, operands, lse, a);
}

export function cudaAttentionForward(addon: CudaAttentionAddon, q: Dense, k: Dense, v: Dense, out: Dense, lse: Dense,
  args: AttentionArgs, path: CudaAttentionPath = 'auto'): void {
  const c = config(q, [['k', k], ['v', v], ['out', out]], lse, args);
  addon.attentionForward(c, q.handle, q.offset, k.handle, k.offset, v.handle, v.offset, out.handle, out.offset, lse.handle, lse.offset, PATH_CODE[path]);
}

/** Overwrites gradQ, gradK, gradV (summed over the heads sharing a KV head) and gradKeyScale. */
export function cudaAttentionBackward(addon: CudaAttentionAddon, q: Dense, k: Dense, v: Dense, out: Dense, lse: Dense,
  gradOut: Dense, gradQ: Dense, gradK: Dense, gradV: Dense, gradKeyScale: Dense | null, args: AttentionArgs): void {
  const c = config(q, [['k', k], ['v', v], ['out', out], ['gradOut', gradOut], ['gradQ', gradQ], ['gradK', gradK], ['gradV', gradV]], lse, args);
  if (args.keyScale && !gradKeyScale) throw new Error('attention (cuda): a key scale needs gradKeyScale');
  if (gradKeyScale && gradKeyScale.dtype !== 'float32') throw new Error(`attention (cuda): gradKeyScale must be float32, got ${gradKeyScale.dtype}`);
  const gradScale = args.keyScale ? gradKeyScale : null;
  addon.attentionBackward(c, q.handle, q.offset, k.handle, k.offset, v.handle, v.offset, out.handle, out.offset, lse.handle, lse.offset,
    gradOut.handle, gradOut.offset, gradQ.handle, gradQ.offset, gradK.handle, gradK.offset, gradV.handle, gradV.offset,
    handleOrNone(gradScale), offsetOrNone(gradScale));
}
