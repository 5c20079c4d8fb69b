/**
 * Tokens per second from a roofline: each phase's FLOPs over the device's dense FLOP/s and its bytes over the
 * memory bandwidth, the slower of the two, each scaled by the fraction of peak THIS engine reached in our own
 * measurements (bench/results/*.md, cited at each factor). The factors are ratios, so they carry over to other
 * GPUs only as far as the kernels behave alike there.
 */
import { feedForwardInnerDim, type AndromedaConfig } from '../model/config.js';
import { countParameters } from '../model/parameter-shapes.js';
import { DTYPE_BYTES } from '../tensor/dtype.js';
import { lossIsChunked } from '../ops/chunked-cross-entropy.js';
import { QUANT_BLOCK } from '../optim/adamw8bit-map.js';
import type { DeviceSpec } from './devices.js';
import type { InferenceWorkload, TrainingWorkload } from './workload.js';

/**
 * Fractions of peak the engine reached, by measurement (H100 SXM: 989 TFLOP/s bf16 dense, 3.35 TB/s).
 *
 * Training, forward + backward (bench/results/gpu-train-step.md): andromeda-3b 1 × 2,048, 70.1 ms (stop 10) and
 * 71.1 ms (stop 13) for 32.7 model TFLOP = 0.47 of peak; orca 4 × 8,192, 47.8 ms at 254 model TFLOP/s = 0.26
 * (stop 10; its optimizer is 0.4 ms of it). Narrow models fill the tensor cores less: the factor is interpolated in
 * log(dim) between the two (512 → 0.24, 2,560 → 0.47). The narrow end is 0.24, not orca 4 × 8,192's 0.26: at the
 * planner checks' shorter rows (8 × 2,048 and 4 × 4,096) orca ran at 0.90–0.93 of what 0.26 predicts in all three
 * runs (stop 16; stop 18 calls 1 and 3: bench/results/plan.md).
 * Optimizer (bandwidth-bound; same file): AdamW with bf16 shadows moves 28 B per parameter (reads the bf16
 * gradient, the float32 master, m and v; writes master, m, v and the bf16 copy): andromeda-3b's clip + AdamW took
 * 29.5 ms (stop 10) and 32.0 ms (stop 13) for 68.9 GB = 0.70 and 0.64 of the bandwidth (0.67 taken). 8-bit AdamW
 * moves 16 B (one-byte codes instead of float32 moments): its clip + step took 28.3 ms (stop 16, once the nearest-
 * code search started from an index of the moment's float bits instead of a binary search) = 0.42.
 * Decode through the InferenceEngine, CUDA graphs (stop 18: bench/results/gpu-decode.md and plan.md; logs in
 * bench/results/logs/stop18/call-1-fusions-splits-plan): a step streams the weights through the matrix products
 * at a fraction of the bandwidth that depends on the rows (requests) — the few-row streaming kernel at 0.67 for
 * one row and 0.35 for eight (bench/cuda/gemv-splits.cu: eight rows of A are re-read from L1 against every load
 * of a weight), cuBLASLt at 0.51 beyond eight (the stop 16 profile of 64 requests) — then per layer a fixed part
 * (the small kernels and launches of a layer) and the paged attention, which is latency-bound: each CTA walks its
 * split's 32-key sub-tiles one at a time, so its time is the waves of CTAs (native/cuda/paged/heuristics.h picks
 * the splits; attentionWavesAndTiles mirrors it) times the sub-tiles per split, at a cost per sub-tile that scales
 * with the rows of a KV head (query heads per KV head × head dim, 3,072 for andromeda-3b); plus a part per running
 * request (sampling, the scheduler's bookkeeping). Fitted over seven cases, each the mean of stop 18's calls 1
 * and 3 (andromeda-3b after 2,048 and 32,768 tokens, 8 × 4,096 and 64 × 192; orca 1 × 2,112 and 16 × 576): 36.3 µs
 * a layer, 11.2 µs a sub-tile, 14.9 µs a request, each case within 13% (bench/results/plan.md). Since stop 21 a
 * bf16 decode step's attention runs the decode kernel (native/cuda/paged/decode_kernel.cuh) where it fits
 * (decodeKernelRuns): one wave of CTAs per sequence × KV head whose 8 warps walk 16-key slices side by side, so its
 * time is the waves × (a setup, merge and combine + the slices a warp walks × a slice).
 * Stop 23 (fewer small kernels a layer: the q/k/v rows and the token shifts fused; bench/results/plan.md): the
 * decode kernel's terms a straight-line fit to its timings at its rule's shapes in stop 23's split sweep (13.6, 26.2,
 * 48.0 and 58.0 µs at 1, 2, 6 and 8 slices a warp: 10.7 µs and 6.05 µs); then, the weights read product by product
 * — each product at least a floor (a launch and its ramp: orca's products are far below a bandwidth-bound time), the
 * vocabulary head once, the gathered embedding not at all — a per-layer and a per-layer-and-request term fitted over
 * the seven decode runs of stop 23's call 2 (bench/results/logs/stop23/call-2-shift: andromeda-3b after 2,048 and
 * 32,768 tokens, 8 × 4,096 and 64 × 256; orca 1 × 2,176 and 16 × 640): floor 4.5 µs, 13.5 µs a layer, 0.77 µs a layer
 * and request, every case within 9.4%. (Stop 18's form — all weights at the fraction, 36.3 µs a layer, 14.9 µs a
 * request — put orca off by 22–31% on the same runs: its per-request term stood in for orca's latency-bound
 * products.)
 * Stop 24 (decode steps launched before the previous step's tokens are read, so the host's time between steps no
 * longer adds to a step; bench/results/plan.md): the decode kernel's slices counted as a split's average over its
 * warps (at 2,048 keys half of them walk one), then the per-layer, per-layer-and-request and both decode-kernel terms
 * fitted together (bench/plan-fit-gpu-decode.ts) over the seven decode runs of stop 24's call 2
 * (bench/results/logs/stop24/call-2-combine: the planner check's four inference rows, the decode bench's three):
 * 10.5 µs a layer, 0.98 µs a layer and request, a wave's setup 0.5 µs (one wave a layer in every run, so the
 * setup goes into the layer's term) and 12.6 µs a slice — a slice of the full step, against 5.8 µs in the attention
 * bench's repeated calls — every run within 5.5%.
 * Prefill through the engine (same file): 32,768 prompt tokens in 1,085 ms = 372 TFLOP (weights and causal
 * attention) at 0.35 of peak.
 */
