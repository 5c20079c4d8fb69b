import { existsSync } from 'node:fs';
import { DTYPE_CODE } from '../tensor/dtype.js';
import { installProfiler } from './cuda-profile.js';
import type { AdamWArgs, AdamWItem, AttentionArgs, Dense, HeadNormArgs, MatmulArgs, MemoryStats } from './engine.js';
import { NativeEngine, handleOrNone, offsetOrNone, requireAddon, type NativeKernels } from './native-engine.js';
import type { CudaKernels } from './native-abi.js';
import { cudaAttentionBackward, cudaAttentionForward, type CudaAttentionAddon, type CudaAttentionPath } from './cuda-attention.js';

/** Memory statistics of the CUDA engine: the Engine's, plus the caching allocator's state. */
export interface CudaMemoryStats extends MemoryStats {
  /** Blocks held by live tensors, and blocks kept in the cache for reuse. */
  readonly liveBlocks: number;
  readonly cachedBlocks: number;
  /** The device's free and total memory as the driver reports them. */
  readonly deviceFree: number;
  readonly deviceTotal: number;
}

/** The compiled addon's functions (native/cuda/binding.cc): the kernels plus device, memory and timing. */
interface CudaAddon extends NativeKernels, CudaKernels, CudaAttentionAddon {
  deviceCount(): number;
  init(device: number): string;
  gemmLibrary(): string;
  synchronize(): void;
  memoryStats(): CudaMemoryStats;
  emptyCache(): void;
  setMemoryLimit(bytes: number): void;
  timingMark(): number;
  timingRead(): Float64Array;
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
export class CudaEngine extends NativeEngine {
  readonly device: string;
  readonly asynchronous = true;
  /** e.g. "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB)". */
  readonly description: string;
  // Private to this class: the addon is reachable only through the checked Engine methods.
  readonly #addon: CudaAddon;

  constructor(index = 0) {
    const loaded = loadAddon();
    super(loaded);
    this.#addon = loaded;
    this.device = `cuda:${index}`;
    try {
      this.description = this.#addon.init(index);
    } catch (e) {
      throw new Error(`no CUDA device: ${(e as Error).message.replace(/^cuda engine: /, '')}`);
    }
    const profile = process.env.ANDROMEDA_CUDA_PROFILE;
    if (profile === '1' || profile === 'events') installProfiler(this, profile === 'events' ? 'events' : 'waits');
  }

