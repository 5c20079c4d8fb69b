import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { DTYPE_CODE, DTYPE_BYTES } from '../tensor/dtype.js';
import {
  BINARY_CODE, REDUCE_CODE, UNARY_CODE, UNARY_GRAD_CODE,
  type AdamWArgs, type AttentionArgs, type Backend, type BinaryOp, type Dense, type Handle, type MatmulArgs, type MemoryStats,
  type ReduceOp, type Strided, type UnaryGradOp, type UnaryOp,
} from './backend.js';

/** The compiled addon's functions (native/cpu/binding.cc). */
interface CpuAddon {
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
  adamw(param: number, gradDtype: number, grad: number, m: number, v: number, count: number,
    lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, bc1: number, bc2: number, gradScale: number): void;
  sumOfSquares(dtype: number, x: number, count: number): number;
  threads(set?: number): number;
  cpuInfo(): CpuInfo;
  limitIsa(isa: CpuIsa): CpuIsa;
  probeCpu(): { clockGHz: number; fmaGflops512: number; fmaGflops256: number };
  attentionForward(q: number, k: number, v: number, out: number, lse: number, config: AttentionConfig): void;
  attentionBackward(q: number, k: number, v: number, out: number, lse: number, gradOut: number,
    gradQ: number, gradK: number, gradV: number, gradKeyScale: number | null, config: AttentionConfig): void;
}

/** AttentionArgs as the addon reads them (native/cpu/binding.cc, attention_args). */
interface AttentionConfig {
  dtype: number;
  lseDtype: number;
  keyScaleDtype: number;
  batch: number;
  heads: number;
  kvHeads: number;
  queryLen: number;
  keyLen: number;
  headDim: number;
  scale: number;
  causal: boolean;
  queryOffset: number;
  alibiSlopes: Float32Array | null;
  rotaryDim: number;
  rotaryInvFreq: Float32Array | null;
  xposScaleBase: number;
  keyScale: number | null;
  queryPositions: number | null;
  keyPositions: number | null;
  querySegments: number | null;
  keySegments: number | null;
}

function attentionConfig(q: Dense, k: Dense, v: Dense, out: Dense, lse: Dense, a: AttentionArgs, grads: readonly Dense[] = []): AttentionConfig {
  const fail = (m: string): never => { throw new Error(`attention: ${m}`); };
  for (const [name, d] of [['k', k], ['v', v], ['out', out], ...grads.map((g, i) => [`grad${i}`, g] as const)] as const) {
    if (d.dtype !== q.dtype) fail(`${name} is ${d.dtype} but q is ${q.dtype}`);
  }
  if (q.dtype !== 'float32' && q.dtype !== 'float64' && q.dtype !== 'bfloat16') fail(`unsupported dtype ${q.dtype}`);
  if (lse.dtype !== 'float32' && lse.dtype !== 'float64') fail(`lse must be float32 or float64, got ${lse.dtype}`);
  for (const [name, d] of [['queryPositions', a.queryPositions], ['keyPositions', a.keyPositions],
    ['querySegments', a.querySegments], ['keySegments', a.keySegments]] as const) {
    if (d && d.dtype !== 'int32') fail(`${name} must be int32, got ${d.dtype}`);
  }
  if (a.alibiSlopes && a.alibiSlopes.length < a.heads) fail(`alibiSlopes has ${a.alibiSlopes.length} entries for ${a.heads} heads`);
  if (a.rotaryDim > 0 && (!a.rotaryInvFreq || a.rotaryInvFreq.length < a.rotaryDim / 2)) {
    fail(`rotaryDim ${a.rotaryDim} needs ${a.rotaryDim / 2} inverse frequencies`);
  }
  return {
    dtype: DTYPE_CODE[q.dtype], lseDtype: DTYPE_CODE[lse.dtype],
    keyScaleDtype: a.keyScale ? DTYPE_CODE[a.keyScale.dtype] : DTYPE_CODE.float32,
    batch: a.batch, heads: a.heads, kvHeads: a.kvHeads, queryLen: a.queryLen, keyLen: a.keyLen, headDim: a.headDim,
    scale: a.scale, causal: a.causal, queryOffset: a.queryOffset,
    alibiSlopes: a.alibiSlopes, rotaryDim: a.rotaryDim, rotaryInvFreq: a.rotaryInvFreq, xposScaleBase: a.xposScaleBase,
    keyScale: atOrNull(a.keyScale),
    queryPositions: atOrNull(a.queryPositions), keyPositions: atOrNull(a.keyPositions),
    querySegments: atOrNull(a.querySegments), keySegments: atOrNull(a.keySegments),
  };
}

