// The CUDA engine's fused attention (native/cuda/attention): argument checks and the configuration
// object its binding reads (native/cuda/attention/binding_attention.cc). Kernels take bfloat16 q/k/v
// (float32 is narrowed to bf16 on the device), float32 lse, and a float32 key scale.
import { DTYPE_BYTES, DTYPE_CODE } from '../tensor/dtype.js';
import type { AttentionArgs, Dense } from './backend.js';

/** Which forward kernel: the tiled tensor-core kernel, the split-KV decode kernel, or the engine's choice. */
export type CudaAttentionPath = 'auto' | 'tiled' | 'decode';
const PATH_CODE: Record<CudaAttentionPath, number> = { auto: 0, tiled: 1, decode: 2 };

export interface CudaAttentionConfig {
  dtype: number;
  batch: number;
  heads: number;
  kvHeads: number;
  queryLen: number;
  keyLen: number;
  headDim: number;
  scale: number;
  causal: boolean;
  queryOffset: number;
  alibiSlopes: Float32Array | null;
  rotaryDim: number;
  rotaryInvFreq: Float32Array | null;
  xposScaleBase: number;
  keyScale: number | null;
  queryPositions: number | null;
  keyPositions: number | null;
  querySegments: number | null;
  keySegments: number | null;
}

/** The addon's attention functions (buffers as device addresses). */
export interface CudaAttentionAddon {
  attentionForward(q: number, k: number, v: number, out: number, lse: number, config: CudaAttentionConfig, path: number): void;
  attentionBackward(q: number, k: number, v: number, out: number, lse: number, gradOut: number,
    gradQ: number, gradK: number, gradV: number, gradKeyScale: number | null, config: CudaAttentionConfig): void;
}

const address = (d: Dense): number => d.handle + d.offset * DTYPE_BYTES[d.dtype];
const addressOrNull = (d: Dense | null): number | null => (d ? address(d) : null);

function config(q: Dense, others: readonly [string, Dense][], lse: Dense, a: AttentionArgs): CudaAttentionConfig {
  const fail = (m: string): never => { throw new Error(`attention (cuda): ${m}`); };
  if (q.dtype !== 'bfloat16' && q.dtype !== 'float32') fail(`q is ${q.dtype}; the CUDA kernels take bfloat16 (or float32, computed in bf16)`);
  for (const [name, d] of others) if (d.dtype !== q.dtype) fail(`${name} is ${d.dtype} but q is ${q.dtype}`);
  if (lse.dtype !== 'float32') fail(`lse must be float32, got ${lse.dtype}`);
  if (a.keyScale && a.keyScale.dtype !== 'float32') fail(`keyScale must be float32, got ${a.keyScale.dtype}`);
  for (const [name, d] of [['queryPositions', a.queryPositions], ['keyPositions', a.keyPositions],
    ['querySegments', a.querySegments], ['keySegments', a.keySegments]] as const) {
    if (d && d.dtype !== 'int32') fail(`${name} must be int32, got ${d.dtype}`);
  }
  if (a.alibiSlopes && a.alibiSlopes.length < a.heads) fail(`alibiSlopes has ${a.alibiSlopes.length} entries for ${a.heads} heads`);
  if (a.rotaryDim > 0 && (!a.rotaryInvFreq || a.rotaryInvFreq.length < a.rotaryDim / 2)) {
    fail(`rotaryDim ${a.rotaryDim} needs ${a.rotaryDim / 2} inverse frequencies`);
  }
  return {
    dtype: DTYPE_CODE[q.dtype],
    batch: a.batch, heads: a.heads, kvHeads: a.kvHeads, queryLen: a.queryLen, keyLen: a.keyLen, headDim: a.headDim,
    scale: a.scale, causal: a.causal, queryOffset: a.queryOffset,
    alibiSlopes: a.alibiSlopes, rotaryDim: a.rotaryDim, rotaryInvFreq: a.rotaryInvFreq, xposScaleBase: a.xposScaleBase,
    keyScale: addressOrNull(a.keyScale),
    queryPositions: addressOrNull(a.queryPositions), keyPositions: addressOrNull(a.keyPositions),
    querySegments: addressOrNull(a.querySegments), keySegments: addressOrNull(a.keySegments),
  };
}

export function cudaAttentionForward(addon: CudaAttentionAddon, q: Dense, k: Dense, v: Dense, out: Dense, lse: Dense,
  args: AttentionArgs, path: CudaAttentionPath = 'auto'): void {
  const c = config(q, [['k', k], ['v', v], ['out', out]], lse, args);
  addon.attentionForward(address(q), address(k), address(v), address(out), address(lse), c, PATH_CODE[path]);
}

/** Overwrites gradQ, gradK, gradV (summed over the heads sharing a KV head) and gradKeyScale. */
export function cudaAttentionBackward(addon: CudaAttentionAddon, q: Dense, k: Dense, v: Dense, out: Dense, lse: Dense,
  gradOut: Dense, gradQ: Dense, gradK: Dense, gradV: Dense, gradKeyScale: Dense | null, args: AttentionArgs): void {
  const c = config(q, [['k', k], ['v', v], ['out', out], ['gradOut', gradOut], ['gradQ', gradQ], ['gradK', gradK], ['gradV', gradV]], lse, args);
  if (args.keyScale && !gradKeyScale) throw new Error('attention (cuda): a key scale needs gradKeyScale');
  if (gradKeyScale && gradKeyScale.dtype !== 'float32') throw new Error(`attention (cuda): gradKeyScale must be float32, got ${gradKeyScale.dtype}`);
  addon.attentionBackward(address(q), address(k), address(v), address(out), address(lse), address(gradOut),
    address(gradQ), address(gradK), address(gradV), args.keyScale ? addressOrNull(gradKeyScale) : null, c);
}