export const GPU_EFFICIENCY = {
  trainingNarrow: { dim: 512, fraction: 0.24 },
  trainingWide: { dim: 2560, fraction: 0.47 },
  optimizerBandwidth: 0.67,
  optimizer8bitBandwidth: 0.42,
  prefill: 0.35,
  /** The decode weight read's fraction of the bandwidth: one row, eight rows (interpolated between), more. */
  weightReadBandwidth: { oneRow: 0.67, eightRows: 0.35, moreRows: 0.51 },
  /** A decode step's matrix product takes at least this long, however few its weights (a launch and its ramp). */
  decodeProductFloorSeconds: 4.5e-6,
  decodeSecondsPerLayer: 10.5e-6,
  /**
   * The general paged kernel (float32 pools, groups over 32, too little shared memory): per sub-tile of 32 keys a CTA
   * walks, for 3,072 rows per KV head (query heads per KV head × head dim).
   */
  decodeSecondsPerSubTile: 11.2e-6,
  /** The decode kernel (bf16): a wave's setup, merge and combine, and each 16-key slice its warps walk. */
  decodeKernel: { setupSeconds: 0.5e-6, secondsPerSlice: 12.6e-6 },
  /** Each running request's share of a layer's small kernels (its rows, its attention's metadata). */
  decodeSecondsPerLayerRequest: 0.98e-6,
};

/**
 * The weights a decode step's matrix products stream (elements): a layer's query/key/value, output, and
 * feed-forward products (a gated unit's up product twice as wide), and the vocabulary head once. The embedding
 * table is gathered, not streamed.
 */
export function decodeProductWeights(c: AndromedaConfig): { layer: number[]; head: number } {
  const ff = feedForwardInnerDim(c);
  const gated = c.ffActivation === 'swiglu' || c.ffActivation === 'geglu';
  return {
    layer: [
      c.dim * (c.heads + 2 * c.kvHeads) * c.headDim,
      c.heads * c.headDim * c.dim,
      c.dim * ff * (gated ? 2 : 1),
      ff * c.dim,
    ],
    head: c.vocabSize * c.dim,
  };
}

