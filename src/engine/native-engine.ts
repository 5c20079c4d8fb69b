// What the CPU and CUDA engines share: the kernel ABI of their N-API addons (same functions, same
// argument order) and the Engine methods that only translate tensor regions into addresses.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { DTYPE_CODE, DTYPE_BYTES } from '../tensor/dtype.js';
import {
  BINARY_CODE, REDUCE_CODE, UNARY_CODE, UNARY_GRAD_CODE,
  type AddNormArgs, type AddNormGrads, type AdamWArgs, type AdamWItem, type AttentionArgs, type HeadNormArgs, type Engine, type BinaryOp, type Dense, type Handle, type MatmulArgs, type MemoryStats,
  type RandomDistribution, type ReduceOp, type Strided, type UnaryGradOp, type UnaryOp, type MaskedSoftmaxArgs, type RotaryArgs,
} from './engine.js';

/** The kernel functions both addons export (native/cpu/binding.cc, native/cuda/binding.cc). */
export interface NativeKernels {
  alloc(bytes: number): number;
  free(ptr: number): void;
  memoryStats(): MemoryStats;
  resetPeakMemory(): void;
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
  randomFill(dtype: number, dst: number, count: number, normal: boolean, a: number, b: number, seed: number): void;
  adamw(param: number, gradDtype: number, grad: number, m: number, v: number, count: number,
    lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, bc1: number, bc2: number, gradScale: number): void;
  sumOfSquares(dtype: number, x: number, count: number): number;
  // The reference attention form (configs: maskedSoftmaxConfig, rotaryConfig below).
  maskedSoftmax(dtype: number, scores: number, out: number, config: object): void;
  rotary(dtype: number, x: number, out: number, config: object): void;
  // Fused kernels (native/cpu/binding_fused.cc, native/cuda/binding_fused.cc).
  addNorm(rms: boolean, dtype: number, a: number, b: number | null, scale: number | null, c: number, w: number | null, bias: number | null,
    out: number, sum: number | null, stats: number, rows: number, cols: number, eps: number): void;
  addNormGrad(rms: boolean, dtype: number, a: number, b: number | null, scale: number | null, c: number, w: number | null, stats: number,
    gy: number, ga: number, gb: number | null, gscale: number | null, gw: number | null, gbias: number | null, rows: number, cols: number): void;
  biasGelu(dtype: number, x: number, bias: number, out: number, rows: number, cols: number): void;
  biasGeluGrad(dtype: number, x: number, bias: number, gy: number, gx: number, gbias: number | null, rows: number, cols: number): void;
  adamwMany(params: readonly number[], gradDtypes: readonly number[], grads: readonly number[], ms: readonly number[], vs: readonly number[],
    counts: readonly number[], shadowDtypes: readonly number[], shadows: readonly number[],
    lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, bc1: number, bc2: number, gradScale: number): void;
  sumOfSquaresMany(dtypes: readonly number[], ptrs: readonly number[], counts: readonly number[]): number;
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

/** Address of element `offset` of a dense region. */
export const at = (d: Dense): number => d.handle + d.offset * DTYPE_BYTES[d.dtype];
export const atOrNull = (d: Dense | null): number | null => (d ? at(d) : null);

/** Loads `build/Release/<file>` of this package (dist/src/engine → the root is three levels up). */
export function requireAddon<T>(file: string): { path: string; load: () => T } {
  const path = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'build', 'Release', file);
  return { path, load: () => createRequire(import.meta.url)(path) as T };
}

/** Strides of the wrong rank would make a kernel read or write out of bounds: refuse them. */
function checkRank(kernel: string, shape: readonly number[], ...operands: Strided[]): void {
  for (const o of operands) {
    if (o.strides.length !== shape.length) {
      throw new Error(`internal: ${kernel} got ${o.strides.length} strides for a ${shape.length}-d shape [${shape.join(', ')}]`);
    }
  }
}

/** A Engine whose kernels live in a native addon with the `NativeKernels` ABI. */
export abstract class NativeEngine<A extends NativeKernels = NativeKernels> implements Engine {
  abstract readonly device: string;
  abstract readonly asynchronous: boolean;

  constructor(protected readonly addon: A) {}

