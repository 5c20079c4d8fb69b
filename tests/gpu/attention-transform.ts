// Choosing where the CUDA attention applies rotary / xPos / the key scale (in the kernels' tiles, or once
// per call by a pre-pass: native/cuda/attention/NOTES.md), for the tests and the benchmark that compare
// both paths in one process. The addon's switch starts from ANDROMEDA_ATTENTION_TRANSFORM.
import type { AttentionArgs, Dense } from '../../src/engine/engine.js';
import type { CudaEngine } from '../../src/engine/cuda.js';
import { nativeAttentionConfig } from '../../src/engine/attention-config.js';
import { requireAddon } from '../../src/engine/native-engine.js';
import { gpu } from './harness.js';

import type { AttentionTransform, AttentionTransformPlan } from './attention-plan.js';

export type { AttentionTransform, AttentionTransformPlan } from './attention-plan.js';

interface TransformAddon {
  attentionTransform(mode?: AttentionTransform): AttentionTransform;
  attentionTransformPlan(config: object): AttentionTransformPlan;
}

function addonOf(_engine: CudaEngine): TransformAddon {
  // The engine keeps its addon private and this switch is not part of the Engine contract: load the same
  // (cached) addon module the engine uses.
  const addon = requireAddon<Partial<TransformAddon>>('andromeda_cuda.node').load();
  if (typeof addon?.attentionTransform !== 'function' || typeof addon.attentionTransformPlan !== 'function') {
    throw new Error('the CUDA addon has no attentionTransform switch: rebuild it (node scripts/build-cuda.mjs)');
  }
  return addon as TransformAddon;
}

/** Sets the mode for later attention calls; returns the previous one. */
export function setAttentionTransform(engine: CudaEngine, mode: AttentionTransform): AttentionTransform {
  return addonOf(engine).attentionTransform(mode);
}

/** Runs fn under `mode`, then restores the mode that was in effect. */
export function withAttentionTransform<T>(mode: AttentionTransform, fn: () => T, engine = gpu() as CudaEngine): T {
  const before = setAttentionTransform(engine, mode);
  try {
    return fn();
  } finally {
    setAttentionTransform(engine, before);
  }
}

/** The mode in effect. */
export function attentionTransform(engine: CudaEngine): AttentionTransform {
  return addonOf(engine).attentionTransform();
}

/** Where the tiled forward and the backward would apply the transform for these arguments under the current mode. */
export function attentionTransformPlan(engine: CudaEngine, q: Dense, lse: Dense, args: AttentionArgs): AttentionTransformPlan {
  return addonOf(engine).attentionTransformPlan(nativeAttentionConfig('attention (cuda)', q, [], lse, args));
}
