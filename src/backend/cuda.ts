import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { DTYPE_CODE, DTYPE_BYTES } from '../tensor/dtype.js';
import { installProfiler } from './cuda-profile.js';
import {
  BINARY_CODE, REDUCE_CODE, UNARY_CODE, UNARY_GRAD_CODE,
  type AdamWArgs, type AttentionArgs, type Backend, type BinaryOp, type Dense, type Handle, type MatmulArgs, type MemoryStats,
  type ReduceOp, type Strided, type UnaryGradOp, type UnaryOp,
} from './backend.js';
import { cudaAttentionBackward, cudaAttentionForward, type CudaAttentionAddon, type CudaAttentionPath } from './cuda-attention.js';

/** Memory statistics of the CUDA engine: the Backend's, plus the caching allocator's state. */
export interface CudaMemoryStats extends MemoryStats {
  /** Blocks held by live tensors, and blocks kept in the cache for reuse. */
  readonly liveBlocks: number;
  readonly cachedBlocks: number;
  /** The device's free and total memory as the driver reports them. */
  readonly deviceFree: number;
  readonly deviceTotal: number;
}

/** The compiled addon's functions (native/cuda/binding.cc); argument order matches the CPU addon. */
interface CudaAddon extends CudaAttentionAddon {
  deviceCount(): number;
  init(device: number): string;
  gemmLibrary(): string;
  alloc(bytes: number): number;
  free(ptr: number): void;
  synchronize(): void;
  memoryStats(): CudaMemoryStats;
  resetPeakMemory(): void;
  emptyCache(): void;
  setMemoryLimit(bytes: number): void;
  upload(dst: number, byteOffset: number, data: ArrayBufferView): void;
  download(src: number, byteOffset: number, bytes: number): ArrayBuffer;
  copy(srcDtype: number, src: number, srcStrides: readonly number[], dstDtype: number, dst: number, dstStrides: readonly number[], shape: readonly number[]): void;
  fill(dtype: number, dst: number, count: number, value: number): void;
  unary(op: number, dtype: number, x: number, out: number, count: number, scalar: number): void;
  unaryGrad(op: number, dtype: number, x: number, gy: number, gx: number, count: number): void;
  binary(op: number, dtype: number, a: number, aStrides: readonly number[], b: number, bStrides: readonly number[], out: number, shape: readonly number[]): void;
  reduce(op: number, dtype: number, x: number, out: number, outer: number, size: number, inner: number): void;
  gemm(dtype: number, transA: boolean, transB: boolean, m: number, n: number, k: number, alpha: number,
    a: number, lda: number, strideA: number, b: number, ldb: number, strideB: number, beta: number,
    c: number, ldc: number, strideC: number, batch: number): void;
  softmax(dtype: number, x: number, out: number, rows: number, cols: number, log: boolean): void;
  softmaxGrad(dtype: number, y: number, gy: number, gx: number, rows: number, cols: number, log: boolean): void;
  norm(rms: boolean, dtype: number, x: number, w: number | null, b: number | null, out: number, stats: number, rows: number, cols: number, eps: number): void;
  normGrad(rms: boolean, dtype: number, x: number, w: number | null, stats: number, gy: number, gx: number, gw: number | null, gb: number | null, rows: number, cols: number): void;
  crossEntropy(dtype: number, logits: number, targets: number, losses: number, lse: number, rows: number, vocab: number, ignore: number): void;
  crossEntropyGrad(dtype: number, logits: number, targets: number, lse: number, gLoss: number, gLogits: number, rows: number, vocab: number, ignore: number): void;
  embedding(dtype: number, table: number, ids: number, out: number, count: number, dim: number, vocab: number): number;
  embeddingGrad(dtype: number, ids: number, gy: number, gTable: number, count: number, dim: number): void;
  dropout(dtype: number, x: number, out: number, count: number, p: number, seed: number): void;
  adamw(param: number, gradDtype: number, grad: number, m: number, v: number, count: number,
    lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, bc1: number, bc2: number, gradScale: number,
    shadowDtype?: number, shadow?: number): void;
  sumOfSquares(dtype: number, x: number, count: number): number;
  sumOfSquaresMany(dtypes: readonly number[], ptrs: readonly number[], counts: readonly number[]): number;
}

let addon: CudaAddon | null = null;

