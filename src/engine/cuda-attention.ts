// The CUDA engine's fused attention (native/cuda/attention): argument checks, the configuration object its binding
// reads (native/cuda/attention/binding_attention.cc) and the options that name kernels explicitly. Kernels take
// bfloat16 q/k/v (float32 is narrowed to bf16 on the device), float32 lse, and a float32 key scale.
import type { AttentionArgs, Dense } from './engine.js';
import { handleOrNone, offsetOrNone } from './native-engine.js';
import type { CudaKernels } from './native-abi.js';
import { nativeAttentionConfig, type NativeAttentionConfig } from './attention-config.js';

/** Which forward kernel: the tiled tensor-core kernel, the split-KV decode kernel, or the engine's choice. */
export type CudaAttentionPath = 'auto' | 'tiled' | 'decode';
/** Which kernel family of the tiled forward or of the backward: the engine's choice, mma.sync, or Hopper wgmma. */
export type CudaAttentionKernel = 'auto' | 'mma' | 'hopper';
/**
 * Where rotary, xPos and the key scale are applied (native/cuda/attention/NOTES.md): 'kernel' per tile in the kernels,
 * 'prepass' once per call into copies of q and k wherever float range allows, 'auto' the pre-pass unless its scratch
 * would exceed 2 GiB.
 */
export type CudaAttentionTransform = 'auto' | 'kernel' | 'prepass';

/**
 * The kernels one attention call runs on. Left out (or 'auto'), the engine picks by the problem's shapes, features
 * and the device (native/cuda/attention/heuristics.h): that is the shipped choice. Tests and benchmarks name kernels
 * to compare them on one problem; a named kernel that cannot run the problem is an error saying why.
 */
export interface CudaAttentionOptions {
  readonly path?: CudaAttentionPath;
  readonly forwardKernel?: CudaAttentionKernel;
  readonly backwardKernel?: CudaAttentionKernel;
  readonly transform?: CudaAttentionTransform;
}

/**
 * Where a call applies the transform ('none': no rotary or key scale). 'prepass': q', k' once per call for the
 * forward and the backward; 'chunked': the forward on the pre-pass in query chunks (xPos past one anchor's range),
 * the backward in the kernels; 'split' (a key scale with fewer KV heads than heads): A and B per KV head, K'_h built
 * in the Hopper kernels' shared memory, never a k' per query head; '-forward' / '-backward': only that pass on the
 * pre-pass, the other in the kernels.
 */
export type CudaAttentionPlan =
  | 'none'
  | 'kernel'
  | 'prepass'
  | 'chunked'
  | 'split'
  | 'chunked-split'
  | 'split-forward'
  | 'split-backward'
  | 'prepass-forward'
  | 'prepass-backward';

/** The config the CUDA binding reads (it ignores lseDtype/keyScaleDtype: both are float32 there). */
export type CudaAttentionConfig = NativeAttentionConfig;

/** The addon's attention functions (native/abi/kernels.mjs). */
export type CudaAttentionAddon = Pick<CudaKernels, 'attentionForward' | 'attentionBackward' | 'attentionTransformPlan'>;

const OPTION_VALUES: { readonly [K in keyof CudaAttentionOptions]-?: readonly string[] } = {
  path: ['auto', 'tiled', 'decode'],
  forwardKernel: ['auto', 'mma', 'hopper'],
  backwardKernel: ['auto', 'mma', 'hopper'],
  transform: ['auto', 'kernel', 'prepass'],
};

/** Checks every option's value (and that no unknown option is given), before anything reaches the device. */
export function checkAttentionOptions(options: CudaAttentionOptions): CudaAttentionOptions {
  for (const [name, value] of Object.entries(options)) {
    const allowed = (OPTION_VALUES as Record<string, readonly string[] | undefined>)[name];
    if (!allowed)
      throw new Error(`attention (cuda): unknown option '${name}' (options: ${Object.keys(OPTION_VALUES).join(', ')})`);
    if (value !== undefined && !allowed.includes(value as string)) {
      throw new Error(
        `attention (cuda): ${name} '${String(value)}' (expected ${allowed.map((v) => `'${v}'`).join(', ')})`,
      );
    }
  }
  return options;
}

