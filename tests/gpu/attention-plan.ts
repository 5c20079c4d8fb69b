// The path the CUDA attention must take for a test case (the rule of plan_transform and split_ready in
// native/cuda/attention/attention.cu, with the kernel choice of native/cuda/attention/heuristics.h), so that the GPU
// tests can check which one ran. Pure: unit-tested on the CPU (tests/engine/cuda-attention-plan.test.ts).
import type {
  CudaAttentionKernel,
  CudaAttentionPlan,
  CudaAttentionTransform,
} from '../../src/engine/cuda-attention.js';
import type { AttentionCase } from './attention-cases.js';

/** What the plan depends on besides the case and the transform option: the GPU and the kernels a call names. */
export interface PlanEnvironment {
  hopper: boolean; // compute capability 9.x and an sm_90a build
  forwardKernel?: CudaAttentionKernel; // the call's forwardKernel option (absent: 'auto')
  backwardKernel?: CudaAttentionKernel; // the call's backwardKernel option
}

/** Custom positions the engine gets (a case's inputs pass them for 'custom', 'reset', 'far' and documents). */
function customPositions(c: AttentionCase): boolean {
  return (c.positions !== undefined || c.documents !== undefined) && !c.indexPositions;
}

/** Whether the forward that runs can build K'_h (or needs nothing: no rotary, the key scale moves onto q'). */
export function forwardSplitReady(c: AttentionCase, env: PlanEnvironment): boolean {
  if (!(c.rotary ?? 0)) return true;
  if ((env.forwardKernel ?? 'auto') === 'mma') return false;
  return env.hopper && (c.D === 64 || c.D === 128) && !customPositions(c) && c.NK > 0;
}

/** Whether the backward that runs can build K'_h: the Hopper backward (at least 64 queries, 128 keys). */
export function backwardSplitReady(c: AttentionCase, env: PlanEnvironment): boolean {
  if ((env.backwardKernel ?? 'auto') === 'mma') return false;
  return env.hopper && (c.D === 64 || c.D === 128) && !customPositions(c) && c.NQ >= 64 && c.NK >= 128;
}

/**
 * Queries per chunk of the chunked forward: ζ exponent ≤ 60 across a chunk, whole 128-query tiles (xpos_chunk_queries).
 */
export function chunkQueries(base: number): number {
  const c = Math.floor((60 * base) / Math.log2(3.5));
  return c >= 128 ? c - (c % 128) : Math.max(c, 0);
}

/**
 * The path for case c under a forced transform mode ('kernel' or 'prepass'; auto adds a 2 GiB scratch limit that
 * test cases never reach). `range`: the custom positions' smallest and largest values, or null.
 */
export function expectedPlan(
  c: AttentionCase,
  mode: CudaAttentionTransform,
  env: PlanEnvironment,
  range: { min: number; max: number } | null,
): CudaAttentionPlan {
  if (!(c.rotary ?? 0) && !c.keyScale) return 'none';
  if (mode === 'kernel') return 'kernel';
  let forward: 'prepass' | 'chunked' | 'kernel' = 'prepass',
    backward: 'prepass' | 'kernel' = 'prepass';
  if (c.xpos) {
    const offset = c.offset ?? (c.causal ? c.NK - c.NQ : 0);
    const lo = range ? range.min : Math.min(offset, 0),
      hi = range ? range.max : Math.max(offset + c.NQ - 1, c.NK - 1);
    const anchor = lo + Math.floor((hi - lo) / 2);
    if ((Math.log2(3.5) / c.xpos) * Math.max(anchor - lo, hi - anchor) > 60) {
      backward = 'kernel';
      const chunk = chunkQueries(c.xpos);
      forward = !range && c.xpos > 0 && chunk > 0 && (c.causal || c.NK - 1 - offset < chunk) ? 'chunked' : 'kernel';
    }
  }
  const split = !!c.keyScale && c.KVH < c.H;
  if (split) {
    if (!forwardSplitReady(c, env)) forward = 'kernel';
    if (!backwardSplitReady(c, env)) backward = 'kernel';
  }
  if (forward === 'chunked') return split ? 'chunked-split' : 'chunked';
  if (forward === 'prepass' && backward === 'prepass') return split ? 'split' : 'prepass';
  if (forward === 'prepass') return split ? 'split-forward' : 'prepass-forward';
  if (backward === 'prepass') return split ? 'split-backward' : 'prepass-backward';
  return 'kernel';
}