/** Loads the addon once; every failure reads "no CUDA device: <why>". */
function loadAddon(): CudaAddon {
  if (addon) return addon;
  const here = dirname(fileURLToPath(import.meta.url));
  // dist/src/backend → package root is three levels up.
  const path = join(here, '..', '..', '..', 'build', 'Release', 'andromeda_cuda.node');
  if (!existsSync(path)) {
    throw new Error(`no CUDA device: the CUDA engine is not built (${path} is missing; run \`npm run build:cuda\` on a machine with nvcc)`);
  }
  let loaded: CudaAddon;
  try {
    loaded = createRequire(import.meta.url)(path) as CudaAddon;
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

/** Address of element `offset` of a dense region. */
const at = (d: Dense): number => d.handle + d.offset * DTYPE_BYTES[d.dtype];
const atOrNull = (d: Dense | null): number | null => (d ? at(d) : null);

/**
 * The CUDA engine: kernels are enqueued on one stream and return at once; `download`,
 * `synchronize`, `sumOfSquares` and `embedding` (which reports bad ids) wait for the device.
 * Memory comes from a caching allocator, so freed blocks are reused without cudaMalloc.
 */
export class CudaBackend implements Backend {
  readonly device: string;
  readonly asynchronous = true;
  /** e.g. "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB)". */
  readonly description: string;
  private readonly addon: CudaAddon;

  constructor(index = 0) {
    this.addon = loadAddon();
    this.device = `cuda:${index}`;
    try {
      this.description = this.addon.init(index);
    } catch (e) {
      throw new Error(`no CUDA device: ${(e as Error).message.replace(/^cuda engine: /, '')}`);
    }
    if (process.env.ANDROMEDA_CUDA_PROFILE === '1') installProfiler(this);
  }

  /** The matrix library in use, loading it if needed (throws, naming ANDROMEDA_CUBLASLT, when missing). */
  gemmLibrary(): string { return this.addon.gemmLibrary(); }
  /** Returns every cached block to the driver. */
  emptyCache(): void { this.addon.emptyCache(); }
  /** Caps the bytes the allocator may reserve from the driver (0 removes the cap). */
  setMemoryLimit(bytes: number): void { this.addon.setMemoryLimit(bytes); }

  alloc(bytes: number): Handle { return this.addon.alloc(bytes); }
  free(handle: Handle): void { this.addon.free(handle); }
  upload(dst: Handle, byteOffset: number, data: ArrayBufferView): void { this.addon.upload(dst, byteOffset, data); }
  download(src: Handle, byteOffset: number, bytes: number): ArrayBuffer { return this.addon.download(src, byteOffset, bytes); }
  synchronize(): void { this.addon.synchronize(); }
  memoryStats(): CudaMemoryStats { return this.addon.memoryStats(); }
  resetPeakMemory(): void { this.addon.resetPeakMemory(); }

  copy(src: Strided, dst: Strided, shape: readonly number[]): void {
    this.addon.copy(DTYPE_CODE[src.dtype], at(src), src.strides, DTYPE_CODE[dst.dtype], at(dst), dst.strides, shape);
  }
  fill(dst: Dense, count: number, value: number): void { this.addon.fill(DTYPE_CODE[dst.dtype], at(dst), count, value); }
  unary(op: UnaryOp, x: Dense, out: Dense, count: number, scalar: number): void {
    this.addon.unary(UNARY_CODE[op], DTYPE_CODE[x.dtype], at(x), at(out), count, scalar);
  }
  unaryGrad(op: UnaryGradOp, x: Dense, gradOut: Dense, gradIn: Dense, count: number): void {
    this.addon.unaryGrad(UNARY_GRAD_CODE[op], DTYPE_CODE[x.dtype], at(x), at(gradOut), at(gradIn), count);
  }
  binary(op: BinaryOp, a: Strided, b: Strided, out: Dense, shape: readonly number[]): void {
    this.addon.binary(BINARY_CODE[op], DTYPE_CODE[out.dtype], at(a), a.strides, at(b), b.strides, at(out), shape);
  }
  reduce(op: ReduceOp, x: Dense, out: Dense, outer: number, size: number, inner: number): void {
    this.addon.reduce(REDUCE_CODE[op], DTYPE_CODE[x.dtype], at(x), at(out), outer, size, inner);
  }
  matmul(g: MatmulArgs): void {
    this.addon.gemm(DTYPE_CODE[g.c.dtype], g.transA, g.transB, g.m, g.n, g.k, g.alpha,
      at(g.a), g.lda, g.strideA, at(g.b), g.ldb, g.strideB, g.beta, at(g.c), g.ldc, g.strideC, g.batch);
  }
  softmax(x: Dense, out: Dense, rows: number, cols: number, log: boolean): void {
    this.addon.softmax(DTYPE_CODE[x.dtype], at(x), at(out), rows, cols, log);
  }
  softmaxGrad(y: Dense, gradOut: Dense, gradIn: Dense, rows: number, cols: number, log: boolean): void {
    this.addon.softmaxGrad(DTYPE_CODE[y.dtype], at(y), at(gradOut), at(gradIn), rows, cols, log);
  }
  norm(rms: boolean, x: Dense, weight: Dense | null, bias: Dense | null, out: Dense, stats: Dense, rows: number, cols: number, eps: number): void {
    this.addon.norm(rms, DTYPE_CODE[x.dtype], at(x), atOrNull(weight), atOrNull(bias), at(out), at(stats), rows, cols, eps);
  }
  normGrad(rms: boolean, x: Dense, weight: Dense | null, stats: Dense, gradOut: Dense, gradIn: Dense,
    gradWeight: Dense | null, gradBias: Dense | null, rows: number, cols: number): void {
    this.addon.normGrad(rms, DTYPE_CODE[x.dtype], at(x), atOrNull(weight), at(stats), at(gradOut), at(gradIn),
      atOrNull(gradWeight), atOrNull(gradBias), rows, cols);
  }
  crossEntropy(logits: Dense, targets: Dense, losses: Dense, lse: Dense, rows: number, vocab: number, ignoreIndex: number): void {
    this.addon.crossEntropy(DTYPE_CODE[logits.dtype], at(logits), at(targets), at(losses), at(lse), rows, vocab, ignoreIndex);
  }
  crossEntropyGrad(logits: Dense, targets: Dense, lse: Dense, gradLoss: Dense, gradLogits: Dense, rows: number, vocab: number, ignoreIndex: number): void {
    this.addon.crossEntropyGrad(DTYPE_CODE[logits.dtype], at(logits), at(targets), at(lse), at(gradLoss), at(gradLogits), rows, vocab, ignoreIndex);
  }
  embedding(table: Dense, ids: Dense, out: Dense, count: number, dim: number, vocab: number): number {
    return this.addon.embedding(DTYPE_CODE[table.dtype], at(table), at(ids), at(out), count, dim, vocab);
  }
  embeddingGrad(ids: Dense, gradOut: Dense, gradTable: Dense, count: number, dim: number): void {
    this.addon.embeddingGrad(DTYPE_CODE[gradTable.dtype], at(ids), at(gradOut), at(gradTable), count, dim);
  }
  dropout(x: Dense, out: Dense, count: number, p: number, seed: number): void {
    this.addon.dropout(DTYPE_CODE[x.dtype], at(x), at(out), count, p, seed);
  }
  adamw(param: Dense, grad: Dense, m: Dense, v: Dense, count: number, a: AdamWArgs): void {
    this.addon.adamw(at(param), DTYPE_CODE[grad.dtype], at(grad), at(m), at(v), count,
      a.lr, a.beta1, a.beta2, a.eps, a.weightDecay, a.biasCorrection1, a.biasCorrection2, a.gradScale);
  }
  sumOfSquares(x: Dense, count: number): number { return this.addon.sumOfSquares(DTYPE_CODE[x.dtype], at(x), count); }

  // Extensions beyond the Backend contract, for mixed-precision training loops.

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

  // Fused attention (native/cuda/attention, src/backend/cuda-attention.ts).
  attentionForward(q: Dense, k: Dense, v: Dense, out: Dense, lse: Dense, args: AttentionArgs): void {
    cudaAttentionForward(this.addon, q, k, v, out, lse, args);
  }
  /** The forward on a chosen kernel ('tiled' tensor-core or 'decode' split-KV), for tests and benchmarks. */
  attentionForwardOn(path: CudaAttentionPath, q: Dense, k: Dense, v: Dense, out: Dense, lse: Dense, args: AttentionArgs): void {
    cudaAttentionForward(this.addon, q, k, v, out, lse, args, path);
  }
  attentionBackward(q: Dense, k: Dense, v: Dense, out: Dense, lse: Dense, gradOut: Dense,
    gradQ: Dense, gradK: Dense, gradV: Dense, gradKeyScale: Dense | null, args: AttentionArgs): void {
    cudaAttentionBackward(this.addon, q, k, v, out, lse, gradOut, gradQ, gradK, gradV, gradKeyScale, args);
  }
}
