// The attention shapes the CUDA kernels were built for (validate() of native/cuda/attention/ and
// native/cuda/paged/), apart from the engine so that the planner applies the same rule without a GPU or the addon.
import type { FusedAttentionShape } from './engine.js';

/** Why the CUDA fused (or paged) attention kernels cannot take heads of this shape, or null when they can. */
export function cudaFusedAttentionUnsupported(shape: FusedAttentionShape): string | null {
  if (![32, 64, 128].includes(shape.headDim))
    return `head dim ${shape.headDim} (the CUDA kernels support 32, 64 and 128)`;
  if (shape.kernel === 'dense' && (shape.rotaryDim % 16 !== 0 || shape.rotaryDim > 128))
    return `rotary dim ${shape.rotaryDim} (the CUDA kernels rotate a multiple of 16 features, at most 128)`;
  if (shape.alibi && shape.heads > 256) return `ALiBi on ${shape.heads} heads (the CUDA kernels take at most 256)`;
  if (shape.window) return 'a sliding window (the CUDA paged kernel has none)';
  if (shape.softCap) return 'attention logit soft-capping (the CUDA paged kernel has none)';
  return null;
}
