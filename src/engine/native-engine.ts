// What the CPU and CUDA engines share: the kernel ABI of their N-API addons (native/abi/kernels.mjs: same
// functions, same argument order) and the Engine methods that only translate tensor regions into
// (handle, element offset) pairs. The addons check every argument; the addon object itself stays private.
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { DTYPE_CODE } from '../tensor/dtype.js';
import type { PagedBatchConfig, SharedKernels } from './native-abi.js';
import {
  BINARY_CODE,
  REDUCE_CODE,
  UNARY_CODE,
  UNARY_GRAD_CODE,
  type AddNormArgs,
  type AddNormGrads,
  type AdamWArgs,
  type AdamWItem,
  type AdamW8bitItem,
  type AdamW8bitMaps,
  type AttentionArgs,
  type FusedAttentionShape,
  type HeadNormArgs,
  type HeadNormRowsItem,
  type Engine,
  type BinaryOp,
  type Dense,
  type Handle,
  type MatmulArgs,
  type SharedInputPart,
  type MemoryStats,
  type RandomDistribution,
  type ReduceOp,
  type Strided,
  type UnaryGradOp,
  type UnaryOp,
  type MaskedSoftmaxArgs,
  type PagedAttentionArgs,
  type PagedBatchArgs,
  type RotaryArgs,
  type DeviceGraph,
  type PendingDownload,
  type SamplingBuffers,
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

/** The three clipping arguments of the AdamW kernels (clipSumOfSquares, its offset, clipMaxNorm): none by default. */
function clipArguments(a: AdamWArgs): [number, number, number] {
  const clip = a.clip;
  if (!clip) return [0, 0, 0];
  if (clip.sumOfSquares.dtype !== 'float64')
    throw new Error(`AdamW clipping: the sum of squares is ${clip.sumOfSquares.dtype}; it must be float64`);
  if (!(clip.maxNorm > 0)) throw new Error(`AdamW clipping: the norm to clip to must be positive, got ${clip.maxNorm}`);
  return [clip.sumOfSquares.handle, clip.sumOfSquares.offset, clip.maxNorm];
}

/** Loads an engine addon of this package (dist/src/engine → the root is three levels up); see `locateAddon`. */
export function requireAddon<T>(file: string): { path: string; load: () => T } {
  const path = locateAddon(join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..'), file);
  return { path, load: () => createRequire(import.meta.url)(path) as T };
}

interface PrebuildTags {
  file: string;
}
interface NodeGypBuild {
  parseTags(file: string): PrebuildTags | undefined;
  matchTags(runtime: string, abi: string): (tags: PrebuildTags | undefined) => boolean;
  compareTags(runtime: string): (a: PrebuildTags, b: PrebuildTags) => number;
}

/**
 * Where the addon `file` (e.g. "andromeda_cpu.node") of the package at `root` is: the one compiled there,
 * `build/Release/<file>`, else the prebuilt binary in `prebuilds/<platform>-<arch>/` that node-gyp-build's rules pick
 * for this Node (N-API, libc), named `<addon>.<tags>.node` as prebuildify names them. When neither exists it is the
 * build/Release path, which the engines name in their "not built" errors.
 */
export function locateAddon(root: string, file: string): string {
  const built = join(root, 'build', 'Release', file);
  if (existsSync(built)) return built;
  const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  if (!existsSync(dir)) return built;
  const addon = file.replace(/\.node$/, '');
  const gypBuild = createRequire(import.meta.url)('node-gyp-build') as NodeGypBuild;
  const candidates = readdirSync(dir)
    .filter((name) => name.startsWith(`${addon}.`))
    .map((name) => gypBuild.parseTags(name))
    .filter(gypBuild.matchTags('node', process.versions.modules)) as PrebuildTags[];
  const best = candidates.sort(gypBuild.compareTags('node'))[0];
  return best ? join(dir, best.file) : built;
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

/** Addon functions that manage memory or report state: they keep working while kernels are skipped. */
const NOT_KERNELS = new Set(['alloc', 'free', 'memoryStats', 'resetPeakMemory', 'threads', 'cpuInfo', 'limitIsa']);

/** `addon` with every kernel function replaced by one that does nothing (copies are refused separately). */
function skippingKernels(addon: NativeKernels): NativeKernels {
  return new Proxy(addon, {
    get(target, key, receiver) {
      const value: unknown = Reflect.get(target, key, receiver);
      if (typeof value !== 'function') return value;
      return typeof key === 'string' && NOT_KERNELS.has(key) ? value.bind(target) : () => undefined;
    },
  });
}

/** A Engine whose kernels live in a native addon with the `NativeKernels` ABI. */
export abstract class NativeEngine implements Engine {
  abstract readonly device: string;
  abstract readonly asynchronous: boolean;
  /** The addon the kernel methods call: the live one, or (during a CPU capture) one whose kernels do nothing. */
  #addon: NativeKernels;
  readonly #live: NativeKernels;

  constructor(addon: NativeKernels) {
    this.#addon = addon;
    this.#live = addon;
  }

  abstract synchronize(): void;
  /** The engine's form of captureGraph, called with no capture open (CUDA: stream capture; CPU: re-running fn). */
  protected abstract recordGraph(fn: () => void): DeviceGraph;
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
    this.refuseInGraph('upload (a host→device copy)');
    this.#addon.upload(dst, byteOffset, data);
  }
  download(src: Handle, byteOffset: number, bytes: number): ArrayBuffer {
    this.refuseInGraph('download (a device→host read)');
    return this.#addon.download(src, byteOffset, bytes);
  }
  /** Reads at once (an engine whose kernels have finished when they return); CUDA overrides it. */
  downloadLater(src: Handle, byteOffset: number, bytes: number): PendingDownload {
    this.refuseInGraph('downloadLater (a device→host read)');
    const data = this.#addon.download(src, byteOffset, bytes);
    let collected = false;
    return {
      wait: () => {
        if (collected) throw new Error(`${this.device} downloadLater: this read was collected already`);
        collected = true;
        return data;
      },
    };
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
    this.#addon.gemm(...gemmArguments(g));
  }
  matmulSharedInput(a: Dense, m: number, k: number, parts: readonly SharedInputPart[]): void {
    const dtype = DTYPE_CODE[a.dtype];
    const items = parts.map(({ b, c, n }) => {
      if (b.dtype !== a.dtype || c.dtype !== a.dtype)
        throw new TypeError(`matmulSharedInput: a is ${a.dtype} but a part has b ${b.dtype} and c ${c.dtype}`);
      return { dtype, m, k, n, b: b.handle, bOffset: b.offset, c: c.handle, cOffset: c.offset };
    });
    this.#addon.gemmSharedInput(dtype, m, k, a.handle, a.offset, items);
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
    this.refuseInGraph('embedding with checked ids (a device→host read; embeddingUnchecked needs none)');
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
      ...clipArguments(a),
    );
  }
  sumOfSquares(x: Dense, count: number): number {
    this.refuseInGraph('sumOfSquares (a device→host read)');
    return this.#addon.sumOfSquares(DTYPE_CODE[x.dtype], x.handle, x.offset, count);
  }
  sumOfSquaresMany(items: readonly { x: Dense; count: number }[]): number {
    this.refuseInGraph('sumOfSquaresMany (a device→host read)');
    return this.#addon.sumOfSquaresMany(
      items.map((i) => ({ dtype: DTYPE_CODE[i.x.dtype], x: i.x.handle, xOffset: i.x.offset, count: i.count })),
    );
  }
  sumOfSquaresManyTo(items: readonly { x: Dense; count: number }[], out: Dense): void {
    if (out.dtype !== 'float64') throw new Error(`sumOfSquaresManyTo: out is ${out.dtype}; it must be float64`);
    this.#addon.sumOfSquaresManyTo(
      items.map((i) => ({ dtype: DTYPE_CODE[i.x.dtype], x: i.x.handle, xOffset: i.x.offset, count: i.count })),
      out.handle,
      out.offset,
    );
  }
  adamw8bitMany(items: readonly AdamW8bitItem[], maps: AdamW8bitMaps, a: AdamWArgs): void {
    if (items.length === 0) return;
    for (const [i, item] of items.entries()) {
      if (item.shadow && item.shadow.dtype !== 'bfloat16' && item.shadow.dtype !== 'float16') {
        throw new Error(
          `adamw8bitMany: the weight copy of item ${i} is ${item.shadow.dtype}; it must be bfloat16 or float16`,
        );
      }
      for (const [name, d] of [
        ['mCodes', item.mCodes],
        ['vCodes', item.vCodes],
      ] as const) {
        if (d.dtype !== 'int32') throw new Error(`adamw8bitMany: ${name} of item ${i} is ${d.dtype}; it must be int32`);
      }
    }
    this.#addon.adamw8bitMany(
      items.map((i) => ({
        param: i.param.handle,
        paramOffset: i.param.offset,
        gradDtype: DTYPE_CODE[i.grad.dtype],
        grad: i.grad.handle,
        gradOffset: i.grad.offset,
        m: i.mCodes.handle,
        mOffset: i.mCodes.offset,
        v: i.vCodes.handle,
        vOffset: i.vCodes.offset,
        mAbsmax: i.mAbsmax.handle,
        mAbsmaxOffset: i.mAbsmax.offset,
        vAbsmax: i.vAbsmax.handle,
        vAbsmaxOffset: i.vAbsmax.offset,
        count: i.count,
        shadowDtype: i.shadow ? DTYPE_CODE[i.shadow.dtype] : 0,
        shadow: handleOrNone(i.shadow),
        shadowOffset: offsetOrNone(i.shadow),
      })),
      maps.signed,
      maps.unsigned,
      a.lr,
      a.beta1,
      a.beta2,
      a.eps,
      a.weightDecay,
      a.biasCorrection1,
      a.biasCorrection2,
      a.gradScale,
      ...clipArguments(a),
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
      ...clipArguments(a),
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
    this.#addon.gemmBias(...gemmArguments(g), bias.handle, bias.offset);
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
    this.#addon.addNorm(...addNormArguments(a, out, sum, stats));
  }
  addNormShift(
    a: AddNormArgs,
    out: Dense,
    sum: Dense | null,
    stats: Dense,
    tails: Dense,
    shifted: Dense,
    shifts: number,
    ring: number,
    batch: PagedBatchArgs,
  ): void {
    for (const [name, d] of [
      ['tails', tails],
      ['shifted', shifted],
    ] as const)
      if (d.dtype !== a.a.dtype) throw new Error(`addNormShift: ${name} is ${d.dtype}, the rows ${a.a.dtype}`);
    this.#addon.addNormShift(
      ...addNormArguments(a, out, sum, stats),
      tails.handle,
      tails.offset,
      shifted.handle,
      shifted.offset,
      shifts,
      ring,
      pagedBatchConfig('addNormShift', a.rows, batch),
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
  matmulBiasGelu(a: Dense, b: Dense, bias: Dense, out: Dense, m: number, n: number, k: number): void {
    for (const [name, d] of [
      ['b', b],
      ['bias', bias],
      ['out', out],
    ] as const)
      if (d.dtype !== a.dtype) throw new TypeError(`matmulBiasGelu: a is ${a.dtype} but ${name} is ${d.dtype}`);
    this.#addon.gemmBiasGelu(
      DTYPE_CODE[a.dtype],
      m,
      n,
      k,
      a.handle,
      a.offset,
      b.handle,
      b.offset,
      bias.handle,
      bias.offset,
      out.handle,
      out.offset,
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
  headNormRows(items: readonly HeadNormRowsItem[], eps: number): void {
    if (items.length === 0) return;
    const dtype = items[0]!.x.dtype;
    this.#addon.headNormRows(
      items.map((i, n) => {
        for (const [name, d] of [
          ['x', i.x],
          ['y', i.y],
          ['weight', i.weight],
        ] as const)
          if (d && d.dtype !== dtype)
            throw new TypeError(`headNormRows: item ${n}'s ${name} is ${d.dtype}, not ${dtype}`);
        if (i.index && i.index.dtype !== 'int32')
          throw new TypeError(`headNormRows: item ${n}'s index is ${i.index.dtype}, not int32`);
        return {
          dtype: DTYPE_CODE[dtype],
          count: i.count,
          heads: i.heads,
          dim: i.dim,
          rows: i.rows,
          normalize: i.normalize,
          x: i.x.handle,
          xOffset: i.x.offset,
          weight: handleOrNone(i.weight),
          weightOffset: offsetOrNone(i.weight),
          index: handleOrNone(i.index),
          indexOffset: offsetOrNone(i.index),
          y: i.y.handle,
          yOffset: i.y.offset,
        };
      }),
      eps,
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

  // ---- The paged KV cache ----
  pagedAttention(
    q: Dense,
    keyPool: Dense,
    valuePool: Dense,
    out: Dense,
    totalQueries: number,
    a: PagedAttentionArgs,
  ): void {
    for (const [name, d] of [
      ['keyPool', keyPool],
      ['valuePool', valuePool],
      ['out', out],
    ] as const) {
      if (d.dtype !== q.dtype) throw new Error(`pagedAttention: q is ${q.dtype} but ${name} is ${d.dtype}`);
    }
    if (a.keyScale && a.keyScale.dtype !== 'float32' && a.keyScale.dtype !== q.dtype)
      throw new Error(`pagedAttention: keyScale must be float32 or q's ${q.dtype}, got ${a.keyScale.dtype}`);
    this.#addon.pagedAttention(
      {
        dtype: DTYPE_CODE[q.dtype],
        ...pagedBatchConfig('pagedAttention', totalQueries, a),
        heads: a.heads,
        kvHeads: a.kvHeads,
        headDim: a.headDim,
        scale: a.scale,
        alibiSlopes: a.alibiSlopes,
        rotaryDim: a.rotaryDim,
        rotaryInvFreq: a.rotaryInvFreq,
        xposScaleBase: a.xposScaleBase,
        keyScaleDtype: DTYPE_CODE[a.keyScale?.dtype ?? 'float32'],
        keyScale: handleOrNone(a.keyScale),
        keyScaleOffset: offsetOrNone(a.keyScale),
        window: a.window,
        softCap: a.softCap,
      },
      q.handle,
      q.offset,
      keyPool.handle,
      keyPool.offset,
      valuePool.handle,
      valuePool.offset,
      out.handle,
      out.offset,
    );
  }
  scatterRows(src: Dense, index: Dense, dst: Dense, count: number, width: number, rows: number): void {
    if (src.dtype !== dst.dtype) throw new Error(`scatterRows: src is ${src.dtype} but dst is ${dst.dtype}`);
    if (index.dtype !== 'int32') throw new Error(`scatterRows: index must be int32, got ${index.dtype}`);
    this.#addon.scatterRows(
      DTYPE_CODE[src.dtype],
      src.handle,
      src.offset,
      index.handle,
      index.offset,
      dst.handle,
      dst.offset,
      count,
      width,
      rows,
    );
  }
  pagedTokenShift(
    x: Dense,
    tails: Dense,
    out: Dense,
    totalQueries: number,
    dim: number,
    shifts: number,
    ring: number,
    a: PagedBatchArgs,
  ): void {
    this.#shiftThroughTails('pagedTokenShift', x, tails, out, totalQueries, dim, shifts, ring, a);
  }
  pagedTokenShiftAndTailWrite(
    x: Dense,
    tails: Dense,
    out: Dense,
    totalQueries: number,
    dim: number,
    shifts: number,
    ring: number,
    a: PagedBatchArgs,
  ): void {
    this.#shiftThroughTails('pagedTokenShiftAndTailWrite', x, tails, out, totalQueries, dim, shifts, ring, a);
  }
  #shiftThroughTails(
    op: 'pagedTokenShift' | 'pagedTokenShiftAndTailWrite',
    x: Dense,
    tails: Dense,
    out: Dense,
    totalQueries: number,
    dim: number,
    shifts: number,
    ring: number,
    a: PagedBatchArgs,
  ): void {
    if (tails.dtype !== x.dtype || out.dtype !== x.dtype)
      throw new Error(`${op}: x, tails and out must share a dtype (${x.dtype}, ${tails.dtype}, ${out.dtype})`);
    this.#addon[op](
      DTYPE_CODE[x.dtype],
      x.handle,
      x.offset,
      tails.handle,
      tails.offset,
      out.handle,
      out.offset,
      dim,
      shifts,
      ring,
      pagedBatchConfig(op, totalQueries, a),
    );
  }
  pagedTailWrite(x: Dense, tails: Dense, totalQueries: number, dim: number, ring: number, a: PagedBatchArgs): void {
    if (tails.dtype !== x.dtype) throw new Error(`pagedTailWrite: x is ${x.dtype} but tails are ${tails.dtype}`);
    this.#addon.pagedTailWrite(
      DTYPE_CODE[x.dtype],
      x.handle,
      x.offset,
      tails.handle,
      tails.offset,
      dim,
      ring,
      pagedBatchConfig('pagedTailWrite', totalQueries, a),
    );
  }

  // ---- Decoding: sampling on the device and graphs ----
  sampleTokens(logits: Dense, b: SamplingBuffers, rows: number, vocab: number, topN: number): void {
    const int32 = [b.seeds, b.steps, b.counts, b.ids, b.topIds];
    const float32 = [b.params, b.logprobs, b.topLogprobs];
    if (int32.some((d) => d && d.dtype !== 'int32') || float32.some((d) => d && d.dtype !== 'float32')) {
      throw new Error('sampleTokens: seeds, steps, counts, ids and topIds must be int32; params and logprobs float32');
    }
    this.#addon.sampleTokens(
      DTYPE_CODE[logits.dtype],
      logits.handle,
      logits.offset,
      b.params.handle,
      b.params.offset,
      b.seeds.handle,
      b.seeds.offset,
      b.steps.handle,
      b.steps.offset,
      handleOrNone(b.counts),
      offsetOrNone(b.counts),
      b.ids.handle,
      b.ids.offset,
      handleOrNone(b.logprobs),
      offsetOrNone(b.logprobs),
      handleOrNone(b.topIds),
      offsetOrNone(b.topIds),
      handleOrNone(b.topLogprobs),
      offsetOrNone(b.topLogprobs),
      rows,
      vocab,
      topN,
    );
  }

  /** Graph functions running (a capture, or a CPU replay): copies and waits are refused meanwhile. */
  #graphDepth = 0;

  captureGraph(fn: () => void): DeviceGraph {
    if (typeof fn !== 'function') throw new TypeError(`${this.device} captureGraph: fn must be a function`);
    if (this.#graphDepth > 0) {
      throw new Error(`${this.device} captureGraph: called inside another graph's function (captures do not nest)`);
    }
    return this.recordGraph(fn);
  }

  /**
   * Runs `fn` as a capture that records nothing: its JavaScript runs (allocations, argument checks) while every
   * kernel call does nothing, as a CUDA capture enqueues work that does not run until a replay.
   */
  protected runWithoutKernels(fn: () => void): void {
    this.#addon = skippingKernels(this.#live);
    try {
      this.runGraphFunction(fn);
    } finally {
      this.#addon = this.#live;
    }
  }

  /** The addon kernel calls go to now (engines with kernels of their own call them through this). */
  protected kernels<T extends NativeKernels>(): T {
    return this.#addon as T;
  }

  /** Runs a graph's function with copies and waits refused. */
  protected runGraphFunction(fn: () => void): void {
    this.#graphDepth++;
    try {
      fn();
    } finally {
      this.#graphDepth--;
    }
  }

  /** Throws, naming `what`, when called from inside a graph's function. */
  protected refuseInGraph(what: string): void {
    if (this.#graphDepth === 0) return;
    throw new Error(
      `${this.device} ${what} inside captureGraph: a graph replays device work only, so its function may not copy ` +
        'between host and device nor wait for the device (upload inputs before replay(), read results after it)',
    );
  }
}

