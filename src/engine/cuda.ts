import { existsSync } from 'node:fs';
import { DTYPE_CODE } from '../tensor/dtype.js';
import { installProfiler } from './cuda-profile.js';
import type { AdamWArgs, AdamWItem, AttentionArgs, Dense, HeadNormArgs, MatmulArgs, MemoryStats } from './engine.js';
import { NativeEngine, at, requireAddon, type NativeKernels } from './native-engine.js';
import {
  cudaAttentionBackward, cudaAttentionForward, cudaAttentionPlan,
  type CudaAttentionAddon, type CudaAttentionOptions, type CudaAttentionPlan,
} from './cuda-attention.js';

/** Memory statistics of the CUDA engine: the Engine's, plus the caching allocator's state. */
export interface CudaMemoryStats extends MemoryStats {
  /** Blocks held by live tensors, and blocks kept in the cache for reuse. */
  readonly liveBlocks: number;
  readonly cachedBlocks: number;
  /** The device's free and total memory as the driver reports them. */
  readonly deviceFree: number;
  readonly deviceTotal: number;
}

/** The compiled addon's functions (native/cuda/binding.cc); argument order matches the CPU addon. */
interface CudaAddon extends NativeKernels, CudaAttentionAddon {
  deviceCount(): number;
  init(device: number): string;
  gemmLibrary(): string;
  synchronize(): void;
  memoryStats(): CudaMemoryStats;
  emptyCache(): void;
  setMemoryLimit(bytes: number): void;
  timingMark(): number;
  timingRead(): Float64Array;
  /** With a shadow buffer, also writes the updated weights in the shadow's (half) dtype. */
  adamw(param: number, gradDtype: number, grad: number, m: number, v: number, count: number,
    lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, bc1: number, bc2: number, gradScale: number,
    shadowDtype?: number, shadow?: number): void;
  sumOfSquaresMany(dtypes: readonly number[], ptrs: readonly number[], counts: readonly number[]): number;
  // native/cuda/binding_fused.cc
  adamwMany(params: readonly number[], gradDtypes: readonly number[], grads: readonly number[], ms: readonly number[], vs: readonly number[],
    counts: readonly number[], shadowDtypes: readonly number[], shadows: readonly number[],
    lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, bc1: number, bc2: number, gradScale: number): void;
  headNorm(dtype: number, batch: number, n: number, heads: number, dim: number, eps: number, x: number, weight: number | null,
    out: number, rstd: number): void;
  headNormGrad(dtype: number, batch: number, n: number, heads: number, dim: number, eps: number, x: number, weight: number | null,
    rstd: number, gy: number, gx: number, gweight: number | null): void;
  tokenShift(dtype: number, x: number, out: number, batch: number, n: number, dim: number, shifts: number, backward: boolean,
    accumulate: boolean, segments: number | null): void;
  embeddingGather(dtype: number, table: number, ids: number, out: number, count: number, dim: number, vocab: number): void;
  gemmBias(dtype: number, transA: boolean, transB: boolean, m: number, n: number, k: number, alpha: number,
    a: number, lda: number, strideA: number, b: number, ldb: number, strideB: number, beta: number,
    c: number, ldc: number, strideC: number, batch: number, bias: number): void;
}

let addon: CudaAddon | null = null;

/** Loads the addon once; every failure reads "no CUDA device: <why>". */
function loadAddon(): CudaAddon {
  if (addon) return addon;
  const { path, load } = requireAddon<CudaAddon>('andromeda_cuda.node');
  if (!existsSync(path)) {
    throw new Error(`no CUDA device: the CUDA engine is not built (${path} is missing; run \`npm run build:cuda\` on a machine with nvcc)`);
  }
  let loaded: CudaAddon;
  try {
    loaded = load();
  } catch (e) {
    throw new Error(`no CUDA device: the CUDA engine at ${path} failed to load: ${(e as Error).message}`);
  }
  let count: number;
  try {
    count = loaded.deviceCount();
  } catch (e) {
    const reason = (e as Error).message.replace(/^cuda engine: /, '');
    const hint = /InsufficientDriver|NoDevice/.test(reason)
      ? ' (no NVIDIA driver or GPU on this machine, or a driver older than the CUDA 13 runtime this engine is built with)'
      : '';
    throw new Error(`no CUDA device: the CUDA runtime reports ${reason}${hint}`);
  }
  if (count === 0) throw new Error('no CUDA device: the CUDA runtime sees no GPU');
  addon = loaded;
  return addon;
}

/**
 * The CUDA engine: kernels are enqueued on one stream and return at once; `download`,
 * `synchronize`, `sumOfSquares` and `embedding` (which reports bad ids; `embeddingUnchecked` does not)
 * wait for the device.
 * Memory comes from a caching allocator, so freed blocks are reused without cudaMalloc.
 */
export class CudaEngine extends NativeEngine<CudaAddon> {
  readonly device: string;
  readonly asynchronous = true;
  /** e.g. "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB)". */
  readonly description: string;

  constructor(index = 0) {
    super(loadAddon());
    this.device = `cuda:${index}`;
    try {
      this.description = this.addon.init(index);
    } catch (e) {
      throw new Error(`no CUDA device: ${(e as Error).message.replace(/^cuda engine: /, '')}`);
    }
    const profile = process.env.ANDROMEDA_CUDA_PROFILE;
    if (profile === '1' || profile === 'events') installProfiler(this, profile === 'events' ? 'events' : 'waits');
  }