/** Seconds of a decode step's matrix products on CUDA: each at least the floor, else its weights at `bandwidth`. */
function gpuDecodeProductSeconds(c: AndromedaConfig, bytes: number, bandwidth: number): number {
  const floor = GPU_EFFICIENCY.decodeProductFloorSeconds;
  const product = (elements: number) => Math.max(floor, (elements * bytes) / bandwidth);
  const { layer, head } = decodeProductWeights(c);
  return c.depth * layer.reduce((sum, e) => sum + product(e), 0) + product(head);
}

/** The weight read's fraction of the bandwidth when a decode step's products have `rows` rows. */
export function decodeWeightReadFraction(rows: number): number {
  const f = GPU_EFFICIENCY.weightReadBandwidth;
  if (rows <= 1) return f.oneRow;
  if (rows <= 8) return f.oneRow + ((f.eightRows - f.oneRow) * (rows - 1)) / 7;
  return f.moreRows;
}

/**
 * The waves of CTAs and the 32-key sub-tiles per split of one paged-attention launch over `units` (sequences ×
 * KV heads, one row block each: decode) and `keys` keys: native/cuda/paged/heuristics.h's wave-cost rule
 * (kDefaultPagedLaunchPolicy: 32 keys a split at least, 2 CTAs resident per multiprocessor, setup 2.5 sub-tiles).
 */
export function attentionWavesAndTiles(units: number, keys: number, sms: number): { waves: number; tiles: number } {
  const resident = 2 * sms,
    setup = 2.5;
  // A split takes at least 32 keys, one sub-tile: there are at most as many splits as sub-tiles.
  const subtiles = Math.ceil(Math.max(keys, 1) / 32);
  const most = subtiles;
  let best = { waves: 0, tiles: 0, cost: Infinity };
  for (let w = 0; w <= 8; w++) {
    const splits = Math.min(w === 0 ? 1 : Math.max(1, Math.floor((w * resident) / units)), most);
    const tiles = Math.ceil(subtiles / splits);
    const used = Math.ceil(subtiles / tiles);
    const waves = Math.ceil((units * used) / resident);
    const cost = waves * (setup + tiles);
    if (cost < best.cost) best = { waves, tiles, cost };
  }
  return { waves: best.waves, tiles: best.tiles };
}

/** The decode kernel's slices and warps (native/cuda/paged/decode_kernel.cuh: kSliceKeys, kDecodeWarps). */
const DECODE_SLICE_KEYS = 16;
const DECODE_WARPS = 8;

/**
 * Whether the CUDA engine runs a decode step's paged attention on its decode kernel (native/cuda/paged/attention.cu,
 * decode_kernel_takes): bfloat16 pools, a KV head's group at most 32 heads, and the kernel's shared memory
 * (decode_layout in decode_kernel.cuh) within what a block may opt in to on the device.
 */
export function decodeKernelRuns(c: AndromedaConfig, kvDtype: string, device: DeviceSpec): boolean {
  if (device.engine !== 'cuda' || kvDtype !== 'bfloat16' || c.heads / c.kvHeads > 32) return false;
  const d = c.headDim,
    rotary = c.rotary?.dim ?? 0;
  const tileRot = Math.ceil(rotary / 16) * 16;
  const tileB = c.qkNormDimScale && rotary > 0 ? tileRot : 0;
  const bytes =
    2 * DECODE_WARPS * 2 * DECODE_SLICE_KEYS * d * 2 + // the warps' raw K/V stages
    2 * 32 * (d + tileB + 8) + // Q̃
    (tileRot > 0 ? 2 * DECODE_WARPS * DECODE_SLICE_KEYS * (tileRot + tileB + 8) : 0) + // the warps' K̃ tiles
    8 * DECODE_SLICE_KEYS * (rotary / 2) + // the offsets' rotations
    8 * DECODE_WARPS * 32; // the warps' statistics
  return bytes <= (device.blockSharedMemory ?? 0);
}

/**
 * The decode kernel's grid for `units` (sequences × KV heads) over `keys` keys: native/cuda/paged/heuristics.h's
 * decode_launch_shape — one CTA per multiprocessor, as many splits as fill one wave, no more than leave half the
 * warps a 16-key slice, chunks of whole slices, fewer splits where the float32 partial rows of `rows` query rows ×
 * `heads` would pass 256 MiB — and what the planner times by: waves of CTAs and the 16-key slices a warp walks on
 * average (a split's slices over its eight warps: at 2,048 keys four of them walk one and four none).
 */