/** addNorm's arguments in the addon's order (addNormShift's first ones too). */
function addNormArguments(a: AddNormArgs, out: Dense, sum: Dense | null, stats: Dense) {
  return [
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
  ] as const;
}
/** The binding's form of a paged batch; its metadata buffers must be int32. */
function pagedBatchConfig(kernel: string, totalQueries: number, a: PagedBatchArgs): PagedBatchConfig {
  for (const [name, d] of [
    ['queryStart', a.queryStart],
    ['contextLens', a.contextLens],
    ['blockTables', a.blockTables],
  ] as const) {
    if (d.dtype !== 'int32') throw new Error(`${kernel}: ${name} must be int32, got ${d.dtype}`);
  }
  return {
    totalQueries,
    numSeqs: a.numSeqs,
    blockSize: a.blockSize,
    numBlocks: a.numBlocks,
    maxBlocksPerSeq: a.maxBlocksPerSeq,
    maxQueryLen: a.maxQueryLen,
    maxContextLen: a.maxContextLen,
    queryStart: a.queryStart.handle,
    queryStartOffset: a.queryStart.offset,
    contextLens: a.contextLens.handle,
    contextLensOffset: a.contextLens.offset,
    blockTables: a.blockTables.handle,
    blockTablesOffset: a.blockTables.offset,
  };
}

/** The addon's gemm arguments for a product (gemmBias takes the bias after them). */
function gemmArguments(g: MatmulArgs): Parameters<SharedKernels['gemm']> {
  return [
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
  ];
}
