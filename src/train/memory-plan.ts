/**
 * The memory a training run needs, planned before anything is allocated and compared with what
 * the device has, so an impossible run fails at once with the flag to change instead of dying of
 * heap exhaustion minutes later.
 *
 * Andromeda models (planAndromedaTrainingMemory) get the engine's own accounting (src/plan/training-memory.ts,
 * checked against the engines' measured peaks): every tensor the step allocates, in the allocator's rounded
 * block sizes, at the backward pass's widest moment. Other families (planTrainingMemory) get a floor from the
 * parameter count and the shape keys they share with Andromeda:
 *
 *   weights         float32 masters                                       4 B × parameters
 *   AdamW moments   m and v, float32                                      8 B × parameters
 *                   (--optimizer adamw8bit: 8-bit codes + a float32 absmax per 256: 2.03 B)
 *   gradients       in the compute dtype (mixed precision moves them      4 or 2 B × parameters
 *                   to the masters without widening)
 *   compute copy    mixed precision: the low-precision weights            2 B × parameters
 *   activations     kept for the backward pass, per token of a micro-batch:
 *                     each block: its input, q/k/v, attention output, the feed-forward's inner
 *                     activations and output (with activation checkpointing: the input only,
 *                     plus one block's worth while it is recomputed)
 *                     the head: logits and their gradient; above one block of rows the loss is
 *                     chunked (next-token-loss.ts), so one block's logits, overwritten by their gradient
 *
 * That floor leaves out the engines' temporaries, so it refuses only runs that cannot fit; it is not a promise
 * that a run which passes will.
 */
import { freemem, totalmem } from 'node:os';
import { getEngine } from '../engine/registry.js';
import type { MemoryStats } from '../engine/engine.js';
import { ConfigError, type TrainConfig } from './config.js';
import { DEFAULT_CROSS_ENTROPY_CHUNK_ROWS, lossIsChunked } from '../ops/chunked-cross-entropy.js';
import type { AndromedaConfig } from '../model/config.js';
import { planTrainingPeak, type TrainingFlags } from '../plan/training-memory.js';

export interface MemoryPart {
  label: string;
  bytes: number;
  /** The flags that make this part smaller. */
  flags: string;
}

export interface MemoryPlan {
  parts: MemoryPart[];
  bytes: number;
}

export interface MemoryPlanInput {
  /** Trainable parameters; unknown (null) for families that cannot count them without building. */
  parameterCount: number | null;
  /**
   * The model config; the Andromeda shape keys (dim, depth, heads, headDim, kvHeads, ffMult, ffActivation) are read
   * when present.
   */
  modelConfig: Record<string, unknown>;
  vocabSize: number;
  config: Pick<TrainConfig, 'batchSize' | 'seqLen' | 'activationCheckpointing'> &
    Partial<Pick<TrainConfig, 'optimizer'>>;
  /** Bytes per activation element: 4 (float32) or 2 (bfloat16). */
  computeBytes: number;
  /** Whether a low-precision compute copy of the weights is kept beside the float32 masters. */
  mixedPrecision: boolean;
}

const num = (value: unknown, fallback: number): number =>
  typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : fallback;

/** Activation elements kept per token by one block, and by the whole stack. */
function activationElementsPerToken(modelConfig: Record<string, unknown>, checkpointing: boolean): number {
  const dim = num(modelConfig.dim, 0);
  if (dim === 0) return 0;
  const depth = num(modelConfig.depth, 1);
  const heads = num(modelConfig.heads, 1);
  const headDim = num(modelConfig.headDim, dim / heads);
  const kvHeads = num(modelConfig.kvHeads, heads);
  const inner = Math.floor(dim * num(modelConfig.ffMult, 4));
  const gated = modelConfig.ffActivation === 'swiglu' || modelConfig.ffActivation === 'geglu';
  const attention = dim + heads * headDim * 2 + kvHeads * headDim * 2;
  const feedForward = dim + inner * (gated ? 3 : 2) + dim;
  const block = attention + feedForward;
  return checkpointing ? depth * dim + block : depth * block;
}

