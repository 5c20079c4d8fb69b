// The path the CUDA attention must take for a test case (the rule of plan_transform and split_ready in
// native/cuda/attention/attention.cu, with the Hopper kernels' choices of forward_hopper.cu and
// backward_hopper.cu), so that the GPU tests can check which one ran. Pure: unit-tested on the CPU
// (tests/engine/attention-plan.test.ts).
import type { AttentionCase } from './attention-reference.js';

export type AttentionTransform = 'auto' | 'kernel' | 'prepass';
/**
 * 'prepass': q', k' once per call for the forward and the backward; 'chunked': the forward on the pre-pass in
 * query chunks (xPos past one anchor's range), the backward in the kernels; 'split' (a key scale with fewer KV
 * heads than heads): A = z R k and B = z J R(−p) k per KV head, K'_h = c_h A + d_h B built in the Hopper kernels'
 * shared memory, never a k' per query head; '-forward' / '-backward': only that pass on the pre-pass, the other in
 * the kernels.
 */
export type AttentionTransformPlan =
  | 'none' | 'kernel' | 'prepass' | 'chunked' | 'split' | 'chunked-split'
  | 'split-forward' | 'split-backward' | 'prepass-forward' | 'prepass-backward';

/** What the plan depends on besides the case: the GPU and the kernel choices of the environment. */
export interface PlanEnvironment {
  hopper: boolean;           // compute capability 9.x and an sm_90a build
  forwardChoice?: string;    // ANDROMEDA_ATTENTION_FORWARD ('' or undefined = auto)
  backwardChoice?: string;   // ANDROMEDA_ATTENTION_BACKWARD
}

/** Custom positions of a case (its inputs pass them for 'custom', 'reset' and 'far'). */
function customPositions(c: AttentionCase): boolean {
  return c.positions !== undefined;
}

/** Whether the forward that runs can build K'_h (or needs nothing: no rotary, the key scale moves onto q'). */
export function forwardSplitReady(c: AttentionCase, env: PlanEnvironment): boolean {
  if (!(c.rotary ?? 0)) return true;
  const choice = env.forwardChoice || 'auto';
  if (!['auto', 'hopper', 'hopper-tma', 'hopper-tma-serial', 'hopper-tma-pingpong'].includes(choice)) return false;
  return env.hopper && (c.D === 64 || c.D === 128) && !customPositions(c) && !c.segments && c.NK > 0;
}

/** Whether the backward that runs can build K'_h: the Hopper cp.async backward (at least 64 queries, 128 keys). */
export function backwardSplitReady(c: AttentionCase, env: PlanEnvironment): boolean {
  const choice = env.backwardChoice || 'auto';
  if (!['auto', 'hopper', 'hopper-cpasync'].includes(choice)) return false;
  return env.hopper && (c.D === 64 || c.D === 128) && !customPositions(c) && !c.segments && c.NQ >= 64 && c.NK >= 128;
}

/** Queries per chunk of the chunked forward: ζ exponent ≤ 60 across a chunk, whole 128-query tiles (xpos_chunk_queries). */
export function chunkQueries(base: number): number {
  const c = Math.floor((60 * base) / Math.log2(3.5));
  return c >= 128 ? c - (c % 128) : Math.max(c, 0);
}

/**
 * The path for case c under a forced transform mode ('kernel' or 'prepass'; auto adds a 2 GiB scratch limit that
 * test cases never reach). `range`: the custom positions' smallest and largest values, or null.
 */
export function expectedPlan(c: AttentionCase, mode: AttentionTransform, env: PlanEnvironment,
  range: { min: number; max: number } | null): AttentionTransformPlan {
  if (!(c.rotary ?? 0) && !c.keyScale) return 'none';
  if (mode === 'kernel') return 'kernel';
  let forward: 'prepass' | 'chunked' | 'kernel' = 'prepass', backward: 'prepass' | 'kernel' = 'prepass';
  if (c.xpos) {
    const offset = c.offset ?? (c.causal ? c.NK - c.NQ : 0);
    const lo = range ? range.min : Math.min(offset, 0), hi = range ? range.max : Math.max(offset + c.NQ - 1, c.NK - 1);
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
