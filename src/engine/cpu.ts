import { existsSync } from 'node:fs';
import type { AttentionArgs, Dense } from './engine.js';
import { NativeEngine, handleOrNone, offsetOrNone, requireAddon, type NativeKernels } from './native-engine.js';
import type { CpuKernels } from './native-abi.js';
import { nativeAttentionConfig, type NativeAttentionConfig } from './attention-config.js';

/** The compiled addon's functions (native/cpu/binding.cc): the kernels plus the CPU's own. */
interface CpuAddon extends NativeKernels, CpuKernels {
  threads(set?: number): number;
  cpuInfo(): CpuInfo;
  limitIsa(isa: CpuIsa): CpuIsa;
  probeCpu(): { clockGHz: number; fmaGflops512: number; fmaGflops256: number };
}


function attentionConfig(q: Dense, k: Dense, v: Dense, out: Dense, lse: Dense, a: AttentionArgs, grads: readonly Dense[] = []): NativeAttentionConfig {
  if (q.dtype !== 'float32' && q.dtype !== 'float64' && q.dtype !== 'bfloat16') throw new Error(`attention: unsupported dtype ${q.dtype}`);
  if (lse.dtype !== 'float32' && lse.dtype !== 'float64') throw new Error(`attention: lse must be float32 or float64, got ${lse.dtype}`);
  const operands: [string, Dense][] = [['k', k], ['v', v], ['out', out], ...grads.map((g, i): [string, Dense] => [`grad${i}`, g])];
  return nativeAttentionConfig('attention', q, operands, lse, a);
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

export class CpuEngine extends NativeEngine {
  readonly device = 'cpu';
  readonly asynchronous = false;
  // Private to this class: the addon is reachable only through the checked Engine methods.
  readonly #addon: CpuAddon;

  constructor() {
    const addon = loadAddon();
    super(addon);
    this.#addon = addon;
    const requested = Number(process.env.ANDROMEDA_THREADS ?? 0);
    if (requested > 0) this.#addon.threads(requested);
  }

  /** Number of worker threads the kernels use (set with ANDROMEDA_THREADS or here). */
  threads(set?: number): number {
    return this.#addon.threads(set);
  }

  /** Instruction set and GEMM micro-kernels in use. */
  cpuInfo(): CpuInfo { return this.#addon.cpuInfo(); }
  /** Caps the SIMD instruction set (also ANDROMEDA_CPU_ISA); returns the one now in use. */
  limitIsa(isa: CpuIsa): CpuIsa { return this.#addon.limitIsa(isa); }
  /** Measures the core clock and single-thread FMA throughput on this thread (~0.5 s). */
  probeCpu(): { clockGHz: number; fmaGflops512: number; fmaGflops256: number } { return this.#addon.probeCpu(); }

  synchronize(): void {}

  /**
   * Fused attention (native/cpu/attention.cc): float32, float64 or bfloat16 q/k/v; lse float32 or float64
   * (use float64 with float64 inputs for full-precision gradients); keyScale float32/float64/bfloat16.
   */
  attentionForward(q: Dense, k: Dense, v: Dense, out: Dense, lse: Dense, args: AttentionArgs): void {
    this.#addon.attentionForward(attentionConfig(q, k, v, out, lse, args), q.handle, q.offset, k.handle, k.offset, v.handle, v.offset,
      out.handle, out.offset, lse.handle, lse.offset);
  }
  /** Overwrites gradQ, gradK, gradV and gradKeyScale (summed over the batch; dtype as keyScale). */
  attentionBackward(q: Dense, k: Dense, v: Dense, out: Dense, lse: Dense, gradOut: Dense,
    gradQ: Dense, gradK: Dense, gradV: Dense, gradKeyScale: Dense | null, args: AttentionArgs): void {
    if (args.keyScale && gradKeyScale && gradKeyScale.dtype !== args.keyScale.dtype) {
      throw new Error(`attention: gradKeyScale is ${gradKeyScale.dtype} but keyScale is ${args.keyScale.dtype}`);
    }
    const config = attentionConfig(q, k, v, out, lse, args, [gradOut, gradQ, gradK, gradV]);
    const gradScale = args.keyScale ? gradKeyScale : null;
    this.#addon.attentionBackward(config, q.handle, q.offset, k.handle, k.offset, v.handle, v.offset, out.handle, out.offset,
      lse.handle, lse.offset, gradOut.handle, gradOut.offset, gradQ.handle, gradQ.offset, gradK.handle, gradK.offset,
      gradV.handle, gradV.offset, handleOrNone(gradScale), offsetOrNone(gradScale));
  }
}