/** SIMD instruction sets the CPU kernels are compiled for (chosen at run time). */
export type CpuIsa = 'generic' | 'avx2' | 'avx512';
export interface CpuInfo {
  /** Instruction set in use, and the best one this CPU supports. */
  readonly isa: CpuIsa;
  readonly cpuIsa: CpuIsa;
  /** GEMM micro-kernels in use for float32 (and half types) and float64, e.g. "avx512 12x32". */
  readonly gemmF32: string;
  readonly gemmF64: string;
  readonly threads: number;
}

function loadAddon(): CpuAddon {
  const here = dirname(fileURLToPath(import.meta.url));
  // dist/src/backend → package root is three levels up.
  const root = join(here, '..', '..', '..');
  const path = join(root, 'build', 'Release', 'andromeda_cpu.node');
  if (!existsSync(path)) {
    throw new Error(`CPU engine not built: ${path} is missing. Run \`npm run build:native\` (needs g++ and make).`);
  }
  return createRequire(import.meta.url)(path) as CpuAddon;
}

/** Address of element `offset` of a dense region. */
const at = (d: Dense): number => d.handle + d.offset * DTYPE_BYTES[d.dtype];
const atOrNull = (d: Dense | null): number | null => (d ? at(d) : null);

/** Strides of the wrong rank would make the kernel read or write out of bounds: refuse them. */
function checkRank(kernel: string, shape: readonly number[], ...operands: Strided[]): void {
  for (const o of operands) {
    if (o.strides.length !== shape.length) {
      throw new Error(`internal: cpu ${kernel} got ${o.strides.length} strides for a ${shape.length}-d shape [${shape.join(', ')}]`);
    }
  }
}

export class CpuBackend implements Backend {
  readonly device = 'cpu';
  readonly asynchronous = false;
  private readonly addon: CpuAddon;

  constructor() {
    this.addon = loadAddon();
    const requested = Number(process.env.ANDROMEDA_THREADS ?? 0);
    if (requested > 0) this.addon.threads(requested);
  }

  /** Number of worker threads the kernels use (set with ANDROMEDA_THREADS or here). */
  threads(set?: number): number {
    return this.addon.threads(set);
  }

  /** Instruction set and GEMM micro-kernels in use. */
  cpuInfo(): CpuInfo { return this.addon.cpuInfo(); }
  /** Caps the SIMD instruction set (also ANDROMEDA_CPU_ISA); returns the one now in use. */
  limitIsa(isa: CpuIsa): CpuIsa { return this.addon.limitIsa(isa); }
  /** Measures the core clock and single-thread FMA throughput on this thread (~0.5 s). */
  probeCpu(): { clockGHz: number; fmaGflops512: number; fmaGflops256: number } { return this.addon.probeCpu(); }

  alloc(bytes: number): Handle { return this.addon.alloc(bytes); }
  free(handle: Handle): void { this.addon.free(handle); }
  upload(dst: Handle, byteOffset: number, data: ArrayBufferView): void { this.addon.upload(dst, byteOffset, data); }
  download(src: Handle, byteOffset: number, bytes: number): ArrayBuffer { return this.addon.download(src, byteOffset, bytes); }
  synchronize(): void {}
  memoryStats(): MemoryStats { return this.addon.memoryStats(); }
  resetPeakMemory(): void { this.addon.resetPeakMemory(); }

  copy(src: Strided, dst: Strided, shape: readonly number[]): void {
    checkRank('copy', shape, src, dst);
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
    checkRank('binary', shape, a, b);
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

  /**
   * Fused attention (native/cpu/attention.cc): float32, float64 or bfloat16 q/k/v; lse float32 or float64
   * (use float64 with float64 inputs for full-precision gradients); keyScale float32/float64/bfloat16.
   */
  attentionForward(q: Dense, k: Dense, v: Dense, out: Dense, lse: Dense, args: AttentionArgs): void {
    this.addon.attentionForward(at(q), at(k), at(v), at(out), at(lse), attentionConfig(q, k, v, out, lse, args));
  }
  /** Overwrites gradQ, gradK, gradV and gradKeyScale (summed over the batch; dtype as keyScale). */
  attentionBackward(q: Dense, k: Dense, v: Dense, out: Dense, lse: Dense, gradOut: Dense,
    gradQ: Dense, gradK: Dense, gradV: Dense, gradKeyScale: Dense | null, args: AttentionArgs): void {
    if (args.keyScale && gradKeyScale && gradKeyScale.dtype !== args.keyScale.dtype) {
      throw new Error(`attention: gradKeyScale is ${gradKeyScale.dtype} but keyScale is ${args.keyScale.dtype}`);
    }
    const config = attentionConfig(q, k, v, out, lse, args, [gradOut, gradQ, gradK, gradV]);
    this.addon.attentionBackward(at(q), at(k), at(v), at(out), at(lse), at(gradOut), at(gradQ), at(gradK), at(gradV),
      args.keyScale ? atOrNull(gradKeyScale) : null, config);
  }
}