  /** The matrix library in use, loading it if needed (throws, naming ANDROMEDA_CUBLASLT, when missing). */
  gemmLibrary(): string { return this.#addon.gemmLibrary(); }
  /** Returns every cached block to the driver. */
  emptyCache(): void { this.#addon.emptyCache(); }
  /** Caps the bytes the allocator may reserve from the driver (0 removes the cap). */
  setMemoryLimit(bytes: number): void { this.#addon.setMemoryLimit(bytes); }

  synchronize(): void { this.#addon.synchronize(); }
  /** Records a timing event on the stream (profiling); `timingRead` returns the gaps between marks. */
  timingMark(): number { return this.#addon.timingMark(); }
  /** Waits; milliseconds between consecutive marks since the last read, on the device's clock. */
  timingRead(): Float64Array { return this.#addon.timingRead(); }
  override memoryStats(): CudaMemoryStats { return this.#addon.memoryStats(); }

  // Extensions beyond the Engine contract, for mixed-precision training loops.

  /** Σx² over several buffers with one wait for the device (the global gradient norm in one call). */
  sumOfSquaresMany(items: readonly { x: Dense; count: number }[]): number {
    return this.#addon.sumOfSquaresMany(items.map((i) => ({ dtype: DTYPE_CODE[i.x.dtype], x: i.x.handle, xOffset: i.x.offset, count: i.count })));
  }

  /** `adamw`, also storing the updated float32 masters into `shadow` (bfloat16/float16 compute weights) in the same pass. */
  adamwWithShadow(param: Dense, grad: Dense, m: Dense, v: Dense, count: number, a: AdamWArgs, shadow: Dense): void {
    this.#addon.adamwShadow(param.handle, param.offset, DTYPE_CODE[grad.dtype], grad.handle, grad.offset, m.handle, m.offset,
      v.handle, v.offset, count, a.lr, a.beta1, a.beta2, a.eps, a.weightDecay, a.biasCorrection1, a.biasCorrection2, a.gradScale,
      DTYPE_CODE[shadow.dtype], shadow.handle, shadow.offset);
  }

  // Fused bandwidth kernels beyond the shared ones (native/abi/kernels.mjs).

  adamwMany(items: readonly AdamWItem[], a: AdamWArgs): void {
    if (items.length === 0) return;
    this.#addon.adamwMany(items.map((i) => ({
      param: i.param.handle, paramOffset: i.param.offset, gradDtype: DTYPE_CODE[i.grad.dtype], grad: i.grad.handle, gradOffset: i.grad.offset,
      m: i.m.handle, mOffset: i.m.offset, v: i.v.handle, vOffset: i.v.offset, count: i.count,
      shadowDtype: i.shadow ? DTYPE_CODE[i.shadow.dtype] : 0, shadow: handleOrNone(i.shadow), shadowOffset: offsetOrNone(i.shadow),
    })), a.lr, a.beta1, a.beta2, a.eps, a.weightDecay, a.biasCorrection1, a.biasCorrection2, a.gradScale);
  }
  headNorm(a: HeadNormArgs, x: Dense, weight: Dense | null, out: Dense, rstd: Dense): void {
    this.#addon.headNorm(DTYPE_CODE[x.dtype], a.batch, a.n, a.heads, a.dim, a.eps, x.handle, x.offset, handleOrNone(weight), offsetOrNone(weight),
      out.handle, out.offset, rstd.handle, rstd.offset);
  }
  headNormGrad(a: HeadNormArgs, x: Dense, weight: Dense | null, rstd: Dense, gradOut: Dense, gradIn: Dense, gradWeight: Dense | null): void {
    this.#addon.headNormGrad(DTYPE_CODE[x.dtype], a.batch, a.n, a.heads, a.dim, a.eps, x.handle, x.offset, handleOrNone(weight), offsetOrNone(weight),
      rstd.handle, rstd.offset, gradOut.handle, gradOut.offset, gradIn.handle, gradIn.offset, handleOrNone(gradWeight), offsetOrNone(gradWeight));
  }
  tokenShift(x: Dense, out: Dense, batch: number, n: number, dim: number, shifts: number, backward: boolean, accumulate = false, segments: Dense | null = null): void {
    this.#addon.tokenShift(DTYPE_CODE[x.dtype], x.handle, x.offset, out.handle, out.offset, handleOrNone(segments), offsetOrNone(segments),
      batch, n, dim, shifts, backward, accumulate);
  }
  embeddingUnchecked(table: Dense, ids: Dense, out: Dense, count: number, dim: number, vocab: number): void {
    this.#addon.embeddingGather(DTYPE_CODE[table.dtype], table.handle, table.offset, ids.handle, ids.offset, out.handle, out.offset, count, dim, vocab);
  }
  matmulBias(g: MatmulArgs, bias: Dense): void {
    this.#addon.gemmBias(DTYPE_CODE[g.c.dtype], g.transA, g.transB, g.m, g.n, g.k, g.alpha, g.a.handle, g.a.offset, g.lda, g.strideA,
      g.b.handle, g.b.offset, g.ldb, g.strideB, g.beta, g.c.handle, g.c.offset, g.ldc, g.strideC, g.batch, bias.handle, bias.offset);
  }

  // Fused attention (native/cuda/attention, src/engine/cuda-attention.ts).
  attentionForward(q: Dense, k: Dense, v: Dense, out: Dense, lse: Dense, args: AttentionArgs): void {
    cudaAttentionForward(this.#addon, q, k, v, out, lse, args);
  }
  /** The forward on a chosen kernel ('tiled' tensor-core or 'decode' split-KV), for tests and benchmarks. */
  attentionForwardOn(path: CudaAttentionPath, q: Dense, k: Dense, v: Dense, out: Dense, lse: Dense, args: AttentionArgs): void {
    cudaAttentionForward(this.#addon, q, k, v, out, lse, args, path);
  }
  attentionBackward(q: Dense, k: Dense, v: Dense, out: Dense, lse: Dense, gradOut: Dense,
    gradQ: Dense, gradK: Dense, gradV: Dense, gradKeyScale: Dense | null, args: AttentionArgs): void {
    cudaAttentionBackward(this.#addon, q, k, v, out, lse, gradOut, gradQ, gradK, gradV, gradKeyScale, args);
  }
}
