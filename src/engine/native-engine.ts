// What the CPU and CUDA engines share: the kernel ABI of their N-API addons (native/abi/kernels.mjs: same
// functions, same argument order) and the Engine methods that only translate tensor regions into
// (handle, element offset) pairs. The addons check every argument; the addon object itself stays private.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { DTYPE_CODE } from '../tensor/dtype.js';
import type { SharedKernels } from './native-abi.js';
import {
  BINARY_CODE,
  REDUCE_CODE,
  UNARY_CODE,
  UNARY_GRAD_CODE,
  type AddNormArgs,
  type AddNormGrads,
  type AdamWArgs,
  type AdamWItem,
  type AttentionArgs,
  type FusedAttentionShape,
  type HeadNormArgs,
  type Engine,
  type BinaryOp,
  type Dense,
  type Handle,
  type MatmulArgs,
  type MemoryStats,
  type RandomDistribution,
  type ReduceOp,
  type Strided,
  type UnaryGradOp,
  type UnaryOp,
  type MaskedSoftmaxArgs,
  type RotaryArgs,
} from './engine.js';

/**
 * The functions both addons export: buffer management (native/{cpu,cuda}/binding.cc) and the kernels
 * declared in native/abi/kernels.mjs. Handles are small integers of the engine's handle table, never addresses.
 */
export interface NativeKernels extends SharedKernels {
  alloc(bytes: number): number;
  free(handle: number): void;
  memoryStats(): MemoryStats;
  resetPeakMemory(): void;
  upload(dst: number, byteOffset: number, data: ArrayBufferView): void;
  download(src: number, byteOffset: number, bytes: number): ArrayBuffer;
}

/** Handle of an optional buffer: 0 means none. */
export const handleOrNone = (d: Dense | null | undefined): number => (d ? d.handle : 0);
export const offsetOrNone = (d: Dense | null | undefined): number => (d ? d.offset : 0);

/** Loads `build/Release/<file>` of this package (dist/src/engine → the root is three levels up). */
export function requireAddon<T>(file: string): { path: string; load: () => T } {
  const path = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'build', 'Release', file);
  return { path, load: () => createRequire(import.meta.url)(path) as T };
}

/** Strides of the wrong rank would make a kernel read or write out of bounds: refuse them. */
function checkRank(kernel: string, shape: readonly number[], ...operands: Strided[]): void {
  for (const o of operands) {
    if (o.strides.length !== shape.length) {
      throw new Error(
        `internal: ${kernel} got ${o.strides.length} strides for a ${shape.length}-d shape [${shape.join(', ')}]`,
      );
    }
  }
}

/** A Engine whose kernels live in a native addon with the `NativeKernels` ABI. */
export abstract class NativeEngine implements Engine {
  abstract readonly device: string;
  abstract readonly asynchronous: boolean;
  readonly #addon: NativeKernels;

  constructor(addon: NativeKernels) {
    this.#addon = addon;
  }

  abstract synchronize(): void;
  // Fused attention: each engine's addon takes its own configuration (src/engine/cpu.ts, cuda-attention.ts).
  abstract fusedAttentionUnsupported(shape: FusedAttentionShape): string | null;
  abstract attentionForward(q: Dense, k: Dense, v: Dense, out: Dense, lse: Dense, args: AttentionArgs): void;
  abstract attentionBackward(
    q: Dense,
    k: Dense,
    v: Dense,
    out: Dense,
    lse: Dense,
    gradOut: Dense,
    gradQ: Dense,
    gradK: Dense,
    gradV: Dense,
    gradKeyScale: Dense | null,
    args: AttentionArgs,
  ): void;

  alloc(bytes: number): Handle {
    return this.#addon.alloc(bytes);
  }
  free(handle: Handle): void {
    this.#addon.free(handle);
  }
  upload(dst: Handle, byteOffset: number, data: ArrayBufferView): void {
    this.#addon.upload(dst, byteOffset, data);
  }
  download(src: Handle, byteOffset: number, bytes: number): ArrayBuffer {
    return this.#addon.download(src, byteOffset, bytes);
  }
  memoryStats(): MemoryStats {
    return this.#addon.memoryStats();
  }
  resetPeakMemory(): void {
    this.#addon.resetPeakMemory();
  }

