import { existsSync } from 'node:fs';
import { DTYPE_CODE } from '../tensor/dtype.js';
import type { AttentionArgs, Dense } from './backend.js';
import { NativeBackend, at, atOrNull, requireAddon, type NativeKernels } from './native-backend.js';

/** The compiled addon's functions (native/cpu/binding.cc): the shared kernels plus the CPU's own. */
interface CpuAddon extends NativeKernels {
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
  const addon = requireAddon<CpuAddon>('andromeda_cpu.node');
  if (!existsSync(addon.path)) {
    throw new Error(`CPU engine not built: ${addon.path} is missing. Run \`npm run build:native\` (needs g++ and make).`);
  }
  return addon.load();
}

export class CpuBackend extends NativeBackend<CpuAddon> {
  readonly device = 'cpu';
  readonly asynchronous = false;

  constructor() {
    super(loadAddon());
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

  synchronize(): void {}

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
