import { existsSync } from 'node:fs';
import type { AttentionArgs, Dense, DeviceGraph, FusedAttentionShape } from './engine.js';
import { RecordedGraph } from './device-graph.js';
import { NativeEngine, handleOrNone, offsetOrNone, requireAddon, type NativeKernels } from './native-engine.js';
import type { CpuKernels } from './native-abi.js';
import { nativeAttentionConfig, type NativeAttentionConfig } from './attention-config.js';
import { parseCpuIsa, parseThreadCount, type CpuIsa } from './cpu-settings.js';

/** The compiled addon's functions (native/cpu/binding.cc): the kernels plus the CPU's own. */
interface CpuAddon extends NativeKernels, CpuKernels {
  threads(set?: number): number;
  cpuInfo(): CpuInfo;
  limitIsa(isa: CpuIsa): CpuIsa;
  probeCpu(): CpuProbe;
}

/**
 * Scratch budgets of the CPU attention kernels, in bytes. Results are the same under any budget; small
 * ones trade speed for memory (and let tests reach the fallback paths).
 */
export interface CpuAttentionBudgets {
  /**
   * Forward: one prepared copy of the keys shared by all query tiles up to this size (default 512 MiB); above, keys are
   * prepared per tile pair.
   */
  readonly keyCacheBytes?: number;
  /** Backward: dQ accumulators up to this size (default 256 MiB); above, the work runs in several passes. */
  readonly dqAccumulatorBytes?: number;
}
type CpuAttentionConfig = NativeAttentionConfig & { keyCacheBytes: number | null; dqAccumulatorBytes: number | null };

function budgetOf(budgets: CpuAttentionBudgets, key: keyof CpuAttentionBudgets): number | null {
  const v = budgets[key];
  if (v === undefined) return null;
  if (!Number.isFinite(v) || v < 0)
    throw new Error(`attention: ${key} must be a finite number of bytes >= 0, got ${v}`);
  return v;
}

function attentionConfig(
  q: Dense,
  k: Dense,
  v: Dense,
  out: Dense,
  lse: Dense,
  a: AttentionArgs,
  budgets: CpuAttentionBudgets,
  grads: readonly Dense[] = [],
): CpuAttentionConfig {
  if (q.dtype !== 'float32' && q.dtype !== 'float64' && q.dtype !== 'bfloat16')
    throw new Error(`attention: unsupported dtype ${q.dtype}`);
  if (lse.dtype !== 'float32' && lse.dtype !== 'float64')
    throw new Error(`attention: lse must be float32 or float64, got ${lse.dtype}`);
  const operands: [string, Dense][] = [
    ['k', k],
    ['v', v],
    ['out', out],
    ...grads.map((g, i): [string, Dense] => [`grad${i}`, g]),
  ];
  return {
    ...nativeAttentionConfig('attention', q, operands, lse, a),
    keyCacheBytes: budgetOf(budgets, 'keyCacheBytes'),
    dqAccumulatorBytes: budgetOf(budgets, 'dqAccumulatorBytes'),
  };
}

/** SIMD instruction sets the CPU kernels are compiled for (chosen at run time; cpuIsasOf lists each architecture's). */
export type { CpuIsa };
/** probeCpu()'s measurements; 0 for an instruction set the CPU lacks, and for the clock on arm64 (not measured). */
export interface CpuProbe {
  readonly clockGHz: number;
  readonly fmaGflops512: number;
  readonly fmaGflops256: number;
  readonly fmaGflopsNeon: number;
}
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
    throw new Error(
      `CPU engine not built: ${addon.path} is missing. Run \`npm run build:native\` (needs g++ and make).`,
    );
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
    const requested = process.env.ANDROMEDA_THREADS;
    if (requested !== undefined && requested !== '')
      this.#addon.threads(parseThreadCount(requested, 'ANDROMEDA_THREADS'));
    const isa = process.env.ANDROMEDA_CPU_ISA;
    if (isa !== undefined && isa !== '') this.#addon.limitIsa(parseCpuIsa(isa, 'ANDROMEDA_CPU_ISA'));
  }

  /**
   * Number of threads the kernels use, the calling one included: ANDROMEDA_THREADS, else the CPUs
   * this process may run on. `set` changes it (an integer from 1 to MAX_CPU_THREADS).
   */
  threads(set?: number): number {
    return this.#addon.threads(set === undefined ? undefined : parseThreadCount(set, 'threads()'));
  }

  /** Instruction set and GEMM micro-kernels in use. */
  cpuInfo(): CpuInfo {
    return this.#addon.cpuInfo();
  }
  /** Caps the SIMD instruction set (also ANDROMEDA_CPU_ISA); returns the one now in use. */
  limitIsa(isa: CpuIsa): CpuIsa {
    return this.#addon.limitIsa(parseCpuIsa(isa, 'limitIsa()'));
  }
  /** Measures the core clock and single-thread FMA throughput on this thread (~0.5 s). */
  probeCpu(): CpuProbe {
    return this.#addon.probeCpu();
  }

  synchronize(): void {
    this.refuseInGraph('synchronize (a wait for the device)');
  }

  /**
   * The CPU has nothing to record: the capture runs the function's JavaScript with every kernel skipped (as a CUDA
   * capture runs none), and each replay runs the function again, kernels included.
   */
  protected recordGraph(fn: () => void): DeviceGraph {
    this.runWithoutKernels(fn);
    return new RecordedGraph(
      this.device,
      () => this.runGraphFunction(fn),
      () => {},
    );
  }

  /** The CPU kernels take every head shape. */
  fusedAttentionUnsupported(_shape: FusedAttentionShape): string | null {
    return null;
  }

  /**
   * Fused attention (native/cpu/attention.cc): float32, float64 or bfloat16 q/k/v; lse float32 or float64
   * (use float64 with float64 inputs for full-precision gradients); keyScale float32/float64/bfloat16.
   */
  attentionForward(
    q: Dense,
    k: Dense,
    v: Dense,
    out: Dense,
    lse: Dense,
    args: AttentionArgs,
    budgets: CpuAttentionBudgets = {},
  ): void {
    this.kernels<CpuAddon>().attentionForward(
      attentionConfig(q, k, v, out, lse, args, budgets),
      q.handle,
      q.offset,
      k.handle,
      k.offset,
      v.handle,
      v.offset,
      out.handle,
      out.offset,
      lse.handle,
      lse.offset,
    );
  }
  /** Overwrites gradQ, gradK, gradV and gradKeyScale (summed over the batch; dtype as keyScale). */
  attentionBackward(
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
    budgets: CpuAttentionBudgets = {},
  ): void {
    if (args.keyScale && gradKeyScale && gradKeyScale.dtype !== args.keyScale.dtype) {
      throw new Error(`attention: gradKeyScale is ${gradKeyScale.dtype} but keyScale is ${args.keyScale.dtype}`);
    }
    const config = attentionConfig(q, k, v, out, lse, args, budgets, [gradOut, gradQ, gradK, gradV]);
    const gradScale = args.keyScale ? gradKeyScale : null;
    this.kernels<CpuAddon>().attentionBackward(
      config,
      q.handle,
      q.offset,
      k.handle,
      k.offset,
      v.handle,
      v.offset,
      out.handle,
      out.offset,
      lse.handle,
      lse.offset,
      gradOut.handle,
      gradOut.offset,
      gradQ.handle,
      gradQ.offset,
      gradK.handle,
      gradK.offset,
      gradV.handle,
      gradV.offset,
      handleOrNone(gradScale),
      offsetOrNone(gradScale),
    );
  }
}