export function decodeKernelGrid(
  units: number,
  keys: number,
  sms: number,
  rows: number,
  heads: number,
  headDim: number,
): { splits: number; chunk: number; averageSlicesPerWarp: number; waves: number } {
  const total = Math.max(keys, 1);
  const slices = Math.ceil(total / DECODE_SLICE_KEYS);
  const most = Math.ceil(slices / (DECODE_WARPS / 2));
  let splits = Math.min(Math.max(Math.floor(sms / Math.max(units, 1)), 1), most);
  const bytesPerSplit = rows * heads * (headDim + 2) * 4;
  splits = Math.max(1, Math.min(splits, Math.floor((256 * 2 ** 20) / bytesPerSplit)));
  const chunk = Math.ceil(slices / splits) * DECODE_SLICE_KEYS;
  splits = Math.ceil(total / chunk);
  return {
    splits,
    chunk,
    averageSlicesPerWarp: chunk / DECODE_SLICE_KEYS / DECODE_WARPS,
    waves: Math.ceil((units * splits) / sms),
  };
}

/**
 * CPU (this machine: AMD EPYC Zen 4, bench/results/cpu-kernels.md). Training's forward and backward run at a
 * fraction of the float32 peak of the threads they have, measured in steady state (stop 19: the trainer's step
 * speeds up over its first ~5 steps) by `bench/cpu-plan-calibrate.ts --part training` on two threads, wall time,
 * idle machine (bench/results/logs/plan/cpu-calibrate-training-stop19.jsonl): `small`-shaped models of widths 192
 * and 384 (not `small`'s 256), 8 × 256 tokens, AdamW with and without activation checkpointing, the planner's FLOPs
 * over each step less its optimizer time — 0.59, 0.63, 0.65 and 0.74 of the peak, 0.651 taken (each case within 14%
 * of it). It was 0.53 from a profile (the packed GEMM at 0.85 of the peak × 62% of a step in GEMMs,
 * bench/results/cpu-model.md), which the faster VM and steady-state steps outran. Prefill keeps 0.53 (not measured
 * again).
 *
 * The rest is in CPU seconds of one engine thread, measured by bench/cpu-plan-calibrate.ts: a CPU second is what
 * another process on the same cores does not stretch, where wall time is.
 * Optimizer (bench/results/plan.md, "Calibration"; bench/results/logs/plan/cpu-calibrate-idle-0730.jsonl): clipping
 * plus one step costs a fixed CPU time per parameter, spread over the threads (elementwise kernels). AdamW streams
 * its state: 0.79 ns a parameter with 42M parameters (state beyond the caches; 0.76 ns for `small`'s 2.9M). 8-bit
 * AdamW is bound by arithmetic instead — each moment is decoded through its dynamic map and encoded again by a
 * search of it, table look-ups that the AVX-512 form gathers — at 7.4–7.9 ns a parameter for both sizes
 * (bench/results/logs/plan/cpu-calibrate-optimizer-8bit-avx512.jsonl, the 42M figure taken), 9 times AdamW; 35 ns
 * with ANDROMEDA_CPU_ISA below avx512.
 * Decode through the InferenceEngine: each step's CPU time is host work plus kernels streaming the weights. The
 * host work — the scheduler and block tables, the step's uploads and read-back, sampling, and the JavaScript and
 * native-call cost of every op — runs on the JavaScript thread: a fixed part per step, a part per layer (its
 * ops), per request, and per layer and request (each sequence's attention). The GEMMs read the weights once per
 * step at one thread's effective rate (they pack the weights for each call), and each request's row beyond the
 * first adds arithmetic in proportion to the weights; both split over the threads. Fitted at stop 19, after the
 * decode step's fused products (query/key/value in one engine call, bias + GELU in the feed-forward's product), by
 * bench/cpu-plan-calibrate.ts on one thread, idle, each case the median of 5 runs after 2 warm-up runs: two runs of
 * its 18 cases (widths 64 to 512, 2 to 16 layers, 1 to 16 requests; bench/results/logs/plan/
 * cpu-calibrate-decode-stop19.jsonl at 17:51 and cpu-calibrate-decode-stop19-rows.jsonl at 18:01, whose own fits
 * differ by 10–40% a term: this VM's speed moves between runs) fitted together (cpu-calibrate-decode-stop19-
 * refit.jsonl), the terms kept non-negative (the free fit puts a negative cost on each request, so that term is
 * fixed at 0): 119 µs a step, 77 µs a layer, 6.6 µs a layer and request, the weights at 9.6 GB/s and 0.020 ns a
 * weight byte for each further row; 31 of the 36 cases within 20%, the worst 34% off (width 64, 2 layers: a 0.5 ms
 * step). Without the row term (stop 17's form) the widths 384 and 512 at 4 requests were fitted 29–31% short and the
 * one-row cases long to make up (7.1 GB/s). Stop 17's fit (cpu-calibrate-idle-0730) had 274 µs, 44 µs, 8 µs a
 * request, 11 µs and 6.9 GB/s.
 * More than one thread adds, in wall time, what handing every op's kernel to the other threads and waiting for them
 * costs, and corrects the weights' share for how the GEMMs split: fitted on top of the terms above as 41 µs a layer
 * and −0.0009 ns a weight byte (nil: the weights' share halves) by bench/cpu-plan-threads.ts, two threads, idle
 * machine, median of 5 runs a case, over two runs of its 12 cases (cpu-threads-handoff-stop19.jsonl at 17:53 and
 * cpu-threads-handoff-stop19-rows.jsonl at 18:02, fitted together: cpu-threads-handoff-stop19-refit.jsonl; a third
 * run, cpu-threads-handoff-stop19-run3.jsonl, is left out: a compile on both cores began during it); `small`'s
 * width left out again. Each layer's fewer ops cost less to hand over than at stop 17 (69 µs a layer, +0.020 ns a
 * byte).
 */