function config(q: Dense, operands: readonly [string, Dense][], lse: Dense, a: AttentionArgs): CudaAttentionConfig {
  const fail = (m: string): never => {
    throw new Error(`attention (cuda): ${m}`);
  };
  if (q.dtype !== 'bfloat16' && q.dtype !== 'float32')
    fail(`q is ${q.dtype}; the CUDA kernels take bfloat16 (or float32, computed in bf16)`);
  if (lse.dtype !== 'float32') fail(`lse must be float32, got ${lse.dtype}`);
  if (a.keyScale && a.keyScale.dtype !== 'float32') fail(`keyScale must be float32, got ${a.keyScale.dtype}`);
  return nativeAttentionConfig('attention (cuda)', q, operands, lse, a);
}

export function cudaAttentionForward(
  addon: CudaAttentionAddon,
  q: Dense,
  k: Dense,
  v: Dense,
  out: Dense,
  lse: Dense,
  args: AttentionArgs,
  options: CudaAttentionOptions = {},
): void {
  const c = config(
    q,
    [
      ['k', k],
      ['v', v],
      ['out', out],
    ],
    lse,
    args,
  );
  addon.attentionForward(
    c,
    q.handle,
    q.offset,
    k.handle,
    k.offset,
    v.handle,
    v.offset,
    out.handle,
    out.offset,
    lse.handle,
    lse.offset,
    checkAttentionOptions(options),
  );
}

/** Overwrites gradQ, gradK, gradV (summed over the heads sharing a KV head) and gradKeyScale. */
export function cudaAttentionBackward(
  addon: CudaAttentionAddon,
  q: Dense,
  k: Dense,
  v: Dense,
  out: Dense,
  lse: Dense,
  gradOut: Dense,
  gradQ: Dense,
  gradK: Dense,
  gradV: Dense,
  gradKeyScale: Dense | null,
  args: AttentionArgs,
  options: CudaAttentionOptions = {},
): void {
  const c = config(
    q,
    [
      ['k', k],
      ['v', v],
      ['out', out],
      ['gradOut', gradOut],
      ['gradQ', gradQ],
      ['gradK', gradK],
      ['gradV', gradV],
    ],
    lse,
    args,
  );
  if (args.keyScale && !gradKeyScale) throw new Error('attention (cuda): a key scale needs gradKeyScale');
  if (gradKeyScale && gradKeyScale.dtype !== 'float32')
    throw new Error(`attention (cuda): gradKeyScale must be float32, got ${gradKeyScale.dtype}`);
  const gradScale = args.keyScale ? gradKeyScale : null;
  addon.attentionBackward(
    c,
    q.handle,
    q.offset,
    k.handle,
    k.offset,
    v.handle,
    v.offset,
    out.handle,
    out.offset,
    lse.handle,
    lse.offset,
    gradOut.handle,
    gradOut.offset,
    gradQ.handle,
    gradQ.offset,
    gradK.handle,
    gradK.offset,
    gradV.handle,
    gradV.offset,
    handleOrNone(gradScale),
    offsetOrNone(gradScale),
    checkAttentionOptions(options),
  );
}

/** Where the tiled forward and the backward would apply the transform for these arguments and options. */
export function cudaAttentionPlan(
  addon: CudaAttentionAddon,
  q: Dense,
  lse: Dense,
  args: AttentionArgs,
  options: CudaAttentionOptions = {},
): CudaAttentionPlan {
  return addon.attentionTransformPlan(config(q, [], lse, args), checkAttentionOptions(options)) as CudaAttentionPlan;
}