  copy(src: Strided, dst: Strided, shape: readonly number[]): void {
    checkRank(`${this.device} copy`, shape, src, dst);
    this.#addon.copy(
      DTYPE_CODE[src.dtype],
      src.handle,
      src.offset,
      src.strides,
      DTYPE_CODE[dst.dtype],
      dst.handle,
      dst.offset,
      dst.strides,
      shape,
    );
  }
  fill(dst: Dense, count: number, value: number): void {
    this.#addon.fill(DTYPE_CODE[dst.dtype], dst.handle, dst.offset, count, value);
  }
  unary(op: UnaryOp, x: Dense, out: Dense, count: number, scalar: number): void {
    this.#addon.unary(UNARY_CODE[op], DTYPE_CODE[x.dtype], x.handle, x.offset, out.handle, out.offset, count, scalar);
  }
  unaryGrad(op: UnaryGradOp, x: Dense, gradOut: Dense, gradIn: Dense, count: number): void {
    this.#addon.unaryGrad(
      UNARY_GRAD_CODE[op],
      DTYPE_CODE[x.dtype],
      x.handle,
      x.offset,
      gradOut.handle,
      gradOut.offset,
      gradIn.handle,
      gradIn.offset,
      count,
    );
  }
  binary(op: BinaryOp, a: Strided, b: Strided, out: Dense, shape: readonly number[]): void {
    checkRank(`${this.device} binary`, shape, a, b);
    this.#addon.binary(
      BINARY_CODE[op],
      DTYPE_CODE[out.dtype],
      a.handle,
      a.offset,
      a.strides,
      b.handle,
      b.offset,
      b.strides,
      out.handle,
      out.offset,
      shape,
    );
  }
  reduce(op: ReduceOp, x: Dense, out: Dense, outer: number, size: number, inner: number): void {
    this.#addon.reduce(
      REDUCE_CODE[op],
      DTYPE_CODE[x.dtype],
      x.handle,
      x.offset,
      out.handle,
      out.offset,
      outer,
      size,
      inner,
    );
  }
  matmul(g: MatmulArgs): void {
    this.#addon.gemm(
      DTYPE_CODE[g.c.dtype],
      g.transA,
      g.transB,
      g.m,
      g.n,
      g.k,
      g.alpha,
      g.a.handle,
      g.a.offset,
      g.lda,
      g.strideA,
      g.b.handle,
      g.b.offset,
      g.ldb,
      g.strideB,
      g.beta,
      g.c.handle,
      g.c.offset,
      g.ldc,
      g.strideC,
      g.batch,
    );
  }
  softmax(x: Dense, out: Dense, rows: number, cols: number, log: boolean): void {
    this.#addon.softmax(DTYPE_CODE[x.dtype], x.handle, x.offset, out.handle, out.offset, rows, cols, log);
  }
  softmaxGrad(y: Dense, gradOut: Dense, gradIn: Dense, rows: number, cols: number, log: boolean): void {
    this.#addon.softmaxGrad(
      DTYPE_CODE[y.dtype],
      y.handle,
      y.offset,
      gradOut.handle,
      gradOut.offset,
      gradIn.handle,
      gradIn.offset,
      rows,
      cols,
      log,
    );
  }
  norm(
    rms: boolean,
    x: Dense,
    weight: Dense | null,
    bias: Dense | null,
    out: Dense,
    stats: Dense,
    rows: number,
    cols: number,
    eps: number,
  ): void {
    this.#addon.norm(
      rms,
      DTYPE_CODE[x.dtype],
      x.handle,
      x.offset,
      handleOrNone(weight),
      offsetOrNone(weight),
      handleOrNone(bias),
      offsetOrNone(bias),
      out.handle,
      out.offset,
      stats.handle,
      stats.offset,
      rows,
      cols,
      eps,
    );
  }
  normGrad(
    rms: boolean,
    x: Dense,
    weight: Dense | null,
    stats: Dense,
    gradOut: Dense,
    gradIn: Dense,
    gradWeight: Dense | null,
    gradBias: Dense | null,
    rows: number,
    cols: number,
  ): void {
    this.#addon.normGrad(
      rms,
      DTYPE_CODE[x.dtype],
      x.handle,
      x.offset,
      handleOrNone(weight),
      offsetOrNone(weight),
      stats.handle,
      stats.offset,
      gradOut.handle,
      gradOut.offset,
      gradIn.handle,
      gradIn.offset,
      handleOrNone(gradWeight),
      offsetOrNone(gradWeight),
      handleOrNone(gradBias),
      offsetOrNone(gradBias),
      rows,
      cols,
    );
  }
  crossEntropy(
    logits: Dense,
    targets: Dense,
    losses: Dense,
    lse: Dense,
    rows: number,
    vocab: number,
    ignoreIndex: number,
  ): void {
    this.#addon.crossEntropy(
      DTYPE_CODE[logits.dtype],
      logits.handle,
      logits.offset,
      targets.handle,
      targets.offset,
      losses.handle,
      losses.offset,
      lse.handle,
      lse.offset,
      rows,
      vocab,
      ignoreIndex,
    );
  }
  crossEntropyGrad(
    logits: Dense,
    targets: Dense,
    lse: Dense,
    gradLoss: Dense,
    gradLogits: Dense,
    rows: number,
    vocab: number,
    ignoreIndex: number,
  ): void {
    this.#addon.crossEntropyGrad(
      DTYPE_CODE[logits.dtype],
      logits.handle,
      logits.offset,
      targets.handle,
      targets.offset,
      lse.handle,
      lse.offset,
      gradLoss.handle,
      gradLoss.offset,
      gradLogits.handle,
      gradLogits.offset,
      rows,
      vocab,
      ignoreIndex,
    );
  }
  embedding(table: Dense, ids: Dense, out: Dense, count: number, dim: number, vocab: number): number {
    return this.#addon.embedding(
      DTYPE_CODE[table.dtype],
      table.handle,
      table.offset,
      ids.handle,
      ids.offset,
      out.handle,
      out.offset,
      count,
      dim,
      vocab,
    );
  }
  embeddingGrad(ids: Dense, gradOut: Dense, gradTable: Dense, count: number, dim: number): void {
    this.#addon.embeddingGrad(
      DTYPE_CODE[gradTable.dtype],
      ids.handle,
      ids.offset,
      gradOut.handle,
      gradOut.offset,
      gradTable.handle,
      gradTable.offset,
      count,
      dim,
    );
  }
  dropout(x: Dense, out: Dense, count: number, p: number, seed: number): void {
    this.#addon.dropout(DTYPE_CODE[x.dtype], x.handle, x.offset, out.handle, out.offset, count, p, seed);
  }
  randomFill(dst: Dense, count: number, distribution: RandomDistribution, a: number, b: number, seed: number): void {
    this.#addon.randomFill(DTYPE_CODE[dst.dtype], dst.handle, dst.offset, count, distribution === 'normal', a, b, seed);
  }
  adamw(param: Dense, grad: Dense, m: Dense, v: Dense, count: number, a: AdamWArgs): void {
    this.#addon.adamw(
      param.handle,
      param.offset,
      DTYPE_CODE[grad.dtype],
      grad.handle,
      grad.offset,
      m.handle,
      m.offset,
      v.handle,
      v.offset,
      count,
      a.lr,
      a.beta1,
      a.beta2,
      a.eps,
      a.weightDecay,
      a.biasCorrection1,
      a.biasCorrection2,
      a.gradScale,
    );
  }
  sumOfSquares(x: Dense, count: number): number {
    return this.#addon.sumOfSquares(DTYPE_CODE[x.dtype], x.handle, x.offset, count);
  }
  sumOfSquaresMany(items: readonly { x: Dense; count: number }[]): number {
    return this.#addon.sumOfSquaresMany(
      items.map((i) => ({ dtype: DTYPE_CODE[i.x.dtype], x: i.x.handle, xOffset: i.x.offset, count: i.count })),
    );
  }
  adamwMany(items: readonly AdamWItem[], a: AdamWArgs): void {
    if (items.length === 0) return;
    for (const [i, item] of items.entries()) {
      if (item.shadow && item.shadow.dtype !== 'bfloat16' && item.shadow.dtype !== 'float16') {
        throw new Error(
          `adamwMany: the weight copy of item ${i} is ${item.shadow.dtype}; it must be bfloat16 or float16`,
        );
      }
    }
    this.#addon.adamwMany(
      items.map((i) => ({
        param: i.param.handle,
        paramOffset: i.param.offset,
        gradDtype: DTYPE_CODE[i.grad.dtype],
        grad: i.grad.handle,
        gradOffset: i.grad.offset,
        m: i.m.handle,
        mOffset: i.m.offset,
        v: i.v.handle,
        vOffset: i.v.offset,
        count: i.count,
        shadowDtype: i.shadow ? DTYPE_CODE[i.shadow.dtype] : 0,
        shadow: handleOrNone(i.shadow),
        shadowOffset: offsetOrNone(i.shadow),
      })),
      a.lr,
      a.beta1,
      a.beta2,
      a.eps,
      a.weightDecay,
      a.biasCorrection1,
      a.biasCorrection2,
      a.gradScale,
    );
  }
  embeddingUnchecked(table: Dense, ids: Dense, out: Dense, count: number, dim: number, vocab: number): void {
    this.#addon.embeddingGather(
      DTYPE_CODE[table.dtype],
      table.handle,
      table.offset,
      ids.handle,
      ids.offset,
      out.handle,
      out.offset,
      count,
      dim,
      vocab,
    );
  }
  matmulBias(g: MatmulArgs, bias: Dense): void {
    this.#addon.gemmBias(
      DTYPE_CODE[g.c.dtype],
      g.transA,
      g.transB,
      g.m,
      g.n,
      g.k,
      g.alpha,
      g.a.handle,
      g.a.offset,
      g.lda,
      g.strideA,
      g.b.handle,
      g.b.offset,
      g.ldb,
      g.strideB,
      g.beta,
      g.c.handle,
      g.c.offset,
      g.ldc,
      g.strideC,
      g.batch,
      bias.handle,
      bias.offset,
    );
  }

  // ---- The reference attention form ----
  maskedSoftmax(scores: Dense, out: Dense, a: MaskedSoftmaxArgs): void {
    if (scores.dtype !== out.dtype)
      throw new Error(`maskedSoftmax: scores are ${scores.dtype} but out is ${out.dtype}`);
    const indices = [a.queryPositions, a.keyPositions, a.querySegments, a.keySegments];
    if (indices.some((d) => d && d.dtype !== 'int32'))
      throw new Error('maskedSoftmax: positions and segments must be int32');
    this.#addon.maskedSoftmax(
      {
        dtype: DTYPE_CODE[scores.dtype],
        batch: a.batch,
        heads: a.heads,
        queryLen: a.queryLen,
        keyLen: a.keyLen,
        causal: a.causal,
        queryOffset: a.queryOffset,
        alibiSlopes: a.alibiSlopes,
        queryPositions: handleOrNone(a.queryPositions),
        queryPositionsOffset: offsetOrNone(a.queryPositions),
        keyPositions: handleOrNone(a.keyPositions),
        keyPositionsOffset: offsetOrNone(a.keyPositions),
        querySegments: handleOrNone(a.querySegments),
        querySegmentsOffset: offsetOrNone(a.querySegments),
        keySegments: handleOrNone(a.keySegments),
        keySegmentsOffset: offsetOrNone(a.keySegments),
        queryStride: a.queryStride,
        keyStride: a.keyStride,
      },
      scores.handle,
      scores.offset,
      out.handle,
      out.offset,
    );
  }
  rotary(x: Dense, out: Dense, a: RotaryArgs): void {
    if (x.dtype !== out.dtype) throw new Error(`rotary: x is ${x.dtype} but out is ${out.dtype}`);
    if (a.positions && a.positions.dtype !== 'int32')
      throw new Error(`rotary: positions must be int32, got ${a.positions.dtype}`);
    this.#addon.rotary(
      {
        dtype: DTYPE_CODE[x.dtype],
        batch: a.batch,
        heads: a.heads,
        length: a.length,
        headDim: a.headDim,
        rotaryDim: a.rotaryDim,
        invFreq: a.invFreq,
        positions: handleOrNone(a.positions),
        positionsOffset: offsetOrNone(a.positions),
        positionStride: a.positionStride,
        positionOffset: a.positionOffset,
        xposScaleBase: a.xposScaleBase,
        xposAnchor: a.xposAnchor,
        xposSign: a.xposSign,
        xposMinDistance: a.xposMinDistance,
        multiplier: a.multiplier,
        transpose: a.transpose,
      },
      x.handle,
      x.offset,
      out.handle,
      out.offset,
    );
  }
  // Fused ops (native/fused/<op>/: cpu.cc and cuda.cu side by side).
  addNorm(a: AddNormArgs, out: Dense, sum: Dense | null, stats: Dense): void {
    this.#addon.addNorm(
      a.rms,
      DTYPE_CODE[a.a.dtype],
      a.a.handle,
      a.a.offset,
      handleOrNone(a.b),
      offsetOrNone(a.b),
      handleOrNone(a.scale),
      offsetOrNone(a.scale),
      a.c,
      handleOrNone(a.weight),
      offsetOrNone(a.weight),
      handleOrNone(a.bias),
      offsetOrNone(a.bias),
      out.handle,
      out.offset,
      handleOrNone(sum),
      offsetOrNone(sum),
      stats.handle,
      stats.offset,
      a.rows,
      a.cols,
      a.eps,
    );
  }
  addNormGrad(a: AddNormArgs, stats: Dense, gradOut: Dense, g: AddNormGrads): void {
    this.#addon.addNormGrad(
      a.rms,
      DTYPE_CODE[a.a.dtype],
      a.a.handle,
      a.a.offset,
      handleOrNone(a.b),
      offsetOrNone(a.b),
      handleOrNone(a.scale),
      offsetOrNone(a.scale),
      a.c,
      handleOrNone(a.weight),
      offsetOrNone(a.weight),
      stats.handle,
      stats.offset,
      gradOut.handle,
      gradOut.offset,
      g.a.handle,
      g.a.offset,
      handleOrNone(g.b),
      offsetOrNone(g.b),
      handleOrNone(g.scale),
      offsetOrNone(g.scale),
      handleOrNone(g.weight),
      offsetOrNone(g.weight),
      handleOrNone(g.bias),
      offsetOrNone(g.bias),
      a.rows,
      a.cols,
    );
  }
  biasGelu(x: Dense, bias: Dense, out: Dense, rows: number, cols: number): void {
    this.#addon.biasGelu(
      DTYPE_CODE[x.dtype],
      x.handle,
      x.offset,
      bias.handle,
      bias.offset,
      out.handle,
      out.offset,
      rows,
      cols,
    );
  }
  biasGeluGrad(
    x: Dense,
    bias: Dense,
    gradOut: Dense,
    gradIn: Dense,
    gradBias: Dense | null,
    rows: number,
    cols: number,
  ): void {
    this.#addon.biasGeluGrad(
      DTYPE_CODE[x.dtype],
      x.handle,
      x.offset,
      bias.handle,
      bias.offset,
      gradOut.handle,
      gradOut.offset,
      gradIn.handle,
      gradIn.offset,
      handleOrNone(gradBias),
      offsetOrNone(gradBias),
      rows,
      cols,
    );
  }
  headNorm(a: HeadNormArgs, x: Dense, weight: Dense | null, out: Dense, rstd: Dense): void {
    this.#addon.headNorm(
      DTYPE_CODE[x.dtype],
      a.batch,
      a.n,
      a.heads,
      a.dim,
      a.eps,
      x.handle,
      x.offset,
      handleOrNone(weight),
      offsetOrNone(weight),
      out.handle,
      out.offset,
      rstd.handle,
      rstd.offset,
    );
  }
  headNormGrad(
    a: HeadNormArgs,
    x: Dense,
    weight: Dense | null,
    rstd: Dense,
    gradOut: Dense,
    gradIn: Dense,
    gradWeight: Dense | null,
  ): void {
    this.#addon.headNormGrad(
      DTYPE_CODE[x.dtype],
      a.batch,
      a.n,
      a.heads,
      a.dim,
      a.eps,
      x.handle,
      x.offset,
      handleOrNone(weight),
      offsetOrNone(weight),
      rstd.handle,
      rstd.offset,
      gradOut.handle,
      gradOut.offset,
      gradIn.handle,
      gradIn.offset,
      handleOrNone(gradWeight),
      offsetOrNone(gradWeight),
    );
  }
  tokenShift(
    x: Dense,
    out: Dense,
    batch: number,
    n: number,
    dim: number,
    shifts: number,
    backward: boolean,
    accumulate: boolean,
    segments: Dense | null,
  ): void {
    if (segments && segments.dtype !== 'int32')
      throw new Error(`tokenShift: segments must be int32, got ${segments.dtype}`);
    this.#addon.tokenShift(
      DTYPE_CODE[x.dtype],
      x.handle,
      x.offset,
      out.handle,
      out.offset,
      handleOrNone(segments),
      offsetOrNone(segments),
      batch,
      n,
      dim,
      shifts,
      backward,
      accumulate,
    );
  }
}