export const CPU_EFFICIENCY: CpuTerms = {
  training: 0.651,
  prefill: 0.53,
  optimizerSecondsPerParameter: { adamw: 0.786e-9, adamw8bit: 7.89e-9 },
  decodeHostSeconds: {
    perStep: 119e-6,
    perLayer: 76.6e-6,
    perRequest: 0,
    perLayerRequest: 6.55e-6,
  },
  decodeWeightBytesPerSecond: 9.64e9,
  /** Each request's row beyond the first: seconds a weight byte, one thread (the products' arithmetic). */
  decodeRowSecondsPerWeightByte: 2.0e-11,
  decodeThreadHandoffSeconds: { perLayer: 41.4e-6, perWeightByte: -0.884e-12 },
};

/**
 * The same terms measured on an AMD EPYC Zen 3 with AVX2 only (stop 22; src/plan/cpu-device.ts matches a CPU whose
 * engine runs avx2 to it) by the same scripts on that machine, idle (bench/results/logs/plan/*-zen3-stop22.*):
 * training 0.40 of its 192.1 GFLOP/s peak (cases 0.33–0.46); prefill not measured, scaled from the Zen 4's by the
 * training ratio (0.33); clip + AdamW 7.56 ns a parameter and 8-bit 42.2 ns (42M parameters; the AVX2 8-bit form has
 * no gathers); decode over two runs of the 18 cases fitted together — 112 µs a step, 277 µs a layer, 21.8 µs a layer
 * and request, the weights at 4.8 GB/s and 0.014 ns a weight byte for each further row (the two runs' own fits
 * differ by up to 50% a term; worst case 46% off); the two-thread handoff fitted on top, −67 µs a layer and
 * +0.031 ns a weight byte (the one-thread per-layer term holds small kernels that two threads split).
 */
export const CPU_EFFICIENCY_ZEN3_AVX2: CpuTerms = {
  training: 0.4,
  prefill: 0.33,
  optimizerSecondsPerParameter: { adamw: 7.56e-9, adamw8bit: 42.2e-9 },
  decodeHostSeconds: { perStep: 112e-6, perLayer: 277e-6, perRequest: 0, perLayerRequest: 21.8e-6 },
  decodeWeightBytesPerSecond: 4.82e9,
  decodeRowSecondsPerWeightByte: 1.42e-11,
  decodeThreadHandoffSeconds: { perLayer: -67.2e-6, perWeightByte: 3.09e-11 },
};

