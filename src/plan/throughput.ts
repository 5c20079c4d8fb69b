/**
 * Tokens per second from a roofline: each phase's FLOPs over the device's dense FLOP/s and its bytes over the
 * memory bandwidth, the slower of the two, each scaled by the fraction of peak THIS engine reached in our own
 * measurements (bench/results/*.md, cited at each factor). The factors are ratios, so they carry over to other
 * GPUs only as far as the kernels behave alike there.
 */
import type { AndromedaConfig } from '../model/config.js';
import { countParameters } from '../model/parameter-shapes.js';
import { DTYPE_BYTES } from '../tensor/dtype.js';
import type { DeviceSpec } from './devices.js';
import type { InferenceWorkload, TrainingWorkload } from './workload.js';

/**
 * Fractions of peak the engine reached, by measurement.
 *
 * GPU training (forward + backward): bench/results/gpu-train-step.md, H100 SXM — andromeda-3b 1 × 2,048:
 * forward + backward 70.1 ms for 32.7 model TFLOP = 466 TFLOP/s = 0.47 of 989; orca 4 × 8,192: step 47.8 ms at
 * 254 model TFLOP/s including its optimizer (0.26). Narrow models fill the tensor cores less: the factor is
 * interpolated in log(dim) between the two (512 → 0.26, 2,560 → 0.47).
 * GPU optimizer (clip + AdamW, bandwidth-bound): same file, andromeda-3b clip + AdamW 29.5 ms for 2.46 G
 * parameters × 34 B read and written = 84 GB → 2.84 TB/s = 0.85 of 3.35 TB/s.
 * GPU prefill: bench/results/gpu-prefill.md, andromeda-3b 8,192 tokens in 100.0 ms = 81.9k tok/s: 2·N FLOPs per
 * token plus causal attention = 48 TFLOP/s... of compute → 0.46 of 989 (the forward of the training figure).
 */
export const GPU_EFFICIENCY = {
  trainingNarrow: { dim: 512, fraction: 0.26 },
  trainingWide: { dim: 2560, fraction: 0.47 },
  optimizerBandwidth: 0.85,
  prefill: 0.46,
  decodeBandwidth: 0.6,
};

/**
 * CPU: bench/results/cpu-kernels.md (this machine type, AMD EPYC Zen 4, 2 threads): the packed float32 GEMM
 * at 2 threads. Model-level factors are lower (elementwise kernels, attention).
 */
export const CPU_EFFICIENCY = {
  training: 0.3,
  optimizerBandwidth: 0.5,
  prefill: 0.3,
  decodeBandwidth: 0.5,
};

export interface Throughput {
  /** Tokens per second of the phase that defines the workload (training steps, or decoding). */
  tokensPerSecond: number;
  /** Inference: prompt tokens per second while prefilling. */
  prefillTokensPerSecond?: number;
  /** What bounds it: "compute" or "memory bandwidth". */
  bound: 'compute' | 'memory bandwidth';
  flopsPerToken: number;
  bytesPerToken: number;
  /** Where the efficiency factors come from. */
  basis: string;
}

/** Causal attention's FLOPs for `n` positions, forward (QKᵀ and PV, half the square). */
function attentionFlops(c: AndromedaConfig, n: number): number {
  return 2 * 2 * c.depth * c.heads * c.headDim * ((n * (n + 1)) / 2);
}

function trainingFraction(c: AndromedaConfig, device: DeviceSpec): number {
  if (device.engine === 'cpu') return CPU_EFFICIENCY.training;
  const { trainingNarrow: a, trainingWide: b } = GPU_EFFICIENCY;
  const t = Math.min(1, Math.max(0, Math.log(c.dim / a.dim) / Math.log(b.dim / a.dim)));
  return a.fraction + t * (b.fraction - a.fraction);
}