  /** The matrix library in use, loading it if needed (throws, naming ANDROMEDA_CUBLASLT, when missing). */
  gemmLibrary(): string { return this.addon.gemmLibrary(); }
  /** Returns every cached block to the driver. */
  emptyCache(): void { this.addon.emptyCache(); }
  /** Caps the bytes the allocator may reserve from the driver (0 removes the cap). */
  setMemoryLimit(bytes: number): void { this.addon.setMemoryLimit(bytes); }

  synchronize(): void { this.addon.synchronize(); }
  /** Records a timing event on the stream (profiling); `timingRead` returns the gaps between marks. */
  timingMark(): number { return this.addon.timingMark(); }
  /** Waits; milliseconds between consecutive marks since the last read, on the device's clock. */
  timingRead(): Float64Array { return this.addon.timingRead(); }
  override memoryStats(): CudaMemoryStats { return this.addon.memoryStats(); }

  // Extensions beyond the Engine contract, for mixed-precision training loops.

  /** Σx² over several buffers with one wait for the device (the global gradient norm in one call). */
  sumOfSquaresMany(items: readonly { x: Dense; count: number }[]): number {
    return this.addon.sumOfSquaresMany(items.map((i) => DTYPE_CODE[i.x.dtype]), items.map((i) => at(i.x)), items.map((i) => i.count));
  }

  /** `adamw`, also storing the updated float32 masters into `shadow` (bfloat16/float16 compute weights) in the same pass. */
  adamwWithShadow(param: Dense, grad: Dense, m: Dense, v: Dense, count: number, a: AdamWArgs, shadow: Dense): void {
    this.addon.adamw(at(param), DTYPE_CODE[grad.dtype], at(grad), at(m), at(v), count,
      a.lr, a.beta1, a.beta2, a.eps, a.weightDecay, a.biasCorrection1, a.biasCorrection2, a.gradScale,
      DTYPE_CODE[shadow.dtype], at(shadow));
  }

  // Fused bandwidth kernels beyond the shared ones (native/cuda/binding_fused.cc).

  adamwMany(items: readonly AdamWItem[], a: AdamWArgs): void {
    if (items.length === 0) return;
    const addr = (d: Dense | null) => (d ? at(d) : 0);
    this.addon.adamwMany(items.map((i) => at(i.param)), items.map((i) => DTYPE_CODE[i.grad.dtype]), items.map((i) => at(i.grad)),
      items.map((i) => at(i.m)), items.map((i) => at(i.v)), items.map((i) => i.count),
      items.map((i) => (i.shadow ? DTYPE_CODE[i.shadow.dtype] : 0)), items.map((i) => addr(i.shadow)),
      a.lr, a.beta1, a.beta2, a.eps, a.weightDecay, a.biasCorrection1, a.biasCorrection2, a.gradScale);
  }
  headNorm(a: HeadNormArgs, x: Dense, weight: Dense | null, out: Dense, rstd: Dense): void {
    this.addon.headNorm(DTYPE_CODE[x.dtype], a.batch, a.n, a.heads, a.dim, a.eps, at(x), weight ? at(weight) : null, at(out), at(rstd));
  }
  headNormGrad(a: HeadNormArgs, x: Dense, weight: Dense | null, rstd: Dense, gradOut: Dense, gradIn: Dense, gradWeight: Dense | null): void {
    this.addon.headNormGrad(DTYPE_CODE[x.dtype], a.batch, a.n, a.heads, a.dim, a.eps, at(x), weight ? at(weight) : null, at(rstd),
      at(gradOut), at(gradIn), gradWeight ? at(gradWeight) : null);
  }
  tokenShift(x: Dense, out: Dense, batch: number, n: number, dim: number, shifts: number, backward: boolean, accumulate = false, segments: Dense | null = null): void {
    this.addon.tokenShift(DTYPE_CODE[x.dtype], at(x), at(out), batch, n, dim, shifts, backward, accumulate, segments ? at(segments) : null);
  }
  embeddingUnchecked(table: Dense, ids: Dense, out: Dense, count: number, dim: number, vocab: number): void {
    this.addon.embeddingGather(DTYPE_CODE[table.dtype], at(table), at(ids), at(out), count, dim, vocab);
  }
  matmulBias(g: MatmulArgs, bias: Dense): void {
    this.addon.gemmBias(DTYPE_CODE[g.c.dtype], g.transA, g.transB, g.m, g.n, g.k, g.alpha,
      at(g.a), g.lda, g.strideA, at(g.b), g.ldb, g.strideB, g.beta, at(g.c), g.ldc, g.strideC, g.batch, at(bias));
  }

  // Fused attention (native/cuda/attention, src/engine/cuda-attention.ts). `options` names kernels explicitly
  // (tests and benchmarks); left out, the engine's heuristics pick.
  attentionForward(q: Dense, k: Dense, v: Dense, out: Dense, lse: Dense, args: AttentionArgs, options?: CudaAttentionOptions): void {
    cudaAttentionForward(this.addon, q, k, v, out, lse, args, options);
  }
  attentionBackward(q: Dense, k: Dense, v: Dense, out: Dense, lse: Dense, gradOut: Dense,
    gradQ: Dense, gradK: Dense, gradV: Dense, gradKeyScale: Dense | null, args: AttentionArgs, options?: CudaAttentionOptions): void {
    cudaAttentionBackward(this.addon, q, k, v, out, lse, gradOut, gradQ, gradK, gradV, gradKeyScale, args, options);
  }
  /** Where a forward and backward with these arguments and options apply rotary / xPos / the key scale. */
  attentionPlan(q: Dense, lse: Dense, args: AttentionArgs, options?: CudaAttentionOptions): CudaAttentionPlan {
    return cudaAttentionPlan(this.addon, q, lse, args, options);
  }
}