/** The CPU terms of one machine type (CPU_EFFICIENCY: the Zen 4 the planner was first calibrated on). */
export interface CpuTerms {
  /** Training's forward + backward, as a fraction of the threads' float32 peak. */
  training: number;
  prefill: number;
  /** Clipping plus one optimizer step, CPU seconds of one thread a parameter. */
  optimizerSecondsPerParameter: { adamw: number; adamw8bit: number };
  /** A decode step's host work, CPU seconds of the JavaScript thread. */
  decodeHostSeconds: { perStep: number; perLayer: number; perRequest: number; perLayerRequest: number };
  /** One thread's rate streaming the weights through a decode step's products. */
  decodeWeightBytesPerSecond: number;
  /** Each request's row beyond the first: seconds a weight byte, one thread (the products' arithmetic). */
  decodeRowSecondsPerWeightByte: number;
  /** Wall seconds of handing a step's kernels to the other threads, beyond one thread. */
  decodeThreadHandoffSeconds: { perLayer: number; perWeightByte: number };
}

/** The CPU terms of `device`: those of the machine type it was matched to (src/plan/cpu-device.ts). */
export function cpuTerms(device: DeviceSpec): CpuTerms {
  return device.cpuTerms ?? CPU_EFFICIENCY;
}

/** Threads the CPU engine runs on `device` (1 for a GPU: the CPU terms do not apply there). */
const cpuThreads = (device: DeviceSpec): number => device.threads ?? 1;

/**
 * CPU seconds of one decode step's host work on the CPU engine (one thread: the JavaScript side of the step),
 * for `batch` running requests of a `depth`-layer model.
 */
export function cpuDecodeHostSeconds(depth: number, batch: number, terms: CpuTerms = CPU_EFFICIENCY): number {
  const h = terms.decodeHostSeconds;
  return h.perStep + h.perLayer * depth + h.perRequest * batch + h.perLayerRequest * depth * batch;
}

/**
 * Wall seconds a decode step of a `depth`-layer model spends handing its ops' kernels to the other engine threads
 * and waiting for them, when there are more than one (bench/cpu-plan-threads.ts fits it on top of the other terms).
 */
export function cpuDecodeHandoffSeconds(depth: number, weightBytes: number, terms: CpuTerms = CPU_EFFICIENCY): number {
  const h = terms.decodeThreadHandoffSeconds;
  return h.perLayer * depth + h.perWeightByte * weightBytes;
}

/** A CPU decode step's seconds from every term but the threads' handoff (what bench/cpu-plan-threads.ts fits). */
export function decodeStepSecondsWithoutHandoff(c: AndromedaConfig, w: InferenceWorkload, device: DeviceSpec): number {
  return w.batch / inferenceThroughput(c, w, device, { threadHandoff: false }).tokensPerSecond;
}

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
  if (device.engine === 'cpu') return cpuTerms(device).training;
  const { trainingNarrow: a, trainingWide: b } = GPU_EFFICIENCY;
  const t = Math.min(1, Math.max(0, Math.log(c.dim / a.dim) / Math.log(b.dim / a.dim)));
  return a.fraction + t * (b.fraction - a.fraction);
}

