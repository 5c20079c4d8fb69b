import { DTYPE_BYTES } from '../tensor/dtype.js';
import { allocatedBytes, nominalBytes, type EngineKind, type TensorGroup } from './allocator.js';
import type { RowTensor } from './activations.js';
import type { ComputeDType } from './workload.js';

/** One line of a plan's memory: what it is, the bytes the allocator will count, and the flags that shrink it. */
export interface MemoryLine {
  label: string;
  /** Bytes the engine's allocator counts for these tensors (rounded block sizes). */
  bytes: number;
  /** The tensors' own bytes; bytes − nominal is the allocator's rounding. */
  nominal: number;
  flags: string;
}

export function line(engine: EngineKind, label: string, groups: readonly TensorGroup[], flags: string): MemoryLine {
  return { label, bytes: allocatedBytes(engine, groups), nominal: nominalBytes(groups), flags };
}

/** Row tensors of `rows` tokens as allocations, float32 where marked, else in `dtype`. */
export function rowGroups(tensors: readonly RowTensor[], rows: number, dtype: ComputeDType): TensorGroup[] {
  return tensors.map((t) => ({ count: 1, bytes: t.perRow * rows * (t.float32 ? 4 : DTYPE_BYTES[dtype]) }));
}

/**
 * The parameters as allocations of `bytesPerElement` each: one per tensor, as the engine allocates them; divided
 * over `shards` GPUs, one flat partition per GPU (ZeRO implementations flatten what they partition).
 */
export function parameterGroups(
  shapes: ReadonlyMap<string, readonly number[]>,
  bytesPerElement: number,
  shards = 1,
): TensorGroup[] {
  const sizes = [...shapes.values()].map((shape) => shape.reduce((a, b) => a * b, 1));
  if (shards > 1) return [{ count: 1, bytes: Math.ceil(sizes.reduce((a, b) => a + b, 0) / shards) * bytesPerElement }];
  return sizes.map((size) => ({ count: 1, bytes: size * bytesPerElement }));
}

/** The CUDA engine's cuBLASLt workspace (native/cuda/gemm_cublaslt.cc, kWorkspaceBytes): one per process. */
export const CUBLASLT_WORKSPACE_BYTES = 32 * 2 ** 20;
