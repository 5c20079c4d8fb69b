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
 * 254 model TFLOP/s (its optimizer is 0.4 ms of it) = 0.26. Narrow models fill the tensor cores less: the factor
 * is interpolated in log(dim) between the two (512 → 0.26, 2,560 → 0.47).
 * GPU optimizer (clip + AdamW, bandwidth-bound): same file, andromeda-3b clip + AdamW 29.5 ms for 2.46 G
 * parameters × 34 B read and written = 84 GB → 2.84 TB/s = 0.85 of 3.35 TB/s.
 * GPU prefill: bench/results/gpu-prefill.md, andromeda-3b 8,192 tokens in 100.0 ms: 40.3 TFLOP of weights and
 * 13.2 of causal attention = 535 TFLOP/s = 0.54 of 989.
 * GPU decode: every step reads the weights and the KV cache at the bandwidth of the optimizer's streams (0.85),
 * plus the host's time per step (graph replay, the sampled ids read back, the scheduler): decodeStepSeconds.
 */
export const GPU_EFFICIENCY = {
  trainingNarrow: { dim: 512, fraction: 0.26 },
  trainingWide: { dim: 2560, fraction: 0.47 },
  optimizerBandwidth: 0.85,
  prefill: 0.54,
  decodeBandwidth: 0.85,
  decodeStepSeconds: 0.5e-3,
};

/**
 * CPU (this machine: AMD EPYC Zen 4, 2 threads, bench/results/cpu-kernels.md): the packed GEMM runs the model's
 * shapes at 0.79–0.94 of the 236 GFLOP/s peak (0.85 taken), and a training step of `small` spends 62% of its time
 * in GEMMs (bench/results/cpu-model.md, profiled step), so a step runs at 0.85 × 0.62 = 0.53 of peak. AdamW moves
 * its 7 streams at 166% of the DRAM copy figure (cpu-kernels.md). Decoding is host-bound: `small` decodes at
 * 258–309 tokens/s (bench/results/cpu-decode-vs-llamacpp.md, idle machine), 3.2–3.9 ms a step of which reading
 * its 11.6 MB of weights is 0.3 ms: about 0.8 ms of engine time per layer per step.
 */
export const CPU_EFFICIENCY = {
  training: 0.53,
  optimizerBandwidth: 1.66,
  prefill: 0.53,
  decodeBandwidth: 1,
  decodeStepSecondsPerLayer: 0.8e-3,
};

export interface Throughput {
  /** Tokens per second of the phase that defines the workload (training steps, or decoding). */
  tokensPerSecond: number;
  /** Inference: prompt tokens per second while prefilling. */
  prefillTokensPerSecond?: number;
  /** What bounds it: "compute" or "memory bandwidth". */
  bound: 'compute' | 'memory bandwidth' | 'host';
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
    // Data-parallel GPUs each run their micro-batches (the gradients' all-reduce is not counted).
    tokensPerSecond: (tokens / seconds) * w.gpus,
    bound: computeSeconds >= optimizerSeconds ? 'compute' : 'memory bandwidth',
    flopsPerToken: flops / tokens,
    bytesPerToken: optimizerBytes / (tokens * w.gradAccum),
    basis:
      device.engine === 'cpu'
        ? `${(trainingFraction(c, device) * 100).toFixed(0)}% of the CPU's float32 peak (bench/results/cpu-model.md, ` +
          'cpu-kernels.md)'
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
  const hostSeconds = cpu ? CPU_EFFICIENCY.decodeStepSecondsPerLayer * c.depth : GPU_EFFICIENCY.decodeStepSeconds;
  const stepSeconds = Math.max(memorySeconds, computeSeconds) + hostSeconds;
  return {
    tokensPerSecond: w.batch / stepSeconds,
    prefillTokensPerSecond: (w.batch * w.promptTokens) / prefillSeconds,
    bound:
      hostSeconds > Math.max(memorySeconds, computeSeconds)
        ? 'host'
        : memorySeconds >= computeSeconds
          ? 'memory bandwidth'
          : 'compute',
    flopsPerToken: stepFlops / w.batch,
    bytesPerToken: stepBytes / w.batch,
    basis: cpu
      ? "decode steps at the measured CPU bandwidth plus the engine's measured per-step time " +
        '(bench/results/cpu-kernels.md, cpu-decode-vs-llamacpp.md)'
      : `decode at ${GPU_EFFICIENCY.decodeBandwidth * 100}% of the GPU's bandwidth, prefill at ` +
        `${GPU_EFFICIENCY.prefill * 100}% of its bf16 peak (bench/results/gpu-prefill.md)`,
  };
}