export function trainingThroughput(c: AndromedaConfig, w: TrainingWorkload, device: DeviceSpec): Throughput {
  const n = countParameters(c);
  const tokens = w.batch * w.seqLen;
  // Forward 2N per token and backward 4N (N counts every parameter, as the measured model FLOP/s did);
  // checkpointing runs each block's forward once more, and the chunked loss (above one block of rows) forms the
  // logits again in the backward pass.
  const attention = attentionFlops(c, w.seqLen) * w.batch;
  const headProduct = 2 * c.dim * c.vocabSize * tokens;
  const blocks = 2 * (n - countParameters({ ...c, depth: 0 })) * tokens + attention;
  const flops =
    3 * (2 * n * tokens + attention) +
    (w.activationCheckpointing ? blocks : 0) +
    (lossIsChunked(tokens) ? headProduct : 0);
  const computeSeconds = flops / (device.flops * trainingFraction(c, device));
  // Optimizer: reads the gradient, the master and the moments, writes the master, the moments and (mixed
  // precision) the compute copy, once per step: 28 B per parameter with AdamW, 16 B with 8-bit moments.
  const shards = w.zeroStage >= 1 ? w.gpus : 1;
  const gradientBytes = DTYPE_BYTES[w.precision];
  const copyBytes = w.precision === 'float32' ? 0 : DTYPE_BYTES[w.precision];
  const momentBytes = w.optimizer === 'adamw8bit' ? 2 * 2 + (4 * 4) / QUANT_BLOCK : 8 * 2;
  const optimizerBytes = ((gradientBytes + 4 * 2 + momentBytes + copyBytes) * n) / shards;
  const cpu = device.engine === 'cpu';
  const efficiency =
    w.optimizer === 'adamw8bit' ? GPU_EFFICIENCY.optimizer8bitBandwidth : GPU_EFFICIENCY.optimizerBandwidth;
  const optimizerSeconds =
    (cpu
      ? (cpuTerms(device).optimizerSecondsPerParameter[w.optimizer] * n) / cpuThreads(device)
      : optimizerBytes / (device.bandwidth * efficiency)) / w.gradAccum;
  const seconds = computeSeconds + optimizerSeconds;
  const optimizerPercent = Math.round(efficiency * 100);
  return {
    // Data-parallel GPUs each run their micro-batches (the gradients' all-reduce is not counted).
    tokensPerSecond: (tokens / seconds) * w.gpus,
    bound: computeSeconds >= optimizerSeconds ? 'compute' : 'memory bandwidth',
    flopsPerToken: flops / tokens,
    bytesPerToken: optimizerBytes / (tokens * w.gradAccum),
    basis: cpu
      ? `forward + backward at ${(trainingFraction(c, device) * 100).toFixed(0)}% of the float32 peak of ` +
        `${cpuThreads(device)} CPU thread${cpuThreads(device) === 1 ? '' : 's'} (steady-state steps, ` +
        'bench/cpu-plan-calibrate.ts --part training) and the optimizer at ' +
        `${(cpuTerms(device).optimizerSecondsPerParameter[w.optimizer] * 1e9).toPrecision(2)} ns of CPU time a ` +
        'parameter (bench/results/plan.md)'
      : `forward + backward at ${(trainingFraction(c, device) * 100).toFixed(0)}% of the GPU's bf16 peak and the ` +
        `optimizer at ${optimizerPercent}% of its bandwidth, as measured on an H100 ` +
        '(bench/results/gpu-train-step.md)',
  };
}

