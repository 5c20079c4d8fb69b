import { existsSync } from 'node:fs';
import { installProfiler } from './cuda-profile.js';
import { cudaFusedAttentionUnsupported } from './cuda-shapes.js';
import type {
  AttentionArgs,
  Dense,
  DeviceGraph,
  FusedAttentionShape,
  Handle,
  MemoryStats,
  PendingDownload,
} from './engine.js';
import { RecordedGraph } from './device-graph.js';
import { NativeEngine, requireAddon, type NativeKernels } from './native-engine.js';
import type { CudaKernels } from './native-abi.js';
import {
  cudaAttentionBackward,
  cudaAttentionForward,
  cudaAttentionPlan,
  type CudaAttentionAddon,
  type CudaAttentionOptions,
  type CudaAttentionPlan,
} from './cuda-attention.js';

/** Memory statistics of the CUDA engine: the Engine's, plus the caching allocator's state. */
export interface CudaMemoryStats extends MemoryStats {
  /** Blocks held by live tensors, and blocks kept in the cache for reuse. */
  readonly liveBlocks: number;
  readonly cachedBlocks: number;
  /** The device's free and total memory as the driver reports them. */
  readonly deviceFree: number;
  readonly deviceTotal: number;
  /** Bytes that graphs' private pools hold with no tensor in them (counted in `allocated` until disposal). */
  readonly graphPoolIdle: number;
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
  profilerRange(on: boolean): void;
  downloadStart(src: number, byteOffset: number, bytes: number): number;
  downloadWait(ticket: number): ArrayBuffer;
  graphBegin(): void;
  graphEnd(): number;
  graphAbort(): void;
  graphReplay(graph: number): void;
  graphDispose(graph: number): void;
}

let addon: CudaAddon | null = null;

/** Loads the addon once; every failure reads "no CUDA device: <why>". */
function loadAddon(): CudaAddon {
  if (addon) return addon;
  const { path, load } = requireAddon<CudaAddon>('andromeda_cuda.node');
  if (!existsSync(path)) {
    throw new Error(
      `no CUDA device: the CUDA engine is not built (${path} is missing; run \`npm run build:cuda\` on a machine ` +
        `with nvcc)`,
    );
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
      ? ' (no NVIDIA driver or GPU on this machine, or a driver older than the CUDA 13 runtime this engine is built ' +
        'with)'
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
  gemmLibrary(): string {
    return this.#addon.gemmLibrary();
  }
  /** Returns every cached block to the driver. */
  emptyCache(): void {
    this.#addon.emptyCache();
  }
  /** Caps the bytes the allocator may reserve from the driver (0 removes the cap). */
  setMemoryLimit(bytes: number): void {
    this.#addon.setMemoryLimit(bytes);
  }

  synchronize(): void {
    this.refuseInGraph('synchronize (a wait for the device)');
    this.#addon.synchronize();
  }

  /** A copy into pinned memory and an event behind the stream's work (native/cuda/pending_reads.cc). */
  override downloadLater(src: Handle, byteOffset: number, bytes: number): PendingDownload {
    this.refuseInGraph('downloadLater (a device→host read)');
    const ticket = this.#addon.downloadStart(src, byteOffset, bytes);
    return { wait: () => this.#addon.downloadWait(ticket) };
  }

  /**
   * A stream capture of `fn` (native/cuda/graph.cc): its allocations come from the graph's private pool; when
   * `fn` throws, the capture is abandoned (pool returned) and the error passes on, leaving the engine usable.
   */
  protected recordGraph(fn: () => void): DeviceGraph {
    this.#addon.graphBegin();
    try {
      this.runGraphFunction(fn);
    } catch (e) {
      this.#addon.graphAbort();
      throw e;
    }
    const id = this.#addon.graphEnd();
    return new RecordedGraph(
      this.device,
      () => this.#addon.graphReplay(id),
      () => this.#addon.graphDispose(id),
    );
  }
  /**
   * Starts (true) or stops (false) the range an outside profiler records when it is told not to record from the
   * start (`ncu --profile-from-start off`): benches mark the few steps worth a kernel-by-kernel profile.
   */
  profilerRange(on: boolean): void {
    this.#addon.profilerRange(on);
  }
  /** Records a timing event on the stream (profiling); `timingRead` returns the gaps between marks. */
  timingMark(): number {
    return this.#addon.timingMark();
  }
  /** Waits; milliseconds between consecutive marks since the last read, on the device's clock. */
  timingRead(): Float64Array {
    return this.#addon.timingRead();
  }
  override memoryStats(): CudaMemoryStats {
    return this.#addon.memoryStats();
  }

  /** The shapes the CUDA kernels were built for (./cuda-shapes.ts). */
  fusedAttentionUnsupported(shape: FusedAttentionShape): string | null {
    return cudaFusedAttentionUnsupported(shape);
  }

  // Fused attention (native/cuda/attention, src/engine/cuda-attention.ts). `options` names kernels explicitly
  // (tests and benchmarks); left out, the engine's heuristics pick.
  attentionForward(
    q: Dense,
    k: Dense,
    v: Dense,
    out: Dense,
    lse: Dense,
    args: AttentionArgs,
    options?: CudaAttentionOptions,
  ): void {
    cudaAttentionForward(this.#addon, q, k, v, out, lse, args, options);
  }
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
    options?: CudaAttentionOptions,
  ): void {
    cudaAttentionBackward(this.#addon, q, k, v, out, lse, gradOut, gradQ, gradK, gradV, gradKeyScale, args, options);
  }
  /** Where a forward and backward with these arguments and options apply rotary / xPos / the key scale. */
  attentionPlan(q: Dense, lse: Dense, args: AttentionArgs, options?: CudaAttentionOptions): CudaAttentionPlan {
    return cudaAttentionPlan(this.#addon, q, lse, args, options);
  }
}
