/**
 * A plan: the memory a workload needs on a device, line by line, whether it fits, the largest batch and the
 * largest context that fit, and the tokens per second the roofline expects.
 */
import type { AndromedaConfig } from '../model/config.js';
import { countParameters } from '../model/parameter-shapes.js';
import type { MemoryLine } from './breakdown.js';
import type { DeviceSpec } from './devices.js';
import { planInferencePeak } from './inference-memory.js';
import { planTrainingPeak } from './training-memory.js';
import { inferenceThroughput, trainingThroughput, type Throughput } from './throughput.js';
import type { Workload } from './workload.js';
import { denseCacheExact, pagedAttentionShape, pagedAttentionUnsupported } from '../model/attention.js';
import { cudaFusedAttentionUnsupported } from '../engine/cuda-shapes.js';

/**
 * Memory a CUDA process holds outside the engine's allocator: the context (module images of the engine's
 * kernels, cuBLASLt's handles, the driver's own state), about 0.5 GiB on an H100 with CUDA 12.
 */
export const CUDA_CONTEXT_BYTES = 0.5 * 2 ** 30;

export interface RunPlan {
  model: { name: string; parameters: number; config: AndromedaConfig };
  device: DeviceSpec;
  workload: Workload;
  /** Every line the allocator counts, in the order held between steps then added during the step. */
  lines: MemoryLine[];
  /** The allocator's predicted peak (what the engine's `peakAllocated` reports). */
  peakBytes: number;
  /** Outside the allocator: the CUDA context (0 on the CPU). */
  contextBytes: number;
  /** peak + context, against the device's memory. */
  totalBytes: number;
  fits: boolean;
  /** Training: which moment of the backward pass is the peak. */
  peakMoment?: string;
  /** The largest batch (same lengths) that fits, 0 if none. */
  maxBatch: number;
  /** The largest sequence (training) or prompt (inference, same output length) that fits at this batch. */
  maxContext: number;
  /** Null for a device known only by its memory (--memory): no speed figures to run a roofline on. */
  throughput: Throughput | null;
  /** What the plan cannot promise for this input (a context past the model's, a mode the engine lacks). */
  warnings: string[];
}

/**
 * What keeps a model off the paged KV cache on this engine, or null: the engines' own rules (dynamic NTK and
 * LongRoPE everywhere; on CUDA what its paged kernel lacks; the CPU's paged kernel takes every shape).
 */
function unpagedReason(config: AndromedaConfig, engine: DeviceSpec['engine']): string | null {
  const unsupported = pagedAttentionUnsupported(config);
  if (unsupported || engine !== 'cuda') return unsupported;
  return cudaFusedAttentionUnsupported(pagedAttentionShape(config));
}

function warningsFor(config: AndromedaConfig, workload: Workload, engine: DeviceSpec['engine']): string[] {
  const warnings: string[] = [];
  const length = workload.mode === 'training' ? workload.seqLen : workload.promptTokens + workload.outputTokens;
  if (length > config.maxSeqLen)
    warnings.push(
      `${length.toLocaleString('en')} positions exceed the model's maxSeqLen ` +
        `(${config.maxSeqLen.toLocaleString('en')}); ` +
        'memory is planned as asked, but quality past the trained length depends on the position scheme',
    );
  if (workload.mode === 'inference') {
    const unsupported = unpagedReason(config, engine);
    if (unsupported && !denseCacheExact(config))
      warnings.push(
        `the inference engine runs a model with ${unsupported} by recomputing each step (no KV cache): the KV ` +
          'cache line is what the paged engine would hold, not what recomputation holds',
      );
    else if (unsupported)
      warnings.push(
        `the inference engine runs a model with ${unsupported} over a KV cache per sequence (not the paged pool), ` +
          'whose buffers grow by doubling: up to twice the KV cache line while they grow',
      );
  }
  if (workload.mode === 'training' && workload.gpus > 1)
    warnings.push(
      `the trainer runs on one device; ${workload.gpus} GPUs with ZeRO-${workload.zeroStage} is the memory of that ` +
        'division (DeepSpeed / FSDP layout), not a mode this project trains in',
    );
  return warnings;
}

function memoryOf(config: AndromedaConfig, workload: Workload, device: DeviceSpec) {
  if (workload.mode === 'training') {
    const t = planTrainingPeak(config, workload, device.engine);
    return { lines: [...t.steady, ...t.step], peakBytes: t.peakBytes, peakMoment: t.peakMoment };
  }
  const i = planInferencePeak(config, workload, device.engine, device.sms);
  return { lines: i.lines, peakBytes: i.peakBytes, peakMoment: undefined };
}

/** The largest integer x in [min, limit] with fits(x), by doubling then bisection (fits is monotone); 0 if none. */
function largest(fits: (x: number) => boolean, min: number, limit: number): number {
  if (!fits(min)) return 0;
  let lo = min;
  let hi = 2 * min;
  while (hi <= limit && fits(hi)) {
    lo = hi;
    hi *= 2;
  }
  hi = Math.min(hi, limit + 1);
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}

export function planRun(
  model: { name: string; config: AndromedaConfig },
  workload: Workload,
  device: DeviceSpec,
): RunPlan {
  const contextBytes = device.engine === 'cuda' ? CUDA_CONTEXT_BYTES : 0;
  const fitsWith = (w: Workload): boolean =>
    memoryOf(model.config, w, device).peakBytes + contextBytes <= device.memoryBytes;
  const memory = memoryOf(model.config, workload, device);
  const maxBatch = largest((batch) => fitsWith({ ...workload, batch }), 1, 1 << 20);
  const maxContext =
    workload.mode === 'training'
      ? largest((seqLen) => fitsWith({ ...workload, seqLen }), 2, 1 << 24)
      : largest((promptTokens) => fitsWith({ ...workload, promptTokens }), 1, 1 << 24);
  const throughput =
    device.flops === 0 || device.bandwidth === 0
      ? null
      : workload.mode === 'training'
        ? trainingThroughput(model.config, workload, device)
        : inferenceThroughput(model.config, workload, device);
  const totalBytes = memory.peakBytes + contextBytes;
  return {
    model: { ...model, parameters: countParameters(model.config) },
    device,
    workload,
    lines: memory.lines,
    peakBytes: memory.peakBytes,
    contextBytes,
    totalBytes,
    fits: totalBytes <= device.memoryBytes,
    peakMoment: memory.peakMoment,
    maxBatch,
    maxContext,
    throughput,
    warnings: warningsFor(model.config, workload, device.engine),
  };
}