export function inferenceThroughput(
  c: AndromedaConfig,
  w: InferenceWorkload,
  device: DeviceSpec,
  o: { threadHandoff?: boolean } = {},
): Throughput {
  const n = countParameters(c);
  const bytes = DTYPE_BYTES[w.kvDtype];
  const cpu = device.engine === 'cpu';
  const terms = cpuTerms(device);
  // Prefill: compute-bound, 2N per token plus causal attention over the prompt.
  const prefillFlops = 2 * n * w.promptTokens + attentionFlops(c, w.promptTokens);
  const prefillFraction = cpu ? terms.prefill : GPU_EFFICIENCY.prefill;
  const prefillSeconds = (prefillFlops * w.batch) / (device.flops * prefillFraction);
  // Decode: every step reads the weights once for the batch and each request's keys and values so far (at the
  // paged attention's own rate), plus the host's time for the step.
  const meanContext = w.promptTokens + w.outputTokens / 2;
  const kvBytesPerToken = 2 * c.depth * c.kvHeads * c.headDim * bytes;
  const weightBytes = n * bytes;
  const kvBytes = w.batch * meanContext * kvBytesPerToken;
  const stepFlops = w.batch * (2 * n + 4 * c.depth * c.heads * c.headDim * meanContext);
  // On the CPU the kernels' share is one thread's rate split over the threads; the host's runs on one thread.
  const threads = cpu ? cpuThreads(device) : 1;
  // GPU: the paged attention is latency-bound (see GPU_EFFICIENCY): its time joins the memory side.
  const attention = gpuDecodeAttention(c, w, device, meanContext);
  const attentionSeconds = c.depth * attention.seconds;
  const memorySeconds = cpu
    ? (weightBytes / terms.decodeWeightBytesPerSecond +
        terms.decodeRowSecondsPerWeightByte * weightBytes * (w.batch - 1) +
        kvBytes / device.bandwidth) /
      threads
    : gpuDecodeProductSeconds(c, bytes, device.bandwidth * decodeWeightReadFraction(w.batch)) + attentionSeconds;
  const computeSeconds = stepFlops / (device.flops * prefillFraction);
  const hostSeconds = cpu
    ? cpuDecodeHostSeconds(c.depth, w.batch, terms)
    : (GPU_EFFICIENCY.decodeSecondsPerLayer + GPU_EFFICIENCY.decodeSecondsPerLayerRequest * w.batch) * c.depth;
  const handoffSeconds =
    cpu && threads > 1 && (o.threadHandoff ?? true) ? cpuDecodeHandoffSeconds(c.depth, weightBytes, terms) : 0;
  const stepSeconds = Math.max(memorySeconds, computeSeconds) + hostSeconds + handoffSeconds;
  const bound =
    hostSeconds > Math.max(memorySeconds, computeSeconds)
      ? 'host'
      : memorySeconds >= computeSeconds
        ? 'memory bandwidth'
        : 'compute';
  return {
    tokensPerSecond: w.batch / stepSeconds,
    prefillTokensPerSecond: (w.batch * w.promptTokens) / prefillSeconds,
    bound,
    flopsPerToken: stepFlops / w.batch,
    bytesPerToken: (weightBytes + kvBytes) / w.batch,
    basis: cpu
      ? `decode steps: the weights at ${(terms.decodeWeightBytesPerSecond / 1e9).toFixed(1)} GB/s a ` +
        `thread over ${threads} thread${threads === 1 ? '' : 's'} plus ` +
        `${(hostSeconds * 1e3).toFixed(2)} ms of host work a step on one` +
        (handoffSeconds > 0 ? ` and ${(handoffSeconds * 1e3).toFixed(2)} ms handing ops to the other threads ` : ' ') +
        '(bench/results/plan.md, measured in CPU time by bench/cpu-plan-calibrate.ts)'
      : `decode steps: weights at ${(decodeWeightReadFraction(w.batch) * 100).toFixed(0)}% of the bandwidth ` +
        `(${w.batch} row${w.batch === 1 ? '' : 's'}), the paged attention as ${attention.basis}, ` +
        `each product at least ${(GPU_EFFICIENCY.decodeProductFloorSeconds * 1e6).toFixed(1)} µs, ` +
        `${(GPU_EFFICIENCY.decodeSecondsPerLayer * 1e6).toFixed(1)} µs a layer and ` +
        `${(GPU_EFFICIENCY.decodeSecondsPerLayerRequest * 1e6).toFixed(2)} µs a layer and request; prefill at ` +
        `${GPU_EFFICIENCY.prefill * 100}% of peak — as measured on an H100 (bench/results/gpu-decode.md)`,
  };
}

/**
 * One layer's paged attention in a decode step on CUDA (seconds) and how it was reckoned: the decode kernel's waves ×
 * (setup + slices per warp × a slice), the setup term holding its merge and the combine (GPU_EFFICIENCY.decodeKernel),
 * or, where that kernel does not run, the general kernel's waves × sub-tiles per split × a sub-tile.
 */
function gpuDecodeAttention(
  c: AndromedaConfig,
  w: InferenceWorkload,
  device: DeviceSpec,
  meanContext: number,
): { seconds: number; basis: string } {
  const units = w.batch * c.kvHeads;
  if (decodeKernelRuns(c, w.kvDtype, device)) {
    const g = decodeKernelGrid(units, meanContext, device.sms, w.batch, c.heads, c.headDim);
    const k = GPU_EFFICIENCY.decodeKernel;
    const perWarp = g.averageSlicesPerWarp;
    const seconds = g.waves * (k.setupSeconds + perWarp * k.secondsPerSlice);
    return {
      seconds,
      basis:
        `the decode kernel's ${g.waves} wave${g.waves === 1 ? '' : 's'} of CTAs whose warps walk ` +
        `${perWarp} slice${perWarp === 1 ? '' : 's'} of 16 keys on average`,
    };
  }
  const { waves, tiles } = attentionWavesAndTiles(units, meanContext, device.sms);
  const rowsPerKvHead = (c.heads / c.kvHeads) * c.headDim;
  return {
    seconds: waves * tiles * GPU_EFFICIENCY.decodeSecondsPerSubTile * (rowsPerKvHead / 3072),
    basis:
      `${waves} wave${waves === 1 ? '' : 's'} of CTAs walking ` +
      `${tiles} sub-tile${tiles === 1 ? '' : 's'} of 32 keys`,
  };
}