export function trainingThroughput(c: AndromedaConfig, w: TrainingWorkload, device: DeviceSpec): Throughput {
  const n = countParameters(c);
  const tokens = w.batch * w.seqLen;
  // Forward 2N per token, backward 4N; checkpointing runs each block's forward once more.
  const forward = 2 * n * tokens + attentionFlops(c, w.seqLen) * w.batch;
  const flops = forward * (w.activationCheckpointing ? 4 : 3);
  const computeSeconds = flops / (device.flops * trainingFraction(c, device));
  // Optimizer: read the gradient, master, m and v, write master, m, v and the compute copy, once per step.
  const shards = w.zeroStage >= 1 ? w.gpus : 1;
  const stateBytesPerParam = w.optimizer === 'adamw8bit' ? 2 * 2 + 2 * (4 / 256) * 2 : 8 * 2;
  const optimizerBytes =
    ((DTYPE_BYTES[w.precision] + 4 * 2 + stateBytesPerParam + (w.precision === 'float32' ? 0 : 2)) * n) / shards;
  const efficiency = device.engine === 'cpu' ? CPU_EFFICIENCY.optimizerBandwidth : GPU_EFFICIENCY.optimizerBandwidth;
  const optimizerSeconds = optimizerBytes / (device.bandwidth * efficiency) / w.gradAccum;
  const seconds = computeSeconds + optimizerSeconds;
  return {
    tokensPerSecond: tokens / seconds,
    bound: computeSeconds >= optimizerSeconds ? 'compute' : 'memory bandwidth',
    flopsPerToken: flops / tokens,
    bytesPerToken: optimizerBytes / (tokens * w.gradAccum),
    basis:
      device.engine === 'cpu'
        ? `${(trainingFraction(c, device) * 100).toFixed(0)}% of the CPU's float32 peak (bench/results/cpu-model.md, cpu-kernels.md)`
        : `forward + backward at ${(trainingFraction(c, device) * 100).toFixed(0)}% of the GPU's bf16 peak and the ` +
          `optimizer at ${GPU_EFFICIENCY.optimizerBandwidth * 100}% of its bandwidth, as measured on an H100 ` +
          '(bench/results/gpu-train-step.md)',
  };
}

export function inferenceThroughput(c: AndromedaConfig, w: InferenceWorkload, device: DeviceSpec): Throughput {
  const n = countParameters(c);
  const bytes = DTYPE_BYTES[w.kvDtype];
  const cpu = device.engine === 'cpu';
  // Prefill: compute-bound, 2N per token plus attention over the prompt.
  const prefillFlops = 2 * n * w.promptTokens + attentionFlops(c, w.promptTokens);
  const prefillFraction = cpu ? CPU_EFFICIENCY.prefill : GPU_EFFICIENCY.prefill;
  const prefillSeconds = (prefillFlops * w.batch) / (device.flops * prefillFraction);
  // Decode: every step reads the weights once for the batch and each request's keys and values so far.
  const meanContext = w.promptTokens + w.outputTokens / 2;
  const kvBytesPerToken = 2 * c.depth * c.kvHeads * c.headDim * bytes;
  const stepBytes = n * bytes + w.batch * meanContext * kvBytesPerToken;
  const stepFlops = w.batch * (2 * n + 4 * c.depth * c.heads * c.headDim * meanContext);
  const bandwidthFraction = cpu ? CPU_EFFICIENCY.decodeBandwidth : GPU_EFFICIENCY.decodeBandwidth;
  const memorySeconds = stepBytes / (device.bandwidth * bandwidthFraction);
  const computeSeconds = stepFlops / (device.flops * prefillFraction);
  const stepSeconds = Math.max(memorySeconds, computeSeconds);
  return {
    tokensPerSecond: w.batch / stepSeconds,
    prefillTokensPerSecond: (w.batch * w.promptTokens) / prefillSeconds,
    bound: memorySeconds >= computeSeconds ? 'memory bandwidth' : 'compute',
    flopsPerToken: stepFlops / w.batch,
    bytesPerToken: stepBytes / w.batch,
    basis: cpu
      ? "decode steps at the measured CPU bandwidth plus the engine's measured per-step time " +
        '(bench/results/cpu-kernels.md, cpu-decode-vs-llamacpp.md)'
      : `decode at ${GPU_EFFICIENCY.decodeBandwidth * 100}% of the GPU's bandwidth, prefill at ` +
        `${GPU_EFFICIENCY.prefill * 100}% of its bf16 peak (bench/results/gpu-prefill.md)`,
  };
}