  abstract synchronize(): void;
  // Fused attention: each engine's addon takes its own configuration (src/engine/cpu.ts, cuda-attention.ts).
  abstract attentionForward(q: Dense, k: Dense, v: Dense, out: Dense, lse: Dense, args: AttentionArgs): void;
  abstract attentionBackward(q: Dense, k: Dense, v: Dense, out: Dense, lse: Dense, gradOut: Dense,
    gradQ: Dense, gradK: Dense, gradV: Dense, gradKeyScale: Dense | null, args: AttentionArgs): void;

  alloc(bytes: number): Handle { return this.addon.alloc(bytes); }
  free(handle: Handle): void { this.addon.free(handle); }
  upload(dst: Handle, byteOffset: number, data: ArrayBufferView): void { this.addon.upload(dst, byteOffset, data); }
  download(src: Handle, byteOffset: number, bytes: number): ArrayBuffer { return this.addon.download(src, byteOffset, bytes); }
  memoryStats(): MemoryStats { return this.addon.memoryStats(); }
  resetPeakMemory(): void { this.addon.resetPeakMemory(); }

  copy(src: Strided, dst: Strided, shape: readonly number[]): void {
    checkRank(`${this.device} copy`, shape, src, dst);
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
    checkRank(`${this.device} binary`, shape, a, b);
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
  randomFill(dst: Dense, count: number, distribution: RandomDistribution, a: number, b: number, seed: number): void {
    this.addon.randomFill(DTYPE_CODE[dst.dtype], at(dst), count, distribution === 'normal', a, b, seed);
  }
  adamw(param: Dense, grad: Dense, m: Dense, v: Dense, count: number, a: AdamWArgs): void {
    this.addon.adamw(at(param), DTYPE_CODE[grad.dtype], at(grad), at(m), at(v), count,
      a.lr, a.beta1, a.beta2, a.eps, a.weightDecay, a.biasCorrection1, a.biasCorrection2, a.gradScale);
  }
  sumOfSquares(x: Dense, count: number): number { return this.addon.sumOfSquares(DTYPE_CODE[x.dtype], at(x), count); }
  sumOfSquaresMany(items: readonly { x: Dense; count: number }[]): number {
    return this.addon.sumOfSquaresMany(items.map((i) => DTYPE_CODE[i.x.dtype]), items.map((i) => at(i.x)), items.map((i) => i.count));
  }
  adamwMany(items: readonly AdamWItem[], a: AdamWArgs): void {
    if (items.length === 0) return;
    for (const [i, item] of items.entries()) {
      if (item.shadow && item.shadow.dtype !== 'bfloat16' && item.shadow.dtype !== 'float16') {
        throw new Error(`adamwMany: the weight copy of item ${i} is ${item.shadow.dtype}; it must be bfloat16 or float16`);
      }
    }
    this.addon.adamwMany(items.map((i) => at(i.param)), items.map((i) => DTYPE_CODE[i.grad.dtype]), items.map((i) => at(i.grad)),
      items.map((i) => at(i.m)), items.map((i) => at(i.v)), items.map((i) => i.count),
      items.map((i) => (i.shadow ? DTYPE_CODE[i.shadow.dtype] : 0)), items.map((i) => (i.shadow ? at(i.shadow) : 0)),
      a.lr, a.beta1, a.beta2, a.eps, a.weightDecay, a.biasCorrection1, a.biasCorrection2, a.gradScale);
  }
  embeddingUnchecked(table: Dense, ids: Dense, out: Dense, count: number, dim: number, vocab: number): void {
    this.addon.embeddingGather(DTYPE_CODE[table.dtype], at(table), at(ids), at(out), count, dim, vocab);
  }
  matmulBias(g: MatmulArgs, bias: Dense): void {
    this.addon.gemmBias(DTYPE_CODE[g.c.dtype], g.transA, g.transB, g.m, g.n, g.k, g.alpha,
      at(g.a), g.lda, g.strideA, at(g.b), g.ldb, g.strideB, g.beta, at(g.c), g.ldc, g.strideC, g.batch, at(bias));
  }

  // ---- The reference attention form ----
  maskedSoftmax(scores: Dense, out: Dense, a: MaskedSoftmaxArgs): void {
    if (scores.dtype !== out.dtype) throw new Error(`maskedSoftmax: scores are ${scores.dtype} but out is ${out.dtype}`);
    const indices = [a.queryPositions, a.keyPositions, a.querySegments, a.keySegments];
    if (indices.some((d) => d && d.dtype !== 'int32')) throw new Error('maskedSoftmax: positions and segments must be int32');
    this.addon.maskedSoftmax(DTYPE_CODE[scores.dtype], at(scores), at(out), {
      batch: a.batch, heads: a.heads, queryLen: a.queryLen, keyLen: a.keyLen, causal: a.causal, queryOffset: a.queryOffset,
      alibiSlopes: a.alibiSlopes, queryPositions: atOrNull(a.queryPositions), keyPositions: atOrNull(a.keyPositions),
      querySegments: atOrNull(a.querySegments), keySegments: atOrNull(a.keySegments), queryStride: a.queryStride, keyStride: a.keyStride,
    });
  }
  rotary(x: Dense, out: Dense, a: RotaryArgs): void {
    if (x.dtype !== out.dtype) throw new Error(`rotary: x is ${x.dtype} but out is ${out.dtype}`);
    if (a.positions && a.positions.dtype !== 'int32') throw new Error(`rotary: positions must be int32, got ${a.positions.dtype}`);
    this.addon.rotary(DTYPE_CODE[x.dtype], at(x), at(out), {
      batch: a.batch, heads: a.heads, length: a.length, headDim: a.headDim, rotaryDim: a.rotaryDim, invFreq: a.invFreq,
      positions: atOrNull(a.positions), positionStride: a.positionStride, positionOffset: a.positionOffset,
      xposScaleBase: a.xposScaleBase, xposAnchor: a.xposAnchor, xposSign: a.xposSign, xposMinDistance: a.xposMinDistance,
      multiplier: a.multiplier, transpose: a.transpose,
    });
  }
  // Fused ops (native/fused/<op>/: cpu.cc and cuda.cu side by side).
  addNorm(a: AddNormArgs, out: Dense, sum: Dense | null, stats: Dense): void {
    this.addon.addNorm(a.rms, DTYPE_CODE[a.a.dtype], at(a.a), atOrNull(a.b), atOrNull(a.scale), a.c, atOrNull(a.weight), atOrNull(a.bias),
      at(out), atOrNull(sum), at(stats), a.rows, a.cols, a.eps);
  }
  addNormGrad(a: AddNormArgs, stats: Dense, gradOut: Dense, g: AddNormGrads): void {
    this.addon.addNormGrad(a.rms, DTYPE_CODE[a.a.dtype], at(a.a), atOrNull(a.b), atOrNull(a.scale), a.c, atOrNull(a.weight), at(stats),
      at(gradOut), at(g.a), atOrNull(g.b), atOrNull(g.scale), atOrNull(g.weight), atOrNull(g.bias), a.rows, a.cols);
  }
  biasGelu(x: Dense, bias: Dense, out: Dense, rows: number, cols: number): void {
    this.addon.biasGelu(DTYPE_CODE[x.dtype], at(x), at(bias), at(out), rows, cols);
  }
  biasGeluGrad(x: Dense, bias: Dense, gradOut: Dense, gradIn: Dense, gradBias: Dense | null, rows: number, cols: number): void {
    this.addon.biasGeluGrad(DTYPE_CODE[x.dtype], at(x), at(bias), at(gradOut), at(gradIn), atOrNull(gradBias), rows, cols);
  }
  headNorm(a: HeadNormArgs, x: Dense, weight: Dense | null, out: Dense, rstd: Dense): void {
    this.addon.headNorm(DTYPE_CODE[x.dtype], a.batch, a.n, a.heads, a.dim, a.eps, at(x), atOrNull(weight), at(out), at(rstd));
  }
  headNormGrad(a: HeadNormArgs, x: Dense, weight: Dense | null, rstd: Dense, gradOut: Dense, gradIn: Dense, gradWeight: Dense | null): void {
    this.addon.headNormGrad(DTYPE_CODE[x.dtype], a.batch, a.n, a.heads, a.dim, a.eps, at(x), atOrNull(weight), at(rstd),
      at(gradOut), at(gradIn), atOrNull(gradWeight));
  }
  tokenShift(x: Dense, out: Dense, batch: number, n: number, dim: number, shifts: number, backward: boolean, accumulate: boolean, segments: Dense | null): void {
    if (segments && segments.dtype !== 'int32') throw new Error(`tokenShift: segments must be int32, got ${segments.dtype}`);
    this.addon.tokenShift(DTYPE_CODE[x.dtype], at(x), at(out), batch, n, dim, shifts, backward, accumulate, atOrNull(segments));
  }
}