export function planTrainingMemory(input: MemoryPlanInput): MemoryPlan {
  const { config } = input;
  const tokens = config.batchSize * config.seqLen;
  const shapeFlags = '--batch-size, --seq-len (--grad-accum keeps the tokens per step)';
  const parts: MemoryPart[] = [];
  if (input.parameterCount !== null) {
    const p = input.parameterCount;
    parts.push({
      label: 'weights, gradients and AdamW moments',
      bytes: (4 + (config.optimizer === 'adamw8bit' ? 2 + 8 / 256 : 8) + input.computeBytes) * p,
      flags: '--preset, --model, --optimizer adamw8bit',
    });
    if (input.mixedPrecision)
      parts.push({
        label: 'low-precision compute copy of the weights',
        bytes: input.computeBytes * p,
        flags: '--preset, --model',
      });
  }
  const perToken = activationElementsPerToken(input.modelConfig, config.activationCheckpointing) * input.computeBytes;
  if (perToken > 0) {
    parts.push({
      label: `block activations (${config.activationCheckpointing ? 'checkpointed' : 'all kept'})`,
      bytes: perToken * tokens,
      flags: `${shapeFlags}${config.activationCheckpointing ? '' : ', --activation-checkpointing true'}`,
    });
  }
  const chunked = lossIsChunked(tokens);
  parts.push({
    label: chunked ? 'logits of one block of the chunked loss' : 'logits and their gradient',
    bytes:
      (chunked ? 1 : 2) * input.computeBytes * input.vocabSize * Math.min(tokens, DEFAULT_CROSS_ENTROPY_CHUNK_ROWS),
    flags: shapeFlags,
  });
  return { parts, bytes: parts.reduce((sum, part) => sum + part.bytes, 0) };
}

/** The trainer's flags for each kind of line (`andromeda train`). */
const TRAINER_FLAGS: TrainingFlags = {
  weights: '--preset, --model',
  masters: '--preset, --model',
  optimizer: '--optimizer adamw8bit',
  gradients: '--preset, --model',
  shape: '--batch-size, --seq-len (--grad-accum keeps the tokens per step)',
  checkpointing: '--activation-checkpointing true',
};

export interface AndromedaMemoryPlanInput {
  model: AndromedaConfig;
  config: Pick<TrainConfig, 'batchSize' | 'seqLen' | 'activationCheckpointing' | 'gradAccum'> &
    Partial<Pick<TrainConfig, 'optimizer'>>;
  compute: 'float32' | 'bfloat16';
  /** 'cpu', 'cuda' or 'cuda:N': whose allocator rounds the tensors. */
  device: string;
}

/** The peak of one training step of an Andromeda model on `device`, line by line, as its allocator counts it. */
export function planAndromedaTrainingMemory(input: AndromedaMemoryPlanInput): MemoryPlan {
  const peak = planTrainingPeak(
    input.model,
    {
      mode: 'training',
      batch: input.config.batchSize,
      seqLen: input.config.seqLen,
      precision: input.compute,
      optimizer: input.config.optimizer === 'adamw8bit' ? 'adamw8bit' : 'adamw',
      activationCheckpointing: input.config.activationCheckpointing,
      gradAccum: input.config.gradAccum,
      gpus: 1,
      zeroStage: 0,
    },
    input.device.startsWith('cuda') ? 'cuda' : 'cpu',
    TRAINER_FLAGS,
  );
  const parts = [...peak.steady, ...peak.step].map(({ label, bytes, flags }) => ({ label, bytes, flags }));
  return { parts, bytes: peak.peakBytes };
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value < 10 && unit > 0 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

export interface DeviceMemory {
  total: number;
  free: number;
  /** "this machine's RAM" or "cuda:0". */
  what: string;
}

/** The memory of `device`: system RAM for the CPU engine, the driver's figures for a GPU. */
export function deviceMemory(device: string): DeviceMemory {
  if (device === 'cpu') return { total: totalmem(), free: freemem(), what: "this machine's RAM" };
  const stats = getEngine(device).memoryStats() as MemoryStats & { deviceTotal?: number; deviceFree?: number };
  if (typeof stats.deviceTotal !== 'number' || typeof stats.deviceFree !== 'number')
    return { total: Infinity, free: Infinity, what: device };
  return { total: stats.deviceTotal, free: stats.deviceFree + stats.reserved, what: `${device}'s memory` };
}

/**
 * Throws a ConfigError naming the flags to change when the plan exceeds the device's total
 * memory; returns a warning line when it exceeds what is free now (other processes may be using
 * memory that will come back), null otherwise.
 */
export function checkTrainingMemory(plan: MemoryPlan, memory: DeviceMemory): string | null {
  const detail = plan.parts.map((p) => `${p.label} ${formatBytes(p.bytes)}`).join(', ');
  if (plan.bytes > memory.total) {
    const largest = plan.parts.reduce((a, b) => (b.bytes > a.bytes ? b : a));
    throw new ConfigError(
      `this run needs at least ${formatBytes(plan.bytes)} but ${memory.what} is ${formatBytes(memory.total)} ` +
        `(${detail}); the largest part is the ${largest.label}: lower ${largest.flags}`,
    );
  }
  if (plan.bytes > memory.free)
    return (
      `warning: this run needs at ` +
      `least ${formatBytes(plan.bytes)} and only ${formatBytes(memory.free)} of ${memory.what} is free now (${detail})`
    );
  return null;
}
